//! Makes the session maps (endpoints, flows, overrides, policies) equal to what the state
//! file says. New entries go in before stale ones go out, and unchanged entries are not
//! touched, so traffic of unrelated meetings never sees a gap.

use std::{
    collections::{BTreeSet, HashMap as StdMap},
    hash::Hash,
    sync::atomic::Ordering,
};

use anyhow::{Context as _, bail};
use aya::{
    Pod,
    maps::{Array, HashMap},
};
use filter_common::{
    CachedStats, EndpointKey, Override, OverrideAction, Policy, Rule as KernelRule, StatsKey,
    counters::{STATS_CACHE_WAYS, stats_cache_first},
    maps::{ADDRESS_ANY, capacity, names, override_sessions, ports},
    mux,
    policy::{RULE_ACTIVE, RULE_DRY_RUN, RULES_PER_SESSION},
};

use super::{
    Kernel,
    mapped::Mapped,
    overrides::{bound, read_overrides, remove_overrides, write_overrides},
    policies::{read_policies, write_policies},
};
use crate::{expiry::Clock, model::SessionMaps, state::State};

/// How many entries a sync wrote and removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub written: usize,
    pub removed: usize,
}

/// Everything the session maps should hold for `state`: the model's type, so that kernel
/// and model are fed from this one derivation.
type Desired = SessionMaps;

impl SessionMaps {
    /// The session maps for `state`, derived as [`sync`] derives what it writes, with
    /// end times converted to the program's clock by `clock`.
    pub fn derive(state: &State, clock: &Clock) -> anyhow::Result<SessionMaps> {
        desired(state, clock)
    }
}

/// Checks capacity limits and builds the desired entries; touches nothing.
fn desired(state: &State, clock: &Clock) -> anyhow::Result<Desired> {
    let mut d = Desired {
        endpoints: StdMap::new(),
        flows: StdMap::new(),
        overrides: StdMap::new(),
        policies: StdMap::new(),
        mux_blocked: Default::default(),
    };
    for endpoint in &state.mux {
        d.endpoints
            .extend(endpoint.keys().map(|k| (k, mux::MUX_SESSION)));
    }
    for meeting in state.meetings.values() {
        let session = meeting.session;
        for endpoint in &meeting.endpoints {
            d.endpoints.extend(endpoint.keys().map(|k| (k, session)));
        }
        d.flows
            .extend(meeting.flows.iter().map(|f| (f.key(), session)));
        let mut policy = Policy::EMPTY;
        // Each rule in its own slot, which its per-rule counters are indexed by and its
        // drop overrides name; a state from before slots were recorded gets them here.
        let mut placed = meeting.clone();
        crate::rule_slots::assign_meeting(None, &mut placed)?;
        for rule in &placed.rules {
            let Some(slot) = rule.slot.filter(|&s| usize::from(s) < RULES_PER_SESSION) else {
                continue;
            };
            let kernel = kernel_rule(rule, clock);
            policy.rules[usize::from(slot)] = kernel;
            // Rules that lapse later stay in the union until the sync that removes them:
            // it only ever drops more unbound packets, and those only until rebound.
            if !rule.dry_run && !rule.expired(clock.wall()) {
                for (word, bits) in d.mux_blocked.iter_mut().zip(kernel.blocked) {
                    *word |= bits;
                }
            }
            for prefix in &rule.prefixes {
                let (len, key) = prefix.override_key(session);
                let value = Override::drop_of(
                    entry_len(len),
                    slot,
                    kernel.rule_id,
                    kernel.flags & RULE_DRY_RUN,
                    kernel.expires_ns,
                );
                d.overrides.insert((len, key), value);
            }
        }
        if policy != Policy::EMPTY {
            d.policies.insert(session, policy);
        }
        for prefix in &meeting.allows {
            let (len, key) = prefix.override_key(session);
            d.overrides
                .insert((len, key), Override::allow(entry_len(len)));
        }
    }
    // Wildcard endpoints live in the port table, which has room for every port; only
    // endpoints on an address take an entry of the endpoint map.
    let bound = d.endpoints.keys().filter(|k| k.addr != ADDRESS_ANY).count();
    for (what, len, cap) in [
        (
            "endpoint ports on a local address",
            bound,
            capacity::ENDPOINTS,
        ),
        ("flow bindings", d.flows.len(), capacity::FLOWS),
        ("prefix overrides", d.overrides.len(), capacity::OVERRIDES),
    ] {
        if len > cap as usize {
            bail!("{len} {what} exceed the kernel map's capacity of {cap}");
        }
    }
    Ok(d)
}

