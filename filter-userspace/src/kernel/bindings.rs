//! Runtime bindings: flows and server ufrags, which carry participants' addresses and come
//! and go with every join. They live in the kernel maps only, never in the state file or
//! the audit trail; `restore` starts with none and the SFU registers them again.
//!
//! Flows from the state (`flow add`, the policy file) are kept equal to it by sync; flows
//! bound by the API or learned by the program are left alone, except that a meeting's
//! bindings go with it, before its session id can be given to another meeting.

use std::collections::{BTreeMap, BTreeSet, HashMap as StdMap};

use anyhow::{Context as _, bail};
use aya::maps::{HashMap, PerCpuArray};
use filter_common::{
    FlowKey,
    maps::{capacity, names},
    mux::{FlowBinding, MuxEvent, UfragBinding, UfragKey, origin},
};

use super::{Kernel, generation::Pass, writes::SyncReport};
use crate::ufrag::Ufrag;

fn flows(
    kernel: &mut Kernel,
) -> anyhow::Result<HashMap<&mut aya::maps::MapData, FlowKey, FlowBinding>> {
    Ok(HashMap::try_from(kernel.map_mut(names::FLOWS)?)?)
}

fn ufrags(
    kernel: &mut Kernel,
) -> anyhow::Result<HashMap<&mut aya::maps::MapData, UfragKey, UfragBinding>> {
    Ok(HashMap::try_from(kernel.map_mut(names::UFRAGS)?)?)
}

/// Every flow binding in the kernel.
pub fn read_flows(kernel: &Kernel) -> anyhow::Result<Vec<(FlowKey, FlowBinding)>> {
    let map: HashMap<_, FlowKey, FlowBinding> = HashMap::try_from(kernel.map(names::FLOWS)?)?;
    map.iter()
        .collect::<Result<_, _>>()
        .context("reading map FLOWS")
}

/// Every registered ufrag in the kernel.
pub fn read_ufrags(kernel: &Kernel) -> anyhow::Result<Vec<(UfragKey, UfragBinding)>> {
    let map: HashMap<_, UfragKey, UfragBinding> = HashMap::try_from(kernel.map(names::UFRAGS)?)?;
    map.iter()
        .collect::<Result<_, _>>()
        .context("reading map UFRAGS")
}

/// Makes `generation`'s policy flows (`flow add`, the policy file: keys with the
/// generation's tag) equal to the state's, `want`. `have` is the map as read at the start
/// of the sync: only sync writes tagged keys.
pub(super) fn write_policy_flows(
    kernel: &mut Kernel,
    generation: u32,
    have: &[(FlowKey, FlowBinding)],
    want: &StdMap<FlowKey, u32>,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let tag = filter_common::generation::flow_tag(generation);
    let mine: StdMap<FlowKey, FlowBinding> = have
        .iter()
        .filter(|(k, _)| k._pad[0] == tag)
        .map(|(k, b)| (FlowKey { _pad: [0; 3], ..*k }, *b))
        .collect();
    let mut map = flows(kernel)?;
    for (key, &session) in want {
        let binding = FlowBinding::bound(session, origin::POLICY);
        if mine.get(key) != Some(&binding) {
            if pass.writes() {
                map.insert(key.in_generation(generation), binding, 0)
                    .context("writing map FLOWS")?;
            }
            report.written += 1;
        }
    }
    for key in mine.keys().filter(|k| !want.contains_key(k)) {
        if pass.writes() {
            // Gone already (evicted) is as good as removed.
            let _ = map.remove(&key.in_generation(generation));
        }
        report.removed += 1;
    }
    Ok(())
}

/// Removes the runtime bindings (flows learned or bound by the API, and ufrags) of
/// sessions not in `keep`; `have` is the flow map as read at the start of the sync.
pub(super) fn forget_bindings(
    kernel: &mut Kernel,
    have: &[(FlowKey, FlowBinding)],
    keep: &BTreeSet<u32>,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    {
        let mut map = flows(kernel)?;
        let stale = have
            .iter()
            .filter(|(k, b)| k._pad[0] == 0 && !keep.contains(&b.session));
        for (key, _) in stale {
            // Gone already (evicted, or removed by another writer) is as good as removed.
            let _ = map.remove(key);
            report.removed += 1;
        }
    }
    let registered = read_ufrags(kernel)?;
    let mut map = ufrags(kernel)?;
    for (key, _) in registered
        .iter()
        .filter(|(_, b)| !keep.contains(&b.session))
    {
        let _ = map.remove(key);
        report.removed += 1;
    }
    Ok(())
}

