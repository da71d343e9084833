//! Whole-map reads and whole-batch writes in one syscall each: `BPF_MAP_LOOKUP_BATCH` reads
//! a per-CPU array (aya reads an entry per syscall, and the stats cache has an entry per way
//! of every session id, which `status`, the daemon's scrapes and every sync read);
//! `BPF_MAP_UPDATE_BATCH` and `BPF_MAP_DELETE_BATCH` write a batch of ufrags that a kill
//! must not cut in two.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Context as _, bail, ensure};
use aya::{Pod, maps::MapData};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The batch part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of the per-CPU array `map` (named `name` in errors), each as its per-CPU
/// values.
pub fn per_cpu_array<T: Pod + Default>(map: &MapData, name: &str) -> anyhow::Result<Vec<Vec<T>>> {
    let info = map
        .info()
        .with_context(|| format!("inspecting map {name}"))?;
    ensure!(
        info.value_size() as usize == size_of::<T>() && size_of::<T>().is_multiple_of(8),
        "map {name} has values of {} bytes, not the {} of this version",
        info.value_size(),
        size_of::<T>()
    );
    let entries = info.max_entries() as usize;
    let cpus = aya::util::nr_cpus().map_err(|(path, e)| anyhow::anyhow!("reading {path}: {e}"))?;
    let mut keys = vec![0u32; entries];
    let mut values = vec![T::default(); entries * cpus];
    let mut out_batch = 0u32;
    let mut attr = BatchAttr {
        out_batch: (&raw mut out_batch) as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count: u32::try_from(entries).context("map too large")?,
        map_fd: u32::try_from(map.fd().as_fd().as_raw_fd()).context("a negative fd")?,
        ..BatchAttr::default()
    };
    // SAFETY: the attr points at buffers sized for `count` keys and `count × cpus` values
    // of the map's value size, which outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_BATCH,
            &raw mut attr,
            size_of::<BatchAttr>(),
        )
    };
    // ENOENT: the batch reached the end of the map, which for an array read from the
    // start means every entry was copied.
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e).with_context(|| format!("reading map {name} in one batch"));
        }
    }
    if attr.count as usize != entries {
        bail!(
            "reading map {name} in one batch returned {} of {entries} entries",
            attr.count
        );
    }
    let mut out: Vec<Vec<T>> = vec![Vec::new(); entries];
    for (i, &key) in keys.iter().enumerate() {
        let slot = out
            .get_mut(key as usize)
            .with_context(|| format!("map {name} returned key {key}"))?;
        *slot = values[i * cpus..(i + 1) * cpus].to_vec();
    }
    Ok(out)
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// A batch of map writes that stopped part way: how many entries it had done, and why.
#[derive(Debug, thiserror::Error)]
#[error("after {done} entries: {source}")]
pub struct Partial {
    pub done: usize,
    #[source]
    pub source: std::io::Error,
}

/// One `BPF_MAP_UPDATE_BATCH` (`values` not null) or `BPF_MAP_DELETE_BATCH`: the kernel
/// runs the whole batch in one syscall, which a signal, SIGKILL too, does not interrupt.
fn write_batch<K: Pod, V: Pod>(
    map: &MapData,
    keys: &[K],
    values: Option<&[V]>,
) -> Result<(), Partial> {
    let partial = |done, source| Partial { done, source };
    let (cmd, values) = match values {
        Some(v) => (BPF_MAP_UPDATE_BATCH, v.as_ptr() as u64),
        None => (BPF_MAP_DELETE_BATCH, 0),
    };
    let count = u32::try_from(keys.len())
        .map_err(|_| partial(0, std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    let fd = u32::try_from(map.fd().as_fd().as_raw_fd())
        .map_err(|_| partial(0, std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values,
        count,
        map_fd: fd,
        ..BatchAttr::default()
    };
    // SAFETY: the attr points at `count` keys (and values) of the map's sizes, which the
    // caller's types give, and they outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, &raw mut attr, size_of::<BatchAttr>()) };
    if ret < 0 {
        return Err(partial(
            attr.count as usize,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Writes every `(key, value)` of a hash map in one syscall (see [`write_batch`]).
pub fn update<K: Pod, V: Pod>(map: &MapData, keys: &[K], values: &[V]) -> Result<(), Partial> {
    write_batch(map, keys, Some(values))
}

/// Deletes every key of a hash map in one syscall; every key must be present.
pub fn delete<K: Pod>(map: &MapData, keys: &[K]) -> Result<(), Partial> {
    write_batch::<K, K>(map, keys, None)
}
