//! The geofence controller: geo tables, the meeting and rule model, and the kernel maps
//! they are applied to. The `geofence` binary is a thin CLI over this library.

pub mod audit;
pub mod change;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod durable;
pub mod endpoint;
pub mod expiry;
pub mod explain;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod human;
pub mod kernel;
pub mod lock;
pub mod model;
pub mod policy_file;
pub mod prefix;
pub mod report;
pub mod rule_slots;
pub mod sketch;
pub mod state;
pub mod territory;
pub mod ufrag;
pub mod unparsed;