/// A trie prefix length (at most 32 + 128) as the override value records it.
fn entry_len(len: u32) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

fn kernel_rule(rule: &crate::state::Rule, clock: &Clock) -> KernelRule {
    let mut k = KernelRule::EMPTY;
    for territory in &rule.territories {
        k.set_blocked(territory.id());
    }
    k.flags = RULE_ACTIVE | if rule.dry_run { RULE_DRY_RUN } else { 0 };
    k.expires_ns = rule.expires.map_or(0, |at| clock.kernel_ns_at(at));
    k.rule_id = rule.kernel_id();
    k
}

/// Expiries recomputed on each sync differ by the clock reading's jitter; within a
/// second they are the same rule and need no rewrite.
pub(super) fn same_expiry(a: u64, b: u64) -> bool {
    (a == 0) == (b == 0) && a.abs_diff(b) < 1_000_000_000
}

fn same_policy(a: &Policy, b: &Policy) -> bool {
    a.rules.iter().zip(&b.rules).all(|(x, y)| {
        x.blocked == y.blocked
            && x.flags == y.flags
            && x.rule_id == y.rule_id
            && same_expiry(x.expires_ns, y.expires_ns)
    })
}

/// Writes `want` into a hash map and removes what it does not list.
fn sync_hash<K: Pod + Eq + Hash, V: Pod>(
    map: &mut HashMap<&mut aya::maps::MapData, K, V>,
    want: &StdMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
    name: &str,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let have: StdMap<K, V> = map
        .iter()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading map {name}"))?;
    for (k, v) in want {
        if !have.get(k).is_some_and(|h| same(h, v)) {
            map.insert(k, v, 0)
                .with_context(|| format!("writing map {name}"))?;
            report.written += 1;
        }
    }
    for k in have.keys().filter(|k| !want.contains_key(k)) {
        map.remove(k)
            .with_context(|| format!("removing from map {name}"))?;
        report.removed += 1;
    }
    Ok(())
}

