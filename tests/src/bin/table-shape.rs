//! Measures a territory table's [`Shape`](geofence_tests::shape::Shape) from its files and
//! prints it as JSON: `table-shape NAME FILE...`.

use std::path::PathBuf;

use anyhow::Context as _;
use geofence::geo::{Format, load_files};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().context("usage: table-shape NAME FILE...")?;
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let table = load_files(&files, Format::Auto, None)?;
    let shape = geofence_tests::shape::measure(&name, &table)?;
    println!("{}", serde_json::to_string(&shape)?);
    Ok(())
}
