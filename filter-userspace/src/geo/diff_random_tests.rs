//! Tables too large to check by hand: random ones against a brute-force count and the
//! flattened arrays, and the real table when `../shared/geo` is there.

use std::collections::HashMap;

use ipnet::{Ipv4Net, Ipv6Net};

use super::tests::id;
use super::*;
use crate::geo::{FlatV6, NetBits, flat};

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Nested prefixes inside 10.0.0.0/20 (lengths 20 to 32) of three territories.
fn random_small_table(rng: &mut Rng) -> GeoTable {
    let mut t = GeoTable::default();
    for _ in 0..rng.below(12) {
        let len = 20 + rng.below(13) as u8;
        let addr = 0x0a00_0000 | (rng.next() as u32 & 0xfff);
        let prefix = Ipv4Net::network_of(addr, len);
        t.v4.push((prefix, 1 + rng.below(3) as TerritoryId));
    }
    t.v4.sort_by_key(|e| e.0);
    t.v4.dedup_by_key(|e| e.0);
    t
}

#[test]
fn moves_match_a_brute_force_count() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..100 {
        let (old, new) = (random_small_table(&mut rng), random_small_table(&mut rng));
        let mut want: HashMap<(TerritoryId, TerritoryId), u128> = HashMap::new();
        for a in 0x0a00_0000u32..0x0a00_1000 {
            let from = old.lookup_v4(a).unwrap_or(TERRITORY_UNKNOWN);
            let to = new.lookup_v4(a).unwrap_or(TERRITORY_UNKNOWN);
            if from != to {
                *want.entry((from, to)).or_default() += 1;
            }
        }
        let c = Change::of(&diff(&Ranges::of_table(&old), &Ranges::of_table(&new)), &[]);
        let got: HashMap<(TerritoryId, TerritoryId), u128> =
            c.v4.moves
                .iter()
                .map(|m| ((m.from, m.to), m.count.addresses))
                .collect();
        assert_eq!(got, want, "{old:?} → {new:?}");
        assert_eq!(c.v4.total.addresses, want.values().sum::<u128>());
        assert!(
            c.v4.moves
                .windows(2)
                .all(|w| w[0].count.addresses >= w[1].count.addresses)
        );
    }
}

/// Prefixes anywhere, nested, both families.
fn random_table(rng: &mut Rng, n: usize) -> GeoTable {
    let mut t = GeoTable::default();
    for _ in 0..n {
        let len = 1 + rng.below(32) as u8;
        let region = [0x0a00_0000u32, 0xc000_0200, 0xffff_ff00, 0][rng.below(4) as usize];
        let addr = region ^ (rng.next() as u32 >> rng.below(32));
        let prefix = Ipv4Net::network_of(addr, len);
        t.v4.push((prefix, rng.below(40) as TerritoryId + 1));
        let len = 1 + rng.below(128) as u8;
        let region = [0x2001_0db8u128 << 96, u128::MAX, 0][rng.below(3) as usize];
        let high = u128::from(rng.next()) << 64 | u128::from(rng.next());
        let addr = region ^ (high >> rng.below(128));
        let prefix = Ipv6Net::network_of(addr, len);
        t.v6.push((prefix, rng.below(40) as TerritoryId + 1));
    }
    t.v4.sort_by_key(|e| e.0);
    t.v4.dedup_by_key(|e| e.0);
    t.v6.sort_by_key(|e| e.0);
    t.v6.dedup_by_key(|e| e.0);
    t
}

#[test]
fn the_flattened_arrays_read_back_as_the_table() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..24 {
        let t = random_table(&mut rng, 1 + round * 30);
        let built = flat::build(&t).expect("fits");
        let want = Ranges::of_table(&t);
        assert_eq!(Ranges::of_flat(built.v4.view(), built.v6.view()), want);
        // The kernel's arrays are longer than the table, zeros after it.
        let mut v6 = built.v6.clone();
        v6.starts_hi.resize(v6.starts_hi.len() + 9, 0);
        v6.starts_lo.resize(v6.starts_lo.len() + 9, 0);
        v6.territories.resize(v6.territories.len() + 3, [0; 4]);
        assert_eq!(Ranges::of_flat(built.v4.view(), v6.view()), want);
        for (addr, _) in want.v4.starts() {
            let a = *addr as u32;
            assert_eq!(want.v4.lookup(*addr), built.v4.view().lookup(a));
        }
    }
    // Never loaded: every address unknown.
    let empty = flat::build(&GeoTable::default()).expect("fits");
    let zeros = FlatV6 {
        starts_hi: vec![0; 8],
        starts_lo: vec![0; 8],
        territories: vec![[0; 4]; 2],
        ..empty.v6.clone()
    };
    assert_eq!(
        Ranges::of_flat(empty.v4.view(), zeros.view()),
        Ranges::empty()
    );
}

