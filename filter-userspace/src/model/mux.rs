//! The mux path of the model (design, "the mux path"): on a port meetings share, a STUN
//! Binding request's server ufrag names the meeting, and the client's flow is bound to it
//! before the request is decided; later packets of the flow find the meeting by it.
//!
//! What the program keeps at run time, the ufrag registrations and the flows it learned or
//! the API bound, is [`MuxState`]: the only part of the model a packet changes, so a
//! sequence of frames (a Binding request, then media) is modelled by passing one
//! `MuxState` from frame to frame.

use std::collections::HashMap;

use filter_common::{
    EndpointKey, FlowKey,
    maps::ADDRESS_ANY,
    mux::{
        FlowBinding, LEARNED_IDLE_NS, MUX_SESSION, MuxEvent, UFRAG_MAX, UfragBinding, UfragKey,
        origin, stun,
    },
};

use super::{Headers, SessionKey, SessionLookup};

/// The highest frame offset a STUN message may reach: it fits one Ethernet frame.
pub const MAX_OFFSET: usize = 2048;

/// What the program holds at run time on the mux path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MuxState {
    /// Server ufrag → its meeting (`geofence ufrag add`).
    pub ufrags: HashMap<UfragKey, UfragBinding>,
    /// Flows learned from Binding requests or bound by the API (policy flows are in the
    /// session maps).
    pub flows: HashMap<FlowKey, FlowBinding>,
    /// How long a learned binding applies without a Binding request; 0: the default.
    pub learned_idle_ns: u64,
}

/// What the payload of a datagram to a mux port says as STUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Not a Binding request: not STUN (media, DTLS), or another STUN message.
    None,
    /// A Binding request naming this server ufrag.
    Ufrag(UfragKey),
    /// A Binding request that names no ufrag the program can read, and why.
    Unreadable(MuxEvent),
}

/// What a Binding request with a readable ufrag did to its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learning {
    /// The ufrag is registered to no meeting.
    UnknownUfrag,
    /// The control plane had bound the flow: its binding stays.
    AlreadyBound(u32),
    /// The flow's binding from this ufrag was refreshed.
    Refreshed(u32),
    /// The flow is bound to the ufrag's meeting now.
    Learned(u32),
}

impl Learning {
    pub fn session(self) -> Option<u32> {
        match self {
            Learning::UnknownUfrag => None,
            Learning::AlreadyBound(s) | Learning::Refreshed(s) | Learning::Learned(s) => Some(s),
        }
    }

    /// The `MUX_EVENTS` counter it moves.
    pub fn event(self) -> Option<MuxEvent> {
        match self {
            Learning::UnknownUfrag => Some(MuxEvent::UnknownUfrag),
            Learning::AlreadyBound(_) => None,
            Learning::Refreshed(_) => Some(MuxEvent::Refreshed),
            Learning::Learned(_) => Some(MuxEvent::Learned),
        }
    }
}

/// The STUN step of one packet on a mux port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StunStep {
    pub request: Request,
    /// Whether the packet went to a mux endpoint (the port may be shared on one address
    /// and a meeting's own on another): only there does a request bind.
    pub to_mux_endpoint: bool,
    /// For a readable request to a mux endpoint: what it did.
    pub learning: Option<Learning>,
}

impl StunStep {
    /// The `MUX_EVENTS` counter the request moved, if any.
    pub fn event(&self) -> Option<MuxEvent> {
        if !self.to_mux_endpoint {
            return None;
        }
        match self.request {
            Request::None => None,
            Request::Ufrag(_) => self.learning.and_then(Learning::event),
            Request::Unreadable(event) => Some(event),
        }
    }
}

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

