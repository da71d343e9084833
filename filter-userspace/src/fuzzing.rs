//! The fuzz targets' bodies: one function per target in `fuzz/fuzz_targets/`, taking the
//! fuzzer's bytes. They live here, not in the fuzz crate, so that `tests/fuzz_corpus.rs`
//! replays the committed corpus and every saved crash through the same code in a plain
//! `cargo test`.
//!
//! Each function panics when a parser panics or an accepted input breaks a property the
//! parser promises (a prefix re-parses from its text, a loaded table has its host bits
//! clear, ...). A rejected input is fine: rejecting garbage is the parsers' job. They
//! return whether the input was accepted, so the corpus test can check that the seeds named
//! `ok-*` are accepted and those named `bad-*` rejected.

mod csv_oracle;
mod formats;
mod geolite2;

use std::io::Write as _;
use std::path::Path;

use filter_common::maps::capacity;
use filter_common::territory::{TerritoryId, territory_code};
use flate2::{Compression, write::GzEncoder};
use ipnet::{Ipv4Net, Ipv6Net};
use jiff::Timestamp;

use crate::endpoint::{Endpoint, Flow, Proto, parse_socket};
use crate::expiry::{expiry_after, format_duration, parse_duration, parse_expiry};

use crate::geo::{self, Format, GeoError, GeoTable, NetBits};
use crate::prefix::{override_key, parse_prefix};
use crate::territory::Territory;

pub use formats::{geo_ip2location, geo_rir};
pub use geolite2::geo_geolite2;

