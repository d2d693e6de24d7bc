//! containerd's Sandbox API (`containerd.runtime.sandbox.v1.Sandbox`, `sandboxer = "shim"`)
//! as plain async methods: a pod without a pause process. The ttrpc adapter is
//! [`crate::service::SandboxService`].
//!
//! CreateSandbox writes the files CRI binds into app containers ([`crate::pod_files`]) and
//! creates the pod's IPC and UTS namespaces, pinned in the bundle
//! (`tent_runtime::PodNamespaces`); the network namespace is the one CRI gives. The pod has
//! no process: StartSandbox and SandboxStatus answer pid 0, and app containers' namespace
//! paths, which CRI builds from that pid (`/proc/0/ns/*`), are rewritten to the pins
//! ([`Sandbox::namespaces`], [`rewrite_namespaces`]). Only a pod sharing its PID namespace
//! (shareProcessNamespace) gets a process: tent's pod init as PID 1, which reaps orphans;
//! its pid is the sandbox's (CRI then builds the paths from it), its exit ends WaitSandbox.
//!
//! What was made is kept in `<bundle>/tent-sandbox.json`, so `shim delete` after a crash
//! removes it ([`cleanup_bundle`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::sandbox_api::*;
use containerd_shim_protos::types::platform::Platform;
use serde::{Deserialize, Serialize};
use tent_runtime::{PodNamespaces, PodRequest};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::events::timestamp;
use crate::pod_config::{Mode, PodConfig};
use crate::pod_files::PodFiles;

/// The sandbox state file in the bundle.
pub const STATE_FILE: &str = "tent-sandbox.json";
/// Copies of the pod's containers' `tent-state.json`, one dir per container id.
const CONTAINERS_DIR: &str = "containers";
/// The runtime's state file name in a bundle.
const RUNTIME_STATE: &str = "tent-state.json";

/// What `shim delete` needs to undo a sandbox whose shim died.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    namespaces: PodNamespaces,
    files: PodFiles,
}

/// A pod made by CreateSandbox.
struct Pod {
    id: String,
    bundle: PathBuf,
    config: PodConfig,
    netns: Option<PathBuf>,
    namespaces: PodNamespaces,
    files: PodFiles,
    created_at: SystemTime,
    /// The exit WaitSandbox reports (set by StopSandbox / ShutdownSandbox, or the init's exit).
    exit: watch::Sender<Option<(u32, SystemTime)>>,
    /// The pod init has been reaped (its pid must not be signalled any more).
    init_reaped: AtomicBool,
}

impl Pod {
    /// The sandbox's pid: the pod init's while it runs, else 0.
    fn pid(&self) -> u32 {
        match self.namespaces.init {
            Some(p) if !self.init_reaped.load(Ordering::SeqCst) => p as u32,
            _ => 0,
        }
    }

    /// Ends the pod init (and so the PID namespace) if it still runs.
    fn kill_init(&self) {
        if let (Some(p), false) = (
            self.namespaces.init,
            self.init_reaped.load(Ordering::SeqCst),
        ) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn set_exit(&self, status: u32) {
        self.exit.send_if_modified(|e| {
            let first = e.is_none();
            if first {
                *e = Some((status, SystemTime::now()));
            }
            first
        });
    }
}

/// Where an app container's `/proc/0/ns/<kind>` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Join this namespace.
    Path(PathBuf),
    /// The pod uses the host's: the container joins nothing (no entry).
    Host,
    /// The pod has none to give; the message says why.
    Missing(String),
}

