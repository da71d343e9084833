//! Meeting endpoints (`PROTO:ADDR:PORT[-PORT]`) and flow bindings (`ADDR:PORT` pairs) as
//! operators type them, and their kernel keys.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use filter_common::{Address, EndpointKey, FlowKey, maps::ADDRESS_ANY, proto};
use serde::{Deserialize, Serialize};

/// The transport protocols geofence classifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Udp => proto::UDP,
            Proto::Tcp => proto::TCP,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(Proto::Udp),
            "tcp" => Ok(Proto::Tcp),
            other => Err(format!("`{other}` is not a protocol: expected udp or tcp")),
        }
    }
}

/// An address as the kernel keys store it: 16 bytes, IPv4 mapped.
pub fn kernel_address(addr: IpAddr) -> Address {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A local endpoint of the relay on which a meeting's traffic arrives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub proto: Proto,
    /// `None`: any local address (`*`).
    pub addr: Option<IpAddr>,
    pub first_port: u16,
    pub last_port: u16,
}

impl Endpoint {
    pub fn ports(&self) -> std::ops::RangeInclusive<u16> {
        self.first_port..=self.last_port
    }

    pub fn port_count(&self) -> usize {
        usize::from(self.last_port - self.first_port) + 1
    }

    /// Whether two endpoints can match the same packet's destination.
    pub fn overlaps(&self, other: &Endpoint) -> bool {
        self.proto == other.proto
            && self.addr == other.addr
            && self.first_port <= other.last_port
            && other.first_port <= self.last_port
    }

    /// Whether some packet could reach both: the same protocol and port, and the same
    /// address or either on any address. A port meetings share must share with no meeting
    /// that owns it, or which meeting a packet reaches would hang on the address it used.
    pub fn shares_ports(&self, other: &Endpoint) -> bool {
        self.proto == other.proto
            && (self.addr == other.addr || self.addr.is_none() || other.addr.is_none())
            && self.first_port <= other.last_port
            && other.first_port <= self.last_port
    }

    pub fn keys(&self) -> impl Iterator<Item = EndpointKey> + '_ {
        let addr = self.addr.map_or(ADDRESS_ANY, kernel_address);
        self.ports().map(move |port| EndpointKey {
            proto: self.proto.number(),
            _pad: 0,
            port,
            addr,
        })
    }
}

fn parse_port(text: &str, whole: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{whole}`: port `{text}` is not a number"));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(format!("`{whole}`: port 0 cannot carry traffic")),
        Ok(port) if port <= 65535 => Ok(port as u16),
        _ => Err(format!("`{whole}`: port {text} is larger than 65535")),
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// `udp:*:40000`, `tcp:203.0.113.1:443`, `udp:[2001:db8::1]:40000-40099`.
    fn from_str(s: &str) -> Result<Self, String> {
        let format =
            "expected PROTO:ADDR:PORT[-PORT], e.g. udp:*:40000-40099 or udp:[2001:db8::1]:3478";
        let (proto, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: {format}"))?;
        let proto = proto.parse::<Proto>().map_err(|e| format!("`{s}`: {e}"))?;
        let (addr, ports) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}`: {format}"))?;
        let addr = match addr {
            "*" => None,
            a if a.starts_with('[') && a.ends_with(']') => {
                Some(IpAddr::V6(a[1..a.len() - 1].parse().map_err(|_| {
                    format!("`{s}`: `{a}` is not an IPv6 address")
                })?))
            }
            a if a.contains(':') => {
                return Err(format!(
                    "`{s}`: write IPv6 addresses in brackets, e.g. [{a}]"
                ));
            }
            a => {
                Some(IpAddr::V4(a.parse().map_err(|_| {
                    format!("`{s}`: `{a}` is not an IPv4 address")
                })?))
            }
        };
        if addr.is_some_and(|a| a.is_unspecified()) {
            return Err(format!("`{s}`: use `*` for any local address"));
        }
        let (first, last) = match ports.split_once('-') {
            Some((first, last)) => (parse_port(first, s)?, parse_port(last, s)?),
            None => {
                let port = parse_port(ports, s)?;
                (port, port)
            }
        };
        if first > last {
            return Err(format!("`{s}`: port range {first}-{last} is inverted"));
        }
        Ok(Endpoint {
            proto,
            addr,
            first_port: first,
            last_port: last,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.proto)?;
        match self.addr {
            None => f.write_str("*")?,
            Some(IpAddr::V4(a)) => write!(f, "{a}")?,
            Some(IpAddr::V6(a)) => write!(f, "[{a}]")?,
        }
        if self.first_port == self.last_port {
            write!(f, ":{}", self.first_port)
        } else {
            write!(f, ":{}-{}", self.first_port, self.last_port)
        }
    }
}

