//! A relay without a kernel: the [`Enforcer`] the fleet bench gives each simulated relay.
//! It does what `LocalRelay` does short of the maps and the disk: merges the version with
//! its local meetings, plans the change with `policy_file::plan` (the same code as `geofence
//! apply`), checks that the kernel maps would hold it, and keeps the new state in memory.

use std::path::Path;

use anyhow::Context as _;
use geofence::{
    expiry::Clock,
    fleet::{
        document::PolicyDoc,
        relay::{self, Applied, Enforcer},
    },
    policy_file,
    state::State,
};

/// The local meetings every simulated relay hosts: each owns its ports, as on a relay
/// whose meetings do not share one.
const LOCAL_MEETINGS: &str = r#"
[meetings.town-hall]
endpoints = ["udp:*:40000-40099", "tcp:*:40100"]

[meetings.standup]
endpoints = ["udp:*:41000-41099", "tcp:*:41100"]
"#;

pub struct MemoryRelay {
    state: State,
    last: Option<(PolicyDoc, i64)>,
}

impl MemoryRelay {
    pub fn new() -> anyhow::Result<MemoryRelay> {
        let now = Clock::now().wall();
        let declared = policy_file::parse(Path::new("local meetings"), LOCAL_MEETINGS, now)
            .context("the simulated relay's meetings")?;
        let plan = policy_file::plan(&State::default(), &declared, now, "bench")?;
        Ok(MemoryRelay {
            state: plan.new,
            last: None,
        })
    }
}

impl Enforcer for MemoryRelay {
    fn apply(&mut self, doc: &PolicyDoc, revision: i64) -> anyhow::Result<Applied> {
        // The entry point of this change, as LocalRelay's: its own clock reading.
        let clock = Clock::now();
        let now = clock.wall();
        let (declared, waiting) = relay::merge(&self.state, doc, now);
        let operator = format!("fleet v{} by {}", doc.version, doc.author);
        let plan = policy_file::plan(&self.state, &declared, now, &operator)?;
        geofence::model::SessionMaps::derive(&plan.new, &clock)
            .context("the fleet policy asks for more than the kernel maps hold")?;
        self.state = plan.new;
        self.last = Some((doc.clone(), revision));
        Ok(Applied {
            enforced_hash: relay::enforced_hash(&self.state, now),
            waiting,
            at: now,
        })
    }

    fn last(&self) -> Option<(PolicyDoc, i64)> {
        self.last.clone()
    }
}
