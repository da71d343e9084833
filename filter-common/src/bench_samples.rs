//! How `cargo xtask bench` stores the source addresses its per-packet programs draw, shared
//! by the bench object (`filter-ebpf/src/bin/bench.rs`), which reads them, and the bench
//! (`bench/src/per_packet/samples.rs`), which writes them.
//!
//! A set holds [`SET_LEN`] sources drawn from a territory table. It shares the CPU's caches
//! with the table being measured, and a larger set crowds the full table (whose lookups
//! read about 3 MiB) out of the L2 more than the 10k-prefix subset (about 0.5 MiB), which
//! inflates the scaling ratio. So IPv4 sources are stored in 4 bytes, [`V4_PER_LINE`] to a
//! 64-byte element (256 KiB a set). IPv6 sources take 16 bytes (1 MiB a set): storing only
//! their upper halves, with the low half derived from it except for sources of prefixes
//! longer than /64 (8% of the real table's), did not move the IPv6 scaling ratio in six
//! runs side by side (docs/performance.md), so the simpler layout stays.

/// Sources per set; a power of two, so that a random index is one mask.
pub const SET_LEN: u32 = 1 << 16;
/// IPv4 sources per element: one cache line of 4-byte addresses.
pub const V4_PER_LINE: u32 = 16;
