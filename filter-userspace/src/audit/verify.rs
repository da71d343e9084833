//! Checking the chain: each entry's hash matches its content, seq counts up by one, and
//! each `prev` is the hash of the entry before it.

use std::{collections::HashMap, fmt, fs, path::Path};

use anyhow::Context as _;

use super::{AUDIT_FILE, Entry, GENESIS, parse_line};

/// One thing wrong with the trail, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number in `audit.jsonl`.
    pub line: usize,
    /// The entry's seq, when the line parses.
    pub seq: Option<u64>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "line {} (seq {seq}): {}", self.line, self.what),
            None => write!(f, "line {}: {}", self.line, self.what),
        }
    }
}

/// Checks the whole trail. `Ok(n)`: n entries, chain intact; `Ok` of an empty list of
/// problems never happens — problems come back as the `Err` list, in file order.
pub fn verify(dir: &Path) -> anyhow::Result<Result<usize, Vec<Problem>>> {
    let path = dir.join(AUDIT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(0)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut result = check(&text);
    let entries: Vec<(usize, Entry)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(l).ok().map(|e| (i + 1, e)))
        .collect();
    let last = entries
        .iter()
        .max_by_key(|(_, e)| e.seq)
        .map(|(l, e)| (*l, e));
    if let Some(problem) = super::head::check(dir, last, text.lines().count())? {
        match &mut result {
            Ok(_) => result = Err(vec![problem]),
            Err(problems) => problems.push(problem),
        }
    }
    Ok(result)
}

/// The chain check on the trail's text.
pub(crate) fn check(text: &str) -> Result<usize, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut entries: Vec<(usize, Entry)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(entry) => entries.push((i + 1, entry)),
            Err(why) => {
                let last = i + 1 == lines.len();
                let why = if last && !text.ends_with('\n') {
                    format!("the last line is cut short (no newline at the end): {why}")
                } else {
                    why
                };
                problems.push(Problem {
                    line: i + 1,
                    seq: None,
                    what: why,
                });
            }
        }
    }
    let line_of_seq: HashMap<u64, usize> = entries.iter().map(|(l, e)| (e.seq, *l)).collect();
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_string();
    let mut prev_line: Option<usize> = None;
    for (line, entry) in &entries {
        let problem = |what: String| Problem {
            line: *line,
            seq: Some(entry.seq),
            what,
        };
        let content_ok = entry.compute_hash() == entry.hash;
        if !content_ok {
            problems.push(problem(
                "the content does not match its hash: the entry was edited".to_string(),
            ));
        }
        if entry.seq != expected_seq {
            let what = match line_of_seq.get(&expected_seq) {
                Some(at) if *at > *line => format!(
                    "out of order: seq {expected_seq} was expected here but is at line {at} \
                     (entries swapped or reordered)"
                ),
                _ if entry.seq > expected_seq => {
                    let missing = if entry.seq - expected_seq == 1 {
                        format!("seq {expected_seq} is missing")
                    } else {
                        format!("seq {expected_seq} to {} are missing", entry.seq - 1)
                    };
                    format!("{missing}: entries were removed before this one")
                }
                _ => format!(
                    "out of order: seq {} comes after seq {} (entries swapped, reordered \
                     or duplicated)",
                    entry.seq,
                    expected_seq - 1
                ),
            };
            problems.push(problem(what));
        } else if entry.prev != prev_hash && content_ok {
            let what = match prev_line {
                Some(p) => format!(
                    "`prev` is not the hash of the entry at line {p}: that entry was \
                     replaced or edited (and re-hashed), or one was removed between them"
                ),
                None => "`prev` of the first entry is not zeros: earlier entries were removed"
                    .to_string(),
            };
            problems.push(problem(what));
        }
        // Carry on from the furthest entry so far, so one break is reported once and an
        // entry moved back does not make every later one look out of place.
        if entry.seq >= expected_seq {
            expected_seq = entry.seq + 1;
            prev_hash.clone_from(&entry.hash);
            prev_line = Some(*line);
        }
    }
    if problems.is_empty() {
        Ok(entries.len())
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}
