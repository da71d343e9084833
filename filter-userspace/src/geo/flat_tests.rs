use super::*;
use crate::geo::NetBits;
use filter_common::geo::{
    V6_DIRECT, V6_LEAF_RANGES, V6_MAX_DEPTH, V6_NODE, V6_NODES, V6_PACKED, V6_RANGES,
};
use ipnet::Ipv6Net;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

fn dedup<P: Ord + Copy>(mut v: Vec<(P, TerritoryId)>) -> Vec<(P, TerritoryId)> {
    v.sort_by_key(|e| e.0);
    v.dedup_by_key(|e| e.0);
    v
}

fn table(v4: Vec<(Ipv4Net, TerritoryId)>, v6: Vec<(Ipv6Net, TerritoryId)>) -> GeoTable {
    GeoTable {
        v4: dedup(v4),
        v6: dedup(v6),
        sources: Vec::new(),
    }
}

/// Nested prefixes: addresses drawn from a few small regions so prefixes overlap.
fn random_table(rng: &mut Rng, n: usize) -> GeoTable {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for _ in 0..n {
        let id = 1 + rng.below(676) as TerritoryId;
        let region = [0x0a00_0000u32, 0xc000_0200, 0xffff_ff00, 0][rng.below(4) as usize];
        let addr = region ^ (rng.next() as u32 >> rng.below(32));
        let len = 1 + rng.below(32) as u8;
        v4.push((Ipv4Net::network_of(addr, len), id));
        let region =
            [0x2001_0db8u128 << 96, u128::MAX, 0, 0x2a00u128 << 112][rng.below(4) as usize];
        let addr = region ^ (rng.u128() >> rng.below(128));
        let len = 1 + rng.below(128) as u8;
        v6.push((Ipv6Net::network_of(addr, len), id));
    }
    table(v4, v6)
}

fn probes4(t: &GeoTable, rng: &mut Rng) -> Vec<u32> {
    let mut out = vec![0, u32::MAX];
    for (p, _) in &t.v4 {
        out.extend([
            p.first(),
            p.last(),
            p.first().wrapping_sub(1),
            p.last().wrapping_add(1),
        ]);
        out.push(p.first() | (rng.next() as u32 & !Ipv4Net::mask(p.prefix_len())));
    }
    out.extend((0..1000).map(|_| rng.next() as u32));
    out
}

fn probes6(t: &GeoTable, rng: &mut Rng) -> Vec<u128> {
    let mut out = vec![0, u128::MAX];
    for (p, _) in &t.v6 {
        out.extend([
            p.first(),
            p.last(),
            p.first().wrapping_sub(1),
            p.last().wrapping_add(1),
        ]);
        out.push(p.first() | (rng.u128() & !Ipv6Net::mask(p.prefix_len())));
    }
    // Piece boundaries at every trie level, where one entry hands over to the next.
    for _ in 0..1000 {
        let shift = 112 - 8 * rng.below(15) as u32;
        let piece = rng.u128() >> shift << shift;
        out.extend([piece, piece.wrapping_sub(1), rng.u128()]);
    }
    out
}

fn check(t: &GeoTable, rng: &mut Rng) {
    let flat = build(t).expect("builds");
    let (v4, v6) = (flat.v4.view(), flat.v6.view());
    for a in probes4(t, rng) {
        let want = t.lookup_v4(a).unwrap_or(TERRITORY_UNKNOWN);
        assert_eq!(v4.lookup(a), want, "{}", std::net::Ipv4Addr::from(a));
    }
    for a in probes6(t, rng) {
        let want = t.lookup_v6(a).unwrap_or(TERRITORY_UNKNOWN);
        assert_eq!(v6.lookup(a), want, "{}", std::net::Ipv6Addr::from(a));
    }
}

/// As [`check`] for IPv6, with room for only `packed_capacity` packed ranges.
fn check_packing(t: &GeoTable, rng: &mut Rng, packed_capacity: usize) -> FlatV6 {
    let flat = build_v6_packing(&t.v6, packed_capacity).expect("builds");
    assert!(flat.packed.len() <= packed_capacity);
    for a in probes6(t, rng) {
        let want = t.lookup_v6(a).unwrap_or(TERRITORY_UNKNOWN);
        assert_eq!(
            flat.view().lookup(a),
            want,
            "{}",
            std::net::Ipv6Addr::from(a)
        );
    }
    flat
}

