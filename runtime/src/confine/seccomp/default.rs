//! tent's default seccomp profile, for a container that brings none under the
//! `tent` profile: containerd's RuntimeDefault as its newest releases ship it
//! (`socket` refused for AF_ALG and AF_VSOCK, `clone3` → ENOSYS so libcs fall
//! back to `clone`, whose namespace flags are refused), without `ptrace`,
//! `process_vm_readv` and `process_vm_writev`: no process of a tent reads or
//! controls another's memory. The JSON (`tent-default.json`) is an OCI
//! profile; its architectures are the host's ABIs, filled in at run time.
//!
//! On x86_64 the program is precompiled (`tent-default-x86_64.bpf`, checked
//! against the JSON by a test that rewrites it with `TENT_REGENERATE_SECCOMP=1`):
//! a shim then neither parses nor compiles anything for it, and the program
//! sits in the binary's shared pages. Elsewhere it is compiled once per process.

use std::sync::OnceLock;

use oci_spec::runtime::LinuxSeccomp;

use super::{compile, Filter};
use crate::error::{Error, Result};

const PROFILE: &str = include_str!("tent-default.json");

#[cfg(target_arch = "x86_64")]
const PRECOMPILED: Option<&[u8]> = Some(include_bytes!("tent-default-x86_64.bpf"));
#[cfg(not(target_arch = "x86_64"))]
const PRECOMPILED: Option<&[u8]> = None;

/// The host's ABIs, as OCI architecture names.
const HOST_ARCHES: &[&str] = if cfg!(target_arch = "x86_64") {
    &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
} else if cfg!(target_arch = "aarch64") {
    &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
} else {
    &[]
};

/// The profile with the host's architectures.
pub fn profile() -> Result<LinuxSeccomp> {
    let mut v: serde_json::Value = serde_json::from_str(PROFILE)
        .map_err(|e| Error::Protocol(format!("tent's default seccomp profile: {e}")))?;
    v.as_object_mut()
        .ok_or_else(|| Error::Protocol("tent's default seccomp profile: not an object".into()))?
        .insert("architectures".into(), serde_json::json!(HOST_ARCHES));
    serde_json::from_value(v)
        .map_err(|e| Error::Protocol(format!("tent's default seccomp profile: {e}")))
}

/// The default filter (precompiled, or compiled on first use).
pub fn filter() -> Result<Filter> {
    static FILTER: OnceLock<std::result::Result<Filter, String>> = OnceLock::new();
    FILTER
        .get_or_init(
            || match PRECOMPILED.and_then(|b| Filter::from_bytes(b, 0)) {
                Some(f) => Ok(f),
                None => profile()
                    .and_then(|p| compile(&p))
                    .map_err(|e| e.to_string()),
            },
        )
        .clone()
        .map_err(|e| Error::Protocol(format!("tent's default seccomp profile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_for_this_host_without_ptrace() -> Result<()> {
        let p = profile()?;
        let names: Vec<&String> = p
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names())
            .collect();
        assert!(names.iter().any(|n| *n == "read"));
        for gone in [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "mount",
            "unshare",
            "keyctl",
        ] {
            assert!(!names.iter().any(|n| *n == gone), "{gone} is allowed");
        }
        assert!(!filter()?.instructions().is_empty());
        Ok(())
    }

    /// The precompiled program is exactly what the JSON compiles to (and has
    /// no flags); `TENT_REGENERATE_SECCOMP=1` rewrites it after a change.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn precompiled_program_matches_the_profile() -> Result<()> {
        let compiled = compile(&profile()?)?;
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/confine/seccomp/tent-default-x86_64.bpf"
        );
        if std::env::var_os("TENT_REGENERATE_SECCOMP").is_some() {
            std::fs::write(file, compiled.to_bytes()).map_err(|e| Error::io("write", file, e))?;
        }
        let on_disk = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        assert!(
            on_disk == compiled.to_bytes() && Filter::from_bytes(&on_disk, 0) == Some(compiled),
            "{file} is stale: run `TENT_REGENERATE_SECCOMP=1 cargo test -p tent-runtime --lib precompiled`"
        );
        Ok(())
    }
}
