//! Merging the entries of all input files into one table.

use std::collections::BTreeSet;
use std::path::PathBuf;

use filter_common::maps::capacity;
use filter_common::territory::TerritoryId;
use ipnet::{Ipv4Net, Ipv6Net};

use super::cidr::NetBits;
use super::error::{Origin, Reason};
use super::{Format, GeoError, LocateBy};

/// One prefix as a loader produced it, with where it came from for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<P> {
    pub prefix: P,
    pub id: TerritoryId,
    /// Index of the source file.
    pub src: u32,
    /// 1-based line, 0 for formats without lines.
    pub line: u32,
}

/// What one loader produced from one file.
#[derive(Default, Debug)]
pub(crate) struct Loaded {
    pub v4: Vec<Entry<Ipv4Net>>,
    pub v6: Vec<Entry<Ipv6Net>>,
    pub rows: usize,
    pub skipped: usize,
    pub overlaps: usize,
}

/// What was read from one input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSummary {
    pub path: PathBuf,
    /// The format used (detected when `Auto` was asked for); for a zip archive, that of
    /// the files in it.
    pub format: Format,
    pub gzip: bool,
    /// Size on disk.
    pub bytes: u64,
    /// For a zip archive, the members read, in the archive's order; empty otherwise.
    pub members: Vec<String>,
    /// How GeoLite2 networks were placed, for GeoLite2 files (blocks or locations).
    pub locate_by: Option<LocateBy>,
    /// Data rows (CSV ranges, list entries, MMDB networks, GeoLite2 networks and locations,
    /// RIR address records) read.
    pub rows: usize,
    /// Rows without a usable territory that were skipped: MMDB records without a code,
    /// GeoLite2 networks whose location names no country, IP2Location `-` rows, RIR space
    /// available, reserved or without a country.
    pub skipped: usize,
    /// Ranges that overlapped an earlier range of the file and overrode it where they
    /// overlap.
    pub overlaps: usize,
    /// Prefixes this file produced, before merging with the other files.
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
}

/// A country table ready to be written to the kernel's LPM maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoTable {
    /// Sorted by prefix, no duplicate prefixes. Nested prefixes stay: the longest match wins.
    pub v4: Vec<(Ipv4Net, TerritoryId)>,
    pub v6: Vec<(Ipv6Net, TerritoryId)>,
    pub sources: Vec<SourceSummary>,
}

macro_rules! lpm {
    ($name:ident, $matching:ident, $field:ident, $p:ident, $int:ty) => {
        /// Longest-prefix match, as the kernel's LPM trie does it.
        pub fn $name(&self, addr: $int) -> Option<TerritoryId> {
            self.$matching(addr).map(|(_, id)| id)
        }

        /// The longest prefix covering `addr`, with its territory.
        pub fn $matching(&self, addr: $int) -> Option<($p, TerritoryId)> {
            (0..=<$p>::MAX_LEN).rev().find_map(|len| {
                let key = <$p>::network_of(addr, len);
                let i = self.$field.binary_search_by_key(&key, |(p, _)| *p).ok()?;
                Some(self.$field[i])
            })
        }
    };
}

impl GeoTable {
    /// Every territory that has at least one prefix.
    pub fn territories(&self) -> BTreeSet<TerritoryId> {
        let v4 = self.v4.iter().map(|(_, id)| *id);
        v4.chain(self.v6.iter().map(|(_, id)| *id)).collect()
    }

    /// How GeoLite2 networks were placed, if any file is GeoLite2.
    pub fn locate_by(&self) -> Option<LocateBy> {
        self.sources.iter().find_map(|s| s.locate_by)
    }

    lpm!(lookup_v4, matching_v4, v4, Ipv4Net, u32);
    lpm!(lookup_v6, matching_v6, v6, Ipv6Net, u128);
}

fn origin(paths: &[PathBuf], src: u32, line: u32) -> Origin {
    Origin {
        path: paths.get(src as usize).cloned().unwrap_or_default(),
        line: (line != 0).then_some(line),
    }
}

