//! `geofence monitor`: a record of a meeting's decision, in aya-log's log ring, while a
//! monitor runs. Off, the cost is one array read per packet of a meeting; the record itself
//! is built in a function of its own, so that neither the verifier nor the fast path sees
//! it inlined into the data path. It is copied from a template rather than built by
//! aya-log-ebpf's macro, whose stack would not fit beside the data path's (see
//! `filter_common::monitor::wire`).

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use aya_log_ebpf::macro_support::AYA_LOGS;
use filter_common::{
    TerritoryId, Verdict,
    accounting::NO_RULE,
    generation,
    maps::{AddressWords, policy_index},
    monitor::{
        Cause, MonitorConfig, NO_SLOT, Packed,
        wire::{self, WORDS},
    },
    policy::RULES_PER_SESSION,
};

use crate::{
    decide::Decision,
    maps::{MONITOR, MONITOR_CPU, POLICIES, POLICY_INDEX},
    session::Session,
};

/// Reports the decision of a packet of `found` from `src` when a monitor is on.
#[inline(always)]
pub fn decision(found: Session, territory: TerritoryId, decision: Decision, src: AddressWords) {
    let Some(config) = MONITOR.get(0) else {
        return;
    };
    if config.enabled == 0 {
        return;
    }
    let slot = if decision.slot == NO_RULE || decision.slot >= RULES_PER_SESSION as u32 {
        NO_SLOT
    } else {
        decision.slot
    };
    // Five arguments at most cross a BPF call: the decision goes packed in one.
    let packed = Packed {
        session: found.id,
        territory,
        verdict: decision.verdict as u32,
        slot,
        cause: 0,
    };
    // The byte above the record's fields carries the generation the session was found in,
    // whose policy the cause is read from.
    let tag = u64::from(found.generation & 1) << GENERATION_SHIFT;
    emit(config, packed.pack() | tag, src.hi, src.lo);
}

const GENERATION_SHIFT: u32 = 56;

/// Writes byte `i` of `word`'s memory order at `at + i`, for `i` in `0..8`: shifts rather
/// than an array, which would take stack the data path leaves no room for.
///
/// # Safety
/// `at..at + 8` must lie inside one record of the ring.
#[inline(always)]
unsafe fn write_word(at: *mut u8, word: u64) {
    // bpfel: memory order is little-endian.
    for i in 0..8 {
        // SAFETY: the caller's contract.
        unsafe { at.add(i).write((word >> (8 * i)) as u8) };
    }
}

/// The record is reserved and written before the policy is read for its cause, so that
/// few values live across helper calls: each one more would take a stack slot, and this
/// function has 48 bytes beside the data path's frame.
#[inline(never)]
fn emit(config: &MonitorConfig, packed: u64, src_hi: u64, src_lo: u64) {
    let record = Packed::unpack(packed);
    if !config.shows(record.session, verdict_of(record.verdict)) {
        return;
    }
    let Some(cpu) = MONITOR_CPU.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a helper with no arguments.
    let now_ns = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: a per-CPU value; no other CPU writes it.
    if !unsafe { (*cpu).admit(config, now_ns) } {
        return;
    }
    let address = config.addresses != 0;
    let Some(mut entry) = AYA_LOGS.reserve::<[u64; WORDS]>(0) else {
        return;
    };
    let words = entry.as_mut_ptr() as *mut u64;
    let bytes = words as *mut u8;
    let template = if address {
        &wire::WITH_ADDRESS
    } else {
        &wire::PLAIN
    };
    // SAFETY: the entry holds `WORDS` words; the offsets are inside them (wire's tests).
    unsafe {
        for (i, word) in template.iter().enumerate() {
            words.add(i).write(*word);
        }
        if address {
            write_word(bytes.add(wire::ADDRESS_AT), src_hi);
            write_word(bytes.add(wire::ADDRESS_AT + 8), src_lo);
        }
    }
    let record = Packed::unpack(packed);
    let keyed = generation::keyed((packed >> GENERATION_SHIFT) as u32 & 1, record.session);
    let cause = cause(
        keyed.unwrap_or(u32::MAX),
        record.territory,
        verdict_of(record.verdict),
        record.slot,
        now_ns,
    );
    let packed = packed & !(0xff << GENERATION_SHIFT) | (cause as u64) << 48;
    // SAFETY: as above.
    unsafe { write_word(bytes.add(wire::VALUE_AT), packed) };
    entry.submit(0);
}

#[inline(always)]
fn verdict_of(code: u32) -> Verdict {
    match code {
        0 => Verdict::Passed,
        1 => Verdict::Dropped,
        _ => Verdict::WouldDrop,
    }
}

/// Why the decision went as it did, from the session's policy in the generation the packet
/// used: a drop whose rule blocks the territory is the territory's, else a prefix's; a pass
/// despite a rule in force blocking the territory is an exception's.
#[inline(always)]
fn cause(keyed: u32, territory: TerritoryId, verdict: Verdict, slot: u32, now_ns: u64) -> Cause {
    let policy = policy_index::position(keyed)
        .and_then(|(element, half)| POLICY_INDEX.get(element).map(|e| e[half]))
        .filter(|entry| *entry != 0)
        .and_then(|entry| POLICIES.get(entry));
    let Some(policy) = policy else {
        return Cause::NoRule;
    };
    if verdict != Verdict::Passed {
        // The mask keeps the index provably inside the array for the verifier.
        let rule = &policy.rules[slot as usize & (RULES_PER_SESSION - 1)];
        return if rule.blocks(territory) {
            Cause::Territory
        } else {
            Cause::Prefix
        };
    }
    for i in 0..RULES_PER_SESSION {
        let rule = &policy.rules[i];
        if rule.blocks(territory) && rule.in_force(now_ns) {
            return Cause::Exception;
        }
    }
    Cause::NoRule
}
