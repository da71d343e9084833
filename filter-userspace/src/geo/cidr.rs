//! The territory tables' view of `ipnet` prefixes: the strict text syntax of the loaders
//! (no host bits, plain-digit lengths, errors that quote the input), the integer form the
//! flat-table builders work on, and the conversion of inclusive address ranges to CIDRs.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};

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

/// A prefix as the host-order integer the table builders index with. Ordering of the
/// `ipnet` types (address, then length) is that of the integers, so a covering prefix
/// sorts before its subnets either way.
pub trait NetBits: Copy + Ord + std::fmt::Display {
    type Int: Copy;
    const MAX_LEN: u8;
    /// The network address (host bits zero).
    fn first(&self) -> Self::Int;
    /// The last address.
    fn last(&self) -> Self::Int;
    /// The network bits of a prefix of length `len` (0 for /0).
    fn mask(len: u8) -> Self::Int;
    /// The prefix of length `len` containing `addr`.
    ///
    /// # Panics
    /// If `len` is longer than the family's addresses: callers pass lengths they bound.
    fn network_of(addr: Self::Int, len: u8) -> Self;
    /// A prefix, or `None` if `len` is too long or host bits are set.
    fn from_bits(addr: Self::Int, len: u8) -> Option<Self>;
    /// Parses `ADDRESS/LENGTH`, refusing host bits and anything but digits as the length.
    fn parse_strict(s: &str) -> Result<Self, PrefixParseError>;
}

macro_rules! net_bits {
    ($net:ty, $int:ty, $ip:ty) => {
        impl NetBits for $net {
            type Int = $int;
            const MAX_LEN: u8 = <$int>::BITS as u8;

            fn first(&self) -> $int {
                <$int>::from(self.network())
            }

            fn last(&self) -> $int {
                <$int>::from(self.broadcast())
            }

            fn mask(len: u8) -> $int {
                <$int>::MAX
                    .checked_shl(u32::from(Self::MAX_LEN.saturating_sub(len)))
                    .unwrap_or(0)
            }

            fn network_of(addr: $int, len: u8) -> Self {
                <$net>::new_assert(<$ip>::from(addr & Self::mask(len)), len)
            }

            fn from_bits(addr: $int, len: u8) -> Option<Self> {
                (len <= Self::MAX_LEN && addr & !Self::mask(len) == 0)
                    .then(|| Self::network_of(addr, len))
            }

            fn parse_strict(s: &str) -> Result<Self, PrefixParseError> {
                let (addr, len) = s
                    .split_once('/')
                    .ok_or_else(|| PrefixParseError::NoSlash(snippet(s)))?;
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
                let len = len.parse::<u8>().map_err(|_| bad_len())?;
                let net = <$net>::new(ip, len).map_err(|_| bad_len())?;
                if net.trunc() != net {
                    return Err(PrefixParseError::HostBits {
                        text: snippet(s),
                        network: net.trunc().to_string(),
                    });
                }
                Ok(net)
            }
        }
    };
}
net_bits!(Ipv4Net, u32, Ipv4Addr);
net_bits!(Ipv6Net, u128, Ipv6Addr);

/// The minimal list of CIDRs covering exactly `start..=end`, in address order; none for
/// `start > end`.
pub fn range_to_cidrs_v4(start: u32, end: u32) -> Vec<Ipv4Net> {
    Ipv4Subnets::new(start.into(), end.into(), 0).collect()
}

/// The minimal list of CIDRs covering exactly `start..=end`, in address order; none for
/// `start > end`.
pub fn range_to_cidrs_v6(start: u128, end: u128) -> Vec<Ipv6Net> {
    Ipv6Subnets::new(start.into(), end.into(), 0).collect()
}

#[cfg(test)]
#[path = "cidr_tests.rs"]
mod tests;
