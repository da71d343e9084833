//! IPv6 extension headers: their sizes, next-header numbers and wire layout.

use crate::ipproto;

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options; `len` is the Hdr Ext Len field: `(len + 1) * 8` bytes.
    HopByHop { len: u8 },
    /// A routing header with Segments Left 0 (so a receiver ignores its type); `(len + 1) * 8`
    /// bytes.
    Routing { len: u8 },
    /// Destination options; `(len + 1) * 8` bytes.
    DestOpts { len: u8 },
    /// A fragment header: `offset` in 8-byte units (13 bits), `more` the M flag. 8 bytes.
    Fragment { offset: u16, more: bool },
    /// An authentication header; `len` is the Payload Len field: `(len + 2) * 4` bytes.
    Auth { len: u8 },
}

impl Ext {
    /// The smallest header of each kind (an AH with a 96-bit ICV, 24 bytes).
    pub const HOP_BY_HOP: Ext = Ext::HopByHop { len: 0 };
    pub const ROUTING: Ext = Ext::Routing { len: 0 };
    pub const DEST_OPTS: Ext = Ext::DestOpts { len: 0 };
    pub const AUTH: Ext = Ext::Auth { len: 4 };
    /// The first fragment of a datagram: offset 0, more fragments follow.
    pub const FIRST_FRAGMENT: Ext = Ext::Fragment {
        offset: 0,
        more: true,
    };

    /// Its next-header number.
    pub fn number(self) -> u8 {
        match self {
            Ext::HopByHop { .. } => ipproto::HOP_BY_HOP,
            Ext::Routing { .. } => ipproto::ROUTING,
            Ext::DestOpts { .. } => ipproto::DEST_OPTS,
            Ext::Fragment { .. } => ipproto::FRAGMENT,
            Ext::Auth { .. } => ipproto::AUTH,
        }
    }

    /// Its length on the wire.
    pub fn size(self) -> usize {
        match self {
            Ext::HopByHop { len } | Ext::Routing { len } | Ext::DestOpts { len } => {
                (usize::from(len) + 1) * 8
            }
            Ext::Fragment { .. } => 8,
            Ext::Auth { len } => (usize::from(len) + 2) * 4,
        }
    }

    /// The layer name used in [`Frame::layers`].
    pub fn name(self) -> &'static str {
        match self {
            Ext::HopByHop { .. } => "hop-by-hop",
            Ext::Routing { .. } => "routing",
            Ext::DestOpts { .. } => "dest-opts",
            Ext::Fragment { .. } => "fragment",
            Ext::Auth { .. } => "auth",
        }
    }

    pub(crate) fn write(self, next: u8, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Ext::HopByHop { len } | Ext::DestOpts { len } => {
                out.extend([next, len]);
                pad_options(out, start + self.size());
            }
            Ext::Routing { len } => {
                // Routing type 253 (experimental), Segments Left 0, then type-specific data.
                out.extend([next, len, 253, 0]);
                out.resize(start + self.size(), 0);
            }
            Ext::Fragment { offset, more } => {
                assert!(offset < 1 << 13, "fragment offset {offset} exceeds 13 bits");
                let field = (offset << 3) | u16::from(more);
                out.extend([next, 0]);
                out.extend(field.to_be_bytes());
                out.extend(0x0bad_cafe_u32.to_be_bytes());
            }
            Ext::Auth { len } => {
                assert!(len >= 1, "an AH is at least 12 bytes (Payload Len 1)");
                out.extend([next, len, 0, 0]);
                out.extend(0x0000_1000_u32.to_be_bytes()); // SPI
                out.extend(1_u32.to_be_bytes()); // sequence number
                out.resize(start + self.size(), 0x5a); // ICV
            }
        }
        debug_assert_eq!(out.len(), start + self.size());
    }
}

/// Fills an options header up to `end` with one PadN option (or Pad1 bytes).
fn pad_options(out: &mut Vec<u8>, end: usize) {
    let gap = end - out.len();
    match gap {
        0 => {}
        1 => out.push(0),
        _ => {
            out.extend([1, (gap - 2) as u8]);
            out.resize(end, 0);
        }
    }
}
