//! IPv4/IPv6 prefixes and the conversion of inclusive address ranges to CIDRs.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a prefix string was rejected.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PrefixParseError {
    #[error("{0:?} is not a prefix (expected ADDRESS/LENGTH)")]
    NoSlash(String),
    #[error("unparseable address {0:?}")]
    BadAddress(String),
    #[error("prefix length {len:?} is not a number in 0..={max}")]
    BadLength { len: String, max: u8 },
    #[error("host bits are set in {text} (the network is {network})")]
    HostBits { text: String, network: String },
}

/// Shortens untrusted text quoted in error messages, so a huge line stays readable.
pub(crate) fn snippet(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The unsigned integer operations range splitting needs, so one algorithm serves both families.
trait Bits: Copy + Ord + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> {
    const BITS: u32;
    const ONE: Self;
    const MAX: Self;
    fn tz(self) -> u32;
    fn log2(self) -> u32;
    fn low_mask(k: u32) -> Self;
}

macro_rules! impl_bits {
    ($t:ty) => {
        impl Bits for $t {
            const BITS: u32 = <$t>::BITS;
            const ONE: Self = 1;
            const MAX: Self = <$t>::MAX;
            fn tz(self) -> u32 {
                self.trailing_zeros()
            }
            fn log2(self) -> u32 {
                self.ilog2()
            }
            fn low_mask(k: u32) -> Self {
                <$t>::MAX.checked_shr(<$t>::BITS - k).unwrap_or(0)
            }
        }
    };
}
impl_bits!(u32);
impl_bits!(u128);

/// Greedy split of `[start, end]` into aligned blocks, which yields the minimal cover.
/// Calls `emit(network, prefix_len)`; an empty range (`start > end`) emits nothing.
fn split<T: Bits>(start: T, end: T, mut emit: impl FnMut(T, u8)) {
    if start > end {
        return;
    }
    let mut s = start;
    loop {
        let align = s.tz(); // BITS when s == 0
        let span_minus_one = end - s;
        let fit = if span_minus_one == T::MAX {
            T::BITS
        } else {
            (span_minus_one + T::ONE).log2()
        };
        let k = align.min(fit);
        emit(s, (T::BITS - k) as u8);
        let last = s + T::low_mask(k);
        if last >= end {
            return;
        }
        s = last + T::ONE;
    }
}

pub(crate) fn split_v4(start: u32, end: u32, emit: impl FnMut(u32, u8)) {
    split(start, end, emit)
}

pub(crate) fn split_v6(start: u128, end: u128, emit: impl FnMut(u128, u8)) {
    split(start, end, emit)
}

/// The minimal list of CIDRs covering exactly `start..=end`, in address order.
pub fn range_to_cidrs_v4(start: u32, end: u32) -> Vec<PrefixV4> {
    let mut out = Vec::new();
    split_v4(start, end, |addr, len| out.push(PrefixV4 { addr, len }));
    out
}

/// The minimal list of CIDRs covering exactly `start..=end`, in address order.
pub fn range_to_cidrs_v6(start: u128, end: u128) -> Vec<PrefixV6> {
    let mut out = Vec::new();
    split_v6(start, end, |addr, len| out.push(PrefixV6 { addr, len }));
    out
}

macro_rules! prefix_type {
    ($(#[$doc:meta])* $name:ident, $int:ty, $ip:ty) => {
        $(#[$doc])*
        /// Ordered by address, then length, so a covering prefix sorts before its subnets.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name {
            /// The network address in host order, host bits zero.
            pub addr: $int,
            pub len: u8,
        }

        impl $name {
            pub const MAX_LEN: u8 = <$int>::BITS as u8;

            /// A prefix, or `None` if `len` is too long or host bits are set.
            pub fn new(addr: $int, len: u8) -> Option<Self> {
                (len <= Self::MAX_LEN && addr & !Self::mask(len) == 0).then_some(Self { addr, len })
            }

            /// The network bits of a prefix of length `len` (0 for /0).
            pub fn mask(len: u8) -> $int {
                <$int>::MAX
                    .checked_shl(u32::from(Self::MAX_LEN.saturating_sub(len)))
                    .unwrap_or(0)
            }

            pub fn contains(&self, addr: $int) -> bool {
                addr & Self::mask(self.len) == self.addr
            }

            pub fn first(&self) -> $int {
                self.addr
            }

            pub fn last(&self) -> $int {
                self.addr | !Self::mask(self.len)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", <$ip>::from(self.addr), self.len)
            }
        }

        impl FromStr for $name {
            type Err = PrefixParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let (addr, len) =
                    s.split_once('/').ok_or_else(|| PrefixParseError::NoSlash(snippet(s)))?;
                let ip = <$ip>::from_str(addr)
                    .map_err(|_| PrefixParseError::BadAddress(snippet(addr)))?;
                let bad_len = || PrefixParseError::BadLength {
                    len: snippet(len),
                    max: Self::MAX_LEN,
                };
                // u8::from_str would accept "+8"; only plain digits are a length.
                if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad_len());
                }
                let len = len.parse::<u8>().ok().filter(|&l| l <= Self::MAX_LEN).ok_or_else(bad_len)?;
                let addr = <$int>::from(ip);
                Self::new(addr, len).ok_or_else(|| PrefixParseError::HostBits {
                    text: snippet(s),
                    network: Self { addr: addr & Self::mask(len), len }.to_string(),
                })
            }
        }
    };
}

prefix_type!(
    /// An IPv4 prefix.
    PrefixV4,
    u32,
    Ipv4Addr
);
prefix_type!(
    /// An IPv6 prefix.
    PrefixV6,
    u128,
    Ipv6Addr
);

#[cfg(test)]
#[path = "cidr_tests.rs"]
mod tests;
