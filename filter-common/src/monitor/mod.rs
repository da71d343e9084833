//! `geofence monitor`: the switch that makes the program report its decisions, and the
//! per-CPU state that bounds how many it reports.
//!
//! The switch is one entry of the `MONITOR` array, read once per packet of a meeting after
//! its decision; while it is off (the usual case) that read is all the monitor costs. On,
//! the decisions that pass its filters are sampled (one in `every`, per CPU) and at most
//! `per_second` records a second leave each CPU, so a flood cannot fill the log ring or
//! cost more than that many records. A record is an aya-log message (see [`wire`]).

use crate::{TerritoryId, Verdict};

pub mod wire;

/// [`MonitorConfig::verdicts`]: show passed decisions.
pub const SHOW_PASSED: u32 = 1;
/// [`MonitorConfig::verdicts`]: show enforced drops.
pub const SHOW_DROPPED: u32 = 2;
/// [`MonitorConfig::verdicts`]: show the drops of dry-run rules.
pub const SHOW_WOULD_DROP: u32 = 4;
/// Every verdict.
pub const SHOW_ALL: u32 = SHOW_PASSED | SHOW_DROPPED | SHOW_WOULD_DROP;

/// The aya-log target of the records, so the reader keeps only them.
pub const TARGET: &str = "geofence::monitor";

/// The slot of a decision no rule gave, as records carry it.
pub const NO_SLOT: u32 = 0xff;

/// The record budget per CPU and second when the monitor does not ask for another.
pub const DEFAULT_PER_SECOND: u32 = 1000;

/// A decision as one number: what a record carries besides the source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    pub session: u32,
    pub territory: TerritoryId,
    /// A [`Verdict`] as `u32`.
    pub verdict: u32,
    /// The rule slot, or [`NO_SLOT`].
    pub slot: u32,
    /// A [`Cause`] as `u32`.
    pub cause: u32,
}

impl Packed {
    /// Session ids take 16 bits (they are below 4,096), the territory 16, the verdict,
    /// slot and cause 8 each.
    #[inline(always)]
    pub fn pack(self) -> u64 {
        u64::from(self.session & 0xffff)
            | u64::from(self.territory) << 16
            | u64::from(self.verdict & 0xff) << 32
            | u64::from(self.slot & 0xff) << 40
            | u64::from(self.cause & 0xff) << 48
    }

    pub fn unpack(value: u64) -> Packed {
        Packed {
            session: (value & 0xffff) as u32,
            territory: (value >> 16) as TerritoryId,
            verdict: (value >> 32) as u32 & 0xff,
            slot: (value >> 40) as u32 & 0xff,
            cause: (value >> 48) as u32 & 0xff,
        }
    }
}

/// The one entry of the `MONITOR` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Non-zero: decisions are reported.
    pub enabled: u32,
    /// One decision in `every` that passes the filters is reported, per CPU (1: each).
    pub every: u32,
    /// Only the decisions of this session id; 0: every meeting.
    pub session: u32,
    /// Which verdicts: `SHOW_*` bits.
    pub verdicts: u32,
    /// Non-zero: records carry the source address.
    pub addresses: u32,
    /// At most this many records per CPU and second (0: none).
    pub per_second: u32,
}

impl MonitorConfig {
    pub const OFF: MonitorConfig = MonitorConfig {
        enabled: 0,
        every: 1,
        session: 0,
        verdicts: SHOW_ALL,
        addresses: 0,
        per_second: DEFAULT_PER_SECOND,
    };

    /// Whether a decision of `session` with `verdict` passes the filters.
    #[inline(always)]
    pub fn shows(&self, session: u32, verdict: Verdict) -> bool {
        let bit = match verdict {
            Verdict::Passed => SHOW_PASSED,
            Verdict::Dropped => SHOW_DROPPED,
            Verdict::WouldDrop => SHOW_WOULD_DROP,
        };
        self.verdicts & bit != 0 && (self.session == 0 || self.session == session)
    }
}

/// The one entry of the per-CPU `MONITOR_CPU` array: the sampling counter and the
/// budget's window, and what they let through or held back, since the maps were created.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorCpu {
    /// Decisions that passed the filters.
    pub matched: u64,
    /// Start of the current one-second window (the program's coarse clock, ns).
    pub window_ns: u64,
    /// Records sent in that window.
    pub in_window: u64,
    /// Records sent (a record the ring had no room for included).
    pub sent: u64,
    /// Sampled decisions the budget held back.
    pub over_budget: u64,
}

