//! tent's profiles: how far a container may reach beyond a tent's wall.
//!
//! - `tent` (the default) hardens a spec that asks for less: no_new_privileges
//!   on, the rootfs mounted `nosuid,nodev`, and tent's own seccomp default
//!   (`confine/seccomp/default.rs`) when the spec brings no profile; it refuses
//!   privileged containers, dangerous added capabilities and the host's pid,
//!   ipc or network namespace, and OCI hooks (programs run as root on the
//!   host), unless the operator's config allows them, with an error naming
//!   the pod field to change.
//! - `compat` honours the spec exactly as runc does.
//!
//! The profile comes from the shim's config file (containerd's runtime
//! options `ConfigPath`); the rules are documented in the README.

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::confine::caps::{cap_number, CapSets};
pub use crate::confine::Hardening;
use crate::error::{Error, Result};
use crate::namespaces::path_is_ours;

/// Which rules apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Tent,
    Compat,
}

/// What the `tent` mode lets through when the operator says so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Allow {
    /// Privileged containers (`securityContext.privileged`).
    pub privileged: bool,
    /// Host namespaces a container may share: `pid`, `ipc`, `network`.
    pub host_namespaces: Vec<String>,
    /// Dangerous capabilities a container may add (`CAP_SYS_PTRACE`, …).
    pub capabilities: Vec<String>,
    /// OCI hooks (`hooks` in the spec, put there by containerd's base spec,
    /// NRI or CDI): programs that run as root on the host.
    pub hooks: bool,
}

/// A profile: the mode and, for `tent`, what it allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub mode: Mode,
    pub allow: Allow,
    /// `[audit]`: what the image may carry (checked by the shim at Create).
    pub audit: AuditBudget,
}

/// What a budget breach does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetMode {
    /// Log the breach; the container runs.
    #[default]
    Warn,
    /// Create fails with an error naming the files and the rule.
    Deny,
}

/// An audit budget: limits on the rootfs's contents (tent-audit's
/// findings). Empty: nothing is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditBudget {
    pub mode: BudgetMode,
    /// The summary at Create (a low-priority walk of the rootfs after Create
    /// returns, kept for `tent audit --running`). `false` skips that walk for
    /// operators who want none; a budget needs it, so the shim refuses
    /// `false` with any limit set.
    pub summary: bool,
    /// Setuid/setgid files allowed.
    pub max_setuid: Option<u64>,
    /// Files with capabilities (`security.capability`) allowed.
    pub max_capabilities: Option<u64>,
    /// Kinds the image may not hold: "shell", "package-manager",
    /// "interpreter", "compiler", "network-tools", "kernel-tools",
    /// "busybox", "devices", "world-writable".
    pub forbid: Vec<String>,
}

impl Default for AuditBudget {
    fn default() -> AuditBudget {
        AuditBudget {
            mode: BudgetMode::default(),
            summary: true,
            max_setuid: None,
            max_capabilities: None,
            forbid: Vec::new(),
        }
    }
}

impl AuditBudget {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.max_setuid.is_some() || self.max_capabilities.is_some() || !self.forbid.is_empty()
    }
}

/// Capabilities that reach past the container (kernel modules, raw I/O, other
/// processes' memory, BPF, the clock, MAC policy, …): refused by `tent`.
pub const DANGEROUS_CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "SYS_BOOT",
    "SYS_TIME",
    "SYSLOG",
    "BPF",
    "PERFMON",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "AUDIT_CONTROL",
    "CHECKPOINT_RESTORE",
];

const HINT: &str = "run the pod with runtimeClassName: tent-compat, or allow it in tent's config";

