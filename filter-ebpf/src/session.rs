//! Which meeting a packet belongs to: on a port meetings share, the meeting a STUN Binding
//! request's server ufrag names (bound to the client's flow before the packet is decided);
//! then an exact flow binding, then the local endpoint, then the endpoint on any local
//! address. One read of the port table says which of these keys exist on the packet's
//! port and holds the wildcard endpoint's session, so a port no meeting uses costs no hash
//! lookup, a wildcard endpoint none either, and the other keys only the lookups that can
//! hit.

use aya_ebpf::programs::XdpContext;
use filter_common::{
    EndpointKey, FlowKey,
    maps::ports,
    mux::{self, FlowBinding, MUX_SESSION},
};

use crate::{
    count,
    maps::{ENDPOINTS, FLOWS, MUX_CONFIG, PORTS},
    parse::Packet,
    stun::{self, Request},
};

/// Where a packet belongs.
pub enum Found {
    /// A meeting's session.
    Session(u32),
    /// A port meetings share, and a flow no meeting has bound (or whose learned binding
    /// went idle).
    Unbound,
    /// No meeting uses the port.
    Nothing,
}

/// The packet's `PORTS` entry: which keys exist on its port, and the wildcard session.
#[inline(always)]
fn port_entry(packet: &Packet) -> u32 {
    let Some(index) = ports::index(packet.proto, packet.dst_port) else {
        return 0;
    };
    PORTS
        .get(index / 2)
        .map_or(0, |element| element[(index & 1) as usize])
}

/// The session of the endpoint on the packet's destination address.
#[inline(always)]
fn endpoint_session(packet: &Packet) -> Option<u32> {
    let endpoint = EndpointKey {
        proto: packet.proto,
        _pad: 0,
        port: packet.dst_port,
        addr: packet.dst.octets(),
    };
    // SAFETY: values are plain u32 copied out at once.
    unsafe { ENDPOINTS.get(&endpoint) }.copied()
}

/// Whether the packet goes to a mux endpoint: the port's wildcard one, or the one on its
/// destination address.
#[inline(always)]
fn to_mux_endpoint(entry: u32, packet: &Packet) -> bool {
    (entry & ports::ENDPOINT_ANY != 0 && ports::wildcard_session(entry) == MUX_SESSION)
        || (entry & ports::ENDPOINT_ADDR != 0 && endpoint_session(packet) == Some(MUX_SESSION))
}

/// Whether a learned binding has gone idle. Read only for learned flows: the clock and
/// the setting cost nothing on ports meetings own.
#[inline(always)]
fn idle(binding: &FlowBinding) -> bool {
    if binding.origin != mux::origin::LEARNED {
        return false;
    }
    let idle_ns = match MUX_CONFIG.get(mux::config::LEARNED_IDLE) {
        Some(&ns) if ns != 0 => ns,
        _ => mux::LEARNED_IDLE_NS,
    };
    binding.idle(stun::now(), idle_ns)
}

#[inline(always)]
pub fn find(ctx: &XdpContext, packet: &Packet) -> Found {
    let entry = port_entry(packet);
    if entry & ports::KEYS == 0 {
        return Found::Nothing;
    }
    let flow = FlowKey {
        proto: packet.proto,
        _pad: [0; 3],
        src_port: packet.src_port,
        dst_port: packet.dst_port,
        src: packet.src.octets(),
        dst: packet.dst.octets(),
    };
    if entry & ports::MUX != 0 && packet.payload != 0 {
        match stun::server_ufrag(ctx, packet.payload) {
            Request::None => {}
            Request::Ufrag(ufrag) if to_mux_endpoint(entry, packet) => {
                if let Some(session) = stun::learn(&flow, ufrag) {
                    return Found::Session(session);
                }
            }
            Request::Unreadable(event) if to_mux_endpoint(entry, packet) => count::mux(event),
            // A Binding request to a meeting's own endpoint on a port shared elsewhere.
            Request::Ufrag(_) | Request::Unreadable(_) => {}
        }
    }
    if entry & ports::FLOW != 0 {
        // SAFETY: values are plain data copied out at once.
        if let Some(binding) = unsafe { FLOWS.get(&flow) }
            && !idle(binding)
        {
            return Found::Session(binding.session);
        }
    }
    if entry & ports::ENDPOINT_ADDR != 0
        && let Some(session) = endpoint_session(packet)
    {
        return match session {
            MUX_SESSION => Found::Unbound,
            session => Found::Session(session),
        };
    }
    // The wildcard endpoint's session is in the entry itself: no lookup.
    match entry & ports::ENDPOINT_ANY != 0 {
        true if ports::wildcard_session(entry) == MUX_SESSION => Found::Unbound,
        true => Found::Session(ports::wildcard_session(entry)),
        false => Found::Nothing,
    }
}
