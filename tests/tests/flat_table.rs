//! The flattened territory table gives the same territory as the stock LPM trie for every
//! prefix boundary of the real table (`../shared/geo`, both CSVs): the first and last
//! address of each prefix, one before and one past.
//!
//! All boundaries: the userspace mirror of the kernel lookup (the same
//! `filter_common::geo` code, over the kernel's arrays mapped into memory) against the
//! kernel's trie (`LpmTrie::get`). A sample of them also goes through the XDP program
//! itself (BPF_PROG_TEST_RUN, a meeting without rules, the territory read back from the
//! session counters), which proves the program's lookup equals the mirror.
//!
//! Needs root (BPF and bpffs) and the real table; skipped otherwise, saying why.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aya::maps::{LpmTrie, lpm_trie::Key};
use filter_common::maps::names;
use filter_common::{TERRITORY_UNKNOWN, TerritoryId, TerritoryKeyV4, TerritoryKeyV6};
use geofence::expiry::Clock;
use geofence::geo::{Format, GeoTable, NetBits, load_files};
use geofence::kernel::{self, Kernel};
use geofence::state::{Meeting, State};
use geofence_test_frames::Packet;
use geofence_tests::pinned::Program;

/// Boundary addresses sent through the program itself.
const SAMPLE: usize = 2_000;
const SESSION: u32 = 1;

fn geo_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/geo");
    dir.canonicalize().unwrap_or(dir)
}

