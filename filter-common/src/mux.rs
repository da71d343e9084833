//! Ports shared by many meetings (SFUs that carry every meeting on one UDP port): the
//! meeting of a packet is told by the server ICE ufrag in the client's STUN Binding
//! request (`USERNAME = serverUfrag:clientUfrag`, RFC 8445 §7.2.2), then by the client's
//! 5-tuple, which the program binds to that meeting when it sees the request.
//!
//! A mux port is an endpoint whose session is [`MUX_SESSION`]: in `ENDPOINTS` for one
//! local address, in the `PORTS` entry for any address, with [`crate::maps::ports::MUX`]
//! set in the entry either way so that only packets to a mux port are looked at as STUN.

/// The "session" of a mux endpoint: no meeting owns the port. Above every session id, and
/// within the 16 bits a `PORTS` entry keeps for the wildcard endpoint's session.
pub const MUX_SESSION: u32 = 0xffff;

/// Longest server ufrag the program reads; RFC 8839 allows 256, SFUs choose 4 to 32.
pub const UFRAG_MAX: usize = 64;

/// A server ufrag as the `UFRAGS` map keys it: its bytes, zero-padded. ICE characters are
/// `[A-Za-z0-9+/]`, never zero, so the padding cannot make two ufrags equal; the map
/// compares whole keys, so a lookup compares the bytes, not a hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UfragKey {
    pub bytes: [u8; UFRAG_MAX],
}

impl UfragKey {
    pub const EMPTY: UfragKey = UfragKey {
        bytes: [0; UFRAG_MAX],
    };
}

/// What a server ufrag is registered to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UfragBinding {
    pub session: u32,
    /// The registration's number, which a flow learned from it keeps, so that `explain`
    /// can say which ufrag bound a flow without the flow map holding 64 bytes per flow.
    pub id: u32,
}

/// Who bound a flow to its meeting.
pub mod origin {
    /// `geofence flow add` or the policy file: written by sync with the state.
    pub const POLICY: u8 = 1;
    /// The binding API (a control plane that knows the client's address).
    pub const API: u8 = 2;
    /// The program, from a STUN Binding request to a registered ufrag.
    pub const LEARNED: u8 = 3;
}

/// A flow's meeting (the `FLOWS` value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowBinding {
    pub session: u32,
    /// One of [`origin`].
    pub origin: u8,
    pub _pad: [u8; 3],
    /// The [`UfragBinding::id`] a learned flow was bound by; 0 otherwise.
    pub ufrag_id: u32,
    /// The low 32 bits of the kernel's tick count (`bpf_jiffies64`) when a learned flow
    /// was last bound or refreshed: what every later packet of the flow checks idleness
    /// against, because reading the tick count costs a packet almost nothing and the
    /// nanosecond clock costs a fifth of the whole lookup.
    pub refreshed_ticks: u32,
    /// When a learned flow was last bound or refreshed, on the program's clock
    /// (`bpf_ktime_get_coarse_ns`): for people (`explain`), and for the idle check when
    /// `MUX_CONFIG` holds no tick count; 0 for flows the control plane bound.
    pub refreshed_ns: u64,
}

impl FlowBinding {
    /// A binding the control plane made (policy or API): no ufrag, never idle.
    pub const fn bound(session: u32, origin: u8) -> FlowBinding {
        FlowBinding {
            session,
            origin,
            _pad: [0; 3],
            ufrag_id: 0,
            refreshed_ticks: 0,
            refreshed_ns: 0,
        }
    }

    /// Whether a learned binding has gone `idle_ns` without a Binding request at `now_ns`;
    /// bindings the control plane made never do.
    #[inline(always)]
    pub const fn idle(&self, now_ns: u64, idle_ns: u64) -> bool {
        self.origin == origin::LEARNED && now_ns.saturating_sub(self.refreshed_ns) > idle_ns
    }

    /// [`FlowBinding::idle`] in kernel ticks: `now_ticks` is the low 32 bits of the tick
    /// count and `idle_ticks` the idle time rounded up to whole ticks. The count wraps
    /// after 2^32 ticks (49.7 days at 1,000 Hz), so a binding left unrefreshed for that
    /// long reads as fresh again for one idle time: it then names the meeting its last
    /// Binding request named, as it did before it went idle.
    #[inline(always)]
    pub const fn idle_ticks(&self, now_ticks: u32, idle_ticks: u32) -> bool {
        self.origin == origin::LEARNED && now_ticks.wrapping_sub(self.refreshed_ticks) > idle_ticks
    }
}

/// A learned binding stops applying after this long without a Binding request, unless
/// `MUX_CONFIG` says otherwise. ICE agents send consent checks at least every 5 s
/// (RFC 7675), so six are missed first.
pub const LEARNED_IDLE_NS: u64 = 30_000_000_000;

