//! The switch between the two generations of the session maps (layout in
//! `filter_common::generation`), and the maps of one generation that are simple tables:
//! ports, address-bound endpoints, the override and live bitmaps, the union of blocked
//! territories. Policies, overrides and policy flows have their own modules.
//!
//! Each writer takes a [`Pass`]: `Compare` counts what differs without writing, which is
//! how sync learns whether the generation in use already holds the state.

use std::{
    collections::{BTreeSet, HashMap as StdMap},
    sync::atomic::Ordering,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{Array, HashMap};
use filter_common::{
    EndpointKey,
    generation::{self, endpoint, live},
    maps::{ADDRESS_ANY, names, override_sessions, ports},
    mux,
    territory::TERRITORY_WORDS,
};

use super::{Kernel, mapped::Mapped, writes::SyncReport};
use crate::model::SessionMaps;

/// Whether a writer writes, or only counts what it would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    Compare,
    Write,
}

impl Pass {
    pub(super) fn writes(self) -> bool {
        self == Pass::Write
    }
}

/// `SESSION_ACTIVE`'s entry: the session maps' generation and the territory table's.
pub(super) fn word(kernel: &Kernel) -> anyhow::Result<u32> {
    let map: Array<_, u32> = Array::try_from(kernel.map(names::SESSION_ACTIVE)?)?;
    map.get(&0, 0).context("reading map SESSION_ACTIVE")
}

/// The generation packets use now.
pub(super) fn active(kernel: &Kernel) -> anyhow::Result<u32> {
    Ok(generation::active(word(kernel)?))
}

fn store(kernel: &mut Kernel, entry: u32) -> anyhow::Result<()> {
    let mut map: Array<_, u32> = Array::try_from(kernel.map_mut(names::SESSION_ACTIVE)?)?;
    map.set(0, entry, 0).context("switching map SESSION_ACTIVE")
}

/// Makes `to` the generation packets use, and `table` (0 = A, 1 = B; `None`: the one in
/// use) the territory table: one store, the commit point of a change. (Writers hold the
/// state lock, so reading the other half cannot race another writer.)
pub(super) fn switch(kernel: &mut Kernel, to: u32, table: Option<u32>) -> anyhow::Result<()> {
    let table = match table {
        Some(table) => table,
        None => generation::geo(word(kernel)?),
    };
    store(kernel, generation::entry(to, table))
}

/// Makes `table` (0 = A, 1 = B) the territory table packets use, sessions unchanged.
pub(super) fn switch_table(kernel: &mut Kernel, table: u32) -> anyhow::Result<()> {
    let sessions = generation::active(word(kernel)?);
    store(kernel, generation::entry(sessions, table))
}