/// Sorts and deduplicates one family: the same prefix twice with the same code is kept once,
/// with different codes it is an error naming both sources.
fn merge<P: Copy + Ord + ToString>(
    paths: &[PathBuf],
    mut entries: Vec<Entry<P>>,
    len_of: impl Fn(&P) -> u8,
) -> Result<Vec<(P, TerritoryId)>, GeoError> {
    // Stable, so a conflict names the earlier file first; concatenated sorted files are
    // runs that the standard sort merges in linear time.
    if !entries.is_sorted_by_key(|e| e.prefix) {
        entries.sort_by_key(|e| e.prefix);
    }
    let mut out: Vec<(P, TerritoryId)> = Vec::with_capacity(entries.len());
    let mut kept: Option<&Entry<P>> = None;
    for e in &entries {
        if len_of(&e.prefix) == 0 {
            return Err(GeoError::Entry {
                at: origin(paths, e.src, e.line),
                reason: Reason::CoversEverything(e.prefix.to_string()),
            });
        }
        match kept {
            Some(k) if k.prefix == e.prefix => {
                if k.id != e.id {
                    return Err(GeoError::Conflict {
                        prefix: e.prefix.to_string(),
                        first: origin(paths, k.src, k.line),
                        first_id: k.id,
                        second: origin(paths, e.src, e.line),
                        second_id: e.id,
                    });
                }
            }
            _ => {
                out.push((e.prefix, e.id));
                kept = Some(e);
            }
        }
    }
    Ok(out)
}

fn check_capacity(
    paths: &[PathBuf],
    family: &'static str,
    count: usize,
    limit: u32,
) -> Result<(), GeoError> {
    if count <= limit as usize {
        return Ok(());
    }
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(GeoError::Capacity {
        files: files.join(", "),
        family,
        count,
        limit: limit as usize,
    })
}

/// Builds the table from every file's entries (`src` indexes `paths`).
pub(crate) fn build(
    paths: &[PathBuf],
    v4: Vec<Entry<Ipv4Net>>,
    v6: Vec<Entry<Ipv6Net>>,
    sources: Vec<SourceSummary>,
) -> Result<GeoTable, GeoError> {
    let v4 = merge(paths, v4, Ipv4Net::prefix_len)?;
    let v6 = merge(paths, v6, Ipv6Net::prefix_len)?;
    check_capacity(paths, "IPv4", v4.len(), capacity::TERRITORY_V4)?;
    check_capacity(paths, "IPv6", v6.len(), capacity::TERRITORY_V6)?;
    Ok(GeoTable { v4, v6, sources })
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::territory::territory_id;

    fn e4(p: &str, cc: &[u8; 2], src: u32, line: u32) -> Entry<Ipv4Net> {
        let id = territory_id(*cc).unwrap();
        Entry {
            prefix: Ipv4Net::parse_strict(p).unwrap(),
            id,
            src,
            line,
        }
    }

    fn paths() -> Vec<PathBuf> {
        vec!["a.csv".into(), "b.txt".into()]
    }

    #[test]
    fn nested_prefixes_resolve_to_the_most_specific() {
        let v4 = vec![
            e4("10.1.0.0/16", b"US", 1, 1),
            e4("10.0.0.0/8", b"CN", 0, 5),
            e4("10.0.0.0/8", b"CN", 1, 2),
        ];
        let t = build(&paths(), v4, vec![], vec![]).unwrap();
        assert_eq!(t.v4.len(), 2);
        assert_eq!(t.v4[0].0.to_string(), "10.0.0.0/8");
        assert_eq!(t.lookup_v4(0x0a01_0203), territory_id(*b"US"));
        assert_eq!(t.lookup_v4(0x0a02_0203), territory_id(*b"CN"));
        assert_eq!(t.lookup_v4(0x0b00_0000), None);
        let ids = [territory_id(*b"CN").unwrap(), territory_id(*b"US").unwrap()];
        assert_eq!(t.territories(), ids.into_iter().collect());
    }

    #[test]
    fn identical_prefix_with_two_codes_is_an_error() {
        let v4 = vec![e4("10.0.0.0/8", b"CN", 0, 5), e4("10.0.0.0/8", b"US", 1, 2)];
        let err = build(&paths(), v4, vec![], vec![]).unwrap_err().to_string();
        assert_eq!(err, "a.csv:5: 10.0.0.0/8 is CN here but US in b.txt:2");
    }

    #[test]
    fn slash_zero_is_an_error() {
        let v4 = vec![e4("0.0.0.0/0", b"CN", 1, 3)];
        let err = build(&paths(), v4, vec![], vec![]).unwrap_err().to_string();
        assert_eq!(err, "b.txt:3: 0.0.0.0/0 would cover every address");
    }

    #[test]
    fn capacity_is_enforced() {
        let limit = capacity::TERRITORY_V4 as usize;
        let err = check_capacity(&paths(), "IPv4", limit + 1, capacity::TERRITORY_V4);
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("a.csv, b.txt")
                && msg.contains(&(limit + 1).to_string())
                && msg.contains(&limit.to_string()),
            "{msg}"
        );
        assert!(check_capacity(&paths(), "IPv4", limit, capacity::TERRITORY_V4).is_ok());
    }
}
