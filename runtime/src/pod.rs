//! A pod's namespaces held without a process (containerd's Sandbox API, no pause
//! container): the IPC and UTS namespaces are created by a pod helper — a fresh,
//! single-threaded re-exec of our binary (`child/pod.rs`), because `unshare` in the
//! multi-threaded shim would move one thread only — which applies the pod's hostname
//! and sysctls inside them and pins each by bind-mounting its `/proc/self/ns/*` file
//! onto a file the caller created. The network namespace is the one containerd's CRI
//! created and pinned (CNI has run); the helper joins it only to write `net.*`
//! sysctls. [`PodNamespaces::destroy`] (and [`remove_pins`] after a crash) unmount the
//! pins, which ends the namespaces once no container is in them.
//!
//! A pod that shares its PID namespace (shareProcessNamespace) needs a PID 1: the helper
//! also unshares the PID namespace and forks tent's pod init (`child/pod.rs`), which only
//! reaps orphans and exits on SIGTERM; its pid is the sandbox's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exe::{InitExe, Role};
use crate::sync::{Channel, Message, PodJob};

/// File names of the pins in the pod's directory.
const IPC_PIN: &str = "ns-ipc";
const UTS_PIN: &str = "ns-uts";

/// What the pod's namespaces should be.
#[derive(Debug, Clone)]
pub struct PodRequest<'a> {
    /// Where the pins go (the sandbox's bundle).
    pub dir: &'a Path,
    /// A new IPC namespace (false: the pod shares the host's, hostIPC).
    pub ipc: bool,
    /// A new UTS namespace with this hostname (None: the host's, hostNetwork).
    pub hostname: Option<&'a str>,
    /// The pod's network namespace (None: the host's).
    pub netns: Option<&'a Path>,
    /// The pod's sysctls (`linux.sysctls` of the PodSandboxConfig).
    pub sysctls: &'a BTreeMap<String, String>,
    /// A new PID namespace with tent's pod init as PID 1 (shareProcessNamespace).
    pub pid: bool,
}

/// The pinned namespaces of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNamespaces {
    /// The pinned IPC namespace (a path containers join), if the pod has its own.
    pub ipc: Option<PathBuf>,
    /// The pinned UTS namespace, if the pod has its own.
    pub uts: Option<PathBuf>,
    /// The host pid of the pod's init (PID 1 of its PID namespace), if it has one. The
    /// caller reaps it (it is reparented to the caller, a child subreaper).
    pub init: Option<i32>,
}

impl PodNamespaces {
    /// Creates and pins the pod's namespaces; on any error nothing is left.
    pub fn create(exe: &InitExe, req: &PodRequest<'_>) -> Result<PodNamespaces> {
        validate_sysctls(req)?;
        let mut pins = PodNamespaces {
            ipc: req.ipc.then(|| req.dir.join(IPC_PIN)),
            uts: req.hostname.map(|_| req.dir.join(UTS_PIN)),
            init: None,
        };
        if pins.ipc.is_none() && pins.uts.is_none() && req.sysctls.is_empty() && !req.pid {
            return Ok(pins);
        }
        let result = pins.make_files().and_then(|()| {
            run_helper(
                exe,
                PodJob {
                    ipc_pin: pins.ipc.clone(),
                    uts_pin: pins.uts.clone(),
                    hostname: req.hostname.map(str::to_string),
                    netns: req.netns.map(Path::to_path_buf),
                    sysctls: req.sysctls.clone(),
                    pid: req.pid,
                },
            )
        });
        match result {
            Ok(init) => {
                pins.init = init;
                Ok(pins)
            }
            Err(e) => {
                if let Err(d) = pins.destroy() {
                    log::warn!("pod namespaces: {d}");
                }
                Err(e)
            }
        }
    }

    fn make_files(&self) -> Result<()> {
        for pin in self.ipc.iter().chain(&self.uts) {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(pin)
                .map_err(|e| Error::io("create namespace pin", pin, e))?;
        }
        Ok(())
    }

