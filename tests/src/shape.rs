//! Territory tables shaped like the published ones, so that capacity is tested against
//! the tables operators load without shipping them.
//!
//! A [`Shape`] keeps what decides how much of each kernel structure a table takes, and
//! nothing of its addresses or territories: for IPv4, how many runs of /24 entries each
//! split /16 holds (and how many of those /24s are split themselves), and how many runs
//! of addresses each split /24 holds; for IPv6, how many disjoint ranges start in each
//! /16. `table-shape` measures one from a table's files; [`generate`] draws a table with
//! the same counts at random places, with random territories.

use std::fmt::Write as _;

use filter_common::geo::{
    V4_BLOCK_FLAG, V4_BLOCK_LEN, V4_BLOCKS, V4_GROUP_BASE, V4_LIST_END, V4_TBL8_GROUPS,
    V4_TBL24_PER_ELEM,
};
use geofence::geo::{FlatV4, GeoTable, flat};
use serde::{Deserialize, Serialize};

use crate::r#gen::Rng;

/// The counts that size a table's kernel structures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// The table, its version, and its licence's attribution.
    pub name: String,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    /// `[runs of /24 entries, split /24s among them, how many /16s]`.
    pub split16: Vec<[u32; 3]>,
    /// `[runs of addresses, how many /24s]`.
    pub split24: Vec<[u32; 2]>,
    /// `[disjoint ranges starting in a /16, how many /16s]`.
    pub per16_v6: Vec<[u32; 2]>,
}

/// Runs of equal neighbours in `entries`.
fn runs(entries: &[u16]) -> u32 {
    1 + entries.windows(2).filter(|w| w[0] != w[1]).count() as u32
}

/// The 256 /24 entries of split /16 number `block` (a `tbl16` entry without its flag).
fn block_entries(v4: &FlatV4, block: u32) -> Vec<u16> {
    if block < V4_BLOCKS {
        let per_block = V4_BLOCK_LEN / V4_TBL24_PER_ELEM;
        let first = block as usize * per_block;
        return v4.tbl24[first..first + per_block].concat();
    }
    expand(&v4.block_lists[(block - V4_BLOCKS) as usize])
}

/// A range list's 256 entries.
fn expand(list: &[u32]) -> Vec<u16> {
    let mut out = vec![0u16; V4_BLOCK_LEN];
    let used: Vec<u32> = list.iter().copied().filter(|&r| r != V4_LIST_END).collect();
    for (i, &range) in used.iter().enumerate() {
        let end = used
            .get(i + 1)
            .map_or(V4_BLOCK_LEN, |next| (next >> 16) as usize);
        out[(range >> 16) as usize..end].fill(range as u16);
    }
    out
}

/// Counts as `[value, how many]`, by value.
fn histogram<const N: usize>(items: impl Iterator<Item = [u32; N]>) -> Vec<Vec<u32>> {
    let mut counts = std::collections::BTreeMap::<[u32; N], u32>::new();
    for key in items {
        *counts.entry(key).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(key, n)| key.iter().copied().chain([n]).collect())
        .collect()
}

/// Measures the shape of `table`.
pub fn measure(name: &str, table: &GeoTable) -> anyhow::Result<Shape> {
    let v4 = flat::build_v4(&table.v4)?;
    let mut split16 = Vec::new();
    let mut split24 = Vec::new();
    for &entry in v4.tbl16.as_flattened() {
        if entry & V4_BLOCK_FLAG == 0 {
            continue;
        }
        let entries = block_entries(&v4, u32::from(entry & !V4_BLOCK_FLAG));
        let groups: Vec<u32> = entries
            .iter()
            .filter(|&&e| e >= V4_GROUP_BASE)
            .map(|&e| u32::from(e - V4_GROUP_BASE))
            .collect();
        split16.push([runs(&entries), groups.len() as u32]);
        for group in groups {
            let addresses = if group < V4_TBL8_GROUPS {
                v4.tbl8[group as usize].to_vec()
            } else {
                expand(&v4.lists[(group - V4_TBL8_GROUPS) as usize])
            };
            split24.push([runs(&addresses)]);
        }
    }
    let mut per16 = std::collections::BTreeMap::<u32, u32>::new();
    for (start, _) in flat::disjoint_ranges_v6(&table.v6) {
        *per16.entry((start >> 112) as u32).or_default() += 1;
    }
    let to3 = |v: Vec<Vec<u32>>| v.into_iter().map(|r| [r[0], r[1], r[2]]).collect();
    let to2 = |v: Vec<Vec<u32>>| v.into_iter().map(|r| [r[0], r[1]]).collect();
    Ok(Shape {
        name: name.to_string(),
        prefixes_v4: table.v4.len(),
        prefixes_v6: table.v6.len(),
        split16: to3(histogram(split16.into_iter())),
        split24: to2(histogram(split24.into_iter())),
        per16_v6: to2(histogram(per16.into_values().map(|n| [n]))),
    })
}

