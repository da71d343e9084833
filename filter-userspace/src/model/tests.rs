//! Hand-made frames with known verdicts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use filter_common::{
    PassReason, TERRITORY_UNKNOWN, Verdict, policy::RULE_DRY_RUN, proto, territory::territory_id,
};
use ipnet::{Ipv4Net, Ipv6Net};

use super::*;
use crate::endpoint::{Flow, Proto};
use crate::geo::NetBits;
use crate::prefix::parse_prefix;
use crate::state::{Meeting, Rule};
use crate::territory::Territory;

const NOW: u64 = 1_000_000_000_000;

fn id(code: &str) -> TerritoryId {
    territory_id(code.as_bytes().try_into().expect("two letters")).expect("a code")
}

/// XA: 192.0.2.0/24 and 2001:db8:a::/48; XB: 198.51.100.0/24 with 198.51.100.128/25 XC.
fn geo() -> GeoTable {
    let v4 = |s: &str| Ipv4Net::parse_strict(s).expect("v4 prefix");
    let v6 = |s: &str| Ipv6Net::parse_strict(s).expect("v6 prefix");
    GeoTable {
        v4: vec![
            (v4("192.0.2.0/24"), id("XA")),
            (v4("198.51.100.0/24"), id("XB")),
            (v4("198.51.100.128/25"), id("XC")),
        ],
        v6: vec![(v6("2001:db8:a::/48"), id("XA"))],
        sources: Vec::new(),
    }
}

fn rule(territories: &[&str], prefixes: &[&str], dry_run: bool, expires: Option<&str>) -> Rule {
    Rule {
        order: "model-test".to_string(),
        territories: territories
            .iter()
            .map(|t| Territory::parse(t).expect("territory"))
            .collect(),
        prefixes: prefixes
            .iter()
            .map(|p| parse_prefix(p).expect("prefix"))
            .collect(),
        expires: expires.map(|t| t.parse().expect("time")),
        dry_run,
        issued: crate::clock::now(),
        issued_by: "model tests".to_string(),
        slot: None,
    }
}

fn meeting(session: u32, endpoints: &[&str], rules: Vec<Rule>) -> Meeting {
    Meeting {
        session,
        created: crate::clock::now(),
        endpoints: endpoints
            .iter()
            .map(|e| e.parse().expect("endpoint"))
            .collect(),
        flows: Vec::new(),
        rules,
        allows: Vec::new(),
    }
}

/// Meeting M (1): udp:*:40000, tcp:[2001:db8:ffff::1]:443; blocks XA; drops
/// 198.51.100.7; allows 192.0.2.77; dry-run drop of 198.51.100.0/25.
/// Meeting N (2): a flow 198.51.100.9:5000 → 100.64.0.1:40000 (a port of M's endpoint);
/// blocks XB dry-run and XC (expired in 2000).
fn maps() -> ModelMaps {
    let mut m = meeting(
        1,
        &["udp:*:40000", "tcp:[2001:db8:ffff::1]:443"],
        vec![
            rule(&["XA"], &[], false, None),
            rule(&[], &["198.51.100.7"], false, None),
            rule(&[], &["198.51.100.0/25"], true, None),
        ],
    );
    m.allows = vec![parse_prefix("192.0.2.77").expect("prefix")];
    let mut n = meeting(
        2,
        &[],
        vec![
            rule(&["XB"], &[], true, None),
            rule(&["XC"], &[], false, Some("2000-01-01T00:00:00Z")),
        ],
    );
    let src: SocketAddr = "198.51.100.9:5000".parse().expect("src");
    let dst: SocketAddr = "100.64.0.1:40000".parse().expect("dst");
    n.flows = vec![Flow::new(Proto::Udp, src, dst).expect("flow")];
    let mut state = State::default();
    state.meetings.insert("M".to_string(), m);
    state.meetings.insert("N".to_string(), n);
    ModelMaps::from_state(&state, geo(), &crate::expiry::Clock::now()).expect("derivable")
}

/// Ethernet, `tags` VLAN tags, then an IP header (IHL 5 or no extensions) and a UDP or
/// TCP header with a 4-byte payload.
struct Frame {
    tags: usize,
    proto: u8,
    src: SocketAddr,
    dst: SocketAddr,
    /// IPv4 flags and offset, or an IPv6 fragment header's offset-and-M field.
    fragment: Option<u16>,
}

