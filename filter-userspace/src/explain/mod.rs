//! `geofence explain`: why a packet is passed or dropped, step by step, from the state and
//! the loaded territory table, and whether the kernel agrees.
//!
//! The walk is the reference model's own ([`crate::model::trace`]) over the frame that is
//! then sent to the kernel, so the explanation and the kernel check are about the very
//! same bytes; this module only names what the model found in the operator's terms
//! (meetings, endpoints, orders, table files).

pub mod check;
pub mod frame;
pub mod geo;
pub mod stun;
pub mod walk;
pub mod words;

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::endpoint::Proto;

/// The source port used when `--src` has none.
pub const DEFAULT_SRC_PORT: u16 = 49152;

/// The packet an operator asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// `--src` had no port; [`DEFAULT_SRC_PORT`] stands in.
    pub src_port_defaulted: bool,
}

/// Why `--src`/`--dst` do not describe a packet.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QuestionError {
    #[error("--{arg} `{text}`: expected {expected}")]
    Syntax {
        arg: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error(
        "--dst `{0}` has no port: the destination is a relay endpoint, ADDR:PORT (IPv6 as [ADDR]:PORT)"
    )]
    MissingDstPort(String),
    #[error("--{arg} `{text}`: port 0 is not a port a packet is sent from or to")]
    PortZero { arg: &'static str, text: String },
    #[error(
        "--src {src} is {src_family} but --dst {dst} is {dst_family}: a packet has one address family (write an IPv4 source as ::ffff:a.b.c.d to ask about IPv4-mapped IPv6)"
    )]
    MixedFamilies {
        src: String,
        src_family: &'static str,
        dst: String,
        dst_family: &'static str,
    },
}

const SOCKET: &str = "ADDR:PORT, IPv6 as [ADDR]:PORT";
const SOURCE: &str = "ADDR or ADDR:PORT, IPv6 as ADDR or [ADDR]:PORT";

/// `ADDR`, `[V6]`, or a socket address; the port is `None` when absent.
fn parse_addr(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some((sock.ip(), Some(sock.port())));
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl Question {
    pub fn parse(proto: Proto, src: &str, dst: &str) -> Result<Question, QuestionError> {
        let syntax = |arg, text: &str, expected| QuestionError::Syntax {
            arg,
            text: text.to_string(),
            expected,
        };
        let (src_ip, src_port) = parse_addr(src).ok_or_else(|| syntax("src", src, SOURCE))?;
        let (dst_ip, dst_port) = parse_addr(dst).ok_or_else(|| syntax("dst", dst, SOCKET))?;
        let dst_port = dst_port.ok_or_else(|| QuestionError::MissingDstPort(dst.to_string()))?;
        for (arg, text, port) in [("src", src, src_port), ("dst", dst, Some(dst_port))] {
            if port == Some(0) {
                return Err(QuestionError::PortZero {
                    arg,
                    text: text.to_string(),
                });
            }
        }
        if src_ip.is_ipv4() != dst_ip.is_ipv4() {
            return Err(QuestionError::MixedFamilies {
                src: src.to_string(),
                src_family: family(src_ip),
                dst: dst.to_string(),
                dst_family: family(dst_ip),
            });
        }
        Ok(Question {
            proto,
            src: SocketAddr::new(src_ip, src_port.unwrap_or(DEFAULT_SRC_PORT)),
            dst: SocketAddr::new(dst_ip, dst_port),
            src_port_defaulted: src_port.is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(src: &str, dst: &str) -> Result<Question, QuestionError> {
        Question::parse(Proto::Udp, src, dst)
    }

    #[test]
    fn accepts_sockets_and_bare_sources() {
        let q = ask("192.0.2.10:5000", "100.64.0.1:40000").expect("v4");
        assert_eq!(q.src.port(), 5000);
        assert!(!q.src_port_defaulted);
        let q = ask("2001:db8::7", "[2001:db8::1]:443").expect("bare v6 source");
        assert_eq!(q.src.port(), DEFAULT_SRC_PORT);
        assert!(q.src_port_defaulted);
        let q = ask("[2001:db8::7]", "[2001:db8::1]:443").expect("bracketed v6 source");
        assert!(q.src.is_ipv6());
    }

    #[test]
    fn refuses_bad_packets() {
        assert_eq!(
            ask("192.0.2.10", "100.64.0.1"),
            Err(QuestionError::MissingDstPort("100.64.0.1".into()))
        );
        assert!(matches!(
            ask("192.0.2.10", "100.64.0.1:0"),
            Err(QuestionError::PortZero { arg: "dst", .. })
        ));
        assert!(matches!(
            ask("192.0.2.10:0", "100.64.0.1:1"),
            Err(QuestionError::PortZero { arg: "src", .. })
        ));
        let mixed = ask("192.0.2.10", "[2001:db8::1]:443").expect_err("mixed");
        assert!(mixed.to_string().contains("IPv4 but --dst"), "{mixed}");
        assert!(matches!(
            ask("nonsense", "100.64.0.1:1"),
            Err(QuestionError::Syntax { arg: "src", .. })
        ));
        assert!(matches!(
            ask("192.0.2.1", "100.64.0.1:99999"),
            Err(QuestionError::Syntax { arg: "dst", .. })
        ));
    }
}
