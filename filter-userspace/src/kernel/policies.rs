//! The policies as the program reads them: per session id an index into the `POLICIES`
//! pool (see `filter_common::maps::policy_index`). A change is written whole into a pool
//! entry no session names, then committed by switching the session's index with one
//! atomic store; the entry it leaves is rewritten only after an RCU grace period.

use std::{borrow::Borrow, collections::HashMap as StdMap, sync::atomic::Ordering, time::Duration};

use anyhow::{Context as _, bail};
use aya::maps::{Array, MapData};
use filter_common::{
    Policy,
    maps::{capacity::MAX_SESSIONS, names, policy_index},
};

use super::{Kernel, mapped::Mapped, sync::SyncReport};

/// Every session with a policy, and its policy.
pub(super) fn read_policies(kernel: &Kernel) -> anyhow::Result<StdMap<u32, Policy>> {
    let index = Mapped::<policy_index::Element>::open(kernel, names::POLICY_INDEX, false)?;
    policies_in(&index, &Array::try_from(kernel.map(names::POLICIES)?)?)
}

/// The policy of every session `index` names a `pool` entry for.
fn policies_in<T: Borrow<MapData>, M: FromIterator<(u32, Policy)>>(
    index: &Mapped<policy_index::Element>,
    pool: &Array<T, Policy>,
) -> anyhow::Result<M> {
    entries(index)
        .map(|(session, entry)| {
            let policy = pool
                .get(&entry, 0)
                .with_context(|| format!("reading entry {entry} of map POLICIES"))?;
            Ok((session, policy))
        })
        .collect()
}

/// `(session, pool entry)` of every session the index names an entry for.
fn entries(index: &Mapped<policy_index::Element>) -> impl Iterator<Item = (u32, u32)> + '_ {
    index
        .as_atomic()
        .iter()
        .zip(0..MAX_SESSIONS)
        .map(|(entry, session)| (session, entry.load(Ordering::Acquire)))
        .filter(|&(_, entry)| entry != 0)
}

/// Makes the sessions' policies equal to `want`. Each session whose policy changes is
/// committed on its own by its index switch; sessions that lose their policy are
/// switched to 0 last.
pub(super) fn write_policies(
    kernel: &mut Kernel,
    want: &StdMap<u32, Policy>,
    same: impl Fn(&Policy, &Policy) -> bool,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let index = Mapped::<policy_index::Element>::open(kernel, names::POLICY_INDEX, true)?;
    let have: StdMap<u32, Policy> =
        policies_in(&index, &Array::try_from(kernel.map(names::POLICIES)?)?)?;
    let mut changed: Vec<(u32, &Policy)> = want
        .iter()
        .filter(|(session, policy)| !have.get(session).is_some_and(|h| same(h, policy)))
        .map(|(&session, policy)| (session, policy))
        .collect();
    changed.sort_unstable_by_key(|&(session, _)| session);
    if !changed.is_empty() {
        let named: std::collections::BTreeSet<u32> = entries(&index).map(|(_, e)| e).collect();
        let mut free: Vec<u32> = (1..policy_index::POOL)
            .rev()
            .filter(|e| !named.contains(e))
            .collect();
        if free.len() < changed.len() {
            bail!(
                "{} policies to write but {} free entries in map POLICIES",
                changed.len(),
                free.len()
            );
        }
        // Entries no session names now may have been switched away from a moment ago, by a
        // command that was then killed: none is rewritten before every packet that could
        // still read it has been handled.
        grace_period();
        let mut pool: Array<_, Policy> = Array::try_from(kernel.map_mut(names::POLICIES)?)?;
        for (session, policy) in changed {
            let entry = free.pop().context("no free entry in map POLICIES")?;
            pool.set(entry, policy, 0)
                .with_context(|| format!("writing entry {entry} of map POLICIES"))?;
            set_index(&index, session, entry)?;
            report.written += 1;
        }
    }
    for &session in have.keys().filter(|s| !want.contains_key(s)) {
        set_index(&index, session, 0)?;
        report.removed += 1;
    }
    Ok(())
}

/// Points `session` at pool `entry` (0: no policy): the commit point of its rules.
fn set_index(
    index: &Mapped<policy_index::Element>,
    session: u32,
    entry: u32,
) -> anyhow::Result<()> {
    let (element, half) =
        policy_index::position(session).with_context(|| format!("session id {session}"))?;
    let slot = index
        .as_atomic()
        .get(element as usize * 2 + half)
        .with_context(|| format!("session id {session} beyond map POLICY_INDEX"))?;
    slot.store(entry, Ordering::Release);
    Ok(())
}

/// Waits for an RCU grace period: every XDP program run that started before has ended.
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is `synchronize_rcu()`; kernels that refuse it
/// (nohz_full) get a wait far longer than a packet takes.
fn grace_period() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes a command, flags and a CPU id, and touches no memory of ours.
    let done = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) } == 0;
    if !done {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The policies by session as the program reaches them, read from the pins under
/// `pin_dir`: what tests compare across kernel states, whichever pool entries hold them.
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
    let pool: Array<_, Policy> = Array::try_from(aya::maps::Map::Array(open(names::POLICIES)?))?;
    policies_in(&index, &pool)
}
