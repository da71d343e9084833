//! What a session's rules say, as the kernel reads them.
//!
//! A session holds up to [`RULES_PER_SESSION`] rules, one per order acted on, because two
//! orders on one meeting may block different territories with different expiries. A rule
//! blocks a set of territory ids until its expiry, in enforce or dry-run mode.

use crate::territory::{TERRITORY_WORDS, TerritoryId};

/// Rule slots per session.
pub const RULES_PER_SESSION: usize = 8;

/// [`Rule::flags`]: the slot holds a rule.
pub const RULE_ACTIVE: u32 = 1;
/// [`Rule::flags`] and [`Override::flags`]: count as "would drop" but pass.
pub const RULE_DRY_RUN: u32 = 2;

/// [`Rule::rule_id`] of an empty slot; never the id of a rule.
pub const NO_RULE_ID: u32 = 0;

/// Whether an expiry (`expires_ns` of a [`Rule`] or [`Override`]; 0 = never) has passed at
/// `now_ns`: the one test the program and the model make of both.
#[inline(always)]
pub const fn lapsed(expires_ns: u64, now_ns: u64) -> bool {
    expires_ns != 0 && now_ns >= expires_ns
}

/// One order's rule on a session: the territories it blocks, and the identity its drop
/// overrides name. A rule that blocks only prefixes holds a slot with no territory bit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Bit `id` set: territory `id` is blocked.
    pub blocked: [u64; TERRITORY_WORDS],
    /// `CLOCK_MONOTONIC_COARSE` nanoseconds (the program's clock) after which the rule no
    /// longer applies; 0 = never.
    pub expires_ns: u64,
    pub flags: u32,
    /// The rule's identity (never [`NO_RULE_ID`] for a rule): a drop [`Override`] applies
    /// only while the slot it names holds a rule with this id, so an override written
    /// ahead of its rule, or left behind by a killed command, stays inert.
    pub rule_id: u32,
}

impl Rule {
    pub const EMPTY: Rule = Rule {
        blocked: [0; TERRITORY_WORDS],
        expires_ns: 0,
        flags: 0,
        rule_id: NO_RULE_ID,
    };

    #[inline(always)]
    pub fn blocks(&self, territory: TerritoryId) -> bool {
        let t = territory as usize;
        // The mask keeps the index provably inside the array for the verifier.
        let word = (t / 64) & 0xf;
        if word >= TERRITORY_WORDS {
            return false;
        }
        self.blocked[word] & (1u64 << (t % 64)) != 0
    }

    pub fn set_blocked(&mut self, territory: TerritoryId) {
        let t = territory as usize;
        if t / 64 < TERRITORY_WORDS {
            self.blocked[t / 64] |= 1u64 << (t % 64);
        }
    }

    /// Whether the rule is in force at `now_ns`.
    #[inline(always)]
    pub fn in_force(&self, now_ns: u64) -> bool {
        self.flags & RULE_ACTIVE != 0 && !lapsed(self.expires_ns, now_ns)
    }

    /// Whether a drop override naming this slot with `rule_id` applies at `now_ns`:
    /// the slot holds that very rule, and it is in force.
    #[inline(always)]
    pub fn binds(&self, rule_id: u32, now_ns: u64) -> bool {
        rule_id != NO_RULE_ID && self.rule_id == rule_id && self.in_force(now_ns)
    }
}

/// All rules of one session: an entry of the `POLICIES` pool, which `POLICY_INDEX` names
/// per session (see [`crate::maps::policy_index`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub rules: [Rule; RULES_PER_SESSION],
}

impl Policy {
    pub const EMPTY: Policy = Policy {
        rules: [Rule::EMPTY; RULES_PER_SESSION],
    };
}

/// What a per-session prefix override does.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideAction {
    /// Pass, whatever the territory rule says.
    Allow = 1,
    /// Drop (or count as would-drop), whatever the territory.
    Drop = 2,
}

