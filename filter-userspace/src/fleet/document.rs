//! The fleet's policy document: what of a policy file is global. Rules and allow
//! exceptions per meeting name, and the territory table by file name and SHA-256 (each
//! relay loads its own copy). Endpoints, flows, mux ports and interfaces stay local.
//!
//! Stored as JSON (not TOML text) so that a relay builds its `Declared` directly: a rule
//! that expired since the version was written must be skipped, not refused as the policy
//! file parser refuses it. Operators still write TOML; `fleet export` renders it back.

use std::{collections::BTreeMap, fmt::Write as _};

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    audit,
    policy_file::{Declared, DeclaredRule},
    territory::Territory,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyDoc {
    /// 1 for the first version; each write adds one.
    pub version: u64,
    /// `operator@host` of whoever ran `fleet apply`.
    pub author: String,
    pub written: Timestamp,
    /// The operator's file, by name and SHA-256: which text this version came from.
    pub source: SourceFile,
    /// The previous version's `hash`: the versions form a hash chain, as the local audit.
    pub prev: Option<String>,
    pub geo: Option<GeoRef>,
    pub meetings: BTreeMap<String, FleetMeeting>,
    /// SHA-256 of the canonical JSON of everything above.
    #[serde(default)]
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    pub file: String,
    pub sha256: String,
}

/// The territory table, named by its files: a relay whose copy differs reports a mismatch
/// rather than enforce another table under the same rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoRef {
    pub files: Vec<GeoFile>,
    pub format: String,
    pub territory: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoFile {
    /// The file's name without its directory: relays keep their copies where they like.
    pub name: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetMeeting {
    #[serde(default)]
    pub rules: Vec<FleetRule>,
    #[serde(default, deserialize_with = "crate::prefix::deserialize_list")]
    pub allow: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRule {
    pub order: String,
    #[serde(default)]
    pub territories: Vec<Territory>,
    #[serde(default, deserialize_with = "crate::prefix::deserialize_list")]
    pub prefixes: Vec<IpNet>,
    pub expires: Option<Timestamp>,
    #[serde(default)]
    pub dry_run: bool,
}

impl FleetRule {
    fn from_declared(r: &DeclaredRule) -> FleetRule {
        FleetRule {
            order: r.order.clone(),
            territories: r.territories.clone(),
            prefixes: r.prefixes.clone(),
            expires: r.expires,
            dry_run: r.dry_run,
        }
    }

    fn describe(&self) -> String {
        let mut targets: Vec<String> = self.territories.iter().map(|t| t.to_string()).collect();
        targets.extend(self.prefixes.iter().map(|p| p.to_string()));
        let mut text = format!("order {:?}: block {}", self.order, targets.join(", "));
        if let Some(at) = self.expires {
            let _ = write!(text, " until {at}");
        }
        if self.dry_run {
            text.push_str(" (dry run)");
        }
        text
    }
}

/// What of `declared` is global, and what the fleet leaves to each relay (for a note).
pub fn global_part(declared: &Declared) -> (BTreeMap<String, FleetMeeting>, Vec<String>) {
    let mut local = Vec::new();
    if declared.mux.is_some() {
        local.push("mux".to_string());
    }
    let meetings = declared
        .meetings
        .iter()
        .map(|(name, m)| {
            if !m.endpoints.is_empty() {
                local.push(format!("meeting {name}: endpoints"));
            }
            let meeting = FleetMeeting {
                rules: m.rules.iter().map(FleetRule::from_declared).collect(),
                allow: m.allows.clone(),
            };
            (name.clone(), meeting)
        })
        .collect();
    (meetings, local)
}

impl PolicyDoc {
    /// The hash over every field but `hash` itself.
    pub fn compute_hash(&self) -> String {
        let mut value = json!(self);
        if let Some(map) = value.as_object_mut() {
            map.remove("hash");
        }
        audit::sha256_hex(audit::canonical(&value).as_bytes())
    }

    pub fn seal(mut self) -> PolicyDoc {
        self.hash = self.compute_hash();
        self
    }

    /// Every order reference, once each: what a transparency report names.
    pub fn orders(&self) -> Vec<String> {
        let mut orders: Vec<String> = self
            .meetings
            .values()
            .flat_map(|m| m.rules.iter().map(|r| r.order.clone()))
            .collect();
        orders.sort();
        orders.dedup();
        orders
    }

    /// The version as a policy file (meetings without endpoints), for `fleet export`.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |items: Vec<String>| {
            let items: Vec<String> = items.iter().map(|i| q(i)).collect();
            format!("[{}]", items.join(", "))
        };
        let mut out = format!(
            "# geofence fleet policy version {} by {} at {} (hash {}).\n\
             # Endpoints, flows, mux ports and interfaces are local to each relay.\n",
            self.version, self.author, self.written, self.hash
        );
        if let Some(geo) = &self.geo {
            out.push_str("\n[geo]\n");
            for f in &geo.files {
                let _ = writeln!(out, "# {}: sha256 {}", f.name, f.sha256);
            }
            let names = geo.files.iter().map(|f| f.name.clone()).collect();
            let _ = writeln!(out, "files = {}", list(names));
            let _ = writeln!(out, "format = {}", q(&geo.format));
            if let Some(t) = &geo.territory {
                let _ = writeln!(out, "territory = {}", q(t));
            }
        }
        for (name, m) in &self.meetings {
            let table = format!("meetings.{}", q(name));
            let _ = writeln!(out, "\n[{table}]");
            if !m.allow.is_empty() {
                let allow = m.allow.iter().map(|p| p.to_string()).collect();
                let _ = writeln!(out, "allow = {}", list(allow));
            }
            for r in &m.rules {
                let _ = writeln!(out, "\n[[{table}.rules]]\norder = {}", q(&r.order));
                if !r.territories.is_empty() {
                    let t = r.territories.iter().map(|t| t.to_string()).collect();
                    let _ = writeln!(out, "territories = {}", list(t));
                }
                if !r.prefixes.is_empty() {
                    let p = r.prefixes.iter().map(|p| p.to_string()).collect();
                    let _ = writeln!(out, "prefixes = {}", list(p));
                }
                if let Some(at) = r.expires {
                    let _ = writeln!(out, "expires = {at}");
                }
                if r.dry_run {
                    out.push_str("dry_run = true\n");
                }
            }
        }
        out
    }
}

