//! A built frame: its bytes and where each header lies, cut at any length or inside a
//! named header.

use std::fmt;
use std::ops::Range;

/// One header of a [`Frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// `ethernet`, `vlan`, `ipv4`, `ipv4 options`, `ipv6`, `hop-by-hop`, `routing`,
    /// `dest-opts`, `fragment`, `auth`, `udp`, `tcp`, `icmp`, or a non-IP frame's name.
    pub name: String,
    /// Where it lies in the full frame.
    pub range: Range<usize>,
}

/// A built packet: its bytes and where each header lies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Headers in wire order (the payload is not one).
    pub layers: Vec<Layer>,
    /// The length of the headers before any truncation: the offset of the payload.
    pub headers_len: usize,
}

impl Frame {
    pub(crate) fn push_layer(&mut self, name: &str, range: Range<usize>) {
        self.layers.push(Layer {
            name: name.to_string(),
            range,
        });
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The first `len` bytes. Layers keep their full-frame ranges, so a test can still tell
    /// which header a cut fell into ([`Frame::layer_at`]).
    pub fn truncated(&self, len: usize) -> Frame {
        assert!(
            len <= self.len(),
            "cutting {len} bytes of a {}-byte frame",
            self.len()
        );
        Frame {
            bytes: self.bytes[..len].to_vec(),
            layers: self.layers.clone(),
            headers_len: self.headers_len,
        }
    }

    /// The `n`th (0-based) header named `name`.
    pub fn nth_layer(&self, name: &str, n: usize) -> &Layer {
        self.layers
            .iter()
            .filter(|l| l.name == name)
            .nth(n)
            .unwrap_or_else(|| panic!("the frame has no header {name} #{n}: {self}"))
    }

    /// The first header named `name`.
    pub fn layer(&self, name: &str) -> &Layer {
        self.nth_layer(name, 0)
    }

    /// The frame cut `keep` bytes into its first header named `name`.
    pub fn cut_inside(&self, name: &str, keep: usize) -> Frame {
        let range = self.layer(name).range.clone();
        assert!(
            keep < range.len(),
            "a cut {keep} bytes into the {}-byte {name} header is not inside it",
            range.len()
        );
        self.truncated(range.start + keep)
    }

    /// The header that byte `offset` belongs to, or `None` past the headers.
    pub fn layer_at(&self, offset: usize) -> Option<&Layer> {
        self.layers.iter().find(|l| l.range.contains(&offset))
    }

    /// Whether the frame was cut before its headers were complete.
    pub fn headers_cut(&self) -> bool {
        self.len() < self.headers_len
    }
}

impl fmt::Display for Frame {
    /// `ethernet(14) vlan(4) ipv4(20) udp(8) +16` for a whole frame; a cut frame names the
    /// header it was cut in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.len();
        let mut first = true;
        for layer in &self.layers {
            if layer.range.start >= len {
                break;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if layer.range.end <= len {
                write!(f, "{}({})", layer.name, layer.range.len())?;
            } else {
                write!(
                    f,
                    "{}({}/{})",
                    layer.name,
                    len - layer.range.start,
                    layer.range.len()
                )?;
            }
        }
        if len > self.headers_len {
            write!(f, " +{}", len - self.headers_len)?;
        }
        Ok(())
    }
}
