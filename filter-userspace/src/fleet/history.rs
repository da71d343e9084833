//! The fleet's own audit trail: every version ever written, each naming the hash of the
//! one before, so that a rewrite of any version (or of the whole chain, against an
//! operator's noted head) shows.

use super::{document::PolicyDoc, keys};

/// One stored version: its key and bytes, as read.
pub struct Stored {
    pub key: String,
    pub bytes: Vec<u8>,
}

/// What is wrong with the chain of `versions` (in key order) and the current policy
/// `current`; empty when it is intact.
pub fn problems(versions: &[Stored], current: Option<&[u8]>) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev: Option<(u64, String)> = None;
    for stored in versions {
        let doc: PolicyDoc = match serde_json::from_slice(&stored.bytes) {
            Ok(doc) => doc,
            Err(e) => {
                out.push(format!("{}: not a policy version ({e})", stored.key));
                prev = None;
                continue;
            }
        };
        let n = doc.version;
        if stored.key != keys::version(n) {
            out.push(format!("{}: holds version {n}", stored.key));
        }
        if doc.compute_hash() != doc.hash {
            out.push(format!("version {n}: its content does not match its hash"));
        }
        match (&prev, &doc.prev) {
            (None, None) if n == 1 => {}
            (Some((p, hash)), Some(named)) if *p + 1 == n && hash == named => {}
            (Some((p, _)), _) if *p + 1 != n => {
                out.push(format!(
                    "version {n} follows version {p}: versions are missing"
                ));
            }
            (None, _) if n != 1 => {
                out.push(format!("version {n}: the versions before it are missing"))
            }
            _ => out.push(format!(
                "version {n}: names {} as the previous version's hash, which is {}",
                doc.prev.as_deref().unwrap_or("none"),
                prev.as_ref().map_or("none", |(_, h)| h.as_str())
            )),
        }
        prev = Some((n, doc.hash.clone()));
    }
    match (current, versions.last()) {
        (Some(cur), Some(last)) if cur != last.bytes.as_slice() => {
            out.push("the current policy is not the last version of the log".to_string());
        }
        (Some(_), None) => out.push("a current policy, but no versions".to_string()),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64, order: &str, prev: Option<String>) -> PolicyDoc {
        let json = serde_json::json!({
            "version": n, "author": "op", "written": "2026-12-06T00:00:00Z",
            "source": { "file": "p.toml", "sha256": "00" }, "prev": prev, "geo": null,
            "meetings": { "m": { "rules": [{ "order": order, "territories": ["XA"], "expires": null }] } },
        });
        serde_json::from_value::<PolicyDoc>(json)
            .expect("a version")
            .seal()
    }

    fn stored(doc: &PolicyDoc) -> Stored {
        Stored {
            key: keys::version(doc.version),
            bytes: serde_json::to_vec(doc).expect("json"),
        }
    }

    #[test]
    fn a_rewritten_version_breaks_the_chain() {
        let v1 = version(1, "ORD-1", None);
        let v2 = version(2, "ORD-2", Some(v1.hash.clone()));
        let v3 = version(3, "ORD-3", Some(v2.hash.clone()));
        let chain = [stored(&v1), stored(&v2), stored(&v3)];
        let head = chain[2].bytes.clone();
        assert!(problems(&chain, Some(&head)).is_empty());
        // Content changed, hash left: caught at that version.
        let mut edited = v2.clone();
        edited.meetings.get_mut("m").expect("m").rules[0].order = "ORD-X".into();
        let tampered = [stored(&v1), stored(&edited), stored(&v3)];
        let found = problems(&tampered, Some(&head));
        assert!(
            found.iter().any(|p| p.contains("version 2: its content")),
            "{found:?}"
        );
        // Content changed and hashed again: caught at the next version's link.
        let resealed = edited.seal();
        let relinked = [stored(&v1), stored(&resealed), stored(&v3)];
        let found = problems(&relinked, Some(&head));
        assert!(
            found.iter().any(|p| p.contains("version 3: names")),
            "{found:?}"
        );
        // A version removed.
        let gap = [stored(&v1), stored(&v3)];
        let found = problems(&gap, Some(&head));
        assert!(
            found.iter().any(|p| p.contains("versions are missing")),
            "{found:?}"
        );
    }
}
