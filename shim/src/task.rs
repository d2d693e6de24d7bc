//! One container as the shim tracks it: its init process, its exec processes and
//! the runtime's container (behind [`crate::runtime::Container`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::oom::OomMonitor;
use crate::process::{lock, Process};
use crate::runtime::{Container, ExecHandle};

/// An exec process: the shim's view plus the process spec containerd sent.
pub struct Exec {
    pub process: Process,
    pub spec: oci_spec::runtime::Process,
    pub handle: Mutex<Option<ExecHandle>>,
}

pub struct Task {
    pub id: String,
    pub bundle: PathBuf,
    pub init: Process,
    pub execs: Mutex<HashMap<String, Arc<Exec>>>,
    /// The init's OOM counter, when it can be watched.
    pub oom: Mutex<Option<Arc<OomMonitor>>>,
    /// `None` once destroyed. Read-locked for everything that can run concurrently
    /// (exec, kill, stats …), write-locked for start and destroy.
    container: Arc<RwLock<Option<Box<dyn Container>>>>,
}

impl Task {
    pub fn new(id: &str, bundle: PathBuf, container: Box<dyn Container>, init: Process) -> Self {
        init.set_pid(container.pid());
        Task {
            id: id.to_string(),
            bundle,
            init,
            execs: Mutex::new(HashMap::new()),
            oom: Mutex::new(None),
            container: Arc::new(RwLock::new(Some(container))),
        }
    }

    /// The process for `exec_id` ("" is the init).
    pub fn process(&self, exec_id: &str) -> Result<ProcessRef> {
        if exec_id.is_empty() {
            return Ok(ProcessRef::Init);
        }
        lock(&self.execs)
            .get(exec_id)
            .cloned()
            .map(ProcessRef::Exec)
            .ok_or_else(|| Error::ExecNotFound {
                container_id: self.id.clone(),
                exec_id: exec_id.to_string(),
            })
    }

    /// Runs a blocking runtime operation that needs shared access, on the blocking pool.
    pub async fn with_container<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Container) -> Result<T> + Send + 'static,
    {
        let container = self.container.clone();
        let id = self.id.clone();
        let label = what.to_string();
        tokio::task::spawn_blocking(move || {
            let guard = container.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(c) => f(c.as_ref()),
                None => Err(Error::FailedPrecondition(format!(
                    "{label}: container {id} is already deleted"
                ))),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("{what}: {e}")))?
    }

    /// Like [`Task::with_container`], with exclusive access.
    pub async fn with_container_mut<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Container) -> Result<T> + Send + 'static,
    {
        let container = self.container.clone();
        let id = self.id.clone();
        let label = what.to_string();
        tokio::task::spawn_blocking(move || {
            let mut guard = container.write().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(c) => f(c.as_mut()),
                None => Err(Error::FailedPrecondition(format!(
                    "{label}: container {id} is already deleted"
                ))),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("{what}: {e}")))?
    }

    /// Removes everything the container left behind; idempotent.
    pub async fn destroy(&self) -> Result<()> {
        let container = self.container.clone();
        tokio::task::spawn_blocking(move || {
            let taken = container.write().unwrap_or_else(|p| p.into_inner()).take();
            match taken {
                Some(c) => c.destroy(),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("destroy: {e}")))?
    }
}

/// A process of a task, by reference.
#[derive(Clone)]
pub enum ProcessRef {
    Init,
    Exec(Arc<Exec>),
}

impl ProcessRef {
    pub fn get<'a>(&'a self, task: &'a Task) -> &'a Process {
        match self {
            ProcessRef::Init => &task.init,
            ProcessRef::Exec(exec) => &exec.process,
        }
    }
}
