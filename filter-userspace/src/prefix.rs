//! Source prefixes of overrides, either family.

use std::{fmt, net::IpAddr, str::FromStr};

use filter_common::{Address, OverrideKey, maps::OVERRIDE_SESSION_BITS};
use serde::{Deserialize, Serialize};

use crate::geo::{PrefixV4, PrefixV6};

/// An IPv4 or IPv6 prefix; a bare address means the single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    V4(PrefixV4),
    V6(PrefixV6),
}

impl Prefix {
    /// The override trie key for this prefix on `session`.
    pub fn override_key(&self, session: u32) -> (u32, OverrideKey) {
        let (addr, bits): (Address, u32) = match self {
            Prefix::V4(p) => (
                std::net::Ipv4Addr::from(p.addr).to_ipv6_mapped().octets(),
                96 + u32::from(p.len),
            ),
            Prefix::V6(p) => (p.addr.to_be_bytes(), u32::from(p.len)),
        };
        let key = OverrideKey {
            session_be: session.to_be_bytes(),
            addr,
        };
        (OVERRIDE_SESSION_BITS + bits, key)
    }

    /// Whether every address of `inner` is in `self`.
    pub fn covers(&self, inner: &Prefix) -> bool {
        match (self, inner) {
            (Prefix::V4(o), Prefix::V4(i)) => o.len <= i.len && o.contains(i.addr),
            (Prefix::V6(o), Prefix::V6(i)) => o.len <= i.len && o.contains(i.addr),
            _ => false,
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Prefix::V4(p), IpAddr::V4(a)) => p.contains(u32::from(a)),
            (Prefix::V6(p), IpAddr::V6(a)) => p.contains(u128::from(a)),
            _ => false,
        }
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = match (s.contains('/'), s.contains(':')) {
            (true, _) => s.to_string(),
            (false, false) => format!("{s}/32"),
            (false, true) => format!("{s}/128"),
        };
        let prefix = if text.contains(':') {
            text.parse::<PrefixV6>().map(Prefix::V6)
        } else {
            text.parse::<PrefixV4>().map(Prefix::V4)
        }
        .map_err(|e| format!("`{s}`: {e}"))?;
        let len = match prefix {
            Prefix::V4(p) => p.len,
            Prefix::V6(p) => p.len,
        };
        if len == 0 {
            return Err(format!(
                "`{s}`: a /0 prefix covers every address; block the territories instead"
            ));
        }
        Ok(prefix)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keys() {
        let p: Prefix = "198.51.100.7".parse().expect("host");
        assert_eq!(p.to_string(), "198.51.100.7/32");
        let (bits, key) = p.override_key(5);
        assert_eq!(bits, 32 + 128);
        assert_eq!(key.session_be, [0, 0, 0, 5]);
        assert_eq!(key.addr[10..], [0xff, 0xff, 198, 51, 100, 7]);
        let p: Prefix = "2001:db8::/32".parse().expect("v6");
        assert_eq!(p.override_key(1).0, 32 + 32);
        assert!(p.contains("2001:db8::1".parse().expect("addr")));
        assert!(!p.contains("192.0.2.1".parse().expect("addr")));
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
            let err = input.parse::<Prefix>().expect_err(input);
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
