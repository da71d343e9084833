//! `geofence status`: the territory table in force, and the files it was built from.

use jiff::Timestamp;

use crate::{
    change::{generation_name, short_sha},
    human,
    state::State,
};

pub(super) fn print_table(state: &State, now: Timestamp) {
    match &state.geo {
        None => println!(
            "Territory table: none loaded, every source is `unknown` (geofence geo load FILE...)"
        ),
        Some(g) => {
            let files: Vec<String> = g.files.iter().map(|f| f.display().to_string()).collect();
            println!(
                "Territory table {}: {} IPv4 + {} IPv6 prefixes in {} {}, loaded {} ({} ago)",
                generation_name(g.generation),
                human::count(g.prefixes_v4 as u64),
                human::count(g.prefixes_v6 as u64),
                g.territories,
                if g.territories == 1 {
                    "territory"
                } else {
                    "territories"
                },
                g.loaded,
                human::span(now.duration_since(g.loaded))
            );
            if g.sources.is_empty() {
                println!("  from {}", files.join(", "));
                println!(
                    "  (file digests not recorded: loaded by an older version; `geofence geo \
                     load` again to record them)"
                );
            }
            for s in &g.sources {
                println!(
                    "  from {} ({}, {}, sha256 {})",
                    s.file.display(),
                    s.format,
                    human::bytes(s.bytes),
                    short_sha(&s.sha256)
                );
            }
            if let Some(by) = g.locate_by {
                println!("  GeoLite2 networks placed by --locate-by {by}");
            }
        }
    }
}
