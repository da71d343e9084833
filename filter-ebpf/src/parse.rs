//! Header parsing. Every read is bounds-checked against `data_end`; offsets only grow by
//! amounts the verifier can bound (IHL ≤ 60, extension headers ≤ 2 KiB, a fixed count).

use core::mem;

use aya_ebpf::programs::XdpContext;
use filter_common::{PassReason, maps::AddressWords, proto};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const MAX_VLAN_TAGS: usize = 2;

const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// Extension headers followed before giving up; real traffic carries one or two.
const MAX_IPV6_EXT: usize = 6;

const UDP_HDR_LEN: usize = 8;
const TCP_MIN_HDR_LEN: usize = 20;

/// The fields classification needs.
pub struct Packet {
    pub proto: u8,
    pub is_v6: bool,
    pub src: AddressWords,
    pub dst: AddressWords,
    pub src_port: u16,
    pub dst_port: u16,
    /// Where a UDP datagram's payload starts; 0 for TCP and first fragments.
    pub payload: usize,
    /// `SESSION_ACTIVE`'s entry, read once per packet by [`crate::classify`]: the session
    /// maps' and the territory table's generations this packet uses.
    pub active: u32,
}

pub enum Parsed {
    Packet(Packet),
    /// Not classifiable, but the stack would still deliver it, and its addresses are known:
    /// the unparsed guard judges it.
    Unplaced(Unplaced),
    Pass(PassReason),
}

/// What is known of a packet the parser cannot place in a session.
pub struct Unplaced {
    /// Why it cannot be classified.
    pub reason: PassReason,
    pub is_v6: bool,
    pub src: AddressWords,
    pub dst: AddressWords,
}

/// A pointer to a `T` at `offset`, if the whole `T` lies inside the packet.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    // SAFETY: ptr_at checked that the bytes are inside the packet; T is plain bytes.
    ptr_at::<T>(ctx, offset).map(|p| unsafe { p.read_unaligned() })
}

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Parsed {
    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return Parsed::Pass(PassReason::Malformed);
    };
    let mut ether_type = u16::from_be(eth.ether_type);
    let mut offset = EthHdr::LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETHERTYPE_VLAN && ether_type != ETHERTYPE_QINQ {
            break;
        }
        let Some(tag) = read::<[u8; 4]>(ctx, offset) else {
            return Parsed::Pass(PassReason::Malformed);
        };
        ether_type = u16::from_be_bytes([tag[2], tag[3]]);
        offset += 4;
    }
    match ether_type {
        ETHERTYPE_IPV4 => parse_ipv4(ctx, offset),
        ETHERTYPE_IPV6 => parse_ipv6(ctx, offset),
        _ => Parsed::Pass(PassReason::NotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, offset: usize) -> Parsed {
    let Some(ip) = read::<Ipv4Hdr>(ctx, offset) else {
        return Parsed::Pass(PassReason::Malformed);
    };
    let header_len = ((ip.vihl & 0x0f) as usize) * 4;
    if ip.vihl >> 4 != 4 || header_len < Ipv4Hdr::LEN {
        return Parsed::Pass(PassReason::Malformed);
    }
    let frags = u16::from_be_bytes(ip.frags);
    if frags & 0x1fff != 0 {
        return Parsed::Pass(PassReason::Fragment);
    }
    parse_l4(
        ctx,
        offset + header_len,
        ip.proto,
        frags & 0x2000 != 0,
        false,
        AddressWords::v4_mapped(ip.src_addr),
        AddressWords::v4_mapped(ip.dst_addr),
    )
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, offset: usize) -> Parsed {
    let Some(ip) = read::<Ipv6Hdr>(ctx, offset) else {
        return Parsed::Pass(PassReason::Malformed);
    };
    if ip.vcf[0] >> 4 != 6 {
        return Parsed::Pass(PassReason::Malformed);
    }
    let src = AddressWords::of(&ip.src_addr);
    let dst = AddressWords::of(&ip.dst_addr);
    // An IPv4-mapped source is an IPv4 host (the stack delivers it, and sockets see it as
    // that host); an IPv4-mapped destination is no local address.
    if dst.v4().is_some() {
        return Parsed::Pass(PassReason::MappedDestination);
    }
    let unplaced = |reason| {
        Parsed::Unplaced(Unplaced {
            reason,
            is_v6: true,
            src,
            dst,
        })
    };
    let mut next = ip.next_hdr;
    let mut offset = offset + Ipv6Hdr::LEN;
    let mut first_fragment = false;
    for _ in 0..MAX_IPV6_EXT {
        let len = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let Some(h) = read::<[u8; 2]>(ctx, offset) else {
                    return cut_short(first_fragment, unplaced);
                };
                next = h[0];
                (h[1] as usize + 1) * 8
            }
            IPV6_AUTH => {
                let Some(h) = read::<[u8; 2]>(ctx, offset) else {
                    return cut_short(first_fragment, unplaced);
                };
                next = h[0];
                (h[1] as usize + 2) * 4
            }
            IPV6_FRAGMENT => {
                let Some(h) = read::<[u8; 8]>(ctx, offset) else {
                    return cut_short(first_fragment, unplaced);
                };
                let offset_and_more = u16::from_be_bytes([h[2], h[3]]);
                if offset_and_more & 0xfff8 != 0 {
                    return Parsed::Pass(PassReason::Fragment);
                }
                first_fragment = offset_and_more & 1 != 0;
                next = h[0];
                8
            }
            _ => break,
        };
        offset += len;
    }
    // The stack walks any chain, so this packet is delivered: the guard judges it.
    if is_ipv6_extension(next) {
        return unplaced(PassReason::ExtHeaderLimit);
    }
    parse_l4(ctx, offset, next, first_fragment, true, src, dst)
}

