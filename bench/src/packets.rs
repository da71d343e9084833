//! The frames the per-packet bench sends: Ethernet + IPv4 or IPv6 + UDP, with lengths and
//! checksums a real stack would put there. The source address is a placeholder: the bench
//! programs replace it with one drawn from the table on every run.

use std::net::{IpAddr, SocketAddr};

use geofence_test_frames::Packet;

/// A media packet's size: RTP header + an audio frame or a slice of a video frame.
pub const PAYLOAD_LEN: usize = 160;

/// One UDP datagram in an Ethernet frame, from `src:src_port` to `dst:dst_port`; both
/// addresses of one family.
pub fn udp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Vec<u8> {
    udp_with(src, src_port, dst, dst_port, &[0x5a_u8; PAYLOAD_LEN])
}

/// [`udp`] with this payload.
pub fn udp_with(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let packet = Packet::udp(
        SocketAddr::new(src, src_port),
        SocketAddr::new(dst, dst_port),
    )
    .payload(payload);
    // IPv4 as a sender doing path MTU discovery writes it: Don't Fragment, identification 0.
    let packet = if src.is_ipv4() {
        packet.dont_fragment().identification(0)
    } else {
        packet
    };
    packet.build().bytes
}

#[cfg(test)]
mod tests {
    use geofence_test_frames::checksum;

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
        assert_eq!(checksum(&[&v4[14..34]]), 0, "IPv4 header checksum");
        let udp4 = &v4[34..];
        let mut pseudo = v4[26..34].to_vec();
        pseudo.extend([0, 17]);
        pseudo.extend((udp4.len() as u16).to_be_bytes());
        assert_eq!(checksum(&[&pseudo, udp4]), 0, "UDP checksum");
        assert_eq!(v4[20..22], [0x40, 0], "Don't Fragment, no offset");
        let v6 = udp(
            "2001:db8::7".parse().unwrap(),
            50000,
            "2001:db8::1".parse().unwrap(),
            40000,
        );
        assert_eq!(v6.len(), 14 + 40 + 8 + PAYLOAD_LEN);
        assert_eq!(v6[12..14], [0x86, 0xdd]);
    }
}
