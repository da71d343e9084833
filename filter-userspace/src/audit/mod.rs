//! The audit trail: `audit.jsonl` in the state directory, one change per line, each line
//! chained to the one before by a SHA-256 hash so that an edited, removed or reordered
//! entry is detected by [`verify`].
//!
//! A line is a JSON object with `seq` (1, 2, ...), `time`, `operator`, `host`, `action`,
//! `details`, `prev` (the previous entry's `hash`, 64 zeros for the first) and `hash`, the
//! SHA-256 of the canonical serialization of every other field ([`canonical`]: keys sorted,
//! no whitespace). A line must be byte for byte [`Entry::canonical_line`] of the entry it
//! holds, so that it reads the same to every JSON reader. Appends happen under the state
//! lock, so seq and prev cannot race.

mod anchor;
mod canonical;
mod duplicates;
mod head;
mod query;
mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_anchor;
#[cfg(test)]
mod tests_canonical;

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

pub use anchor::{ANCHOR_TAG, Anchor, AnchorError};
pub use canonical::canonical;
pub use head::HEAD_FILE;
pub use query::{Filter, mentions_order, parse_since};
pub use verify::{Problem, verify, verify_against};

/// The file name in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339, to the second.
    pub time: String,
    pub operator: String,
    pub host: String,
    pub action: String,
    pub details: Value,
    pub prev: String,
    pub hash: String,
}

impl Entry {
    /// The hash this entry must carry: over every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "seq": self.seq,
            "time": self.time,
            "operator": self.operator,
            "host": self.host,
            "action": self.action,
            "details": self.details,
            "prev": self.prev,
        });
        sha256_hex(canonical(&body).as_bytes())
    }

    /// The entry's time, if it parses.
    pub fn timestamp(&self) -> Option<jiff::Timestamp> {
        self.time.parse().ok()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 and size of a file, streamed.
pub fn file_digest(path: &Path) -> anyhow::Result<(String, u64)> {
    let cannot = || format!("{}: cannot read", path.display());
    let mut file = fs::File::open(path).with_context(cannot)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(cannot)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Where the chain continues: after the last line that is an entry, in canonical form or
/// not. A line cut short after it is skipped; `verify` reports it, so the break stays
/// visible.
fn chain_tail(bytes: &[u8]) -> (u64, String) {
    lines(bytes)
        .into_iter()
        .rev()
        .find_map(|(_, line)| canonical::check_line(line).entry())
        .map_or((1, GENESIS.to_string()), |entry| {
            (entry.seq + 1, entry.hash)
        })
}

/// The trail's lines, numbered from 1, split at `\n` alone: a `\r` stays in its line,
/// where the canonical check names it. Nothing after the last `\n` is a line only if it is
/// not empty (a line cut short).
fn lines(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut all: Vec<(usize, &[u8])> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .collect();
    if all.last().is_some_and(|(_, line)| line.is_empty()) {
        all.pop();
    }
    all
}

/// Appends one entry, chained to the last, and syncs the file. The caller holds the state
/// lock.
pub fn append(dir: &Path, action: &str, details: Value) -> anyhow::Result<Entry> {
    let path = dir.join(AUDIT_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let (seq, prev) = chain_tail(&text);
    let mut entry = Entry {
        seq,
        time: crate::clock::now().to_string(),
        operator: operator(),
        host: host(),
        action: action.to_string(),
        details,
        prev,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    let mut line = entry.canonical_line();
    // A line cut short by a crash must not swallow this entry.
    if !text.is_empty() && !text.ends_with(b"\n") {
        line.insert(0, '\n');
    }
    line.push('\n');
    file.seek(SeekFrom::End(0))
        .and_then(|_| file.write_all(line.as_bytes()))
        .and_then(|()| file.sync_data())
        .with_context(|| format!("appending to {}", path.display()))?;
    head::write(dir, &entry)?;
    Ok(entry)
}

/// Every entry of the trail, in file order, as serde_json reads it. A line that is no
/// entry at all is an error naming it; one that is an entry but not in its canonical form
/// is read, and [`verify`] (which the report quotes) names it.
pub fn read(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = dir.join(AUDIT_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut entries = Vec::new();
    for (number, line) in lines(&bytes) {
        match canonical::check_line(line) {
            canonical::LineCheck::Canonical(entry)
            | canonical::LineCheck::NotCanonical(entry, _) => {
                entries.push(entry);
            }
            canonical::LineCheck::NotEntry(fault) => anyhow::bail!(
                "{} line {number}: {} (`geofence audit verify` checks the whole trail)",
                path.display(),
                fault.what
            ),
        }
    }
    Ok(entries)
}

/// A details object with `key` added (details that are not an object are wrapped).
pub fn with_field(details: Value, key: &str, value: Value) -> Value {
    let mut map = match details {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            let mut map = Map::new();
            map.insert("details".to_string(), other);
            map
        }
    };
    map.insert(key.to_string(), value);
    Value::Object(map)
}

/// The machine acting, for records people read.
pub fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Who is acting: the user behind sudo, else the current user.
pub fn operator() -> String {
    if let Ok(user) = std::env::var("SUDO_USER") {
        return user;
    }
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}
