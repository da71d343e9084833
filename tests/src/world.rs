//! A complete end-to-end setup: a scene, geofence attached to the relay's `eth0` with geo
//! tables and meetings loaded, and media running. Plus a matrix check of who gets through.

use std::fmt::Write as _;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::Geofence;
use crate::scene::{Participant, ParticipantSpec, Scene};
use crate::traffic::{Delta, Media, MeetingPorts};

/// How long a UDP measurement window lasts.
pub const WINDOW: Duration = Duration::from_millis(300);
/// Pause after a change before measuring, so no packet sent before it is still in flight.
pub const SETTLE: Duration = Duration::from_millis(50);

/// Fields drop in order: traffic stops, then geofence detaches and its pins go, then the
/// namespaces.
pub struct World {
    pub media: Media,
    pub gf: Geofence,
    pub scene: Scene,
    pub meetings: Vec<MeetingPorts>,
}

impl World {
    /// Builds the scene, attaches geofence to the relay, loads `geo_files` (each a list of
    /// `geo load` arguments), adds the meetings (`udp:*:PORT`, `tcp:*:PORT`), starts media
    /// and waits until every stream flows.
    pub fn start(
        gf: Geofence,
        specs: &[ParticipantSpec],
        meetings: &[MeetingPorts],
        geo_loads: &[Vec<String>],
    ) -> Result<World> {
        let scene = Scene::build(specs).context("building the scene")?;
        gf.attach("eth0", scene.relay.name())?;
        for load in geo_loads {
            let mut args = vec!["geo", "load"];
            args.extend(load.iter().map(String::as_str));
            gf.run(&args)?;
        }
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
        let media = Media::start(&scene, meetings)?;
        let world = World {
            media,
            gf,
            scene,
            meetings: meetings.to_vec(),
        };
        wait_flowing(&world.media, &world.pairs(), Duration::from_secs(3))?;
        Ok(world)
    }

    /// Every (participant, meeting) pair.
    pub fn pairs(&self) -> Vec<(&Participant, &str)> {
        let mut v = Vec::new();
        for p in &self.scene.participants {
            for m in &self.meetings {
                v.push((p, m.name.as_str()));
            }
        }
        v
    }

    pub fn participant(&self, name: &str) -> &Participant {
        self.scene.participant(name)
    }

    /// Measures UDP for [`WINDOW`] and probes TCP for every pair at the same time.
    pub fn observe(&self) -> Report {
        observe(&self.media, &self.pairs())
    }

    /// Observes and compares with `expect(participant, meeting)`: Ok, or the whole matrix
    /// with every mismatch marked.
    pub fn verify(&self, expect: impl Fn(&Participant, &str) -> Expect) -> Result<(), String> {
        let report = self.observe();
        report.check(|name, meeting| expect(self.participant(name), meeting))
    }
}

/// Waits until every pair's stream has been echoed at least once.
pub fn wait_flowing(media: &Media, pairs: &[(&Participant, &str)], limit: Duration) -> Result<()> {
    let start = Instant::now();
    let first = media.snapshot();
    loop {
        thread::sleep(Duration::from_millis(50));
        let w = media.snapshot().since(&first);
        let missing: Vec<String> = pairs
            .iter()
            .filter(|(p, m)| w.get(p.name(), m).echoed == 0)
            .map(|(p, m)| format!("{} -> {m}", p.name()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("no echo within {limit:?} for: {}", missing.join(", "));
        }
    }
}

/// Measures UDP for [`WINDOW`] (after [`SETTLE`]) and probes TCP for every pair meanwhile.
pub fn observe(media: &Media, pairs: &[(&Participant, &str)]) -> Report {
    thread::sleep(SETTLE);
    let (window, tcp) = thread::scope(|s| {
        let tcp = s.spawn(|| media.tcp_all(pairs));
        let window = media.measure(WINDOW);
        (window, tcp.join().expect("tcp probes panicked"))
    });
    let rows = tcp
        .into_iter()
        .map(|(p, m, tcp)| ReportRow {
            participant: p.name().to_owned(),
            territory: p.spec.territory.clone(),
            meeting: m.to_owned(),
            udp: window.get(p.name(), m),
            tcp,
        })
        .collect();
    Report { rows }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Pass,
    Drop,
}

#[derive(Debug)]
pub struct ReportRow {
    pub participant: String,
    pub territory: String,
    pub meeting: String,
    pub udp: Delta,
    pub tcp: Result<(), String>,
}

impl ReportRow {
    /// What the traffic shows: Some(Pass) when UDP flows and TCP works, Some(Drop) when
    /// neither gets through, None when it is neither clearly.
    pub fn outcome(&self) -> Option<Expect> {
        match (self.udp.flowing(), self.udp.blocked(), self.tcp.is_ok()) {
            (true, _, true) => Some(Expect::Pass),
            (_, true, false) => Some(Expect::Drop),
            _ => None,
        }
    }
}

/// Who got through during one observation.
#[derive(Debug)]
pub struct Report {
    pub rows: Vec<ReportRow>,
}

impl Report {
    /// A readable table: participant, territory, meeting, UDP sent/received/echoed, TCP.
    pub fn table(&self, marks: impl Fn(&ReportRow) -> &'static str) -> String {
        let mut s = format!(
            "  {:<12} {:<9} {:<10} {:>6} {:>9} {:>7}  {:<8}\n",
            "participant", "territory", "meeting", "sent", "received", "echoed", "tcp"
        );
        for r in &self.rows {
            let tcp = if r.tcp.is_ok() { "ok" } else { "blocked" };
            let _ = writeln!(
                s,
                "  {:<12} {:<9} {:<10} {:>6} {:>9} {:>7}  {:<8}{}",
                r.participant,
                r.territory,
                r.meeting,
                r.udp.sent,
                r.udp.received,
                r.udp.echoed,
                tcp,
                marks(r)
            );
        }
        s
    }

    pub fn check(&self, expect: impl Fn(&str, &str) -> Expect) -> Result<(), String> {
        let bad = |r: &ReportRow| r.outcome() != Some(expect(&r.participant, &r.meeting));
        if !self.rows.iter().any(bad) {
            return Ok(());
        }
        let table = self.table(|r| match (bad(r), expect(&r.participant, &r.meeting)) {
            (false, _) => "",
            (true, Expect::Pass) => "  <-- expected to pass",
            (true, Expect::Drop) => "  <-- expected to be dropped",
        });
        let errors: Vec<String> = self
            .rows
            .iter()
            .filter_map(|r| {
                r.tcp
                    .as_ref()
                    .err()
                    .map(|e| format!("  {} -> {}: {e}", r.participant, r.meeting))
            })
            .collect();
        Err(format!("{table}tcp errors:\n{}", errors.join("\n")))
    }
}

/// Writes `lines` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, lines: &[&str]) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_string_lossy().into_owned())
}
