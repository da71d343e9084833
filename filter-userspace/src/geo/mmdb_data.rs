//! Checks a MaxMind DB value before the maxminddb crate decodes it.
//!
//! The crate's decoder (0.24) follows pointers and descends into maps and arrays by
//! recursion without a limit: a pointer cycle, or deep nesting, in a corrupt file overflows
//! the stack, and a stack overflow aborts the process; `catch_unwind` cannot stop it (found
//! by `cargo xtask fuzz`, target geo_mmdb). Fan-out through pointers can also make a small
//! file decode for hours. So every value the crate will decode (the metadata, each distinct
//! record) is first walked here, bounded: only values the crate reads the same way pass,
//! nested at most [`MAX_DEPTH`] deep and expanding to at most [`MAX_VALUES`] values.

use std::collections::HashMap;

/// Real databases nest records about five levels deep (record, names map, string, ...).
pub(crate) const MAX_DEPTH: u32 = 32;
/// A GeoIP2 country record expands to about a hundred values.
pub(crate) const MAX_VALUES: u64 = 100_000;

const POINTER: u8 = 1;
const MAP: u8 = 7;
const ARRAY: u8 = 11;

/// How big a value is once every pointer in it is followed.
#[derive(Clone, Copy)]
struct Shape {
    values: u64,
    /// Levels of nesting, 1 for a scalar.
    height: u32,
}

struct Checker<'a> {
    /// The section the decoder reads, which pointers are relative to.
    buf: &'a [u8],
    /// Shapes of pointer targets already checked.
    seen: HashMap<usize, Shape>,
}

/// Checks the value at `offset` of `section` (the data section, or the metadata).
pub(crate) fn check(section: &[u8], offset: usize) -> Result<(), String> {
    let mut checker = Checker {
        buf: section,
        seen: HashMap::new(),
    };
    checker.value(offset, 1).map(|_| ())
}

impl Checker<'_> {
    fn bytes(&self, at: usize, len: usize) -> Result<&[u8], String> {
        at.checked_add(len)
            .and_then(|end| self.buf.get(at..end))
            .ok_or_else(|| format!("a value at data offset {at} runs past the end of its section"))
    }

    /// The type, size and payload offset of the value at `at`.
    fn header(&self, at: usize) -> Result<(u8, usize, usize), String> {
        let ctrl = self.bytes(at, 1)?[0];
        let mut pos = at + 1;
        let mut kind = ctrl >> 5;
        if kind == 0 {
            kind = match self.bytes(pos, 1)?[0] {
                ext @ 1..=8 => ext + 7,
                ext => return Err(format!("unknown extended data type {ext} at offset {at}")),
            };
            pos += 1;
        }
        let size = usize::from(ctrl & 0x1f);
        if kind == POINTER {
            // The crate reads extra size bytes for these, unlike the spec; writers never
            // produce them.
            if size >= 29 {
                return Err(format!("malformed pointer at data offset {at}"));
            }
            return Ok((kind, size, pos));
        }
        let be = |b: &[u8]| b.iter().fold(0, |a, &b| a << 8 | usize::from(b));
        let (size, extra) = match size {
            0..29 => (size, 0),
            29 => (29 + be(self.bytes(pos, 1)?), 1),
            30 => (285 + be(self.bytes(pos, 2)?), 2),
            _ => (65_821 + be(self.bytes(pos, 3)?), 3),
        };
        pos += extra;
        Ok((kind, size, pos))
    }

    /// Checks the value at `at`, `depth` levels down; returns its shape and where it ends.
    fn value(&mut self, at: usize, depth: u32) -> Result<(Shape, usize), String> {
        let too_deep =
            || format!("data nested more than {MAX_DEPTH} levels deep (a pointer cycle?)");
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let (kind, size, mut pos) = self.header(at)?;
        let leaf = Shape {
            values: 1,
            height: 1,
        };
        let shape = match kind {
            POINTER => {
                let len = ((size >> 3) & 3) + 1;
                let base = if len == 4 { 0 } else { size & 7 };
                let bytes = self.bytes(pos, len)?;
                let raw = bytes.iter().fold(base, |a, &b| a << 8 | usize::from(b));
                pos += len;
                let target = raw + [0, 0, 2048, 526_336, 0][len];
                let inner = match self.seen.get(&target) {
                    Some(&shape) => shape,
                    None => {
                        if self.header(target)?.0 == POINTER {
                            return Err(format!("pointer to a pointer at data offset {at}"));
                        }
                        let (shape, _) = self.value(target, depth + 1)?;
                        self.seen.insert(target, shape);
                        shape
                    }
                };
                if depth + inner.height > MAX_DEPTH {
                    return Err(too_deep());
                }
                Shape {
                    values: inner.values + 1,
                    height: inner.height + 1,
                }
            }
            MAP | ARRAY => {
                let items = if kind == MAP { size * 2 } else { size };
                let mut shape = Shape {
                    values: 1,
                    height: 1,
                };
                for _ in 0..items {
                    let (item, end) = self.value(pos, depth + 1)?;
                    pos = end;
                    shape.values += item.values;
                    shape.height = shape.height.max(item.height + 1);
                    if shape.values > MAX_VALUES {
                        break;
                    }
                }
                shape
            }
            // Boolean: the size is the value.
            14 if size <= 1 => leaf,
            2 | 4 | 3 | 5 | 6 | 8 | 9 | 10 | 15 => {
                let max = match kind {
                    3 => 8,
                    15 => 4,
                    5 => 2,
                    6 | 8 => 4,
                    9 => 8,
                    10 => 16,
                    _ => usize::MAX,
                };
                if size > max {
                    return Err(format!(
                        "a value of type {kind} has size {size} at offset {at}"
                    ));
                }
                self.bytes(pos, size)?;
                pos += size;
                leaf
            }
            _ => return Err(format!("unsupported data type {kind} at offset {at}")),
        };
        if shape.values > MAX_VALUES {
            return Err(format!("a value expands to more than {MAX_VALUES} values"));
        }
        Ok((shape, pos))
    }
}

#[cfg(test)]
#[path = "mmdb_data_tests.rs"]
mod tests;
