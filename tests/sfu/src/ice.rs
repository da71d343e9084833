//! ICE helpers the SFU needs outside str0m: fresh credentials it chooses itself (so that it can
//! register the ufrag before anyone sees the answer), and the server ufrag of a STUN request,
//! which routes the request to its transport on the shared socket.

use rand::Rng as _;
use str0m::IceCreds;

/// RFC 8839 `ice-char`: the only characters a ufrag or password may hold.
const ICE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Random characters in a generated ufrag after the prefix: 16 of 62 is about 95 bits, far above
/// the 24 bits RFC 8445 asks for, so ufrags of different participants never collide in practice.
const UFRAG_RANDOM_CHARS: usize = 16;
/// RFC 8445 asks for at least 128 bits in the password; 24 characters of 62 give about 142.
const PASSWORD_CHARS: usize = 24;

/// The longest ufrag the geofence binding API takes (RFC 8839 would allow 256): the relay keys
/// its table by ufrag and keeps that key short.
pub const MAX_UFRAG_LEN: usize = 64;

/// Checks a `--ufrag-prefix`: ice-chars only, and short enough that prefix plus the random part
/// stays a valid ufrag.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if let Some(bad) = prefix.bytes().find(|b| !ICE_CHARS.contains(b)) {
        return Err(format!(
            "the ufrag prefix has {:?}, but ICE allows only [A-Za-z0-9+/]",
            char::from(bad)
        ));
    }
    if prefix.len() + UFRAG_RANDOM_CHARS > MAX_UFRAG_LEN {
        return Err(format!(
            "the ufrag prefix is {} characters; at most {} leave room for the random part",
            prefix.len(),
            MAX_UFRAG_LEN - UFRAG_RANDOM_CHARS
        ));
    }
    Ok(())
}

/// New server credentials: `prefix` and 16 random alphanumerics as ufrag, 24 as password.
/// Alphanumerics only in the random part, because some stacks mishandle `+` and `/`.
pub fn fresh_creds(prefix: &str) -> IceCreds {
    let mut rng = rand::rng();
    let mut random = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(ICE_CHARS[rng.random_range(0..62)]))
            .collect()
    };
    IceCreds {
        ufrag: format!("{prefix}{}", random(UFRAG_RANDOM_CHARS)),
        pass: random(PASSWORD_CHARS),
    }
}

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The server ufrag of a STUN message: the part of its USERNAME before the first `:` (RFC 8445
/// 7.2.2: `server-ufrag:client-ufrag` in requests sent to us). `None` for anything that is not a
/// well-formed STUN message with a USERNAME; every length comes from the peer, so each is checked.
pub fn stun_server_ufrag(packet: &[u8]) -> Option<&str> {
    let header = packet.get(..STUN_HEADER_LEN)?;
    // RFC 7983's first-byte ranges keep DTLS, RTP and RTCP out; the cookie makes it certain.
    if !is_stun(header) || header[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attrs = packet.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|ufrag| !ufrag.is_empty());
        }
        // Values are padded to a multiple of four bytes.
        let padded = 4 + len.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

/// Whether a datagram is STUN rather than DTLS, SRTP or SRTCP (RFC 7983: first byte 0..=3).
pub fn is_stun(packet: &[u8]) -> bool {
    packet.first().is_some_and(|&b| b < 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_request(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut packet = vec![0x00, 0x01];
        packet.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        packet.extend_from_slice(&STUN_MAGIC_COOKIE);
        packet.extend_from_slice(&[7; 12]);
        packet.extend_from_slice(&body);
        packet
    }

    #[test]
    fn server_ufrag_is_the_username_before_the_colon() {
        let packet = stun_request(&[(0x0024, &[0, 0, 0, 1]), (ATTR_USERNAME, b"srv1:cli")]);
        assert_eq!(stun_server_ufrag(&packet), Some("srv1"));
        // Padding of an odd-length attribute before the USERNAME.
        let packet = stun_request(&[(0x8022, b"abc"), (ATTR_USERNAME, b"s+/9:c")]);
        assert_eq!(stun_server_ufrag(&packet), Some("s+/9"));
    }

    #[test]
    fn no_ufrag_from_non_stun_or_truncated_packets() {
        assert_eq!(stun_server_ufrag(&[]), None);
        assert_eq!(stun_server_ufrag(&stun_request(&[(0x0024, &[0; 4])])), None);
        let mut dtls = stun_request(&[(ATTR_USERNAME, b"a:b")]);
        dtls[0] = 22;
        assert_eq!(stun_server_ufrag(&dtls), None);
        let mut cut = stun_request(&[(ATTR_USERNAME, b"abcd:efgh")]);
        cut.truncate(cut.len() - 2);
        assert_eq!(stun_server_ufrag(&cut), None);
        let mut lying = stun_request(&[(ATTR_USERNAME, b"abcd:efgh")]);
        lying[STUN_HEADER_LEN + 3] = 200;
        assert_eq!(stun_server_ufrag(&lying), None);
        assert_eq!(
            stun_server_ufrag(&stun_request(&[(ATTR_USERNAME, b":x")])),
            None
        );
    }

    #[test]
    fn fresh_creds_are_valid_and_distinct() {
        let a = fresh_creds("gf");
        let b = fresh_creds("gf");
        assert_ne!(a.ufrag, b.ufrag);
        for creds in [&a, &b] {
            assert!(creds.ufrag.starts_with("gf"));
            assert_eq!(creds.ufrag.len(), 18);
            assert_eq!(creds.pass.len(), PASSWORD_CHARS);
            assert!(creds.ufrag.bytes().all(|b| ICE_CHARS.contains(&b)));
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("meet+/1").is_ok());
        assert!(check_prefix("a:b").is_err());
        assert!(check_prefix(&"x".repeat(MAX_UFRAG_LEN)).is_err());
    }
}
