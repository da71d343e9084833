//! Fuzz target `geo_geolite2`: the body is `geofence::fuzzing::geo_geolite2`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::geo_geolite2(data);
});
