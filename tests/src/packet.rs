//! Test packets built byte by byte: Ethernet with up to any number of VLAN tags, IPv4 (with
//! options, any IHL, fragment flags), IPv6 (with chains of extension headers), UDP, TCP,
//! ICMP and raw IP protocols, and non-IP frames such as ARP.
//!
//! [`Packet`] describes a packet; [`Packet::build`] lays it out as a [`Frame`]: the bytes
//! plus the byte range of every header, so a test can cut the frame inside a named header
//! ([`Frame::cut_inside`]) or at any length ([`Frame::truncated`]).
//!
//! Lengths and checksums are filled in as a real stack would (IPv4 header checksum, UDP,
//! TCP and ICMP checksums over the pseudo header), computed over the whole packet before
//! any truncation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

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

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options; `len` is the Hdr Ext Len field: `(len + 1) * 8` bytes.
    HopByHop { len: u8 },
    /// A routing header with Segments Left 0 (so a receiver ignores its type); `(len + 1) * 8`
    /// bytes.
    Routing { len: u8 },
    /// Destination options; `(len + 1) * 8` bytes.
    DestOpts { len: u8 },
    /// A fragment header: `offset` in 8-byte units (13 bits), `more` the M flag. 8 bytes.
    Fragment { offset: u16, more: bool },
    /// An authentication header; `len` is the Payload Len field: `(len + 2) * 4` bytes.
    Auth { len: u8 },
}

impl Ext {
    /// The smallest header of each kind (an AH with a 96-bit ICV, 24 bytes).
    pub const HOP_BY_HOP: Ext = Ext::HopByHop { len: 0 };
    pub const ROUTING: Ext = Ext::Routing { len: 0 };
    pub const DEST_OPTS: Ext = Ext::DestOpts { len: 0 };
    pub const AUTH: Ext = Ext::Auth { len: 4 };
    /// The first fragment of a datagram: offset 0, more fragments follow.
    pub const FIRST_FRAGMENT: Ext = Ext::Fragment {
        offset: 0,
        more: true,
    };

    /// Its next-header number.
    pub fn number(self) -> u8 {
        match self {
            Ext::HopByHop { .. } => ipproto::HOP_BY_HOP,
            Ext::Routing { .. } => ipproto::ROUTING,
            Ext::DestOpts { .. } => ipproto::DEST_OPTS,
            Ext::Fragment { .. } => ipproto::FRAGMENT,
            Ext::Auth { .. } => ipproto::AUTH,
        }
    }

    /// Its length on the wire.
    pub fn size(self) -> usize {
        match self {
            Ext::HopByHop { len } | Ext::Routing { len } | Ext::DestOpts { len } => {
                (usize::from(len) + 1) * 8
            }
            Ext::Fragment { .. } => 8,
            Ext::Auth { len } => (usize::from(len) + 2) * 4,
        }
    }

    /// The layer name used in [`Frame::layers`].
    pub fn name(self) -> &'static str {
        match self {
            Ext::HopByHop { .. } => "hop-by-hop",
            Ext::Routing { .. } => "routing",
            Ext::DestOpts { .. } => "dest-opts",
            Ext::Fragment { .. } => "fragment",
            Ext::Auth { .. } => "auth",
        }
    }

    fn write(self, next: u8, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Ext::HopByHop { len } | Ext::DestOpts { len } => {
                out.extend([next, len]);
                pad_options(out, start + self.size());
            }
            Ext::Routing { len } => {
                // Routing type 253 (experimental), Segments Left 0, then type-specific data.
                out.extend([next, len, 253, 0]);
                out.resize(start + self.size(), 0);
            }
            Ext::Fragment { offset, more } => {
                assert!(offset < 1 << 13, "fragment offset {offset} exceeds 13 bits");
                let field = (offset << 3) | u16::from(more);
                out.extend([next, 0]);
                out.extend(field.to_be_bytes());
                out.extend(0x0bad_cafe_u32.to_be_bytes());
            }
            Ext::Auth { len } => {
                assert!(len >= 1, "an AH is at least 12 bytes (Payload Len 1)");
                out.extend([next, len, 0, 0]);
                out.extend(0x0000_1000_u32.to_be_bytes()); // SPI
                out.extend(1_u32.to_be_bytes()); // sequence number
                out.resize(start + self.size(), 0x5a); // ICV
            }
        }
        debug_assert_eq!(out.len(), start + self.size());
    }
}

