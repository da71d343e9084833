//! STUN messages (RFC 8489) as ICE agents send them, and broken ones: the payloads of the
//! UDP frames that meetings on a shared port are told apart by.

/// Attribute types the tests use.
pub mod attr {
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLING: u16 = 0x802a;
    pub const GOOG_NETWORK_INFO: u16 = 0xc057;
}

pub const BINDING_REQUEST: u16 = 0x0001;
pub const BINDING_SUCCESS: u16 = 0x0101;
pub const BINDING_INDICATION: u16 = 0x0011;
const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// A STUN message: a type and attributes in order; [`Message::bytes`] pads each value to
/// 4 bytes and writes the length.
#[derive(Clone, Debug)]
pub struct Message {
    pub kind: u16,
    pub attributes: Vec<(u16, Vec<u8>)>,
    pub transaction: [u8; 12],
}

impl Message {
    /// A Binding request as browsers send it: USERNAME first, then the usual attributes.
    pub fn binding_request(username: &str) -> Message {
        Message::request_with(vec![(attr::USERNAME, username.as_bytes().to_vec())])
            .with_usual_attributes()
    }

    /// A Binding request with exactly these attributes.
    pub fn request_with(attributes: Vec<(u16, Vec<u8>)>) -> Message {
        Message {
            kind: BINDING_REQUEST,
            attributes,
            transaction: *b"geofence-txn",
        }
    }

    /// PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY and FINGERPRINT after
    /// what is there.
    pub fn with_usual_attributes(mut self) -> Message {
        self.attributes.extend([
            (attr::PRIORITY, vec![0x6e, 0x00, 0x1e, 0xff]),
            (attr::ICE_CONTROLLING, vec![1, 2, 3, 4, 5, 6, 7, 8]),
            (attr::USE_CANDIDATE, vec![]),
            (attr::MESSAGE_INTEGRITY, vec![0xaa; 20]),
            (attr::FINGERPRINT, vec![0xde, 0xad, 0xbe, 0xef]),
        ]);
        self
    }

    pub fn kind(mut self, kind: u16) -> Message {
        self.kind = kind;
        self
    }

    pub fn transaction(mut self, transaction: [u8; 12]) -> Message {
        self.transaction = transaction;
        self
    }

    /// The wire bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in &self.attributes {
            body.extend(kind.to_be_bytes());
            body.extend((value.len() as u16).to_be_bytes());
            body.extend(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut out = Vec::new();
        out.extend(self.kind.to_be_bytes());
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(COOKIE);
        out.extend(self.transaction);
        out.extend(body);
        out
    }
}