/// A header cut short: a whole packet the stack discards passes as malformed; a first
/// fragment, which the stack would reassemble with the rest, goes to the guard.
#[inline(always)]
fn cut_short(first_fragment: bool, unplaced: impl FnOnce(PassReason) -> Parsed) -> Parsed {
    if first_fragment {
        unplaced(PassReason::Malformed)
    } else {
        Parsed::Pass(PassReason::Malformed)
    }
}

#[inline(always)]
fn is_ipv6_extension(next: u8) -> bool {
    matches!(
        next,
        IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AUTH | IPV6_DEST_OPTS
    )
}

#[inline(always)]
fn parse_l4(
    ctx: &XdpContext,
    offset: usize,
    protocol: u8,
    first_fragment: bool,
    is_v6: bool,
    src: AddressWords,
    dst: AddressWords,
) -> Parsed {
    // Ports are the first four bytes of both headers. A whole packet whose header is cut
    // short is malformed; the receiver discards it. A first fragment may legally carry
    // only 8 bytes of a TCP header, and the receiver reassembles it, so it is classified
    // on its ports alone: passing it would let the whole datagram through.
    let ports = match (protocol, first_fragment) {
        (proto::UDP | proto::TCP, true) => read::<[u8; 4]>(ctx, offset),
        (proto::UDP, false) => {
            read::<[u8; UDP_HDR_LEN]>(ctx, offset).map(|h| [h[0], h[1], h[2], h[3]])
        }
        (proto::TCP, false) => {
            read::<[u8; TCP_MIN_HDR_LEN]>(ctx, offset).map(|h| [h[0], h[1], h[2], h[3]])
        }
        _ => return Parsed::Pass(PassReason::NotUdpTcp),
    };
    let Some(ports) = ports else {
        return cut_short(first_fragment, |reason| {
            Parsed::Unplaced(Unplaced {
                reason,
                is_v6,
                src,
                dst,
            })
        });
    };
    let payload = if protocol == proto::UDP && !first_fragment {
        offset + UDP_HDR_LEN
    } else {
        0
    };
    Parsed::Packet(Packet {
        proto: protocol,
        is_v6,
        src,
        dst,
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        payload,
        active: 0,
    })
}
