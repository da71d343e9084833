//! Every published country table loads with room to spare: tables generated to the shapes
//! of DB-IP Lite, GeoLite2, asn-country and geo-whois-asn-country (`tests/shapes/`, measured
//! by `table-shape`) are built into the flattened layout, and every kernel structure keeps
//! at least half as much again as the table takes.

use std::path::{Path, PathBuf};

use filter_common::maps::capacity;
use geofence::geo::{Format, flat, load_bytes};
use geofence_tests::shape::{Shape, generate};

fn shapes() -> Vec<(PathBuf, Shape)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shapes");
    let mut out: Vec<(PathBuf, Shape)> = std::fs::read_dir(&dir)
        .expect("tests/shapes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("shape file");
            let shape = serde_json::from_str(&text).expect("shape JSON");
            (p, shape)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What a table of `shape` takes of the IPv4 structures: split /16s and /24s of more than
/// 16 runs are whole blocks and groups, the others range lists.
fn expected_v4(shape: &Shape) -> [usize; 4] {
    let count = |rows: &mut dyn Iterator<Item = (u32, u32)>, whole: bool| -> usize {
        rows.filter(|&(runs, _)| (runs > 16) == whole)
            .map(|(_, n)| n as usize)
            .sum()
    };
    let s16 = || shape.split16.iter().map(|r| (r[0], r[2]));
    let s24 = || shape.split24.iter().map(|r| (r[0], r[1]));
    [
        count(&mut s16(), true),
        count(&mut s16(), false),
        count(&mut s24(), true),
        count(&mut s24(), false),
    ]
}

#[test]
fn published_tables_fit_with_half_again_to_spare() {
    let shapes = shapes();
    assert!(
        shapes.len() >= 4,
        "tests/shapes holds {} shapes",
        shapes.len()
    );
    let mut failures = Vec::new();
    for (path, shape) in &shapes {
        let csv = generate(shape, 7);
        let table = load_bytes(
            Path::new("generated.csv"),
            csv.as_bytes(),
            Format::Csv,
            None,
        )
        .unwrap_or_else(|e| panic!("{}: the generated table does not load: {e}", path.display()));
        let built = flat::build(&table)
            .unwrap_or_else(|e| panic!("{}: {}: {e}", path.display(), shape.name));
        let fill = built.fill();
        eprintln!(
            "{}: {} + {} prefixes generated ({} + {} in the published table)",
            shape.name,
            table.v4.len(),
            table.v6.len(),
            shape.prefixes_v4,
            shape.prefixes_v6
        );
        for f in &fill {
            eprintln!(
                "  {:<22} {:>8} of {:>8}  {:>5.0}% headroom",
                f.structure,
                f.used,
                f.capacity,
                f.headroom() * 100.0
            );
            if f.used * 3 > f.capacity as usize * 2 {
                failures.push(format!(
                    "{}: {} {} of {}",
                    shape.name, f.structure, f.used, f.capacity
                ));
            }
        }
        // The generator reproduces the IPv4 counts exactly, so the figures above are the
        // published table's own.
        let v4: Vec<usize> = fill[..4].iter().map(|f| f.used).collect();
        assert_eq!(v4, expected_v4(shape), "{}: IPv4 structures", shape.name);
        let ranges: u32 = shape.per16_v6.iter().map(|r| r[0] * r[1]).sum();
        eprintln!("  IPv6 ranges in the published table: {ranges}");
        // The loader's limit on the prefixes it keeps, against the published table's own.
        for (family, prefixes, limit) in [
            ("IPv4", shape.prefixes_v4, capacity::TERRITORY_V4),
            ("IPv6", shape.prefixes_v6, capacity::TERRITORY_V6),
        ] {
            if prefixes * 3 > limit as usize * 2 {
                failures.push(format!(
                    "{}: {family} prefixes {prefixes} of {limit}",
                    shape.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "less than 50% headroom: {failures:#?}");
}
