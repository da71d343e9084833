//! Server ICE ufrags as an SFU's control plane registers them: validated, and keyed as the
//! program reads them from STUN.

use std::{fmt, str::FromStr};

use filter_common::mux::{UFRAG_MAX, UfragKey};

/// A server ufrag: 4 to [`UFRAG_MAX`] characters of `[A-Za-z0-9+/]` (RFC 8839 allows up to
/// 256; the program reads 64, more than any SFU chooses).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ufrag(String);

impl FromStr for Ufrag {
    type Err = String;

    fn from_str(text: &str) -> Result<Ufrag, String> {
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
        {
            return Err(format!(
                "ufrag `{}`: {bad:?} is not an ICE character (A-Z, a-z, 0-9, + and /)",
                text.escape_debug()
            ));
        }
        if text.len() < 4 {
            let s = if text.len() == 1 { "" } else { "s" };
            return Err(format!(
                "ufrag `{text}` has {} character{s}; ICE ufrags have at least 4 (RFC 8839)",
                text.len()
            ));
        }
        if text.len() > UFRAG_MAX {
            return Err(format!(
                "ufrag `{}…` has {} characters; geofence reads ufrags of at most {UFRAG_MAX} \
                 (configure the SFU to choose shorter ones)",
                &text[..16],
                text.len()
            ));
        }
        Ok(Ufrag(text.to_string()))
    }
}

impl fmt::Display for Ufrag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ufrag {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `UFRAGS` key: the bytes, zero-padded.
    pub fn key(&self) -> UfragKey {
        let mut key = UfragKey::EMPTY;
        key.bytes[..self.0.len()].copy_from_slice(self.0.as_bytes());
        key
    }

    /// The ufrag of a `UFRAGS` key, if it holds one.
    pub fn of_key(key: &UfragKey) -> Option<Ufrag> {
        let len = key.bytes.iter().position(|&b| b == 0).unwrap_or(UFRAG_MAX);
        std::str::from_utf8(&key.bytes[..len]).ok()?.parse().ok()
    }

    /// The number a learned flow keeps of the ufrag that bound it: a hash of its bytes
    /// (FNV-1a, stable across builds), never 0. Two ufrags may share one; `explain` then
    /// names both.
    pub fn id(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.0.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ufrags_are_checked_and_keyed_as_the_program_reads_them() {
        let u: Ufrag = "Ab3+/xyz".parse().expect("valid");
        assert_eq!(&u.key().bytes[..9], b"Ab3+/xyz\0");
        assert_eq!(Ufrag::of_key(&u.key()), Some(u.clone()));
        assert_ne!(u.id(), 0);
        let four: Ufrag = "abcd".parse().expect("4 characters");
        let sixty_four: Ufrag = "a".repeat(64).parse().expect("64 characters");
        assert_eq!(Ufrag::of_key(&sixty_four.key()), Some(sixty_four));
        assert_ne!(four.id(), u.id());
        let err = "a".repeat(65).parse::<Ufrag>().unwrap_err();
        assert!(
            err.contains("65 characters") && err.contains("at most 64"),
            "{err}"
        );
        let err = "abc".parse::<Ufrag>().unwrap_err();
        assert!(err.contains("at least 4"), "{err}");
        let err = "ab:cd".parse::<Ufrag>().unwrap_err();
        assert!(err.contains("':'"), "{err}");
    }
}
