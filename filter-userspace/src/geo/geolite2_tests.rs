use std::path::PathBuf;

use filter_common::territory::territory_id;

use super::*;

const LOCATIONS: &str = "\
geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,is_in_european_union
2921044,en,EU,Europe,DE,Germany,1
3017382,en,EU,Europe,FR,France,1
6255148,en,EU,Europe,,,0
7626844,en,NA,\"North America\",BQ,\"Bonaire, Sint Eustatius, and Saba\",0
";

const HEADER: &str = "network,geoname_id,registered_country_geoname_id,\
represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider";

fn names() -> Vec<PathBuf> {
    vec!["Locations-en.csv".into(), "Blocks.csv".into()]
}

fn geonames() -> Geonames {
    let mut g = Geonames::default();
    assert_eq!(g.read(LOCATIONS.as_bytes(), 0, &names()), Ok(4));
    g
}

fn id(cc: &[u8; 2]) -> TerritoryId {
    territory_id(*cc).unwrap()
}

/// The prefixes of a blocks file, as text with their codes.
fn load(rows: &str, by: LocateBy) -> (Vec<(String, String)>, usize, usize) {
    let data = format!("{HEADER}\r\n{rows}");
    let got = blocks(data.as_bytes(), 1, &geonames(), by).unwrap();
    let v4 = got.v4.iter().map(|e| (e.prefix.to_string(), code(e.id)));
    let v6 = got.v6.iter().map(|e| (e.prefix.to_string(), code(e.id)));
    (v4.chain(v6).collect(), got.rows, got.skipped)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

#[test]
fn places_networks_by_their_location_else_their_registration() {
    let rows = "\
2.16.0.0/13,3017382,2921044,,0,0\r
5.45.0.0/16,6255148,,,0,0\r
5.46.0.0/16,6255148,2921044,,0,0\r
1.0.8.0/21,,,,1,0\r
2a01:e00::/26,3017382,3017382,,0,0\r
161.0.0.0/19,7626844,,,0,0\r
";
    let (got, read, skipped) = load(rows, LocateBy::Country);
    assert_eq!(
        got,
        pairs(&[
            ("2.16.0.0/13", "FR"),
            ("5.46.0.0/16", "DE"),
            ("161.0.0.0/19", "BQ"),
            ("2a01:e00::/26", "FR"),
        ])
    );
    assert_eq!((read, skipped), (6, 2));

    let (got, _, skipped) = load(rows, LocateBy::Registered);
    assert_eq!(
        got,
        pairs(&[
            ("2.16.0.0/13", "DE"),
            ("5.46.0.0/16", "DE"),
            ("2a01:e00::/26", "FR")
        ])
    );
    assert_eq!(
        skipped, 3,
        "continent-only, no ids, and BQ without a registration"
    );
}

#[test]
fn adjacent_networks_of_one_country_join_and_lines_are_kept() {
    let data = format!(
        "{HEADER},is_anycast\n1.0.0.0/25,2921044,2921044,,0,0,\n1.0.0.128/25,2921044,,,0,0,1\n"
    );
    let got = blocks(data.as_bytes(), 3, &geonames(), LocateBy::Country).unwrap();
    let v4: Vec<_> = got
        .v4
        .iter()
        .map(|e| (e.prefix.to_string(), e.id, e.line, e.src))
        .collect();
    assert_eq!(v4, [("1.0.0.0/24".to_string(), id(b"DE"), 2, 3)]);
}

#[test]
fn columns_are_found_by_name() {
    let data = "geoname_id,network,is_anycast,registered_country_geoname_id\n\
                3017382,1.0.0.0/24,0,\n";
    // Not the published order, but every column the loader needs is there.
    assert_eq!(kind_of_header(data.as_bytes()), None);
    let got = blocks(data.as_bytes(), 0, &geonames(), LocateBy::Country).unwrap();
    assert_eq!((got.v4.len(), got.v4[0].id), (1, id(b"FR")));
}

fn err(data: impl AsRef<[u8]>) -> String {
    let data = data.as_ref();
    match blocks(data, 1, &geonames(), LocateBy::Country) {
        Err((n, r)) => format!("{n}: {r}"),
        Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(data)),
    }
}

