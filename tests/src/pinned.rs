//! geofence run in process on one test's own pinned maps: a pin directory and a state
//! directory ([`Dirs`]), the CLI run against them through `geofence::cli::run`, and the
//! XDP program loaded against the pinned maps ([`Program`]) for BPF_PROG_TEST_RUN.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use clap::Parser as _;
use geofence::kernel::{self, Kernel};
use geofence::state::State;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A pin directory and a state directory of one test, removed on drop.
pub struct Dirs {
    pub pin: PathBuf,
    pub state: PathBuf,
}

impl Dirs {
    /// Directories named after `tag`, the process and a counter, so tests run in parallel.
    pub fn new(tag: &str) -> Dirs {
        let id = format!(
            "gf-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let state = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&state).expect("state dir");
        Dirs {
            pin: Path::new("/sys/fs/bpf").join(id),
            state,
        }
    }

    /// Runs `geofence ARGS` in process; it must succeed.
    pub fn geofence(&self, args: &[&str]) {
        let mut argv = vec!["geofence", "--pin-dir"];
        argv.push(self.pin.to_str().expect("utf-8 pin dir"));
        argv.push("--state-dir");
        argv.push(self.state.to_str().expect("utf-8 state dir"));
        argv.extend_from_slice(args);
        let cli = geofence::cli::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("geofence {args:?}: {e}"));
        if let Err(e) = geofence::cli::run(cli) {
            panic!("geofence {args:?} failed: {e:#}");
        }
    }

    /// The session id of `meeting`.
    pub fn session(&self, meeting: &str) -> u32 {
        State::load(&self.state).expect("state").meetings[meeting].session
    }

    /// The counter slot of `meeting`'s rule under `order`.
    pub fn slot(&self, meeting: &str, order: &str) -> u8 {
        let state = State::load(&self.state).expect("state");
        let rule = state.meetings[meeting]
            .rules
            .iter()
            .find(|r| r.order == order)
            .unwrap_or_else(|| panic!("no rule under {order}"));
        rule.slot.expect("a territory rule holds a slot")
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
        if let Ok(entries) = std::fs::read_dir(&self.pin) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.pin);
    }
}

/// The program loaded against a test's maps, for BPF_PROG_TEST_RUN.
pub struct Program(pub Kernel);

impl Program {
    /// Loads the program against the maps pinned under `pin`.
    pub fn load(pin: &Path) -> Program {
        Program::new(Kernel::open(pin).expect("opening the pinned maps"))
    }

    /// Loads the program of `kernel`, whose maps a test has filled.
    pub fn new(mut kernel: Kernel) -> Program {
        let prog: &mut Xdp = kernel
            .ebpf
            .program_mut(kernel::PROGRAM)
            .expect("the geofence program")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("loading the XDP program");
        Program(kernel)
    }

    pub fn xdp(&self) -> &Xdp {
        self.0
            .ebpf
            .program(kernel::PROGRAM)
            .expect("the geofence program")
            .try_into()
            .expect("an XDP program")
    }

    /// Runs `frame` once; the XDP action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        let run = self.xdp().test_run(TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        });
        run.expect("BPF_PROG_TEST_RUN").return_value
    }
}
