//! Fuzz target `cli_prefix`: the body is `geofence::fuzzing::cli_prefix`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::cli_prefix(data);
});
