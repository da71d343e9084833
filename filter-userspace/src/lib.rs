//! The geofence controller library.

pub mod geo;
