//! The containerd Task API: a thin ttrpc adapter over [`Shim`]'s plain methods.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim_protos::api::{self, *};
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskIO, TaskStart};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim_async::Task as TaskApi;
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use containerd_shim_protos::ttrpc::Result as TtrpcResult;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::io::{self, StdioPaths};
use crate::task::{Exit, Status, Task};

/// How many exits of unknown pids to remember (exits that race a task's registration).
const UNCLAIMED_EXITS: usize = 128;
/// How long Delete of a never-started task waits for the killed init to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// All containers this shim process serves (one, or a whole pod).
pub struct Shim {
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    unclaimed_exits: Mutex<VecDeque<(i32, u32)>>,
    events: Box<dyn EventSink>,
    init_exe: tent_runtime::InitExe,
    /// Notified when containerd asks the shim to shut down and nothing is left to serve.
    pub shutdown: Notify,
}

fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn no_exec(exec_id: &str, rpc: &str) -> Result<()> {
    if exec_id.is_empty() {
        Ok(())
    } else {
        Err(Error::Unimplemented(format!(
            "{rpc} of exec process {exec_id}: exec"
        )))
    }
}

impl Shim {
    pub fn new(events: Box<dyn EventSink>, init_exe: tent_runtime::InitExe) -> Self {
        Shim {
            tasks: Mutex::new(HashMap::new()),
            unclaimed_exits: Mutex::new(VecDeque::new()),
            events,
            init_exe,
            shutdown: Notify::new(),
        }
    }

