//! A `[[meetings.NAME.rules]]` entry: what `block` takes, with an absolute expiry.

use std::ops::Range;

use filter_common::policy::RULES_PER_SESSION;
use jiff::Timestamp;
use toml::Spanned;

use super::{DeclaredRule, PolicyError, schema::RuleSchema, source::Source};
use crate::expiry::parse_expiry;

/// What `block` refuses: one prefix under two orders, too many rules.
pub(super) fn check_rules(name: &str, rules: &[DeclaredRule]) -> Result<(), PolicyError> {
    for (i, rule) in rules.iter().enumerate() {
        for prefix in &rule.prefixes {
            if let Some(earlier) = rules[..i].iter().find(|r| r.prefixes.contains(prefix)) {
                return Err(PolicyError::new(
                    rule.at.clone(),
                    format!(
                        "meeting `{name}`, order {}: prefix {prefix} is already blocked by \
                         order {} (line {})",
                        rule.order, earlier.order, earlier.at.line
                    ),
                ));
            }
        }
    }
    // Every rule holds a policy slot, prefix-only ones too (their overrides are bound to it).
    if let Some(extra) = rules.get(RULES_PER_SESSION) {
        return Err(PolicyError::new(
            extra.at.clone(),
            format!(
                "meeting `{name}` has {} rules; one meeting holds at most \
                 {RULES_PER_SESSION} (territory or prefix): merge some",
                rules.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn rule(
    src: &Source,
    meeting: &str,
    rule: Spanned<RuleSchema>,
    now: Timestamp,
) -> Result<DeclaredRule, PolicyError> {
    let span = rule.span();
    let r = rule.into_inner();
    let order = r.order.get_ref().clone();
    let err = |span: Range<usize>, what: String| {
        src.error(span, format!("meeting `{meeting}`, rule {order:?}: {what}"))
    };
    if order.trim().is_empty() {
        return Err(src.error(
            r.order.span(),
            format!("meeting `{meeting}`: a rule needs an order reference, e.g. order = \"ORD-2026-0042\""),
        ));
    }
    if order.len() > 128 || order.chars().any(char::is_control) {
        let what = "use at most 128 printable characters for the order".to_string();
        return Err(err(r.order.span(), what));
    }
    if let Some(duration) = &r.for_ {
        let what = format!(
            "`for = {}` is a duration, which gives a different expiry each time the file is \
             applied; write the end as `expires = 2026-12-01T18:00:00Z` (RFC 3339) instead",
            duration.get_ref()
        );
        return Err(err(duration.span(), what));
    }
    if r.territories.is_empty() && r.prefixes.is_empty() {
        return Err(err(span, "block at least one territory or prefix".into()));
    }
    let expires = match &r.expires {
        None => None,
        Some(value) => {
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Datetime(d) => d.to_string(),
                other => {
                    let what = format!("expires: expected an RFC 3339 time, found {other}");
                    return Err(err(value.span(), what));
                }
            };
            let parsed = parse_expiry(&text, Timestamp::MIN)
                .map_err(|e| err(value.span(), format!("expires {e}")))?;
            if parsed <= now {
                let what = format!(
                    "expires {parsed}, which is in the past (now is {}); remove the rule from \
                     the file or give it a later expiry",
                    crate::clock::rounded(now)
                );
                return Err(err(value.span(), what));
            }
            Some(parsed)
        }
    };
    let mut territories: Vec<_> = r.territories.iter().map(|t| *t.get_ref()).collect();
    territories.sort();
    territories.dedup();
    let mut prefixes: Vec<_> = r.prefixes.iter().map(|p| p.get_ref().0).collect();
    prefixes.sort();
    prefixes.dedup();
    Ok(DeclaredRule {
        order,
        territories,
        prefixes,
        expires,
        dry_run: r.dry_run,
        at: src.at(span),
    })
}
