//! `BPF_PROG_TEST_RUN` for XDP with a context and metadata, on any program fd (aya's
//! `TestRun` needs a program object it loaded itself, and explain runs the attached one).

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;

/// The `test` member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// The id member of `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `struct xdp_md`; in a test run, `data`/`data_end` are offsets into the input.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised bpf_attr member of the size passed; the
    // pointers inside it point to buffers that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A new fd of the loaded program with id `id`.
pub fn program_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        id,
        ..GetFdAttr::default()
    };
    let fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What one XDP test run returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpRun {
    /// The XDP action.
    pub action: u32,
    /// The metadata area after the run.
    pub meta: Vec<u8>,
    /// The frame after the run.
    pub frame: Vec<u8>,
}

/// Room for a frame to grow in a test run (`bpf_xdp_adjust_tail`); geofence never does.
const GROWTH: usize = 256;

/// Runs `frame`, preceded by `meta` in the XDP metadata area, once through `prog`.
/// `meta` must be a multiple of 4 bytes and at most 32 (the kernel's limit).
pub fn run_xdp(prog: BorrowedFd<'_>, meta: &[u8], frame: &[u8]) -> io::Result<XdpRun> {
    let mut data_in = Vec::with_capacity(meta.len() + frame.len());
    data_in.extend_from_slice(meta);
    data_in.extend_from_slice(frame);
    let ctx_in = XdpMd {
        data: meta.len() as u32,
        data_end: data_in.len() as u32,
        ..XdpMd::default()
    };
    let mut ctx_out = XdpMd::default();
    // The output starts at data_meta: metadata, then the frame.
    let mut data_out = vec![0u8; data_in.len() + GROWTH];
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: data_in.len() as u32,
        data_size_out: data_out.len() as u32,
        data_in: data_in.as_ptr() as u64,
        data_out: data_out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_size_out: size_of::<XdpMd>() as u32,
        ctx_in: &ctx_in as *const XdpMd as u64,
        ctx_out: &mut ctx_out as *mut XdpMd as u64,
        ..TestAttr::default()
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    let out_len = (attr.data_size_out as usize).min(data_out.len());
    let meta_len = (ctx_out.data as usize).min(out_len);
    data_out.truncate(out_len);
    let frame = data_out.split_off(meta_len);
    Ok(XdpRun {
        action: attr.retval,
        meta: data_out,
        frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_linux_bpf_h() {
        assert_eq!(size_of::<TestAttr>(), 80);
        assert_eq!(std::mem::offset_of!(TestAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(TestAttr, batch_size), 72);
        assert_eq!(size_of::<XdpMd>(), 24);
        assert_eq!(size_of::<GetFdAttr>(), 12);
    }
}