#[test]
fn random_tables_match_the_reference_lpm() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in [0, 1, 2, 5, 50, 500, 3000] {
        let t = random_table(&mut rng, n);
        check(&t, &mut rng);
        // Packed leaves until the room runs out, leaves over the ranges after.
        for capacity in [0, 40] {
            check_packing(&t, &mut rng, capacity);
        }
    }
}

#[test]
fn edges_of_the_address_space() {
    let mut rng = Rng(7);
    let t = table(
        vec![
            ("0.0.0.0/1".parse().unwrap(), 1),
            ("0.0.0.0/32".parse().unwrap(), 2),
            ("255.255.255.255/32".parse().unwrap(), 3),
            ("128.0.0.0/1".parse().unwrap(), 4),
            ("128.0.0.0/25".parse().unwrap(), 4),
        ],
        vec![
            ("::/1".parse().unwrap(), 1),
            ("::/128".parse().unwrap(), 2),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
                    .parse()
                    .unwrap(),
                3,
            ),
            ("8000::/1".parse().unwrap(), 4),
            ("8000::/17".parse().unwrap(), 5),
            ("8000:8000::/18".parse().unwrap(), 5),
        ],
    );
    check(&t, &mut rng);
    let flat = build(&t).unwrap();
    // One range list per /24 holding a longer prefix, even one that repeats its territory.
    assert_eq!((flat.v4.lists.len(), flat.v4.tbl8.len()), (3, 0));
    let ranges = disjoint_ranges_v6(&t.v6);
    assert_eq!(ranges.first(), Some(&(0, 2)));
    assert_eq!(ranges.last(), Some(&(u128::MAX, 3)));
    assert!(
        ranges
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1)
    );
}

#[test]
fn an_empty_table_is_all_unknown() {
    let flat = build(&GeoTable::default()).unwrap();
    assert_eq!(flat.v4.view().lookup(0x0102_0304), TERRITORY_UNKNOWN);
    assert_eq!(flat.v6.view().lookup(1 << 125), TERRITORY_UNKNOWN);
    assert_eq!(flat.v6.starts_hi.len(), 1);
}

#[test]
fn too_many_tbl8_groups_and_range_lists_are_refused() {
    // A /25 in each of V4_LISTS + 1 /24s: two ranges each, a range list each.
    let v4 = (0..=V4_LISTS)
        .map(|i| (Ipv4Net::network_of(i << 8, 25), 1))
        .collect();
    let err = build(&table(v4, vec![])).unwrap_err();
    assert_eq!(
        err,
        FlatError::TooManyLists {
            needed: V4_LISTS as usize + 1,
            capacity: V4_LISTS,
            list: V4_LIST_LEN,
        }
    );
    assert!(
        err.to_string().contains(&format!("{} /24s", V4_LISTS + 1)),
        "{err}"
    );
    // Every other address of a /24 in its own territory: 256 ranges, a tbl8 group each.
    let dense: Vec<_> = (0..=V4_TBL8_GROUPS)
        .flat_map(|i| (0..128u32).map(move |h| (Ipv4Net::network_of(i << 8 | h << 1, 32), 1)))
        .collect();
    let err = build(&table(dense, vec![])).unwrap_err();
    assert_eq!(
        err,
        FlatError::TooManyGroups {
            needed: V4_TBL8_GROUPS as usize + 1,
            capacity: V4_TBL8_GROUPS,
            list: V4_LIST_LEN,
        }
    );
}

#[test]
fn a_24_of_at_most_16_ranges_is_a_list_and_a_denser_one_a_group() {
    let p = |a: u32, len: u8| Ipv4Net::network_of(a, len);
    // 10.0.0/24: 16 ranges (eight /28s, each followed by 16 unknown addresses).
    let mut v4: Vec<_> = (0..8u32)
        .map(|k| (p(0x0a00_0000 | k << 5, 28), 1))
        .collect();
    // 10.0.1/24: the same and its last address: 17 ranges.
    v4.extend((0..8u32).map(|k| (p(0x0a00_0100 | k << 5, 28), 2)));
    v4.push((p(0x0a00_01ff, 32), 3));
    let flat = build(&table(v4, vec![])).unwrap();
    assert_eq!((flat.v4.lists.len(), flat.v4.tbl8.len()), (1, 1));
    let view = flat.v4.view();
    for octet in 0..=255u32 {
        let want = |id| if (octet >> 4) % 2 == 0 { id } else { 0 };
        assert_eq!(view.lookup(0x0a00_0000 | octet), want(1), "10.0.0.{octet}");
        let dense = if octet == 255 { 3 } else { want(2) };
        assert_eq!(view.lookup(0x0a00_0100 | octet), dense, "10.0.1.{octet}");
    }
}