/// The pod's namespaces by OCI type (`network`, `ipc`, `uts`, `pid`).
#[derive(Debug, Clone)]
pub struct Namespaces(pub Vec<(&'static str, Target)>);

/// The Sandbox API state of one shim (at most one pod).
pub struct Sandbox {
    exe: Option<tent_runtime::InitExe>,
    pod: Mutex<Option<Arc<Pod>>>,
    /// A pod was created and has been shut down (or failed): nothing keeps the shim.
    done: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sandbox {
    /// `exe` spawns the pod helper; without it (unit tests) CreateSandbox is refused.
    pub fn new(exe: Option<tent_runtime::InitExe>) -> Sandbox {
        Sandbox {
            exe,
            pod: Mutex::new(None),
            done: AtomicBool::new(false),
        }
    }

    /// True while a pod is up (created and not shut down): the shim must stay.
    pub fn is_live(&self) -> bool {
        lock(&self.pod).is_some()
    }

    /// True once the pod was shut down or failed to come up.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    fn get(&self, id: &str) -> Result<Arc<Pod>> {
        match lock(&self.pod).as_ref() {
            Some(p) if p.id == id || id.is_empty() => Ok(p.clone()),
            _ => Err(Error::SandboxNotFound(id.to_string())),
        }
    }

    pub async fn create(&self, req: CreateSandboxRequest) -> Result<()> {
        if req.sandbox_id.is_empty() {
            return Err(Error::InvalidArgument(
                "CreateSandbox: sandbox_id is empty".into(),
            ));
        }
        if self.is_live() {
            return Err(Error::InvalidArgument(format!(
                "CreateSandbox {}: this shim already serves a sandbox",
                req.sandbox_id
            )));
        }
        let result = self.create_pod(req).await;
        if result.is_err() {
            // Failed to come up: nothing keeps this shim (see `Shim::sandbox_failed`).
            self.done.store(true, Ordering::SeqCst);
        }
        result
    }

    async fn create_pod(&self, req: CreateSandboxRequest) -> Result<()> {
        let id = req.sandbox_id.clone();
        let config = PodConfig::decode(req.options.as_ref().map_or(&[][..], |a| &a.value))?;
        refuse_unsupported(&config)?;
        refuse_host_namespaces(&config, &tent_runtime::Profile::default())?;
        let Some(exe) = self.exe.clone() else {
            return Err(Error::Unimplemented(
                "CreateSandbox: no pod helper in this shim".into(),
            ));
        };
        let bundle = PathBuf::from(&req.bundle_path);
        let netns = Some(PathBuf::from(&req.netns_path)).filter(|p| !p.as_os_str().is_empty());
        if config.network != Mode::Node && netns.is_none() {
            return Err(Error::InvalidArgument(format!(
                "CreateSandbox {id}: netns_path is empty for a pod with its own network"
            )));
        }
        let (cfg, b, n, i) = (config.clone(), bundle.clone(), netns.clone(), id.clone());
        let (namespaces, files) = tokio::task::spawn_blocking(move || make(&exe, &i, &b, &cfg, n))
            .await
            .map_err(|e| Error::Internal(format!("CreateSandbox: {e}")))??;
        log::info!(
            "sandbox {id}: created (ipc {:?}, uts {:?}, netns {netns:?})",
            namespaces.ipc,
            namespaces.uts
        );
        *lock(&self.pod) = Some(Arc::new(Pod {
            id,
            bundle,
            config,
            netns,
            namespaces,
            files,
            created_at: SystemTime::now(),
            exit: watch::channel(None).0,
            init_reaped: AtomicBool::new(false),
        }));
        Ok(())
    }

    pub async fn start(&self, req: StartSandboxRequest) -> Result<StartSandboxResponse> {
        let pod = self.get(&req.sandbox_id)?;
        Ok(StartSandboxResponse {
            pid: pod.pid(),
            created_at: timestamp(pod.created_at),
            ..Default::default()
        })
    }

    pub fn platform(&self, req: PlatformRequest) -> Result<PlatformResponse> {
        self.get(&req.sandbox_id)?;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Ok(PlatformResponse {
            platform: MessageField::some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Stopping ends WaitSandbox: at once (status 0) for a pod without a process, at the
    /// init's exit (SIGKILLed) for one with a PID 1. Its namespaces stay until
    /// ShutdownSandbox (CRI still tears the network down in between).
    pub fn stop(&self, req: StopSandboxRequest) -> Result<()> {
        let pod = self.get(&req.sandbox_id)?;
        if pod.pid() != 0 {
            pod.kill_init();
        } else {
            pod.set_exit(0);
        }
        log::info!("sandbox {}: stopped", pod.id);
        Ok(())
    }

    /// Called by the reaper for every exit: true if it was the pod init's.
    pub fn on_exit(&self, pid: i32, status: u32) -> bool {
        let Some(pod) = lock(&self.pod).clone() else {
            return false;
        };
        if pod.namespaces.init != Some(pid) {
            return false;
        }
        pod.init_reaped.store(true, Ordering::SeqCst);
        log::info!("sandbox {}: pod init {pid} exited with {status}", pod.id);
        pod.set_exit(status);
        true
    }

    pub async fn wait(&self, req: WaitSandboxRequest) -> Result<WaitSandboxResponse> {
        let pod = self.get(&req.sandbox_id)?;
        let mut rx = pod.exit.subscribe();
        let (status, at) = loop {
            if let Some(e) = *rx.borrow_and_update() {
                break e;
            }
            if rx.changed().await.is_err() {
                break (0, SystemTime::now());
            }
        };
        Ok(WaitSandboxResponse {
            exit_status: status,
            exited_at: timestamp(at),
            ..Default::default()
        })
    }

    pub fn status(&self, req: SandboxStatusRequest) -> Result<SandboxStatusResponse> {
        let pod = self.get(&req.sandbox_id)?;
        let exit = *pod.exit.borrow();
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            let detail = serde_json::json!({
                "pid": pod.pid(),
                "pauseless": true,
                "netns": pod.netns,
                "ipc": pod.namespaces.ipc,
                "uts": pod.namespaces.uts,
                "cgroupParent": pod.config.cgroup_parent,
            });
            info.insert("info".to_string(), detail.to_string());
        }
        Ok(SandboxStatusResponse {
            sandbox_id: pod.id.clone(),
            pid: pod.pid(),
            state: if exit.is_none() {
                "SANDBOX_READY"
            } else {
                "SANDBOX_NOTREADY"
            }
            .into(),
            info,
            created_at: timestamp(pod.created_at),
            exited_at: exit.map(|(_, at)| timestamp(at)).unwrap_or_default(),
            ..Default::default()
        })
    }

    pub fn ping(&self, req: PingRequest) -> Result<()> {
        self.get(&req.sandbox_id).map(|_| ())
    }

    /// Tears the pod down (pins, files). Unknown ids are fine: containerd also calls it
    /// after a failed CreateSandbox, to let the shim exit.
    pub async fn shutdown(&self, req: ShutdownSandboxRequest) -> Result<()> {
        self.done.store(true, Ordering::SeqCst);
        let pod = {
            let mut slot = lock(&self.pod);
            match slot.as_ref() {
                Some(p) if p.id == req.sandbox_id || req.sandbox_id.is_empty() => slot.take(),
                _ => None,
            }
        };
        let Some(pod) = pod else {
            return Ok(());
        };
        pod.kill_init();
        pod.set_exit(0);
        let p = pod.clone();
        tokio::task::spawn_blocking(move || teardown(&p.bundle, &p.namespaces, &p.files))
            .await
            .map_err(|e| Error::Internal(format!("ShutdownSandbox: {e}")))??;
        log::info!("sandbox {}: shut down", pod.id);
        Ok(())
    }

    pub async fn metrics(&self, req: SandboxMetricsRequest) -> Result<SandboxMetricsResponse> {
        let pod = self.get(&req.sandbox_id)?;
        let parent = pod.config.cgroup_parent.clone();
        if parent.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "SandboxMetrics {}: the pod has no cgroup_parent",
                pod.id
            )));
        }
        let stats = tokio::task::spawn_blocking(move || tent_runtime::cgroup_stats(&parent))
            .await
            .map_err(|e| Error::Internal(format!("SandboxMetrics: {e}")))??;
        // The Metric type is not exported by containerd-shim-protos: filled in place.
        let mut resp = SandboxMetricsResponse::default();
        let m = resp.metrics.mut_or_insert_default();
        m.timestamp = timestamp(SystemTime::now());
        m.id = pod.id.clone();
        m.data = MessageField::some(crate::metrics::to_any(&stats)?);
        Ok(resp)
    }

    /// Keeps a copy of container `id`'s runtime state in the sandbox bundle: if this shim
    /// dies, `shim delete` of the sandbox ends the pod's containers from it (containerd
    /// runs no `shim delete` for protocol-3 tasks, and may remove their bundles first).
    pub fn keep_container(&self, id: &str, bundle: &Path) -> Result<()> {
        let Some(pod) = lock(&self.pod).clone() else {
            return Ok(());
        };
        let dir = pod.bundle.join(CONTAINERS_DIR).join(id);
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::copy(bundle.join(RUNTIME_STATE), dir.join(RUNTIME_STATE)))
            .map(|_| ())
            .map_err(|e| Error::io(format!("keep the state of {id} in {}", dir.display()), e))
    }

    /// Drops the copy [`Self::keep_container`] made (the container is deleted).
    pub fn forget_container(&self, id: &str) {
        if let Some(pod) = lock(&self.pod).clone() {
            let dir = pod.bundle.join(CONTAINERS_DIR).join(id);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("sandbox {}: remove {}: {e}", pod.id, dir.display());
                }
            }
        }
    }

    /// Where app containers' `/proc/0/ns/*` paths go, or None without a pod.
    pub fn namespaces(&self) -> Option<Namespaces> {
        let pod = lock(&self.pod).clone()?;
        let own = |path: Option<&PathBuf>, host: bool, what: &str| match (path, host) {
            (Some(p), _) => Target::Path(p.clone()),
            (None, true) => Target::Host,
            (None, false) => Target::Missing(format!("the pod has no {what} namespace")),
        };
        let c = &pod.config;
        Some(Namespaces(vec![
            (
                "network",
                own(pod.netns.as_ref(), c.network == Mode::Node, "network"),
            ),
            (
                "ipc",
                own(pod.namespaces.ipc.as_ref(), c.ipc == Mode::Node, "IPC"),
            ),
            (
                "uts",
                own(pod.namespaces.uts.as_ref(), c.network == Mode::Node, "UTS"),
            ),
            (
                "pid",
                match (c.pid, pod.namespaces.init) {
                    (Mode::Node, _) => Target::Host,
                    (_, Some(init)) => Target::Path(format!("/proc/{init}/ns/pid").into()),
                    _ => Target::Missing("the pod does not share a PID namespace".into()),
                },
            ),
        ]))
    }
}

