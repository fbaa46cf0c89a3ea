//! Fuzz target: the `items_csv` parser. See fuzz/README.md.
#![no_main]
use libfuzzer_sys::fuzz_target;
use metarec::data::fuzz::{run_one, FuzzTarget};

fuzz_target!(|data: &[u8]| {
    // Errors are fine; panics (including broken invariants) are bugs.
    let _ = run_one(FuzzTarget::ItemsCsv, data);
});