/// A /24 of territory 1 at every other /24 of /16 number `i`, `n` of them: `2n` runs.
fn striped_16(i: u32, n: u32) -> impl Iterator<Item = (Ipv4Net, TerritoryId)> {
    (0..n).map(move |k| (Ipv4Net::network_of(i << 16 | k << 9, 24), 1))
}

#[test]
fn too_many_split_16s_are_refused() {
    // One /24 in each of V4_BLOCK_LISTS + 1 /16s: two runs each, a block list each.
    let sparse = (0..=V4_BLOCK_LISTS)
        .flat_map(|i| striped_16(i, 1))
        .collect();
    let err = build(&table(sparse, vec![])).unwrap_err();
    assert_eq!(
        err,
        FlatError::TooManyBlockLists {
            needed: V4_BLOCK_LISTS as usize + 1,
            capacity: V4_BLOCK_LISTS,
            list: V4_LIST_LEN,
        }
    );
    assert!(err.to_string().contains("16385 /16s"), "{err}");
    // Nine /24s in each of V4_BLOCKS + 1 /16s: 18 runs each, a tbl24 block each.
    let dense = (0..=V4_BLOCKS).flat_map(|i| striped_16(i, 9)).collect();
    let err = build(&table(dense, vec![])).unwrap_err();
    assert_eq!(
        err,
        FlatError::TooManyBlocks {
            needed: V4_BLOCKS as usize + 1,
            capacity: V4_BLOCKS,
            list: V4_LIST_LEN,
        }
    );
    // Both at capacity fit side by side, and every /16 answers.
    let full = (0..V4_BLOCKS)
        .flat_map(|i| striped_16(i, 9))
        .chain((V4_BLOCKS..V4_BLOCKS + V4_BLOCK_LISTS).flat_map(|i| striped_16(i, 1)))
        .collect();
    let flat = build(&table(full, vec![])).expect("every block and block list in use");
    assert_eq!(
        (
            flat.v4.tbl24.len() * V4_TBL24_PER_ELEM / V4_BLOCK_LEN,
            flat.v4.block_lists.len()
        ),
        (V4_BLOCKS as usize, V4_BLOCK_LISTS as usize)
    );
    let view = flat.v4.view();
    let last = V4_BLOCKS + V4_BLOCK_LISTS - 1;
    for i in [0, 1, V4_BLOCKS - 1, V4_BLOCKS, last] {
        assert_eq!(
            view.lookup(i << 16 | 0x7f),
            1,
            "inside the first /24 of /16 {i}"
        );
        assert_eq!(view.lookup(i << 16 | 0x100), TERRITORY_UNKNOWN, "beside it");
    }
}

#[test]
fn a_16_of_at_most_16_runs_is_a_list_and_a_denser_one_a_block() {
    let p = |a: u32, len: u8| Ipv4Net::network_of(a, len);
    // 10.0/16: eight /24s, 16 runs; 10.1/16: nine, 18 runs; 10.2/16: one /24 of territory
    // 2 whose .5 is in territory 3, behind a range list.
    let mut v4: Vec<_> = striped_16(0x0a00, 8).chain(striped_16(0x0a01, 9)).collect();
    v4.extend([(p(0x0a02_0400, 24), 2), (p(0x0a02_0405, 32), 3)]);
    let t = table(v4, vec![]);
    let flat = build(&t).unwrap();
    assert_eq!(
        (
            flat.v4.block_lists.len(),
            flat.v4.tbl24.len() * V4_TBL24_PER_ELEM / V4_BLOCK_LEN
        ),
        (2, 1)
    );
    let tbl16 = flat.v4.tbl16.as_flattened();
    assert_eq!(tbl16[0x0a00], V4_BLOCK_FLAG | V4_BLOCKS as u16);
    assert_eq!(tbl16[0x0a01], V4_BLOCK_FLAG);
    let view = flat.v4.view();
    for a in (0x0a00_0000..0x0a03_0000).step_by(0x55) {
        let want = t.lookup_v4(a).unwrap_or(TERRITORY_UNKNOWN);
        assert_eq!(view.lookup(a), want, "{}", std::net::Ipv4Addr::from(a));
    }
    assert_eq!(view.lookup(0x0a02_0405), 3);
    assert_eq!(view.lookup(0x0a02_0406), 2);
    assert_eq!(view.lookup(0x0a02_0506), TERRITORY_UNKNOWN);
}

