//! Types shared by the geofence XDP program and its userspace controller.
//!
//! Everything here is `#[repr(C)]` with explicit padding so that the kernel and userspace
//! agree byte for byte on map keys and values. `aya::Pod` is implemented behind the `user`
//! feature, which the eBPF crate never enables.
#![no_std]

pub mod accounting;
pub mod bench_samples;
pub mod counters;
pub mod generation;
pub mod geo;
pub mod maps;
pub mod monitor;
pub mod mux;
pub mod policy;
pub mod probe;
pub mod territory;
pub mod unparsed;

pub use counters::{CachedStats, PassReason, SessionStats, StatsKey, Verdict};
pub use maps::{Address, EndpointKey, FlowKey, OverrideKey, TerritoryKeyV4, TerritoryKeyV6};
pub use policy::{Override, OverrideAction, Policy, Rule};
pub use territory::{TERRITORY_UNKNOWN, TerritoryId};

/// IP protocol numbers the filter classifies.
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}
