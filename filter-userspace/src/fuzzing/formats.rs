//! The bodies of the fuzz targets of the publishers' layouts: IP2Location, the RIRs'
//! statistics and GeoLite2 CSV (with their zip archives). Besides the table's own checks,
//! an accepted input is read again naively, each row on its own, and the table must agree
//! with that reading around every row's bounds: the last row containing an address wins.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::territory::{TerritoryId, territory_id};

use crate::geo::{Format, GeoTable};

/// Checking is quadratic in the rows; bigger inputs only get the table's own checks.
const MAX_ROWS: usize = 64;

/// One row as the naive reading sees it: an inclusive range of numbers, IPv4 (`v6` false,
/// within 32 bits) or IPv6, and its territory.
pub(super) struct Row {
    pub v6: bool,
    pub start: u128,
    pub end: u128,
    pub id: TerritoryId,
}

/// The code of an accepted row; panics if the loader accepted one this reading rejects.
pub(super) fn code(text: &str) -> TerritoryId {
    let code: [u8; 2] = text
        .as_bytes()
        .try_into()
        .expect("accepted a 2-letter code");
    territory_id(code).expect("accepted a valid code")
}

/// Compares `lookup(v6, number)` with the last row containing the number, at each row's
/// bounds, just outside them, and at `extra` probes.
pub(super) fn check_rows(
    rows: &[Row],
    extra: &[(bool, u128)],
    lookup: impl Fn(bool, u128) -> Option<TerritoryId>,
) {
    if rows.len() > MAX_ROWS {
        return;
    }
    let mut probes: Vec<(bool, u128)> = extra.to_vec();
    for r in rows {
        let max = if r.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        let around = [Some(r.start), Some(r.end), r.start.checked_sub(1)];
        probes.extend(around.into_iter().flatten().map(|n| (r.v6, n)));
        if r.end < max {
            probes.push((r.v6, r.end + 1));
        }
    }
    for (v6, n) in probes {
        let expected = rows
            .iter()
            .rev()
            .find(|r| r.v6 == v6 && r.start <= n && n <= r.end)
            .map(|r| r.id);
        assert_eq!(lookup(v6, n), expected, "territory of {n:#x} (IPv6: {v6})");
    }
}

/// The table's answer for an IPv4 (`v6` false) or IPv6 address number.
pub(super) fn lookup(table: &GeoTable, v6: bool, n: u128) -> Option<TerritoryId> {
    if v6 {
        table.lookup_v6(n)
    } else {
        table.lookup_v4(u32::try_from(n).expect("an IPv4 probe"))
    }
}

/// The data lines of an accepted text file, decoded.
pub(super) fn data_lines(data: &[u8]) -> impl Iterator<Item = &str> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    data.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            return None;
        }
        Some(std::str::from_utf8(line).expect("an accepted data line is UTF-8"))
    })
}

const MAPPED: u128 = 0xffff << 32;
const MAPPED_LAST: u128 = MAPPED | 0xffff_ffff;

/// IP2Location LITE: the rows in IP2Location's numbering, where IPv4 is either the whole
/// space (the IPv4 edition) or `::ffff:0:0/96` (the IPv6 edition, told by any number
/// above 32 bits).
pub fn geo_ip2location(data: &[u8]) -> bool {
    let Ok(table) = super::load(data, Format::Ip2location, None) else {
        return false;
    };
    let mut rows = Vec::new();
    for (i, line) in data_lines(data).enumerate() {
        // The first three fields of an accepted row hold neither commas nor quotes.
        let mut fields = line.split(',').map(|f| f.trim_ascii().trim_matches('"'));
        let from = fields.next().unwrap_or_default();
        // The loader skips the header without reading further.
        if i == 0 && from == "ip_from" {
            continue;
        }
        let (Some(to), Some(cc)) = (fields.next(), fields.next()) else {
            panic!("accepted row {line:?}");
        };
        let number = |f: &str| f.parse::<u128>().expect("accepted a decimal address");
        let (start, end) = (number(from), number(to));
        rows.push((start, end, (cc != "-").then(|| code(cc))));
    }
    let wide = rows.iter().any(|&(_, end, _)| end > u128::from(u32::MAX));
    let rows: Vec<Row> = rows
        .into_iter()
        .filter_map(|(start, end, id)| {
            Some(Row {
                v6: wide,
                start,
                end,
                id: id?,
            })
        })
        .collect();
    let extra = [MAPPED - 1, MAPPED, MAPPED_LAST, MAPPED_LAST + 1].map(|n| (wide, n));
    check_rows(&rows, if wide { &extra } else { &[] }, |v6, n| {
        if v6 && (MAPPED..=MAPPED_LAST).contains(&n) {
            lookup(&table, false, n - MAPPED)
        } else {
            lookup(&table, v6, n)
        }
    });
    true
}

/// The RIRs' delegated statistics: records of allocated or assigned space with a country.
pub fn geo_rir(data: &[u8]) -> bool {
    let Ok(table) = super::load(data, Format::Rir, None) else {
        return false;
    };
    let mut rows = Vec::new();
    for line in data_lines(data) {
        let f: Vec<&str> = line.split('|').collect();
        // A version number, such as 2 or 2.3.
        let version = f[0].starts_with(|c: char| c.is_ascii_digit())
            && f[0].chars().all(|c| c.is_ascii_digit() || c == '.');
        if version || f.get(5) == Some(&"summary") || f.get(2) == Some(&"asn") {
            continue;
        }
        let [_, cc, kind, start, value, _, status, ..] = f[..] else {
            panic!("accepted record {line:?}");
        };
        if !matches!(status, "allocated" | "assigned") || matches!(cc, "" | "ZZ") {
            continue;
        }
        let row = if kind == "ipv4" {
            let start = u32::from(start.parse::<Ipv4Addr>().expect("accepted an address"));
            let count: u128 = value.parse().expect("accepted a count");
            let start = u128::from(start);
            Row {
                v6: false,
                start,
                end: start + count - 1,
                id: code(cc),
            }
        } else {
            let start = u128::from(start.parse::<Ipv6Addr>().expect("accepted an address"));
            let len: u32 = value.parse().expect("accepted a prefix length");
            Row {
                v6: true,
                start,
                end: start | u128::MAX.checked_shr(len).unwrap_or(0),
                id: code(cc),
            }
        };
        rows.push(row);
    }
    check_rows(&rows, &[], |v6, n| lookup(&table, v6, n));
    true
}
