//! `geofence completions SHELL` and `geofence man`: shell completions and manual pages
//! generated from the clap definitions, so they never drift from `--help`.

use std::{
    fs,
    io::{self, Write as _},
    path::Path,
};

use anyhow::Context as _;
use clap::CommandFactory as _;

use super::args::{Cli, CompletionsArgs, ManArgs, Shell};

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "geofence", &mut out);
    write_stdout(&out)
}

pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match &args.dir {
        Some(dir) => {
            let written = write_pages(cmd, dir)?;
            eprintln!("wrote {written} manual pages to {}", dir.display());
            Ok(())
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("rendering the manual page")?;
            write_stdout(&out)
        }
    }
}

/// Writes the page of `cmd` and of every subcommand below it (named after their path,
/// e.g. geofence-geo-load.1); returns how many.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<usize> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = count_pages(&cmd);
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing manual pages to {}", dir.display()))?;
    Ok(pages)
}

/// As `generate_to` walks the tree: every visible subcommand, not `help`.
fn count_pages(cmd: &clap::Command) -> usize {
    1 + cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(count_pages)
        .sum::<usize>()
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    match io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}
