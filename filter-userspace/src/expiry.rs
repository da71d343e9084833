//! When rules end: `--expires RFC3339` or `--for DURATION`, and the conversion to the
//! kernel's clock.

use std::time::Duration;

use jiff::Timestamp;

/// The longest `--for`: beyond it an expiry is a typo, not an order's end date (and it keeps
/// every duration printable in units of at most 9 digits, as the parser reads them).
const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses `500ms`, `30s`, `15m`, `2h`, `7d`, or a sum like `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("`{text}` is not a duration: expected e.g. 30s, 15m, 2h, 7d, 1h30m or 500ms");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value * 60),
            "h" => Duration::from_secs(value * 3600),
            "d" => Duration::from_secs(value * 86_400),
            _ => return Err(bad()),
        };
        total = total.checked_add(unit).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    if total > MAX_DURATION {
        return Err(format!(
            "`{text}` is longer than 100 years; leave out --for for a rule without an end"
        ));
    }
    if total.is_zero() {
        return Err(format!(
            "`{text}`: a rule that expires at once would do nothing"
        ));
    }
    Ok(total)
}

/// The canonical text of a duration, to the millisecond: largest units first, zero units
/// left out (`1d2h30m`, `1s500ms`); `parse_duration` reads it back.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ];
    let mut rest = ms;
    let mut out = String::new();
    for (size, unit) in units {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Parses an RFC 3339 time, which must lie in the future.
pub fn parse_expiry(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let at: Timestamp = text.parse().map_err(|e| {
        format!("`{text}` is not an RFC 3339 time (e.g. 2026-12-01T18:00:00Z): {e}")
    })?;
    if at <= now {
        return Err(format!("`{text}` is in the past (now is {now})"));
    }
    Ok(at)
}

/// `now + duration`, for `--for`.
pub fn expiry_after(now: Timestamp, duration: Duration) -> Result<Timestamp, String> {
    let span = jiff::SignedDuration::try_from(duration).map_err(|e| e.to_string())?;
    now.checked_add(span)
        .map_err(|e| format!("expiry out of range: {e}"))
}

/// The program's clock now: `CLOCK_MONOTONIC_COARSE`, which `bpf_ktime_get_coarse_ns()`
/// reads.
///
/// Why the coarse clock: the program reads it for every packet a rule with an end time
/// would drop, and a read of the fine clocks (`bpf_ktime_get_boot_ns()` or
/// `bpf_ktime_get_ns()`) costs 35–40 ns on these machines, as much as the rest of the drop
/// path; the coarse one is a load of the time kept at the last tick. It advances once a
/// tick (1–4 ms), so a rule lapses up to a tick after its end time. Unlike
/// `CLOCK_BOOTTIME` it stands still while the system is suspended to RAM: a relay put to
/// sleep would keep its rules for the time it slept. Relays are servers and are not put to
/// sleep.
pub fn kernel_clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; the clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The wall clock and the program's clock read together, so that many expiries are
/// converted against one reading.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: Timestamp,
    kernel_ns: u64,
}

impl Clock {
    pub fn now() -> Clock {
        Clock {
            wall: Timestamp::now(),
            kernel_ns: kernel_clock_ns(),
        }
    }

    /// The wall time of this reading.
    pub fn wall(&self) -> Timestamp {
        self.wall
    }

    /// The program's clock at this reading.
    pub fn kernel_ns(&self) -> u64 {
        self.kernel_ns
    }

    /// The program's clock (`bpf_ktime_get_coarse_ns()`) reading at which wall time `at`
    /// arrives.
    /// A time already past maps to 1, which the kernel treats as expired.
    pub fn kernel_ns_at(&self, at: Timestamp) -> u64 {
        let ahead = at.as_nanosecond() - self.wall.as_nanosecond();
        if ahead <= 0 {
            return 1;
        }
        self.kernel_ns
            .saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "-5s",
            "1.5h",
            "0s",
            "9999999999s",
            "5 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_bounded_by_a_century() {
        assert_eq!(
            parse_duration("36500d"),
            Ok(Duration::from_secs(36_500 * 86_400))
        );
        for long in ["36500d1ms", "36501d", "999999999d999999999d"] {
            let err = parse_duration(long).expect_err(long);
            assert!(err.contains("longer than 100 years"), "{long}: {err}");
        }
    }

    #[test]
    fn formatted_durations_parse_back() {
        for (text, canonical) in [
            ("90m", "1h30m"),
            ("1500ms", "1s500ms"),
            ("25h", "1d1h"),
            ("7d", "7d"),
            ("36500d", "36500d"),
            ("59s1000ms", "1m"),
        ] {
            let d = parse_duration(text).expect(text);
            assert_eq!(format_duration(d), canonical);
            assert_eq!(parse_duration(canonical), Ok(d));
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn expiries() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().expect("now");
        assert!(parse_expiry("2026-11-28T13:00:00Z", now).is_ok());
        assert!(
            parse_expiry("2026-11-28T14:00:00+02:00", now).is_err(),
            "that is now, not later"
        );
        assert!(
            parse_expiry("2026-11-28T11:00:00Z", now)
                .expect_err("past")
                .contains("past")
        );
        assert!(
            parse_expiry("tomorrow", now)
                .expect_err("garbage")
                .contains("RFC 3339")
        );
        let later = expiry_after(now, Duration::from_secs(60)).expect("later");
        assert_eq!(later.to_string(), "2026-11-28T12:01:00Z");
    }

    #[test]
    fn kernel_clock_conversion() {
        let past: Timestamp = "2000-01-01T00:00:00Z".parse().expect("past");
        let clock = Clock::now();
        assert_eq!(clock.kernel_ns_at(past), 1);
        let in_a_minute = expiry_after(Timestamp::now(), Duration::from_secs(60)).expect("t");
        let at = clock.kernel_ns_at(in_a_minute);
        let now = kernel_clock_ns();
        assert!(at > now + 59_000_000_000 && at < now + 61_000_000_000);
    }
}
