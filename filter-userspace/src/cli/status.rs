//! `geofence status`: one screen that says what is in force, modelled on `xdp-filter
//! status`: where the filter runs, which table it uses, every meeting with its rules and
//! what they dropped, and the totals.

use jiff::Timestamp;
use serde_json::{Value, json};

use filter_common::{PassReason, Verdict};

use super::{args::StatusArgs, change::Ctx, geo::generation_name, human};
use crate::{
    kernel::{self, Kernel, Stats},
    state::{self, Meeting, State},
};

/// Counters, or why there are none.
enum Counters {
    Read(Stats),
    Unavailable(String),
}

impl Counters {
    fn read(ctx: &Ctx) -> Counters {
        if !nix::unistd::geteuid().is_root() {
            return Counters::Unavailable("counters need root (run with sudo)".into());
        }
        if !Kernel::exists(&ctx.pin_dir) {
            return Counters::Unavailable(format!(
                "no maps under {} yet: nothing has been loaded",
                ctx.pin_dir.display()
            ));
        }
        match Kernel::open(&ctx.pin_dir).and_then(|k| kernel::read_stats(&k)) {
            Ok(stats) => Counters::Read(stats),
            Err(e) => Counters::Unavailable(format!("counters unreadable: {e:#}")),
        }
    }

    fn stats(&self) -> Option<&Stats> {
        match self {
            Counters::Read(stats) => Some(stats),
            Counters::Unavailable(_) => None,
        }
    }
}

/// Packets and bytes of one verdict, summed over a meeting's territories.
fn meeting_total(stats: &Stats, session: u32, verdict: Verdict) -> (u64, u64) {
    stats.sessions.get(&session).map_or((0, 0), |territories| {
        territories.values().fold((0, 0), |(p, b), c| {
            (
                p + c.packets[verdict as usize],
                b + c.bytes[verdict as usize],
            )
        })
    })
}

fn all_total(stats: &Stats, verdict: Verdict) -> (u64, u64) {
    stats.sessions.keys().fold((0, 0), |(p, b), session| {
        let (sp, sb) = meeting_total(stats, *session, verdict);
        (p + sp, b + sb)
    })
}

pub fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<()> {
    let state = State::load(&ctx.state_dir)?;
    let counters = Counters::read(ctx);
    let now = Timestamp::now();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&as_json(ctx, &state, &counters, now))?
        );
        return Ok(());
    }
    println!(
        "geofence status on {} at {}",
        crate::audit::host(),
        state::rounded(now)
    );
    println!(
        "pin dir {}   state dir {}",
        ctx.pin_dir.display(),
        ctx.state_dir.display()
    );
    println!();
    print_interfaces(ctx, &state);
    println!();
    print_table(&state, now);
    println!();
    print_meetings(&state, counters.stats(), now);
    println!();
    print_totals(&counters);
    Ok(())
}

fn print_interfaces(ctx: &Ctx, state: &State) {
    println!("Interfaces");
    if state.attachments.is_empty() {
        println!("  none: packets are not filtered (geofence attach IFACE)");
    }
    for a in &state.attachments {
        let link = if kernel::link_pinned(&ctx.pin_dir, &a.interface, a.netns.as_deref()) {
            "link pinned"
        } else {
            "LINK MISSING (geofence restore)"
        };
        println!(
            "  {:<24} {:<7} {link:<32} since {}",
            a.label(),
            a.mode,
            a.attached
        );
    }
}

fn print_table(state: &State, now: Timestamp) {
    match &state.geo {
        None => println!(
            "Territory table: none loaded, every source is `unknown` (geofence geo load FILE...)"
        ),
        Some(g) => {
            let files: Vec<String> = g.files.iter().map(|f| f.display().to_string()).collect();
            println!(
                "Territory table {}: {} IPv4 + {} IPv6 prefixes in {} {}, loaded {} ({} ago)",
                generation_name(g.generation),
                human::count(g.prefixes_v4 as u64),
                human::count(g.prefixes_v6 as u64),
                g.territories,
                if g.territories == 1 {
                    "territory"
                } else {
                    "territories"
                },
                g.loaded,
                human::span(now.duration_since(g.loaded))
            );
            println!("  from {}", files.join(", "));
        }
    }
}

fn print_meetings(state: &State, stats: Option<&Stats>, now: Timestamp) {
    let rules = state.meetings.values().flat_map(|m| &m.rules);
    let in_force = rules.clone().filter(|r| !r.expired(now)).count();
    let dry = rules
        .clone()
        .filter(|r| !r.expired(now) && r.dry_run)
        .count();
    let expired = rules.filter(|r| r.expired(now)).count();
    println!(
        "Meetings: {}   rules in force: {in_force} ({dry} dry-run)   expired: {expired}",
        state.meetings.len()
    );
    if state.meetings.is_empty() {
        println!("  none (geofence meeting add NAME --endpoint PROTO:ADDR:PORT)");
    }
    for (name, m) in &state.meetings {
        print_meeting(name, m, stats, now);
    }
}

