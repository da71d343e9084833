//! Tests on the real country data in `../shared/geo` (skipped when it is absent).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use ipnet::{Ipv4Net, Ipv6Net};

use super::*;

fn geo_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/geo"));
    let present = [
        "geo-whois-asn-country-ipv4.csv",
        "geo-whois-asn-country-ipv6.csv",
        "geo-whois-asn-country.mmdb",
    ]
    .iter()
    .all(|f| dir.join(f).is_file());
    if !present {
        eprintln!("skipping: ../shared/geo absent");
    }
    present.then_some(dir)
}

fn csvs(dir: &std::path::Path) -> Vec<PathBuf> {
    vec![
        dir.join("geo-whois-asn-country-ipv4.csv"),
        dir.join("geo-whois-asn-country-ipv6.csv"),
    ]
}

/// Prefixes from splitting every row on its own, ignoring overlaps between rows.
fn per_row_split(path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let addr = |s: &str| s.parse::<IpAddr>().unwrap();
    text.lines()
        .map(|l| {
            let mut f = l.split(',');
            match (addr(f.next().unwrap()), addr(f.next().unwrap())) {
                (IpAddr::V4(s), IpAddr::V4(e)) => range_to_cidrs_v4(s.into(), e.into()).len(),
                (IpAddr::V6(s), IpAddr::V6(e)) => range_to_cidrs_v6(s.into(), e.into()).len(),
                _ => panic!("mixed row {l}"),
            }
        })
        .sum()
}

#[test]
fn real_csv_counts_and_load_time() {
    let Some(dir) = geo_dir() else { return };
    let start = Instant::now();
    let t = load_files(&csvs(&dir), Format::Auto, None).unwrap();
    let took = start.elapsed();
    eprintln!(
        "loaded both real CSVs in {took:?}: {} IPv4 + {} IPv6 prefixes",
        t.v4.len(),
        t.v6.len()
    );
    let rows: Vec<_> = t
        .sources
        .iter()
        .map(|s| (s.format, s.rows, s.overlaps, s.v4_prefixes, s.v6_prefixes))
        .collect();
    // The files overlap (6,825 and 703 rows lie at least partly inside an earlier row); resolved by the
    // later line, they give exactly the publisher's MMDB (see the next test).
    assert_eq!(
        rows,
        [
            (Format::Csv, 334_373, 6_825, 494_271, 0),
            (Format::Csv, 216_295, 703, 0, 516_614)
        ]
    );
    assert_eq!((t.v4.len(), t.v6.len()), (494_271, 516_614));
    assert!(t.territories().len() > 200);
    // Splitting each row alone, overlaps and all, would give these (not a valid table: 13
    // IPv4 and 1 IPv6 prefixes come out twice with different codes).
    let paths = csvs(&dir);
    assert_eq!(
        (per_row_split(&paths[0]), per_row_split(&paths[1])),
        (493_646, 516_533)
    );
}

/// A sample of addresses: the ends and a point inside of pseudo-random table entries, and
/// random addresses (most IPv4 ones are covered, most IPv6 ones are not).
fn sample(t: &GeoTable) -> (Vec<u32>, Vec<u128>) {
    let mut x = 0x853c_49e6_748f_ea9bu64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let (p, _) = t.v4[next() as usize % t.v4.len()];
        let inside = p.first() + (next() as u32 & !Ipv4Net::mask(p.prefix_len()));
        v4.extend([p.first(), p.last(), inside, next() as u32]);
        let (p, _) = t.v6[next() as usize % t.v6.len()];
        let inside = p.first()
            + ((u128::from(next()) << 64 | u128::from(next())) & !Ipv6Net::mask(p.prefix_len()));
        v6.extend([
            p.first(),
            p.last(),
            inside,
            u128::from(next()) << 64 | u128::from(next()),
        ]);
    }
    (v4, v6)
}