/// Registers each ufrag to its session. All are checked first: a ufrag registered to
/// another meeting, or more ufrags than the map holds, refuse the whole batch with nothing
/// written. Registering a ufrag again to its own meeting changes nothing.
pub fn bind_ufrags(
    kernel: &mut Kernel,
    batch: &[(Ufrag, u32)],
    names_of: &dyn Fn(u32) -> String,
) -> anyhow::Result<usize> {
    let map = ufrags(kernel)?;
    let mut have: BTreeMap<UfragKey, UfragBinding> = BTreeMap::new();
    for (ufrag, _) in batch {
        if let Ok(bound) = map.get(&ufrag.key(), 0) {
            have.insert(ufrag.key(), bound);
        }
    }
    let mut seen: BTreeMap<&Ufrag, u32> = BTreeMap::new();
    for (ufrag, session) in batch {
        if let Some(&other) = seen.get(ufrag).filter(|&&s| s != *session) {
            bail!(
                "ufrag {ufrag} is given for both meeting `{}` and meeting `{}`",
                names_of(other),
                names_of(*session)
            );
        }
        seen.insert(ufrag, *session);
        if let Some(bound) = have.get(&ufrag.key()).filter(|b| b.session != *session) {
            bail!(
                "ufrag {ufrag} is registered to meeting `{}`; unregister it first \
                 (`geofence ufrag del {ufrag}`)",
                names_of(bound.session)
            );
        }
    }
    if seen.is_empty() {
        return Ok(0);
    }
    // One syscall for the whole batch: a command killed part way registers all of it or
    // none. A refused batch (a full map) is taken back from the entries it had written.
    let keys: Vec<UfragKey> = seen.keys().map(|u| u.key()).collect();
    let values: Vec<UfragBinding> = seen
        .iter()
        .map(|(ufrag, &session)| UfragBinding {
            session,
            id: ufrag.id(),
        })
        .collect();
    let data = ufrag_data(kernel)?;
    if let Err(e) = super::batch::update(data, &keys, &values) {
        let added: Vec<UfragKey> = keys[..e.done.min(keys.len())]
            .iter()
            .filter(|k| !have.contains_key(*k))
            .copied()
            .collect();
        let mut map = ufrags(kernel)?;
        for key in &added {
            let _ = map.remove(key);
        }
        if e.source.raw_os_error() == Some(libc::E2BIG) {
            bail!(
                "the kernel map of ufrags is full ({} entries); nothing of this batch was \
                 registered",
                capacity::UFRAGS
            );
        }
        return Err(anyhow::Error::new(e).context("registering ufrags"));
    }
    Ok(seen.len())
}

/// The `UFRAGS` map's data, for batch writes.
fn ufrag_data(kernel: &mut Kernel) -> anyhow::Result<&aya::maps::MapData> {
    match kernel.map_mut(names::UFRAGS)? {
        aya::maps::Map::HashMap(data) => Ok(data),
        _ => bail!("map UFRAGS is not a hash map"),
    }
}

/// Unregisters ufrags (in one syscall), and ends the flows they bound: a participant who
/// left is unbound. Learned flows of these ufrags that no registration names any more go
/// too, so a command killed between the two is finished by the next. Unknown ufrags are
/// no error (the SFU may unregister twice); returns how many were registered.
pub fn unbind_ufrags(kernel: &mut Kernel, batch: &[Ufrag]) -> anyhow::Result<usize> {
    let gone: Vec<UfragKey> = {
        let map = ufrags(kernel)?;
        let mut keys: Vec<UfragKey> = batch
            .iter()
            .filter(|u| map.get(&u.key(), 0).is_ok())
            .map(Ufrag::key)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    };
    if !gone.is_empty() {
        super::batch::delete(ufrag_data(kernel)?, &gone).context("unregistering ufrags")?;
    }
    let ids: BTreeSet<u32> = batch.iter().map(Ufrag::id).collect();
    let registered: BTreeSet<(u32, u32)> = read_ufrags(kernel)?
        .into_iter()
        .map(|(_, b)| (b.session, b.id))
        .collect();
    let learned = read_flows(kernel)?;
    let mut flows = flows(kernel)?;
    for (key, binding) in learned {
        if binding.origin == origin::LEARNED
            && ids.contains(&binding.ufrag_id)
            && !registered.contains(&(binding.session, binding.ufrag_id))
        {
            let _ = flows.remove(&key);
        }
    }
    Ok(gone.len())
}

/// Binds flows to sessions on behalf of a control plane (origin API). A flow bound by
/// policy to another meeting refuses the batch.
pub fn bind_flows(kernel: &mut Kernel, batch: &[(FlowKey, u32)]) -> anyhow::Result<usize> {
    check_flows(kernel, batch)?;
    let mut map = flows(kernel)?;
    for (key, session) in batch {
        map.insert(key, FlowBinding::bound(*session, origin::API), 0)
            .with_context(|| format!("binding flow {}", describe(key)))?;
    }
    Ok(batch.len())
}

