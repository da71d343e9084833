//! A reference model of the XDP program's verdict, in plain Rust: parse → session →
//! override → territory → policy → expiry → what is counted.
//!
//! It is written from the design (the data path, steps 1–7) and the types shared with the
//! kernel in `filter-common`, not from the eBPF code, so that the differential test
//! (`tests/tests/differential.rs`), which runs the same frames through both, can catch
//! either one being wrong. It reads the same map contents the kernel does: [`SessionMaps`]
//! is what `kernel::sync` writes, derived by the same function ([`SessionMaps::derive`]),
//! and the territory table is the [`GeoTable`] that `kernel::load_table` loads, looked up by
//! plain longest-prefix match rather than through the kernel's flattened layout.
//!
//! Per-rule accounting: the outcome names the policy slot credited with a dropped or
//! would-drop packet: the rule of the drop override that decided, else the enforcing
//! territory rule, else the first dry run in slot order. A drop override names its rule's
//! slot and id and applies only while that slot holds that rule, in force.
//!
//! Not modelled: a full statistics map (`PassReason::StatsFull`), which depends on what
//! other packets did before.

pub mod mux;
pub mod parse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mux;
pub mod trace;

use std::collections::{BTreeSet, HashMap};

use filter_common::{
    Address, EndpointKey, FlowKey, Override, OverrideKey, PassReason, Policy, TerritoryId, Verdict,
};

pub use mux::{Learning, MuxState, Request, StunStep};
pub use parse::{Headers, parse};
pub use trace::{
    DecidedBy, Decision, OverrideHit, RuleHit, SessionKey, SessionLookup, TerritoryMatch, Trace,
    trace, trace_mux,
};

use crate::expiry::Clock;
use crate::geo::GeoTable;
use crate::state::State;

/// `XDP_DROP` and `XDP_PASS` (linux/bpf.h).
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// The session maps' contents: endpoints, flow bindings, prefix overrides and policies.
///
/// [`SessionMaps::derive`] builds them from a [`State`]; `kernel::sync` writes the same
/// value to the kernel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionMaps {
    pub endpoints: HashMap<EndpointKey, u32>,
    pub flows: HashMap<FlowKey, u32>,
    /// `(prefix length in bits, key)` → override, as the LPM trie holds them: the length
    /// counts the 32 session bits in front of the address.
    pub overrides: HashMap<(u32, OverrideKey), Override>,
    pub policies: HashMap<u32, Policy>,
    /// The territories some rule in force blocks (bit per territory id): an unbound packet
    /// on a mux port from one of them is dropped.
    pub mux_blocked: [u64; filter_common::territory::TERRITORY_WORDS],
    /// The guards for packets the parser cannot place.
    pub unparsed: crate::unparsed::Guards,
    /// The sessions of the state's meetings (`LIVE_SESSIONS`): flows learned or bound by
    /// the API apply only to these.
    pub live: BTreeSet<u32>,
}

impl SessionMaps {
    /// Whether an unbound packet on a mux port from `territory` is dropped.
    pub fn mux_blocks(&self, territory: TerritoryId) -> bool {
        let rule = filter_common::Rule {
            blocked: self.mux_blocked,
            ..filter_common::Rule::EMPTY
        };
        rule.blocks(territory)
    }
}

/// Everything the verdict reads: the session maps and the territory table.
#[derive(Clone, Debug)]
pub struct ModelMaps {
    pub sessions: SessionMaps,
    pub geo: GeoTable,
    /// The overrides, keyed by their masked 160-bit key, per prefix length.
    overrides: HashMap<(u32, [u8; 20]), Override>,
    /// Prefix lengths present, longest first.
    override_lens: Vec<u32>,
}

/// What a packet moved: a pass-reason counter, or a (session, territory) counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Reason(PassReason),
    /// A packet the parser could not place (for this reason), dropped by a guard.
    UnparsedBlocked(PassReason),
    Session {
        session: u32,
        territory: TerritoryId,
        verdict: Verdict,
        /// The frame's length.
        bytes: u64,
    },
}

/// The model's verdict on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// `XDP_DROP` for a drop; `XDP_PASS` otherwise (a would-drop passes).
    pub xdp_action: u32,
    pub counted: Counted,
    /// The policy slot credited with the packet in the per-rule counters
    /// (`RULE_COUNTERS`, `RULE_SOURCES`); `None` when no rule decided (an allow, or
    /// nothing in force).
    pub rule: Option<u8>,
}

impl Outcome {
    fn passed(reason: PassReason) -> Outcome {
        Outcome {
            verdict: Verdict::Passed,
            xdp_action: XDP_PASS,
            counted: Counted::Reason(reason),
            rule: None,
        }
    }
}

