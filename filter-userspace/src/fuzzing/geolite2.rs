//! The body of the GeoLite2 fuzz target. The input is a locations file and a blocks file
//! separated by a NUL byte (either may come first: each is known by its header), or a zip
//! archive. The pair is loaded placing networks both ways (`--locate-by`), each table
//! checked against a naive join of the two files, and the pair zipped as MaxMind ships it
//! must load to the same table.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use filter_common::territory::TerritoryId;
use ipnet::{Ipv4Net, Ipv6Net};

use super::formats::{Row, check_rows, code, data_lines, lookup};

use crate::geo::{self, Format, GeoError, GeoTable, LoadOptions, LocateBy, NetBits};

/// A CSV line's fields, quotes removed: commas inside quotes belong to the field.
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut field, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            // A quote opens a field or closes it; inside an unquoted field it is text.
            '"' if quoted || field.trim().is_empty() => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    out.push(field.trim().to_string());
    out
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("accepted a header without {name}"))
}

/// The naive join: every network of the blocks file with its country, as `by` picks it.
fn expected(files: [&[u8]; 2], by: LocateBy) -> Vec<Row> {
    let mut countries: HashMap<String, Option<TerritoryId>> = HashMap::new();
    let mut blocks = Vec::new();
    for data in files {
        let mut lines = data_lines(data);
        let header = fields(lines.next().unwrap_or_default());
        if header.get(..2) == Some(&["geoname_id".to_string(), "locale_code".to_string()]) {
            let (id, cc) = (
                column(&header, "geoname_id"),
                column(&header, "country_iso_code"),
            );
            for line in lines {
                let f = fields(line);
                let country = (!f[cc].is_empty()).then(|| code(&f[cc]));
                countries.insert(f[id].trim_start_matches('0').to_string(), country);
            }
        } else {
            blocks.push((header, lines.map(fields).collect::<Vec<_>>()));
        }
    }
    let country = |id: &str| -> Option<TerritoryId> {
        if id.is_empty() {
            return None;
        }
        countries.get(id.trim_start_matches('0')).copied().flatten()
    };
    let mut rows = Vec::new();
    for (header, lines) in blocks {
        let network = column(&header, "network");
        let located = column(&header, "geoname_id");
        let registered = column(&header, "registered_country_geoname_id");
        for f in lines {
            let id = match by {
                LocateBy::Country => country(&f[located]).or_else(|| country(&f[registered])),
                LocateBy::Registered => country(&f[registered]),
            };
            let Some(id) = id else { continue };
            let text = &f[network];
            rows.push(if text.contains(':') {
                let p = Ipv6Net::parse_strict(text).expect("accepted an IPv6 network");
                Row {
                    v6: true,
                    start: p.first(),
                    end: p.last(),
                    id,
                }
            } else {
                let p = Ipv4Net::parse_strict(text).expect("accepted an IPv4 network");
                Row {
                    v6: false,
                    start: u128::from(p.first()),
                    end: u128::from(p.last()),
                    id,
                }
            });
        }
    }
    rows
}

fn load_pair(files: [&[u8]; 2], by: LocateBy) -> Result<GeoTable, GeoError> {
    let inputs = [
        (PathBuf::from("first.csv"), files[0]),
        (PathBuf::from("second.csv"), files[1]),
    ];
    let options = LoadOptions {
        format: Format::Geolite2,
        territory: None,
        locate_by: Some(by),
    };
    let table = geo::load_inputs(&inputs, &options);
    if let Ok(table) = &table {
        super::check_prefixes(table);
        assert_eq!(table.sources.len(), 2);
        assert!(table.sources.iter().all(|s| s.locate_by == Some(by)));
    }
    table
}

/// The pair as MaxMind's archive holds it: in a directory, the locations file named so.
fn zipped(files: [&[u8]; 2]) -> Vec<u8> {
    let locations = |d: &[u8]| d.contains(&b',') && data_lines_start(d, "geoname_id,locale_code");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (i, data) in files.into_iter().enumerate() {
        let name = if locations(data) {
            "G/GeoLite2-Country-Locations-en.csv".to_string()
        } else {
            format!("G/GeoLite2-Country-Blocks-{i}.csv")
        };
        zip.start_file(name, options).expect("a member");
        zip.write_all(data).expect("writing to a Vec cannot fail");
    }
    zip.finish()
        .expect("writing to a Vec cannot fail")
        .into_inner()
}

/// Whether the first data line of an accepted file starts so.
fn data_lines_start(data: &[u8], start: &str) -> bool {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let first = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).trim_ascii())
        .find(|l| !l.is_empty() && !l.starts_with(b"#"));
    first.is_some_and(|l| {
        let names: Vec<&[u8]> = l.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
        start
            .split(',')
            .map(str::as_bytes)
            .eq(names.into_iter().take(2))
    })
}

/// GeoLite2 Country CSV: a locations file and a blocks file, or a zip archive.
pub fn geo_geolite2(data: &[u8]) -> bool {
    if data.starts_with(b"PK") {
        // As MaxMind's archive: every CSV member is GeoLite2 (no MMDB decoder is reached).
        return super::load(data, Format::Geolite2, None).is_ok();
    }
    let Some(nul) = data.iter().position(|&b| b == 0) else {
        // One file alone cannot be a GeoLite2 table: blocks need their locations.
        let alone = geo::load_bytes(Path::new("alone.csv"), data, Format::Geolite2, None);
        assert!(alone.is_err(), "one GeoLite2 file alone was accepted");
        return false;
    };
    let files = [&data[..nul], &data[nul + 1..]];
    let Ok(table) = load_pair(files, LocateBy::Country) else {
        return false;
    };
    check_rows(&expected(files, LocateBy::Country), &[], |v6, n| {
        lookup(&table, v6, n)
    });
    if let Ok(registered) = load_pair(files, LocateBy::Registered) {
        check_rows(&expected(files, LocateBy::Registered), &[], |v6, n| {
            lookup(&registered, v6, n)
        });
    }
    let options = LoadOptions {
        format: Format::Geolite2,
        ..LoadOptions::default()
    };
    let zip = zipped(files);
    let unzipped = geo::load_inputs(&[(PathBuf::from("g.zip"), &zip[..])], &options)
        .expect("the accepted pair, zipped");
    assert_eq!((unzipped.v4, unzipped.v6), (table.v4, table.v6));
    assert!(unzipped.sources[0].members.len() == 2);
    true
}
