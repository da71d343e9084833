//! `geofence meeting ...` and `geofence flow ...`.

use anyhow::{anyhow, bail};
use serde_json::json;

use filter_common::mux::origin;

use super::args::{FlowCommand, FlowSpec, MeetingCommand};
use crate::change::Ctx;
use crate::{
    endpoint::{Endpoint, Flow, parse_socket},
    kernel::bindings,
    state::{Meeting, State},
};

pub fn run(ctx: &Ctx, command: MeetingCommand) -> anyhow::Result<()> {
    match command {
        MeetingCommand::Add { name, endpoints } => add(ctx, name, endpoints),
        MeetingCommand::Del { name } => del(ctx, &name),
        MeetingCommand::List { json } => list(ctx, json),
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        bail!("meeting name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`");
    }
    Ok(())
}

/// An endpoint already owned elsewhere would make the kernel's session ambiguous.
fn check_endpoints(state: &State, endpoints: &[Endpoint]) -> anyhow::Result<()> {
    for (i, endpoint) in endpoints.iter().enumerate() {
        if let Some(other) = endpoints[..i].iter().find(|e| e.overlaps(endpoint)) {
            bail!("endpoints {other} and {endpoint} overlap");
        }
        for (owner, meeting) in &state.meetings {
            if let Some(taken) = meeting.endpoints.iter().find(|e| e.overlaps(endpoint)) {
                bail!("endpoint {endpoint} overlaps {taken}, which belongs to meeting `{owner}`");
            }
        }
        if let Some(shared) = state.mux.iter().find(|m| m.shares_ports(endpoint)) {
            bail!(
                "endpoint {endpoint} shares ports with {shared}, which meetings share (`geofence \
                 mux list`); a meeting on a shared port is told by its ufrags instead"
            );
        }
    }
    Ok(())
}

fn add(ctx: &Ctx, name: String, endpoints: Vec<Endpoint>) -> anyhow::Result<()> {
    check_name(&name)?;
    let state = ctx.change("meeting add", |state| {
        if state.meetings.contains_key(&name) {
            bail!("meeting `{name}` already exists");
        }
        check_endpoints(state, &endpoints)?;
        let session = state
            .free_session()
            .ok_or_else(|| anyhow!("no free session id: too many meetings"))?;
        let shown: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        let mut meeting = Meeting {
            session,
            created: ctx.now(),
            endpoints,
            flows: Vec::new(),
            rules: Vec::new(),
            allows: Vec::new(),
        };
        let mut details = json!({ "meeting": name, "session": session, "endpoints": shown });
        // On a fleet relay, what the fleet already orders for this meeting name comes
        // with it, in this same change: its first packet meets the rules.
        let fleet =
            crate::fleet::relay::rules_for_new_meeting(&ctx.state_dir, &name, &meeting, ctx.now())?;
        if let Some((version, ruled)) = fleet {
            meeting.rules = ruled.rules;
            meeting.allows = ruled.allows;
            details["fleet_version"] = json!(version);
        }
        state.meetings.insert(name.clone(), meeting);
        Ok(details)
    })?;
    let meeting = state.meeting(&name)?;
    let ports: usize = meeting.endpoints.iter().map(Endpoint::port_count).sum();
    println!(
        "meeting `{name}` added (session {}, {} endpoint{}, {ports} port{})",
        meeting.session,
        meeting.endpoints.len(),
        plural(meeting.endpoints.len()),
        plural(ports)
    );
    Ok(())
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn del(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut rules = 0;
    ctx.change("meeting del", |state| {
        let meeting = state.meeting(name)?;
        rules = meeting.rules.len();
        let orders: Vec<&str> = meeting.rules.iter().map(|r| r.order.as_str()).collect();
        let endpoints: Vec<String> = meeting.endpoints.iter().map(ToString::to_string).collect();
        let details = json!({ "meeting": name, "session": meeting.session, "endpoints": endpoints, "orders": orders });
        state.meetings.remove(name);
        Ok(details)
    })?;
    println!(
        "meeting `{name}` removed, with {rules} rule{}",
        plural(rules)
    );
    Ok(())
}

fn list(ctx: &Ctx, as_json: bool) -> anyhow::Result<()> {
    let state = crate::state::State::load(&ctx.state_dir)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&state.meetings)?);
        return Ok(());
    }
    if state.meetings.is_empty() {
        println!("no meetings");
        return Ok(());
    }
    println!(
        "{:<24} {:>7}  {:>5}  ENDPOINTS",
        "MEETING", "SESSION", "RULES"
    );
    for (name, m) in &state.meetings {
        let endpoints: Vec<String> = m.endpoints.iter().map(ToString::to_string).collect();
        println!(
            "{name:<24} {:>7}  {:>5}  {}",
            m.session,
            m.rules.len(),
            endpoints.join(" ")
        );
    }
    Ok(())
}

