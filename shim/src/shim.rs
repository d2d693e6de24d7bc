//! The containerd Task API as plain async methods of [`Shim`] (the ttrpc adapter is
//! [`crate::service`]): the task and process state machine, the events containerd
//! expects, and the recording of exits routed by [`Registry`].
//!
//! The runtime is behind [`crate::runtime::Container`] and events go to an
//! [`EventSink`], so all of this runs in unit tests with a fake of each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::{self, *};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::topics;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::events::{self, timestamp, EventSink};
use crate::io::{self, StdioPaths};
use crate::logger::Owner;
use crate::process::{lock, Exit, Process, Status};
use crate::registry::Registry;
use crate::runtime::{Create, NewContainer};
use crate::task::{Exec, ProcessRef, Task};
use crate::{config, console, metrics, oom};

/// How long Delete of a never-started process waits for the killed process to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long a shim whose sandbox failed to come up waits for ShutdownSandbox before exiting.
const FAILED_EXIT: Duration = Duration::from_secs(10);
/// How long an exit event waits for unread output to be read by containerd.
const OUTPUT_DRAIN: Duration = Duration::from_secs(3);

/// All containers this shim process serves (one, or a whole pod).
pub struct Shim {
    tasks: Registry,
    events: Arc<dyn EventSink>,
    create: Create,
    namespace: String,
    /// Notified when containerd asks the shim to shut down and nothing is left to serve.
    pub shutdown: Notify,
    /// The pod this shim is the sandbox of (containerd's Sandbox API), if any.
    pub sandbox: crate::sandbox::Sandbox,
    /// This shim's socket address (`unix://…`).
    address: String,
}

impl Shim {
    /// A shim that makes containers with `create` and publishes to `events`.
    pub fn new(events: Arc<dyn EventSink>, create: Create, namespace: String) -> Self {
        Shim {
            tasks: Registry::default(),
            events,
            create,
            namespace,
            shutdown: Notify::new(),
            sandbox: crate::sandbox::Sandbox::new(None),
            address: String::new(),
        }
    }

    /// The same shim, knowing its own socket address.
    pub fn with_address(mut self, address: &str) -> Self {
        self.address = address.to_string();
        self
    }

    /// The same shim serving the Sandbox API with `sandbox`.
    pub fn with_sandbox(mut self, sandbox: crate::sandbox::Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Nothing keeps the shim: no container, and no pod up.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty() && !self.sandbox.is_live()
    }

