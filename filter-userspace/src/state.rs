//! The durable record of what operators asked for: meetings, their endpoints and flows,
//! rules with order references, and the geo table's source. The kernel maps are derived
//! from it, so it is enough to rebuild them after a reboot.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{
    endpoint::{Endpoint, Flow},
    territory::Territory,
};

pub const STATE_FILE: &str = "state.json";
const STATE_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub meetings: BTreeMap<String, Meeting>,
    pub geo: Option<GeoRecord>,
    pub attachments: Vec<Attachment>,
    /// Ports meetings share (an SFU's one UDP port): no meeting owns them; a packet finds
    /// its meeting by the ICE ufrag of its flow's STUN Binding request, or by a flow the
    /// control plane bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mux: Vec<Endpoint>,
    /// The flow table's size chosen with `attach --flows` or `upgrade --flows`; `None`:
    /// the default. `restore` and `upgrade` create the table with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meeting {
    /// The kernel's id for this meeting, `1..MAX_SESSIONS`.
    pub session: u32,
    pub created: Timestamp,
    pub endpoints: Vec<Endpoint>,
    /// Always empty on disk: flows name participants' addresses, so they are runtime
    /// bindings (`flow add`, the binding API) kept in the kernel only. A state file an
    /// older version wrote with flows is read without them.
    #[serde(default, skip_serializing, deserialize_with = "forget_flows")]
    pub flows: Vec<Flow>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default, deserialize_with = "crate::prefix::deserialize_list")]
    pub allows: Vec<IpNet>,
}

/// Reads a state file's flows (an older version's) and keeps none of them.
fn forget_flows<'de, D: serde::Deserializer<'de>>(reader: D) -> Result<Vec<Flow>, D::Error> {
    serde::de::IgnoredAny::deserialize(reader)?;
    Ok(Vec::new())
}

/// What one `block` asked for, under one order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub order: String,
    pub territories: Vec<Territory>,
    #[serde(deserialize_with = "crate::prefix::deserialize_list")]
    pub prefixes: Vec<IpNet>,
    pub expires: Option<Timestamp>,
    pub dry_run: bool,
    pub issued: Timestamp,
    pub issued_by: String,
    /// The kernel rule slot (0..8) the rule's territories hold for its whole life, so its
    /// counters are never mixed with another rule's, and which its drop overrides name.
    /// Assigned by `Ctx::commit` ([`crate::rule_slots`]); `None` in older state files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
}

impl Rule {
    /// The territories and prefixes the rule blocks, as operators write them.
    pub fn targets(&self) -> String {
        let territories = self.territories.iter().map(ToString::to_string);
        let prefixes = self.prefixes.iter().map(ToString::to_string);
        territories.chain(prefixes).collect::<Vec<_>>().join(", ")
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// The identity the kernel knows the rule by (`filter_common::Rule::rule_id`), which
    /// its drop overrides name: a hash of what makes it this rule, the order and the
    /// moment it was issued, so it is the same in every process and needs no counter that
    /// a killed command could leave unsaved. Never 0, which marks an empty slot.
    pub fn kernel_id(&self) -> u32 {
        // FNV-1a, 64 bits: stable across builds, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let issued = self.issued.as_nanosecond().to_le_bytes();
        for b in self.order.bytes().chain([0xff]).chain(issued) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let folded = (h ^ (h >> 32)) as u32;
        folded.max(1)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoRecord {
    pub files: Vec<PathBuf>,
    pub format: String,
    pub territory: Option<String>,
    pub loaded: Timestamp,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    pub territories: usize,
    /// The table generation packets use (0 = A, 1 = B).
    pub generation: u32,
    /// How GeoLite2 networks were placed (`geo load --locate-by`), when the table has
    /// GeoLite2 files; a reload places them the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locate_by: Option<crate::geo::LocateBy>,
    /// Each file as it was read, in load order: what the table in force was built from.
    /// Empty in state files written before this was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<GeoSource>,
}

/// One file of the territory table as it was loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoSource {
    pub file: PathBuf,
    /// The format it was read as (detected when `auto` was asked for).
    pub format: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub interface: String,
    pub netns: Option<String>,
    pub mode: String,
    pub attached: Timestamp,
}

impl Attachment {
    /// `eth0` or `eth0@relay-ns`.
    pub fn label(&self) -> String {
        match &self.netns {
            Some(ns) => format!("{}@{ns}", self.interface),
            None => self.interface.clone(),
        }
    }
}

impl State {
    pub fn load(dir: &Path) -> anyhow::Result<State> {
        let path = dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    ..State::default()
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a geofence state file", path.display()))?;
        if state.version != STATE_VERSION {
            bail!(
                "{}: state version {} is not {STATE_VERSION}, the version this geofence reads",
                path.display(),
                state.version
            );
        }
        Ok(state)
    }

    /// Writes the state so that a crash leaves either the old file or the new one.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self).context("serializing state")?;
        crate::durable::write_atomic(dir, STATE_FILE, &json)
    }

    /// A port meetings share that a meeting also owns, as an error message: which meeting
    /// a packet reaches would hang on the address it used.
    pub fn shared_port_conflict(&self) -> Option<String> {
        for port in &self.mux {
            for (name, meeting) in &self.meetings {
                if let Some(owned) = meeting.endpoints.iter().find(|e| e.shares_ports(port)) {
                    return Some(format!(
                        "mux port {port} shares ports with {owned}, which meeting `{name}` \
                         owns; a port is either one meeting's or shared"
                    ));
                }
            }
        }
        None
    }

    /// The name of the meeting with `session`, for messages; `session N` if none has it.
    pub fn name_of(&self, session: u32) -> String {
        self.meetings
            .iter()
            .find(|(_, m)| m.session == session)
            .map_or_else(|| format!("session {session}"), |(name, _)| name.clone())
    }

    pub fn meeting(&self, name: &str) -> anyhow::Result<&Meeting> {
        self.meetings
            .get(name)
            .ok_or_else(|| unknown_meeting(self, name))
    }

    pub fn meeting_mut(&mut self, name: &str) -> anyhow::Result<&mut Meeting> {
        if !self.meetings.contains_key(name) {
            return Err(unknown_meeting(self, name));
        }
        self.meetings
            .get_mut(name)
            .ok_or_else(|| anyhow::anyhow!("unknown meeting `{name}`"))
    }

    /// The lowest session id no meeting uses.
    pub fn free_session(&self) -> Option<u32> {
        let used: std::collections::BTreeSet<u32> =
            self.meetings.values().map(|m| m.session).collect();
        (1..filter_common::maps::capacity::MAX_SESSIONS).find(|id| !used.contains(id))
    }
}

fn unknown_meeting(state: &State, name: &str) -> anyhow::Error {
    if state.meetings.is_empty() {
        anyhow::anyhow!(
            "unknown meeting `{name}`: no meetings exist (add one with `geofence meeting add`)"
        )
    } else {
        let names: Vec<&str> = state.meetings.keys().map(String::as_str).collect();
        anyhow::anyhow!("unknown meeting `{name}` (meetings: {})", names.join(", "))
    }
}

/// Creates the state directory (0700) if needed.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))
}
