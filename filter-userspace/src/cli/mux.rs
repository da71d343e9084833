//! `geofence mux ...` (ports meetings share: policy) and `geofence ufrag ...` (the server
//! ufrags that tell their meetings apart: runtime bindings, kernel only).

use anyhow::bail;
use serde_json::json;

use super::args::{MuxCommand, UfragCommand};
use crate::{change::Ctx, endpoint::Endpoint, kernel::bindings, state::State};

pub fn run(ctx: &Ctx, command: MuxCommand) -> anyhow::Result<()> {
    match command {
        MuxCommand::Add { endpoints } => add(ctx, endpoints),
        MuxCommand::Del { endpoints } => del(ctx, endpoints),
        MuxCommand::List { json } => list(ctx, json),
    }
}

/// A shared port must overlap no other shared port and share no port a meeting owns.
pub fn check_mux(state: &State, endpoints: &[Endpoint]) -> anyhow::Result<()> {
    for (i, endpoint) in endpoints.iter().enumerate() {
        if let Some(other) = endpoints[..i]
            .iter()
            .chain(&state.mux)
            .find(|e| e.overlaps(endpoint))
        {
            bail!("mux port {endpoint} overlaps {other}");
        }
    }
    let mut with = state.clone();
    with.mux.extend(endpoints.iter().cloned());
    if let Some(problem) = with.shared_port_conflict() {
        bail!("{problem}");
    }
    Ok(())
}

fn add(ctx: &Ctx, endpoints: Vec<Endpoint>) -> anyhow::Result<()> {
    let shown: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    ctx.change("mux add", |state| {
        check_mux(state, &endpoints)?;
        state.mux.extend(endpoints.iter().cloned());
        Ok(json!({ "mux": shown }))
    })?;
    println!("shared port{} added: {}", plural(&shown), shown.join(" "));
    Ok(())
}

fn del(ctx: &Ctx, endpoints: Vec<Endpoint>) -> anyhow::Result<()> {
    let shown: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    ctx.change("mux del", |state| {
        for endpoint in &endpoints {
            if !state.mux.contains(endpoint) {
                bail!("{endpoint} is not a mux port (`geofence mux list`)");
            }
        }
        state.mux.retain(|e| !endpoints.contains(e));
        Ok(json!({ "mux": shown }))
    })?;
    println!("shared port{} removed: {}", plural(&shown), shown.join(" "));
    Ok(())
}

fn plural(items: &[String]) -> &'static str {
    if items.len() == 1 { "" } else { "s" }
}

fn list(ctx: &Ctx, as_json: bool) -> anyhow::Result<()> {
    let state = State::load(&ctx.state_dir)?;
    let shown: Vec<String> = state.mux.iter().map(ToString::to_string).collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else if shown.is_empty() {
        println!("no mux ports");
    } else {
        for endpoint in shown {
            println!("{endpoint}");
        }
    }
    Ok(())
}

pub fn ufrag(ctx: &Ctx, command: UfragCommand) -> anyhow::Result<()> {
    // Under the lock: a meeting removed meanwhile would leave its ufrags pointing at a
    // session id the next meeting may be given.
    let mut session = ctx.begin()?;
    match command {
        UfragCommand::Add { meeting, ufrags } => {
            let id = session.state.meeting(&meeting)?.session;
            let names = |id| session.state.name_of(id);
            let batch: Vec<_> = ufrags.iter().map(|u| (u.clone(), id)).collect();
            let n = bindings::bind_ufrags(&mut session.kernel, &batch, &names)?;
            println!("{n} ufrag{} registered to meeting `{meeting}`", s(n));
        }
        UfragCommand::Del { ufrags } => {
            let n = bindings::unbind_ufrags(&mut session.kernel, &ufrags)?;
            let unknown = ufrags.len() - n;
            let note = match unknown {
                0 => String::new(),
                _ => format!(" ({unknown} not registered)"),
            };
            println!("{n} ufrag{} removed{note}", s(n));
        }
    }
    Ok(())
}

fn s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
