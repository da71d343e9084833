//! Fuzz target `geo_cidr`: the body is `geofence::fuzzing::geo_cidr`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::geo_cidr(data);
});
