//! `cargo xtask fuzz [--time SECONDS] [TARGET...]`: runs the cargo-fuzz targets in `fuzz/`
//! one after the other, each for a fixed time on one core, niced so that other builds keep
//! their share of the machine.
//!
//! libFuzzer grows a working corpus under `target/fuzz-corpus/<target>/`, seeded from the
//! committed `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` (which it only reads).
//! A crashing input is saved by cargo-fuzz under `fuzz/artifacts/<target>/`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::{cmd, phase, setup, target_dir, workspace_root};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Targets to run (default: all, as `cargo fuzz list` prints them).
    targets: Vec<String>,
}

/// How one target's run ended.
struct Outcome {
    target: String,
    seconds: f64,
    /// CPU time of the fuzzer (and cargo), which is less than `seconds` on a busy machine.
    cpu_seconds: Option<f64>,
    executions: Option<u64>,
    /// The saved crashing input, when the run failed.
    crash: Option<String>,
    log: PathBuf,
}

/// `cargo +nightly fuzz ...`, niced, in the workspace root. `CARGO` is the stable cargo
/// that runs xtask; cargo-fuzz would call it for the nightly-only build.
fn cargo_fuzz() -> Command {
    let mut command = cmd::command("nice");
    command
        .args(["-n", "10", "cargo", "+nightly", "fuzz"])
        .current_dir(workspace_root())
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    command
}

fn ensure_cargo_fuzz() -> Result<()> {
    if cmd::find_program("cargo-fuzz").is_some() {
        return Ok(());
    }
    phase("installing cargo-fuzz");
    cmd::run(cmd::command("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// CPU seconds used by the waited-for children of this process so far, from
/// /proc/self/stat (cutime and cstime, in the kernel's fixed 100 ticks per second).
fn children_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name, which may itself contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // cutime and cstime are fields 16 and 17 of the line, so 13 and 14 (from 0) after it.
    Some((ticks(13)? + ticks(14)?) / 100.0)
}

/// The value of libFuzzer's final `stat::NAME: VALUE` line.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| {
        line.strip_prefix(&format!("stat::{name}:"))?
            .trim()
            .parse()
            .ok()
    })
}

/// Where libFuzzer wrote the crashing input ("Test unit written to PATH").
fn crash_file(log: &str) -> Option<String> {
    log.lines().rev().find_map(|line| {
        Some(
            line.split_once("Test unit written to ")?
                .1
                .trim()
                .to_owned(),
        )
    })
}

fn run_target(target: &str, seconds: u64) -> Result<Outcome> {
    let root = workspace_root();
    let work = target_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let log = target_dir().join("fuzz-logs").join(format!("{target}.log"));
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    let mut command = cargo_fuzz();
    command.args(["run", "-O", target]).arg(&work);
    for seeds in ["corpus", "regressions"] {
        let dir = root.join("fuzz").join(seeds).join(target);
        if dir.is_dir() {
            command.arg(dir);
        }
    }
    command.args([
        "--",
        &format!("-max_total_time={seconds}"),
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
    ]);
    phase(&format!(
        "fuzzing {target} for {seconds} s (log: {})",
        log.display()
    ));
    eprintln!("$ {}", cmd::show(&command));
    let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let started = Instant::now();
    let cpu_before = children_cpu_seconds();
    let status = command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .status()
        .context("could not start cargo fuzz")?;
    let cpu_seconds = children_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let crash = if status.success() {
        None
    } else {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        Some(crash_file(&text).unwrap_or_else(|| format!("none saved; {status}, see the log")))
    };
    Ok(Outcome {
        target: target.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds,
        executions: stat(&text, "number_of_executed_units"),
        crash,
        log,
    })
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup");
    setup::run(setup::Scope::Toolchain)?;
    ensure_cargo_fuzz()?;
    let listed = cmd::output(cargo_fuzz().arg("list"))?;
    let all: Vec<&str> = listed.split_whitespace().collect();
    let targets: Vec<&str> = if args.targets.is_empty() {
        all.clone()
    } else {
        args.targets.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = targets.iter().find(|t| !all.contains(t)) {
        bail!(
            "no fuzz target `{unknown}`; the targets are: {}",
            all.join(" ")
        );
    }
    phase("building the fuzz targets");
    cmd::run(cargo_fuzz().args(["build", "-O"]))?;
    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(target, args.time)?);
    }
    eprintln!(
        "\n{:<16} {:>8} {:>8} {:>12} {:>9}  result",
        "target", "wall s", "CPU s", "executions", "exec/CPU s"
    );
    for o in &outcomes {
        let execs = o.executions.map_or("?".to_owned(), |n| n.to_string());
        let cpu = o.cpu_seconds.unwrap_or(o.seconds);
        let rate = o.executions.map_or(0.0, |n| n as f64 / cpu.max(1e-9));
        let result = match &o.crash {
            None => "no crash".to_owned(),
            Some(file) => format!("CRASH, input saved: {file} (log {})", o.log.display()),
        };
        let cpu = o.cpu_seconds.map_or("?".to_owned(), |s| format!("{s:.0}"));
        eprintln!(
            "{:<16} {:>8.0} {cpu:>8} {execs:>12} {rate:>9.0}  {result}",
            o.target, o.seconds
        );
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if crashed.is_empty() {
        return Ok(());
    }
    bail!(
        "{} of {} targets crashed. Reproduce with `cargo +nightly fuzz run TARGET FILE`, \
         minimize with `cargo +nightly fuzz tmin TARGET FILE`, fix, and save the minimized \
         input under fuzz/regressions/TARGET/ (tests/fuzz_corpus.rs replays it)",
        crashed.len(),
        outcomes.len()
    )
}
