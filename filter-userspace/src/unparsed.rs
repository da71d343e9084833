//! The guards for packets the parser cannot place in a session (see
//! `filter_common::unparsed`), derived from the state.
//!
//! A meeting is reachable at the local addresses of its endpoints and flows, at any
//! address through a wildcard endpoint, and through every mux port. Each address's guard
//! holds what the enforcing rules in force of the meetings reachable there block: their
//! territories and drop prefixes. An exception enters a guard only where every one of
//! those meetings lets its prefix pass (by an exception of its own, or by blocking no
//! territory at all: without the table, a territory rule may cover it), so a source one
//! meeting of the address blocks is never let through by another's exception. Dry runs drop nothing here; a rule that
//! lapses stays in its guards until the next sync, which only ever drops more of these
//! packets, never fewer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use filter_common::{
    Address, OverrideKey, TerritoryId,
    maps::OVERRIDE_SESSION_BITS,
    unparsed::{ANY, Guard, PREFIX_ALLOW, PREFIX_DROP},
};
use ipnet::IpNet;
use jiff::Timestamp;

use crate::endpoint::kernel_address;
use crate::prefix::override_key;
use crate::state::{Meeting, State};

/// The guard maps' contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guards {
    /// Local address (IPv4-mapped for IPv4), or [`ANY`] → its guard.
    pub guards: HashMap<Address, Guard>,
    /// `(prefix length in bits, key)` → [`PREFIX_ALLOW`] or [`PREFIX_DROP`], as the LPM
    /// trie holds them: the length counts the 32 scope bits in front of the address.
    pub prefixes: HashMap<(u32, OverrideKey), u32>,
}

/// What one meeting's enforcing rules in force block, and the exceptions it grants.
struct Blocks<'a> {
    territories: [u64; filter_common::territory::TERRITORY_WORDS],
    drops: Vec<IpNet>,
    allows: &'a [IpNet],
}

impl<'a> Blocks<'a> {
    fn of(meeting: &'a Meeting, now: Timestamp) -> Blocks<'a> {
        let mut rule = filter_common::Rule::EMPTY;
        let mut drops = Vec::new();
        for r in meeting
            .rules
            .iter()
            .filter(|r| !r.dry_run && !r.expired(now))
        {
            for territory in &r.territories {
                rule.set_blocked(territory.id());
            }
            drops.extend(r.prefixes.iter().copied());
        }
        Blocks {
            territories: rule.blocked,
            drops,
            allows: &meeting.allows,
        }
    }

    fn blocks_territories(&self) -> bool {
        self.territories.iter().any(|&w| w != 0)
    }

    /// Whether this meeting lets every address of `p` pass, but for its drops nested
    /// inside `p` (which a guard holds as longer entries): its longest entry covering `p`
    /// is an exception, or it has none and blocks no territory.
    fn lets_pass(&self, p: &IpNet) -> bool {
        let allow = self
            .allows
            .iter()
            .filter(|a| a.contains(p))
            .map(IpNet::prefix_len)
            .max();
        let drop = self
            .drops
            .iter()
            .filter(|d| d.contains(p))
            .map(IpNet::prefix_len)
            .max();
        match (allow, drop) {
            (Some(a), Some(d)) => a > d,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => !self.blocks_territories(),
        }
    }
}

/// A guard's scope: stable for its address across syncs (FNV-1a), never 0, distinct.
fn scope_of(addr: &Address, taken: &BTreeSet<u32>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in addr {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut scope = h.max(1);
    while taken.contains(&scope) {
        scope = scope.wrapping_add(1).max(1);
    }
    scope
}

impl Guards {
    /// The guards for `state` at `now` (rules past their end at `now` are left out).
    pub fn derive(state: &State, now: Timestamp) -> Guards {
        // Local address → the meetings reachable there.
        let mut reach: BTreeMap<Address, BTreeSet<&str>> = BTreeMap::new();
        let mux_addrs: BTreeSet<Address> = (state.mux.iter())
            .map(|e| e.addr.map_or(ANY, kernel_address))
            .collect();
        for (name, meeting) in &state.meetings {
            let own = (meeting.endpoints.iter()).map(|e| e.addr.map_or(ANY, kernel_address));
            let flows = meeting.flows.iter().map(|f| kernel_address(f.dst.ip()));
            for addr in own.chain(flows).chain(mux_addrs.iter().copied()) {
                reach.entry(addr).or_default().insert(name);
            }
        }
        let blocks: HashMap<&str, Blocks> = (state.meetings.iter())
            .map(|(name, m)| (name.as_str(), Blocks::of(m, now)))
            .collect();
        let mut out = Guards::default();
        let mut taken = BTreeSet::new();
        for (addr, names) in reach {
            let meetings: Vec<&Blocks> = names.iter().filter_map(|n| blocks.get(n)).collect();
            let mut guard = Guard::EMPTY;
            for m in &meetings {
                for (word, bits) in guard.blocked.iter_mut().zip(m.territories) {
                    *word |= bits;
                }
            }
            let drops: BTreeSet<IpNet> = meetings.iter().flat_map(|m| m.drops.clone()).collect();
            if guard == Guard::EMPTY && drops.is_empty() {
                continue;
            }
            let allows: BTreeSet<IpNet> = (meetings.iter())
                .flat_map(|m| m.allows.iter().copied())
                .filter(|p| meetings.iter().all(|m| m.lets_pass(p)))
                .collect();
            if !drops.is_empty() || !allows.is_empty() {
                guard.scope = scope_of(&addr, &taken);
                taken.insert(guard.scope);
                // A drop and an exception of one prefix: the drop.
                let entries = (allows.iter().map(|p| (p, PREFIX_ALLOW)))
                    .chain(drops.iter().map(|p| (p, PREFIX_DROP)));
                for (prefix, action) in entries {
                    out.prefixes
                        .insert(override_key(prefix, guard.scope), action);
                }
            }
            out.guards.insert(addr, guard);
        }
        out
    }

    /// Whether a packet the parser could not place, from `src` (located in `territory`)
    /// to `dst`, is dropped: the guard of `dst` or the [`ANY`] guard blocks it. The
    /// reference the kernel's lookup is checked against.
    pub fn blocks(&self, dst: &Address, src: &Address, territory: TerritoryId) -> bool {
        [dst, &ANY]
            .into_iter()
            .filter_map(|a| self.guards.get(a))
            .any(|g| self.guard_blocks(g, src, territory))
    }

    fn guard_blocks(&self, guard: &Guard, src: &Address, territory: TerritoryId) -> bool {
        if guard.scope != 0 {
            let bits = u128::from_be_bytes(*src);
            for address_len in (0..=128u32).rev() {
                let mask = u128::MAX.checked_shl(128 - address_len).unwrap_or(0);
                let key = OverrideKey {
                    session_be: guard.scope.to_be_bytes(),
                    addr: (bits & mask).to_be_bytes(),
                };
                if let Some(&action) = self
                    .prefixes
                    .get(&(OVERRIDE_SESSION_BITS + address_len, key))
                {
                    return action == PREFIX_DROP;
                }
            }
        }
        guard.blocks(territory)
    }
}
