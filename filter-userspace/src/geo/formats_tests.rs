//! The published formats side by side. `tests/fixtures/geo/` holds the same invented
//! allocations as ip-location-db CSVs, GeoLite2 Country CSV, IP2Location LITE DB1 (both
//! editions) and four RIRs' delegated statistics, each in its publisher's layout; every one
//! must give the same table. Also how GeoLite2 files find each other, and zip archives.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use super::tests::Scratch;
use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/geo")
        .join(name)
}

const GEOLITE2: &str = "GeoLite2-Country-CSV_20260106";

fn geolite2(file: &str) -> PathBuf {
    fixture(&format!("{GEOLITE2}/GeoLite2-Country-{file}.csv"))
}

/// An archive laid out as the publisher's: `dir/` (if any) holding every file of `files`.
fn zip_of(dir: Option<&str>, files: &[PathBuf]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    if let Some(dir) = dir {
        zip.add_directory(format!("{dir}/"), options).unwrap();
    }
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy();
        let name = match dir {
            Some(dir) => format!("{dir}/{name}"),
            None => name.into_owned(),
        };
        zip.start_file(name, options).unwrap();
        zip.write_all(&std::fs::read(file).unwrap()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Every file of the GeoLite2 fixture, as MaxMind's archive holds them.
fn geolite2_zip() -> Vec<u8> {
    let dir = fixture(GEOLITE2);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    zip_of(Some(GEOLITE2), &files)
}

fn rir_files() -> Vec<PathBuf> {
    ["afrinic", "apnic", "lacnic", "ripencc"]
        .iter()
        .map(|r| fixture(&format!("delegated-{r}-extended-latest")))
        .collect()
}

fn id(cc: &[u8; 2]) -> u16 {
    filter_common::territory::territory_id(*cc).unwrap()
}

#[test]
fn every_format_gives_the_same_table() {
    let scratch = Scratch::new();
    let csv = load_files(
        &[
            fixture("ip-location-db-ipv4.csv"),
            fixture("ip-location-db-ipv6.csv"),
        ],
        Format::Auto,
        None,
    )
    .unwrap();
    let zip = scratch.file(&format!("{GEOLITE2}.zip"), &geolite2_zip());
    let ip2location = [
        fixture("IP2LOCATION-LITE-DB1.CSV"),
        fixture("IP2LOCATION-LITE-DB1.IPV6.CSV"),
    ];
    let ip2location_zip = scratch.file(
        "IP2LOCATION-LITE-DB1.CSV.ZIP",
        &zip_of(None, &ip2location[..1]),
    );
    let cases: Vec<(&str, Vec<PathBuf>, Format)> = vec![
        (
            "GeoLite2 CSV files",
            vec![
                geolite2("Blocks-IPv4"),
                geolite2("Blocks-IPv6"),
                geolite2("Locations-en"),
            ],
            Format::Geolite2,
        ),
        ("GeoLite2 zip", vec![zip], Format::Geolite2),
        ("IP2Location", ip2location.to_vec(), Format::Ip2location),
        (
            "IP2Location IPv4 zip and IPv6",
            vec![ip2location_zip, ip2location[1].clone()],
            Format::Ip2location,
        ),
        ("RIR statistics", rir_files(), Format::Rir),
    ];
    let flat = flat::build(&csv).unwrap();
    for (name, files, format) in cases {
        let t = load_files(&files, Format::Auto, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((&t.v4, &t.v6), (&csv.v4, &csv.v6), "{name}");
        assert_eq!(flat::build(&t).unwrap(), flat, "{name}");
        assert!(t.sources.iter().all(|s| s.format == format), "{name}");
        // Forcing the format reads the same.
        let forced = load_files(&files, format, None).unwrap();
        assert_eq!((forced.v4, forced.v6), (t.v4, t.v6), "{name}");
    }
    // What the fixtures hold, so the comparison above is not between empty tables.
    assert_eq!(csv.lookup_v4(0x0100_0280), Some(id(b"CN")));
    assert_eq!(csv.lookup_v4(0x0210_0000), Some(id(b"FR")));
    assert_eq!(csv.lookup_v4(0x052e_0101), Some(id(b"DE")));
    assert_eq!(csv.lookup_v4(0x052d_0101), None);
    assert_eq!(csv.lookup_v4(0xa100_1fff), Some(id(b"BQ")));
    assert_eq!(csv.lookup_v6(0x2001_0300 << 96), Some(id(b"JP")));
    assert_eq!((csv.v4.len(), csv.v6.len()), (13, 4));
}

#[test]
fn sources_say_what_was_read_and_skipped() {
    let scratch = Scratch::new();
    let zip = scratch.file("g.zip", &geolite2_zip());
    let t = load_files(std::slice::from_ref(&zip), Format::Auto, None).unwrap();
    let s = &t.sources[0];
    let members: Vec<String> = ["Blocks-IPv4", "Blocks-IPv6", "Locations-en"]
        .iter()
        .map(|f| format!("{GEOLITE2}/GeoLite2-Country-{f}.csv"))
        .collect();
    assert_eq!(s.members, members, "one locations file, no licence");
    assert_eq!(s.locate_by, Some(LocateBy::Country));
    // 15 + 5 networks and 13 locations; the continent-only and anonymous networks skipped.
    assert_eq!((s.rows, s.skipped), (15 + 5 + 13, 3));

    let t = load_files(&rir_files(), Format::Auto, None).unwrap();
    let skipped: Vec<usize> = t.sources.iter().map(|s| s.skipped).collect();
    assert_eq!(skipped, [1, 1, 0, 1], "reserved, ZZ and available space");
    assert!(t.sources.iter().all(|s| s.locate_by.is_none()));

    let t = load_files(&[fixture("IP2LOCATION-LITE-DB1.CSV")], Format::Auto, None).unwrap();
    assert_eq!((t.sources[0].rows, t.sources[0].skipped), (18, 8));
}

#[test]
fn locate_by_registered_is_kept_with_the_table() {
    let files = [
        geolite2("Blocks-IPv4"),
        geolite2("Locations-en"),
        geolite2("Locations-de"),
    ];
    let options = |locate_by| LoadOptions {
        locate_by,
        ..LoadOptions::default()
    };
    let country = load_files_with(&files, &options(None)).unwrap();
    let registered = load_files_with(&files, &options(Some(LocateBy::Registered))).unwrap();
    // 2.16.0.0/13 is located in FR but registered in DE.
    assert_eq!(country.lookup_v4(0x0210_0001), Some(id(b"FR")));
    assert_eq!(registered.lookup_v4(0x0210_0001), Some(id(b"DE")));
    assert_eq!(registered.lookup_v4(0x0200_0001), Some(id(b"FR")));
    let by: Vec<_> = registered.sources.iter().map(|s| s.locate_by).collect();
    assert_eq!(by, [Some(LocateBy::Registered); 3]);

    let csv = [fixture("ip-location-db-ipv4.csv")];
    let err = load_files_with(&csv, &options(Some(LocateBy::Country))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--locate-by country is for GeoLite2/GeoIP2 CSV files (blocks and locations), and \
         none of the files is one"
    );
}

fn load_err(files: &[PathBuf]) -> String {
    match load_files(files, Format::Auto, None) {
        Err(e) => e.to_string(),
        Ok(t) => panic!("accepted: {t:?}"),
    }
}

#[test]
fn geolite2_files_need_each_other() {
    let blocks = geolite2("Blocks-IPv4");
    assert_eq!(
        load_err(std::slice::from_ref(&blocks)),
        format!(
            "{}: a GeoLite2 blocks file needs the locations file of its release \
             (GeoLite2-Country-Locations-en.csv) among the files; there is one beside it: {}",
            blocks.display(),
            geolite2("Locations-en").display()
        )
    );
    let scratch = Scratch::new();
    let alone = scratch.file("blocks.csv", &std::fs::read(&blocks).unwrap());
    assert!(load_err(&[alone]).ends_with("among the files"));
    let locations = geolite2("Locations-en");
    assert!(
        load_err(std::slice::from_ref(&locations)).starts_with(&format!(
            "{}: a GeoLite2 locations file only names the countries",
            locations.display()
        ))
    );
    let msg = load_files(&[blocks, locations], Format::Auto, Some("XA")).unwrap_err();
    assert!(
        msg.to_string()
            .contains("--territory is only for CIDR lists"),
        "{msg}"
    );
}

#[test]
fn errors_inside_an_archive_name_the_member() {
    let scratch = Scratch::new();
    let blocks = scratch.file(
        "GeoLite2-Country-Blocks-IPv4.csv",
        b"network,geoname_id,registered_country_geoname_id\n1.0.0.0/24,2077456,\n1.0.0.0/33,,\n",
    );
    let zip = scratch.file(
        "g.zip",
        &zip_of(Some("G"), &[blocks, geolite2("Locations-en")]),
    );
    assert_eq!(
        load_err(std::slice::from_ref(&zip)),
        format!(
            "{}(G/GeoLite2-Country-Blocks-IPv4.csv):3: prefix length \"33\" is not a number \
             in 0..=32",
            zip.display()
        )
    );
    let licence = scratch.file("LICENSE.txt", b"no data here\n");
    let no_csv = scratch.file("none.zip", &zip_of(None, &[licence]));
    assert_eq!(
        load_err(std::slice::from_ref(&no_csv)),
        format!(
            "{}: not a usable zip archive: no .csv file in it (it holds LICENSE.txt)",
            no_csv.display()
        )
    );
    let mut cut = geolite2_zip();
    cut.truncate(cut.len() / 2);
    let cut = scratch.file("cut.zip", &cut);
    assert!(
        load_err(std::slice::from_ref(&cut))
            .starts_with(&format!("{}: not a usable zip archive", cut.display()))
    );
}

#[test]
fn gzip_and_memory_inputs_read_the_same() {
    let scratch = Scratch::new();
    let rir = std::fs::read(fixture("delegated-ripencc-extended-latest")).unwrap();
    let gz = scratch.gz("delegated-ripencc-extended-latest.gz", &rir);
    let plain = load_files(
        &[fixture("delegated-ripencc-extended-latest")],
        Format::Rir,
        None,
    )
    .unwrap();
    let t = load_files(std::slice::from_ref(&gz), Format::Auto, None).unwrap();
    assert_eq!((&t.v4, &t.v6), (&plain.v4, &plain.v6));
    assert!(t.sources[0].gzip && t.sources[0].format == Format::Rir);

    let blocks = std::fs::read(geolite2("Blocks-IPv6")).unwrap();
    let locations = std::fs::read(geolite2("Locations-en")).unwrap();
    let inputs = [
        (PathBuf::from("blocks"), &blocks[..]),
        (PathBuf::from("locations"), &locations[..]),
    ];
    let t = load_inputs(&inputs, &LoadOptions::default()).unwrap();
    assert_eq!(t.v6.len(), 4);
    let zipped = geolite2_zip();
    let t = load_bytes(Path::new("g.zip"), &zipped, Format::Auto, None).unwrap();
    assert_eq!((t.v4.len(), t.v6.len()), (13, 4));
}
