//! The verdict for a packet of a session: a matching prefix override wins; otherwise the
//! session's territory rules. Rules and drop overrides lapse at their expiry, and a drop
//! override is bound to its rule's policy slot.

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, maps::lpm_trie::Key};
use filter_common::{
    Override, OverrideAction, OverrideKey, Policy, TerritoryId, Verdict,
    accounting::NO_RULE,
    maps::{OVERRIDE_SESSION_BITS, override_sessions, policy_index},
    policy::{self, NO_RULE_ID, RULE_ACTIVE, RULE_DRY_RUN, RULES_PER_SESSION},
};

use crate::{
    maps::{OVERRIDE_SESSIONS, OVERRIDES, POLICIES, POLICY_INDEX},
    parse::Packet,
    session::Session,
};

/// The clock expiries are written in (see `geofence::expiry::kernel_clock_ns`): the coarse
/// one, because this read happens for every packet a rule with an end time would drop, and
/// the fine clocks cost as much here as the rest of the drop path.
#[inline(always)]
fn now() -> u64 {
    // SAFETY: a helper with no arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

#[inline(always)]
fn verdict_for(flags: u32) -> Verdict {
    if flags & RULE_DRY_RUN != 0 {
        Verdict::WouldDrop
    } else {
        Verdict::Dropped
    }
}

/// Whether `session` has any prefix override: one array read that spares most sessions
/// the LPM trie walk.
#[inline(always)]
fn has_overrides(session: u32) -> bool {
    let Some((word, bit)) = override_sessions::bit(session) else {
        return false;
    };
    OVERRIDE_SESSIONS.get(word).is_some_and(|w| w & bit != 0)
}

/// The session's policy: the pool entry its index names. The controller rewrites an entry
/// only a grace period after the last index naming it was switched away.
#[inline(always)]
fn policy_of(session: u32) -> Option<&'static Policy> {
    let (element, half) = policy_index::position(session)?;
    let entry = POLICY_INDEX.get(element)?[half];
    if entry == 0 {
        return None;
    }
    POLICIES.get(entry)
}

/// A verdict and the rule slot that gave it ([`NO_RULE`] for an allow or no match).
#[derive(Clone, Copy)]
pub struct Decision {
    pub verdict: Verdict,
    pub slot: u32,
}

impl Decision {
    #[inline(always)]
    const fn without_rule(verdict: Verdict) -> Decision {
        Decision {
            verdict,
            slot: NO_RULE,
        }
    }
}

/// What one override entry says for a packet.
enum OverrideSays {
    /// It decides: an allow, or a drop whose rule holds its slot, in force.
    Decides(Decision),
    /// A drop past its expiry, or whose rule, in its slot, is not in force: the territory
    /// rules decide.
    Lapsed,
    /// A drop whose slot does not hold its rule (written ahead of it, or left after it):
    /// as if absent.
    Inert,
}

#[inline(always)]
fn override_says(found: &Override, policy: Option<&Policy>, now_ns: u64) -> OverrideSays {
    if found.action == OverrideAction::Allow as u8 {
        return OverrideSays::Decides(Decision::without_rule(Verdict::Passed));
    }
    if policy::lapsed(found.expires_ns, now_ns) {
        return OverrideSays::Lapsed;
    }
    // The mask keeps the index provably inside the array for the verifier.
    let slot = found.slot as usize & (RULES_PER_SESSION - 1);
    let Some(policy) = policy else {
        return OverrideSays::Inert;
    };
    let rule = &policy.rules[slot];
    if found.slot as usize != slot
        || found.rule_id == NO_RULE_ID
        || rule.rule_id != found.rule_id
        || rule.flags & RULE_ACTIVE == 0
    {
        return OverrideSays::Inert;
    }
    if !rule.in_force(now_ns) {
        return OverrideSays::Lapsed;
    }
    OverrideSays::Decides(Decision {
        verdict: verdict_for(rule.flags),
        slot: slot as u32,
    })
}

/// A drop override applies only while the policy slot it names holds its rule, in force;
/// it is then credited to that slot. An allow passes, credited to no rule. A lapsed drop
/// leaves the decision to the territory rules; an inert one is as if absent, so the next
/// shorter override covering the source is consulted, and so on down. Among the territory
/// rules an enforcing rule wins over dry runs; among dry runs the first in slot order is
/// credited.
#[inline(always)]
pub fn decide(found: Session, territory: TerritoryId, packet: &Packet) -> Decision {
    // From here on `session` is the session's id in the generation its lookup used
    // (session.rs): the policy index, the override bitmap and the trie are read in it.
    let Some(session) = found.keyed() else {
        return Decision::without_rule(Verdict::Passed);
    };
    let policy = policy_of(session);
    let key = OverrideKey {
        session_be: session.to_be_bytes(),
        addr: packet.src.octets(),
    };
    let mut now_ns = 0;
    if has_overrides(session) {
        let mut len = OVERRIDE_SESSION_BITS + 128;
        // An inert entry hands the decision to the next shorter one covering the source, at
        // any depth (a change may add a /24 inside a new /16 inside an old /8). Lengths only
        // shrink, so the address's 128 bits and the session's own entry bound the walk.
        for _ in 0..=128 {
            let Some(found) = OVERRIDES.get(&Key::new(len, key)) else {
                break;
            };
            if now_ns == 0 {
                now_ns = now();
            }
            match override_says(found, policy, now_ns) {
                OverrideSays::Decides(decision) => return decision,
                OverrideSays::Lapsed => break,
                OverrideSays::Inert => {
                    let found_len = found.key_len as u32;
                    if found_len <= OVERRIDE_SESSION_BITS || found_len > OVERRIDE_SESSION_BITS + 128
                    {
                        break;
                    }
                    len = found_len - 1;
                }
            }
        }
    }
    let Some(policy) = policy else {
        return Decision::without_rule(Verdict::Passed);
    };
    let mut decision = Decision::without_rule(Verdict::Passed);
    for i in 0..RULES_PER_SESSION {
        let rule = &policy.rules[i];
        if !rule.blocks(territory) {
            continue;
        }
        if rule.expires_ns != 0 && now_ns == 0 {
            now_ns = now();
        }
        if !rule.in_force(now_ns) {
            continue;
        }
        match verdict_for(rule.flags) {
            Verdict::Dropped => {
                return Decision {
                    verdict: Verdict::Dropped,
                    slot: i as u32,
                };
            }
            other if decision.slot == NO_RULE => {
                decision = Decision {
                    verdict: other,
                    slot: i as u32,
                };
            }
            _ => {}
        }
    }
    decision
}
