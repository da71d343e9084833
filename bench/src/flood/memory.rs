//! Memory of all geofence maps, as the kernel reports it (`memlock` in the map fd's fdinfo,
//! the figure `bpftool map show` prints as `memlock`).

use std::{
    collections::BTreeSet,
    os::fd::{AsFd as _, AsRawFd as _},
};

use anyhow::Context as _;
use aya::maps::{MapInfo, MapType};
use geofence::kernel::{Kernel, PROGRAM};

/// One map's share.
pub struct MapMemory {
    pub name: String,
    pub bytes: u64,
    /// A stock LPM trie (the reference path, not the flattened table).
    pub lpm: bool,
}

/// Every map the relay program uses, every map pinned in its pin directory, and the inner
/// maps of maps-of-maps.
pub fn maps(kernel: &Kernel) -> anyhow::Result<Vec<MapMemory>> {
    let mut ids = BTreeSet::new();
    if let Some(program) = kernel.ebpf.program(PROGRAM) {
        let program: &aya::programs::Xdp = program.try_into()?;
        if let Ok(info) = program.info() {
            ids.extend(info.map_ids()?.unwrap_or_default());
        }
    }
    for entry in std::fs::read_dir(&kernel.pin_dir)
        .with_context(|| format!("listing {}", kernel.pin_dir.display()))?
    {
        if let Ok(info) = MapInfo::from_pin(entry?.path()) {
            ids.insert(info.id());
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut todo: Vec<u32> = ids.into_iter().collect();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let info = MapInfo::from_id(id).with_context(|| format!("map id {id}"))?;
        let map_type = info.map_type();
        if matches!(map_type, Ok(MapType::ArrayOfMaps | MapType::HashOfMaps)) {
            todo.extend(inner_map_ids(id)?);
        }
        out.push(MapMemory {
            name: info.name_as_str().unwrap_or("?").to_string(),
            bytes: memlock(&info)?,
            lpm: matches!(map_type, Ok(MapType::LpmTrie)),
        });
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.bytes));
    Ok(out)
}

fn memlock(info: &MapInfo) -> anyhow::Result<u64> {
    let fd = info.fd()?;
    let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no memlock in {path}"))
}

/// The maps an outer map holds (bpftool prints them as `inner_map_id`).
fn inner_map_ids(id: u32) -> anyhow::Result<Vec<u32>> {
    let text = super::ns::run("bpftool", &["map", "dump", "id", &id.to_string(), "-j"])?;
    let json: serde_json::Value = serde_json::from_str(&text).context("bpftool map dump -j")?;
    let mut ids = Vec::new();
    collect_inner(&json, &mut ids);
    Ok(ids)
}

fn collect_inner(v: &serde_json::Value, ids: &mut Vec<u32>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_u64()) {
                    ("inner_map_id", Some(id)) => ids.push(id as u32),
                    _ => collect_inner(v, ids),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_inner(i, ids)),
        _ => {}
    }
}