/// `n` cut points in `1..len`, sorted: `n + 1` runs of a piece of `len` entries. Cuts fall
/// on aligned boundaries where they can, as allocations do, so that a run splits into few
/// prefixes.
fn cuts(rng: &mut Rng, len: u32, n: u32) -> Vec<u32> {
    let n = n.min(len - 1);
    let mut picked = std::collections::BTreeSet::new();
    let mut tries = 0;
    while (picked.len() as u32) < n {
        tries += 1;
        // Coarse alignments first; as they fill up, finer ones.
        let align = if tries > 4 * len {
            0
        } else {
            rng.below(len.ilog2() as usize) as u32
        };
        let slots = len >> align;
        if slots < 2 {
            continue;
        }
        picked.insert((rng.range(1, slots as usize - 1) as u32) << align);
    }
    picked.into_iter().collect()
}

/// A territory code unlike `previous`, from a pool of 200.
fn code(rng: &mut Rng, previous: &mut u16) -> String {
    let mut id = *previous;
    while id == *previous {
        id = rng.range(1, 200) as u16;
    }
    *previous = id;
    let (a, b) = ((id - 1) / 26, (id - 1) % 26);
    format!("{}{}", (b'A' + a as u8) as char, (b'A' + b as u8) as char)
}

/// A `start,end,CC` table (ip-location-db layout) with `shape`'s counts, at random places.
pub fn generate(shape: &Shape, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::new();
    let mut previous = 0u16;
    let row4 = |out: &mut String, first: u32, last: u32, cc: &str| {
        let (a, b) = (
            std::net::Ipv4Addr::from(first),
            std::net::Ipv4Addr::from(last),
        );
        let _ = writeln!(out, "{a},{b},{cc}");
    };
    // Split /16s at distinct random places in 1.0.0.0–223.255.255.255.
    let mut free: Vec<u32> = (0x0100..0xe000).collect();
    let mut split24: Vec<u32> = shape
        .split24
        .iter()
        .flat_map(|&[runs, n]| std::iter::repeat_n(runs, n as usize))
        .collect();
    for &[runs16, groups, n] in &shape.split16 {
        for _ in 0..n {
            let slot = free.swap_remove(rng.below(free.len()));
            let base = slot << 16;
            // The split /24s first, one run each; then the rest of the /16 in the runs left.
            for i in 0..groups {
                let first = base | i << 8;
                let m = if split24.is_empty() {
                    2
                } else {
                    split24.swap_remove(rng.below(split24.len()))
                };
                let mut start = 0;
                for cut in cuts(&mut rng, 256, m - 1).into_iter().chain([256]) {
                    let cc = code(&mut rng, &mut previous);
                    row4(&mut out, first | start, first | (cut - 1), &cc);
                    start = cut;
                }
            }
            let rest = 256 - groups;
            if rest > 0 {
                let mut start = groups;
                let runs = runs16.saturating_sub(groups).max(1);
                for cut in cuts(&mut rng, rest, runs - 1)
                    .into_iter()
                    .map(|c| c + groups)
                    .chain([256])
                {
                    let cc = code(&mut rng, &mut previous);
                    row4(&mut out, base + (start << 8), base + (cut << 8) - 1, &cc);
                    start = cut;
                }
            }
        }
    }
    // Whole /16s, one territory each, until the table has its number of IPv4 prefixes.
    let rows = out.lines().count();
    free.sort_unstable();
    for &slot in free.iter().take(shape.prefixes_v4.saturating_sub(rows)) {
        let cc = code(&mut rng, &mut previous);
        row4(&mut out, slot << 16, (slot << 16) | 0xffff, &cc);
    }
    // IPv6: each /16's ranges (its unknown gaps among them) at /64 boundaries or coarser,
    // in pieces split at random, mostly unevenly.
    let mut free: Vec<u32> = (0x2000..0x4000).collect();
    for &[ranges, n] in &shape.per16_v6 {
        for _ in 0..n {
            let slot = free.swap_remove(rng.below(free.len()));
            let mut starts = Vec::new();
            split_v6(&mut rng, u128::from(slot) << 112, 48, ranges, &mut starts);
            starts.sort_unstable();
            let end = (u128::from(slot) + 1) << 112;
            for (i, &start) in starts.iter().enumerate() {
                let next = starts.get(i + 1).copied().unwrap_or(end);
                let cc = code(&mut rng, &mut previous);
                let (a, b) = (
                    std::net::Ipv6Addr::from(start),
                    std::net::Ipv6Addr::from(next - 1),
                );
                let _ = writeln!(out, "{a},{b},{cc}");
            }
        }
    }
    out
}

/// `n` distinct starts in the piece at `base` with `bits` bits to /64, the first at `base`.
fn split_v6(rng: &mut Rng, base: u128, bits: u32, n: u32, out: &mut Vec<u128>) {
    if n == 0 {
        return;
    }
    if n == 1 || bits == 0 {
        out.push(base);
        return;
    }
    // Allocations cluster: a share drawn towards the ends, as registries fill from the
    // bottom of a block and leave the rest for later.
    let share = match rng.below(4) {
        0 => rng.range(1, 99) as u32,
        _ => [2, 5, 10, 90, 95, 98][rng.below(6)],
    };
    // Each half holds at most 2^(bits - 1) distinct starts.
    let room = 1u64 << (bits - 1);
    let n64 = u64::from(n);
    let low = (n64 * u64::from(share) / 100)
        .clamp(n64.saturating_sub(room).max(1), (n64 - 1).min(room)) as u32;
    let half = 1u128 << (64 + bits - 1);
    split_v6(rng, base, bits - 1, low, out);
    split_v6(rng, base + half, bits - 1, n - low, out);
}
