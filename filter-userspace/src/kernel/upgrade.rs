//! Replacing the attached program and its maps without a moment unfiltered (`geofence
//! upgrade`). The new program's maps are created and filled beside the old ones, under
//! `next/` in the pin directory; every pinned XDP link is then moved onto the new program
//! with `BPF_LINK_UPDATE`, which swaps the program an interface runs in one step; last,
//! the new pins are renamed over the old names and `next/` goes.
//!
//! Why this order: until a link is moved, its interface runs the old program on the old
//! maps; once moved, the new program on maps already holding everything the old ones did.
//! A process that dies at any point leaves each interface enforcing one complete set of
//! maps, but may leave the pin names pointing partly at maps no program reads. So while
//! `next/` exists every other command refuses (`check_not_pending`), and a new `upgrade`
//! starts over: it discards `next/`, fills fresh maps from the state, moves every link and
//! renames every pin, whatever the old run got through.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    maps::{Array, HashMap},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use filter_common::{
    maps::names,
    mux::{UfragBinding, UfragKey, config},
};

use super::{
    Kernel,
    links::{is_link_pin, loaded_program},
};

/// The subdirectory of the pin directory that holds an upgrade's new pins until they take
/// the usual names.
pub const NEXT_DIR: &str = "next";

/// Where an upgrade stages its new pins.
pub fn next_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join(NEXT_DIR)
}

/// Refuses while an upgrade is unfinished: some interfaces may run the new program on maps
/// the usual pin names do not reach yet, so a change written there could miss them.
pub(super) fn check_not_pending(pin_dir: &Path) -> anyhow::Result<()> {
    let next = next_dir(pin_dir);
    if next.exists() {
        bail!(
            "an upgrade of the program under {} did not finish ({} is left); nothing was \
             changed. Run `geofence upgrade` again: it starts over from the state directory \
             and finishes",
            pin_dir.display(),
            next.display()
        );
    }
    Ok(())
}

/// Removes the pins an interrupted upgrade left under `next`. Maps and programs that an
/// attached link still uses stay alive through the link.
pub fn discard(next: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(next) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", next.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", next.display()))?
            .path();
        std::fs::remove_file(&path)
            .with_context(|| format!("removing the unfinished upgrade's pin {}", path.display()))?;
    }
    std::fs::remove_dir(next).with_context(|| format!("removing {}", next.display()))
}

/// Starts an upgrade: a fresh, empty set of this build's maps pinned under `next/`, with
/// the program loaded and pinned there (not attached anywhere yet), its flow table of
/// `flows` entries.
pub fn stage(pin_dir: &Path, flows: u32) -> anyhow::Result<Kernel> {
    let next = next_dir(pin_dir);
    discard(&next)?;
    let mut staged = Kernel::open_maps(&next, Some(flows))?;
    super::build::remember(&mut staged)?;
    Ok(staged)
}

/// The id the kernel gave the staged program.
pub fn staged_program_id(staged: &mut Kernel) -> anyhow::Result<u32> {
    Ok(loaded_program(staged)?
        .info()
        .context("reading the new program's id")?
        .id())
}

/// What the old maps held that the state file does not: the SFU's ufrag registrations and
/// the mux settings (`daemon --learned-idle`). Copied only when the old maps are laid out
/// as this build's (`old` opened); returns the number of ufrags copied.
pub fn carry_runtime(old: &Kernel, staged: &mut Kernel) -> anyhow::Result<usize> {
    let ufrags = super::bindings::read_ufrags(old)?;
    let mut map: HashMap<_, UfragKey, UfragBinding> =
        HashMap::try_from(staged.map_mut(names::UFRAGS)?)?;
    for (key, binding) in &ufrags {
        map.insert(key, binding, 0)
            .context("copying the ufrag registrations into the new UFRAGS")?;
    }
    // The idle time is the setting; its tick form is derived again for the new maps.
    let settings: Array<_, u64> = Array::try_from(old.map(names::MUX_CONFIG)?)?;
    let idle_ns = settings
        .get(&config::LEARNED_IDLE, 0)
        .context("reading MUX_CONFIG")?;
    super::bindings::write_learned_idle(staged, idle_ns)
        .context("copying MUX_CONFIG into the new maps")?;
    Ok(ufrags.len())
}

/// One link moved onto the new program.
pub struct Moved {
    /// The link pin's name (`link_IFACE` or `link_NS_IFACE`).
    pub link: String,
    /// The program it ran before.
    pub from: u32,
}

/// The names of the link pins under `pin_dir`, sorted.
fn link_pins(pin_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(pin_dir).with_context(|| format!("listing {}", pin_dir.display()))?
    {
        let name = entry
            .with_context(|| format!("listing {}", pin_dir.display()))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if is_link_pin(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Moves every XDP link pinned under `pin_dir` onto the staged program, one
/// `BPF_LINK_UPDATE` each: an interface runs the old program up to that call and the new
/// one from it, never none. Stops at the first failure, leaving `next/` for a re-run.
pub fn move_links(staged: &mut Kernel, pin_dir: &Path) -> anyhow::Result<Vec<Moved>> {
    let program = loaded_program(staged)?;
    let mut moved = Vec::new();
    for name in link_pins(pin_dir)? {
        let pin = pin_dir.join(&name);
        let link = FdLink::from(
            PinnedLink::from_pin(&pin)
                .with_context(|| format!("opening the pinned link {}", pin.display()))?,
        );
        let from = link
            .info()
            .with_context(|| format!("reading the link {}", pin.display()))?
            .program_id();
        let link = XdpLink::try_from(link).map_err(|e| {
            anyhow!(
                "{} is not an XDP link ({e}); it is not geofence's",
                pin.display()
            )
        })?;
        let id = program.attach_to_link(link).map_err(|e| {
            anyhow!(
                "the kernel refused to move {} onto the new program: {e}; it still runs the \
                 old one",
                pin.display()
            )
        })?;
        // The pin keeps the link; only this process's descriptor goes.
        drop(program.take_link(id)?);
        moved.push(Moved { link: name, from });
    }
    Ok(moved)
}

/// Gives the staged pins the usual names, replacing the old pins (a rename on bpffs
/// replaces its target in one step), removes `next/` and the program pins no attachment
/// runs any more. The old maps go with their last user.
pub fn commit(pin_dir: &Path) -> anyhow::Result<()> {
    let next = next_dir(pin_dir);
    let entries =
        std::fs::read_dir(&next).with_context(|| format!("listing {}", next.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", next.display()))?;
        let to = pin_dir.join(entry.file_name());
        std::fs::rename(entry.path(), &to)
            .with_context(|| format!("renaming {} to {}", entry.path().display(), to.display()))?;
    }
    std::fs::remove_dir(&next).with_context(|| format!("removing {}", next.display()))?;
    if let Err(e) = super::build::forget_unattached(pin_dir) {
        eprintln!(
            "warning: {e:#}; remove the old prog_* pins under {} by hand",
            pin_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_left_next_dir_refuses_other_commands_and_discard_removes_it() {
        let dir = std::env::temp_dir().join(format!("gf-upgrade-{}", std::process::id()));
        let next = next_dir(&dir);
        std::fs::create_dir_all(&next).expect("dir");
        std::fs::write(next.join("POLICIES"), "x").expect("file");
        let refused = check_not_pending(&dir).expect_err("pending upgrade refuses");
        assert!(format!("{refused:#}").contains("geofence upgrade"));
        discard(&next).expect("discard");
        assert!(!next.exists());
        check_not_pending(&dir).expect("nothing pending");
        discard(&next).expect("discarding nothing is fine");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
