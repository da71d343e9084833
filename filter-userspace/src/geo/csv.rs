//! `start_ip,end_ip,CC` range files (ip-location-db, DB-IP country lite).
//!
//! Overlapping ranges are not an error: real files use them for more specific entries, and
//! the later line wins (see `ranges`). Adjacent ranges with the same code are joined before
//! splitting, which saves prefixes without changing any answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_common::territory::{TerritoryId, territory_id};
use ipnet::{Ipv4Subnets, Ipv6Subnets};

use super::cidr::snippet;
use super::error::Reason;
use super::ranges::{Range, resolve};
use super::source::{data_line, lines};
use super::table::{Entry, Loaded};

/// A line's error: the line number and the reason.
pub(crate) type LineError = (u32, Reason);

fn field(s: &str) -> &str {
    let s = s.trim_ascii();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn addr(s: &str) -> Result<IpAddr, Reason> {
    // Dispatching on ':' avoids trying both parsers on every field.
    let parsed = if s.contains(':') {
        s.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    parsed.map_err(|_| Reason::BadAddress(snippet(s)))
}

/// An upper-case two-letter code's id; anything else is rejected, not case-folded, because a
/// lower-case code in a country file is a sign of a different, unchecked format.
pub(crate) fn parse_code(s: &str) -> Result<TerritoryId, Reason> {
    match s.as_bytes() {
        &[a, b] => territory_id([a, b]).ok_or_else(|| Reason::BadCode(snippet(s))),
        _ => Err(Reason::BadCode(snippet(s))),
    }
}

fn parse_line(
    line: &str,
    n: u32,
    v4: &mut Vec<Range<u32>>,
    v6: &mut Vec<Range<u128>>,
) -> Result<(), Reason> {
    let mut cols = line.split(',');
    let (Some(start), Some(end), Some(cc), None) =
        (cols.next(), cols.next(), cols.next(), cols.next())
    else {
        return Err(Reason::Columns(line.split(',').count()));
    };
    let (start, end, cc) = (field(start), field(end), field(cc));
    let (s, e) = (addr(start)?, addr(end)?);
    let id = parse_code(cc)?;
    let after = || Reason::StartAfterEnd {
        start: s.to_string(),
        end: e.to_string(),
    };
    match (s, e) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            let (start, end) = (u32::from(s), u32::from(e));
            if start > end {
                return Err(after());
            }
            v4.push(Range {
                start,
                end,
                id,
                line: n,
            });
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            let (start, end) = (u128::from(s), u128::from(e));
            if start > end {
                return Err(after());
            }
            v6.push(Range {
                start,
                end,
                id,
                line: n,
            });
        }
        _ => {
            return Err(Reason::MixedFamilies {
                start: s.to_string(),
                end: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Parses a whole CSV file into prefixes (`src` is the file's index, stored in each entry).
pub(crate) fn load(data: &[u8], src: u32) -> Result<Loaded, LineError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut rows = 0;
    for (n, line) in lines(data) {
        let Some(line) = data_line(line) else {
            continue;
        };
        let line = std::str::from_utf8(line).map_err(|_| (n, Reason::NotUtf8))?;
        parse_line(line, n, &mut v4, &mut v6).map_err(|r| (n, r))?;
        rows += 1;
    }
    Ok(Loaded {
        rows,
        ..from_ranges(v4, v6, src)
    })
}

/// One file's prefixes from its ranges, as every range format makes them: overlaps resolved
/// (the later line wins), equal neighbours joined, then each range split into CIDRs. The
/// caller fills in the rows it read and skipped.
pub(crate) fn from_ranges(v4: Vec<Range<u32>>, v6: Vec<Range<u128>>, src: u32) -> Loaded {
    let (v4, overlaps4) = resolve(v4);
    let (v6, overlaps6) = resolve(v6);

    let mut out = Loaded {
        overlaps: overlaps4 + overlaps6,
        ..Loaded::default()
    };
    // Real files split to about 1.5 prefixes per range (IPv4) and 2.4 (IPv6).
    out.v4.reserve(v4.len() * 3 / 2);
    out.v6.reserve(v6.len() * 5 / 2);
    for r in &v4 {
        let prefixes = Ipv4Subnets::new(r.start.into(), r.end.into(), 0);
        out.v4.extend(prefixes.map(|prefix| Entry {
            prefix,
            id: r.id,
            src,
            line: r.line,
        }));
    }
    for r in &v6 {
        let prefixes = Ipv6Subnets::new(r.start.into(), r.end.into(), 0);
        out.v6.extend(prefixes.map(|prefix| Entry {
            prefix,
            id: r.id,
            src,
            line: r.line,
        }));
    }
    out
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
