//! The model's trace in the operator's terms: one step per line, each also as JSON.

use std::net::SocketAddr;

use filter_common::{EndpointKey, FlowKey, PassReason, TerritoryId, Verdict, maps::ADDRESS_ANY};
use ipnet::IpNet;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    geo::{GeoContext, TableSource},
    words::{
        expiry_text, meeting_label, meeting_of, rule_in_slot, source_ip, territory_name,
        verdict_name,
    },
};
use crate::{
    change::{generation_name, provenance_text},
    clock::rounded,
    model::{DecidedBy, Decision, Headers, SessionKey, SessionLookup, Trace},
    prefix::override_key,
    state::{Rule, State},
};

/// One step of the walk.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    pub text: String,
    pub detail: Value,
}

impl Step {
    pub(crate) fn new(name: &'static str, text: String, detail: Value) -> Step {
        Step { name, text, detail }
    }

    pub fn to_json(&self) -> Value {
        let mut out = json!({ "step": self.name, "text": self.text });
        if let (Some(out), Value::Object(detail)) = (out.as_object_mut(), &self.detail) {
            out.extend(detail.clone());
        }
        out
    }
}

fn session_step(
    q: &SocketAddr,
    h: &Headers,
    state: &State,
    lookup: SessionLookup,
    binding: Option<&str>,
) -> Step {
    let proto = if h.proto == filter_common::proto::TCP {
        "tcp"
    } else {
        "udp"
    };
    let (session, key) = match lookup {
        SessionLookup::PortUnused => {
            let text = format!(
                "no meeting uses {proto} port {} (port bitmap) → no session",
                h.dst_port
            );
            return Step::new(
                "session",
                text,
                json!({ "found": false, "port_in_use": false }),
            );
        }
        SessionLookup::NoMatch => {
            let text = format!(
                "{proto} port {} is in use, but no flow binding, endpoint on {} or wildcard \
                 endpoint matches → no session",
                h.dst_port,
                q.ip()
            );
            return Step::new(
                "session",
                text,
                json!({ "found": false, "port_in_use": true }),
            );
        }
        SessionLookup::SharedPort => {
            let text = format!(
                "{proto} port {} on {} is shared by meetings (mux), and the state binds this \
                 flow to none → unbound, unless the kernel learned a binding from STUN or \
                 the binding API made one",
                h.dst_port,
                q.ip()
            );
            return Step::new(
                "session",
                text,
                json!({ "found": false, "port_in_use": true, "shared": true }),
            );
        }
        SessionLookup::Found { session, key } => (session, key),
    };
    let meeting = meeting_of(state, session).map(|(_, m)| m);
    let endpoint = |addr| EndpointKey {
        proto: h.proto,
        _pad: 0,
        port: h.dst_port,
        addr,
    };
    let (key_name, what) = match key {
        SessionKey::Flow => {
            let flow = FlowKey {
                proto: h.proto,
                _pad: [0; 3],
                src_port: h.src_port,
                dst_port: h.dst_port,
                src: h.src,
                dst: h.dst,
            };
            let named = meeting.and_then(|m| m.flows.iter().find(|f| f.key() == flow));
            let text = match (binding, named) {
                (Some(runtime), _) => runtime.to_string(),
                (None, Some(f)) => f.to_string(),
                (None, None) => "an exact 5-tuple".into(),
            };
            ("flow", format!("flow binding {text}"))
        }
        SessionKey::LearnedFlow | SessionKey::ApiFlow => {
            let how = match (binding, key) {
                (Some(runtime), _) => runtime.to_string(),
                (None, SessionKey::LearnedFlow) => "learned from a STUN Binding request".into(),
                (None, _) => "bound by the control plane (`flow add` or the binding API)".into(),
            };
            let name = if key == SessionKey::LearnedFlow {
                "learned_flow"
            } else {
                "api_flow"
            };
            (name, format!("flow binding {how}"))
        }
        SessionKey::Endpoint | SessionKey::WildcardEndpoint => {
            let wildcard = key == SessionKey::WildcardEndpoint;
            let k = endpoint(if wildcard { ADDRESS_ANY } else { h.dst });
            let named = meeting.and_then(|m| m.endpoints.iter().find(|e| e.keys().any(|e| e == k)));
            let text = named.map_or_else(|| "an endpoint".into(), |e| e.to_string());
            let before = if wildcard {
                format!("no flow binding, no endpoint on {};", q.ip())
            } else {
                "no flow binding;".to_string()
            };
            let name = if wildcard {
                "wildcard_endpoint"
            } else {
                "endpoint"
            };
            (name, format!("{before} endpoint {text}"))
        }
    };
    let text = format!("{what} → {}", meeting_label(state, session));
    let meeting_name = meeting_of(state, session).map(|(n, _)| n);
    Step::new(
        "session",
        text,
        json!({ "found": true, "key": key_name, "session": session, "meeting": meeting_name }),
    )
}

