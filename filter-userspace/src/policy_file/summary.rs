//! A diff as an operator reads it: one line per added, removed or changed item, and the
//! counts per kind of item.

use std::{collections::BTreeMap, fmt};

use serde_json::json;

use crate::state::State;

/// One line of the diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `+` added, `-` removed, `~` changed.
    pub sign: char,
    /// Items of a meeting are indented under it.
    pub nested: bool,
    pub text: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indent = if self.nested { "    " } else { "" };
        write!(f, "{} {indent}{}", self.sign, self.text)
    }
}

/// The kinds of item a diff counts, in the order a summary names them.
const KINDS: [&str; 7] = [
    "mux port",
    "meeting",
    "endpoint",
    "flow",
    "rule",
    "allow",
    "territory table",
];

/// Added, removed and changed counts per kind of item, keyed by position in [`KINDS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary(BTreeMap<usize, [usize; 3]>);

impl Summary {
    pub(super) fn count(&mut self, kind: &'static str, sign: char) {
        let i = match sign {
            '+' => 0,
            '-' => 1,
            _ => 2,
        };
        let k = KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len());
        self.0.entry(k).or_default()[i] += 1;
    }

    fn kinds(&self) -> impl Iterator<Item = (&'static str, &[usize; 3])> {
        self.0
            .iter()
            .map(|(k, counts)| (KINDS.get(*k).copied().unwrap_or("item"), counts))
    }

    pub fn to_json(&self) -> serde_json::Value {
        let kinds = self.kinds().map(|(kind, [added, removed, changed])| {
            let counts = json!({ "added": added, "removed": removed, "changed": changed });
            (kind.to_string(), counts)
        });
        serde_json::Value::Object(kinds.collect())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (kind, counts) in self.kinds() {
            for (n, what) in counts.iter().zip(["added", "removed", "changed"]) {
                if *n > 0 {
                    parts.push(format!(
                        "{n} {kind}{} {what}",
                        if *n == 1 { "" } else { "s" }
                    ));
                }
            }
        }
        f.write_str(&parts.join(", "))
    }
}

/// The state a policy file asks for, and how it differs from the current one.
#[derive(Clone, Debug)]
pub struct Plan {
    pub new: State,
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    pub fn push(&mut self, kind: &'static str, sign: char, nested: bool, text: String) {
        self.summary.count(kind, sign);
        self.changes.push(Change { sign, nested, text });
    }
}
