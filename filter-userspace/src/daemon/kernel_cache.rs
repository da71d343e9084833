//! The pinned maps, opened once and kept across scrapes. Opening them (parsing the object
//! and looking up every pin) is most of a scrape's cost; reading through open descriptors
//! is cheap.
//!
//! Descriptors keep the maps they were opened on alive, so when a pin is replaced (by
//! `restore`, or a version upgrade) the kept ones would silently show the old, no longer
//! used maps. Every scrape therefore compares the pin directory's entries (name, device,
//! inode) with what they were at opening, and opens again on any difference. bpffs gives
//! every new pin a new inode, so a replaced pin cannot look unchanged. Link pins
//! (`link_*`, from attach and detach) are not maps and do not count.

use std::{
    ffi::OsString,
    os::unix::fs::MetadataExt as _,
    path::Path,
    sync::{Mutex, PoisonError},
};

use anyhow::Context as _;

use crate::kernel::Kernel;

type Fingerprint = Vec<(OsString, u64, u64)>;

/// The map pins under `pin_dir` as (name, device, inode), sorted.
fn fingerprint(pin_dir: &Path) -> anyhow::Result<Fingerprint> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(pin_dir).with_context(|| format!("listing {}", pin_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", pin_dir.display()))?;
        let name = entry.file_name();
        if !crate::kernel::is_map_pin(&name.to_string_lossy()) {
            continue;
        }
        let meta = entry
            .metadata()
            .with_context(|| format!("inspecting {}", entry.path().display()))?;
        out.push((name, meta.dev(), meta.ino()));
    }
    out.sort();
    Ok(out)
}

#[derive(Default)]
pub struct KernelCache {
    opened: Mutex<Option<(Fingerprint, Kernel)>>,
}

impl KernelCache {
    /// Runs `read` on the maps under `pin_dir`, opening them only if they were not open
    /// yet or their pins changed since. A failed read drops them, so the next scrape
    /// starts afresh. Scrapes take turns here, which the daemon limits to two anyway.
    pub fn read<T>(
        &self,
        pin_dir: &Path,
        read: impl FnOnce(&Kernel) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        // Taken before opening: pins replaced while opening differ at the next scrape.
        let now = fingerprint(pin_dir)?;
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        let kernel = match opened.take() {
            Some((seen, kernel)) if seen == now => kernel,
            stale => {
                // The old descriptors go before the new ones are taken.
                drop(stale);
                Kernel::open(pin_dir)?
            }
        };
        let result = read(&kernel);
        if result.is_ok() {
            *opened = Some((now, kernel));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_or_added_entry_changes_the_fingerprint_and_links_do_not() {
        let dir = std::env::temp_dir().join(format!("gf-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("POLICIES"), "a").expect("file");
        let first = fingerprint(&dir).expect("fingerprint");
        std::fs::write(dir.join("link_eth0"), "l").expect("file");
        assert_eq!(fingerprint(&dir).expect("fingerprint"), first);
        // Replaced as a new pin would be: a new file under the same name.
        std::fs::write(dir.join("next"), "b").expect("file");
        std::fs::rename(dir.join("next"), dir.join("POLICIES")).expect("rename");
        let replaced = fingerprint(&dir).expect("fingerprint");
        assert_ne!(replaced, first);
        std::fs::write(dir.join("SESSION_ACTIVE"), "c").expect("file");
        assert_ne!(fingerprint(&dir).expect("fingerprint"), replaced);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(fingerprint(&dir).is_err(), "a missing pin dir is an error");
    }
}
