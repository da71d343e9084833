//! `geofence report`: the transparency report for a period.

use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};

use crate::change::Ctx;
use crate::{
    kernel::{self, Kernel},
    report,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    /// A readable page.
    Md,
    /// Everything, for machines.
    Json,
    /// One row per rule.
    Csv,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Start of the period: a date (UTC midnight) or an RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End of the period: a date (the whole day is included) or an RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
}

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
