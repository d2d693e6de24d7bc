//! The OCI features document (`runc features`; containerd asks a shim for it with
//! `-info`): what tent's runtime really does, built from the tables the runtime
//! itself uses (mount option table, capability names, the seccomp compiler's
//! actions and ABIs, the namespace checks), so it cannot claim what tent refuses.

use oci_spec::runtime::{
    ApparmorBuilder, Arch, CgroupBuilder, Features, FeaturesBuilder, LinuxFeatureBuilder,
    LinuxNamespaceType, LinuxSeccompAction as Action, SeccompBuilder, SelinuxBuilder,
};

use crate::confine::{caps, lsm, seccomp};
use crate::error::{Error, Result};
use crate::mounts;

/// containerd's type URL for the document inside `RuntimeInfo.features`.
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The namespaces a container may ask for (user and time are refused by
/// `spec::validate`; the test below checks each listed one is accepted).
const NAMESPACES: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Uts,
];

/// Every seccomp action the OCI spec names; `features` lists those the compiler takes.
const ACTIONS: &[Action] = &[
    Action::ScmpActAllow,
    Action::ScmpActErrno,
    Action::ScmpActKill,
    Action::ScmpActKillProcess,
    Action::ScmpActKillThread,
    Action::ScmpActLog,
    Action::ScmpActNotify,
    Action::ScmpActTrace,
    Action::ScmpActTrap,
];

/// The comparison operators; the compiler implements all of them.
const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Every architecture the OCI spec names; `features` lists those this build compiles for.
const ARCHS: &[Arch] = &[
    Arch::ScmpArchAarch64,
    Arch::ScmpArchArm,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchX32,
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
];

/// The features document for this host (AppArmor and SELinux as the host has them).
pub fn features() -> Result<Features> {
    let host = lsm::Host::this();
    let bad = |e: oci_spec::OciSpecError| Error::Unsupported(format!("features document: {e}"));
    let mut mount_options: Vec<String> = mounts::FLAG_OPTIONS
        .iter()
        .map(|(name, _, _)| name.to_string())
        .chain(mounts::PROPAGATION.iter().map(|(name, _)| name.to_string()))
        .chain(
            mounts::recursive_readonly_supported().then(|| mounts::RECURSIVE_READONLY.to_string()),
        )
        .collect();
    mount_options.sort();
    let seccomp = SeccompBuilder::default()
        .enabled(true)
        .actions(
            ACTIONS
                .iter()
                .copied()
                .filter(|a| seccomp::supports_action(*a))
                .collect::<Vec<_>>(),
        )
        .operators(OPERATORS.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .archs(
            ARCHS
                .iter()
                .copied()
                .filter(|a| seccomp::supports_arch(*a))
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(bad)?;
    let linux = LinuxFeatureBuilder::default()
        .namespaces(NAMESPACES.to_vec())
        .capabilities(
            caps::NAMES
                .iter()
                .map(|n| format!("CAP_{n}"))
                .collect::<Vec<_>>(),
        )
        .cgroup(
            CgroupBuilder::default()
                .v1(true)
                .v2(true)
                // tent writes cgroupfs itself (it expands systemd-style paths)
                // and never asks systemd for a scope.
                .systemd(false)
                .systemd_user(false)
                .rdma(false)
                .build()
                .map_err(bad)?,
        )
        .seccomp(seccomp)
        .apparmor(
            ApparmorBuilder::default()
                .enabled(host.apparmor_enabled())
                .build()
                .map_err(bad)?,
        )
        .selinux(
            SelinuxBuilder::default()
                .enabled(host.selinux_enabled())
                .build()
                .map_err(bad)?,
        )
        .build()
        .map_err(bad)?;
    FeaturesBuilder::default()
        .oci_version_min("1.0.0")
        .oci_version_max(oci_spec::runtime::VERSION)
        .hooks(
            crate::hooks::Kind::ALL
                .iter()
                .map(|k| k.name().to_string())
                .collect::<Vec<_>>(),
        )
        .mount_options(mount_options)
        .linux(linux)
        .build()
        .map_err(bad)
}

/// The document as JSON, without the fields tent does not report (nulls dropped).
pub fn features_json() -> Result<Vec<u8>> {
    let value = serde_json::to_value(features()?)
        .map_err(|e| Error::Unsupported(format!("features document: {e}")))?;
    serde_json::to_vec(&without_nulls(value))
        .map_err(|e| Error::Unsupported(format!("features document: {e}")))
}

fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        serde_json::Value::Array(a) => a.into_iter().map(without_nulls).collect(),
        other => other,
    }
}

#[cfg(test)]
mod tests;
