//! The sources the bench programs draw from: sample sets in the bench object's
//! `SAMPLES_V4` and `SAMPLES_V6` maps, and which one the next run draws from.

use anyhow::{Context as _, ensure};
use aya::{Ebpf, maps::Array};
use filter_common::Address;
use geofence::{geo::GeoTable, territory::Territory};

use super::STAGE_TERRITORY;
use crate::table::{self, Rng};

/// Samples per set and sets, as `bench.rs` declares them.
pub const SET_LEN: usize = 1 << 16;
/// IPv4 samples per element of `SAMPLES_V4`.
const V4_PER_LINE: usize = 16;
pub const SET_V4_FULL: Set = Set::V4(0);
pub const SET_V6_FULL: Set = Set::V6(0);
pub const SET_V4_SMALL: Set = Set::V4(1);
pub const SET_V6_SMALL: Set = Set::V6(1);
/// Sources in the territory the stage split is measured with, drawn as the flood draws.
pub const SET_V4_BLOCKED: Set = Set::V4(2);

/// A sample set: its family's map (`SAMPLES_V4`, `SAMPLES_V6`) and its index there.
#[derive(Clone, Copy, Debug)]
pub enum Set {
    V4(u32),
    V6(u32),
}

/// Sources of [`STAGE_TERRITORY`], weighted by address count as the flood draws them, or
/// the whole table's when the (synthetic or smoke) table has none.
pub fn blocked_samples(table: &GeoTable, rng: &mut Rng) -> anyhow::Result<Vec<Address>> {
    let territory = Territory::parse(STAGE_TERRITORY).map_err(anyhow::Error::msg)?;
    let ranges = crate::flood::blocked::ranges_v4(table, territory.id());
    if ranges.is_empty() {
        return Ok(table::samples_v4(table, SET_LEN, rng));
    }
    let mut draw = crate::flood::blocked::Rng::new(rng.next());
    Ok(crate::flood::blocked::sources(&ranges, SET_LEN, &mut draw)
        .into_iter()
        .map(|a| filter_common::maps::v4_mapped(a.to_be_bytes()))
        .collect())
}

pub fn fill_samples(bench: &mut Ebpf, set: Set, samples: &[Address]) -> anyhow::Result<()> {
    match set {
        Set::V4(index) => {
            let mut map: Array<_, [[u8; 4]; V4_PER_LINE]> = Array::try_from(
                bench
                    .map_mut("SAMPLES_V4")
                    .context("map SAMPLES_V4 is missing from the bench object")?,
            )?;
            let first = index * (SET_LEN / V4_PER_LINE) as u32;
            for (i, line) in samples.chunks(V4_PER_LINE).enumerate() {
                let mut value = [[0u8; 4]; V4_PER_LINE];
                for (slot, sample) in value.iter_mut().zip(line) {
                    ensure!(
                        sample[..12] == filter_common::maps::V4_MAPPED_PREFIX,
                        "an IPv6 sample in IPv4 set {index}"
                    );
                    slot.copy_from_slice(&sample[12..]);
                }
                map.set(first + i as u32, value, 0)
                    .context("writing map SAMPLES_V4")?;
            }
        }
        Set::V6(index) => {
            let mut map: Array<_, Address> = Array::try_from(
                bench
                    .map_mut("SAMPLES_V6")
                    .context("map SAMPLES_V6 is missing from the bench object")?,
            )?;
            for (i, sample) in samples.iter().enumerate() {
                map.set(index * SET_LEN as u32 + i as u32, sample, 0)
                    .context("writing map SAMPLES_V6")?;
            }
        }
    }
    Ok(())
}

pub fn select_set(bench: &mut Ebpf, set: Set) -> anyhow::Result<()> {
    let mut map: Array<_, [u32; 2]> = Array::try_from(
        bench
            .map_mut("SAMPLE_SET")
            .context("map SAMPLE_SET is missing from the bench object")?,
    )?;
    // [index within the family, family: 0 for IPv4, 1 for IPv6]
    let value = match set {
        Set::V4(index) => [index, 0],
        Set::V6(index) => [index, 1],
    };
    map.set(0, value, 0).context("writing map SAMPLE_SET")
}