/// Makes the kernel's session maps match `state`. Validation happens first, so a state the
/// maps cannot hold fails before anything is written.
///
/// A rule's policy slot is its commit point: its drop overrides name the slot and the
/// rule's id and apply only while the slot holds that rule. So a new rule's overrides are
/// written first (inert), then the policies in one update per session, then the
/// overrides of removed rules are deleted (inert by then). A command killed at any point
/// leaves each session under its whole old rules or its whole new ones.
pub fn sync(kernel: &mut Kernel, state: &State, clock: &Clock) -> anyhow::Result<SyncReport> {
    let want = desired(state, clock)?;
    let mut report = SyncReport::default();
    // Sessions gaining overrides are marked before the entries exist, and sessions losing
    // them cleared after: the bitmap never hides an override.
    let marked = override_bitmap(&want);
    let had = read_words(kernel, names::OVERRIDE_SESSIONS, override_sessions::WORDS)?;
    let either: Vec<u64> = had.iter().zip(&marked).map(|(a, b)| a | b).collect();
    write_words(kernel, names::OVERRIDE_SESSIONS, &had, &either, &mut report)?;
    // Drops left behind by a killed command, naming no rule the policies hold, go first:
    // a new rule reusing their slot must never find them.
    let policies = read_policies(kernel)?;
    let have = read_overrides(kernel)?;
    remove_overrides(
        kernel,
        &have,
        &want.overrides,
        |k, v| v.action == OverrideAction::Drop as u8 && !bound(&policies, k, v),
        &mut report,
    )?;
    let have = read_overrides(kernel)?;
    write_overrides(kernel, &have, &want.overrides, &mut report)?;
    // Policies and overrides before sessions: a new meeting's rules are in force from the
    // first packet that finds its session.
    write_policies(kernel, &want.policies, same_policy, &mut report)?;
    remove_overrides(kernel, &have, &want.overrides, |_, _| true, &mut report)?;
    write_words(
        kernel,
        names::OVERRIDE_SESSIONS,
        &either,
        &marked,
        &mut report,
    )?;
    // Ports of new sessions are marked (and wildcard endpoints take effect, their session
    // being in the entry) before the endpoint and flow maps change; ports of removed ones
    // are cleared after: the table never hides a live session.
    let ports = port_entries(&want);
    let port_table = Mapped::<ports::Element>::open(kernel, names::PORTS, true)?;
    let in_use: Vec<u32> = port_table
        .as_atomic()
        .iter()
        .map(|e| e.load(Ordering::Acquire))
        .collect();
    // An id packets cannot reach yet may have held a removed meeting: its counters start
    // from zero before the first packet of the new one.
    let reachable = reachable_sessions(kernel, &in_use)?;
    let arriving: BTreeSet<u32> = want
        .endpoints
        .values()
        .chain(want.flows.values())
        .copied()
        .filter(|s| !reachable.contains(s))
        .collect();
    forget_stats(kernel, |s| arriving.contains(&s))?;
    let union: Vec<u32> = in_use
        .iter()
        .zip(&ports)
        .map(|(&have, &want)| {
            let keys = (have | want) & ports::KEYS;
            let wildcard = if want & ports::ENDPOINT_ANY != 0 {
                want
            } else {
                have
            };
            ports::entry(keys, ports::wildcard_session(wildcard))
        })
        .collect();
    write_entries(&port_table, &union, &mut report);
    {
        let mut map: HashMap<_, EndpointKey, u32> =
            HashMap::try_from(kernel.map_mut(names::ENDPOINTS)?)?;
        // The program finds wildcard endpoints in the port table, so the map holds only
        // endpoints on an address.
        let on_address: StdMap<EndpointKey, u32> = want
            .endpoints
            .iter()
            .filter(|(k, _)| k.addr != ADDRESS_ANY)
            .map(|(k, v)| (*k, *v))
            .collect();
        sync_hash(
            &mut map,
            &on_address,
            |a, b| a == b,
            names::ENDPOINTS,
            &mut report,
        )?;
    }
    let live: BTreeSet<u32> = state.meetings.values().map(|m| m.session).collect();
    super::bindings::sync_flows(kernel, &want.flows, &live, &mut report)?;
    super::bindings::forget_ufrags(kernel, &live, &mut report)?;
    super::bindings::write_mux_blocked(kernel, &want.mux_blocked, &mut report)?;
    write_entries(&port_table, &ports, &mut report);
    forget_stats(kernel, |s| !live.contains(&s))?;
    Ok(report)
}

/// The `PORTS` entries for the endpoints and flows of `want`.
fn port_entries(want: &Desired) -> Vec<u32> {
    let mut entries = vec![0u32; ports::ENTRIES as usize];
    for (key, &session) in &want.endpoints {
        if let Some(i) = ports::index(key.proto, key.port) {
            let e = &mut entries[i as usize];
            *e = if key.addr == ADDRESS_ANY {
                ports::entry(*e | ports::ENDPOINT_ANY, session)
            } else {
                *e | ports::ENDPOINT_ADDR
            };
            // Flows are learned on a mux port at any time: they are always looked up.
            if session == mux::MUX_SESSION {
                *e |= ports::MUX | ports::FLOW;
            }
        }
    }
    for key in want.flows.keys() {
        if let Some(i) = ports::index(key.proto, key.dst_port) {
            entries[i as usize] |= ports::FLOW;
        }
    }
    entries
}

/// Writes the entries of `want` that differ from the table's, each in one store.
fn write_entries(table: &Mapped<ports::Element>, want: &[u32], report: &mut SyncReport) {
    for (entry, &w) in table.as_atomic().iter().zip(want) {
        if entry.load(Ordering::Relaxed) != w {
            entry.store(w, Ordering::Release);
            report.written += 1;
        }
    }
}

