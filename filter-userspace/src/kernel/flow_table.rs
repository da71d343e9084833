//! The size of the flow table (`FLOWS`), chosen with `attach --flows` (or `upgrade
//! --flows`) and fixed when the map is created: the pinned map keeps it across commands,
//! the state records it for `restore` and `upgrade`, which create the map anew.

use std::path::Path;

use anyhow::{Context as _, bail};
use aya::maps::{HashMap, MapInfo};
use filter_common::{
    FlowKey,
    maps::{capacity, names},
    mux::{FlowBinding, origin},
};

use super::{Kernel, links::is_link_pin};

/// Flows the table holds unless `--flows` says otherwise.
pub const DEFAULT: u32 = capacity::FLOWS;

/// Kernel memory a flow costs, as an estimate: the LRU hash element (list and hash nodes,
/// the 40-byte key, the 24-byte value) and its share of the buckets.
pub const BYTES_PER_FLOW: u64 = 128;

/// Why a `--flows` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("--flows 0: the flow table must hold at least one flow")]
    Zero,
    #[error(
        "--flows {flows}: the flow table would take about {need_mib} MiB of kernel memory \
         ({BYTES_PER_FLOW} bytes a flow), more than half of this machine's {total_mib} MiB; \
         choose at most {max}"
    )]
    TooLarge {
        flows: u32,
        need_mib: u64,
        total_mib: u64,
        max: u64,
    },
}

/// Checks a `--flows` value against the machine's memory (`total_bytes`, `MemTotal`).
pub fn validate(flows: u32, total_bytes: u64) -> Result<u32, SizeError> {
    if flows == 0 {
        return Err(SizeError::Zero);
    }
    let need = u64::from(flows) * BYTES_PER_FLOW;
    let limit = total_bytes / 2;
    if need > limit {
        return Err(SizeError::TooLarge {
            flows,
            need_mib: need >> 20,
            total_mib: total_bytes >> 20,
            max: limit / BYTES_PER_FLOW,
        });
    }
    Ok(flows)
}

/// This machine's memory, from `/proc/meminfo`.
pub fn total_memory() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let kib = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .context("/proc/meminfo has no MemTotal line")?;
    Ok(kib * 1024)
}

/// Validates `--flows` on this machine.
pub fn check(flows: u32) -> anyhow::Result<u32> {
    Ok(validate(flows, total_memory()?)?)
}

/// The size of the flow table pinned under `pin_dir`, if there is one.
pub fn pinned(pin_dir: &Path) -> anyhow::Result<Option<u32>> {
    let pin = pin_dir.join(names::FLOWS);
    if !pin.exists() {
        return Ok(None);
    }
    let info = MapInfo::from_pin(&pin)
        .with_context(|| format!("inspecting the pinned map {}", pin.display()))?;
    Ok(Some(info.max_entries()))
}

/// Whether an interface runs the program of `pin_dir`'s maps.
fn attached(pin_dir: &Path) -> anyhow::Result<bool> {
    let entries =
        std::fs::read_dir(pin_dir).with_context(|| format!("listing {}", pin_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", pin_dir.display()))?;
        if is_link_pin(&entry.file_name().to_string_lossy()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The size to create or keep the flow table with: the pinned one, unless `want` differs,
/// in which case the pinned table (nothing attached reads it) is removed so that the
/// program object creates it at `want`. With an interface attached the size is only
/// changed by `geofence upgrade --flows`, which moves the interfaces onto new maps.
pub(super) fn resolve(pin_dir: &Path, want: Option<u32>) -> anyhow::Result<u32> {
    let pinned = pinned(pin_dir)?;
    match (pinned, want) {
        (Some(have), None) => Ok(have),
        (None, want) => Ok(want.unwrap_or(DEFAULT)),
        (Some(have), Some(want)) if have == want => Ok(have),
        (Some(have), Some(want)) => {
            if attached(pin_dir)? {
                bail!(
                    "--flows {want}: the flow table under {} holds {have} flows and the filter \
                     is attached; nothing was changed. `geofence upgrade --flows {want}` moves \
                     the attached interfaces onto a table of the new size",
                    pin_dir.display()
                );
            }
            let pin = pin_dir.join(names::FLOWS);
            std::fs::remove_file(&pin).with_context(|| {
                format!("removing {} to create it with {want} flows", pin.display())
            })?;
            Ok(want)
        }
    }
}

/// How full the flow table is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableUse {
    /// Flows it holds at most (`--flows`).
    pub capacity: u32,
    /// Entries in it: learned, bound by the API, and policy flows in each generation.
    pub used: u32,
    /// Of these, learned from STUN.
    pub learned: u32,
}

/// The flow table's size and use.
pub fn read_use(kernel: &Kernel) -> anyhow::Result<FlowTableUse> {
    let map: HashMap<_, FlowKey, FlowBinding> = HashMap::try_from(kernel.map(names::FLOWS)?)?;
    let capacity = pinned(&kernel.pin_dir)?.unwrap_or(DEFAULT);
    let mut out = FlowTableUse {
        capacity,
        ..FlowTableUse::default()
    };
    // An entry evicted or removed during the walk ends it early or is skipped: the
    // count is a reading, not a promise.
    for (_, binding) in map.iter().flatten() {
        out.used += 1;
        if binding.origin == origin::LEARNED {
            out.learned += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_too_large_are_refused_naming_the_flag() {
        let gib = 1u64 << 30;
        assert_eq!(validate(0, 24 * gib), Err(SizeError::Zero));
        assert_eq!(validate(DEFAULT, 24 * gib), Ok(DEFAULT));
        assert_eq!(validate(1024, 24 * gib), Ok(1024));
        let refused = validate(u32::MAX, 24 * gib).expect_err("too large");
        let text = refused.to_string();
        assert!(text.contains("--flows 4294967295"), "{text}");
        assert!(text.contains("at most 100663296"), "{text}");
        assert!(validate(100_663_296, 24 * gib).is_ok());
        assert!(validate(100_663_297, 24 * gib).is_err());
        assert!(SizeError::Zero.to_string().contains("--flows"));
    }
}
