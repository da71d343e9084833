//! Source prefixes of overrides, either family, as `ipnet` prefixes: the operators' syntax
//! (a bare address is the single host, `/0` is refused), their override trie keys, and their
//! form in the state, policy and fleet files (`"ADDRESS/LENGTH"` strings).

use filter_common::{Address, OverrideKey, maps::OVERRIDE_SESSION_BITS};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer};

use crate::geo::NetBits;

/// Parses an override prefix: `ADDRESS/LENGTH` without host bits, or a bare address for
/// the single host; `/0` is refused, as blocking everything is what territories are for.
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let prefix = match (s.contains('/'), s.contains(':')) {
        (true, true) => Ipv6Net::parse_strict(s).map(IpNet::V6),
        (true, false) => Ipv4Net::parse_strict(s).map(IpNet::V4),
        (false, true) => Ipv6Net::parse_strict(&format!("{s}/128")).map(IpNet::V6),
        (false, false) => Ipv4Net::parse_strict(&format!("{s}/32")).map(IpNet::V4),
    }
    .map_err(|e| format!("`{s}`: {e}"))?;
    if prefix.prefix_len() == 0 {
        return Err(format!(
            "`{s}`: a /0 prefix covers every address; block the territories instead"
        ));
    }
    Ok(prefix)
}

/// The override trie key for `prefix` on `session`: IPv4 as IPv4-mapped IPv6.
pub fn override_key(prefix: &IpNet, session: u32) -> (u32, OverrideKey) {
    let (addr, bits): (Address, u32) = match prefix {
        IpNet::V4(p) => (
            p.network().to_ipv6_mapped().octets(),
            96 + u32::from(p.prefix_len()),
        ),
        IpNet::V6(p) => (p.network().octets(), u32::from(p.prefix_len())),
    };
    let key = OverrideKey {
        session_be: session.to_be_bytes(),
        addr,
    };
    (OVERRIDE_SESSION_BITS + bits, key)
}

/// An override prefix read with [`parse_prefix`]'s rules, for files operators write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strict(pub IpNet);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_prefix(&text)
            .map(Strict)
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(deserialize_with = "crate::prefix::deserialize_list")]` for a `Vec<IpNet>`
/// field: `ipnet` writes the `"ADDRESS/LENGTH"` strings, read back with [`parse_prefix`]'s
/// rules rather than `ipnet`'s, which would take host bits and `/0`.
pub fn deserialize_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let strict = Vec::<Strict>::deserialize(d)?;
    Ok(strict.into_iter().map(|p| p.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keys() {
        let p = parse_prefix("198.51.100.7").expect("host");
        assert_eq!(p.to_string(), "198.51.100.7/32");
        let (bits, key) = override_key(&p, 5);
        assert_eq!(bits, 32 + 128);
        assert_eq!(key.session_be, [0, 0, 0, 5]);
        assert_eq!(key.addr[10..], [0xff, 0xff, 198, 51, 100, 7]);
        let p = parse_prefix("2001:db8::/32").expect("v6");
        assert_eq!(override_key(&p, 1).0, 32 + 32);
        assert!(p.contains(&"2001:db8::1".parse::<std::net::IpAddr>().expect("addr")));
        assert!(!p.contains(&"192.0.2.1".parse::<std::net::IpAddr>().expect("addr")));
    }

    #[test]
    fn rejects() {
        for (input, needle) in [
            ("0.0.0.0/0", "/0"),
            ("::/0", "/0"),
            ("198.51.100.7/24", "host"),
            ("198.51.100.0/33", ""),
            ("banana", ""),
        ] {
            let err = parse_prefix(input).expect_err(input);
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn files_hold_strings_read_strictly() {
        #[derive(serde::Serialize, Deserialize)]
        struct Doc {
            #[serde(deserialize_with = "deserialize_list")]
            p: Vec<IpNet>,
        }
        let doc: Doc = serde_json::from_str(r#"{"p":["10.0.0.0/8","2001:db8::1"]}"#).expect("doc");
        let text = serde_json::to_string(&doc).expect("json");
        assert_eq!(text, r#"{"p":["10.0.0.0/8","2001:db8::1/128"]}"#);
        let err = serde_json::from_str::<Doc>(r#"{"p":["10.0.0.1/8"]}"#)
            .err()
            .expect("host bits");
        assert!(err.to_string().contains("host bits"), "{err}");
    }
}
