//! The shim's `start` stdin and runc options decoders (`shim/src/fuzzing.rs`), compiled from
//! the shim's own sources: the shim is a binary crate, so they are included by path.
#![no_main]
#![allow(dead_code)]

#[path = "../../shim/src/bootstrap.rs"]
mod bootstrap;
#[path = "../../shim/src/error.rs"]
mod error;
#[path = "../../shim/src/fuzzing.rs"]
mod fuzzing;
#[path = "../../shim/src/pb.rs"]
mod pb;
#[path = "../../shim/src/runc_options.rs"]
mod runc_options;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::options(data));
