//! The `OVERRIDES` trie as `kernel::sync` reads and writes it, and which drops are bound
//! to a rule the policies hold.

use std::collections::HashMap as StdMap;

use anyhow::Context as _;
use aya::maps::{LpmTrie, lpm_trie::Key};
use filter_common::{Override, OverrideKey, Policy, maps::names, policy::RULE_ACTIVE};

use super::{Kernel, sync::SyncReport};

/// Expiries recomputed on each sync differ by the clock's jitter; see `sync::same_expiry`.
fn same_override(a: &Override, b: &Override) -> bool {
    a.action == b.action
        && a.slot == b.slot
        && a.key_len == b.key_len
        && a.rule_id == b.rule_id
        && a.flags == b.flags
        && super::sync::same_expiry(a.expires_ns, b.expires_ns)
}

pub(super) type OverrideMap = StdMap<(u32, OverrideKey), Override>;

pub(super) fn read_overrides(kernel: &Kernel) -> anyhow::Result<OverrideMap> {
    let map: LpmTrie<_, OverrideKey, Override> = LpmTrie::try_from(kernel.map(names::OVERRIDES)?)?;
    map.iter()
        .map(|r| r.map(|(k, v)| ((k.prefix_len(), k.data()), v)))
        .collect::<Result<_, _>>()
        .context("reading map OVERRIDES")
}

/// Whether a drop override names a rule the policies hold (active, same id), expired or
/// not: one that does not is inert, whatever it says.
pub(super) fn bound(policies: &StdMap<u32, Policy>, key: &OverrideKey, value: &Override) -> bool {
    let session = u32::from_be_bytes(key.session_be);
    let Some(rule) = policies
        .get(&session)
        .and_then(|p| p.rules.get(usize::from(value.slot)))
    else {
        return false;
    };
    rule.flags & RULE_ACTIVE != 0 && rule.rule_id == value.rule_id && value.rule_id != 0
}

/// Writes the overrides of `want` that the trie lacks or holds with another value.
pub(super) fn write_overrides(
    kernel: &mut Kernel,
    have: &OverrideMap,
    want: &OverrideMap,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: LpmTrie<_, OverrideKey, Override> =
        LpmTrie::try_from(kernel.map_mut(names::OVERRIDES)?)?;
    for (&(len, key), value) in want {
        if !have
            .get(&(len, key))
            .is_some_and(|h| same_override(h, value))
        {
            map.insert(&Key::new(len, key), value, 0)
                .context("writing map OVERRIDES")?;
            report.written += 1;
        }
    }
    Ok(())
}

/// Removes the overrides of `have` that `want` does not list and `remove` picks.
pub(super) fn remove_overrides(
    kernel: &mut Kernel,
    have: &OverrideMap,
    want: &OverrideMap,
    remove: impl Fn(&OverrideKey, &Override) -> bool,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: LpmTrie<_, OverrideKey, Override> =
        LpmTrie::try_from(kernel.map_mut(names::OVERRIDES)?)?;
    for (&(len, key), value) in have {
        if !want.contains_key(&(len, key)) && remove(&key, value) {
            map.remove(&Key::new(len, key))
                .context("removing from map OVERRIDES")?;
            report.removed += 1;
        }
    }
    Ok(())
}
