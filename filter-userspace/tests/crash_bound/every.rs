//! Kills during every command that changes the kernel. Each [`Change`] starts from a known
//! state; the old and the new state's answers to its probe frames are taken from the
//! kernel once, the command run whole in between. Then, over and over: the command is
//! started and killed at a random point, the probes (explain probes through
//! `BPF_PROG_TEST_RUN`, before any other geofence command runs) must all answer as the old
//! state or all as the new, the next command must bring the kernel to what the state file
//! says, and the change is undone for the next kill.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use geofence::{
    endpoint::Proto,
    expiry::Clock,
    explain::{Question, frame},
    kernel::{
        self,
        probe::{KernelAnswer, ProbeTarget},
    },
    state::State,
};
use geofence_test_frames::{
    Packet,
    stun::{Message, attr},
};

use crate::{XorShift, common::Dirs};

/// How a change is brought about and told apart.
pub struct Change {
    pub name: &'static str,
    /// Commands that lead from the fixture to the change's starting state.
    pub before: Vec<Vec<String>>,
    /// The command that makes the change, killed part way.
    pub args: Vec<String>,
    /// Commands that undo a whole run of `args`.
    pub undo: Vec<Vec<String>>,
    /// Commands that lead from the starting state back to the fixture.
    pub after: Vec<Vec<String>>,
    /// Whether the state file records the change; `None` for runtime bindings, which it
    /// never holds: the command is run again whole, as the SFU would.
    pub recorded: Option<fn(&State) -> bool>,
    /// The frames asked after each kill; `round` varies what must differ between rounds
    /// (a STUN request's source port, so that no flow learned before answers).
    pub probes: Box<dyn Fn(u32) -> Vec<Vec<u8>>>,
}

/// What one change's kills came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// How long a whole run of the command took.
    pub full: Duration,
    pub kills: u32,
    /// Killed before it had finished.
    pub killed: u32,
    /// Left the maps between two states: a generation differed from the state file.
    pub mid_change: u32,
    pub as_old: u32,
    pub as_new: u32,
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A UDP or TCP explain-probe frame.
pub fn frame(proto: Proto, src: &str, dst: &str) -> Vec<u8> {
    let q = Question::parse(proto, src, dst).expect("a probe question");
    frame::build(&q)
}

/// A STUN Binding request (IPv4, UDP) whose USERNAME is `server:client`, with the IPv4
/// fields of an explain probe: Don't Fragment, identification 0, no UDP checksum.
pub fn stun_frame(src: SocketAddr, dst: SocketAddr, server_ufrag: &str) -> Vec<u8> {
    let username = format!("{server_ufrag}:client").into_bytes();
    let stun = Message::request_with(vec![(attr::USERNAME, username)]).transaction([7; 12]);
    Packet::udp(src, dst)
        .dont_fragment()
        .identification(0)
        .no_udp_checksum()
        .payload(&stun.bytes())
        .build()
        .bytes
}

/// `n` addresses from `first`, as `/32` prefixes.
pub fn hosts(first: Ipv4Addr, n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}/32", Ipv4Addr::from(u32::from(first) + i)))
        .collect()
}

fn run_all(d: &Dirs, commands: &[Vec<String>]) {
    for args in commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        d.ok(&args);
    }
}

fn answers(target: &ProbeTarget, frames: &[Vec<u8>]) -> Vec<KernelAnswer> {
    frames
        .iter()
        .map(|f| kernel::probe::ask(target, f).expect("probe"))
        .collect()
}

/// Whether a generation of the session maps differs from the state file: the kill left a
/// sync part way.
fn mid_change(d: &Dirs, kernel: &mut kernel::Kernel) -> bool {
    let state = State::load(&d.state).expect("state");
    let [in_use, idle] = kernel::differences(kernel, &state, &Clock::now()).expect("comparing");
    in_use != kernel::SyncReport::default() || idle != kernel::SyncReport::default()
}

/// Both generations hold exactly what the state file says.
fn matches_state(d: &Dirs, kernel: &mut kernel::Kernel, when: &str) {
    let state =
        State::load(&d.state).unwrap_or_else(|e| panic!("{when}: state file unreadable: {e:#}"));
    let report = kernel::sync(kernel, &state, &Clock::now()).expect("syncing");
    assert_eq!(
        (report.written, report.removed),
        (0, 0),
        "{when}: kernel maps differed from the state file"
    );
}

/// Runs `kills` kills of `change`; panics with the probes' answers on a mix.
pub fn exercise(
    d: &Dirs,
    kernel: &mut kernel::Kernel,
    target: &ProbeTarget,
    change: &Change,
    kills: u32,
    rng: &mut XorShift,
) -> Outcome {
    run_all(d, &change.before);
    matches_state(d, kernel, &format!("{}: the starting state", change.name));
    let mut round = 0;
    let probe = |round: &mut u32| {
        *round += 1;
        answers(target, &(change.probes)(*round))
    };
    let old = probe(&mut round);
    let args: Vec<&str> = change.args.iter().map(String::as_str).collect();
    let start = Instant::now();
    d.ok(&args);
    let full = start.elapsed();
    let new = probe(&mut round);
    assert_ne!(
        old, new,
        "{}: the probes do not tell the old state from the new",
        change.name
    );
    run_all(d, &change.undo);
    assert_eq!(probe(&mut round), old, "{}: undo", change.name);
    let mut outcome = Outcome {
        full,
        kills,
        ..Outcome::default()
    };
    let span = full.as_micros() as u64 * 5 / 4 + 1;
    for i in 0..kills {
        let delay = Duration::from_micros(rng.next() % span);
        if !crate::kill_after(d, &args, delay) {
            outcome.killed += 1;
        }
        let got = probe(&mut round);
        if got == old {
            outcome.as_old += 1;
        } else if got == new {
            outcome.as_new += 1;
        } else {
            panic!(
                "{}: kill {i} after {delay:?} left a mix of two states:\n  got {got:?}\n  old \
                 {old:?}\n  new {new:?}",
                change.name
            );
        }
        if mid_change(d, kernel) {
            outcome.mid_change += 1;
        }
        // The next command: the change again, unless the state file has it.
        let has = change
            .recorded
            .is_some_and(|f| f(&State::load(&d.state).expect("state")));
        if !has {
            d.ok(&args);
        }
        matches_state(d, kernel, &format!("{}: after kill {i}", change.name));
        assert_eq!(
            probe(&mut round),
            new,
            "{}: kill {i}: the next command",
            change.name
        );
        run_all(d, &change.undo);
    }
    run_all(d, &change.after);
    outcome
}