/// Waits for an RCU grace period: every XDP program run that started before has ended, so
/// nothing still reads the generation (or pool entry) it read before a switch.
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is `synchronize_rcu()`; kernels that refuse it
/// (nohz_full) get a wait far longer than a packet takes.
pub(super) fn grace_period() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes a command, flags and a CPU id, and touches no memory of ours.
    let done = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) } == 0;
    if !done {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `PORTS` entries of one generation for the endpoints and flows of `want`.
fn port_entries(want: &SessionMaps) -> Vec<u32> {
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
    // FLOW too: flows the API binds on such a port are looked up, as they were before
    // policy flows had keys of their own.
    for key in want.flows.keys() {
        if let Some(i) = ports::index(key.proto, key.dst_port) {
            entries[i as usize] |= ports::POLICY_FLOW | ports::FLOW;
        }
    }
    entries
}

/// Makes `generation`'s port table hold `want`'s entries.
pub(super) fn write_ports(
    kernel: &Kernel,
    generation: u32,
    want: &SessionMaps,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let table = Mapped::<ports::Element>::open(kernel, names::PORTS, pass.writes())?;
    let start = ports::in_generation(generation, 0) as usize;
    let half = table
        .as_atomic()
        .get(start..start + ports::ENTRIES as usize)
        .context("map PORTS holds fewer entries than two generations")?;
    for (entry, w) in half.iter().zip(port_entries(want)) {
        if entry.load(Ordering::Relaxed) != w {
            if pass.writes() {
                entry.store(w, Ordering::Release);
            }
            report.written += 1;
        }
    }
    Ok(())
}

/// Makes `generation`'s half of every `ENDPOINTS` value hold `want`'s endpoints on an
/// address; an entry goes when neither generation has it.
pub(super) fn write_endpoints(
    kernel: &mut Kernel,
    generation: u32,
    want: &SessionMaps,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: HashMap<_, EndpointKey, u32> =
        HashMap::try_from(kernel.map_mut(names::ENDPOINTS)?)?;
    let have: StdMap<EndpointKey, u32> = map
        .iter()
        .collect::<Result<_, _>>()
        .context("reading map ENDPOINTS")?;
    let on_address = want.endpoints.iter().filter(|(k, _)| k.addr != ADDRESS_ANY);
    let mut keys: BTreeSet<([u8; 16], u8, u16)> =
        have.keys().map(|k| (k.addr, k.proto, k.port)).collect();
    keys.extend(on_address.map(|(k, _)| (k.addr, k.proto, k.port)));
    for (addr, proto, port) in keys {
        let key = EndpointKey {
            proto,
            _pad: 0,
            port,
            addr,
        };
        let old = have.get(&key).copied().unwrap_or(0);
        let session = want.endpoints.get(&key).copied().unwrap_or(0);
        let new = endpoint::with(old, generation, session);
        if new == old {
            continue;
        }
        if new == 0 {
            if pass.writes() {
                map.remove(&key).context("removing from map ENDPOINTS")?;
            }
            report.removed += 1;
        } else {
            if pass.writes() {
                map.insert(key, new, 0).context("writing map ENDPOINTS")?;
            }
            report.written += 1;
        }
    }
    Ok(())
}

/// Writes the words of `generation`'s part of a bitmap array (`words_per` words each)
/// that differ from `want`.
fn write_bitmap(
    kernel: &mut Kernel,
    name: &str,
    generation: u32,
    want: &[u64],
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: Array<_, u64> = Array::try_from(kernel.map_mut(name)?)?;
    let first = generation * want.len() as u32;
    for (i, &w) in (first..).zip(want) {
        let have = map
            .get(&i, 0)
            .with_context(|| format!("reading map {name}"))?;
        if have != w {
            if pass.writes() {
                map.set(i, w, 0)
                    .with_context(|| format!("writing map {name}"))?;
            }
            report.written += 1;
        }
    }
    Ok(())
}

/// The bitmap words of one generation with the bits of `sessions` set.
fn bitmap(sessions: impl IntoIterator<Item = u32>, generation: u32, words: u32) -> Vec<u64> {
    let mut out = vec![0u64; words as usize];
    let first = generation * words;
    for session in sessions {
        if let Some((word, bit)) = generation::keyed(generation, session).and_then(live::bit) {
            out[(word - first) as usize] |= bit;
        }
    }
    out
}

/// `OVERRIDE_SESSIONS` for `generation`: the sessions with an override in `want`.
pub(super) fn write_override_sessions(
    kernel: &mut Kernel,
    generation: u32,
    want: &SessionMaps,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let words = override_sessions::WORDS / generation::COUNT;
    let sessions = want
        .overrides
        .keys()
        .map(|(_, key)| u32::from_be_bytes(key.session_be));
    let want = bitmap(sessions, generation, words);
    write_bitmap(
        kernel,
        names::OVERRIDE_SESSIONS,
        generation,
        &want,
        pass,
        report,
    )
}

/// `LIVE_SESSIONS` for `generation`: the sessions of `live`.
pub(super) fn write_live(
    kernel: &mut Kernel,
    generation: u32,
    live: &BTreeSet<u32>,
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let words = live::WORDS / generation::COUNT;
    let want = bitmap(live.iter().copied(), generation, words);
    write_bitmap(
        kernel,
        names::LIVE_SESSIONS,
        generation,
        &want,
        pass,
        report,
    )
}

/// The live sessions of `generation`.
pub(super) fn live_of(kernel: &Kernel, generation: u32) -> anyhow::Result<BTreeSet<u32>> {
    let map: Array<_, u64> = Array::try_from(kernel.map(names::LIVE_SESSIONS)?)?;
    let words = live::WORDS / generation::COUNT;
    let mut out = BTreeSet::new();
    for i in 0..words {
        let index = generation * words + i;
        let word = map.get(&index, 0).context("reading map LIVE_SESSIONS")?;
        for bit in (0..64).filter(|b| word & (1u64 << b) != 0) {
            if let Some((_, session)) = generation::unkeyed(index * 64 + bit) {
                out.insert(session);
            }
        }
    }
    Ok(out)
}

/// `MUX_BLOCKED` for `generation`: the union of the territories blocked by rules in force.
pub(super) fn write_mux_blocked(
    kernel: &mut Kernel,
    generation: u32,
    blocked: &[u64; TERRITORY_WORDS],
    pass: Pass,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let mut map: Array<_, filter_common::Rule> =
        Array::try_from(kernel.map_mut(names::MUX_BLOCKED)?)?;
    let have = map.get(&generation, 0).context("reading MUX_BLOCKED")?;
    if have.blocked != *blocked {
        if pass.writes() {
            let want = filter_common::Rule {
                blocked: *blocked,
                ..filter_common::Rule::EMPTY
            };
            map.set(generation, want, 0)
                .context("writing MUX_BLOCKED")?;
        }
        report.written += 1;
    }
    Ok(())
}
