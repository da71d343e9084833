//! Whether the programs attached under the pin directory are this build's, and this build's
//! program tag remembered in a program pin so that a table load learns it without loading
//! the program.
//!
//! Why a pin: the kernel's tag of this build's program is known only once the kernel has
//! loaded it, which costs about 0.2 s, on every `geo load`, `apply` and daemon reload while
//! something is attached. `attach` has the program loaded anyway, so it pins it under a
//! name made from a digest of the embedded object (`prog_<digest>`); a later load reads the
//! tag of that pinned program (two syscalls). The name cannot match another build's
//! program, and the pin goes when `detach` leaves no attachment using its program's code.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use anyhow::{Context as _, bail};
use aya::programs::ProgramInfo;

use super::{
    EBPF_OBJECT, Kernel,
    attach::{attached_links, loaded_program},
};
use crate::audit::sha256_hex;

const PROGRAM_PIN_PREFIX: &str = "prog_";

/// Where this build's program is pinned: named by the first 16 hex digits of the SHA-256
/// of the embedded object.
fn program_pin(pin_dir: &Path) -> PathBuf {
    static DIGEST: OnceLock<String> = OnceLock::new();
    let digest = DIGEST.get_or_init(|| sha256_hex(EBPF_OBJECT));
    pin_dir.join(format!("{PROGRAM_PIN_PREFIX}{}", &digest[..16]))
}

/// Pins this build's loaded program, if no program of this build is pinned yet.
pub(super) fn remember(kernel: &mut Kernel) -> anyhow::Result<()> {
    let pin = program_pin(&kernel.pin_dir);
    if pin.exists() {
        return Ok(());
    }
    loaded_program(kernel)?
        .pin(&pin)
        .with_context(|| format!("pinning the program at {}", pin.display()))
}

/// This build's program tag: from the pinned program if there is one, else by loading it.
fn our_tag(kernel: &mut Kernel) -> anyhow::Result<u64> {
    let pin = program_pin(&kernel.pin_dir);
    if pin.exists() {
        let info = ProgramInfo::from_pin(&pin)
            .with_context(|| format!("reading the pinned program {}", pin.display()))?;
        return Ok(info.tag());
    }
    Ok(loaded_program(kernel)?
        .info()
        .context("reading this build's program tag")?
        .tag())
}

/// The tags of the programs with these ids (ids no longer loaded are left out).
fn tags_of(ids: &BTreeSet<u32>) -> anyhow::Result<BTreeSet<u64>> {
    let mut tags = BTreeSet::new();
    for program in aya::programs::loaded_programs() {
        let program = program.context("listing the kernel's BPF programs")?;
        if ids.contains(&program.id()) {
            tags.insert(program.tag());
        }
    }
    Ok(tags)
}

/// Removes the program pins whose code no attachment under `pin_dir` runs: after the last
/// `detach`, all of them.
pub(super) fn forget_unattached(pin_dir: &Path) -> anyhow::Result<()> {
    let attached: BTreeSet<u32> = attached_links(pin_dir)?.into_keys().collect();
    let running = tags_of(&attached)?;
    let entries =
        std::fs::read_dir(pin_dir).with_context(|| format!("listing {}", pin_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", pin_dir.display()))?;
        if !is_program_pin(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let tag = ProgramInfo::from_pin(&path)
            .with_context(|| format!("reading the pinned program {}", path.display()))?
            .tag();
        if !running.contains(&tag) {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the program pin {}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether a pin name is a program pin (not a map or a link).
pub fn is_program_pin(name: &str) -> bool {
    name.starts_with(PROGRAM_PIN_PREFIX)
}

/// Whose code an attached program runs, as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramBuild {
    This,
    /// Another build's: table loads are refused until it is re-attached.
    Other,
    /// Not checked: this build's program is not pinned (no attachment of this build, so
    /// most likely an older version's), and `status` does not load it to learn its tag.
    Unchecked,
}

impl ProgramBuild {
    pub fn name(self) -> &'static str {
        match self {
            ProgramBuild::This => "this",
            ProgramBuild::Other => "other",
            ProgramBuild::Unchecked => "unchecked",
        }
    }
}

/// For each link pin under `pin_dir`, by name: whose code its program runs.
pub fn attached_builds(pin_dir: &Path) -> anyhow::Result<BTreeMap<String, ProgramBuild>> {
    let attached = attached_links(pin_dir)?;
    let pin = program_pin(pin_dir);
    let ours = if pin.exists() {
        let info = ProgramInfo::from_pin(&pin)
            .with_context(|| format!("reading the pinned program {}", pin.display()))?;
        Some(info.tag())
    } else {
        None
    };
    let mut tags = BTreeMap::new();
    for program in aya::programs::loaded_programs() {
        let program = program.context("listing the kernel's BPF programs")?;
        if attached.contains_key(&program.id()) {
            tags.insert(program.id(), program.tag());
        }
    }
    let mut builds = BTreeMap::new();
    for (id, links) in attached {
        let build = match (ours, tags.get(&id)) {
            (Some(ours), Some(&tag)) if tag == ours => ProgramBuild::This,
            (Some(_), Some(_)) => ProgramBuild::Other,
            _ => ProgramBuild::Unchecked,
        };
        builds.extend(links.into_iter().map(|link| (link, build)));
    }
    Ok(builds)
}

/// Refuses, having changed nothing, when a program attached through a link pin under the
/// pin directory is not this build's: the kernel keeps running an attached program after
/// an upgrade, and an older one may read the territory table in an older layout (for
/// example one that knew no /16 range lists, or no IPv6 trie), misclassifying every
/// source the new layout encodes differently. The kernel's program tag is a hash of the
/// instructions with map references left out, so equal tags mean the same code.
pub fn check_attached_build(kernel: &mut Kernel) -> anyhow::Result<()> {
    let mut attached = attached_links(&kernel.pin_dir)?;
    if attached.is_empty() {
        return Ok(());
    }
    let ours = our_tag(kernel)?;
    for program in aya::programs::loaded_programs() {
        let program = program.context("listing the kernel's BPF programs")?;
        if program.tag() == ours {
            attached.remove(&program.id());
        }
    }
    // What is left is attached but not this build's (or gone since it was listed).
    if !attached.is_empty() {
        let stale: Vec<String> = attached.into_values().flatten().collect();
        bail!(
            "the XDP program attached through {} under {} is not this geofence build's (its \
             code differs), and may read the territory table in another layout; nothing was \
             changed. Re-attach with this build first: `geofence detach IFACE` then \
             `geofence attach IFACE` (with `--netns NS` for a link named link_NS_IFACE)",
            stale.join(", "),
            kernel.pin_dir.display()
        );
    }
    Ok(())
}
