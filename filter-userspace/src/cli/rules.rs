//! `geofence block`, `unblock` and `allow`.

use anyhow::{anyhow, bail};
use serde_json::json;

use super::{
    args::{AllowArgs, BlockArgs, UnblockArgs},
    meeting::plural,
};
use crate::change::Ctx;
use crate::{
    audit::operator,
    expiry::{expiry_after, parse_duration, parse_expiry},
    state::{Meeting, Rule},
};
use filter_common::policy::RULES_PER_SESSION;

fn check_order(order: &str) -> anyhow::Result<()> {
    if order.trim().is_empty() {
        bail!("--order: an order reference is required, e.g. --order ORD-2026-0042");
    }
    if order.len() > 128 || order.chars().any(char::is_control) {
        // Debug quoting keeps control characters from reaching the terminal raw.
        bail!("--order {order:?}: use at most 128 printable characters");
    }
    Ok(())
}

/// Which rule, if any, already names this prefix on the meeting.
fn prefix_owner<'a>(meeting: &'a Meeting, prefix: &ipnet::IpNet) -> Option<&'a str> {
    meeting
        .rules
        .iter()
        .find(|r| r.prefixes.contains(prefix))
        .map(|r| r.order.as_str())
}

pub fn block(ctx: &Ctx, args: BlockArgs) -> anyhow::Result<()> {
    if args.territories.is_empty() && args.prefixes.is_empty() {
        bail!("block needs at least one --territory or --prefix");
    }
    check_order(&args.order)?;
    let now = ctx.clock.wall();
    let expires = match (&args.expires, &args.for_) {
        (Some(at), _) => Some(parse_expiry(at, now).map_err(|e| anyhow!("--expires {e}"))?),
        (None, Some(d)) => {
            let duration = parse_duration(d).map_err(|e| anyhow!("--for {e}"))?;
            Some(expiry_after(now, duration).map_err(|e| anyhow!("--for {e}"))?)
        }
        (None, None) => None,
    };
    let rule = Rule {
        order: args.order.clone(),
        territories: dedup(args.territories.clone()),
        prefixes: dedup(args.prefixes.clone()),
        expires,
        dry_run: args.dry_run,
        issued: ctx.now(),
        issued_by: operator(),
        slot: None,
    };
    ctx.change("block", |state| {
        let meeting = state.meeting_mut(&args.name)?;
        for prefix in &rule.prefixes {
            if let Some(order) = prefix_owner(meeting, prefix) {
                bail!("--prefix {prefix} is already blocked on `{}` under order {order}", args.name);
            }
            if meeting.allows.contains(prefix) {
                bail!("--prefix {prefix} is an allowed exception on `{}`; unblock it first", args.name);
            }
        }
        // Every rule holds a policy slot, prefix-only ones too (their overrides are bound to it).
        if meeting.rules.len() >= RULES_PER_SESSION {
            bail!(
                "meeting `{}` already has {RULES_PER_SESSION} rules (territory or prefix), the most \
                 one meeting holds; unblock or merge some first",
                args.name
            );
        }
        meeting.rules.push(rule.clone());
        Ok(json!({
            "meeting": args.name,
            "order": rule.order,
            "territories": rule.territories,
            "prefixes": rule.prefixes,
            "expires": rule.expires.map(|t| t.to_string()),
            "mode": if rule.dry_run { "dry-run" } else { "enforce" },
        }))
    })?;
    let until = rule
        .expires
        .map_or("until lifted".to_string(), |t| format!("until {t}"));
    let mode = if rule.dry_run {
        " (dry run: counted, not dropped)"
    } else {
        ""
    };
    println!(
        "blocked {} on `{}` under order {} {until}{mode}",
        rule.targets(),
        args.name,
        rule.order
    );
    Ok(())
}

fn dedup<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

pub fn unblock(ctx: &Ctx, args: UnblockArgs) -> anyhow::Result<()> {
    let mut removed = Vec::new();
    ctx.change("unblock", |state| {
        let meeting = state.meeting_mut(&args.name)?;
        let everything = args.territories.is_empty() && args.prefixes.is_empty();
        if everything {
            removed.extend(meeting.rules.iter().map(|r| format!("order {}", r.order)));
            removed.extend(meeting.allows.iter().map(|p| format!("exception {p}")));
            meeting.rules.clear();
            meeting.allows.clear();
        }
        for territory in &args.territories {
            if !meeting
                .rules
                .iter()
                .any(|r| r.territories.contains(territory))
            {
                bail!("--territory {territory} is not blocked on `{}`", args.name);
            }
            for rule in &mut meeting.rules {
                rule.territories.retain(|t| t != territory);
            }
            removed.push(territory.to_string());
        }
        for prefix in &args.prefixes {
            let blocked = prefix_owner(meeting, prefix).is_some();
            let allowed = meeting.allows.contains(prefix);
            if !blocked && !allowed {
                bail!(
                    "--prefix {prefix} is neither blocked nor allowed on `{}`",
                    args.name
                );
            }
            for rule in &mut meeting.rules {
                rule.prefixes.retain(|p| p != prefix);
            }
            meeting.allows.retain(|p| p != prefix);
            removed.push(prefix.to_string());
        }
        meeting
            .rules
            .retain(|r| !r.territories.is_empty() || !r.prefixes.is_empty());
        Ok(json!({ "meeting": args.name, "removed": removed }))
    })?;
    if removed.is_empty() {
        println!("`{}` had no rules", args.name);
    } else {
        println!("unblocked on `{}`: {}", args.name, removed.join(", "));
    }
    Ok(())
}

pub fn allow(ctx: &Ctx, args: AllowArgs) -> anyhow::Result<()> {
    let prefixes = dedup(args.prefixes.clone());
    ctx.change("allow", |state| {
        let meeting = state.meeting_mut(&args.name)?;
        for prefix in &prefixes {
            if let Some(order) = prefix_owner(meeting, prefix) {
                bail!(
                    "--prefix {prefix} is blocked on `{}` under order {order}; unblock it instead",
                    args.name
                );
            }
            if meeting.allows.contains(prefix) {
                bail!("--prefix {prefix} is already allowed on `{}`", args.name);
            }
        }
        meeting.allows.extend(prefixes.iter().copied());
        Ok(json!({ "meeting": args.name, "prefixes": prefixes }))
    })?;
    let shown: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
    println!(
        "allowed {} exception{} on `{}`: {}",
        prefixes.len(),
        plural(prefixes.len()),
        args.name,
        shown.join(", ")
    );
    Ok(())
}
