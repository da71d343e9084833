//! MMDB tests on small databases written here, so every record shape and tree quirk is
//! covered without real data.

use super::*;
use filter_common::territory::territory_id;

/// Encodes MaxMind DB data-section values.
enum V<'a> {
    S(&'a str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, V<'a>)>),
    Arr(Vec<V<'a>>),
}

fn enc(v: &V<'_>, out: &mut Vec<u8>) {
    let ctrl = |t: u8, size: usize, out: &mut Vec<u8>| {
        assert!(size < 29);
        if t <= 7 {
            out.push(t << 5 | size as u8);
        } else {
            out.extend([size as u8, t - 7]); // extended type
        }
    };
    match v {
        V::S(s) => {
            ctrl(2, s.len(), out);
            out.extend(s.as_bytes());
        }
        V::U16(n) => {
            ctrl(5, 2, out);
            out.extend(n.to_be_bytes());
        }
        V::U32(n) => {
            ctrl(6, 4, out);
            out.extend(n.to_be_bytes());
        }
        V::U64(n) => {
            ctrl(9, 8, out);
            out.extend(n.to_be_bytes());
        }
        V::Map(kv) => {
            ctrl(7, kv.len(), out);
            for (k, v) in kv {
                enc(&V::S(k), out);
                enc(v, out);
            }
        }
        V::Arr(items) => {
            ctrl(11, items.len(), out);
            items.iter().for_each(|v| enc(v, out));
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// A database with 24-bit records: `(addr, len, record)` in a tree `bits` wide, and
/// `aliases` (addr, len) pointing at the IPv4 subtree (::/96) like MaxMind's writer does.
fn write_db(ip_version: u16, nets: &[(u128, u8, V<'_>)], aliases: &[(u128, u8)]) -> Vec<u8> {
    write_sized(24, ip_version, nets, aliases)
}

fn write_sized(
    record_size: u16,
    ip_version: u16,
    nets: &[(u128, u8, V<'_>)],
    aliases: &[(u128, u8)],
) -> Vec<u8> {
    let bits: u8 = if ip_version == 6 { 128 } else { 32 };
    let mut nodes = vec![[Rec::Empty; 2]];
    let mut data = Vec::new();
    // Walks to the record slot of (addr, len), creating nodes on the way.
    let slot = |nodes: &mut Vec<[Rec; 2]>, addr: u128, len: u8| {
        let mut node = 0;
        for d in 0..len - 1 {
            let bit = (addr >> (bits - 1 - d) & 1) as usize;
            node = match nodes[node][bit] {
                Rec::Node(n) => n,
                _ => {
                    nodes.push([Rec::Empty; 2]);
                    nodes[node][bit] = Rec::Node(nodes.len() - 1);
                    nodes.len() - 1
                }
            };
        }
        (node, (addr >> (bits - len) & 1) as usize)
    };
    for (addr, len, v) in nets {
        let (node, bit) = slot(&mut nodes, *addr, *len);
        nodes[node][bit] = Rec::Data(data.len());
        enc(v, &mut data);
    }
    if !aliases.is_empty() {
        let (node, bit) = slot(&mut nodes, 0, 96);
        let v4_root = nodes[node][bit];
        for &(addr, len) in aliases {
            let (node, bit) = slot(&mut nodes, addr, len);
            nodes[node][bit] = v4_root;
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    let value = |r: Rec| match r {
        Rec::Empty => count as u32,
        Rec::Node(i) => i as u32,
        Rec::Data(off) => (count + 16 + off) as u32,
    };
    for &[l, r] in &nodes {
        let (l, r) = (value(l).to_be_bytes(), value(r).to_be_bytes());
        match record_size {
            24 => out.extend(l[1..].iter().chain(&r[1..])),
            28 => {
                out.extend(&l[1..]);
                out.push(l[0] << 4 | r[0]);
                out.extend(&r[1..]);
            }
            _ => out.extend(l.iter().chain(&r)),
        }
    }
    out.extend([0u8; 16]);
    out.extend(data);
    out.extend(crate::geo::source::MMDB_MARKER);
    let meta = V::Map(vec![
        ("binary_format_major_version", V::U16(2)),
        ("binary_format_minor_version", V::U16(0)),
        ("build_epoch", V::U64(1)),
        ("database_type", V::S("test")),
        ("description", V::Map(vec![("en", V::S("test"))])),
        ("ip_version", V::U16(ip_version)),
        ("languages", V::Arr(vec![V::S("en")])),
        ("node_count", V::U32(count as u32)),
        ("record_size", V::U16(record_size)),
    ]);
    enc(&meta, &mut out);
    out
}

fn v4_in_v6(a: [u8; 4]) -> u128 {
    u128::from(u32::from_be_bytes(a))
}

fn flat(cc: &str) -> V<'_> {
    V::Map(vec![("country_code", V::S(cc))])
}

type Listing = Vec<(String, TerritoryId)>;

fn table(l: &Loaded) -> (Listing, Listing) {
    let v4 = l.v4.iter().map(|e| (e.prefix.to_string(), e.id)).collect();
    let v6 = l.v6.iter().map(|e| (e.prefix.to_string(), e.id)).collect();
    (v4, v6)
}

fn id(cc: &[u8; 2]) -> TerritoryId {
    territory_id(*cc).unwrap()
}

#[test]
fn ipv6_database_with_every_record_shape_and_aliases() {
    let iso =
        |k: &'static str, cc: &'static str| V::Map(vec![(k, V::Map(vec![("iso_code", V::S(cc))]))]);
    let nets = vec![
        (v4_in_v6([1, 0, 0, 0]), 120, iso("country", "AU")),
        (
            v4_in_v6([2, 0, 0, 0]),
            112,
            V::Map(vec![
                ("country", V::Map(vec![("names", V::Map(vec![]))])),
                ("registered_country", V::Map(vec![("iso_code", V::S("FR"))])),
            ]),
        ),
        (v4_in_v6([3, 0, 0, 0]), 104, flat("US")),
        (
            v4_in_v6([4, 0, 0, 0]),
            104,
            V::Map(vec![("continent", V::Map(vec![("code", V::S("EU"))]))]),
        ),
        (0x2001_0db8 << 96, 32, flat("JP")),
        ((0x2002 << 112) | 1, 128, flat("KR")),
    ];
    let aliases = [(0xffff << 32, 96), (0x2001 << 112, 32), (0x2002 << 112, 16)];
    // 2002::1/128 sits under the 2002::/16 alias only if written after it: write it before,
    // so the alias replaces the path and the record is unreachable, as in MaxMind's files.
    let db = write_db(6, &nets, &aliases);
    let got = load(&db, 4).unwrap();
    let (v4, v6) = table(&got);
    assert_eq!(
        v4,
        [
            ("1.0.0.0/24".into(), id(b"AU")),
            ("2.0.0.0/16".into(), id(b"FR")),
            ("3.0.0.0/8".into(), id(b"US"))
        ]
    );
    assert_eq!(v6, [("2001:db8::/32".to_string(), id(b"JP"))]);
    assert_eq!((got.rows, got.skipped), (4 + 1, 1));
    assert!(got.v4.iter().all(|e| e.src == 4 && e.line == 0));
}

#[test]
fn every_record_size() {
    let nets = || {
        vec![
            (v4_in_v6([1, 0, 0, 0]), 120, flat("AU")),
            (v4_in_v6([203, 0, 113, 0]), 124, flat("NZ")),
            (0x2001_0db8 << 96, 32, flat("JP")),
        ]
    };
    let aliases = [(0xffff << 32, 96), (0x2002 << 112, 16)];
    for size in [24, 28, 32] {
        let got = load(&write_sized(size, 6, &nets(), &aliases), 0).unwrap();
        let (v4, v6) = table(&got);
        let want = [
            ("1.0.0.0/24".into(), id(b"AU")),
            ("203.0.113.0/28".into(), id(b"NZ")),
        ];
        assert_eq!(v4, want, "record size {size}");
        assert_eq!(
            v6,
            [("2001:db8::/32".to_string(), id(b"JP"))],
            "record size {size}"
        );
    }
}

#[test]
fn genuine_records_in_6to4_space_are_kept() {
    let nets = vec![
        (v4_in_v6([1, 0, 0, 0]), 120, flat("AU")),
        (0x2002_05a0_3602 << 80, 48, flat("CA")),
    ];
    let got = load(&write_db(6, &nets, &[]), 0).unwrap();
    assert_eq!(
        table(&got).1,
        [("2002:5a0:3602::/48".to_string(), id(b"CA"))]
    );
}

#[test]
fn ipv4_database() {
    let nets = vec![(0x0100_0000, 24, flat("AU")), (0xc000_0200, 24, flat("ZZ"))];
    let got = load(&write_db(4, &nets, &[]), 0).unwrap();
    let (v4, v6) = table(&got);
    assert_eq!(
        v4,
        [
            ("1.0.0.0/24".into(), id(b"AU")),
            ("192.0.2.0/24".into(), id(b"ZZ"))
        ]
    );
    assert!(v6.is_empty());
}

#[test]
fn bad_codes_and_corrupt_files_are_errors() {
    let db = write_db(4, &[(0x0100_0000, 24, flat("au"))], &[]);
    let msg = load(&db, 0).unwrap_err();
    assert!(
        msg.contains("1.0.0.0/24") && msg.contains("\"au\""),
        "{msg}"
    );

    let good = write_db(6, &[(v4_in_v6([1, 0, 0, 0]), 120, flat("AU"))], &[]);
    assert!(load(&good, 0).is_ok());
    // Every truncation and single-byte corruption must give an error or a table, not a panic.
    for cut in (0..good.len()).step_by(7) {
        assert!(load(&good[..cut], 0).is_err());
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xa5;
        let _ = load(&bad, 0);
    }
    let mut junk = vec![0x5au8; 1000];
    junk.extend(crate::geo::source::MMDB_MARKER);
    assert!(load(&junk, 0).is_err());
}

/// The MMDB seeds of the fuzz corpus are these databases. Each must load; with
/// `GEOFENCE_WRITE_FUZZ_SEEDS=1` the test (re)writes them into `fuzz/corpus/geo_mmdb/`.
#[test]
fn fuzz_seed_databases_load() {
    let iso = |cc: &'static str| V::Map(vec![("country", V::Map(vec![("iso_code", V::S(cc))]))]);
    let v6_nets = || {
        vec![
            (v4_in_v6([1, 0, 0, 0]), 120, iso("AU")),
            (v4_in_v6([203, 0, 113, 0]), 124, flat("NZ")),
            (0x2001_0db8 << 96, 32, flat("JP")),
            (0x2a00 << 112, 12, V::Map(vec![])),
        ]
    };
    let aliases = [(0xffff << 32, 96), (0x2001 << 112, 32), (0x2002 << 112, 16)];
    let seeds = [
        (
            "ok-v4-24bit.mmdb",
            write_db(
                4,
                &[(0x0100_0000, 24, flat("AU")), (0xc000_0200, 24, iso("ZZ"))],
                &[],
            ),
        ),
        (
            "ok-v6-24bit-aliases.mmdb",
            write_sized(24, 6, &v6_nets(), &aliases),
        ),
        ("ok-v6-28bit.mmdb", write_sized(28, 6, &v6_nets(), &aliases)),
        ("ok-v6-32bit.mmdb", write_sized(32, 6, &v6_nets(), &[])),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/geo_mmdb");
    let write = std::env::var_os("GEOFENCE_WRITE_FUZZ_SEEDS").is_some();
    for (name, db) in seeds {
        let got = load(&db, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!got.v4.is_empty(), "{name}");
        assert!(db.len() < 20_000, "{name}: {} bytes", db.len());
        if write {
            std::fs::write(format!("{dir}/{name}"), &db).unwrap();
        }
    }
}

/// Found by `cargo xtask fuzz` (geo_mmdb): a metadata pointer that leads back to itself
/// made the maxminddb decoder recurse until the stack overflowed, aborting the process.
#[test]
fn metadata_pointer_cycle_is_an_error_not_a_stack_overflow() {
    let db = include_bytes!("../../../fuzz/regressions/geo_mmdb/bad-metadata-pointer-cycle.mmdb");
    let msg = load(db, 0).unwrap_err();
    assert!(msg.starts_with("metadata: "), "{msg}");
    // The same cycle in a record's data.
    let mut db = write_db(4, &[(0x0100_0000, 24, flat("AU"))], &[]);
    let record = db
        .windows(14)
        .position(|w| w == b"\xe1\x4ccountry_code")
        .unwrap();
    // {"country_code": ...} becomes {ptr -> this map: ...}.
    db[record + 1..record + 3].copy_from_slice(&[0x20, 0x00]);
    let msg = load(&db, 0).unwrap_err();
    assert!(
        msg.contains("record for 1.0.0.0/24") && msg.contains("nested"),
        "{msg}"
    );
}
