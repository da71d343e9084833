//! `cargo xtask setup`: everything building and testing need, each step skipped when done.
//!
//! 1. rust-src for nightly (the XDP program is built with `-Z build-std=core`).
//! 2. bpf-linker, built against the LLVM inside the nightly toolchain.
//! 3. The Debian packages the tests use (root).
//! 4. bpffs at /sys/fs/bpf, where the pinned maps and links live (root).
//! 5. A Python venv with aiortc at target/webrtc-venv, for the WebRTC test clients.
//!
//! Steps 1, 2 and 5 work without root; 3 and 4 only need it when they have something to do.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, target_dir, workspace_root};

/// How much to set up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What building needs: rust-src, bpf-linker, protoc.
    Toolchain,
    /// Everything: the Debian packages, bpffs and the WebRTC clients' venv as well.
    All,
}

pub fn run(scope: Scope) -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    if scope == Scope::Toolchain {
        debian_packages(&BUILD_TOOLS)?;
    }
    if scope == Scope::All {
        debian_packages(&[BUILD_TOOLS.as_slice(), TOOLS.as_slice()].concat())?;
        bpffs()?;
        webrtc_venv()?;
    }
    Ok(())
}

const NIGHTLY: &str = "nightly";

fn rust_src() -> Result<()> {
    let installed = cmd::output(cmd::command("rustup").args([
        "component",
        "list",
        "--toolchain",
        NIGHTLY,
        "--installed",
    ]))
    .context("listing the components of the nightly toolchain (is it installed?)")?;
    // Lines are component names, `rust-src` without a target suffix.
    if installed.lines().any(|line| line.trim() == "rust-src") {
        println!("ok: rust-src for {NIGHTLY}");
        return Ok(());
    }
    println!("installing rust-src for {NIGHTLY}...");
    cmd::run(cmd::command("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

const BPF_LINKER: &str = "bpf-linker";

fn bpf_linker() -> Result<()> {
    // Found is not enough: bpf-linker loads libLLVM through a run path into the directory it
    // was built against, so it breaks when that directory or the nightly toolchain goes away.
    if let Some(path) = cmd::find_program(BPF_LINKER) {
        match linker_version(&path) {
            Ok(version) => {
                println!("ok: {version} ({})", path.display());
                return Ok(());
            }
            Err(why) => println!("{} does not run ({why:#}); reinstalling", path.display()),
        }
    }
    println!("installing {BPF_LINKER} (about 75 s)...");
    install_bpf_linker()?;
    let path = cmd::find_program(BPF_LINKER).with_context(|| {
        format!("`cargo install {BPF_LINKER}` succeeded but {BPF_LINKER} is not on PATH")
    })?;
    let version = linker_version(&path)
        .with_context(|| format!("{} was installed but does not run", path.display()))?;
    println!("ok: {version} ({})", path.display());
    Ok(())
}

fn linker_version(path: &Path) -> Result<String> {
    Ok(cmd::output(cmd::command(path).arg("--version"))?
        .trim()
        .to_owned())
}

/// Builds bpf-linker against the libLLVM of the nightly toolchain: `LLVM_PREFIX` points at a
/// directory whose `lib/` has that library under its own name and as `libLLVM.so`.
fn install_bpf_linker() -> Result<()> {
    let sysroot =
        cmd::output(cmd::command("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))
            .context("finding the nightly sysroot")?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let llvm = nightly_libllvm(&sysroot_lib)?;
    let name = llvm
        .file_name()
        .context("libLLVM path has a file name")?
        .to_owned();
    let major = llvm_major(&name.to_string_lossy())
        .map(str::to_owned)
        .with_context(|| format!("no LLVM major version in the name {}", llvm.display()))?;

    let prefix = target_dir().join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for link_name in [Path::new("libLLVM.so"), Path::new(&name)] {
        let link = prefix_lib.join(link_name);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
        }
        symlink(&llvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), llvm.display()))?;
    }

    // bpf-linker's build script sets a run path to the prefix's lib/; add nightly's own lib/
    // as well, so that `cargo clean` (which removes the prefix in target/) does not break it.
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str(&format!("-C link-arg=-Wl,-rpath,{}", sysroot_lib.display()));

    cmd::run(
        cmd::cargo()
            .env("LLVM_PREFIX", &prefix)
            .env("RUSTFLAGS", rustflags)
            .args([
                "install",
                BPF_LINKER,
                "--version",
                "^0.13",
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{major}")])
            // Replaces a copy that no longer runs.
            .arg("--force"),
    )
}

/// The one `libLLVM.so.*` in the nightly toolchain's lib directory.
fn nightly_libllvm(sysroot_lib: &Path) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(sysroot_lib)
        .with_context(|| format!("reading {}", sysroot_lib.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("libLLVM.so."))
        })
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no libLLVM.so.* in {}", sysroot_lib.display()),
        many => bail!(
            "more than one libLLVM.so.* in {}: {}",
            sysroot_lib.display(),
            many.iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The LLVM major version in a library name: `libLLVM.so.22.1-rust-1.97.0-nightly` → `22`,
/// which selects bpf-linker's feature `llvm-22`.
fn llvm_major(name: &str) -> Option<&str> {
    let major = name.strip_prefix("libLLVM.so.")?.split(['.', '-']).next()?;
    (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit())).then_some(major)
}

/// Programs the tests and the bench run, and the Debian package of each.
/// Program (or, for a package without one, a file it installs: an absolute path) → the
/// Debian package that provides it.
const TOOLS: [(&str, &str); 10] = [
    ("ip", "iproute2"),
    ("bpftool", "bpftool"),
    ("nft", "nftables"),
    ("ipset", "ipset"),
    // The bench's ipset baseline matches its set from iptables' raw table.
    ("iptables", "iptables"),
    ("tcpdump", "tcpdump"),
    // Runs the time-dependent suites with the clock years ahead.
    ("faketime", "faketime"),
    // The fleet tests start their own etcd.
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    // A browser's WebRTC stack as participants on the SFU's shared port (chromium_mux).
    ("chromium", "chromium"),
];

/// What building needs beside the toolchain: etcd-client's build compiles etcd's protos
/// with protoc, which needs the well-known types from libprotobuf-dev.
const BUILD_TOOLS: [(&str, &str); 2] = [
    ("protoc", "protobuf-compiler"),
    (
        "/usr/include/google/protobuf/descriptor.proto",
        "libprotobuf-dev",
    ),
];

/// Whether a [`TOOLS`] entry is installed: a program on the PATH, or a file that exists.
fn present(program: &str) -> bool {
    match program.starts_with('/') {
        true => std::path::Path::new(program).exists(),
        false => cmd::find_program(program).is_some(),
    }
}

fn debian_packages(tools: &[(&str, &str)]) -> Result<()> {
    let names = tools
        .iter()
        .map(|(program, _)| *program)
        .collect::<Vec<_>>()
        .join(", ");
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(program, _)| !present(program))
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        println!("ok: {names}");
        return Ok(());
    }
    let packages = missing.join(" ");
    if !is_root()? {
        bail!("setup needs root to install the Debian packages {packages} (apt-get)");
    }
    if cmd::find_program("apt-get").is_none() {
        bail!("apt-get not found: install {packages} (or your system's equivalent) yourself");
    }
    println!("installing {packages}...");
    let apt = |args: &[&str]| {
        let mut apt = cmd::command("apt-get");
        apt.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        apt
    };
    cmd::run(&mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y", "--no-install-recommends"]);
    install.args(&missing);
    cmd::run(&mut install)?;
    let still: Vec<&str> = tools
        .iter()
        .filter(|(program, _)| !present(program))
        .map(|&(program, _)| program)
        .collect();
    if !still.is_empty() {
        bail!(
            "installed {packages} but still missing: {}",
            still.join(", ")
        );
    }
    println!("ok: {names}");
    Ok(())
}

const BPFFS: &str = "/sys/fs/bpf";

fn bpffs() -> Result<()> {
    if bpffs_mounted()? {
        println!("ok: bpffs at {BPFFS}");
        return Ok(());
    }
    if !is_root()? {
        bail!("setup needs root to mount bpffs at {BPFFS} (mount)");
    }
    println!("mounting bpffs at {BPFFS}...");
    fs::create_dir_all(BPFFS).with_context(|| format!("creating {BPFFS}"))?;
    cmd::run(cmd::command("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    if !bpffs_mounted()? {
        bail!("mounted bpffs at {BPFFS} but /proc/mounts does not show it");
    }
    println!("ok: bpffs at {BPFFS}");
    Ok(())
}

/// Whether the file system visible at /sys/fs/bpf is bpffs.
fn bpffs_mounted() -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(bpffs_in(&mounts))
}

/// Whether the last mount at /sys/fs/bpf (the one that is visible) in a mount table in the
/// format of /proc/mounts is bpffs.
fn bpffs_in(mounts: &str) -> bool {
    mounts
        .lines()
        .rev()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (target == BPFFS).then_some(fstype == "bpf")
        })
        .unwrap_or(false)
}

