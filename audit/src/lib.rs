//! tent's audit engine: what a root filesystem carries that could widen what
//! a container's processes can do. The walk never follows a link out of the
//! root; the score and its weights are in [`report`]; [`budget`] checks an
//! inventory against a profile's limits. Shared by the `tent` CLI and the
//! shim, so it uses only crates the shim already has (nix, libc, serde,
//! thiserror).

// Panic policy (docs/ARCHITECTURE.md): no explicit panic in shipped code; the shim
// isolates any other panic to its request (shim/src/isolate.rs).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod budget;
pub mod caps;
pub mod classify;
pub mod elf;
pub mod error;
pub mod report;
pub mod walk;

pub use error::{Error, Result};
