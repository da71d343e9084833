//! Running external programs: each one is printed before it runs, and a failure names the
//! command and how it ended ("`cargo build ...` failed with exit status 101").

use std::{
    env,
    ffi::{OsStr, OsString},
    fmt,
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::OnceLock,
};

use anyhow::{Context as _, Result};

/// A command that ran and did not succeed.
#[derive(Debug)]
pub struct Failed {
    /// The command as it was printed.
    pub shown: String,
    pub status: ExitStatus,
    /// What the command wrote to stderr, when it was captured.
    pub stderr: String,
}

impl Failed {
    /// The exit code to hand on: the command's own, or 128 + signal as a shell does.
    pub fn exit_code(&self) -> i32 {
        self.status
            .code()
            .or_else(|| self.status.signal().map(|signal| 128 + signal))
            .unwrap_or(1)
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed with ", self.shown)?;
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => write!(f, "exit status {code}")?,
            (None, Some(signal)) => write!(f, "signal {signal}")?,
            (None, None) => write!(f, "{}", self.status)?,
        }
        let stderr = self.stderr.trim();
        if !stderr.is_empty() {
            write!(f, ": {stderr}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failed {}

/// The `PATH` for every program we look up or run: the caller's, plus cargo's bin directory
/// (where rustup and `cargo install` put their programs, bpf-linker among them) and the sbin
/// directories (ip, bpftool, nft, ipset), each appended only when missing.
pub fn search_path() -> &'static OsStr {
    static PATH: OnceLock<OsString> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut dirs: Vec<PathBuf> = env::var_os("PATH")
            .map(|path| env::split_paths(&path).collect())
            .unwrap_or_default();
        let mut extra: Vec<PathBuf> = cargo_home()
            .map(|home| home.join("bin"))
            .into_iter()
            .collect();
        extra.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
        for dir in extra {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        env::join_paths(dirs).unwrap_or_else(|_| env::var_os("PATH").unwrap_or_default())
    })
}

/// `$CARGO_HOME`, or `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
}

/// Where `name` would be found on [`search_path`], if it is there and executable.
pub fn find_program(name: &str) -> Option<PathBuf> {
    env::split_paths(search_path())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// A command for `program` that runs with [`search_path`] as its `PATH`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command.env("PATH", search_path());
    command
}

/// A command for the cargo that runs us (so `cargo +toolchain xtask` stays on that toolchain),
/// in the workspace root.
pub fn cargo() -> Command {
    let mut command = command(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(crate::workspace_root());
    command
}

/// The command as a shell line: the variables we set (not `PATH`), the program's name, the
/// arguments, quoted where needed.
pub fn show(command: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        if key == "PATH" {
            continue;
        }
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    let program = Path::new(command.get_program());
    words.push(
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned(),
    );
    words.extend(command.get_args().map(quote));
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+^@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints the command, runs it with our stdin, stdout and stderr, and fails unless it succeeds.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = show(command);
    eprintln!("$ {shown}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failed {
            shown,
            status,
            stderr: String::new(),
        }
        .into())
    }
}

/// Runs the command quietly and returns its stdout; a failure carries its stderr.
pub fn output(command: &mut Command) -> Result<String> {
    let shown = show(command);
    let output = command
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if output.status.success() {
        String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed non-UTF-8"))
    } else {
        Err(Failed {
            shown,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
        .into())
    }
}
