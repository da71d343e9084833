//! A territory table written in the publishers' layouts, so that the same table can be
//! loaded from each: ip-location-db `start,end,CC` CSV, GeoLite2 Country CSV (blocks and a
//! locations file) and five RIRs' delegated-extended statistics.

use std::{
    fs::File,
    io::{BufWriter, Write},
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use filter_common::{TerritoryId, territory::territory_code};
use geofence::geo::{GeoTable, NetBits, range_to_cidrs_v4, range_to_cidrs_v6};

/// An inclusive range of addresses (IPv4 in the low 32 bits) and its territory.
type Piece = (u128, u128, TerritoryId);

/// What the table answers, as disjoint ranges: every address a prefix covers gets the
/// territory of the longest prefix covering it; equal neighbours are joined. `prefixes`
/// (first, last, territory) must be in the table's order: by address, a covering prefix
/// before its subnets.
pub fn disjoint(prefixes: impl IntoIterator<Item = Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut push = |start: u128, end: u128, id: TerritoryId| match out.last_mut() {
        Some(last) if last.2 == id && last.1.checked_add(1) == Some(start) => last.1 = end,
        _ => out.push((start, end, id)),
    };
    // The prefixes covering `pos`, innermost last: (last address, territory).
    let mut open: Vec<(u128, TerritoryId)> = Vec::new();
    let mut pos: u128 = 0;
    for (first, last, id) in prefixes {
        while let Some(&(end, top)) = open.last().filter(|(end, _)| *end < first) {
            if pos <= end {
                push(pos, end, top);
            }
            // end < first, so end + 1 does not overflow.
            pos = end + 1;
            open.pop();
        }
        if let Some(&(_, top)) = open.last()
            && pos < first
        {
            push(pos, first - 1, top);
        }
        pos = first;
        open.push((last, id));
    }
    while let Some((end, top)) = open.pop() {
        if pos <= end {
            push(pos, end, top);
        }
        let Some(next) = end.checked_add(1) else {
            break;
        };
        pos = next;
    }
    out
}

/// Both families of `table` as disjoint ranges.
pub fn pieces(table: &GeoTable) -> (Vec<Piece>, Vec<Piece>) {
    let v4 = table
        .v4
        .iter()
        .map(|(p, id)| (u128::from(p.first()), u128::from(p.last()), *id));
    let v6 = table.v6.iter().map(|(p, id)| (p.first(), p.last(), *id));
    (disjoint(v4), disjoint(v6))
}

fn code(id: TerritoryId) -> anyhow::Result<String> {
    let code = territory_code(id).with_context(|| format!("territory id {id} has no code"))?;
    Ok(String::from_utf8_lossy(&code).into_owned())
}

fn v4(n: u128) -> anyhow::Result<Ipv4Addr> {
    Ok(Ipv4Addr::from(
        u32::try_from(n).context("an IPv4 range beyond 32 bits")?,
    ))
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::new(file))
}

/// `start,end,CC` files, one per family.
pub fn write_csv(dir: &Path, v4s: &[Piece], v6s: &[Piece]) -> anyhow::Result<Vec<PathBuf>> {
    let paths = vec![dir.join("table-ipv4.csv"), dir.join("table-ipv6.csv")];
    let mut out = create(&paths[0])?;
    for &(s, e, id) in v4s {
        writeln!(out, "{},{},{}", v4(s)?, v4(e)?, code(id)?)?;
    }
    out.flush()?;
    let mut out = create(&paths[1])?;
    for &(s, e, id) in v6s {
        writeln!(
            out,
            "{},{},{}",
            Ipv6Addr::from(s),
            Ipv6Addr::from(e),
            code(id)?
        )?;
    }
    out.flush()?;
    Ok(paths)
}

/// A made-up GeoNames id per territory.
fn geoname(id: TerritoryId) -> u32 {
    100_000 + u32::from(id)
}

const BLOCKS_HEADER: &str = "network,geoname_id,registered_country_geoname_id,\
represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,is_anycast";

