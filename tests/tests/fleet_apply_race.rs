//! Two operators run `geofence fleet apply` at the same moment: exactly one version is
//! written, and the other command is refused naming the version written in between and its
//! author. The race is made certain, not likely: etcd is stopped (SIGSTOP) while both
//! commands connect and send their read, so both read the same revision when it continues.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use geofence_tests::cli::geofence_bin;
use geofence_tests::etcd::{Etcd, etcd_installed};
use geofence_tests::fleet::{FleetStatus, fleet_ok, wait_until, write_policy};

/// The socket inodes of `pid`'s open file descriptors.
fn socket_inodes(pid: u32) -> BTreeSet<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect()
}

/// `pid` has an established TCP connection to `port` on loopback.
fn connected(pid: u32, port: u16) -> bool {
    let inodes = socket_inodes(pid);
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // sl local_address rem_address st ... inode: the remote port in hex, state 01.
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 9
            && f[2].ends_with(&format!(":{port:04X}"))
            && f[3] == "01"
            && inodes.contains(f[9])
    })
}

fn spawn_apply(endpoints: &str, file: &str) -> Child {
    Command::new(geofence_bin().expect("the geofence binary"))
        .args(["fleet", "--etcd", endpoints, "apply", file])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting geofence fleet apply")
}

#[test]
fn two_concurrent_fleet_applies_one_wins_and_the_other_is_refused_naming_the_winner() {
    let test = "two_concurrent_fleet_applies_one_wins_and_the_other_is_refused_naming_the_winner";
    if !etcd_installed(test) {
        return;
    }
    let etcd = Etcd::single().expect("etcd");
    let endpoints = etcd.endpoints();
    let port: u16 = etcd
        .url(0)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL");
    let dir = etcd.dir().to_owned();
    // The first race is for the first version (guard: no policy yet), the second for a
    // later one (guard: the policy's mod revision). The client makes a round trip to pick
    // an endpoint before its read, so on a loaded machine one command may still read after
    // the other wrote: both then rightly win, one after the other, and the attempt is run
    // again until the two reads meet.
    let mut written = 0u64;
    let mut races = 0;
    for attempt in 1..=12u64 {
        if races == 2 {
            break;
        }
        let a = write_policy(
            &dir,
            &format!("a{attempt}"),
            &format!("ORD-A{attempt}"),
            &[("town-hall", &["XA"])],
        )
        .expect("policy a");
        let b = write_policy(
            &dir,
            &format!("b{attempt}"),
            &format!("ORD-B{attempt}"),
            &[("town-hall", &["XB"])],
        )
        .expect("policy b");
        etcd.pause(0, true).expect("SIGSTOP etcd");
        let children = [spawn_apply(&endpoints, &a), spawn_apply(&endpoints, &b)];
        let waited = wait_until("both commands connected", Duration::from_secs(20), || {
            Ok(children
                .iter()
                .all(|c| connected(c.id(), port))
                .then_some(()))
        });
        // Their first requests follow the connection at once; give them time to be sent.
        std::thread::sleep(Duration::from_millis(300));
        etcd.pause(0, false).expect("SIGCONT etcd");
        waited.expect("connected");
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("fleet apply"))
            .collect();
        let text = |o: &std::process::Output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        let winners: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
        match winners.len() {
            2 => {
                // One after the other: the later one read the earlier one's version.
                written += 2;
                assert!(
                    outs.iter().any(
                        |o| text(o).contains(&format!("against fleet version {}", written - 1))
                    ),
                    "attempt {attempt}: both won, so one must have read the other's version:\n{}\n---\n{}",
                    text(&outs[0]),
                    text(&outs[1])
                );
                eprintln!(
                    "attempt {attempt}: the reads did not meet (both applied in turn); again"
                );
                continue;
            }
            1 => {}
            _ => panic!(
                "attempt {attempt}: neither won:\n{}\n---\n{}",
                text(&outs[0]),
                text(&outs[1])
            ),
        }
        written += 1;
        races += 1;
        assert!(
            text(winners[0]).contains(&format!("fleet version {written} written")),
            "{}",
            text(winners[0])
        );
        let loser = outs.iter().find(|o| !o.status.success()).expect("a loser");
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(
            err.contains("refused: the fleet policy changed after it was read"),
            "{err}"
        );
        assert!(
            err.contains(&format!("version {written} was written by")),
            "the refusal names the winner: {err}"
        );
        let status = FleetStatus::read(&endpoints).expect("fleet status");
        assert_eq!(status.latest, Some(written), "{:#}", status.json);
        let (audit, _) = fleet_ok(&endpoints, &["audit", "show"]).expect("fleet audit show");
        let versions = audit.lines().filter(|l| l.starts_with("version ")).count();
        assert_eq!(versions as u64, written, "{audit}");
    }
    assert_eq!(
        races, 2,
        "two races in which both commands read the same version"
    );
}
