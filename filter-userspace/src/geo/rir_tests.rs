use super::*;
use crate::geo::error::code;

const RIPE: &str = "\
2|ripencc|20260106|7|19830613|20260106|+0100
ripencc|*|asn|*|1|summary
ripencc|*|ipv4|*|4|summary
ripencc|*|ipv6|*|2|summary
ripencc|FR|asn|3215|1|19930901|allocated|abc
ripencc|FR|ipv4|2.0.0.0|1048576|20100712|allocated|abc
ripencc|GB|ipv4|5.44.0.0|768|20120113|assigned|def
ripencc||ipv4|5.45.0.0|65536||available|
ripencc|ZZ|ipv4|5.47.0.0|256||reserved|
ripencc|DE|ipv6|2a01:e00::|26|20070706|allocated|abc|e-stats
ripencc|EU|ipv6|2001:db8::|32|20070706|allocated
";

fn prefixes(data: &str) -> (Vec<(String, String, u32)>, usize, usize) {
    let got = load(data.as_bytes(), 4).unwrap();
    assert!(got.v4.iter().all(|e| e.src == 4) && got.v6.iter().all(|e| e.src == 4));
    let v4 = got
        .v4
        .iter()
        .map(|e| (e.prefix.to_string(), code(e.id), e.line));
    let v6 = got
        .v6
        .iter()
        .map(|e| (e.prefix.to_string(), code(e.id), e.line));
    (v4.chain(v6).collect(), got.rows, got.skipped)
}

fn triples(list: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|(p, c, l)| (p.to_string(), c.to_string(), *l))
        .collect()
}

#[test]
fn reads_records_and_skips_the_rest() {
    let (got, rows, skipped) = prefixes(RIPE);
    assert_eq!(
        got,
        triples(&[
            ("2.0.0.0/12", "FR", 6),
            ("5.44.0.0/23", "GB", 7),
            ("5.44.2.0/24", "GB", 7),
            ("2001:db8::/32", "EU", 11),
            ("2a01:e00::/26", "DE", 10),
        ])
    );
    // Version, summaries and asn are not records; available and reserved space is skipped.
    assert_eq!((rows, skipped), (6, 2));
}

#[test]
fn joined_files_and_comments() {
    // `cat delegated-*` puts a version line in the middle; APNIC starts with comments.
    let apnic = "#\n# APNIC\n#\n2.3|apnic|20260106|1|19850701|20260105|+1000\n\
                 apnic|AU|ipv4|1.0.0.0|256|20110811|assigned|A91872ED\n";
    let (got, rows, _) = prefixes(&format!("{RIPE}{apnic}"));
    assert_eq!(rows, 7);
    assert!(got.contains(&("1.0.0.0/24".into(), "AU".into(), 16)));
    assert!(is_version("2") && is_version("2.3") && !is_version("apnic") && !is_version(""));
}

#[test]
fn a_count_may_end_at_the_last_address() {
    let (got, ..) = prefixes("arin|US|ipv4|255.255.255.0|256|20200101|allocated|x\n");
    assert_eq!(got, triples(&[("255.255.255.0/24", "US", 1)]));
}

fn err(data: impl AsRef<[u8]>) -> String {
    let data = data.as_ref();
    match load(data, 0) {
        Err((n, r)) => format!("{n}: {r}"),
        Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(data)),
    }
}

#[test]
fn bad_records_are_errors_naming_the_line() {
    let v = "2|arin|20260106|1|19830101|20260106|-0500\n";
    assert_eq!(
        err(format!(
            "{v}arin|US|ipv4|255.255.255.0|257|20200101|allocated|x\n"
        )),
        "2: 257 addresses from 255.255.255.0 run past 255.255.255.255"
    );
    assert_eq!(
        err(format!("{v}arin|US|ipv4|3.0.0.0|0|20200101|allocated\n")),
        "2: \"0\" is not a count of addresses (1 to 2^32)"
    );
    assert_eq!(
        err(format!(
            "{v}arin|US|ipv4|3.0.0.0|4294967297|20200101|allocated\n"
        )),
        "2: \"4294967297\" is not a count of addresses (1 to 2^32)"
    );
    assert_eq!(
        err(format!("{v}arin|US|ipv4|3.0.0|256|20200101|allocated\n")),
        "2: unparseable address \"3.0.0\""
    );
    assert_eq!(
        err(format!("{v}arin|US|ipv6|2600:1::|16|20200101|allocated\n")),
        "2: host bits are set in 2600:1::/16 (the network is 2600::/16)"
    );
    assert!(
        err(format!("{v}arin|US|ipv6|2600::|129|20200101|allocated\n"))
            .starts_with("2: prefix length \"129\"")
    );
    assert_eq!(
        err(format!("{v}arin|US|ipv6|::|0|20200101|allocated\n")),
        "2: ::/0 would cover every address"
    );
    assert_eq!(
        err(format!("{v}arin|US|ipv5|3.0.0.0|256|20200101|allocated\n")),
        "2: record type \"ipv5\" is none of ipv4, ipv6, asn"
    );
    assert_eq!(
        err(format!("{v}arin|US|ipv4|3.0.0.0|256|20200101|delegated\n")),
        "2: status \"delegated\" is none of allocated, assigned, available, reserved"
    );
    assert!(
        err(format!("{v}arin|us|ipv4|3.0.0.0|256|20200101|allocated\n"))
            .starts_with("2: country code \"us\"")
    );
    assert_eq!(
        err(format!("{v}\narin|US|ipv4|3.0.0.0|256\n")),
        "3: found 5 columns, expected at least 7 (registry|cc|type|start|value|date|status)"
    );
    assert_eq!(
        err(b"arin|US|ipv4|3.0.0.0|256|2020\xff|allocated\n"),
        "1: line is not valid UTF-8"
    );
}
