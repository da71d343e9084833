//! A monitor record as aya-log's reader expects it, written by the program without
//! aya-log-ebpf's macro: with the macro, which builds the record's header on the stack, the
//! function that writes it took 104 bytes of stack, and the data path already takes 464 of
//! the 512 bytes a program and the functions it calls share. So the record is a constant
//! template, built here with aya-log's own field and argument codes, that the program
//! copies into the log ring a word at a time and into which it writes the two values that
//! change: the packed decision ([`super::Packed`]) and the source address.
//!
//! The text aya-log makes of it: `decision N` or `decision N ADDRESS`, where `N` is the
//! packed decision in decimal and `ADDRESS` an IPv6 address (IPv4 ones mapped).

use aya_log_common::{ArgumentKind, DisplayHint, Level, LogValueLength, RecordFieldKind};

use super::TARGET;

const FILE: &str = "filter-ebpf/src/monitor.rs";
/// The first word of every record's text.
pub const WORD: &str = "decision";
/// The text before the packed decision.
const PREFIX: &str = "decision ";

/// Bytes of a record without the address, and with it.
pub const LEN_PLAIN: usize = header_len() + arg_len(PREFIX.len()) + arg_len(1) + arg_len(8);
pub const LEN_ADDRESS: usize = LEN_PLAIN + arg_len(1) + arg_len(1) + arg_len(16);
/// 8-byte words the template takes (the ring gives each record an 8-byte aligned start).
pub const WORDS: usize = LEN_ADDRESS.div_ceil(8);
/// Where the packed decision's 8 bytes are.
pub const VALUE_AT: usize = LEN_PLAIN - 8;
/// Where the address's 16 bytes are.
pub const ADDRESS_AT: usize = LEN_ADDRESS - 16;

// The template is the record and less than a word of padding.
const _: () = assert!(LEN_ADDRESS <= WORDS * 8 && WORDS * 8 < LEN_ADDRESS + 8);

const LENGTH_FIELD: usize = size_of::<LogValueLength>();

/// One field: its code, its length, its bytes.
const fn arg_len(value: usize) -> usize {
    1 + LENGTH_FIELD + value
}

const fn header_len() -> usize {
    LENGTH_FIELD
        + arg_len(TARGET.len())
        + arg_len(1)
        + arg_len(TARGET.len())
        + arg_len(FILE.len())
        + arg_len(4)
        + arg_len(4)
}

/// Writes one field at `at`; returns where the next goes.
const fn field(out: &mut [u8; WORDS * 8], at: usize, code: u8, value: &[u8]) -> usize {
    out[at] = code;
    let len = (value.len() as LogValueLength).to_ne_bytes();
    out[at + 1] = len[0];
    out[at + 2] = len[1];
    let mut i = 0;
    while i < value.len() {
        out[at + 3 + i] = value[i];
        i += 1;
    }
    at + 3 + value.len()
}

const fn template(address: bool) -> [u8; WORDS * 8] {
    let mut out = [0u8; WORDS * 8];
    let (len, args): (usize, u32) = if address {
        (LEN_ADDRESS, 6)
    } else {
        (LEN_PLAIN, 3)
    };
    let size = (len as LogValueLength).to_ne_bytes();
    out[0] = size[0];
    out[1] = size[1];
    let mut at = LENGTH_FIELD;
    at = field(
        &mut out,
        at,
        RecordFieldKind::Target as u8,
        TARGET.as_bytes(),
    );
    at = field(
        &mut out,
        at,
        RecordFieldKind::Level as u8,
        &[Level::Info as u8],
    );
    at = field(
        &mut out,
        at,
        RecordFieldKind::Module as u8,
        TARGET.as_bytes(),
    );
    at = field(&mut out, at, RecordFieldKind::File as u8, FILE.as_bytes());
    at = field(
        &mut out,
        at,
        RecordFieldKind::Line as u8,
        &1u32.to_ne_bytes(),
    );
    at = field(
        &mut out,
        at,
        RecordFieldKind::NumArgs as u8,
        &args.to_ne_bytes(),
    );
    at = field(&mut out, at, ArgumentKind::Str as u8, PREFIX.as_bytes());
    let default = [DisplayHint::Default as u8];
    at = field(&mut out, at, ArgumentKind::DisplayHint as u8, &default);
    at = field(&mut out, at, ArgumentKind::U64 as u8, &[0; 8]);
    if address {
        at = field(&mut out, at, ArgumentKind::Str as u8, b" ");
        at = field(
            &mut out,
            at,
            ArgumentKind::DisplayHint as u8,
            &[DisplayHint::Ip as u8],
        );
        at = field(&mut out, at, ArgumentKind::ArrU8Len16 as u8, &[0; 16]);
    }
    assert!(at == len);
    out
}

const fn words(bytes: [u8; WORDS * 8]) -> [u64; WORDS] {
    let mut out = [0u64; WORDS];
    let mut i = 0;
    while i < WORDS {
        let b = &bytes;
        let j = i * 8;
        out[i] = u64::from_ne_bytes([
            b[j],
            b[j + 1],
            b[j + 2],
            b[j + 3],
            b[j + 4],
            b[j + 5],
            b[j + 6],
            b[j + 7],
        ]);
        i += 1;
    }
    out
}

/// The record without the address, as words.
pub const PLAIN: [u64; WORDS] = words(template(false));
/// The record with the address, as words.
pub const WITH_ADDRESS: [u64; WORDS] = words(template(true));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_sit_where_the_program_writes_them() {
        let plain = template(false);
        assert_eq!(plain[VALUE_AT - 3], ArgumentKind::U64 as u8);
        assert_eq!(plain[VALUE_AT - 2..VALUE_AT], 8u16.to_ne_bytes());
        let with = template(true);
        assert_eq!(with[ADDRESS_AT - 3], ArgumentKind::ArrU8Len16 as u8);
        assert_eq!(with[ADDRESS_AT - 2..ADDRESS_AT], 16u16.to_ne_bytes());
        assert_eq!(
            u16::from_ne_bytes([with[0], with[1]]) as usize,
            LEN_ADDRESS,
            "the length field counts itself"
        );
    }
}
