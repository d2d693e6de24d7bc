//! A small CRI v1 client over containerd's unix socket, sending what kubelet sends.
//!
//! - [`Cri::connect`] opens one gRPC channel (tonic, a current-thread tokio runtime inside) to
//!   a [`Containerd`]'s socket; every call blocks and is bounded by [`CRI_TIMEOUT`].
//! - [`pod_config`] and [`container_config`] build the requests kubelet builds for a plain pod:
//!   metadata with a fresh uid, hostname, log directory, a cgroupfs `cgroup_parent`
//!   (`/kubepods/besteffort/pod<uid>`), namespace options (network and IPC per pod, PID per
//!   container), `seccomp: Unconfined` (kubelet's default without `SeccompDefault`) and
//!   kubelet's default masked and read-only paths. Tests change the fields they are about.
//! - [`Pod`] is a running sandbox on one runtime handler (`tent`, `tent-compat`, `runc`); it
//!   stops and removes its containers and itself on drop. [`Pod::remove`] does the same and
//!   then checks nothing is left ([`Cri::assert_pod_gone`]): no shim, mounts, cgroup dirs,
//!   process in the pod's cgroups, bundle or CRI state dirs, network namespace pin, shim
//!   socket, for the pod or any of its containers.
//! - Images are never pulled: `hack/containerd.sh up` imports the test image into the `k8s.io`
//!   namespace, where CRI finds `docker.io/library/tent-test:latest` (and the pod sandbox
//!   image `docker.io/library/tent-test:pause`).
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tent_cri_client::{CallError, Client, Connection};

use crate::{cgroup_roots, cmdline, mounts_mentioning, unique_id, Containerd, IMAGE};

pub use api::security_profile::ProfileType;
pub use api::NamespaceMode;
pub use api::{
    Capability, ContainerConfig, ContainerState, ContainerStatus, ExecSyncResponse,
    NamespaceOption, PodSandboxConfig, SecurityProfile,
};
/// The generated CRI v1 types and client (`runtime.v1`, crate `tent-cri-client`).
pub use tent_cri_client::api;
/// kubelet's default masked and read-only paths (`securitycontext.DefaultProcMount`).
pub use tent_cri_client::{KUBELET_MASKED_PATHS, KUBELET_READONLY_PATHS};
pub use tonic::Status;

/// containerd namespace of CRI's containers.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// Runtime handlers configured by `hack/containerd.sh`.
pub const TENT: &str = "tent";
pub const TENT_COMPAT: &str = "tent-compat";
pub const RUNC: &str = "runc";
/// tent with an audit budget in deny mode (`config/tent-budget.toml`).
pub const TENT_BUDGET: &str = "tent-budget";
/// The same budget in warn mode (`config/tent-budget-warn.toml`).
pub const TENT_BUDGET_WARN: &str = "tent-budget-warn";
/// The handler whose pods have no pause container (`sandboxer = "shim"`, containerd 2.x).
pub const TENT_PAUSELESS: &str = "tent-pauseless";
/// The CRI handler of the runtime under test (`TENT_TEST_RUNTIME`): `runc` when the Task API
/// tests run against runc, else `tent`.
pub fn handler_under_test() -> &'static str {
    if crate::is_runc() {
        RUNC
    } else {
        TENT
    }
}
/// Bound of one CRI call (RunPodSandbox included).
pub const CRI_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking CRI v1 client of one containerd.
pub struct Cri<'a> {
    ctd: &'a Containerd,
    conn: Connection,
}

impl<'a> Cri<'a> {
    /// Connect to `ctd`'s CRI (its gRPC socket) and check it answers `Version`.
    pub fn connect(ctd: &'a Containerd) -> Cri<'a> {
        let conn = Connection::open(&ctd.address(), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail(20)));
        let cri = Cri { ctd, conn };
        let v = cri
            .call(|mut c| async move { c.version(api::VersionRequest::default()).await })
            .unwrap_or_else(|e| panic!("CRI Version: {e}\n{}", ctd.log_tail(20)));
        assert_eq!(v.runtime_api_version, "v1", "{v:?}");
        cri
    }

