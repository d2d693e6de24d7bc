//! Loading and validating `config.json` before anything is created, so bad input
//! fails with a message naming the field and leaves nothing behind.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

use crate::confine::Confinement;
use crate::error::{Error, Result};
use crate::process::{self, rlimit_resource};
use crate::profile::Profile;

/// A parsed and validated bundle config. `raw` is what the init re-parses, so the
/// init sees exactly the JSON the caller validated.
#[derive(Debug)]
pub struct LoadedSpec {
    pub spec: Spec,
    pub raw: String,
    /// How the container's processes are confined (refusing what tent cannot apply).
    pub confinement: Confinement,
}

const NAMESPACE_TYPES: &[&str] = &[
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
];

/// Reads and validates `<bundle>/config.json`.
pub fn load(bundle: &Path, profile: &Profile) -> Result<LoadedSpec> {
    let path = bundle.join("config.json");
    let raw = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let spec = parse(&raw)?;
    let hardening = profile.check_spec(&spec)?;
    let confinement = Confinement::for_init(&spec, hardening)?;
    Ok(LoadedSpec {
        spec,
        raw,
        confinement,
    })
}

/// Parses and validates the text of a `config.json`.
pub fn parse(raw: &str) -> Result<Spec> {
    let value: Value =
        serde_json::from_str(raw).map_err(|e| Error::spec("config.json", e.to_string()))?;
    precheck_raw(&value)?;
    let spec: Spec =
        serde_json::from_value(value).map_err(|e| Error::spec("config.json", e.to_string()))?;
    validate(&spec)?;
    Ok(spec)
}

