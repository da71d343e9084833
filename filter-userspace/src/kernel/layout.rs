//! Pins left by another geofence version: the program object reuses a pinned map by name
//! whatever its layout, so a map whose type, key, value, size or flags changed between
//! versions would be read and written with the wrong layout. Every pin is compared with
//! this version's definition before anything is loaded, and a mismatch refuses the
//! command with one message, having changed nothing.

use std::path::Path;

use anyhow::{Context as _, bail};
use aya::maps::MapInfo;
use filter_common::maps::names;

use super::EBPF_OBJECT;

/// A map's layout: type, key size, value size, entries, flags.
type Layout = (u32, u32, u32, u32, u32);

fn describe((kind, key, value, entries, flags): Layout) -> String {
    format!("type {kind}, key {key} B, value {value} B, {entries} entries, flags {flags:#x}")
}

/// Refuses pins under `pin_dir` that this version's program would misread. The flow
/// table's size is chosen at load (`--flows`), not by the object: any size reads right.
pub(super) fn check_pins(pin_dir: &Path) -> anyhow::Result<()> {
    let object = aya_obj::Object::parse(EBPF_OBJECT).context("parsing the embedded program")?;
    let mut wrong = Vec::new();
    for &name in names::ALL {
        let pin = pin_dir.join(name);
        if !pin.exists() {
            continue;
        }
        let def = object
            .maps
            .get(name)
            .with_context(|| format!("map {name} is missing from the program object"))?;
        let info = MapInfo::from_pin(&pin)
            .with_context(|| format!("inspecting the pinned map {}", pin.display()))?;
        let want: Layout = (
            def.map_type(),
            def.key_size(),
            def.value_size(),
            if name == names::FLOWS {
                info.max_entries()
            } else {
                def.max_entries()
            },
            def.map_flags(),
        );
        let kind = info
            .map_type()
            .with_context(|| format!("the type of pinned map {name}"))?;
        let have: Layout = (
            kind as u32,
            info.key_size(),
            info.value_size(),
            info.max_entries(),
            info.map_flags(),
        );
        if have != want {
            wrong.push(format!(
                "{name} is pinned with {}, this version has {}",
                describe(have),
                describe(want)
            ));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "the maps pinned under {} are from another geofence version, which laid them out \
             differently ({}); nothing was changed. Detach the filter from every interface, \
             remove {} and run `geofence restore`, which rebuilds this version's maps from \
             the state directory",
            pin_dir.display(),
            wrong.join("; "),
            pin_dir.display()
        );
    }
    Ok(())
}
