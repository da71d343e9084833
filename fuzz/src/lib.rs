//! Support for targets whose code catches panics on purpose.
//!
//! The MMDB loader runs the maxminddb decoder under `catch_unwind`, because that crate
//! slices unchecked on corrupt files; a corrupt file is then an error, not a crash. But
//! libfuzzer-sys installs a panic hook that aborts before any unwinding, which would report
//! every such caught panic as a crash. These targets replace the hook with one that only
//! remembers the message, and abort themselves when a panic escapes the code under test.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Call from `init:` in `fuzz_target!`, after libfuzzer-sys has installed its hook.
pub fn let_caught_panics_unwind() {
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
    }));
}

/// Runs `body`; a panic that escapes it is printed and aborts, which libFuzzer reports as a
/// crash and saves the input for.
pub fn run<T>(body: impl FnOnce() -> T) {
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        LAST_PANIC.with(|last| eprintln!("panic escaped the code under test: {}", last.borrow()));
        std::process::abort();
    }
}
