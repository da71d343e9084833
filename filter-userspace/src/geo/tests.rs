//! File-level behaviour of `load_files`: messages name the file, gzip, detection, merging.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// A scratch directory under the system temp dir, removed on drop.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("geofence-geo-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(super) fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    pub(super) fn gz(&self, name: &str, data: &[u8]) -> PathBuf {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        self.file(name, &enc.finish().unwrap())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn id(cc: &[u8; 2]) -> u16 {
    filter_common::territory::territory_id(*cc).unwrap()
}

fn load_err(paths: &[&Path], format: Format, territory: Option<&str>) -> String {
    let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    match load_files(&paths, format, territory) {
        Err(e) => e.to_string(),
        Ok(t) => panic!("accepted: {t:?}"),
    }
}

fn name(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn csv_errors_name_file_and_line() {
    let s = Scratch::new();
    let f = s.file(
        "geo.csv",
        b"# header\n10.0.0.0,10.0.0.8,CN\n10.0.0.9,10.0.0.1,CN\n",
    );
    let msg = load_err(&[&f], Format::Auto, None);
    assert_eq!(
        msg,
        format!("{}:3: start 10.0.0.9 is after end 10.0.0.1", name(&f))
    );

    let f = s.file("lower.csv", b"1.0.0.0,1.0.0.255,cn\n");
    let msg = load_err(&[&f], Format::Csv, None);
    assert!(
        msg.starts_with(&format!("{}:1: country code \"cn\"", name(&f))),
        "{msg}"
    );

    let f = s.file("all.csv", b"\n0.0.0.0,255.255.255.255,AU\n");
    let msg = load_err(&[&f], Format::Csv, None);
    assert_eq!(
        msg,
        format!("{}:2: 0.0.0.0/0 would cover every address", name(&f))
    );
}

#[test]
fn gzip_is_transparent_and_corrupt_gzip_is_an_error() {
    let s = Scratch::new();
    let csv = s.gz(
        "geo.csv.gz",
        b"1.0.0.0,1.0.0.255,AU\n2001:db8::,2001:db8::ff,JP\n",
    );
    let list = s.gz("cn.txt.gz", b"# cn\n1.0.1.0/24\n");
    let t = load_files(std::slice::from_ref(&csv), Format::Auto, None).unwrap();
    assert_eq!(t.lookup_v4(0x0100_0001), Some(id(b"AU")));
    assert_eq!(t.lookup_v6(0x2001_0db8 << 96 | 0x10), Some(id(b"JP")));
    let src = &t.sources[0];
    assert_eq!(
        (
            src.format,
            src.gzip,
            src.rows,
            src.v4_prefixes,
            src.v6_prefixes
        ),
        (Format::Csv, true, 2, 1, 1)
    );
    let t = load_files(&[list], Format::Auto, Some("CN")).unwrap();
    assert_eq!((t.sources[0].format, t.v4.len()), (Format::Cidr, 1));

    let mut bytes = std::fs::read(&csv).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    bytes.truncate(bytes.len() - 4);
    let bad = s.file("bad.gz", &bytes);
    let msg = load_err(&[&bad], Format::Auto, None);
    assert!(
        msg.starts_with(&format!("{}: corrupt gzip data", name(&bad))),
        "{msg}"
    );
}

#[test]
fn territory_rules() {
    let s = Scratch::new();
    let list = s.file("cn.zone", b"1.0.1.0/24\n1.0.2.0/23\n");
    let csv = s.file("geo.csv", b"1.0.0.0,1.0.0.255,AU\n");
    let msg = load_err(&[&list], Format::Auto, None);
    assert_eq!(
        msg,
        format!("{}: a CIDR list needs --territory CC", name(&list))
    );
    let msg = load_err(&[&list], Format::Cidr, Some("cn"));
    assert!(
        msg.starts_with(&format!("{}: --territory \"cn\"", name(&list))),
        "{msg}"
    );
    assert!(msg.contains("upper-case ISO 3166-1 alpha-2"), "{msg}");
    let msg = load_err(&[&list, &csv], Format::Auto, Some("CN"));
    assert!(
        msg.starts_with(&format!(
            "{}: --territory is only for CIDR lists",
            name(&csv)
        )),
        "{msg}"
    );
    let t = load_files(&[list], Format::Auto, Some("XA")).unwrap();
    assert_eq!(t.territories().into_iter().collect::<Vec<_>>(), [id(b"XA")]);
}

#[test]
fn empty_and_missing_files() {
    let s = Scratch::new();
    let empty = s.file("empty.csv", b"# nothing\n\n");
    assert_eq!(
        load_err(&[&empty], Format::Auto, None),
        format!("{}: no entries", name(&empty))
    );
    assert_eq!(
        load_err(&[&empty], Format::Csv, None),
        format!("{}: no entries", name(&empty))
    );
    let gone = s.0.join("missing.csv");
    let msg = load_err(&[&gone], Format::Auto, None);
    assert!(
        msg.starts_with(&format!("{}: cannot read", name(&gone))),
        "{msg}"
    );
    assert_eq!(load_err(&[], Format::Auto, None), "no geo data files given");
    let junk = s.file("junk.mmdb", b"not a database");
    let msg = load_err(&[&junk], Format::Mmdb, None);
    assert!(msg.contains("junk.mmdb: not a usable MaxMind DB"), "{msg}");
}

#[test]
fn merging_files() {
    let s = Scratch::new();
    let world = s.file(
        "world.csv",
        b"10.0.0.0,10.255.255.255,CN\n2001:db8::,2001:db8::ffff,JP\n",
    );
    let custom = s.file("custom.txt", b"10.1.0.0/16\n10.0.0.0/8\n2001:db8::1\n");
    let msg = load_err(&[&custom, &world], Format::Auto, Some("CN"));
    assert!(
        msg.starts_with(&name(&world)),
        "a territory with a CSV must fail: {msg}"
    );

    let cn = s.file("cn.txt", b"10.0.0.0/8\n10.0.0.0/8\n");
    let us = s.file("us.csv", b"10.1.0.0,10.1.255.255,US\n");
    let t = load_files(&[world.clone(), us.clone()], Format::Auto, None).unwrap();
    assert_eq!(t.v4.len(), 2);
    assert_eq!(t.lookup_v4(0x0a01_0001), Some(id(b"US")));
    assert_eq!(t.lookup_v4(0x0a02_0001), Some(id(b"CN")));
    assert_eq!(t.lookup_v4(0x0b00_0000), None);
    assert_eq!(t.lookup_v6(0x2001_0db8 << 96), Some(id(b"JP")));
    assert_eq!(t.lookup_v6(0x2001_0db9 << 96), None);
    assert_eq!(t.sources.len(), 2);
    assert!(t.v4.windows(2).all(|w| w[0].0 < w[1].0));

    // Same prefix, same code, from another file and twice in one list: kept once.
    let t = load_files(std::slice::from_ref(&cn), Format::Cidr, Some("CN")).unwrap();
    assert_eq!(t.v4.len(), 1);
    let conflict = s.file("conflict.csv", b"10.0.0.0,10.255.255.255,RU\n");
    let msg = load_err(&[&world, &conflict], Format::Csv, None);
    assert_eq!(
        msg,
        format!(
            "{}:1: 10.0.0.0/8 is CN here but RU in {}:1",
            name(&world),
            name(&conflict)
        )
    );
}

#[test]
fn format_names_round_trip() {
    for f in Format::ALL {
        assert_eq!(f.to_string().parse::<Format>(), Ok(f));
    }
    assert_eq!("mmdb".parse::<Format>(), Ok(Format::Mmdb));
    assert!("CSV".parse::<Format>().is_err());
    assert!(
        "".parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("auto, csv, mmdb, cidr, geolite2, ip2location or rir")
    );
}

#[test]
fn load_bytes_matches_load_files() {
    let dir = Scratch::new();
    let csv = b"1.0.0.0,1.0.0.255,AU\n2001:db8::,2001:db8::ffff,JP\n";
    let path = dir.gz("t.csv.gz", csv);
    let from_file = load_files(std::slice::from_ref(&path), Format::Auto, None).unwrap();
    let raw = std::fs::read(&path).unwrap();
    let from_bytes = load_bytes(&path, &raw, Format::Auto, None).unwrap();
    assert_eq!(from_bytes, from_file);
    assert!(from_bytes.sources[0].gzip && from_bytes.sources[0].format == Format::Csv);
    let err = load_bytes(
        Path::new("stdin"),
        b"1.0.0.9,1.0.0.0,AU\n",
        Format::Csv,
        None,
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "stdin:1: start 1.0.0.9 is after end 1.0.0.0"
    );
}
