//! A rule's distinct-source sketch while its packets run on two CPUs at once: two threads,
//! each pinned to its CPU, send frames from overlapping sets of sources through
//! BPF_PROG_TEST_RUN (which runs the program on the calling CPU: for XDP the kernel
//! refuses `BPF_F_TEST_RUN_ON_CPU` with EINVAL and ignores `cpu` without it), while the
//! main thread reads the estimate. Each CPU keeps its own registers, so the merged sketch
//! must be exactly the sketch of the union at the end, and never above it on the way.
//!
//! Needs root (BPF and bpffs) and two online CPUs; skipped, saying why, otherwise.

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

use filter_common::{accounting::SourceSketch, maps::v4_mapped};
use geofence::kernel::{self, test_run::run_xdp};
use geofence::state::State;
use geofence_test_frames::Packet;
use geofence_tests::pinned::{Dirs, Program};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

const XDP_DROP: u32 = 1;
const RELAY: &str = "100.64.0.1:40000";
/// Sources per CPU; the two sets share `OVERLAP` of them.
const PER_CPU: u32 = 8_000;
const OVERLAP: u32 = 2_000;

/// Address `i` of 10.0.0.0/8, territory XA in this test's table.
fn address(i: u32) -> [u8; 4] {
    let [_, b, c, d] = i.to_be_bytes();
    [10, b, c, d]
}

fn source(i: u32) -> SocketAddr {
    SocketAddr::from((address(i), 50_000))
}

fn sketch_of(range: std::ops::Range<u32>) -> SourceSketch {
    let mut sketch = SourceSketch::EMPTY;
    for i in range {
        sketch.add(&v4_mapped(address(i)));
    }
    sketch
}

fn usable(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root (BPF_PROG_TEST_RUN and bpffs)");
        return false;
    }
    let online = std::thread::available_parallelism().map_or(1, usize::from);
    if online < 2 {
        eprintln!("skipping {test}: needs two online CPUs, this machine has {online}");
        return false;
    }
    geofence_tests::sys::ensure_bpffs().expect("bpffs on /sys/fs/bpf");
    true
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("a CPU number CpuSet holds");
    sched_setaffinity(Pid::from_raw(0), &set)
        .unwrap_or_else(|e| panic!("pinning to CPU {cpu}: {e}"));
}

#[test]
fn sketch_is_exact_with_packets_on_two_cpus_at_once() {
    if !usable("sketch_is_exact_with_packets_on_two_cpus_at_once") {
        return;
    }
    let dirs = Dirs::new("sketch-cpus");
    let csv = dirs.state.join("geo.csv");
    std::fs::write(&csv, "10.0.0.0,10.255.255.255,XA\n").expect("csv");
    dirs.geofence(&["geo", "load", csv.to_str().expect("utf-8")]);
    dirs.geofence(&["meeting", "add", "m", "--endpoint", "udp:*:40000"]);
    dirs.geofence(&["block", "m", "--territory", "XA", "--order", "ORD-CPUS"]);
    let state = State::load(&dirs.state).expect("state");
    let session = state.meetings["m"].session;
    let slot = state.meetings["m"].rules[0].slot.expect("a slot");

    let program = Program::load(&dirs.pin);
    let kernel = &program.0;
    let fd = program.xdp().fd().expect("a loaded program").as_fd();

    let relay: SocketAddr = RELAY.parse().expect("relay");
    let ranges = [0..PER_CPU, PER_CPU - OVERLAP..2 * PER_CPU - OVERLAP];
    let frames: Vec<Vec<Vec<u8>>> = ranges
        .iter()
        .map(|r| {
            r.clone()
                .map(|i| Packet::udp(source(i), relay).build().bytes)
                .collect()
        })
        .collect();
    let per_cpu = ranges.clone().map(sketch_of);
    let union = sketch_of(0..2 * PER_CPU - OVERLAP);

    let start = Barrier::new(3);
    let running = AtomicUsize::new(2);
    let reads = std::thread::scope(|scope| {
        for (cpu, frames) in frames.iter().enumerate() {
            let (start, running) = (&start, &running);
            scope.spawn(move || {
                pin_to(cpu);
                start.wait();
                for frame in frames {
                    let run = run_xdp(fd, &[], frame).expect("BPF_PROG_TEST_RUN");
                    assert_eq!(
                        run.action, XDP_DROP,
                        "a blocked source's frame on CPU {cpu}"
                    );
                }
                assert_eq!(
                    nix::sched::sched_getcpu().ok(),
                    Some(cpu),
                    "still on CPU {cpu}"
                );
                running.fetch_sub(1, Ordering::Release);
            });
        }
        start.wait();
        // While both CPUs send: the merged registers only grow, and never past the union's.
        let mut reads = 0u32;
        let mut last = SourceSketch::EMPTY;
        while running.load(Ordering::Acquire) > 0 {
            let counts = kernel::read_rule_counts(kernel, session, slot).expect("rule counts");
            for (r, ((now, before), most)) in counts
                .registers
                .iter()
                .zip(&last.registers)
                .zip(&union.registers)
                .enumerate()
            {
                assert!(now >= before, "register {r} fell from {before} to {now}");
                assert!(
                    now <= most,
                    "register {r} is {now}, above the union's {most}"
                );
            }
            last.registers = counts.registers;
            reads += 1;
        }
        reads
    });

    let counts = kernel::read_rule_counts(kernel, session, slot).expect("rule counts");
    let truth = u64::from(2 * PER_CPU - OVERLAP);
    eprintln!(
        "{reads} reads while the CPUs sent; {} packets, estimated {} of {truth} sources",
        counts.packets, counts.distinct_sources
    );
    assert!(reads > 0, "the estimate was read while frames ran");
    assert_eq!(counts.packets, u64::from(2 * PER_CPU));
    assert_eq!(
        counts.registers, union.registers,
        "the merged registers are exactly the sketch of every source"
    );
    assert_eq!(
        counts.distinct_sources,
        geofence::sketch::estimate_count(&union.registers)
    );
    let error = counts.distinct_sources.abs_diff(truth) as f64 / truth as f64;
    assert!(
        error <= 3.0 * geofence::sketch::RELATIVE_ERROR,
        "{truth} sources estimated as {}",
        counts.distinct_sources
    );
    let sketches = kernel::read_rule_sketches(kernel, session, slot).expect("per-CPU sketches");
    assert_eq!(sketches[0], per_cpu[0], "CPU 0 holds the sources it saw");
    assert_eq!(sketches[1], per_cpu[1], "CPU 1 holds the sources it saw");
    assert!(
        sketches[2..].iter().all(|s| *s == SourceSketch::EMPTY),
        "no other CPU ran a frame"
    );
}
