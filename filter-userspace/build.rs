use anyhow::Context as _;
use aya_build::{Package, Toolchain};

/// Builds the XDP program with nightly for bpfel-unknown-none; the binary embeds it.
fn main() -> anyhow::Result<()> {
    let package = Package {
        name: "filter-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../filter-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::default()).context(
        "building the eBPF program (needs nightly, rust-src and bpf-linker: `cargo xtask setup`)",
    )
}