/// Entries of `MUX_CONFIG`.
pub mod config {
    /// How long a learned binding applies without a Binding request, in ns; 0: the default
    /// [`super::LEARNED_IDLE_NS`].
    pub const LEARNED_IDLE: u32 = 0;
    /// [`LEARNED_IDLE`] (or its default) in kernel ticks, rounded up, as userspace
    /// computes it from the tick length (`clock_getres(CLOCK_MONOTONIC_COARSE)`); 0: not
    /// written, and the program checks idleness on the nanosecond clock instead.
    pub const LEARNED_IDLE_TICKS: u32 = 1;
    pub const ENTRIES: u32 = 2;
}

/// What happened to STUN on mux ports, per CPU (`MUX_EVENTS`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuxEvent {
    /// A Binding request bound a flow that had no binding from this ufrag.
    Learned = 0,
    /// A Binding request refreshed its flow's binding.
    Refreshed = 1,
    /// A Binding request's server ufrag is registered to no meeting.
    UnknownUfrag = 2,
    /// A Binding request (the cookie and type say so) that cannot be walked: a length that
    /// is not a multiple of 4 or overruns the datagram, an attribute cut short, or a
    /// USERNAME without `:`.
    StunMalformed = 3,
    /// A server ufrag longer than [`UFRAG_MAX`].
    UfragTooLong = 4,
    /// A Binding request with no USERNAME within the attributes the walk reads.
    NoUsername = 5,
    /// A packet on a mux port with no live binding, from a territory some meeting's rule
    /// blocks: dropped. A binding evicted from the LRU flow table (a flood of new flows) or
    /// gone idle would otherwise let a blocked participant's media through as unbound
    /// until its next Binding request; a participant of an unblocked meeting loses its
    /// packets only until then.
    UnboundBlocked = 6,
}

impl MuxEvent {
    pub const COUNT: u32 = 7;
    pub const ALL: [MuxEvent; Self::COUNT as usize] = [
        Self::Learned,
        Self::Refreshed,
        Self::UnknownUfrag,
        Self::StunMalformed,
        Self::UfragTooLong,
        Self::NoUsername,
        Self::UnboundBlocked,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Refreshed => "refreshed",
            Self::UnknownUfrag => "unknown_ufrag",
            Self::StunMalformed => "stun_malformed",
            Self::UfragTooLong => "ufrag_too_long",
            Self::NoUsername => "no_username",
            Self::UnboundBlocked => "unbound_blocked",
        }
    }
}

/// STUN (RFC 8489) as the program reads it.
pub mod stun {
    pub const HEADER_LEN: usize = 20;
    pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    pub const BINDING_REQUEST: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    /// Attributes walked before giving up on finding USERNAME. Browsers put it first;
    /// a Binding request carries about six (USERNAME, PRIORITY, ICE-CONTROLLING or
    /// -CONTROLLED, USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT, a vendor one or two).
    pub const MAX_ATTRIBUTES: usize = 12;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] plain data with explicit padding, no invalid bit patterns.
    unsafe impl aya::Pod for super::UfragKey {}
    unsafe impl aya::Pod for super::UfragBinding {}
    unsafe impl aya::Pod for super::FlowBinding {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<FlowBinding>(), 24);
        assert_eq!(size_of::<UfragBinding>(), 8);
        assert_eq!(size_of::<UfragKey>(), UFRAG_MAX);
    }

    #[test]
    fn only_learned_bindings_go_idle() {
        let mut b = FlowBinding::bound(3, origin::LEARNED);
        b.refreshed_ns = 100;
        assert!(!b.idle(100 + LEARNED_IDLE_NS, LEARNED_IDLE_NS));
        assert!(b.idle(101 + LEARNED_IDLE_NS, LEARNED_IDLE_NS));
        assert!(!FlowBinding::bound(3, origin::API).idle(u64::MAX, LEARNED_IDLE_NS));
    }

    #[test]
    fn the_tick_count_wraps_without_waking_an_idle_binding() {
        let mut b = FlowBinding::bound(3, origin::LEARNED);
        b.refreshed_ticks = u32::MAX - 10;
        // 100 ticks later, across the wrap of the 32-bit count.
        assert!(!b.idle_ticks(89, 100));
        assert!(b.idle_ticks(90, 100));
        assert!(!FlowBinding::bound(3, origin::POLICY).idle_ticks(u32::MAX / 2, 1));
    }

    #[test]
    fn the_mux_session_fits_a_ports_entry_above_every_session() {
        use crate::maps::{capacity::MAX_SESSIONS, ports};
        const { assert!(MUX_SESSION >= MAX_SESSIONS) };
        let entry = ports::entry(ports::ENDPOINT_ANY | ports::MUX, MUX_SESSION);
        assert_eq!(ports::wildcard_session(entry), MUX_SESSION);
    }
}
