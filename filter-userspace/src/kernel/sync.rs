//! Makes the session maps (endpoints, flows, overrides, policies) equal to what the state
//! file says, through the two generations of `filter_common::generation`: the change is
//! written into the generation packets do not use, switched in with one store, then
//! copied into the other. Unchanged entries are not touched.

use std::collections::{BTreeSet, HashMap as StdMap};

use anyhow::bail;
use filter_common::{
    Override, Policy, Rule as KernelRule, generation as generations,
    maps::{ADDRESS_ANY, capacity},
    mux,
    policy::{RULE_ACTIVE, RULE_DRY_RUN, RULES_PER_SESSION},
};

use super::{
    Kernel,
    generation::{self, Pass},
    writes::{SyncReport, same_expiry},
};
use crate::{expiry::Clock, model::SessionMaps, prefix::override_key, state::State};

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
        unparsed: crate::unparsed::Guards::derive(state, clock.wall()),
        live: state.meetings.values().map(|m| m.session).collect(),
    };
    let guards = d.unparsed.guards.len();
    if guards > filter_common::unparsed::GUARDS as usize {
        anyhow::bail!(
            "meetings use {guards} distinct local addresses with rules in force; the guard \
             for unparseable packets holds {}",
            filter_common::unparsed::GUARDS
        );
    }
    let prefixes = d.unparsed.prefixes.len();
    if prefixes > filter_common::unparsed::PREFIXES as usize {
        anyhow::bail!(
            "the guards for unparseable packets need {prefixes} prefix entries (each local \
             address repeats the drops and exceptions of its meetings); they hold {}",
            filter_common::unparsed::PREFIXES
        );
    }
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
                let (len, key) = override_key(prefix, session);
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
            let (len, key) = override_key(prefix, session);
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
        // Each generation holds its own entry of a policy flow, in the table sized at attach.
        (
            "flow bindings (an entry in each generation)",
            d.flows.len() * 2,
            state.flows.unwrap_or(super::flow_table::DEFAULT),
        ),
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

fn same_policy(a: &Policy, b: &Policy) -> bool {
    a.rules.iter().zip(&b.rules).all(|(x, y)| {
        x.blocked == y.blocked
            && x.flags == y.flags
            && x.rule_id == y.rule_id
            && same_expiry(x.expires_ns, y.expires_ns)
    })
}

/// Writes (or, in a [`Pass::Compare`], counts) what `generation` lacks of `want` and
/// `live`; `flows` is the flow map as read at the start of the sync.
fn write_generation(
    kernel: &mut Kernel,
    generation: u32,
    want: &Desired,
    live: &BTreeSet<u32>,
    flows: &[(filter_common::FlowKey, filter_common::mux::FlowBinding)],
    pass: Pass,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport::default();
    let r = &mut report;
    generation::write_ports(kernel, generation, want, pass, r)?;
    generation::write_endpoints(kernel, generation, want, pass, r)?;
    super::bindings::write_policy_flows(kernel, generation, flows, &want.flows, pass, r)?;
    super::overrides::write_overrides(kernel, generation, &want.overrides, pass, r)?;
    generation::write_override_sessions(kernel, generation, want, pass, r)?;
    let policies = &want.policies;
    super::policies::write_policies(kernel, generation, policies, same_policy, pass, r)?;
    generation::write_mux_blocked(kernel, generation, &want.mux_blocked, pass, r)?;
    generation::write_live(kernel, generation, live, pass, r)?;
    Ok(report)
}

/// Makes the kernel's session maps match `state`. Validation happens first, so a state the
/// maps cannot hold fails before anything is written.
///
/// The change is written whole into the generation packets do not use, and takes effect
/// at one store, the switch; the other generation is then brought to the same state for
/// the next change. A command killed at any point leaves the old state or the new one in
/// force, and the next sync finishes the work: it compares the generation in use with the
/// state and switches only if they differ.
pub fn sync(kernel: &mut Kernel, state: &State, clock: &Clock) -> anyhow::Result<SyncReport> {
    let want = desired(state, clock)?;
    super::bindings::complete_learned_idle(kernel)?;
    let live: BTreeSet<u32> = state.meetings.values().map(|m| m.session).collect();
    let flows = super::bindings::read_flows(kernel)?;
    let active = generation::active(kernel)?;
    let idle = generations::other(active);
    let mut report = SyncReport::default();
    // The table the state records is switched to with the rules: an `apply` that loaded a
    // new table staged it, and a command killed between a table's switch and the state's
    // save left the other one in force, which this puts back.
    let table = state.geo.as_ref().map(|g| g.generation & 1);
    let differs = write_generation(kernel, active, &want, &live, &flows, Pass::Compare)?;
    let in_use = if differs == SyncReport::default() {
        if let Some(table) = table
            && table != super::geo::active_generation(kernel)?
        {
            generation::switch_table(kernel, table)?;
        }
        active
    } else {
        // The idle generation may have been in use a moment ago, under a command killed
        // right after its switch: no packet may still read it when it is rewritten.
        generation::grace_period();
        report.add(write_generation(
            kernel,
            idle,
            &want,
            &live,
            &flows,
            Pass::Write,
        )?);
        // Sessions packets cannot reach yet may have held a removed meeting: their counters
        // start from zero and their old bindings go before the first packet of the new one.
        let reachable = generation::live_of(kernel, active)?;
        let arriving: BTreeSet<u32> = live.difference(&reachable).copied().collect();
        super::forget::forget_stats(kernel, |s| arriving.contains(&s))?;
        super::bindings::forget_bindings(kernel, &flows, &reachable, &mut report)?;
        generation::switch(kernel, idle, table)?;
        idle
    };
    let other = generations::other(in_use);
    if write_generation(kernel, other, &want, &live, &flows, Pass::Compare)?
        != SyncReport::default()
    {
        generation::grace_period();
        report.add(write_generation(
            kernel,
            other,
            &want,
            &live,
            &flows,
            Pass::Write,
        )?);
    }
    super::bindings::forget_bindings(kernel, &flows, &live, &mut report)?;
    super::unparsed::write(kernel, &want.unparsed, &mut report)?;
    super::forget::forget_stats(kernel, |s| !live.contains(&s))?;
    Ok(report)
}

/// What each generation of the session maps lacks of `state`, the generation packets use
/// first; touches nothing. Both are empty once a sync of `state` has finished: anything
/// else means a sync stopped part way (or another state is in force).
pub fn differences(
    kernel: &mut Kernel,
    state: &State,
    clock: &Clock,
) -> anyhow::Result<[SyncReport; 2]> {
    let want = desired(state, clock)?;
    super::bindings::complete_learned_idle(kernel)?;
    let live: BTreeSet<u32> = state.meetings.values().map(|m| m.session).collect();
    let flows = super::bindings::read_flows(kernel)?;
    let active = generation::active(kernel)?;
    let idle = generations::other(active);
    Ok([
        write_generation(kernel, active, &want, &live, &flows, Pass::Compare)?,
        write_generation(kernel, idle, &want, &live, &flows, Pass::Compare)?,
    ])
}
