//! Plain CIDR lists for one territory (ipdeny style): one CIDR or bare address per line.

use std::net::IpAddr;

use filter_common::territory::TerritoryId;
use ipnet::{Ipv4Net, Ipv6Net};

use super::cidr::{NetBits, snippet};
use super::csv::LineError;
use super::error::Reason;
use super::source::{data_line, lines};
use super::table::{Entry, Loaded};

enum Parsed {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

fn parse_line(line: &str) -> Result<Parsed, Reason> {
    let parsed = if !line.contains('/') {
        // A bare address is a host route.
        match line.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Parsed::V4(a.into()),
            Ok(IpAddr::V6(a)) => Parsed::V6(a.into()),
            Err(_) => return Err(Reason::BadAddress(snippet(line))),
        }
    } else if line.contains(':') {
        Parsed::V6(Ipv6Net::parse_strict(line).map_err(Reason::BadPrefix)?)
    } else {
        Parsed::V4(Ipv4Net::parse_strict(line).map_err(Reason::BadPrefix)?)
    };
    match parsed {
        Parsed::V4(p) if p.prefix_len() == 0 => Err(Reason::CoversEverything(p.to_string())),
        Parsed::V6(p) if p.prefix_len() == 0 => Err(Reason::CoversEverything(p.to_string())),
        p => Ok(p),
    }
}

/// Parses a whole list; every entry gets territory `id`.
pub(crate) fn load(data: &[u8], id: TerritoryId, src: u32) -> Result<Loaded, LineError> {
    let mut out = Loaded::default();
    for (n, line) in lines(data) {
        let Some(line) = data_line(line) else {
            continue;
        };
        let line = std::str::from_utf8(line).map_err(|_| (n, Reason::NotUtf8))?;
        match parse_line(line).map_err(|r| (n, r))? {
            Parsed::V4(prefix) => out.v4.push(Entry {
                prefix,
                id,
                src,
                line: n,
            }),
            Parsed::V6(prefix) => out.v6.push(Entry {
                prefix,
                id,
                src,
                line: n,
            }),
        }
        out.rows += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::territory::territory_id;

    fn cn() -> TerritoryId {
        territory_id(*b"CN").unwrap()
    }

    #[test]
    fn parses_cidrs_addresses_and_comments() {
        let data = b"# ipdeny\n\n1.0.1.0/24 \r\n1.2.3.4\n2001:db8::/32\t\n2001:db8::1\n";
        let got = load(data, cn(), 7).unwrap();
        assert_eq!(got.rows, 4);
        let v4: Vec<_> = got
            .v4
            .iter()
            .map(|e| (e.prefix.to_string(), e.line, e.src))
            .collect();
        assert_eq!(
            v4,
            [
                ("1.0.1.0/24".into(), 3, 7),
                ("1.2.3.4/32".to_string(), 4, 7)
            ]
        );
        let v6: Vec<_> = got.v6.iter().map(|e| e.prefix.to_string()).collect();
        assert_eq!(v6, ["2001:db8::/32", "2001:db8::1/128"]);
        assert!(got.v4.iter().all(|e| e.id == cn()) && got.v6.iter().all(|e| e.id == cn()));
    }

    fn err(data: &[u8]) -> String {
        match load(data, cn(), 0) {
            Err((n, r)) => format!("{n}: {r}"),
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(data)),
        }
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(
            err(b"1.0.0.0/24\n10.0.0.1/8\n"),
            "2: host bits are set in 10.0.0.1/8 (the network is 10.0.0.0/8)"
        );
        assert_eq!(
            err(b"\n\n0.0.0.0/0\n"),
            "3: 0.0.0.0/0 would cover every address"
        );
        assert_eq!(err(b"::/0\n"), "1: ::/0 would cover every address");
        assert!(err(b"1.0.0.0/33\n").starts_with("1: prefix length \"33\""));
        assert!(err(b"1.0.0.0/24 foo\n").starts_with("1: "));
        assert_eq!(err(b"bogus\n"), "1: unparseable address \"bogus\"");
        assert_eq!(
            err(b"1.0.0.0/24\n\xff\xfe/8\n"),
            "2: line is not valid UTF-8"
        );
        assert!(err(b"2001:db8::1/32\n").contains("2001:db8::/32"));
    }

    #[test]
    fn survives_garbage() {
        let mut data = vec![0u8; 4096];
        let mut x = 0x1234_5678u32;
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        assert!(load(&data, cn(), 0).is_err());
        let long = format!("{}\n", "9".repeat(1 << 20));
        assert!(err(long.as_bytes()).len() < 200);
    }
}
