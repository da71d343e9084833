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

/// One order's territory rule on a session.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Bit `id` set: territory `id` is blocked.
    pub blocked: [u64; TERRITORY_WORDS],
    /// `CLOCK_BOOTTIME` nanoseconds after which the rule no longer applies; 0 = never.
    pub expires_boot_ns: u64,
    pub flags: u32,
    pub _pad: u32,
}

impl Rule {
    pub const EMPTY: Rule = Rule {
        blocked: [0; TERRITORY_WORDS],
        expires_boot_ns: 0,
        flags: 0,
        _pad: 0,
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

    /// Whether the rule is in force at `now_boot_ns`.
    #[inline(always)]
    pub fn in_force(&self, now_boot_ns: u64) -> bool {
        self.flags & RULE_ACTIVE != 0
            && (self.expires_boot_ns == 0 || now_boot_ns < self.expires_boot_ns)
    }
}

/// All rules of one session: the value of the `POLICIES` array, indexed by session id.
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
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override {
    /// An [`OverrideAction`] as `u8`.
    pub action: u8,
    pub _pad: [u8; 3],
    /// [`RULE_DRY_RUN`] or 0.
    pub flags: u32,
    /// `CLOCK_BOOTTIME` nanoseconds after which a Drop no longer applies; 0 = never.
    pub expires_boot_ns: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, explicit padding, no pointers.
    unsafe impl aya::Pod for super::Policy {}
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
        assert_eq!(size_of::<Override>(), 16);
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
        rule.expires_boot_ns = 10;
        assert!(rule.in_force(9) && !rule.in_force(10));
    }
}
