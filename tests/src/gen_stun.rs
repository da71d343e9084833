//! The mux path for differential testing: shared ports and server ufrags added to a
//! [`Scenario`], and sequences of frames on them, a STUN message (well formed or broken in
//! the ways the program must read right) followed by packets of the same flow, so that
//! learning, refresh, the newest ufrag winning and media of learned flows are compared
//! frame by frame.

use std::net::{IpAddr, SocketAddr};

use geofence::endpoint::{Endpoint, Proto};
use geofence::geo::GeoTable;

use crate::r#gen::{Case, LOCAL_V4, LOCAL_V6, Rng, Scenario};
use geofence_test_frames::stun::{BINDING_INDICATION, BINDING_SUCCESS, Message, attr};
use geofence_test_frames::{Packet, TPID_8021Q};

/// The port shared on every local address, and the one shared on one address only.
pub const MUX_PORT: u16 = 7882;
pub const MUX_PORT_ON_ADDRESS: u16 = 7883;

/// Tags a STUN sequence's description carries, one per path: the differential asserts
/// that each was generated.
pub const TAGS: [&str; 15] = [
    "[username first]",
    "[username last]",
    "[username absent]",
    "[odd lengths]",
    "[length off]",
    "[cut inside an attribute]",
    "[attribute past the message]",
    "[at the walk's bound]",
    "[past the walk's bound]",
    "[ufrag 65+]",
    "[unknown ufrag]",
    "[not a request]",
    "[stun-looking media]",
    "[non-mux port]",
    "[media of the flow]",
];

/// A ufrag of `len` ICE characters.
fn ufrag(rng: &mut Rng, len: usize) -> String {
    const ICE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len).map(|_| *rng.pick(ICE) as char).collect()
}

impl Scenario {
    /// Shares udp:*:7882 and udp:[100.64.0.2]:7883, and registers server ufrags of 4 to 64
    /// characters to the meetings (one to a session no meeting has).
    pub fn add_mux(&mut self, rng: &mut Rng) {
        self.state.mux = vec![
            Endpoint {
                proto: Proto::Udp,
                addr: None,
                first_port: MUX_PORT,
                last_port: MUX_PORT,
            },
            Endpoint {
                proto: Proto::Udp,
                addr: Some(IpAddr::V4(LOCAL_V4[1])),
                first_port: MUX_PORT_ON_ADDRESS,
                last_port: MUX_PORT_ON_ADDRESS,
            },
        ];
        let sessions: Vec<u32> = self.state.meetings.values().map(|m| m.session).collect();
        self.ufrags.clear();
        for (i, len) in [4, 64, 8, 16, 32, 5].into_iter().enumerate() {
            let session = match i {
                5 => 4095,
                _ => *rng.pick(&sessions),
            };
            self.ufrags.push((ufrag(rng, len), session));
        }
    }

