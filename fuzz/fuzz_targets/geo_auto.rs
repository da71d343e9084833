//! Fuzz target `geo_auto`: the body is `geofence::fuzzing::geo_auto`, which the corpus test replays.
//! It reaches the MMDB loader, whose caught decoder panics are not crashes (see src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: geofence_fuzz::let_caught_panics_unwind(),
    |data: &[u8]| geofence_fuzz::run(|| geofence::fuzzing::geo_auto(data))
);
