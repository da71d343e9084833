//! Checking the trail: each line is the canonical form of its entry, each entry's hash
//! matches its content, seq counts up by one, each `prev` is the hash of the entry before
//! it, and the entries at the seqs of any anchors given carry the anchors' hashes.

use std::{collections::HashMap, fmt, fs, path::Path};

use anyhow::Context as _;

use super::{
    AUDIT_FILE, Anchor, Entry, GENESIS,
    canonical::{LineCheck, check_line},
    lines,
};

/// One thing wrong with the trail, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number in `audit.jsonl`.
    pub line: usize,
    /// The entry's seq, when the line parses.
    pub seq: Option<u64>,
    /// The first byte of the line (from 0) that is wrong, when one is.
    pub offset: Option<usize>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        if let Some(offset) = self.offset {
            write!(f, ", byte {offset}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// Checks the whole trail. `Ok(n)`: n entries, chain intact; `Ok` of an empty list of
/// problems never happens — problems come back as the `Err` list, in file order.
pub fn verify(dir: &Path) -> anyhow::Result<Result<usize, Vec<Problem>>> {
    verify_against(dir, &[])
}

/// [`verify`], and each anchor's seq must be an entry carrying the anchor's hash.
pub fn verify_against(
    dir: &Path,
    anchors: &[Anchor],
) -> anyhow::Result<Result<usize, Vec<Problem>>> {
    let path = dir.join(AUDIT_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        // No trail is an empty one: the head and the anchors still speak.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let examined = examine(&bytes);
    let mut problems = examined.problems;
    let line_count = lines(&bytes).len();
    let last = examined
        .entries
        .iter()
        .max_by_key(|(_, e)| e.seq)
        .map(|(l, e)| (*l, e));
    problems.extend(super::head::check(dir, last, line_count)?);
    for anchor in anchors {
        problems.extend(check_anchor(anchor, &examined.entries, line_count));
    }
    if problems.is_empty() {
        Ok(Ok(examined.entries.len()))
    } else {
        problems.sort_by_key(|p| p.line);
        Ok(Err(problems))
    }
}

/// What an anchor says of the trail's entries, if anything is wrong.
fn check_anchor(anchor: &Anchor, entries: &[(usize, Entry)], lines: usize) -> Option<Problem> {
    if let Some((line, entry)) = entries.iter().find(|(_, e)| e.seq == anchor.seq) {
        return (entry.hash != anchor.hash).then(|| Problem {
            line: *line,
            seq: Some(entry.seq),
            offset: None,
            what: format!(
                "its hash is {}, but the anchor {anchor} says {}: the trail was rewritten at \
                 or before seq {}",
                entry.hash, anchor.hash, anchor.seq
            ),
        });
    }
    let last = entries.iter().map(|(_, e)| e.seq).max().unwrap_or(0);
    let what = if last < anchor.seq {
        format!(
            "the trail ends at seq {last}, but the anchor {anchor} was taken at seq {}: \
             entries were removed from the end, or the trail was rewritten shorter",
            anchor.seq
        )
    } else {
        format!(
            "no entry has seq {}, which the anchor {anchor} names: it was removed",
            anchor.seq
        )
    };
    Some(Problem {
        line: lines + 1,
        seq: Some(anchor.seq),
        offset: None,
        what,
    })
}

/// The trail's entries (by line) and what is wrong with its lines and chain.
struct Examined {
    entries: Vec<(usize, Entry)>,
    problems: Vec<Problem>,
}

/// The chain check on the trail's bytes.
#[cfg(test)]
pub(crate) fn check(bytes: &[u8]) -> Result<usize, Vec<Problem>> {
    let examined = examine(bytes);
    if examined.problems.is_empty() {
        Ok(examined.entries.len())
    } else {
        Err(examined.problems)
    }
}

fn examine(bytes: &[u8]) -> Examined {
    let mut problems = Vec::new();
    let mut entries: Vec<(usize, Entry)> = Vec::new();
    let all = lines(bytes);
    let mut unreadable = Vec::new();
    let unterminated = !bytes.is_empty() && !bytes.ends_with(b"\n");
    for (i, (number, line)) in all.iter().enumerate() {
        let cut = unterminated && i + 1 == all.len();
        match check_line(line) {
            LineCheck::Canonical(entry) if cut => {
                problems.push(Problem {
                    line: *number,
                    seq: Some(entry.seq),
                    offset: Some(line.len()),
                    what: "the last line has no newline at its end: its write was cut short"
                        .to_string(),
                });
                entries.push((*number, entry));
            }
            LineCheck::Canonical(entry) => entries.push((*number, entry)),
            LineCheck::NotCanonical(entry, fault) => {
                problems.push(Problem {
                    line: *number,
                    seq: Some(entry.seq),
                    offset: fault.offset,
                    what: fault.what,
                });
                entries.push((*number, entry));
            }
            LineCheck::NotEntry(fault) => {
                unreadable.push(*number);
                let what = if cut {
                    format!(
                        "the last line is cut short (no newline at the end): {}",
                        fault.what
                    )
                } else {
                    fault.what
                };
                problems.push(Problem {
                    line: *number,
                    seq: None,
                    offset: fault.offset,
                    what,
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
            offset: None,
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
                    let after = prev_line.unwrap_or(0);
                    match unreadable.iter().find(|l| (after + 1..*line).contains(*l)) {
                        Some(bad) => format!("{missing}: line {bad} before it is not an entry"),
                        None => format!("{missing}: entries were removed before this one"),
                    }
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
    problems.sort_by_key(|p| p.line);
    Examined { entries, problems }
}
