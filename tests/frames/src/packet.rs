//! [`Packet`]: the description of a frame to build, from constructors that pick the
//! protocols and methods that add headers and change fields.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{ARP_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, Ext, tcp_flags};

mod build;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Network {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        options: Vec<u8>,
        /// An IHL written instead of the one the options imply.
        ihl: Option<u8>,
        /// Flags (DF 0x4000, MF 0x2000) and the fragment offset in 8-byte units.
        flags_offset: u16,
        identification: u16,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        exts: Vec<Ext>,
    },
    /// A non-IP frame: the ethertype and its body.
    Other { ethertype: u16, name: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp {
        src: u16,
        dst: u16,
        /// Whether the checksum is filled in; IPv4 lets a sender leave it 0 (none).
        checksum: bool,
    },
    Tcp {
        src: u16,
        dst: u16,
        flags: u8,
    },
    /// An echo request: ICMP on IPv4, ICMPv6 on IPv6.
    Echo,
    /// Any other protocol: the payload follows the IP header(s) directly.
    Raw {
        proto: u8,
    },
    /// Non-IP frames: the body is the payload.
    None,
}

/// A packet to build. Constructors pick the protocols, methods add headers and change
/// fields; [`Packet::build`] produces the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    /// `(TPID, TCI)`, outermost first.
    vlans: Vec<(u16, u16)>,
    network: Network,
    transport: Transport,
    payload: Vec<u8>,
    /// An IP version written instead of the family's own (4 or 6).
    version: Option<u8>,
    /// Bytes of the transport segment this packet carries, if not all (a fragment's share).
    carried: Option<usize>,
}

/// The default payload: long enough that cuts after the headers are seen, short enough
/// to keep tables readable.
const DEFAULT_PAYLOAD: &[u8] = b"geofence payload";

/// The IPv4 identification field unless [`Packet::identification`] sets one.
const DEFAULT_IDENTIFICATION: u16 = 0x4746;

fn ip_network(src: IpAddr, dst: IpAddr) -> Network {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Network::V4 {
            src,
            dst,
            options: Vec::new(),
            ihl: None,
            flags_offset: 0,
            identification: DEFAULT_IDENTIFICATION,
        },
        (IpAddr::V6(src), IpAddr::V6(dst)) => Network::V6 {
            src,
            dst,
            exts: Vec::new(),
        },
        _ => panic!("{src} → {dst} mixes IPv4 and IPv6"),
    }
}

impl Packet {
    fn ip(src: IpAddr, dst: IpAddr, transport: Transport) -> Packet {
        Packet {
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            src_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlans: Vec::new(),
            network: ip_network(src, dst),
            transport,
            payload: DEFAULT_PAYLOAD.to_vec(),
            version: None,
            carried: None,
        }
    }

    /// A UDP datagram; the family follows the addresses.
    pub fn udp(src: SocketAddr, dst: SocketAddr) -> Packet {
        let transport = Transport::Udp {
            src: src.port(),
            dst: dst.port(),
            checksum: true,
        };
        Packet::ip(src.ip(), dst.ip(), transport)
    }

    /// A TCP SYN; the family follows the addresses.
    pub fn tcp(src: SocketAddr, dst: SocketAddr) -> Packet {
        let transport = Transport::Tcp {
            src: src.port(),
            dst: dst.port(),
            flags: tcp_flags::SYN,
        };
        Packet::ip(src.ip(), dst.ip(), transport)
    }

    /// An ICMP echo request (ICMPv6 for IPv6 addresses).
    pub fn icmp(src: IpAddr, dst: IpAddr) -> Packet {
        Packet::ip(src, dst, Transport::Echo)
    }

    /// An IP packet of protocol `proto` whose payload follows the IP header(s) directly.
    pub fn raw_ip(src: IpAddr, dst: IpAddr, proto: u8) -> Packet {
        Packet::ip(src, dst, Transport::Raw { proto })
    }

    /// An ARP request: who has `target`, tell `sender`.
    pub fn arp(sender: Ipv4Addr, target: Ipv4Addr) -> Packet {
        let mut body = Vec::with_capacity(ARP_LEN);
        body.extend(1_u16.to_be_bytes()); // Ethernet
        body.extend(ETHERTYPE_IPV4.to_be_bytes());
        body.extend([6, 4]);
        body.extend(1_u16.to_be_bytes()); // request
        body.extend([0x02, 0, 0, 0, 0, 0x02]);
        body.extend(sender.octets());
        body.extend([0; 6]);
        body.extend(target.octets());
        let mut packet = Packet::non_ip(ETHERTYPE_ARP, "arp", body);
        packet.dst_mac = [0xff; 6];
        packet
    }

    /// Any frame that is not IP: `ethertype` and a body, whose bytes count as a header
    /// named `name`.
    pub fn non_ip(ethertype: u16, name: &str, body: Vec<u8>) -> Packet {
        Packet {
            dst_mac: [0x01, 0x80, 0xc2, 0, 0, 0x0e],
            src_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlans: Vec::new(),
            network: Network::Other {
                ethertype,
                name: name.to_string(),
            },
            transport: Transport::None,
            payload: body,
            version: None,
            carried: None,
        }
    }