/// Checks that serde would only report vaguely (enum names) so the error names the field.
fn precheck_raw(value: &Value) -> Result<()> {
    crate::cgroups::devices::precheck_raw(value)?;
    if let Some(nss) = value.pointer("/linux/namespaces").and_then(Value::as_array) {
        for (i, ns) in nss.iter().enumerate() {
            let typ = ns.get("type").and_then(Value::as_str).unwrap_or("");
            if !NAMESPACE_TYPES.contains(&typ) {
                return Err(Error::spec(
                    format!("linux.namespaces[{i}]"),
                    format!("unknown namespace type {typ:?}"),
                ));
            }
        }
    }
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        let pointer = format!("/process/capabilities/{set}");
        for (i, cap) in value
            .pointer(&pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if serde_json::from_value::<oci_spec::runtime::Capability>(cap.clone()).is_err() {
                return Err(Error::spec(
                    format!("process.capabilities.{set}[{i}]"),
                    format!("unknown capability {cap}"),
                ));
            }
        }
    }
    let seccomp = |pointer: String, field: String| -> Result<()> {
        match value.pointer(&pointer) {
            Some(v) if pointer.ends_with("architectures") => {
                for (i, a) in v.as_array().into_iter().flatten().enumerate() {
                    if serde_json::from_value::<oci_spec::runtime::Arch>(a.clone()).is_err() {
                        return Err(Error::spec(
                            format!("{field}[{i}]"),
                            format!("unknown architecture {a}"),
                        ));
                    }
                }
                Ok(())
            }
            Some(v)
                if serde_json::from_value::<oci_spec::runtime::LinuxSeccompAction>(v.clone())
                    .is_err() =>
            {
                Err(Error::spec(field, format!("unknown action {v}")))
            }
            _ => Ok(()),
        }
    };
    seccomp(
        "/linux/seccomp/defaultAction".into(),
        "linux.seccomp.defaultAction".into(),
    )?;
    seccomp(
        "/linux/seccomp/architectures".into(),
        "linux.seccomp.architectures".into(),
    )?;
    let rules = value
        .pointer("/linux/seccomp/syscalls")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..rules {
        seccomp(
            format!("/linux/seccomp/syscalls/{i}/action"),
            format!("linux.seccomp.syscalls[{i}].action"),
        )?;
    }
    for (i, d) in value
        .pointer("/linux/devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let typ = d.get("type").and_then(Value::as_str).unwrap_or("");
        if !["b", "c", "u", "p"].contains(&typ) {
            return Err(Error::spec(
                format!("linux.devices[{i}].type"),
                format!("{typ:?} is not a device type (want \"b\", \"c\", \"u\" or \"p\")"),
            ));
        }
    }
    if let Some(rls) = value.pointer("/process/rlimits").and_then(Value::as_array) {
        for (i, rl) in rls.iter().enumerate() {
            let typ = rl.get("type").and_then(Value::as_str).unwrap_or("");
            if rlimit_resource(typ).is_none() {
                return Err(Error::spec(
                    format!("process.rlimits[{i}]"),
                    format!("unknown rlimit type {typ:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Semantic checks on a parsed spec.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::spec("process", "is missing"))?;
    process::validate(process)?;
    crate::hooks::validate(spec)?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(Error::spec(
                format!("mounts[{i}].destination"),
                format!("{} is not an absolute path", m.destination().display()),
            ));
        }
        for opt in m.options().iter().flatten() {
            if crate::mounts::UNSUPPORTED.contains(&opt.as_str()) {
                return Err(Error::spec(
                    format!("mounts[{i}].options"),
                    format!(
                        "{opt:?} ({}) is not supported by tent",
                        m.destination().display()
                    ),
                ));
            }
        }
    }
    let has_mount_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| nss.iter().any(|n| n.typ() == LinuxNamespaceType::Mount));
    if !has_mount_ns {
        return Err(Error::spec(
            "linux.namespaces",
            "a mount namespace is required",
        ));
    }
    if let Some(linux) = spec.linux() {
        let namespaces = linux.namespaces().as_deref().unwrap_or_default();
        for (i, ns) in namespaces.iter().enumerate() {
            if namespaces.iter().take(i).any(|n| n.typ() == ns.typ()) {
                return Err(Error::spec(
                    format!("linux.namespaces[{i}]"),
                    format!("the {} namespace is listed twice", ns.typ()),
                ));
            }
        }
        validate_devices(linux.devices().as_deref().unwrap_or_default())?;
        validate_hostname(spec)?;
        for (i, ns) in namespaces.iter().enumerate() {
            match ns.typ() {
                LinuxNamespaceType::User => {
                    return Err(Error::Unsupported(
                        "user namespaces are not supported yet".into(),
                    ))
                }
                LinuxNamespaceType::Time => {
                    return Err(Error::Unsupported(
                        "time namespaces are not supported yet".into(),
                    ))
                }
                _ => {}
            }
            if let Some(path) = ns.path() {
                if !path.exists() {
                    return Err(Error::spec(
                        format!("linux.namespaces[{i}]"),
                        format!("path {} does not exist", path.display()),
                    ));
                }
            }
        }
        if let Some(cg) = linux.cgroups_path() {
            crate::cgroups::CgroupPath::parse(&cg.to_string_lossy(), "x")?;
        }
        crate::sysctl::validate(spec)?;
        crate::mounts::root_propagation(spec)?;
        // Applied by nobody here: refused, never dropped.
        for (set, field) in [
            (linux.personality().is_some(), "linux.personality"),
            (linux.intel_rdt().is_some(), "linux.intelRdt"),
            (linux.memory_policy().is_some(), "linux.memoryPolicy"),
            (
                linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
                "linux.timeOffsets",
            ),
            (
                linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
                "linux.netDevices",
            ),
            (
                linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                    || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()),
                "linux.uidMappings/gidMappings",
            ),
        ] {
            if set {
                return Err(Error::Unsupported(format!(
                    "{field}: not supported by tent"
                )));
            }
        }
    }
    Ok(())
}

/// The kernel's device numbers: 12 bits of major, 20 of minor (a larger value would be
/// truncated by mknod into another device).
const MAJOR_MAX: i64 = (1 << 12) - 1;
const MINOR_MAX: i64 = (1 << 20) - 1;

fn validate_devices(devices: &[oci_spec::runtime::LinuxDevice]) -> Result<()> {
    for (i, d) in devices.iter().enumerate() {
        if !d.path().is_absolute() {
            return Err(Error::spec(
                format!("linux.devices[{i}].path"),
                format!("{} is not an absolute path", d.path().display()),
            ));
        }
        for (what, n, max) in [
            ("major", d.major(), MAJOR_MAX),
            ("minor", d.minor(), MINOR_MAX),
        ] {
            if !(0..=max).contains(&n) {
                return Err(Error::spec(
                    format!("linux.devices[{i}].{what}"),
                    format!("{n} ({}) is outside 0..={max}", d.path().display()),
                ));
            }
        }
    }
    Ok(())
}

/// A hostname needs the container's own UTS namespace (as runc); without one, only the
/// host's own name is accepted (it is already true), never silently dropped.
fn validate_hostname(spec: &Spec) -> Result<()> {
    let Some(wanted) = spec.hostname().as_deref().filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let own_uts = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| nss.iter().any(|n| n.typ() == LinuxNamespaceType::Uts));
    if own_uts {
        return Ok(());
    }
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    if wanted == host {
        return Ok(());
    }
    Err(Error::spec(
        "hostname",
        format!("{wanted:?} needs a uts namespace (the container shares the host's)"),
    ))
}

