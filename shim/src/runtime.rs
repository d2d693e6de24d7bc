//! The seam between the shim and the runtime: the container operations the shim
//! calls, as one object-safe trait, [`Container`]. [`tent`] makes real containers
//! (a thin adapter over [`tent_runtime::Container`]); the unit tests pass a fake, so
//! the shim's state machine (exits, races, events) is tested without containerd or
//! root. Besides it: [`ExecHandle`], what the shim keeps of a started exec, and
//! [`OomCounter`], the pollable OOM counter (the real one is the runtime's
//! `OomWatcher` as it is).
//!
//! Every method is blocking; the shim calls them on tokio's blocking pool. No
//! generics: the shim holds a [`Create`] and `Box<dyn Container>`s.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use tent_runtime::{ExecRequest, RootfsMount, Stats, Stdio};

use crate::error::{Error, Result};

/// One created container, as the shim drives it.
pub trait Container: Send + Sync {
    /// Host pid of the container init.
    fn pid(&self) -> i32;
    /// Lets the init exec the workload.
    fn start(&mut self) -> Result<()>;
    /// Signals the init, or with `all` every process of the container.
    fn kill(&self, signal: i32, all: bool) -> Result<()>;
    fn pids(&self) -> Result<Vec<i32>>;
    /// Starts a process in the running container (a child of the shim, reaped by it).
    fn exec(&self, req: ExecRequest<'_>) -> Result<ExecHandle>;
    fn pause(&self) -> Result<()>;
    fn resume(&self) -> Result<()>;
    fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()>;
    fn stats(&self) -> Result<Stats>;
    /// The container's OOM counter with a pollable fd (see [`crate::oom`]).
    fn oom_watcher(&self) -> Result<Box<dyn OomCounter>>;
    /// The pty master of a terminal init; `Some` once.
    fn take_console(&mut self) -> Option<OwnedFd>;
    /// Removes everything the container left behind.
    fn destroy(self: Box<Self>) -> Result<()>;
}

/// What [`Create`] gets: [`tent_runtime::CreateRequest`] without the init binary,
/// which belongs to the real runtime.
pub struct NewContainer<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs_mounts: &'a [RootfsMount],
    pub stdio: Stdio,
    /// tent's profile for the container (from containerd's runtime options).
    pub profile: &'a tent_runtime::Profile,
}

/// Makes containers (blocking); held by the shim.
pub type Create = Arc<dyn Fn(NewContainer<'_>) -> Result<Box<dyn Container>> + Send + Sync>;

/// A started exec: its pid, its pty master, and how to signal it.
pub struct ExecHandle {
    pub pid: i32,
    pub console: Option<OwnedFd>,
    signal: Box<dyn Fn(i32) -> Result<()> + Send + Sync>,
}

impl ExecHandle {
    pub fn new(
        pid: i32,
        console: Option<OwnedFd>,
        signal: impl Fn(i32) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        ExecHandle {
            pid,
            console,
            signal: Box::new(signal),
        }
    }

    /// Signals the exec (the real one through its pidfd, so never a recycled pid).
    pub fn kill(&self, signal: i32) -> Result<()> {
        (self.signal)(signal)
    }
}

/// A container's OOM-kill counter and the fd that wakes up when it may have moved.
pub trait OomCounter: AsFd + Send + Sync {
    /// OOM kills so far.
    fn oom_kills(&self) -> Result<u64>;
    /// Consumes the wake-up; an error means the cgroup is gone.
    fn drain(&self) -> Result<()>;
}

impl OomCounter for tent_runtime::OomWatcher {
    fn oom_kills(&self) -> Result<u64> {
        Ok(tent_runtime::OomWatcher::oom_kills(self)?)
    }

    fn drain(&self) -> Result<()> {
        tent_runtime::OomWatcher::drain(self)?;
        Ok(())
    }
}

/// The real runtime: containers run from the sealed copy of this binary.
pub fn tent(init_exe: tent_runtime::InitExe) -> Create {
    Arc::new(move |req: NewContainer<'_>| {
        let container = tent_runtime::Container::create(tent_runtime::CreateRequest {
            id: req.id,
            bundle: req.bundle,
            rootfs_mounts: req.rootfs_mounts,
            stdio: req.stdio,
            init_exe: &init_exe,
            profile: req.profile,
        })?;
        Ok(Box::new(Tent(container)) as Box<dyn Container>)
    })
}

/// [`tent_runtime::Container`] behind the seam.
struct Tent(tent_runtime::Container);

impl Container for Tent {
    fn pid(&self) -> i32 {
        self.0.pid()
    }

    fn start(&mut self) -> Result<()> {
        Ok(self.0.start()?)
    }

    fn kill(&self, signal: i32, all: bool) -> Result<()> {
        Ok(self.0.kill(signal, all)?)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        Ok(self.0.pids()?)
    }

    fn exec(&self, req: ExecRequest<'_>) -> Result<ExecHandle> {
        let mut process = self.0.exec(req)?;
        let (pid, console) = (process.pid, process.console.take());
        Ok(ExecHandle::new(pid, console, move |signal| {
            process.kill(signal).map_err(Error::from)
        }))
    }

    fn pause(&self) -> Result<()> {
        Ok(self.0.pause()?)
    }

    fn resume(&self) -> Result<()> {
        Ok(self.0.resume()?)
    }

    fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        Ok(self.0.update(resources)?)
    }

    fn stats(&self) -> Result<Stats> {
        Ok(self.0.stats()?)
    }

    fn oom_watcher(&self) -> Result<Box<dyn OomCounter>> {
        Ok(Box::new(self.0.oom_watcher()?))
    }

    fn take_console(&mut self) -> Option<OwnedFd> {
        self.0.take_console()
    }

    fn destroy(self: Box<Self>) -> Result<()> {
        Ok(self.0.destroy()?)
    }
}