fn frame(proto: u8, src: &str, dst: &str) -> Frame {
    Frame {
        tags: 0,
        proto,
        src: src.parse().expect("src"),
        dst: dst.parse().expect("dst"),
        fragment: None,
    }
}

impl Frame {
    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for _ in 0..self.tags {
            out.extend([0x81, 0x00, 0x00, 0x05]);
        }
        let l4_len = if self.proto == proto::TCP { 20 } else { 8 };
        let mut l4 = vec![0; l4_len + 4];
        l4[..2].copy_from_slice(&self.src.port().to_be_bytes());
        l4[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out.extend([0x08, 0x00, 0x45, 0, 0, 0, 0, 0]);
                out.extend(self.fragment.unwrap_or(0).to_be_bytes());
                out.extend([64, self.proto, 0, 0]);
                out.extend(s.octets());
                out.extend(d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let next = if self.fragment.is_some() {
                    44
                } else {
                    self.proto
                };
                out.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, next, 64]);
                out.extend(s.octets());
                out.extend(d.octets());
                if let Some(field) = self.fragment {
                    out.extend([self.proto, 0]);
                    out.extend(field.to_be_bytes());
                    out.extend([0, 0, 0, 1]);
                }
            }
            _ => panic!("mixed families"),
        }
        out.extend(l4);
        out
    }
}

fn session(session: u32, territory: &str, verdict: Verdict, frame: &[u8]) -> Outcome {
    Outcome {
        verdict,
        xdp_action: if verdict == Verdict::Dropped {
            XDP_DROP
        } else {
            XDP_PASS
        },
        counted: Counted::Session {
            session,
            territory: if territory == "unknown" {
                TERRITORY_UNKNOWN
            } else {
                id(territory)
            },
            verdict,
            bytes: frame.len() as u64,
        },
        rule: None,
    }
}

/// Compares all but the credited rule slot, which `rule_slot_credited` checks.
fn check(what: &str, bytes: &[u8], want: Outcome) {
    let got = verdict(bytes, &maps(), NOW);
    assert_eq!(Outcome { rule: None, ..got }, want, "{what}");
}

#[test]
fn rule_slot_credited() {
    // Slots 0..3: XA dry run, XB enforce, XA enforce, XA dry run; a drop override.
    let mut m = meeting(
        7,
        &["udp:*:46000"],
        vec![
            rule(&["XA"], &[], true, None),
            rule(&["XB"], &[], false, None),
            rule(&["XA"], &[], false, None),
            rule(&["XB", "XC"], &["198.51.100.7"], true, None),
        ],
    );
    m.rules[3].slot = Some(5);
    let mut state = State::default();
    state.meetings.insert("S".to_string(), m);
    let maps =
        ModelMaps::from_state(&state, geo(), &crate::expiry::Clock::now()).expect("derivable");
    let slot_of = |src: &str| {
        let bytes = frame(proto::UDP, src, "100.64.0.1:46000").bytes();
        let o = verdict(&bytes, &maps, NOW);
        (o.verdict, o.rule)
    };
    assert_eq!(
        slot_of("192.0.2.10:1"),
        (Verdict::Dropped, Some(2)),
        "the enforcing XA rule, not the earlier dry run"
    );
    assert_eq!(slot_of("198.51.100.9:1"), (Verdict::Dropped, Some(1)));
    assert_eq!(
        slot_of("198.51.100.200:1"),
        (Verdict::WouldDrop, Some(5)),
        "a stored slot is kept"
    );
    assert_eq!(
        slot_of("198.51.100.7:1"),
        (Verdict::WouldDrop, Some(5)),
        "a drop override is credited to its rule's slot"
    );
    assert_eq!(slot_of("10.0.0.1:1"), (Verdict::Passed, None));
}

