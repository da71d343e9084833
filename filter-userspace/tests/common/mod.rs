//! What the CLI tests share: a pin dir and a state dir of one test alone, and running the
//! `geofence` binary against them.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A pin dir and state dir of this test alone, removed on drop.
pub struct Dirs {
    pub pin: PathBuf,
    pub state: PathBuf,
}

#[allow(dead_code, reason = "each test file uses a different part")]
impl Dirs {
    pub fn new(tag: &str) -> Dirs {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("gf-{tag}-{}-{n}", std::process::id());
        Dirs {
            pin: Path::new("/sys/fs/bpf").join(&id),
            state: std::env::temp_dir().join(id),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        geofence(&self.pin, &self.state, args)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "geofence {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "geofence {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A file of the state directory, or "" if it does not exist.
    pub fn read_state(&self, file: &str) -> String {
        fs::read_to_string(self.state.join(file)).unwrap_or_default()
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.state);
        let _ = fs::remove_file(self.state.with_extension("csv"));
        // bpffs allows unlinking pins and removing empty directories.
        let _ = fs::remove_dir_all(&self.pin);
    }
}

/// Runs the `geofence` binary on a pin dir and a state dir.
#[allow(dead_code, reason = "not every test file needs it")]
pub fn geofence<S: AsRef<OsStr>>(pin: &Path, state: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geofence"))
        .arg("--pin-dir")
        .arg(pin)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("running geofence")
}

/// Root and a BPF filesystem at /sys/fs/bpf, or a printed reason to skip.
#[allow(dead_code, reason = "not every test file needs it")]
pub fn root_with_bpffs(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return false;
    }
    let on_bpffs = nix::sys::statfs::statfs("/sys/fs/bpf")
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::FsType(0xcafe_4a11));
    if !on_bpffs {
        eprintln!("skipping {test}: /sys/fs/bpf is not a BPF filesystem");
        return false;
    }
    true
}

/// A pinned map's entries as `bpftool map dump -j` shows them, except `POLICIES`: its
/// policies by session as the program reaches them through `POLICY_INDEX` (key: the
/// session id), so that dumps compare what packets see, not which pool entries hold it.
#[allow(dead_code, reason = "not every test file needs it")]
pub fn map_json(pin: &Path, name: &str) -> String {
    if name == filter_common::maps::names::POLICIES {
        let policies = geofence::kernel::pinned_policies(pin).expect("reading the policies");
        let hex =
            |bytes: &[u8]| -> Vec<String> { bytes.iter().map(|b| format!("0x{b:02x}")).collect() };
        let entries: Vec<serde_json::Value> = policies
            .iter()
            .map(|(session, policy)| {
                // SAFETY: Policy is plain repr(C) integers with no padding.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (policy as *const filter_common::Policy).cast::<u8>(),
                        size_of::<filter_common::Policy>(),
                    )
                };
                serde_json::json!({ "key": hex(&session.to_ne_bytes()), "value": hex(bytes) })
            })
            .collect();
        return serde_json::Value::Array(entries).to_string();
    }
    bpftool(|c| {
        c.args(["map", "dump", "pinned"])
            .arg(pin.join(name))
            .arg("-j")
    })
}

/// What bpftool prints, run with the arguments `args` adds; fails the test, with
/// bpftool's error, if it fails.
#[allow(dead_code, reason = "not every test file needs it")]
pub fn bpftool(args: impl FnOnce(&mut Command) -> &mut Command) -> String {
    let mut command = Command::new("bpftool");
    args(&mut command);
    let out = command.output().expect("running bpftool");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
