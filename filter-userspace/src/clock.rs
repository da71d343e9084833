//! The wall clock as records people read show it: to the second. The program's clock, and
//! the two read together to convert expiries, are in [`crate::expiry`].

use jiff::Timestamp;

/// The current time to the second, for records people read.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now)
}

/// `t` to the second, for display.
pub fn rounded(t: Timestamp) -> Timestamp {
    t.round(jiff::Unit::Second).unwrap_or(t)
}
