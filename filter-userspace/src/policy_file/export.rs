//! The state written as a policy file: what `geofence export` prints, and what `apply`
//! reads back without a change. Expired rules are left out (they are records, not policy)
//! and listed in comments; so are the interfaces, which are not part of a policy.

use std::fmt::Write as _;

use jiff::Timestamp;

use crate::state::{Meeting, Rule, State};

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Text for a `#` comment: a control character would end the comment early.
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A key as TOML needs it: bare where it can be.
fn key(text: &str) -> String {
    let bare = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if bare { text.to_string() } else { quoted(text) }
}

fn list<T: ToString>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quoted(&i.to_string())).collect();
    format!("[{}]", quoted.join(", "))
}

/// Renders `state` as a policy file, with a header naming `host` and `now`.
pub fn export(state: &State, host: &str, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# geofence policy exported from {host} at {}.\n\
         # Apply with `geofence apply FILE` (`--dry-run` shows the diff only). Interfaces are\n\
         # not part of a policy: `geofence attach`/`detach` manage them on each host.",
        crate::clock::rounded(now),
        host = comment(host)
    );
    for a in &state.attachments {
        let _ = writeln!(
            out,
            "# attached here (not managed by apply): {} ({} mode)",
            comment(&a.label()),
            comment(&a.mode)
        );
    }
    // Top-level keys come before the first table.
    if !state.mux.is_empty() {
        out.push_str(
            "\n# Ports meetings share; each meeting's participants are told apart by their ICE\n",
        );
        out.push_str("# ufrags, which the SFU registers at run time (not part of a policy).\n");
        let _ = writeln!(out, "mux = {}", list(&state.mux));
    }
    if let Some(geo) = &state.geo {
        out.push_str("\n[geo]\n");
        if geo.files.iter().any(|f| f.is_relative()) {
            out.push_str("# Relative paths are read from the directory of the policy file.\n");
        }
        let files: Vec<String> = geo.files.iter().map(|f| f.display().to_string()).collect();
        let _ = writeln!(out, "files = {}", list(&files));
        let _ = writeln!(out, "format = {}", quoted(&geo.format));
        if let Some(territory) = &geo.territory {
            let _ = writeln!(out, "territory = {}", quoted(territory));
        }
    }
    for (name, meeting) in &state.meetings {
        write_meeting(&mut out, name, meeting, now);
    }
    out
}

fn write_meeting(out: &mut String, name: &str, meeting: &Meeting, now: Timestamp) {
    let table = format!("meetings.{}", key(name));
    let _ = writeln!(out, "\n[{table}]");
    let _ = writeln!(
        out,
        "# session {}, created {}",
        meeting.session, meeting.created
    );
    let _ = writeln!(out, "endpoints = {}", list(&meeting.endpoints));
    if !meeting.allows.is_empty() {
        let _ = writeln!(out, "allow = {}", list(&meeting.allows));
    }
    for rule in &meeting.rules {
        if rule.expired(now) {
            let _ = writeln!(
                out,
                "# expired {} and left out: order {:?}, {} (kept in the state as a record)",
                rule.expires.map(|t| t.to_string()).unwrap_or_default(),
                rule.order,
                rule.targets()
            );
            continue;
        }
        write_rule(out, &table, rule);
    }
}

fn write_rule(out: &mut String, table: &str, rule: &Rule) {
    let _ = writeln!(out, "\n[[{table}.rules]]");
    let _ = writeln!(
        out,
        "# issued {} by {}",
        rule.issued,
        comment(&rule.issued_by)
    );
    let _ = writeln!(out, "order = {}", quoted(&rule.order));
    if !rule.territories.is_empty() {
        let _ = writeln!(out, "territories = {}", list(&rule.territories));
    }
    if !rule.prefixes.is_empty() {
        let _ = writeln!(out, "prefixes = {}", list(&rule.prefixes));
    }
    if let Some(at) = rule.expires {
        // A TOML datetime: RFC 3339, as `expires` is written by hand.
        let _ = writeln!(out, "expires = {at}");
    }
    if rule.dry_run {
        out.push_str("dry_run = true\n");
    }
}
