//! Replays the fuzz seed corpus (`fuzz/corpus/<target>/`) and every saved crash
//! (`fuzz/regressions/<target>/`) through the fuzz targets' bodies, without cargo-fuzz, so
//! that plain `cargo test` (and CI) keeps every found bug fixed. Seeds named `ok-*` must be
//! accepted and `bad-*` rejected; every input must leave the parser without a panic.

use std::path::{Path, PathBuf};

use geofence::fuzzing::{TARGETS, target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every `(target, file)` under `dir`; a directory that names no target is an error.
fn inputs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let Ok(targets) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in targets {
        let entry = entry.expect("readable directory");
        let name = entry.file_name().to_string_lossy().into_owned();
        let t = target(&name).unwrap_or_else(|| panic!("{}: no fuzz target {name}", dir.display()));
        for file in std::fs::read_dir(entry.path()).expect("readable directory") {
            out.push((t.name, file.expect("readable directory").path()));
        }
    }
    out.sort();
    out
}

fn replay(files: &[(&'static str, PathBuf)]) {
    for (name, path) in files {
        let data = std::fs::read(path).expect("readable input");
        let run = target(name).expect("listed target").run;
        let accepted = run(&data);
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        if file.starts_with("ok-") {
            assert!(accepted, "{} was rejected", path.display());
        } else if file.starts_with("bad-") {
            assert!(!accepted, "{} was accepted", path.display());
        }
    }
}

#[test]
fn every_target_has_seeds_and_they_pass() {
    let corpus = inputs(&fuzz_dir().join("corpus"));
    for t in TARGETS {
        let seeds = corpus.iter().filter(|(name, _)| *name == t.name).count();
        assert!(seeds >= 3, "fuzz/corpus/{} has {seeds} seeds", t.name);
    }
    for (_, path) in &corpus {
        let size = path.metadata().expect("seed").len();
        assert!(size < 20_000, "{} is {size} bytes", path.display());
    }
    replay(&corpus);
}

#[test]
fn saved_crashes_stay_fixed() {
    let regressions = inputs(&fuzz_dir().join("regressions"));
    assert!(!regressions.is_empty(), "fuzz/regressions/ is missing");
    replay(&regressions);
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for t in TARGETS {
        let file = fuzz_dir().join(format!("fuzz_targets/{}.rs", t.name));
        let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        assert!(
            source.contains(&format!("geofence::fuzzing::{}(", t.name)),
            "{file:?}"
        );
    }
}