/// A fuzz target: its name (the directory of its corpus) and its body, which returns
/// whether the parser accepted the input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> bool,
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "geo_csv",
        run: geo_csv,
    },
    Target {
        name: "geo_mmdb",
        run: geo_mmdb,
    },
    Target {
        name: "geo_cidr",
        run: geo_cidr,
    },
    Target {
        name: "geo_auto",
        run: geo_auto,
    },
    Target {
        name: "geo_geolite2",
        run: geo_geolite2,
    },
    Target {
        name: "geo_ip2location",
        run: geo_ip2location,
    },
    Target {
        name: "geo_rir",
        run: geo_rir,
    },
    Target {
        name: "cli_prefix",
        run: cli_prefix,
    },
    Target {
        name: "cli_endpoint",
        run: cli_endpoint,
    },
    Target {
        name: "cli_socket",
        run: cli_socket,
    },
    Target {
        name: "cli_territory",
        run: cli_territory,
    },
    Target {
        name: "cli_duration",
        run: cli_duration,
    },
    Target {
        name: "cli_expiry",
        run: cli_expiry,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

const NAME: &str = "fuzz-input";

fn load(data: &[u8], format: Format, territory: Option<&str>) -> Result<GeoTable, GeoError> {
    let table = geo::load_bytes(Path::new(NAME), data, format, territory);
    if let Ok(table) = &table {
        check_table(table);
    }
    table
}

/// What every loaded table promises the kernel side (see [`check_prefixes`]), and that one
/// input is one source.
fn check_table(table: &GeoTable) {
    check_prefixes(table);
    let [source] = &table.sources[..] else {
        panic!("one input, {} sources", table.sources.len());
    };
    assert!(source.v4_prefixes >= table.v4.len() && source.v6_prefixes >= table.v6.len());
}

/// Sorted, no duplicate prefix, no /0, host bits clear, real territory codes, within the
/// maps' capacity, and every prefix found by a lookup of its own first address.
fn check_prefixes(table: &GeoTable) {
    let code = |id: TerritoryId| territory_code(id).is_some();
    assert!(table.v4.len() <= capacity::TERRITORY_V4 as usize);
    assert!(table.v6.len() <= capacity::TERRITORY_V6 as usize);
    assert!(table.v4.windows(2).all(|w| w[0].0 < w[1].0), "v4 unsorted");
    assert!(table.v6.windows(2).all(|w| w[0].0 < w[1].0), "v6 unsorted");
    for &(p, id) in &table.v4 {
        assert!(
            p.prefix_len() > 0 && Ipv4Net::from_bits(p.first(), p.prefix_len()) == Some(p),
            "{p:?}"
        );
        assert!(code(id) && table.lookup_v4(p.first()).is_some(), "{p}");
    }
    for &(p, id) in &table.v6 {
        assert!(
            p.prefix_len() > 0 && Ipv6Net::from_bits(p.first(), p.prefix_len()) == Some(p),
            "{p:?}"
        );
        assert!(code(id) && table.lookup_v6(p.first()).is_some(), "{p}");
    }
}

/// `start,end,CC` range files.
pub fn geo_csv(data: &[u8]) -> bool {
    let Ok(table) = load(data, Format::Csv, None) else {
        return false;
    };
    csv_oracle::check(data, &table);
    true
}

/// MaxMind DBs.
pub fn geo_mmdb(data: &[u8]) -> bool {
    load(data, Format::Mmdb, None).is_ok()
}

/// CIDR lists of one territory: every prefix gets that territory.
pub fn geo_cidr(data: &[u8]) -> bool {
    let cn = Territory::parse("CN").map(Territory::id);
    let Ok(table) = load(data, Format::Cidr, Some("CN")) else {
        return false;
    };
    let mut ids = table
        .v4
        .iter()
        .map(|e| e.1)
        .chain(table.v6.iter().map(|e| e.1));
    assert!(ids.all(|id| Ok(id) == cn));
    true
}

/// What `geo load` does with a file of unknown format: gunzip if it is gzip, detect, parse
/// (a CIDR list gets a territory). A plain input must load the same once gzipped.
pub fn geo_auto(data: &[u8]) -> bool {
    let auto = |data: &[u8]| match load(data, Format::Auto, None) {
        Err(GeoError::NeedsTerritory { .. }) => load(data, Format::Auto, Some("XA")),
        other => other,
    };
    let plain = auto(data);
    if data.starts_with(&[0x1f, 0x8b]) {
        return plain.is_ok();
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("writing to a Vec cannot fail");
    let gzipped = auto(&gz.finish().expect("writing to a Vec cannot fail"));
    match (plain, gzipped) {
        (Ok(plain), Ok(gzipped)) => {
            assert_eq!((plain.v4, plain.v6), (gzipped.v4, gzipped.v6));
            assert!(gzipped.sources[0].gzip && !plain.sources[0].gzip);
            true
        }
        (Err(plain), Err(gzipped)) => {
            assert_eq!(plain.to_string(), gzipped.to_string());
            false
        }
        (plain, gzipped) => panic!("plain {plain:?} but gzipped {gzipped:?}"),
    }
}

/// The CLI's arguments arrive as UTF-8 (clap rejects anything else for a `String`).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `--prefix` (override prefixes) and the geo loaders' CIDR syntax (accepted: by `parse_prefix`).
pub fn cli_prefix(data: &[u8]) -> bool {
    let Some(s) = text(data) else {
        return false;
    };
    if let Ok(p) = Ipv4Net::parse_strict(s) {
        assert_eq!(Ipv4Net::parse_strict(&p.to_string()), Ok(p));
        assert!(p.contains(&p.network()) && p.contains(&p.broadcast()) && p.first() <= p.last());
    }
    if let Ok(p) = Ipv6Net::parse_strict(s) {
        assert_eq!(Ipv6Net::parse_strict(&p.to_string()), Ok(p));
        assert!(p.contains(&p.network()) && p.contains(&p.broadcast()) && p.first() <= p.last());
    }
    let Ok(p) = parse_prefix(s) else {
        return false;
    };
    let shown = p.to_string();
    assert_eq!(parse_prefix(&shown), Ok(p), "{s:?} shown as {shown:?}");
    let (bits, _) = override_key(&p, 1);
    assert!((33..=32 + 128).contains(&bits));
    true
}

/// `meeting add --endpoint PROTO:ADDR:PORT[-PORT]`.
pub fn cli_endpoint(data: &[u8]) -> bool {
    let Some(Ok(e)) = text(data).map(str::parse::<Endpoint>) else {
        return false;
    };
    let shown = e.to_string();
    assert_eq!(
        shown.parse::<Endpoint>(),
        Ok(e.clone()),
        "{data:?} shown as {shown:?}"
    );
    assert!(e.first_port >= 1 && e.first_port <= e.last_port);
    assert_eq!(e.keys().count(), e.port_count());
    assert!(e.overlaps(&e));
    true
}

/// `flow add --src/--dst ADDR:PORT`.
pub fn cli_socket(data: &[u8]) -> bool {
    let Some(Ok(addr)) = text(data).map(parse_socket) else {
        return false;
    };
    assert_ne!(addr.port(), 0);
    let shown = addr.to_string();
    assert_eq!(
        parse_socket(&shown),
        Ok(addr),
        "{data:?} shown as {shown:?}"
    );
    let flow = Flow::new(Proto::Udp, addr, addr).expect("one family");
    assert_eq!(flow.key().src, flow.key().dst);
    true
}

/// `--territory CC`.
pub fn cli_territory(data: &[u8]) -> bool {
    let Some(s) = text(data) else {
        return false;
    };
    let Ok(t) = Territory::parse(s) else {
        return false;
    };
    assert_eq!(t.to_string(), s);
    assert_eq!(Territory::from_id(t.id()), t);
    true
}

/// `block --for DURATION`.
pub fn cli_duration(data: &[u8]) -> bool {
    let Some(Ok(d)) = text(data).map(parse_duration) else {
        return false;
    };
    assert!(!d.is_zero());
    let shown = format_duration(d);
    assert_eq!(parse_duration(&shown), Ok(d), "{data:?} shown as {shown:?}");
    assert!(expiry_after(now(), d).is_ok(), "{shown} has no expiry");
    true
}

fn now() -> Timestamp {
    Timestamp::from_second(1_795_867_200).expect("2026-11-28T12:00:00Z is in range")
}

/// `block --expires RFC3339`, against a fixed "now" so that replays are reproducible.
pub fn cli_expiry(data: &[u8]) -> bool {
    let Some(Ok(at)) = text(data).map(|s| parse_expiry(s, now())) else {
        return false;
    };
    assert!(at > now());
    let shown = at.to_string();
    assert_eq!(
        parse_expiry(&shown, now()),
        Ok(at),
        "{data:?} shown as {shown:?}"
    );
    true
}
