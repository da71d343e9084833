//! `cargo xtask install`: the `geofence` binary, its systemd unit, shell completions and
//! manual pages, under a prefix, optionally staged under a destdir (for packages and tests).
//!
//! Layout, PREFIX defaulting to /usr/local:
//!   PREFIX/bin/geofence
//!   PREFIX/lib/systemd/system/geofence.service   (--unit-dir, e.g. /etc/systemd/system)
//!   PREFIX/share/bash-completion/completions/geofence
//!   PREFIX/share/zsh/site-functions/_geofence
//!   PREFIX/share/fish/vendor_completions.d/geofence.fish
//!   PREFIX/share/man/man1/geofence.1, geofence-SUBCOMMAND.1, …
//!
//! Completions and pages come from the installed binary itself (`geofence completions`,
//! `geofence man`), so they match it. A file whose content is already in place is left
//! alone, so running it again changes nothing.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, phase, setup, target_dir, workspace_root};

#[derive(clap::Args)]
pub struct Args {
    /// Where the files belong on the target system.
    #[arg(long, default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Stage the files under this directory instead of the root (PREFIX stays what the
    /// unit refers to).
    #[arg(long, value_name = "DIR")]
    pub destdir: Option<PathBuf>,
    /// Where the systemd unit goes [default: PREFIX/lib/systemd/system].
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Install this binary instead of building one in release.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
}

/// The unit as shipped refers to the default prefix; installs elsewhere rewrite it.
const SHIPPED_BIN_DIR: &str = "/usr/local/bin/";

pub fn run(args: &Args) -> Result<()> {
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => {
            phase("setup (toolchain)");
            setup::run(setup::Scope::Toolchain)?;
            phase("building geofence (release)");
            cmd::run(cmd::cargo().args([
                "build",
                "--release",
                "-p",
                "filter-userspace",
                "--bin",
                "geofence",
            ]))?;
            target_dir().join("release").join("geofence")
        }
    };
    phase("installing");
    let report = install(&binary, args)?;
    for (path, changed) in &report {
        eprintln!(
            "  {} {}",
            if *changed { "installed" } else { "unchanged" },
            path.display()
        );
    }
    if args.destdir.is_none() {
        eprintln!(
            "next: systemctl daemon-reload && systemctl enable --now geofence \
             (metrics on 127.0.0.1:9464; edit the unit's ExecStart to change it)"
        );
    }
    Ok(())
}

/// Installs everything; returns each file and whether it was written.
pub fn install(binary: &Path, args: &Args) -> Result<Vec<(PathBuf, bool)>> {
    if !binary.is_file() {
        bail!("{}: no such binary to install", binary.display());
    }
    if !args.prefix.is_absolute() {
        bail!(
            "--prefix {}: must be an absolute path",
            args.prefix.display()
        );
    }
    let prefix = &args.prefix;
    let staged = |path: &Path| match &args.destdir {
        // Joining an absolute path would replace the destdir.
        Some(destdir) => destdir.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    };
    let unit_dir = args
        .unit_dir
        .clone()
        .unwrap_or_else(|| prefix.join("lib/systemd/system"));
    let share = prefix.join("share");
    let mut report = Vec::new();
    let mut put = |path: PathBuf, content: &[u8], mode: u32| -> Result<()> {
        let changed = put_file(&staged(&path), content, mode)?;
        report.push((staged(&path), changed));
        Ok(())
    };

    let binary_bytes = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    put(prefix.join("bin/geofence"), &binary_bytes, 0o755)?;

    let unit_path = workspace_root().join("packaging/geofence.service");
    let unit = fs::read_to_string(&unit_path)
        .with_context(|| format!("reading {}", unit_path.display()))?;
    let bin_dir = format!("{}/", prefix.join("bin").display());
    put(
        unit_dir.join("geofence.service"),
        unit.replace(SHIPPED_BIN_DIR, &bin_dir).as_bytes(),
        0o644,
    )?;

    for (shell, path) in [
        ("bash", "bash-completion/completions/geofence"),
        ("zsh", "zsh/site-functions/_geofence"),
        ("fish", "fish/vendor_completions.d/geofence.fish"),
    ] {
        let script = cmd::output(cmd::command(binary).args(["completions", shell]))?;
        put(share.join(path), script.as_bytes(), 0o644)?;
    }

    // Rendered into a scratch directory, then installed file by file like the rest.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("geofence-man-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let rendered = cmd::output(cmd::command(binary).arg("man").arg("--dir").arg(&scratch));
    let pages = rendered.and_then(|_| {
        let mut pages: Vec<PathBuf> = fs::read_dir(&scratch)
            .with_context(|| format!("reading {}", scratch.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", scratch.display()))?;
        pages.sort();
        pages
            .into_iter()
            .map(|page| {
                Ok((
                    page.file_name().map(PathBuf::from).unwrap_or_default(),
                    fs::read(&page)?,
                ))
            })
            .collect::<Result<Vec<_>>>()
    });
    let _ = fs::remove_dir_all(&scratch);
    for (name, page) in pages? {
        put(share.join("man/man1").join(name), &page, 0o644)?;
    }
    Ok(report)
}

/// Writes `content` to `path` unless it is already there (with `mode`); returns whether it
/// wrote. Written beside the target and renamed over it, so a running binary is replaced,
/// not overwritten in place, and a crash leaves the old file or the new one.
fn put_file(path: &Path, content: &[u8], mode: u32) -> Result<bool> {
    let same = fs::read(path).is_ok_and(|old| old == content)
        && fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
    if same {
        return Ok(false);
    }
    let dir = path.parent().context("an installed file has a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .context("an installed file has a name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.xtask-install"));
    fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