    fn task(&self, id: &str) -> Result<Arc<Task>> {
        lock(&self.tasks)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Called by the reaper for every reaped child.
    pub async fn on_exit(&self, pid: i32, status: u32) {
        let task = lock(&self.tasks).values().find(|t| t.pid == pid).cloned();
        match task {
            Some(task) => self.record_exit(&task, status).await,
            None => {
                let mut unclaimed = lock(&self.unclaimed_exits);
                if unclaimed.len() == UNCLAIMED_EXITS {
                    unclaimed.pop_front();
                }
                unclaimed.push_back((pid, status));
            }
        }
    }

    async fn record_exit(&self, task: &Task, status: u32) {
        if !task.set_exited(status) {
            return;
        }
        let at = task.exit().map(|e| e.at).unwrap_or_else(SystemTime::now);
        log::info!(
            "container {} (pid {}) exited with {status}",
            task.id,
            task.pid
        );
        let event = TaskExit {
            container_id: task.id.clone(),
            id: task.id.clone(),
            pid: task.pid as u32,
            exit_status: status,
            exited_at: timestamp(at),
            ..Default::default()
        };
        self.events
            .publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event))
            .await;
    }

    pub async fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if req.id.is_empty() {
            return Err(Error::InvalidArgument(
                "create: container id is empty".into(),
            ));
        }
        if lock(&self.tasks).contains_key(&req.id) {
            return Err(Error::AlreadyExists(req.id));
        }
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(Error::Unimplemented(
                "create from a checkpoint (tent does not checkpoint)".into(),
            ));
        }
        if req.terminal {
            return Err(Error::Unimplemented("terminal (tty) containers".into()));
        }
        let stdio_paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let (stdio, stdin_closer) = io::open(&stdio_paths)?;
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
        let init_exe = self.init_exe.clone();
        let container = tokio::task::spawn_blocking(move || {
            tent_runtime::Container::create(tent_runtime::CreateRequest {
                id: &id,
                bundle: &bundle,
                rootfs_mounts: &rootfs,
                stdio,
                init_exe: &init_exe,
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("create: {e}")))??;

        let task = Arc::new(Task::new(container, stdio_paths, stdin_closer));
        let pid = task.pid;
        lock(&self.tasks).insert(req.id.clone(), task.clone());
        log::info!("created container {} (pid {pid})", req.id);

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
        self.events
            .publish(topics::TASK_CREATE_EVENT_TOPIC, Box::new(event))
            .await;

        // The init may have died (e.g. killed from outside) before we knew its pid.
        let early = {
            let mut unclaimed = lock(&self.unclaimed_exits);
            let pos = unclaimed.iter().position(|(p, _)| *p == pid);
            pos.and_then(|i| unclaimed.remove(i))
        };
        if let Some((_, status)) = early {
            self.record_exit(&task, status).await;
        }
        Ok(CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    pub async fn start(&self, req: StartRequest) -> Result<StartResponse> {
        no_exec(&req.exec_id, "start")?;
        let task = self.task(&req.id)?;
        task.set_running()?;
        task.with_container("start", |c| c.start()).await?;
        let event = TaskStart {
            container_id: task.id.clone(),
            pid: task.pid as u32,
            ..Default::default()
        };
        self.events
            .publish(topics::TASK_START_EVENT_TOPIC, Box::new(event))
            .await;
        Ok(StartResponse {
            pid: task.pid as u32,
            ..Default::default()
        })
    }

    pub async fn wait(&self, req: WaitRequest) -> Result<WaitResponse> {
        no_exec(&req.exec_id, "wait")?;
        let task = self.task(&req.id)?;
        let exit = task.wait().await;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }

    pub async fn kill(&self, req: KillRequest) -> Result<()> {
        no_exec(&req.exec_id, "kill")?;
        let task = self.task(&req.id)?;
        if task.status() == Status::Stopped && !req.all {
            return Err(Error::NotFound(format!(
                "{}: process already finished",
                task.id
            )));
        }
        let (signal, all) = (req.signal as i32, req.all);
        task.with_container("kill", move |c| c.kill(signal, all))
            .await
    }

    pub async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        no_exec(&req.exec_id, "delete")?;
        let task = self.task(&req.id)?;
        match task.status() {
            Status::Running => {
                return Err(Error::FailedPrecondition(format!(
                    "cannot delete running task {}",
                    task.id
                )))
            }
            Status::Created => {
                // Never started: the init is waiting for `start`; end it first.
                task.with_container("delete", |c| c.kill(libc::SIGKILL, false))
                    .await
                    .or_else(|e| match e {
                        Error::Runtime(ref r) if r.kind() == tent_runtime::ErrorKind::NotFound => {
                            Ok(())
                        }
                        e => Err(e),
                    })?;
                if tokio::time::timeout(KILL_WAIT, task.wait()).await.is_err() {
                    return Err(Error::Internal(format!(
                        "delete {}: init pid {} did not exit after SIGKILL",
                        task.id, task.pid
                    )));
                }
            }
            Status::Stopped => {}
        }
        task.destroy().await?;
        lock(&self.tasks).remove(&task.id);
        let exit = task.exit().unwrap_or(Exit {
            status: 0,
            at: SystemTime::now(),
        });
        let event = TaskDelete {
            container_id: task.id.clone(),
            id: task.id.clone(),
            pid: task.pid as u32,
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        };
        self.events
            .publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(event))
            .await;
        log::info!("deleted container {}", task.id);
        Ok(DeleteResponse {
            pid: task.pid as u32,
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }

    pub async fn state(&self, req: StateRequest) -> Result<StateResponse> {
        no_exec(&req.exec_id, "state")?;
        let task = self.task(&req.id)?;
        let status = match task.status() {
            Status::Created => api::Status::CREATED,
            Status::Running => api::Status::RUNNING,
            Status::Stopped => api::Status::STOPPED,
        };
        let exit = task.exit();
        Ok(StateResponse {
            id: task.id.clone(),
            bundle: task.bundle.display().to_string(),
            pid: task.pid as u32,
            status: status.into(),
            stdin: task.stdio.stdin.clone(),
            stdout: task.stdio.stdout.clone(),
            stderr: task.stdio.stderr.clone(),
            terminal: task.stdio.terminal,
            exit_status: exit.map(|e| e.status).unwrap_or_default(),
            exited_at: exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            ..Default::default()
        })
    }

    pub async fn pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let task = self.task(&req.id)?;
        let pids = task.with_container("pids", |c| c.pids()).await?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub async fn connect(&self, req: ConnectRequest) -> Result<ConnectResponse> {
        let task_pid = lock(&self.tasks)
            .get(&req.id)
            .map(|t| t.pid as u32)
            .unwrap_or_default();
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    pub async fn shutdown(&self, _req: ShutdownRequest) -> Result<()> {
        if lock(&self.tasks).is_empty() {
            self.shutdown.notify_one();
        }
        Ok(())
    }

    pub async fn close_io(&self, req: CloseIORequest) -> Result<()> {
        no_exec(&req.exec_id, "closeIO")?;
        let task = self.task(&req.id)?;
        if req.stdin {
            task.close_stdin();
        }
        Ok(())
    }
}

/// The ttrpc face of [`Shim`]: one line per RPC.
pub struct TaskService(pub Arc<Shim>);

fn unimplemented<T>(what: &str) -> TtrpcResult<T> {
    Err(Error::Unimplemented(what.to_string()).into())
}

#[async_trait]
impl TaskApi for TaskService {
    async fn create(
        &self,
        _: &TtrpcContext,
        r: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        Ok(self.0.create(r).await?)
    }
    async fn start(&self, _: &TtrpcContext, r: StartRequest) -> TtrpcResult<StartResponse> {
        Ok(self.0.start(r).await?)
    }
    async fn wait(&self, _: &TtrpcContext, r: WaitRequest) -> TtrpcResult<WaitResponse> {
        Ok(self.0.wait(r).await?)
    }
    async fn kill(&self, _: &TtrpcContext, r: KillRequest) -> TtrpcResult<Empty> {
        self.0.kill(r).await?;
        Ok(Empty::new())
    }
    async fn delete(&self, _: &TtrpcContext, r: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        Ok(self.0.delete(r).await?)
    }
    async fn state(&self, _: &TtrpcContext, r: StateRequest) -> TtrpcResult<StateResponse> {
        Ok(self.0.state(r).await?)
    }
    async fn pids(&self, _: &TtrpcContext, r: PidsRequest) -> TtrpcResult<PidsResponse> {
        Ok(self.0.pids(r).await?)
    }
    async fn connect(&self, _: &TtrpcContext, r: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        Ok(self.0.connect(r).await?)
    }
    async fn shutdown(&self, _: &TtrpcContext, r: ShutdownRequest) -> TtrpcResult<Empty> {
        self.0.shutdown(r).await?;
        Ok(Empty::new())
    }
    async fn close_io(&self, _: &TtrpcContext, r: CloseIORequest) -> TtrpcResult<Empty> {
        self.0.close_io(r).await?;
        Ok(Empty::new())
    }
    async fn exec(&self, _: &TtrpcContext, _: ExecProcessRequest) -> TtrpcResult<Empty> {
        unimplemented("exec")
    }
    async fn resize_pty(&self, _: &TtrpcContext, _: ResizePtyRequest) -> TtrpcResult<Empty> {
        unimplemented("resizePty (terminals)")
    }
    async fn pause(&self, _: &TtrpcContext, _: PauseRequest) -> TtrpcResult<Empty> {
        unimplemented("pause")
    }
    async fn resume(&self, _: &TtrpcContext, _: ResumeRequest) -> TtrpcResult<Empty> {
        unimplemented("resume")
    }
    async fn update(&self, _: &TtrpcContext, _: UpdateTaskRequest) -> TtrpcResult<Empty> {
        unimplemented("update")
    }
    async fn stats(&self, _: &TtrpcContext, _: StatsRequest) -> TtrpcResult<StatsResponse> {
        unimplemented("stats")
    }
    async fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        unimplemented("checkpoint (tent does not checkpoint)")
    }
}
