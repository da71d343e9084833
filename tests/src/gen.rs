//! Deterministic generators for differential testing: rule sets ([`Scenario`]) and frames
//! ([`Scenario::random_case`], [`Scenario::structured_cases`]) that exercise every parse path
//! of the XDP program, drawn from a territory table so that sources land in real
//! territories, on meetings' endpoints and flows, and on nothing.
//!
//! Everything comes from one [`Rng`] (xorshift64*), so a seed reproduces a run.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use filter_common::{TERRITORY_UNKNOWN, TerritoryId};
use geofence::endpoint::{Endpoint, Flow, Proto};
use geofence::geo::{GeoTable, NetBits};
use geofence::state::{Meeting, Rule, State};
use geofence::territory::Territory;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use geofence_test_frames::{ETHERTYPE_LLDP, Ext, Frame, Packet, TPID_8021AD, TPID_8021Q};

/// xorshift64* (Vigna): small, fast, and good enough to spread test cases.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // A zero state would stay zero; mix the seed so that nearby seeds diverge at once.
        let mut r = Rng((seed ^ 0x9e37_79b9_7f4a_7c15).max(1));
        for _ in 0..4 {
            r.next_u64();
        }
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }
}

/// Local addresses of the relay: endpoints name some of them, wildcards match all.
pub const LOCAL_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(100, 64, 0, 1),
    Ipv4Addr::new(100, 64, 0, 2),
    Ipv4Addr::new(100, 64, 0, 3),
];
pub const LOCAL_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 2),
];
/// Ports meetings use; small, so that meetings, flows and strays collide.
const PORTS: [u16; 6] = [3478, 443, 40000, 40001, 40002, 40003];

fn sock(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A prefix of the territory table.
#[derive(Clone, Copy, Debug)]
pub enum Entry {
    V4(Ipv4Net, TerritoryId),
    V6(Ipv6Net, TerritoryId),
}

impl Entry {
    fn territory(self) -> TerritoryId {
        match self {
            Entry::V4(_, t) | Entry::V6(_, t) => t,
        }
    }
}

/// A random address inside `entry`.
fn inside(rng: &mut Rng, entry: Entry) -> IpAddr {
    match entry {
        Entry::V4(p, _) => IpAddr::V4(Ipv4Addr::from(
            p.first() | (rng.next_u64() as u32 & !Ipv4Net::mask(p.prefix_len())),
        )),
        Entry::V6(p, _) => IpAddr::V6(Ipv6Addr::from(
            p.first() | (rng.u128() & !Ipv6Net::mask(p.prefix_len())),
        )),
    }
}

/// A random entry of `table`, either family.
fn table_entry(rng: &mut Rng, table: &GeoTable) -> Option<Entry> {
    let v4 = !table.v4.is_empty() && (table.v6.is_empty() || rng.percent(60));
    if v4 {
        let (p, t) = *rng.pick(&table.v4);
        Some(Entry::V4(p, t))
    } else if !table.v6.is_empty() {
        let (p, t) = *rng.pick(&table.v6);
        Some(Entry::V6(p, t))
    } else {
        None
    }
}

/// A synthetic country table, for machines without `../shared/geo`: nested and adjacent
/// prefixes of both families in a few dozen territories.
pub fn synthetic_table(seed: u64) -> GeoTable {
    let mut rng = Rng::new(seed);
    let codes: Vec<TerritoryId> = (0..40).map(|_| rng.range(1, 676) as TerritoryId).collect();
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for _ in 0..3000 {
        let len = rng.range(8, 32) as u8;
        let prefix = Ipv4Net::network_of(rng.next_u64() as u32, len);
        v4.insert((prefix, *rng.pick(&codes)));
    }
    for _ in 0..2000 {
        // Mostly inside 2000::/3, as real allocations are.
        let len = rng.range(16, 64) as u8;
        let prefix = Ipv6Net::network_of((rng.u128() >> 3) | (1 << 125), len);
        v6.insert((prefix, *rng.pick(&codes)));
    }
    let dedup_v4 = dedup(v4.into_iter().collect());
    let dedup_v6 = dedup(v6.into_iter().collect());
    GeoTable {
        v4: dedup_v4,
        v6: dedup_v6,
        sources: Vec::new(),
    }
}

/// One territory per prefix (the table invariant), keeping the first.
fn dedup<P: PartialEq + Copy>(mut entries: Vec<(P, TerritoryId)>) -> Vec<(P, TerritoryId)> {
    entries.dedup_by(|b, a| a.0 == b.0);
    entries
}

/// A random rule set and what its packets should aim at.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub state: State,
    /// Endpoints of all meetings.
    pub endpoints: Vec<Endpoint>,
    pub flows: Vec<Flow>,
    /// Table entries whose territory some rule names: sources drawn here get blocked.
    pub hot: Vec<Entry>,
    /// Override and allow prefixes: sources drawn here hit overrides.
    pub prefixes: Vec<IpNet>,
    /// Territories some rule names, "unknown" included.
    pub territories: BTreeSet<TerritoryId>,
    /// Server ufrags registered on the shared ports, and their sessions
    /// ([`Scenario::add_mux`]).
    pub ufrags: Vec<(String, u32)>,
}

