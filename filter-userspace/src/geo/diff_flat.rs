//! The runs of a flattened table (layout in [`filter_common::geo`]), read back from its
//! arrays: how the table in force is compared, since the kernel keeps the flattened
//! arrays and not the prefixes they were built from.
//!
//! A missing element reads as unknown, as the program's lookup reads it.

use filter_common::geo::{
    RangeList, V4_BLOCK_FLAG, V4_BLOCK_LEN, V4_BLOCKS, V4_GROUP_BASE, V4_GROUP_LEN, V4_TBL8_GROUPS,
    V4_TBL16_PER_ELEM, V4_TBL24_PER_ELEM, V6_TERRITORIES_PER_ELEM,
};
use filter_common::territory::{TERRITORY_UNKNOWN, TerritoryId};

use super::{Family, Runs, push_run};
use crate::geo::flat::{FlatV4Ref, FlatV6Ref};

/// `(first octet, entry)` of each run of a range list, the first at octet 0: the list's
/// search gives an octet the entry of the last run starting at or before it, unknown
/// before the first.
fn list_runs(list: &RangeList) -> impl Iterator<Item = (u32, u16)> + '_ {
    let first = list.first().map_or(u32::MAX, |r| r >> 16);
    let lead = (first != 0).then_some((0, TERRITORY_UNKNOWN));
    let runs = list
        .iter()
        .map(|&r| (r >> 16, r as u16))
        .take_while(|&(octet, _)| octet < V4_BLOCK_LEN as u32);
    lead.into_iter().chain(runs)
}

/// The entry of every third octet of a split /16, in order.
fn slash24_entries(t: &FlatV4Ref<'_>, block: u32) -> [u16; V4_BLOCK_LEN] {
    let mut entries = [TERRITORY_UNKNOWN; V4_BLOCK_LEN];
    if block < V4_BLOCKS {
        for (third, entry) in entries.iter_mut().enumerate() {
            let slot = (block as usize) << 8 | third;
            *entry = t
                .tbl24
                .get(slot / V4_TBL24_PER_ELEM)
                .map_or(TERRITORY_UNKNOWN, |e| e[slot % V4_TBL24_PER_ELEM]);
        }
    } else if let Some(list) = t.block_lists.get((block - V4_BLOCKS) as usize) {
        let runs: Vec<(u32, u16)> = list_runs(list).collect();
        for (k, &(octet, entry)) in runs.iter().enumerate() {
            let end = runs.get(k + 1).map_or(V4_BLOCK_LEN, |r| r.0 as usize);
            entries[octet as usize..end].fill(entry);
        }
    }
    entries
}

/// Appends the runs of the /24 at `base` whose `tbl24` entry is `entry`.
fn push_slash24(out: &mut Vec<(u128, TerritoryId)>, t: &FlatV4Ref<'_>, base: u32, entry: u16) {
    let base = u128::from(base);
    if entry < V4_GROUP_BASE {
        push_run(out, base, entry);
        return;
    }
    let group = u32::from(entry - V4_GROUP_BASE);
    if group < V4_TBL8_GROUPS {
        match t.tbl8.get(group as usize) {
            Some(g) => {
                for (last, &id) in g.iter().enumerate().take(V4_GROUP_LEN) {
                    push_run(out, base | last as u128, id);
                }
            }
            None => push_run(out, base, TERRITORY_UNKNOWN),
        }
        return;
    }
    match t.lists.get((group - V4_TBL8_GROUPS) as usize) {
        Some(list) => {
            for (octet, id) in list_runs(list) {
                push_run(out, base | u128::from(octet), id);
            }
        }
        None => push_run(out, base, TERRITORY_UNKNOWN),
    }
}

/// IPv4: every /16 of `tbl16`; a split one through its block or list to its /24s, a
/// split /24 through its group or list to its addresses.
pub(super) fn runs_v4(t: FlatV4Ref<'_>) -> Runs {
    let mut out: Vec<(u128, TerritoryId)> = vec![(0, TERRITORY_UNKNOWN)];
    for slash16 in 0..1u32 << 16 {
        let i = slash16 as usize;
        let entry = t
            .tbl16
            .get(i / V4_TBL16_PER_ELEM)
            .map_or(TERRITORY_UNKNOWN, |e| e[i % V4_TBL16_PER_ELEM]);
        let base = slash16 << 16;
        if entry & V4_BLOCK_FLAG == 0 {
            push_run(&mut out, u128::from(base), entry);
            continue;
        }
        let entries = slash24_entries(&t, u32::from(entry & !V4_BLOCK_FLAG));
        for (third, &e) in entries.iter().enumerate() {
            push_slash24(&mut out, &t, base | (third as u32) << 8, e);
        }
    }
    Runs::new(Family::V4, out)
}

/// IPv6: the range arrays hold every range in order, which the trie only indexes. An
/// array mapped from the kernel is longer than the table, zeros after it: the ranges are
/// those up to the first start that does not increase.
pub(super) fn runs_v6(t: FlatV6Ref<'_>) -> Runs {
    let count = t.starts_hi.len().min(t.starts_lo.len());
    let mut starts: Vec<(u128, TerritoryId)> = Vec::new();
    for i in 0..count {
        let start = u128::from(t.starts_hi[i]) << 64 | u128::from(t.starts_lo[i]);
        if starts.last().is_some_and(|&(prev, _)| start <= prev) {
            break;
        }
        let id = t
            .territories
            .get(i / V6_TERRITORIES_PER_ELEM)
            .map_or(TERRITORY_UNKNOWN, |e| e[i % V6_TERRITORIES_PER_ELEM]);
        starts.push((start, id));
    }
    Runs::new(Family::V6, starts)
}
