//! Source address → territory id, from the active generation of the territory tables.
//!
//! `lookup` is what relays use: the flattened table (layout and lookups in
//! `filter_common::geo`, shared with userspace), a bounded number of array reads with no
//! unbounded loop. `lookup_lpm` reads the stock LPM tries; it is the reference the benches
//! and equivalence tests compare with.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{TERRITORY_UNKNOWN, TerritoryId, TerritoryKeyV4, TerritoryKeyV6, geo};

use crate::{
    maps::{
        GEO4_8_A, GEO4_8_B, GEO4_8L_A, GEO4_8L_B, GEO4_16_A, GEO4_16_B, GEO4_24_A, GEO4_24_B,
        GEO4_24L_A, GEO4_24L_B, GEO4_A, GEO4_B, GEO6_16_A, GEO6_16_B, GEO6_A, GEO6_B, GEO6_N_A,
        GEO6_N_B, GEO6_P_A, GEO6_P_B, GEO6_RH_A, GEO6_RH_B, GEO6_RL_A, GEO6_RL_B, GEO6_T_A,
        GEO6_T_B,
    },
    parse::Packet,
};

/// The packet's source as an IPv4 address (host order), if it is one: IPv4, or an
/// IPv4-mapped IPv6 source, which is an IPv4 host and must not escape to "unknown".
#[inline(always)]
fn source_v4(packet: &Packet) -> Option<u32> {
    if !packet.is_v6 {
        // Parsed from an IPv4 header, so mapped by construction: no check.
        let [.., a, b, c, d] = packet.src.lo.to_ne_bytes();
        return Some(u32::from_be_bytes([a, b, c, d]));
    }
    packet.src.v4()
}

#[inline(always)]
pub fn lookup(packet: &Packet) -> TerritoryId {
    // The generation classify read once for this packet: it sees one whole table.
    let generation = filter_common::generation::geo(packet.active);
    if let Some(addr) = source_v4(packet) {
        return if generation == 0 {
            geo::lookup_v4(
                addr,
                |i| GEO4_16_A.get(i),
                |i| GEO4_24_A.get(i),
                |l| GEO4_24L_A.get(l),
                |g| GEO4_8_A.get(g),
                |l| GEO4_8L_A.get(l),
            )
        } else {
            geo::lookup_v4(
                addr,
                |i| GEO4_16_B.get(i),
                |i| GEO4_24_B.get(i),
                |l| GEO4_24L_B.get(l),
                |g| GEO4_8_B.get(g),
                |l| GEO4_8L_B.get(l),
            )
        };
    }
    let (hi, lo) = packet.src.numbers();
    if generation == 0 {
        geo::lookup_v6(
            hi,
            lo,
            |i| GEO6_16_A.get(i),
            |n| GEO6_N_A.get(n),
            |i| GEO6_RH_A.get(i),
            |i| GEO6_RL_A.get(i),
            |i| GEO6_T_A.get(i),
            |i| GEO6_P_A.get(i),
        )
    } else {
        geo::lookup_v6(
            hi,
            lo,
            |i| GEO6_16_B.get(i),
            |n| GEO6_N_B.get(n),
            |i| GEO6_RH_B.get(i),
            |i| GEO6_RL_B.get(i),
            |i| GEO6_T_B.get(i),
            |i| GEO6_P_B.get(i),
        )
    }
}

#[inline(always)]
pub fn lookup_lpm(packet: &Packet) -> TerritoryId {
    let generation = filter_common::generation::geo(packet.active);
    let found = if let Some(addr) = source_v4(packet) {
        let key = Key::new(
            32,
            TerritoryKeyV4 {
                addr: addr.to_be_bytes(),
            },
        );
        if generation == 0 {
            GEO4_A.get(&key)
        } else {
            GEO4_B.get(&key)
        }
    } else {
        let key = Key::new(
            128,
            TerritoryKeyV6 {
                addr: packet.src.octets(),
            },
        );
        if generation == 0 {
            GEO6_A.get(&key)
        } else {
            GEO6_B.get(&key)
        }
    };
    found.copied().unwrap_or(TERRITORY_UNKNOWN)
}
