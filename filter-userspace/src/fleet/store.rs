//! Reading and writing the fleet's keys: the policy with its compare-and-swap, the
//! relays' status and liveness.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use super::{RelayStatus, document::PolicyDoc, keys};

/// The current policy and the mod revision it was read at (the compare-and-swap's guard).
pub struct Current {
    pub doc: PolicyDoc,
    pub mod_revision: i64,
}

pub fn decode(bytes: &[u8]) -> anyhow::Result<PolicyDoc> {
    let doc: PolicyDoc =
        serde_json::from_slice(bytes).context("the fleet policy in etcd is not valid JSON")?;
    if doc.compute_hash() != doc.hash {
        return Err(anyhow!(
            "fleet policy version {} does not match its own hash: refusing it",
            doc.version
        ));
    }
    Ok(doc)
}

/// The current policy, if any, and the store's revision at the read.
pub async fn read_policy(client: &mut Client) -> anyhow::Result<(Option<Current>, i64)> {
    let resp = client
        .get(keys::POLICY, None)
        .await
        .context("reading the fleet policy")?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let current = match resp.kvs().first() {
        Some(kv) => Some(Current {
            doc: decode(kv.value())?,
            mod_revision: kv.mod_revision(),
        }),
        None => None,
    };
    Ok((current, revision))
}

/// Writes `doc` as the new current version and into the versions log, if the policy is
/// still as read (`read`: its mod revision, or `None` if there was none). On a conflict,
/// returns the version that was written in between.
pub async fn write_policy(
    client: &mut Client,
    read: Option<i64>,
    doc: &PolicyDoc,
) -> anyhow::Result<Result<i64, Option<PolicyDoc>>> {
    let guard = match read {
        Some(rev) => Compare::mod_revision(keys::POLICY, CompareOp::Equal, rev),
        None => Compare::version(keys::POLICY, CompareOp::Equal, 0),
    };
    let json = serde_json::to_vec(doc).context("encoding the policy")?;
    let txn = Txn::new()
        .when([guard])
        .and_then([
            TxnOp::put(keys::POLICY, json.clone(), None),
            TxnOp::put(keys::version(doc.version), json, None),
        ])
        .or_else([TxnOp::get(keys::POLICY, None)]);
    let resp = client.txn(txn).await.context("writing the fleet policy")?;
    if resp.succeeded() {
        return Ok(Ok(resp.header().map_or(0, |h| h.revision())));
    }
    let winner = resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| decode(kv.value())),
        _ => None,
    });
    Ok(Err(winner.transpose()?))
}

/// What the liveness key holds while the relay's lease lives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Alive {
    pub host: String,
    pub pid: u32,
    pub since: jiff::Timestamp,
}

/// Every relay that ever wrote a status or is alive.
#[derive(Default, Debug, Serialize)]
pub struct RelayView {
    pub status: Option<RelayStatus>,
    pub alive: Option<Alive>,
}

pub async fn read_relays(client: &mut Client) -> anyhow::Result<BTreeMap<String, RelayView>> {
    let mut relays: BTreeMap<String, RelayView> = BTreeMap::new();
    for (key, value) in read_prefix(client, keys::RELAYS, "the relays' keys").await? {
        let Some((relay, kind)) = keys::parse_relay_key(&key) else {
            continue;
        };
        let view = relays.entry(relay.to_string()).or_default();
        // A key that does not parse is shown as absent rather than failing the listing.
        match kind {
            "status" => view.status = serde_json::from_slice(&value).ok(),
            "alive" => view.alive = serde_json::from_slice(&value).ok(),
            _ => {}
        }
    }
    Ok(relays)
}

/// Keys read per request: 5,000 relays' status keys in one response would pass gRPC's
/// 4 MiB message limit.
const PAGE: i64 = 200;

/// Every key under `prefix` with its value, in key order, a page at a time, all pages at
/// the first page's revision (one consistent view).
async fn read_prefix(
    client: &mut Client,
    prefix: &str,
    what: &str,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut end = prefix.as_bytes().to_vec();
    // The prefix's range end: its last byte plus one (`/` → `0`).
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut start = prefix.as_bytes().to_vec();
    let mut revision = 0;
    let mut out = Vec::new();
    loop {
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(PAGE)
            .with_revision(revision);
        let resp = client
            .get(start.clone(), Some(options))
            .await
            .with_context(|| format!("reading {what}"))?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        for kv in resp.kvs() {
            out.push((
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            ));
        }
        match resp.kvs().last() {
            Some(kv) if resp.more() => {
                start = kv.key().to_vec();
                start.push(0);
            }
            _ => return Ok(out),
        }
    }
}

/// Every stored version, in order, and the current policy's bytes.
pub async fn read_history(
    client: &mut Client,
) -> anyhow::Result<(Vec<super::history::Stored>, Option<Vec<u8>>)> {
    let mut versions: Vec<super::history::Stored> =
        read_prefix(client, keys::VERSIONS, "the fleet's versions")
            .await?
            .into_iter()
            .map(|(key, bytes)| super::history::Stored { key, bytes })
            .collect();
    versions.sort_by(|a, b| a.key.cmp(&b.key));
    let current = client
        .get(keys::POLICY, None)
        .await
        .context("reading the fleet policy")?
        .kvs()
        .first()
        .map(|kv| kv.value().to_vec());
    Ok((versions, current))
}
