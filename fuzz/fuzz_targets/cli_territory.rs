//! Fuzz target `cli_territory`: the body is `geofence::fuzzing::cli_territory`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::cli_territory(data);
});
