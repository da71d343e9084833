//! The RIRs' delegated statistics files (`delegated-<rir>-extended-latest`, the plain
//! `delegated-<rir>-latest`, and the NRO's combined file), as published:
//! `registry|cc|type|start|value|date|status[|opaque-id[|...]]`.
//!
//! A version line (`2|ripencc|20250101|...`, first in each file, so also in the middle of
//! files joined with `cat`) and summary lines (`ripencc|*|ipv4|*|12345|summary`) are not
//! records; `asn` records carry no addresses. An `ipv4` record's value counts addresses and
//! need not be a power of two; an `ipv6` record's is a prefix length. Space that is
//! `available` or `reserved`, or has no country (empty or `ZZ`), is skipped and counted.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::territory::TerritoryId;
use ipnet::Ipv6Net;

use super::cidr::{NetBits, PrefixParseError, snippet};
use super::csv::{LineError, from_ranges, parse_code};
use super::error::Reason;
use super::ranges::Range;
use super::source::{data_line, lines};
use super::table::Loaded;

/// A version line's first field: a version number such as `2` or `2.3`.
pub(crate) fn is_version(field: &str) -> bool {
    !field.is_empty()
        && field.starts_with(|c: char| c.is_ascii_digit())
        && field.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// What one line is.
enum Line {
    /// A version, summary or `asn` line.
    NotRecord,
    /// Address space without a country: available, reserved, or no code.
    Skipped,
    V4(Range<u32>),
    V6(Range<u128>),
}

fn digits(text: &str, max_len: usize) -> bool {
    !text.is_empty() && text.len() <= max_len && text.bytes().all(|b| b.is_ascii_digit())
}

fn v4_range(start: &str, value: &str, id: TerritoryId, n: u32) -> Result<Range<u32>, Reason> {
    let addr: Ipv4Addr = start
        .parse()
        .map_err(|_| Reason::BadAddress(snippet(start)))?;
    let bad = || Reason::BadCount(snippet(value));
    let count: u64 = if digits(value, 10) {
        value.parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    if count == 0 || count > 1 << 32 {
        return Err(bad());
    }
    let start = u32::from(addr);
    let end = u32::try_from(u64::from(start) + count - 1).map_err(|_| Reason::PastEnd {
        start: addr.to_string(),
        count,
    })?;
    Ok(Range {
        start,
        end,
        id,
        line: n,
    })
}

fn v6_range(start: &str, value: &str, id: TerritoryId, n: u32) -> Result<Range<u128>, Reason> {
    let addr: Ipv6Addr = start
        .parse()
        .map_err(|_| Reason::BadAddress(snippet(start)))?;
    let len = Some(value)
        .filter(|v| digits(v, 3))
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|&l| l <= Ipv6Net::MAX_LEN)
        .ok_or_else(|| {
            Reason::BadPrefix(PrefixParseError::BadLength {
                len: snippet(value),
                max: Ipv6Net::MAX_LEN,
            })
        })?;
    let text = || format!("{addr}/{len}");
    let prefix = Ipv6Net::from_bits(addr.into(), len).ok_or_else(|| {
        Reason::BadPrefix(PrefixParseError::HostBits {
            text: text(),
            network: Ipv6Net::network_of(addr.into(), len).to_string(),
        })
    })?;
    if len == 0 {
        return Err(Reason::CoversEverything(text()));
    }
    Ok(Range {
        start: prefix.first(),
        end: prefix.last(),
        id,
        line: n,
    })
}

/// Fields read of a line; the opaque id and extensions after them are not.
const READ: usize = 7;

fn parse_line(line: &str, n: u32) -> Result<Line, Reason> {
    // A fixed array rather than a Vec: no allocation on each of a million lines.
    let mut f = [""; READ];
    let mut found = 0;
    for (i, field) in line.split('|').enumerate() {
        if let Some(slot) = f.get_mut(i) {
            *slot = field;
        }
        found = i + 1;
    }
    if is_version(f[0]) || (found >= 6 && f[5] == "summary") {
        return Ok(Line::NotRecord);
    }
    let [_registry, cc, kind, start, value, _date, status] = f;
    if found < READ {
        return Err(Reason::ColumnCount {
            expected: "at least 7 (registry|cc|type|start|value|date|status)".into(),
            found,
        });
    }
    match kind {
        "asn" => return Ok(Line::NotRecord),
        "ipv4" | "ipv6" => {}
        other => return Err(Reason::RirType(snippet(other))),
    }
    match status {
        "allocated" | "assigned" => {}
        "available" | "reserved" => return Ok(Line::Skipped),
        other => return Err(Reason::RirStatus(snippet(other))),
    }
    let id = match cc {
        "" | "ZZ" => return Ok(Line::Skipped),
        cc => parse_code(cc)?,
    };
    Ok(if kind == "ipv4" {
        Line::V4(v4_range(start, value, id, n)?)
    } else {
        Line::V6(v6_range(start, value, id, n)?)
    })
}

/// Parses a whole file into prefixes (`src` is the file's index, stored in each entry).
pub(crate) fn load(data: &[u8], src: u32) -> Result<Loaded, LineError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let (mut rows, mut skipped) = (0, 0);
    for (n, line) in lines(data) {
        let Some(line) = data_line(line) else {
            continue;
        };
        let line = std::str::from_utf8(line).map_err(|_| (n, Reason::NotUtf8))?;
        match parse_line(line, n).map_err(|r| (n, r))? {
            Line::NotRecord => continue,
            Line::Skipped => skipped += 1,
            Line::V4(r) => v4.push(r),
            Line::V6(r) => v6.push(r),
        }
        rows += 1;
    }
    Ok(Loaded {
        rows,
        skipped,
        ..from_ranges(v4, v6, src)
    })
}

#[cfg(test)]
#[path = "rir_tests.rs"]
mod tests;