#[test]
fn real_mmdb_agrees_with_csv() {
    let Some(dir) = geo_dir() else { return };
    let path = dir.join("geo-whois-asn-country.mmdb");
    let start = Instant::now();
    let mmdb = load_files(std::slice::from_ref(&path), Format::Auto, None).unwrap();
    let s = &mmdb.sources[0];
    eprintln!(
        "loaded the real mmdb in {:?}: {} networks, {} skipped, {} IPv4 + {} IPv6 prefixes",
        start.elapsed(),
        s.rows,
        s.skipped,
        mmdb.v4.len(),
        mmdb.v6.len()
    );
    assert_eq!(s.format, Format::Mmdb);
    let csv = load_files(&csvs(&dir), Format::Auto, None).unwrap();
    let reader = maxminddb::Reader::open_readfile(&path).unwrap();
    #[derive(serde::Deserialize)]
    struct Flat<'a> {
        country_code: &'a str,
    }
    let direct = |ip: IpAddr| {
        let r: Option<Flat<'_>> = reader.lookup(ip).ok();
        r.map(|r| r.country_code.to_owned())
    };
    let (v4, v6) = sample(&csv);
    let mut covered = 0;
    for a in v4 {
        let got = mmdb.lookup_v4(a);
        assert_eq!(got, csv.lookup_v4(a), "{}", Ipv4Addr::from(a));
        assert_eq!(
            got.map(error::code),
            direct(Ipv4Addr::from(a).into()),
            "{}",
            Ipv4Addr::from(a)
        );
        covered += usize::from(got.is_some());
    }
    for a in v6 {
        let got = mmdb.lookup_v6(a);
        assert_eq!(got, csv.lookup_v6(a), "{}", Ipv6Addr::from(a));
        assert_eq!(
            got.map(error::code),
            direct(Ipv6Addr::from(a).into()),
            "{}",
            Ipv6Addr::from(a)
        );
        covered += usize::from(got.is_some());
    }
    assert!(covered > 6000, "only {covered} sampled addresses covered");
    // Beyond the sample: resolving the CSVs' overlaps by the later line yields the very
    // tree the publisher built.
    assert!(csv.v4 == mmdb.v4, "IPv4 tables differ");
    assert!(csv.v6 == mmdb.v6, "IPv6 tables differ");
    // 6to4 space holds a genuine record in this snapshot; IPv4-mapped space must hold none.
    assert!(csv.lookup_v6(0x2002_05a0_3602 << 80).is_some());
    assert_eq!(
        mmdb.lookup_v6(0x2002_05a0_3602 << 80),
        csv.lookup_v6(0x2002_05a0_3602 << 80)
    );
    assert!(!mmdb.v6.iter().any(|(p, _)| p.first() >> 32 == 0xffff));
}

#[test]
fn nearly_all_real_ipv6_leaves_are_packed() {
    use filter_common::geo::{V6_DIRECT, V6_LEAF_SHIFT, V6_NODE, V6_PACKED};
    let Some(dir) = geo_dir() else { return };
    let t = load_files(&csvs(&dir), Format::Auto, None).unwrap();
    let v6 = super::flat::build_v6(&t.v6).unwrap();
    // (leaves, ranges) packed and over the range arrays.
    let (mut packed, mut wide) = ((0, 0), (0, 0));
    let entries = v6
        .index
        .as_flattened()
        .iter()
        .chain(v6.nodes.as_flattened());
    for &entry in entries.filter(|&&e| e & (V6_DIRECT | V6_NODE) == 0) {
        let count = ((entry & !V6_PACKED) >> V6_LEAF_SHIFT) as usize + 1;
        let tally = if entry & V6_PACKED != 0 {
            &mut packed
        } else {
            &mut wide
        };
        *tally = (tally.0 + 1, tally.1 + count);
    }
    eprintln!("packed leaves and ranges {packed:?}, over the range arrays {wide:?}");
    assert_eq!(packed.1, v6.packed.len());
    // Few real prefixes are longer than a leaf's piece plus 54 bits: 98% of its ranges pack.
    assert!(wide.1 * 40 < packed.1, "{wide:?} not packed");
}
