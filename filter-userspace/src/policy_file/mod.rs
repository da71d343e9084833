//! Declarative policy: a TOML file an operator writes by hand and keeps in git, holding the
//! meetings with their endpoints, flows, rules and exceptions, and the territory table's
//! source files. `geofence apply` makes the state equal to it; `geofence export` writes
//! the state in the same format.
//!
//! Interfaces are not part of the file: which interfaces run the filter is a matter of the
//! host, not of policy, so `attach`/`detach` stay imperative and apply leaves them alone.
//!
//! Parsing validates everything a file alone can show (syntax, unknown keys, endpoints,
//! territories, prefixes, orders, expiries, overlaps) and names `FILE:LINE:COLUMN`.

mod diff;
mod export;
mod parse;
mod parse_rule;
mod rule_match;
mod schema;
mod source;
mod state_rule;
mod summary;

use std::{collections::BTreeMap, ops::Range, path::PathBuf};

use ipnet::IpNet;
use jiff::Timestamp;

use crate::{endpoint::Endpoint, geo::Format, territory::Territory};

pub use diff::plan;
pub use export::export;
pub use parse::parse;
pub use summary::{Change, Plan, Summary};

/// What a policy file declares, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Declared {
    /// `None`: the file does not manage the territory table, which is left as loaded.
    pub geo: Option<DeclaredGeo>,
    /// `None`: the file does not manage the shared ports, which are left as they are.
    pub mux: Option<Vec<Endpoint>>,
    pub meetings: BTreeMap<String, DeclaredMeeting>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredGeo {
    /// Relative paths are resolved against the policy file's directory.
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub territory: Option<Territory>,
    /// Where `files` is written, for errors found when the files are read.
    pub at: Position,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredMeeting {
    pub endpoints: Vec<Endpoint>,
    pub rules: Vec<DeclaredRule>,
    pub allows: Vec<IpNet>,
    pub at: Position,
}

/// A rule as the file states it: what `block` takes, with an absolute expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredRule {
    pub order: String,
    /// Sorted, without duplicates, as `block` stores them.
    pub territories: Vec<Territory>,
    pub prefixes: Vec<IpNet>,
    pub expires: Option<Timestamp>,
    pub dry_run: bool,
    pub at: Position,
}

impl DeclaredRule {
    /// Whether `rule` asks for exactly this (issue time and issuer aside).
    pub fn same_as(&self, rule: &crate::state::Rule) -> bool {
        self.order == rule.order
            && self.territories == rule.territories
            && self.prefixes == rule.prefixes
            && self.expires == rule.expires
            && self.dry_run == rule.dry_run
    }
}

/// A place in the policy file, 1-based.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub(crate) fn of(file: &str, text: &str, span: Range<usize>) -> Position {
        let before = &text[..span.start.min(text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            file: file.to_string(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A policy file that cannot be applied, and where.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{at}: {message}")]
pub struct PolicyError {
    pub at: Position,
    pub message: String,
}

impl PolicyError {
    pub fn new(at: Position, message: impl Into<String>) -> PolicyError {
        PolicyError {
            at,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
