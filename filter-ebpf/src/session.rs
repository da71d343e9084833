//! Which meeting a packet belongs to: an exact flow binding first, then the local
//! endpoint, then the endpoint on any local address. A port no meeting uses is known
//! from one bitmap read, so most traffic of a busy relay skips the hash lookups.

use filter_common::{
    EndpointKey, FlowKey,
    maps::{ADDRESS_ANY, ports},
};

use crate::{
    maps::{ENDPOINTS, FLOWS, PORTS},
    parse::Packet,
};

#[inline(always)]
fn port_in_use(packet: &Packet) -> bool {
    let Some((word, bit)) = ports::bit(packet.proto, packet.dst_port) else {
        return false;
    };
    PORTS.get(word).is_some_and(|w| w & bit != 0)
}

#[inline(always)]
pub fn find(packet: &Packet) -> Option<u32> {
    if !port_in_use(packet) {
        return None;
    }
    let flow = FlowKey {
        proto: packet.proto,
        _pad: [0; 3],
        src_port: packet.src_port,
        dst_port: packet.dst_port,
        src: packet.src,
        dst: packet.dst,
    };
    // SAFETY: values are plain u32 copied out at once.
    if let Some(session) = unsafe { FLOWS.get(&flow) } {
        return Some(*session);
    }
    let mut endpoint = EndpointKey {
        proto: packet.proto,
        _pad: 0,
        port: packet.dst_port,
        addr: packet.dst,
    };
    if let Some(session) = unsafe { ENDPOINTS.get(&endpoint) } {
        return Some(*session);
    }
    endpoint.addr = ADDRESS_ANY;
    unsafe { ENDPOINTS.get(&endpoint) }.copied()
}