    /// CreateSandbox; a sandbox that fails to come up lets the shim exit (containerd's
    /// ShutdownSandbox after it, or at the latest [`FAILED_EXIT`], with nothing else left).
    pub async fn create_sandbox(
        self: &Arc<Self>,
        req: containerd_shim_protos::sandbox_api::CreateSandboxRequest,
    ) -> Result<()> {
        let result = self.sandbox.create(req).await;
        if result.is_err() {
            let shim = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(FAILED_EXIT).await;
                if shim.is_idle() {
                    log::info!("sandbox failed to come up and nothing is left: exiting");
                    shim.shutdown.notify_one();
                }
            });
        }
        result
    }

    /// ShutdownSandbox: the pod is torn down; the shim exits when no container is left.
    pub async fn shutdown_sandbox(
        &self,
        req: containerd_shim_protos::sandbox_api::ShutdownSandboxRequest,
    ) -> Result<()> {
        self.sandbox.shutdown(req).await?;
        if self.is_idle() {
            self.shutdown.notify_one();
        }
        Ok(())
    }

    /// Where a new container's `/proc/0/ns/*` namespace paths go (a pauseless pod).
    fn rewrite_pod_namespaces(&self, bundle: &Path) -> Result<()> {
        let config = bundle.join("config.json");
        match self.sandbox.namespaces() {
            Some(ns) => {
                if crate::sandbox::rewrite_namespaces(&config, &ns)? {
                    log::debug!(
                        "{}: namespaces of pid 0 rewritten to the pod's",
                        config.display()
                    );
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn publish<M: Message>(&self, topic: &str, event: M) {
        events::send(&*self.events, topic, event).await;
    }

    /// Called by the reaper for every reaped child. The exit is recorded on its own
    /// task: it may wait for containerd to read the last output, and that must not
    /// hold up the reaper (or the other containers of a pod).
    pub fn on_exit(self: &Arc<Self>, pid: i32, status: u32) {
        if self.sandbox.on_exit(pid, status) {
            return;
        }
        if let Some((task, process)) = self.tasks.route(pid, status) {
            let shim = self.clone();
            tokio::spawn(async move { shim.record_exit(&task, &process, status).await });
        }
    }

    async fn record_exit(&self, task: &Task, process: &ProcessRef, status: u32) {
        let p = process.get(task);
        if p.exit().is_some() {
            return;
        }
        let at = SystemTime::now();
        // The last output must reach containerd before the exit does, and before Wait
        // returns: a client cancels its unopened FIFO readers once it has the status.
        p.release_outputs(OUTPUT_DRAIN).await;
        let _ = tokio::time::timeout(OUTPUT_DRAIN, p.output_drained()).await;
        if !p.set_exited_at(status, at) {
            return;
        }
        if matches!(process, ProcessRef::Init) {
            let monitor = lock(&task.oom).clone();
            if monitor.is_some_and(|m| m.check() == Ok(true)) {
                events::send_oom(&*self.events, &task.id).await;
            }
        }
        log::info!(
            "container {} {} (pid {}) exited with {status}",
            task.id,
            p.label(),
            p.pid()
        );
        let event = TaskExit {
            container_id: task.id.clone(),
            id: if p.exec_id.is_empty() {
                task.id.clone()
            } else {
                p.exec_id.clone()
            },
            pid: p.pid() as u32,
            exit_status: status,
            exited_at: timestamp(at),
            ..Default::default()
        };
        self.publish(topics::TASK_EXIT_EVENT_TOPIC, event).await;
    }

    /// Opens a process's streams; with a terminal only the FIFOs' paths are kept
    /// (the pty copy starts once the master exists). A `binary://` logger is started
    /// off the reactor, since we wait for it to say it is ready.
    async fn open_stdio(
        &self,
        container_id: &str,
        process: &Process,
    ) -> Result<tent_runtime::Stdio> {
        if process.stdio.terminal {
            return Ok(tent_runtime::Stdio::default());
        }
        let paths = process.stdio.clone();
        let (id, namespace) = (container_id.to_string(), self.namespace.clone());
        let stdin_fifo = process.take_stdin_fifo();
        let open = move || {
            io::open(
                &paths,
                Owner {
                    container_id: &id,
                    namespace: &namespace,
                },
                stdin_fifo,
            )
        };
        let opened = if process.stdio.stdout.starts_with("binary://") {
            tokio::task::spawn_blocking(open)
                .await
                .map_err(|e| Error::Internal(format!("open log binary: {e}")))??
        } else {
            open()?
        };
        process.set_stdin(opened.stdin);
        process.hold_outputs(opened.held);
        Ok(opened.stdio)
    }

    pub async fn create(self: &Arc<Self>, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if req.id.is_empty() {
            return Err(Error::InvalidArgument(
                "create: container id is empty".into(),
            ));
        }
        if self.tasks.contains(&req.id) {
            return Err(Error::ContainerExists(req.id));
        }
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(Error::Unimplemented(
                "create from a checkpoint (tent does not checkpoint)".into(),
            ));
        }
        self.rewrite_pod_namespaces(Path::new(&req.bundle))?;
        let config::Options { profile, io_owner } =
            config::options(req.options.as_ref(), &self.address)?;
        let init = Process::new(
            "",
            StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                owner: io_owner,
            },
        );
        let stdio = self.open_stdio(&req.id, &init).await?;
        let rootfs: Vec<tent_runtime::RootfsMount> = req
            .rootfs
            .iter()
            .map(|m| tent_runtime::RootfsMount {
                kind: m.type_.clone(),
                source: m.source.clone(),
                target: m.target.clone(),
                options: m.options.clone(),
            })
            .collect();
        let id = req.id.clone();
        let bundle = PathBuf::from(&req.bundle);
        let create = self.create.clone();
        let layers = crate::summary::layers_key(&rootfs);
        let budget = profile.audit.clone();
        let deny = budget.is_set() && budget.mode == tent_runtime::BudgetMode::Deny;
        let (mut container, denied_summary) = tokio::task::spawn_blocking(move || {
            let c = create(NewContainer {
                id: &id,
                bundle: &bundle,
                rootfs_mounts: &rootfs,
                stdio,
                profile: &profile,
            })?;
            if !deny {
                return Ok((c, None));
            }
            // Deny mode: judged before Create returns, on the image as it is.
            let judged = crate::budget::open_root(&id, c.pid())
                .and_then(|root| crate::budget::walk(&id, root))
                .and_then(|(inv, ms)| {
                    crate::budget::judge(&id, &inv, &profile.audit)?;
                    let r = tent_audit::report::Report::new(
                        format!("container {id}"),
                        "container",
                        inv,
                        ms,
                    );
                    Ok(crate::summary::Summary::of(&r))
                });
            match judged {
                Ok(s) => Ok((c, Some(s))),
                Err(e) => {
                    // Refused: leave nothing behind.
                    if let Err(d) = c.destroy() {
                        log::warn!("container {id}: {d}");
                    }
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("create: {e}")))??;

        if let Some(master) = container.take_console() {
            console::attach(&init, master)?;
        }
        let oom_watcher = container.oom_watcher();
        let task = Arc::new(Task::new(
            &req.id,
            PathBuf::from(&req.bundle),
            container,
            init,
        ));
        let pid = task.init.pid();
        let early_exit = match self.tasks.insert(task.clone()) {
            Ok(exit) => exit,
            Err(e) => {
                // A concurrent Create of the same id won: leave nothing behind.
                if let Err(d) = task.destroy().await {
                    log::warn!("container {}: {d}", req.id);
                }
                return Err(e);
            }
        };
        log::info!("created container {} (pid {pid})", req.id);
        if let Err(e) = self.sandbox.keep_container(&req.id, Path::new(&req.bundle)) {
            log::warn!("container {}: {e}", req.id);
        }
        match denied_summary {
            Some(s) => crate::summary::keep(&req.id, Path::new(&req.bundle), &s),
            // `[audit] summary = false`: no walk at all (validated: no budget).
            None if !budget.summary => {}
            None => crate::summary::spawn(
                req.id.clone(),
                crate::budget::open_root(&req.id, pid),
                PathBuf::from(&req.bundle),
                layers,
                budget,
            ),
        }
        match oom_watcher {
            Ok(watcher) => {
                *lock(&task.oom) = oom::watch(self.events.clone(), task.id.clone(), watcher);
            }
            Err(e) => log::warn!("container {}: no OOM notifications: {e}", req.id),
        }

        let event = TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid: pid as u32,
            ..Default::default()
        };
        self.publish(topics::TASK_CREATE_EVENT_TOPIC, event).await;
        // The init may have been killed from outside before we knew its pid.
        if let Some(status) = early_exit {
            self.record_exit(&task, &ProcessRef::Init, status).await;
        }
        Ok(CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    pub async fn start(&self, req: StartRequest) -> Result<StartResponse> {
        let task = self.tasks.get(&req.id)?;
        let process = task.process(&req.exec_id)?;
        let pid = match &process {
            ProcessRef::Init => {
                task.init.set_running()?;
                task.with_container_mut("start", |c| c.start()).await?;
                let event = TaskStart {
                    container_id: task.id.clone(),
                    pid: task.init.pid() as u32,
                    ..Default::default()
                };
                self.publish(topics::TASK_START_EVENT_TOPIC, event).await;
                task.init.pid()
            }
            ProcessRef::Exec(exec) => self.start_exec(&task, exec).await?,
        };
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn start_exec(&self, task: &Arc<Task>, exec: &Arc<Exec>) -> Result<i32> {
        match task.init.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot exec in paused container {}",
                    task.id
                )))
            }
            other => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot exec in container {} in state {other:?}",
                    task.id
                )))
            }
        }
        exec.process.set_running()?;
        let stdio = self.open_stdio(&task.id, &exec.process).await?;
        let spec = exec.spec.clone();
        let started = task
            .with_container("exec", move |c| {
                c.exec(tent_runtime::ExecRequest {
                    process: &spec,
                    stdio,
                })
            })
            .await;
        let mut handle = match started {
            Ok(h) => h,
            Err(e) => {
                // Failed before the workload ran: the exec is over, as with runc.
                exec.process.set_exited(128);
                exec.process.close_stdin();
                exec.process.drop_outputs();
                return Err(e);
            }
        };
        let pid = handle.pid;
        let early_exit = self.tasks.register_pid(&exec.process, pid);
        if let Some(master) = handle.console.take() {
            if let Err(e) = console::attach(&exec.process, master) {
                if let Some(status) = early_exit {
                    self.record_exit(task, &ProcessRef::Exec(exec.clone()), status)
                        .await;
                }
                return Err(e);
            }
        }
        *lock(&exec.handle) = Some(handle);
        let event = TaskExecStarted {
            container_id: task.id.clone(),
            exec_id: exec.process.exec_id.clone(),
            pid: pid as u32,
            ..Default::default()
        };
        self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, event)
            .await;
        if let Some(status) = early_exit {
            self.record_exit(task, &ProcessRef::Exec(exec.clone()), status)
                .await;
        }
        Ok(pid)
    }

    pub async fn exec(&self, req: ExecProcessRequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        if req.exec_id.is_empty() {
            return Err(Error::InvalidArgument("exec: exec id is empty".into()));
        }
        let spec_json = req
            .spec
            .as_ref()
            .map(|any| any.value.as_slice())
            .unwrap_or_default();
        let mut spec: oci_spec::runtime::Process =
            serde_json::from_slice(spec_json).map_err(|e| {
                Error::InvalidArgument(format!("exec {}: process spec: {e}", req.exec_id))
            })?;
        // The request's `terminal` is the truth, as with runc's shim: the shim opens
        // the streams by it, so the process must get (or not get) a pty to match.
        spec.set_terminal(Some(req.terminal));
        if spec.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "exec {}: process.args is empty",
                req.exec_id
            )));
        }
        if matches!(task.init.status(), Status::Stopped) {
            return Err(Error::FailedPrecondition(format!(
                "cannot exec in stopped container {}",
                task.id
            )));
        }
        let exec = Arc::new(Exec {
            process: Process::new(
                &req.exec_id,
                StdioPaths {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    // runc's shim gives an exec the init's pipe owner too.
                    owner: task.init.stdio.owner,
                },
            ),
            spec,
            handle: Mutex::new(None),
        });
        {
            let mut execs = lock(&task.execs);
            if execs.contains_key(&req.exec_id) {
                return Err(Error::ExecExists {
                    container_id: task.id.clone(),
                    exec_id: req.exec_id,
                });
            }
            execs.insert(req.exec_id.clone(), exec.clone());
        }
        if !req.terminal && !req.stdin.is_empty() {
            // Unblocks a client waiting to open the write end (see io::open_stdin_fifo);
            // on failure Start opens it again and reports the error.
            match io::open_stdin_fifo(&req.stdin) {
                Ok(fifo) => exec.process.set_stdin_fifo(fifo),
                Err(e) => log::debug!("exec {}: stdin not opened early: {e}", req.exec_id),
            }
        }
        let event = TaskExecAdded {
            container_id: task.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        };
        self.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, event)
            .await;
        Ok(())
    }

    pub async fn wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        let task = self.tasks.get(&req.id)?;
        let process = task.process(&req.exec_id)?;
        let exit = process.get(&task).wait().await;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }

    pub async fn kill(&self, req: KillRequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        let signal = req.signal as i32;
        match task.process(&req.exec_id)? {
            ProcessRef::Init => {
                if task.init.status() == Status::Stopped && !req.all {
                    return Err(Error::Finished {
                        process: format!("container {}", task.id),
                    });
                }
                let all = req.all;
                task.with_container("kill", move |c| c.kill(signal, all))
                    .await
            }
            ProcessRef::Exec(exec) => {
                if exec.process.status() == Status::Stopped {
                    return Err(Error::Finished {
                        process: format!("exec {} in container {}", exec.process.exec_id, task.id),
                    });
                }
                match lock(&exec.handle).as_ref() {
                    Some(h) => h.kill(signal),
                    None => Err(Error::FailedPrecondition(format!(
                        "exec {} in container {} is not started",
                        exec.process.exec_id, task.id
                    ))),
                }
            }
        }
    }

    pub async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let task = self.tasks.get(&req.id)?;
        let exit = match task.process(&req.exec_id)? {
            ProcessRef::Exec(exec) => {
                let p = &exec.process;
                if matches!(p.status(), Status::Running | Status::Paused) {
                    return Err(Error::FailedPrecondition(format!(
                        "cannot delete running exec {}",
                        p.exec_id
                    )));
                }
                lock(&task.execs).remove(&p.exec_id);
                p.close_streams();
                let exit = p.exit().unwrap_or(Exit {
                    status: 0,
                    at: SystemTime::now(),
                });
                return Ok(DeleteResponse {
                    pid: p.pid() as u32,
                    exit_status: exit.status,
                    exited_at: timestamp(exit.at),
                    ..Default::default()
                });
            }
            ProcessRef::Init => self.delete_init(&task).await?,
        };
        let event = TaskDelete {
            container_id: task.id.clone(),
            id: task.id.clone(),
            pid: task.init.pid() as u32,
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        };
        self.publish(topics::TASK_DELETE_EVENT_TOPIC, event).await;
        log::info!("deleted container {}", task.id);
        Ok(DeleteResponse {
            pid: task.init.pid() as u32,
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }

    async fn delete_init(&self, task: &Arc<Task>) -> Result<Exit> {
        match task.init.status() {
            Status::Running | Status::Paused => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot delete running task {}",
                    task.id
                )))
            }
            Status::Created => {
                // Never started: the init waits for `start`; end it first.
                task.with_container("delete", |c| c.kill(libc::SIGKILL, true))
                    .await
                    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })?;
                if tokio::time::timeout(KILL_WAIT, task.init.wait())
                    .await
                    .is_err()
                {
                    return Err(Error::Internal(format!(
                        "delete {}: init pid {} did not exit after SIGKILL",
                        task.id,
                        task.init.pid()
                    )));
                }
            }
            Status::Stopped => {}
        }
        task.destroy().await?;
        self.tasks.remove(&task.id);
        self.sandbox.forget_container(&task.id);
        // A pod's containers are deleted without a Shutdown (protocol 3): the last one
        // after ShutdownSandbox ends the shim.
        if self.sandbox.is_done() && self.is_idle() {
            self.shutdown.notify_one();
        }
        if let Some(monitor) = lock(&task.oom).take() {
            monitor.close();
        }
        for (_, exec) in lock(&task.execs).drain() {
            exec.process.close_streams();
        }
        task.init.close_streams();
        Ok(task.init.exit().unwrap_or(Exit {
            status: 0,
            at: SystemTime::now(),
        }))
    }

    pub async fn state(&self, req: StateRequest) -> Result<StateResponse> {
        let task = self.tasks.get(&req.id)?;
        let process = task.process(&req.exec_id)?;
        let p = process.get(&task);
        let status = match p.status() {
            Status::Created => api::Status::CREATED,
            Status::Running => api::Status::RUNNING,
            Status::Paused => api::Status::PAUSED,
            Status::Stopped => api::Status::STOPPED,
        };
        let exit = p.exit();
        Ok(StateResponse {
            id: task.id.clone(),
            bundle: task.bundle.display().to_string(),
            pid: p.pid() as u32,
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map(|e| e.status).unwrap_or_default(),
            exited_at: exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            exec_id: p.exec_id.clone(),
            ..Default::default()
        })
    }

    pub async fn pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let task = self.tasks.get(&req.id)?;
        let pids = task.with_container("pids", |c| c.pids()).await?;
        let exec_ids: HashMap<i32, String> = lock(&task.execs)
            .values()
            .map(|e| (e.process.pid(), e.process.exec_id.clone()))
            .collect();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let info = exec_ids
                    .get(&pid)
                    .and_then(|exec_id| metrics::process_details(exec_id));
                ProcessInfo {
                    pid: pid as u32,
                    info: info.into(),
                    ..Default::default()
                }
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    pub async fn pause(&self, req: PauseRequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        task.init.set_paused(true)?;
        if let Err(e) = task.with_container("pause", |c| c.pause()).await {
            let _ = task.init.set_paused(false);
            return Err(e);
        }
        let event = TaskPaused {
            container_id: task.id.clone(),
            ..Default::default()
        };
        self.publish(topics::TASK_PAUSED_EVENT_TOPIC, event).await;
        Ok(())
    }

    pub async fn resume(&self, req: ResumeRequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        if task.init.status() != Status::Paused {
            return Err(Error::FailedPrecondition(format!(
                "cannot resume container {} in state {:?}",
                task.id,
                task.init.status()
            )));
        }
        task.with_container("resume", |c| c.resume()).await?;
        let _ = task.init.set_paused(false);
        let event = TaskResumed {
            container_id: task.id.clone(),
            ..Default::default()
        };
        self.publish(topics::TASK_RESUMED_EVENT_TOPIC, event).await;
        Ok(())
    }

    pub async fn update(&self, req: UpdateTaskRequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        let json = req
            .resources
            .as_ref()
            .map(|any| any.value.as_slice())
            .unwrap_or_default();
        if json.is_empty() {
            return Err(Error::InvalidArgument("update: no resources given".into()));
        }
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(json)
            .map_err(|e| Error::InvalidArgument(format!("update: resources: {e}")))?;
        task.with_container("update", move |c| c.update(&resources))
            .await
    }

    pub async fn stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let task = self.tasks.get(&req.id)?;
        let stats = task.with_container("stats", |c| c.stats()).await?;
        Ok(StatsResponse {
            stats: MessageField::some(metrics::to_any(&stats)?),
            ..Default::default()
        })
    }

    pub async fn resize_pty(&self, req: ResizePtyRequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        let process = task.process(&req.exec_id)?;
        process
            .get(&task)
            .with_console(|master| console::resize(master, req.width, req.height))
    }

    pub async fn connect(&self, req: ConnectRequest) -> Result<ConnectResponse> {
        let task_pid = self
            .tasks
            .get(&req.id)
            .map(|t| t.init.pid() as u32)
            .unwrap_or_default();
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    /// Task.Shutdown: answered without exiting while containers are left or the pod is up
    /// (containerd may send it repeatedly).
    pub async fn shutdown(&self, _req: ShutdownRequest) -> Result<()> {
        if self.is_idle() {
            self.shutdown.notify_one();
        }
        Ok(())
    }

    pub async fn close_io(&self, req: CloseIORequest) -> Result<()> {
        let task = self.tasks.get(&req.id)?;
        let process = task.process(&req.exec_id)?;
        if req.stdin {
            process.get(&task).close_stdin();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
