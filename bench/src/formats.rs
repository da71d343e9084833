//! `geo load` of one table in the publishers' layouts. The real table (or the synthetic one
//! when it is absent) is written as GeoLite2 Country CSV and as five RIRs' delegated
//! statistics (`layouts`); each is loaded as `geo load` does it (read and parse, fill the
//! idle generation, switch) beside the ip-location-db CSVs, alternating over rounds, and
//! the same prefixes go through `nft -f` once.

mod layouts;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, bail};
use geofence::{
    geo::{self, Format, GeoTable},
    kernel::{self, Kernel},
};

use crate::{
    Options,
    flood::{netfilter, ns::NetNs},
    per_packet::PinDir,
    report::{Figure, Report, median},
    table::{self, REAL_FILES, Rng},
};

/// Prefixes per family of the synthetic table's subset, when the real table is absent.
const SYNTHETIC: usize = 4096;

/// A directory of this run's files, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Layout {
    name: &'static str,
    files: Vec<PathBuf>,
    /// Seconds per load: parsing, and everything.
    parse: Vec<f64>,
    total: Vec<f64>,
}

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let mut rng = Rng::new(0x6765_6f66_6d74);
    let mut source = table::load(&options.geo, &mut rng)?;
    if let Some(why) = &source.synthetic {
        // Random prefixes of the real table's size do not fit the kernel's table; a small
        // subset still checks that every layout loads the same.
        source.table = table::subset(&source.table, SYNTHETIC, &mut rng);
        report.note(format!(
            "formats: {why}; the layouts hold a random {SYNTHETIC}-prefix subset of it per \
             family, so their load times say nothing about the real table"
        ));
    }
    let scratch = Scratch(std::env::temp_dir().join(format!("gfb-formats-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("creating {}", scratch.0.display()))?;
    let (v4, v6) = layouts::pieces(&source.table);
    let csv = match source.synthetic {
        None => REAL_FILES.iter().map(|f| options.geo.join(f)).collect(),
        Some(_) => layouts::write_csv(&scratch.0, &v4, &v6)?,
    };
    let mut layouts = [
        ("ip-location-db CSV", csv),
        (
            "GeoLite2 CSV",
            layouts::write_geolite2(&scratch.0, &v4, &v6)?,
        ),
        ("RIR statistics", layouts::write_rir(&scratch.0, &v4, &v6)?),
    ]
    .map(|(name, files)| Layout {
        name,
        files,
        parse: Vec::new(),
        total: Vec::new(),
    });
    // A figure of another table would mislead: every layout must give the CSVs' table.
    let reference = geo::load_files(&layouts[0].files, Format::Auto, None)?;
    for layout in &layouts[1..] {
        let t = geo::load_files(&layout.files, Format::Auto, None)
            .with_context(|| format!("loading the {} layout", layout.name))?;
        if (&t.v4, &t.v6) != (&reference.v4, &reference.v6) {
            bail!(
                "the {} layout gives another table than the CSVs",
                layout.name
            );
        }
    }
    println!(
        "formats: {} IPv4 + {} IPv6 disjoint ranges written as {}",
        v4.len(),
        v6.len(),
        layouts
            .iter()
            .map(|l| format!("{} ({} files)", l.name, l.files.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/gfb-formats-{}",
        std::process::id()
    )));
    // Untimed: the first load creates and pins the maps, which no later load pays.
    kernel::load_table(&mut Kernel::open(&pins.0)?, &reference)?;
    let rounds = if options.smoke { 1 } else { 7 };
    for round in 0..rounds {
        for layout in &mut layouts {
            let start = Instant::now();
            let table = geo::load_files(&layout.files, Format::Auto, None)?;
            let parse = start.elapsed().as_secs_f64();
            kernel::load_table(&mut Kernel::open(&pins.0)?, &table)?;
            let total = start.elapsed().as_secs_f64();
            println!(
                "formats: round {round}, {}: parse {parse:.3} s, total {total:.3} s",
                layout.name
            );
            layout.parse.push(parse);
            layout.total.push(total);
        }
    }
    let nft = if netfilter::available("nft") && !options.smoke {
        let ns = NetNs::new(&format!("gfb-fmt-{}", std::process::id()))?;
        Some(netfilter::nft_load(&ns, &reference)?.as_secs_f64())
    } else {
        None
    };
    figures(report, &layouts, &reference, nft);
    Ok(())
}

fn figures(report: &mut Report, layouts: &[Layout], table: &GeoTable, nft: Option<f64>) {
    let csv = median(layouts[0].total.clone());
    for layout in &layouts[1..] {
        let total = median(layout.total.clone());
        let note = format!(
            "{} IPv4 + {} IPv6 prefixes from {} files; parse {:.3} s of it; the CSVs of the \
             same table {csv:.3} s (medians of {} alternating loads; fill and switch without \
             an attached program)",
            table.v4.len(),
            table.v6.len(),
            layout.files.len(),
            median(layout.parse.clone()),
            layout.total.len()
        );
        let name = format!("table load + atomic switch, {} (wall)", layout.name);
        if let Some(nft) = nft {
            report.push(
                Figure::new(&name, total, "s")
                    .against("nft -f, same prefixes in two interval sets", nft)
                    .goal_ratio_at_most(0.1)
                    .note(note.clone()),
            );
        }
        report.push(
            Figure::new(&name, total, "s")
                .goal_value_at_most(1.0)
                .note(note),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real table written in every layout reads back to the same table: parsing only,
    /// as the timed run checks before it times anything.
    #[test]
    fn the_real_table_reads_the_same_in_every_layout() {
        let geo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/geo");
        let files: Vec<PathBuf> = REAL_FILES.iter().map(|f| geo.join(f)).collect();
        if !files.iter().all(|f| f.is_file()) {
            eprintln!("skipping: the real table is not in {}", geo.display());
            return;
        }
        let csv = geo::load_files(&files, Format::Auto, None).expect("the real CSVs");
        let scratch =
            Scratch(std::env::temp_dir().join(format!("gfb-formats-test-{}", std::process::id())));
        std::fs::create_dir_all(&scratch.0).expect("a scratch directory");
        let (v4, v6) = layouts::pieces(&csv);
        let written = [
            layouts::write_geolite2(&scratch.0, &v4, &v6).expect("GeoLite2 files"),
            layouts::write_rir(&scratch.0, &v4, &v6).expect("RIR files"),
        ];
        for (files, format) in written.iter().zip([Format::Geolite2, Format::Rir]) {
            let t = geo::load_files(files, Format::Auto, None).expect("the layout");
            assert!(t.sources.iter().all(|s| s.format == format));
            assert!(
                (&t.v4, &t.v6) == (&csv.v4, &csv.v6),
                "{format} gives another table"
            );
        }
    }
}
