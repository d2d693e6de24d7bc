//! One container as the shim tracks it: an explicit state machine around the
//! runtime's [`tent_runtime::Container`], plus the exit that waiters wait for.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::io::{StdinCloser, StdioPaths};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// How the init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

pub struct Task {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: i32,
    pub stdio: StdioPaths,
    stdin: Mutex<Option<StdinCloser>>,
    state: Mutex<Status>,
    exit: watch::Sender<Option<Exit>>,
    /// `None` once destroyed.
    container: Arc<Mutex<Option<tent_runtime::Container>>>,
}

impl Task {
    pub fn new(
        container: tent_runtime::Container,
        stdio: StdioPaths,
        stdin: Option<StdinCloser>,
    ) -> Self {
        let (exit, _) = watch::channel(None);
        Task {
            id: container.id.clone(),
            bundle: container.bundle.clone(),
            pid: container.pid(),
            stdio,
            stdin: Mutex::new(stdin),
            state: Mutex::new(Status::Created),
            exit,
            container: Arc::new(Mutex::new(Some(container))),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, Status> {
        // A poisoned lock only means a panic elsewhere; the state itself is a plain enum.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        *self.lock_state()
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Records the init's exit (from the reaper). Returns false if it was already recorded.
    pub fn set_exited(&self, status: u32) -> bool {
        let mut state = self.lock_state();
        if self.exit.borrow().is_some() {
            return false;
        }
        *state = Status::Stopped;
        self.exit.send_replace(Some(Exit {
            status,
            at: SystemTime::now(),
        }));
        true
    }

    /// Moves Created → Running; fails if the task is in any other state.
    pub fn set_running(&self) -> Result<()> {
        let mut state = self.lock_state();
        match *state {
            Status::Created => {
                *state = Status::Running;
                Ok(())
            }
            other => Err(Error::FailedPrecondition(format!(
                "cannot start task {} in state {other:?}",
                self.id
            ))),
        }
    }

    /// Closes the workload's stdin (containerd's `CloseIO`).
    pub fn close_stdin(&self) {
        if let Some(closer) = self.stdin.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            closer.close();
        }
    }

    /// Waits until the init has exited.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`; this is unreachable in practice.
                return Exit {
                    status: 255,
                    at: SystemTime::now(),
                };
            }
        }
    }

    /// Runs a blocking runtime operation on the container on the blocking pool.
    pub async fn with_container<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut tent_runtime::Container) -> tent_runtime::Result<T> + Send + 'static,
    {
        let container = self.container.clone();
        let id = self.id.clone();
        let label = what.to_string();
        tokio::task::spawn_blocking(move || {
            let mut guard = container.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(c) => f(c).map_err(Error::from),
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
            let taken = container.lock().unwrap_or_else(|p| p.into_inner()).take();
            match taken {
                Some(c) => c.destroy().map_err(Error::from),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("destroy: {e}")))?
    }
}
