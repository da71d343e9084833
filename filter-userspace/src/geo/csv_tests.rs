use super::*;

fn id(cc: &[u8; 2]) -> TerritoryId {
    territory_id(*cc).unwrap()
}

fn err(data: &str) -> String {
    match load(data.as_bytes(), 0) {
        Err((n, r)) => format!("{n}: {r}"),
        Ok(_) => panic!("accepted {data:?}"),
    }
}

#[test]
fn good_file_with_mixed_families() {
    let data = "# comment\n\n1.0.0.0,1.0.0.255,AU\r\n1.0.1.0,1.0.3.255,CN\n\
                2001:db8::,2001:db8::ffff,JP\n\"1.0.4.0\", \"1.0.4.2\" ,US\n";
    let got = load(data.as_bytes(), 3).unwrap();
    assert_eq!(got.rows, 4);
    let v4: Vec<_> = got
        .v4
        .iter()
        .map(|e| (e.prefix.to_string(), e.id, e.line, e.src))
        .collect();
    assert_eq!(
        v4,
        [
            ("1.0.0.0/24".to_string(), id(b"AU"), 3, 3),
            ("1.0.1.0/24".to_string(), id(b"CN"), 4, 3),
            ("1.0.2.0/23".to_string(), id(b"CN"), 4, 3),
            ("1.0.4.0/31".to_string(), id(b"US"), 6, 3),
            ("1.0.4.2/32".to_string(), id(b"US"), 6, 3),
        ]
    );
    let v6: Vec<_> = got
        .v6
        .iter()
        .map(|e| (e.prefix.to_string(), e.line))
        .collect();
    assert_eq!(v6, [("2001:db8::/112".to_string(), 5)]);
}

#[test]
fn unsorted_ranges_are_accepted() {
    let got = load(b"10.0.1.0,10.0.1.255,CN\n10.0.0.0,10.0.0.255,US\n", 0).unwrap();
    let v4: Vec<_> = got
        .v4
        .iter()
        .map(|e| (e.prefix.to_string(), e.id, e.line))
        .collect();
    assert_eq!(
        v4,
        [
            ("10.0.0.0/24".into(), id(b"US"), 2),
            ("10.0.1.0/24".into(), id(b"CN"), 1)
        ]
    );
}

#[test]
fn rejects_each_kind_of_bad_line() {
    assert_eq!(
        err("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255\n"),
        "2: expected 3 comma-separated columns (start,end,CC), found 2"
    );
    assert_eq!(
        err("1.0.1.0,1.0.1.255,AU,extra\n"),
        "1: expected 3 comma-separated columns (start,end,CC), found 4"
    );
    assert_eq!(
        err("1.0.1.0,1.0.1.256,AU\n"),
        "1: unparseable address \"1.0.1.256\""
    );
    assert_eq!(
        err("start_ip,end_ip,country\n"),
        "1: unparseable address \"start_ip\""
    );
    assert_eq!(
        err("\n1.0.0.0,2001:db8::,AU\n"),
        "2: start 1.0.0.0 and end 2001:db8:: are of different address families"
    );
    assert_eq!(
        err("# x\n# y\n10.0.0.9,10.0.0.1,CN\n"),
        "3: start 10.0.0.9 is after end 10.0.0.1"
    );
    assert_eq!(
        err("2001:db8::2,2001:db8::1,CN\n"),
        "1: start 2001:db8::2 is after end 2001:db8::1"
    );
    let lower = err("1.0.0.0,1.0.0.255,cn\n");
    assert!(
        lower.starts_with("1: country code \"cn\" is not two upper-case letters"),
        "{lower}"
    );
    assert!(lower.contains("upper-case ISO 3166-1 alpha-2"), "{lower}");
    for bad in ["C", "CHN", "C1", "", "ÄB"] {
        let msg = err(&format!("1.0.0.0,1.0.0.255,{bad}\n"));
        assert!(msg.starts_with("1: country code"), "{msg}");
    }
    match load(b"1.0.0.0,1.0.0.255,AU\n1.0.1.0,\xff,AU\n", 0) {
        Err((n, r)) => assert_eq!(format!("{n}: {r}"), "2: line is not valid UTF-8"),
        Ok(_) => panic!("accepted non-UTF-8"),
    }
}

fn prefixes(got: &Loaded) -> Vec<(String, TerritoryId, u32)> {
    got.v4
        .iter()
        .map(|e| (e.prefix.to_string(), e.id, e.line))
        .collect()
}

#[test]
fn overlapping_ranges_resolve_to_the_later_line() {
    // As in the real file: a DE range, a BE address inside it, then DE again.
    let data =
        b"2.58.196.0,2.58.197.255,DE\n2.58.197.15,2.58.197.15,BE\n2.58.197.16,2.58.197.255,DE\n";
    let got = load(data, 0).unwrap();
    assert_eq!((got.rows, got.overlaps), (3, 2));
    let (de, be) = (id(b"DE"), id(b"BE"));
    assert_eq!(
        prefixes(&got),
        [
            ("2.58.196.0/24".into(), de, 1),
            ("2.58.197.0/29".into(), de, 1),
            ("2.58.197.8/30".into(), de, 1),
            ("2.58.197.12/31".into(), de, 1),
            ("2.58.197.14/32".into(), de, 1),
            ("2.58.197.15/32".into(), be, 2),
            ("2.58.197.16/28".into(), de, 3),
            ("2.58.197.32/27".into(), de, 3),
            ("2.58.197.64/26".into(), de, 3),
            ("2.58.197.128/25".into(), de, 3),
        ]
    );
    // Same bounds twice: the later line wins; same code twice: one range.
    let got = load(b"10.0.0.0,10.0.0.255,DE\n10.0.0.0,10.0.0.255,US\n", 0).unwrap();
    assert_eq!(prefixes(&got), [("10.0.0.0/24".into(), id(b"US"), 2)]);
    let got = load(b"10.0.0.0,10.0.0.255,CN\n10.0.0.128,10.0.1.255,CN\n", 0).unwrap();
    assert_eq!(prefixes(&got), [("10.0.0.0/23".into(), id(b"CN"), 1)]);
    // Families never overlap each other.
    let got = load(b"10.0.0.0,10.0.0.255,CN\n::a00:0,::a00:ff,JP\n", 0).unwrap();
    assert_eq!((got.overlaps, got.v4.len(), got.v6.len()), (0, 1, 1));
}

#[test]
fn whole_space_range_splits_to_slash_zero() {
    // Rejected later, at merge time, with the file and line: see the tests in mod.rs.
    let got = load(b"0.0.0.0,255.255.255.255,AU\n", 0).unwrap();
    assert_eq!(got.v4[0].prefix.prefix_len(), 0);
}

#[test]
fn survives_garbage() {
    let mut data = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(if x.is_multiple_of(7) {
            b','
        } else {
            (x >> 8) as u8
        });
    }
    assert!(load(&data, 0).is_err());
    let long = format!("1.0.0.0,1.0.0.255,{}\n", "A".repeat(1 << 20));
    assert!(err(&long).len() < 300);
}