fn flow_of(spec: &FlowSpec) -> anyhow::Result<Flow> {
    let src = parse_socket(&spec.src).map_err(|e| anyhow!("--src {e}"))?;
    let dst = parse_socket(&spec.dst).map_err(|e| anyhow!("--dst {e}"))?;
    Flow::new(spec.proto, src, dst).map_err(|e| anyhow!(e))
}

/// Flows are runtime bindings, as the binding API makes them: a client's address is never
/// written to the state file or the audit trail, and `restore` starts without them.
pub fn flow(ctx: &Ctx, command: FlowCommand) -> anyhow::Result<()> {
    // Under the lock: a meeting removed meanwhile would leave the flow naming a session id
    // the next meeting may be given.
    let mut session = ctx.begin()?;
    match command {
        FlowCommand::Add(spec) => {
            let flow = flow_of(&spec)?;
            let id = session.state.meeting(&spec.name)?.session;
            // The program looks flows up on shared ports only; elsewhere the binding would
            // sit in the table and decide nothing.
            let dst = Endpoint {
                proto: flow.proto,
                addr: Some(flow.dst.ip()),
                first_port: flow.dst.port(),
                last_port: flow.dst.port(),
            };
            if !session.state.mux.iter().any(|m| m.shares_ports(&dst)) {
                bail!(
                    "flow {flow}: {} {} is not a shared port; flows are looked up on shared \
                     ports only (`geofence mux add`)",
                    flow.proto,
                    flow.dst
                );
            }
            let key = flow.key();
            if let Some(bound) = bindings::flow_binding(&session.kernel, &key)?
                && bound.origin != origin::LEARNED
                && bound.session != id
            {
                let owner = session.state.name_of(bound.session);
                bail!("flow {flow} is already bound to meeting `{owner}`");
            }
            bindings::bind_flows(&mut session.kernel, &[(key, id)])?;
            println!("flow {flow} bound to meeting `{}`", spec.name);
        }
        FlowCommand::Del(spec) => {
            let flow = flow_of(&spec)?;
            let id = session.state.meeting(&spec.name)?.session;
            let key = flow.key();
            // As `ufrag del` and the API's unbind: removing a binding that is already gone
            // (removed, evicted) is done, and says so; one of another meeting is refused.
            match bindings::flow_binding(&session.kernel, &key)? {
                Some(b) if b.origin != origin::LEARNED && b.session != id => {
                    let owner = session.state.name_of(b.session);
                    bail!(
                        "flow {flow} is bound to meeting `{owner}`, not `{}`",
                        spec.name
                    );
                }
                Some(b) if b.origin != origin::LEARNED => {
                    bindings::unbind_flows(&mut session.kernel, &[key])?;
                    println!("flow {flow} removed from meeting `{}`", spec.name);
                }
                _ => println!(
                    "flow {flow} was not bound to meeting `{}`: nothing to remove",
                    spec.name
                ),
            }
        }
    }
    Ok(())
}