/// The value of the `OVERRIDES` LPM trie.
///
/// A drop belongs to a rule: it names the rule's policy slot and id, and applies only
/// while that slot holds that rule in force ([`Rule::binds`]); its packets are credited to
/// the slot. (A change takes effect whole at the switch of generations, see
/// [`crate::generation`]; the binding keeps a drop from ever applying under another rule.)
/// An allow (an exception) names no rule. A drop whose rule the slot does not hold is
/// inert: as if absent, the next shorter entry covering the source decides (at any depth).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override {
    /// An [`OverrideAction`] as `u8`.
    pub action: u8,
    /// For a drop: the policy slot of its rule, `0..RULES_PER_SESSION`.
    pub slot: u8,
    /// The entry's own prefix length in the trie (session bits included), so that the
    /// program can look past an inert drop to the next shorter entry.
    pub key_len: u8,
    pub _pad: u8,
    /// [`RULE_DRY_RUN`] or 0.
    pub flags: u32,
    /// `CLOCK_MONOTONIC_COARSE` nanoseconds (the program's clock) after which a Drop no
    /// longer applies; 0 = never.
    pub expires_ns: u64,
    /// For a drop: its rule's [`Rule::rule_id`]; [`NO_RULE_ID`] for an allow.
    pub rule_id: u32,
    pub _pad2: u32,
}

impl Override {
    /// An exception on a trie entry of `key_len` bits: passes whatever the rules say.
    pub const fn allow(key_len: u8) -> Override {
        Override {
            action: OverrideAction::Allow as u8,
            slot: 0,
            key_len,
            _pad: 0,
            flags: 0,
            expires_ns: 0,
            rule_id: NO_RULE_ID,
            _pad2: 0,
        }
    }

    /// A drop of the rule `rule_id` in `slot`, on a trie entry of `key_len` bits.
    pub const fn drop_of(
        key_len: u8,
        slot: u8,
        rule_id: u32,
        flags: u32,
        expires_ns: u64,
    ) -> Override {
        Override {
            action: OverrideAction::Drop as u8,
            slot,
            key_len,
            _pad: 0,
            flags,
            expires_ns,
            rule_id,
            _pad2: 0,
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, explicit padding, no pointers.
    unsafe impl aya::Pod for super::Policy {}
    unsafe impl aya::Pod for super::Rule {}
    unsafe impl aya::Pod for super::Override {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts() {
        assert_eq!(size_of::<Rule>(), 11 * 8 + 8 + 4 + 4);
        assert_eq!(size_of::<Policy>(), RULES_PER_SESSION * size_of::<Rule>());
        assert_eq!(size_of::<Override>(), 24);
        assert_eq!(core::mem::offset_of!(Rule, rule_id), 11 * 8 + 8 + 4);
        assert_eq!(core::mem::offset_of!(Override, slot), 1);
        assert_eq!(core::mem::offset_of!(Override, key_len), 2);
        assert_eq!(core::mem::offset_of!(Override, _pad), 3);
        assert_eq!(core::mem::offset_of!(Override, flags), 4);
        assert_eq!(core::mem::offset_of!(Override, expires_ns), 8);
        assert_eq!(core::mem::offset_of!(Override, rule_id), 16);
        assert_eq!(core::mem::offset_of!(Override, _pad2), 20);
    }

    #[test]
    fn an_override_binds_only_to_its_rule_in_force() {
        let mut rule = Rule::EMPTY;
        assert!(!rule.binds(NO_RULE_ID, 0), "an empty slot binds nothing");
        rule.rule_id = 7;
        assert!(!rule.binds(7, 0), "inactive");
        rule.flags = RULE_ACTIVE;
        assert!(rule.binds(7, 0));
        assert!(!rule.binds(8, 0), "another rule's id");
        rule.expires_ns = 10;
        assert!(rule.binds(7, 9) && !rule.binds(7, 10), "expired");
        rule.rule_id = NO_RULE_ID;
        assert!(!rule.binds(NO_RULE_ID, 0), "id 0 never binds");
    }

    #[test]
    fn bits_and_expiry() {
        let mut rule = Rule::EMPTY;
        rule.set_blocked(0);
        rule.set_blocked(676);
        assert!(rule.blocks(0) && rule.blocks(676) && !rule.blocks(1));
        assert!(!rule.blocks(u16::MAX));
        assert!(!rule.in_force(5), "inactive slot");
        rule.flags = RULE_ACTIVE;
        assert!(rule.in_force(5));
        rule.expires_ns = 10;
        assert!(rule.in_force(9) && !rule.in_force(10));
    }
}
