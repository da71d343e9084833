//! Which meeting a packet belongs to: an exact flow binding first, then the local
//! endpoint, then the endpoint on any local address.

use filter_common::{EndpointKey, FlowKey, maps::ADDRESS_ANY};

use crate::{
    maps::{ENDPOINTS, FLOWS},
    parse::Packet,
};

#[inline(always)]
pub fn find(packet: &Packet) -> Option<u32> {
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
