//! The kernel side of geofence as userspace sees it: the program and its maps, pinned by
//! name under one directory so that every short-lived CLI call finds the same state.

mod attach;
mod batch;
pub mod bindings;
mod build;
pub mod flow_table;
mod forget;
mod generation;
mod geo;
mod layout;
mod links;
mod mapped;
mod monitor;
mod overrides;
mod policies;
pub mod probe;
mod rule_stats;
mod stats;
mod sync;
pub mod test_run;
mod unparsed;
pub mod upgrade;
mod writes;

use std::{
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use aya::{Ebpf, EbpfLoader};

pub use attach::{AttachMode, attach, detach, is_map_pin};
pub use build::{ProgramBuild, attached_builds};
pub use geo::map_generation;
pub use geo::{
    GeoLoad, MappedTable, active_generation, active_holds, load_lpm_reference, load_table,
    lookup as geo_lookup, lookup_lpm as geo_lookup_lpm, map_active,
};
pub use geo::{activate_generation, stage_table};
pub use links::{link_pin, link_pinned, link_programs};
pub use monitor::{Records, monitor_counts, pinned_monitor, set_monitor};
pub use policies::pinned_policies;
pub use rule_stats::{
    RuleCounts, read_rule_counts, read_rule_sketches, read_rule_stats, read_rule_stats_of,
    reset_rule_counts,
};
pub use stats::{PassCounts, Stats, TerritoryCounts, read_stats};
pub use sync::{differences, sync};
pub use writes::SyncReport;

/// The XDP program, built for bpfel-unknown-none by the build script.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/geofence"));

/// The per-packet bench programs (`filter-ebpf/src/bin/bench.rs`).
pub static BENCH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench"));

/// The veth flood programs (`filter-ebpf/src/bin/flood.rs`).
pub static FLOOD_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/flood"));

/// The program's name in the object.
pub const PROGRAM: &str = "geofence";

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// The loaded object with its maps, pinned under `pin_dir`.
pub struct Kernel {
    pub ebpf: Ebpf,
    pub pin_dir: PathBuf,
}

/// Root and a bpffs are prerequisites; say which is missing and how to fix it.
pub fn check_privileges() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "geofence changes BPF maps and XDP attachments, which needs root \
             (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN for pinning); run it with sudo"
        );
    }
    Ok(())
}

fn check_bpffs(pin_dir: &Path) -> anyhow::Result<()> {
    let parent = pin_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let fs = nix::sys::statfs::statfs(parent)
        .with_context(|| format!("inspecting {}", parent.display()))?;
    if fs.filesystem_type().0 as i64 != BPF_FS_MAGIC {
        bail!(
            "pin directory {} is not on a BPF filesystem ({} is not bpffs); \
             mount one with `mount -t bpf bpf /sys/fs/bpf` or choose another --pin-dir",
            pin_dir.display(),
            parent.display()
        );
    }
    Ok(())
}

impl Kernel {
    /// Opens the pinned maps under `pin_dir`, creating and pinning them on first use.
    pub fn open(pin_dir: &Path) -> anyhow::Result<Kernel> {
        upgrade::check_not_pending(pin_dir)?;
        Kernel::open_maps(pin_dir, None)
    }

    /// `open` with a flow table of `flows` entries (`attach --flows`, or the size the state
    /// records): a pinned table of another size is created anew when nothing is attached,
    /// else refused (see `flow_table::resolve`).
    pub fn open_with_flows(pin_dir: &Path, flows: u32) -> anyhow::Result<Kernel> {
        upgrade::check_not_pending(pin_dir)?;
        Kernel::open_maps(pin_dir, Some(flows))
    }

    /// `open` without refusing an unfinished upgrade: for `upgrade` itself, which finishes it.
    /// The flow table keeps its pinned size, or takes `flows` (default
    /// [`flow_table::DEFAULT`]).
    pub(crate) fn open_maps(pin_dir: &Path, flows: Option<u32>) -> anyhow::Result<Kernel> {
        check_privileges()?;
        check_bpffs(pin_dir)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(pin_dir)
            .with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        layout::check_pins(pin_dir)?;
        let flows = flow_table::resolve(pin_dir, flows)?;
        let ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .map_max_entries(filter_common::maps::names::FLOWS, flows)
            .load(EBPF_OBJECT)
            .with_context(|| {
                format!(
                    "opening geofence maps under {} (is BPF supported and are the pins from this version?)",
                    pin_dir.display()
                )
            })?;
        Ok(Kernel {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
        })
    }

    /// Whether the maps exist, without creating them.
    pub fn exists(pin_dir: &Path) -> bool {
        pin_dir.join(filter_common::maps::names::POLICIES).exists()
    }

    pub(crate) fn map_mut(&mut self, name: &str) -> anyhow::Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} is missing from the program object"))
    }

    pub(crate) fn map(&self, name: &str) -> anyhow::Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .with_context(|| format!("map {name} is missing from the program object"))
    }
}
