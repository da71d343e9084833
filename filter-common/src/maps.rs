//! Map keys, and the names under which the maps are pinned.
//!
//! Addresses are 16 bytes in network order; IPv4 addresses are stored IPv4-mapped
//! (`::ffff:a.b.c.d`) so one key type serves both families. Ports are in host order.

/// A 16-byte address in network order; IPv4 is `::ffff:a.b.c.d`.
pub type Address = [u8; 16];

/// The IPv4-mapped prefix `::ffff:0:0/96`.
pub const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// An IPv4 address as [`Address`].
#[inline(always)]
pub const fn v4_mapped(v4: [u8; 4]) -> Address {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

/// The address an endpoint uses to match any local address, of either family.
pub const ADDRESS_ANY: Address = [0; 16];

/// An [`Address`] as the XDP program carries it between steps: its bytes as two words in
/// memory order. The program reads a packet's address a byte at a time either way: LLVM's
/// BPF target may not assume the packet aligned, and its `allows-misaligned-mem-access`
/// feature misaligns stack accesses too, which the verifier refuses. Held as sixteen
/// bytes, the address took sixteen stack slots where the IPv4 and IPv6 paths meet and was
/// reassembled into words by each lookup; as two words it takes two registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressWords {
    /// Bytes 0..8 in memory order (`u64::from_ne_bytes`).
    pub hi: u64,
    /// Bytes 8..16 in memory order.
    pub lo: u64,
}

impl AddressWords {
    #[inline(always)]
    pub fn of(address: &Address) -> AddressWords {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = *address;
        AddressWords {
            hi: u64::from_ne_bytes([a, b, c, d, e, f, g, h]),
            lo: u64::from_ne_bytes([i, j, k, l, m, n, o, p]),
        }
    }

    /// An IPv4 address (network order), IPv4-mapped.
    #[inline(always)]
    pub fn v4_mapped(v4: [u8; 4]) -> AddressWords {
        let [a, b, c, d] = v4;
        AddressWords {
            hi: 0,
            lo: u64::from_ne_bytes([0, 0, 0xff, 0xff, a, b, c, d]),
        }
    }

    #[inline(always)]
    pub fn octets(self) -> Address {
        let [a, b, c, d, e, f, g, h] = self.hi.to_ne_bytes();
        let [i, j, k, l, m, n, o, p] = self.lo.to_ne_bytes();
        [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]
    }

    /// The IPv4 address (host order), if this is an IPv4-mapped address.
    #[inline(always)]
    pub fn v4(self) -> Option<u32> {
        let [i, j, k, l, m, n, o, p] = self.lo.to_ne_bytes();
        (self.hi == 0 && [i, j, k, l] == [0, 0, 0xff, 0xff])
            .then(|| u32::from_be_bytes([m, n, o, p]))
    }

    /// The address as two big-endian numbers, high half first: what range lookups compare.
    #[inline(always)]
    pub fn numbers(self) -> (u64, u64) {
        (
            u64::from_be_bytes(self.hi.to_ne_bytes()),
            u64::from_be_bytes(self.lo.to_ne_bytes()),
        )
    }
}

/// An exact flow binding: one client's 5-tuple, bound to a session by the control plane.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: u8,
    /// Zero, except that a policy flow's key holds its generation's
    /// [`crate::generation::flow_tag`] in the first byte ([`FlowKey::in_generation`]).
    pub _pad: [u8; 3],
    pub src_port: u16,
    pub dst_port: u16,
    pub src: Address,
    pub dst: Address,
}

impl FlowKey {
    /// The key under which a policy binding of this flow applies in `generation`.
    #[inline(always)]
    pub const fn in_generation(self, generation: u32) -> FlowKey {
        FlowKey {
            _pad: [crate::generation::flow_tag(generation), 0, 0],
            ..self
        }
    }
}

/// A local endpoint of the relay; `addr` is [`ADDRESS_ANY`] for a wildcard endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub proto: u8,
    pub _pad: u8,
    pub port: u16,
    pub addr: Address,
}

/// Data of an LPM key over `(session id, source address)` for per-session overrides.
///
/// The session id is big-endian so that it forms the leading 32 bits of the prefix;
/// an override on `a.b.c.d/n` has prefix length `32 + 96 + n`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OverrideKey {
    pub session_be: [u8; 4],
    pub addr: Address,
}

/// Bits of the session id at the front of every [`OverrideKey`] prefix.
pub const OVERRIDE_SESSION_BITS: u32 = 32;

