//! `geofence attach` and `geofence detach`.

use anyhow::bail;
use serde_json::json;

use super::args::{AttachArgs, DetachArgs, ModeArg};
use crate::change::Ctx;
use crate::{
    kernel::{self, AttachMode, Kernel, flow_table},
    state::Attachment,
};

pub fn attach(ctx: &Ctx, args: AttachArgs) -> anyhow::Result<()> {
    let asked = args.flows.map(flow_table::check).transpose()?;
    let mut session = ctx.begin()?;
    // The size asked for, else the one recorded (a table created before at the default
    // by another command takes it while nothing is attached).
    let flows = asked.or(session.state.flows);
    if let Some(flows) = flows {
        session.kernel = Kernel::open_with_flows(&ctx.pin_dir, flows)?;
    }
    let (mode, mode_name) = match args.mode {
        ModeArg::Native => (AttachMode::Native, "native"),
        ModeArg::Skb => (AttachMode::Skb, "skb"),
    };
    let old = session.state.clone();
    let mut new = old.clone();
    new.attachments
        .retain(|a| !(a.interface == args.interface && a.netns == args.netns));
    let attachment = Attachment {
        interface: args.interface.clone(),
        netns: args.netns.clone(),
        mode: mode_name.to_string(),
        attached: ctx.now(),
    };
    // Rules first, so the program enforces them from its first packet.
    kernel::sync(&mut session.kernel, &new, &ctx.clock)?;
    kernel::attach(
        &mut session.kernel,
        &args.interface,
        args.netns.as_deref(),
        mode,
    )?;
    new.attachments.push(attachment.clone());
    new.flows = flows;
    if let Err(error) = new.save(&ctx.state_dir) {
        let _ = kernel::detach(&ctx.pin_dir, &args.interface, args.netns.as_deref());
        return Err(error.context("attachment undone"));
    }
    crate::audit::append(
        &ctx.state_dir,
        "attach",
        json!({ "interface": args.interface, "netns": args.netns, "mode": mode_name, "flows": flows }),
    )?;
    let size = flow_table::pinned(&ctx.pin_dir)?.unwrap_or(flow_table::DEFAULT);
    println!(
        "attached to {} ({mode_name} mode, flow table of {size} flows)",
        attachment.label()
    );
    Ok(())
}

pub fn detach(ctx: &Ctx, args: DetachArgs) -> anyhow::Result<()> {
    let session = ctx.begin()?;
    let known = session
        .state
        .attachments
        .iter()
        .any(|a| a.interface == args.interface && a.netns == args.netns);
    let pinned = kernel::link_pinned(&ctx.pin_dir, &args.interface, args.netns.as_deref());
    if !known && !pinned {
        bail!("geofence is not attached to `{}`", args.interface);
    }
    if pinned {
        kernel::detach(&ctx.pin_dir, &args.interface, args.netns.as_deref())?;
    }
    let mode = session
        .state
        .attachments
        .iter()
        .find(|a| a.interface == args.interface && a.netns == args.netns)
        .map(|a| a.mode.clone());
    let mut new = session.state.clone();
    new.attachments
        .retain(|a| !(a.interface == args.interface && a.netns == args.netns));
    new.save(&ctx.state_dir)?;
    crate::audit::append(
        &ctx.state_dir,
        "detach",
        json!({ "interface": args.interface, "netns": args.netns, "mode": mode }),
    )?;
    println!("detached from {}", args.interface);
    Ok(())
}
