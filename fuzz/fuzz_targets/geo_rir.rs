//! Fuzz target `geo_rir`: the body is `geofence::fuzzing::geo_rir`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::geo_rir(data);
});
