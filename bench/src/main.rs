//! `cargo xtask bench`: per-packet costs, the flood, load times and map memory, in one run, side by side.

mod api;
mod fleet;
mod flood;
mod formats;
mod mux;
mod packets;
mod per_packet;
mod report;
mod table;

use std::path::PathBuf;

use clap::Parser;

/// Measure geofence against its references in one run.
#[derive(Parser, Debug)]
pub struct Options {
    /// Small tables and few repeats: checks the bench works, measures nothing worth
    /// reading (CI runs this).
    #[arg(long)]
    pub smoke: bool,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/bench/report.json")]
    pub out: PathBuf,
    /// The real geo data (ip-location-db CSVs); without it, a synthetic table is used.
    #[arg(long, default_value = "../shared/geo")]
    pub geo: PathBuf,
    /// Run only this part: `per-packet` (BPF_PROG_TEST_RUN figures), `flood` (veth flood,
    /// load time, memory), `mux` (meetings on a shared port), `api` (the binding API's
    /// throughput and latency), `fleet` (relays reaching a new fleet version) or `formats`
    /// (`geo load` of the table as GeoLite2 CSV and RIR statistics).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

/// A part of the bench.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    PerPacket,
    Flood,
    Mux,
    Api,
    Fleet,
    Formats,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let mut report = report::Report {
        mode: if options.smoke { "smoke" } else { "full" }.to_string(),
        ..Default::default()
    };
    let part = |p: Part| options.only.is_none_or(|only| only == p);
    if part(Part::PerPacket) {
        per_packet::run(&options, &mut report)?;
    }
    if part(Part::Flood) {
        flood::run(&options, &mut report)?;
    }
    if part(Part::Mux) {
        mux::run(&options, &mut report)?;
    }
    if part(Part::Api) {
        api::run(&options, &mut report)?;
    }
    if part(Part::Fleet) {
        fleet::run(&options, &mut report)?;
    }
    if part(Part::Formats) {
        formats::run(&options, &mut report)?;
    }
    report.print_notes();
    report.write(&options.out)?;
    println!("report written to {}", options.out.display());
    Ok(())
}
