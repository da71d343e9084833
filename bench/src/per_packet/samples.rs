//! The sources the bench programs draw from: sample sets in the bench object's
//! `SAMPLES_V4` and `SAMPLES_V6` maps (laid out as `filter_common::bench_samples` says), and
//! which one the next run draws from.

use std::collections::HashSet;

use anyhow::{Context as _, ensure};
use aya::{
    Ebpf,
    maps::Array,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use filter_common::{Address, bench_samples};
use geofence::{geo::GeoTable, territory::Territory};

use super::STAGE_TERRITORY;
use crate::table::{self, Rng};

/// Samples per set.
pub const SET_LEN: usize = bench_samples::SET_LEN as usize;
const V4_PER_LINE: usize = bench_samples::V4_PER_LINE as usize;
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

/// Draws made by [`check_drawn`] per set.
const CHECKED_DRAWS: usize = 512;

/// Runs `bench_sample` on `set` and checks that every source it draws is one of `samples`:
/// the bench object reads back the layout written here (byte order, packing, set offsets),
/// so the timed programs draw these sources and no others.
pub fn check_drawn(bench: &mut Ebpf, set: Set, samples: &[Address]) -> anyhow::Result<()> {
    select_set(bench, set)?;
    let stored: HashSet<&Address> = samples.iter().collect();
    let program: &Xdp = bench
        .program("bench_sample")
        .context("program bench_sample is missing from the bench object")?
        .try_into()?;
    let frame = [0u8; 64];
    for _ in 0..CHECKED_DRAWS {
        let mut out = [0u8; 64];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                data_out: Some(&mut out),
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN of bench_sample")?;
        // XDP_PASS
        ensure!(
            result.return_value == 2,
            "bench_sample returned XDP action {} on {set:?}",
            result.return_value
        );
        let mut drawn = [0u8; 16];
        drawn.copy_from_slice(&out[..16]);
        ensure!(
            stored.contains(&drawn),
            "{set:?}: the bench object drew {}, which is not one of the set's samples",
            std::net::Ipv6Addr::from(drawn)
        );
    }
    Ok(())
}