/// Refuses a batch that would rebind a flow the policy binds to another meeting.
pub fn check_flows(kernel: &mut Kernel, batch: &[(FlowKey, u32)]) -> anyhow::Result<()> {
    let generation = super::generation::active(kernel)?;
    let map = flows(kernel)?;
    for (key, session) in batch {
        if let Some(b) = map
            .get(&key.in_generation(generation), 0)
            .ok()
            .filter(|b| b.origin == origin::POLICY && b.session != *session)
        {
            bail!(
                "flow {} is bound by policy to session {}; remove it with `geofence flow del` \
                 first",
                describe(key),
                b.session
            );
        }
    }
    Ok(())
}

/// Removes flows the API bound or the program learned; policy flows stay (they go with
/// `flow del`). Returns how many were bound.
pub fn unbind_flows(kernel: &mut Kernel, batch: &[FlowKey]) -> anyhow::Result<usize> {
    let mut map = flows(kernel)?;
    let mut removed = 0;
    for key in batch {
        let bound = map.get(key, 0).ok();
        if bound.is_some_and(|b| b.origin != origin::POLICY) && map.remove(key).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// How many bindings each session has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BindingCounts {
    pub ufrags: usize,
    pub flows_learned: usize,
    pub flows_api: usize,
    pub flows_policy: usize,
}

/// Binding counts per session.
pub fn binding_counts(kernel: &Kernel) -> anyhow::Result<BTreeMap<u32, BindingCounts>> {
    let mut counts: BTreeMap<u32, BindingCounts> = BTreeMap::new();
    for (_, b) in read_ufrags(kernel)? {
        counts.entry(b.session).or_default().ufrags += 1;
    }
    // Policy flows once, as the generation in use holds them.
    let tag = filter_common::generation::flow_tag(super::generation::active(kernel)?);
    for (k, b) in read_flows(kernel)? {
        if k._pad[0] != 0 && k._pad[0] != tag {
            continue;
        }
        let c = counts.entry(b.session).or_default();
        match b.origin {
            origin::LEARNED => c.flows_learned += 1,
            origin::API => c.flows_api += 1,
            _ => c.flows_policy += 1,
        }
    }
    Ok(counts)
}

/// `udp 198.51.100.7:50000 → 192.0.2.1:3478`.
pub fn describe(key: &FlowKey) -> String {
    let addr = |a: [u8; 16]| {
        let v6 = std::net::Ipv6Addr::from(a);
        match v6.to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::from((v4, 0)).ip(),
            None => std::net::IpAddr::V6(v6),
        }
    };
    let proto = if key.proto == filter_common::proto::UDP {
        "udp"
    } else {
        "tcp"
    };
    let (src, dst) = (
        std::net::SocketAddr::new(addr(key.src), key.src_port),
        std::net::SocketAddr::new(addr(key.dst), key.dst_port),
    );
    format!("{proto} {src} → {dst}")
}

/// What happened to STUN on mux ports, summed over CPUs, per [`MuxEvent`].
pub fn read_mux_events(kernel: &Kernel) -> anyhow::Result<Vec<(MuxEvent, u64)>> {
    let map: PerCpuArray<_, u64> = PerCpuArray::try_from(kernel.map(names::MUX_EVENTS)?)?;
    MuxEvent::ALL
        .iter()
        .map(|&event| {
            let values = map
                .get(&(event as u32), 0)
                .context("reading map MUX_EVENTS")?;
            Ok((event, values.iter().sum()))
        })
        .collect()
}

/// The state of the shared ports: bindings per session and the program's STUN events.
#[derive(Clone, Debug, Default)]
pub struct MuxView {
    pub bindings: BTreeMap<u32, BindingCounts>,
    pub events: Vec<(MuxEvent, u64)>,
    pub flows: super::flow_table::FlowTableUse,
}

pub fn read_mux(kernel: &Kernel) -> anyhow::Result<MuxView> {
    Ok(MuxView {
        bindings: binding_counts(kernel)?,
        events: read_mux_events(kernel)?,
        flows: super::flow_table::read_use(kernel)?,
    })
}

/// The kernel's binding of one flow, if it has one: the policy's in the generation in use,
/// which the program looks up first, else one learned or bound by the API.
pub fn flow_binding(kernel: &Kernel, key: &FlowKey) -> anyhow::Result<Option<FlowBinding>> {
    let generation = super::generation::active(kernel)?;
    let map: HashMap<_, FlowKey, FlowBinding> = HashMap::try_from(kernel.map(names::FLOWS)?)?;
    Ok(map
        .get(&key.in_generation(generation), 0)
        .or_else(|_| map.get(key, 0))
        .ok())
}

