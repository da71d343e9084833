//! The `OVERRIDES` trie as `kernel::sync` reads and writes it: each generation's entries
//! under the sessions' keyed ids (see `filter_common::generation`), so that a change
//! written into the generation packets do not use is switched in whole.

use std::collections::HashMap as StdMap;

use anyhow::Context as _;
use aya::maps::{LpmTrie, lpm_trie::Key};
use filter_common::{Override, OverrideKey, generation, maps::names};

use super::{Kernel, generation::Pass, writes::SyncReport};

/// Expiries recomputed on each sync differ by the clock's jitter; see `writes::same_expiry`.
fn same_override(a: &Override, b: &Override) -> bool {
    a.action == b.action
        && a.slot == b.slot
        && a.key_len == b.key_len
        && a.rule_id == b.rule_id
        && a.flags == b.flags
        && super::writes::same_expiry(a.expires_ns, b.expires_ns)
}

/// `(prefix length, key)` → override, the key's session as the state numbers it.
pub(super) type OverrideMap = StdMap<(u32, OverrideKey), Override>;

/// `key` with its session's keyed id in `generation`, or back (`None` beyond the ids).
fn keyed(key: &OverrideKey, generation: u32) -> Option<OverrideKey> {
    let session = u32::from_be_bytes(key.session_be);
    let id = generation::keyed(generation, session)?;
    Some(OverrideKey {
        session_be: id.to_be_bytes(),
        ..*key
    })
}

/// The overrides of `generation`, keyed by session.
fn read_generation(
    map: &LpmTrie<&mut aya::maps::MapData, OverrideKey, Override>,
    generation: u32,
) -> anyhow::Result<OverrideMap> {
    let mut out = OverrideMap::new();
    for entry in map.iter() {
        let (key, value) = entry.context("reading map OVERRIDES")?;
        let data = key.data();
        let id = u32::from_be_bytes(data.session_be);
        if let Some((g, session)) = generation::unkeyed(id)
            && g == generation
        {
            let plain = OverrideKey {
                session_be: session.to_be_bytes(),
                ..data
            };
            out.insert((key.prefix_len(), plain), value);
        }
    }
    Ok(out)
}

/// Makes `generation`'s overrides equal to `want`.
pub(super) fn write_overrides(
    kernel: &mut Kernel,
    generation: u32,
    want: &OverrideMap,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: LpmTrie<_, OverrideKey, Override> =
        LpmTrie::try_from(kernel.map_mut(names::OVERRIDES)?)?;
    let have = read_generation(&map, generation)?;
    let at = |len: u32, key: &OverrideKey| {
        keyed(key, generation)
            .map(|k| Key::new(len, k))
            .with_context(|| format!("session {:?} beyond the session ids", key.session_be))
    };
    for (&(len, key), value) in want {
        if !have
            .get(&(len, key))
            .is_some_and(|h| same_override(h, value))
        {
            if pass.writes() {
                map.insert(&at(len, &key)?, value, 0)
                    .context("writing map OVERRIDES")?;
            }
            report.written += 1;
        }
    }
    for &(len, key) in have.keys().filter(|k| !want.contains_key(k)) {
        if pass.writes() {
            map.remove(&at(len, &key)?)
                .context("removing from map OVERRIDES")?;
        }
        report.removed += 1;
    }
    Ok(())
}