#[test]
fn bad_blocks_are_errors_naming_the_line() {
    let h = HEADER;
    assert_eq!(
        err(format!("{h}\n1.0.0.0/24,99,,,0,0\n")),
        "2: geoname_id 99 is in no locations file \
         (are the blocks and locations files of the same release?)"
    );
    assert_eq!(
        err(format!("{h}\n1.0.0.1/24,3017382,,,0,0\n")),
        "2: host bits are set in 1.0.0.1/24 (the network is 1.0.0.0/24)"
    );
    assert_eq!(
        err(format!("{h}\n\n1.0.0.0/24,3017382,,,0\n")),
        "3: found 5 columns, expected 6 as in the header"
    );
    assert_eq!(
        err(format!("{h}\n1.0.0.0/24,FR,,,0,0\n")),
        "2: geoname_id \"FR\" is not a number"
    );
    assert_eq!(
        err(format!("{h}\n0.0.0.0/0,3017382,,,0,0\n")),
        "2: 0.0.0.0/0 would cover every address"
    );
    assert_eq!(
        err(format!("{h}\n1.0.0.0/24,\"3017382,,,0,0\n")),
        "2: a quoted field is not closed, or text follows its closing quote"
    );
    assert_eq!(
        err("network,geoname_id,is_anonymous_proxy\n1.0.0.0/24,3017382,0\n"),
        "1: the header has no registered_country_geoname_id column"
    );
    assert_eq!(
        err("1.0.0.0/24,3017382,3017382,,0,0\n"),
        "1: expected the header line network,geoname_id,registered_country_geoname_id,..., \
         found \"1.0.0.0/24,3017382,3017382,,0,0\""
    );
    assert_eq!(
        err(b"network,geoname_id\xff\n"),
        "1: line is not valid UTF-8"
    );
}

#[test]
fn locations_are_checked() {
    let read = |data: &str| {
        let mut g = geonames();
        g.read(data.as_bytes(), 1, &names())
            .map_err(|(n, r)| format!("{n}: {r}"))
    };
    let head = "geoname_id,locale_code,continent_code,continent_name,country_iso_code,\
                country_name,is_in_european_union";
    // The same codes in another language agree with the English file.
    let de = format!("{head}\n2921044,de,EU,Europa,DE,Deutschland,1\n");
    assert_eq!(read(&de), Ok(1));
    assert_eq!(
        read(&format!("{head}\n\n2921044,de,EU,Europa,AT,Österreich,1\n")),
        Err("3: geoname_id 2921044 is AT here but DE in Locations-en.csv:2".into())
    );
    assert_eq!(
        read(&format!("{head}\n6255148,de,EU,Europa,FR,Frankreich,1\n")),
        Err("2: geoname_id 6255148 is FR here but no country in Locations-en.csv:4".into())
    );
    assert!(
        read(&format!("{head}\n1,en,EU,Europe,de,Germany,1\n"))
            .is_err_and(|e| e.starts_with("2: country code \"de\""))
    );
    assert_eq!(
        read("geoname_id,locale_code,continent_code\n1,en,EU\n"),
        Err("1: the header has no country_iso_code column".into())
    );
    assert_eq!(read(""), Ok(0));
}

#[test]
fn header_kinds_and_names() {
    assert_eq!(kind_of_header(HEADER.as_bytes()), Some(Kind::Blocks));
    assert_eq!(kind(LOCATIONS.as_bytes()), Some(Kind::Locations));
    assert_eq!(kind(b"1.0.0.0,1.0.0.255,AU\n"), None);
    for l in LocateBy::ALL {
        assert_eq!(l.to_string().parse::<LocateBy>(), Ok(l));
    }
    assert!("Country".parse::<LocateBy>().is_err());
    assert_eq!(LocateBy::default(), LocateBy::Country);
}