/// The lines an operator reads before a version is written: `+`, `-`, `~` per item.
pub fn diff(
    old_geo: Option<&GeoRef>,
    old: &BTreeMap<String, FleetMeeting>,
    new_geo: Option<&GeoRef>,
    new: &BTreeMap<String, FleetMeeting>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let geo_text = |g: &GeoRef| {
        let files: Vec<String> = g
            .files
            .iter()
            .map(|f| format!("{} ({})", f.name, &f.sha256[..f.sha256.len().min(12)]))
            .collect();
        format!("territory table {} (format {})", files.join(", "), g.format)
    };
    match (old_geo, new_geo) {
        (None, Some(g)) => lines.push(format!("+ {}", geo_text(g))),
        (Some(g), None) => lines.push(format!("- {}", geo_text(g))),
        (Some(a), Some(b)) if a != b => {
            lines.push(format!("~ {} → {}", geo_text(a), geo_text(b)));
        }
        _ => {}
    }
    let empty = FleetMeeting::default();
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let (a, b) = (old.get(name), new.get(name));
        let (sign, a_m, b_m) = match (a, b) {
            (None, Some(b)) => ('+', &empty, b),
            (Some(a), None) => ('-', a, &empty),
            (Some(a), Some(b)) if a != b => ('~', a, b),
            _ => continue,
        };
        lines.push(format!("{sign} meeting {name}"));
        for r in &a_m.rules {
            match b_m.rules.iter().find(|x| x.order == r.order) {
                None => lines.push(format!("-     rule {}", r.describe())),
                Some(x) if x != r => {
                    lines.push(format!("~     rule {} → {}", r.describe(), x.describe()));
                }
                Some(_) => {}
            }
        }
        for r in &b_m.rules {
            if !a_m.rules.iter().any(|x| x.order == r.order) {
                lines.push(format!("+     rule {}", r.describe()));
            }
        }
        for p in a_m.allow.iter().filter(|p| !b_m.allow.contains(p)) {
            lines.push(format!("-     allow {p}"));
        }
        for p in b_m.allow.iter().filter(|p| !a_m.allow.contains(p)) {
            lines.push(format!("+     allow {p}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(order: &str, t: &str) -> FleetRule {
        FleetRule {
            order: order.into(),
            territories: vec![t.parse().expect("territory")],
            prefixes: vec![],
            expires: None,
            dry_run: false,
        }
    }

    fn doc(meetings: BTreeMap<String, FleetMeeting>) -> PolicyDoc {
        PolicyDoc {
            version: 1,
            author: "op@host".into(),
            written: Timestamp::UNIX_EPOCH,
            source: SourceFile {
                file: "p.toml".into(),
                sha256: "00".into(),
            },
            prev: None,
            geo: None,
            meetings,
            hash: String::new(),
        }
        .seal()
    }

    #[test]
    fn hash_covers_content_and_round_trips() {
        let m = FleetMeeting {
            rules: vec![rule("ORD-1", "RU")],
            allow: vec![],
        };
        let a = doc(BTreeMap::from([("standup".to_string(), m.clone())]));
        let json = serde_json::to_string(&a).expect("json");
        let back: PolicyDoc = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.compute_hash(), a.hash);
        let mut b = a.clone();
        b.meetings.get_mut("standup").expect("m").rules[0].dry_run = true;
        assert_ne!(b.compute_hash(), a.hash);
        assert_eq!(a.orders(), vec!["ORD-1".to_string()]);
    }

    #[test]
    fn diff_names_rules_by_order() {
        let old = BTreeMap::from([(
            "standup".to_string(),
            FleetMeeting {
                rules: vec![rule("A", "RU"), rule("B", "BY")],
                allow: vec![],
            },
        )]);
        let new = BTreeMap::from([(
            "standup".to_string(),
            FleetMeeting {
                rules: vec![rule("A", "CN"), rule("C", "IR")],
                allow: vec![],
            },
        )]);
        let lines = diff(None, &old, None, &new);
        assert_eq!(lines[0], "~ meeting standup");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("~     rule order \"A\""))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("-     rule order \"B\""))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("+     rule order \"C\""))
        );
        assert!(diff(None, &new, None, &new).is_empty());
    }
}