/// Data of an LPM key of the IPv4 territory table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TerritoryKeyV4 {
    pub addr: [u8; 4],
}

/// Data of an LPM key of the IPv6 territory table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TerritoryKeyV6 {
    pub addr: [u8; 16],
}

/// The `PORTS` table: one `u32` per (UDP or TCP, destination port). Its low bits say
/// which session keys exist on the port (flows, endpoints on a local address, an endpoint
/// on any address); its high bits hold the session of the wildcard endpoint, which a port
/// has at most one of. So a packet of no meeting costs one array read, and a packet to a
/// wildcard endpoint finds its session in that same read, with no hash lookup; only flows
/// and address-bound endpoints cost one.
pub mod ports {
    /// A flow binding has this destination port.
    pub const FLOW: u32 = 1;
    /// An endpoint on a specific local address has this port.
    pub const ENDPOINT_ADDR: u32 = 2;
    /// An endpoint on any local address (`*`) has this port; the entry holds its session.
    pub const ENDPOINT_ANY: u32 = 4;
    /// A mux endpoint (see [`crate::mux`]) has this port, on one address or any: STUN
    /// Binding requests to it are read for their ufrag. Always set with [`FLOW`], since
    /// learned flows can appear on the port at any time.
    pub const MUX: u32 = 8;
    /// A policy flow binding (`flow add`, the policy file) has this destination port: its
    /// key carries the generation's tag (see [`crate::generation::flow_tag`]).
    pub const POLICY_FLOW: u32 = 16;
    /// The key bits of an entry.
    pub const KEYS: u32 = 0x1f;
    /// Where the wildcard endpoint's session id starts in an entry.
    pub const SESSION_SHIFT: u32 = 16;

    /// Entries of one generation's table: 65,536 ports × 2 protocols (512 KiB).
    pub const ENTRIES: u32 = 2 * 65_536;
    /// The array holds two entries per element: BPF arrays give every element 8 bytes, so
    /// a plain `u32` array would double in size and leave every other `u32` of its memory
    /// mapping unused.
    pub type Element = [u32; 2];
    /// Elements of the array: one table per generation, generation 1's after generation
    /// 0's (see [`crate::generation`]).
    pub const ELEMENTS: u32 = crate::generation::COUNT * ENTRIES / 2;

    /// The entry of `index` (see [`index`]) in `generation`'s table.
    #[inline(always)]
    pub const fn in_generation(generation: u32, index: u32) -> u32 {
        (generation & 1) * ENTRIES + index
    }

    /// The entry index of `(proto, port)`; `None` for protocols other than UDP/TCP.
    #[inline(always)]
    pub const fn index(proto: u8, port: u16) -> Option<u32> {
        match proto {
            crate::proto::UDP => Some(port as u32),
            crate::proto::TCP => Some(65_536 + port as u32),
            _ => None,
        }
    }

    /// An entry: `keys` bits, and `wildcard_session` when `keys` has [`ENDPOINT_ANY`].
    #[inline(always)]
    pub const fn entry(keys: u32, wildcard_session: u32) -> u32 {
        if keys & ENDPOINT_ANY != 0 {
            (keys & KEYS) | (wildcard_session << SESSION_SHIFT)
        } else {
            keys & KEYS
        }
    }

    /// The wildcard endpoint's session of an entry with [`ENDPOINT_ANY`].
    #[inline(always)]
    pub const fn wildcard_session(entry: u32) -> u32 {
        entry >> SESSION_SHIFT
    }

    // Session ids, and the mux endpoint's, must fit above the key bits.
    const _: () = assert!(super::capacity::MAX_SESSIONS <= 1 << (32 - SESSION_SHIFT));
    const _: () = assert!(crate::mux::MUX_SESSION < 1 << (32 - SESSION_SHIFT));
}

/// The `OVERRIDE_SESSIONS` bitmap: one bit per session that has any prefix override, so
/// the packets of the many sessions without one skip the LPM trie.
pub mod override_sessions {
    /// Words of the bitmap: one bit per session id and generation.
    pub const WORDS: u32 = crate::generation::COUNT * super::capacity::MAX_SESSIONS / 64;

    /// The word index and bit of a session's [`crate::generation::keyed`] id; `None`
    /// beyond them.
    #[inline(always)]
    pub const fn bit(keyed: u32) -> Option<(u32, u64)> {
        crate::generation::live::bit(keyed)
    }
}