    pub fn containerd(&self) -> &'a Containerd {
        self.ctd
    }

    /// One CRI call on a clone of the client (cheap: the channel is shared), bounded in time.
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, tonic::Status>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.conn.call(CRI_TIMEOUT, f).map_err(|e| match e {
            CallError::Status(s) => s,
            CallError::Timeout(t) => {
                tonic::Status::deadline_exceeded(format!("CRI call timed out after {t:?}"))
            }
        })
    }

    /// RunPodSandbox on `handler`; the sandbox id.
    pub fn run_pod_sandbox(
        &self,
        config: &PodSandboxConfig,
        handler: &str,
    ) -> Result<String, tonic::Status> {
        let req = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        self.call(|mut c| async move { c.run_pod_sandbox(req).await })
            .map(|r| r.pod_sandbox_id)
    }

    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), tonic::Status> {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(|mut c| async move { c.stop_pod_sandbox(req).await })
            .map(|_| ())
    }

    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), tonic::Status> {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(|mut c| async move { c.remove_pod_sandbox(req).await })
            .map(|_| ())
    }

    /// PodSandboxStatus with `verbose` (containerd's `info` map: `info` holds its JSON).
    pub fn pod_sandbox_status(
        &self,
        id: &str,
    ) -> Result<api::PodSandboxStatusResponse, tonic::Status> {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        self.call(|mut c| async move { c.pod_sandbox_status(req).await })
    }

    /// Sandboxes (any state) labelled `label=value`.
    pub fn list_pod_sandboxes(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<api::PodSandbox>, tonic::Status> {
        let req = api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: HashMap::from([(label.to_string(), value.to_string())]),
                ..Default::default()
            }),
        };
        self.call(|mut c| async move { c.list_pod_sandbox(req).await })
            .map(|r| r.items)
    }

    /// Containers (any state) of a sandbox.
    pub fn list_containers(&self, pod_id: &str) -> Result<Vec<api::Container>, tonic::Status> {
        let req = api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                pod_sandbox_id: pod_id.to_string(),
                ..Default::default()
            }),
        };
        self.call(|mut c| async move { c.list_containers(req).await })
            .map(|r| r.containers)
    }

    /// CreateContainer in a sandbox (kubelet passes the sandbox's config again); the id.
    pub fn create_container(
        &self,
        pod_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod_id.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox_config.clone()),
        };
        self.call(|mut c| async move { c.create_container(req).await })
            .map(|r| r.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), tonic::Status> {
        let req = api::StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call(|mut c| async move { c.start_container(req).await })
            .map(|_| ())
    }

    /// StopContainer: the stop signal, SIGKILL after `timeout_s` (kubelet's grace period).
    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), tonic::Status> {
        let req = api::StopContainerRequest {
            container_id: id.to_string(),
            timeout: timeout_s,
        };
        self.call(|mut c| async move { c.stop_container(req).await })
            .map(|_| ())
    }

    pub fn remove_container(&self, id: &str) -> Result<(), tonic::Status> {
        let req = api::RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.call(|mut c| async move { c.remove_container(req).await })
            .map(|_| ())
    }

    /// ContainerStatus with `verbose` (`info["info"]` holds containerd's JSON with the
    /// container's OCI `runtimeSpec`).
    pub fn container_status(
        &self,
        id: &str,
    ) -> Result<api::ContainerStatusResponse, tonic::Status> {
        let req = api::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        self.call(|mut c| async move { c.container_status(req).await })
    }

    /// ExecSync `cmd` in a container (bounded by `timeout_s` on containerd's side).
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<ExecSyncResponse, tonic::Status> {
        let req = api::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        self.call(|mut c| async move { c.exec_sync(req).await })
    }

    /// Exec (streaming): the URL on containerd's streaming server ([`crate::stream`]).
    pub fn exec(&self, req: api::ExecRequest) -> Result<String, tonic::Status> {
        self.call(|mut c| async move { c.exec(req).await })
            .map(|r| r.url)
    }

    /// Attach (streaming): the URL on containerd's streaming server.
    pub fn attach(&self, req: api::AttachRequest) -> Result<String, tonic::Status> {
        self.call(|mut c| async move { c.attach(req).await })
            .map(|r| r.url)
    }

    /// PortForward to `ports` of a sandbox: the URL on containerd's streaming server.
    pub fn port_forward(&self, pod_id: &str, ports: &[i32]) -> Result<String, tonic::Status> {
        let req = api::PortForwardRequest {
            pod_sandbox_id: pod_id.to_string(),
            port: ports.to_vec(),
        };
        self.call(|mut c| async move { c.port_forward(req).await })
            .map(|r| r.url)
    }

    /// ReopenContainerLog (kubelet's log rotation: after renaming the file).
    pub fn reopen_container_log(&self, id: &str) -> Result<(), tonic::Status> {
        let req = api::ReopenContainerLogRequest {
            container_id: id.to_string(),
        };
        self.call(|mut c| async move { c.reopen_container_log(req).await })
            .map(|_| ())
    }

    pub fn container_stats(&self, id: &str) -> Result<api::ContainerStats, tonic::Status> {
        let req = api::ContainerStatsRequest {
            container_id: id.to_string(),
        };
        self.call(|mut c| async move { c.container_stats(req).await })
            .and_then(|r| {
                r.stats
                    .ok_or_else(|| tonic::Status::not_found("ContainerStats: no stats"))
            })
    }

    /// ListContainerStats of one sandbox's containers.
    pub fn list_container_stats(
        &self,
        pod_id: &str,
    ) -> Result<Vec<api::ContainerStats>, tonic::Status> {
        let req = api::ListContainerStatsRequest {
            filter: Some(api::ContainerStatsFilter {
                pod_sandbox_id: pod_id.to_string(),
                ..Default::default()
            }),
        };
        self.call(|mut c| async move { c.list_container_stats(req).await })
            .map(|r| r.stats)
    }

    /// ListPodSandboxStats of one sandbox.
    pub fn list_pod_sandbox_stats(
        &self,
        pod_id: &str,
    ) -> Result<Vec<api::PodSandboxStats>, tonic::Status> {
        let req = api::ListPodSandboxStatsRequest {
            filter: Some(api::PodSandboxStatsFilter {
                id: pod_id.to_string(),
                ..Default::default()
            }),
        };
        self.call(|mut c| async move { c.list_pod_sandbox_stats(req).await })
            .map(|r| r.stats)
    }

    pub fn update_container_resources(
        &self,
        id: &str,
        linux: api::LinuxContainerResources,
    ) -> Result<(), tonic::Status> {
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        self.call(|mut c| async move { c.update_container_resources(req).await })
            .map(|_| ())
    }

    /// Everything a removed pod (sandbox `pod_id`, containers `ids`, kubelet's pod `uid`)
    /// could leave behind.
    pub fn pod_leftovers(&self, pod_id: Option<&str>, ids: &[String], uid: &str) -> Vec<String> {
        let ctd = self.ctd;
        let mut v = Vec::new();
        let all: Vec<&str> = pod_id
            .into_iter()
            .chain(ids.iter().map(String::as_str))
            .collect();
        for id in &all {
            for m in mounts_mentioning(id) {
                v.push(format!("mount of {id}: {m}"));
            }
            for p in ctd.shim_pids_for(id) {
                v.push(format!("shim process {p}: {}", cmdline(p)));
            }
            let state = ctd.state_dir();
            let root = ctd.dir().join("root");
            for d in [
                state
                    .join("io.containerd.runtime.v2.task")
                    .join(CRI_NAMESPACE)
                    .join(id),
                state.join("io.containerd.grpc.v1.cri/sandboxes").join(id),
                state.join("io.containerd.grpc.v1.cri/containers").join(id),
                root.join("io.containerd.grpc.v1.cri/sandboxes").join(id),
                root.join("io.containerd.grpc.v1.cri/containers").join(id),
                // A pauseless pod's sandbox bundle (containerd 2.x's shim sandboxer).
                state
                    .join("io.containerd.sandbox.controller.v1.shim")
                    .join(CRI_NAMESPACE)
                    .join(id),
                root.join("io.containerd.sandbox.controller.v1.shim")
                    .join(CRI_NAMESPACE)
                    .join(id),
            ] {
                if d.exists() {
                    v.push(format!("dir of {id}: {}", d.display()));
                }
            }
        }
        // Any shim of this daemon whose bundle belongs to the pod (a sandbox whose id the
        // test never learnt, e.g. after a failed RunPodSandbox).
        for p in ctd.shim_pids("") {
            let spec =
                std::fs::read_to_string(format!("/proc/{p}/cwd/config.json")).unwrap_or_default();
            if mentions_uid(&spec, uid) {
                v.push(format!("shim process {p} of pod {uid}: {}", cmdline(p)));
            }
        }
        let bundles = ctd
            .state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(CRI_NAMESPACE);
        for name in crate::read_dir_names(&bundles) {
            let spec = std::fs::read_to_string(bundles.join(&name).join("config.json"))
                .unwrap_or_default();
            if mentions_uid(&spec, uid) {
                v.push(format!(
                    "bundle of pod {uid}: {}",
                    bundles.join(name).display()
                ));
            }
        }
        // Cgroups: the runtime creates `<cgroup_parent>/<id>`; the pod's own dir is kubelet's.
        for d in pod_cgroup_dirs(uid) {
            for child in crate::read_dir_names(&d) {
                if d.join(&child).is_dir() {
                    v.push(format!("cgroup dir: {}", d.join(child).display()));
                }
            }
        }
        // Processes still in one of the pod's cgroups (in any hierarchy), e.g. a container
        // process that outlived its container's cgroup dir being emptied.
        for (p, cmd) in crate::processes() {
            let cg = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
            if mentions_uid(&cg, uid) {
                v.push(format!("process {p} in the pod's cgroup: {cmd}"));
            }
        }
        v
    }

    /// The unix socket path of the shim serving `id` (`<bundle>/address`), while it runs.
    pub fn shim_socket(&self, id: &str) -> Option<PathBuf> {
        let a = std::fs::read_to_string(
            self.ctd
                .state_dir()
                .join("io.containerd.runtime.v2.task")
                .join(CRI_NAMESPACE)
                .join(id)
                .join("address"),
        )
        .ok()?;
        let a = a.trim();
        let path = a.strip_prefix("unix://").unwrap_or(a);
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// Wait (up to 10 s: shims exit asynchronously) until [`Self::pod_leftovers`] is empty,
    /// then remove the pod's cgroup dirs as kubelet does; panic with the list otherwise.
    #[track_caller]
    pub fn assert_pod_gone(&self, pod_id: Option<&str>, ids: &[String], uid: &str) {
        let t = Instant::now();
        loop {
            let left = self.pod_leftovers(pod_id, ids, uid);
            if left.is_empty() {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                panic!(
                    "pod {uid} (sandbox {pod_id:?}, containers {ids:?}) left behind:\n  {}\ndaemon log:\n{}",
                    left.join("\n  "),
                    self.ctd.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(l) = self.list_pod_sandboxes(UID_LABEL, uid) {
            assert!(l.is_empty(), "CRI still lists the pod's sandboxes: {l:?}");
        }
        remove_pod_cgroups(uid);
    }
}

/// Label every test pod carries (its uid), to find its sandboxes when RunPodSandbox failed.
pub const UID_LABEL: &str = "tent.test/uid";

/// The cgroupfs `cgroup_parent` kubelet gives a BestEffort pod.
pub fn cgroup_parent(uid: &str) -> String {
    format!("/kubepods/besteffort/pod{uid}")
}

/// Existing `<hierarchy>/kubepods/besteffort/pod<uid>` dirs.
pub fn pod_cgroup_dirs(uid: &str) -> Vec<PathBuf> {
    let rel = cgroup_parent(uid);
    cgroup_roots()
        .into_iter()
        .map(|r| r.join(rel.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

/// rmdir the pod's cgroup dirs (kubelet's job once the pod is gone). The shared
/// `kubepods/besteffort` parents stay, as on a node: removing them raced another test's
/// runtime between its mkdir of the parent and of its pod dir (runc: `mkdir .../pod<uid>: ENOENT`).
fn remove_pod_cgroups(uid: &str) {
    for d in pod_cgroup_dirs(uid) {
        let _ = std::fs::remove_dir(&d);
    }
}

/// The request kubelet builds for a pod named `name` (fresh uid, namespace `tent-it`).
pub fn pod_config(ctd: &Containerd, name: &str) -> PodSandboxConfig {
    let uid = unique_id("uid").replace('-', "");
    let log_dir = ctd.dir().join("pods").join(&uid);
    std::fs::create_dir_all(&log_dir).expect("mkdir pod log dir");
    PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.clone(),
            namespace: "tent-it".to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_dir.display().to_string(),
        dns_config: Some(api::DnsConfig::default()),
        labels: HashMap::from([
            (UID_LABEL.to_string(), uid.clone()),
            ("io.kubernetes.pod.name".to_string(), name.to_string()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                "tent-it".to_string(),
            ),
            ("io.kubernetes.pod.uid".to_string(), uid.clone()),
        ]),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(&uid),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(pod_namespaces()),
                seccomp: Some(profile(ProfileType::Unconfined, "")),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// kubelet's namespace options for a plain pod: network and IPC per pod, PID per container.
pub fn pod_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A seccomp (or AppArmor) profile reference.
pub fn profile(t: ProfileType, localhost_ref: &str) -> SecurityProfile {
    SecurityProfile {
        profile_type: t as i32,
        localhost_ref: localhost_ref.to_string(),
    }
}

/// The request kubelet builds for container `name` running `command` from the test image.
pub fn container_config(name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: IMAGE.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        envs: vec![api::KeyValue {
            key: "PATH".to_string(),
            value: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        }],
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("io.kubernetes.container.name".to_string(), name.to_string())]),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(api::LinuxContainerResources {
                cpu_shares: 2,
                oom_score_adj: 1000,
                ..Default::default()
            }),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(pod_namespaces()),
                seccomp: Some(profile(ProfileType::Unconfined, "")),
                masked_paths: KUBELET_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
                readonly_paths: KUBELET_READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The container's security context (always present in [`container_config`]'s requests).
pub fn security_context(c: &mut ContainerConfig) -> &mut api::LinuxContainerSecurityContext {
    c.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
}

/// The sandbox's Linux config (always present in [`pod_config`]'s requests).
pub fn pod_linux(p: &mut PodSandboxConfig) -> &mut api::LinuxPodSandboxConfig {
    p.linux.get_or_insert_with(Default::default)
}

/// A running pod sandbox on one runtime handler; stopped and removed on drop.
pub struct Pod<'c, 'a> {
    cri: &'c Cri<'a>,
    pub id: String,
    pub config: PodSandboxConfig,
    pub handler: String,
    containers: Vec<String>,
    /// Containers removed before the pod (still checked for leftovers).
    removed_containers: Vec<String>,
    removed: bool,
}

impl<'c, 'a> Pod<'c, 'a> {
    /// RunPodSandbox; on failure the status, after checking nothing of the pod was left.
    pub fn run(
        cri: &'c Cri<'a>,
        config: PodSandboxConfig,
        handler: &str,
    ) -> Result<Pod<'c, 'a>, tonic::Status> {
        match cri.run_pod_sandbox(&config, handler) {
            Ok(id) => Ok(Pod {
                cri,
                id,
                config,
                handler: handler.to_string(),
                containers: Vec::new(),
                removed_containers: Vec::new(),
                removed: false,
            }),
            Err(e) => {
                // containerd names the sandbox in some errors ("failed to start sandbox
                // \"<id>\"" on 2.x): check that id's leftovers too.
                let id = sandbox_id_in(e.message());
                cri.assert_pod_gone(id.as_deref(), &[], &uid_of(&config));
                Err(e)
            }
        }
    }

    pub fn uid(&self) -> String {
        uid_of(&self.config)
    }

    /// CreateContainer (recorded for clean-up when it succeeds).
    pub fn create(&mut self, config: &ContainerConfig) -> Result<String, tonic::Status> {
        let id = self.cri.create_container(&self.id, config, &self.config)?;
        self.containers.push(id.clone());
        Ok(id)
    }

    /// StartContainer.
    pub fn start(&self, id: &str) -> Result<(), tonic::Status> {
        self.cri.start_container(id)
    }

    /// CreateContainer + StartContainer, then wait until CRI reports it running; panics on
    /// any error with the daemon's log.
    #[track_caller]
    pub fn run_container(&mut self, config: &ContainerConfig) -> String {
        let log = |e: &tonic::Status| format!("{e}\ndaemon log:\n{}", self.cri.ctd.log_tail(30));
        let id = self
            .create(config)
            .unwrap_or_else(|e| panic!("CreateContainer on {}: {}", self.handler, log(&e)));
        if let Err(e) = self.cri.start_container(&id) {
            panic!("StartContainer on {}: {}", self.handler, log(&e));
        }
        self.wait_state(
            &id,
            ContainerState::ContainerRunning,
            Duration::from_secs(20),
        );
        id
    }

    /// Wait until ContainerStatus reports `want`.
    #[track_caller]
    pub fn wait_state(&self, id: &str, want: ContainerState, timeout: Duration) -> ContainerStatus {
        let t = Instant::now();
        loop {
            let st = self
                .cri
                .container_status(id)
                .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
                .status
                .expect("status");
            if st.state == want as i32 {
                return st;
            }
            assert!(
                t.elapsed() < timeout,
                "container {id} not {want:?} after {timeout:?}: {st:?}\n{}",
                self.cri.ctd.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// ExecSync; panics on a CRI error.
    #[track_caller]
    pub fn exec(&self, id: &str, cmd: &[&str]) -> ExecSyncResponse {
        self.cri.exec_sync(id, cmd, 30).unwrap_or_else(|e| {
            panic!(
                "ExecSync {cmd:?} in {id}: {e}\n{}",
                self.cri.ctd.log_tail(30)
            )
        })
    }

    /// ExecSync that must exit 0; its stdout.
    #[track_caller]
    pub fn exec_ok(&self, id: &str, cmd: &[&str]) -> String {
        let r = self.exec(id, cmd);
        let out = String::from_utf8_lossy(&r.stdout).into_owned();
        assert_eq!(
            r.exit_code,
            0,
            "{cmd:?} in {id}: stdout {out:?} stderr {:?}",
            String::from_utf8_lossy(&r.stderr)
        );
        out
    }

    /// The container's OCI spec as containerd built it (ContainerStatus verbose info).
    pub fn runtime_spec(&self, id: &str) -> serde_json::Value {
        let r = self
            .cri
            .container_status(id)
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"));
        let info: serde_json::Value =
            serde_json::from_str(r.info.get("info").map(String::as_str).unwrap_or("{}"))
                .expect("ContainerStatus info json");
        info["runtimeSpec"].clone()
    }

    /// The host pid of a container's init (ContainerStatus verbose info `pid`).
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        let r = self
            .cri
            .container_status(id)
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"));
        let info: serde_json::Value =
            serde_json::from_str(r.info.get("info").map(String::as_str).unwrap_or("{}"))
                .expect("ContainerStatus info json");
        info["pid"]
            .as_i64()
            .filter(|p| *p > 0)
            .unwrap_or_else(|| panic!("no pid for {id} in {info}")) as i32
    }

    /// The CRI client this pod was created with.
    pub fn cri(&self) -> &'c Cri<'a> {
        self.cri
    }

    /// The sandbox's network namespace path (PodSandboxStatus verbose info), if any: the
    /// pause container's spec, or what a pauseless pod's shim reports (`netns`; containerd
    /// passes a shim sandboxer's info through).
    pub fn netns_path(&self) -> Option<PathBuf> {
        let r = self.cri.pod_sandbox_status(&self.id).ok()?;
        let info: serde_json::Value =
            serde_json::from_str(r.info.get("info").map(String::as_str)?).ok()?;
        let path = if is_pauseless(&self.handler) {
            info["netns"].as_str()
        } else {
            info["runtimeSpec"]["linux"]["namespaces"]
                .as_array()?
                .iter()
                .find(|n| n["type"] == "network")
                .and_then(|n| n["path"].as_str())
        };
        path.filter(|p| !p.is_empty()).map(PathBuf::from)
    }

    /// Shim processes of this daemon serving this pod: those whose cmdline names the sandbox
    /// or one of its containers (`-id <id>`), or whose bundle (cwd) is one of theirs.
    pub fn shim_pids(&self) -> Vec<i32> {
        let ctd = self.cri.ctd;
        let bundles = ctd
            .state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(CRI_NAMESPACE);
        let ids: Vec<&str> = std::iter::once(self.id.as_str())
            .chain(self.containers.iter().map(String::as_str))
            .collect();
        ctd.shim_pids("")
            .into_iter()
            .filter(|p| {
                let named = ids.iter().any(|id| ctd.shim_pids_for(id).contains(p));
                let cwd = std::fs::read_link(format!("/proc/{p}/cwd")).unwrap_or_default();
                named || ids.iter().any(|id| cwd == bundles.join(id))
            })
            .collect()
    }

    /// StopContainer + RemoveContainer of one container now (a restart, a failed one); its
    /// leftovers are still checked when the pod is removed.
    pub fn remove_container(&mut self, id: &str, timeout_s: i64) -> Result<(), tonic::Status> {
        self.cri.stop_container(id, timeout_s)?;
        self.cri.remove_container(id)?;
        self.containers.retain(|c| c != id);
        self.removed_containers.push(id.to_string());
        Ok(())
    }

    /// Containers of this pod created so far.
    pub fn containers(&self) -> &[String] {
        &self.containers
    }

    /// Stop (grace period 10 s, as a TERM-handling container needs) and remove every
    /// container, stop and remove the sandbox, then check nothing is left.
    #[track_caller]
    pub fn remove(mut self) {
        let netns = self.netns_path();
        let socket = self.cri.shim_socket(&self.id);
        let errs = self.teardown();
        assert!(errs.is_empty(), "tearing pod {} down: {errs:#?}", self.id);
        let all: Vec<String> = self
            .containers
            .iter()
            .chain(&self.removed_containers)
            .cloned()
            .collect();
        self.cri.assert_pod_gone(Some(&self.id), &all, &self.uid());
        if let Some(ns) = netns {
            assert!(
                !ns.exists(),
                "network namespace {} left behind",
                ns.display()
            );
        }
        if let Some(sock) = socket {
            // The shim exits asynchronously; assert_pod_gone waited for the process.
            let t = Instant::now();
            while sock.exists() && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                !sock.exists(),
                "the pod's shim socket {} left behind",
                sock.display()
            );
        }
        let gone = self.cri.pod_sandbox_status(&self.id);
        assert!(gone.is_err(), "sandbox {} still known: {gone:?}", self.id);
    }

    fn teardown(&mut self) -> Vec<String> {
        self.removed = true;
        let mut errs = Vec::new();
        for c in &self.containers {
            if let Err(e) = self.cri.stop_container(c, 10) {
                errs.push(format!("StopContainer {c}: {e}"));
            }
            if let Err(e) = self.cri.remove_container(c) {
                errs.push(format!("RemoveContainer {c}: {e}"));
            }
        }
        if let Err(e) = self.cri.stop_pod_sandbox(&self.id) {
            errs.push(format!("StopPodSandbox: {e}"));
        }
        if let Err(e) = self.cri.remove_pod_sandbox(&self.id) {
            errs.push(format!("RemovePodSandbox: {e}"));
        }
        errs
    }
}

impl Drop for Pod<'_, '_> {
    fn drop(&mut self) {
        if !self.removed {
            let errs = self.teardown();
            if !errs.is_empty() {
                eprintln!("cri: clean-up of pod {}: {errs:?}", self.id);
            }
            remove_pod_cgroups(&self.uid());
        }
    }
}

/// Does `text` (a spec, a `/proc/<pid>/cgroup`) name pod `uid` as a whole word: its cgroup
/// dir `pod<uid>` or a JSON string `"<uid>"`? (A plain substring test would also match the
/// uids that extend it, `uid1231` in `uid12310`.)
fn mentions_uid(text: &str, uid: &str) -> bool {
    let dir = format!("pod{uid}");
    text.match_indices(&dir).any(|(i, _)| {
        !text[i + dir.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
    }) || text.contains(&format!("\"{uid}\""))
}

/// The first 64-hex-digit word of a message (a containerd sandbox or container id).
fn sandbox_id_in(msg: &str) -> Option<String> {
    msg.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 64)
        .map(String::from)
}

fn uid_of(c: &PodSandboxConfig) -> String {
    c.metadata
        .as_ref()
        .map(|m| m.uid.clone())
        .unwrap_or_default()
}

/// The handlers a pod test runs on, in one run: `tent`, `tent-pauseless` on containerd 2.x
/// (the only versions with a shim sandboxer), and `runc` as the reference that validates the
/// test itself (only `runc` when the runtime under test is runc,
/// `TENT_TEST_RUNTIME=io.containerd.runc.v2`).
pub fn handlers() -> Vec<&'static str> {
    if crate::is_runc() {
        vec![RUNC]
    } else if has_pauseless() {
        vec![TENT, TENT_PAUSELESS, RUNC]
    } else {
        vec![TENT, RUNC]
    }
}

/// Does the containerd under test have the `tent-pauseless` handler (2.x's `sandboxer =
/// "shim"`; hack/containerd.sh writes it only there)?
pub fn has_pauseless() -> bool {
    crate::containerd_version().starts_with('2')
}

/// Is `handler` one whose pods have no sandbox container (no pause process)?
pub fn is_pauseless(handler: &str) -> bool {
    handler == TENT_PAUSELESS
}

/// Run `f` once per handler in `list`, each to its end even if another failed, then panic
/// naming every handler that failed (so a tent failure never hides runc's verdict, or the
/// other way round). Pods are removed by their guards as the panic unwinds.
#[track_caller]
pub fn on_each(list: &[&str], f: impl Fn(&str)) {
    let mut failed = Vec::new();
    for h in list {
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(h)));
        match r {
            Ok(()) => eprintln!("handler {h}: ok ({:.1?})", t.elapsed()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("handler {h}: FAILED ({:.1?})", t.elapsed());
                failed.push(format!("handler {h}: {msg}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "failed on {} of {:?}:\n{}",
        failed.len(),
        list,
        failed.join("\n---\n")
    );
}

/// [`on_each`] over [`handlers`].
#[track_caller]
pub fn on_each_handler(f: impl Fn(&str)) {
    on_each(&handlers(), f)
}

#[cfg(test)]
mod tests {
    use super::mentions_uid;

    #[test]
    fn a_uid_is_matched_as_a_whole_word_only() {
        let cg = "4:memory:/kubepods/besteffort/poduid12310/abc\n";
        assert!(mentions_uid(cg, "uid12310"));
        assert!(!mentions_uid(cg, "uid1231"));
        assert!(mentions_uid("1:name=x:/kubepods/poduid7\n", "uid7"));
        assert!(mentions_uid("kubepods-besteffort-poduid7.slice", "uid7"));
        let spec = r#"{"io.kubernetes.cri.sandbox-uid":"uid12310"}"#;
        assert!(mentions_uid(spec, "uid12310"));
        assert!(!mentions_uid(spec, "uid1231"));
    }
}
