//! The binding API under an SFU's load: flows bound per second in batches of 1,000 (a relay
//! restart re-registering everyone), and the round trip of one bind call (one join), each
//! a fresh connection to the daemon's Unix socket, as a control plane's client makes them.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    Options,
    report::{Figure, Report},
};

/// The daemon and its directories; all removed on drop.
struct Daemon {
    child: Child,
    pins: PathBuf,
    state: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
        if let Ok(entries) = std::fs::read_dir(&self.pins) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.pins);
    }
}

fn geofence_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("GEOFENCE_BIN") {
        return Ok(bin.into());
    }
    let beside = std::env::current_exe()?.with_file_name("geofence");
    ensure!(
        beside.exists(),
        "no geofence binary beside the bench; set GEOFENCE_BIN"
    );
    Ok(beside)
}

fn start(bin: &Path) -> anyhow::Result<(Daemon, PathBuf)> {
    let tag = format!("geofence-bench-api-{}", std::process::id());
    let pins = PathBuf::from("/sys/fs/bpf").join(&tag);
    let state = std::env::temp_dir().join(&tag);
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(bin)
            .arg("--pin-dir")
            .arg(&pins)
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .output()
            .context("running geofence")?;
        ensure!(
            out.status.success(),
            "geofence {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    run(&["meeting", "add", "bench"])?;
    run(&["mux", "add", "udp:*:7882"])?;
    let socket = state.join("api.sock");
    let mut child = Command::new(bin)
        .arg("--pin-dir")
        .arg(&pins)
        .arg("--state-dir")
        .arg(&state)
        .args(["daemon", "--listen", "127.0.0.1:0", "--api"])
        .arg(&socket)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting geofence daemon")?;
    // Listening once it has said where its metrics are.
    let stderr = child.stderr.take().context("the daemon's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let daemon = Daemon { child, pins, state };
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("metrics on") => break,
            Some(Ok(_)) => continue,
            _ => bail!("the daemon stopped before it listened"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((daemon, socket))
}

fn call(socket: &Path, path: &str, body: &str) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(socket).context("connecting to the API")?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    ensure!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    Ok(response)
}

/// A batch of `n` flows from distinct clients, numbered from `first`.
fn flows(first: u32, n: u32) -> String {
    let flows: Vec<String> = (first..first + n)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            format!(
                r#"{{"meeting":"bench","proto":"udp","src":"{ip}:40000","dst":"192.0.2.1:7882"}}"#
            )
        })
        .collect();
    format!(r#"{{"flows":[{}]}}"#, flows.join(","))
}

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let bin = geofence_bin()?;
    let (_daemon, socket) = start(&bin)?;
    let (batches, singles) = if options.smoke { (3, 50) } else { (50, 2_000) };
    const BATCH: u32 = 1_000;
    // Batches of 1,000 new flows, each unbound again so that the map stays the same size.
    let mut bound = Duration::ZERO;
    for b in 0..batches {
        let body = flows(b * BATCH, BATCH);
        let start = Instant::now();
        call(&socket, "/v1/bind", &body)?;
        bound += start.elapsed();
        let unbind = body.replace(r#""meeting":"bench","#, "");
        call(&socket, "/v1/unbind", &unbind)?;
    }
    let per_second = f64::from(batches * BATCH) / bound.as_secs_f64();
    report.push(
        Figure::new(
            "API: flows bound per second, batches of 1,000",
            per_second,
            "flows/s",
        )
        .goal_value_at_least(100_000.0)
        .note(format!(
            "{batches} batches, each a new connection to the Unix socket: parse, check \
                 every flow, take the state lock, bind; {:.1} ms a batch on average",
            bound.as_secs_f64() * 1000.0 / f64::from(batches)
        )),
    );
    // One join: one ufrag, one call; the first call of a kind warms the daemon's paths.
    call(
        &socket,
        "/v1/bind",
        r#"{"ufrags":[{"meeting":"bench","ufrag":"warmup00"}]}"#,
    )?;
    let mut times = Vec::new();
    for i in 0..singles {
        let body = format!(r#"{{"ufrags":[{{"meeting":"bench","ufrag":"bench{i:08}"}}]}}"#);
        let start = Instant::now();
        call(&socket, "/v1/bind", &body)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    report.push(
        Figure::new(
            "API: one bind call (one ufrag), round trip p99",
            at(0.99),
            "ms",
        )
        .goal_value_at_most(2.0)
        .note(format!(
            "{singles} calls in a row, each connecting anew; p50 {:.3} ms, max {:.3} ms",
            at(0.5),
            times[times.len() - 1]
        )),
    );
    Ok(())
}
