//! A relay site: a [`World`] (its namespaces, geofence attached to its `eth0`, the fixture
//! table, its meetings and running media) with its own `geofence daemon --fleet`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Daemon;
use crate::cli::Geofence;
use crate::scene::{Participant, ParticipantSpec, Scene};
use crate::traffic::{Media, MeetingPorts};
use crate::world::{Expect, World, wait_flowing, write_file};

/// How many datagrams a participant must have sent, with none reaching the relay, before
/// its stream counts as dropped there (at one every 2 ms: 200 ms).
const QUIET_PACKETS: u64 = 100;

/// Fields drop in order: the daemon stops before the world detaches and removes its pins.
pub struct Site {
    pub daemon: Option<Daemon>,
    pub world: World,
    pub relay: String,
}

/// One participant per territory: XA, XB, XC (the fixture table's TEST-NET ranges).
pub fn fixture_participants() -> Vec<ParticipantSpec> {
    vec![
        ParticipantSpec::new("xa", "192.0.2.10", "XA"),
        ParticipantSpec::new("xb", "198.51.100.10", "XB"),
        ParticipantSpec::new("xc", "203.0.113.10", "XC"),
    ]
}

/// Two meetings, each with its own UDP media and TCP signaling port.
pub fn fixture_meetings() -> Vec<MeetingPorts> {
    vec![
        MeetingPorts::new("town-hall", 40000, 40001),
        MeetingPorts::new("standup", 41000, 41001),
    ]
}

/// What a site's traffic should show when `blocks` (meeting, territories) are in force.
pub fn expect_blocked<'a>(
    blocks: &'a [(&'a str, &'a [&'a str])],
) -> impl Fn(&Participant, &str) -> Expect + 'a {
    move |p, meeting| {
        let blocked = blocks.iter().any(|(m, territories)| {
            *m == meeting && territories.contains(&p.spec.territory.as_str())
        });
        if blocked { Expect::Drop } else { Expect::Pass }
    }
}

impl Site {
    /// Builds the world with `gf`: the fixture table, `meetings` registered, traffic to
    /// them and to `later` (ports a meeting may be added on afterwards) flowing; then
    /// starts the relay's fleet daemon.
    pub fn start(
        gf: Geofence,
        relay: &str,
        endpoints: &str,
        meetings: &[MeetingPorts],
        later: &[MeetingPorts],
    ) -> Result<Site> {
        Site::start_with(gf, relay, endpoints, meetings, later, &[])
    }

    /// [`Site::start`] with more arguments for the daemon.
    pub fn start_with(
        gf: Geofence,
        relay: &str,
        endpoints: &str,
        meetings: &[MeetingPorts],
        later: &[MeetingPorts],
        daemon_args: &[&str],
    ) -> Result<Site> {
        let world =
            build(gf, meetings, later).with_context(|| format!("setting up relay {relay}"))?;
        let daemon = Daemon::start_with(&world.gf, relay, endpoints, daemon_args)?;
        Ok(Site {
            daemon: Some(daemon),
            world,
            relay: relay.to_owned(),
        })
    }

    pub fn daemon(&mut self) -> Result<&mut Daemon> {
        self.daemon
            .as_mut()
            .with_context(|| format!("relay {} has no daemon", self.relay))
    }

    pub fn state_dir(&self) -> std::path::PathBuf {
        self.world.gf.temp_dir().join("state")
    }

    /// Checks who gets through against `blocks`; the whole matrix in the error.
    pub fn verify(&self, when: &str, blocks: &[(&str, &[&str])]) -> Result<()> {
        self.world
            .verify(expect_blocked(blocks))
            .map_err(|table| anyhow::anyhow!("relay {}, {when}:\n{table}", self.relay))
    }

    /// Datagrams from `participant` to `meeting` the relay has received so far.
    pub fn received(&self, participant: &str, meeting: &str) -> u64 {
        self.world
            .media
            .snapshot()
            .row(participant, meeting)
            .received
    }
}

/// [`World::start`], with traffic also to the `later` ports, where no meeting is yet.
fn build(gf: Geofence, meetings: &[MeetingPorts], later: &[MeetingPorts]) -> Result<World> {
    let table = write_file(
        gf.temp_dir(),
        "territories.csv",
        &[
            "192.0.2.0,192.0.2.255,XA",
            "198.51.100.0,198.51.100.255,XB",
            "203.0.113.0,203.0.113.255,XC",
        ],
    )?;
    let scene = Scene::build(&fixture_participants()).context("building the scene")?;
    gf.attach("eth0", scene.relay.name())?;
    gf.run(&["geo", "load", &table])?;
    for m in meetings {
        let (udp, tcp) = (format!("udp:*:{}", m.udp), format!("tcp:*:{}", m.tcp));
        gf.run(&[
            "meeting",
            "add",
            &m.name,
            "--endpoint",
            &udp,
            "--endpoint",
            &tcp,
        ])?;
    }
    let all: Vec<MeetingPorts> = meetings.iter().chain(later).cloned().collect();
    let media = Media::start(&scene, &all)?;
    let world = World {
        media,
        gf,
        scene,
        meetings: all,
    };
    wait_flowing(&world.media, &world.pairs(), Duration::from_secs(5))?;
    Ok(world)
}

/// After a `fleet apply` that returned at `returned`, waits (up to `limit`) until
/// `participant`'s datagrams to `meeting` stop reaching the relay of every site, and
/// returns per site how long after `returned` the last one got through (zero when that
/// was before). The relay logs the instant of each datagram it receives, so the figure
/// does not depend on how often this polls.
pub fn time_to_drop(
    worlds: &[&World],
    participant: &str,
    meeting: &str,
    returned: Instant,
    limit: Duration,
) -> Result<Vec<Duration>> {
    // Per world: the last receipt seen and how much had been sent when it was first seen.
    let mut seen: Vec<(Option<Instant>, u64)> = vec![(None, 0); worlds.len()];
    let started = Instant::now();
    loop {
        let mut quiet = 0;
        for (w, (last, sent_then)) in worlds.iter().zip(seen.iter_mut()) {
            let row = w.media.snapshot().row(participant, meeting);
            if row.last_received != *last {
                *last = row.last_received;
                *sent_then = row.sent;
            } else if row.sent >= *sent_then + QUIET_PACKETS {
                quiet += 1;
            }
        }
        if quiet == worlds.len() {
            break;
        }
        if started.elapsed() > limit {
            bail!("{participant} -> {meeting} still reaches a relay {limit:?} after the apply");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(seen
        .iter()
        .map(|(last, _)| last.map_or(Duration::ZERO, |t| t.saturating_duration_since(returned)))
        .collect())
}
