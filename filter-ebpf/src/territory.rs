//! Source address → territory id, from the active generation of the territory tables.
//!
//! `lookup` is what relays use. `lookup_lpm` reads the stock LPM tries; it is the
//! reference the benches and equivalence tests compare with.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{
    TERRITORY_UNKNOWN, TerritoryId, TerritoryKeyV4, TerritoryKeyV6, maps::V4_MAPPED_PREFIX,
};

use crate::{
    maps::{GEO_ACTIVE, GEO4_A, GEO4_B, GEO6_A, GEO6_B},
    parse::Packet,
};

#[inline(always)]
pub fn lookup(packet: &Packet) -> TerritoryId {
    lookup_lpm(packet)
}

#[inline(always)]
pub fn lookup_lpm(packet: &Packet) -> TerritoryId {
    // One read of the generation per packet: the packet sees one whole table.
    let generation = GEO_ACTIVE.get(0).copied().unwrap_or(0);
    // An IPv4-mapped IPv6 source is an IPv4 host; it must not escape to "unknown".
    let found = if packet.is_v6 && packet.src[..12] != V4_MAPPED_PREFIX {
        let key = Key::new(128, TerritoryKeyV6 { addr: packet.src });
        if generation == 0 {
            GEO6_A.get(&key)
        } else {
            GEO6_B.get(&key)
        }
    } else {
        let s = &packet.src;
        let key = Key::new(
            32,
            TerritoryKeyV4 {
                addr: [s[12], s[13], s[14], s[15]],
            },
        );
        if generation == 0 {
            GEO4_A.get(&key)
        } else {
            GEO4_B.get(&key)
        }
    };
    found.copied().unwrap_or(TERRITORY_UNKNOWN)
}
