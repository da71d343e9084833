//! The explain probe: XDP metadata that marks a packet as `geofence explain`'s question and
//! carries the program's answer back.
//!
//! `geofence explain` runs a synthesized frame through the attached program with
//! `BPF_PROG_TEST_RUN`, with a [`ProbeMeta`] in the metadata area in front of the frame.
//! The program classifies such a packet like any other, but writes what it decided into
//! the metadata instead of moving a counter: an explain must not show up in the statistics
//! that the transparency report is built from. Real traffic never carries metadata,
//! because geofence is the only XDP program on its interfaces and nothing before it can
//! write any.
//!
//! `BPF_PROG_TEST_RUN` accepts at most 32 bytes of metadata, a multiple of 4.

/// The first 8 bytes of a probe's metadata.
pub const PROBE_MAGIC: [u8; 8] = *b"GFEXPLN1";

/// [`ProbeMeta::answer`]: the program has not answered (not a probe it recognised, or it
/// never reached a verdict).
pub const ANSWER_NONE: u8 = 0;
/// [`ProbeMeta::answer`]: passed unclassified; [`ProbeMeta::pass_reason`] says why.
pub const ANSWER_PASS_REASON: u8 = 1;
/// [`ProbeMeta::answer`]: a packet of a session; session, territory and verdict are set.
pub const ANSWER_SESSION: u8 = 2;
/// [`ProbeMeta::answer`]: the parser could not place it ([`ProbeMeta::pass_reason`] says
/// why) and a guard dropped it; territory is set.
pub const ANSWER_UNPLACED: u8 = 3;

/// [`ProbeMeta::rule_slot`] when no rule slot is reported.
pub const RULE_SLOT_NONE: u8 = 0xff;

/// The metadata of an explain probe, written by userspace (magic, the rest zero) and
/// answered by the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeMeta {
    /// [`PROBE_MAGIC`].
    pub magic: [u8; 8],
    /// [`ANSWER_NONE`], [`ANSWER_PASS_REASON`] or [`ANSWER_SESSION`].
    pub answer: u8,
    /// A `Verdict` as `u8`.
    pub verdict: u8,
    /// A `PassReason` as `u8`, for [`ANSWER_PASS_REASON`].
    pub pass_reason: u8,
    /// The policy rule slot credited with the packet (a territory rule or the rule of a
    /// drop override), or [`RULE_SLOT_NONE`].
    pub rule_slot: u8,
    pub session: u32,
    pub territory: u16,
    pub _pad: u16,
    /// Room for later answers; zero.
    pub _reserved: [u8; 12],
}

impl ProbeMeta {
    /// A question: the magic, no answer yet.
    pub const fn question() -> ProbeMeta {
        ProbeMeta {
            magic: PROBE_MAGIC,
            answer: ANSWER_NONE,
            verdict: 0,
            pass_reason: 0,
            rule_slot: RULE_SLOT_NONE,
            session: 0,
            territory: 0,
            _pad: 0,
            _reserved: [0; 12],
        }
    }
}

/// Bytes of [`ProbeMeta`]: the most metadata `BPF_PROG_TEST_RUN` takes.
pub const PROBE_META_LEN: usize = 32;
const _: () = assert!(core::mem::size_of::<ProbeMeta>() == PROBE_META_LEN);
const _: () = assert!(PROBE_META_LEN.is_multiple_of(4));

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, explicit padding, no pointers.
    unsafe impl aya::Pod for super::ProbeMeta {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<ProbeMeta>(), 32);
        assert!(
            align_of::<ProbeMeta>() <= 4,
            "metadata is only 4-byte aligned"
        );
        assert_eq!(offset_of!(ProbeMeta, magic), 0);
        assert_eq!(offset_of!(ProbeMeta, answer), 8);
        assert_eq!(offset_of!(ProbeMeta, verdict), 9);
        assert_eq!(offset_of!(ProbeMeta, pass_reason), 10);
        assert_eq!(offset_of!(ProbeMeta, rule_slot), 11);
        assert_eq!(offset_of!(ProbeMeta, session), 12);
        assert_eq!(offset_of!(ProbeMeta, territory), 16);
        assert_eq!(offset_of!(ProbeMeta, _pad), 18);
        assert_eq!(offset_of!(ProbeMeta, _reserved), 20);
    }

    #[test]
    fn question_is_unanswered() {
        let q = ProbeMeta::question();
        assert_eq!(&q.magic, b"GFEXPLN1");
        assert_eq!(q.answer, ANSWER_NONE);
        assert_eq!(q.rule_slot, RULE_SLOT_NONE);
    }
}