/// A drop override applies only while the slot it names holds its rule (active, same id)
/// in force; otherwise the territory rules decide, as for a lapsed one.
#[test]
fn drop_overrides_are_bound_to_their_rule() {
    let m = meeting(
        3,
        &["udp:*:47000"],
        vec![
            rule(&["XA"], &[], false, None),
            rule(&[], &["192.0.2.0/28"], false, None),
        ],
    );
    let mut state = State::default();
    state.meetings.insert("B".to_string(), m);
    let bound =
        ModelMaps::from_state(&state, geo(), &crate::expiry::Clock::now()).expect("derivable");
    let outcome = |maps: &ModelMaps, src: &str| {
        let o = verdict(
            &frame(proto::UDP, src, "100.64.0.1:47000").bytes(),
            maps,
            NOW,
        );
        (o.verdict, o.rule)
    };
    // 192.0.2.10 is in XA (slot 0) and in the prefix-only rule's /28 (slot 1).
    assert_eq!(
        outcome(&bound, "192.0.2.10:1"),
        (Verdict::Dropped, Some(1)),
        "the prefix-only rule holds slot 1 and is credited"
    );
    let policy = bound.sessions.policies[&3];
    assert_eq!(
        policy.rules[1].blocked,
        [0; filter_common::territory::TERRITORY_WORDS]
    );
    assert_ne!(policy.rules[1].rule_id, 0);

    // The override written ahead of its rule (the policy does not name it yet): inert.
    let mut ahead = bound.sessions.clone();
    ahead.policies.get_mut(&3).expect("policy").rules[1] = filter_common::Rule::EMPTY;
    let ahead = bound.clone().with_sessions(ahead);
    assert_eq!(
        outcome(&ahead, "192.0.2.10:1"),
        (Verdict::Dropped, Some(0)),
        "the territory rule decides"
    );
    let trace = trace(
        &frame(proto::UDP, "192.0.2.10:1", "100.64.0.1:47000").bytes(),
        &ahead,
        NOW,
    );
    let d = trace.decision.expect("decided");
    assert_eq!(d.decided_by, DecidedBy::Rules);
    assert!(
        d.override_hit
            .is_some_and(|o| o.rule.is_none() && !o.drop_applies())
    );
    assert_eq!(outcome(&ahead, "192.0.2.1:1"), (Verdict::Dropped, Some(0)));

    // A stale override: its slot now holds another rule (another id).
    let mut reused = bound.sessions.clone();
    reused.policies.get_mut(&3).expect("policy").rules[1].rule_id ^= 0x5555;
    let reused = bound.clone().with_sessions(reused);
    assert_eq!(
        outcome(&reused, "192.0.2.10:1"),
        (Verdict::Dropped, Some(0))
    );
    assert_eq!(
        outcome(&reused, "203.0.113.1:1"),
        (Verdict::Passed, None),
        "outside the prefix and XA"
    );

    // Its rule expired in the slot: the territory rules decide.
    let mut expired = bound.sessions.clone();
    expired.policies.get_mut(&3).expect("policy").rules[1].expires_ns = NOW;
    let expired = bound.clone().with_sessions(expired);
    assert_eq!(
        outcome(&expired, "192.0.2.10:1"),
        (Verdict::Dropped, Some(0))
    );

    // The rule's mode in the policy decides the verdict (the commit point).
    let mut dry = bound.sessions.clone();
    dry.policies.get_mut(&3).expect("policy").rules[1].flags |= filter_common::policy::RULE_DRY_RUN;
    let dry = bound.clone().with_sessions(dry);
    assert_eq!(outcome(&dry, "192.0.2.10:1"), (Verdict::WouldDrop, Some(1)));
}

#[test]
fn territory_rules() {
    let cases = [
        (
            "blocked XA on the wildcard endpoint",
            "192.0.2.10:1000",
            "100.64.0.9:40000",
            1,
            "XA",
            Verdict::Dropped,
        ),
        (
            "allowed participant in XA",
            "192.0.2.77:1000",
            "100.64.0.9:40000",
            1,
            "XA",
            Verdict::Passed,
        ),
        (
            "XB drop override",
            "198.51.100.7:1000",
            "100.64.0.9:40000",
            1,
            "XB",
            Verdict::Dropped,
        ),
        (
            "XB dry-run override /25",
            "198.51.100.8:1000",
            "100.64.0.9:40000",
            1,
            "XB",
            Verdict::WouldDrop,
        ),
        (
            "XC: more specific table entry, no rule",
            "198.51.100.200:1000",
            "100.64.0.9:40000",
            1,
            "XC",
            Verdict::Passed,
        ),
        (
            "unknown source",
            "10.0.0.1:1000",
            "100.64.0.9:40000",
            1,
            "unknown",
            Verdict::Passed,
        ),
        (
            "flow binding wins over the endpoint",
            "198.51.100.9:5000",
            "100.64.0.1:40000",
            2,
            "XB",
            Verdict::WouldDrop,
        ),
    ];
    for (what, src, dst, s, territory, v) in cases {
        let bytes = frame(proto::UDP, src, dst).bytes();
        check(what, &bytes, session(s, territory, v, &bytes));
    }
}

