//! The headers a verdict depends on, read from a frame the way the design describes the
//! data path (step 1 and 2): Ethernet, at most two VLAN tags, IPv4 with its IHL or IPv6
//! with a bounded walk over extension headers, then the ports of UDP or TCP.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_common::{Address, PassReason, maps::v4_mapped, proto};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q and 802.1ad (QinQ service tag).
pub const VLAN_TPIDS: [u16; 2] = [0x8100, 0x88a8];
/// Tags followed; a third one leaves a VLAN type where the network type should be.
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers followed; one more still there is [`PassReason::ExtHeaderLimit`].
pub const MAX_IPV6_EXT: usize = 6;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;
const TCP_MIN_HLEN: usize = 20;
/// A first fragment may carry as little as the ports.
const PORTS_LEN: usize = 4;

/// IPv6 extension headers the walk knows.
pub mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTS: u8 = 60;

    pub fn is_extension(next: u8) -> bool {
        matches!(next, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTS)
    }
}

/// What classification reads from a parseable UDP or TCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    pub proto: u8,
    pub is_v6: bool,
    /// IPv4 addresses are IPv4-mapped, as in every map key.
    pub src: Address,
    pub dst: Address,
    pub src_port: u16,
    pub dst_port: u16,
    /// The first fragment of a fragmented datagram (classified on its ports alone).
    pub first_fragment: bool,
    pub vlan_tags: usize,
    /// Where a UDP datagram's payload starts in the frame; 0 for TCP and first fragments,
    /// which are not read as STUN.
    pub payload: usize,
}

impl Headers {
    /// The source as the territory table sees it: IPv4 (also when IPv4-mapped in IPv6) or
    /// IPv6.
    pub fn source(&self) -> IpAddr {
        address_ip(self.is_v6, &self.src)
    }

    pub fn destination(&self) -> IpAddr {
        address_ip(self.is_v6, &self.dst)
    }
}

fn address_ip(is_v6: bool, addr: &Address) -> IpAddr {
    let v6 = Ipv6Addr::from(*addr);
    match v6.to_ipv4_mapped() {
        Some(v4) if !is_v6 => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    }
}

impl fmt::Display for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            proto::UDP => "udp",
            proto::TCP => "tcp",
            _ => "?",
        };
        let family = if self.is_v6 { "ipv6" } else { "ipv4" };
        let sock = |ip: IpAddr, port: u16| match ip {
            IpAddr::V4(a) => format!("{a}:{port}"),
            IpAddr::V6(a) => format!("[{a}]:{port}"),
        };
        write!(
            f,
            "{proto}/{family} {} → {}",
            sock(self.source(), self.src_port),
            sock(self.destination(), self.dst_port)
        )?;
        if self.vlan_tags > 0 {
            write!(f, " ({} VLAN tags)", self.vlan_tags)?;
        }
        if self.first_fragment {
            f.write_str(" (first fragment)")?;
        }
        Ok(())
    }
}

/// The `N` bytes at `at`, if the frame holds all of them.
fn bytes<const N: usize>(frame: &[u8], at: usize) -> Option<[u8; N]> {
    frame.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// A packet the parser cannot place in a session whose addresses are known, and which the
/// relay's stack would still deliver: the unparsed guard judges it (see
/// `filter_common::unparsed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unplaced {
    pub is_v6: bool,
    /// IPv4 addresses are IPv4-mapped, as in every map key.
    pub src: Address,
    pub dst: Address,
}

impl Unplaced {
    /// The source as the territory table sees it.
    pub fn source(&self) -> IpAddr {
        address_ip(self.is_v6, &self.src)
    }
}

/// Why a frame is not classified, and for a packet the guard judges, its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unclassified {
    pub reason: PassReason,
    pub unplaced: Option<Unplaced>,
}

impl From<PassReason> for Unclassified {
    fn from(reason: PassReason) -> Unclassified {
        Unclassified {
            reason,
            unplaced: None,
        }
    }
}

/// The headers of a UDP or TCP packet, or why the frame passes unclassified.
pub fn parse(frame: &[u8]) -> Result<Headers, PassReason> {
    classify(frame).map_err(|u| u.reason)
}

/// [`parse`], with the addresses of a packet the stack would deliver though it cannot be
/// placed: more IPv6 extension headers than the walk follows, or a first fragment cut
/// short before its ports. A whole packet cut short is discarded by the stack, and a
/// non-first fragment is judged through its first; both pass.
pub fn classify(frame: &[u8]) -> Result<Headers, Unclassified> {
    // Destination and source MAC, then the type.
    let mut ether_type = be16(bytes(frame, ETH_HLEN - 2).ok_or(PassReason::Malformed)?);
    let mut at = ETH_HLEN;
    let mut tags = 0;
    while tags < MAX_VLAN_TAGS && VLAN_TPIDS.contains(&ether_type) {
        let tag: [u8; 4] = bytes(frame, at).ok_or(PassReason::Malformed)?;
        ether_type = be16([tag[2], tag[3]]);
        at += VLAN_HLEN;
        tags += 1;
    }
    let mut headers = match ether_type {
        ETHERTYPE_IPV4 => ipv4(frame, at)?,
        ETHERTYPE_IPV6 => ipv6(frame, at)?,
        // Anything else, a third VLAN tag included.
        _ => return Err(PassReason::NotIp.into()),
    };
    headers.vlan_tags = tags;
    Ok(headers)
}