/// What tent's pauseless sandbox cannot do yet, refused naming the field.
fn refuse_unsupported(c: &PodConfig) -> Result<()> {
    if c.pid == Mode::Target {
        return Err(Error::InvalidArgument(
            "linux.security_context.namespace_options.pid: TARGET is for containers, not pods"
                .into(),
        ));
    }
    if c.userns {
        return Err(Error::Unimplemented(
            "linux.security_context.namespace_options.userns_options: tent does not run user \
             namespaces"
                .into(),
        ));
    }
    Ok(())
}

/// A pauseless pod's containers run under `profile` (tent's default: containerd 2.1 gives a
/// `sandboxer = "shim"` handler no options), so a host namespace it refuses is refused here,
/// before anything is made, naming kubelet's field as the `tent` handler's refused pause
/// container does; not a ready pod whose every container is refused.
fn refuse_host_namespaces(c: &PodConfig, profile: &tent_runtime::Profile) -> Result<()> {
    if profile.mode == tent_runtime::Mode::Compat {
        return Ok(());
    }
    for (mode, field, name) in [
        (c.network, "hostNetwork", "network"),
        (c.ipc, "hostIPC", "ipc"),
        (c.pid, "hostPID", "pid"),
    ] {
        if mode == Mode::Node && !profile.allow.host_namespaces.iter().any(|n| n == name) {
            return Err(Error::InvalidArgument(format!(
                "{field}: tent's profile refuses sharing the host's {name} namespace \
                 (a tent-pauseless pod runs tent's default profile, which its handler cannot \
                 change: run the pod with runtimeClassName: tent-compat)"
            )));
        }
    }
    Ok(())
}