/// A prefix around `addr`: anything from a /8 (a /16 for IPv6) to the single host.
fn prefix_around(rng: &mut Rng, addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(a) => {
            let len = if rng.percent(50) {
                32
            } else {
                rng.range(8, 31) as u8
            };
            IpNet::V4(Ipv4Net::network_of(u32::from(a), len))
        }
        IpAddr::V6(a) => {
            let len = match rng.below(10) {
                0..=4 => 128,
                // Rarely short enough to cover ::ffff:0:0/96, the IPv4-mapped sources.
                5 => rng.range(1, 16) as u8,
                _ => rng.range(16, 127) as u8,
            };
            IpNet::V6(Ipv6Net::network_of(u128::from(a), len))
        }
    }
}

/// Three prefixes around `addr`, each inside the one before: an IPv4 /8, /16 and /24, or
/// an IPv6 /32, /48 and /64, with their lengths sometimes moved by a few bits.
fn nested_prefixes(rng: &mut Rng, addr: IpAddr) -> Vec<IpNet> {
    let mut out = Vec::new();
    for level in 0..3 {
        let jitter = rng.below(3) as u8;
        match addr {
            IpAddr::V4(a) => {
                let len = 8 * (level + 1) + jitter;
                out.push(IpNet::V4(Ipv4Net::network_of(u32::from(a), len)));
            }
            IpAddr::V6(a) => {
                let len = 32 + 16 * level + jitter;
                out.push(IpNet::V6(Ipv6Net::network_of(u128::from(a), len)));
            }
        }
    }
    out
}