/// `n` separated /128s from `base`, `2 * step` apart starting at `base + step`: `2n + 1`
/// ranges. With a step of half a sub-piece, each sub-piece holds one, 3 ranges.
fn spread_128s(base: u128, step: u128, n: u32, id: TerritoryId) -> Vec<(Ipv6Net, TerritoryId)> {
    (0..n)
        .map(|i| {
            let addr = base + (2 * u128::from(i) + 1) * step;
            (Ipv6Net::from_bits(addr, 128).unwrap(), id)
        })
        .collect()
}

/// Half of a /24, the sub-pieces of a /16 node.
const HALF_24: u128 = 1 << 103;

/// Separated /128s that make a piece too dense for a leaf: one range too many.
const DENSE: u32 = V6_LEAF_RANGES / 2;

#[test]
fn a_piece_of_leaf_ranges_is_a_leaf_and_of_one_more_a_node() {
    let mut rng = Rng(16);
    // DENSE - 1 /128s: V6_LEAF_RANGES - 1 ranges; DENSE: V6_LEAF_RANGES + 1.
    let mut v6 = spread_128s(0x2001u128 << 112, HALF_24, DENSE - 1, 1);
    v6.extend(spread_128s(0x2002u128 << 112, HALF_24, DENSE, 2));
    let t = table(vec![], v6);
    check(&t, &mut rng);
    let flat = build(&t).unwrap();
    assert_eq!(flat.v6.nodes.len(), 1);
    let entry = |slash16: usize| flat.v6.index[slash16 / 64][slash16 % 64];
    assert_eq!(entry(0x2001) & (V6_NODE | V6_DIRECT), 0, "a leaf");
    assert_eq!(entry(0x2002), V6_NODE);
    assert_eq!(entry(0x2003), V6_DIRECT, "unknown, in one range");
}

#[test]
fn a_dense_piece_of_256_addresses_nests_down_to_the_last_byte() {
    let mut rng = Rng(120);
    let piece = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128;
    let t = table(vec![], spread_128s(piece, 1, DENSE, 7));
    check(&t, &mut rng);
    let flat = build(&t).unwrap();
    // One node per byte from the third to the sixteenth.
    assert_eq!(flat.v6.nodes.len(), V6_MAX_DEPTH as usize);
    let view = flat.v6.view();
    assert_eq!(view.lookup(piece | 1), 7);
    assert_eq!(view.lookup(piece | 2), TERRITORY_UNKNOWN);
    let last = u128::from(2 * DENSE - 1);
    assert_eq!(view.lookup(piece | last), 7);
    assert_eq!(view.lookup(piece | (last + 1)), TERRITORY_UNKNOWN);
}

#[test]
fn too_many_nodes_and_too_many_ranges_are_refused() {
    // One node per /16 holding DENSE separated /128s, one per /24.
    let dense_16s = |n: u32| {
        let v6 = (0..n)
            .flat_map(|i| spread_128s(u128::from(0x2000 + i) << 112, HALF_24, DENSE, 1))
            .collect();
        table(vec![], v6)
    };
    let t = dense_16s(V6_NODES);
    let flat = build(&t).expect("nodes at capacity fit");
    assert_eq!(flat.v6.nodes.len(), V6_NODES as usize);
    let last = (u128::from(0x2000 + V6_NODES - 1) << 112) + u128::from(2 * DENSE - 1) * HALF_24;
    assert_eq!(flat.v6.view().lookup(last), 1);
    assert_eq!(flat.v6.view().lookup(last + 1), TERRITORY_UNKNOWN);
    let err = build(&dense_16s(V6_NODES + 1)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "the IPv6 table needs more than {V6_NODES} trie nodes, one per piece of the \
             address space overlapped by more than 32 ranges, but the kernel table holds \
             {V6_NODES}"
        )
    );
    let spread = (1..=V6_RANGES / 2)
        .map(|i| (Ipv6Net::from_bits(u128::from(i) << 100, 128).unwrap(), 1))
        .collect();
    let err = build(&table(vec![], spread)).unwrap_err();
    assert!(
        matches!(err, FlatError::TooManyRanges { needed, .. } if needed == V6_RANGES as usize + 1)
    );
}

