use filter_common::territory::territory_id;

use super::*;
use crate::geo::error::code;

fn prefixes(data: &str) -> (Vec<(String, String)>, usize, usize) {
    let got = load(data.as_bytes(), 2).unwrap();
    assert!(got.v4.iter().all(|e| e.src == 2));
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
fn ipv4_edition() {
    let data = "\"0\",\"16777215\",\"-\",\"-\"\r\n\
                \"16777216\",\"16777471\",\"AU\",\"Australia\"\r\n\
                \"16777472\",\"16778239\",\"KR\",\"Korea (Republic of)\"\r\n\
                \"16778240\",\"16778241\",\"BQ\",\"Bonaire, Sint Eustatius and Saba\"\r\n\
                \"16778242\",\"4294967295\",\"-\",\"-\"\r\n";
    let (got, rows, skipped) = prefixes(data);
    assert_eq!(
        got,
        pairs(&[
            ("1.0.0.0/24", "AU"),
            ("1.0.1.0/24", "KR"),
            ("1.0.2.0/23", "KR"),
            ("1.0.4.0/31", "BQ"),
        ])
    );
    assert_eq!((rows, skipped), (5, 2));
}

#[test]
fn ipv6_edition_maps_ipv4_back() {
    // ::ffff:1.0.0.0 - ::ffff:1.0.0.255, a row across the end of the mapped block, and
    // 2001:200::/23.
    let data = "\"0\",\"281470681743359\",\"-\",\"-\"\n\
                \"281470698520576\",\"281470698520831\",\"AU\",\"Australia\"\n\
                \"281474976710400\",\"281474976710911\",\"JP\",\"Japan\"\n\
                \"42540528726795050063891204319802818560\",\
                \"42540569291614257367232052214305390591\",\"JP\",\"Japan\"\n";
    let (got, rows, skipped) = prefixes(data);
    assert_eq!(
        got,
        pairs(&[
            ("1.0.0.0/24", "AU"),
            ("255.255.255.0/24", "JP"),
            ("::1:0:0:0/120", "JP"),
            ("2001:200::/23", "JP"),
        ])
    );
    assert_eq!((rows, skipped), (4, 1));
}

#[test]
fn a_header_and_more_columns_are_accepted() {
    let data = "\"ip_from\",\"ip_to\",\"country_code\",\"country_name\",\"region_name\"\n\
                \"16777216\",\"16777471\",\"AU\",\"Australia\",\"Queensland\"\n";
    let (got, rows, _) = prefixes(data);
    assert_eq!((got, rows), (pairs(&[("1.0.0.0/24", "AU")]), 1));
    assert!(is_header(" \"ip_from\"") && !is_header("16777216"));
}

#[test]
fn overlapping_rows_resolve_as_in_range_csvs() {
    let got = load(
        b"\"16777216\",\"16777471\",\"AU\",\"\"\n\"16777217\",\"16777217\",\"NZ\",\"\"\n",
        0,
    )
    .unwrap();
    assert_eq!(got.overlaps, 1);
    let nz = territory_id(*b"NZ").unwrap();
    assert!(
        got.v4
            .iter()
            .any(|e| e.prefix.to_string() == "1.0.0.1/32" && e.id == nz)
    );
}

fn err(data: impl AsRef<[u8]>) -> String {
    let data = data.as_ref();
    match load(data, 0) {
        Err((n, r)) => format!("{n}: {r}"),
        Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(data)),
    }
}

#[test]
fn bad_rows_are_errors_naming_the_line() {
    assert_eq!(
        err("\"1\",\"2\",\"AU\"\n\"16777471\",\"16777216\",\"AU\",\"Australia\"\n"),
        "2: start 16777471 is after end 16777216"
    );
    assert_eq!(
        err("\"1.0.0.0\",\"16777471\",\"AU\",\"Australia\"\n"),
        "1: \"1.0.0.0\" is not an address as a decimal number (0 to 2^128 - 1)"
    );
    assert_eq!(
        err("\"0\",\"340282366920938463463374607431768211456\",\"-\",\"-\"\n"),
        "1: \"340282366920938463463374607431768211456\" is not an address as a decimal \
         number (0 to 2^128 - 1)"
    );
    assert_eq!(
        err("\"+1\",\"2\",\"AU\"\n"),
        "1: \"+1\" is not an address as a decimal number (0 to 2^128 - 1)"
    );
    assert_eq!(
        err("\"16777216\",\"16777471\"\n"),
        "1: found 2 columns, expected at least 3 (ip_from, ip_to, country_code)"
    );
    assert!(
        err("\"16777216\",\"16777471\",\"au\",\"Australia\"\n")
            .starts_with("1: country code \"au\"")
    );
    assert_eq!(
        err("\"16777216\",\"16777471\",\"AU\",\"Australia\n"),
        "1: a quoted field is not closed, or text follows its closing quote"
    );
    assert_eq!(err(b"\"1\",\"2\",\"\xff\"\n"), "1: line is not valid UTF-8");
}
