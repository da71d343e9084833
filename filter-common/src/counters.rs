//! Counter indices and values.

/// Why a packet passed without being matched to a session's rules.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassReason {
    /// Parsed fine, but no flow binding or endpoint matched.
    NoSession = 0,
    /// Not IPv4 or IPv6 (ARP, LLDP, a third VLAN tag, ...).
    NotIp = 1,
    /// IP, but neither UDP nor TCP.
    NotUdpTcp = 2,
    /// A non-first fragment: no ports to classify.
    Fragment = 3,
    /// A header is truncated or invalid.
    Malformed = 4,
    /// More IPv6 extension headers than the walk follows.
    ExtHeaderLimit = 5,
    /// The per-session statistics map is full: the verdict was applied, not counted there.
    StatsFull = 6,
    /// On a port meetings share (a mux port), a flow no meeting has bound, or whose
    /// learned binding went idle; the SFU refuses it itself.
    Unbound = 7,
    /// An IPv6 header whose destination is IPv4-mapped (`::ffff:a.b.c.d`): no local
    /// address, so the relay's stack never delivers it, and it must not reach the meeting
    /// of an IPv4 endpoint on `a.b.c.d`.
    MappedDestination = 8,
}

impl PassReason {
    pub const COUNT: u32 = 9;
    pub const ALL: [PassReason; Self::COUNT as usize] = [
        Self::NoSession,
        Self::NotIp,
        Self::NotUdpTcp,
        Self::Fragment,
        Self::Malformed,
        Self::ExtHeaderLimit,
        Self::StatsFull,
        Self::Unbound,
        Self::MappedDestination,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::NoSession => "no_session",
            Self::NotIp => "not_ip",
            Self::NotUdpTcp => "not_udp_tcp",
            Self::Fragment => "fragment",
            Self::Malformed => "malformed",
            Self::ExtHeaderLimit => "ext_header_limit",
            Self::StatsFull => "stats_full",
            Self::Unbound => "unbound",
            Self::MappedDestination => "mapped_destination",
        }
    }
}

/// What happened to a packet of a session.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed = 0,
    Dropped = 1,
    /// Passed because the matching rule is a dry run.
    WouldDrop = 2,
}

impl Verdict {
    pub const COUNT: usize = 3;
    pub const ALL: [Verdict; Self::COUNT] = [Self::Passed, Self::Dropped, Self::WouldDrop];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Dropped => "dropped",
            Self::WouldDrop => "would_drop",
        }
    }
}

/// Key of the per-CPU `SESSION_STATS` hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatsKey {
    pub session: u32,
    pub territory: u16,
    pub _pad: u16,
}

/// Per-CPU packets and bytes of one (session, territory), indexed by [`Verdict`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub packets: [u64; Verdict::COUNT],
    pub bytes: [u64; Verdict::COUNT],
}

/// `STATS_CACHE` entries per session: the first territories a session's packets come from
/// on a CPU take them.
pub const STATS_CACHE_WAYS: u32 = 4;

/// Entries of the per-CPU `STATS_CACHE`: [`STATS_CACHE_WAYS`] per session id.
pub const STATS_CACHE_ENTRIES: u32 = crate::maps::capacity::MAX_SESSIONS * STATS_CACHE_WAYS;

/// One entry of the per-CPU `STATS_CACHE`, the front of `SESSION_STATS`.
///
/// Each session owns [`STATS_CACHE_WAYS`] entries per CPU, from [`stats_cache_first`]. A
/// packet counts in the one holding its territory; a packet dropped or would-dropped by a
/// rule claims the first free one (session 0, never a session) for its territory, on its
/// CPU, and that CPU counts the territory there from then on. Passing packets of other
/// territories, and territories that find every way taken, are counted in the hash. So
/// the traffic a rule acts on, a flood included, is counted without a hash lookup. A few array
/// reads instead of a hash lookup, and nothing moves between the two: readers add both.
/// Only the session's own packets touch its entries, so the controller clears those of
/// a session that is gone, and of an id about to be reused, without racing anyone's
/// counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedStats {
    pub key: StatsKey,
    pub stats: SessionStats,
}

/// The first `STATS_CACHE` entry of `session`, if it is a session id.
#[inline(always)]
pub const fn stats_cache_first(session: u32) -> Option<u32> {
    if session >= crate::maps::capacity::MAX_SESSIONS {
        return None;
    }
    Some(session * STATS_CACHE_WAYS)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, explicit padding, no pointers.
    unsafe impl aya::Pod for super::StatsKey {}
    unsafe impl aya::Pod for super::SessionStats {}
    unsafe impl aya::Pod for super::CachedStats {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_owns_its_cache_entries() {
        assert_eq!(core::mem::size_of::<CachedStats>(), 8 + 48);
        let last = crate::maps::capacity::MAX_SESSIONS - 1;
        assert_eq!(stats_cache_first(1), Some(STATS_CACHE_WAYS));
        assert_eq!(
            stats_cache_first(last).map(|first| first + STATS_CACHE_WAYS),
            Some(STATS_CACHE_ENTRIES)
        );
        assert_eq!(stats_cache_first(last + 1), None);
    }
}
