//! The policies as the program reads them: per session, in each generation, an index into
//! the `POLICIES` pool (see `filter_common::maps::policy_index`). A generation's policies
//! are written into pool entries that the generation in use does not name, and that
//! generation is switched in whole (`kernel::generation`); an entry is rewritten only when
//! the generation in use does not name it, a grace period after the last switch.

use std::{borrow::Borrow, collections::HashMap as StdMap, sync::atomic::Ordering};

use anyhow::{Context as _, bail};
use aya::maps::{Array, MapData};
use filter_common::{
    Policy, generation,
    maps::{capacity::MAX_SESSIONS, names, policy_index},
};

use super::{Kernel, generation::Pass, mapped::Mapped, writes::SyncReport};

/// The `POLICY_INDEX` slot of `session` in `generation`.
fn slot(
    index: &Mapped<policy_index::Element>,
    generation: u32,
    session: u32,
) -> anyhow::Result<&std::sync::atomic::AtomicU32> {
    let keyed =
        generation::keyed(generation, session).with_context(|| format!("session id {session}"))?;
    let (element, half) = policy_index::position(keyed).context("a keyed session id")?;
    index
        .as_atomic()
        .get(element as usize * 2 + half)
        .with_context(|| format!("session id {session} beyond map POLICY_INDEX"))
}

/// `(session, pool entry)` of every session `generation`'s index names an entry for.
fn entries(
    index: &Mapped<policy_index::Element>,
    generation: u32,
) -> impl Iterator<Item = (u32, u32)> + '_ {
    (0..MAX_SESSIONS)
        .filter_map(move |s| Some((s, slot(index, generation, s).ok()?.load(Ordering::Acquire))))
        .filter(|&(_, entry)| entry != 0)
}

/// The policy of every session `generation`'s index names a `pool` entry for.
fn policies_in<T: Borrow<MapData>, M: FromIterator<(u32, Policy)>>(
    index: &Mapped<policy_index::Element>,
    pool: &Array<T, Policy>,
    generation: u32,
) -> anyhow::Result<M> {
    entries(index, generation)
        .map(|(session, entry)| {
            let policy = pool
                .get(&entry, 0)
                .with_context(|| format!("reading entry {entry} of map POLICIES"))?;
            Ok((session, policy))
        })
        .collect()
}

/// Makes `generation`'s policies equal to `want`. A session whose policy the other
/// generation already holds shares its entry; any other changed policy goes into an entry
/// neither the other generation nor an unchanged session of this one names.
pub(super) fn write_policies(
    kernel: &mut Kernel,
    generation: u32,
    want: &StdMap<u32, Policy>,
    same: impl Fn(&Policy, &Policy) -> bool,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let index = Mapped::<policy_index::Element>::open(kernel, names::POLICY_INDEX, pass.writes())?;
    let other = generation::other(generation);
    let (have, theirs): (StdMap<u32, Policy>, StdMap<u32, Policy>) = {
        let pool: Array<_, Policy> = Array::try_from(kernel.map(names::POLICIES)?)?;
        (
            policies_in(&index, &pool, generation)?,
            policies_in(&index, &pool, other)?,
        )
    };
    let their_entries: StdMap<u32, u32> = entries(&index, other).collect();
    let mut changed: Vec<(u32, &Policy)> = want
        .iter()
        .filter(|(session, policy)| !have.get(session).is_some_and(|h| same(h, policy)))
        .map(|(&session, policy)| (session, policy))
        .collect();
    changed.sort_unstable_by_key(|&(session, _)| session);
    let gone: Vec<u32> = have
        .keys()
        .filter(|s| !want.contains_key(s))
        .copied()
        .collect();
    report.written += changed.len();
    report.removed += gone.len();
    if !pass.writes() {
        return Ok(());
    }
    let mut pool: Array<_, Policy> = Array::try_from(kernel.map_mut(names::POLICIES)?)?;
    // Entries that must keep their policy: those the other generation names, and those of
    // this generation's sessions that keep theirs.
    let mut named: std::collections::BTreeSet<u32> = their_entries.values().copied().collect();
    named.extend(
        entries(&index, generation)
            .filter(|(s, _)| want.contains_key(s) && !changed.iter().any(|(c, _)| c == s))
            .map(|(_, e)| e),
    );
    let mut free: Vec<u32> = (1..policy_index::POOL)
        .rev()
        .filter(|e| !named.contains(e))
        .collect();
    for (session, policy) in changed {
        let shared = theirs
            .get(&session)
            .filter(|p| same(p, policy))
            .and(their_entries.get(&session));
        let entry = match shared {
            Some(&entry) => entry,
            None => {
                let Some(entry) = free.pop() else {
                    bail!(
                        "no free entry in map POLICIES for session {session}'s policy \
                         ({} entries)",
                        policy_index::POOL
                    );
                };
                pool.set(entry, policy, 0)
                    .with_context(|| format!("writing entry {entry} of map POLICIES"))?;
                entry
            }
        };
        slot(&index, generation, session)?.store(entry, Ordering::Release);
    }
    for session in gone {
        slot(&index, generation, session)?.store(0, Ordering::Release);
    }
    Ok(())
}

/// The policies by session as the program reaches them, read from the pins under
/// `pin_dir` in the generation packets use: what tests compare across kernel states,
/// whichever pool entries hold them.
pub fn pinned_policies(
    pin_dir: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeMap<u32, Policy>> {
    let open = |name: &str| {
        aya::maps::MapData::from_pin(pin_dir.join(name))
            .with_context(|| format!("opening the pin of map {name}"))
    };
    let index = Mapped::<policy_index::Element>::map(
        &open(names::POLICY_INDEX)?,
        names::POLICY_INDEX,
        false,
    )?;
    let active: Array<_, u32> =
        Array::try_from(aya::maps::Map::Array(open(names::SESSION_ACTIVE)?))?;
    let active = generation::active(active.get(&0, 0).context("reading SESSION_ACTIVE")?);
    let pool: Array<_, Policy> = Array::try_from(aya::maps::Map::Array(open(names::POLICIES)?))?;
    policies_in(&index, &pool, active)
}
