//! A catalogue of bad inputs to the `geofence` CLI, complementing `cli_errors.rs`: broken geo
//! files (empty, binary, truncated, wrong columns, bad codes, corrupt gzip and MaxMind DB,
//! conflicts, over capacity), bad arguments (shared ports and ufrags among them), and a bad environment (pin dir not on bpffs,
//! state dir not writable, an interface that already runs XDP).
//!
//! Every case runs against a fixture with real state (a geo table, two meetings, rules, an
//! exception, a flow and, where network namespaces work, an attachment) and must exit
//! non-zero with a message naming the file and line or the argument, and must leave the
//! state file, the audit log, the state and pin directories, every map and the XDP
//! attachment exactly as they were. `docs/bad-input.md` is the table this test prints
//! (`cargo test -p filter-userspace --test bad_input -- --nocapture`).

use std::{
    fs,
    io::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

mod common;

use common::{bpftool, geofence as run_geofence, root_with_bpffs};
use filter_common::maps::capacity;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Every map the fixture's state touches.
const MAPS: [&str; 8] = [
    "ENDPOINTS",
    "UFRAGS",
    "PORTS",
    "POLICIES",
    "POLICY_INDEX",
    "OVERRIDES",
    "FLOWS",
    "SESSION_ACTIVE",
];

/// Addresses whose territory shows whether the table changed.
const GEO_PROBES: [&str; 5] = [
    "192.0.2.1",
    "198.51.100.255",
    "203.0.113.1",
    "2001:db8::1",
    "2001:db8:1::1",
];

/// The interface pair of the attach cases, inside the fixture's own network namespace.
const IFACE: &str = "gfbad0";
const PEER: &str = "gfbad1";

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn remove_pin_dir(pin: &Path) {
    for name in listing(pin) {
        let _ = fs::remove_file(pin.join(name));
    }
    let _ = fs::remove_dir(pin);
}

/// What a bad input must not change.
#[derive(PartialEq, Eq)]
struct Snapshot {
    state: String,
    audit: String,
    state_dir: Vec<String>,
    pin_dir: Vec<String>,
    maps: Vec<(String, String)>,
    xdp: String,
}

impl Snapshot {
    /// The names of the parts that differ from `other`.
    fn diff(&self, other: &Snapshot) -> Vec<String> {
        let mut parts = Vec::new();
        if self.state != other.state {
            parts.push("state.json".to_string());
        }
        if self.audit != other.audit {
            parts.push("audit.jsonl".to_string());
        }
        if self.state_dir != other.state_dir {
            parts.push(format!(
                "state dir {:?} -> {:?}",
                self.state_dir, other.state_dir
            ));
        }
        if self.pin_dir != other.pin_dir {
            parts.push(format!("pin dir {:?} -> {:?}", self.pin_dir, other.pin_dir));
        }
        for ((name, a), (_, b)) in self.maps.iter().zip(&other.maps) {
            if a != b {
                parts.push(format!("map {name}"));
            }
        }
        if self.xdp != other.xdp {
            parts.push(format!("XDP attachment {:?} -> {:?}", self.xdp, other.xdp));
        }
        parts
    }
}

/// A pin dir, a state dir and a directory of input files of this test alone, with real
/// state in them; everything (namespace included) is removed on drop.
struct Fixture {
    tag: String,
    pin: PathBuf,
    state: PathBuf,
    files: PathBuf,
    netns: Option<String>,
    /// Other pin and state dirs that cases use, removed on drop.
    extra: Vec<(PathBuf, PathBuf)>,
}

impl Fixture {
    fn new() -> Fixture {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("gf-bad-{}-{n}", std::process::id());
        let fixture = Fixture {
            pin: Path::new("/sys/fs/bpf").join(&tag),
            state: std::env::temp_dir().join(&tag),
            files: std::env::temp_dir().join(format!("{tag}-files")),
            tag,
            netns: None,
            extra: Vec::new(),
        };
        fs::create_dir_all(&fixture.files).expect("files dir");
        fixture
    }

    fn run(&self, args: &[String]) -> Output {
        run_geofence(&self.pin, &self.state, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(&strings(args));
        assert!(
            out.status.success(),
            "setup: geofence {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes an input file and returns its path.
    fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.files.join(name);
        fs::write(&path, content).expect("writing an input file");
        path.to_str().expect("utf-8 path").to_string()
    }

    fn path(&self, name: &str) -> String {
        self.files.join(name).to_str().expect("utf-8 path").into()
    }

    /// Another pin dir and state dir, for cases about the directories themselves.
    fn other_dirs(&mut self, what: &str) -> (PathBuf, PathBuf) {
        let id = format!("{}-{what}", self.tag);
        let dirs = (
            Path::new("/sys/fs/bpf").join(&id),
            std::env::temp_dir().join(&id),
        );
        self.extra.push(dirs.clone());
        dirs
    }

    /// A geo table, two meetings, a territory rule, a prefix rule, an exception, a flow.
    fn setup(&self) {
        let geo = self.file(
            "base.csv",
            b"# start,end,code\n\
              192.0.2.0,192.0.2.255,XA\n\
              198.51.100.0,198.51.100.255,XB\n\
              2001:db8::,2001:db8::ffff,XA\n",
        );
        self.ok(&["geo", "load", &geo]);
        self.ok(&[
            "meeting",
            "add",
            "A",
            "--endpoint",
            "udp:*:40000",
            "--endpoint",
            "tcp:*:40001",
        ]);
        // One endpoint on an address: wildcard ones live in PORTS, not ENDPOINTS.
        self.ok(&[
            "meeting",
            "add",
            "B",
            "--endpoint",
            "udp:*:41000",
            "--endpoint",
            "udp:192.0.2.1:41001",
        ]);
        self.ok(&["mux", "add", "udp:*:7882"]);
        self.ok(&["ufrag", "add", "A", "ufragA1"]);
        self.ok(&["block", "A", "--territory", "XA", "--order", "ORD-1"]);
        self.ok(&["block", "A", "--prefix", "198.51.100.7", "--order", "ORD-2"]);
        self.ok(&["allow", "A", "--prefix", "192.0.2.77"]);
        self.ok(&[
            "flow",
            "add",
            "B",
            "--proto",
            "udp",
            "--src",
            "198.51.100.9:50000",
            "--dst",
            "192.0.2.1:7882",
        ]);
    }

    /// A veth pair in a namespace of our own with geofence attached; `None` (and why) when
    /// namespaces or XDP are not available.
    fn attach(&mut self) -> Result<(), String> {
        let ns = self.tag.clone();
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &ns])?;
        self.netns = Some(ns.clone());
        ip(&[
            "-n", &ns, "link", "add", IFACE, "type", "veth", "peer", "name", PEER,
        ])?;
        ip(&["-n", &ns, "link", "set", IFACE, "up"])?;
        ip(&["-n", &ns, "link", "set", PEER, "up"])?;
        let out = self.run(&strings(&["attach", IFACE, "--netns", &ns]));
        if !out.status.success() {
            return Err(format!(
                "geofence attach: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if self.xdp().is_empty() {
            return Err("attached, but ip shows no XDP program".into());
        }
        Ok(())
    }

    /// The XDP program id on the fixture's interface, empty without one.
    fn xdp(&self) -> String {
        let Some(ns) = &self.netns else {
            return String::new();
        };
        let out = Command::new("ip")
            .args(["-n", ns, "-d", "link", "show", "dev", IFACE])
            .output();
        let Ok(out) = out else {
            return String::new();
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(3)
            .find(|w| w[0].starts_with("prog/xdp") && w[1] == "id")
            .map(|w| format!("{} {}", w[0], w[2]))
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Snapshot {
        let read = |name: &str| fs::read_to_string(self.state.join(name)).unwrap_or_default();
        let maps = MAPS
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    bpftool(|c| c.args(["map", "dump", "pinned"]).arg(self.pin.join(name))),
                )
            })
            .chain(std::iter::once((
                "territory table".to_string(),
                GEO_PROBES
                    .map(|addr| self.ok(&["geo", "lookup", addr]))
                    .concat(),
            )))
            .collect();
        Snapshot {
            state: read("state.json"),
            audit: read("audit.jsonl"),
            state_dir: listing(&self.state),
            pin_dir: listing(&self.pin),
            maps,
            xdp: self.xdp(),
        }
    }

    /// Paths and ids made readable and stable for the documentation.
    fn normalize(&self, text: &str) -> String {
        let mut text = text.replace(self.files.to_str().unwrap_or("\0"), "$DIR");
        for (pin, state) in &self.extra {
            text = text.replace(pin.to_str().unwrap_or("\0"), "/sys/fs/bpf/$OTHER");
            text = text.replace(state.to_str().unwrap_or("\0"), "/tmp/$OTHER");
        }
        text = text.replace(self.pin.to_str().unwrap_or("\0"), "$PIN");
        text = text.replace(self.state.to_str().unwrap_or("\0"), "$STATE");
        text = text.replace(&self.tag, "$NS");
        text.replace(&std::process::id().to_string(), "$PID")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(ns) = &self.netns {
            let _ = run_geofence(
                &self.pin,
                &self.state,
                &strings(&["detach", IFACE, "--netns", ns]),
            );
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for (pin, state) in &self.extra {
            remove_pin_dir(pin);
            let _ = fs::remove_dir_all(state);
        }
        remove_pin_dir(&self.pin);
        let _ = fs::remove_dir_all(&self.state);
        let _ = fs::remove_dir_all(&self.files);
    }
}

/// One bad input.
struct Case {
    /// What is wrong, for the documentation.
    input: String,
    /// The arguments after `--pin-dir` and `--state-dir`.
    args: Vec<String>,
    /// Fragments the error must contain.
    expect: Vec<String>,
    /// Other pin and state dirs than the fixture's.
    dirs: Option<(PathBuf, PathBuf)>,
    /// A known defect: the case runs and is reported, but not asserted.
    bug: Option<&'static str>,
}

fn case(input: &str, args: &[&str], expect: &[&str]) -> Case {
    Case {
        input: input.to_string(),
        args: strings(args),
        expect: strings(expect),
        dirs: None,
        bug: None,
    }
}

impl Case {
    fn in_dirs(mut self, dirs: (PathBuf, PathBuf)) -> Case {
        self.dirs = Some(dirs);
        self
    }

    #[expect(
        dead_code,
        reason = "marks a case as a known product defect; none is open now"
    )]
    fn bug(mut self, why: &'static str) -> Case {
        self.bug = Some(why);
        self
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Deterministic pseudo-random bytes (xorshift), NULs included.
fn garbage(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9u32;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    for i in (7..len).step_by(97) {
        out[i] = 0;
    }
    out
}

/// The real MaxMind DB in `../shared/geo`, if present.
fn real_mmdb() -> Option<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/geo/geo-whois-asn-country.mmdb"
    );
    fs::read(path).ok()
}

const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// Geo files that must be refused, each with the file and line the message must name.
fn geo_cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let good = f.file("good.csv", b"203.0.113.0,203.0.113.255,XC\n");

    let empty = f.file("empty.csv", b"");
    cases.push(case(
        "empty file",
        &["geo", "load", &empty],
        &[&format!("{empty}: no entries")],
    ));
    let comments = f.file(
        "comments.csv",
        b"# a comment\n\n   # another, with a comma\n",
    );
    cases.push(case(
        "only comments and blank lines",
        &["geo", "load", &comments],
        &[&format!("{comments}: no entries")],
    ));
    let truncated = f.file(
        "truncated.csv",
        b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.255,XB\n192.0.2.0,192.0.2.",
    );
    cases.push(case(
        "truncated last line `192.0.2.0,192.0.2.`",
        &["geo", "load", &truncated],
        &[&format!("{truncated}:3:"), "found 2"],
    ));
    let cut = f.file(
        "cut-address.csv",
        b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.,XB\n",
    );
    cases.push(case(
        "line cut inside an address `10.0.0.0,10.0.0.,XB`",
        &["geo", "load", &cut],
        &[&format!("{cut}:2:"), "unparseable address \"10.0.0.\""],
    ));
    let binary = f.file("binary.csv", &garbage(4096));
    cases.push(case(
        "binary garbage (random bytes with NULs), format detected",
        &["geo", "load", &binary],
        &[binary.as_str()],
    ));
    cases.push(case(
        "binary garbage, --format csv",
        &["geo", "load", "--format", "csv", &binary],
        &[&format!("{binary}:1:")],
    ));
    cases.push(case(
        "binary garbage, --format cidr --territory XA",
        &[
            "geo",
            "load",
            "--format",
            "cidr",
            "--territory",
            "XA",
            &binary,
        ],
        &[&format!("{binary}:1:")],
    ));
    let latin1 = f.file(
        "latin1.csv",
        b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.255,X\xc4\n",
    );
    cases.push(case(
        "non-UTF-8 byte in line 2",
        &["geo", "load", &latin1],
        &[&format!("{latin1}:2:"), "not valid UTF-8"],
    ));
    let two = f.file(
        "two-columns.csv",
        b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.255\n",
    );
    cases.push(case(
        "2 columns",
        &["geo", "load", &two],
        &[&format!("{two}:2:"), "3 comma-separated columns", "found 2"],
    ));
    let four = f.file(
        "four-columns.csv",
        b"192.0.2.0,192.0.2.255,XA\n\n10.0.0.0,10.0.0.255,XB,extra\n",
    );
    cases.push(case(
        "4 columns",
        &["geo", "load", &four],
        &[&format!("{four}:3:"), "found 4"],
    ));
    let inverted = f.file(
        "inverted.csv",
        b"2001:db8::,2001:db8::ff,XA\n2001:db8:1::ff,2001:db8:1::,XB\n",
    );
    cases.push(case(
        "start > end (IPv6)",
        &["geo", "load", &inverted],
        &[
            &format!("{inverted}:2:"),
            "start 2001:db8:1::ff is after end 2001:db8:1::",
        ],
    ));
    let mixed = f.file("mixed.csv", b"2001:db8::,192.0.2.255,XA\n");
    cases.push(case(
        "IPv6 start with IPv4 end",
        &["geo", "load", &mixed],
        &[&format!("{mixed}:1:"), "different address families"],
    ));
    let list_v6 = f.file("list-v6-host-bits.txt", b"192.0.2.0/24\n2001:db8::1/32\n");
    cases.push(case(
        "CIDR list with --territory: IPv4 line, then IPv6 CIDR with host bits",
        &["geo", "load", "--territory", "XA", &list_v6],
        &[
            &format!("{list_v6}:2:"),
            "host bits are set in 2001:db8::1/32",
        ],
    ));
    let lower = f.file(
        "lower.csv",
        b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.255,cn\n",
    );
    cases.push(case(
        "lower-case code `cn`",
        &["geo", "load", &lower],
        &[&format!("{lower}:2:"), "\"cn\"", "upper-case"],
    ));
    let three = f.file("three.csv", b"10.0.0.0,10.0.0.255,CHN\n");
    cases.push(case(
        "three-letter code `CHN`",
        &["geo", "load", &three],
        &[&format!("{three}:1:"), "\"CHN\""],
    ));
    let digits = f.file("digits.csv", b"10.0.0.0,10.0.0.255,C1\n");
    cases.push(case(
        "digit in code `C1`",
        &["geo", "load", &digits],
        &[&format!("{digits}:1:"), "\"C1\""],
    ));
    let no_code = f.file("no-code.csv", b"10.0.0.0,10.0.0.255,\n");
    cases.push(case(
        "empty code column",
        &["geo", "load", &no_code],
        &[&format!("{no_code}:1:"), "country code \"\""],
    ));
    let word = f.file("word.csv", b"# header\nstart,end,code\n");
    cases.push(case(
        "a header row `start,end,code`",
        &["geo", "load", &word],
        &[&format!("{word}:2:"), "unparseable address \"start\""],
    ));
    let list = f.file("list.txt", b"192.0.2.0/24\n198.51.100.0/24\n");
    cases.push(case(
        "CIDR list without --territory",
        &["geo", "load", &list],
        &[&format!("{list}: a CIDR list needs --territory")],
    ));
    cases.push(case(
        "--territory with a CSV file",
        &["geo", "load", "--territory", "XA", &good],
        &[&format!("{good}: --territory is only for CIDR lists")],
    ));
    let zero = f.file("slash-zero.txt", b"192.0.2.0/24\n0.0.0.0/0\n");
    cases.push(case(
        "/0 prefix in a CIDR list",
        &["geo", "load", "--territory", "XA", &zero],
        &[&format!("{zero}:2:"), "0.0.0.0/0 would cover every address"],
    ));
    let host = f.file("host-bits.txt", b"10.0.0.1/8\n");
    cases.push(case(
        "host bits set `10.0.0.1/8` in a CIDR list",
        &["geo", "load", "--territory", "XA", &host],
        &[
            &format!("{host}:1:"),
            "host bits are set in 10.0.0.1/8 (the network is 10.0.0.0/8)",
        ],
    ));
    let long = f.file("long-prefix.txt", b"192.0.2.0/24\n192.0.2.0/33\n");
    cases.push(case(
        "prefix length /33 in a CIDR list",
        &["geo", "load", "--territory", "XA", &long],
        &[&format!("{long}:2:"), "prefix length \"33\""],
    ));
    let mut corrupt = vec![0x1f, 0x8b, 0x08, 0x00];
    corrupt.extend_from_slice(&garbage(600));
    let corrupt = f.file("corrupt.csv.gz", &corrupt);
    cases.push(case(
        "corrupt gzip (gzip magic, then garbage)",
        &["geo", "load", &corrupt],
        &[&format!("{corrupt}: corrupt gzip data")],
    ));
    let mut csv = String::new();
    for i in 0..2000u32 {
        let a = Ipv4Addr::from(0x0a00_0000 + i * 256);
        let b = Ipv4Addr::from(0x0a00_0000 + i * 256 + 255);
        let cc = if i % 2 == 0 { "XA" } else { "XB" };
        csv.push_str(&format!("{a},{b},{cc}\n"));
    }
    let whole = gzip(csv.as_bytes());
    let truncated_gz = f.file("truncated.csv.gz", &whole[..whole.len() / 2]);
    cases.push(case(
        "truncated gzip of a valid CSV (first half of the stream)",
        &["geo", "load", &truncated_gz],
        &[&format!("{truncated_gz}: corrupt gzip data")],
    ));
    let no_trailer = f.file("no-trailer.csv.gz", &whole[..whole.len() - 8]);
    cases.push(case(
        "gzip of a valid CSV without its 8-byte trailer (CRC, size)",
        &["geo", "load", &no_trailer],
        &[&format!("{no_trailer}: corrupt gzip data")],
    ));
    let gz_bad = f.file(
        "bad-inside.csv.gz",
        &gzip(b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.255,Xa\n"),
    );
    cases.push(case(
        "valid gzip of a CSV with a bad code on line 2",
        &["geo", "load", &gz_bad],
        &[&format!("{gz_bad}:2:"), "\"Xa\""],
    ));
    match real_mmdb() {
        Some(db) => {
            // The head of the file (part of the search tree) and its metadata.
            let marker = db
                .windows(MMDB_MARKER.len())
                .rposition(|w| w == MMDB_MARKER)
                .expect("the real MaxMind DB has metadata");
            let mut cut = db[..4096].to_vec();
            cut.extend_from_slice(&db[marker..]);
            let cut = f.file("cut.mmdb", &cut);
            cases.push(case(
                "MaxMind DB: 4 KiB of the search tree + the metadata",
                &["geo", "load", &cut],
                &[&format!("{cut}: not a usable MaxMind DB")],
            ));
            // The whole file with part of the search tree overwritten.
            let mut scrambled = db.clone();
            for b in &mut scrambled[3000..9000] {
                *b = 0xff;
            }
            let scrambled = f.file("scrambled.mmdb", &scrambled);
            cases.push(case(
                "MaxMind DB with 6000 bytes of its search tree set to 0xff",
                &["geo", "load", &scrambled],
                &[&format!("{scrambled}: not a usable MaxMind DB")],
            ));
            let headless = f.file("no-metadata.mmdb", &db[..db.len() / 2]);
            cases.push(case(
                "first half of a MaxMind DB (no metadata), --format mmdb",
                &["geo", "load", "--format", "mmdb", &headless],
                &[&format!("{headless}: not a usable MaxMind DB")],
            ));
            let real = f.file("real.mmdb", &db);
            cases.push(case(
                "--territory with a valid MaxMind DB",
                &["geo", "load", "--territory", "XA", &real],
                &[&format!("{real}: --territory is only for CIDR lists")],
            ));
        }
        None => eprintln!(
            "skipping the MaxMind DB cases built from real data: ../shared/geo/geo-whois-asn-country.mmdb is absent"
        ),
    }
    let mut fake = garbage(2048);
    fake.extend_from_slice(MMDB_MARKER);
    fake.extend_from_slice(&garbage(64));
    let fake = f.file("fake.mmdb", &fake);
    cases.push(case(
        "MaxMind marker after garbage, garbage metadata",
        &["geo", "load", &fake],
        &[&format!("{fake}: not a usable MaxMind DB")],
    ));
    let a = f.file(
        "conflict-a.csv",
        b"192.0.2.0,192.0.2.255,XA\n10.0.0.0,10.0.0.255,XA\n",
    );
    let b = f.file(
        "conflict-b.csv",
        b"# other source\n198.51.100.0,198.51.100.255,XB\n10.0.0.0,10.0.0.255,XB\n",
    );
    cases.push(case(
        "two files give 10.0.0.0/24 different codes",
        &["geo", "load", &a, &b],
        &[&format!("{a}:2: 10.0.0.0/24 is XA here but XB in {b}:3")],
    ));
    let dir = f.path("a-directory.csv");
    fs::create_dir_all(&dir).expect("dir");
    cases.push(case(
        "a directory instead of a file",
        &["geo", "load", &dir],
        &[&format!("{dir}: cannot read")],
    ));
    let missing = f.path("missing.csv");
    cases.push(case(
        "a nonexistent second file after a valid one",
        &["geo", "load", &good, &missing],
        &[&format!("{missing}: cannot read")],
    ));
    cases.push(case(
        "--format mmdb on a CSV",
        &["geo", "load", "--format", "mmdb", &good],
        &[&format!("{good}: not a usable MaxMind DB")],
    ));
    cases.push(case(
        "--format cidr on a CSV",
        &[
            "geo",
            "load",
            "--format",
            "cidr",
            "--territory",
            "XA",
            &good,
        ],
        &[&format!("{good}:1:")],
    ));
    cases.push(case(
        "--territory `cn` (lower-case) for a CIDR list",
        &["geo", "load", "--territory", "cn", &list],
        &["--territory", "upper-case: CN"],
    ));
    cases.push(case(
        "--format xml",
        &["geo", "load", "--format", "xml", &good],
        &["--format", "xml"],
    ));
    cases
}

/// A table one prefix larger than the maps hold: alternating codes, so nothing merges.
fn capacity_case(f: &Fixture) -> Case {
    let count = capacity::TERRITORY_V4 as usize + 1;
    let path = f.path("over-capacity.csv");
    let file = fs::File::create(&path).expect("over-capacity.csv");
    let mut out = std::io::BufWriter::new(file);
    for i in 0..count as u32 {
        let a = Ipv4Addr::from(0x0a00_0000 + i);
        let cc = if i % 2 == 0 { "XA" } else { "XB" };
        writeln!(out, "{a},{a},{cc}").expect("writing over-capacity.csv");
    }
    out.flush().expect("writing over-capacity.csv");
    case(
        &format!("{count} single-address IPv4 ranges, alternating codes"),
        &["geo", "load", &path],
        &[
            &path,
            &format!(
                "{count} IPv4 prefixes exceed the map capacity of {}",
                capacity::TERRITORY_V4
            ),
        ],
    )
}

/// Bad arguments the parsers or the rule model must refuse.
fn argument_cases() -> Vec<Case> {
    fn block<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["block", "A", "--territory", "XB", "--order", "ORD-9"];
        args.extend_from_slice(extra);
        args
    }
    let long_order = "X".repeat(200);
    vec![
        case("`--for 0s`", &block(&["--for", "0s"]), &["--for", "0s"]),
        case("`--for -5m`", &block(&["--for", "-5m"]), &["--for", "-5m"]),
        case("`--for=-5m`", &block(&["--for=-5m"]), &["--for", "-5m"]),
        case(
            "`--expires` with month 13",
            &block(&["--expires", "2026-13-01T00:00:00Z"]),
            &["--expires", "2026-13-01T00:00:00Z", "RFC 3339"],
        ),
        case(
            "both `--for` and `--expires`",
            &block(&["--for", "1h", "--expires", "2030-01-01T00:00:00Z"]),
            &["--expires", "--for"],
        ),
        case(
            "`--order` of 200 characters",
            &["block", "A", "--territory", "XB", "--order", &long_order],
            &["--order", "at most 128"],
        ),
        case(
            "`--order` with a newline",
            &["block", "A", "--territory", "XB", "--order", "ORD-1\nORD-2"],
            &["--order", "printable", "ORD-1\\nORD-2"],
        ),
        case(
            "`--prefix` with IPv6 host bits",
            &["block", "A", "--prefix", "2001:db8::1/32", "--order", "O"],
            &["--prefix", "host bits"],
        ),
        case(
            "`--prefix` that is an allowed exception",
            &["block", "A", "--prefix", "192.0.2.77", "--order", "O"],
            &["--prefix 192.0.2.77/32", "allowed exception"],
        ),
        case(
            "IPv6 endpoint without brackets",
            &["meeting", "add", "C", "--endpoint", "udp:2001:db8::1:5000"],
            &["--endpoint", "brackets", "[2001:db8::1]"],
        ),
        case(
            "endpoint `udp:[::]:5000`",
            &["meeting", "add", "C", "--endpoint", "udp:[::]:5000"],
            &["--endpoint", "use `*` for any local address"],
        ),
        case(
            "endpoint `sctp:*:1`",
            &["meeting", "add", "C", "--endpoint", "sctp:*:1"],
            &["--endpoint", "`sctp` is not a protocol"],
        ),
        case(
            "endpoint port `abc`",
            &["meeting", "add", "C", "--endpoint", "udp:*:abc"],
            &["--endpoint", "port `abc` is not a number"],
        ),
        case(
            "endpoints of one meeting overlap",
            &[
                "meeting",
                "add",
                "C",
                "--endpoint",
                "udp:*:5000",
                "--endpoint",
                "udp:*:4990-5010",
            ],
            &["udp:*:5000", "udp:*:4990-5010", "overlap"],
        ),
        case(
            "`mux add` of a port a meeting owns",
            &["mux", "add", "udp:*:40000"],
            &["shares ports", "meeting `A`"],
        ),
        case(
            "`mux add` overlapping a shared port",
            &["mux", "add", "udp:*:7880-7890"],
            &["overlaps udp:*:7882"],
        ),
        case(
            "`meeting add` on a shared port",
            &["meeting", "add", "C", "--endpoint", "udp:192.0.2.1:7882"],
            &["shares ports", "mux"],
        ),
        case(
            "`mux del` of a port that is not shared",
            &["mux", "del", "udp:*:7000"],
            &["udp:*:7000", "not a mux port"],
        ),
        case(
            "`ufrag add` of a ufrag registered to another meeting",
            &["ufrag", "add", "B", "ufragA1"],
            &["ufragA1", "registered to meeting `A`"],
        ),
        case(
            "`ufrag add` of 65 characters",
            &["ufrag", "add", "A", &"u".repeat(65)],
            &["65 characters", "at most 64"],
        ),
        case(
            "`ufrag add` of 3 characters",
            &["ufrag", "add", "A", "abc"],
            &["at least 4"],
        ),
        case(
            "`ufrag add` with a character ICE does not use",
            &["ufrag", "add", "A", "ab:cd"],
            &["':'", "ICE character"],
        ),
        case(
            "`ufrag add` to an unknown meeting",
            &["ufrag", "add", "Z", "abcd"],
            &["unknown meeting `Z`"],
        ),
        case(
            "`flow add` with port 65536",
            &[
                "flow",
                "add",
                "A",
                "--proto",
                "udp",
                "--src",
                "198.51.100.7:65536",
                "--dst",
                "192.0.2.1:3478",
            ],
            &["--src", "65536", "65535"],
        ),
        case(
            "`flow add` of a flow bound to another meeting",
            &[
                "flow",
                "add",
                "A",
                "--proto",
                "udp",
                "--src",
                "198.51.100.9:50000",
                "--dst",
                "192.0.2.1:7882",
            ],
            &["already bound to meeting `B`"],
        ),
        case(
            "`flow del` of another meeting's flow",
            &[
                "flow",
                "del",
                "A",
                "--proto",
                "udp",
                "--src",
                "198.51.100.9:50000",
                "--dst",
                "192.0.2.1:7882",
            ],
            &["bound to meeting `B`, not `A`"],
        ),
        case(
            "`flow add --proto icmp`",
            &[
                "flow",
                "add",
                "A",
                "--proto",
                "icmp",
                "--src",
                "198.51.100.7:1",
                "--dst",
                "192.0.2.1:3478",
            ],
            &["--proto", "icmp"],
        ),
        case(
            "`unblock` of a prefix never blocked",
            &["unblock", "A", "--prefix", "203.0.113.0/24"],
            &["--prefix 203.0.113.0/24", "neither blocked nor allowed"],
        ),
        case(
            "`unblock` on an unknown meeting",
            &["unblock", "Z"],
            &["unknown meeting `Z`"],
        ),
        case(
            "`allow` of a prefix already allowed",
            &["allow", "A", "--prefix", "192.0.2.77"],
            &["--prefix 192.0.2.77/32", "already allowed"],
        ),
        case(
            "`allow` of `::/0`",
            &["allow", "A", "--prefix", "::/0"],
            &["--prefix", "/0"],
        ),
        case(
            "`geo lookup not-an-ip`",
            &["geo", "lookup", "not-an-ip"],
            &["not-an-ip", "<ADDR>"],
        ),
        case(
            "`attach lo --mode turbo`",
            &["attach", "lo", "--mode", "turbo"],
            &["--mode", "turbo"],
        ),
    ]
}

