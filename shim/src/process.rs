//! One process as the shim tracks it (a container's init or an exec): an explicit
//! state machine, its streams, and the exit that waiters wait for.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::io::{StdinCloser, StdioPaths};

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Process {
    /// Empty for the init, the exec id otherwise.
    pub exec_id: String,
    pid: AtomicI32,
    pub stdio: StdioPaths,
    stdin: Mutex<Option<StdinCloser>>,
    /// The stdin FIFO, opened before the process starts (execs: at `Exec`).
    stdin_fifo: Mutex<Option<tokio::net::unix::pipe::Receiver>>,
    held_outputs: Mutex<Vec<OwnedFd>>,
    console: Mutex<Option<OwnedFd>>,
    state: Mutex<Status>,
    exit: watch::Sender<Option<Exit>>,
    /// Resolves when the terminal output copy has drained (tty processes only).
    output_done: watch::Sender<bool>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths) -> Self {
        Process {
            exec_id: exec_id.to_string(),
            pid: AtomicI32::new(0),
            stdio,
            stdin: Mutex::new(None),
            stdin_fifo: Mutex::new(None),
            held_outputs: Mutex::new(Vec::new()),
            console: Mutex::new(None),
            state: Mutex::new(Status::Created),
            exit: watch::channel(None).0,
            output_done: watch::channel(true).0,
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    /// Keeps the stdin FIFO opened ahead of `Start` (see [`crate::io::open_stdin_fifo`]).
    pub fn set_stdin_fifo(&self, fifo: tokio::net::unix::pipe::Receiver) {
        *lock(&self.stdin_fifo) = Some(fifo);
    }

    pub fn take_stdin_fifo(&self) -> Option<tokio::net::unix::pipe::Receiver> {
        lock(&self.stdin_fifo).take()
    }

    pub fn set_stdin(&self, closer: Option<StdinCloser>) {
        *lock(&self.stdin) = closer;
    }

    pub fn hold_outputs(&self, held: Vec<OwnedFd>) {
        *lock(&self.held_outputs) = held;
    }

    /// Lets go of the output FIFOs at once (the process never ran, or is deleted).
    pub fn drop_outputs(&self) {
        lock(&self.held_outputs).clear();
    }

    /// Lets go of the output FIFOs once their contents were read (bounded wait).
    pub async fn release_outputs(&self, limit: std::time::Duration) {
        let held = std::mem::take(&mut *lock(&self.held_outputs));
        crate::io::drain(held, limit).await;
    }

    /// Closes the workload's stdin (containerd's `CloseIO`).
    pub fn close_stdin(&self) {
        if let Some(closer) = lock(&self.stdin).as_mut() {
            closer.close();
        }
    }

    /// Lets go of every stream the shim holds for this process (at Delete): the
    /// stdin copy and FIFO, the held outputs.
    pub fn close_streams(&self) {
        self.close_stdin();
        drop(self.take_stdin_fifo());
        self.drop_outputs();
    }

    pub fn set_console(&self, master: OwnedFd) {
        *lock(&self.console) = Some(master);
    }

    /// Runs `f` on the pty master, if this process has a terminal.
    pub fn with_console<T>(&self, f: impl FnOnce(&OwnedFd) -> Result<T>) -> Result<T> {
        match lock(&self.console).as_ref() {
            Some(fd) => f(fd),
            None => Err(Error::FailedPrecondition(format!(
                "process {} has no terminal",
                self.label()
            ))),
        }
    }

    /// A tty copy is running; the exit event waits for it to drain.
    pub fn expect_output(&self) -> watch::Sender<bool> {
        self.output_done.send_replace(false);
        self.output_done.clone()
    }

    pub async fn output_drained(&self) {
        let mut rx = self.output_done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    pub fn label(&self) -> String {
        if self.exec_id.is_empty() {
            "init".to_string()
        } else {
            format!("exec {}", self.exec_id)
        }
    }

    pub fn status(&self) -> Status {
        *lock(&self.state)
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Moves Created → Running.
    pub fn set_running(&self) -> Result<()> {
        self.transition(&[Status::Created], Status::Running, "start")
    }

    pub fn set_paused(&self, paused: bool) -> Result<()> {
        if paused {
            self.transition(&[Status::Running], Status::Paused, "pause")
        } else {
            self.transition(&[Status::Paused], Status::Running, "resume")
        }
    }

    fn transition(&self, from: &[Status], to: Status, what: &str) -> Result<()> {
        let mut state = lock(&self.state);
        if from.contains(&state) {
            *state = to;
            Ok(())
        } else {
            Err(Error::FailedPrecondition(format!(
                "cannot {what} {} in state {:?}",
                self.label(),
                *state
            )))
        }
    }

    /// Records the exit (from the reaper). Returns false if it was already recorded.
    pub fn set_exited(&self, status: u32) -> bool {
        self.set_exited_at(status, SystemTime::now())
    }

    /// Like [`Process::set_exited`], with the time the exit was seen.
    pub fn set_exited_at(&self, status: u32, at: SystemTime) -> bool {
        let mut state = lock(&self.state);
        if self.exit.borrow().is_some() {
            return false;
        }
        *state = Status::Stopped;
        self.exit.send_replace(Some(Exit { status, at }));
        // stdin stays open until Delete (or CloseIO), as with runc's shim: a client
        // byte that arrives after the exit must not break the client's pipe, or
        // containerd's CRI tears the session down before the output is read.
        true
    }

    /// Waits until the process has exited.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.subscribe();
        let exit = match rx.wait_for(|e| e.is_some()).await {
            Ok(exit) => *exit,
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        exit.unwrap_or(Exit {
            status: 255,
            at: SystemTime::now(),
        })
    }
}
