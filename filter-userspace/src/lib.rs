//! The geofence controller: geo tables, the meeting and rule model, and the kernel maps
//! they are applied to. The `geofence` binary is a thin CLI over this library.

pub mod cli;
pub mod endpoint;
pub mod expiry;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod kernel;
pub mod lock;
pub mod model;
pub mod prefix;
pub mod state;
pub mod territory;
