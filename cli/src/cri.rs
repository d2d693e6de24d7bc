//! The CRI, as kubelet sees it: `Status` (is the runtime ready, which handlers does it
//! report) and one verification pod on a handler. A blocking client over containerd's unix
//! socket (tonic, a current-thread tokio runtime inside), every call bounded in time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tent_cri_client::{api, CallError, Client, Connection};
use tent_cri_client::{KUBELET_MASKED_PATHS, KUBELET_READONLY_PATHS};

/// Bound of one CRI call (RunPodSandbox included; it may pull the sandbox image).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What `Status` says.
pub struct Status {
    /// `(type, status, reason, message)` of each condition (RuntimeReady, NetworkReady).
    pub conditions: Vec<(String, bool, String, String)>,
    /// Handlers the CRI reports: `runtime_handlers` (containerd 2.x) or, when empty, the
    /// runtime names of the verbose `config` (1.6/1.7).
    pub handlers: Vec<String>,
}

/// A blocking CRI v1 client of one containerd.
pub struct Cri {
    address: PathBuf,
    conn: Connection,
}

impl Cri {
    pub fn connect(address: &Path) -> Result<Cri, String> {
        Ok(Cri {
            address: address.to_path_buf(),
            conn: Connection::open(address, Duration::from_secs(10))?,
        })
    }

    fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, String>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.conn.call(CALL_TIMEOUT, f).map_err(|e| match e {
            CallError::Status(s) => format!(
                "CRI {what} on {}: {:?}: {}",
                self.address.display(),
                s.code(),
                s.message()
            ),
            CallError::Timeout(t) => format!(
                "CRI {what} on {}: no answer within {t:?}",
                self.address.display()
            ),
        })
    }

    pub fn status(&self) -> Result<Status, String> {
        let r = self.call("Status", |mut c| async move {
            c.status(api::StatusRequest { verbose: true }).await
        })?;
        let conditions = r
            .status
            .map(|s| {
                s.conditions
                    .into_iter()
                    .map(|c| (c.r#type, c.status, c.reason, c.message))
                    .collect()
            })
            .unwrap_or_default();
        let mut handlers: Vec<String> = r.runtime_handlers.into_iter().map(|h| h.name).collect();
        if handlers.is_empty() {
            handlers = r
                .info
                .get("config")
                .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
                .and_then(|c| {
                    c.pointer("/containerd/runtimes")
                        .and_then(|r| r.as_object())
                        .map(|m| m.keys().cloned().collect())
                })
                .unwrap_or_default();
        }
        Ok(Status {
            conditions,
            handlers,
        })
    }

    /// A pod on `handler` with one container from `image` (its own entrypoint): created,
    /// started, seen running, then stopped and removed (also when a step fails). The pod's uid.
    pub fn verify_pod(&self, v: &VerifyPod) -> Result<String, String> {
        let uid = format!("tentverify{}{}", std::process::id(), unix_millis());
        let log_dir = v.log_root.join(&uid);
        let local_log_dir = v.log_root_here.join(&uid);
        std::fs::create_dir_all(&local_log_dir)
            .map_err(|e| format!("mkdir {}: {e}", local_log_dir.display()))?;
        let cgroup_parent = if v.systemd {
            format!("kubepods-besteffort-pod{uid}.slice")
        } else {
            format!("/kubepods/besteffort/pod{uid}")
        };
        let unconfined = api::SecurityProfile {
            profile_type: api::security_profile::ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        };
        let ns = api::NamespaceOption {
            network: api::NamespaceMode::Pod as i32,
            pid: api::NamespaceMode::Container as i32,
            ipc: api::NamespaceMode::Pod as i32,
            ..Default::default()
        };
        let pod = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "tent-verify".into(),
                uid: uid.clone(),
                namespace: "kube-system".into(),
                attempt: 0,
            }),
            hostname: "tent-verify".into(),
            log_directory: log_dir.display().to_string(),
            dns_config: Some(api::DnsConfig::default()),
            labels: HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.clone())]),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent,
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(ns.clone()),
                    seccomp: Some(unconfined.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (cfg, handler) = (pod.clone(), v.handler.clone());
        let pod_id = self
            .call("RunPodSandbox", |mut c| async move {
                c.run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(cfg),
                    runtime_handler: handler,
                })
                .await
            })?
            .pod_sandbox_id;
        let result = self.run_container(&pod_id, &pod, v, ns, unconfined);
        let stop = self.remove_pod(&pod_id);
        let _ = std::fs::remove_dir_all(&local_log_dir);
        if !v.systemd {
            remove_pod_cgroups(&v.cgroup_root_here, &uid);
        }
        result.and(stop).map(|()| uid)
    }

    fn run_container(
        &self,
        pod_id: &str,
        pod: &api::PodSandboxConfig,
        v: &VerifyPod,
        ns: api::NamespaceOption,
        seccomp: api::SecurityProfile,
    ) -> Result<(), String> {
        let config = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "verify".into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: v.image.clone(),
                ..Default::default()
            }),
            log_path: "verify/0.log".into(),
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(ns),
                    seccomp: Some(seccomp),
                    masked_paths: KUBELET_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
                    readonly_paths: KUBELET_READONLY_PATHS
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (id, cfg, p) = (pod_id.to_string(), pod.clone(), config);
        let cid = self
            .call("CreateContainer", |mut c| async move {
                c.create_container(api::CreateContainerRequest {
                    pod_sandbox_id: id,
                    config: Some(p),
                    sandbox_config: Some(cfg),
                })
                .await
            })?
            .container_id;
        let id = cid.clone();
        self.call("StartContainer", |mut c| async move {
            c.start_container(api::StartContainerRequest { container_id: id })
                .await
        })?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let id = cid.clone();
            let s = self
                .call("ContainerStatus", |mut c| async move {
                    c.container_status(api::ContainerStatusRequest {
                        container_id: id,
                        verbose: false,
                    })
                    .await
                })?
                .status
                .ok_or("ContainerStatus: no status")?;
            match api::ContainerState::try_from(s.state) {
                Ok(api::ContainerState::ContainerRunning) => return Ok(()),
                Ok(api::ContainerState::ContainerExited) => {
                    return Err(format!(
                        "the verification container ({}) exited with {}: {} {}",
                        v.image, s.exit_code, s.reason, s.message
                    ))
                }
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "the verification container ({}) was not running within 60 s (state {})",
                        v.image, s.state
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn remove_pod(&self, pod_id: &str) -> Result<(), String> {
        let id = pod_id.to_string();
        self.call("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: id })
                .await
        })?;
        let id = pod_id.to_string();
        self.call("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
        })?;
        Ok(())
    }
}

/// The verification pod's parameters.
pub struct VerifyPod {
    pub handler: String,
    /// An image already on the node (the sandbox image by default): run with its entrypoint.
    pub image: String,
    /// Where the pod's log directory is made (and removed): the host's path (told to the
    /// CRI) and the same directory as this process reaches it.
    pub log_root: PathBuf,
    pub log_root_here: PathBuf,
    /// kubelet's systemd cgroup driver: a `.slice` parent, as kubelet sends.
    pub systemd: bool,
    /// The host's /sys/fs/cgroup as this process reaches it (pod cgroup dirs removed there).
    pub cgroup_root_here: PathBuf,
}

/// The pod-level cgroup directories the runtime made under the cgroupfs parent (kubelet
/// removes its pods' own; this pod is not kubelet's). `rmdir` only: never a non-empty one.
fn remove_pod_cgroups(root: &Path, uid: &str) {
    let rel = format!("kubepods/besteffort/pod{uid}");
    let mut dirs = vec![root.join(&rel)];
    if let Ok(rd) = std::fs::read_dir(root) {
        dirs.extend(rd.flatten().map(|e| e.path().join(&rel)));
    }
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
