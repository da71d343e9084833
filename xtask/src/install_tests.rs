//! `cargo xtask install` into staging directories.

use super::*;

/// A staging directory of this test, removed on drop.
struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn debug_geofence() -> PathBuf {
    // Cheap when the workspace is built: cargo only checks it is up to date.
    cmd::output(cmd::cargo().args([
        "build",
        "--quiet",
        "-p",
        "filter-userspace",
        "--bin",
        "geofence",
    ]))
    .expect("building geofence");
    crate::geofence_bin()
}

fn read(stage: &Path, path: &str) -> String {
    let text = fs::read_to_string(stage.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!text.trim().is_empty(), "{path} is empty");
    text
}

#[test]
fn installs_into_a_destdir_idempotently() {
    let stage =
        Stage(std::env::temp_dir().join(format!("geofence-install-{}", std::process::id())));
    let _ = fs::remove_dir_all(&stage.0);
    let binary = debug_geofence();
    let args = Args {
        prefix: "/usr/local".into(),
        destdir: Some(stage.0.clone()),
        unit_dir: None,
        binary: Some(binary.clone()),
    };
    let first = install(&binary, &args).expect("install");
    assert!(first.iter().all(|(_, changed)| *changed), "{first:?}");

    let installed = stage.0.join("usr/local/bin/geofence");
    let mode = fs::metadata(&installed)
        .expect("binary")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        fs::read(&installed).expect("binary"),
        fs::read(&binary).expect("binary")
    );
    let unit = read(&stage.0, "usr/local/lib/systemd/system/geofence.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/geofence daemon"),
        "{unit}"
    );
    assert!(
        unit.contains("ExecStartPre=/usr/local/bin/geofence restore"),
        "{unit}"
    );
    for completion in [
        "usr/local/share/bash-completion/completions/geofence",
        "usr/local/share/zsh/site-functions/_geofence",
        "usr/local/share/fish/vendor_completions.d/geofence.fish",
    ] {
        assert!(
            read(&stage.0, completion).contains("block"),
            "{completion} does not know `block`"
        );
    }
    let man = read(&stage.0, "usr/local/share/man/man1/geofence.1");
    assert!(
        man.contains(".TH geofence") && man.contains("block"),
        "{man}"
    );
    let block = read(&stage.0, "usr/local/share/man/man1/geofence-block.1");
    assert!(block.contains("\\-\\-order"), "{block}");
    read(&stage.0, "usr/local/share/man/man1/geofence-geo-load.1");

    let again = install(&binary, &args).expect("install again");
    assert_eq!(again.len(), first.len());
    assert!(
        again.iter().all(|(_, changed)| !changed),
        "second install rewrote: {again:?}"
    );

    verify_unit(
        &stage
            .0
            .join("usr/local/lib/systemd/system/geofence.service"),
        &installed,
    );
}

#[test]
fn another_prefix_and_unit_dir_are_written_into_the_unit() {
    let stage =
        Stage(std::env::temp_dir().join(format!("geofence-install-opt-{}", std::process::id())));
    let binary = debug_geofence();
    let args = Args {
        prefix: "/opt/geofence".into(),
        destdir: Some(stage.0.clone()),
        unit_dir: Some("/etc/systemd/system".into()),
        binary: Some(binary.clone()),
    };
    install(&binary, &args).expect("install");
    let unit = read(&stage.0, "etc/systemd/system/geofence.service");
    assert!(
        unit.contains("ExecStart=/opt/geofence/bin/geofence daemon"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local/bin"), "{unit}");
    assert!(stage.0.join("opt/geofence/bin/geofence").is_file());
    let relative = Args {
        prefix: "usr".into(),
        ..args
    };
    assert!(
        install(&binary, &relative).is_err(),
        "a relative prefix is refused"
    );
}

/// `systemd-analyze verify` on the installed unit, pointed at the staged binary (the
/// unit's own path does not exist on this machine); skipped, saying so, without it.
fn verify_unit(unit: &Path, binary: &Path) {
    let Some(analyze) = cmd::find_program("systemd-analyze") else {
        eprintln!("skipping systemd-analyze verify: systemd-analyze is not installed");
        return;
    };
    let dir = unit.parent().expect("unit dir").join("verify");
    fs::create_dir_all(&dir).expect("verify dir");
    let text = fs::read_to_string(unit).expect("unit");
    let staged = format!("{}/", binary.parent().expect("bin dir").display());
    let copy = dir.join("geofence.service");
    fs::write(&copy, text.replace("/usr/local/bin/", &staged)).expect("unit copy");
    // --man=no: the pages are staged, not where man(1) looks.
    let out = cmd::command(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