#[test]
fn expired_rule_lapses() {
    // N blocks XC until 2000; a flow source in XC would otherwise be dropped.
    let mut m = maps();
    let flow = *m.sessions.flows.keys().next().expect("a flow");
    let mut key = flow;
    key.src = filter_common::maps::v4_mapped([198, 51, 100, 200]);
    m.sessions.flows.insert(key, 2);
    let bytes = frame(proto::UDP, "198.51.100.200:5000", "100.64.0.1:40000").bytes();
    assert_eq!(
        verdict(&bytes, &m, NOW),
        session(2, "XC", Verdict::Passed, &bytes)
    );
}

#[test]
fn ipv6_endpoints_and_mapped_sources() {
    let bytes = frame(proto::TCP, "[2001:db8:a::5]:1000", "[2001:db8:ffff::1]:443").bytes();
    check("v6 XA", &bytes, session(1, "XA", Verdict::Dropped, &bytes));
    // An IPv4-mapped IPv6 source is looked up in the IPv4 table.
    let bytes = frame(
        proto::UDP,
        "[::ffff:192.0.2.10]:1000",
        "[2001:db8:ffff::2]:40000",
    )
    .bytes();
    check(
        "mapped XA",
        &bytes,
        session(1, "XA", Verdict::Dropped, &bytes),
    );
    // The TCP endpoint is on one address only.
    let bytes = frame(proto::TCP, "[2001:db8:a::5]:1000", "[2001:db8:ffff::2]:443").bytes();
    check(
        "other address",
        &bytes,
        Outcome::passed(PassReason::NoSession),
    );
}

#[test]
fn parse_paths() {
    let base = frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000");
    let dropped = |bytes: &[u8]| session(1, "XA", Verdict::Dropped, bytes);
    let two = Frame {
        tags: 2,
        ..frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000")
    };
    let bytes = two.bytes();
    check("two VLAN tags", &bytes, dropped(&bytes));
    let three = Frame {
        tags: 3,
        ..frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000")
    };
    check(
        "three VLAN tags",
        &three.bytes(),
        Outcome::passed(PassReason::NotIp),
    );
    let first = Frame {
        fragment: Some(0x2000),
        ..frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000")
    };
    let mut bytes = first.bytes();
    bytes.truncate(bytes.len() - 8); // ports only
    check("first v4 fragment, 4 bytes of UDP", &bytes, dropped(&bytes));
    let later = Frame {
        fragment: Some(0x0001),
        ..frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000")
    };
    check(
        "later v4 fragment",
        &later.bytes(),
        Outcome::passed(PassReason::Fragment),
    );
    let v6_later = Frame {
        fragment: Some(8),
        ..frame(proto::UDP, "[2001:db8:a::5]:1", "[2001:db8:ffff::1]:40000")
    };
    check(
        "later v6 fragment",
        &v6_later.bytes(),
        Outcome::passed(PassReason::Fragment),
    );
    let v6_first = Frame {
        fragment: Some(1),
        ..frame(proto::TCP, "[2001:db8:a::5]:1", "[2001:db8:ffff::1]:443")
    };
    let mut bytes = v6_first.bytes();
    bytes.truncate(bytes.len() - 20);
    check(
        "first v6 fragment, 8 bytes of TCP",
        &bytes,
        session(1, "XA", Verdict::Dropped, &bytes),
    );
    let whole = base.bytes();
    // Cut inside the UDP header (the 4 payload bytes and 4 header bytes gone).
    check(
        "UDP cut short",
        &whole[..whole.len() - 8],
        Outcome::passed(PassReason::Malformed),
    );
    check("empty", &[], Outcome::passed(PassReason::Malformed));
    let mut icmp = whole.clone();
    icmp[14 + 9] = 1;
    check("ICMP", &icmp, Outcome::passed(PassReason::NotUdpTcp));
    let mut v5 = whole.clone();
    v5[14] = 0x55;
    check("IP version 5", &v5, Outcome::passed(PassReason::Malformed));
    let mut ihl4 = whole;
    ihl4[14] = 0x44;
    check("IHL 4", &ihl4, Outcome::passed(PassReason::Malformed));
}

