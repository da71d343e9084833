//! `geo load` shows a progress display only when standard output is a terminal: in a pipe
//! (scripts, CI, these tests) its output is the result line alone, without escape codes;
//! under a pseudo-terminal the bars and phases appear.

use std::{
    fmt::Write as _,
    fs,
    process::{Command, Stdio},
};

mod common;

use common::{Dirs, root_with_bpffs};

/// A CSV of about 1 MiB, so that reading it is drawn at least once.
fn write_geo(d: &Dirs) -> String {
    fs::create_dir_all(&d.state).expect("state dir");
    let mut csv = String::new();
    for i in 0..40_000u32 {
        let [a, b, c, _] = (0x0b00_0000 + i * 256).to_be_bytes();
        let code = if i % 2 == 0 { "XA" } else { "XB" };
        let _ = writeln!(csv, "{a}.{b}.{c}.0,{a}.{b}.{c}.255,{code}");
    }
    let path = d.state.join("geo-progress.csv");
    fs::write(&path, csv).expect("writing the CSV");
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn piped_geo_load_prints_no_progress() {
    if !root_with_bpffs("piped_geo_load_prints_no_progress") {
        return;
    }
    let d = Dirs::new("progpipe");
    let geo = write_geo(&d);
    let out = d.run(&["geo", "load", &geo]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.starts_with("loaded 40000 IPv4"), "{stdout}");
    // The result line, then what changed against the table it replaced.
    assert_eq!(
        stdout.lines().nth(1),
        Some("against table A, which it replaced:"),
        "{stdout}"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains('\x1b'), "escape codes on {name}: {text:?}");
        assert!(
            !text.contains("reading") && !text.contains("filling"),
            "progress on {name}: {text}"
        );
    }
}

#[test]
fn geo_load_on_a_terminal_shows_progress() {
    if !root_with_bpffs("geo_load_on_a_terminal_shows_progress") {
        return;
    }
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!(
            "skipping geo_load_on_a_terminal_shows_progress: `script` (util-linux) is not installed"
        );
        return;
    }
    let d = Dirs::new("progtty");
    let geo = write_geo(&d);
    let command = format!(
        "{} --pin-dir {} --state-dir {} geo load {geo}",
        env!("CARGO_BIN_EXE_geofence"),
        d.pin.display(),
        d.state.display()
    );
    // script runs the command on a pseudo-terminal and copies what it shows to stdout.
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("running script");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("geo-progress.csv ["),
        "no bar for the file: {shown:?}"
    );
    assert!(shown.contains("\x1b["), "no terminal control: {shown:?}");
    assert!(shown.contains("loaded 40000 IPv4"), "{shown:?}");
}