/// Where the program finds a session's [`crate::Policy`]: `POLICY_INDEX` gives, per session
/// id, its entry in the `POLICIES` pool (0: none). A changed policy is written whole into
/// an entry no session names, then the session's index is switched with one 4-byte store:
/// a packet reads the old policy or the new, never a mix, with two array reads and no hash
/// lookup. An entry a switch left is rewritten only after an RCU grace period, so no
/// packet still reads it.
pub mod policy_index {
    /// Pool entries; entry 0 is never used, an index of 0 meaning "no policy".
    pub const POOL: u32 = 2048;
    /// Two session ids per array element (BPF arrays give every element 8 bytes).
    pub type Element = [u32; 2];
    /// Elements of `POLICY_INDEX`: every session id in each generation.
    pub const ELEMENTS: u32 = crate::generation::COUNT * super::capacity::MAX_SESSIONS / 2;

    /// The element and half holding the index of a session's [`crate::generation::keyed`]
    /// id; `None` beyond them.
    #[inline(always)]
    pub const fn position(keyed: u32) -> Option<(u32, usize)> {
        if keyed >= crate::generation::COUNT * super::capacity::MAX_SESSIONS {
            return None;
        }
        Some((keyed / 2, (keyed & 1) as usize))
    }
}

/// Capacities, shared so userspace can refuse what the kernel maps cannot hold.
pub mod capacity {
    /// Session ids are `1..MAX_SESSIONS`; 0 is never a session.
    pub const MAX_SESSIONS: u32 = 4096;
    /// Flow bindings, learned and bound by API: an LRU hash, so that a flood of new flows
    /// evicts the least recently used instead of failing.
    pub const FLOWS: u32 = 262_144;
    /// Registered server ufrags: one per participant transport on the relay (8.5 MiB at
    /// 65,536 would take the maps past 128 MiB with 262,144 flows).
    pub const UFRAGS: u32 = 32_768;
    /// Four per session id: a meeting has a media port or two and a TCP fallback.
    pub const ENDPOINTS: u32 = 16_384;
    pub const OVERRIDES: u32 = 65_536;
    /// Prefixes of a loaded table, per family. DB-IP Lite, the largest published table
    /// measured, splits into 593,597 IPv4 and 773,898 IPv6 prefixes. The stock tries that
    /// can hold them are not preallocated: the size costs nothing until they are filled.
    pub const TERRITORY_V4: u32 = 2_097_152;
    pub const TERRITORY_V6: u32 = 2_097_152;
    pub const SESSION_STATS: u32 = 65_536;
    /// Meetings with rules at once: each may need a second pool entry while its policy
    /// changes.
    pub const SESSIONS_WITH_RULES: u32 = (super::policy_index::POOL - 1) / 2;
    // Every meeting with rules may hold two pool entries at once, and entry 0 is unused.
    const _: () = assert!(2 * SESSIONS_WITH_RULES < super::policy_index::POOL);
}

