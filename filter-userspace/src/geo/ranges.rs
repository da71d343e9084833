//! Resolving overlapping ranges of one file into a partition: where ranges overlap, the one
//! on the later line wins.
//!
//! Real range files overlap on purpose: ip-location-db's country CSVs list a more specific
//! entry (a geofeed, a sub-allocation) after the RIR range that contains it, a few hundred
//! times per file, sometimes with the very same bounds; and the publisher's own MMDB build
//! resolves them by insertion order, i.e. the later line wins. Doing the same makes a CSV
//! and the MMDB of the same snapshot give the same table.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use filter_common::territory::TerritoryId;

/// One inclusive range from line `line`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range<T> {
    pub start: T,
    pub end: T,
    pub id: TerritoryId,
    pub line: u32,
}

pub(crate) trait Addr: Copy + Ord {
    const MAX: Self;
    /// `self + 1`; never called on `MAX`.
    fn succ(self) -> Self;
    /// `self - 1`; never called on 0.
    fn pred(self) -> Self;
}

macro_rules! impl_addr {
    ($t:ty) => {
        impl Addr for $t {
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Self {
                self + 1
            }
            fn pred(self) -> Self {
                self - 1
            }
        }
    };
}
impl_addr!(u32);
impl_addr!(u128);

/// The partition of the union of `ranges` in address order, each piece taking the code of
/// the latest-line range covering it; adjacent pieces with the same code are joined (and
/// keep the first piece's line). Also returns how many ranges overlapped an earlier one.
pub(crate) fn resolve<T: Addr>(mut ranges: Vec<Range<T>>) -> (Vec<Range<T>>, usize) {
    if !ranges.is_sorted_by_key(|r| r.start) {
        ranges.sort_by_key(|r| r.start);
    }
    let Some(first) = ranges.first() else {
        return (Vec::new(), 0);
    };
    let mut pos = first.start;
    let mut out: Vec<Range<T>> = Vec::with_capacity(ranges.len());
    let mut push = |piece: Range<T>| match out.last_mut() {
        Some(last)
            if last.id == piece.id && last.end < T::MAX && last.end.succ() == piece.start =>
        {
            last.end = piece.end;
        }
        _ => out.push(piece),
    };
    // Ranges started so far, latest line on top; expired ones are dropped lazily.
    let mut active: BinaryHeap<(u32, Reverse<usize>)> = BinaryHeap::new();
    let mut overlaps = 0;
    let mut reach: Option<T> = None;
    let mut next = 0;
    loop {
        while let Some(r) = ranges.get(next).filter(|r| r.start <= pos) {
            if reach.is_some_and(|end| r.start <= end) {
                overlaps += 1;
            }
            reach = Some(reach.map_or(r.end, |end| end.max(r.end)));
            active.push((r.line, Reverse(next)));
            next += 1;
        }
        while active
            .peek()
            .is_some_and(|&(_, Reverse(i))| ranges[i].end < pos)
        {
            active.pop();
        }
        let Some(&(_, Reverse(top))) = active.peek() else {
            match ranges.get(next) {
                Some(r) => {
                    pos = r.start;
                    continue;
                }
                None => break,
            }
        };
        let winner = ranges[top];
        // The winner holds until it ends or another range starts (which may outrank it).
        let end = match ranges.get(next) {
            Some(r) => winner.end.min(r.start.pred()),
            None => winner.end,
        };
        push(Range {
            start: pos,
            end,
            ..winner
        });
        if end == T::MAX {
            break;
        }
        pos = end.succ();
    }
    (out, overlaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u32, end: u32, id: TerritoryId, line: u32) -> Range<u32> {
        Range {
            start,
            end,
            id,
            line,
        }
    }

    fn flat(ranges: Vec<Range<u32>>) -> (Vec<(u32, u32, TerritoryId)>, usize) {
        let (out, n) = resolve(ranges);
        (out.iter().map(|r| (r.start, r.end, r.id)).collect(), n)
    }

    #[test]
    fn disjoint_ranges_pass_through() {
        let got = flat(vec![r(20, 29, 2, 2), r(0, 9, 1, 1), r(10, 19, 3, 3)]);
        assert_eq!(got, (vec![(0, 9, 1), (10, 19, 3), (20, 29, 2)], 0));
        assert_eq!(flat(vec![]), (vec![], 0));
    }

    #[test]
    fn later_lines_win() {
        // The real-data pattern: DE 196.0-197.255, then BE 197.15, then DE 197.16-197.255.
        let got = flat(vec![r(0, 511, 1, 1), r(271, 271, 2, 2), r(272, 511, 1, 3)]);
        assert_eq!(got, (vec![(0, 270, 1), (271, 271, 2), (272, 511, 1)], 2));
        // Identical bounds: the second line wins.
        assert_eq!(
            flat(vec![r(5, 9, 1, 1), r(5, 9, 2, 2)]),
            (vec![(5, 9, 2)], 1)
        );
        // Partial overlap either way round; an earlier line listed later in the file loses.
        assert_eq!(
            flat(vec![r(0, 9, 1, 1), r(5, 14, 2, 2)]),
            (vec![(0, 4, 1), (5, 14, 2)], 1)
        );
        assert_eq!(
            flat(vec![r(5, 14, 2, 2), r(0, 9, 1, 1)]),
            (vec![(0, 4, 1), (5, 14, 2)], 1)
        );
        // An outer range resumes after a nested one, around a gap-free chain of overrides.
        let got = flat(vec![
            r(0, 99, 1, 1),
            r(10, 19, 2, 2),
            r(15, 29, 3, 3),
            r(50, 50, 1, 4),
        ]);
        assert_eq!(got.0, [(0, 9, 1), (10, 14, 2), (15, 29, 3), (30, 99, 1)]);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let got = flat(vec![r(0, u32::MAX, 1, 1), r(u32::MAX, u32::MAX, 2, 2)]);
        assert_eq!(got.0, [(0, u32::MAX - 1, 1), (u32::MAX, u32::MAX, 2)]);
        let (out, _) = resolve(vec![Range {
            start: 0,
            end: u128::MAX,
            id: 1,
            line: 1,
        }]);
        assert_eq!((out[0].start, out[0].end), (0, u128::MAX));
    }

    #[test]
    fn matches_a_brute_force_paint() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..300 {
            let mut paint = [0u16; 64];
            let mut ranges = Vec::new();
            for line in 1..=rnd(8) as u32 + 1 {
                let (a, b) = (rnd(64) as u32, rnd(64) as u32);
                let (s, e) = (a.min(b), a.max(b));
                let id = rnd(3) as u16 + 1;
                paint[s as usize..=e as usize].fill(id);
                ranges.push(r(s, e, id, line));
            }
            let (out, _) = resolve(ranges);
            let mut got = [0u16; 64];
            for p in &out {
                got[p.start as usize..=p.end as usize].fill(p.id);
            }
            assert_eq!(got, paint);
            assert!(out.windows(2).all(|w| w[0].end < w[1].start));
            assert!(
                out.windows(2)
                    .all(|w| w[0].id != w[1].id || w[0].end + 1 < w[1].start)
            );
        }
    }
}