fn unparsed_blocked(reason: PassReason) -> Outcome {
    Outcome {
        verdict: Verdict::Dropped,
        xdp_action: XDP_DROP,
        counted: Counted::UnparsedBlocked(reason),
        rule: None,
    }
}

/// An IPv6 UDP frame with `n` destination-options headers in front of UDP.
fn padded(n: usize, src: &str, dst: &str) -> Vec<u8> {
    let base = frame(proto::UDP, src, dst).bytes();
    let (head, udp) = base.split_at(14 + 40);
    let mut out = head.to_vec();
    out[14 + 6] = if n == 0 { proto::UDP } else { 60 };
    for i in 0..n {
        let next = if i + 1 == n { proto::UDP } else { 60 };
        out.extend([next, 0, 1, 4, 0, 0, 0, 0]);
    }
    out.extend(udp);
    out
}

/// A packet the parser cannot place, that the stack would deliver, is judged by the guard
/// of its destination: dropped where a rule in force on a meeting reachable there blocks
/// its source (by territory or prefix, less exceptions), passed otherwise.
#[test]
fn unplaceable_packets_meet_the_guard_of_their_destination() {
    let maps = maps();
    let judge = |bytes: &[u8]| verdict(bytes, &maps, NOW);
    // M blocks XA on its wildcard endpoint: any destination address.
    let xa = padded(9, "[2001:db8:a::5]:1", "[2001:db8:ffff::9]:5");
    assert_eq!(judge(&xa), unparsed_blocked(PassReason::ExtHeaderLimit));
    let unknown = padded(9, "[2001:db8:b::5]:1", "[2001:db8:ffff::9]:5");
    assert_eq!(
        judge(&unknown),
        Outcome::passed(PassReason::ExtHeaderLimit),
        "a source no rule blocks"
    );
    // An IPv4-mapped source is the IPv4 host: M's drop of 198.51.100.7, M's exception
    // of 192.0.2.77 inside XA.
    let dropped = padded(7, "[::ffff:198.51.100.7]:1", "[2001:db8:ffff::9]:5");
    assert_eq!(
        judge(&dropped),
        unparsed_blocked(PassReason::ExtHeaderLimit)
    );
    let excepted = padded(7, "[::ffff:192.0.2.77]:1", "[2001:db8:ffff::9]:5");
    assert_eq!(
        judge(&excepted),
        Outcome::passed(PassReason::ExtHeaderLimit)
    );
    // A dry run (N's XB) drops nothing here.
    let dry = padded(7, "[::ffff:198.51.100.9]:1", "[2001:db8:ffff::9]:5");
    assert_eq!(judge(&dry), Outcome::passed(PassReason::ExtHeaderLimit));
    // A first IPv4 fragment cut before its ports.
    let first = Frame {
        fragment: Some(0x2000),
        ..frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000")
    };
    let mut bytes = first.bytes();
    bytes.truncate(bytes.len() - 10);
    assert_eq!(judge(&bytes), unparsed_blocked(PassReason::Malformed));
    // The same cut in a whole packet: the stack discards it.
    let mut whole = frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000").bytes();
    whole.truncate(whole.len() - 10);
    assert_eq!(judge(&whole), Outcome::passed(PassReason::Malformed));
    // Later fragments pass: their datagram is judged by its first fragment.
    let later = Frame {
        fragment: Some(0x0001),
        ..frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000")
    };
    assert_eq!(judge(&later.bytes()), Outcome::passed(PassReason::Fragment));
}