fn override_step(h: &Headers, state: &State, session: u32, d: &Decision, now: Timestamp) -> Step {
    let src = source_ip(h);
    let Some(hit) = d.override_hit else {
        let text = format!("no allow or drop prefix of the meeting covers {src}");
        return Step::new("override", text, json!({ "matched": false }));
    };
    // kernel::sync writes the rules' prefixes in order, then the exceptions: the last
    // writer of a key is what the trie holds.
    let meeting = meeting_of(state, session).map(|(_, m)| m);
    let covers = |p: &IpNet| override_key(p, session).0 == hit.key_len && p.contains(&src);
    let mut origin: Option<(IpNet, Option<&Rule>)> = None;
    if let Some(m) = meeting {
        for rule in &m.rules {
            for p in rule.prefixes.iter().filter(|p| covers(p)) {
                origin = Some((*p, Some(rule)));
            }
        }
        for p in m.allows.iter().filter(|p| covers(p)) {
            origin = Some((*p, None));
        }
    }
    let prefix = origin.map_or_else(|| "a prefix".into(), |(p, _)| p.to_string());
    let (text, order) = match (hit.allows(), origin.and_then(|(_, r)| r)) {
        (true, _) => (
            format!("allow {prefix} (an exception) → PASS, whatever the rules say"),
            None,
        ),
        (false, rule) => {
            // The drop names its rule's slot and id: that is the rule it belongs to.
            let named = meeting
                .and_then(|m| rule_in_slot(m, usize::from(hit.value.slot)))
                .filter(|r| r.kernel_id() == hit.value.rule_id);
            let rule = named.or(rule);
            let dry_run = hit.rule.map_or(
                hit.value.flags & filter_common::policy::RULE_DRY_RUN != 0,
                |r| r.dry_run,
            );
            let mode = if dry_run { "dry run" } else { "enforce" };
            let order = rule.map(|r| r.order.clone());
            let expiry = expiry_text(rule.and_then(|r| r.expires), now);
            let under = order
                .as_deref()
                .map_or(String::new(), |o| format!(" under order {o}"));
            let slot = hit.rule.map_or(usize::from(hit.value.slot), |r| r.slot);
            let then = if hit.lapsed {
                "no longer applies; the territory rules decide".to_string()
            } else if hit.rule.is_none() {
                // The chain ends at the first shorter entry that is not inert.
                let inert = d.shorter_hits.iter().filter(|o| o.inert()).count();
                let which = match inert {
                    0 => "the next shorter entry".to_string(),
                    n => format!("past {n} more inert, the next shorter entry"),
                };
                let next = match d.shorter_hits.last() {
                    Some(o) if o.allows() => format!("{which}, an exception, decides → PASS"),
                    Some(o) if o.drop_applies() => format!(
                        "{which}, a drop of rule slot {}, decides → {}",
                        o.value.slot,
                        verdict_name(d.verdict)
                    ),
                    Some(_) if !d.shorter_hits.last().is_some_and(|o| o.inert()) => {
                        format!("{which} does not apply either; the territory rules decide")
                    }
                    _ => "no shorter entry decides; the territory rules decide".to_string(),
                };
                format!(
                    "names rule slot {slot}, which does not hold its rule: inert, as if absent; \
                     {next}"
                )
            } else if !hit.drop_applies() {
                "its rule is not in force; the territory rules decide".to_string()
            } else {
                format!("→ {}, credited to the rule", verdict_name(d.verdict))
            };
            (
                format!("drop {prefix}{under} (slot {slot}): {mode}, {expiry} {then}"),
                order,
            )
        }
    };
    Step::new(
        "override",
        text,
        json!({
            "matched": true,
            "prefix": prefix,
            "action": if hit.allows() { "allow" } else { "drop" },
            "order": order,
            "slot": (!hit.allows()).then_some(hit.rule.map_or(usize::from(hit.value.slot), |r| r.slot)),
            "bound": hit.rule.is_some(),
            "shorter_entry_decides": d.shorter_hits.last().is_some_and(|o| o.decides()),
            "lapsed": hit.lapsed,
            "decides": d.decided_by == DecidedBy::DropOverride,
        }),
    )
}

fn territory_step(
    h: &Headers,
    trace: &Trace,
    geo: &GeoContext,
    kernel: Option<TerritoryId>,
) -> Step {
    let Some(m) = &trace.territory else {
        return Step::new("territory", "not looked up".into(), json!({}));
    };
    let src = source_ip(h);
    let name = territory_name(m.id);
    let mut text = match (&geo.source, &m.prefix) {
        (TableSource::None, _) => format!("{name}: no territory table is loaded"),
        (TableSource::KernelOnly(why), _) => format!(
            "{name}, as the kernel's table says (the recorded geo files cannot be reparsed: \
             {why}; the matching prefix is not known)"
        ),
        (TableSource::Files, Some(p)) => format!("{name}: {src} is in {p}"),
        (TableSource::Files, None) => format!("{name}: no table prefix covers {src}"),
    };
    if let Some(r) = &geo.record {
        text.push_str(&format!(
            "; table {}: {}",
            generation_name(r.generation),
            provenance_text(r)
        ));
    }
    if let Some(k) = kernel.filter(|k| *k != m.id) {
        text.push_str(&format!(
            "; BUT the kernel's table gives {} (files changed or reloaded since?)",
            territory_name(k)
        ));
    }
    let table = geo.record.as_ref().map(|r| {
        json!({
            "generation": generation_name(r.generation),
            "loaded": r.loaded,
            "files": r.files,
            "sources": r.sources,
        })
    });
    Step::new(
        "territory",
        text,
        json!({
            "territory": name,
            "prefix": m.prefix,
            "kernel_table_territory": kernel.map(territory_name),
            "table": table,
            "warnings": geo.warnings,
        }),
    )
}

