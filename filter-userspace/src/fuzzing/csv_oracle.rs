//! A naive, independent reading of a range CSV that a loader accepted: the territory of an
//! address is that of the last line whose range contains it. The loaded table must give
//! the same answer around every range's bounds.

use std::net::IpAddr;

use filter_common::territory::{TerritoryId, territory_id};

use crate::geo::GeoTable;

/// Checking is quadratic in the rows; bigger inputs only get the table's own checks.
const MAX_ROWS: usize = 64;

struct Row {
    start: IpAddr,
    end: IpAddr,
    id: TerritoryId,
}

fn field(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// The data rows of an accepted file; panics if the loader accepted a row this reading
/// cannot make sense of.
fn rows(data: &[u8]) -> Vec<Row> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut out = Vec::new();
    // Comments need not be UTF-8, so lines are split before decoding.
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let line = std::str::from_utf8(line).expect("an accepted data line is UTF-8");
        let cols: Vec<&str> = line.split(',').map(field).collect();
        let [start, end, code] = cols[..] else {
            panic!("accepted line {line:?} has {} columns", cols.len());
        };
        let parse = |a: &str| {
            a.parse::<IpAddr>()
                .unwrap_or_else(|_| panic!("accepted {a:?}"))
        };
        let code: [u8; 2] = code
            .as_bytes()
            .try_into()
            .expect("accepted a 2-letter code");
        let id = territory_id(code).expect("accepted a valid code");
        out.push(Row {
            start: parse(start),
            end: parse(end),
            id,
        });
    }
    out
}

fn expected(rows: &[Row], addr: IpAddr) -> Option<TerritoryId> {
    let inside = |r: &&Row| match (r.start, r.end, addr) {
        (IpAddr::V4(s), IpAddr::V4(e), IpAddr::V4(a)) => s <= a && a <= e,
        (IpAddr::V6(s), IpAddr::V6(e), IpAddr::V6(a)) => s <= a && a <= e,
        _ => false,
    };
    rows.iter().rev().find(inside).map(|r| r.id)
}

/// Compares the table with the naive reading at each range's bounds and just outside them.
pub(super) fn check(data: &[u8], table: &GeoTable) {
    let rows = rows(data);
    if rows.len() > MAX_ROWS {
        return;
    }
    for row in &rows {
        let probes: Vec<IpAddr> = match (row.start, row.end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => {
                let (s, e) = (u32::from(s), u32::from(e));
                let around = [Some(s), Some(e), s.checked_sub(1), e.checked_add(1)];
                around
                    .into_iter()
                    .flatten()
                    .map(|a| IpAddr::from(a.to_be_bytes()))
                    .collect()
            }
            (IpAddr::V6(s), IpAddr::V6(e)) => {
                let (s, e) = (u128::from(s), u128::from(e));
                let around = [Some(s), Some(e), s.checked_sub(1), e.checked_add(1)];
                around
                    .into_iter()
                    .flatten()
                    .map(|a| IpAddr::from(a.to_be_bytes()))
                    .collect()
            }
            _ => panic!("accepted a range of mixed families"),
        };
        for addr in probes {
            let got = match addr {
                IpAddr::V4(a) => table.lookup_v4(u32::from(a)),
                IpAddr::V6(a) => table.lookup_v6(u128::from(a)),
            };
            assert_eq!(got, expected(&rows, addr), "territory of {addr}");
        }
    }
}
