//! Explain probes: packets that `geofence explain` runs through the program with
//! `BPF_PROG_TEST_RUN`, marked by [`ProbeMeta`] in the XDP metadata area.
//!
//! Why this exists: explain asks the kernel for its decision on a synthesized packet, and
//! that decision must be the real one (same parse, session, territory and rule code), but
//! the packet must not be counted, or every explain would add a fake packet to the
//! statistics, pass reasons and per-rule counters that the transparency report publishes.
//! So a probe is classified normally, and its decision is written back into the metadata
//! instead of into the counters.
//!
//! Real traffic never carries metadata: geofence is the only XDP program on its interfaces
//! and the driver hands it `data_meta == data`. For it the check costs one comparison of
//! two pointers, made only at the point where a packet would be counted.

use aya_ebpf::programs::XdpContext;
use filter_common::{
    PassReason, TerritoryId, Verdict,
    policy::RULES_PER_SESSION,
    probe::{
        ANSWER_PASS_REASON, ANSWER_SESSION, ANSWER_UNPLACED, PROBE_MAGIC, PROBE_META_LEN,
        ProbeMeta, RULE_SLOT_NONE,
    },
};

/// The probe metadata in front of the packet: a whole [`ProbeMeta`] with the magic.
#[inline(always)]
fn find(ctx: &XdpContext) -> Option<*mut ProbeMeta> {
    let meta = ctx.metadata();
    // The bounds check the verifier needs before any access to the metadata area; with no
    // metadata it fails at once.
    if meta + PROBE_META_LEN > ctx.metadata_end() {
        return None;
    }
    // SAFETY: the PROBE_META_LEN bytes at `meta` lie inside the metadata area.
    let magic = unsafe { core::ptr::read_unaligned(meta as *const [u8; 8]) };
    if magic != PROBE_MAGIC {
        return None;
    }
    Some(meta as *mut ProbeMeta)
}

/// For a probe that passed unclassified: records why and returns true (do not count).
/// For real traffic: false.
#[inline(always)]
pub fn answered_pass(ctx: &XdpContext, reason: PassReason) -> bool {
    let Some(probe) = find(ctx) else {
        return false;
    };
    // SAFETY: `find` checked that the whole ProbeMeta lies inside the metadata area.
    unsafe {
        (*probe).answer = ANSWER_PASS_REASON;
        (*probe).verdict = Verdict::Passed as u8;
        (*probe).pass_reason = reason as u8;
    }
    true
}

/// For a probe of a session: records the session, territory, verdict and the credited
/// rule slot ([`RULE_SLOT_NONE`] for none) and returns true (do not count). For real
/// traffic: false.
#[inline(always)]
pub fn answered_session(
    ctx: &XdpContext,
    session: u32,
    territory: TerritoryId,
    verdict: Verdict,
    slot: u32,
) -> bool {
    let Some(probe) = find(ctx) else {
        return false;
    };
    // SAFETY: as above.
    unsafe {
        (*probe).answer = ANSWER_SESSION;
        (*probe).verdict = verdict as u8;
        (*probe).session = session;
        (*probe).territory = territory;
        (*probe).rule_slot = if slot < RULES_PER_SESSION as u32 {
            slot as u8
        } else {
            RULE_SLOT_NONE
        };
    }
    true
}

/// For a probe a guard dropped before it could be parsed: records why it could not be
/// parsed and its territory, and returns true (do not count). For real traffic: false.
#[inline(always)]
pub fn answered_unplaced(ctx: &XdpContext, reason: PassReason, territory: TerritoryId) -> bool {
    let Some(probe) = find(ctx) else {
        return false;
    };
    // SAFETY: as above.
    unsafe {
        (*probe).answer = ANSWER_UNPLACED;
        (*probe).verdict = Verdict::Dropped as u8;
        (*probe).pass_reason = reason as u8;
        (*probe).territory = territory;
        (*probe).rule_slot = RULE_SLOT_NONE;
    }
    true
}
