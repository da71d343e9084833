//! Territory codes as operators type them: ISO 3166-1 alpha-2, the user-assigned codes
//! that operators use for custom territories, and `unknown` for unmapped sources.

use std::fmt;

use filter_common::territory::{TERRITORY_UNKNOWN, TerritoryId, territory_code, territory_id};

/// ISO 3166-1 alpha-2 officially assigned codes.
const ASSIGNED: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ \
BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE \
DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR \
GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP \
KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT \
MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW \
PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG \
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Codes outside ISO's assigned list that registry data uses: AN (the former Netherlands
/// Antilles), and the RIR region codes EU and AP.
const REGISTRY: [&str; 3] = ["AN", "EU", "AP"];

fn is_user_assigned(code: &[u8; 2]) -> bool {
    matches!(
        code,
        [b'A', b'A'] | [b'Z', b'Z'] | [b'Q', b'M'..=b'Z'] | [b'X', b'A'..=b'Z']
    )
}

/// A territory a rule may name: a code, or sources no table entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Territory(TerritoryId);

impl Territory {
    pub const UNKNOWN: Territory = Territory(TERRITORY_UNKNOWN);

    pub fn id(self) -> TerritoryId {
        self.0
    }

    /// The territory of an id read from the kernel; ids out of range are unknown.
    pub fn from_id(id: TerritoryId) -> Territory {
        match territory_code(id) {
            Some(_) => Territory(id),
            None => Territory::UNKNOWN,
        }
    }

    /// Parses a code typed by an operator. Stricter than the loaders: a typo in an order
    /// must not silently block nothing.
    pub fn parse(text: &str) -> Result<Territory, String> {
        if text == "unknown" {
            return Ok(Territory::UNKNOWN);
        }
        let bytes: [u8; 2] = match text.as_bytes().try_into() {
            Ok(bytes) => bytes,
            Err(_) => {
                return Err(format!(
                    "`{text}` is not a territory code: expected two upper-case letters (ISO 3166-1 alpha-2, e.g. CN) or `unknown`"
                ));
            }
        };
        if bytes.iter().all(u8::is_ascii_lowercase) {
            let upper = text.to_ascii_uppercase();
            return Err(format!(
                "`{text}` is lower-case; territory codes are upper-case: {upper}"
            ));
        }
        let Some(id) = territory_id(bytes) else {
            return Err(format!(
                "`{text}` is not a territory code: expected two upper-case letters A-Z"
            ));
        };
        if text == "UK" {
            return Err("`UK` is reserved in ISO 3166-1; the United Kingdom is GB".to_string());
        }
        if ASSIGNED.split_whitespace().any(|c| c == text)
            || REGISTRY.contains(&text)
            || is_user_assigned(&bytes)
        {
            Ok(Territory(id))
        } else {
            Err(format!(
                "`{text}` is not an assigned ISO 3166-1 alpha-2 code, nor a user-assigned one (AA, QM-QZ, XA-XZ, ZZ)"
            ))
        }
    }
}

impl fmt::Display for Territory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match territory_code(self.0) {
            Some([a, b]) => write!(f, "{}{}", a as char, b as char),
            None => f.write_str("unknown"),
        }
    }
}

impl std::str::FromStr for Territory {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Territory::parse(s)
    }
}

impl serde::Serialize for Territory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Territory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Territory::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_assigned_user_assigned_and_unknown() {
        for ok in [
            "CN", "HK", "US", "DE", "JP", "XA", "XK", "QM", "QZ", "AA", "ZZ", "EU",
        ] {
            let t = Territory::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(t.to_string(), ok);
        }
        assert_eq!(Territory::parse("unknown"), Ok(Territory::UNKNOWN));
        assert_eq!(Territory::UNKNOWN.id(), 0);
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            ("cn", "upper-case: CN"),
            ("CHN", "two upper-case letters"),
            ("C", "two upper-case letters"),
            ("", "two upper-case letters"),
            ("C1", "A-Z"),
            ("UK", "GB"),
            ("QA", ""),
            ("QL", "not an assigned"),
            ("OO", "not an assigned"),
            ("ÉÉ", "two upper-case letters"),
        ];
        for (input, needle) in cases {
            if input == "QA" {
                assert!(Territory::parse(input).is_ok(), "Qatar is assigned");
                continue;
            }
            let err = Territory::parse(input).expect_err(input);
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn assigned_list_is_well_formed() {
        let codes: Vec<&str> = ASSIGNED.split_whitespace().collect();
        assert_eq!(codes.len(), 249);
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
    }
}
