//! Attaching the program to an interface, possibly in another network namespace, as a
//! pinned BPF link: the attachment outlives the CLI process and goes away on `detach`.

use std::{fs::File, os::fd::AsFd as _, path::Path};

use anyhow::{Context as _, anyhow, bail};
use aya::programs::{
    ProgramError, XdpMode,
    links::{FdLink, PinnedLink},
};
use nix::sched::{CloneFlags, setns};

use super::{
    Kernel,
    links::{is_link_pin, link_pin, loaded_program},
};

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (fastest; needs driver support).
    Native,
    /// In the generic network stack (works everywhere, slower).
    Skb,
}

impl AttachMode {
    fn xdp(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        }
    }
}

/// Moves this thread into a named network namespace until dropped.
struct NetnsGuard {
    home: File,
}

impl NetnsGuard {
    fn enter(name: &str) -> anyhow::Result<NetnsGuard> {
        let home =
            File::open("/proc/thread-self/ns/net").context("opening own network namespace")?;
        let path = Path::new("/run/netns").join(name);
        let target = File::open(&path).with_context(|| {
            format!(
                "network namespace `{name}` not found ({} is missing)",
                path.display()
            )
        })?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace `{name}`"))?;
        Ok(NetnsGuard { home })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!("warning: could not return to the original network namespace: {e}");
        }
    }
}

/// Whether a pin name is a map's: neither a link nor a program pin, the two kinds of pin
/// geofence keeps beside its maps, nor the directory an upgrade stages its new pins in.
pub fn is_map_pin(name: &str) -> bool {
    !is_link_pin(name) && !super::build::is_program_pin(name) && name != super::upgrade::NEXT_DIR
}

fn interface_index(interface: &str, netns: Option<&str>) -> anyhow::Result<u32> {
    let place = netns.map_or(String::new(), |ns| format!(" in network namespace `{ns}`"));
    nix::net::if_::if_nametoindex(interface)
        .map_err(|_| anyhow!("interface `{interface}` not found{place}"))
}

pub fn attach(
    kernel: &mut Kernel,
    interface: &str,
    netns: Option<&str>,
    mode: AttachMode,
) -> anyhow::Result<()> {
    let pin = link_pin(&kernel.pin_dir, interface, netns);
    if pin.exists() {
        bail!(
            "geofence is already attached to `{interface}` (pinned at {})",
            pin.display()
        );
    }
    let program = loaded_program(kernel)?;
    let link_id = {
        let _inside = netns.map(NetnsGuard::enter).transpose()?;
        let index = interface_index(interface, netns)?;
        program
            .attach_to_if_index(index, mode.xdp())
            .map_err(|e| attach_error(e, interface, mode))?
    };
    let link = program.take_link(link_id)?;
    let link =
        FdLink::try_from(link).context("the kernel attached without a BPF link; cannot pin it")?;
    link.pin(&pin)
        .with_context(|| format!("pinning the link at {}", pin.display()))?;
    // The attachment is made; without the program pin only the build check is slower.
    if let Err(e) = super::build::remember(kernel) {
        eprintln!("warning: {e:#}; table loads will load the program to check its build");
    }
    Ok(())
}

fn attach_error(error: ProgramError, interface: &str, mode: AttachMode) -> anyhow::Error {
    let errno = match &error {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match (errno, mode) {
        (Some(libc::EBUSY) | Some(libc::EEXIST), _) => anyhow!(
            "`{interface}` already has an XDP program attached; detach it first (`ip link set dev {interface} xdp off` if it is not geofence's)"
        ),
        (_, AttachMode::Native) => anyhow!(
            "the driver of `{interface}` refused a native XDP attachment ({error}); try `--mode skb`"
        ),
        _ => anyhow!("attaching to `{interface}` failed: {error}"),
    }
}

pub fn detach(pin_dir: &Path, interface: &str, netns: Option<&str>) -> anyhow::Result<()> {
    let pin = link_pin(pin_dir, interface, netns);
    if !pin.exists() {
        bail!(
            "geofence is not attached to `{interface}` (no link pinned at {})",
            pin.display()
        );
    }
    let link = PinnedLink::from_pin(&pin)
        .with_context(|| format!("opening the pinned link {}", pin.display()))?;
    // Unpinning drops the last reference once our fd closes, which detaches the program.
    let link = link
        .unpin()
        .with_context(|| format!("unpinning {}", pin.display()))?;
    drop(link);
    // The detachment is made; a program pin left behind only keeps a program loaded.
    if let Err(e) = super::build::forget_unattached(pin_dir) {
        eprintln!(
            "warning: {e:#}; remove the prog_* pins under it by hand once nothing is attached"
        );
    }
    Ok(())
}
