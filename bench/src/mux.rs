//! Meetings on a shared port, through the relay program (BPF_PROG_TEST_RUN, one fixed
//! frame a run): a media packet of a learned flow from a blocked source, against the same
//! packet to a meeting that owns its port; a Binding request that refreshes its flow's
//! binding, and one that learns a new flow, against the `XDP_PASS` stub.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, ensure};
use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use geofence::{
    clock,
    expiry::Clock,
    geo::{Format, load_bytes},
    kernel::{self, Kernel, bindings},
    state::{Meeting, Rule, State},
    territory::Territory,
    ufrag::Ufrag,
};
use geofence_test_frames::stun::Message;

use crate::{
    Options,
    packets::{PAYLOAD_LEN, udp, udp_with},
    per_packet::PinDir,
    report::{Figure, Report, median},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const RELAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const BLOCKED: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
const UFRAG: &str = "benchUfrag0001";

/// A Binding request as browsers send it, USERNAME first.
fn binding_request(username: &str) -> Vec<u8> {
    Message::binding_request(username)
        .transaction(*b"benchtxn0001")
        .bytes()
}

fn meeting(session: u32, endpoints: &[&str]) -> anyhow::Result<Meeting> {
    let now = clock::now();
    let territory = Territory::parse("XA").map_err(anyhow::Error::msg)?;
    Ok(Meeting {
        session,
        created: now,
        endpoints: endpoints
            .iter()
            .map(|e| e.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        flows: Vec::new(),
        rules: vec![Rule {
            order: format!("BENCH-MUX-{session}"),
            territories: vec![territory],
            prefixes: Vec::new(),
            expires: None,
            dry_run: false,
            issued: now,
            issued_by: "geofence-bench".to_string(),
            slot: None,
        }],
        allows: Vec::new(),
    })
}

/// Writes the tick form of the learned idle time as is (0: absent).
fn set_idle_ticks(relay: &mut Kernel, ticks: u64) -> anyhow::Result<()> {
    let mut config: aya::maps::Array<_, u64> = aya::maps::Array::try_from(
        relay
            .ebpf
            .map_mut(filter_common::maps::names::MUX_CONFIG)
            .context("MUX_CONFIG")?,
    )?;
    config.set(filter_common::mux::config::LEARNED_IDLE_TICKS, ticks, 0)?;
    Ok(())
}

fn run_frame(
    object: &Ebpf,
    program: &str,
    frame: &[u8],
    repeat: u32,
    want: u32,
) -> anyhow::Result<f64> {
    let program: &Xdp = object
        .program(program)
        .with_context(|| format!("program {program}"))?
        .try_into()?;
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        })
        .context("BPF_PROG_TEST_RUN")?;
    ensure!(
        result.return_value == want,
        "XDP action {} instead of {want}",
        result.return_value
    );
    Ok(result.duration.as_nanos() as f64)
}

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let pins = PinDir(
        PathBuf::from("/sys/fs/bpf").join(format!("geofence-bench-mux-{}", std::process::id())),
    );
    let mut relay = Kernel::open(&pins.0).context("creating the bench's pinned maps")?;
    let table = load_bytes(
        Path::new("mux.csv"),
        b"10.0.0.0,10.255.255.255,XA\n",
        Format::Csv,
        None,
    )?;
    kernel::load_table(&mut relay, &table)?;
    let mut state = State::default();
    state
        .meetings
        .insert("owned".into(), meeting(1, &["udp:*:40000"])?);
    state.meetings.insert("shared".into(), meeting(2, &[])?);
    state
        .meetings
        .insert("owned-addr".into(), meeting(3, &["udp:192.0.2.1:41000"])?);
    state.mux = vec!["udp:*:7882".parse().map_err(anyhow::Error::msg)?];
    kernel::sync(&mut relay, &state, &Clock::now())?;
    let ufrag: Ufrag = UFRAG.parse().map_err(anyhow::Error::msg)?;
    bindings::bind_ufrags(&mut relay, &[(ufrag, 2)], &|s| format!("session {s}"))?;
    let program: &mut Xdp = relay
        .ebpf
        .program_mut(kernel::PROGRAM)
        .context("the relay program")?
        .try_into()?;
    program.load().context("loading the relay program")?;
    let stub = crate::per_packet::load_bench(&pins.0, &["bench_pass"])?;

    let (src, dst) = (IpAddr::V4(BLOCKED), IpAddr::V4(RELAY));
    let owned = udp(src, 5000, dst, 40000);
    let owned_addr = udp(src, 5000, dst, 41000);
    let shared = udp(src, 5000, dst, 7882);
    let request = udp_with(
        src,
        5000,
        dst,
        7882,
        &binding_request(&format!("{UFRAG}:clnt")),
    );
    // The first request learns the flow; media then follows it.
    run_frame(&relay.ebpf, kernel::PROGRAM, &request, 1, XDP_DROP)?;
    let (rounds, repeat) = if options.smoke {
        (3, 10_000)
    } else {
        (31, 200_000)
    };
    let mut times: [Vec<f64>; 6] = Default::default();
    for round in 0..rounds {
        for k in 0..6 {
            let i = (k + round) % 6;
            let ns = match i {
                0 => run_frame(&stub, "bench_pass", &owned, repeat, XDP_PASS),
                1 => run_frame(&relay.ebpf, kernel::PROGRAM, &owned, repeat, XDP_DROP),
                2 => run_frame(&relay.ebpf, kernel::PROGRAM, &shared, repeat, XDP_DROP),
                3 => run_frame(&relay.ebpf, kernel::PROGRAM, &request, repeat, XDP_DROP),
                4 => run_frame(&relay.ebpf, kernel::PROGRAM, &owned_addr, repeat, XDP_DROP),
                _ => {
                    // The idle check on the nanosecond clock, as maps without the tick
                    // setting have it: what reading the tick count saves.
                    set_idle_ticks(&mut relay, 0)?;
                    let ns = run_frame(&relay.ebpf, kernel::PROGRAM, &shared, repeat, XDP_DROP);
                    bindings::write_learned_idle(&mut relay, 0)?;
                    ns
                }
            }
            .with_context(|| format!("variant {i} of the mux bench"))?;
            times[i].push(ns);
        }
    }
    // Learning: a new flow each run, one run each (the kernel's time of one run).
    let learns = if options.smoke { 200 } else { 5_000 };
    let mut learned = Vec::new();
    for i in 0..learns {
        let frame = udp_with(
            src,
            10_000 + i as u16,
            dst,
            7882,
            &binding_request(&format!("{UFRAG}:clnt")),
        );
        learned.push(run_frame(
            &relay.ebpf,
            kernel::PROGRAM,
            &frame,
            1,
            XDP_DROP,
        )?);
    }
    let learned_runs = bindings::binding_counts(&relay)?
        .get(&2)
        .map_or(0, |c| c.flows_learned);
    ensure!(
        learned_runs > learns as usize,
        "the requests learned {learned_runs} flows"
    );
    let [
        stub_ns,
        owned_ns,
        shared_ns,
        request_ns,
        owned_addr_ns,
        shared_clock_ns,
    ] = times.map(median);
    let over = |ns: f64| ns - stub_ns;
    report.push(
        Figure::new(
            "mux: media packet of a learned flow, blocked source: cost over stub",
            over(shared_ns),
            "ns/packet",
        )
        .against(
            "the same packet to a meeting's endpoint on the relay's address",
            over(owned_addr_ns),
        )
        .goal_ratio_at_most(1.2)
        .note(format!(
            "{PAYLOAD_LEN}-byte RTP-like payload from a blocked territory, dropped both \
                 ways; each finds its meeting by one hash lookup (the flow map's 40-byte key, \
                 the endpoint map's 20-byte key); the learned flow adds the STUN check (first \
                 bytes) and the idle check (the tick count); medians of {rounds} rounds of \
                 {repeat} repeats, variants alternated; stub {stub_ns:.1} ns"
        )),
    );
    report.push(
        Figure::new(
            "mux: media packet of a learned flow, blocked source: cost over stub",
            over(shared_ns),
            "ns/packet",
        )
        .against(
            "the same packet to a meeting's wildcard endpoint",
            over(owned_ns),
        )
        .note(
            "a wildcard endpoint's session is in the port's array entry: no hash lookup, \
             which no per-flow binding can match; no goal",
        ),
    );
    report.push(
        Figure::new(
            "mux: the same media packet, idle check on the nanosecond clock",
            over(shared_clock_ns),
            "ns/packet",
        )
        .against("the idle check on the tick count", over(shared_ns))
        .note(
            "MUX_CONFIG without its tick setting, as before a sync writes it: the program \
             reads bpf_ktime_get_coarse_ns for every packet of a learned flow; no goal",
        ),
    );
    report.push(
        Figure::new(
            "mux: Binding request that refreshes its flow: cost over stub",
            over(request_ns),
            "ns/packet",
        )
        .note(format!(
            "USERNAME first of six attributes, a 14-character server ufrag: the walk, the \
                 ufrag's copy and hash lookup (64-byte key), the flow's binding refreshed in \
                 place; {:.1} ns more than a media packet of the flow",
            request_ns - shared_ns
        )),
    );
    let learn_ns = median(learned);
    report.push(
        Figure::new(
            "mux: Binding request that learns a new flow (one run)",
            learn_ns,
            "ns/packet",
        )
        .note(format!(
            "a new client port each run, {learns} runs of one repeat each (the kernel's \
                 time of a single run, so it includes a timer read the repeated figures \
                 spread over {repeat}): the LRU hash insert; no goal"
        )),
    );
    drop(stub);
    drop(relay);
    Ok(())
}
