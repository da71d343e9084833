//! Ports meetings share: the meeting of a STUN Binding request's server ufrag, learned in
//! the kernel before the request is decided, then the flow's binding for every later
//! packet. Each step runs one frame through the program (BPF_PROG_TEST_RUN) and checks
//! its XDP action, the one mux event or pass reason it must count, and the binding it
//! leaves in `FLOWS`.
//!
//! ```text
//! territories  192.0.2.0/24 XA   198.51.100.0/24 XB
//! mux ports    udp:*:7882   udp:100.64.0.1:10000
//! meeting (session)  endpoints        ufrags                         rules
//! A (1)              none             ufragA1, a × 64                block XA
//! B (2)              none             ufragB1, abcd                  none
//! O (3)              udp:*:40000      (a meeting that owns its port) block XA
//! ```
//!
//! Needs root (BPF and bpffs); skipped otherwise.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::{
    maps::{Array, HashMap, PerCpuArray},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use filter_common::{
    FlowKey, PassReason,
    maps::names,
    mux::{FlowBinding, MuxEvent, config, origin},
};
use geofence::{
    endpoint::kernel_address,
    expiry::Clock,
    geo::{Format, load_files},
    kernel::{self, Kernel, bindings},
    state::{GeoRecord, Meeting, Rule, State},
    territory::Territory,
    ufrag::Ufrag,
};
use geofence_test_frames::{
    Packet,
    stun::{self, Message, attr},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const GEO_CSV: &str = "192.0.2.0,192.0.2.255,XA\n198.51.100.0,198.51.100.255,XB\n";
const MUX: &str = "100.64.0.1:7882";
const MUX_ON_ADDR: &str = "100.64.0.1:10000";

static NEXT: AtomicU32 = AtomicU32::new(0);

struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = geofence_tests::sys::remove_tree(&self.0);
    }
}

struct Relay {
    kernel: Kernel,
    pins: PinDir,
    /// The fixture's state, saved for the CLI (`explain`).
    state_dir: PinDir,
    _csv: tempfile_path::TempPath,
}

mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn meeting(session: u32, endpoints: &[&str], blocked: &[&str]) -> Meeting {
    let now = geofence::clock::now();
    let rules = match blocked {
        [] => vec![],
        codes => vec![Rule {
            order: "mux-table".into(),
            territories: codes
                .iter()
                .map(|c| Territory::parse(c).expect("code"))
                .collect(),
            prefixes: vec![],
            expires: None,
            dry_run: false,
            issued: now,
            issued_by: "mux.rs".into(),
            slot: None,
        }],
    };
    Meeting {
        session,
        created: now,
        endpoints: endpoints
            .iter()
            .map(|e| e.parse().expect("endpoint"))
            .collect(),
        flows: vec![],
        rules,
        allows: vec![],
    }
}

fn ufrag(text: &str) -> Ufrag {
    text.parse().expect("fixture ufrag")
}