/// Only the meetings reachable at the destination count; an exception enters a guard
/// only where every meeting there lets its prefix pass.
#[test]
fn a_guard_holds_the_meetings_of_its_address() {
    let mut a = meeting(
        11,
        &["udp:100.64.0.1:41000"],
        vec![rule(&["XA"], &[], false, None)],
    );
    a.allows = vec![parse_prefix("192.0.2.0/25").expect("prefix")];
    let b = meeting(
        12,
        &["udp:100.64.0.2:41000"],
        vec![rule(&["XB"], &[], false, None)],
    );
    let mut c = meeting(
        13,
        &["udp:100.64.0.4:42000"],
        vec![rule(&["XA"], &["192.0.2.0/24"], false, None)],
    );
    c.allows = vec![parse_prefix("192.0.2.0/25").expect("prefix")];
    let mut state = State::default();
    state.meetings.insert("A".into(), a);
    state.meetings.insert("B".into(), b);
    let maps = ModelMaps::from_state(&state, geo(), &crate::expiry::Clock::now()).expect("maps");
    let judge = |src: &str, dst: &str| verdict(&padded(7, src, dst), &maps, NOW).verdict;
    let a1 = "[::ffff:100.64.0.1]:41000";
    // The frames are IPv6 with mapped destinations: the stack delivers none of them.
    assert_eq!(judge("[::ffff:192.0.2.200]:1", a1), Verdict::Passed);
    let guards = &maps.sessions.unparsed;
    let v4 = |a: &str| crate::endpoint::kernel_address(a.parse().expect("address"));
    let (xa, xb) = (id("XA"), id("XB"));
    assert!(guards.blocks(&v4("100.64.0.1"), &v4("192.0.2.200"), xa));
    assert!(
        !guards.blocks(&v4("100.64.0.1"), &v4("192.0.2.20"), xa),
        "A's exception"
    );
    assert!(
        !guards.blocks(&v4("100.64.0.1"), &v4("198.51.100.1"), xb),
        "B is elsewhere"
    );
    assert!(guards.blocks(&v4("100.64.0.2"), &v4("198.51.100.1"), xb));
    assert!(
        !guards.blocks(&v4("100.64.0.3"), &v4("192.0.2.200"), xa),
        "no meeting there"
    );
    // C alone on an address: its exception inside its own drop enters.
    c.endpoints = vec!["udp:100.64.0.4:42000".parse().expect("endpoint")];
    state.meetings.insert("C".into(), c.clone());
    let guards = crate::unparsed::Guards::derive(&state, crate::clock::now());
    assert!(
        !guards.blocks(&v4("100.64.0.4"), &v4("192.0.2.20"), xa),
        "C's exception"
    );
    assert!(
        guards.blocks(&v4("100.64.0.4"), &v4("192.0.2.200"), xa),
        "C's drop"
    );
    // Beside B, which blocks a territory and grants no exception, it does not: without the
    // table the guard cannot tell that B's territory holds none of those addresses, and it
    // errs towards dropping.
    c.endpoints = vec!["udp:100.64.0.2:42000".parse().expect("endpoint")];
    state.meetings.insert("C".into(), c);
    let guards = crate::unparsed::Guards::derive(&state, crate::clock::now());
    assert!(
        guards.blocks(&v4("100.64.0.2"), &v4("192.0.2.20"), xa),
        "B grants nothing"
    );
}

/// An IPv6 header whose destination is IPv4-mapped reaches no meeting: the stack routes
/// it nowhere local.
#[test]
fn a_mapped_destination_reaches_no_meeting() {
    let mapped = frame(proto::UDP, "[2001:db8:a::5]:1", "[::ffff:100.64.0.1]:40000").bytes();
    check(
        "mapped destination",
        &mapped,
        Outcome::passed(PassReason::MappedDestination),
    );
    // Even with more extension headers than the walk follows.
    check(
        "mapped destination, padded",
        &padded(9, "[2001:db8:a::5]:1", "[::ffff:100.64.0.1]:40000"),
        Outcome::passed(PassReason::MappedDestination),
    );
}

/// Nested drops written ahead of their rules (a /24 in a /16, both new, in an old /8):
/// each inert one hands the decision on, to any depth.
#[test]
fn inert_drops_fall_back_through_every_level() {
    let state_with = |rules| {
        let mut state = State::default();
        state
            .meetings
            .insert("N".into(), meeting(5, &["udp:*:49000"], rules));
        ModelMaps::from_state(&state, geo(), &crate::expiry::Clock::now()).expect("maps")
    };
    let all = state_with(vec![
        rule(&[], &["192.0.0.0/8"], false, None),
        rule(&[], &["192.0.0.0/16"], true, None),
        rule(&[], &["192.0.2.0/24"], true, None),
    ]);
    let mut torn = all.sessions.clone();
    let policy = torn.policies.get_mut(&5).expect("policy");
    policy.rules[1] = filter_common::Rule::EMPTY;
    policy.rules[2] = filter_common::Rule::EMPTY;
    let torn = all.clone().with_sessions(torn);
    let bytes = frame(proto::UDP, "192.0.2.9:1", "100.64.0.1:49000").bytes();
    let got = verdict(&bytes, &torn, NOW);
    assert_eq!(
        (got.verdict, got.rule),
        (Verdict::Dropped, Some(0)),
        "the old /8"
    );
    let t = trace(&bytes, &torn, NOW);
    let d = t.decision.expect("decided");
    assert_eq!(d.shorter_hits.len(), 2, "the /16, then the /8");
    assert_eq!(d.decided_by, DecidedBy::DropOverride);
    let got = verdict(&bytes, &all, NOW);
    assert_eq!(
        (got.verdict, got.rule),
        (Verdict::WouldDrop, Some(2)),
        "the /24"
    );
}