#[test]
fn a_leaf_packs_if_its_starts_fit_and_there_is_room() {
    let mut rng = Rng(54);
    let p = |addr: u128, len| Ipv6Net::from_bits(addr, len).unwrap();
    // In 2001::/16, four /48s: 9 ranges whose starts end by the 70th bit, so they pack.
    let mut v6: Vec<_> = (0..4u128)
        .map(|i| (p(0x2001_0db8u128 << 96 | (2 * i + 1) << 80, 48), 1))
        .collect();
    // In 2002::/16, a /48 and a /128: a start 112 bits past the /16 does not.
    v6.push((p(0x2002_0db8u128 << 96, 48), 2));
    v6.push((p(0x2002_0db9u128 << 96 | 1, 128), 3));
    let t = table(vec![], v6);
    check(&t, &mut rng);
    let flat = build(&t).unwrap();
    let entry = |v6: &FlatV6, slash16: usize| v6.index[slash16 / 64][slash16 % 64];
    assert_eq!(entry(&flat.v6, 0x2001) & (V6_PACKED | V6_NODE), V6_PACKED);
    assert_eq!(
        entry(&flat.v6, 0x2002) & (V6_PACKED | V6_NODE | V6_DIRECT),
        0
    );
    assert_eq!(flat.v6.packed.len(), 9);
    // Room for 9 packed ranges packs the leaf; for 8, it stays over the range arrays.
    assert_eq!(check_packing(&t, &mut rng, 9), flat.v6);
    let unpacked = check_packing(&t, &mut rng, 8);
    assert!(unpacked.packed.is_empty());
    assert_eq!(
        entry(&unpacked, 0x2001) & (V6_PACKED | V6_NODE | V6_DIRECT),
        0
    );
}

#[test]
fn tbl16_answers_only_for_a_whole_16() {
    let p = |a: u32, len: u8| Ipv4Net::network_of(a, len);
    let flat = build(&table(
        vec![
            (p(0x0a00_0000, 16), 5), // 10.0/16: whole
            (p(0x0a01_0000, 17), 6), // 10.1/16: half XB, half unknown
            (p(0x0a02_0000, 16), 5), // 10.2/16 with a /25 inside: a tbl8 group
            (p(0x0a02_0300, 25), 6),
            (p(0x0a04_0000, 14), 7), // 10.4/14: four whole /16s
            (p(0x0a05_0100, 24), 7), // same territory inside: still whole
        ],
        Vec::new(),
    ))
    .unwrap();
    let tbl16 = flat.v4.tbl16.as_flattened();
    assert_eq!(tbl16[0x0a00], 5);
    let first_list = V4_BLOCK_FLAG | V4_BLOCKS as u16;
    assert_eq!(tbl16[0x0a01], first_list, "10.1/16: the first block list");
    assert_eq!(tbl16[0x0a02], first_list + 1, "10.2/16: the second");
    assert!(flat.v4.tbl24.is_empty(), "no /16 needs a whole block");
    assert_eq!(
        tbl16[0x0a03], TERRITORY_UNKNOWN,
        "an empty /16 is whole: unknown"
    );
    assert_eq!(&tbl16[0x0a04..0x0a08], &[7; 4]);
    let v4 = flat.v4.view();
    assert_eq!(v4.lookup(0x0a01_7fff), 6);
    assert_eq!(v4.lookup(0x0a01_8000), TERRITORY_UNKNOWN);
    assert_eq!(v4.lookup(0x0a02_0305), 6);
    assert_eq!(v4.lookup(0x0a02_0385), 5);
}
