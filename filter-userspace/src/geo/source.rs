//! Reading an input file: transparent gunzip and format detection.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::{Format, GeoError, geolite2};

/// Refuse anything bigger once decompressed: real country tables are tens of MB, and a
/// gzip bomb must not take the controller's memory.
pub(crate) const MAX_BYTES: u64 = 2 << 30;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
pub(crate) const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
/// The MaxMind DB spec bounds the metadata section, which starts at the marker, to 128 KiB
/// at the end of the file; searching only there keeps detection cheap on big CSVs.
const MMDB_METADATA_MAX: usize = 128 * 1024;

/// A file's contents, decompressed.
pub(crate) struct Input {
    pub data: Vec<u8>,
    /// The size on disk.
    pub bytes: u64,
    pub gzip: bool,
}

pub(crate) fn read(path: &Path) -> Result<Input, GeoError> {
    let io = |source| GeoError::Io {
        path: path.to_owned(),
        source,
    };
    let file = super::progress::Reader::new(std::fs::File::open(path).map_err(io)?, path);
    let mut raw = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut raw).map_err(io)?;
    let too_large = || GeoError::TooLarge {
        path: path.to_owned(),
        limit: MAX_BYTES,
    };
    if raw.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    decode(path, raw)
}

/// Gunzips `raw` (the contents of `path`) if it is gzip; takes it as it is otherwise.
pub(crate) fn decode(path: &Path, raw: Vec<u8>) -> Result<Input, GeoError> {
    let too_large = || GeoError::TooLarge {
        path: path.to_owned(),
        limit: MAX_BYTES,
    };
    let bytes = raw.len() as u64;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(Input {
            data: raw,
            bytes,
            gzip: false,
        });
    }
    // Text compresses about 4:1; the bound keeps a huge .gz from reserving gigabytes up front.
    let mut data = Vec::with_capacity(raw.len().saturating_mul(4).min(256 << 20));
    MultiGzDecoder::new(&raw[..])
        .take(MAX_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|source| GeoError::Gzip {
            path: path.to_owned(),
            source,
        })?;
    if data.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    Ok(Input {
        data,
        bytes,
        gzip: true,
    })
}

/// Splits into lines with their 1-based numbers, without the line ending (and without the
/// byte-order mark that spreadsheet exports put in front of the first line).
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    data.split(|&b| b == b'\n').enumerate().map(|(i, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (u32::try_from(i + 1).unwrap_or(u32::MAX), line)
    })
}

/// A line that carries data: not blank, not a `#` comment. Trimmed.
pub(crate) fn data_line(line: &[u8]) -> Option<&[u8]> {
    let line = line.trim_ascii();
    (!line.is_empty() && !line.starts_with(b"#")).then_some(line)
}

/// The format of decompressed data (never `Auto`), `None` for a text file without entries.
/// Text formats are told apart by their first data line: a GeoLite2 header, RIR `|`
/// fields, an IP2Location decimal number (or its header), commas, else a CIDR list.
pub(crate) fn detect(data: &[u8]) -> Option<Format> {
    let tail = &data[data
        .len()
        .saturating_sub(MMDB_METADATA_MAX + MMDB_MARKER.len())..];
    if tail.windows(MMDB_MARKER.len()).any(|w| w == MMDB_MARKER) {
        return Some(Format::Mmdb);
    }
    let first = lines(data).find_map(|(_, line)| data_line(line))?;
    Some(if geolite2::kind_of_header(first).is_some() {
        Format::Geolite2
    } else if first.contains(&b'|') {
        Format::Rir
    } else if ip2location_line(first) {
        Format::Ip2location
    } else if first.contains(&b',') {
        Format::Csv
    } else {
        Format::Cidr
    })
}

/// A first field that is a decimal number, quoted or not (no address is written so in the
/// other formats), or IP2Location's header.
fn ip2location_line(line: &[u8]) -> bool {
    if !line.contains(&b',') {
        return false;
    }
    let first = line
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let bare = first
        .strip_prefix(b"\"")
        .and_then(|f| f.strip_suffix(b"\""))
        .unwrap_or(first);
    bare == b"ip_from" || (!bare.is_empty() && bare.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect(b"# c\n\n1.0.0.0,1.0.0.255,AU\n"), Some(Format::Csv));
        assert_eq!(detect(b"# a, b\n10.0.0.0/8\n"), Some(Format::Cidr));
        assert_eq!(detect(b"\n# only comments\n  \n"), None);
        let geolite2 = b"network,geoname_id,registered_country_geoname_id\n1.0.0.0/24,1,1\n";
        assert_eq!(detect(geolite2), Some(Format::Geolite2));
        let locations = b"\xef\xbb\xbfgeoname_id,locale_code,continent_code\n";
        assert_eq!(detect(locations), Some(Format::Geolite2));
        let ip2location = b"\"16777216\",\"16777471\",\"AU\",\"Australia\"\n";
        assert_eq!(detect(ip2location), Some(Format::Ip2location));
        assert_eq!(
            detect(b"ip_from,ip_to,country_code\n"),
            Some(Format::Ip2location)
        );
        let rir = b"# APNIC\n2|apnic|20260106|7|19830613|20260106|+0000\n";
        assert_eq!(detect(rir), Some(Format::Rir));
        assert_eq!(detect(b"\"1.0.0.0\",\"1.0.0.255\",AU\n"), Some(Format::Csv));
        let mut mmdb = vec![0u8; 300_000];
        mmdb.extend_from_slice(MMDB_MARKER);
        mmdb.extend_from_slice(b"metadata");
        assert_eq!(detect(&mmdb), Some(Format::Mmdb));
    }

    #[test]
    fn lines_are_numbered_and_trimmed() {
        let got: Vec<_> = lines(b"\xef\xbb\xbfa\r\n\n  # x\n b \n").collect();
        assert_eq!(got[0], (1, &b"a"[..]));
        assert_eq!(got[3], (4, &b" b "[..]));
        let data: Vec<_> = got
            .iter()
            .filter_map(|(n, l)| data_line(l).map(|l| (*n, l)))
            .collect();
        assert_eq!(data, [(1, &b"a"[..]), (4, &b"b"[..])]);
    }
}
