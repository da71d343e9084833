//! Driving the `geofence` CLI: one short process per call, on a pin directory and a state
//! directory of its own that are removed on Drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::sys::{DIR_PREFIX, ensure_bpffs, reap_stale, remove_tree, unique_tag};

/// Finds the `geofence` binary: `$GEOFENCE_BIN`, else `<workspace>/target/debug/geofence`,
/// and checks that it is the real CLI (its `--help` mentions `attach`).
pub fn geofence_bin() -> Result<PathBuf> {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| locate().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate() -> Result<PathBuf> {
    let bin = match std::env::var_os("GEOFENCE_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/geofence"),
    };
    let hint = "build it with `cargo build -p filter-userspace` or run `cargo xtask test`";
    if !bin.exists() {
        bail!(
            "geofence binary not found at {} ({hint}; or set GEOFENCE_BIN)",
            bin.display()
        );
    }
    let help = Command::new(&bin).arg("--help").output();
    let help = help.with_context(|| format!("running {} --help", bin.display()))?;
    if !String::from_utf8_lossy(&help.stdout).contains("attach") {
        bail!(
            "{} does not look like the geofence CLI: no `attach` in --help ({hint})",
            bin.display()
        );
    }
    Ok(bin)
}

/// A `geofence` driver with its own pin dir (`/sys/fs/bpf/gf-e2e-<pid>-<n>`) and temp dir
/// (`$TMPDIR/gf-e2e-<pid>-<n>`, holding `state/` and test files). Detaches what it attached
/// and removes both directories on Drop.
pub struct Geofence {
    bin: PathBuf,
    pin_dir: PathBuf,
    temp_dir: PathBuf,
    echo: bool,
    attached: Mutex<Vec<(String, String)>>,
}

impl Geofence {
    pub fn new() -> Result<Geofence> {
        let bin = geofence_bin()?;
        ensure_bpffs()?;
        reap_stale();
        let name = format!("{DIR_PREFIX}{}", unique_tag().replace('x', "-"));
        let temp_dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(temp_dir.join("state"))
            .with_context(|| format!("creating {}", temp_dir.display()))?;
        Ok(Geofence {
            bin,
            pin_dir: Path::new("/sys/fs/bpf").join(name),
            temp_dir,
            echo: false,
            attached: Mutex::new(Vec::new()),
        })
    }

    /// Prints every command (`$ geofence ...`) and its output, for the demo.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// A scratch directory for the test's files (removed on Drop).
    pub fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    /// Runs `geofence ARGS...`; returns stdout, or an error with the exit status and stderr.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        self.run_timed(args).map(|(out, _)| out)
    }

    /// Like [`Geofence::run`], also returning the instant the process had exited.
    pub fn run_timed(&self, args: &[&str]) -> Result<(String, Instant)> {
        if self.echo {
            println!("$ geofence {}", args.join(" "));
        }
        let out = Command::new(&self.bin)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-dir")
            .arg(self.temp_dir.join("state"))
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        let done = Instant::now();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if self.echo {
            print!("{stdout}");
            eprint!("{stderr}");
        }
        if !out.status.success() {
            bail!(
                "`geofence {}` failed ({}): {}",
                args.join(" "),
                out.status,
                stderr.trim()
            );
        }
        Ok((stdout, done))
    }

    /// `geofence attach IFACE --netns NS`, remembered for detaching on Drop.
    pub fn attach(&self, iface: &str, netns: &str) -> Result<String> {
        let out = self.run(&["attach", iface, "--netns", netns])?;
        self.attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((iface.into(), netns.into()));
        Ok(out)
    }

    /// A relay with one order in force: territory XA is `xa_cidrs` (one per line), `iface`
    /// in `netns` is attached, and meeting `m` on `udp:*:PORT` blocks XA under `order`.
    pub fn block_xa(
        &self,
        xa_cidrs: &str,
        (iface, netns): (&str, &str),
        port: u16,
        order: &str,
    ) -> Result<()> {
        let table = self.temp_dir().join("xa.txt");
        std::fs::write(&table, xa_cidrs)?;
        let table = table.to_string_lossy();
        self.run(&[
            "geo",
            "load",
            "--format",
            "cidr",
            "--territory",
            "XA",
            &table,
        ])?;
        self.attach(iface, netns)?;
        let endpoint = format!("udp:*:{port}");
        self.run(&["meeting", "add", "m", "--endpoint", &endpoint])?;
        self.run(&["block", "m", "--territory", "XA", "--order", order])?;
        Ok(())
    }

    /// Processes whose command line names this driver's pin directory (e.g. a geofence
    /// process still running), as "pid: command line".
    pub fn processes(&self) -> Vec<String> {
        let pin = self.pin_dir.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().to_string_lossy().into_owned();
                let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                cmd.contains(&pin).then(|| format!("{pid}: {cmd}"))
            })
            .collect()
    }

    /// `geofence stats --json`, parsed.
    pub fn stats(&self) -> Result<Stats> {
        let out = self.run(&["stats", "--json"])?;
        let json = serde_json::from_str(&out)
            .with_context(|| format!("`geofence stats --json` printed no JSON: {out}"))?;
        Ok(Stats { json })
    }
}

impl Drop for Geofence {
    fn drop(&mut self) {
        self.echo = false;
        let attached =
            std::mem::take(&mut *self.attached.lock().unwrap_or_else(|e| e.into_inner()));
        for (iface, ns) in attached {
            if let Err(e) = self.run(&["detach", &iface, "--netns", &ns]) {
                eprintln!("warning: cleanup: {e:#}");
            }
        }
        for dir in [&self.pin_dir, &self.temp_dir] {
            if let Err(e) = remove_tree(dir) {
                eprintln!("warning: could not remove {}: {e}", dir.display());
            }
        }
    }
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// Counters of one (meeting, territory).
#[derive(Clone, Copy, Debug, Default)]
pub struct TerritoryCounters {
    pub passed: Counters,
    pub dropped: Counters,
    pub would_drop: Counters,
}

/// The output of `geofence stats --json`.
#[derive(Clone, Debug)]
pub struct Stats {
    pub json: Value,
}

impl Stats {
    /// Counters of `territory` in `meeting`; zeros when the entry is absent.
    pub fn territory(&self, meeting: &str, territory: &str) -> TerritoryCounters {
        let meetings = self.json["meetings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(m) = meetings.iter().find(|m| m["meeting"] == meeting) else {
            return TerritoryCounters::default();
        };
        let ts = m["territories"].as_array().cloned().unwrap_or_default();
        let Some(t) = ts.iter().find(|t| t["territory"] == territory) else {
            return TerritoryCounters::default();
        };
        let c = |v: &Value| Counters {
            packets: v["packets"].as_u64().unwrap_or(0),
            bytes: v["bytes"].as_u64().unwrap_or(0),
        };
        TerritoryCounters {
            passed: c(&t["passed"]),
            dropped: c(&t["dropped"]),
            would_drop: c(&t["would_drop"]),
        }
    }

    pub fn pass_reason(&self, reason: &str) -> u64 {
        self.json["pass_reasons"][reason].as_u64().unwrap_or(0)
    }
}
