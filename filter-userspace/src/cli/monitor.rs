//! `geofence monitor`: the attached program's decisions as they happen, one line each,
//! like `cilium monitor`. The program reports only while a monitor has its switch on; the
//! lines go to stdout and nowhere else (with `--show-addresses` they name participants).

use std::{
    collections::BTreeSet,
    io::Write as _,
    net::{IpAddr, Ipv6Addr},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use filter_common::{
    Verdict,
    monitor::{
        Cause, DEFAULT_PER_SECOND, MonitorConfig, NO_SLOT, Packed, SHOW_ALL, SHOW_DROPPED,
        SHOW_PASSED, SHOW_WOULD_DROP, wire,
    },
};
use jiff::Timestamp;

use crate::{
    change::Ctx,
    kernel::{self, Kernel},
    rule_slots,
    state::State,
    territory::Territory,
};

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Only this meeting's decisions.
    pub meeting: Option<String>,
    /// Which decisions: `dropped` (enforced and dry-run drops), `passed`, or `all`.
    #[arg(long, value_enum, default_value_t = VerdictFilter::All)]
    pub verdict: VerdictFilter,
    /// Show each packet's source address (on stdout only; never written anywhere).
    #[arg(long)]
    pub show_addresses: bool,
    /// Show one decision in N, per CPU (1: every decision).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub every: u32,
    /// At most N lines per second per CPU; decisions beyond are counted, not shown.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PER_SECOND,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Turn the program's monitor switch off (one a killed monitor left on) and exit.
    #[arg(long, conflicts_with_all = ["meeting", "show_addresses"])]
    pub off: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerdictFilter {
    Dropped,
    Passed,
    All,
}

impl VerdictFilter {
    fn bits(self) -> u32 {
        match self {
            VerdictFilter::Dropped => SHOW_DROPPED | SHOW_WOULD_DROP,
            VerdictFilter::Passed => SHOW_PASSED,
            VerdictFilter::All => SHOW_ALL,
        }
    }
}

/// One record as the program sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub session: u32,
    pub territory: u16,
    pub verdict: Verdict,
    /// The rule slot that gave the verdict; `None` when no rule did.
    pub slot: Option<u8>,
    pub cause: Cause,
    pub source: Option<IpAddr>,
}

impl Record {
    /// Parses a record's text (see `filter_common::monitor::wire`): `decision N` or
    /// `decision N ADDRESS`; `None` if it is not one this version writes.
    pub fn parse(text: &str) -> Option<Record> {
        let mut words = text.split(' ');
        if words.next()? != wire::WORD {
            return None;
        }
        let packed = Packed::unpack(words.next()?.parse::<u64>().ok()?);
        let source = match words.next() {
            Some(text) => Some(text.parse::<Ipv6Addr>().ok()?.to_canonical()),
            None => None,
        };
        if words.next().is_some() {
            return None;
        }
        Some(Record {
            session: packed.session,
            territory: packed.territory,
            verdict: Verdict::ALL
                .into_iter()
                .find(|v| *v as u32 == packed.verdict)?,
            slot: (packed.slot != NO_SLOT).then_some(packed.slot as u8),
            cause: Cause::from_u32(packed.cause)?,
            source,
        })
    }
}

fn cause_name(cause: Cause) -> &'static str {
    match cause {
        Cause::NoRule => "no-rule",
        Cause::Exception => "exception",
        Cause::Territory => "territory",
        Cause::Prefix => "prefix",
    }
}

/// A record as one line: `TIME meeting=M territory=T verdict=V reason=R order=O`, then
/// `src=ADDR` when the record carries one. Meetings and orders are named from `state`.
pub fn line(record: &Record, state: &State, now: Timestamp) -> String {
    let meeting = state
        .meetings
        .iter()
        .find(|(_, m)| m.session == record.session)
        .map_or_else(|| format!("session-{}", record.session), |(n, _)| n.clone());
    let order = record
        .slot
        .and_then(|slot| order_of(state, record.session, slot))
        .unwrap_or_else(|| match record.slot {
            Some(slot) => format!("slot-{slot}"),
            None => "-".to_string(),
        });
    let mut line = format!(
        "{} meeting={meeting} territory={} verdict={} reason={} order={order}",
        now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        Territory::from_id(record.territory),
        record.verdict.name().replace('_', "-"),
        cause_name(record.cause),
    );
    if let Some(source) = record.source {
        line.push_str(&format!(" src={source}"));
    }
    line
}