impl Scenario {
    /// Up to six meetings with distinct session ids; each with endpoints (wildcard and
    /// specific, UDP and TCP), flows, territory rules (dry run, expired, expiring in two
    /// months), drop overrides and allows.
    pub fn random(rng: &mut Rng, table: &GeoTable) -> Scenario {
        let mut s = Scenario {
            state: State::default(),
            endpoints: Vec::new(),
            flows: Vec::new(),
            hot: Vec::new(),
            prefixes: Vec::new(),
            territories: BTreeSet::new(),
            ufrags: Vec::new(),
        };
        let mut sessions = BTreeSet::new();
        let mut used_keys = BTreeSet::new();
        let meetings = rng.range(1, 6);
        for m in 0..meetings {
            let session = loop {
                let id = match rng.below(3) {
                    0 => rng.range(1, 8) as u32,
                    1 => rng.range(250, 260) as u32,
                    _ => rng.range(1, 4095) as u32,
                };
                if sessions.insert(id) {
                    break id;
                }
            };
            let mut meeting = Meeting {
                session,
                created: geofence::clock::now(),
                endpoints: Vec::new(),
                flows: Vec::new(),
                rules: Vec::new(),
                allows: Vec::new(),
            };
            for _ in 0..rng.range(0, 3) {
                let proto = if rng.percent(60) {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                let addr = match rng.below(4) {
                    0 | 1 => None,
                    2 => Some(IpAddr::V4(*rng.pick(&LOCAL_V4))),
                    _ => Some(IpAddr::V6(*rng.pick(&LOCAL_V6))),
                };
                let first = *rng.pick(&PORTS);
                let last = first.saturating_add(rng.below(3) as u16);
                let endpoint = Endpoint {
                    proto,
                    addr,
                    first_port: first,
                    last_port: last,
                };
                // Two meetings on one endpoint key is a state the CLI refuses.
                let keys: Vec<_> = endpoint.ports().map(|p| (proto, addr, p)).collect();
                if keys.iter().any(|k| used_keys.contains(k)) {
                    continue;
                }
                used_keys.extend(keys);
                s.endpoints.push(endpoint.clone());
                meeting.endpoints.push(endpoint);
            }
            for _ in 0..rng.range(0, 2) {
                let Some(entry) = table_entry(rng, table) else {
                    break;
                };
                let src = inside(rng, entry);
                let dst = match src {
                    IpAddr::V4(_) => IpAddr::V4(*rng.pick(&LOCAL_V4)),
                    IpAddr::V6(_) => IpAddr::V6(*rng.pick(&LOCAL_V6)),
                };
                let proto = if rng.percent(70) {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                let src_port = rng.range(1024, 65535) as u16;
                let flow = Flow::new(proto, sock(src, src_port), sock(dst, *rng.pick(&PORTS)))
                    .expect("one family");
                s.flows.push(flow.clone());
                s.hot.push(entry);
                meeting.flows.push(flow);
            }
            for _ in 0..rng.range(0, 3) {
                let mut territories = Vec::new();
                for _ in 0..rng.range(1, 3) {
                    let id = match table_entry(rng, table) {
                        Some(entry) if !rng.percent(15) => {
                            s.hot.push(entry);
                            entry.territory()
                        }
                        _ => TERRITORY_UNKNOWN,
                    };
                    s.territories.insert(id);
                    territories.push(Territory::from_id(id));
                }
                meeting.rules.push(rule(rng, territories, Vec::new(), m));
            }
            for _ in 0..rng.range(0, 2) {
                let mut prefixes = Vec::new();
                for _ in 0..rng.range(1, 3) {
                    if let Some(entry) = table_entry(rng, table) {
                        let addr = inside(rng, entry);
                        let p = prefix_around(rng, addr);
                        s.prefixes.push(p);
                        prefixes.push(p);
                    }
                }
                meeting.rules.push(rule(rng, Vec::new(), prefixes, m));
            }
            for _ in 0..rng.range(0, 2) {
                if let Some(entry) = table_entry(rng, table) {
                    let addr = inside(rng, entry);
                    let p = prefix_around(rng, addr);
                    s.prefixes.push(p);
                    meeting.allows.push(p);
                }
            }
            // Drops nested three deep, each under its own rule (and so its own slot), as
            // orders that narrow or widen one another leave them.
            if rng.percent(30)
                && let Some(entry) = table_entry(rng, table)
            {
                let addr = inside(rng, entry);
                for p in nested_prefixes(rng, addr) {
                    s.prefixes.push(p);
                    meeting.rules.push(rule(rng, Vec::new(), vec![p], m));
                }
            }
            s.state.meetings.insert(format!("m{m}-s{session}"), meeting);
        }
        s
    }

    /// [`Self::source`] of one family, for the STUN sequences.
    pub(crate) fn source_of(&self, rng: &mut Rng, table: &GeoTable, v6: bool) -> IpAddr {
        self.source(rng, table, Some(v6))
    }

    /// A source address of family `v6` (`None`: either): in a blocked territory, in an
    /// override prefix, anywhere in the table, or unknown.
    fn source(&self, rng: &mut Rng, table: &GeoTable, v6: Option<bool>) -> IpAddr {
        for _ in 0..8 {
            let addr = match rng.below(10) {
                0..=3 if !self.hot.is_empty() => {
                    let entry = *rng.pick(&self.hot);
                    inside(rng, entry)
                }
                4 | 5 if !self.prefixes.is_empty() => match *rng.pick(&self.prefixes) {
                    IpNet::V4(p) => inside(rng, Entry::V4(p, 0)),
                    IpNet::V6(p) => inside(rng, Entry::V6(p, 0)),
                },
                6..=8 => match table_entry(rng, table) {
                    Some(entry) => inside(rng, entry),
                    None => continue,
                },
                _ => {
                    if rng.percent(50) {
                        IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(rng.u128()))
                    }
                }
            };
            if v6.is_none_or(|v6| v6 == addr.is_ipv6()) {
                return addr;
            }
        }
        match v6 {
            Some(true) => IpAddr::V6(Ipv6Addr::from(rng.u128())),
            _ => IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)),
        }
    }

    /// A destination and protocol: on an endpoint (also the IPv4-mapped form of an IPv4
    /// one, and ports just outside its range), a flow (exact, or one field off), or a
    /// random local or foreign address.
    fn target(&self, rng: &mut Rng, table: &GeoTable) -> (Proto, SocketAddr, SocketAddr) {
        let proto = |rng: &mut Rng| {
            if rng.percent(50) {
                Proto::Udp
            } else {
                Proto::Tcp
            }
        };
        match rng.below(10) {
            0..=4 if !self.endpoints.is_empty() => {
                let e = rng.pick(&self.endpoints).clone();
                let port = match rng.below(10) {
                    0 => e.first_port.wrapping_sub(1),
                    1 => e.last_port.wrapping_add(1),
                    _ => rng.range(e.first_port.into(), e.last_port.into()) as u16,
                };
                let proto = if rng.percent(90) { e.proto } else { proto(rng) };
                let v6 = match e.addr {
                    Some(a) => a.is_ipv6() || rng.percent(10),
                    None => rng.percent(50),
                };
                let dst = match e.addr {
                    Some(IpAddr::V4(a)) if v6 => IpAddr::V6(a.to_ipv6_mapped()),
                    Some(a) => a,
                    None if v6 => IpAddr::V6(*rng.pick(&LOCAL_V6)),
                    None => IpAddr::V4(*rng.pick(&LOCAL_V4)),
                };
                let mut src = self.source(rng, table, Some(v6));
                if v6 && rng.percent(10) {
                    // An IPv4 source, IPv4-mapped in an IPv6 header: the IPv4 table applies.
                    if let IpAddr::V4(a) = self.source(rng, table, Some(false)) {
                        src = IpAddr::V6(a.to_ipv6_mapped());
                    }
                }
                (
                    proto,
                    sock(src, rng.range(1, 65535) as u16),
                    sock(dst, port),
                )
            }
            5..=7 if !self.flows.is_empty() => {
                let f = rng.pick(&self.flows).clone();
                let (mut proto, mut src, mut dst) = (f.proto, f.src, f.dst);
                match rng.below(8) {
                    0 => src.set_port(src.port().wrapping_add(1)),
                    1 => dst.set_port(dst.port() ^ 1),
                    2 => {
                        proto = if proto == Proto::Udp {
                            Proto::Tcp
                        } else {
                            Proto::Udp
                        }
                    }
                    3 => src.set_ip(self.source(rng, table, Some(src.is_ipv6()))),
                    _ => {}
                }
                (proto, src, dst)
            }
            _ => {
                let v6 = rng.percent(40);
                let src = self.source(rng, table, Some(v6));
                let dst = match (v6, rng.percent(70)) {
                    (false, true) => IpAddr::V4(*rng.pick(&LOCAL_V4)),
                    (true, true) => IpAddr::V6(*rng.pick(&LOCAL_V6)),
                    (false, false) => IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)),
                    (true, false) => IpAddr::V6(Ipv6Addr::from(rng.u128())),
                };
                let port = if rng.percent(70) {
                    *rng.pick(&PORTS)
                } else {
                    rng.range(0, 65535) as u16
                };
                (
                    proto(rng),
                    sock(src, rng.range(0, 65535) as u16),
                    sock(dst, port),
                )
            }
        }
    }

    /// One random frame: any target, any encapsulation, sometimes cut short or with a
    /// header byte changed.
    pub fn random_case(&self, rng: &mut Rng, table: &GeoTable) -> Case {
        let (proto, src, dst) = self.target(rng, table);
        let mut what = String::from("random");
        let packet = match rng.below(100) {
            0..=1 => {
                what.push_str(" non-IP");
                match rng.below(3) {
                    0 => Packet::arp(LOCAL_V4[0], LOCAL_V4[1]),
                    1 => Packet::non_ip(ETHERTYPE_LLDP, "lldp", vec![0; 20]),
                    _ => Packet::non_ip(rng.next_u64() as u16, "other", vec![0x45; 40]),
                }
            }
            2..=4 => {
                what.push_str(" ICMP");
                Packet::icmp(src.ip(), dst.ip())
            }
            5..=6 => {
                let p = *rng.pick(&[47, 50, 59, 132, 135, 139, 253, 255, 0, 43, 44, 60, 51]);
                what.push_str(&format!(" IP proto {p}"));
                Packet::raw_ip(src.ip(), dst.ip(), p)
            }
            _ => match proto {
                Proto::Udp => Packet::udp(src, dst),
                Proto::Tcp => Packet::tcp(src, dst),
            },
        };
        let packet = packet.payload(&vec![0xab; rng.below(48)]);
        let packet = random_vlans(rng, packet);
        let is_ip = !what.contains("non-IP");
        let packet = if !is_ip {
            packet
        } else if src.is_ipv4() {
            random_ipv4(rng, packet)
        } else {
            random_ipv6(rng, packet)
        };
        let mut frame = packet.build();
        match rng.below(100) {
            0..=11 => {
                let len = rng.range(14.min(frame.len()), frame.len());
                what.push_str(&format!(", cut to {len}"));
                frame = frame.truncated(len);
            }
            12..=16 => {
                let at = rng.below(frame.headers_len.clamp(1, frame.len()));
                frame.bytes[at] ^= 1 << rng.below(8);
                what.push_str(&format!(", bit flipped at {at}"));
            }
            17 => {
                let at = rng.below(frame.len());
                frame.bytes[at] = rng.next_u64() as u8;
                what.push_str(&format!(", byte {at} replaced"));
            }
            _ => {}
        }
        Case { frame, what }
    }

    /// Every VLAN / IPv4 option and fragment / IPv6 extension chain combination, for UDP
    /// and TCP, aimed at the scenario's endpoints, flows and nothing in turn; then every cut
    /// of some of them, at each byte offset.
    pub fn structured_cases(&self, rng: &mut Rng, table: &GeoTable) -> Vec<Case> {
        let vlans: [&[u16]; 6] = [
            &[],
            &[TPID_8021Q],
            &[TPID_8021AD],
            &[TPID_8021AD, TPID_8021Q],
            &[TPID_8021Q, TPID_8021Q],
            &[TPID_8021AD, TPID_8021Q, TPID_8021Q],
        ];
        let v4_variants: [(&str, Variant); 9] = [
            ("plain", |p| p),
            ("options 4", |p| p.ipv4_options(4)),
            ("options 40", |p| p.ipv4_options(40)),
            ("DF", |p| p.dont_fragment()),
            ("first fragment", |p| p.fragment(0, true)),
            ("first fragment 4 bytes", |p| p.fragment(0, true).carry(4)),
            ("first fragment 8 bytes", |p| p.fragment(0, true).carry(8)),
            ("later fragment", |p| p.fragment(185, true)),
            ("last fragment", |p| p.fragment(1, false)),
        ];
        let frag_first = Ext::FIRST_FRAGMENT;
        let frag_later = Ext::Fragment {
            offset: 3,
            more: false,
        };
        let frag_atomic = Ext::Fragment {
            offset: 0,
            more: false,
        };
        let hbh = Ext::HopByHop { len: 1 };
        let v6_chains: Vec<(&str, Vec<Ext>, Option<usize>)> = vec![
            ("no ext", vec![], None),
            ("hop-by-hop", vec![hbh], None),
            ("routing", vec![Ext::ROUTING], None),
            ("dest-opts", vec![Ext::DEST_OPTS], None),
            ("auth", vec![Ext::AUTH], None),
            ("auth len 1", vec![Ext::Auth { len: 1 }], None),
            ("first fragment", vec![frag_first], None),
            ("first fragment 4 bytes", vec![frag_first], Some(4)),
            ("atomic fragment", vec![frag_atomic], None),
            ("later fragment", vec![frag_later], None),
            (
                "hbh dst rt frag ah",
                vec![hbh, Ext::DEST_OPTS, Ext::ROUTING, frag_first, Ext::AUTH],
                None,
            ),
            (
                "six",
                vec![
                    hbh,
                    Ext::DEST_OPTS,
                    Ext::ROUTING,
                    Ext::AUTH,
                    frag_first,
                    Ext::DEST_OPTS,
                ],
                None,
            ),
            (
                "seven",
                vec![
                    hbh,
                    Ext::DEST_OPTS,
                    Ext::ROUTING,
                    Ext::AUTH,
                    frag_first,
                    Ext::DEST_OPTS,
                    Ext::DEST_OPTS,
                ],
                None,
            ),
            (
                "six, later fragment last",
                vec![
                    hbh,
                    Ext::DEST_OPTS,
                    Ext::ROUTING,
                    Ext::AUTH,
                    Ext::DEST_OPTS,
                    frag_later,
                ],
                None,
            ),
            (
                "seven, later fragment last",
                vec![
                    hbh,
                    Ext::DEST_OPTS,
                    Ext::ROUTING,
                    Ext::AUTH,
                    Ext::DEST_OPTS,
                    frag_first,
                    frag_later,
                ],
                None,
            ),
            ("two fragment headers", vec![frag_first, frag_atomic], None),
            ("long dest-opts", vec![Ext::DestOpts { len: 20 }], None),
        ];
        let mut cases = Vec::new();
        let mut n = 0usize;
        let next_target = |rng: &mut Rng, v6: bool| loop {
            let (proto, src, dst) = self.target(rng, table);
            if src.is_ipv6() == v6 {
                return (proto, src, dst);
            }
        };
        for tags in vlans {
            for proto in [Proto::Udp, Proto::Tcp] {
                let mut bases = Vec::new();
                for (name, variant) in v4_variants {
                    let (_, src, dst) = next_target(rng, false);
                    bases.push((format!("IPv4 {name}"), variant(base(proto, src, dst))));
                }
                for (name, exts, carry) in &v6_chains {
                    let (_, src, dst) = next_target(rng, true);
                    let mut p = base(proto, src, dst).exts(exts);
                    if let Some(len) = carry {
                        p = p.carry(*len);
                    }
                    bases.push((format!("IPv6 {name}"), p));
                }
                for (name, p) in bases {
                    let p = tags
                        .iter()
                        .enumerate()
                        .fold(p, |p, (i, tpid)| p.vlan(*tpid, 100 + i as u16));
                    let frame = p.build();
                    let what = format!("structured {proto} {name}, {} VLAN tags", tags.len());
                    // Every 16th combination is also cut at every byte offset.
                    if n.is_multiple_of(16) {
                        for len in 0..frame.len() {
                            cases.push(Case {
                                frame: frame.truncated(len),
                                what: format!("{what}, cut to {len}"),
                            });
                        }
                    }
                    n += 1;
                    cases.push(Case { frame, what });
                }
            }
        }
        cases
    }
}

