//! Lays a [`Packet`] out as a [`Frame`]: headers in wire order, lengths and checksums.

use super::{Network, Packet, Transport};
use crate::{
    ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Frame, ICMP_HLEN, IPV4_HLEN, TCP_HLEN, UDP_HLEN,
    checksum, ipproto,
};

impl Packet {
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
            Transport::Udp { src, dst, checksum } => {
                let len = (UDP_HLEN + self.payload.len()) as u16;
                bytes.extend(src.to_be_bytes());
                bytes.extend(dst.to_be_bytes());
                bytes.extend(len.to_be_bytes());
                bytes.extend([0, 0]);
                (Some(("udp", UDP_HLEN)), checksum.then_some(6))
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
                identification,
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
                bytes.extend(identification.to_be_bytes());
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

impl Frame {
    fn push_transport(&mut self, bytes: &mut Vec<u8>, seg: Segment) {
        let start = bytes.len();
        let header = seg.header.map_or(0, |(_, len)| len);
        if let Some((name, len)) = seg.header {
            self.push_layer(name, start..start + len);
        }
        self.headers_len = start + header;
        bytes.extend(seg.bytes);
    }
}
