//! `geofence explain`: the model's walk for one packet, then the same packet through the
//! kernel's program as an uncounted probe; a disagreement fails the command.

use std::net::IpAddr;

use anyhow::{Context as _, bail};
use filter_common::mux::origin;
use serde_json::{Value, json};

use super::args::ExplainArgs;
use crate::change::Ctx;
use crate::{
    endpoint::Flow,
    explain::{
        Question,
        check::{action_name, decision_text, differences, expected},
        frame,
        geo::{self, GeoContext},
        stun,
        walk::{self, Step},
        words::{territory_name, verdict_name},
    },
    kernel::{
        self, Kernel, bindings,
        probe::{self, KernelDecision, ProgramOrigin},
    },
    model::{self, Learning, ModelMaps, MuxState},
    state::State,
};

fn origin_text(origin: &ProgramOrigin) -> String {
    match origin {
        ProgramOrigin::Attached { program_id, links } => {
            format!(
                "program {program_id}, attached through {}",
                links.join(", ")
            )
        }
        ProgramOrigin::FreshCopy => "nothing is attached: checked against a freshly loaded copy \
                                     of the program on the pinned maps"
            .to_string(),
    }
}

fn origin_json(origin: &ProgramOrigin) -> Value {
    match origin {
        ProgramOrigin::Attached { program_id, links } => {
            json!({ "attached": true, "program_id": program_id, "links": links })
        }
        ProgramOrigin::FreshCopy => json!({ "attached": false, "fresh_copy": true }),
    }
}

/// The source as the kernel's territory table is keyed: IPv4-mapped sources are IPv4.
fn table_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn print_steps(question: &Question, steps: &[Step], geo: &GeoContext, frame_len: usize) {
    let defaulted = if question.src_port_defaulted {
        " (no source port given: 49152)"
    } else {
        ""
    };
    println!(
        "{} {} → {}, a {frame_len}-byte frame{defaulted}",
        question.proto, question.src, question.dst
    );
    for step in steps {
        let mut lines = step.text.lines();
        println!("  {:<10} {}", step.name, lines.next().unwrap_or(""));
        for line in lines {
            println!("  {:<10} {line}", "");
        }
    }
    for warning in &geo.warnings {
        println!("  warning: {warning}");
    }
}

/// What the program holds at run time that the packet may meet: the ufrag registrations,
/// the idle time of learned bindings, and the packet's flow's binding if the kernel holds
/// one the state does not (learned from a STUN Binding request, or bound by the API).
fn runtime_state(kernel: &Kernel, question: &Question) -> anyhow::Result<MuxState> {
    let mut mux = MuxState {
        ufrags: bindings::read_ufrags(kernel)?.into_iter().collect(),
        learned_idle_ns: bindings::learned_idle_ns(kernel)?,
        ..MuxState::default()
    };
    let key = flow_key(question)?;
    if let Some(b) = bindings::flow_binding(kernel, &key)?.filter(|b| b.origin != origin::POLICY) {
        mux.flows.insert(key, b);
    }
    Ok(mux)
}

fn flow_key(question: &Question) -> anyhow::Result<filter_common::FlowKey> {
    let flow = Flow::new(question.proto, question.src, question.dst).map_err(anyhow::Error::msg)?;
    Ok(flow.key())
}