/// Parses `ADDR:PORT` (IPv6 as `[ADDR]:PORT`) with a port in 1..=65535.
pub fn parse_socket(text: &str) -> Result<SocketAddr, String> {
    let (_, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}`: expected ADDR:PORT, IPv6 as [ADDR]:PORT"))?;
    parse_port(port, text)?;
    text.parse::<SocketAddr>()
        .map_err(|_| format!("`{text}`: expected ADDR:PORT, IPv6 as [ADDR]:PORT"))
}

/// One client's 5-tuple, bound to a meeting by the relay's control plane.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Flow {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl Flow {
    pub fn new(proto: Proto, src: SocketAddr, dst: SocketAddr) -> Result<Flow, String> {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(format!("flow {src} → {dst} mixes IPv4 and IPv6"));
        }
        Ok(Flow { proto, src, dst })
    }

    pub fn key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto.number(),
            _pad: [0; 3],
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            src: kernel_address(self.src.ip()),
            dst: kernel_address(self.dst.ip()),
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} → {}", self.proto, self.src, self.dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let e: Endpoint = "udp:*:40000-40099".parse().expect("wildcard range");
        assert_eq!(
            (e.proto, e.addr, e.first_port, e.last_port),
            (Proto::Udp, None, 40000, 40099)
        );
        assert_eq!(e.port_count(), 100);
        let e: Endpoint = "tcp:203.0.113.1:443".parse().expect("v4");
        assert_eq!(e.addr, Some("203.0.113.1".parse().expect("addr")));
        assert_eq!(e.to_string(), "tcp:203.0.113.1:443");
        let e: Endpoint = "udp:[2001:db8::1]:3478".parse().expect("v6");
        assert_eq!(e.to_string(), "udp:[2001:db8::1]:3478");
        assert_eq!(e.keys().count(), 1);
        let key = e.keys().next().expect("one key");
        assert_eq!((key.proto, key.port), (17, 3478));
    }

    #[test]
    fn rejects_bad_endpoints() {
        let cases = [
            ("udp:*:0", "port 0"),
            ("udp:*:65536", "larger than 65535"),
            ("udp:*:70000-70001", "larger than 65535"),
            ("udp:*:5000-4000", "inverted"),
            ("sctp:*:5000", "not a protocol"),
            ("udp:2001:db8::1:5000", "brackets"),
            ("udp:300.1.1.1:5000", "not an IPv4 address"),
            ("udp:[zz::1]:5000", "not an IPv6 address"),
            ("udp:*:", "not a number"),
            ("udp:*:-5", "not a number"),
            ("udp:*:+5", "not a number"),
            ("udp", "expected PROTO:ADDR:PORT"),
            ("udp:0.0.0.0:5000", "use `*`"),
        ];
        for (input, needle) in cases {
            let err = input.parse::<Endpoint>().expect_err(input);
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn overlap() {
        let a: Endpoint = "udp:*:100-200".parse().expect("a");
        let b: Endpoint = "udp:*:200-300".parse().expect("b");
        let c: Endpoint = "tcp:*:100-200".parse().expect("c");
        let d: Endpoint = "udp:192.0.2.1:100-200".parse().expect("d");
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !a.overlaps(&d));
    }

    #[test]
    fn flows() {
        let src = parse_socket("198.51.100.7:50000").expect("src");
        let dst = parse_socket("192.0.2.1:3478").expect("dst");
        let flow = Flow::new(Proto::Udp, src, dst).expect("flow");
        let key = flow.key();
        assert_eq!((key.src_port, key.dst_port), (50000, 3478));
        assert_eq!(key.src[10..], [0xff, 0xff, 198, 51, 100, 7]);
        let v6 = parse_socket("[2001:db8::7]:1").expect("v6");
        assert!(
            Flow::new(Proto::Udp, v6, dst)
                .expect_err("mixed")
                .contains("mixes")
        );
        assert!(
            parse_socket("192.0.2.1:0")
                .expect_err("port 0")
                .contains("port 0")
        );
        assert!(parse_socket("192.0.2.1").is_err());
        assert!(parse_socket("2001:db8::1:80").is_err());
    }
}
