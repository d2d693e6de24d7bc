//! `linux.sysctl`: which keys a container may set, checked before anything is
//! created, and writing them from inside the container.
//!
//! A sysctl is only safe when it is namespaced *and* the container has its
//! own namespace of that kind; anything else changes the host kernel
//! (`kernel.core_pattern` alone is a host escape). The rules are runc's: IPC
//! sysctls need a private IPC namespace, `kernel.domainname` a private UTS
//! namespace (`kernel.hostname` conflicts with the spec's `hostname`), `net.*`
//! a network namespace that is not the host's; every other key is refused
//! with its name.

use nix::fcntl::OFlag;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::namespaces::path_is_ours;
use crate::pathsafe::open_proc;

/// IPC sysctls besides `fs.mqueue.*` (runc's list).
const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The key in dotted form (`net/ipv4/ip_forward` → `net.ipv4.ip_forward`).
fn dotted(key: &str) -> String {
    if key.contains('/') {
        key.trim_matches('/').replace('/', ".")
    } else {
        key.to_string()
    }
}

/// The key's path below `/proc/sys`: dots become slashes, unless the key is
/// already slash-separated (then dots are part of a name, e.g. `eth0.100`).
fn proc_path(key: &str) -> Result<String> {
    let bad = || Error::spec("linux.sysctl", format!("invalid key {key:?}"));
    let rel = if key.contains('/') {
        key.trim_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad());
    }
    Ok(rel)
}

/// Checks every `linux.sysctl` key against the spec's namespaces.
pub fn validate(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let Some(sysctls) = linux.sysctl().as_ref() else {
        return Ok(());
    };
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let ns = |typ: LinuxNamespaceType| namespaces.iter().find(|n| n.typ() == typ);
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        proc_path(key)?;
        let k = dotted(key);
        let field = format!("linux.sysctl[{key:?}]");
        if IPC_KEYS.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
            if ns(LinuxNamespaceType::Ipc).is_none() {
                return Err(Error::spec(
                    field,
                    "is an IPC sysctl and the container shares the host's IPC namespace \
                     (add an ipc namespace)",
                ));
            }
            continue;
        }
        if k.starts_with("net.") {
            match ns(LinuxNamespaceType::Network) {
                None => {
                    return Err(Error::spec(
                        field,
                        "is not allowed in the host's network namespace",
                    ))
                }
                Some(n) if n.path().as_deref().is_some_and(|p| path_is_ours(p, "net")) => {
                    return Err(Error::spec(
                        field,
                        "is not allowed in the host's network namespace (the namespace path \
                         names the host's)",
                    ))
                }
                Some(_) => continue,
            }
        }
        if ns(LinuxNamespaceType::Uts).is_some() {
            match k.as_str() {
                "kernel.domainname" => continue,
                "kernel.hostname" => {
                    return Err(Error::spec(
                        field,
                        "conflicts with the spec's hostname field: set hostname instead",
                    ))
                }
                _ => {}
            }
        }
        return Err(Error::spec(
            field,
            "is not in a separate kernel namespace: setting it would change the host",
        ));
    }
    Ok(())
}

/// Writes `linux.sysctl` through a verified procfs handle (CVE-2025-52881).
pub fn write_all(spec: &Spec) -> Result<()> {
    use std::io::Write;
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctls {
        let rel = format!("sys/{}", proc_path(key)?);
        let path = format!("/proc/{rel}");
        let fd = open_proc(&rel, OFlag::O_WRONLY).map_err(|e| match e {
            Error::Sys { step, source } => Error::sys(format!("linux.sysctl: {step}"), source),
            Error::InvalidSpec { reason, .. } => Error::spec("linux.sysctl", reason),
            other => other,
        })?;
        std::fs::File::from(fd)
            .write_all(value.as_bytes())
            .map_err(|e| Error::io("linux.sysctl: write", &path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sysctls: serde_json::Value, namespaces: serde_json::Value) -> String {
        let spec: Spec = match serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces, "sysctl": sysctls}
        })) {
            Ok(s) => s,
            Err(e) => return format!("parse: {e}"),
        };
        validate(&spec).map_or_else(|e| e.to_string(), |()| "ok".into())
    }

    #[test]
    fn runc_rules() {
        let all = serde_json::json!([{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]);
        let none = serde_json::json!([{"type": "mount"}]);
        for key in [
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.sem",
            "net.ipv4.ip_forward",
            "net/ipv4/conf/eth0.100/forwarding",
            "kernel.domainname",
        ] {
            assert_eq!(
                check(serde_json::json!({key: "1"}), all.clone()),
                "ok",
                "{key}"
            );
        }
        assert_eq!(
            check(serde_json::json!({"kernel.shmmax": "1"}), none.clone()),
            "linux.sysctl[\"kernel.shmmax\"]: is an IPC sysctl and the container shares the host's IPC namespace (add an ipc namespace)"
        );
        assert!(check(
            serde_json::json!({"net.ipv4.ip_forward": "1"}),
            none.clone()
        )
        .ends_with("is not allowed in the host's network namespace"));
        let host_net = serde_json::json!([{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}]);
        assert!(
            check(serde_json::json!({"net.core.somaxconn": "1"}), host_net)
                .contains("names the host's")
        );
        assert!(
            check(serde_json::json!({"kernel.hostname": "x"}), all.clone())
                .contains("conflicts with the spec's hostname")
        );
        for key in [
            "kernel.core_pattern",
            "vm.overcommit_memory",
            "fs.file-max",
            "kernel.domainname",
        ] {
            let ns = if key == "kernel.domainname" {
                none.clone()
            } else {
                all.clone()
            };
            assert_eq!(
                check(serde_json::json!({key: "1"}), ns),
                format!("linux.sysctl[{key:?}]: is not in a separate kernel namespace: setting it would change the host")
            );
        }
        assert!(
            check(serde_json::json!({"net/../kernel/core_pattern": "1"}), all)
                .contains("invalid key")
        );
    }
}