/// A pin directory on bpffs, removed (pins first) on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// First, last, one before and one past each prefix; sorted, without duplicates.
fn boundaries<T: Ord + Copy>(
    prefixes: impl Iterator<Item = (T, T)>,
    one: impl Fn(T, bool) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    for (first, last) in prefixes {
        out.extend(
            [Some(first), Some(last), one(first, false), one(last, true)]
                .into_iter()
                .flatten(),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn state() -> State {
    let meeting = Meeting {
        session: SESSION,
        created: geofence::clock::now(),
        endpoints: vec!["udp:*:40000".parse().expect("endpoint")],
        flows: Vec::new(),
        rules: Vec::new(),
        allows: Vec::new(),
    };
    let mut state = State::default();
    state.meetings.insert("flat".to_string(), meeting);
    state
}

/// The session's packet count per territory.
fn counts(kernel: &Kernel) -> BTreeMap<TerritoryId, u64> {
    let stats = kernel::read_stats(kernel).expect("reading the counters");
    let session = stats.sessions.get(&SESSION).cloned().unwrap_or_default();
    session
        .into_iter()
        .map(|(t, c)| (t, c.packets.iter().sum()))
        .collect()
}

#[test]
fn flat_table_equals_the_lpm_trie_at_every_boundary() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (BPF maps and bpffs)");
        return;
    }
    let files = [
        geo_dir().join("geo-whois-asn-country-ipv4.csv"),
        geo_dir().join("geo-whois-asn-country-ipv6.csv"),
    ];
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        eprintln!("skipping: the real table {} is absent", missing.display());
        return;
    }
    geofence_tests::sys::ensure_bpffs().expect("bpffs on /sys/fs/bpf");
    let pins = PinDir(PathBuf::from("/sys/fs/bpf").join(format!("gf-flat-{}", std::process::id())));
    let mut kernel = Kernel::open(&pins.0).expect("loading the geofence object");
    let table: GeoTable = load_files(&files, Format::Csv, None).expect("loading the real table");

    let started = Instant::now();
    let loaded = kernel::load_table(&mut kernel, &table).expect("loading the flattened table");
    kernel::load_lpm_reference(&mut kernel, &table).expect("loading the LPM reference");
    println!(
        "{} IPv4 + {} IPv6 prefixes: {} tbl24 blocks, {} block lists, {} tbl8 groups, {} \
         range lists, {} IPv6 ranges, {} IPv6 trie nodes, {} packed IPv6 ranges; loaded both \
         in {:.2}s",
        loaded.prefixes_v4,
        loaded.prefixes_v6,
        loaded.blocks_v4,
        loaded.block_lists_v4,
        loaded.groups_v4,
        loaded.lists_v4,
        loaded.ranges_v6,
        loaded.nodes_v6,
        loaded.packed_v6,
        started.elapsed().as_secs_f64()
    );

    let v4 = boundaries(
        table.v4.iter().map(|(p, _)| (p.first(), p.last())),
        |a, up| {
            if up {
                a.checked_add(1)
            } else {
                a.checked_sub(1)
            }
        },
    );
    let v6 = boundaries(
        table.v6.iter().map(|(p, _)| (p.first(), p.last())),
        |a, up| {
            if up {
                a.checked_add(1)
            } else {
                a.checked_sub(1)
            }
        },
    );

    // Every boundary: the mirror over the mapped arrays against the trie.
    let started = Instant::now();
    let flat = kernel::map_active(&kernel).expect("mapping the active table");
    let (trie4, trie6) = match kernel::active_generation(&kernel).expect("generation") {
        0 => (names::GEO4_A, names::GEO6_A),
        _ => (names::GEO4_B, names::GEO6_B),
    };
    let trie4: LpmTrie<_, TerritoryKeyV4, TerritoryId> =
        LpmTrie::try_from(kernel.ebpf.map(trie4).expect("trie")).expect("an LPM trie");
    let trie6: LpmTrie<_, TerritoryKeyV6, TerritoryId> =
        LpmTrie::try_from(kernel.ebpf.map(trie6).expect("trie")).expect("an LPM trie");
    let unknown = |r: Result<TerritoryId, aya::maps::MapError>| match r {
        Ok(id) => id,
        Err(aya::maps::MapError::KeyNotFound) => TERRITORY_UNKNOWN,
        Err(e) => panic!("trie lookup: {e}"),
    };
    let mut mismatches = Vec::new();
    for &a in &v4 {
        let want = unknown(trie4.get(
            &Key::new(
                32,
                TerritoryKeyV4 {
                    addr: a.to_be_bytes(),
                },
            ),
            0,
        ));
        let got = flat.v4().lookup(a);
        if got != want {
            mismatches.push(format!("{}: flat {got}, trie {want}", Ipv4Addr::from(a)));
        }
    }
    for &a in &v6 {
        let want = unknown(trie6.get(
            &Key::new(
                128,
                TerritoryKeyV6 {
                    addr: a.to_be_bytes(),
                },
            ),
            0,
        ));
        let got = flat.v6().lookup(a);
        if got != want {
            mismatches.push(format!("{}: flat {got}, trie {want}", Ipv6Addr::from(a)));
        }
    }
    println!(
        "mirror vs trie: {} IPv4 and {} IPv6 boundary addresses, {} mismatches, {:.2}s",
        v4.len(),
        v6.len(),
        mismatches.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        mismatches.is_empty(),
        "flat table ≠ LPM trie:\n{}",
        mismatches[..mismatches.len().min(20)].join("\n")
    );

    // A sample through the program: its territory is the session counter that moves.
    kernel::sync(&mut kernel, &state(), &Clock::now()).expect("syncing the meeting");
    let program = Program::new(kernel);
    let kernel = &program.0;
    let every4 = (v4.len() / (SAMPLE / 2)).max(1);
    let every6 = (v6.len() / (SAMPLE / 2)).max(1);
    let sample: Vec<IpAddr> = v4
        .iter()
        .step_by(every4)
        .map(|&a| IpAddr::from(Ipv4Addr::from(a)))
        .chain(
            v6.iter()
                .step_by(every6)
                .map(|&a| IpAddr::from(Ipv6Addr::from(a))),
        )
        .collect();
    let started = Instant::now();
    let mut before = counts(kernel);
    for &src in &sample {
        let dst: SocketAddr = match src {
            IpAddr::V4(_) => "100.64.0.1:40000",
            IpAddr::V6(_) => "[2001:db8:ffff::1]:40000",
        }
        .parse()
        .expect("relay address");
        let frame = Packet::udp(SocketAddr::new(src, 50000), dst).build();
        program.run(&frame.bytes);
        let after = counts(kernel);
        let moved: Vec<TerritoryId> = after
            .iter()
            .filter(|(t, n)| before.get(t).copied().unwrap_or(0) != **n)
            .map(|(t, _)| *t)
            .collect();
        let want = kernel::geo_lookup_lpm(kernel, src)
            .expect("trie lookup")
            .unwrap_or(TERRITORY_UNKNOWN);
        assert_eq!(
            moved,
            vec![want],
            "{src}: the program counted {moved:?}, the trie says {want}"
        );
        before = after;
    }
    println!(
        "program vs trie: {} boundary addresses through BPF_PROG_TEST_RUN, all equal, {:.2}s",
        sample.len(),
        started.elapsed().as_secs_f64()
    );
}
