//! The territory tables the bench measures with: the real one from `../shared/geo` (or a
//! synthetic one of the same size and prefix-length mix when it is absent), random subsets
//! of it, and source addresses drawn at random from a table.

use std::{net::Ipv6Addr, path::Path};

use anyhow::Context as _;
use filter_common::{Address, TerritoryId, territory::territory_id};
use geofence::geo::{self, Format, GeoTable, NetBits};
use ipnet::{Ipv4Net, Ipv6Net};

/// The real table's file names in the geo directory.
pub const REAL_FILES: [&str; 2] = [
    "geo-whois-asn-country-ipv4.csv",
    "geo-whois-asn-country-ipv6.csv",
];

/// The real table's size once its ranges are split; the synthetic table matches it.
pub const REAL_V4: usize = 493_644;
pub const REAL_V6: usize = 516_533;

/// A small, fast, reproducible generator (SplitMix64): the bench needs the same draws on
/// every run, not cryptographic randomness.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    pub fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    /// An index drawn with the given weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.below(total as usize) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Where the table came from, for the report.
pub struct Source {
    pub table: GeoTable,
    /// `None` for the real data; else why and what was used instead.
    pub synthetic: Option<String>,
}

/// The real table from `geo_dir`, or a synthetic one of the same size when it is absent.
pub fn load(geo_dir: &Path, rng: &mut Rng) -> anyhow::Result<Source> {
    let paths: Vec<_> = REAL_FILES.iter().map(|f| geo_dir.join(f)).collect();
    if paths.iter().all(|p| p.is_file()) {
        let table = geo::load_files(&paths, Format::Csv, None)
            .with_context(|| format!("loading the real table from {}", geo_dir.display()))?;
        return Ok(Source {
            table,
            synthetic: None,
        });
    }
    Ok(Source {
        table: synthetic(REAL_V4, REAL_V6, rng),
        synthetic: Some(format!(
            "{} not found: SYNTHETIC table ({REAL_V4} IPv4 + {REAL_V6} IPv6 random prefixes \
             with a registry-like length mix), not the real data",
            geo_dir.display()
        )),
    })
}

/// Prefix lengths and their weights, roughly as RIR delegation data splits into CIDRs: most
/// IPv4 prefixes are /24 to /19, most IPv6 ones /48, /32, /44 and /29.
const V4_LENGTHS: [(u8, u32); 25] = [
    (8, 1),
    (9, 1),
    (10, 2),
    (11, 4),
    (12, 10),
    (13, 20),
    (14, 40),
    (15, 70),
    (16, 300),
    (17, 150),
    (18, 250),
    (19, 500),
    (20, 900),
    (21, 1000),
    (22, 1800),
    (23, 1500),
    (24, 3400),
    (25, 20),
    (26, 15),
    (27, 12),
    (28, 10),
    (29, 10),
    (30, 5),
    (31, 2),
    (32, 5),
];
const V6_LENGTHS: [(u8, u32); 29] = [
    (19, 1),
    (20, 3),
    (22, 3),
    (24, 5),
    (26, 5),
    (28, 20),
    (29, 150),
    (30, 30),
    (31, 20),
    (32, 1500),
    (33, 60),
    (34, 80),
    (35, 60),
    (36, 150),
    (37, 50),
    (38, 60),
    (39, 50),
    (40, 300),
    (41, 60),
    (42, 80),
    (43, 60),
    (44, 400),
    (45, 100),
    (46, 300),
    (47, 400),
    (48, 3500),
    (56, 30),
    (64, 40),
    (128, 10),
];

/// Territories of the synthetic table, most prefixes first (weights fall as 1/rank).
const CODES: &str = "US CN DE GB JP FR KR BR IN RU CA IT NL AU ES SE PL IR TR UA ID MX AR \
VN TW ZA CH BE AT CZ RO IL SG HK TH MY CL CO NO DK FI IE PT GR HU BG BY KZ EG NG KE PK BD PH";

fn codes() -> Vec<TerritoryId> {
    CODES
        .split_whitespace()
        .map(|c| {
            let b = c.as_bytes();
            territory_id([b[0], b[1]]).expect("a territory code")
        })
        .collect()
}

