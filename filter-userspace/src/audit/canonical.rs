//! The one form a line of the trail may take: the canonical serialization of the entry it
//! hashes, byte for byte. A line a JSON reader accepts in another form (whitespace, another
//! key order, `\u` escapes, a duplicate or unknown key, a number written otherwise, a BOM, a
//! CR) could mean one thing to one reader and another to the next — serde_json keeps the
//! last of two equal keys, other readers the first — so such a line is refused with the
//! first byte that differs and why.

use std::cell::RefCell;

use serde_json::Value;

use super::{Entry, duplicates::parse_noting_duplicates};

/// The fields of an entry, in the order its line writes them.
const FIELDS: [&str; 8] = [
    "seq", "time", "operator", "host", "action", "details", "prev", "hash",
];

const BOM: &[u8] = b"\xef\xbb\xbf";

/// JSON with object keys sorted at every level and no whitespace: the same value always
/// gives the same bytes, whatever order its keys were built in.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A string as serde_json writes it: `"` `\` and control characters escaped, nothing else.
fn write_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

impl Entry {
    /// The line this entry is stored as, without its newline: the fields in [`FIELDS`]
    /// order, `details` canonical. Lines written before this function existed (by
    /// `serde_json::to_string`, whose maps are sorted) have exactly these bytes.
    pub fn canonical_line(&self) -> String {
        let mut out = format!("{{\"seq\":{}", self.seq);
        for (key, text) in [
            ("time", &self.time),
            ("operator", &self.operator),
            ("host", &self.host),
            ("action", &self.action),
        ] {
            out.push_str(&format!(",\"{key}\":"));
            write_string(text, &mut out);
        }
        out.push_str(",\"details\":");
        write_canonical(&self.details, &mut out);
        out.push_str(",\"prev\":");
        write_string(&self.prev, &mut out);
        out.push_str(",\"hash\":");
        write_string(&self.hash, &mut out);
        out.push('}');
        out
    }
}

/// Why a line is not exactly its entry's canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The first byte of the line (from 0) that differs from the canonical form, when the
    /// line parsed far enough to have one.
    pub offset: Option<usize>,
    pub what: String,
}

/// What one line of the trail holds. A line that is an entry but not in canonical form
/// carries the entry as serde_json reads it (the last of duplicate keys): the chain check
/// goes on with it, so that one bad line is reported once.
#[derive(Debug)]
pub enum LineCheck {
    Canonical(Entry),
    NotCanonical(Entry, Fault),
    NotEntry(Fault),
}

impl LineCheck {
    pub fn entry(self) -> Option<Entry> {
        match self {
            LineCheck::Canonical(entry) | LineCheck::NotCanonical(entry, _) => Some(entry),
            LineCheck::NotEntry(_) => None,
        }
    }
}

/// Checks one line (without its `\n`).
pub fn check_line(bytes: &[u8]) -> LineCheck {
    let not_entry = |offset, what: String| LineCheck::NotEntry(Fault { offset, what });
    if bytes.is_empty() {
        return not_entry(Some(0), "an empty line; the trail has none".to_string());
    }
    // Parse past a BOM so that the chain goes on; the BOM itself is the fault.
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to() + (bytes.len() - body.len());
            return not_entry(Some(at), "not UTF-8".to_string());
        }
    };
    let duplicates = RefCell::new(Vec::new());
    let value = match parse_noting_duplicates(text, &duplicates) {
        Ok(value) => value,
        Err(e) => {
            // serde_json counts columns in bytes, from 1.
            let at = (e.line() == 1 && e.column() > 0)
                .then(|| e.column() - 1 + (bytes.len() - body.len()));
            return not_entry(
                at,
                format!("not a complete JSON object ({e}); truncated or edited"),
            );
        }
    };
    let Value::Object(map) = &value else {
        return not_entry(None, "not a JSON object".to_string());
    };
    if !map.contains_key("hash") {
        return not_entry(
            None,
            "no `hash`: a legacy entry written before the audit trail was hash-chained \
             (move the old lines to another file to start a verifiable trail)"
                .to_string(),
        );
    }
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !FIELDS.contains(k))
        .collect();
    let entry = match serde_json::from_value::<Entry>(value.clone()) {
        Ok(entry) => entry,
        Err(e) => return not_entry(None, format!("not an audit entry: {e}")),
    };
    let canonical = entry.canonical_line();
    let offset = first_difference(bytes, canonical.as_bytes());
    let what = if bytes.starts_with(BOM) {
        Some(
            "a byte-order mark (EF BB BF) before the entry; the trail is UTF-8 without one"
                .to_string(),
        )
    } else if let Some(key) = duplicates.borrow().first() {
        Some(format!(
            "the key `{key}` appears twice: readers that keep the first and readers that \
             keep the last would see different entries"
        ))
    } else if !unknown.is_empty() {
        Some(format!(
            "unknown field{} `{}`: an entry has {} and nothing else",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join("`, `"),
            FIELDS.join(", ")
        ))
    } else {
        offset.map(|at| describe(bytes, canonical.as_bytes(), at))
    };
    match what {
        None => LineCheck::Canonical(entry),
        Some(what) => LineCheck::NotCanonical(
            entry,
            Fault {
                offset,
                what: format!("not the canonical form of its entry: {what}"),
            },
        ),
    }
}

