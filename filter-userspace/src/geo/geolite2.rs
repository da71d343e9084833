//! MaxMind GeoLite2 / GeoIP2 Country CSV, as published: blocks files
//! (`network,geoname_id,registered_country_geoname_id,...`) give each network a location by
//! its GeoNames id, and a locations file (`geoname_id,locale_code,...,country_iso_code,...`)
//! gives each location its country code. Columns are found by their header names, so
//! editions that add columns (`is_anycast`) read the same.
//!
//! The location a network is placed in follows [`LocateBy`]. A network whose location names
//! no country (a continent, or no id at all) is skipped and counted, as the MMDB loader
//! skips records without a code.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use filter_common::territory::TerritoryId;
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::cidr::{NetBits, snippet};
use super::csv::{LineError, from_ranges, parse_code};
use super::error::{Origin, Reason, code};
use super::quoted::split;
use super::ranges::Range;
use super::source::{data_line, lines};
use super::table::Loaded;

/// Which of a GeoLite2 network's locations places it in a territory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocateBy {
    /// Where MaxMind locates the network's users (`geoname_id`), else, where that names no
    /// country, the country it is registered in (`registered_country_geoname_id`): what the
    /// MMDB of the same release gives as `country`, else `registered_country`.
    #[default]
    Country,
    /// Only the country the network is registered in (`registered_country_geoname_id`).
    Registered,
}

impl LocateBy {
    pub const ALL: [LocateBy; 2] = [LocateBy::Country, LocateBy::Registered];

    pub fn name(self) -> &'static str {
        match self {
            LocateBy::Country => "country",
            LocateBy::Registered => "registered",
        }
    }
}

impl fmt::Display for LocateBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown --locate-by {0:?} (expected country or registered)")]
pub struct ParseLocateByError(String);

impl FromStr for LocateBy {
    type Err = ParseLocateByError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LocateBy::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| ParseLocateByError(snippet(s)))
    }
}

const BLOCKS_HEADER: &str = "network,geoname_id,registered_country_geoname_id,...";
const LOCATIONS_HEADER: &str = "geoname_id,locale_code,...,country_iso_code,...";

/// Which GeoLite2 file a header says this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Blocks,
    Locations,
}

fn first_line(data: &[u8]) -> Option<(u32, &[u8])> {
    lines(data).find_map(|(n, line)| data_line(line).map(|l| (n, l)))
}

/// The kind of GeoLite2 file `data` is, from its header line.
pub(crate) fn kind(data: &[u8]) -> Option<Kind> {
    kind_of_header(first_line(data)?.1)
}

/// Detection looks at the first two names only, so that it stays cheap and a header with
/// more columns is still recognised.
pub(crate) fn kind_of_header(line: &[u8]) -> Option<Kind> {
    let mut names = line.split(|&b| b == b',').map(<[u8]>::trim_ascii);
    match (names.next()?, names.next()?) {
        (b"network", b"geoname_id") => Some(Kind::Blocks),
        (b"geoname_id", b"locale_code") => Some(Kind::Locations),
        _ => None,
    }
}

fn utf8(n: u32, line: &[u8]) -> Result<&str, LineError> {
    std::str::from_utf8(line).map_err(|_| (n, Reason::NotUtf8))
}

/// The positions of `wanted` in the header line `line` (`expected` describes it in errors),
/// and how many columns it has.
fn header<const N: usize>(
    line: &str,
    wanted: [&'static str; N],
    expected: &'static str,
) -> Result<([usize; N], usize), Reason> {
    let mut names = Vec::new();
    split(line, &mut names)?;
    if !names.contains(&wanted[0]) {
        return Err(Reason::Header {
            expected,
            found: snippet(line),
        });
    }
    let mut at = [0; N];
    for (slot, name) in at.iter_mut().zip(wanted) {
        *slot = names
            .iter()
            .position(|&n| n == name)
            .ok_or(Reason::MissingColumn(name))?;
    }
    Ok((at, names.len()))
}

/// Checks a row's column count against the header's.
fn columns(fields: &[&str], width: usize) -> Result<(), Reason> {
    if fields.len() == width {
        return Ok(());
    }
    Err(Reason::ColumnCount {
        expected: format!("{width} as in the header"),
        found: fields.len(),
    })
}

fn geoname_id(text: &str) -> Result<u32, Reason> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reason::BadGeonameId(snippet(text)));
    }
    text.parse()
        .map_err(|_| Reason::BadGeonameId(snippet(text)))
}

/// One locations row: its id and country code (`None` for a continent).
fn location<'a>(
    line: &'a str,
    fields: &mut Vec<&'a str>,
    width: usize,
    [id_at, code_at]: [usize; 2],
) -> Result<(u32, Option<TerritoryId>), Reason> {
    split(line, fields)?;
    columns(fields, width)?;
    let id = geoname_id(fields[id_at])?;
    let code = match fields[code_at] {
        "" => None,
        cc => Some(parse_code(cc)?),
    };
    Ok((id, code))
}

/// Where a location was read: for a message about a second file that disagrees.
#[derive(Clone, Copy, Debug)]
struct Location {
    code: Option<TerritoryId>,
    part: u32,
    line: u32,
}

