//! The frames the per-packet bench sends: Ethernet + IPv4 or IPv6 + UDP, with lengths and
//! checksums a real stack would put there. The source address is a placeholder: the bench
//! programs replace it with one drawn from the table on every run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
/// A media packet's size: RTP header + an audio frame or a slice of a video frame.
pub const PAYLOAD_LEN: usize = 160;

/// One UDP datagram in an Ethernet frame, from `src:src_port` to `dst:dst_port`; both
/// addresses of one family.
pub fn udp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Vec<u8> {
    udp_with(src, src_port, dst, dst_port, &[0x5a_u8; PAYLOAD_LEN])
}

/// [`udp`] with this payload.
pub fn udp_with(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut udp = Vec::with_capacity(8 + payload.len());
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&dst_port.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);

    let mut frame = Vec::with_capacity(14 + 40 + udp.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // destination MAC
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // source MAC
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let sum = udp_checksum(&pseudo_v4(src, dst, udp.len()), &udp);
            udp[6..8].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&ipv4_header(src, dst, udp.len()));
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let sum = udp_checksum(&pseudo_v6(src, dst, udp.len()), &udp);
            udp[6..8].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&ipv6_header(src, dst, udp.len()));
        }
        _ => panic!("udp({src}, {dst}): addresses of two families"),
    }
    frame.extend_from_slice(&udp);
    frame
}

fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45; // version 4, IHL 5
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = 64; // TTL
    h[9] = IPPROTO_UDP;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = !fold(sum16(&h));
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, payload_len: usize) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = IPPROTO_UDP;
    h[7] = 64; // hop limit
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, IPPROTO_UDP]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
    p
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The UDP checksum over the pseudo header and the datagram (0 is sent as 0xffff).
fn udp_checksum(pseudo: &[u8], udp: &[u8]) -> u16 {
    match !fold(sum16(pseudo) + sum16(udp)) {
        0 => 0xffff,
        sum => sum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let v4 = udp(
            "198.51.100.7".parse().unwrap(),
            50000,
            "192.0.2.1".parse().unwrap(),
            40000,
        );
        assert_eq!(v4.len(), 14 + 20 + 8 + PAYLOAD_LEN);
        assert_eq!(fold(sum16(&v4[14..34])), 0xffff, "IPv4 header checksum");
        let udp4 = &v4[34..];
        let pseudo = pseudo_v4(
            "198.51.100.7".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            udp4.len(),
        );
        assert_eq!(fold(sum16(&pseudo) + sum16(udp4)), 0xffff, "UDP checksum");

        let v6 = udp(
            "2001:db8::7".parse().unwrap(),
            50000,
            "2001:db8::1".parse().unwrap(),
            40000,
        );
        assert_eq!(v6.len(), 14 + 40 + 8 + PAYLOAD_LEN);
        assert_eq!(&v6[12..14], &ETHERTYPE_IPV6.to_be_bytes());
    }
}
