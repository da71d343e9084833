//! What the flood is about: a territory table, the blocked territory, the exact IPv4
//! address set it covers (what the netfilter rules must hold), and flood packets whose
//! sources are spread over that set.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use filter_common::TerritoryId;
use geofence::{
    geo::{self, GeoTable, NetBits},
    territory::Territory,
};
use geofence_test_frames::Packet;
use ipnet::{Ipv4Net, Ipv6Net};

/// The UDP port of the meeting endpoint the flood is sent to.
pub const MEETING_PORT: u16 = 40000;

/// The table and where it came from.
pub struct Table {
    pub table: GeoTable,
    /// The files it was read from, or `None` for the synthetic table.
    pub files: Option<Vec<PathBuf>>,
    pub territory: Territory,
}

/// The real table from `dir` unless `smoke` or the files are missing; then a synthetic one.
pub fn table(dir: &Path, smoke: bool) -> anyhow::Result<Table> {
    let files = real_files(dir);
    match files {
        Some(files) if !smoke => {
            let table = geo::load_files(&files, geo::Format::Auto, None)
                .with_context(|| format!("loading the real table from {}", dir.display()))?;
            Ok(Table {
                table,
                files: Some(files),
                territory: Territory::parse("CN").map_err(anyhow::Error::msg)?,
            })
        }
        _ => {
            if !smoke {
                println!(
                    "flood: no real table in {} (geo-whois-asn-country-ipv{{4,6}}.csv): a synthetic table stands in",
                    dir.display()
                );
            }
            Ok(Table {
                table: synthetic(if smoke { 4096 } else { 200_000 }),
                files: None,
                territory: Territory::parse("XA").map_err(anyhow::Error::msg)?,
            })
        }
    }
}

/// The real CSVs, when both are there.
pub fn real_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let files: Vec<PathBuf> = ["ipv4", "ipv6"]
        .iter()
        .map(|f| dir.join(format!("geo-whois-asn-country-{f}.csv")))
        .collect();
    files.iter().all(|f| f.is_file()).then_some(files)
}

/// `n` IPv4 /24s spread over the unicast space and `n / 2` IPv6 /48s, territories cycling
/// over 39 user-assigned codes; every seventh entry is XA, the blocked one.
pub fn synthetic(n: usize) -> GeoTable {
    // User-assigned codes (XB-XZ, QM-QZ) stand for the other territories.
    let codes: Vec<TerritoryId> = (b'B'..=b'Z')
        .map(|c| [b'X', c])
        .chain((b'M'..=b'Z').map(|c| [b'Q', c]))
        .map(|code| {
            let code = std::str::from_utf8(&code).expect("ASCII");
            Territory::parse(code).expect("a user-assigned code").id()
        })
        .collect();
    let blocked = Territory::parse("XA").expect("a valid code").id();
    let territory = |i: usize| {
        if i.is_multiple_of(7) {
            blocked
        } else {
            codes[i % codes.len()]
        }
    };
    // 1.0.0.0 .. 223.255.255.0 in /24 steps, strided so entries spread over the space.
    let slots = 222u64 << 16;
    let stride = slots / n as u64;
    let mut v4: Vec<(Ipv4Net, TerritoryId)> = (0..n)
        .map(|i| {
            let addr = ((1u64 << 24) + ((i as u64 * stride) << 8)) as u32;
            (Ipv4Net::network_of(addr, 24), territory(i))
        })
        .collect();
    v4.sort();
    v4.dedup_by_key(|(p, _)| *p);
    let mut v6: Vec<(Ipv6Net, TerritoryId)> = (0..n / 2)
        .map(|i| {
            let addr = (0x2001_0db8u128 << 96) | ((i as u128) << 80);
            (Ipv6Net::network_of(addr, 48), territory(i))
        })
        .collect();
    v6.sort();
    GeoTable {
        v4,
        v6,
        sources: Vec::new(),
    }
}

