//! The model's verdict with its reasons: which key found the session, which override and
//! which rules applied, which table prefix gave the territory. `geofence explain` prints
//! this; [`super::verdict`] is the same walk with the reasons dropped, so there is one
//! implementation of the verdict.

use filter_common::{
    Address, EndpointKey, FlowKey, Override, OverrideAction, PassReason, TERRITORY_UNKNOWN,
    TerritoryId, Verdict,
    maps::{ADDRESS_ANY, OVERRIDE_SESSION_BITS},
    mux::MUX_SESSION,
    policy::{self, NO_RULE_ID, RULE_ACTIVE, RULE_DRY_RUN},
};

use super::{Counted, Headers, ModelMaps, Outcome, XDP_DROP, XDP_PASS, parse};

/// Which key of the session search matched (design step 3, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKey {
    /// The exact 5-tuple of a flow binding.
    Flow,
    /// The endpoint on the packet's destination address.
    Endpoint,
    /// The endpoint on any local address (`*`).
    WildcardEndpoint,
    /// A flow the program learned from a STUN Binding request (this packet's, or an
    /// earlier one of the flow).
    LearnedFlow,
    /// A flow the binding API bound.
    ApiFlow,
}

/// The outcome of the session search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionLookup {
    Found {
        session: u32,
        key: SessionKey,
    },
    /// No endpoint or flow uses the (protocol, destination port): the kernel's port bitmap
    /// answers without a hash lookup.
    PortUnused,
    /// The port is in use, but no flow, endpoint or wildcard endpoint matched.
    NoMatch,
    /// A port meetings share, and a flow the state binds to none. The kernel may hold a
    /// binding the state does not know (learned from STUN, or bound by API); the model
    /// follows the state alone.
    SharedPort,
}

impl SessionLookup {
    pub fn session(self) -> Option<u32> {
        match self {
            SessionLookup::Found { session, .. } => Some(session),
            SessionLookup::PortUnused | SessionLookup::NoMatch | SessionLookup::SharedPort => None,
        }
    }
}

/// The territory of the source and the table prefix that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerritoryMatch {
    pub id: TerritoryId,
    /// The longest table prefix covering the source; `None` when none does ("unknown").
    pub prefix: Option<String>,
}

/// The override with the longest prefix covering (session, source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverrideHit {
    /// The LPM prefix length, including the 32 session bits in front of the address.
    pub key_len: u32,
    pub value: Override,
    /// A drop override past its expiry: it no longer applies.
    pub lapsed: bool,
    /// For a drop: its rule, if the policy slot it names holds it (active, same id).
    /// A drop applies only while its rule is there and in force, and is credited to it.
    pub rule: Option<RuleHit>,
}

impl OverrideHit {
    pub fn allows(&self) -> bool {
        self.value.action == OverrideAction::Allow as u8
    }

    /// A drop that decides: not lapsed, and its rule is in its slot and in force.
    pub fn drop_applies(&self) -> bool {
        self.value.action == OverrideAction::Drop as u8
            && !self.lapsed
            && self.rule.is_some_and(|r| r.in_force)
    }

    /// A drop whose slot does not hold its rule (written ahead of it, or left after it):
    /// as if absent, so the next shorter override decides.
    pub fn inert(&self) -> bool {
        self.value.action == OverrideAction::Drop as u8 && !self.lapsed && self.rule.is_none()
    }

    /// An allow, or a drop that applies: the override decides.
    pub fn decides(&self) -> bool {
        self.allows() || self.drop_applies()
    }
}

/// An active rule slot of the session's policy: one that blocks the packet's territory,
/// or the rule a drop override names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleHit {
    pub slot: usize,
    pub dry_run: bool,
    /// `CLOCK_MONOTONIC_COARSE` ns; 0 = never.
    pub expires_ns: u64,
    pub in_force: bool,
}

/// What made the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// An allow override: passes whatever the rules say.
    AllowOverride,
    /// A drop override whose rule is in force (enforce or dry run); credited to the rule.
    DropOverride,
    /// The session's territory rules (none in force that block the territory: passed).
    Rules,
    /// The session has no territory rules at all.
    NoPolicy,
}

/// Steps 4 and 6 with their reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The longest override covering the source.
    pub override_hit: Option<OverrideHit>,
    /// When that one is inert: the next shorter override covering the source, which is
    /// consulted instead, and while each is inert the next shorter one again.
    pub shorter_hits: Vec<OverrideHit>,
    /// Every active rule that blocks the territory, in slot order, in force or not.
    pub rules: Vec<RuleHit>,
    pub decided_by: DecidedBy,
    pub verdict: Verdict,
}

impl Decision {
    /// The rule credited with the packet: a drop override's rule; among the territory
    /// rules the first enforcing rule in force, else the first dry run in force; `None`
    /// when no rule applied (an allow, or nothing in force).
    pub fn deciding_rule(&self) -> Option<RuleHit> {
        if self.decided_by == DecidedBy::DropOverride {
            let applied = self.override_hit.iter().chain(&self.shorter_hits);
            return applied.copied().find(OverrideHit::drop_applies)?.rule;
        }
        if self.decided_by != DecidedBy::Rules {
            return None;
        }
        let in_force = || self.rules.iter().filter(|r| r.in_force);
        in_force()
            .find(|r| !r.dry_run)
            .or_else(|| in_force().next())
            .copied()
    }
}

