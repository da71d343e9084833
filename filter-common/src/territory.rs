//! Territory codes ⇄ ids.
//!
//! An ISO 3166-1 alpha-2 code `C1C2` maps to `(C1-'A')*26 + (C2-'A') + 1`, so every
//! two-letter code, user-assigned ones (AA, QM–QZ, XA–XZ, ZZ) included, has an id in
//! `1..=676`. Id 0 is "unknown": a source address no table entry covers.

/// A territory id, `0..=TERRITORY_MAX`.
pub type TerritoryId = u16;

/// The id of sources that no territory table entry covers.
pub const TERRITORY_UNKNOWN: TerritoryId = 0;
/// The largest territory id (`ZZ`).
pub const TERRITORY_MAX: TerritoryId = 26 * 26;
/// Number of ids including "unknown".
pub const TERRITORY_COUNT: usize = TERRITORY_MAX as usize + 1;
/// Words of a bitset that holds one bit per territory id.
pub const TERRITORY_WORDS: usize = TERRITORY_COUNT.div_ceil(64);
const _: () = assert!(TERRITORY_WORDS * 64 >= TERRITORY_COUNT);

/// The id of a two-letter upper-case code, or `None` if it is not `[A-Z][A-Z]`.
pub const fn territory_id(code: [u8; 2]) -> Option<TerritoryId> {
    let [c1, c2] = code;
    if !c1.is_ascii_uppercase() || !c2.is_ascii_uppercase() {
        return None;
    }
    Some((c1 - b'A') as u16 * 26 + (c2 - b'A') as u16 + 1)
}

/// The code of an id in `1..=676`; `None` for "unknown" (0) and ids out of range.
pub const fn territory_code(id: TerritoryId) -> Option<[u8; 2]> {
    if id == TERRITORY_UNKNOWN || id > TERRITORY_MAX {
        return None;
    }
    let n = id - 1;
    Some([b'A' + (n / 26) as u8, b'A' + (n % 26) as u8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_for_every_code() {
        let mut seen = 0;
        for c1 in b'A'..=b'Z' {
            for c2 in b'A'..=b'Z' {
                let id = territory_id([c1, c2]).expect("valid code");
                assert!((1..=TERRITORY_MAX).contains(&id));
                assert_eq!(territory_code(id), Some([c1, c2]));
                seen += 1;
            }
        }
        assert_eq!(seen, TERRITORY_MAX as usize);
    }

    #[test]
    fn known_ids() {
        assert_eq!(territory_id(*b"AA"), Some(1));
        assert_eq!(territory_id(*b"AB"), Some(2));
        assert_eq!(territory_id(*b"BA"), Some(27));
        assert_eq!(territory_id(*b"ZZ"), Some(676));
        assert_eq!(territory_id(*b"CN"), Some(2 * 26 + 13 + 1));
    }

    #[test]
    fn rejects_non_codes() {
        assert_eq!(territory_id(*b"cn"), None);
        assert_eq!(territory_id(*b"C1"), None);
        assert_eq!(territory_id(*b"@A"), None);
        assert_eq!(territory_id(*b"A["), None);
        assert_eq!(territory_code(0), None);
        assert_eq!(territory_code(677), None);
    }

    #[test]
    fn bitset_covers_every_id() {
        assert_eq!(TERRITORY_WORDS, 11);
    }
}
