//! One fleet relay through what its daemon may live through: killed (SIGKILL) in the middle
//! of applying a version and restarted, stopped while versions are written and compacted
//! away, and a meeting added after the version that names it. Each time it converges to
//! the latest version, applies each version it acts on once and in order (its local audit
//! trail), and the kernel never lets through what a version in force blocks.
//!
//! The relays with traffic take one at a time (a lock): two cores carry it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use geofence_tests::etcd::{Etcd, etcd_installed};
use geofence_tests::fleet::{
    Daemon, FleetStatus, Site, applied_versions, fixture_meetings, fleet_ok, time_to_drop,
    wait_all_on, wait_until, write_policy,
};
use geofence_tests::{Geofence, MeetingPorts, require_root};
use nix::fcntl::{Flock, FlockArg};

/// Generous: the machine is shared; no test here asserts a timing.
const PATIENCE: Duration = Duration::from_secs(60);
const XA_ON_TOWN_HALL: &[(&str, &[&str])] = &[("town-hall", &["XA"])];
/// What the daemon prints while its apply waits for the state lock.
const WAITING: &str = "waiting for another geofence command";

fn one_world_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn ready(test: &str) -> bool {
    require_root(test) && etcd_installed(test)
}

/// Holds the relay's state lock, as a long `geofence` command would: the daemon's next
/// apply waits for it, between reading a version and changing anything.
fn hold_state_lock(state_dir: &std::path::Path) -> Flock<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join("lock"))
        .expect("the lock file");
    Flock::lock(file, FlockArg::LockExclusive).unwrap_or_else(|(_, e)| panic!("flock: {e}"))
}

/// When a test kills the daemon after a `fleet apply` of version `k` returned.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This many milliseconds later.
    After(u64),
    /// Once the state file holds version k's order.
    StateSaved,
    /// Once the audit trail records version k.
    AuditWritten,
}

