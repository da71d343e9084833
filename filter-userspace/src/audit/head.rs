//! `audit.head`: the seq and hash of the last entry appended, kept beside the trail so that
//! removing entries from the end — which leaves the chain itself consistent — is detected.

use std::{fs, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Entry, Problem};

pub const HEAD_FILE: &str = "audit.head";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// Records `entry` as the last one, replacing the file atomically.
pub fn write(dir: &Path, entry: &Entry) -> anyhow::Result<()> {
    let head = Head {
        seq: entry.seq,
        hash: entry.hash.clone(),
    };
    let json = serde_json::to_vec(&head).context("serializing the audit head")?;
    crate::durable::write_atomic(dir, HEAD_FILE, &json)
}

/// What the head says about the trail's end, given its last entry and the next line
/// number. A head behind the trail is fine: a crash may come between the two writes.
pub fn check(
    dir: &Path,
    last: Option<(usize, &Entry)>,
    lines: usize,
) -> anyhow::Result<Option<Problem>> {
    let path = dir.join(HEAD_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Ok(head) = serde_json::from_str::<Head>(&text) else {
        return Ok(Some(Problem {
            line: lines + 1,
            seq: None,
            offset: None,
            what: format!("{} is not a valid audit head", path.display()),
        }));
    };
    let (last_seq, last_hash) = last.map_or((0, ""), |(_, e)| (e.seq, e.hash.as_str()));
    let problem = if head.seq > last_seq {
        Some(Problem {
            line: lines + 1,
            seq: Some(last_seq + 1),
            offset: None,
            what: format!(
                "the trail ends at seq {last_seq} but {HEAD_FILE} records seq {}: \
                 entries were removed from the end",
                head.seq
            ),
        })
    } else if head.seq == last_seq && head.hash != last_hash {
        last.map(|(line, e)| Problem {
            line,
            seq: Some(e.seq),
            offset: None,
            what: format!("the last entry is not the one {HEAD_FILE} records: it was replaced"),
        })
    } else {
        None
    };
    Ok(problem)
}
