//! Helpers for the integration tests: network namespaces, a bridged relay/participant
//! topology ([`Scene`]), UDP media and TCP signaling traffic ([`Media`]), and a driver for
//! the `geofence` CLI working on its own pin directory ([`Geofence`]).
//!
//! Everything these helpers create (namespaces, veths, pins, temp dirs) is removed by Drop
//! guards, also when a test panics. Names embed the process id and a counter, so tests can
//! run in parallel.

pub mod cli;
pub mod demo_fleet;
pub mod demo_mux;
pub mod etcd;
pub mod fleet;
pub mod r#gen;
pub mod gen_stun;
pub mod netns;
pub mod pinned;
pub mod scene;
pub mod shape;
pub mod sys;
pub mod traffic;
pub mod wire;
pub mod world;

pub use cli::{Counters, Geofence, Stats};
pub use netns::NetNs;
pub use scene::{Participant, ParticipantSpec, Scene};
pub use sys::{require_root, unique_tag};
pub use traffic::{Delta, Media, MeetingPorts};
pub use world::{Expect, Report, World};