/// The `OVERRIDE_SESSIONS` words for the overrides of `want`.
fn override_bitmap(want: &Desired) -> Vec<u64> {
    let mut words = vec![0u64; override_sessions::WORDS as usize];
    for (_, key) in want.overrides.keys() {
        if let Some((word, bit)) = override_sessions::bit(u32::from_be_bytes(key.session_be)) {
            words[word as usize] |= bit;
        }
    }
    words
}

fn read_words(kernel: &Kernel, name: &str, words: u32) -> anyhow::Result<Vec<u64>> {
    let map: Array<_, u64> = Array::try_from(kernel.map(name)?)?;
    (0..words)
        .map(|i| {
            map.get(&i, 0)
                .with_context(|| format!("reading map {name}"))
        })
        .collect()
}

/// Writes the words of `want` that differ from `have`.
fn write_words(
    kernel: &mut Kernel,
    name: &str,
    have: &[u64],
    want: &[u64],
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: Array<_, u64> = Array::try_from(kernel.map_mut(name)?)?;
    for (i, (h, w)) in have.iter().zip(want).enumerate() {
        if h != w {
            map.set(i as u32, w, 0)
                .with_context(|| format!("writing map {name}"))?;
            report.written += 1;
        }
    }
    Ok(())
}

/// Counters of a deleted meeting must not be inherited by the next meeting given its id.
/// Clears every counter of the sessions `forget` picks: their `SESSION_STATS` entries
/// and their `STATS_CACHE` entries on every CPU. Only a session's own packets write its
/// entries, so this races with no live session's counts.
fn forget_stats(kernel: &mut Kernel, forget: impl Fn(u32) -> bool) -> anyhow::Result<()> {
    {
        let mut map: aya::maps::PerCpuHashMap<_, StatsKey, filter_common::SessionStats> =
            aya::maps::PerCpuHashMap::try_from(kernel.map_mut(names::SESSION_STATS)?)?;
        let stale: Vec<StatsKey> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| forget(k.session))
            .collect();
        for key in stale {
            map.remove(&key)
                .context("removing from map SESSION_STATS")?;
        }
    }
    let mut stale: Vec<u32> = super::stats::read_cache(kernel)?
        .into_iter()
        .map(|(_, cpu)| cpu.key.session)
        .filter(|&session| forget(session))
        .collect();
    stale.sort_unstable();
    stale.dedup();
    let cpus = aya::util::nr_cpus().map_err(|(path, e)| anyhow::anyhow!("reading {path}: {e}"))?;
    let mut cache: aya::maps::PerCpuArray<_, CachedStats> =
        aya::maps::PerCpuArray::try_from(kernel.map_mut(names::STATS_CACHE)?)?;
    for first in stale.into_iter().filter_map(stats_cache_first) {
        for index in first..first + STATS_CACHE_WAYS {
            let free = aya::maps::PerCpuValues::try_from(vec![CachedStats::default(); cpus])
                .context("per-CPU values of STATS_CACHE")?;
            cache
                .set(index, free, 0)
                .context("writing map STATS_CACHE")?;
        }
    }
    Ok(())
}

/// The sessions packets can reach now: the wildcard sessions of the port table, and the
/// values of the endpoint and flow maps.
fn reachable_sessions(kernel: &Kernel, ports: &[u32]) -> anyhow::Result<BTreeSet<u32>> {
    let mut live: BTreeSet<u32> = ports
        .iter()
        .filter(|&&e| e & ports::ENDPOINT_ANY != 0)
        .map(|&e| ports::wildcard_session(e))
        .collect();
    let endpoints: HashMap<_, EndpointKey, u32> = HashMap::try_from(kernel.map(names::ENDPOINTS)?)?;
    for entry in endpoints.iter() {
        live.insert(entry.context("reading map ENDPOINTS")?.1);
    }
    live.extend(super::bindings::flow_sessions(kernel)?);
    Ok(live)
}
