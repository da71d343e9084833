//! Test packets built byte by byte: Ethernet with up to any number of VLAN tags, IPv4 (with
//! options, any IHL, fragment flags), IPv6 (with chains of extension headers), UDP, TCP,
//! ICMP and raw IP protocols, non-IP frames such as ARP, and STUN messages to carry.
//!
//! [`Packet`] describes a packet; [`Packet::build`] lays it out as a [`Frame`]: the bytes
//! plus the byte range of every header, so a test can cut the frame inside a named header
//! ([`Frame::cut_inside`]) or at any length ([`Frame::truncated`]).
//!
//! Lengths and checksums are filled in as a real stack would (IPv4 header checksum, UDP,
//! TCP and ICMP checksums over the pseudo header), computed over the whole packet before
//! any truncation.

mod checksum;
mod ext;
mod frame;
mod packet;
pub mod stun;
#[cfg(test)]
mod tests;

pub use checksum::checksum;
pub use ext::Ext;
pub use frame::{Frame, Layer};
pub use packet::Packet;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_LLDP: u16 = 0x88cc;
/// 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad service tag (the outer tag of QinQ).
pub const TPID_8021AD: u16 = 0x88a8;

pub const ETH_HLEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const UDP_HLEN: usize = 8;
pub const TCP_HLEN: usize = 20;
pub const ICMP_HLEN: usize = 8;
pub const ARP_LEN: usize = 28;

/// IP protocol / IPv6 next-header numbers.
pub mod ipproto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const AUTH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const DEST_OPTS: u8 = 60;
}

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}