impl MonitorCpu {
    /// Counts a decision that passed the filters; whether it is sampled and within the
    /// budget at `now_ns`, which then counts it as sent.
    #[inline(always)]
    pub fn admit(&mut self, config: &MonitorConfig, now_ns: u64) -> bool {
        self.matched += 1;
        let every = if config.every == 0 { 1 } else { config.every };
        if !self.matched.is_multiple_of(u64::from(every)) {
            return false;
        }
        if now_ns.wrapping_sub(self.window_ns) >= 1_000_000_000 {
            self.window_ns = now_ns;
            self.in_window = 0;
        }
        if self.in_window >= u64::from(config.per_second) {
            self.over_budget += 1;
            return false;
        }
        self.in_window += 1;
        self.sent += 1;
        true
    }
}

/// Why a decision went as it did, as a record carries it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// No rule in force blocks the source's territory, and no prefix rule covers it.
    NoRule = 0,
    /// A rule in force blocks the territory, but an exception (`allow`) covers the source.
    Exception = 1,
    /// The rule blocks the source's territory.
    Territory = 2,
    /// The rule blocks a prefix covering the source.
    Prefix = 3,
}

impl Cause {
    pub const ALL: [Cause; 4] = [
        Cause::NoRule,
        Cause::Exception,
        Cause::Territory,
        Cause::Prefix,
    ];

    pub fn from_u32(value: u32) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| *c as u32 == value)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, all fields integers, no padding.
    unsafe impl aya::Pod for super::MonitorConfig {}
    unsafe impl aya::Pod for super::MonitorCpu {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(every: u32, per_second: u32) -> MonitorConfig {
        MonitorConfig {
            enabled: 1,
            every,
            per_second,
            ..MonitorConfig::OFF
        }
    }

    #[test]
    fn layouts() {
        assert_eq!(core::mem::size_of::<MonitorConfig>(), 24);
        assert_eq!(core::mem::size_of::<MonitorCpu>(), 40);
    }

    #[test]
    fn filters_by_session_and_verdict() {
        let mut config = on(1, 10);
        assert!(config.shows(7, Verdict::Passed));
        config.session = 7;
        config.verdicts = SHOW_DROPPED | SHOW_WOULD_DROP;
        assert!(config.shows(7, Verdict::Dropped) && config.shows(7, Verdict::WouldDrop));
        assert!(!config.shows(7, Verdict::Passed), "passes are filtered out");
        assert!(!config.shows(8, Verdict::Dropped), "another meeting");
    }

    #[test]
    fn samples_one_in_every_and_keeps_to_the_budget() {
        let mut cpu = MonitorCpu::default();
        let config = on(3, 2);
        let second = 1_000_000_000;
        let admitted: [bool; 9] = core::array::from_fn(|_| cpu.admit(&config, 5 * second));
        // The 3rd and 6th are sampled and sent; the 9th is over the budget of 2.
        assert_eq!(
            admitted,
            [false, false, true, false, false, true, false, false, false]
        );
        assert_eq!((cpu.sent, cpu.over_budget, cpu.matched), (2, 1, 9));
        // A second later the budget is whole again.
        let next: [bool; 3] = core::array::from_fn(|_| cpu.admit(&config, 6 * second));
        assert_eq!(next, [false, false, true]);
        assert_eq!(cpu.in_window, 1);
    }

    #[test]
    fn every_zero_is_every_decision() {
        let mut cpu = MonitorCpu::default();
        let config = on(0, 100);
        assert!((0..5).all(|_| cpu.admit(&config, 1)));
    }

    #[test]
    fn a_decision_packs_into_one_number_and_back() {
        let last = crate::maps::capacity::MAX_SESSIONS - 1;
        for packed in [
            Packed {
                session: last,
                territory: u16::MAX,
                verdict: Verdict::WouldDrop as u32,
                slot: NO_SLOT,
                cause: Cause::Prefix as u32,
            },
            Packed {
                session: 1,
                territory: 0,
                verdict: 0,
                slot: 7,
                cause: 0,
            },
        ] {
            assert_eq!(Packed::unpack(packed.pack()), packed);
        }
    }

    #[test]
    fn causes_round_trip() {
        for cause in Cause::ALL {
            assert_eq!(Cause::from_u32(cause as u32), Some(cause));
        }
        assert_eq!(Cause::from_u32(4), None);
    }
}
