//! Fuzz target `cli_endpoint`: the body is `geofence::fuzzing::cli_endpoint`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::cli_endpoint(data);
});