/// The message as an operator reads it: stderr's lines, without clap's usage and help
/// lines, line breaks shown as ⏎.
fn message(stderr: &str) -> String {
    let noise = ["Usage:", "For more information", "tip:"];
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !noise.iter().any(|n| l.starts_with(n)))
        .collect();
    lines.join(" ⏎ ")
}

/// One row of the documentation's table; `|` is escaped, commands and messages are code.
fn row(n: usize, input: &str, command: &str, message: &str, unchanged: bool) -> String {
    let code = |s: &str| format!("`` {} ``", s.replace('|', "\\|"));
    let unchanged = if unchanged { "yes (tested)" } else { "**no**" };
    format!(
        "| {n} | {} | {} | {} | {unchanged} |",
        input.replace('|', "\\|"),
        code(command),
        code(message)
    )
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    if !root_with_bpffs("bad_input_is_refused_clearly_and_changes_nothing") {
        return;
    }
    let mut f = Fixture::new();
    f.setup();
    let mut cases = geo_cases(&f);
    cases.push(capacity_case(&f));
    cases.extend(argument_cases());

    // The environment: a pin dir that is not on bpffs, a state dir that cannot exist.
    let not_bpf = std::env::temp_dir().join(format!("gf-notbpf-{}", std::process::id()));
    cases.push(
        case(
            "`--pin-dir` not on a BPF filesystem",
            &["meeting", "add", "C", "--endpoint", "udp:*:43000"],
            &[not_bpf.to_str().expect("utf-8"), "not on a BPF filesystem"],
        )
        .in_dirs((not_bpf.clone(), f.state.clone())),
    );
    cases.push(
        case(
            "`--state-dir` under a file (`/etc/hostname/x`)",
            &["meeting", "add", "C", "--endpoint", "udp:*:43000"],
            &["/etc/hostname/x", "state directory"],
        )
        .in_dirs((f.pin.clone(), PathBuf::from("/etc/hostname/x"))),
    );
    match f.attach() {
        Ok(()) => {
            let ns = f.netns.clone().expect("netns");
            let second = f.other_dirs("second");
            cases.push(
                case(
                    "attach from a second pin dir to an interface that runs geofence",
                    &["attach", IFACE, "--netns", &ns],
                    &[IFACE, "already has an XDP program"],
                )
                .in_dirs(second),
            );
            cases.push(case(
                "attach again from the same pin dir",
                &["attach", IFACE, "--netns", &ns],
                &[IFACE, "already attached"],
            ));
        }
        Err(why) => eprintln!("skipping the attach cases: {why}"),
    }

    let before = f.snapshot();
    assert!(before.state.contains("ORD-1"), "setup recorded the rule");
    let entries = |name: &str| {
        let (_, dump) = before.maps.iter().find(|(n, _)| n == name).expect(name);
        dump.matches("key").count()
    };
    for name in [
        "ENDPOINTS",
        "POLICIES",
        "OVERRIDES",
        "FLOWS",
        "SESSION_ACTIVE",
        "PORTS",
    ] {
        assert!(entries(name) > 0, "bpftool shows no entry of {name}");
    }
    let (_, table) = before
        .maps
        .iter()
        .find(|(n, _)| n == "territory table")
        .expect("territory table");
    assert!(
        table.contains("192.0.2.1: XA") && table.contains("198.51.100.255: XB"),
        "the fixture's table is loaded: {table}"
    );

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut bugs = Vec::new();
    let mut passed = 0;
    for (i, c) in cases.iter().enumerate() {
        let n = i + 1;
        let out = match &c.dirs {
            Some((pin, state)) => run_geofence(pin, state, &c.args),
            None => f.run(&c.args),
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut problems = Vec::new();
        if out.status.success() {
            problems.push("succeeded".to_string());
        }
        if stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        for needle in &c.expect {
            if !stderr.contains(needle.as_str()) {
                problems.push(format!("message lacks `{needle}`"));
            }
        }
        let changed = before.diff(&f.snapshot());
        let unchanged = changed.is_empty();
        if !unchanged {
            problems.push(format!("changed {}", changed.join(", ")));
        }
        if let Some((pin, state)) = &c.dirs {
            if state != &f.state
                && fs::read_to_string(state.join("state.json")).is_ok_and(|s| s.contains(IFACE))
            {
                problems.push(format!("{} records an attachment", state.display()));
            }
            if pin == &not_bpf && pin.exists() {
                problems.push(format!("created {}", pin.display()));
            }
        }
        let mut command = vec!["geofence".to_string()];
        if let Some((pin, state)) = &c.dirs {
            command.push(format!("--pin-dir {}", pin.display()));
            command.push(format!("--state-dir {}", state.display()));
        }
        command.extend(c.args.iter().map(|a| {
            let a = a.replace('\n', "\\n");
            if a.len() > 40 && !a.contains('/') {
                let head: String = a.chars().take(12).collect();
                format!("{head}…({} chars)", a.chars().count())
            } else {
                a
            }
        }));
        let command = f.normalize(&command.join(" "));
        let report = format!(
            "#{n} {}: {command}\n  exit {:?}\n  stderr: {}",
            c.input,
            out.status.code(),
            stderr.trim_end().replace('\n', "\n          ")
        );
        match (c.bug, problems.is_empty()) {
            (Some(why), _) => {
                println!("BUG (not asserted) {why}\n{report}\n  problems: {problems:?}");
                bugs.push(n);
            }
            (None, true) => passed += 1,
            (None, false) => failures.push(format!("{report}\n  problems: {problems:?}")),
        }
        let input = match c.bug {
            Some(_) => format!("**BUG**: {}", c.input),
            None => c.input.clone(),
        };
        let shown = f.normalize(&message(&stderr));
        rows.push(row(n, &input, &command, &shown, unchanged));
    }
    let _ = fs::remove_file(f.path("over-capacity.csv"));

    println!("| # | input | command | message | state unchanged |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    println!(
        "{passed} of {} cases passed; {} marked BUG: {bugs:?}",
        cases.len(),
        bugs.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(passed >= 40, "only {passed} cases passed");
    let lookup = f.ok(&["geo", "lookup", "192.0.2.1"]);
    assert!(lookup.contains("XA"), "the old table is in force: {lookup}");
}
