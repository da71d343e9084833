//! Fuzz target `cli_expiry`: the body is `geofence::fuzzing::cli_expiry`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::cli_expiry(data);
});
