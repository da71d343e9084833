//! `geofence report`: the transparency report for a period.

use anyhow::{anyhow, bail};

use super::args::{ReportArgs, ReportFormat};
use crate::change::Ctx;
use crate::{
    kernel::{self, Kernel},
    report,
};

pub fn run(ctx: &Ctx, args: ReportArgs) -> anyhow::Result<()> {
    let from = report::parse_date(&args.from, false).map_err(|e| anyhow!("--from {e}"))?;
    let to = report::parse_date(&args.to, true).map_err(|e| anyhow!("--to {e}"))?;
    if from >= to {
        bail!("--from {from} is not before --to {to}: the period is empty");
    }
    // Live counters need the pinned maps (and root); without them the report still
    // stands on the audit trail, and says so.
    let opened = if !Kernel::exists(&ctx.pin_dir) {
        Err(format!("no geofence maps under {}", ctx.pin_dir.display()))
    } else {
        kernel::check_privileges()
            .and_then(|()| Kernel::open(&ctx.pin_dir))
            .map_err(|e| format!("{e:#}"))
    };
    let (kernel, unavailable) = match opened {
        Ok(k) => (Some(k), String::new()),
        Err(why) => (None, why),
    };
    let now = ctx.clock.wall();
    let report = report::report_from(&ctx.state_dir, kernel.as_ref(), &unavailable, from, to, now)?;
    match args.format {
        ReportFormat::Md => print!("{}", report::markdown(&report)),
        ReportFormat::Csv => print!("{}", report::csv(&report)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
