//! Frames written to the wire: a raw AF_PACKET socket on an interface of the calling
//! thread's namespace, for tests that send what no socket API would (padded headers,
//! IPv4-mapped sources) through a real stack.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};

/// A raw AF_PACKET socket bound to `iface`, opened in the calling thread's namespace.
pub fn packet_socket(iface: &str) -> Result<OwnedFd> {
    let name = std::ffi::CString::new(iface).context("interface name")?;
    // SAFETY: plain syscalls with checked results; the fd is owned at once.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            bail!("no interface {iface}");
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            bail!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        if libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) != 0 {
            bail!("bind(AF_PACKET): {}", std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

pub fn send(fd: &OwnedFd, frame: &[u8]) -> Result<()> {
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if n < 0 {
        bail!("send: {}", std::io::Error::last_os_error());
    }
    Ok(())
}
