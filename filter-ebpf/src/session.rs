//! Which meeting a packet belongs to: on a port meetings share, the meeting a STUN Binding
//! request's server ufrag names (bound to the client's flow before the packet is decided);
//! then an exact flow binding, then the local endpoint, then the endpoint on any local
//! address. One read of the port table says which of these keys exist on the packet's
//! port and holds the wildcard endpoint's session, so a port no meeting uses costs no hash
//! lookup, a wildcard endpoint none either, and the other keys only the lookups that can
//! hit.
//!
//! Every map read here and in the decision is read in one generation (see
//! `filter_common::generation`), read once per packet: a change is switched in whole.

use aya_ebpf::programs::XdpContext;
use filter_common::{
    EndpointKey, FlowKey,
    generation::{self, endpoint, live},
    maps::ports,
    mux::{self, FlowBinding, MUX_SESSION},
};

use crate::{
    count,
    maps::{ENDPOINTS, FLOWS, LIVE_SESSIONS, MUX_CONFIG, PORTS},
    parse::Packet,
    stun::{self, Request},
};

/// A meeting's session, found in one generation of the session maps: its rules are read
/// in the same generation.
#[derive(Clone, Copy)]
pub struct Session {
    pub id: u32,
    pub generation: u32,
}

impl Session {
    /// The session's id in the maps indexed by session (see `generation::keyed`).
    #[inline(always)]
    pub fn keyed(self) -> Option<u32> {
        generation::keyed(self.generation, self.id)
    }
}

/// Where a packet belongs.
pub enum Found {
    /// A meeting's session.
    Session(Session),
    /// A port meetings share, and a flow no meeting has bound (or whose learned binding
    /// went idle), in this generation of the session maps.
    Unbound(u32),
    /// No meeting uses the port.
    Nothing,
}

/// The packet's `PORTS` entry: which keys exist on its port, and the wildcard session.
#[inline(always)]
fn port_entry(generation: u32, packet: &Packet) -> u32 {
    let Some(index) = ports::index(packet.proto, packet.dst_port) else {
        return 0;
    };
    let index = ports::in_generation(generation, index);
    PORTS
        .get(index / 2)
        .map_or(0, |element| element[(index & 1) as usize])
}

/// The session of the endpoint on the packet's destination address.
#[inline(always)]
fn endpoint_session(generation: u32, packet: &Packet) -> Option<u32> {
    let key = EndpointKey {
        proto: packet.proto,
        _pad: 0,
        port: packet.dst_port,
        addr: packet.dst.octets(),
    };
    // SAFETY: values are plain u32 copied out at once.
    let value = unsafe { ENDPOINTS.get(&key) }.copied()?;
    match endpoint::session(value, generation) {
        0 => None,
        session => Some(session),
    }
}

/// Whether `session` is a meeting in `generation`: flows learned or bound by the API name
/// their session and apply only while it is.
#[inline(always)]
fn live(generation: u32, session: u32) -> bool {
    let Some((word, bit)) = generation::keyed(generation, session).and_then(live::bit) else {
        return false;
    };
    LIVE_SESSIONS.get(word).is_some_and(|w| w & bit != 0)
}

/// Whether the packet goes to a mux endpoint: the port's wildcard one, or the one on its
/// destination address.
#[inline(always)]
fn to_mux_endpoint(generation: u32, entry: u32, packet: &Packet) -> bool {
    (entry & ports::ENDPOINT_ANY != 0 && ports::wildcard_session(entry) == MUX_SESSION)
        || (entry & ports::ENDPOINT_ADDR != 0
            && endpoint_session(generation, packet) == Some(MUX_SESSION))
}

/// Whether a learned binding has gone idle. Read only for learned flows: the clock and
/// the setting cost nothing on ports meetings own. The tick count is what a media packet
/// checks; the nanosecond clock only serves when the tick setting was never written.
#[inline(always)]
fn idle(binding: &FlowBinding) -> bool {
    if binding.origin != mux::origin::LEARNED {
        return false;
    }
    if let Some(&ticks) = MUX_CONFIG.get(mux::config::LEARNED_IDLE_TICKS)
        && ticks != 0
    {
        return binding.idle_ticks(stun::ticks(), ticks as u32);
    }
    let idle_ns = match MUX_CONFIG.get(mux::config::LEARNED_IDLE) {
        Some(&ns) if ns != 0 => ns,
        _ => mux::LEARNED_IDLE_NS,
    };
    binding.idle(stun::now(), idle_ns)
}

#[inline(always)]
pub fn find(ctx: &XdpContext, packet: &Packet) -> Found {
    let generation = generation::active(packet.active);
    let found = |id| Found::Session(Session { id, generation });
    let entry = port_entry(generation, packet);
    if entry & ports::KEYS == 0 {
        return Found::Nothing;
    }
    let mut flow = FlowKey {
        proto: packet.proto,
        _pad: [0; 3],
        src_port: packet.src_port,
        dst_port: packet.dst_port,
        src: packet.src.octets(),
        dst: packet.dst.octets(),
    };
    // The control plane's binding wins over what a Binding request would learn.
    if entry & ports::POLICY_FLOW != 0 {
        flow._pad[0] = generation::flow_tag(generation);
        // SAFETY: values are plain data copied out at once.
        if let Some(binding) = unsafe { FLOWS.get(&flow) } {
            return found(binding.session);
        }
        flow._pad[0] = 0;
    }
    if entry & ports::MUX != 0 && packet.payload != 0 {
        match stun::server_ufrag(ctx, packet.payload) {
            Request::None => {}
            Request::Ufrag(ufrag) if to_mux_endpoint(generation, entry, packet) => {
                if let Some(session) = stun::learn(&flow, ufrag)
                    && live(generation, session)
                {
                    return found(session);
                }
            }
            Request::Unreadable(event) if to_mux_endpoint(generation, entry, packet) => {
                count::mux(event)
            }
            // A Binding request to a meeting's own endpoint on a port shared elsewhere.
            Request::Ufrag(_) | Request::Unreadable(_) => {}
        }
    }
    if entry & ports::FLOW != 0 {
        // SAFETY: values are plain data copied out at once.
        if let Some(binding) = unsafe { FLOWS.get(&flow) }
            && !idle(binding)
            && live(generation, binding.session)
        {
            return found(binding.session);
        }
    }
    if entry & ports::ENDPOINT_ADDR != 0
        && let Some(session) = endpoint_session(generation, packet)
    {
        return match session {
            MUX_SESSION => Found::Unbound(generation),
            session => found(session),
        };
    }
    // The wildcard endpoint's session is in the entry itself: no lookup.
    match entry & ports::ENDPOINT_ANY != 0 {
        true if ports::wildcard_session(entry) == MUX_SESSION => Found::Unbound(generation),
        true => found(ports::wildcard_session(entry)),
        false => Found::Nothing,
    }
}
