//! Which meeting a packet belongs to: an exact flow binding first, then the local
//! endpoint, then the endpoint on any local address. One read of the port table says
//! which of these keys exist on the packet's port, so a port no meeting uses costs no
//! hash lookup, and a used port only the lookups that can hit.

use filter_common::{
    EndpointKey, FlowKey,
    maps::{ADDRESS_ANY, ports},
};

use crate::{
    maps::{ENDPOINTS, FLOWS, PORTS},
    parse::Packet,
};

/// The `ports::FLOW | ENDPOINT_ADDR | ENDPOINT_ANY` bits of the packet's port.
#[inline(always)]
fn keys_on_port(packet: &Packet) -> u64 {
    let Some((word, shift)) = ports::slot(packet.proto, packet.dst_port) else {
        return 0;
    };
    PORTS.get(word).map_or(0, |w| (w >> shift) & ports::MASK)
}

#[inline(always)]
pub fn find(packet: &Packet) -> Option<u32> {
    let keys = keys_on_port(packet);
    if keys == 0 {
        return None;
    }
    if keys & ports::FLOW != 0 {
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
    }
    let mut endpoint = EndpointKey {
        proto: packet.proto,
        _pad: 0,
        port: packet.dst_port,
        addr: packet.dst,
    };
    if keys & ports::ENDPOINT_ADDR != 0
        && let Some(session) = unsafe { ENDPOINTS.get(&endpoint) }
    {
        return Some(*session);
    }
    if keys & ports::ENDPOINT_ANY == 0 {
        return None;
    }
    endpoint.addr = ADDRESS_ANY;
    unsafe { ENDPOINTS.get(&endpoint) }.copied()
}