/// Files, then namespaces, then the state file; undone in reverse on error.
fn make(
    exe: &tent_runtime::InitExe,
    id: &str,
    bundle: &Path,
    config: &PodConfig,
    netns: Option<PathBuf>,
) -> Result<(PodNamespaces, PodFiles)> {
    let files = PodFiles::create(id, bundle, config)?;
    let hostname = (config.network != Mode::Node).then_some(config.hostname.as_str());
    let made = PodNamespaces::create(
        exe,
        &PodRequest {
            dir: bundle,
            ipc: config.ipc != Mode::Node,
            hostname,
            netns: netns.as_deref(),
            sysctls: &config.sysctls,
            pid: config.pid == Mode::Pod,
        },
    )
    .map_err(Error::from)
    .and_then(|ns| {
        let state = State {
            namespaces: ns.clone(),
            files: files.clone(),
        };
        let path = bundle.join(STATE_FILE);
        let json = serde_json::to_vec(&state)
            .map_err(|e| Error::Internal(format!("encode {}: {e}", path.display())))?;
        match std::fs::write(&path, json) {
            Ok(()) => Ok(ns),
            Err(e) => {
                let _ = ns.destroy();
                Err(Error::io(format!("write {}", path.display()), e))
            }
        }
    });
    match made {
        Ok(ns) => Ok((ns, files)),
        Err(e) => {
            if let Err(d) = files.remove() {
                log::warn!("sandbox {id}: {d}");
            }
            Err(e)
        }
    }
}