#[test]
fn extension_header_limit() {
    // Six hop-by-hop headers are followed; a seventh extension header is one too many.
    let build = |n: usize| {
        let base = frame(proto::UDP, "[2001:db8:a::5]:1", "[2001:db8:ffff::1]:40000").bytes();
        let (head, udp) = base.split_at(14 + 40);
        let mut out = head.to_vec();
        out[14 + 6] = if n == 0 { proto::UDP } else { 0 };
        for i in 0..n {
            let next = if i + 1 == n { proto::UDP } else { 0 };
            out.extend([next, 0, 1, 4, 0, 0, 0, 0]);
        }
        out.extend(udp);
        out
    };
    let six = build(6);
    check("six", &six, session(1, "XA", Verdict::Dropped, &six));
    // The stack would deliver the seventh: M's rule on its wildcard endpoint blocks XA.
    check(
        "seven",
        &build(7),
        unparsed_blocked(PassReason::ExtHeaderLimit),
    );
    let addr = Ipv6Addr::from(u128::from_be_bytes(parse(&six).expect("parses").src));
    assert_eq!(addr, "2001:db8:a::5".parse::<Ipv6Addr>().expect("addr"));
}

#[test]
fn override_lpm_and_masking() {
    let m = maps();
    let src = filter_common::maps::v4_mapped([198, 51, 100, 7]);
    let o = m.override_for(1, &src).expect("the /32");
    assert_eq!(o.flags & RULE_DRY_RUN, 0);
    let src = filter_common::maps::v4_mapped([198, 51, 100, 100]);
    let o = m.override_for(1, &src).expect("the /25");
    assert_ne!(o.flags & RULE_DRY_RUN, 0);
    assert_eq!(m.override_for(2, &src), None, "another session");
    let _ = Ipv4Addr::LOCALHOST;
    assert_eq!(masked([0xff; 20], 35)[..5], [0xff, 0xff, 0xff, 0xff, 0xe0]);
}

#[test]
fn traces_name_their_reasons() {
    let m = maps();
    let run = |src: &str, dst: &str| trace(&frame(proto::UDP, src, dst).bytes(), &m, NOW);

    let t = run("192.0.2.10:1000", "100.64.0.9:40000");
    assert_eq!(
        t.session,
        Some(SessionLookup::Found {
            session: 1,
            key: SessionKey::WildcardEndpoint
        })
    );
    let territory = t.territory.as_ref().expect("looked up");
    assert_eq!(territory.prefix.as_deref(), Some("192.0.2.0/24"));
    let d = t.decision.as_ref().expect("decided");
    assert_eq!(d.decided_by, DecidedBy::Rules);
    assert_eq!(
        d.deciding_rule().map(|r| (r.slot, r.dry_run)),
        Some((0, false))
    );
    assert_eq!(
        t.outcome,
        verdict(
            &frame(proto::UDP, "192.0.2.10:1000", "100.64.0.9:40000").bytes(),
            &m,
            NOW
        )
    );

    let t = run("198.51.100.9:5000", "100.64.0.1:40000");
    assert_eq!(
        t.session,
        Some(SessionLookup::Found {
            session: 2,
            key: SessionKey::Flow
        })
    );

    let t = run("198.51.100.7:1000", "100.64.0.9:40000");
    let d = t.decision.as_ref().expect("decided");
    assert_eq!(d.decided_by, DecidedBy::DropOverride);
    assert_eq!(d.override_hit.map(|o| o.key_len), Some(32 + 96 + 32));
    assert_eq!(
        d.deciding_rule().map(|r| (r.slot, r.dry_run)),
        Some((1, false)),
        "the prefix-only rule in slot 1"
    );

    let t = run("198.51.100.9:1", "100.64.0.9:9");
    assert_eq!(t.session, Some(SessionLookup::PortUnused));
    let t = run("198.51.100.9:1", "100.64.0.1:443");
    assert_eq!(
        t.session,
        Some(SessionLookup::PortUnused),
        "udp/443 is unused; tcp/443 is"
    );
    let tcp = trace(
        &frame(proto::TCP, "10.0.0.1:1", "100.64.0.1:443").bytes(),
        &m,
        NOW,
    );
    assert_eq!(
        tcp.session,
        Some(SessionLookup::NoMatch),
        "tcp/443 is M's on another address"
    );
}