/// The host path of the container's root directory (`<bundle>/<root.path>`).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> PathBuf {
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_security_settings_are_refused() {
        let base: serde_json::Value = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}]}
        });
        let check = |patch: serde_json::Value, needle: &str| {
            let mut v = base.clone();
            json_merge(&mut v, &patch);
            let spec: Spec = serde_json::from_value(v).expect("spec");
            let err = validate(&spec)
                .and_then(|()| Confinement::for_init(&spec, Default::default()).map(|_| ()))
                .expect_err(needle);
            assert!(err.to_string().contains(needle), "{err}");
            assert_ne!(err.kind(), crate::ErrorKind::Internal, "{err}");
        };
        check(
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}}}),
            "linux.seccomp.syscalls[0].action",
        );
        check(
            serde_json::json!({"process": {"apparmorProfile": "x"}}),
            "apparmorProfile",
        );
        check(
            serde_json::json!({"hooks": {"prestart": [{"path": "bin/true"}]}}),
            "hooks.prestart[0].path",
        );
        check(
            serde_json::json!({"linux": {"personality": {"domain": "LINUX32"}}}),
            "linux.personality: not supported by tent",
        );
        check(
            serde_json::json!({"linux": {"intelRdt": {"closID": "gold"}}}),
            "linux.intelRdt: not supported by tent",
        );
        check(
            serde_json::json!({"linux": {"netDevices": {"eth1": {}}}}),
            "linux.netDevices: not supported by tent",
        );
        check(
            serde_json::json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}}),
            "process.ioPriority: not supported by tent",
        );
        check(
            serde_json::json!({"process": {"scheduler": {"policy": "SCHED_IDLE"}}}),
            "process.scheduler: not supported by tent",
        );
        let spec: Spec = serde_json::from_value(base.clone()).expect("spec");
        validate(&spec).expect("plain spec is valid");
    }

    /// Inputs of the hostile corpus (integration/corpus/hostile) that serde or the kernel
    /// would answer vaguely, or silently wrongly: each error names the field.
    #[test]
    fn hostile_values_are_refused_naming_the_field() {
        let base = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}]}
        });
        let check = |patch: serde_json::Value, needle: &str| {
            let mut v = base.clone();
            json_merge(&mut v, &patch);
            let err = parse(&v.to_string()).expect_err(needle);
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        };
        check(
            serde_json::json!({"process": {"capabilities": {"effective": ["CAP_KILL", ""]}}}),
            "process.capabilities.effective[1]",
        );
        check(
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_TENT"]}}}),
            "linux.seccomp.architectures[1]",
        );
        check(
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_TENT"}]}}}),
            "linux.seccomp.syscalls[0].action",
        );
        check(
            serde_json::json!({"linux": {"devices": [{"path": "/dev/x", "type": "x", "major": 1, "minor": 3}]}}),
            "linux.devices[0].type",
        );
        // 2^32 + 1 would reach mknod as major 1 (the memory devices).
        check(
            serde_json::json!({"linux": {"devices": [{"path": "/dev/x", "type": "c", "major": 4294967297_i64, "minor": 1}]}}),
            "linux.devices[0].major",
        );
        check(
            serde_json::json!({"linux": {"devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": -1}]}}),
            "linux.devices[0].minor",
        );
        check(
            serde_json::json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "mount"}]}}),
            "linux.namespaces[2]",
        );
        check(
            serde_json::json!({"hostname": "tent-not-the-host", "linux": {"namespaces": [{"type": "mount"}]}}),
            "hostname",
        );
        let ok = |patch: serde_json::Value| {
            let mut v = base.clone();
            json_merge(&mut v, &patch);
            parse(&v.to_string()).expect("valid");
        };
        ok(serde_json::json!({"hostname": "tent-h"}));
        ok(serde_json::json!({"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}}}));
        ok(
            serde_json::json!({"linux": {"devices": [{"path": "/dev/x", "type": "c", "major": 4095, "minor": 1048575}]}}),
        );
    }

    fn json_merge(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b.clone(),
        }
    }

    fn base() -> Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn err_of(v: &Value) -> String {
        match parse(&v.to_string()) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_minimal() {
        assert_eq!(err_of(&base()), "ok");
    }

    #[test]
    fn malformed_json() {
        let e = parse("{")
            .map(|_| ())
            .map_err(|e| (e.kind(), e.to_string()));
        let (kind, msg) = e
            .err()
            .unwrap_or((crate::ErrorKind::Internal, String::new()));
        assert_eq!(kind, crate::ErrorKind::InvalidArgument);
        assert!(msg.starts_with("config.json: "), "{msg}");
    }

    #[test]
    fn empty_args() {
        let mut v = base();
        v["process"]["args"] = serde_json::json!([]);
        assert_eq!(err_of(&v), "process.args: is empty: nothing to run");
        v["process"].as_object_mut().map(|o| o.remove("args"));
        assert_eq!(err_of(&v), "process.args: is empty: nothing to run");
    }

    #[test]
    fn unknown_namespace() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "bogus".into();
        assert_eq!(
            err_of(&v),
            "linux.namespaces[1]: unknown namespace type \"bogus\""
        );
    }

    #[test]
    fn missing_namespace_path() {
        let mut v = base();
        if let Some(a) = v["linux"]["namespaces"].as_array_mut() {
            a.push(serde_json::json!({"type": "network", "path": "/proc/999999/ns/net"}));
        }
        assert_eq!(
            err_of(&v),
            "linux.namespaces[2]: path /proc/999999/ns/net does not exist"
        );
    }

    #[test]
    fn rlimits() {
        let mut v = base();
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
        assert_eq!(
            err_of(&v),
            "process.rlimits[0]: unknown rlimit type \"RLIMIT_BOGUS\""
        );
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert_eq!(
            err_of(&v),
            "process.rlimits[0]: RLIMIT_NOFILE: soft limit 10 exceeds hard limit 5"
        );
    }

    #[test]
    fn terminal_accepted() {
        let mut v = base();
        v["process"]["terminal"] = true.into();
        assert!(parse(&v.to_string()).is_ok());
    }

    #[test]
    fn cgroup_dotdot() {
        let mut v = base();
        v["linux"]["cgroupsPath"] = "/a/../../b".into();
        assert!(
            err_of(&v).starts_with("linux.cgroupsPath: "),
            "{}",
            err_of(&v)
        );
    }
}
