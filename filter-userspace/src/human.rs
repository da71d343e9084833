//! Numbers and times as operators read them on a terminal.

use jiff::{SignedDuration, Timestamp};

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1536` → `1.5 KiB`; exact below 1 KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The two largest units of a span: `3d 4h`, `2h 5m`, `40s`.
pub fn span(d: SignedDuration) -> String {
    let secs = d.as_secs().unsigned_abs();
    let (days, hours, mins) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m {}s", secs % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `until 2026-12-01T18:00:00Z (3d 4h left)` or `EXPIRED 2026-11-27T10:00:00Z (1d 3h ago)`.
pub fn expiry(expires: Option<Timestamp>, now: Timestamp) -> String {
    match expires {
        None => "no expiry".to_string(),
        Some(t) if t <= now => format!(
            "EXPIRED {} ({} ago)",
            crate::clock::rounded(t),
            span(now.duration_since(t))
        ),
        Some(t) => format!(
            "until {} ({} left)",
            crate::clock::rounded(t),
            span(t.duration_since(now))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn spans_keep_two_units() {
        assert_eq!(span(SignedDuration::from_secs(40)), "40s");
        assert_eq!(span(SignedDuration::from_secs(125)), "2m 5s");
        assert_eq!(span(SignedDuration::from_secs(7500)), "2h 5m");
        assert_eq!(
            span(SignedDuration::from_secs(3 * 86_400 + 4 * 3600 + 7)),
            "3d 4h"
        );
        assert_eq!(span(SignedDuration::from_secs(-7500)), "2h 5m");
    }
}