/// How long a learned binding applies without a Binding request, as the program reads it.
pub fn learned_idle_ns(kernel: &Kernel) -> anyhow::Result<u64> {
    let map: aya::maps::Array<_, u64> = aya::maps::Array::try_from(kernel.map(names::MUX_CONFIG)?)?;
    let ns = map
        .get(&filter_common::mux::config::LEARNED_IDLE, 0)
        .context("reading MUX_CONFIG")?;
    Ok(if ns == 0 {
        filter_common::mux::LEARNED_IDLE_NS
    } else {
        ns
    })
}

/// The ufrags registered with this id (one, unless two share a hash).
pub fn ufrags_with_id(kernel: &Kernel, id: u32) -> anyhow::Result<Vec<Ufrag>> {
    Ok(read_ufrags(kernel)?
        .into_iter()
        .filter(|(_, b)| b.id == id)
        .filter_map(|(key, _)| Ufrag::of_key(&key))
        .collect())
}

/// Sets how long a learned binding applies without a Binding request.
pub fn set_learned_idle(kernel: &mut Kernel, idle: std::time::Duration) -> anyhow::Result<()> {
    let ns = u64::try_from(idle.as_nanos())
        .ok()
        .filter(|&ns| ns > 0)
        .context("the idle time must be above zero and below 584 years")?;
    write_learned_idle(kernel, ns)
}

/// Writes the idle time (`0`: the default) in both forms the program reads: nanoseconds,
/// and whole kernel ticks, which is what a media packet of a learned flow checks.
pub fn write_learned_idle(kernel: &mut Kernel, ns: u64) -> anyhow::Result<()> {
    let ticks = idle_ticks(ns, tick_ns()?);
    let mut map: aya::maps::Array<_, u64> =
        aya::maps::Array::try_from(kernel.map_mut(names::MUX_CONFIG)?)?;
    map.set(filter_common::mux::config::LEARNED_IDLE, ns, 0)
        .context("writing MUX_CONFIG")?;
    map.set(filter_common::mux::config::LEARNED_IDLE_TICKS, ticks, 0)
        .context("writing MUX_CONFIG")
}

/// Writes the tick form of the idle time where it is missing or does not match the
/// nanoseconds (maps just created, or filled by an older version): every sync calls it,
/// so a relay with a shared port always has it, and no packet pays for the nanosecond
/// clock.
pub(super) fn complete_learned_idle(kernel: &mut Kernel) -> anyhow::Result<()> {
    let map: aya::maps::Array<_, u64> = aya::maps::Array::try_from(kernel.map(names::MUX_CONFIG)?)?;
    let ns = map
        .get(&filter_common::mux::config::LEARNED_IDLE, 0)
        .context("reading MUX_CONFIG")?;
    let ticks = map
        .get(&filter_common::mux::config::LEARNED_IDLE_TICKS, 0)
        .context("reading MUX_CONFIG")?;
    if ticks == idle_ticks(ns, tick_ns()?) {
        return Ok(());
    }
    write_learned_idle(kernel, ns)
}

/// `ns` (0: the default) in whole ticks of `tick_ns`, rounded up so that a binding never
/// stops applying early; below 2^31, so the program's wrapping comparison holds.
pub fn idle_ticks(ns: u64, tick_ns: u64) -> u64 {
    let ns = if ns == 0 {
        filter_common::mux::LEARNED_IDLE_NS
    } else {
        ns
    };
    ns.div_ceil(tick_ns.max(1))
        .clamp(1, u64::from(i32::MAX as u32))
}

/// The kernel's tick length: the coarse clocks advance once a tick, so their resolution
/// is the tick (`TICK_NSEC`, 10⁹ / `CONFIG_HZ`).
fn tick_ns() -> anyhow::Result<u64> {
    let resolution = nix::time::clock_getres(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .context("reading the kernel's tick length (clock_getres of CLOCK_MONOTONIC_COARSE)")?;
    let ns = u64::try_from(resolution.tv_sec())
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|s| s.checked_add(u64::try_from(resolution.tv_nsec()).ok()?))
        .filter(|&ns| ns > 0)
        .context("the kernel reports no tick length for CLOCK_MONOTONIC_COARSE")?;
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::idle_ticks;

    #[test]
    fn idle_ticks_round_up_and_stay_below_half_the_count() {
        let tick = 4_000_000; // 250 Hz
        assert_eq!(idle_ticks(0, tick), 7_500, "the default, 30 s");
        assert_eq!(idle_ticks(1, tick), 1);
        assert_eq!(idle_ticks(4_000_001, tick), 2, "never early");
        assert_eq!(idle_ticks(u64::MAX, tick), u64::from(i32::MAX as u32));
        assert!(tick_ns_is_the_coarse_resolution());
    }

    fn tick_ns_is_the_coarse_resolution() -> bool {
        // Every kernel's HZ is between 100 and 1,000.
        super::tick_ns().is_ok_and(|ns| (1_000_000..=10_000_000).contains(&ns))
    }
}
