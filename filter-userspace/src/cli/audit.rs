//! `geofence audit show`, `audit verify` and `audit anchor`.

use anyhow::{anyhow, bail};
use serde_json::Value;

use super::args::AuditCommand;
use crate::audit::{self, Anchor, Entry, Filter, Problem};
use crate::change::Ctx;

pub fn run(ctx: &Ctx, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Show { since, order, json } => show(ctx, since, order, json),
        AuditCommand::Verify { anchor } => verify(ctx, &anchor),
        AuditCommand::Anchor => anchor(ctx),
    }
}

fn show(ctx: &Ctx, since: Option<String>, order: Option<String>, json: bool) -> anyhow::Result<()> {
    let now = ctx.clock.wall();
    let since = since
        .map(|s| audit::parse_since(&s, now).map_err(|e| anyhow!("--since {e}")))
        .transpose()?;
    let filter = Filter { since, order };
    let entries: Vec<Entry> = audit::read(&ctx.state_dir)?
        .into_iter()
        .filter(|e| filter.matches(e))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no audit entries match");
        return Ok(());
    }
    println!(
        "{:>5}  {:<20}  {:<12}  {:<12}  DETAILS",
        "SEQ", "TIME", "OPERATOR", "ACTION"
    );
    for e in &entries {
        println!(
            "{:>5}  {:<20}  {:<12}  {:<12}  {}",
            e.seq,
            e.time,
            e.operator,
            e.action,
            summary(&e.details)
        );
    }
    Ok(())
}

/// `key=value` pairs of the details, lists joined by commas; the rule records that every
/// change carries are shortened to `order@meeting[targets]`, with counts when a rule ended.
fn summary(details: &Value) -> String {
    let Value::Object(map) = details else {
        return details.to_string();
    };
    map.iter()
        .filter(|(k, _)| k.as_str() != "registers")
        .map(|(k, v)| match k.as_str() {
            "rules_added" | "rules_removed" => format!("{k}={}", each(v, rule_brief)),
            "rules_changed" => format!(
                "{k}={}",
                each(v, |c| format!(
                    "{}→{}",
                    rule_brief(&c["before"]),
                    targets(&c["after"])
                ))
            ),
            _ => format!("{k}={}", flat(v)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn each(list: &Value, brief: impl Fn(&Value) -> String) -> String {
    let items = list
        .as_array()
        .map(|a| a.iter().map(brief).collect::<Vec<_>>());
    items.unwrap_or_default().join(",")
}

fn targets(rule: &Value) -> String {
    let mut all = Vec::new();
    for key in ["territories", "prefixes"] {
        all.extend(rule[key].as_array().into_iter().flatten().map(flat));
    }
    format!("[{}]", all.join(" "))
}

fn rule_brief(rule: &Value) -> String {
    let counts = &rule["counts"];
    let counted = if counts.is_object() {
        format!(
            "({} pkts, {} bytes, ≈{} sources)",
            counts["packets"], counts["bytes"], counts["distinct_sources"]
        )
    } else {
        String::new()
    };
    format!(
        "{}@{}{}{counted}",
        flat(&rule["order"]),
        flat(&rule["meeting"]),
        targets(rule)
    )
}

fn flat(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join(","),
        Value::Object(_) => format!("{{{}}}", summary(value)),
        other => other.to_string(),
    }
}

fn verify(ctx: &Ctx, anchors: &[Anchor]) -> anyhow::Result<()> {
    let path = ctx.state_dir.join(audit::AUDIT_FILE);
    match audit::verify_against(&ctx.state_dir, anchors)? {
        Ok(n) => {
            let matched: Vec<String> = anchors
                .iter()
                .map(|a| format!("; matches anchor {a}"))
                .collect();
            println!(
                "{}: {n} entries, chain intact{}",
                path.display(),
                matched.concat()
            );
            Ok(())
        }
        Err(problems) => not_intact(&path, &problems),
    }
}

fn not_intact(path: &std::path::Path, problems: &[Problem]) -> anyhow::Result<()> {
    for p in problems {
        println!("{}: {p}", path.display());
    }
    bail!(
        "{}: the audit trail is not intact ({} problem{})",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    )
}

/// The head of an intact trail, as a line to paste elsewhere. A broken trail gets no
/// anchor: one would vouch for the break.
fn anchor(ctx: &Ctx) -> anyhow::Result<()> {
    let path = ctx.state_dir.join(audit::AUDIT_FILE);
    if let Err(problems) = audit::verify(&ctx.state_dir)? {
        not_intact(&path, &problems)
            .map_err(|e| e.context("no anchor taken: it would vouch for a broken trail"))?;
    }
    let entries = audit::read(&ctx.state_dir)?;
    let Some(head) = entries.iter().max_by_key(|e| e.seq) else {
        bail!("{}: no entries yet, nothing to anchor", path.display());
    };
    let anchor = Anchor::of(head);
    println!("{}", anchor.line());
    eprintln!(
        "Keep this line off this relay (in the change ticket). `geofence audit verify \
         --anchor {anchor}` then shows that entries 1 to {} were not rewritten since.",
        anchor.seq
    );
    Ok(())
}