fn rules_step(
    state: &State,
    session: u32,
    territory: TerritoryId,
    d: &Decision,
    now: Timestamp,
) -> Step {
    let place = territory_name(territory);
    if matches!(
        d.decided_by,
        DecidedBy::AllowOverride | DecidedBy::DropOverride
    ) {
        return Step::new(
            "rule",
            "not consulted: the override decided".into(),
            json!({ "consulted": false }),
        );
    }
    if d.decided_by == DecidedBy::NoPolicy {
        let text = format!("{} has no territory rules", meeting_label(state, session));
        return Step::new("rule", text, json!({ "consulted": true, "rules": [] }));
    }
    if d.rules.is_empty() {
        let text = format!(
            "no rule of {} blocks {place}",
            meeting_label(state, session)
        );
        return Step::new("rule", text, json!({ "consulted": true, "rules": [] }));
    }
    let meeting = meeting_of(state, session).map(|(_, m)| m);
    let deciding = d.deciding_rule().map(|r| r.slot);
    let mut lines = Vec::new();
    let mut rules = Vec::new();
    for hit in &d.rules {
        let rule = meeting.and_then(|m| rule_in_slot(m, hit.slot));
        let order = rule.map_or_else(|| "?".to_string(), |r| r.order.clone());
        let mode = if hit.dry_run { "dry run" } else { "enforce" };
        let expires = rule.and_then(|r| r.expires);
        let state_word = match (hit.in_force, deciding == Some(hit.slot)) {
            (false, _) => "not in force",
            (true, true) => "in force, decides",
            (true, false) => "in force",
        };
        lines.push(format!(
            "order {order} (slot {}) blocks {place}: {mode}, {} → {state_word}",
            hit.slot,
            expiry_text(expires, now)
        ));
        rules.push(json!({
            "order": order,
            "slot": hit.slot,
            "mode": if hit.dry_run { "dry-run" } else { "enforce" },
            "expires": expires.map(|t| rounded(t).to_string()),
            "seconds_left": expires.map(|t| t.as_second() - now.as_second()),
            "in_force": hit.in_force,
            "decides": deciding == Some(hit.slot),
        }));
    }
    Step::new(
        "rule",
        lines.join("\n"),
        json!({ "consulted": true, "rules": rules }),
    )
}

/// Every step of `trace` for the packet asked about. `binding` says which flow binding
/// the kernel holds and the state does not (learned from STUN, or bound by the API) found
/// the session, when one did.
pub fn steps(
    dst: &SocketAddr,
    state: &State,
    geo: &GeoContext,
    kernel_territory: Option<TerritoryId>,
    trace: &Trace,
    now: Timestamp,
    binding: Option<&str>,
) -> Vec<Step> {
    let mut out = Vec::new();
    let h = match &trace.headers {
        Ok(h) => h,
        Err(reason) => {
            let text = format!("the frame does not parse ({}) → PASS", reason.name());
            out.push(Step::new(
                "parse",
                text,
                json!({ "pass_reason": reason.name() }),
            ));
            return out;
        }
    };
    if let Some(lookup) = trace.session {
        out.push(session_step(dst, h, state, lookup, binding));
    }
    let (Some(session), Some(d)) = (trace.session.and_then(|s| s.session()), &trace.decision)
    else {
        if trace.outcome.verdict == Verdict::Dropped {
            let territory = trace.territory.as_ref().map_or(0, |t| t.id);
            let text = format!(
                "DROP: unbound on a shared port, from {}, which a rule in force on some \
                 meeting blocks (an evicted or idle binding is no way around it)",
                territory_name(territory)
            );
            out.push(Step::new(
                "verdict",
                text,
                json!({ "verdict": "dropped", "unbound": true }),
            ));
            return out;
        }
        let reason = match trace.session {
            Some(SessionLookup::SharedPort) => PassReason::Unbound,
            _ => PassReason::NoSession,
        };
        let text = format!("PASS, unclassified ({})", reason.name());
        out.push(Step::new(
            "verdict",
            text,
            json!({ "verdict": "passed", "pass_reason": reason.name() }),
        ));
        return out;
    };
    out.push(override_step(h, state, session, d, now));
    out.push(territory_step(h, trace, geo, kernel_territory));
    let territory = trace.territory.as_ref().map_or(0, |t| t.id);
    out.push(rules_step(state, session, territory, d, now));
    out.push(Step::new(
        "verdict",
        verdict_name(d.verdict).to_string(),
        json!({ "verdict": d.verdict.name() }),
    ));
    out
}