    /// Sets the destination and source MAC addresses.
    pub fn macs(mut self, dst: [u8; 6], src: [u8; 6]) -> Packet {
        self.dst_mac = dst;
        self.src_mac = src;
        self
    }

    /// Adds a VLAN tag inside the ones already there (call outermost first).
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Packet {
        assert!(vid < 0x1000, "VLAN id {vid} exceeds 12 bits");
        self.vlans.push((tpid, vid));
        self
    }

    /// IPv4 options of `len` bytes (a multiple of 4, at most 40): NOPs ending in an End of
    /// Options List. The IHL becomes `5 + len / 4`.
    pub fn ipv4_options(mut self, len: usize) -> Packet {
        assert!(
            len.is_multiple_of(4) && len <= 40,
            "IPv4 options are whole words, at most 40 bytes"
        );
        let Network::V4 { options, .. } = &mut self.network else {
            panic!("IPv4 options on a non-IPv4 packet");
        };
        *options = vec![1; len]; // NOP
        if let Some(last) = options.last_mut() {
            *last = 0; // EOL
        }
        self
    }

    /// Writes `ihl` (0..=15) as the IPv4 header length, whatever the options; for invalid
    /// headers.
    pub fn ihl(mut self, ihl: u8) -> Packet {
        assert!(ihl < 16, "IHL is 4 bits");
        let Network::V4 { ihl: field, .. } = &mut self.network else {
            panic!("IHL on a non-IPv4 packet");
        };
        *field = Some(ihl);
        self
    }

    /// Writes `version` (0..=15) in the IP header's version field, whatever the family; for
    /// invalid headers.
    pub fn ip_version(mut self, version: u8) -> Packet {
        assert!(version < 16, "the IP version is 4 bits");
        assert!(
            !matches!(self.network, Network::Other { .. }),
            "an IP version on a non-IP frame"
        );
        self.version = Some(version);
        self
    }

    /// Makes the packet a fragment: `offset` in 8-byte units, `more` the MF/M flag. On IPv4
    /// this sets the header fields; on IPv6 it appends a fragment extension header.
    pub fn fragment(mut self, offset: u16, more: bool) -> Packet {
        assert!(offset < 1 << 13, "fragment offset {offset} exceeds 13 bits");
        match &mut self.network {
            Network::V4 { flags_offset, .. } => {
                *flags_offset = (*flags_offset & 0x4000) | offset | if more { 0x2000 } else { 0 };
            }
            Network::V6 { exts, .. } => exts.push(Ext::Fragment { offset, more }),
            Network::Other { .. } => panic!("a fragment of a non-IP frame"),
        }
        self
    }

    /// Carries only the first `len` bytes of the transport segment (header, then payload),
    /// as the first fragment of a larger datagram does: the IP length fields count only
    /// them, while the transport checksum still covers the whole datagram. Combine with
    /// `fragment(0, true)`.
    pub fn carry(mut self, len: usize) -> Packet {
        assert!(
            !matches!(self.network, Network::Other { .. }),
            "a share of a transport segment on a non-IP frame"
        );
        self.carried = Some(len);
        self
    }

    /// Sets the IPv4 Don't Fragment flag.
    pub fn dont_fragment(mut self) -> Packet {
        let Network::V4 { flags_offset, .. } = &mut self.network else {
            panic!("DF on a non-IPv4 packet");
        };
        *flags_offset |= 0x4000;
        self
    }

    /// Sets the IPv4 identification field.
    pub fn identification(mut self, id: u16) -> Packet {
        let Network::V4 { identification, .. } = &mut self.network else {
            panic!("an identification on a non-IPv4 packet");
        };
        *identification = id;
        self
    }

    /// Leaves the UDP checksum 0, which on IPv4 means the sender computed none.
    pub fn no_udp_checksum(mut self) -> Packet {
        assert!(
            matches!(self.network, Network::V4 { .. }),
            "IPv6 requires a UDP checksum"
        );
        let Transport::Udp { checksum, .. } = &mut self.transport else {
            panic!("a UDP checksum on a non-UDP packet");
        };
        *checksum = false;
        self
    }

    /// Appends an IPv6 extension header (call in wire order).
    pub fn ext(mut self, ext: Ext) -> Packet {
        let Network::V6 { exts, .. } = &mut self.network else {
            panic!("an IPv6 extension header on a non-IPv6 packet");
        };
        exts.push(ext);
        self
    }

    /// Appends several IPv6 extension headers, in wire order.
    pub fn exts(self, exts: &[Ext]) -> Packet {
        exts.iter().fold(self, |p, e| p.ext(*e))
    }

    /// Replaces the payload after the last header.
    pub fn payload(mut self, payload: &[u8]) -> Packet {
        self.payload = payload.to_vec();
        self
    }

    /// Sets the TCP flags (a SYN by default).
    pub fn tcp_flags(mut self, flags: u8) -> Packet {
        let Transport::Tcp { flags: field, .. } = &mut self.transport else {
            panic!("TCP flags on a non-TCP packet");
        };
        *field = flags;
        self
    }
}