    /// The client's source and the relay's address for a STUN sequence, and its tag when
    /// it goes to a port that is not shared.
    fn stun_target(&self, rng: &mut Rng, table: &GeoTable) -> (SocketAddr, SocketAddr, bool) {
        let v6 = rng.percent(30);
        let src = SocketAddr::new(
            self.source_of(rng, table, v6),
            rng.range(1024, 65535) as u16,
        );
        let local = match v6 {
            true => IpAddr::V6(*rng.pick(&LOCAL_V6)),
            false => IpAddr::V4(*rng.pick(&LOCAL_V4)),
        };
        let (dst, shared) = match rng.below(10) {
            0..=5 => (SocketAddr::new(local, MUX_PORT), true),
            // On its address, shared; on the others nothing (a port with the mux bit but
            // no mux endpoint there).
            6 | 7 => {
                let addr = if rng.percent(70) {
                    IpAddr::V4(LOCAL_V4[1])
                } else {
                    local
                };
                let shared = addr == IpAddr::V4(LOCAL_V4[1]);
                (SocketAddr::new(addr, MUX_PORT_ON_ADDRESS), shared)
            }
            _ => match self.endpoints.first() {
                Some(e) if e.proto == Proto::Udp => {
                    let addr = e.addr.unwrap_or(local);
                    (SocketAddr::new(addr, e.first_port), false)
                }
                _ => (SocketAddr::new(local, 40000), false),
            },
        };
        // Families must match: an IPv4 endpoint address with an IPv6 source is remapped.
        let src = match (src.ip(), dst.ip()) {
            (IpAddr::V6(_), IpAddr::V4(_)) => {
                SocketAddr::new(self.source_of(rng, table, false), src.port())
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => {
                SocketAddr::new(self.source_of(rng, table, true), src.port())
            }
            _ => src,
        };
        (src, dst, shared)
    }

    /// A server ufrag for a request: registered (mostly), unknown, or too long.
    fn server_ufrag(&self, rng: &mut Rng) -> (String, Option<&'static str>) {
        match rng.below(10) {
            0 => (ufrag(rng, 6), Some("[unknown ufrag]")),
            1 => {
                let len = 65 + rng.below(40);
                (ufrag(rng, len), Some("[ufrag 65+]"))
            }
            _ if !self.ufrags.is_empty() => (rng.pick(&self.ufrags).0.clone(), None),
            _ => (ufrag(rng, 6), Some("[unknown ufrag]")),
        }
    }

    /// One STUN message of a random shape, its bytes and the tags it earns.
    fn stun_message(&self, rng: &mut Rng, username: &str) -> (Vec<u8>, Vec<&'static str>) {
        let name = (attr::USERNAME, username.as_bytes().to_vec());
        let filler = (attr::PRIORITY, vec![0x6e, 0, 0x1e, 0xff]);
        let mut tags = Vec::new();
        let message = match rng.below(12) {
            0..=2 => {
                tags.push("[username first]");
                Message::binding_request(username)
            }
            3 => {
                tags.push("[username last]");
                let mut m = Message::request_with(Vec::new()).with_usual_attributes();
                m.attributes.push(name);
                m
            }
            4 => {
                tags.push("[username absent]");
                Message::request_with(Vec::new()).with_usual_attributes()
            }
            5 => {
                tags.push("[odd lengths]");
                let odd = (attr::GOOG_NETWORK_INFO, vec![1; 1 + 2 * rng.below(4)]);
                Message::request_with(vec![odd, (0x8023, vec![2; 3]), name])
            }
            6 => {
                tags.push("[at the walk's bound]");
                let mut attributes = vec![filler; filter_common::mux::stun::MAX_ATTRIBUTES - 1];
                attributes.push(name);
                Message::request_with(attributes)
            }
            7 => {
                tags.push("[past the walk's bound]");
                let mut attributes = vec![filler; filter_common::mux::stun::MAX_ATTRIBUTES];
                attributes.push(name);
                Message::request_with(attributes)
            }
            8 => {
                tags.push("[not a request]");
                let kind = *rng.pick(&[BINDING_SUCCESS, BINDING_INDICATION]);
                Message::binding_request(username).kind(kind)
            }
            _ => Message::binding_request(username),
        };
        let mut bytes = message.bytes();
        match rng.below(14) {
            0 => {
                tags.push("[length off]");
                let length = u16::from_be_bytes([bytes[2], bytes[3]]);
                let off = *rng.pick(&[1u16, 2, 3, 4, 0xfffc]);
                bytes[2..4].copy_from_slice(&length.wrapping_add(off).to_be_bytes());
            }
            1 if bytes.len() > 24 => {
                tags.push("[cut inside an attribute]");
                let len = rng.range(21, bytes.len() - 1);
                bytes.truncate(len);
            }
            2 if bytes.len() >= 24 => {
                tags.push("[attribute past the message]");
                let len = u16::from_be_bytes([bytes[22], bytes[23]]);
                bytes[22..24].copy_from_slice(&len.wrapping_add(64).to_be_bytes());
            }
            3 => {
                tags.push("[stun-looking media]");
                bytes[0] = *rng.pick(&[20u8, 22, 23, 63, 0x80, 0x90, 0xbf]);
            }
            _ => {}
        }
        (bytes, tags)
    }

    /// A STUN message to a shared port (or another), then packets of the same flow:
    /// media, and sometimes a second request (a refresh, or another ufrag).
    pub fn stun_sequence(&self, rng: &mut Rng, table: &GeoTable) -> Vec<Case> {
        let (src, dst, shared) = self.stun_target(rng, table);
        let mut cases = Vec::new();
        let mut push = |rng: &mut Rng, payload: &[u8], what: String| {
            let mut p = Packet::udp(src, dst).payload(payload);
            if rng.percent(10) {
                p = p.vlan(TPID_8021Q, 7);
            }
            cases.push(Case {
                frame: p.build(),
                what,
            });
        };
        let port_tag = if shared { "" } else { " [non-mux port]" };
        for round in 0..1 + rng.below(2) {
            let (server, ufrag_tag) = match round {
                1 if rng.percent(50) => self.server_ufrag(rng),
                _ => self.server_ufrag(rng),
            };
            let client_len = 4 + rng.below(8);
            let username = format!("{server}:{}", ufrag(rng, client_len));
            let (bytes, mut tags) = self.stun_message(rng, &username);
            tags.extend(ufrag_tag);
            let what = format!("STUN {}{port_tag} {username}", tags.join(" "));
            push(rng, &bytes, what);
            for _ in 0..1 + rng.below(3) {
                let media: Vec<u8> = match rng.below(3) {
                    0 => vec![0x80, 0x60, 0, 1, 0, 0, 0, 2, 0xaa, 0xbb, 0xcc, 0xdd],
                    1 => vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4],
                    _ => vec![0x81, 0xc8, 0, 6, 0, 0, 0, 1],
                };
                push(rng, &media, format!("[media of the flow]{port_tag}"));
            }
        }
        cases
    }
}
