//! The layouts, lengths and checksums of built frames, checked byte by byte.

use std::net::SocketAddr;

use crate::*;

fn sock(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[test]
fn udp_v4_layout_and_checksums() {
    let f = Packet::udp(sock("192.0.2.10:5000"), sock("100.64.0.1:40000"))
        .payload(b"abcd")
        .build();
    assert_eq!(f.len(), 14 + 20 + 8 + 4);
    assert_eq!(f.headers_len, 42);
    assert_eq!(f.bytes[12..14], [0x08, 0x00]);
    assert_eq!(f.bytes[14], 0x45);
    assert_eq!(u16::from_be_bytes([f.bytes[16], f.bytes[17]]), 32);
    assert_eq!(f.bytes[23], 17);
    assert_eq!(checksum(&[&f.bytes[14..34]]), 0, "IPv4 header checksum");
    let mut pseudo = f.bytes[26..34].to_vec();
    pseudo.extend([0, 17, 0, 12]);
    assert_eq!(checksum(&[&pseudo, &f.bytes[34..]]), 0, "UDP checksum");
    assert_eq!(f.bytes[34..38], [0x13, 0x88, 0x9c, 0x40]);
    assert_eq!(f.to_string(), "ethernet(14) ipv4(20) udp(8) +4");
}

#[test]
fn vlan_tags_chain_types() {
    let f = Packet::udp(sock("[2001:db8::1]:1"), sock("[2001:db8::2]:2"))
        .vlan(TPID_8021AD, 100)
        .vlan(TPID_8021Q, 200)
        .build();
    assert_eq!(f.bytes[12..14], [0x88, 0xa8]);
    assert_eq!(f.bytes[14..18], [0x00, 100, 0x81, 0x00]);
    assert_eq!(f.bytes[18..22], [0x00, 200, 0x86, 0xdd]);
    assert_eq!(f.bytes[22] >> 4, 6);
    assert_eq!(f.nth_layer("vlan", 1).range, 18..22);
}

#[test]
fn ipv4_options_ihl_and_fragments() {
    let f = Packet::tcp(sock("192.0.2.1:1"), sock("192.0.2.2:2"))
        .ipv4_options(40)
        .fragment(0, true)
        .build();
    assert_eq!(f.bytes[14], 0x4f);
    assert_eq!(f.bytes[20..22], [0x20, 0x00]);
    assert_eq!(checksum(&[&f.bytes[14..74]]), 0);
    assert_eq!(f.layer("tcp").range, 74..94);
    let f = Packet::udp(sock("192.0.2.1:1"), sock("192.0.2.2:2"))
        .dont_fragment()
        .fragment(185, false)
        .ihl(4)
        .build();
    assert_eq!(f.bytes[14], 0x44);
    assert_eq!(u16::from_be_bytes([f.bytes[20], f.bytes[21]]), 0x4000 | 185);
    let f = Packet::udp(sock("192.0.2.1:1"), sock("192.0.2.2:2"))
        .ip_version(6)
        .build();
    assert_eq!(f.bytes[14], 0x65);
    let f = Packet::udp(sock("[2001:db8::1]:1"), sock("[2001:db8::2]:2"))
        .ip_version(4)
        .build();
    assert_eq!(f.bytes[14..18], [0x40, 0, 0, 0]);
}

#[test]
fn ipv6_extension_chain() {
    let f = Packet::udp(sock("[2001:db8::1]:1"), sock("[2001:db8::2]:2"))
        .exts(&[
            Ext::HopByHop { len: 1 },
            Ext::ROUTING,
            Ext::FIRST_FRAGMENT,
            Ext::AUTH,
        ])
        .build();
    let ip = 14;
    assert_eq!(f.bytes[ip + 6], ipproto::HOP_BY_HOP);
    let hbh = ip + 40;
    assert_eq!(f.bytes[hbh..hbh + 2], [ipproto::ROUTING, 1]);
    let rt = hbh + 16;
    assert_eq!(f.bytes[rt..rt + 2], [ipproto::FRAGMENT, 0]);
    let fr = rt + 8;
    assert_eq!(f.bytes[fr..fr + 4], [ipproto::AUTH, 0, 0, 1]);
    let ah = fr + 8;
    assert_eq!(f.bytes[ah..ah + 2], [ipproto::UDP, 4]);
    assert_eq!(f.layer("udp").range.start, ah + 24);
    let payload_len = u16::from_be_bytes([f.bytes[ip + 4], f.bytes[ip + 5]]) as usize;
    assert_eq!(payload_len, f.len() - ip - 40);
    let udp = &f.bytes[ah + 24..];
    let mut pseudo = f.bytes[ip + 8..ip + 40].to_vec();
    pseudo.extend((udp.len() as u32).to_be_bytes());
    pseudo.extend([0, 0, 0, ipproto::UDP]);
    assert_eq!(
        checksum(&[&pseudo, udp]),
        0,
        "UDP checksum over the IPv6 pseudo header"
    );
}

#[test]
fn first_fragment_carries_a_share() {
    let f = Packet::tcp(sock("192.0.2.1:1"), sock("192.0.2.2:2"))
        .fragment(0, true)
        .carry(8)
        .build();
    assert_eq!(f.len(), 14 + 20 + 8);
    assert_eq!(u16::from_be_bytes([f.bytes[16], f.bytes[17]]), 28);
    assert_eq!(checksum(&[&f.bytes[14..34]]), 0);
    assert!(f.headers_cut());
    let f = Packet::tcp(sock("[2001:db8::1]:1"), sock("[2001:db8::2]:2"))
        .fragment(0, true)
        .carry(16)
        .build();
    assert_eq!(f.len(), 14 + 40 + 8 + 16);
    assert_eq!(u16::from_be_bytes([f.bytes[18], f.bytes[19]]), 8 + 16);
}

#[test]
fn cuts() {
    let f = Packet::udp(sock("192.0.2.10:5000"), sock("100.64.0.1:40000")).build();
    let cut = f.cut_inside("udp", 3);
    assert_eq!(cut.len(), 14 + 20 + 3);
    assert!(cut.headers_cut());
    assert_eq!(cut.to_string(), "ethernet(14) ipv4(20) udp(3/8)");
    assert_eq!(f.layer_at(20).map(|l| l.name.as_str()), Some("ipv4"));
    assert!(!f.truncated(f.headers_len).headers_cut());
}

#[test]
fn non_ip() {
    let f = Packet::arp(
        "192.0.2.1".parse().expect("a"),
        "192.0.2.2".parse().expect("b"),
    )
    .vlan(TPID_8021Q, 5)
    .build();
    assert_eq!(f.len(), 14 + 4 + ARP_LEN);
    assert_eq!(f.bytes[16..18], [0x08, 0x06]);
    assert_eq!(f.headers_len, f.len());
}

#[test]
fn macs_identification_and_no_udp_checksum() {
    let f = Packet::udp(sock("192.0.2.1:5000"), sock("10.250.0.2:40000"))
        .macs([2; 6], [4; 6])
        .identification(0)
        .no_udp_checksum()
        .build();
    assert_eq!(f.bytes[0..12], [2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4]);
    assert_eq!(f.bytes[18..20], [0, 0], "identification");
    assert_eq!(checksum(&[&f.bytes[14..34]]), 0, "IPv4 header checksum");
    assert_eq!(f.bytes[40..42], [0, 0], "no UDP checksum");
    let f = Packet::udp(sock("192.0.2.1:5000"), sock("10.250.0.2:40000")).build();
    assert_eq!(f.bytes[18..20], [0x47, 0x46], "the default identification");
    assert_ne!(f.bytes[40..42], [0, 0], "a UDP checksum by default");
}

#[test]
fn stun_binding_request_layout() {
    let m = stun::Message::request_with(vec![(stun::attr::USERNAME, b"abcde".to_vec())])
        .transaction([7; 12])
        .bytes();
    assert_eq!(m[0..2], stun::BINDING_REQUEST.to_be_bytes());
    assert_eq!(
        u16::from_be_bytes([m[2], m[3]]),
        4 + 8,
        "USERNAME padded to 8"
    );
    assert_eq!(m[4..8], [0x21, 0x12, 0xa4, 0x42]);
    assert_eq!(m[8..20], [7; 12]);
    assert_eq!(m[24..32], *b"abcde\0\0\0");
}
