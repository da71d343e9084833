//! Geo data loaders: country tables from range CSVs, MaxMind DBs, GeoLite2 and IP2Location
//! CSVs, the RIRs' delegated statistics and plain CIDR lists, merged into one table of
//! prefixes for the kernel's LPM maps.
//!
//! Everything is validated before a table is returned, so a caller can check a whole reload
//! before touching any map.

mod archive;
mod cidr;
mod csv;
pub mod diff;
mod error;
pub mod flat;
mod geolite2;
mod ip2location;
mod list;
mod load;
mod mmdb;
mod mmdb_data;
mod parts;
pub mod progress;
mod quoted;
mod ranges;
mod rir;
mod source;
mod table;

use std::fmt;
use std::str::FromStr;

pub use cidr::{NetBits, PrefixParseError, range_to_cidrs_v4, range_to_cidrs_v6};
pub use error::{GeoError, Origin, Reason};
pub use flat::{FlatError, FlatTable, FlatV4, FlatV6};
pub use geolite2::{LocateBy, ParseLocateByError};
pub use load::{load_bytes, load_files, load_files_with, load_inputs};
pub use parts::LoadOptions;
pub use table::{GeoTable, SourceSummary};

/// An input file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Detected per file from its content: MaxMind metadata, a GeoLite2 header, RIR `|`
    /// fields, IP2Location decimal numbers, `start,end,CC` commas, else a CIDR list.
    #[default]
    Auto,
    /// `start_ip,end_ip,CC` inclusive ranges.
    Csv,
    /// MaxMind DB.
    Mmdb,
    /// One CIDR or address per line, all of one territory (`--territory`).
    Cidr,
    /// MaxMind GeoLite2/GeoIP2 Country CSV: blocks files joined with a locations file.
    Geolite2,
    /// IP2Location LITE DB1 CSV: quoted decimal `ip_from,ip_to,country_code,...`.
    Ip2location,
    /// The RIRs' delegated(-extended) statistics: `registry|cc|type|start|value|...`.
    Rir,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Auto,
        Format::Csv,
        Format::Mmdb,
        Format::Cidr,
        Format::Geolite2,
        Format::Ip2location,
        Format::Rir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Csv => "csv",
            Format::Mmdb => "mmdb",
            Format::Cidr => "cidr",
            Format::Geolite2 => "geolite2",
            Format::Ip2location => "ip2location",
            Format::Rir => "rir",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown geo format {0:?} (expected auto, csv, mmdb, cidr, geolite2, ip2location or rir)")]
pub struct ParseFormatError(String);

impl FromStr for Format {
    type Err = ParseFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ParseFormatError(cidr::snippet(s)))
    }
}

#[cfg(test)]
mod formats_tests;
#[cfg(test)]
mod real_data_tests;
#[cfg(test)]
mod tests;