/// Pinned map names (the kernel keeps 15 characters of a map name).
pub mod names {
    pub const FLOWS: &str = "FLOWS";
    pub const ENDPOINTS: &str = "ENDPOINTS";
    pub const OVERRIDES: &str = "OVERRIDES";
    /// The pool of policies (see [`crate::maps::policy_index`]).
    pub const POLICIES: &str = "POLICIES";
    /// Session id → its entry in `POLICIES`.
    pub const POLICY_INDEX: &str = "POLICY_INDEX";
    pub const GEO4_A: &str = "GEO4_A";
    pub const GEO4_B: &str = "GEO4_B";
    pub const GEO6_A: &str = "GEO6_A";
    pub const GEO6_B: &str = "GEO6_B";
    /// The flattened table (see [`crate::geo`]), generations A and B.
    pub const GEO4_16_A: &str = "GEO4_16_A";
    pub const GEO4_16_B: &str = "GEO4_16_B";
    pub const GEO4_24_A: &str = "GEO4_24_A";
    pub const GEO4_24_B: &str = "GEO4_24_B";
    pub const GEO4_24L_A: &str = "GEO4_24L_A";
    pub const GEO4_24L_B: &str = "GEO4_24L_B";
    pub const GEO4_8_A: &str = "GEO4_8_A";
    pub const GEO4_8_B: &str = "GEO4_8_B";
    pub const GEO4_8L_A: &str = "GEO4_8L_A";
    pub const GEO4_8L_B: &str = "GEO4_8L_B";
    pub const GEO6_16_A: &str = "GEO6_16_A";
    pub const GEO6_16_B: &str = "GEO6_16_B";
    pub const GEO6_N_A: &str = "GEO6_N_A";
    pub const GEO6_N_B: &str = "GEO6_N_B";
    pub const GEO6_RH_A: &str = "GEO6_RH_A";
    pub const GEO6_RH_B: &str = "GEO6_RH_B";
    pub const GEO6_RL_A: &str = "GEO6_RL_A";
    pub const GEO6_RL_B: &str = "GEO6_RL_B";
    pub const GEO6_T_A: &str = "GEO6_T_A";
    pub const GEO6_T_B: &str = "GEO6_T_B";
    pub const GEO6_P_A: &str = "GEO6_P_A";
    pub const GEO6_P_B: &str = "GEO6_P_B";
    pub const SESSION_STATS: &str = "SESSION_STATS";
    /// The per-CPU front of `SESSION_STATS` (see [`crate::CachedStats`]).
    pub const STATS_CACHE: &str = "STATS_CACHE";
    pub const PASS_REASONS: &str = "PASS_REASONS";
    pub const PORTS: &str = "PORTS";
    pub const OVERRIDE_SESSIONS: &str = "OVERRIDE_SESSIONS";
    /// Per rule slot: packets and bytes dropped or would-drop (see [`crate::accounting`]).
    pub const RULE_COUNTERS: &str = "RULE_COUNTERS";
    /// Per rule slot: the distinct-source sketch.
    pub const RULE_SOURCES: &str = "RULE_SOURCES";
    /// Server ICE ufrag → meeting (see [`crate::mux`]).
    pub const UFRAGS: &str = "UFRAGS";
    /// Per CPU: what happened to STUN on mux ports (see [`crate::mux::MuxEvent`]).
    pub const MUX_EVENTS: &str = "MUX_EVENTS";
    /// Settings of the mux path (see [`crate::mux::config`]).
    pub const MUX_CONFIG: &str = "MUX_CONFIG";
    /// The territories some meeting's rule in force blocks, as one [`crate::Rule`]: what an
    /// unbound packet on a mux port is dropped for (see [`crate::mux::MuxEvent`]).
    pub const MUX_BLOCKED: &str = "MUX_BLOCKED";
    /// Which generation of the session maps packets use (see [`crate::generation`]).
    pub const SESSION_ACTIVE: &str = "SESSION_ACTIVE";
    /// Per generation, a bit per live session (see [`crate::generation::live`]).
    pub const LIVE_SESSIONS: &str = "LIVE_SESSIONS";
    /// Local address (or any) → what a packet the parser cannot place is dropped for
    /// (see [`crate::unparsed`]).
    pub const UNPARSED_GUARD: &str = "UNPARSED_GUARD";
    /// `(guard scope, source prefix)` → allow or drop, ahead of the guard's territories.
    pub const UNPARSED_PREFIX: &str = "UNPARSED_PREFIX";
    /// Per CPU, per [`crate::PassReason`]: unplaceable packets dropped by a guard.
    pub const UNPARSED_DROP: &str = "UNPARSED_DROP";
    /// The switch of `geofence monitor` (see [`crate::monitor`]).
    pub const MONITOR: &str = "MONITOR";
    /// Per CPU: the monitor's sampling counter and record budget.
    pub const MONITOR_CPU: &str = "MONITOR_CPU";
    /// Every map, in the order `status` reports them.
    pub const ALL: &[&str] = &[
        FLOWS,
        ENDPOINTS,
        OVERRIDES,
        POLICIES,
        POLICY_INDEX,
        GEO4_A,
        GEO4_B,
        GEO6_A,
        GEO6_B,
        GEO4_16_A,
        GEO4_16_B,
        GEO4_24_A,
        GEO4_24_B,
        GEO4_24L_A,
        GEO4_24L_B,
        GEO4_8_A,
        GEO4_8_B,
        GEO4_8L_A,
        GEO4_8L_B,
        GEO6_16_A,
        GEO6_16_B,
        GEO6_N_A,
        GEO6_N_B,
        GEO6_RH_A,
        GEO6_RH_B,
        GEO6_RL_A,
        GEO6_RL_B,
        GEO6_T_A,
        GEO6_T_B,
        GEO6_P_A,
        GEO6_P_B,
        SESSION_STATS,
        STATS_CACHE,
        PASS_REASONS,
        PORTS,
        OVERRIDE_SESSIONS,
        RULE_COUNTERS,
        RULE_SOURCES,
        UFRAGS,
        MUX_EVENTS,
        MUX_CONFIG,
        MUX_BLOCKED,
        SESSION_ACTIVE,
        LIVE_SESSIONS,
        UNPARSED_GUARD,
        UNPARSED_PREFIX,
        UNPARSED_DROP,
        MONITOR,
        MONITOR_CPU,
    ];
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C), Copy, has explicit padding and no pointers.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::EndpointKey {}
    unsafe impl aya::Pod for super::OverrideKey {}
    unsafe impl aya::Pod for super::TerritoryKeyV4 {}
    unsafe impl aya::Pod for super::TerritoryKeyV6 {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn every_protocol_and_port_has_its_own_entry() {
        extern crate std;
        let mut seen = std::collections::HashSet::new();
        for proto in [crate::proto::UDP, crate::proto::TCP] {
            for port in 0..=u16::MAX {
                let index = ports::index(proto, port).expect("UDP and TCP have entries");
                assert!(index < ports::ENTRIES, "{proto}/{port}");
                assert!(seen.insert(index), "{proto}/{port} shares its entry");
            }
        }
        assert_eq!(ports::index(1, 80), None, "ICMP has no ports");
    }

    #[test]
    fn a_port_entry_holds_its_keys_and_the_wildcard_session() {
        let last = capacity::MAX_SESSIONS - 1;
        let entry = ports::entry(ports::ENDPOINT_ANY | ports::FLOW, last);
        assert_eq!(entry & ports::KEYS, ports::ENDPOINT_ANY | ports::FLOW);
        assert_eq!(ports::wildcard_session(entry), last);
        assert_eq!(
            ports::entry(ports::ENDPOINT_ADDR, 7),
            ports::ENDPOINT_ADDR,
            "no wildcard endpoint, no session"
        );
    }

    #[test]
    fn every_session_has_its_own_policy_index() {
        extern crate std;
        let mut seen = std::collections::HashSet::new();
        for generation in 0..crate::generation::COUNT {
            for session in 0..capacity::MAX_SESSIONS {
                let keyed = crate::generation::keyed(generation, session).expect("a session id");
                let (element, half) = policy_index::position(keyed).expect("a keyed id");
                assert!(element < policy_index::ELEMENTS && half < 2);
                assert!(seen.insert((element, half)), "session {session}");
            }
        }
        let beyond = crate::generation::COUNT * capacity::MAX_SESSIONS;
        assert_eq!(policy_index::position(beyond), None);
    }

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<FlowKey>(), 1 + 3 + 2 + 2 + 16 + 16);
        assert_eq!(size_of::<EndpointKey>(), 1 + 1 + 2 + 16);
        assert_eq!(size_of::<OverrideKey>(), 4 + 16);
        assert_eq!(size_of::<TerritoryKeyV4>(), 4);
        assert_eq!(size_of::<TerritoryKeyV6>(), 16);
    }

    #[test]
    fn v4_mapping() {
        assert_eq!(
            v4_mapped([192, 0, 2, 1]),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]
        );
        assert_eq!(v4_mapped([1, 2, 3, 4])[..12], V4_MAPPED_PREFIX);
    }

    #[test]
    fn address_words_agree_with_the_bytes() {
        let ip = |s: &str| s.parse::<core::net::Ipv6Addr>().unwrap().octets();
        for (text, v4) in [
            ("::ffff:192.0.2.1", Some(0xc000_0201)),
            ("::ffff:255.255.255.255", Some(u32::MAX)),
            ("2001:db8::ffff:c000:201", None),
            ("::fffe:c000:201", None),
            ("1::ffff:c000:201", None),
            ("::1", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", None),
        ] {
            let bytes = ip(text);
            let words = AddressWords::of(&bytes);
            assert_eq!(words.octets(), bytes, "{text}");
            assert_eq!(words.v4(), v4, "{text}");
            let number = u128::from_be_bytes(bytes);
            assert_eq!(
                words.numbers(),
                ((number >> 64) as u64, number as u64),
                "{text}"
            );
        }
        let mapped = AddressWords::v4_mapped([198, 51, 100, 7]);
        assert_eq!(mapped.octets(), v4_mapped([198, 51, 100, 7]));
        assert_eq!(mapped.v4(), Some(0xc633_6407));
    }
}