fn first_difference(line: &[u8], canonical: &[u8]) -> Option<usize> {
    let common = line
        .iter()
        .zip(canonical)
        .take_while(|(a, b)| a == b)
        .count();
    (common < line.len().max(canonical.len())).then_some(common)
}

/// What the first difference, at `at`, is.
fn describe(line: &[u8], canonical: &[u8], at: usize) -> String {
    let found = line.get(at).copied();
    // Both sides show from the start of the token where they differ, when it is a number.
    let mut from = at;
    let kind = match (found, canonical.get(at).copied()) {
        (Some(b'\r'), _) => "a carriage return (CRLF line end); lines end with LF alone",
        (Some(b' ' | b'\t'), _) => "whitespace outside a string; the canonical form has none",
        (Some(_), None) => "bytes after the end of the entry",
        (None, _) => "the line ends before the entry does",
        (Some(b'\\'), Some(w)) if w != b'\\' => {
            "a character written as an escape sequence that the canonical form writes as is"
        }
        (Some(_), Some(b'\\')) => "a character written as is that the canonical form escapes",
        _ if in_number(line, at) || in_number(canonical, at) => {
            while from > 0 && is_number_byte(line[from - 1]) {
                from -= 1;
            }
            "a number not written in its canonical form (digits alone for an integer, no \
             exponent, no sign on zero)"
        }
        _ if in_key(canonical, at) => "keys in another order than the canonical form's",
        _ => "it differs from the canonical form",
    };
    format!(
        "{kind}: `{}` where the canonical form has `{}`",
        snippet(line, from),
        snippet(canonical, from)
    )
}

/// A few bytes from `at`, control characters escaped.
fn snippet(bytes: &[u8], at: usize) -> String {
    let end = (at + 16).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[at.min(end)..end]);
    let shown: String = text
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{feff}' {
                c.escape_debug().collect()
            } else {
                c.to_string()
            }
        })
        .collect();
    if end < bytes.len() {
        format!("{shown}…")
    } else if shown.is_empty() {
        "(end of line)".to_string()
    } else {
        shown
    }
}

fn is_number_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Whether `at` falls in a number token (outside strings, which the callers' bytes agree on
/// up to `at`).
fn in_number(bytes: &[u8], at: usize) -> bool {
    let mut start = at.min(bytes.len());
    while start > 0 && is_number_byte(bytes[start - 1]) {
        start -= 1;
    }
    let starts_number = bytes
        .get(start)
        .is_some_and(|&b| b.is_ascii_digit() || b == b'-');
    let after_value_start = start > 0 && matches!(bytes[start - 1], b':' | b',' | b'[');
    starts_number
        && after_value_start
        && (start < at || bytes.get(at).copied().is_some_and(is_number_byte))
}

/// Whether `at` falls in an object key of well-formed JSON `bytes`.
fn in_key(bytes: &[u8], at: usize) -> bool {
    let (mut in_string, mut escaped, mut start) = (false, false, 0);
    for (i, &b) in bytes.iter().enumerate().take(at + 1) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' && i < at {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            start = i;
        }
    }
    if !in_string || start == 0 || !matches!(bytes[start - 1], b'{' | b',') {
        return false;
    }
    // A string after `{` or `,` is a key in an object, a value in an array: a key is
    // followed by `:`.
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return bytes.get(i + 1) == Some(&b':');
        }
    }
    false
}
