//! STUN Binding requests on mux ports: the server ufrag in USERNAME names the meeting, and
//! the client's flow is bound to it before the request is decided, so the very first
//! request of a participant in a blocked territory is already dropped and its ICE never
//! completes. Later packets of the flow (DTLS, SRTP, RTCP) find the meeting by the flow.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    programs::XdpContext,
};
use filter_common::{
    FlowKey,
    mux::{FlowBinding, MuxEvent, UFRAG_MAX, UfragKey, origin, stun},
};

use crate::{
    count,
    maps::{FLOWS, UFRAG_SCRATCH, UFRAGS},
    parse::read,
};

/// Offsets a walk may reach: a STUN message fits one Ethernet frame. Keeps every packet
/// offset the verifier sees within a bound it can check.
const MAX_OFFSET: usize = 2048;

/// What the payload of a datagram to a mux port says as STUN.
pub enum Request {
    /// Not a Binding request: not STUN (media, DTLS), or another STUN message (a success
    /// response, an indication), which binds nothing.
    None,
    /// A Binding request whose server ufrag is in `UFRAG_SCRATCH`.
    Ufrag(&'static UfragKey),
    /// A Binding request that names no ufrag the program can read, and why.
    Unreadable(MuxEvent),
}

/// The server ufrag of the Binding request at `payload`, if it is one: the first byte 0–3
/// (RFC 7983's demultiplexing), the magic cookie, type 0x0001, a length that is a multiple
/// of 4 and fits the datagram; then the attributes, walked in order (each padded to 4
/// bytes) for USERNAME.
#[inline(always)]
pub fn server_ufrag(ctx: &XdpContext, payload: usize) -> Request {
    let Some(header) = read::<[u8; stun::HEADER_LEN]>(ctx, payload) else {
        return Request::None;
    };
    if header[0] > 3 || header[4..8] != stun::MAGIC_COOKIE {
        return Request::None;
    }
    if u16::from_be_bytes([header[0], header[1]]) != stun::BINDING_REQUEST {
        return Request::None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let end = payload + stun::HEADER_LEN + length;
    if length % 4 != 0 || end > MAX_OFFSET || ctx.data() + end > ctx.data_end() {
        return Request::Unreadable(MuxEvent::StunMalformed);
    }
    let mut at = payload + stun::HEADER_LEN;
    for _ in 0..stun::MAX_ATTRIBUTES {
        if at >= end {
            return Request::Unreadable(MuxEvent::NoUsername);
        }
        let Some(attribute) = read::<[u8; 4]>(ctx, at) else {
            return Request::Unreadable(MuxEvent::StunMalformed);
        };
        let kind = u16::from_be_bytes([attribute[0], attribute[1]]);
        let len = usize::from(u16::from_be_bytes([attribute[2], attribute[3]]));
        let value = at + 4;
        if value + len > end {
            return Request::Unreadable(MuxEvent::StunMalformed);
        }
        if kind == stun::USERNAME {
            return ufrag_of(ctx, value, len);
        }
        at = value + ((len + 3) & !3);
    }
    Request::Unreadable(MuxEvent::NoUsername)
}

/// The server ufrag: USERNAME's text up to its first `:`, read into `UFRAG_SCRATCH`.
#[inline(always)]
fn ufrag_of(ctx: &XdpContext, value: usize, len: usize) -> Request {
    let Some(key) = UFRAG_SCRATCH.get_ptr_mut(0) else {
        return Request::None;
    };
    // SAFETY: this CPU's own slot, used by this program run alone (XDP runs with
    // preemption off).
    let key = unsafe { &mut *key };
    key.bytes = [0; UFRAG_MAX];
    // Four bytes a read: a one-byte bounds check compiles to a comparison the verifier
    // cannot use, and the attribute's padding keeps whole words inside the message.
    for word in 0..UFRAG_MAX / 4 + 1 {
        let at = value + 4 * word;
        if at >= MAX_OFFSET {
            return Request::Unreadable(MuxEvent::StunMalformed);
        }
        let Some(bytes) = read::<[u8; 4]>(ctx, at) else {
            return Request::Unreadable(MuxEvent::StunMalformed);
        };
        for (j, &byte) in bytes.iter().enumerate() {
            let i = 4 * word + j;
            if i >= len {
                // No `:`: a USERNAME of ICE is never one word.
                return Request::Unreadable(MuxEvent::StunMalformed);
            }
            if byte == b':' {
                return match i {
                    0 => Request::Unreadable(MuxEvent::StunMalformed),
                    _ => Request::Ufrag(key),
                };
            }
            if i == UFRAG_MAX {
                return Request::Unreadable(MuxEvent::UfragTooLong);
            }
            key.bytes[i] = byte;
        }
    }
    Request::Unreadable(MuxEvent::UfragTooLong)
}

/// The program's clock: the coarse one, as for rule expiries (see `decide::now`).
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper with no arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// The low 32 bits of the kernel's tick count: learned bindings' idle clock (see
/// `FlowBinding::refreshed_ticks`).
#[inline(always)]
pub fn ticks() -> u32 {
    // SAFETY: a helper with no arguments.
    unsafe { bpf_jiffies64() as u32 }
}

/// Binds `flow` to the meeting `ufrag` is registered to, or refreshes its binding, and
/// returns that meeting. A flow the control plane bound keeps its meeting: the SFU's
/// control plane knows better than the packet.
#[inline(always)]
pub fn learn(flow: &FlowKey, ufrag: &UfragKey) -> Option<u32> {
    // SAFETY: values are plain data copied out at once.
    let Some(registered) = (unsafe { UFRAGS.get(ufrag) }).copied() else {
        count::mux(MuxEvent::UnknownUfrag);
        return None;
    };
    let now = now();
    if let Some(bound) = FLOWS.get_ptr_mut(flow) {
        // SAFETY: the element stays valid while the program runs (RCU); an 8-byte store
        // is atomic, and a concurrent update of the same flow by another CPU writes the
        // same binding.
        let bound = unsafe { &mut *bound };
        if bound.origin != origin::LEARNED {
            return Some(bound.session);
        }
        if bound.session == registered.session && bound.ufrag_id == registered.id {
            bound.refreshed_ns = now;
            bound.refreshed_ticks = ticks();
            count::mux(MuxEvent::Refreshed);
            return Some(registered.session);
        }
    }
    let mut binding = FlowBinding::bound(registered.session, origin::LEARNED);
    binding.ufrag_id = registered.id;
    binding.refreshed_ns = now;
    binding.refreshed_ticks = ticks();
    // A full LRU map evicts its least recently used flow; an error here leaves the
    // packet decided by this request's meeting all the same.
    let _ = FLOWS.insert(flow, &binding, u64::from(BPF_ANY));
    count::mux(MuxEvent::Learned);
    Some(registered.session)
}
