//! What `geofence monitor` costs per packet: `bench_flat` on blocked sources (every
//! packet a drop of the meeting, the path a flood takes) with the monitor's switch off, and
//! on, in the same rounds:
//!
//! - `monitor_off`: the switch present and off, as on every relay no one watches;
//! - `monitor_budget`: on for every decision at the default budget of records per CPU and
//!   second: after the first second's budget every decision is counted and held back,
//!   which is what a flood costs while someone watches;
//! - `monitor_every` against `monitor_off_short`: on for every decision with no budget,
//!   in runs short enough that the log ring holds every record (drained between runs, and
//!   counted, so that each run is known to have written a record per packet).

use anyhow::{Context as _, ensure};
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use filter_common::monitor::{DEFAULT_PER_SECOND, MonitorConfig};
use geofence::kernel::{self, Kernel};

use super::{STAGE_TERRITORY, Settings, Times, Variant, run_once, samples::select_set};
use crate::report::{Figure, Report, median, median_noise};

/// Repeats of a run whose every record must fit the 128 KiB ring (records take 128 or 256
/// bytes with their header).
const SHORT_REPEAT: u32 = 256;

/// The monitor's variants, each with the switch it runs under and its repeat count.
fn switches(settings: &Settings) -> [(&'static str, MonitorConfig, u32); 4] {
    let on = |per_second| MonitorConfig {
        enabled: 1,
        per_second,
        ..MonitorConfig::OFF
    };
    [
        ("monitor_off", MonitorConfig::OFF, settings.repeat),
        ("monitor_budget", on(DEFAULT_PER_SECOND), settings.repeat),
        ("monitor_off_short", MonitorConfig::OFF, SHORT_REPEAT),
        ("monitor_every", on(u32::MAX), SHORT_REPEAT),
    ]
}

/// Drains the ring; returns the records it held.
fn drain(ring: &mut RingBuf<MapData>) -> usize {
    let mut records = 0;
    while ring.next().is_some() {
        records += 1;
    }
    records
}

/// Every variant once per round, the order rotating; the switch off at the end.
pub(super) fn measure(
    bench: &mut Ebpf,
    kernel: &mut Kernel,
    variant: &Variant,
    settings: &Settings,
) -> anyhow::Result<Times> {
    let mut ring = RingBuf::try_from(
        bench
            .take_map("AYA_LOGS")
            .context("the bench object has no AYA_LOGS ring")?,
    )?;
    let variants = switches(settings);
    let mut times = Times::new();
    let result = (|| -> anyhow::Result<()> {
        for round in 0..settings.rounds {
            for i in 0..variants.len() {
                let (key, config, repeat) = variants[(round + i) % variants.len()];
                kernel::set_monitor(kernel, &config)?;
                select_set(bench, variant.set)?;
                drain(&mut ring);
                let ns = run_once(bench, variant, repeat)?;
                let records = drain(&mut ring);
                if key == "monitor_every" {
                    ensure!(
                        records == repeat as usize,
                        "monitor_every wrote {records} records in {repeat} runs: the ring \
                         had no room, or the program did not report every decision"
                    );
                } else if config.enabled == 0 {
                    ensure!(records == 0, "{key} wrote {records} records, switched off");
                }
                times.entry(key).or_default().push(ns);
            }
        }
        Ok(())
    })();
    kernel::set_monitor(kernel, &MonitorConfig::OFF)?;
    result?;
    Ok(times)
}

fn cost(times: &Times, x: &str, reference: &str) -> (f64, f64) {
    let diffs: Vec<f64> = times[x]
        .iter()
        .zip(&times[reference])
        .map(|(x, r)| x - r)
        .collect();
    (median(diffs.clone()), median_noise(diffs).max(1.0))
}

pub(super) fn figures(report: &mut Report, times: &Times, stages: &Times) {
    let off = median(times["monitor_off"].clone()) - median(stages["draw"].clone());
    report.push(
        Figure::new(
            format!("monitor off (switch read, nothing sent), blocked {STAGE_TERRITORY} sources: data path"),
            off,
            "ns/packet",
        )
        .note(
            "bench_flat with the MONITOR switch off − bench_draw (medians, draw from the \
             stage rounds): the whole data path as relays run it when no monitor watches",
        ),
    );
    for (key, reference, what) in [
        (
            "monitor_budget",
            "monitor_off",
            "monitor on, every decision, default budget (held back after the first second)",
        ),
        (
            "monitor_every",
            "monitor_off_short",
            "monitor on, every decision sent as a record (ring drained between runs)",
        ),
    ] {
        let (median, noise) = cost(times, key, reference);
        report.push(
            Figure::new(format!("{what}: added"), median, "ns/packet")
                .noise(noise)
                .note(format!(
                    "{key} − {reference}, median of per-round differences: {median:.1} ± \
                     {noise:.1} ns"
                )),
        );
    }
}
