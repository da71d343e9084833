//! `geofence status`: one screen that says what is in force, modelled on `xdp-filter
//! status`: where the filter runs, which table it uses, every meeting with its rules and
//! what they dropped, and the totals.

use jiff::Timestamp;

use filter_common::{PassReason, Verdict};

use super::{
    args::StatusArgs,
    rule_view::{self, RuleCounters},
};
use crate::change::Ctx;
use crate::{
    clock, human,
    kernel::{self, Kernel, Stats, bindings},
    state::{Meeting, Rule, State},
};

#[path = "status_json.rs"]
mod json;
#[path = "status_table.rs"]
mod table;

/// Counters, or why there are none. Per-rule counters can fail alone (said once).
enum Counters {
    Read {
        stats: Box<Stats>,
        rules: Result<RuleCounters, String>,
        mux: Result<bindings::MuxView, String>,
    },
    Unavailable(String),
}

impl Counters {
    fn read(ctx: &Ctx, state: &State) -> Counters {
        if !nix::unistd::geteuid().is_root() {
            return Counters::Unavailable("counters need root (run with sudo)".into());
        }
        if !Kernel::exists(&ctx.pin_dir) {
            return Counters::Unavailable(format!(
                "no maps under {} yet: nothing has been loaded",
                ctx.pin_dir.display()
            ));
        }
        let kernel = match Kernel::open(&ctx.pin_dir) {
            Ok(kernel) => kernel,
            Err(e) => return Counters::Unavailable(format!("counters unreadable: {e:#}")),
        };
        match kernel::read_stats(&kernel) {
            Ok(stats) => Counters::Read {
                stats: Box::new(stats),
                rules: RuleCounters::read(&kernel, state)
                    .map_err(|e| format!("per-rule counters unreadable: {e:#}")),
                mux: bindings::read_mux(&kernel).map_err(|e| format!("bindings unreadable: {e:#}")),
            },
            Err(e) => Counters::Unavailable(format!("counters unreadable: {e:#}")),
        }
    }

    fn mux(&self) -> Option<&bindings::MuxView> {
        match self {
            Counters::Read { mux: Ok(mux), .. } => Some(mux),
            _ => None,
        }
    }

    fn stats(&self) -> Option<&Stats> {
        match self {
            Counters::Read { stats, .. } => Some(stats),
            Counters::Unavailable(_) => None,
        }
    }

    fn rules(&self) -> Option<&RuleCounters> {
        match self {
            Counters::Read { rules: Ok(r), .. } => Some(r),
            _ => None,
        }
    }

    /// Why rules show no counts, if they don't.
    fn rules_missing(&self) -> Option<&str> {
        match self {
            Counters::Read { rules: Ok(_), .. } => None,
            Counters::Read {
                rules: Err(why), ..
            }
            | Counters::Unavailable(why) => Some(why),
        }
    }
}

fn all_total(stats: &Stats, verdict: Verdict) -> (u64, u64) {
    stats.sessions.keys().fold((0, 0), |(p, b), session| {
        let (sp, sb) = stats.session_total(*session, verdict);
        (p + sp, b + sb)
    })
}

pub fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<()> {
    let state = State::load(&ctx.state_dir)?;
    let counters = Counters::read(ctx, &state);
    let now = ctx.clock.wall();
    if args.json {
        let mut value = json::as_json(ctx, &state, &counters, now);
        if let Some(monitor) = super::monitor::switch_state(ctx) {
            value["monitor"] = serde_json::json!(monitor.name());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "geofence status on {} at {}",
        crate::audit::host(),
        clock::rounded(now)
    );
    println!(
        "pin dir {}   state dir {}",
        ctx.pin_dir.display(),
        ctx.state_dir.display()
    );
    println!();
    print_interfaces(ctx, &state);
    if let Some(line) = super::monitor::switch_state(ctx).and_then(|m| m.line()) {
        println!("{line}");
    }
    println!();
    table::print_table(&state, now);
    println!();
    print_mux(&state, &counters);
    print_meetings(&state, &counters, now);
    println!();
    print_totals(&counters);
    Ok(())
}

fn print_interfaces(ctx: &Ctx, state: &State) {
    println!("Interfaces");
    if state.attachments.is_empty() {
        println!("  none: packets are not filtered (geofence attach IFACE)");
    }
    let builds = program_builds(ctx, state);
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
        let again = match &a.netns {
            Some(ns) => format!("{} --netns {ns}", a.interface),
            None => a.interface.clone(),
        };
        match builds.get(&link_name(ctx, a)) {
            Some(kernel::ProgramBuild::Other) => println!(
                "    runs ANOTHER BUILD's program, which may read the territory table in \
                 another layout; table loads are refused until `geofence detach {again}` \
                 and `geofence attach {again}`"
            ),
            Some(kernel::ProgramBuild::Unchecked) => println!(
                "    program build not checked: no program of this build is pinned (attached \
                 by an older version?); `geofence detach {again}` and `geofence attach \
                 {again}` to be sure"
            ),
            Some(kernel::ProgramBuild::This) | None => {}
        }
    }
}

