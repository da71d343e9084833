//! The policy file as TOML sees it: every value keeps its position, so that a later check
//! can name the line. Unknown keys are refused, so a typo never silently means nothing.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::{prefix::Strict, territory::Territory};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSchema {
    pub geo: Option<Spanned<GeoSchema>>,
    /// Ports meetings share; absent: the relay's are left as they are.
    pub mux: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub meetings: BTreeMap<Spanned<String>, Spanned<MeetingSchema>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GeoSchema {
    pub files: Spanned<Vec<Spanned<String>>>,
    pub format: Option<Spanned<String>>,
    pub territory: Option<Spanned<Territory>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MeetingSchema {
    /// Absent or empty: a meeting known only through its bindings on shared ports.
    #[serde(default)]
    pub endpoints: Vec<Spanned<String>>,
    /// Read only to be refused by name: flows are runtime bindings, not policy.
    #[serde(default)]
    pub flows: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSchema>>,
    #[serde(default)]
    pub allow: Vec<Spanned<Strict>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSchema {
    pub order: Spanned<String>,
    #[serde(default)]
    pub territories: Vec<Spanned<Territory>>,
    #[serde(default)]
    pub prefixes: Vec<Spanned<Strict>>,
    /// A TOML datetime or an RFC 3339 string.
    pub expires: Option<Spanned<toml::Value>>,
    /// Refused with an explanation rather than as an unknown key.
    #[serde(rename = "for")]
    pub for_: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub dry_run: bool,
}
