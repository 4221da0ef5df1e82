#![no_main]
//! The entry `api_request` of `fuzz_entries::TARGETS` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::run("api_request", data));
