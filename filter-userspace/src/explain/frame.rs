//! The frame explain asks about: Ethernet, IPv4 (no options) or IPv6 (no extension
//! headers), and a UDP or minimal TCP header, as a relay receives a client's packet.

use std::net::IpAddr;

use crate::endpoint::Proto;

use super::Question;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
/// Locally administered MACs; the program does not read them.
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const TTL: u8 = 64;
const PAYLOAD: &[u8] = b"geofence explain";

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn transport(q: &Question, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend(q.src.port().to_be_bytes());
    l4.extend(q.dst.port().to_be_bytes());
    match q.proto {
        Proto::Udp => {
            l4.extend(((8 + payload.len()) as u16).to_be_bytes());
            l4.extend([0, 0]); // no checksum; the program does not verify it
        }
        Proto::Tcp => {
            l4.extend([0, 0, 0, 1]); // sequence
            l4.extend([0, 0, 0, 0]); // acknowledgement
            l4.extend([5 << 4, 0x18]); // 20-byte header, PSH|ACK
            l4.extend(65535u16.to_be_bytes());
            l4.extend([0, 0, 0, 0]); // checksum, urgent pointer
        }
    }
    l4.extend(payload);
    l4
}

/// The frame for `q`.
pub fn build(q: &Question) -> Vec<u8> {
    build_with(q, PAYLOAD)
}

/// The frame for `q` carrying `payload` (a STUN Binding request, for `--stun-ufrag`).
pub fn build_with(q: &Question, payload: &[u8]) -> Vec<u8> {
    let l4 = transport(q, payload);
    let mut out = Vec::with_capacity(14 + 40 + l4.len());
    out.extend(DST_MAC);
    out.extend(SRC_MAC);
    match (q.src.ip(), q.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend(ETHERTYPE_IPV4);
            let mut ip = vec![0x45, 0];
            ip.extend(((20 + l4.len()) as u16).to_be_bytes());
            ip.extend([0, 0, 0x40, 0]); // id, don't fragment
            ip.extend([TTL, q.proto.number(), 0, 0]);
            ip.extend(s.octets());
            ip.extend(d.octets());
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend(ip);
        }
        (s, d) => {
            // Question::parse refuses mixed families; IPv4 here would be IPv4-mapped.
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend(ETHERTYPE_IPV6);
            out.extend([0x60, 0, 0, 0]);
            out.extend((l4.len() as u16).to_be_bytes());
            out.extend([q.proto.number(), TTL]);
            out.extend(v6(s).octets());
            out.extend(v6(d).octets());
        }
    }
    out.extend(l4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    #[test]
    fn the_model_reads_back_what_was_asked() {
        for (proto, src, dst) in [
            (Proto::Udp, "192.0.2.10:5000", "100.64.0.1:40000"),
            (Proto::Tcp, "192.0.2.10:5000", "100.64.0.1:443"),
            (
                Proto::Udp,
                "[2001:db8:a::10]:5000",
                "[2001:db8:ffff::1]:40000",
            ),
            (Proto::Tcp, "::ffff:192.0.2.10", "[2001:db8:ffff::1]:443"),
        ] {
            let q = Question::parse(proto, src, dst).expect("a question");
            let frame = build(&q);
            let h = model::parse(&frame).expect("parses");
            assert_eq!(h.proto, proto.number());
            assert_eq!((h.src_port, h.dst_port), (q.src.port(), q.dst.port()));
            assert_eq!(h.is_v6, q.src.is_ipv6(), "{src}");
            assert_eq!(h.src, crate::endpoint::kernel_address(q.src.ip()));
            assert_eq!(h.dst, crate::endpoint::kernel_address(q.dst.ip()));
        }
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let q =
            Question::parse(Proto::Udp, "192.0.2.10:5000", "100.64.0.1:40000").expect("a question");
        let frame = build(&q);
        assert_eq!(checksum(&frame[14..34]), 0);
    }
}
