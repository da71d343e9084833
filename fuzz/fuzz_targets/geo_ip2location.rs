//! Fuzz target `geo_ip2location`: the body is `geofence::fuzzing::geo_ip2location`, which the corpus test replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    geofence::fuzzing::geo_ip2location(data);
});