impl Relay {
    fn new(test: &str) -> Option<Relay> {
        if !geofence_tests::require_root(test) {
            return None;
        }
        geofence_tests::sys::ensure_bpffs().expect("bpffs on /sys/fs/bpf");
        let tag = format!(
            "gf-mux-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let pins = PinDir(PathBuf::from("/sys/fs/bpf").join(&tag));
        let mut kernel = Kernel::open(&pins.0).expect("loading the geofence object");
        let csv = tempfile_path::TempPath(std::env::temp_dir().join(format!("{tag}.csv")));
        std::fs::write(&csv.0, GEO_CSV).expect("writing the geo CSV");
        let table = load_files(std::slice::from_ref(&csv.0), Format::Csv, None).expect("geo");
        let loaded = kernel::load_table(&mut kernel, &table).expect("loading the territory table");
        let mut state = State {
            version: 1,
            ..State::default()
        };
        state.geo = Some(GeoRecord {
            files: vec![csv.0.clone()],
            format: "csv".into(),
            territory: None,
            loaded: geofence::clock::now(),
            prefixes_v4: loaded.prefixes_v4,
            prefixes_v6: loaded.prefixes_v6,
            territories: 2,
            generation: loaded.generation,
            sources: Vec::new(),
            locate_by: None,
        });
        state.meetings.insert("A".into(), meeting(1, &[], &["XA"]));
        state.meetings.insert("B".into(), meeting(2, &[], &[]));
        state
            .meetings
            .insert("O".into(), meeting(3, &["udp:*:40000"], &["XA"]));
        state.mux = vec![
            "udp:*:7882".parse().expect("mux"),
            "udp:100.64.0.1:10000".parse().expect("mux"),
        ];
        kernel::sync(&mut kernel, &state, &Clock::now()).expect("syncing the fixture");
        let state_dir = PinDir(std::env::temp_dir().join(&tag));
        std::fs::create_dir_all(&state_dir.0).expect("the state dir");
        state
            .save(&state_dir.0)
            .expect("saving the fixture's state");
        let names = |s: u32| format!("session {s}");
        let long = "a".repeat(64);
        let batch = [
            (ufrag("ufragA1"), 1),
            (ufrag(&long), 1),
            (ufrag("ufragB1"), 2),
            (ufrag("abcd"), 2),
        ];
        bindings::bind_ufrags(&mut kernel, &batch, &names).expect("registering the ufrags");
        let prog: &mut Xdp = kernel
            .ebpf
            .program_mut(kernel::PROGRAM)
            .expect("the program")
            .try_into()
            .expect("XDP");
        prog.load()
            .expect("loading the XDP program into the kernel");
        Some(Relay {
            kernel,
            pins,
            state_dir,
            _csv: csv,
        })
    }

    fn run(&self, bytes: &[u8]) -> u32 {
        let prog: &Xdp = self
            .kernel
            .ebpf
            .program(kernel::PROGRAM)
            .expect("the program")
            .try_into()
            .expect("XDP");
        prog.test_run(TestRunOptions {
            data_in: Some(bytes),
            ..TestRunOptions::new()
        })
        .expect("test run")
        .return_value
    }

    /// `geofence explain --json` for a UDP packet: the JSON, and whether it exited 0.
    fn explain(&self, src: &str, dst: &str) -> (serde_json::Value, bool) {
        self.explain_with(src, dst, &[])
    }

    /// `explain` with more arguments (`--stun-ufrag U`).
    fn explain_with(&self, src: &str, dst: &str, more: &[&str]) -> (serde_json::Value, bool) {
        let bin = geofence_tests::cli::geofence_bin().expect("the geofence binary");
        let out = std::process::Command::new(bin)
            .arg("--pin-dir")
            .arg(&self.pins.0)
            .arg("--state-dir")
            .arg(&self.state_dir.0)
            .args([
                "explain", "--proto", "udp", "--src", src, "--dst", dst, "--json",
            ])
            .args(more)
            .output()
            .expect("running geofence explain");
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "explain printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (json, out.status.success())
    }

    /// How long a learned binding applies without a Binding request (0: the default).
    fn set_idle(&mut self, ns: u64) {
        bindings::write_learned_idle(&mut self.kernel, ns).expect("writing MUX_CONFIG");
    }

    /// Leaves the idle time in nanoseconds only, as maps no sync has completed hold it.
    fn clear_idle_ticks(&mut self) {
        let map = self
            .kernel
            .ebpf
            .map_mut(names::MUX_CONFIG)
            .expect("MUX_CONFIG");
        let mut config: Array<_, u64> = Array::try_from(map).expect("array");
        config
            .set(config::LEARNED_IDLE_TICKS, 0, 0)
            .expect("writing MUX_CONFIG");
    }

    fn events(&self) -> Vec<u64> {
        let map = self.kernel.ebpf.map(names::MUX_EVENTS).expect("MUX_EVENTS");
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(map).expect("per-CPU array");
        (0..MuxEvent::COUNT)
            .map(|i| map.get(&i, 0).expect("reading MUX_EVENTS").iter().sum())
            .collect()
    }

    fn unbound(&self) -> u64 {
        let map = self
            .kernel
            .ebpf
            .map(names::PASS_REASONS)
            .expect("PASS_REASONS");
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(map).expect("per-CPU array");
        let reason = PassReason::Unbound as u32;
        map.get(&reason, 0)
            .expect("reading PASS_REASONS")
            .iter()
            .sum()
    }

    fn binding(&self, src: &str, dst: &str) -> Option<FlowBinding> {
        let map = self.kernel.ebpf.map(names::FLOWS).expect("FLOWS");
        let flows: HashMap<_, FlowKey, FlowBinding> = HashMap::try_from(map).expect("hash");
        flows.get(&flow(src, dst), 0).ok()
    }

    /// Sends `step`'s payload and checks the action and what it counted: one mux event (or
    /// none) and whether it passed as unbound.
    #[track_caller]
    fn check(&self, step: Step) {
        let (events, passes) = (self.events(), self.unbound());
        let frame = Packet::udp(sock(step.src), sock(step.dst))
            .payload(&step.payload)
            .build();
        let got = self.run(&frame.bytes);
        let name = |a| if a == XDP_DROP { "DROP" } else { "PASS" };
        let what = step.what;
        assert_eq!(name(got), name(step.action), "{what}: action");
        let moved: Vec<(&str, u64)> = self
            .events()
            .iter()
            .zip(&events)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (MuxEvent::ALL[i].name(), a - b))
            .collect();
        let mut want: Vec<MuxEvent> = step.event.into_iter().chain(step.also).collect();
        want.sort_by_key(|e| *e as u32);
        let want: Vec<(&str, u64)> = want.iter().map(|e| (e.name(), 1)).collect();
        assert_eq!(moved, want, "{what}: mux events");
        let unbound = self.unbound() - passes;
        assert_eq!(unbound, u64::from(step.unbound), "{what}: unbound passes");
    }
}

