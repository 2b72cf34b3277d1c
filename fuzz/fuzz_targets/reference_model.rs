#![no_main]
//! The independent reference model of issue 17 (`tests/model/`), driven by
//! fuzz input: one byte per choice, at most 64 steps per input.

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

fuzz_target!(|data: &[u8]| {
    model::run_bytes(data);
});