fn print_meeting(name: &str, m: &Meeting, stats: Option<&Stats>, now: Timestamp) {
    let endpoints: Vec<String> = m.endpoints.iter().map(ToString::to_string).collect();
    println!("  {name} (session {}): {}", m.session, endpoints.join(" "));
    if let Some(stats) = stats {
        let (dp, db) = meeting_total(stats, m.session, Verdict::Dropped);
        let (wp, wb) = meeting_total(stats, m.session, Verdict::WouldDrop);
        let (pp, pb) = meeting_total(stats, m.session, Verdict::Passed);
        println!(
            "    passed {} pkts ({})   dropped {} pkts ({})   would-drop {} pkts ({})",
            human::count(pp),
            human::bytes(pb),
            human::count(dp),
            human::bytes(db),
            human::count(wp),
            human::bytes(wb)
        );
    }
    for flow in &m.flows {
        println!("    flow  {flow}");
    }
    for rule in &m.rules {
        let mode = if rule.dry_run { "dry-run" } else { "enforce" };
        println!(
            "    block {:<20} order {:<16} {mode:<8} {}   by {} at {}",
            rule.targets(),
            rule.order,
            human::expiry(rule.expires, now),
            rule.issued_by,
            rule.issued
        );
    }
    for prefix in &m.allows {
        println!("    allow {prefix}");
    }
}

fn print_totals(counters: &Counters) {
    let stats = match counters {
        Counters::Read(stats) => stats,
        Counters::Unavailable(why) => {
            println!("Totals: {why}");
            return;
        }
    };
    println!("Totals since the maps were created");
    for verdict in Verdict::ALL {
        let (packets, bytes) = all_total(stats, verdict);
        println!(
            "  {:<13} {:>15} pkts {:>12}",
            verdict.name().replace('_', "-"),
            human::count(packets),
            human::bytes(bytes)
        );
    }
    let unclassified: u64 = stats.pass_reasons.iter().sum();
    let reasons: Vec<String> = PassReason::ALL
        .iter()
        .filter(|r| stats.pass_reasons[**r as usize] > 0)
        .map(|r| {
            format!(
                "{} {}",
                r.name(),
                human::count(stats.pass_reasons[*r as usize])
            )
        })
        .collect();
    let line = format!(
        "  {:<13} {:>15} pkts",
        "unclassified",
        human::count(unclassified)
    );
    if reasons.is_empty() {
        println!("{line}");
    } else {
        println!("{line}   ({})", reasons.join(", "));
    }
}

fn as_json(ctx: &Ctx, state: &State, counters: &Counters, now: Timestamp) -> Value {
    let stats = counters.stats();
    let totals = |s: &Stats, session: Option<u32>| {
        let mut out = serde_json::Map::new();
        for v in Verdict::ALL {
            let (packets, bytes) = match session {
                Some(id) => meeting_total(s, id, v),
                None => all_total(s, v),
            };
            out.insert(
                v.name().to_string(),
                json!({"packets": packets, "bytes": bytes}),
            );
        }
        Value::Object(out)
    };
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
                "rules": m.rules.iter().map(|r| json!({
                    "order": r.order,
                    "territories": r.territories.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "prefixes": r.prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "mode": if r.dry_run { "dry-run" } else { "enforce" },
                    "expires": r.expires,
                    "expired": r.expired(now),
                    "issued": r.issued,
                    "issued_by": r.issued_by,
                })).collect::<Vec<_>>(),
                "allows": m.allows.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "counters": stats.map(|s| totals(s, Some(m.session))),
            })
        })
        .collect();
    let pass_reasons = stats.map(|s| {
        PassReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(s.pass_reasons[*r as usize])))
            .collect::<serde_json::Map<_, _>>()
    });
    json!({
        "host": crate::audit::host(),
        "time": state::rounded(now),
        "pin_dir": ctx.pin_dir,
        "state_dir": ctx.state_dir,
        "interfaces": interfaces,
        "table": state.geo,
        "meetings": meetings,
        "totals": stats.map(|s| totals(s, None)),
        "pass_reasons": pass_reasons,
        "counters_unavailable": match counters {
            Counters::Read(_) => None,
            Counters::Unavailable(why) => Some(why.as_str()),
        },
    })
}
