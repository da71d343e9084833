//! Anchors: an entry's seq and hash, kept off the relay (in a change ticket). Rewriting the
//! whole chain keeps it consistent with itself and with `audit.head`, but not with an
//! anchor taken before: the entry at the anchor's seq no longer has the anchor's hash.

use std::{fmt, str::FromStr};

use super::Entry;

/// What the anchor line starts with, so that a pasted line is recognisable.
pub const ANCHOR_TAG: &str = "geofence-audit-anchor";

const SHA256: &str = "sha256:";

/// The seq and hash of one entry; written `SEQ:sha256:HASH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    /// 64 lower-case hex digits.
    pub hash: String,
}

impl Anchor {
    pub fn of(entry: &Entry) -> Anchor {
        Anchor {
            seq: entry.seq,
            hash: entry.hash.clone(),
        }
    }

    /// The line `geofence audit anchor` prints.
    pub fn line(&self) -> String {
        format!("{ANCHOR_TAG} {self}")
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{SHA256}{}", self.seq, self.hash)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnchorError {
    #[error(
        "`{0}` is not an anchor: write SEQ:sha256:HASH (HASH: 64 hex digits) as \
         `geofence audit anchor` prints it"
    )]
    Shape(String),
    #[error("`{text}`: the seq `{seq}` is not a whole number from 1")]
    Seq { text: String, seq: String },
    #[error("`{text}`: the hash is not 64 hexadecimal digits (a SHA-256): {why}")]
    Hash { text: String, why: String },
}

impl FromStr for Anchor {
    type Err = AnchorError;

    /// `SEQ:sha256:HASH` or `SEQ:HASH`, with or without the tag the anchor line starts
    /// with; hex digits in either case.
    fn from_str(text: &str) -> Result<Anchor, AnchorError> {
        let shape = || AnchorError::Shape(text.to_string());
        let trimmed = text.trim();
        let body = match trimmed.strip_prefix(ANCHOR_TAG) {
            Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
            Some(_) => return Err(shape()),
            None => trimmed,
        };
        let (seq, hash) = body.split_once(':').ok_or_else(shape)?;
        let hash = hash.strip_prefix(SHA256).unwrap_or(hash);
        let seq = match seq.parse::<u64>() {
            Ok(n) if n >= 1 && seq.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(AnchorError::Seq {
                    text: text.to_string(),
                    seq: seq.to_string(),
                });
            }
        };
        let hash_error = |why: String| AnchorError::Hash {
            text: text.to_string(),
            why,
        };
        if let Some(bad) = hash.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(hash_error(format!("{bad:?} is not a hex digit")));
        }
        if hash.len() != 64 {
            return Err(hash_error(format!("it has {} digits", hash.len())));
        }
        Ok(Anchor {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}