/// Words for the kernel's run-time binding of the packet's flow, if it has one.
fn runtime_binding(
    kernel: &Kernel,
    question: &Question,
    now_ns: u64,
) -> anyhow::Result<Option<String>> {
    let flow = Flow::new(question.proto, question.src, question.dst).map_err(anyhow::Error::msg)?;
    let key = flow.key();
    let Some(b) = bindings::flow_binding(kernel, &key)? else {
        return Ok(None);
    };
    let ago = |ns: u64| format!("{:.1} s ago", now_ns.saturating_sub(ns) as f64 / 1e9);
    let words = match b.origin {
        origin::LEARNED => {
            let ufrags: Vec<String> = bindings::ufrags_with_id(kernel, b.ufrag_id)?
                .iter()
                .map(ToString::to_string)
                .collect();
            let ufrag = match ufrags.as_slice() {
                [] => "a ufrag since unregistered".to_string(),
                names => format!("ufrag {}", names.join(" or ")),
            };
            let idle_ns = bindings::learned_idle_ns(kernel)?;
            if b.idle(now_ns, idle_ns) {
                return Ok(Some(format!(
                    "(none in force: the binding learned from {ufrag} was last refreshed {}, \
                     longer ago than the idle time of {} s)",
                    ago(b.refreshed_ns),
                    idle_ns / 1_000_000_000
                )));
            }
            format!(
                "learned from {ufrag}, last refreshed {}",
                ago(b.refreshed_ns)
            )
        }
        origin::API => "bound by the control plane (`flow add` or the binding API)".to_string(),
        _ => return Ok(None),
    };
    Ok(Some(format!("{flow} ({words})")))
}

/// The flow's entry without a generation tag: learned or bound by the API.
fn runtime_entry(
    kernel: &mut Kernel,
    key: &filter_common::FlowKey,
) -> anyhow::Result<Option<filter_common::mux::FlowBinding>> {
    let map: aya::maps::HashMap<_, filter_common::FlowKey, filter_common::mux::FlowBinding> =
        aya::maps::HashMap::try_from(kernel.map_mut(filter_common::maps::names::FLOWS)?)?;
    Ok(map.get(key, 0).ok())
}

/// Puts the flow's run-time binding back as it was before the kernel's check: a Binding
/// request asked about is learned by the program it is run through, and the question
/// must change nothing.
fn put_back(
    kernel: &mut Kernel,
    key: &filter_common::FlowKey,
    before: Option<filter_common::mux::FlowBinding>,
) -> anyhow::Result<()> {
    let now = runtime_entry(kernel, key)?;
    let mut map: aya::maps::HashMap<_, filter_common::FlowKey, filter_common::mux::FlowBinding> =
        aya::maps::HashMap::try_from(kernel.map_mut(filter_common::maps::names::FLOWS)?)?;
    if now == before {
        return Ok(());
    }
    match before {
        Some(binding) => map.insert(key, binding, 0),
        None => map.remove(key),
    }
    .context("putting the flow's binding back after the kernel's check")
}

