//! Selecting entries for `audit show` and the report: by time and by order reference.

use jiff::Timestamp;
use serde_json::Value;

use super::Entry;

/// Which entries to keep; `None` keeps everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub since: Option<Timestamp>,
    pub order: Option<String>,
}

impl Filter {
    pub fn matches(&self, entry: &Entry) -> bool {
        let recent = match self.since {
            Some(since) => entry.timestamp().is_some_and(|t| t >= since),
            None => true,
        };
        let ordered = match &self.order {
            Some(order) => mentions_order(&entry.details, order),
            None => true,
        };
        recent && ordered
    }
}

/// Whether `details` names `order` under an `order` key or in an `orders` list, at any
/// depth (an unblock records the orders of the rules it removed).
pub fn mentions_order(details: &Value, order: &str) -> bool {
    match details {
        Value::Object(map) => map.iter().any(|(key, value)| match (key.as_str(), value) {
            ("order", Value::String(s)) => s == order,
            ("orders", Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(order)),
            _ => mentions_order(value, order),
        }),
        Value::Array(items) => items.iter().any(|i| mentions_order(i, order)),
        _ => false,
    }
}

/// `--since`: an RFC 3339 time, or a duration back from `now` (`24h`, `7d`).
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let duration = crate::expiry::parse_duration(text).map_err(|_| {
        format!(
            "`{text}` is neither an RFC 3339 time (2026-12-01T18:00:00Z) nor a duration (24h, 7d)"
        )
    })?;
    let span = jiff::SignedDuration::try_from(duration).map_err(|e| e.to_string())?;
    now.checked_sub(span)
        .map_err(|e| format!("`{text}` reaches too far back: {e}"))
}
