#![no_main]
//! The entry `domain` of `fuzz_entries::TARGETS` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::run("domain", data));