/// The order of the rule in `slot` of the meeting with `session`.
fn order_of(state: &State, session: u32, slot: u8) -> Option<String> {
    let meeting = state.meetings.values().find(|m| m.session == session)?;
    let rule = meeting.rules.iter().find(|r| r.slot == Some(slot))?;
    Some(rule.order.clone())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Ctrl-C, SIGTERM and SIGHUP end the monitor (which then turns the switch off); a closed
/// stdout is seen as a failed write rather than killing it.
fn handle_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `stop` only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, stop as *const () as libc::sighandler_t) };
    }
    // SAFETY: ignoring SIGPIPE is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The state with every rule in the slot `kernel::sync` gives it (rules saved before slots
/// were recorded included), to name the order of a record's slot.
fn load_state(ctx: &Ctx) -> anyhow::Result<State> {
    rule_slots::as_synced(&State::load(&ctx.state_dir)?)
}

pub fn monitor(ctx: &Ctx, args: MonitorArgs) -> anyhow::Result<()> {
    let mut state = load_state(ctx)?;
    if args.off {
        // A running monitor's switch is its own: it turns it off when it ends.
        let _lock = monitor_lock(&ctx.state_dir)?;
        let mut kernel = Kernel::open(&ctx.pin_dir)?;
        kernel::set_monitor(&mut kernel, &MonitorConfig::OFF)?;
        println!("monitor switch off");
        return Ok(());
    }
    let session = match &args.meeting {
        Some(name) => state.meeting(name)?.session,
        None => 0,
    };
    let config = MonitorConfig {
        enabled: 1,
        every: args.every,
        session,
        verdicts: args.verdict.bits(),
        addresses: u32::from(args.show_addresses),
        per_second: args.rate,
    };
    let _lock = monitor_lock(&ctx.state_dir)?;
    handle_signals();
    let mut watch = Watch::start(ctx, &config)?;
    eprintln!(
        "monitoring {} ({} decisions, 1 in {}, at most {}/s per CPU); Ctrl-C to stop",
        args.meeting.as_deref().unwrap_or("every meeting"),
        format!("{:?}", args.verdict).to_lowercase(),
        args.every,
        args.rate
    );
    let result = watch.run(ctx, &mut state, Timestamp::now);
    // Off whatever happened: a switch left on costs every packet of a meeting the
    // monitor's checks, and its records.
    let off = kernel::set_monitor(&mut watch.kernel, &MonitorConfig::OFF);
    // What the ring still holds was written, not lost (nor shown: the monitor is ending).
    if let Ok(texts) = watch.records.next(Duration::ZERO) {
        watch.received += texts.len() as u64;
    }
    if let Ok(counts) = kernel::monitor_counts(&watch.kernel) {
        let held = counts.over_budget.saturating_sub(watch.before.over_budget);
        if held > 0 {
            eprintln!(
                "{held} sampled decisions were not shown: over --rate {}",
                args.rate
            );
        }
        // Records sent but never read: the ring had no room when they were written.
        let lost = counts.sent.saturating_sub(watch.before.sent);
        let lost = lost.saturating_sub(watch.received);
        if lost > 0 {
            eprintln!(
                "{lost} records were lost: the log ring was full (lower --rate or raise --every)"
            );
        }
    }
    result.and(off.context("turning the monitor switch off"))
}

/// Only one monitor at a time: a second would turn the first's switch off on exit, and two
/// readers of one log ring take each other's records.
fn monitor_lock(state_dir: &std::path::Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    crate::state::ensure_dir(state_dir)?;
    let path = state_dir.join("monitor.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "another `geofence monitor` is running ({} is locked); one at a time",
            path.display()
        )
    })
}

/// The switch and the log rings of the programs the attached interfaces run.
struct Watch {
    kernel: Kernel,
    config: MonitorConfig,
    programs: BTreeSet<u32>,
    records: kernel::Records,
    before: filter_common::monitor::MonitorCpu,
    /// Records read since `before` was taken.
    received: u64,
}