/// One frame and what it must do.
struct Step<'a> {
    what: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: Vec<u8>,
    action: u32,
    event: Option<MuxEvent>,
    /// A second event the frame counts.
    also: Option<MuxEvent>,
    unbound: bool,
}

/// A frame that is dropped, counting `event`.
fn dropped<'a>(
    what: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: &[u8],
    event: Option<MuxEvent>,
) -> Step<'a> {
    Step {
        what,
        src,
        dst,
        payload: payload.to_vec(),
        action: XDP_DROP,
        event,
        also: None,
        unbound: false,
    }
}

/// A frame that passes classified (by a meeting without a rule against it).
fn passed<'a>(
    what: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: &[u8],
    event: Option<MuxEvent>,
) -> Step<'a> {
    Step {
        action: XDP_PASS,
        ..dropped(what, src, dst, payload, event)
    }
}

/// A frame that passes unbound.
fn unbound<'a>(
    what: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: &[u8],
    event: Option<MuxEvent>,
) -> Step<'a> {
    Step {
        unbound: true,
        ..passed(what, src, dst, payload, event)
    }
}

fn sock(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn flow(src: &str, dst: &str) -> FlowKey {
    let (src, dst) = (sock(src), sock(dst));
    FlowKey {
        proto: filter_common::proto::UDP,
        _pad: [0; 3],
        src_port: src.port(),
        dst_port: dst.port(),
        src: kernel_address(src.ip()),
        dst: kernel_address(dst.ip()),
    }
}

/// The first bytes of an RTP packet and of a DTLS record, the STUN cookie where STUN has
/// it: neither is STUN.
const RTP: &[u8] = &[
    0x80, 0x6f, 0, 1, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
];
const DTLS: &[u8] = &[
    0x16, 0xfe, 0xfd, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn request(username: &str) -> Vec<u8> {
    Message::binding_request(username).bytes()
}

const LEARNED: Option<MuxEvent> = Some(MuxEvent::Learned);

#[test]
fn the_first_binding_request_binds_its_flow_and_is_decided_by_that_meeting() {
    let Some(relay) = Relay::new("the_first_binding_request_binds_its_flow") else {
        return;
    };
    let (xa, xb, b_xa) = (
        "192.0.2.10:50000",
        "198.51.100.10:50000",
        "192.0.2.20:50000",
    );
    // A@XA: bound to A by its first request, which is already dropped; so is its media.
    relay.check(dropped(
        "A@XA request",
        xa,
        MUX,
        &request("ufragA1:cl1"),
        LEARNED,
    ));
    let bound = relay.binding(xa, MUX).expect("A@XA's flow is bound");
    assert_eq!((bound.session, bound.origin), (1, origin::LEARNED));
    assert_eq!(bound.ufrag_id, ufrag("ufragA1").id());
    relay.check(dropped("A@XA media", xa, MUX, RTP, None));
    let refreshed = Some(MuxEvent::Refreshed);
    relay.check(dropped(
        "A@XA consent check",
        xa,
        MUX,
        &request("ufragA1:cl1"),
        refreshed,
    ));
    // A@XB and B@XA pass: the rule is A's and XA's only.
    relay.check(passed(
        "A@XB request",
        xb,
        MUX,
        &request("ufragA1:cl2"),
        LEARNED,
    ));
    relay.check(passed("A@XB media", xb, MUX, RTP, None));
    relay.check(passed(
        "B@XA request",
        b_xa,
        MUX,
        &request("ufragB1:cl3"),
        LEARNED,
    ));
    relay.check(passed("B@XA DTLS", b_xa, MUX, DTLS, None));
    assert_eq!(relay.binding(b_xa, MUX).map(|b| b.session), Some(2));
    // A flow nobody bound passes, counted as unbound, STUN-looking or not.
    relay.check(unbound("unbound media", "198.51.100.30:1", MUX, RTP, None));
    relay.check(unbound("unbound DTLS", "198.51.100.30:1", MUX, DTLS, None));
    // From a territory some meeting blocks, an unbound packet is dropped: a binding
    // evicted from the flow table, or idle, is no way around the rule.
    relay.check(blocked(
        "unbound media from XA",
        "192.0.2.30:1",
        MUX,
        RTP,
        None,
    ));
    // ICE restart: the newest ufrag on a flow wins.
    relay.check(passed(
        "A@XA restarts into B",
        xa,
        MUX,
        &request("abcd:cl9"),
        LEARNED,
    ));
    assert_eq!(relay.binding(xa, MUX).map(|b| b.session), Some(2));
    relay.check(dropped(
        "and back into A",
        xa,
        MUX,
        &request("ufragA1:cl1"),
        LEARNED,
    ));
}

#[test]
fn binding_requests_are_read_attribute_by_attribute() {
    let Some(relay) = Relay::new("binding_requests_are_read_attribute_by_attribute") else {
        return;
    };
    let sources: Vec<String> = (1000..1040).map(|p| format!("192.0.2.40:{p}")).collect();
    let mut next = sources.iter().map(String::as_str);
    let mut src = move || next.next().expect("enough sources");
    // Sources whose packets, unbound, pass: XB, which no rule blocks.
    let others: Vec<String> = (1000..1040).map(|p| format!("198.51.100.40:{p}")).collect();
    let mut more = others.iter().map(String::as_str);
    let mut xb = move || more.next().expect("enough sources");
    let username = |u: &str| (attr::USERNAME, u.as_bytes().to_vec());
    let malformed = Some(MuxEvent::StunMalformed);
    let no_username = Some(MuxEvent::NoUsername);
    // USERNAME last, after the usual attributes.
    let mut last = Message::request_with(vec![])
        .with_usual_attributes()
        .attributes;
    last.push(username("ufragA1:x"));
    let last = Message::request_with(last).bytes();
    relay.check(dropped("USERNAME last", src(), MUX, &last, LEARNED));
    // Values of 1, 5 and 9 bytes, each padded, before a USERNAME of odd length.
    let odd = vec![
        (attr::GOOG_NETWORK_INFO, vec![1]),
        (0xc058, vec![1, 2, 3, 4, 5]),
        (0xc059, vec![9; 9]),
        username("ufragA1:abc"),
    ];
    let odd = Message::request_with(odd).bytes();
    relay.check(dropped(
        "odd lengths and padding",
        src(),
        MUX,
        &odd,
        LEARNED,
    ));
    // The walk's bound: USERNAME as the last attribute it reads is found, one later is not.
    let at = |n: usize| {
        let mut attrs: Vec<_> = (0..n).map(|i| (0xc100 + i as u16, vec![7; 4])).collect();
        attrs.push(username("ufragA1:x"));
        Message::request_with(attrs).bytes()
    };
    let bound = filter_common::mux::stun::MAX_ATTRIBUTES;
    relay.check(dropped(
        "USERNAME at the walk's bound",
        src(),
        MUX,
        &at(bound - 1),
        LEARNED,
    ));
    relay.check(unbound(
        "USERNAME past the bound",
        xb(),
        MUX,
        &at(bound),
        no_username,
    ));
    let none = Message::request_with(vec![])
        .with_usual_attributes()
        .bytes();
    relay.check(unbound("no USERNAME", xb(), MUX, &none, no_username));
    // Ufrags of 4 and 64 characters; 65 is more than the program reads.
    relay.check(passed(
        "4 characters",
        "198.51.100.41:1",
        MUX,
        &request("abcd:x"),
        LEARNED,
    ));
    let long = "a".repeat(64);
    let ufrag_64 = request(&format!("{long}:x"));
    relay.check(dropped("64 characters", src(), MUX, &ufrag_64, LEARNED));
    let ufrag_65 = request(&format!("{long}a:x"));
    let too_long = Some(MuxEvent::UfragTooLong);
    relay.check(unbound("65 characters", xb(), MUX, &ufrag_65, too_long));
    let unknown = Some(MuxEvent::UnknownUfrag);
    relay.check(unbound(
        "unknown ufrag",
        xb(),
        MUX,
        &request("nobodys1:x"),
        unknown,
    ));
    relay.check(unbound("no ':'", xb(), MUX, &request("ufragA1"), malformed));
    relay.check(unbound(
        "empty server ufrag",
        xb(),
        MUX,
        &request(":x"),
        malformed,
    ));
    // The header claims more than the datagram holds; an attribute overruns the message;
    // a length that is not a multiple of 4.
    let mut cut = request("ufragA1:x");
    cut.truncate(cut.len() - 8);
    relay.check(unbound("cut short", xb(), MUX, &cut, malformed));
    let mut overrun = request("ufragA1:x");
    overrun[22..24].copy_from_slice(&200u16.to_be_bytes());
    relay.check(unbound(
        "attribute overruns",
        xb(),
        MUX,
        &overrun,
        malformed,
    ));
    let mut odd_len = request("ufragA1:x");
    let claimed = (odd_len.len() - 20 - 2) as u16;
    odd_len[2..4].copy_from_slice(&claimed.to_be_bytes());
    relay.check(unbound(
        "length not a multiple of 4",
        xb(),
        MUX,
        &odd_len,
        malformed,
    ));
    // Binding success responses and indications bind nothing.
    for (what, kind) in [
        ("Binding success", stun::BINDING_SUCCESS),
        ("Binding indication", stun::BINDING_INDICATION),
    ] {
        let message = Message::binding_request("ufragA1:x").kind(kind).bytes();
        relay.check(unbound(what, xb(), MUX, &message, None));
    }
    // The mux port on one address learns there, and not on another local address.
    let s = src();
    let to_b = request("ufragA1:x");
    relay.check(dropped(
        "mux port on its address",
        s,
        MUX_ON_ADDR,
        &to_b,
        LEARNED,
    ));
    let other = "100.64.0.2:10000";
    relay.check(passed("same port, other address", s, other, &to_b, None));
    assert!(relay.binding(s, other).is_none());
    // STUN to a meeting's own port is that meeting's packet, and learns nothing.
    let owned = "100.64.0.1:40000";
    relay.check(dropped(
        "STUN on an owned port",
        s,
        owned,
        &request("ufragB1:x"),
        None,
    ));
    assert!(relay.binding(s, owned).is_none());
}

#[test]
fn leaving_and_going_idle_unbind() {
    let Some(mut relay) = Relay::new("leaving_and_going_idle_unbind") else {
        return;
    };
    let xa = "192.0.2.50:5000";
    relay.check(dropped("join", xa, MUX, &request("ufragA1:c"), LEARNED));
    // The participant leaves: its ufrag goes, and the flows learned from it.
    let n = bindings::unbind_ufrags(&mut relay.kernel, &[ufrag("ufragA1")]).expect("unbind");
    assert_eq!(n, 1);
    assert!(
        relay.binding(xa, MUX).is_none(),
        "the learned flow went with its ufrag"
    );
    relay.check(blocked("media after leaving", xa, MUX, RTP, None));
    let unknown = Some(MuxEvent::UnknownUfrag);
    relay.check(blocked(
        "request after leaving",
        xa,
        MUX,
        &request("ufragA1:c"),
        unknown,
    ));
    // A learned binding not refreshed within the idle time stops applying.
    let b = "192.0.2.51:5000";
    relay.check(passed("B joins", b, MUX, &request("ufragB1:c"), LEARNED));
    relay.set_idle(1_000_000);
    std::thread::sleep(Duration::from_millis(30));
    relay.check(blocked("idle media", b, MUX, RTP, None));
    // A Binding request refreshes it; within the default idle time it applies again.
    let refreshed = Some(MuxEvent::Refreshed);
    relay.check(passed("refresh", b, MUX, &request("ufragB1:c"), refreshed));
    relay.set_idle(0);
    relay.check(passed("fresh media", b, MUX, RTP, None));
    // Maps whose tick setting was never written: the program checks the nanosecond clock,
    // whose default keeps the binding, and whose shorter setting ends it.
    relay.clear_idle_ticks();
    relay.check(passed("fresh media, nanosecond clock", b, MUX, RTP, None));
    relay.set_idle(1_000_000);
    relay.clear_idle_ticks();
    std::thread::sleep(Duration::from_millis(30));
    relay.check(blocked("idle media, nanosecond clock", b, MUX, RTP, None));
}

#[test]
fn explain_names_the_binding_that_found_the_meeting() {
    let Some(mut relay) = Relay::new("explain_names_the_binding_that_found_the_meeting") else {
        return;
    };
    let session_text = |json: &serde_json::Value| {
        let steps = json["steps"].as_array().expect("steps");
        let session = steps
            .iter()
            .find(|s| s["step"] == "session")
            .expect("a session step");
        session["text"].as_str().expect("text").to_string()
    };
    // Learned from STUN: the kernel's binding, named by its ufrag.
    let xa = "192.0.2.60:6000";
    relay.check(dropped("join", xa, MUX, &request("ufragA1:c"), LEARNED));
    let (json, agrees) = relay.explain(xa, MUX);
    assert!(agrees, "{json:#}");
    let text = session_text(&json);
    assert!(text.contains("learned from ufrag ufragA1"), "{text}");
    assert!(text.contains("meeting A"), "{text}");
    // Bound by the API.
    let api = "198.51.100.61:6000";
    let key = flow(api, MUX);
    bindings::bind_flows(&mut relay.kernel, &[(key, 2)]).expect("binding by API");
    let (json, agrees) = relay.explain(api, MUX);
    assert!(agrees, "{json:#}");
    let text = session_text(&json);
    assert!(
        text.contains("bound by the control plane (`flow add` or the binding API)")
            && text.contains("meeting B"),
        "{text}"
    );
    // Nobody's: unbound, and the kernel agrees: passed from XB, which no rule blocks;
    // dropped from XA, which meeting A's rule blocks.
    let verdict_of = |json: &serde_json::Value| {
        let steps = json["steps"].as_array().expect("steps");
        let verdict = steps.iter().find(|s| s["step"] == "verdict");
        verdict.expect("a verdict step").clone()
    };
    let (json, agrees) = relay.explain("198.51.100.62:6000", MUX);
    assert!(agrees, "{json:#}");
    assert!(
        session_text(&json).contains("shared by meetings"),
        "{json:#}"
    );
    assert_eq!(verdict_of(&json)["pass_reason"], "unbound", "{json:#}");
    let (json, agrees) = relay.explain("192.0.2.62:6000", MUX);
    assert!(agrees, "{json:#}");
    let verdict = verdict_of(&json);
    assert_eq!(verdict["verdict"], "dropped", "{verdict}");
    assert!(
        verdict["text"]
            .as_str()
            .is_some_and(|t| t.contains("unbound on a shared port"))
    );
}

/// A frame to a mux port that no meeting has bound, from a territory some meeting's rule
/// blocks: dropped, counting `event` and `unbound_blocked`.
fn blocked<'a>(
    what: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: &[u8],
    event: Option<MuxEvent>,
) -> Step<'a> {
    Step {
        also: Some(MuxEvent::UnboundBlocked),
        ..dropped(what, src, dst, payload, event)
    }
}

