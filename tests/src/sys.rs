//! Process-level helpers: root check, running commands, unique names, bpffs, stale cleanup.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

/// Prefix of every namespace, pin directory and temp directory these helpers create:
/// `gf<pid>x<n>...` for namespaces, `gf-e2e-<pid>-<n>` for directories.
pub const NS_PREFIX: &str = "gf";
pub const DIR_PREFIX: &str = "gf-e2e-";

/// True when running as root. Otherwise prints why `test` is skipped and returns false.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: needs root (network namespaces, XDP and bpffs)");
    false
}

/// A short tag unique in this process and across concurrent processes: `<pid>x<n>`.
pub fn unique_tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command, returns its stdout; the error names the command and carries stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure `/sys/fs/bpf` is a bpffs mount, mounting it if needed. A file lock keeps two
/// test processes from stacking two mounts (which would hide each other's pins).
pub fn ensure_bpffs() -> Result<()> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let lock = fs::File::create("/run/geofence-tests-bpffs.lock").context("creating lock file")?;
    // SAFETY: flock on an fd we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("flock: {}", std::io::Error::last_os_error());
    }
    if bpffs_mounted()? {
        return Ok(());
    }
    run("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"]).context("mounting bpffs on /sys/fs/bpf")?;
    Ok(())
}

fn bpffs_mounted() -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == "/sys/fs/bpf" && f[2] == "bpf"
    }))
}

/// Removes a directory tree: files first, then directories (works on bpffs).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    for entry in fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    fs::remove_dir(path)
}

/// Removes namespaces, pin directories and temp directories left behind by test processes
/// that no longer exist (killed before their Drop guards ran). Only our own name patterns.
pub fn reap_stale() {
    let dead = |pid: &str| !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if rest[pid.len()..].starts_with('x') && dead(&pid) {
                let _ = run("ip", &["netns", "del", &name]);
            }
        }
    }
    for dir in [Path::new("/sys/fs/bpf"), &std::env::temp_dir()] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
                continue;
            };
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if rest[pid.len()..].starts_with('-') && dead(&pid) {
                let _ = remove_tree(&e.path());
            }
        }
    }
}