/// The pin name of an attachment's link.
pub(super) fn link_name(ctx: &Ctx, a: &crate::state::Attachment) -> String {
    kernel::link_pin(&ctx.pin_dir, &a.interface, a.netns.as_deref())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whose code each attachment's program runs, by link pin name; empty with a warning when
/// the kernel cannot say (status still reports everything else).
pub(super) fn program_builds(
    ctx: &Ctx,
    state: &State,
) -> std::collections::BTreeMap<String, kernel::ProgramBuild> {
    if state.attachments.is_empty() {
        return Default::default();
    }
    kernel::attached_builds(&ctx.pin_dir).unwrap_or_else(|e| {
        eprintln!("warning: cannot tell which build the attached programs are: {e:#}");
        Default::default()
    })
}

/// The flow table's use, the shared ports and what the program made of STUN on them;
/// no ports on a relay whose meetings own their ports.
fn print_mux(state: &State, counters: &Counters) {
    let table = counters.mux().map(|mux| mux.flows);
    if let Some(f) = table {
        println!(
            "Flow table: {} of {} flows in use ({} learned, {:.1}%)",
            human::count(u64::from(f.used)),
            human::count(u64::from(f.capacity)),
            human::count(u64::from(f.learned)),
            100.0 * f64::from(f.used) / f64::from(f.capacity.max(1))
        );
    }
    if state.mux.is_empty() {
        if table.is_some() {
            println!();
        }
        return;
    }
    let ports: Vec<String> = state.mux.iter().map(ToString::to_string).collect();
    println!("Shared ports (mux): {}", ports.join(" "));
    if let Some(mux) = counters.mux() {
        let events: Vec<String> = mux
            .events
            .iter()
            .map(|(e, n)| format!("{} {}", e.name().replace('_', " "), human::count(*n)))
            .collect();
        println!("  Binding requests: {}", events.join(", "));
    }
    println!();
}

/// `3 ufrags, 5 flows learned, 1 bound by API`; `None` when the meeting has none.
fn bindings_text(counts: &bindings::BindingCounts) -> Option<String> {
    let parts: Vec<String> = [
        (counts.ufrags, "ufrag", "ufrags", ""),
        (counts.flows_learned, "flow", "flows", " learned"),
        (counts.flows_api, "flow", "flows", " bound by API"),
    ]
    .iter()
    .filter(|(n, ..)| *n > 0)
    .map(|(n, one, many, how)| format!("{n} {}{how}", if *n == 1 { one } else { many }))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn print_meetings(state: &State, counters: &Counters, now: Timestamp) {
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
    let any_rule = state.meetings.values().any(|m| !m.rules.is_empty());
    if let Some(why) = counters.rules_missing().filter(|_| any_rule) {
        // Once here rather than on every rule.
        println!("  (rules show no counts: {why})");
    }
    // One column for every rule's counts, as wide as the widest.
    let width = state
        .meetings
        .iter()
        .flat_map(|(name, m)| (0..m.rules.len()).map(move |i| (name, m, i)))
        .filter_map(|(name, m, i)| counts_cell(counters, name, &m.rules[i], i))
        .map(|cell| cell.chars().count())
        .max()
        .unwrap_or(0);
    for (name, m) in &state.meetings {
        print_meeting(name, m, counters, width, now);
    }
}

/// What a rule dropped, as `dropped  1,234 pkts 1.2 MiB ~37 sources`; `None` when no
/// counters were read (said once above the meetings).
fn counts_cell(counters: &Counters, meeting: &str, rule: &Rule, index: usize) -> Option<String> {
    counters.rules().map(|r| match r.of(meeting, index) {
        Some(c) => format!(
            "{:<10} {}",
            rule_view::verb(rule),
            rule_view::counts_text(c)
        ),
        None => rule_view::NOT_COUNTED.to_string(),
    })
}

fn print_meeting(name: &str, m: &Meeting, counters: &Counters, width: usize, now: Timestamp) {
    let endpoints: Vec<String> = m.endpoints.iter().map(ToString::to_string).collect();
    let owned = match endpoints.is_empty() {
        true => "on shared ports".to_string(),
        false => endpoints.join(" "),
    };
    println!("  {name} (session {}): {owned}", m.session);
    let counts = counters.mux().and_then(|mux| mux.bindings.get(&m.session));
    if let Some(text) = counts.and_then(bindings_text) {
        println!("    bindings: {text}");
    }
    if let Some(stats) = counters.stats() {
        let (dp, db) = stats.session_total(m.session, Verdict::Dropped);
        let (wp, wb) = stats.session_total(m.session, Verdict::WouldDrop);
        let (pp, pb) = stats.session_total(m.session, Verdict::Passed);
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
    for (index, rule) in m.rules.iter().enumerate() {
        // Like xdp-filter's hit counters: what the rule did, in a column of its own. The
        // issue time stays in --json and the audit trail, to keep the line on one screen.
        let counted = counts_cell(counters, name, rule, index)
            .map(|cell| format!("{cell:<width$}   "))
            .unwrap_or_default();
        println!(
            "    block {:<20} order {:<16} {:<8} {:<41}  {counted}by {}",
            rule.targets(),
            rule.order,
            rule_view::mode(rule),
            human::expiry(rule.expires, now),
            rule.issued_by,
        );
    }
    for prefix in &m.allows {
        println!("    allow {prefix}");
    }
}

fn print_totals(counters: &Counters) {
    let stats = match counters {
        Counters::Read { stats, .. } => stats,
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
    // Only when a guard dropped something: a line that reads 0 on every relay is noise.
    let unparsed: u64 = stats.unparsed_blocked.iter().sum();
    if unparsed > 0 {
        let reasons: Vec<String> = (PassReason::ALL.iter())
            .filter(|r| stats.unparsed_blocked[**r as usize] > 0)
            .map(|r| {
                format!(
                    "{} {}",
                    r.name(),
                    human::count(stats.unparsed_blocked[*r as usize])
                )
            })
            .collect();
        println!(
            "  {:<13} {:>15} pkts   ({}; unparseable, from sources a rule blocks)",
            "unparsed_blocked",
            human::count(unparsed),
            reasons.join(", ")
        );
    }
}