/// The whole walk for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The parsed headers, or why the frame passes unclassified.
    pub headers: Result<Headers, PassReason>,
    /// On a mux port: the datagram read as STUN, and what its Binding request bound.
    pub stun: Option<super::mux::StunStep>,
    /// `None` when the frame did not parse.
    pub session: Option<SessionLookup>,
    /// Looked up only for a packet of a session.
    pub territory: Option<TerritoryMatch>,
    pub decision: Option<Decision>,
    pub outcome: Outcome,
}

fn mode(flags: u32) -> Verdict {
    if flags & RULE_DRY_RUN != 0 {
        Verdict::WouldDrop
    } else {
        Verdict::Dropped
    }
}

impl ModelMaps {
    /// Step 3 with the key that matched.
    pub fn session_lookup(&self, h: &Headers) -> SessionLookup {
        let flow = FlowKey {
            proto: h.proto,
            _pad: [0; 3],
            src_port: h.src_port,
            dst_port: h.dst_port,
            src: h.src,
            dst: h.dst,
        };
        if let Some(&session) = self.sessions.flows.get(&flow) {
            return SessionLookup::Found {
                session,
                key: SessionKey::Flow,
            };
        }
        let endpoint = |addr: Address| EndpointKey {
            proto: h.proto,
            _pad: 0,
            port: h.dst_port,
            addr,
        };
        let endpoints = &self.sessions.endpoints;
        if let Some(&session) = endpoints.get(&endpoint(h.dst)) {
            if session == MUX_SESSION {
                return SessionLookup::SharedPort;
            }
            return SessionLookup::Found {
                session,
                key: SessionKey::Endpoint,
            };
        }
        if let Some(&session) = endpoints.get(&endpoint(ADDRESS_ANY)) {
            if session == MUX_SESSION {
                return SessionLookup::SharedPort;
            }
            return SessionLookup::Found {
                session,
                key: SessionKey::WildcardEndpoint,
            };
        }
        // Only the explanation needs to know whether the port bitmap already said no.
        let port_used = endpoints
            .keys()
            .any(|k| (k.proto, k.port) == (h.proto, h.dst_port))
            || (self.sessions.flows.keys()).any(|k| (k.proto, k.dst_port) == (h.proto, h.dst_port));
        if port_used {
            SessionLookup::NoMatch
        } else {
            SessionLookup::PortUnused
        }
    }

    /// Step 5 with the table prefix that matched.
    pub fn territory_match(&self, h: &Headers) -> TerritoryMatch {
        self.territory_of(&h.src)
    }

    /// The territory of a source address (IPv4-mapped: located as the IPv4 host).
    pub fn territory_of(&self, src: &Address) -> TerritoryMatch {
        let found = match parse::mapped_v4(src) {
            Some(v4) => self
                .geo
                .matching_v4(u32::from(v4))
                .map(|(p, id)| (p.to_string(), id)),
            None => self
                .geo
                .matching_v6(u128::from_be_bytes(*src))
                .map(|(p, id)| (p.to_string(), id)),
        };
        match found {
            Some((prefix, id)) => TerritoryMatch {
                id,
                prefix: Some(prefix),
            },
            None => TerritoryMatch {
                id: TERRITORY_UNKNOWN,
                prefix: None,
            },
        }
    }

