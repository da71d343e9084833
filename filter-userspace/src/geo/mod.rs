//! Geo data loaders: country tables from range CSVs, MaxMind DBs and plain CIDR lists, merged
//! into one table of prefixes for the kernel's LPM maps.
//!
//! Everything is validated before a table is returned, so a caller can check a whole reload
//! before touching any map.

mod cidr;
mod csv;
mod error;
pub mod flat;
mod list;
mod load;
mod mmdb;
mod mmdb_data;
pub mod progress;
mod ranges;
mod source;
mod table;

use std::fmt;
use std::str::FromStr;

pub use cidr::{PrefixParseError, PrefixV4, PrefixV6, range_to_cidrs_v4, range_to_cidrs_v6};
pub use error::{GeoError, Origin, Reason};
pub use flat::{FlatError, FlatTable, FlatV4, FlatV6};
pub use load::{load_bytes, load_files};
pub use table::{GeoTable, SourceSummary};

/// An input file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// MMDB if the file has MaxMind metadata, else CSV if the first entry has a comma, else
    /// a CIDR list.
    #[default]
    Auto,
    /// `start_ip,end_ip,CC` inclusive ranges.
    Csv,
    /// MaxMind DB.
    Mmdb,
    /// One CIDR or address per line, all of one territory (`--territory`).
    Cidr,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Auto, Format::Csv, Format::Mmdb, Format::Cidr];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Csv => "csv",
            Format::Mmdb => "mmdb",
            Format::Cidr => "cidr",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown geo format {0:?} (expected auto, csv, mmdb or cidr)")]
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
mod real_data_tests;
#[cfg(test)]
mod tests;
