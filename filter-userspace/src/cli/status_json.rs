//! `geofence status --json`: the same as the screen, every rule with its counts.

use jiff::Timestamp;
use serde_json::{Value, json};

use filter_common::{PassReason, Verdict};

use super::{Counters, all_total, link_name, program_builds};
use crate::change::Ctx;
use crate::{
    cli::rule_view,
    clock,
    kernel::{self, Stats},
    state::State,
};

pub(super) fn as_json(ctx: &Ctx, state: &State, counters: &Counters, now: Timestamp) -> Value {
    let stats = counters.stats();
    let rule_counts = |meeting: &str, index: usize| {
        rule_view::counts_json(counters.rules().and_then(|r| r.of(meeting, index)))
    };
    let totals = |s: &Stats, session: Option<u32>| {
        let mut out = serde_json::Map::new();
        for v in Verdict::ALL {
            let (packets, bytes) = match session {
                Some(id) => s.session_total(id, v),
                None => all_total(s, v),
            };
            out.insert(
                v.name().to_string(),
                json!({"packets": packets, "bytes": bytes}),
            );
        }
        Value::Object(out)
    };
    let builds = program_builds(ctx, state);
    // Which program each link runs: `upgrade` moves links onto a new one.
    let programs = kernel::link_programs(&ctx.pin_dir).unwrap_or_default();
    let interfaces: Vec<Value> = state
        .attachments
        .iter()
        .map(|a| {
            json!({
                "interface": a.interface,
                "netns": a.netns,
                "mode": a.mode,
                "attached": a.attached,
                "link_pinned": kernel::link_pinned(&ctx.pin_dir, &a.interface, a.netns.as_deref()),
                // "this", "other" (table loads refused until re-attached), "unchecked";
                // null without a link.
                "program_build": builds.get(&link_name(ctx, a)).map(|b| b.name()),
                "program_id": programs.get(&link_name(ctx, a)),
            })
        })
        .collect();
    let meetings: Vec<Value> = state
        .meetings
        .iter()
        .map(|(name, m)| {
            json!({
                "name": name,
                "session": m.session,
                "endpoints": m.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "flows": m.flows.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "rules": m.rules.iter().enumerate().map(|(i, r)| {
                    let mut rule = json!({
                        "order": r.order,
                        "territories": r.territories.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "prefixes": r.prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "mode": rule_view::mode(r),
                        "expires": r.expires,
                        "expired": r.expired(now),
                        "issued": r.issued,
                        "issued_by": r.issued_by,
                    });
                    if let (Some(rule), Value::Object(counts)) = (rule.as_object_mut(), rule_counts(name, i)) {
                        rule.extend(counts);
                    }
                    rule
                }).collect::<Vec<_>>(),
                "allows": m.allows.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "counters": stats.map(|s| totals(s, Some(m.session))),
                "bindings": counters.mux().map(|mux| mux.bindings.get(&m.session).copied().unwrap_or_default()),
            })
        })
        .collect();
    let pass_reasons = stats.map(|s| {
        PassReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(s.pass_reasons[*r as usize])))
            .collect::<serde_json::Map<_, _>>()
    });
    let unparsed_blocked = stats.map(|s| {
        PassReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(s.unparsed_blocked[*r as usize])))
            .collect::<serde_json::Map<_, _>>()
    });
    json!({
        "host": crate::audit::host(),
        "time": clock::rounded(now),
        "pin_dir": ctx.pin_dir,
        "state_dir": ctx.state_dir,
        "interfaces": interfaces,
        "table": state.geo,
        "flow_table": counters.mux().map(|mux| mux.flows),
        "mux": {
            "ports": state.mux.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "events": counters.mux().map(|mux| {
                mux.events
                    .iter()
                    .map(|(e, n)| (e.name().to_string(), json!(n)))
                    .collect::<serde_json::Map<_, _>>()
            }),
        },
        "meetings": meetings,
        "totals": stats.map(|s| totals(s, None)),
        "pass_reasons": pass_reasons,
        "unparsed_blocked": unparsed_blocked,
        "counters_unavailable": match counters {
            Counters::Read { .. } => None,
            Counters::Unavailable(why) => Some(why.as_str()),
        },
        "rule_counters_unavailable": counters.rules_missing(),
    })
}