fn ipv4(frame: &[u8], at: usize) -> Result<Headers, Unclassified> {
    let ip: [u8; IPV4_MIN_HLEN] = bytes(frame, at).ok_or(PassReason::Malformed)?;
    let version = ip[0] >> 4;
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if version != 4 || header_len < IPV4_MIN_HLEN {
        return Err(PassReason::Malformed.into());
    }
    let flags_offset = be16([ip[6], ip[7]]);
    let offset = flags_offset & 0x1fff;
    let more_fragments = flags_offset & 0x2000 != 0;
    if offset != 0 {
        return Err(PassReason::Fragment.into());
    }
    let src = v4_mapped([ip[12], ip[13], ip[14], ip[15]]);
    let dst = v4_mapped([ip[16], ip[17], ip[18], ip[19]]);
    transport(
        frame,
        at + header_len,
        ip[9],
        more_fragments,
        false,
        src,
        dst,
    )
}

fn ipv6(frame: &[u8], at: usize) -> Result<Headers, Unclassified> {
    let ip: [u8; IPV6_HLEN] = bytes(frame, at).ok_or(PassReason::Malformed)?;
    if ip[0] >> 4 != 6 {
        return Err(PassReason::Malformed.into());
    }
    let src: Address = ip[8..24].try_into().expect("16 bytes");
    let dst: Address = ip[24..40].try_into().expect("16 bytes");
    // The stack routes an IPv4-mapped destination nowhere local (its source is an IPv4
    // host, which sockets see as that host: located as such).
    if mapped_v4(&dst).is_some() {
        return Err(PassReason::MappedDestination.into());
    }
    let unplaced = |reason| Unclassified {
        reason,
        unplaced: Some(Unplaced {
            is_v6: true,
            src,
            dst,
        }),
    };
    // A header cut short: the stack discards a whole packet, but reassembles a first
    // fragment with the rest.
    let cut_short = |first_fragment| {
        if first_fragment {
            unplaced(PassReason::Malformed)
        } else {
            PassReason::Malformed.into()
        }
    };
    let mut next = ip[6];
    let mut at = at + IPV6_HLEN;
    let mut first_fragment = false;
    for _ in 0..MAX_IPV6_EXT {
        if !ext::is_extension(next) {
            break;
        }
        let len = match next {
            ext::FRAGMENT => {
                let h: [u8; 8] = bytes(frame, at).ok_or_else(|| cut_short(first_fragment))?;
                let offset_flags = be16([h[2], h[3]]);
                if offset_flags >> 3 != 0 {
                    return Err(PassReason::Fragment.into());
                }
                // The M flag of this header; a later fragment header (nonsense, but
                // possible) has the last word.
                first_fragment = offset_flags & 1 != 0;
                next = h[0];
                8
            }
            // The authentication header counts 4-byte words, less 2.
            ext::AUTH => {
                let h: [u8; 2] = bytes(frame, at).ok_or_else(|| cut_short(first_fragment))?;
                next = h[0];
                (usize::from(h[1]) + 2) * 4
            }
            // Hop-by-hop, routing and destination options count 8-byte units, less 1.
            _ => {
                let h: [u8; 2] = bytes(frame, at).ok_or_else(|| cut_short(first_fragment))?;
                next = h[0];
                (usize::from(h[1]) + 1) * 8
            }
        };
        at += len;
    }
    // The stack walks any chain: delivered, so the guard judges it.
    if ext::is_extension(next) {
        return Err(unplaced(PassReason::ExtHeaderLimit));
    }
    transport(frame, at, next, first_fragment, true, src, dst)
}

fn transport(
    frame: &[u8],
    at: usize,
    protocol: u8,
    first_fragment: bool,
    is_v6: bool,
    src: Address,
    dst: Address,
) -> Result<Headers, Unclassified> {
    let needed = match (protocol, first_fragment) {
        (proto::UDP | proto::TCP, true) => PORTS_LEN,
        (proto::UDP, false) => UDP_HLEN,
        (proto::TCP, false) => TCP_MIN_HLEN,
        _ => return Err(PassReason::NotUdpTcp.into()),
    };
    if frame.len() < at + needed {
        // A first fragment is reassembled with the rest: the guard judges it.
        return Err(Unclassified {
            reason: PassReason::Malformed,
            unplaced: first_fragment.then_some(Unplaced { is_v6, src, dst }),
        });
    }
    let ports: [u8; PORTS_LEN] = bytes(frame, at).ok_or(PassReason::Malformed)?;
    Ok(Headers {
        proto: protocol,
        is_v6,
        src,
        dst,
        src_port: be16([ports[0], ports[1]]),
        dst_port: be16([ports[2], ports[3]]),
        first_fragment,
        vlan_tags: 0,
        payload: if protocol == proto::UDP && !first_fragment {
            at + UDP_HLEN
        } else {
            0
        },
    })
}

/// An IPv4 address of a 16-byte key, if it is IPv4-mapped.
pub fn mapped_v4(addr: &Address) -> Option<Ipv4Addr> {
    Ipv6Addr::from(*addr).to_ipv4_mapped()
}
