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
    links::{attached_links, loaded_program},
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

/// The tag of the pinned program at `pin`.
fn pinned_tag(pin: &Path) -> anyhow::Result<u64> {
    Ok(ProgramInfo::from_pin(pin)
        .with_context(|| format!("reading the pinned program {}", pin.display()))?
        .tag())
}

/// This build's program tag, if a program of this build is pinned.
fn remembered_tag(pin_dir: &Path) -> anyhow::Result<Option<u64>> {
    let pin = program_pin(pin_dir);
    pin.exists().then(|| pinned_tag(&pin)).transpose()
}

/// The tag of each program with one of these ids (ids no longer loaded are left out).
fn tags_of(ids: impl Iterator<Item = u32>) -> anyhow::Result<BTreeMap<u32, u64>> {
    let ids: BTreeSet<u32> = ids.collect();
    let mut tags = BTreeMap::new();
    for program in aya::programs::loaded_programs() {
        let program = program.context("listing the kernel's BPF programs")?;
        if ids.contains(&program.id()) {
            tags.insert(program.id(), program.tag());
        }
    }
    Ok(tags)
}

/// Removes the program pins whose code no attachment under `pin_dir` runs: after the last
/// `detach`, all of them.
pub(super) fn forget_unattached(pin_dir: &Path) -> anyhow::Result<()> {
    let running: BTreeSet<u64> = tags_of(attached_links(pin_dir)?.into_keys())?
        .into_values()
        .collect();
    let entries =
        std::fs::read_dir(pin_dir).with_context(|| format!("listing {}", pin_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", pin_dir.display()))?;
        if !is_program_pin(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        if !running.contains(&pinned_tag(&path)?) {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the program pin {}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether a pin name is a program pin (not a map or a link).
pub(super) fn is_program_pin(name: &str) -> bool {
    name.starts_with(PROGRAM_PIN_PREFIX)
}

/// Whose code an attached program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramBuild {
    This,
    /// Another build's: table loads are refused until it is re-attached.
    Other,
    /// Not known: no program of this build is pinned to compare with (so no attachment is
    /// this build's, most likely an older version's; `status` does not load the program
    /// to learn its tag), or the program is gone since its link was listed.
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

/// For each of the `attached` links (program id → link names): whose code its program
/// runs, judged against this build's tag `ours`.
fn builds(
    attached: BTreeMap<u32, Vec<String>>,
    ours: Option<u64>,
) -> anyhow::Result<BTreeMap<String, ProgramBuild>> {
    let tags = tags_of(attached.keys().copied())?;
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

/// For each link pin under `pin_dir`, by name: whose code its program runs, as far as this
/// build's program pin tells (what `status` reports, without loading anything).
pub fn attached_builds(pin_dir: &Path) -> anyhow::Result<BTreeMap<String, ProgramBuild>> {
    builds(attached_links(pin_dir)?, remembered_tag(pin_dir)?)
}

/// Refuses, having changed nothing, when a program attached through a link pin under the
/// pin directory is not this build's: the kernel keeps running an attached program after
/// an upgrade, and an older one may read the territory table in an older layout (for
/// example one that knew no /16 range lists, or no IPv6 trie), misclassifying every
/// source the new layout encodes differently. The kernel's program tag is a hash of the
/// instructions with map references left out, so equal tags mean the same code.
pub fn check_attached_build(kernel: &mut Kernel) -> anyhow::Result<()> {
    let attached = attached_links(&kernel.pin_dir)?;
    if attached.is_empty() {
        return Ok(());
    }
    let ours = match remembered_tag(&kernel.pin_dir)? {
        Some(tag) => tag,
        None => loaded_program(kernel)?
            .info()
            .context("reading this build's program tag")?
            .tag(),
    };
    let stale: Vec<String> = builds(attached, Some(ours))?
        .into_iter()
        .filter(|&(_, build)| build != ProgramBuild::This)
        .map(|(link, _)| link)
        .collect();
    if !stale.is_empty() {
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
