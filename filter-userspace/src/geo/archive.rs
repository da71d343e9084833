//! `.zip` archives as MaxMind (`GeoLite2-Country-CSV_YYYYMMDD.zip`) and IP2Location
//! (`IP2LOCATION-LITE-DB1.CSV.ZIP`) publish them: CSV files, in a directory or not, beside
//! licence and readme text. The CSV members are read and the rest ignored; of MaxMind's
//! locations files, one per language with the same codes, only the English one is read
//! (another, if there is no English one), so that one bad translation cannot stop a load.

use std::io::{Cursor, Read};
use std::path::Path;

use zip::ZipArchive;

use super::GeoError;
use super::source::MAX_BYTES;

/// A local file header, or the end record of an empty archive.
pub(crate) fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
}

/// A CSV member, decompressed.
pub(crate) struct Member {
    pub name: String,
    pub data: Vec<u8>,
}

fn is_csv(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".csv")
}

/// A GeoLite2/GeoIP2 locations file, and whether it is the English one.
fn locations(name: &str) -> Option<bool> {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.contains("-Locations-")
        .then(|| file.ends_with("-Locations-en.csv"))
}

/// The members to read: every CSV file but the locations files in other languages than
/// the one kept.
fn chosen(names: Vec<(usize, String)>) -> Vec<(usize, String)> {
    let english = names.iter().any(|(_, n)| locations(n) == Some(true));
    let mut kept_other = false;
    names
        .into_iter()
        .filter(|(_, n)| match locations(n) {
            None => true,
            Some(en) if english => en,
            Some(_) => !std::mem::replace(&mut kept_other, true),
        })
        .collect()
}

/// The CSV members of the archive `data` (the contents of `path`), decompressed, in the
/// archive's order. Their total size is bounded like a gzip file's.
pub(crate) fn members(path: &Path, data: &[u8]) -> Result<Vec<Member>, GeoError> {
    let err = |reason: String| GeoError::Zip {
        path: path.to_owned(),
        reason,
    };
    let mut archive = ZipArchive::new(Cursor::new(data)).map_err(|e| err(e.to_string()))?;
    let mut names = Vec::new();
    let mut others = Vec::new();
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(|e| err(e.to_string()))?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().map_err(|e| err(e.to_string()))?.into_owned();
        if is_csv(&name) {
            names.push((i, name));
        } else {
            others.push(name);
        }
    }
    if names.is_empty() {
        let list = match others.len() {
            0 => "it is empty".to_owned(),
            _ => format!("it holds {}", others.join(", ")),
        };
        return Err(err(format!("no .csv file in it ({list})")));
    }
    let mut total: u64 = 0;
    let mut out = Vec::new();
    for (i, name) in chosen(names) {
        let file = archive
            .by_index(i)
            .map_err(|e| err(format!("{name}: {e}")))?;
        let mut member = Vec::with_capacity(file.size().min(256 << 20) as usize);
        file.take(MAX_BYTES + 1 - total)
            .read_to_end(&mut member)
            .map_err(|e| err(format!("{name}: {e}")))?;
        total += member.len() as u64;
        if total > MAX_BYTES {
            return Err(GeoError::TooLarge {
                path: path.to_owned(),
                limit: MAX_BYTES,
            });
        }
        out.push(Member { name, data: member });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_english_locations_only() {
        let names = [
            "G/GeoLite2-Country-Blocks-IPv4.csv",
            "G/GeoLite2-Country-Locations-de.csv",
            "G/GeoLite2-Country-Locations-en.csv",
            "G/GeoLite2-Country-Locations-fr.csv",
            "G/GeoLite2-Country-Blocks-IPv6.csv",
        ];
        let all = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.to_string()))
            .collect();
        let kept: Vec<usize> = chosen(all).into_iter().map(|(i, _)| i).collect();
        assert_eq!(kept, [0, 2, 4]);
        let no_english = vec![
            (0, "X-Locations-ja.csv".into()),
            (1, "X-Locations-de.csv".into()),
        ];
        let kept: Vec<usize> = chosen(no_english).into_iter().map(|(i, _)| i).collect();
        assert_eq!(kept, [0]);
        assert!(is_csv("IP2LOCATION-LITE-DB1.CSV") && !is_csv("LICENSE.txt"));
    }

    #[test]
    fn corrupt_archives_are_errors() {
        let msg = |data: &[u8]| match members(Path::new("g.zip"), data) {
            Err(e) => e.to_string(),
            Ok(m) => panic!("accepted {} members", m.len()),
        };
        assert!(msg(b"PK\x03\x04garbage").starts_with("g.zip: not a usable zip archive"));
        let empty = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        assert_eq!(
            msg(empty),
            "g.zip: not a usable zip archive: no .csv file in it (it is empty)"
        );
    }
}
