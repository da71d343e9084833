//! Fuzz target `cli_socket`: the body is `geofence::fuzzing::cli_socket`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::cli_socket(data);
});
