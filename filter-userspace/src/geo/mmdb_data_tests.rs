use super::*;

/// Control bytes: a pointer of 1 byte to `to` (< 2048), a map or array of `n` entries.
fn ptr(to: usize) -> [u8; 2] {
    [0x20 | (to >> 8) as u8, to as u8]
}
const fn map(n: u8) -> u8 {
    0xe0 | n
}
const ARRAY_EXT: u8 = 4; // extended type 11 = 7 + 4

fn err(section: &[u8]) -> String {
    check(section, 0).expect_err("accepted")
}

#[test]
fn accepts_a_record() {
    // {"country_code": "AU", "names": ["a", ptr -> "AU"]}
    let mut rec = vec![map(2), 0x4c];
    rec.extend(b"country_code");
    let au = rec.len();
    rec.extend([0x42, b'A', b'U', 0x45]);
    rec.extend(b"names");
    rec.extend([0x02, ARRAY_EXT, 0x41, b'a']);
    rec.extend(ptr(au));
    assert_eq!(check(&rec, 0), Ok(()));
}

#[test]
fn pointer_cycles_are_refused() {
    assert!(err(&ptr(0)).contains("pointer to a pointer"));
    // {"a": ptr -> the map itself}
    let mut cycle = vec![map(1), 0x41, b'a'];
    cycle.extend(ptr(0));
    assert!(err(&cycle).contains("nested more than 32 levels"));
}

#[test]
fn nesting_is_bounded() {
    let nested = |levels: usize| {
        let mut v: Vec<u8> = [0x01, ARRAY_EXT].repeat(levels);
        v.extend([0xa1, 7]); // uint16 7
        v
    };
    assert_eq!(check(&nested(MAX_DEPTH as usize - 1), 0), Ok(()));
    assert!(err(&nested(MAX_DEPTH as usize)).contains("nested"));
}

#[test]
fn fan_out_through_pointers_is_bounded() {
    // Level k is an array of 16 pointers to level k + 1; 6 levels expand to 16^6 values.
    let mut v = Vec::new();
    let level_len = 2 + 16 * 2;
    for k in 0..6 {
        v.extend([16, ARRAY_EXT]);
        for _ in 0..16 {
            v.extend(ptr((k + 1) * level_len));
        }
    }
    v.extend([0xa1, 7]);
    assert!(err(&v).contains("more than 100000 values"));
}

#[test]
fn truncated_and_unknown_values_are_refused() {
    assert!(err(&[0x45, b'a']).contains("past the end"));
    assert!(err(&[0x20]).contains("past the end"));
    assert!(err(&[0x00, 250]).contains("extended data type 250"));
    assert!(err(&[0x3d, 0, 0, 0, 0]).contains("malformed pointer"));
    assert!(err(&[0x5d]).contains("past the end")); // string, size in a missing byte
    assert!(err(&[0x09, 5, 0]).contains("type 12")); // data cache container
}
