//! The distinct-source estimate from a rule's HyperLogLog registers (filled by the kernel;
//! layout and hashing in `filter_common::accounting`).

use filter_common::accounting::SKETCH_REGISTERS;

/// Relative standard error of the estimate with 64 registers: 1.04 / √64.
pub const RELATIVE_ERROR: f64 = 0.13;

/// Estimated distinct sources: the HyperLogLog estimate, with linear counting for small
/// cardinalities (fewer than 2.5 × 64 with empty registers left), where the raw estimate
/// is biased. A 64-bit hash needs no large-range correction at these counts.
pub fn estimate(registers: &[u8; SKETCH_REGISTERS]) -> f64 {
    let m = SKETCH_REGISTERS as f64;
    // α for m = 64 (Flajolet et al., 2007).
    let alpha = 0.709;
    let sum: f64 = registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
    let raw = alpha * m * m / sum;
    let empty = registers.iter().filter(|&&r| r == 0).count();
    if raw <= 2.5 * m && empty > 0 {
        m * (m / empty as f64).ln()
    } else {
        raw
    }
}

/// The estimate rounded to a whole number of sources.
pub fn estimate_count(registers: &[u8; SKETCH_REGISTERS]) -> u64 {
    estimate(registers).round() as u64
}

/// Registers as hex, two digits each, for the audit trail.
pub fn registers_hex(registers: &[u8; SKETCH_REGISTERS]) -> String {
    crate::audit::hex(registers)
}

/// Registers back from [`registers_hex`].
pub fn registers_from_hex(text: &str) -> Option<[u8; SKETCH_REGISTERS]> {
    if text.len() != 2 * SKETCH_REGISTERS || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; SKETCH_REGISTERS];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use filter_common::{accounting::SourceSketch, maps::v4_mapped};

    use super::*;

    /// A sketch of `n` distinct addresses, IPv4 and IPv6 mixed, each added three times.
    fn sketch_of(n: u32) -> SourceSketch {
        let mut s = SourceSketch::EMPTY;
        for i in 0..n {
            let addr = if i % 2 == 0 {
                v4_mapped(i.to_be_bytes())
            } else {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                a[12..].copy_from_slice(&i.to_be_bytes());
                a
            };
            for _ in 0..3 {
                s.add(&addr);
            }
        }
        s
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(estimate(&SourceSketch::EMPTY.registers), 0.0);
    }

    #[test]
    fn estimates_within_tolerance() {
        // Small counts run on linear counting, which is close to exact; large ones get the
        // HLL error. Three standard errors keep the test deterministic-safe (the hash is
        // fixed, so the result is too).
        for (n, tolerance) in [
            (10u32, 0.2),
            (1_000, 3.0 * RELATIVE_ERROR),
            (100_000, 3.0 * RELATIVE_ERROR),
        ] {
            let got = estimate(&sketch_of(n).registers);
            let err = (got - f64::from(n)).abs() / f64::from(n);
            eprintln!("{n} distinct sources: estimate {got:.1}");
            assert!(
                err <= tolerance,
                "{n} distinct: estimated {got:.0} ({:.1}% off)",
                err * 100.0
            );
        }
    }

    #[test]
    fn hex_round_trips() {
        let s = sketch_of(500);
        let text = registers_hex(&s.registers);
        assert_eq!(text.len(), 128);
        assert_eq!(registers_from_hex(&text), Some(s.registers));
        assert_eq!(registers_from_hex("zz"), None);
    }
}
