//! `geofence export [--output FILE]`: the state as a policy file that `apply` reads back
//! without a change.

use std::{fs, io::Write as _};

use anyhow::Context as _;

use super::args::ExportArgs;
use crate::change::Ctx;
use crate::{policy_file, state::State};

pub fn export(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<()> {
    let state = State::load(&ctx.state_dir)?;
    let text = policy_file::export(&state, &crate::audit::host(), ctx.clock.wall());
    let Some(path) = args.output else {
        print!("{text}");
        return Ok(());
    };
    // Written beside the target and renamed: a reader never sees half a policy.
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("policy".into(), |n| n.to_string_lossy())
    ));
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    let rules: usize = state.meetings.values().map(|m| m.rules.len()).sum();
    println!(
        "wrote {}: {} meeting{}, {rules} rule{} (expired ones as comments)",
        path.display(),
        state.meetings.len(),
        super::meeting::plural(state.meetings.len()),
        super::meeting::plural(rules)
    );
    Ok(())
}
