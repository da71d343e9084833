//! The program's links as pinned under the pin directory, and the program itself as
//! loaded from the object: what attaching (`attach`), the build check (`build`) and the
//! kernel probe (`probe`) share.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya::programs::{
    Xdp,
    links::{FdLink, PinnedLink},
};

use super::{Kernel, PROGRAM};

const LINK_PIN_PREFIX: &str = "link_";

/// Whether a pin name is a link's.
pub(super) fn is_link_pin(name: &str) -> bool {
    name.starts_with(LINK_PIN_PREFIX)
}

/// Where the link of `interface` (in `netns`) is pinned.
pub fn link_pin(pin_dir: &Path, interface: &str, netns: Option<&str>) -> PathBuf {
    // Dots are legal in interface names but the pin name stays plain.
    let name = match netns {
        Some(ns) => format!("{LINK_PIN_PREFIX}{ns}_{interface}"),
        None => format!("{LINK_PIN_PREFIX}{interface}"),
    };
    pin_dir.join(name.replace('.', "_"))
}

pub fn link_pinned(pin_dir: &Path, interface: &str, netns: Option<&str>) -> bool {
    link_pin(pin_dir, interface, netns).exists()
}

/// The XDP program of `kernel`'s object, loaded into the kernel on first use: one handle
/// loads it once, then attaches or test-runs it as often as asked.
pub(crate) fn loaded_program(kernel: &mut Kernel) -> anyhow::Result<&mut Xdp> {
    let program: &mut Xdp = kernel
        .ebpf
        .program_mut(PROGRAM)
        .context("the XDP program is missing from the object")?
        .try_into()?;
    if program.fd().is_err() {
        program
            .load()
            .map_err(|e| anyhow!("the kernel refused to load the XDP program: {e}"))?;
    }
    Ok(program)
}

/// The programs attached through link pins under the pin directory: each program's id and
/// the names of its links (several links may share one program).
pub(super) fn attached_links(pin_dir: &Path) -> anyhow::Result<BTreeMap<u32, Vec<String>>> {
    let entries = match std::fs::read_dir(pin_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", pin_dir.display())),
    };
    let mut by_program: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", pin_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_link_pin(&name) {
            continue;
        }
        let link = PinnedLink::from_pin(entry.path())
            .with_context(|| format!("opening the pinned link {}", entry.path().display()))?;
        let info = FdLink::from(link)
            .info()
            .with_context(|| format!("reading the link {}", entry.path().display()))?;
        by_program.entry(info.program_id()).or_default().push(name);
    }
    Ok(by_program)
}

/// The program each link pinned under `pin_dir` runs, by link pin name.
pub fn link_programs(pin_dir: &Path) -> anyhow::Result<BTreeMap<String, u32>> {
    Ok(attached_links(pin_dir)?
        .into_iter()
        .flat_map(|(id, links)| links.into_iter().map(move |link| (link, id)))
        .collect())
}
