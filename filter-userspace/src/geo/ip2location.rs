//! IP2Location LITE DB1 CSV, as published: `"ip_from","ip_to","country_code","country_name"`
//! with addresses as decimal numbers (the larger DBn editions add columns after these and
//! read the same). The IPv6 edition numbers 128-bit addresses and carries IPv4 as IPv4-mapped
//! ranges (`::ffff:0:0/96`), which become IPv4 ranges here, so that either edition, or both,
//! gives IPv4 sources their territory. `-` is the code for "unknown": skipped and counted.

use filter_common::territory::TerritoryId;

use super::cidr::snippet;
use super::csv::{LineError, from_ranges, parse_code};
use super::error::Reason;
use super::quoted::split;
use super::ranges::Range;
use super::source::{data_line, lines};
use super::table::Loaded;

/// `::ffff:0.0.0.0`, the first IPv4-mapped address.
const MAPPED: u128 = 0xffff << 32;
/// `::ffff:255.255.255.255`.
const MAPPED_LAST: u128 = MAPPED | u32::MAX as u128;

/// An address written as a decimal number.
fn decimal(text: &str) -> Result<u128, Reason> {
    let bad = || Reason::BadDecimal(snippet(text));
    // u128::from_str would accept a sign; 39 digits hold 2^128 - 1.
    if text.is_empty() || text.len() > 39 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// Whether a line's first field is that of the header (`ip_from,ip_to,...`) some
/// downloads carry.
pub(crate) fn is_header(first_field: &str) -> bool {
    first_field.trim_ascii().trim_matches('"') == "ip_from"
}

/// One row: its bounds, and its territory (`None` for `-`).
fn row<'a>(
    line: &'a str,
    fields: &mut Vec<&'a str>,
) -> Result<(u128, u128, Option<TerritoryId>), Reason> {
    split(line, fields)?;
    let [from, to, cc, ..] = fields[..] else {
        return Err(Reason::ColumnCount {
            expected: "at least 3 (ip_from, ip_to, country_code)".into(),
            found: fields.len(),
        });
    };
    let (start, end) = (decimal(from)?, decimal(to)?);
    if start > end {
        return Err(Reason::StartAfterEnd {
            start: from.to_owned(),
            end: to.to_owned(),
        });
    }
    let id = match cc {
        "-" => None,
        cc => Some(parse_code(cc)?),
    };
    Ok((start, end, id))
}

/// Parses a whole file into prefixes (`src` is the file's index, stored in each entry).
pub(crate) fn load(data: &[u8], src: u32) -> Result<Loaded, LineError> {
    let mut read: Vec<Range<u128>> = Vec::new();
    let (mut rows, mut skipped) = (0, 0);
    // Which edition this is shows only in the numbers: any above 2^32 - 1 is IPv6.
    let mut wide = false;
    let mut fields = Vec::new();
    // Only the first data line may be the header.
    let mut first = true;
    for (n, line) in lines(data) {
        let Some(line) = data_line(line) else {
            continue;
        };
        let line = std::str::from_utf8(line).map_err(|_| (n, Reason::NotUtf8))?;
        if std::mem::take(&mut first) && line.split(',').next().is_some_and(is_header) {
            continue;
        }
        let (start, end, id) = row(line, &mut fields).map_err(|r| (n, r))?;
        rows += 1;
        wide |= end > u128::from(u32::MAX);
        match id {
            Some(id) => read.push(Range {
                start,
                end,
                id,
                line: n,
            }),
            None => skipped += 1,
        }
    }
    let (v4, v6) = if wide {
        split_mapped(read)
    } else {
        // Every bound fits: the IPv4 edition.
        let v4 = read.into_iter().filter_map(|r| narrow(r, 0)).collect();
        (v4, Vec::new())
    };
    Ok(Loaded {
        rows,
        skipped,
        ..from_ranges(v4, v6, src)
    })
}

/// `r` less `base` as an IPv4 range, if it lies within `base..=base + 2^32 - 1`.
fn narrow(r: Range<u128>, base: u128) -> Option<Range<u32>> {
    let start = u32::try_from(r.start.checked_sub(base)?).ok()?;
    let end = u32::try_from(r.end.checked_sub(base)?).ok()?;
    Some(Range {
        start,
        end,
        id: r.id,
        line: r.line,
    })
}

/// The IPv6 edition's ranges: the IPv4-mapped part of each as IPv4, the rest as IPv6.
fn split_mapped(read: Vec<Range<u128>>) -> (Vec<Range<u32>>, Vec<Range<u128>>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::with_capacity(read.len()));
    for r in read {
        if r.start < MAPPED {
            v6.push(Range {
                end: r.end.min(MAPPED - 1),
                ..r
            });
        }
        if r.start <= MAPPED_LAST && r.end >= MAPPED {
            let mapped = Range {
                start: r.start.max(MAPPED),
                end: r.end.min(MAPPED_LAST),
                ..r
            };
            v4.extend(narrow(mapped, MAPPED));
        }
        if r.end > MAPPED_LAST {
            v6.push(Range {
                start: r.start.max(MAPPED_LAST + 1),
                ..r
            });
        }
    }
    (v4, v6)
}

#[cfg(test)]
#[path = "ip2location_tests.rs"]
mod tests;