/// Fills an options header up to `end` with one PadN option (or Pad1 bytes).
fn pad_options(out: &mut Vec<u8>, end: usize) {
    let gap = end - out.len();
    match gap {
        0 => {}
        1 => out.push(0),
        _ => {
            out.extend([1, (gap - 2) as u8]);
            out.resize(end, 0);
        }
    }
}

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

fn ip_network(src: IpAddr, dst: IpAddr) -> Network {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Network::V4 {
            src,
            dst,
            options: Vec::new(),
            ihl: None,
            flags_offset: 0,
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

    fn proto(&self) -> u8 {
        match (self.transport, &self.network) {
            (Transport::Udp { .. }, _) => ipproto::UDP,
            (Transport::Tcp { .. }, _) => ipproto::TCP,
            (Transport::Echo, Network::V6 { .. }) => ipproto::ICMPV6,
            (Transport::Echo, _) => ipproto::ICMP,
            (Transport::Raw { proto }, _) => proto,
            (Transport::None, _) => 0,
        }
    }

    /// The transport header and payload, and where its checksum goes.
    fn segment(&self) -> Segment {
        let mut bytes = Vec::new();
        let (header, checksum_at) = match self.transport {
            Transport::Udp { src, dst } => {
                let len = (UDP_HLEN + self.payload.len()) as u16;
                bytes.extend(src.to_be_bytes());
                bytes.extend(dst.to_be_bytes());
                bytes.extend(len.to_be_bytes());
                bytes.extend([0, 0]);
                (Some(("udp", UDP_HLEN)), Some(6))
            }
            Transport::Tcp { src, dst, flags } => {
                bytes.extend(src.to_be_bytes());
                bytes.extend(dst.to_be_bytes());
                bytes.extend(0x1000_0000_u32.to_be_bytes()); // sequence number
                bytes.extend(0_u32.to_be_bytes()); // acknowledgment number
                bytes.extend([(TCP_HLEN as u8 / 4) << 4, flags]);
                bytes.extend(65535_u16.to_be_bytes()); // window
                bytes.extend([0, 0, 0, 0]); // checksum, urgent pointer
                (Some(("tcp", TCP_HLEN)), Some(16))
            }
            Transport::Echo => {
                let kind = if matches!(self.network, Network::V6 { .. }) {
                    128
                } else {
                    8
                };
                bytes.extend([kind, 0, 0, 0]);
                bytes.extend(0x4745_0001_u32.to_be_bytes()); // identifier, sequence
                (Some(("icmp", ICMP_HLEN)), Some(2))
            }
            Transport::Raw { .. } | Transport::None => (None, None),
        };
        bytes.extend(&self.payload);
        Segment {
            header,
            bytes,
            checksum_at,
        }
    }

    /// Lays the packet out.
    pub fn build(&self) -> Frame {
        let mut frame = Frame::default();
        let mut bytes = Vec::new();
        bytes.extend(self.dst_mac);
        bytes.extend(self.src_mac);
        let ethertype = match &self.network {
            Network::V4 { .. } => ETHERTYPE_IPV4,
            Network::V6 { .. } => ETHERTYPE_IPV6,
            Network::Other { ethertype, .. } => *ethertype,
        };
        // Each type field names what follows it: the first tag's TPID sits in the Ethernet
        // header; a tag is its TCI plus the next type.
        let mut types: Vec<u16> = self.vlans.iter().map(|(tpid, _)| *tpid).collect();
        types.push(ethertype);
        bytes.extend(types[0].to_be_bytes());
        frame.push_layer("ethernet", 0..ETH_HLEN);
        for (i, (_, vid)) in self.vlans.iter().enumerate() {
            let start = bytes.len();
            bytes.extend(vid.to_be_bytes());
            bytes.extend(types[i + 1].to_be_bytes());
            frame.push_layer("vlan", start..bytes.len());
        }
        let proto = self.proto();
        match &self.network {
            Network::V4 {
                src,
                dst,
                options,
                ihl,
                flags_offset,
            } => {
                let mut seg = self.segment();
                let seg_len = seg.bytes.len();
                // ICMPv4 has no pseudo header.
                if proto != ipproto::ICMP {
                    let mut pseudo = Vec::with_capacity(12);
                    pseudo.extend(src.octets());
                    pseudo.extend(dst.octets());
                    pseudo.extend([0, proto]);
                    pseudo.extend((seg.bytes.len() as u16).to_be_bytes());
                    seg.fill_checksum(&pseudo, proto);
                } else {
                    seg.fill_checksum(&[], proto);
                }
                let carried = self.carried.unwrap_or(seg.bytes.len()).min(seg.bytes.len());
                let start = bytes.len();
                let header_len = IPV4_HLEN + options.len();
                let ihl = ihl.unwrap_or((header_len / 4) as u8);
                bytes.push((self.version.unwrap_or(4) << 4) | ihl);
                bytes.push(0); // DSCP/ECN
                bytes.extend(((header_len + carried) as u16).to_be_bytes());
                bytes.extend(0x4746_u16.to_be_bytes()); // identification
                bytes.extend(flags_offset.to_be_bytes());
                bytes.extend([64, proto, 0, 0]); // TTL, protocol, checksum
                bytes.extend(src.octets());
                bytes.extend(dst.octets());
                bytes.extend(options);
                let sum = checksum(&[&bytes[start..]]);
                bytes[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
                frame.push_layer("ipv4", start..start + IPV4_HLEN);
                if !options.is_empty() {
                    frame.push_layer("ipv4 options", start + IPV4_HLEN..bytes.len());
                }
                frame.push_transport(&mut bytes, seg);
                bytes.truncate(bytes.len() - (seg_len - carried));
            }
            Network::V6 { src, dst, exts } => {
                let mut seg = self.segment();
                let seg_len = seg.bytes.len();
                let mut pseudo = Vec::with_capacity(40);
                pseudo.extend(src.octets());
                pseudo.extend(dst.octets());
                pseudo.extend((seg.bytes.len() as u32).to_be_bytes());
                pseudo.extend([0, 0, 0, proto]);
                seg.fill_checksum(&pseudo, proto);
                let carried = self.carried.unwrap_or(seg.bytes.len()).min(seg.bytes.len());
                let ext_len: usize = exts.iter().map(|e| e.size()).sum();
                let first = exts.first().map_or(proto, |e| e.number());
                let start = bytes.len();
                // Version, traffic class, flow label.
                bytes.extend((u32::from(self.version.unwrap_or(6)) << 28).to_be_bytes());
                bytes.extend(((ext_len + carried) as u16).to_be_bytes());
                bytes.extend([first, 64]); // next header, hop limit
                bytes.extend(src.octets());
                bytes.extend(dst.octets());
                frame.push_layer("ipv6", start..bytes.len());
                for (i, ext) in exts.iter().enumerate() {
                    let next = exts.get(i + 1).map_or(proto, |e| e.number());
                    let start = bytes.len();
                    ext.write(next, &mut bytes);
                    frame.push_layer(ext.name(), start..bytes.len());
                }
                frame.push_transport(&mut bytes, seg);
                bytes.truncate(bytes.len() - (seg_len - carried));
            }
            Network::Other { name, .. } => {
                let start = bytes.len();
                bytes.extend(&self.payload);
                frame.push_layer(name, start..bytes.len());
                frame.headers_len = bytes.len();
            }
        }
        frame.bytes = bytes;
        frame
    }
}

/// A transport header with its payload, before it is placed after the IP header(s).
struct Segment {
    /// The header's name and length; `None` for raw protocols and non-IP bodies.
    header: Option<(&'static str, usize)>,
    bytes: Vec<u8>,
    checksum_at: Option<usize>,
}

impl Segment {
    /// Writes the checksum over `pseudo` and the segment (UDP never sends 0: it means none).
    fn fill_checksum(&mut self, pseudo: &[u8], proto: u8) {
        let Some(at) = self.checksum_at else {
            return;
        };
        let mut sum = checksum(&[pseudo, &self.bytes]);
        if sum == 0 && proto == ipproto::UDP {
            sum = 0xffff;
        }
        self.bytes[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The Internet checksum of the concatenation of `parts` (each of even length but the last).
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for byte in parts.iter().flat_map(|p| p.iter().copied()) {
        match odd.take() {
            None => odd = Some(byte),
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
        }
    }
    if let Some(high) = odd {
        sum += u32::from(high) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl From<Packet> for Frame {
    fn from(packet: Packet) -> Frame {
        packet.build()
    }
}

impl From<&Packet> for Frame {
    fn from(packet: &Packet) -> Frame {
        packet.build()
    }
}

/// One header of a [`Frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// `ethernet`, `vlan`, `ipv4`, `ipv4 options`, `ipv6`, `hop-by-hop`, `routing`,
    /// `dest-opts`, `fragment`, `auth`, `udp`, `tcp`, `icmp`, or a non-IP frame's name.
    pub name: String,
    /// Where it lies in the full frame.
    pub range: Range<usize>,
}

/// A built packet: its bytes and where each header lies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Headers in wire order (the payload is not one).
    pub layers: Vec<Layer>,
    /// The length of the headers before any truncation: the offset of the payload.
    pub headers_len: usize,
}

impl Frame {
    fn push_layer(&mut self, name: &str, range: Range<usize>) {
        self.layers.push(Layer {
            name: name.to_string(),
            range,
        });
    }

    fn push_transport(&mut self, bytes: &mut Vec<u8>, seg: Segment) {
        let start = bytes.len();
        let header = seg.header.map_or(0, |(_, len)| len);
        if let Some((name, len)) = seg.header {
            self.push_layer(name, start..start + len);
        }
        self.headers_len = start + header;
        bytes.extend(seg.bytes);
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The first `len` bytes. Layers keep their full-frame ranges, so a test can still tell
    /// which header a cut fell into ([`Frame::layer_at`]).
    pub fn truncated(&self, len: usize) -> Frame {
        assert!(
            len <= self.len(),
            "cutting {len} bytes of a {}-byte frame",
            self.len()
        );
        Frame {
            bytes: self.bytes[..len].to_vec(),
            layers: self.layers.clone(),
            headers_len: self.headers_len,
        }
    }

    /// The `n`th (0-based) header named `name`.
    pub fn nth_layer(&self, name: &str, n: usize) -> &Layer {
        self.layers
            .iter()
            .filter(|l| l.name == name)
            .nth(n)
            .unwrap_or_else(|| panic!("the frame has no header {name} #{n}: {self}"))
    }

    /// The first header named `name`.
    pub fn layer(&self, name: &str) -> &Layer {
        self.nth_layer(name, 0)
    }

    /// The frame cut `keep` bytes into its first header named `name`.
    pub fn cut_inside(&self, name: &str, keep: usize) -> Frame {
        let range = self.layer(name).range.clone();
        assert!(
            keep < range.len(),
            "a cut {keep} bytes into the {}-byte {name} header is not inside it",
            range.len()
        );
        self.truncated(range.start + keep)
    }

    /// The header that byte `offset` belongs to, or `None` past the headers.
    pub fn layer_at(&self, offset: usize) -> Option<&Layer> {
        self.layers.iter().find(|l| l.range.contains(&offset))
    }

    /// Whether the frame was cut before its headers were complete.
    pub fn headers_cut(&self) -> bool {
        self.len() < self.headers_len
    }
}

impl fmt::Display for Frame {
    /// `ethernet(14) vlan(4) ipv4(20) udp(8) +16` for a whole frame; a cut frame names the
    /// header it was cut in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.len();
        let mut first = true;
        for layer in &self.layers {
            if layer.range.start >= len {
                break;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if layer.range.end <= len {
                write!(f, "{}({})", layer.name, layer.range.len())?;
            } else {
                write!(
                    f,
                    "{}({}/{})",
                    layer.name,
                    len - layer.range.start,
                    layer.range.len()
                )?;
            }
        }
        if len > self.headers_len {
            write!(f, " +{}", len - self.headers_len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