/// Every location of the load's locations files: GeoNames id to country code (`None` for a
/// continent).
#[derive(Debug, Default)]
pub(crate) struct Geonames {
    map: HashMap<u32, Location>,
}

impl Geonames {
    /// Reads one locations file, the load's part number `part` (`names` names every part,
    /// for messages). Returns its rows.
    pub(crate) fn read(
        &mut self,
        data: &[u8],
        part: u32,
        names: &[PathBuf],
    ) -> Result<usize, LineError> {
        let mut rows = lines(data).filter_map(|(n, line)| data_line(line).map(|l| (n, l)));
        let Some((n, head)) = rows.next() else {
            return Ok(0);
        };
        let head = utf8(n, head)?;
        let ([id_at, code_at], width) =
            header(head, ["geoname_id", "country_iso_code"], LOCATIONS_HEADER)
                .map_err(|r| (n, r))?;
        let mut fields = Vec::new();
        let mut count = 0;
        for (n, line) in rows {
            let line = utf8(n, line)?;
            let (id, code) =
                location(line, &mut fields, width, [id_at, code_at]).map_err(|r| (n, r))?;
            let here = Location {
                code,
                part,
                line: n,
            };
            self.insert(id, here, names).map_err(|r| (n, r))?;
            count += 1;
        }
        Ok(count)
    }

    /// Adds a location; the same id again must name the same country.
    fn insert(&mut self, id: u32, here: Location, names: &[PathBuf]) -> Result<(), Reason> {
        let Some(there) = self.map.get(&id) else {
            self.map.insert(id, here);
            return Ok(());
        };
        if there.code == here.code {
            return Ok(());
        }
        let name = |c: Option<TerritoryId>| c.map_or_else(|| "no country".into(), code);
        Err(Reason::GeonameConflict {
            id,
            here: name(here.code),
            there: name(there.code),
            at: Origin {
                path: names.get(there.part as usize).cloned().unwrap_or_default(),
                line: Some(there.line),
            },
        })
    }

    /// The country of a blocks row's id column: `None` for an empty id or a location
    /// without a country; an id no locations file has is an error.
    fn country(&self, text: &str) -> Result<Option<TerritoryId>, Reason> {
        if text.is_empty() {
            return Ok(None);
        }
        let id = geoname_id(text)?;
        self.map
            .get(&id)
            .map(|l| l.code)
            .ok_or(Reason::UnknownGeoname(id))
    }
}

enum Network {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

/// One blocks row's network, and its territory (`None`: skipped).
fn block(
    fields: &[&str],
    [network, located, registered]: [usize; 3],
    geonames: &Geonames,
    by: LocateBy,
) -> Result<(Network, Option<TerritoryId>), Reason> {
    let text = fields[network];
    let network = if text.contains(':') {
        let p = Ipv6Net::parse_strict(text).map_err(Reason::BadPrefix)?;
        if p.prefix_len() == 0 {
            return Err(Reason::CoversEverything(p.to_string()));
        }
        Network::V6(p)
    } else {
        let p = Ipv4Net::parse_strict(text).map_err(Reason::BadPrefix)?;
        if p.prefix_len() == 0 {
            return Err(Reason::CoversEverything(p.to_string()));
        }
        Network::V4(p)
    };
    // Both ids are checked whichever is used: an unknown one means mismatched files.
    let located = geonames.country(fields[located])?;
    let registered = geonames.country(fields[registered])?;
    let id = match by {
        LocateBy::Country => located.or(registered),
        LocateBy::Registered => registered,
    };
    Ok((network, id))
}

/// Parses a blocks file into prefixes, each network placed by `by` through `geonames`.
pub(crate) fn blocks(
    data: &[u8],
    src: u32,
    geonames: &Geonames,
    by: LocateBy,
) -> Result<Loaded, LineError> {
    let mut rows = lines(data).filter_map(|(n, line)| data_line(line).map(|l| (n, l)));
    let Some((n, head)) = rows.next() else {
        return Ok(Loaded::default());
    };
    let head = utf8(n, head)?;
    let (at, width) = header(
        head,
        ["network", "geoname_id", "registered_country_geoname_id"],
        BLOCKS_HEADER,
    )
    .map_err(|r| (n, r))?;
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let (mut count, mut skipped) = (0, 0);
    let mut fields = Vec::new();
    for (n, line) in rows {
        let line = utf8(n, line)?;
        split(line, &mut fields).map_err(|r| (n, r))?;
        columns(&fields, width).map_err(|r| (n, r))?;
        let (network, id) = block(&fields, at, geonames, by).map_err(|r| (n, r))?;
        count += 1;
        let Some(id) = id else {
            skipped += 1;
            continue;
        };
        match network {
            Network::V4(p) => v4.push(Range {
                start: p.first(),
                end: p.last(),
                id,
                line: n,
            }),
            Network::V6(p) => v6.push(Range {
                start: p.first(),
                end: p.last(),
                id,
                line: n,
            }),
        }
    }
    Ok(Loaded {
        rows: count,
        skipped,
        ..from_ranges(v4, v6, src)
    })
}

#[cfg(test)]
#[path = "geolite2_tests.rs"]
mod tests;
