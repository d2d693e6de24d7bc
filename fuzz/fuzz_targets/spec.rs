//! `tent_runtime::fuzzing::spec`: see its doc comment.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tent_runtime::fuzzing::spec(data));