fn real_geo_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/geo"));
    let present = [
        "geo-whois-asn-country-ipv4.csv",
        "geo-whois-asn-country-ipv6.csv",
        "geo-whois-asn-country.mmdb",
    ]
    .iter()
    .all(|f| dir.join(f).is_file());
    if !present {
        eprintln!("skipping the real-data diff: ../shared/geo absent");
    }
    present.then_some(dir)
}

#[test]
fn a_changed_real_table_diffs_where_it_changed() {
    use std::time::Instant;
    let Some(dir) = real_geo_dir() else { return };
    let csvs = [
        dir.join("geo-whois-asn-country-ipv4.csv"),
        dir.join("geo-whois-asn-country-ipv6.csv"),
    ];
    let old = crate::geo::load_files(&csvs, crate::geo::Format::Auto, None).expect("CSVs");
    // Every 1000th IPv4 prefix moves to XZ, every 1000th IPv6 prefix leaves the table.
    let mut new = old.clone();
    for (_, id) in new.v4.iter_mut().step_by(1000) {
        *id = self::id("XZ");
    }
    let mut i = 0;
    new.v6.retain(|_| {
        i += 1;
        i % 1000 != 1
    });
    let started = Instant::now();
    let (a, b) = (Ranges::of_table(&old), Ranges::of_table(&new));
    let runs = started.elapsed();
    let started = Instant::now();
    let d = diff(&a, &b);
    let c = Change::of(&d, &[]);
    let walk = started.elapsed();
    let built = flat::build(&old).expect("fits");
    let started = Instant::now();
    let back = Ranges::of_flat(built.v4.view(), built.v6.view());
    let read_back = started.elapsed();
    eprintln!(
        "real table: {} + {} runs ({runs:?}); changed copy: {} + {} segments, {} ({walk:?}); \
         runs read back from the flattened arrays in {read_back:?}",
        a.v4.starts().len(),
        a.v6.starts().len(),
        d.v4.len(),
        d.v6.len(),
        amount_text(&c.v4.total, &c.v6.total),
    );
    assert_eq!(back, a, "the flattened table reads back as the table");
    assert!(!d.v4.is_empty() && !d.v6.is_empty());
    assert!(c.v4.moves.iter().all(|m| m.to == self::id("XZ")));
    assert!(c.v6.moves.iter().all(|m| m.to == TERRITORY_UNKNOWN));
    // Each segment holds what both tables say at its ends, and is maximal: just outside
    // it the tables agree, or another segment with other territories begins.
    let v4 = |t: &GeoTable, a: u128| t.lookup_v4(a as u32).unwrap_or(TERRITORY_UNKNOWN);
    let v6 = |t: &GeoTable, a: u128| t.lookup_v6(a).unwrap_or(TERRITORY_UNKNOWN);
    for (segs, look) in [
        (&d.v4, &v4 as &dyn Fn(&GeoTable, u128) -> TerritoryId),
        (&d.v6, &v6),
    ] {
        for (k, seg) in segs.iter().enumerate() {
            for addr in [seg.first, seg.last] {
                assert_eq!(
                    (look(&old, addr), look(&new, addr)),
                    (seg.from, seg.to),
                    "{seg:?}"
                );
            }
            if let Some(before) = seg.first.checked_sub(1) {
                let pair = (look(&old, before), look(&new, before));
                let joined = k > 0 && segs[k - 1].last == before;
                assert!(
                    pair.0 == pair.1 || joined && pair != (seg.from, seg.to),
                    "{seg:?}"
                );
            }
        }
    }
}
