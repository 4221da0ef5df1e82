#![no_main]
//! The entry `proxy_head` of `fuzz_entries::TARGETS` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::run("proxy_head", data));