#[test]
fn a_lapsed_rule_is_traced_but_not_in_force() {
    // N blocks XC until 2000: the trace lists the rule as not in force.
    let m = maps();
    let n_policy = ModelMaps::decision(
        &m,
        2,
        &filter_common::maps::v4_mapped([198, 51, 100, 200]),
        id("XC"),
        NOW,
    );
    assert_eq!(n_policy.verdict, Verdict::Passed);
    assert_eq!(n_policy.rules.len(), 1);
    assert!(!n_policy.rules[0].in_force);
    assert_eq!(n_policy.deciding_rule(), None);
}

/// An inert drop (its rule not yet, or no longer, in its slot) is as if absent: the next
/// shorter override covering the source decides, one level down.
#[test]
fn an_inert_drop_lets_the_next_shorter_override_decide() {
    let mut m = meeting(
        4,
        &["udp:*:48000"],
        vec![
            rule(&["XA"], &[], false, None),
            rule(&[], &["192.0.2.0/28"], true, None),
            rule(&[], &["192.0.2.8/30"], false, None),
        ],
    );
    m.allows = vec![parse_prefix("192.0.2.64/26").expect("prefix")];
    m.rules.push(rule(&[], &["192.0.2.72/29"], false, None));
    let mut state = State::default();
    state.meetings.insert("N".to_string(), m);
    let all =
        ModelMaps::from_state(&state, geo(), &crate::expiry::Clock::now()).expect("derivable");
    let outcome = |maps: &ModelMaps, src: &str| {
        let o = verdict(
            &frame(proto::UDP, src, "100.64.0.1:48000").bytes(),
            maps,
            NOW,
        );
        (o.verdict, o.rule)
    };
    let without = |slots: &[usize]| {
        let mut s = all.sessions.clone();
        for &slot in slots {
            s.policies.get_mut(&4).expect("policy").rules[slot] = filter_common::Rule::EMPTY;
        }
        all.clone().with_sessions(s)
    };
    assert_eq!(
        outcome(&all, "192.0.2.9:1"),
        (Verdict::Dropped, Some(2)),
        "the inner drop"
    );
    assert_eq!(
        outcome(&without(&[2]), "192.0.2.9:1"),
        (Verdict::WouldDrop, Some(1)),
        "inner inert: the outer dry run decides, as if the inner were absent"
    );
    assert_eq!(
        outcome(&without(&[1, 2]), "192.0.2.9:1"),
        (Verdict::Dropped, Some(0)),
        "both inert: the territory rule"
    );
    assert_eq!(outcome(&all, "192.0.2.73:1"), (Verdict::Dropped, Some(3)));
    assert_eq!(
        outcome(&without(&[3]), "192.0.2.73:1"),
        (Verdict::Passed, None),
        "inner inert: the exception around it decides"
    );
    let t = trace(
        &frame(proto::UDP, "192.0.2.73:1", "100.64.0.1:48000").bytes(),
        &without(&[3]),
        NOW,
    );
    let d = t.decision.expect("decided");
    assert!(d.override_hit.is_some_and(|o| o.inert()));
    assert!(d.shorter_hits.first().is_some_and(|o| o.allows()));
    assert_eq!(d.decided_by, DecidedBy::AllowOverride);
    // A lapsed drop keeps the old rule: the territory rules decide, not the shorter entry.
    let mut lapsed = all.sessions.clone();
    for o in lapsed.overrides.values_mut() {
        if o.slot == 2 && o.action == filter_common::OverrideAction::Drop as u8 {
            o.expires_ns = NOW;
        }
    }
    let lapsed = all.clone().with_sessions(lapsed);
    assert_eq!(outcome(&lapsed, "192.0.2.9:1"), (Verdict::Dropped, Some(0)));
}
