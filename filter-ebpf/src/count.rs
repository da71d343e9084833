//! Per-CPU counters: per (session, territory) and verdict (in the key's cache entry, or
//! the hash), per rule slot, and per pass reason.

use aya_ebpf::bindings::BPF_NOEXIST;
use filter_common::{
    PassReason, SessionStats, StatsKey, TerritoryId, Verdict, accounting,
    counters::{STATS_CACHE_WAYS, stats_cache_first},
    maps::AddressWords,
};

use crate::maps::{
    MUX_EVENTS, PASS_REASONS, RULE_COUNTERS, RULE_SOURCES, SESSION_STATS, STATS_CACHE,
};

#[inline(always)]
pub fn mux(event: filter_common::mux::MuxEvent) {
    if let Some(counter) = MUX_EVENTS.get_ptr_mut(event as u32) {
        // SAFETY: a per-CPU slot; no other CPU writes it.
        unsafe { *counter += 1 };
    }
}

/// An unplaceable packet a guard dropped, by why it could not be parsed.
#[inline(always)]
pub fn unplaced_blocked(reason: PassReason) {
    if let Some(counter) = crate::maps::UNPARSED_DROP.get_ptr_mut(reason as u32) {
        // SAFETY: a per-CPU slot; no other CPU writes it.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
pub fn pass_reason(reason: PassReason) {
    if let Some(counter) = PASS_REASONS.get_ptr_mut(reason as u32) {
        // SAFETY: a per-CPU slot; no other CPU writes it.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
fn add(stats: &mut SessionStats, verdict: Verdict, bytes: u64) {
    // Constant indices keep bounds checks out of the program.
    match verdict {
        Verdict::Passed => {
            stats.packets[0] += 1;
            stats.bytes[0] += bytes;
        }
        Verdict::Dropped => {
            stats.packets[1] += 1;
            stats.bytes[1] += bytes;
        }
        Verdict::WouldDrop => {
            stats.packets[2] += 1;
            stats.bytes[2] += bytes;
        }
    }
}

#[inline(always)]
pub fn session(session: u32, territory: TerritoryId, verdict: Verdict, bytes: usize) {
    // The session's cache entries first: array reads, no hash. Session 0 marks one free;
    // ways are claimed in order, so a free one means none after it is taken.
    if let Some(first) = stats_cache_first(session) {
        for way in 0..STATS_CACHE_WAYS {
            let Some(entry) = STATS_CACHE.get_ptr_mut(first + way) else {
                break;
            };
            // SAFETY: a per-CPU value; no other CPU writes it.
            let entry = unsafe { &mut *entry };
            if entry.key.session == 0 {
                // Free ways go to the territories the session's rules act on, the flood a
                // relay must absorb; passing traffic uses a way only if its territory
                // already holds one.
                if verdict == Verdict::Passed {
                    break;
                }
                entry.key.session = session;
                entry.key.territory = territory;
            } else if entry.key.territory != territory || entry.key.session != session {
                continue;
            }
            add(&mut entry.stats, verdict, bytes as u64);
            return;
        }
    }
    let key = StatsKey {
        session,
        territory,
        _pad: 0,
    };
    if let Some(stats) = SESSION_STATS.get_ptr_mut(&key) {
        // SAFETY: a per-CPU value; no other CPU writes it.
        unsafe { add(&mut *stats, verdict, bytes as u64) };
        return;
    }
    let mut stats = SessionStats::default();
    add(&mut stats, verdict, bytes as u64);
    if SESSION_STATS
        .insert(&key, &stats, BPF_NOEXIST as u64)
        .is_ok()
    {
        return;
    }
    // Another CPU may have created the entry in between; otherwise the map is full.
    match SESSION_STATS.get_ptr_mut(&key) {
        // SAFETY: as above.
        Some(stats) => unsafe { add(&mut *stats, verdict, bytes as u64) },
        None => pass_reason(PassReason::StatsFull),
    }
}

/// Credits a packet to the rule slot that dropped (or would have dropped) it: packets,
/// bytes, and its source in the slot's distinct-source sketch.
#[inline(always)]
pub fn rule(session: u32, slot: u32, src: AddressWords, bytes: usize) {
    let Some(index) = accounting::rule_index(session, slot) else {
        return;
    };
    if let Some(counters) = RULE_COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU value; no other CPU writes it.
        unsafe {
            (*counters).packets += 1;
            (*counters).bytes += bytes as u64;
        }
    }
    if let Some(sketch) = RULE_SOURCES.get_ptr_mut(index) {
        // SAFETY: a per-CPU value; no other CPU writes it.
        unsafe { (*sketch).add_hash(accounting::hash_words(src)) };
    }
}