fn teardown(bundle: &Path, ns: &PodNamespaces, files: &PodFiles) -> Result<()> {
    ns.destroy()?;
    files.remove()?;
    match std::fs::remove_dir_all(bundle.join(CONTAINERS_DIR)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("remove {CONTAINERS_DIR}"), e)),
    }
    match std::fs::remove_file(bundle.join(STATE_FILE)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {STATE_FILE}"), e)),
    }
}

/// `(id, dir)` of the container states kept in a sandbox bundle (see
/// [`Sandbox::keep_container`]); each dir holds a `tent-state.json`.
pub fn kept_containers(bundle: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(bundle.join(CONTAINERS_DIR))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default()
}

/// `shim delete` of a sandbox bundle: undo what the state file lists. True if it was one.
pub fn cleanup_bundle(bundle: &Path) -> Result<bool> {
    let path = bundle.join(STATE_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A shim may have died before writing it: pins are in known places.
            tent_runtime::remove_pod_pins(bundle)?;
            return Ok(false);
        }
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let state: State = serde_json::from_slice(&text)
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    if let Some(init) = state.namespaces.init {
        tent_runtime::kill_pod_init(init)?;
    }
    teardown(bundle, &state.namespaces, &state.files)?;
    Ok(true)
}

/// Rewrites the `/proc/0/ns/<kind>` paths CRI builds from pid 0 in the spec at `config`
/// (the bundle's config.json); explicit paths are kept. True if anything changed.
pub fn rewrite_namespaces(config: &Path, ns: &Namespaces) -> Result<bool> {
    let text =
        std::fs::read(config).map_err(|e| Error::io(format!("read {}", config.display()), e))?;
    let mut spec: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", config.display())))?;
    if !rewrite(&mut spec, ns)? {
        return Ok(false);
    }
    let json = serde_json::to_vec(&spec)
        .map_err(|e| Error::Internal(format!("encode {}: {e}", config.display())))?;
    let tmp = config.with_extension("json.tent-tmp");
    std::fs::write(&tmp, json)
        .and_then(|_| std::fs::rename(&tmp, config))
        .map_err(|e| Error::io(format!("write {}", config.display()), e))?;
    Ok(true)
}

