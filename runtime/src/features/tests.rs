//! Every claim of the features document is backed by the runtime: each listed item
//! goes through the same parser or compiler a container's spec goes through.

use oci_spec::runtime::{LinuxSeccomp, Spec};
use serde_json::json;

use super::*;

fn document() -> serde_json::Value {
    serde_json::from_slice(&features_json().expect("features")).expect("JSON")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn spec(v: serde_json::Value) -> Spec {
    let mut base = json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}]}
    });
    if let (Some(b), Some(v)) = (base.as_object_mut(), v.as_object()) {
        for (k, val) in v {
            b.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(base).expect("spec")
}

fn compiles(profile: serde_json::Value) -> Result<()> {
    let profile: LinuxSeccomp = serde_json::from_value(profile).expect("seccomp profile");
    seccomp::compile(&profile).map(|_| ())
}

#[test]
fn the_document_has_the_shape_containerd_reads() {
    let doc = document();
    assert_eq!(doc["ociVersionMin"], "1.0.0");
    assert_eq!(doc["ociVersionMax"], oci_spec::runtime::VERSION);
    assert_eq!(doc["linux"]["cgroup"]["v1"], true);
    assert_eq!(doc["linux"]["cgroup"]["systemd"], false);
    assert_eq!(doc["linux"]["seccomp"]["enabled"], true);
    assert!(doc.get("annotations").is_none(), "nulls are dropped");
    // It reads back as the OCI type.
    let _: Features = serde_json::from_value(doc).expect("a Features document");
}

#[test]
fn every_mount_option_listed_is_one_the_parser_applies() {
    let listed = strings(&document()["mountOptions"]);
    assert!(listed.len() >= 30, "{listed:?}");
    for opt in &listed {
        let parsed = mounts::parse_options(&[opt]);
        assert!(parsed.data.is_empty(), "{opt} would reach mount(2) as data");
        let applied = !parsed.flags.is_empty()
            || !parsed.clear.is_empty()
            || !parsed.propagation.is_empty()
            || parsed.recursive_readonly;
        assert!(applied || opt == "defaults", "{opt} does nothing");
    }
    // This kernel (6.x) has mount_setattr: recursive read-only is claimed and applied.
    assert!(listed.iter().any(|o| o == "rro"), "{listed:?}");
    // Refused at create: never claimed.
    for missing in ["tmpcopyup", "idmap", "ridmap"] {
        assert!(!listed.iter().any(|o| o == missing), "{missing} is claimed");
        let s = spec(
            json!({"mounts": [{"destination": "/x", "type": "bind", "source": "/tmp",
                                         "options": ["rbind", missing]}]}),
        );
        let err = crate::spec::validate(&s).expect_err(missing).to_string();
        assert!(
            err.contains("mounts[0].options") && err.contains(missing),
            "{err}"
        );
    }
}

#[test]
fn every_capability_listed_is_one_tent_knows() {
    let listed = strings(&document()["linux"]["capabilities"]);
    assert_eq!(listed.len(), caps::NAMES.len());
    for (i, name) in listed.iter().enumerate() {
        assert_eq!(caps::cap_number(name), Some(i as u32), "{name}");
    }
}

#[test]
fn every_seccomp_action_operator_and_arch_listed_compiles() {
    let doc = document();
    let seccomp = &doc["linux"]["seccomp"];
    let actions = strings(&seccomp["actions"]);
    assert!(!actions.is_empty());
    for action in &actions {
        let rule = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": action}]});
        compiles(rule).unwrap_or_else(|e| panic!("{action}: {e}"));
    }
    // What the compiler refuses is not claimed.
    assert!(!actions.iter().any(|a| a == "SCMP_ACT_NOTIFY"));
    compiles(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}))
    .expect_err("notify is refused");

    let operators = strings(&seccomp["operators"]);
    assert_eq!(operators.len(), 7);
    for op in &operators {
        let rule = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 3, "valueTwo": 1, "op": op}]}]});
        compiles(rule).unwrap_or_else(|e| panic!("{op}: {e}"));
    }

    let archs = strings(&seccomp["archs"]);
    assert!(!archs.is_empty());
    for arch in &archs {
        let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": [arch],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]});
        compiles(profile).unwrap_or_else(|e| panic!("{arch}: {e}"));
    }
    for arch in ARCHS {
        let name = serde_json::to_value(arch).expect("arch name");
        let name = name.as_str().unwrap_or_default();
        if !archs.iter().any(|a| a == name) {
            let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": [name]});
            compiles(profile).expect_err(name);
        }
    }
}

#[test]
fn every_namespace_listed_is_accepted_and_the_others_refused() {
    let listed = strings(&document()["linux"]["namespaces"]);
    for ns in [
        "cgroup", "ipc", "mount", "network", "pid", "uts", "user", "time",
    ] {
        let s = if ns == "mount" {
            spec(json!({"linux": {"namespaces": [{"type": "mount"}]}}))
        } else {
            spec(json!({"linux": {"namespaces": [{"type": "mount"}, {"type": ns}]}}))
        };
        let accepted = crate::spec::validate(&s).is_ok();
        assert_eq!(accepted, listed.iter().any(|l| l == ns), "{ns}");
    }
}

#[test]
fn hooks_are_listed_exactly_when_the_runtime_runs_them() {
    let listed = strings(&document()["hooks"]);
    assert_eq!(listed.len(), 6, "{listed:?}");
    for name in &listed {
        let s = spec(json!({"hooks": {name.as_str(): [{"path": "/bin/true"}]}}));
        assert!(
            crate::spec::validate(&s).is_ok(),
            "hooks.{name} listed but refused"
        );
    }
}