    /// Unmounts and removes the pins (idempotent).
    pub fn destroy(&self) -> Result<()> {
        let mut first = None;
        for pin in self.ipc.iter().chain(&self.uts) {
            if let Err(e) = remove_pin(pin) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Removes whatever pins a pod directory holds (`shim delete` after a crash).
pub fn remove_pins(dir: &Path) -> Result<()> {
    PodNamespaces {
        ipc: Some(dir.join(IPC_PIN)),
        uts: Some(dir.join(UTS_PIN)),
        init: None,
    }
    .destroy()
}

/// SIGKILLs `pid` if it is still a pod init (after a crash, from the state file): the
/// whole PID namespace ends with it.
pub fn kill_pod_init(pid: i32) -> Result<()> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|a| a == crate::exe::POD_MARKER.as_bytes());
    if !ours {
        return Ok(());
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::sys(format!("kill pod init {pid}"), e)),
    }
}

fn remove_pin(pin: &Path) -> Result<()> {
    match nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("unmount {}", pin.display()), e)),
    }
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove namespace pin", pin, e)),
    }
}

/// runc's sysctl rules against the namespaces the pod will have, before anything exists.
fn validate_sysctls(req: &PodRequest<'_>) -> Result<()> {
    if req.sysctls.is_empty() {
        return Ok(());
    }
    let mut namespaces = vec![serde_json::json!({"type": "mount"})];
    if req.ipc {
        namespaces.push(serde_json::json!({"type": "ipc"}));
    }
    if req.hostname.is_some() {
        namespaces.push(serde_json::json!({"type": "uts"}));
    }
    if let Some(netns) = req.netns {
        namespaces.push(serde_json::json!({"type": "network", "path": netns}));
    }
    crate::sysctl::validate(&sysctl_spec(req.sysctls, namespaces)?).map_err(|e| match e {
        Error::InvalidSpec { field, reason } => Error::InvalidSpec {
            field: field.replace("linux.sysctl", "linux.sysctls"),
            reason,
        },
        other => other,
    })
}

/// A spec carrying only `sysctls` and `namespaces`, for the sysctl module's rules.
pub(crate) fn sysctl_spec(
    sysctls: &BTreeMap<String, String>,
    namespaces: Vec<serde_json::Value>,
) -> Result<oci_spec::runtime::Spec> {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {"namespaces": namespaces, "sysctl": sysctls},
    }))
    .map_err(|e| Error::spec("linux.sysctls", e.to_string()))
}

/// Runs the pod helper; the pod init's pid when it forked one.
fn run_helper(exe: &InitExe, job: PodJob) -> Result<Option<i32>> {
    let (ch, child_end) = Channel::pair()?;
    exe.spawn(Role::Pod, child_end, None, None)?;
    ch.send(&Message::Pod(Box::new(job)), &[])?;
    match ch.recv()? {
        Some((Message::Ready, _)) => Ok(None),
        Some((Message::PodInit(pid), _)) => Ok(Some(pid)),
        Some((Message::Error { step, cause, kind }, _)) => Err(Error::Pod { step, cause, kind }),
        Some((other, _)) => Err(Error::Protocol(format!(
            "pod helper: unexpected message {other:?}"
        ))),
        None => Err(Error::Protocol(
            "the pod helper exited without a report".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_outside_the_pods_namespaces_are_refused_by_name() {
        let dir = Path::new("/nonexistent");
        let sysctls = BTreeMap::from([("kernel.core_pattern".to_string(), "|/x".to_string())]);
        let req = PodRequest {
            dir,
            ipc: true,
            hostname: Some("h"),
            netns: None,
            sysctls: &sysctls,
            pid: false,
        };
        let e = validate_sysctls(&req).expect_err("host sysctl");
        assert!(
            e.to_string()
                .contains("linux.sysctls[\"kernel.core_pattern\"]"),
            "{e}"
        );
        let shm = BTreeMap::from([("kernel.shmmni".to_string(), "100".to_string())]);
        let host_ipc = PodRequest {
            ipc: false,
            sysctls: &shm,
            ..req.clone()
        };
        assert!(validate_sysctls(&host_ipc).is_err());
        let own_ipc = PodRequest {
            sysctls: &shm,
            ..req
        };
        validate_sysctls(&own_ipc).expect("IPC sysctl in the pod's IPC namespace");
    }
}
