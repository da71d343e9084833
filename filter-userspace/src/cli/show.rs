//! `geofence status` and `geofence stats`.

use jiff::Timestamp;
use serde_json::{Value, json};

use filter_common::{PassReason, Verdict};

use super::{args::StatsArgs, change::Ctx, geo::generation_name};
use crate::{
    kernel::{self, Kernel, Stats},
    state::State,
    territory::Territory,
};

pub fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let state = State::load(&ctx.state_dir)?;
    let now = Timestamp::now();
    println!(
        "pin dir {}   state dir {}",
        ctx.pin_dir.display(),
        ctx.state_dir.display()
    );
    println!();
    println!("Interfaces");
    if state.attachments.is_empty() {
        println!("  none (geofence attach IFACE)");
    }
    for a in &state.attachments {
        let link = if kernel::link_pinned(&ctx.pin_dir, &a.interface, a.netns.as_deref()) {
            "link pinned"
        } else {
            "LINK MISSING"
        };
        println!(
            "  {:<24} {:<7} since {}   {link}",
            a.label(),
            a.mode,
            a.attached
        );
    }
    println!();
    println!("Territory table");
    match &state.geo {
        None => println!("  none loaded (geofence geo load FILE...): every source is `unknown`"),
        Some(g) => {
            let files: Vec<String> = g.files.iter().map(|f| f.display().to_string()).collect();
            println!(
                "  table {}: {} IPv4 + {} IPv6 prefixes, {} territories, loaded {}",
                generation_name(g.generation),
                g.prefixes_v4,
                g.prefixes_v6,
                g.territories,
                g.loaded
            );
            println!("  from {}", files.join(", "));
        }
    }
    println!();
    println!("Meetings");
    if state.meetings.is_empty() {
        println!("  none (geofence meeting add NAME --endpoint PROTO:ADDR:PORT)");
    }
    for (name, m) in &state.meetings {
        let endpoints: Vec<String> = m.endpoints.iter().map(ToString::to_string).collect();
        println!("  {name} (session {}): {}", m.session, endpoints.join(" "));
        for flow in &m.flows {
            println!("    flow {flow}");
        }
        for rule in &m.rules {
            let until = match rule.expires {
                None => "no expiry".to_string(),
                Some(t) if t <= now => format!("EXPIRED {}", crate::state::rounded(t)),
                Some(t) => format!("until {}", crate::state::rounded(t)),
            };
            let mode = if rule.dry_run { "dry-run" } else { "enforce" };
            println!(
                "    block {:<20} order {:<16} {mode:<8} {until}   by {} at {}",
                rule.targets(),
                rule.order,
                rule.issued_by,
                rule.issued
            );
        }
        for prefix in &m.allows {
            println!("    allow {prefix}");
        }
    }
    if Kernel::exists(&ctx.pin_dir) {
        let kernel = Kernel::open(&ctx.pin_dir)?;
        let stats = kernel::read_stats(&kernel)?;
        println!();
        println!("Passed unclassified");
        println!("  {}", pass_reasons(&stats, "   "));
    }
    Ok(())
}

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
    let meetings: Vec<(&String, u32)> = state
        .meetings
        .iter()
        .filter(|(name, _)| args.name.as_ref().is_none_or(|n| n == *name))
        .map(|(name, m)| (name, m.session))
        .collect();
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
    Ok(())
}
