//! The mux path of the model: STUN read as the program reads it, learning before the
//! decision, refresh, the newest ufrag winning, idle expiry.

use filter_common::{
    PassReason, Verdict,
    mux::{MuxEvent, UFRAG_MAX, UfragBinding},
};

use super::*;
use crate::state::Meeting;
use crate::ufrag::Ufrag;

const NOW: u64 = 1_000_000_000_000;
const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// Ethernet, IPv4 (IHL 5), UDP.
const PAYLOAD: usize = 14 + 20 + 8;

/// A STUN message of `kind` with these attributes, each padded to 4 bytes.
fn stun(kind: u16, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in attributes {
        body.extend(t.to_be_bytes());
        body.extend((v.len() as u16).to_be_bytes());
        body.extend(*v);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut out = kind.to_be_bytes().to_vec();
    out.extend((body.len() as u16).to_be_bytes());
    out.extend(COOKIE);
    out.extend([7; 12]);
    out.extend(body);
    out
}

fn request(username: &str) -> Vec<u8> {
    stun(1, &[(6, username.as_bytes()), (0x24, &[0, 0, 0, 1])])
}

/// A UDP/IPv4 frame from `src` (port 5000) to 100.64.0.1:7882 carrying `payload`.
fn udp(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    out.extend([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
    out.extend(src);
    out.extend([100, 64, 0, 1]);
    out.extend(5000u16.to_be_bytes());
    out.extend(7882u16.to_be_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend(payload);
    out
}

fn read(payload: &[u8]) -> Request {
    mux::server_ufrag(&udp([192, 0, 2, 1], payload), PAYLOAD)
}

/// The key of a ufrag as the program reads it, also one of fewer than 4 characters.
fn key(text: &str) -> filter_common::mux::UfragKey {
    let mut key = filter_common::mux::UfragKey::EMPTY;
    key.bytes[..text.len()].copy_from_slice(text.as_bytes());
    key
}

#[test]
fn binding_requests_are_read_as_the_program_reads_them() {
    let long = "u".repeat(UFRAG_MAX);
    assert_eq!(read(&request("abcd:client")), Request::Ufrag(key("abcd")));
    let name = format!("{long}:c");
    assert_eq!(read(&request(&name)), Request::Ufrag(key(&long)));
    let too_long = format!("{long}v:c");
    let unreadable = Request::Unreadable;
    assert_eq!(
        read(&request(&too_long)),
        unreadable(MuxEvent::UfragTooLong)
    );
    // USERNAME last, after attributes of every padding.
    let last = stun(1, &[(0x24, &[1; 4]), (0x8022, b"odd"), (6, b"ab:c")]);
    assert_eq!(read(&last), Request::Ufrag(key("ab")));
    let absent = stun(1, &[(0x24, &[1; 4]), (0x8028, &[2; 4])]);
    assert_eq!(read(&absent), unreadable(MuxEvent::NoUsername));
    assert_eq!(read(&stun(1, &[])), unreadable(MuxEvent::NoUsername));
    assert_eq!(
        read(&request("noColon")),
        unreadable(MuxEvent::StunMalformed)
    );
    assert_eq!(
        read(&request(":client")),
        unreadable(MuxEvent::StunMalformed)
    );
    // The walk's bound: USERNAME as the last attribute read, then one past it.
    let pad: Vec<(u16, &[u8])> = vec![(0x24, &[1; 4]); filter_common::mux::stun::MAX_ATTRIBUTES];
    let mut at_bound = pad[1..].to_vec();
    at_bound.push((6, b"ab:c"));
    assert_eq!(read(&stun(1, &at_bound)), Request::Ufrag(key("ab")));
    let mut past = pad.clone();
    past.push((6, b"ab:c"));
    assert_eq!(read(&stun(1, &past)), unreadable(MuxEvent::NoUsername));
    // Lengths: not a multiple of 4, past the frame, an attribute past the message.
    let mut odd = request("ab:c");
    odd[3] += 1;
    assert_eq!(read(&odd), unreadable(MuxEvent::StunMalformed));
    let cut = request("abcd:client");
    assert_eq!(
        read(&cut[..cut.len() - 4]),
        unreadable(MuxEvent::StunMalformed)
    );
    let mut overrun = request("ab:c");
    overrun[22..24].copy_from_slice(&40u16.to_be_bytes());
    assert_eq!(read(&overrun), unreadable(MuxEvent::StunMalformed));
    // Not Binding requests: success, indication, DTLS and RTP that carry the cookie.
    assert_eq!(read(&stun(0x0101, &[(6, b"ab:c")])), Request::None);
    assert_eq!(read(&stun(0x0011, &[(6, b"ab:c")])), Request::None);
    for first in [22u8, 0x80] {
        let mut look_alike = request("ab:c");
        look_alike[0] = first;
        assert_eq!(read(&look_alike), Request::None);
    }
    assert_eq!(read(&[0, 1, 0]), Request::None);
}

/// Meeting 1 blocks XA; meeting 2 has no rules; both are reached through ufrags on the
/// shared port udp:*:7882.
fn maps() -> (ModelMaps, MuxState) {
    let rule = crate::state::Rule {
        order: "mux-test".to_string(),
        territories: vec![crate::territory::Territory::parse("XA").expect("territory")],
        prefixes: Vec::new(),
        expires: None,
        dry_run: false,
        issued: crate::clock::now(),
        issued_by: "model tests".to_string(),
        slot: Some(0),
    };
    let meeting = |session, rules| Meeting {
        session,
        created: crate::clock::now(),
        endpoints: Vec::new(),
        flows: Vec::new(),
        rules,
        allows: Vec::new(),
    };
    let mut state = State::default();
    state.meetings.insert("one".into(), meeting(1, vec![rule]));
    state.meetings.insert("two".into(), meeting(2, Vec::new()));
    state.mux = vec!["udp:*:7882".parse().expect("endpoint")];
    let geo = GeoTable {
        v4: vec![(
            "192.0.2.0/24".parse().expect("prefix"),
            filter_common::territory::territory_id(*b"XA").expect("a code"),
        )],
        v6: Vec::new(),
        sources: Vec::new(),
    };
    let maps = ModelMaps::from_state(&state, geo, &crate::expiry::Clock::now()).expect("maps");
    let mut mux = MuxState::default();
    for (text, session) in [("one1", 1), ("two2", 2), ("gone", 9)] {
        let u: Ufrag = text.parse().expect("ufrag");
        let binding = UfragBinding {
            session,
            id: u.id(),
        };
        mux.ufrags.insert(u.key(), binding);
    }
    (maps, mux)
}

#[test]
fn the_flow_is_learned_before_the_decision_and_followed_by_media() {
    let (maps, mut mux) = maps();
    let xa = [192, 0, 2, 9];
    let other = [203, 0, 113, 5];
    let media = [0x80, 96, 0, 1, 0, 0, 0, 0];
    let run = |mux: &mut MuxState, frame: &[u8], now| trace_mux(frame, &maps, mux, now);
    // Media before any Binding request: unbound, dropped from XA (blocked somewhere).
    let t = run(&mut mux, &udp(other, &media), NOW);
    assert_eq!(t.outcome.counted, Counted::Reason(PassReason::Unbound));
    assert_eq!(
        run(&mut mux, &udp(xa, &media), NOW).outcome.verdict,
        Verdict::Dropped
    );
    // Meeting 1 blocks XA: the very request is dropped, its flow learned.
    let t = run(&mut mux, &udp(xa, &request("one1:c")), NOW);
    assert_eq!(t.outcome.verdict, Verdict::Dropped);
    assert_eq!(t.stun.and_then(|s| s.event()), Some(MuxEvent::Learned));
    let t = run(&mut mux, &udp(xa, &media), NOW + 1);
    assert!(matches!(
        t.session,
        Some(SessionLookup::Found {
            session: 1,
            key: SessionKey::LearnedFlow
        })
    ));
    // Meeting 2: learned, refreshed, and the newest ufrag wins.
    let t = run(&mut mux, &udp(other, &request("two2:c")), NOW);
    assert_eq!(t.outcome.verdict, Verdict::Passed);
    assert_eq!(t.stun.and_then(|s| s.event()), Some(MuxEvent::Learned));
    let t = run(&mut mux, &udp(other, &request("two2:d")), NOW + 5);
    assert_eq!(t.stun.and_then(|s| s.event()), Some(MuxEvent::Refreshed));
    let t = run(&mut mux, &udp(other, &request("one1:c")), NOW + 6);
    assert_eq!(t.stun.and_then(|s| s.event()), Some(MuxEvent::Learned));
    assert_eq!(t.session.and_then(|s| s.session()), Some(1));
    // Idle past the default: unbound again until the next request.
    let later = NOW + 6 + filter_common::mux::LEARNED_IDLE_NS + 1;
    let t = run(&mut mux, &udp(other, &media), later);
    assert_eq!(t.outcome.counted, Counted::Reason(PassReason::Unbound));
    // An unknown ufrag, and one whose meeting is gone: nothing bound, unbound.
    let fresh = [203, 0, 113, 6];
    let t = run(&mut mux, &udp(fresh, &request("nope:c")), NOW);
    assert_eq!(t.stun.and_then(|s| s.event()), Some(MuxEvent::UnknownUfrag));
    assert_eq!(t.outcome.counted, Counted::Reason(PassReason::Unbound));
    let t = run(&mut mux, &udp(fresh, &request("gone:c")), NOW);
    assert_eq!(t.stun.and_then(|s| s.event()), Some(MuxEvent::Learned));
    assert_eq!(t.outcome.counted, Counted::Reason(PassReason::Unbound));
    // Without run-time state, `trace` learns nothing.
    let t = trace(&udp(other, &request("two2:c")), &maps, NOW);
    assert_eq!(t.outcome.counted, Counted::Reason(PassReason::Unbound));
}