impl KillAt {
    fn wait(self, state: &std::path::Path, k: u32) {
        let done = |file: &str, text: &str| {
            std::fs::read_to_string(state.join(file)).is_ok_and(|t| t.contains(text))
        };
        let order = format!("ORD-K{k}-town-hall");
        let version = format!("\"fleet_version\":{k}");
        let started = std::time::Instant::now();
        loop {
            let now = match self {
                KillAt::After(ms) => started.elapsed() >= Duration::from_millis(ms),
                KillAt::StateSaved => done("state.json", &order),
                KillAt::AuditWritten => done("audit.jsonl", &version),
            };
            // Past the patience, kill anyway: the invariants below still hold.
            if now || started.elapsed() > PATIENCE {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The `ALIVE` and `VERSION` columns of `relay`'s line in `fleet status`.
fn status_line(endpoints: &str, relay: &str) -> (String, String) {
    let (table, _) = fleet_ok(endpoints, &["status"]).expect("fleet status");
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(relay))
        .unwrap_or_else(|| panic!("no line for {relay}:\n{table}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[1].to_owned(), fields[2].to_owned())
}

#[test]
fn a_daemon_killed_during_applies_converges_version_by_version_and_nothing_blocked_passes() {
    let test =
        "a_daemon_killed_during_applies_converges_version_by_version_and_nothing_blocked_passes";
    if !ready(test) {
        return;
    }
    let _one = one_world_at_a_time();
    let etcd = Etcd::single().expect("etcd");
    let endpoints = etcd.endpoints();
    let relay = "edge-crash";
    let gf = Geofence::new().expect("geofence CLI");
    let mut site = Site::start(gf, relay, &endpoints, &fixture_meetings(), &[]).expect("site");
    let dir = site.world.gf.temp_dir().to_owned();
    let state = site.state_dir();
    let policy = |k: u32| {
        write_policy(
            &dir,
            &format!("v{k}"),
            &format!("ORD-K{k}"),
            XA_ON_TOWN_HALL,
        )
        .expect("policy")
    };

    let (_, returned) = fleet_ok(&endpoints, &["apply", &policy(1)]).expect("apply v1");
    time_to_drop(&[&site.world], "xa", "town-hall", returned, PATIENCE).expect("XA dropped");
    wait_all_on(&endpoints, &[relay], 1, PATIENCE).expect("on version 1");
    // From here on, every version blocks XA on town-hall (each under its own order): the
    // relay must receive nothing more from XA there, crashes and restarts included. The
    // streams send every 2 ms throughout: a continuous probe.
    let xa_blocked = site.received("xa", "town-hall");
    let xb_before = site.received("xb", "town-hall");
    // Taken out of the site, and so dropped before it.
    let mut daemon = site.daemon.take().expect("the daemon");

    // Killed while its apply of version 2 waits for the state lock.
    let lock = hold_state_lock(&state);
    let from = daemon.log().len();
    fleet_ok(&endpoints, &["apply", &policy(2)]).expect("apply v2");
    daemon
        .wait_log(WAITING, from, PATIENCE)
        .expect("the apply waits");
    daemon.kill();
    drop(lock);
    // Down: shown dead once its lease runs out, its last status still there.
    let row = wait_until("the relay shown dead", PATIENCE, || {
        let status = FleetStatus::read(&endpoints)?;
        Ok(status.relay(relay).filter(|r| !r.alive).cloned())
    })
    .expect("dead");
    assert_eq!(row.version, Some(1), "{row:?}");
    assert_eq!(
        status_line(&endpoints, relay),
        ("no".to_owned(), "1".to_owned())
    );
    daemon.restart().expect("restart");
    wait_all_on(&endpoints, &[relay], 2, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", daemon.log()));

    // Killed at points through its apply: as the command returns, as soon as the state
    // file holds the version (its audit entry may not be written yet), as soon as its audit
    // entry is written (fleet.json may not be), and after fixed delays.
    let kill_points = [
        KillAt::After(0),
        KillAt::StateSaved,
        KillAt::AuditWritten,
        KillAt::After(60),
        KillAt::After(150),
    ];
    for (k, at) in (3..=7).zip(kill_points) {
        let from = daemon.log().len();
        fleet_ok(&endpoints, &["apply", &policy(k)]).expect("apply");
        at.wait(&state, k);
        daemon.kill();
        let applied = daemon.log()[from..].contains(&format!("applied version {k}"));
        let recorded = applied_versions(&state)
            .expect("audit")
            .contains(&u64::from(k));
        println!(
            "version {k}: killed {at:?}; its apply had {}",
            match (applied, recorded) {
                (true, _) => "finished",
                (false, true) => "committed and recorded, not reported",
                (false, false) => "not been recorded",
            }
        );
        daemon.restart().expect("restart");
        wait_all_on(&endpoints, &[relay], u64::from(k), PATIENCE)
            .unwrap_or_else(|e| panic!("version {k}: {e:#}\n{}", daemon.log()));
    }

    // Every version, once, in order: none skipped, none applied twice.
    let versions = applied_versions(&state).expect("the audit trail");
    assert_eq!(versions, (1..=7).collect::<Vec<u64>>(), "{}", daemon.log());
    assert_eq!(
        site.received("xa", "town-hall"),
        xa_blocked,
        "XA reached town-hall while the daemon was down or restarting"
    );
    assert!(
        site.received("xb", "town-hall") > xb_before,
        "the probe stopped"
    );
    site.verify("after the crashes", XA_ON_TOWN_HALL)
        .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn a_daemon_that_missed_compacted_revisions_relists_and_converges() {
    let test = "a_daemon_that_missed_compacted_revisions_relists_and_converges";
    if !ready(test) {
        return;
    }
    let etcd = Etcd::single().expect("etcd");
    let endpoints = etcd.endpoints();
    let relay = "edge-slow";
    // No traffic needed: what it enforces is read from its status and audit trail.
    let gf = Geofence::new().expect("geofence CLI");
    gf.run(&["meeting", "add", "town-hall", "--endpoint", "udp:*:40000"])
        .expect("meeting add");
    let state = gf.temp_dir().join("state");
    let dir = gf.temp_dir().to_owned();
    let policy = |k: u32| {
        write_policy(
            &dir,
            &format!("v{k}"),
            &format!("ORD-C{k}"),
            XA_ON_TOWN_HALL,
        )
        .expect("policy")
    };
    let mut daemon = Daemon::start(&gf, relay, &endpoints).expect("daemon");
    fleet_ok(&endpoints, &["apply", &policy(1)]).expect("apply v1");
    wait_all_on(&endpoints, &[relay], 1, PATIENCE).expect("on version 1");

    // Stopped while three versions are written and the history compacted past them.
    daemon.signal(libc::SIGSTOP).expect("SIGSTOP");
    for k in 2..=4 {
        fleet_ok(&endpoints, &["apply", &policy(k)]).expect("apply");
    }
    etcd.compact(etcd.revision().expect("revision"))
        .expect("compact");
    daemon.signal(libc::SIGCONT).expect("SIGCONT");
    wait_all_on(&endpoints, &[relay], 4, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", daemon.log()));
    // etcd had already sent the stopped daemon's watch those versions: it applies them in
    // order, or re-lists if the watch was cancelled; either way in order, once each.
    let versions = applied_versions(&state).expect("audit");
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(versions.last(), Some(&4), "{versions:?}");

    // A watch that starts behind the compaction: the daemon lists version 5, and while its
    // apply waits for the state lock, versions 6 and 7 are written and compacted away, so
    // the watch it opens after the apply (from the revision after its list) is cancelled.
    daemon.stop().expect("SIGTERM");
    fleet_ok(&endpoints, &["apply", &policy(5)]).expect("apply v5");
    let lock = hold_state_lock(&state);
    let from = daemon.log().len();
    daemon.restart().expect("restart");
    daemon
        .wait_log(WAITING, from, PATIENCE)
        .expect("its apply waits");
    for k in 6..=7 {
        fleet_ok(&endpoints, &["apply", &policy(k)]).expect("apply");
    }
    etcd.compact(etcd.revision().expect("revision"))
        .expect("compact");
    drop(lock);
    wait_all_on(&endpoints, &[relay], 7, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", daemon.log()));
    let log = daemon.log();
    assert!(log[from..].contains("compacted"), "{log}");
    assert!(log[from..].contains("re-listing"), "{log}");
    let mut expected = versions.clone();
    expected.extend([5, 7]);
    assert_eq!(applied_versions(&state).expect("audit"), expected, "{log}");
}

#[test]
fn a_meeting_added_after_the_version_meets_its_rule_on_its_first_packet() {
    let test = "a_meeting_added_after_the_version_meets_its_rule_on_its_first_packet";
    if !ready(test) {
        return;
    }
    let _one = one_world_at_a_time();
    let etcd = Etcd::single().expect("etcd");
    let endpoints = etcd.endpoints();
    let relay = "edge-late";
    let late = MeetingPorts::new("late", 42000, 42001);
    let gf = Geofence::new().expect("geofence CLI");
    let site = Site::start(gf, relay, &endpoints, &fixture_meetings(), &[late]).expect("site");
    let dir = site.world.gf.temp_dir().to_owned();
    let blocks: &[(&str, &[&str])] = &[("town-hall", &["XA"]), ("late", &["XA"])];
    let v1 = write_policy(&dir, "v1", "ORD-LATE", blocks).expect("policy");
    fleet_ok(&endpoints, &["apply", &v1]).expect("apply");
    let status = wait_all_on(&endpoints, &[relay], 1, PATIENCE).expect("on version 1");
    let row = status.relay(relay).expect("the relay");
    assert_eq!(row.waiting, ["late"], "{:#}", status.json);
    // No meeting on port 42000 yet: every participant's traffic there passes.
    site.verify("before the meeting exists", XA_ON_TOWN_HALL)
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Added while XA and the others send to its ports every 2 ms.
    site.world
        .gf
        .run(&[
            "meeting",
            "add",
            "late",
            "--endpoint",
            "udp:*:42000",
            "--endpoint",
            "tcp:*:42001",
        ])
        .expect("meeting add");
    site.verify("after the meeting is added", blocks)
        .unwrap_or_else(|e| panic!("{e:#}"));
    // The kernel's own count: no XA packet was ever decided as late's and passed.
    let stats = site.world.gf.stats().expect("stats");
    let xa = stats.territory("late", "XA");
    assert_eq!(xa.passed.packets, 0, "{:#}", stats.json);
    assert!(xa.dropped.packets > 0, "{:#}", stats.json);
    assert!(
        stats.territory("late", "XB").passed.packets > 0,
        "{:#}",
        stats.json
    );
}
