//! Which meeting a packet belongs to: an exact flow binding first, then the local
//! endpoint, then the endpoint on any local address. One read of the port table says
//! which of these keys exist on the packet's port and holds the wildcard endpoint's
//! session, so a port no meeting uses costs no hash lookup, a wildcard endpoint none
//! either, and the other keys only the lookups that can hit.

use filter_common::{EndpointKey, FlowKey, maps::ports};

use crate::{
    maps::{ENDPOINTS, FLOWS, PORTS},
    parse::Packet,
};

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

#[inline(always)]
pub fn find(packet: &Packet) -> Option<u32> {
    let entry = port_entry(packet);
    if entry & ports::KEYS == 0 {
        return None;
    }
    if entry & ports::FLOW != 0 {
        let flow = FlowKey {
            proto: packet.proto,
            _pad: [0; 3],
            src_port: packet.src_port,
            dst_port: packet.dst_port,
            src: packet.src.octets(),
            dst: packet.dst.octets(),
        };
        // SAFETY: values are plain u32 copied out at once.
        if let Some(session) = unsafe { FLOWS.get(&flow) } {
            return Some(*session);
        }
    }
    if entry & ports::ENDPOINT_ADDR != 0 {
        let endpoint = EndpointKey {
            proto: packet.proto,
            _pad: 0,
            port: packet.dst_port,
            addr: packet.dst.octets(),
        };
        // SAFETY: as above.
        if let Some(session) = unsafe { ENDPOINTS.get(&endpoint) } {
            return Some(*session);
        }
    }
    // The wildcard endpoint's session is in the entry itself: no lookup.
    (entry & ports::ENDPOINT_ANY != 0).then(|| ports::wildcard_session(entry))
}
