#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetwire::fuzzing::tls(data));