/// The spec edit of [`rewrite_namespaces`].
pub fn rewrite(spec: &mut serde_json::Value, ns: &Namespaces) -> Result<bool> {
    let Some(list) = spec
        .pointer_mut("/linux/namespaces")
        .and_then(|v| v.as_array_mut())
    else {
        return Ok(false);
    };
    let mut changed = false;
    let mut keep = Vec::with_capacity(list.len());
    for mut entry in std::mem::take(list) {
        let field = |k: &str| {
            entry
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let (typ, path) = (field("type"), field("path"));
        let Some(kind) = path.strip_prefix("/proc/0/ns/") else {
            keep.push(entry);
            continue;
        };
        let target =
            ns.0.iter()
                .find(|(t, _)| *t == typ)
                .map(|(_, target)| target.clone())
                .unwrap_or_else(|| Target::Missing(format!("no pod namespace of type {typ:?}")));
        changed = true;
        match target {
            Target::Path(p) => {
                if let Some(o) = entry.as_object_mut() {
                    o.insert(
                        "path".into(),
                        serde_json::Value::String(p.display().to_string()),
                    );
                }
                keep.push(entry);
            }
            Target::Host => {}
            Target::Missing(why) => {
                return Err(Error::InvalidArgument(format!(
                    "linux.namespaces[{typ}].path {path}: {why} (namespace {kind} of pid 0)"
                )))
            }
        }
    }
    *list = keep;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespaces {
        Namespaces(vec![
            ("network", Target::Path("/var/run/netns/cni-1".into())),
            ("ipc", Target::Path("/b/ns-ipc".into())),
            ("uts", Target::Host),
            ("pid", Target::Missing("no PID 1".into())),
        ])
    }

    #[test]
    fn pid_zero_paths_go_to_the_pods_namespaces() {
        let mut spec = serde_json::json!({"linux": {"namespaces": [
            {"type": "pid"},
            {"type": "network", "path": "/proc/0/ns/net"},
            {"type": "ipc", "path": "/proc/0/ns/ipc"},
            {"type": "uts", "path": "/proc/0/ns/uts"},
            {"type": "mount"},
        ]}});
        assert!(rewrite(&mut spec, &ns()).expect("rewrite"));
        assert_eq!(
            spec["linux"]["namespaces"],
            serde_json::json!([
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/cni-1"},
                {"type": "ipc", "path": "/b/ns-ipc"},
                {"type": "mount"},
            ])
        );
        // Explicit paths (a newer containerd) are kept as they are.
        let mut explicit = serde_json::json!({"linux": {"namespaces": [
            {"type": "network", "path": "/var/run/netns/other"}]}});
        assert!(!rewrite(&mut explicit, &ns()).expect("explicit"));
        let mut pid = serde_json::json!({"linux": {"namespaces": [
            {"type": "pid", "path": "/proc/0/ns/pid"}]}});
        let e = rewrite(&mut pid, &ns()).expect_err("no PID 1");
        assert!(e.to_string().contains("linux.namespaces[pid]"), "{e}");
    }

    #[test]
    fn unsupported_pod_settings_are_refused_by_field() {
        let c = PodConfig {
            pid: Mode::Target,
            ..Default::default()
        };
        let e = refuse_unsupported(&c).expect_err("target pid");
        assert!(e.to_string().contains("namespace_options.pid"), "{e}");
        let e = refuse_unsupported(&PodConfig {
            userns: true,
            ..Default::default()
        })
        .expect_err("userns");
        assert!(e.to_string().contains("userns_options"), "{e}");
        for pid in [Mode::Pod, Mode::Container, Mode::Node] {
            assert!(refuse_unsupported(&PodConfig {
                pid,
                ..Default::default()
            })
            .is_ok());
        }
    }

    #[test]
    fn host_namespaces_are_refused_unless_the_profile_allows_them() {
        let tent = tent_runtime::Profile::default();
        assert!(refuse_host_namespaces(&PodConfig::default(), &tent).is_ok());
        for (c, field) in [
            (
                PodConfig {
                    network: Mode::Node,
                    ..Default::default()
                },
                "hostNetwork: ",
            ),
            (
                PodConfig {
                    ipc: Mode::Node,
                    ..Default::default()
                },
                "hostIPC: ",
            ),
            (
                PodConfig {
                    pid: Mode::Node,
                    ..Default::default()
                },
                "hostPID: ",
            ),
        ] {
            let e = refuse_host_namespaces(&c, &tent).expect_err(field);
            assert!(e.to_string().contains(field), "{e}");
            let compat = tent_runtime::Profile {
                mode: tent_runtime::Mode::Compat,
                ..Default::default()
            };
            assert!(refuse_host_namespaces(&c, &compat).is_ok());
        }
        let net_allowed = tent_runtime::Profile {
            allow: tent_runtime::Allow {
                host_namespaces: vec!["network".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let host_net = PodConfig {
            network: Mode::Node,
            ..Default::default()
        };
        assert!(refuse_host_namespaces(&host_net, &net_allowed).is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_create_leaves_the_shim_free_to_exit() {
        let sb = Sandbox::new(None);
        assert!(!sb.is_done());
        let e = sb
            .create(CreateSandboxRequest {
                sandbox_id: "sb1".into(),
                ..Default::default()
            })
            .await
            .expect_err("no helper");
        assert!(e.to_string().contains("no pod helper"), "{e}");
        assert!(sb.is_done() && !sb.is_live());
        sb.shutdown(ShutdownSandboxRequest {
            sandbox_id: "sb1".into(),
            ..Default::default()
        })
        .await
        .expect("shutdown of an unknown sandbox");
    }
}
