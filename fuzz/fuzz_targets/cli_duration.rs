//! Fuzz target `cli_duration`: the body is `geofence::fuzzing::cli_duration`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::cli_duration(data);
});
