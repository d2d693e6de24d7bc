//! `tent_runtime::fuzzing::sync_message`: see its doc comment.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tent_runtime::fuzzing::sync_message(data));