/// A change made to a packet.
type Variant = fn(Packet) -> Packet;

fn base(proto: Proto, src: SocketAddr, dst: SocketAddr) -> Packet {
    match proto {
        Proto::Udp => Packet::udp(src, dst),
        Proto::Tcp => Packet::tcp(src, dst),
    }
}

fn rule(rng: &mut Rng, territories: Vec<Territory>, prefixes: Vec<IpNet>, m: usize) -> Rule {
    Rule {
        order: format!("diff-{m}-{}", rng.below(1000)),
        territories,
        prefixes,
        // Far from now either way, so that a run never crosses an expiry.
        expires: match rng.below(5) {
            0 => Some("2001-01-01T00:00:00Z".parse().expect("a time")),
            1 => Some(
                geofence::expiry::expiry_after(
                    geofence::clock::now(),
                    Duration::from_secs(60 * 86_400),
                )
                .expect("in range"),
            ),
            _ => None,
        },
        dry_run: rng.percent(30),
        issued: geofence::clock::now(),
        issued_by: "differential".to_string(),
        slot: None,
    }
}

fn random_vlans(rng: &mut Rng, packet: Packet) -> Packet {
    let tags = match rng.below(20) {
        0..=10 => 0,
        11..=14 => 1,
        15..=18 => 2,
        _ => 3,
    };
    (0..tags).fold(packet, |p, _| {
        let tpid = match rng.below(10) {
            0..=4 => TPID_8021Q,
            5..=8 => TPID_8021AD,
            _ => 0x9100,
        };
        p.vlan(tpid, rng.below(4096) as u16)
    })
}

