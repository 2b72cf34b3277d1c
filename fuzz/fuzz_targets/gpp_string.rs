#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lethedb::fuzz_support::gpp_string(data);
});