impl Profile {
    /// Checks a container's spec; what `tent` adds to its confinement.
    pub fn check_spec(&self, spec: &Spec) -> Result<Hardening> {
        if self.mode == Mode::Compat {
            return Ok(Hardening::default());
        }
        let linux = spec.linux().as_ref();
        if !self.allow.privileged {
            let masked = linux
                .and_then(|l| l.masked_paths().as_ref())
                .is_some_and(|p| !p.is_empty());
            let readonly = linux
                .and_then(|l| l.readonly_paths().as_ref())
                .is_some_and(|p| !p.is_empty());
            let all_devices = linux
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.devices().as_ref())
                .is_some_and(|d| {
                    d.iter().any(|r| {
                        r.allow()
                            && r.typ()
                                .is_none_or(|t| t == oci_spec::runtime::LinuxDeviceType::A)
                    })
                });
            // procMount: Unmasked empties both lists too, but keeps the
            // default capabilities and devices: name the field it came from.
            let sys_admin = spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().as_ref())
                .is_some_and(|c| {
                    let sets = CapSets::from_oci(c);
                    let any = sets.bounding | sets.effective | sets.permitted;
                    cap_number("SYS_ADMIN").is_some_and(|n| any & (1u64 << n) != 0)
                });
            // procMount is a container field: a sandbox without masks is privileged.
            let sandbox = spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get("io.kubernetes.cri.container-type"))
                .is_some_and(|t| t == "sandbox");
            if !masked && !readonly && !all_devices && !sys_admin && !sandbox {
                return Err(Error::spec(
                    "securityContext.procMount",
                    format!(
                        "tent's profile refuses an unmasked /proc (procMount: Unmasked) \
                         ({HINT}: allow.privileged)"
                    ),
                ));
            }
            if (!masked && !readonly) || all_devices {
                return Err(Error::spec(
                    "securityContext.privileged",
                    format!(
                        "tent's profile refuses privileged containers ({HINT}: allow.privileged)"
                    ),
                ));
            }
        }
        for (typ, pod_field, name, proc_name) in [
            (LinuxNamespaceType::Pid, "hostPID", "pid", "pid"),
            (LinuxNamespaceType::Ipc, "hostIPC", "ipc", "ipc"),
            (LinuxNamespaceType::Network, "hostNetwork", "network", "net"),
        ] {
            if self.allow.host_namespaces.iter().any(|n| n == name) {
                continue;
            }
            let ns = linux
                .and_then(|l| l.namespaces().as_ref())
                .and_then(|nss| nss.iter().find(|n| n.typ() == typ));
            let shares_host = match ns {
                None => true,
                Some(n) => n
                    .path()
                    .as_deref()
                    .is_some_and(|p| path_is_ours(p, proc_name)),
            };
            if shares_host {
                return Err(Error::spec(
                    pod_field,
                    format!(
                        "tent's profile refuses sharing the host's {name} namespace \
                         ({HINT}: allow.host_namespaces)"
                    ),
                ));
            }
        }
        if !self.allow.hooks && crate::hooks::any(spec) {
            return Err(Error::spec(
                "hooks",
                format!(
                    "tent's profile refuses OCI hooks, which run as root on the host \
                     (added by containerd's base runtime spec, NRI or CDI; {HINT}: allow.hooks)"
                ),
            ));
        }
        if let Some(process) = spec.process() {
            self.check_process(process)?;
        }
        Ok(Hardening {
            no_new_privileges: true,
            rootfs_nosuid_nodev: true,
            default_seccomp: true,
        })
    }

    /// Checks a process (the init's, or an exec's) for dangerous capabilities.
    pub fn check_process(&self, process: &Process) -> Result<()> {
        if self.mode == Mode::Compat || self.allow.privileged {
            return Ok(());
        }
        let Some(caps) = process.capabilities() else {
            return Ok(());
        };
        let sets = CapSets::from_oci(caps);
        let any = sets.bounding | sets.effective | sets.permitted | sets.inheritable | sets.ambient;
        for name in DANGEROUS_CAPABILITIES {
            let Some(n) = cap_number(name) else { continue };
            let allowed = self
                .allow
                .capabilities
                .iter()
                .any(|a| cap_number(a) == Some(n));
            if any & (1u64 << n) != 0 && !allowed {
                return Err(Error::spec(
                    "securityContext.capabilities.add",
                    format!("CAP_{name} is refused by tent's profile ({HINT}: allow.capabilities)"),
                ));
            }
        }
        Ok(())
    }

    /// Parses a profile from the shim's config (TOML is turned into this by
    /// the shim); unknown keys are errors naming them.
    pub fn validate(&self) -> Result<()> {
        for n in &self.allow.host_namespaces {
            if !["pid", "ipc", "network"].contains(&n.as_str()) {
                return Err(Error::spec(
                    "allow.host_namespaces",
                    format!("{n:?} is not one of pid, ipc, network"),
                ));
            }
        }
        for c in &self.allow.capabilities {
            if cap_number(c).is_none() {
                return Err(Error::spec(
                    "allow.capabilities",
                    format!("unknown capability {c:?}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(patch: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut v = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                         "permitted": ["CAP_KILL"]}},
            "root": {"path": "rootfs"},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "network"}, {"type": "mount"}],
                "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]}
            }
        });
        patch(&mut v);
        serde_json::from_value(v).unwrap_or_default()
    }

    fn err(p: &Profile, s: &Spec) -> String {
        p.check_spec(s)
            .map_or_else(|e| e.to_string(), |h| format!("ok {h:?}"))
    }

    #[test]
    fn tent_hardens_an_ordinary_spec() {
        let h = Profile::default().check_spec(&spec(|_| {}));
        assert_eq!(
            h.ok(),
            Some(Hardening {
                no_new_privileges: true,
                rootfs_nosuid_nodev: true,
                default_seccomp: true,
            })
        );
        let compat = Profile {
            mode: Mode::Compat,
            ..Profile::default()
        };
        assert_eq!(
            compat.check_spec(&spec(|_| {})).ok(),
            Some(Hardening::default())
        );
    }

    #[test]
    fn tent_refuses_with_the_pod_field() {
        let tent = Profile::default();
        let privileged = spec(|v| {
            v["linux"]["maskedPaths"] = serde_json::json!([]);
            v["linux"]["readonlyPaths"] = serde_json::json!([]);
        });
        assert!(err(&tent, &privileged)
            .starts_with("securityContext.procMount: tent's profile refuses an unmasked /proc"));
        let privileged_sandbox = spec(|v| {
            v["linux"]["maskedPaths"] = serde_json::json!([]);
            v["linux"]["readonlyPaths"] = serde_json::json!([]);
            v["annotations"] = serde_json::json!({"io.kubernetes.cri.container-type": "sandbox"});
        });
        assert!(err(&tent, &privileged_sandbox)
            .starts_with("securityContext.privileged: tent's profile refuses privileged"));
        let privileged = spec(|v| {
            v["linux"]["maskedPaths"] = serde_json::json!([]);
            v["linux"]["readonlyPaths"] = serde_json::json!([]);
            v["process"]["capabilities"]["bounding"] =
                serde_json::json!(["CAP_KILL", "CAP_SYS_ADMIN"]);
        });
        assert!(err(&tent, &privileged)
            .starts_with("securityContext.privileged: tent's profile refuses privileged"));
        let all_devices = spec(|v| {
            v["linux"]["resources"]["devices"] =
                serde_json::json!([{"allow": true, "access": "rwm"}])
        });
        assert!(err(&tent, &all_devices).starts_with("securityContext.privileged: "));
        let admin = spec(|v| {
            v["process"]["capabilities"]["bounding"] =
                serde_json::json!(["CAP_KILL", "CAP_SYS_ADMIN"])
        });
        assert!(err(&tent, &admin)
            .starts_with("securityContext.capabilities.add: CAP_SYS_ADMIN is refused"));
        let host_net = spec(|v| {
            if let Some(a) = v["linux"]["namespaces"].as_array_mut() {
                a.retain(|n| n["type"] != "network");
            }
        });
        assert!(err(&tent, &host_net).starts_with(
            "hostNetwork: tent's profile refuses sharing the host's network namespace"
        ));
        let host_pid_path =
            spec(|v| v["linux"]["namespaces"][0]["path"] = "/proc/self/ns/pid".into());
        assert!(err(&tent, &host_pid_path).starts_with("hostPID: "));
        let allowing = Profile {
            mode: Mode::Tent,
            allow: Allow {
                privileged: false,
                host_namespaces: vec!["network".into()],
                capabilities: vec!["CAP_SYS_ADMIN".into()],
                hooks: true,
            },
            ..Profile::default()
        };
        let hooked = spec(|v| {
            v["hooks"] = serde_json::json!({"poststop": [{"path": "/bin/true"}]});
        });
        assert!(
            err(&tent, &hooked).starts_with("hooks: tent's profile refuses OCI hooks"),
            "{}",
            err(&tent, &hooked)
        );
        assert!(err(&tent, &hooked).contains("allow.hooks"));
        assert!(err(&allowing, &hooked).starts_with("ok"));
        assert!(err(&allowing, &host_net).starts_with("ok"));
        assert!(err(&allowing, &admin).starts_with("ok"));
        let compat = Profile {
            mode: Mode::Compat,
            ..Profile::default()
        };
        for s in [&privileged, &all_devices, &admin, &host_net, &hooked] {
            assert!(err(&compat, s).starts_with("ok"));
        }
    }

    #[test]
    fn config_values_are_checked() {
        let bad: Profile = Profile {
            allow: Allow {
                host_namespaces: vec!["uts".into()],
                ..Allow::default()
            },
            ..Profile::default()
        };
        assert!(bad.validate().is_err());
        let parsed: std::result::Result<Profile, _> =
            serde_json::from_value(serde_json::json!({"mode": "strict"}));
        assert!(parsed.is_err());
    }
}