/// Random prefixes with the length mix above, each in a random territory.
pub fn synthetic(v4: usize, v6: usize, rng: &mut Rng) -> GeoTable {
    let codes = codes();
    let code_weights: Vec<u32> = (1..=codes.len() as u32).map(|r| 10_000 / r).collect();
    let v4_weights: Vec<u32> = V4_LENGTHS.iter().map(|(_, w)| *w).collect();
    let v6_weights: Vec<u32> = V6_LENGTHS.iter().map(|(_, w)| *w).collect();

    let mut t4 = Vec::with_capacity(v4);
    while t4.len() < v4 {
        let len = V4_LENGTHS[rng.weighted(&v4_weights)].0;
        // Unicast space: 1.0.0.0 to 223.255.255.255.
        let addr = (1 << 24) + rng.below((223 << 24) - 1) as u32;
        let prefix = Ipv4Net::network_of(addr, len);
        t4.push((prefix, codes[rng.weighted(&code_weights)]));
        if t4.len() == v4 {
            dedup(&mut t4);
        }
    }
    let mut t6 = Vec::with_capacity(v6);
    while t6.len() < v6 {
        let len = V6_LENGTHS[rng.weighted(&v6_weights)].0;
        // Global unicast: 2000::/3.
        let addr = (0x2000 << 112) | (rng.u128() >> 3);
        let prefix = Ipv6Net::network_of(addr, len);
        t6.push((prefix, codes[rng.weighted(&code_weights)]));
        if t6.len() == v6 {
            dedup(&mut t6);
        }
    }
    GeoTable {
        v4: t4,
        v6: t6,
        sources: Vec::new(),
    }
}

fn dedup<P: Ord + Copy>(entries: &mut Vec<(P, TerritoryId)>) {
    entries.sort_by_key(|(p, _)| *p);
    entries.dedup_by_key(|(p, _)| *p);
}

/// `n` entries of each family of `table`, chosen at random (all of a family if it has fewer).
pub fn subset(table: &GeoTable, n: usize, rng: &mut Rng) -> GeoTable {
    GeoTable {
        v4: pick(&table.v4, n, rng),
        v6: pick(&table.v6, n, rng),
        sources: Vec::new(),
    }
}

fn pick<P: Ord + Copy>(
    entries: &[(P, TerritoryId)],
    n: usize,
    rng: &mut Rng,
) -> Vec<(P, TerritoryId)> {
    let mut index: Vec<usize> = (0..entries.len()).collect();
    let n = n.min(index.len());
    for i in 0..n {
        let j = i + rng.below(index.len() - i);
        index.swap(i, j);
    }
    let mut out: Vec<_> = index[..n].iter().map(|&i| entries[i]).collect();
    out.sort_by_key(|(p, _)| *p);
    out
}

/// `count` IPv4 sources (mapped to IPv6, as the program keeps them): each in a prefix of the
/// table chosen at random, at a random address inside it.
pub fn samples_v4(table: &GeoTable, count: usize, rng: &mut Rng) -> Vec<Address> {
    (0..count)
        .map(|_| {
            let (prefix, _) = table.v4[rng.below(table.v4.len())];
            let addr = prefix.first() | (rng.next() as u32 & !Ipv4Net::mask(prefix.prefix_len()));
            std::net::Ipv4Addr::from(addr).to_ipv6_mapped().octets()
        })
        .collect()
}

/// `count` IPv6 sources, drawn as [`samples_v4`] draws IPv4 ones.
pub fn samples_v6(table: &GeoTable, count: usize, rng: &mut Rng) -> Vec<Address> {
    (0..count)
        .map(|_| {
            let (prefix, _) = table.v6[rng.below(table.v6.len())];
            let addr = prefix.first() | (rng.u128() & !Ipv6Net::mask(prefix.prefix_len()));
            Ipv6Addr::from(addr).octets()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_subsets_and_samples() {
        let mut rng = Rng::new(7);
        let table = synthetic(2000, 2000, &mut rng);
        assert_eq!((table.v4.len(), table.v6.len()), (2000, 2000));
        assert!(table.v4.is_sorted_by_key(|(p, _)| *p));
        assert!(table.v6.windows(2).all(|w| w[0].0 < w[1].0));
        let small = subset(&table, 300, &mut rng);
        assert_eq!((small.v4.len(), small.v6.len()), (300, 300));
        assert!(small.v4.iter().all(|e| table.v4.binary_search(e).is_ok()));
        for s in samples_v4(&small, 100, &mut rng) {
            let addr = u32::from_be_bytes([s[12], s[13], s[14], s[15]]);
            assert!(small.lookup_v4(addr).is_some(), "{addr:#x} in the subset");
        }
        for s in samples_v6(&small, 100, &mut rng) {
            assert!(small.lookup_v6(u128::from_be_bytes(s)).is_some());
        }
    }
}