/// GeoLite2 Country CSV: blocks files of CIDRs and a locations file naming each territory.
pub fn write_geolite2(dir: &Path, v4s: &[Piece], v6s: &[Piece]) -> anyhow::Result<Vec<PathBuf>> {
    let paths = vec![
        dir.join("GeoLite2-Country-Blocks-IPv4.csv"),
        dir.join("GeoLite2-Country-Blocks-IPv6.csv"),
        dir.join("GeoLite2-Country-Locations-en.csv"),
    ];
    let mut out = create(&paths[0])?;
    writeln!(out, "{BLOCKS_HEADER}")?;
    for &(s, e, id) in v4s {
        let g = geoname(id);
        for p in range_to_cidrs_v4(u32::from(v4(s)?), u32::from(v4(e)?)) {
            writeln!(out, "{p},{g},{g},,0,0,")?;
        }
    }
    out.flush()?;
    let mut out = create(&paths[1])?;
    writeln!(out, "{BLOCKS_HEADER}")?;
    for &(s, e, id) in v6s {
        let g = geoname(id);
        for p in range_to_cidrs_v6(s, e) {
            writeln!(out, "{p},{g},{g},,0,0,")?;
        }
    }
    out.flush()?;
    let mut ids: Vec<TerritoryId> = v4s.iter().chain(v6s).map(|p| p.2).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = create(&paths[2])?;
    writeln!(
        out,
        "geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,\
         is_in_european_union"
    )?;
    writeln!(out, "6255148,en,EU,Europe,,,0")?;
    for id in ids {
        let cc = code(id)?;
        writeln!(
            out,
            "{},en,EU,Europe,{cc},\"Territory {cc}, bench\",0",
            geoname(id)
        )?;
    }
    out.flush()?;
    Ok(paths)
}

const REGISTRIES: [&str; 5] = ["afrinic", "apnic", "arin", "lacnic", "ripencc"];

/// Delegated-extended statistics of five registries, the ranges dealt out in turn: IPv4
/// as start and count, IPv6 as prefixes.
pub fn write_rir(dir: &Path, v4s: &[Piece], v6s: &[Piece]) -> anyhow::Result<Vec<PathBuf>> {
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); REGISTRIES.len()];
    for (i, &(s, e, id)) in v4s.iter().enumerate() {
        let reg = REGISTRIES[i % REGISTRIES.len()];
        let count = e - s + 1;
        let cc = code(id)?;
        lines[i % REGISTRIES.len()].push(format!(
            "{reg}|{cc}|ipv4|{}|{count}|20260101|allocated|bench-{i}",
            v4(s)?
        ));
    }
    for (i, &(s, e, id)) in v6s.iter().enumerate() {
        let reg = REGISTRIES[i % REGISTRIES.len()];
        let cc = code(id)?;
        for p in range_to_cidrs_v6(s, e) {
            let addr = p.network();
            lines[i % REGISTRIES.len()].push(format!(
                "{reg}|{cc}|ipv6|{addr}|{}|20260101|assigned|bench-{i}",
                p.prefix_len()
            ));
        }
    }
    let mut paths = Vec::new();
    for (reg, lines) in REGISTRIES.iter().zip(lines) {
        let path = dir.join(format!("delegated-{reg}-extended-latest"));
        let mut out = create(&path)?;
        writeln!(
            out,
            "2|{reg}|20260101|{}|19830101|20260101|+0000",
            lines.len()
        )?;
        writeln!(out, "{reg}|*|ipv4|*|{}|summary", lines.len())?;
        writeln!(out, "{reg}||ipv4|0.0.0.0|256||reserved|")?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_follows_the_longest_prefix() {
        // 0-99 A, inside it 10-19 B and inside that 12-13 C; then 100-109 A again; 200-255 B.
        let got = disjoint([
            (0, 99, 1),
            (10, 19, 2),
            (12, 13, 3),
            (100, 109, 1),
            (200, 255, 2),
        ]);
        assert_eq!(
            got,
            [
                (0, 9, 1),
                (10, 11, 2),
                (12, 13, 3),
                (14, 19, 2),
                (20, 109, 1),
                (200, 255, 2)
            ]
        );
        assert_eq!(
            disjoint([(0, u128::MAX, 5), (u128::MAX, u128::MAX, 6)]),
            [(0, u128::MAX - 1, 5), (u128::MAX, u128::MAX, 6)]
        );
    }
}
