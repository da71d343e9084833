//! Asking the kernel what it decides for one frame, without counting it: the frame runs
//! through the program with `BPF_PROG_TEST_RUN` behind an explain probe in the XDP
//! metadata (`filter_common::probe`), and the program writes its decision there.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, anyhow, bail};
use filter_common::{
    PassReason, TerritoryId, Verdict,
    policy::RULES_PER_SESSION,
    probe::{
        ANSWER_NONE, ANSWER_PASS_REASON, ANSWER_SESSION, ANSWER_UNPLACED, PROBE_META_LEN, ProbeMeta,
    },
};

use super::{Kernel, test_run};

/// Which program answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramOrigin {
    /// The program attached through these link pins (names under the pin directory).
    Attached { program_id: u32, links: Vec<String> },
    /// Nothing is attached: a copy of the program object loaded for this check, on the
    /// pinned maps.
    FreshCopy,
}

/// A program to ask.
pub struct ProbeTarget {
    pub origin: ProgramOrigin,
    fd: OwnedFd,
}

impl ProbeTarget {
    /// The program's fd, e.g. for a raw test run.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What the kernel decided for a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelAnswer {
    pub xdp_action: u32,
    /// `None` if the program wrote no answer (it does not know explain probes).
    pub decision: Option<KernelDecision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelDecision {
    /// Passed unclassified.
    Pass(PassReason),
    /// Not placeable (for this reason), and dropped by the guard of its destination.
    UnparsedBlocked {
        reason: PassReason,
        territory: TerritoryId,
    },
    Session {
        session: u32,
        territory: TerritoryId,
        verdict: Verdict,
        /// The policy rule slot the packet would be credited to; `None` for no rule.
        rule_slot: Option<u8>,
    },
}

/// The programs attached through link pins under the pin directory, one target per
/// distinct program.
pub fn attached_targets(pin_dir: &Path) -> anyhow::Result<Vec<ProbeTarget>> {
    super::links::attached_links(pin_dir)?
        .into_iter()
        .map(|(program_id, links)| {
            let fd = test_run::program_fd_by_id(program_id).with_context(|| {
                format!(
                    "opening program {program_id}, attached through {}",
                    links.join(", ")
                )
            })?;
            Ok(ProbeTarget {
                origin: ProgramOrigin::Attached { program_id, links },
                fd,
            })
        })
        .collect()
}

/// Loads the program object on the pinned maps of `kernel`, for when nothing is attached.
pub fn fresh_target(kernel: &mut Kernel) -> anyhow::Result<ProbeTarget> {
    let program = super::links::loaded_program(kernel)?;
    let fd = program
        .fd()?
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating the program fd")?;
    Ok(ProbeTarget {
        origin: ProgramOrigin::FreshCopy,
        fd,
    })
}

/// Runs `frame` through `target` as an explain probe.
pub fn ask(target: &ProbeTarget, frame: &[u8]) -> anyhow::Result<KernelAnswer> {
    let question = ProbeMeta::question();
    // SAFETY: ProbeMeta is repr(C) plain data without implicit padding.
    let bytes: [u8; PROBE_META_LEN] = unsafe { std::mem::transmute(question) };
    let run = test_run::run_xdp(target.fd.as_fd(), &bytes, frame)
        .context("BPF_PROG_TEST_RUN of the explain probe")?;
    let meta: [u8; PROBE_META_LEN] = run.meta.as_slice().try_into().map_err(|_| {
        anyhow!(
            "the program returned {} bytes of metadata, not the {PROBE_META_LEN} of the probe",
            run.meta.len()
        )
    })?;
    // SAFETY: any 32 bytes are a valid ProbeMeta (integers and byte arrays only).
    let answer: ProbeMeta = unsafe { std::mem::transmute(meta) };
    Ok(KernelAnswer {
        xdp_action: run.action,
        decision: decode(&answer)?,
    })
}

fn decode(answer: &ProbeMeta) -> anyhow::Result<Option<KernelDecision>> {
    let verdict = Verdict::ALL.get(answer.verdict as usize).copied();
    match answer.answer {
        ANSWER_NONE => Ok(None),
        ANSWER_PASS_REASON => {
            let reason = PassReason::ALL.get(answer.pass_reason as usize).copied();
            let reason = reason.ok_or_else(|| {
                anyhow!("the program answered pass reason {}", answer.pass_reason)
            })?;
            Ok(Some(KernelDecision::Pass(reason)))
        }
        ANSWER_UNPLACED => {
            let reason = PassReason::ALL.get(answer.pass_reason as usize).copied();
            let reason = reason.ok_or_else(|| {
                anyhow!("the program answered pass reason {}", answer.pass_reason)
            })?;
            Ok(Some(KernelDecision::UnparsedBlocked {
                reason,
                territory: answer.territory,
            }))
        }
        ANSWER_SESSION => {
            let verdict = verdict
                .ok_or_else(|| anyhow!("the program answered verdict {}", answer.verdict))?;
            Ok(Some(KernelDecision::Session {
                session: answer.session,
                territory: answer.territory,
                verdict,
                rule_slot: (usize::from(answer.rule_slot) < RULES_PER_SESSION)
                    .then_some(answer.rule_slot),
            }))
        }
        other => bail!("the program answered with an unknown kind {other}"),
    }
}