impl Watch {
    fn start(ctx: &Ctx, config: &MonitorConfig) -> anyhow::Result<Watch> {
        let programs = attached_programs(ctx)?;
        if programs.is_empty() {
            bail!(
                "geofence is attached to no interface under {}: no program to monitor \
                 (geofence attach IFACE)",
                ctx.pin_dir.display()
            );
        }
        let mut kernel = Kernel::open(&ctx.pin_dir)?;
        let ids: Vec<u32> = programs.iter().copied().collect();
        let records = kernel::Records::attach(&ids)?;
        let before = kernel::monitor_counts(&kernel)?;
        kernel::set_monitor(&mut kernel, config)?;
        Ok(Watch {
            kernel,
            config: *config,
            programs,
            records,
            before,
            received: 0,
        })
    }

    /// Prints records until a signal or a closed stdout, each stamped with `clock`'s
    /// reading when its batch arrived. Once a second it checks which programs run: after
    /// an upgrade it follows the new program and its maps.
    fn run(
        &mut self,
        ctx: &Ctx,
        state: &mut State,
        clock: fn() -> Timestamp,
    ) -> anyhow::Result<()> {
        let mut checked = Instant::now();
        let mut stdout = std::io::stdout().lock();
        while !STOP.load(Ordering::SeqCst) {
            let texts = self.records.next(Duration::from_millis(250))?;
            self.received += texts.len() as u64;
            let now = clock();
            let mut unknown = false;
            let records: Vec<Record> = texts.iter().filter_map(|t| Record::parse(t)).collect();
            for record in &records {
                unknown |= !state.meetings.values().any(|m| m.session == record.session);
            }
            if unknown {
                // A meeting added since the monitor started.
                *state = load_state(ctx)?;
            }
            for record in &records {
                if writeln!(stdout, "{}", line(record, state, now)).is_err() {
                    return Ok(());
                }
            }
            if stdout.flush().is_err() {
                return Ok(());
            }
            if checked.elapsed() >= Duration::from_secs(1) {
                checked = Instant::now();
                self.follow(ctx, state)?;
            }
        }
        Ok(())
    }

    /// After an upgrade (the links run another program), turns the new maps' switch on and
    /// reads the new program's ring; while the upgrade is unfinished, tries again later.
    fn follow(&mut self, ctx: &Ctx, state: &mut State) -> anyhow::Result<()> {
        let programs = attached_programs(ctx)?;
        if programs == self.programs || programs.is_empty() {
            return Ok(());
        }
        let Ok(mut kernel) = Kernel::open(&ctx.pin_dir) else {
            return Ok(());
        };
        let ids: Vec<u32> = programs.iter().copied().collect();
        self.records = kernel::Records::attach(&ids)?;
        self.before = kernel::monitor_counts(&kernel)?;
        self.received = 0;
        kernel::set_monitor(&mut kernel, &self.config)?;
        self.kernel = kernel;
        self.programs = programs;
        *state = load_state(ctx)?;
        eprintln!("the attached program was replaced (upgrade); following the new one");
        Ok(())
    }
}

/// The monitor switch as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    Off,
    /// On, and a monitor holds the lock.
    Watched,
    /// On with no monitor running: one was killed before it could turn it off.
    Stale,
}

impl Switch {
    pub fn name(self) -> &'static str {
        match self {
            Switch::Off => "off",
            Switch::Watched => "on",
            Switch::Stale => "stale",
        }
    }

    /// `status`'s line: none while the switch is off.
    pub fn line(self) -> Option<String> {
        match self {
            Switch::Off => None,
            Switch::Watched => Some("Monitor: on (a `geofence monitor` is running)".into()),
            Switch::Stale => Some(
                "Monitor: switch left ON by a monitor that was killed; every packet of a \
                 meeting pays for a record (geofence monitor --off)"
                    .into(),
            ),
        }
    }
}

/// The switch of the maps under the pin directory; `None` when it cannot be read (no root,
/// no maps, or maps from before the monitor).
pub fn switch_state(ctx: &Ctx) -> Option<Switch> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let config = kernel::pinned_monitor(&ctx.pin_dir).ok()??;
    if config.enabled == 0 {
        return Some(Switch::Off);
    }
    // The lock is free only if no monitor runs; taken here, it goes at once.
    match monitor_lock(&ctx.state_dir) {
        Ok(_) => Some(Switch::Stale),
        Err(_) => Some(Switch::Watched),
    }
}

fn attached_programs(ctx: &Ctx) -> anyhow::Result<BTreeSet<u32>> {
    Ok(kernel::link_programs(&ctx.pin_dir)?.into_values().collect())
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
