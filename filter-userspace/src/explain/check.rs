//! Does the kernel agree with the model? The kernel's answer to the probe against what
//! the model's trace says the program decides and would have counted.

use crate::{
    kernel::probe::{KernelAnswer, KernelDecision},
    model::{Counted, Trace, XDP_DROP, XDP_PASS},
};

use super::words::territory_name;
use filter_common::TERRITORY_UNKNOWN;

/// `DROP`, `PASS`, or the number of another XDP action.
pub fn action_name(action: u32) -> String {
    match action {
        XDP_DROP => "DROP".to_string(),
        XDP_PASS => "PASS".to_string(),
        other => format!("XDP action {other}"),
    }
}

/// A decision as one phrase.
pub fn decision_text(d: &KernelDecision) -> String {
    match d {
        KernelDecision::Pass(r) => format!("unclassified ({})", r.name()),
        KernelDecision::UnparsedBlocked { reason, territory } => format!(
            "not placeable ({}), dropped by the guard of its destination, territory {}",
            reason.name(),
            territory_name(*territory)
        ),
        KernelDecision::Session {
            session,
            territory,
            verdict,
            rule_slot,
        } => format!(
            "session {session}, territory {}, {}, {}",
            territory_name(*territory),
            verdict.name(),
            rule_slot.map_or("no rule".to_string(), |s| format!("rule slot {s}"))
        ),
    }
}

/// What the model expects the program to answer.
pub fn expected(trace: &Trace) -> KernelDecision {
    match trace.outcome.counted {
        Counted::Reason(r) => KernelDecision::Pass(r),
        Counted::UnparsedBlocked(reason) => KernelDecision::UnparsedBlocked {
            reason,
            territory: trace.territory.as_ref().map_or(TERRITORY_UNKNOWN, |t| t.id),
        },
        Counted::Session {
            session,
            territory,
            verdict,
            ..
        } => KernelDecision::Session {
            session,
            territory,
            verdict,
            rule_slot: trace.outcome.rule,
        },
    }
}

/// How the kernel's answer differs from the model's; empty when it agrees.
pub fn differences(trace: &Trace, answer: &KernelAnswer) -> Vec<String> {
    let mut out = Vec::new();
    if answer.xdp_action != trace.outcome.xdp_action {
        out.push(format!(
            "action: model {}, kernel {}",
            action_name(trace.outcome.xdp_action),
            action_name(answer.xdp_action)
        ));
    }
    let want = expected(trace);
    match answer.decision {
        None => out.push(
            "the program wrote no answer into the probe (it predates explain probes: \
             detach and attach again with this geofence)"
                .to_string(),
        ),
        Some(got) if got != want => out.push(format!(
            "decision: model {}, kernel {}",
            decision_text(&want),
            decision_text(&got)
        )),
        Some(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use filter_common::{PassReason, Verdict};

    use super::*;
    use crate::model::{Outcome, parse};

    fn trace_dropping() -> Trace {
        Trace {
            stun: None,
            headers: Err(PassReason::Malformed),
            session: None,
            territory: None,
            decision: None,
            outcome: Outcome {
                verdict: Verdict::Dropped,
                rule: Some(2),
                xdp_action: XDP_DROP,
                counted: Counted::Session {
                    session: 1,
                    territory: 5,
                    verdict: Verdict::Dropped,
                    bytes: 60,
                },
            },
        }
    }

    #[test]
    fn agreement_and_each_kind_of_difference() {
        let trace = trace_dropping();
        let same = KernelAnswer {
            xdp_action: XDP_DROP,
            decision: Some(expected(&trace)),
        };
        assert!(differences(&trace, &same).is_empty());
        let other_territory = KernelAnswer {
            decision: Some(KernelDecision::Session {
                session: 1,
                territory: 6,
                verdict: Verdict::Dropped,
                rule_slot: Some(2),
            }),
            ..same
        };
        let diffs = differences(&trace, &other_territory);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].contains("territory AE"), "{diffs:?}");
        let other_rule = KernelAnswer {
            decision: Some(KernelDecision::Session {
                session: 1,
                territory: 5,
                verdict: Verdict::Dropped,
                rule_slot: Some(3),
            }),
            ..same
        };
        let diffs = differences(&trace, &other_rule);
        assert_eq!(diffs.len(), 1, "a different rule slot disagrees: {diffs:?}");
        assert!(
            diffs[0].contains("rule slot 2") && diffs[0].contains("rule slot 3"),
            "{diffs:?}"
        );
        let passed = KernelAnswer {
            xdp_action: XDP_PASS,
            decision: Some(KernelDecision::Pass(PassReason::NoSession)),
        };
        let diffs = differences(&trace, &passed);
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert!(diffs[0].starts_with("action: model DROP, kernel PASS"));
        let silent = KernelAnswer {
            decision: None,
            ..same
        };
        assert!(differences(&trace, &silent)[0].contains("no answer"));
        // A frame that does not parse is expected to pass with its reason.
        let unparsed = Trace {
            outcome: crate::model::verdict(&[0u8; 10], &empty_maps(), 0),
            ..trace
        };
        assert_eq!(
            expected(&unparsed),
            KernelDecision::Pass(PassReason::Malformed)
        );
        assert!(parse(&[0u8; 10]).is_err());
    }

    fn empty_maps() -> crate::model::ModelMaps {
        crate::model::ModelMaps::new(Default::default(), Default::default())
    }
}