/// The LPM key bytes of an override lookup: session id big-endian, then the address.
fn override_bytes(key: &OverrideKey) -> [u8; 20] {
    let mut out = [0; 20];
    out[..4].copy_from_slice(&key.session_be);
    out[4..].copy_from_slice(&key.addr);
    out
}

/// `bytes` with every bit after the first `len` cleared.
fn masked(mut bytes: [u8; 20], len: u32) -> [u8; 20] {
    for (i, b) in bytes.iter_mut().enumerate() {
        let first_bit = i as u32 * 8;
        if first_bit >= len {
            *b = 0;
        } else if first_bit + 8 > len {
            *b &= 0xffu8 << (8 - (len - first_bit));
        }
    }
    bytes
}

impl ModelMaps {
    pub fn new(sessions: SessionMaps, geo: GeoTable) -> ModelMaps {
        let overrides: HashMap<(u32, [u8; 20]), Override> = sessions
            .overrides
            .iter()
            .map(|(&(len, key), value)| ((len, masked(override_bytes(&key), len)), *value))
            .collect();
        let lens: BTreeSet<u32> = overrides.keys().map(|(len, _)| *len).collect();
        ModelMaps {
            sessions,
            geo,
            overrides,
            override_lens: lens.into_iter().rev().collect(),
        }
    }

    /// The same territory table with other session maps.
    pub fn with_sessions(self, sessions: SessionMaps) -> ModelMaps {
        ModelMaps::new(sessions, self.geo)
    }

    /// The maps for `state` and `geo`, derived as `kernel::sync` and `kernel::load_table`
    /// derive the kernel's.
    pub fn from_state(state: &State, geo: GeoTable, clock: &Clock) -> anyhow::Result<ModelMaps> {
        Ok(ModelMaps::new(SessionMaps::derive(state, clock)?, geo))
    }

    /// Step 3: an exact flow binding, then the endpoint on the destination address, then
    /// the endpoint on any address.
    pub fn session(&self, h: &Headers) -> Option<u32> {
        self.session_lookup(h).session()
    }

    /// Step 4's lookup: the override with the longest prefix covering (session, source).
    pub fn override_for(&self, session: u32, src: &Address) -> Option<Override> {
        self.override_match(session, src).map(|(_, o)| o)
    }

    /// [`Self::override_for`] with the prefix length of the match (session bits included).
    pub fn override_match(&self, session: u32, src: &Address) -> Option<(u32, Override)> {
        self.override_match_within(session, src, u32::MAX)
    }

    /// The longest override of at most `max_len` bits covering (session, source), as an
    /// LPM lookup with a key of `max_len` bits finds it.
    pub fn override_match_within(
        &self,
        session: u32,
        src: &Address,
        max_len: u32,
    ) -> Option<(u32, Override)> {
        let key = override_bytes(&OverrideKey {
            session_be: session.to_be_bytes(),
            addr: *src,
        });
        (self.override_lens.iter().filter(|&&len| len <= max_len)).find_map(|&len| {
            let found = self.overrides.get(&(len, masked(key, len)));
            found.map(|o| (len, *o))
        })
    }

    /// Step 5: the source's territory; IPv4 and IPv4-mapped IPv6 sources in the IPv4
    /// table, other IPv6 sources in the IPv6 table; not found is "unknown".
    pub fn territory(&self, h: &Headers) -> TerritoryId {
        self.territory_match(h).id
    }

    /// Steps 4 and 6: the verdict for a packet of `session` from `src` in `territory`.
    pub fn decide(
        &self,
        session: u32,
        src: &Address,
        territory: TerritoryId,
        now_ns: u64,
    ) -> Verdict {
        self.decision(session, src, territory, now_ns).verdict
    }

    /// [`ModelMaps::decide`], and the policy slot whose per-rule counters the packet moves:
    /// a drop override's rule, else the enforcing rule that drops it, else the first
    /// dry-run rule that would; `None` when an allow or nothing decided.
    pub fn decide_with_rule(
        &self,
        session: u32,
        src: &Address,
        territory: TerritoryId,
        now_ns: u64,
    ) -> (Verdict, Option<u8>) {
        let decision = self.decision(session, src, territory, now_ns);
        let slot = decision.deciding_rule().map(|r| r.slot as u8);
        (decision.verdict, slot)
    }
}

/// The verdict on `frame` at `now_ns` (`CLOCK_MONOTONIC_COARSE`), and what it counts.
pub fn verdict(frame: &[u8], maps: &ModelMaps, now_ns: u64) -> Outcome {
    trace(frame, maps, now_ns).outcome
}

/// [`verdict`] with what the program holds at run time, which the frame may change.
pub fn verdict_mux(frame: &[u8], maps: &ModelMaps, mux: &mut MuxState, now_ns: u64) -> Outcome {
    trace_mux(frame, maps, mux, now_ns).outcome
}
