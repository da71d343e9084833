//! `geofence attach` and `geofence detach`.

use anyhow::bail;
use serde_json::json;

use super::args::{AttachArgs, DetachArgs, ModeArg};
use crate::change::Ctx;
use crate::{
    kernel::{self, AttachMode},
    state::Attachment,
};

pub fn attach(ctx: &Ctx, args: AttachArgs) -> anyhow::Result<()> {
    let mut session = ctx.begin()?;
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
    if let Err(error) = new.save(&ctx.state_dir) {
        let _ = kernel::detach(&ctx.pin_dir, &args.interface, args.netns.as_deref());
        return Err(error.context("attachment undone"));
    }
    crate::audit::append(
        &ctx.state_dir,
        "attach",
        json!({ "interface": args.interface, "netns": args.netns, "mode": mode_name }),
    )?;
    println!("attached to {} ({mode_name} mode)", attachment.label());
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