/// The WebRTC test clients (tests/webrtc/client.py) run in this venv, with the versions of
/// aiortc and aioice pinned in tests/webrtc/requirements.txt.
fn webrtc_venv() -> Result<()> {
    let venv = target_dir().join("webrtc-venv");
    let python = venv.join("bin").join("python");
    if imports_aiortc(&python) {
        println!("ok: aiortc in {}", venv.display());
        return Ok(());
    }
    let python3 = cmd::find_program("python3")
        .context("python3 not found: the WebRTC test clients need it (and its venv module)")?;
    println!("creating {} with aiortc...", venv.display());
    cmd::run(cmd::command(python3).args(["-m", "venv"]).arg(&venv))
        .context("creating the venv (on Debian, python3-venv provides the venv module)")?;
    let requirements = workspace_root().join("tests/webrtc/requirements.txt");
    cmd::run(
        cmd::command(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    if !imports_aiortc(&python) {
        bail!(
            "installed {} into {} but its python cannot import aiortc",
            requirements.display(),
            venv.display()
        );
    }
    println!("ok: aiortc in {}", venv.display());
    Ok(())
}

fn imports_aiortc(python: &Path) -> bool {
    python.exists()
        && cmd::command(python)
            .args(["-c", "import aiortc"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// Whether we run with effective user id 0.
fn is_root() -> Result<bool> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = effective_uid(&status).context("no effective user id in /proc/self/status")?;
    Ok(euid == 0)
}

/// The effective user id in the text of /proc/self/status: the second field of `Uid:`.
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpffs_is_the_last_mount_at_sys_fs_bpf() {
        let sysfs = "sysfs /sys sysfs rw,nosuid 0 0\n";
        assert!(!bpffs_in(sysfs));
        let bpf = format!("{sysfs}bpf /sys/fs/bpf bpf rw,relatime 0 0\n");
        assert!(bpffs_in(&bpf));
        assert!(!bpffs_in(&format!("{bpf}tmpfs /sys/fs/bpf tmpfs rw 0 0\n")));
        assert!(!bpffs_in("bpf /sys/fs/bpf/x bpf rw 0 0\n"));
    }

    #[test]
    fn effective_uid_is_the_second_field() {
        let status = "Name:\tcargo\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn llvm_major_from_the_library_name() {
        assert_eq!(
            llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"),
            Some("22")
        );
        assert_eq!(llvm_major("libLLVM.so.23"), Some("23"));
        assert_eq!(llvm_major("libLLVM.so.rust"), None);
        assert_eq!(llvm_major("libLLVM-22-rust-1.97.0-nightly.so"), None);
    }

    #[test]
    fn finds_the_one_libllvm() {
        let dir = std::env::temp_dir().join(format!("xtask-libllvm-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(nightly_libllvm(&dir).is_err());
        for name in [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
        ] {
            fs::write(dir.join(name), "").unwrap();
        }
        let found = nightly_libllvm(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            found.unwrap(),
            dir.join("libLLVM.so.22.1-rust-1.97.0-nightly")
        );
    }
}
