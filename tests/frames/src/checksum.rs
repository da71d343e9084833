//! The Internet checksum (RFC 1071), as IPv4, UDP, TCP and ICMP headers carry it.

/// The Internet checksum of the concatenation of `parts` (each of even length but the last).
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for byte in parts.iter().flat_map(|p| p.iter().copied()) {
        match odd.take() {
            None => odd = Some(byte),
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
        }
    }
    if let Some(high) = odd {
        sum += u32::from(high) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
