//! Loader errors. Every message starts with the file (and line, where there is one), so an
//! operator can go straight to the offending entry.

use std::fmt;
use std::path::PathBuf;

use filter_common::territory::{TerritoryId, territory_code};

use super::cidr::PrefixParseError;
use super::{Format, LocateBy};

/// Where an entry came from: a file, and a line for text formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: Option<u32>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// A territory id as its code, for messages.
pub(crate) fn code(id: TerritoryId) -> String {
    match territory_code(id) {
        Some(c) => String::from_utf8_lossy(&c).into_owned(),
        None => format!("#{id}"),
    }
}

/// What is wrong with one entry of a file.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("expected 3 comma-separated columns (start,end,CC), found {0}")]
    Columns(usize),
    #[error("unparseable address {0:?}")]
    BadAddress(String),
    #[error("start {start} and end {end} are of different address families")]
    MixedFamilies { start: String, end: String },
    #[error("start {start} is after end {end}")]
    StartAfterEnd { start: String, end: String },
    #[error(
        "country code {0:?} is not two upper-case letters \
         (codes must be upper-case ISO 3166-1 alpha-2, e.g. \"CN\")"
    )]
    BadCode(String),
    #[error("{0}")]
    BadPrefix(PrefixParseError),
    #[error("{0} would cover every address")]
    CoversEverything(String),
    #[error("a quoted field is not closed, or text follows its closing quote")]
    Quoting,
    #[error("found {found} column{}, expected {expected}", if *.found == 1 { "" } else { "s" })]
    ColumnCount { expected: String, found: usize },
    #[error("expected the header line {expected}, found {found:?}")]
    Header {
        expected: &'static str,
        found: String,
    },
    #[error("the header has no {0} column")]
    MissingColumn(&'static str),
    #[error("geoname_id {0:?} is not a number")]
    BadGeonameId(String),
    #[error(
        "geoname_id {0} is in no locations file \
         (are the blocks and locations files of the same release?)"
    )]
    UnknownGeoname(u32),
    #[error("geoname_id {id} is {here} here but {there} in {at}")]
    GeonameConflict {
        id: u32,
        here: String,
        there: String,
        at: Origin,
    },
    #[error("{0:?} is not an address as a decimal number (0 to 2^128 - 1)")]
    BadDecimal(String),
    #[error("{0:?} is not a count of addresses (1 to 2^32)")]
    BadCount(String),
    #[error("{count} addresses from {start} run past 255.255.255.255")]
    PastEnd { start: String, count: u64 },
    #[error("record type {0:?} is none of ipv4, ipv6, asn")]
    RirType(String),
    #[error("status {0:?} is none of allocated, assigned, available, reserved")]
    RirStatus(String),
}

#[derive(thiserror::Error, Debug)]
pub enum GeoError {
    #[error("no geo data files given")]
    NoFiles,
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt gzip data: {source}", .path.display())]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than the limit of {limit} bytes (after decompression)", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{at}: {reason}")]
    Entry { at: Origin, reason: Reason },
    #[error("{}: no entries{}", .path.display(), skipped_note(*.skipped))]
    NoEntries { path: PathBuf, skipped: usize },
    #[error("{}: a CIDR list needs --territory CC", .path.display())]
    NeedsTerritory { path: PathBuf },
    #[error(
        "{}: --territory is only for CIDR lists; this {format} file carries its own codes",
        .path.display()
    )]
    TerritoryNotAllowed { path: PathBuf, format: Format },
    #[error(
        "{}: --territory {code:?} is not two upper-case letters \
         (codes must be upper-case ISO 3166-1 alpha-2, e.g. \"CN\")",
        .path.display()
    )]
    BadTerritory { path: PathBuf, code: String },
    #[error("{}: not a usable MaxMind DB: {reason}", .path.display())]
    Mmdb { path: PathBuf, reason: String },
    #[error("{}: not a usable zip archive: {reason}", .path.display())]
    Zip { path: PathBuf, reason: String },
    #[error(
        "{}: a GeoLite2 blocks file needs the locations file of its release \
         (GeoLite2-Country-Locations-en.csv) among the files{}",
        .path.display(),
        beside_note(.beside.as_deref())
    )]
    NeedsLocations {
        path: PathBuf,
        beside: Option<PathBuf>,
    },
    #[error(
        "{}: a GeoLite2 locations file only names the countries of its blocks files; \
         load it with them (GeoLite2-Country-Blocks-IPv4.csv, GeoLite2-Country-Blocks-IPv6.csv)",
        .path.display()
    )]
    LocationsOnly { path: PathBuf },
    #[error(
        "--locate-by {0} is for GeoLite2/GeoIP2 CSV files (blocks and locations), \
         and none of the files is one"
    )]
    LocateByUnused(LocateBy),
    #[error(
        "{first}: {prefix} is {} here but {} in {second}",
        code(*.first_id),
        code(*.second_id)
    )]
    Conflict {
        prefix: String,
        first: Origin,
        first_id: TerritoryId,
        second: Origin,
        second_id: TerritoryId,
    },
    #[error("{files}: {count} {family} prefixes exceed the map capacity of {limit}")]
    Capacity {
        files: String,
        family: &'static str,
        count: usize,
        limit: usize,
    },
}

fn beside_note(beside: Option<&std::path::Path>) -> String {
    match beside {
        Some(p) => format!("; there is one beside it: {}", p.display()),
        None => String::new(),
    }
}

fn skipped_note(skipped: usize) -> String {
    match skipped {
        0 => String::new(),
        n => format!(" ({n} networks without a country code skipped)"),
    }
}
