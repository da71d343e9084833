//! What the territory lookups of a sample set read of the flattened table in the kernel:
//! the distinct 4 KiB pages and array elements, through the lookup code the program runs.
//!
//! Why: the number of reads per lookup does not grow with the table, so what the scaling
//! figures' extra cost follows is how far those reads spread. Measured here on the
//! bench's own samples and the kernel's own arrays, the explanation is a figure, not a
//! guess. Elements of at most 64 bytes are one cache line each; larger ones (a `tbl8`
//! group, an IPv6 node) count whole, so `bytes` bounds the lines from above.

use std::{
    cell::{Cell, RefCell},
    collections::HashSet,
};

use filter_common::{Address, geo};
use geofence::geo::flat::{FlatV4Ref, FlatV6Ref};

const PAGE: usize = 4096;

/// The reach of a sample set's lookups.
#[derive(Clone, Copy, Debug, Default)]
pub struct Footprint {
    /// Distinct pages read.
    pub pages: usize,
    /// Bytes of the distinct elements read.
    pub bytes: usize,
    /// Element reads per lookup, on average.
    pub reads: f64,
    /// Distinct 64-byte lines one lookup reads, on average: what a cold lookup misses.
    pub lines: f64,
}

impl Footprint {
    pub fn mib(&self) -> f64 {
        self.bytes as f64 / f64::from(1 << 20)
    }
}

const LINE: usize = 64;

/// The elements read so far: (array, index) with the element's size.
#[derive(Default)]
struct Reads {
    elements: RefCell<HashSet<(u8, u32, usize)>>,
    count: Cell<usize>,
    /// The current lookup's lines, as (array, key): the line number in an array of
    /// elements of at most a line; in an array of larger ones (blocks, groups, nodes, the
    /// first levels) the element's number, as a lookup reads one entry, one line, of each
    /// it reads.
    lookup_lines: RefCell<HashSet<(u8, usize)>>,
    lines: Cell<usize>,
}

impl Reads {
    /// Records the read of element `i` of `array` and returns it, as a lookup accessor.
    fn read<'a, T>(&self, array: u8, slice: &'a [T], i: u32) -> Option<&'a T> {
        self.elements
            .borrow_mut()
            .insert((array, i, size_of::<T>()));
        self.count.set(self.count.get() + 1);
        let line = if size_of::<T>() <= LINE {
            i as usize * size_of::<T>() / LINE
        } else {
            i as usize
        };
        self.lookup_lines.borrow_mut().insert((array, line));
        slice.get(i as usize)
    }

    /// Ends one lookup: its lines join the total.
    fn end_lookup(&self) {
        let mut lines = self.lookup_lines.borrow_mut();
        self.lines.set(self.lines.get() + lines.len());
        lines.clear();
    }

    fn footprint(&self, lookups: usize) -> Footprint {
        let elements = self.elements.borrow();
        // Every element size divides the page, so an element lies in one page.
        let pages: HashSet<(u8, usize)> = elements
            .iter()
            .map(|&(array, i, size)| (array, i as usize * size / PAGE))
            .collect();
        Footprint {
            pages: pages.len(),
            bytes: elements.iter().map(|&(_, _, size)| size).sum(),
            reads: self.count.get() as f64 / lookups.max(1) as f64,
            lines: self.lines.get() as f64 / lookups.max(1) as f64,
        }
    }
}

/// The reach of the IPv4 lookups of `samples` (IPv4-mapped sources).
pub fn v4(table: FlatV4Ref<'_>, samples: &[Address]) -> Footprint {
    let reads = Reads::default();
    for s in samples {
        geo::lookup_v4(
            u32::from_be_bytes([s[12], s[13], s[14], s[15]]),
            |i| reads.read(0, table.tbl16, i),
            |i| reads.read(1, table.tbl24, i),
            |l| reads.read(2, table.block_lists, l),
            |g| reads.read(3, table.tbl8, g),
            |l| reads.read(4, table.lists, l),
        );
        reads.end_lookup();
    }
    reads.footprint(samples.len())
}

/// The reach of the IPv6 lookups of `samples`.
pub fn v6(table: FlatV6Ref<'_>, samples: &[Address]) -> Footprint {
    let reads = Reads::default();
    for s in samples {
        let addr = u128::from_be_bytes(*s);
        geo::lookup_v6(
            (addr >> 64) as u64,
            addr as u64,
            |i| reads.read(0, table.index, i),
            |n| reads.read(1, table.nodes, n),
            |i| reads.read(2, table.starts_hi, i),
            |i| reads.read(3, table.starts_lo, i),
            |i| reads.read(4, table.territories, i),
            |i| reads.read(5, table.packed, i),
        );
        reads.end_lookup();
    }
    reads.footprint(samples.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_each_lookups_distinct_lines() {
        let small = [0u64; 32];
        let large = [[0u32; 256]; 4];
        let reads = Reads::default();
        // One lookup: two words of line 0, one of line 1, and two large elements.
        for i in [0, 7, 8] {
            reads.read(0, &small, i);
        }
        reads.read(1, &large, 0);
        reads.read(1, &large, 3);
        reads.end_lookup();
        // Another: line 0 again counts again, as it is this lookup's too.
        reads.read(0, &small, 1);
        reads.end_lookup();
        let f = reads.footprint(2);
        assert_eq!(f.lines, (4.0 + 1.0) / 2.0);
        assert_eq!(f.reads, 6.0 / 2.0);
        assert_eq!(
            f.pages, 2,
            "a page of words, a page holding both 1 KiB elements"
        );
        assert_eq!(f.bytes, 4 * 8 + 2 * 1024);
    }
}
