//! A BPF array mapped into this process: the territory tables fill a whole generation
//! through it, and sync reads and writes the port table, without a syscall per entry.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::AtomicU32,
};

use anyhow::{Context as _, bail, ensure};
use aya::maps::{Map, MapData};

use super::Kernel;

/// `BPF_F_MMAPABLE`: the maps were created with it, or they cannot be mapped.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// One BPF array mapped into this process; unmapped on drop. The mapping stays valid
/// after the map's fd is closed, and the map lives on in its pin.
pub struct Mapped<T> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
    /// The map's name, for errors.
    name: &'static str,
}

impl<T: Copy> Mapped<T> {
    pub fn open(kernel: &Kernel, name: &'static str, writable: bool) -> anyhow::Result<Self> {
        let Map::Array(data) = kernel.map(name)? else {
            bail!("map {name} is not an array");
        };
        Self::map(data, name, writable)
    }

    pub fn map(data: &MapData, name: &'static str, writable: bool) -> anyhow::Result<Self> {
        // The kernel lays array elements out 8 bytes apart at least: only then is the
        // mapping a slice of T.
        ensure!(
            size_of::<T>().is_multiple_of(8),
            "map {name}: elements of {} bytes are padded in the mapping",
            size_of::<T>()
        );
        let info = data
            .info()
            .with_context(|| format!("inspecting map {name}"))?;
        ensure!(
            info.value_size() as usize == size_of::<T>() && info.map_flags() & BPF_F_MMAPABLE != 0,
            "map {name} has values of {} bytes and flags {:#x}, not the layout of this \
             version ({} bytes, mmapable); the pins under the pin directory are from another \
             geofence version: detach, remove the pin directory and load again",
            info.value_size(),
            info.map_flags(),
            size_of::<T>()
        );
        let len = info.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let bytes = (len * size_of::<T>()).next_multiple_of(page);
        let (prot, flags) = if writable {
            // Populate: a load writes every page, and one fault per page costs more.
            (
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
            )
        } else {
            (libc::PROT_READ, libc::MAP_SHARED)
        };
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh mapping of a BPF array fd at offset 0; the kernel checks the size.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), bytes, prot, flags, fd, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping map {name} into memory"));
        }
        let ptr = NonNull::new(ptr.cast::<T>()).context("mmap returned null")?;
        Ok(Mapped {
            ptr,
            len,
            bytes,
            name,
        })
    }

    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `len` elements of T lie in the mapping, which is page-aligned; T is plain
        // integers, valid for any bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Only for mappings opened writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, and `&mut self` makes this the only view in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Copies `src` to the front and zeroes the rest, so the generation holds exactly it.
    pub fn fill(&mut self, src: &[T], zero: T) -> anyhow::Result<()> {
        let name = self.name;
        let dst = self.as_mut_slice();
        ensure!(
            src.len() <= dst.len(),
            "map {name} holds {} entries but the table needs {}",
            dst.len(),
            src.len()
        );
        let (used, rest) = dst.split_at_mut(src.len());
        used.copy_from_slice(src);
        rest.fill(zero);
        Ok(())
    }

    /// Whether the mapped array starts with `want`.
    pub fn starts_with(&self, want: &[T]) -> bool
    where
        T: PartialEq,
    {
        self.as_slice().starts_with(want)
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}

impl<const N: usize> Mapped<[u32; N]> {
    /// Every `u32` of the array, as atomics: for arrays the program reads while they
    /// change, so that each is written whole.
    pub fn as_atomic(&self) -> &[AtomicU32] {
        // SAFETY: AtomicU32 has the size and alignment of u32, and `[u32; N]` elements lie
        // back to back (the array's element size is their size, checked in `map`); the
        // mapping is page-aligned and holds `len × N` of them; every access through the
        // view is atomic.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU32>(), self.len * N) }
    }
}
