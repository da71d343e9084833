//! Fuzz target `geo_csv`: the body is `geofence::fuzzing::geo_csv`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::geo_csv(data);
});