#[test]
fn explain_sends_a_binding_request_and_leaves_the_flow_as_it_was() {
    let Some(relay) = Relay::new("explain_sends_a_binding_request_and_leaves_the_flow_as_it_was")
    else {
        return;
    };
    let step = |json: &serde_json::Value, name: &str| {
        let steps = json["steps"].as_array().expect("steps");
        steps.iter().find(|s| s["step"] == name).cloned()
    };
    let ask = |relay: &Relay, src: &str, dst: &str, ufrag: &str| {
        let (json, agrees) = relay.explain_with(src, dst, &["--stun-ufrag", ufrag]);
        assert!(agrees, "the kernel disagrees: {json:#}");
        let stun = step(&json, "stun").unwrap_or_else(|| panic!("no stun step: {json:#}"));
        let verdict = step(&json, "verdict").expect("a verdict step");
        (stun, verdict)
    };
    // Meeting A's ufrag from XA: learned, and dropped by A's rule; the check leaves the
    // kernel's flow table as it was.
    let xa = "192.0.2.70:7000";
    let (stun, verdict) = ask(&relay, xa, MUX, "ufragA1");
    assert_eq!(stun["outcome"], "learned", "{stun}");
    assert_eq!(stun["meeting"], "A", "{stun}");
    assert_eq!(verdict["verdict"], "dropped", "{verdict}");
    let binding = bindings::flow_binding(&relay.kernel, &flow(xa, MUX)).expect("FLOWS");
    assert_eq!(binding, None, "explain left a binding behind");
    // Once the flow is learned for real, the same request refreshes it.
    let xb = "198.51.100.70:7000";
    relay.check(passed("join", xb, MUX, &request("ufragB1:c"), LEARNED));
    let (stun, verdict) = ask(&relay, xb, MUX, "ufragB1");
    assert_eq!(stun["outcome"], "refreshed", "{stun}");
    assert_eq!(verdict["verdict"], "passed", "{verdict}");
    let kept = bindings::flow_binding(&relay.kernel, &flow(xb, MUX)).expect("FLOWS");
    assert_eq!(
        kept.map(|b| b.session),
        Some(2),
        "explain changed the learned binding"
    );
    // The newest ufrag wins: meeting A's ufrag on B's flow rebinds it to A.
    let (stun, _) = ask(&relay, xb, MUX, "ufragA1");
    assert_eq!(
        (&stun["outcome"], &stun["meeting"]),
        (&"learned".into(), &"A".into())
    );
    let after = bindings::flow_binding(&relay.kernel, &flow(xb, MUX)).expect("FLOWS");
    assert_eq!(after, kept, "explain did not put the binding back");
    // An unknown ufrag, one longer than the program reads, a port no meeting shares.
    let (stun, verdict) = ask(&relay, "198.51.100.71:7000", MUX, "nobodys");
    assert_eq!(stun["outcome"], "unknown_ufrag", "{stun}");
    assert_eq!(verdict["pass_reason"], "unbound", "{verdict}");
    let long = "a".repeat(65);
    let (stun, _) = ask(&relay, "198.51.100.72:7000", MUX, &long);
    assert_eq!(stun["outcome"], "too_long", "{stun}");
    let (stun, verdict) = ask(&relay, "192.0.2.73:7000", "100.64.0.1:40000", "ufragA1");
    assert_eq!(stun["outcome"], "not_shared", "{stun}");
    assert_eq!(
        verdict["verdict"], "dropped",
        "meeting O blocks XA: {verdict}"
    );
}
