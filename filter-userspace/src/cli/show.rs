//! `geofence stats`.

use serde_json::{Value, json};

use filter_common::{PassReason, Verdict};

use super::{
    args::StatsArgs,
    rule_view::{self, RuleCounters},
};
use crate::change::Ctx;
use crate::{
    kernel::{self, Kernel, Stats},
    state::{Meeting, State},
    territory::Territory,
};

/// `no_session 12, not_ip 0, ...`
fn pass_reasons(stats: &Stats, separator: &str) -> String {
    PassReason::ALL
        .iter()
        .map(|r| format!("{} {}", r.name(), stats.pass_reasons[*r as usize]))
        .collect::<Vec<_>>()
        .join(separator)
}

fn counts_json(stats: &Stats, session: u32) -> Vec<Value> {
    let Some(territories) = stats.sessions.get(&session) else {
        return Vec::new();
    };
    territories
        .iter()
        .map(|(id, c)| {
            let mut entry = json!({ "territory": Territory::from_id(*id).to_string() });
            for v in Verdict::ALL {
                entry[v.name()] =
                    json!({ "packets": c.packets[v as usize], "bytes": c.bytes[v as usize] });
            }
            entry
        })
        .collect()
}

pub fn stats(ctx: &Ctx, args: StatsArgs) -> anyhow::Result<()> {
    let state = State::load(&ctx.state_dir)?;
    if let Some(name) = &args.name {
        state.meeting(name)?;
    }
    let kernel = Kernel::open(&ctx.pin_dir)?;
    let stats = kernel::read_stats(&kernel)?;
    let rule_counts = RuleCounters::read(&kernel, &state)?;
    let selected: Vec<(&String, &Meeting)> = state
        .meetings
        .iter()
        .filter(|(name, _)| args.name.as_ref().is_none_or(|n| n == *name))
        .collect();
    let meetings: Vec<(&String, u32)> = selected.iter().map(|(n, m)| (*n, m.session)).collect();
    if args.json {
        let mut reasons = serde_json::Map::new();
        for r in PassReason::ALL {
            reasons.insert(r.name().to_string(), json!(stats.pass_reasons[r as usize]));
        }
        let out = json!({
            "meetings": meetings.iter().map(|(name, session)| json!({
                "meeting": name,
                "session": session,
                "territories": counts_json(&stats, *session),
            })).collect::<Vec<_>>(),
            "rules": rules_json(&selected, &rule_counts),
            "pass_reasons": reasons,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<9} {:>12} {:>14} {:>12} {:>14} {:>12} {:>14}",
        "MEETING", "TERRITORY", "PASSED", "BYTES", "DROPPED", "BYTES", "WOULD-DROP", "BYTES"
    );
    for (name, session) in &meetings {
        let Some(territories) = stats.sessions.get(session) else {
            println!("{name:<20} (no packets yet)");
            continue;
        };
        for (id, c) in territories {
            println!(
                "{name:<20} {:<9} {:>12} {:>14} {:>12} {:>14} {:>12} {:>14}",
                Territory::from_id(*id).to_string(),
                c.packets[0],
                c.bytes[0],
                c.packets[1],
                c.bytes[1],
                c.packets[2],
                c.bytes[2]
            );
        }
    }
    if args.name.is_none() {
        println!("passed unclassified: {}", pass_reasons(&stats, ", "));
    }
    print_rules(&selected, &rule_counts);
    Ok(())
}

/// Every rule of the selected meetings with what it dropped (or would have, in dry run).
fn rules_json(meetings: &[(&String, &Meeting)], counts: &RuleCounters) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, m) in meetings {
        for (index, rule) in m.rules.iter().enumerate() {
            let mut entry = json!({
                "meeting": name,
                "order": rule.order,
                "territories": rule.territories.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "prefixes": rule.prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "mode": rule_view::mode(rule),
            });
            if let (Some(e), Value::Object(c)) = (
                entry.as_object_mut(),
                rule_view::counts_json(counts.of(name, index)),
            ) {
                e.extend(c);
            }
            out.push(entry);
        }
    }
    out
}

fn print_rules(meetings: &[(&String, &Meeting)], counts: &RuleCounters) {
    if meetings.iter().all(|(_, m)| m.rules.is_empty()) {
        return;
    }
    println!();
    println!(
        "{:<20} {:<16} {:<24} {:<8} {:>12} {:>14} {:>8}",
        "MEETING", "ORDER", "TARGETS", "MODE", "PACKETS", "BYTES", "SOURCES"
    );
    for (name, m) in meetings {
        for (index, rule) in m.rules.iter().enumerate() {
            let head = format!(
                "{name:<20} {:<16} {:<24} {:<8}",
                rule.order,
                rule.targets(),
                rule_view::mode(rule)
            );
            match counts.of(name, index) {
                Some(c) => println!(
                    "{head} {:>12} {:>14} {:>8}",
                    c.packets,
                    c.bytes,
                    format!("~{}", c.distinct_sources)
                ),
                None => println!("{head} {:>36}", rule_view::NOT_COUNTED),
            }
        }
    }
}
