//! `tent_runtime::fuzzing::seccomp`: see its doc comment.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tent_runtime::fuzzing::seccomp(data));