fn word(frame: &[u8], at: usize) -> Option<[u8; 4]> {
    frame.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// The server ufrag of the Binding request at `payload` (a frame offset), if it is one:
/// the first byte 0–3 (RFC 7983), the magic cookie, type 0x0001, a length that is a
/// multiple of 4 and fits the frame; then at most `stun::MAX_ATTRIBUTES` attributes,
/// each padded to 4 bytes, walked in order for USERNAME.
pub fn server_ufrag(frame: &[u8], payload: usize) -> Request {
    let Some(header) = frame.get(payload..payload + stun::HEADER_LEN) else {
        return Request::None;
    };
    if header[0] > 3 || header[4..8] != stun::MAGIC_COOKIE {
        return Request::None;
    }
    if be16([header[0], header[1]]) != stun::BINDING_REQUEST {
        return Request::None;
    }
    let length = usize::from(be16([header[2], header[3]]));
    let end = payload + stun::HEADER_LEN + length;
    if length % 4 != 0 || end > MAX_OFFSET || end > frame.len() {
        return Request::Unreadable(MuxEvent::StunMalformed);
    }
    let mut at = payload + stun::HEADER_LEN;
    for _ in 0..stun::MAX_ATTRIBUTES {
        if at >= end {
            return Request::Unreadable(MuxEvent::NoUsername);
        }
        let Some(attribute) = word(frame, at) else {
            return Request::Unreadable(MuxEvent::StunMalformed);
        };
        let kind = be16([attribute[0], attribute[1]]);
        let len = usize::from(be16([attribute[2], attribute[3]]));
        let value = at + 4;
        if value + len > end {
            return Request::Unreadable(MuxEvent::StunMalformed);
        }
        if kind == stun::USERNAME {
            return ufrag_of(frame, value, len);
        }
        at = value + len.next_multiple_of(4);
    }
    Request::Unreadable(MuxEvent::NoUsername)
}

/// USERNAME's text up to its first `:`, read four bytes at a time as the program does.
fn ufrag_of(frame: &[u8], value: usize, len: usize) -> Request {
    let mut key = UfragKey::EMPTY;
    for w in 0..UFRAG_MAX / 4 + 1 {
        let at = value + 4 * w;
        if at >= MAX_OFFSET {
            return Request::Unreadable(MuxEvent::StunMalformed);
        }
        let Some(bytes) = word(frame, at) else {
            return Request::Unreadable(MuxEvent::StunMalformed);
        };
        for (j, &byte) in bytes.iter().enumerate() {
            let i = 4 * w + j;
            if i >= len {
                // No `:`: an ICE USERNAME is never one word.
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

impl MuxState {
    /// The idle time in force.
    pub fn idle_ns(&self) -> u64 {
        match self.learned_idle_ns {
            0 => LEARNED_IDLE_NS,
            ns => ns,
        }
    }

    /// Binds `flow` to the meeting `ufrag` is registered to, or refreshes its binding; a
    /// flow the control plane bound keeps its meeting. Learning comes before the
    /// decision, whatever the decision.
    pub fn learn(&mut self, flow: &FlowKey, ufrag: &UfragKey, now_ns: u64) -> Learning {
        let Some(registered) = self.ufrags.get(ufrag).copied() else {
            return Learning::UnknownUfrag;
        };
        if let Some(bound) = self.flows.get_mut(flow) {
            if bound.origin != origin::LEARNED {
                return Learning::AlreadyBound(bound.session);
            }
            if bound.session == registered.session && bound.ufrag_id == registered.id {
                bound.refreshed_ns = now_ns;
                return Learning::Refreshed(registered.session);
            }
        }
        let mut binding = FlowBinding::bound(registered.session, origin::LEARNED);
        binding.ufrag_id = registered.id;
        binding.refreshed_ns = now_ns;
        self.flows.insert(*flow, binding);
        Learning::Learned(registered.session)
    }

    /// The flow's binding, learned or from the API, unless it has gone idle.
    pub fn binding(&self, flow: &FlowKey, now_ns: u64) -> Option<FlowBinding> {
        let binding = *self.flows.get(flow)?;
        (!binding.idle(now_ns, self.idle_ns())).then_some(binding)
    }
}

impl super::ModelMaps {
    /// Step 3 on the program's order, with the mux path: a policy flow; on a mux port, a
    /// Binding request's ufrag (learning into `mux` first); a flow learned or bound by the
    /// API; then the endpoints. Returns the lookup and the STUN step, if the packet had
    /// one.
    pub fn session_lookup_mux(
        &self,
        frame: &[u8],
        h: &Headers,
        mux: &mut MuxState,
        now_ns: u64,
    ) -> (SessionLookup, Option<StunStep>) {
        let endpoints = &self.sessions.endpoints;
        let on_port = |k: &EndpointKey| (k.proto, k.port) == (h.proto, h.dst_port);
        let mux_port = endpoints
            .iter()
            .any(|(k, &session)| on_port(k) && session == MUX_SESSION);
        let policy_flows =
            (self.sessions.flows.keys()).any(|k| (k.proto, k.dst_port) == (h.proto, h.dst_port));
        if !policy_flows && !endpoints.keys().any(on_port) {
            return (SessionLookup::PortUnused, None);
        }
        let flow = FlowKey {
            proto: h.proto,
            _pad: [0; 3],
            src_port: h.src_port,
            dst_port: h.dst_port,
            src: h.src,
            dst: h.dst,
        };
        if let Some(&session) = self.sessions.flows.get(&flow) {
            let found = SessionLookup::Found {
                session,
                key: SessionKey::Flow,
            };
            return (found, None);
        }
        let live = |session: u32| self.sessions.live.contains(&session);
        let mut step = None;
        if mux_port && h.payload != 0 {
            let endpoint = |addr| EndpointKey {
                proto: h.proto,
                _pad: 0,
                port: h.dst_port,
                addr,
            };
            let to_mux_endpoint = [ADDRESS_ANY, h.dst]
                .iter()
                .any(|&a| endpoints.get(&endpoint(a)) == Some(&MUX_SESSION));
            let request = server_ufrag(frame, h.payload);
            let learning = match request {
                Request::Ufrag(ufrag) if to_mux_endpoint => Some(mux.learn(&flow, &ufrag, now_ns)),
                _ => None,
            };
            step = Some(StunStep {
                request,
                to_mux_endpoint,
                learning,
            });
            if let Some(learning) = learning
                && let Some(session) = learning.session().filter(|&s| live(s))
            {
                let key = match learning {
                    Learning::AlreadyBound(_) => SessionKey::ApiFlow,
                    _ => SessionKey::LearnedFlow,
                };
                return (SessionLookup::Found { session, key }, step);
            }
        }
        if (mux_port || policy_flows)
            && let Some(binding) = mux.binding(&flow, now_ns).filter(|b| live(b.session))
        {
            let key = match binding.origin {
                origin::LEARNED => SessionKey::LearnedFlow,
                _ => SessionKey::ApiFlow,
            };
            let found = SessionLookup::Found {
                session: binding.session,
                key,
            };
            return (found, step);
        }
        let lookup = match self.session_lookup(h) {
            // Flows were looked up above.
            SessionLookup::PortUnused => SessionLookup::NoMatch,
            other => other,
        };
        (lookup, step)
    }
}