/// The IPv4 ranges (inclusive, merged, sorted) whose longest match in `table` is
/// `territory`: exactly the sources geofence drops for a rule on that territory.
pub fn ranges_v4(table: &GeoTable, territory: TerritoryId) -> Vec<(u32, u32)> {
    // Prefixes sorted by address then length form a laminar family: a sweep with a stack
    // of enclosing prefixes yields the flat ranges and who owns each.
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut emit = |first: u64, last: u64, id: TerritoryId| {
        if id != territory || first > last {
            return;
        }
        let (first, last) = (first as u32, last as u32);
        match out.last_mut() {
            Some(prev) if u64::from(prev.1) + 1 == u64::from(first) => prev.1 = last,
            _ => out.push((first, last)),
        }
    };
    let mut stack: Vec<(u64, TerritoryId)> = Vec::new(); // (last address, owner)
    let mut cursor: u64 = 0;
    for (prefix, id) in &table.v4 {
        let first = u64::from(prefix.first());
        while let Some(&(last, owner)) = stack.last() {
            if last >= first {
                break;
            }
            emit(cursor, last, owner);
            cursor = last + 1;
            stack.pop();
        }
        if let Some(&(_, owner)) = stack.last()
            && cursor < first
        {
            emit(cursor, first - 1, owner);
        }
        cursor = first;
        stack.push((u64::from(prefix.last()), *id));
    }
    while let Some((last, owner)) = stack.pop() {
        emit(cursor, last, owner);
        cursor = last + 1;
    }
    out
}

/// Ranges as CIDRs, for tools that want prefixes (ipset `hash:net`, nft sets).
pub fn cidrs_v4(ranges: &[(u32, u32)]) -> Vec<Ipv4Net> {
    ranges
        .iter()
        .flat_map(|&(a, b)| geo::range_to_cidrs_v4(a, b))
        .collect()
}

/// A small deterministic generator (xorshift64*), enough to spread sources.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` source addresses drawn from the blocked ranges, weighted by their size.
pub fn sources(ranges: &[(u32, u32)], n: usize, rng: &mut Rng) -> Vec<u32> {
    let total: u64 = ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum();
    (0..n)
        .map(|_| {
            let mut pick = rng.next() % total.max(1);
            for &(a, b) in ranges {
                let size = u64::from(b - a) + 1;
                if pick < size {
                    return a + pick as u32;
                }
                pick -= size;
            }
            ranges[0].0
        })
        .collect()
}

/// A 64-byte Ethernet/IPv4/UDP frame from `src` to the meeting port: Don't Fragment,
/// identification 0 and no UDP checksum, as a traffic generator sends it.
pub fn packet(dst_mac: [u8; 6], src_mac: [u8; 6], src: u32, dst: [u8; 4], sport: u16) -> Vec<u8> {
    const PAYLOAD: usize = 22;
    Packet::udp(
        SocketAddr::from((Ipv4Addr::from(src), sport)),
        SocketAddr::from((dst, MEETING_PORT)),
    )
    .macs(dst_mac, src_mac)
    .dont_fragment()
    .identification(0)
    .no_udp_checksum()
    .payload(&[0x5a; PAYLOAD])
    .build()
    .bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Net {
        Ipv4Net::parse_strict(s).unwrap()
    }

    #[test]
    fn ranges_follow_the_longest_match() {
        let table = GeoTable {
            v4: vec![
                (p("10.0.0.0/8"), 1),
                (p("10.1.0.0/16"), 2),
                (p("10.1.2.0/24"), 1),
                (p("10.2.0.0/16"), 1),
                (p("11.0.0.0/8"), 1),
                (p("12.0.0.0/8"), 2),
            ],
            ..Default::default()
        };
        let ip = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().unwrap());
        assert_eq!(
            ranges_v4(&table, 1),
            vec![
                (ip("10.0.0.0"), ip("10.0.255.255")),
                (ip("10.1.2.0"), ip("10.1.2.255")),
                (ip("10.2.0.0"), ip("11.255.255.255")),
            ]
        );
        for r in ranges_v4(&table, 1) {
            assert_eq!(table.lookup_v4(r.0), Some(1));
            assert_eq!(table.lookup_v4(r.1), Some(1));
        }
        assert_eq!(ranges_v4(&table, 2).len(), 3);
    }

    #[test]
    fn packet_checksum_verifies() {
        let pkt = packet([2; 6], [4; 6], 0x0102_0304, [10, 250, 0, 2], 5000);
        assert_eq!(pkt.len(), 64);
        let sum: u32 = pkt[14..34]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let sum = (sum & 0xffff) + (sum >> 16);
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
    }
}