pub fn explain(ctx: &Ctx, args: ExplainArgs) -> anyhow::Result<()> {
    let question = Question::parse(args.proto, &args.src, &args.dst)?;
    if let Some(u) = &args.stun_ufrag {
        stun::check(u, question.proto == crate::endpoint::Proto::Udp)?;
    }
    kernel::check_privileges()?;
    let state = State::load(&ctx.state_dir)?;
    if !Kernel::exists(&ctx.pin_dir) {
        bail!(
            "no geofence maps under {} (is --pin-dir right? `geofence restore` recreates them)",
            ctx.pin_dir.display()
        );
    }
    let mut kernel = Kernel::open(&ctx.pin_dir)?;
    let src = table_key(question.src.ip());
    let kernel_territory = kernel::geo_lookup(&kernel, src)
        .context("looking the source up in the kernel's territory table")?
        .unwrap_or(filter_common::TERRITORY_UNKNOWN);
    let geo = geo::context(state.geo.as_ref(), src, Some(kernel_territory));
    let maps = ModelMaps::from_state(&state, geo.table.clone(), &ctx.clock)
        .context("deriving the session maps from the state")?;
    let now_ns = ctx.clock.kernel_ns();
    let mut mux = runtime_state(&kernel, &question)?;
    let key = flow_key(&question)?;
    let before = runtime_entry(&mut kernel, &key)?;
    let mut binding = runtime_binding(&kernel, &question, now_ns)?;
    let frame = match &args.stun_ufrag {
        Some(u) => frame::build_with(&question, &stun::binding_request(u)),
        None => frame::build(&question),
    };
    let trace = model::trace_mux(&frame, &maps, &mut mux, now_ns);
    // A binding this request makes anew is not the one the kernel held.
    if trace
        .stun
        .and_then(|s| s.learning)
        .is_some_and(|l| matches!(l, Learning::Learned(_)))
    {
        binding = None;
    }
    let mut steps = walk::steps(
        &question.dst,
        &state,
        &geo,
        Some(kernel_territory),
        &trace,
        ctx.clock.wall(),
        binding.as_deref(),
    );
    if let Some(step) = (args.stun_ufrag.as_deref()).and_then(|u| stun::step(&trace, &state, u)) {
        steps.insert(0, step);
    }

    let mut targets = probe::attached_targets(&ctx.pin_dir)?;
    if targets.is_empty() {
        targets.push(probe::fresh_target(&mut kernel)?);
    }
    let mut checks = Vec::new();
    for target in &targets {
        let answer = probe::ask(target, &frame)?;
        checks.push((target.origin.clone(), answer, differences(&trace, &answer)));
    }
    let disagreeing = checks.iter().filter(|(_, _, d)| !d.is_empty()).count();
    if args.stun_ufrag.is_some() {
        put_back(&mut kernel, &key, before)?;
    }

    if args.json {
        let kernel: Vec<Value> = checks
            .iter()
            .map(|(origin, answer, diffs)| {
                json!({
                    "program": origin_json(origin),
                    "xdp_action": action_name(answer.xdp_action),
                    "decision": answer.decision.as_ref().map(decision_json),
                    "agrees": diffs.is_empty(),
                    "differences": diffs,
                })
            })
            .collect();
        let out = json!({
            "packet": {
                "proto": question.proto.to_string(),
                "src": question.src.to_string(),
                "dst": question.dst.to_string(),
                "src_port_defaulted": question.src_port_defaulted,
                "frame_bytes": frame.len(),
            },
            "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
            "model": {
                "xdp_action": action_name(trace.outcome.xdp_action),
                "decision": decision_json(&expected(&trace)),
            },
            "geo_warnings": geo.warnings,
            "kernel": kernel,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_steps(&question, &steps, &geo, frame.len());
        for (origin, answer, diffs) in &checks {
            if diffs.is_empty() {
                println!(
                    "kernel agrees: {} ({}); {}",
                    action_name(answer.xdp_action),
                    answer
                        .decision
                        .as_ref()
                        .map_or_else(String::new, decision_text),
                    origin_text(origin)
                );
            } else {
                println!("KERNEL DISAGREES ({})", origin_text(origin));
                for d in diffs {
                    println!("  {d}");
                }
            }
        }
    }
    if disagreeing > 0 {
        bail!(
            "the kernel disagrees with the model for this packet ({disagreeing} of {} program{}): \
             the kernel's maps or territory table no longer match state.json and the recorded \
             geo files (edited by hand, files changed since `geo load`, or maps changed by another \
             tool?); `geofence restore` makes the maps match the state, `geofence geo load` \
             reloads changed files",
            checks.len(),
            if checks.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn decision_json(d: &KernelDecision) -> Value {
    match d {
        KernelDecision::Pass(r) => json!({ "verdict": "passed", "pass_reason": r.name() }),
        KernelDecision::UnparsedBlocked { reason, territory } => json!({
            "verdict": "dropped",
            "unparsed": reason.name(),
            "territory": territory_name(*territory),
        }),
        KernelDecision::Session {
            session,
            territory,
            verdict,
            rule_slot,
        } => json!({
            "verdict": verdict.name(),
            "session": session,
            "territory": territory_name(*territory),
            "verdict_text": verdict_name(*verdict),
            "rule_slot": rule_slot,
        }),
    }
}
