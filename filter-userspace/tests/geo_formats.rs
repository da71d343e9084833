//! `geo load` of the publishers' layouts through the CLI: a GeoLite2 zip with `--locate-by`,
//! which the state, `status`, the audit entry and `restore` keep; several RIR files at once;
//! and a misplaced `--locate-by`, which changes nothing.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

mod common;

use common::{Dirs, root_with_bpffs};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/geo")
        .join(name)
}

const GEOLITE2: &str = "GeoLite2-Country-CSV_20260106";

/// The GeoLite2 fixture as MaxMind's archive holds it: one directory, licence text beside.
fn write_geolite2_zip(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(GEOLITE2))
        .expect("the GeoLite2 fixture")
        .map(|e| e.expect("a fixture file").path())
        .collect();
    files.sort();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.add_directory(format!("{GEOLITE2}/"), options)
        .expect("a directory entry");
    for file in files {
        let name = file.file_name().expect("a file name").to_string_lossy();
        zip.start_file(format!("{GEOLITE2}/{name}"), options)
            .expect("a member");
        zip.write_all(&std::fs::read(&file).expect("a fixture file"))
            .expect("writing a member");
    }
    let bytes = zip.finish().expect("the archive").into_inner();
    std::fs::create_dir_all(dir).expect("the state dir");
    let path = dir.join(format!("{GEOLITE2}.zip"));
    std::fs::write(&path, bytes).expect("writing the archive");
    path.to_str().expect("utf-8 path").to_string()
}

fn territory(d: &Dirs, addr: &str) -> String {
    d.ok(&["geo", "lookup", addr])
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn geolite2_zip_placed_by_registration_stays_so() {
    if !root_with_bpffs("geolite2_zip_placed_by_registration_stays_so") {
        return;
    }
    let d = Dirs::new("geolite2");
    let zip = write_geolite2_zip(&d.state.join("geo"));
    d.ok(&["geo", "load", &zip, "--locate-by", "registered"]);
    // 2.16.0.0/13 is located in FR and registered in DE.
    assert_eq!(territory(&d, "2.16.0.1"), "DE");
    assert_eq!(territory(&d, "2.0.0.1"), "FR");
    assert_eq!(territory(&d, "2a01:e00::1"), "FR");

    let status: serde_json::Value =
        serde_json::from_str(&d.ok(&["status", "--json"])).expect("status JSON");
    assert_eq!(status["table"]["locate_by"], "registered", "{status}");
    assert!(
        d.ok(&["status"])
            .contains("GeoLite2 networks placed by --locate-by registered")
    );
    let audit = d.read_state("audit.jsonl");
    let entry: serde_json::Value =
        serde_json::from_str(audit.lines().last().expect("an audit entry")).expect("JSON");
    let source = &entry["details"]["sources"][0];
    assert_eq!(
        (&source["format"], &source["locate_by"]),
        (
            &serde_json::json!("geolite2"),
            &serde_json::json!("registered")
        ),
        "{entry}"
    );
    // The continent-only network, the anonymous one, and BQ (located, not registered).
    assert_eq!(source["skipped"], 3, "{entry}");

    // Rebuilding from the state places the networks the same way.
    d.ok(&["restore"]);
    assert_eq!(territory(&d, "2.16.0.1"), "DE");

    // The default places by location.
    d.ok(&["geo", "load", &zip]);
    assert_eq!(territory(&d, "2.16.0.1"), "FR");
    let status: serde_json::Value =
        serde_json::from_str(&d.ok(&["status", "--json"])).expect("status JSON");
    assert_eq!(status["table"]["locate_by"], "country", "{status}");
}

#[test]
fn rir_files_load_together_and_a_stray_locate_by_changes_nothing() {
    if !root_with_bpffs("rir_files_load_together_and_a_stray_locate_by_changes_nothing") {
        return;
    }
    let d = Dirs::new("rir");
    let rirs: Vec<String> = ["afrinic", "apnic", "lacnic", "ripencc"]
        .iter()
        .map(|r| {
            let path = fixture(&format!("delegated-{r}-extended-latest"));
            path.to_str().expect("utf-8 path").to_string()
        })
        .collect();
    let mut args = vec!["geo", "load"];
    args.extend(rirs.iter().map(String::as_str));
    d.ok(&args);
    assert_eq!(territory(&d, "5.44.2.9"), "GB");
    assert_eq!(territory(&d, "105.0.4.1"), "EG");
    assert_eq!(territory(&d, "161.0.31.255"), "BQ");
    assert_eq!(territory(&d, "5.45.0.1"), "unknown");
    let state_before = d.read_state("state.json");

    let csv = fixture("ip-location-db-ipv4.csv");
    let err = d.fails(&[
        "geo",
        "load",
        "--locate-by",
        "registered",
        csv.to_str().expect("utf-8 path"),
    ]);
    assert!(
        err.contains("--locate-by registered is for GeoLite2/GeoIP2 CSV files"),
        "{err}"
    );
    assert_eq!(d.read_state("state.json"), state_before);
    assert_eq!(territory(&d, "5.44.2.9"), "GB");

    let ip2location = fixture("IP2LOCATION-LITE-DB1.IPV6.CSV");
    let err = d.fails(&[
        "geo",
        "load",
        "--format",
        "rir",
        ip2location.to_str().expect("utf-8 path"),
    ]);
    assert!(
        err.contains("IP2LOCATION-LITE-DB1.IPV6.CSV:1: found 1 column, expected at least 7"),
        "{err}"
    );
}