    /// Steps 4 and 6 with their reasons.
    pub fn decision(
        &self,
        session: u32,
        src: &Address,
        territory: TerritoryId,
        now_ns: u64,
    ) -> Decision {
        let policy = self.sessions.policies.get(&session);
        let hit = |slot: usize, r: &filter_common::Rule| RuleHit {
            slot,
            dry_run: r.flags & RULE_DRY_RUN != 0,
            expires_ns: r.expires_ns,
            in_force: r.in_force(now_ns),
        };
        let to_hit = |(key_len, value): (u32, Override)| {
            let is_drop = value.action == OverrideAction::Drop as u8;
            let slot = usize::from(value.slot);
            let rule = policy
                .and_then(|p| p.rules.get(slot))
                .filter(|r| {
                    is_drop
                        && r.flags & RULE_ACTIVE != 0
                        && value.rule_id != NO_RULE_ID
                        && r.rule_id == value.rule_id
                })
                .map(|r| hit(slot, r));
            OverrideHit {
                key_len,
                value,
                lapsed: is_drop && policy::lapsed(value.expires_ns, now_ns),
                rule,
            }
        };
        let override_hit = self.override_match(session, src).map(to_hit);
        let mut shorter_hits = Vec::new();
        let mut last = override_hit;
        while let Some(o) = last.filter(|o| o.inert() && o.key_len > OVERRIDE_SESSION_BITS) {
            last = self
                .override_match_within(session, src, o.key_len - 1)
                .map(to_hit);
            shorter_hits.extend(last);
        }
        let rules: Vec<RuleHit> = policy.map_or_else(Vec::new, |p| {
            (p.rules.iter().enumerate())
                .filter(|(_, r)| r.flags & RULE_ACTIVE != 0 && r.blocks(territory))
                .map(|(slot, r)| hit(slot, r))
                .collect()
        });
        let decided = |decided_by, verdict| Decision {
            override_hit,
            shorter_hits: shorter_hits.clone(),
            rules: rules.clone(),
            decided_by,
            verdict,
        };
        // Each shorter entry is there only when the one before is inert. A drop that has
        // lapsed, or whose rule is not in force in its slot, leaves the decision to the
        // territory rules; a drop that applies takes its rule's mode.
        for o in override_hit.iter().chain(&shorter_hits).copied() {
            if o.allows() {
                return decided(DecidedBy::AllowOverride, Verdict::Passed);
            }
            if o.drop_applies()
                && let Some(rule) = o.rule
            {
                let flags = if rule.dry_run { RULE_DRY_RUN } else { 0 };
                return decided(DecidedBy::DropOverride, mode(flags));
            }
        }
        if !self.sessions.policies.contains_key(&session) {
            return decided(DecidedBy::NoPolicy, Verdict::Passed);
        }
        // Every order in force that blocks the territory applies; one enforcing order
        // drops, whatever dry runs other orders hold.
        let verdict = (rules.iter().filter(|r| r.in_force)).fold(Verdict::Passed, |v, r| {
            match (v, r.dry_run) {
                (Verdict::Dropped, _) | (_, false) => Verdict::Dropped,
                _ => Verdict::WouldDrop,
            }
        });
        decided(DecidedBy::Rules, verdict)
    }
}

/// The verdict on `frame` at `now_ns` (`CLOCK_MONOTONIC_COARSE`) with every reason, with
/// nothing learned at run time (no ufrag registered, no flow learned or bound by the API).
pub fn trace(frame: &[u8], maps: &ModelMaps, now_ns: u64) -> Trace {
    trace_mux(frame, maps, &mut super::MuxState::default(), now_ns)
}

/// [`trace`] with what the program holds at run time, which a Binding request changes.
pub fn trace_mux(frame: &[u8], maps: &ModelMaps, mux: &mut super::MuxState, now_ns: u64) -> Trace {
    let passed = |headers, session, reason| Trace {
        stun: None,
        headers,
        session,
        territory: None,
        decision: None,
        outcome: Outcome::passed(reason),
    };
    let h = match parse::classify(frame) {
        Ok(h) => h,
        Err(u) => {
            let Some(p) = u.unplaced else {
                return passed(Err(u.reason), None, u.reason);
            };
            // The stack would deliver it: dropped if a guard of its destination blocks
            // its source.
            let territory = maps.territory_of(&p.src);
            if !maps.sessions.unparsed.blocks(&p.dst, &p.src, territory.id) {
                return passed(Err(u.reason), None, u.reason);
            }
            return Trace {
                stun: None,
                headers: Err(u.reason),
                session: None,
                territory: Some(territory),
                decision: None,
                outcome: Outcome {
                    verdict: Verdict::Dropped,
                    xdp_action: XDP_DROP,
                    counted: Counted::UnparsedBlocked(u.reason),
                    rule: None,
                },
            };
        }
    };
    let (lookup, stun) = maps.session_lookup_mux(frame, &h, mux, now_ns);
    let Some(session) = lookup.session() else {
        if lookup != SessionLookup::SharedPort {
            return Trace {
                stun,
                ..passed(Ok(h), Some(lookup), PassReason::NoSession)
            };
        }
        // Unbound on a shared port: dropped when some rule in force blocks the territory.
        let territory = maps.territory_match(&h);
        if !maps.sessions.mux_blocks(territory.id) {
            return Trace {
                stun,
                ..passed(Ok(h), Some(lookup), PassReason::Unbound)
            };
        }
        return Trace {
            stun,
            headers: Ok(h),
            session: Some(lookup),
            outcome: Outcome {
                verdict: Verdict::Dropped,
                xdp_action: XDP_DROP,
                counted: Counted::Session {
                    session: MUX_SESSION,
                    territory: territory.id,
                    verdict: Verdict::Dropped,
                    bytes: frame.len() as u64,
                },
                rule: None,
            },
            territory: Some(territory),
            decision: None,
        };
    };
    let territory = maps.territory_match(&h);
    let decision = maps.decision(session, &h.src, territory.id, now_ns);
    let verdict = decision.verdict;
    Trace {
        stun,
        headers: Ok(h),
        session: Some(lookup),
        outcome: Outcome {
            verdict,
            rule: decision.deciding_rule().map(|r| r.slot as u8),
            xdp_action: if verdict == Verdict::Dropped {
                XDP_DROP
            } else {
                XDP_PASS
            },
            counted: Counted::Session {
                session,
                territory: territory.id,
                verdict,
                bytes: frame.len() as u64,
            },
        },
        territory: Some(territory),
        decision: Some(decision),
    }
}