fn random_ipv4(rng: &mut Rng, mut p: Packet) -> Packet {
    if rng.percent(15) {
        p = p.ipv4_options(4 * rng.range(1, 10));
    }
    match rng.below(20) {
        0 => p = p.ihl(rng.below(16) as u8),
        1 => p = p.ip_version(*rng.pick(&[0, 5, 6, 15])),
        _ => {}
    }
    match rng.below(20) {
        0..=1 => p = p.fragment(0, true).carry(rng.below(24)),
        2 => p = p.fragment(0, true),
        3 => p = p.fragment(rng.range(1, 8191) as u16, rng.percent(50)),
        4 => p = p.dont_fragment(),
        _ => {}
    }
    p
}

fn random_ext(rng: &mut Rng) -> Ext {
    match rng.below(11) {
        0 | 1 => Ext::HopByHop {
            len: rng.below(3) as u8,
        },
        2 | 3 => Ext::Routing {
            len: rng.below(3) as u8,
        },
        4 | 5 => Ext::DestOpts {
            len: rng.below(3) as u8,
        },
        6 | 7 => Ext::Auth {
            len: rng.range(1, 6) as u8,
        },
        8 => Ext::FIRST_FRAGMENT,
        9 => Ext::Fragment {
            offset: 0,
            more: false,
        },
        _ => Ext::Fragment {
            offset: rng.range(1, 8191) as u16,
            more: rng.percent(50),
        },
    }
}

fn random_ipv6(rng: &mut Rng, mut p: Packet) -> Packet {
    if rng.percent(40) {
        let n = match rng.below(10) {
            0..=5 => 1,
            6 | 7 => rng.range(2, 5),
            _ => rng.range(6, 8),
        };
        for _ in 0..n {
            p = p.ext(random_ext(rng));
        }
        if rng.percent(10) {
            p = p.carry(rng.below(24));
        }
    }
    if rng.percent(3) {
        p = p.ip_version(*rng.pick(&[0, 4, 7, 15]));
    }
    p
}

/// A generated frame and how it was made.
#[derive(Clone, Debug)]
pub struct Case {
    pub frame: Frame,
    pub what: String,
}

/// `bytes` as hex, 16 bytes a line, with offsets.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let line: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("  {:04x}  {}\n", i * 16, line.join(" ")));
    }
    out
}
