//! tent's in-tree OCI runtime library.
//!
//! The shim (or any other caller) drives containers through [`Container`]:
//!
//! 1. [`InitExe::seal_current`] once per process: a sealed memfd copy of our own
//!    binary, so a container can never overwrite the host binary (CVE-2019-5736).
//! 2. [`Container::create`] spawns the single-threaded container init (a re-exec of
//!    the sealed binary that enters [`init_main`]), sets up cgroups, namespaces,
//!    mounts and the process, and returns once the init waits for `start`.
//! 3. [`Container::start`] lets the init `execve` the user's process.
//! 4. The caller reaps exits (it is a child subreaper, see [`set_child_subreaper`]).
//! 5. [`Container::destroy`] removes everything the container left behind.
//!
//! API CONTRACT (shared with the shim; change only together):
//! see the signatures below.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Broad class of a runtime error, for mapping onto ttrpc/gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    FailedPrecondition,
    Unimplemented,
    Internal,
}

/// A runtime error. Display names the failing step and the field or path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Placeholder(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of containerd's `CreateTaskRequest.rootfs`.
#[derive(Debug, Clone, Default)]
pub struct RootfsMount {
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

/// The container process's standard streams. `None` means `/dev/null`.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// A sealed, read-only in-memory copy of the current executable.
#[derive(Debug)]
pub struct InitExe {
    _fd: OwnedFd,
}

impl InitExe {
    pub fn seal_current() -> Result<InitExe> {
        Err(Error::Placeholder("not yet".into()))
    }
}

/// What the caller asks for in [`Container::create`].
#[derive(Debug)]
pub struct CreateRequest<'a> {
    pub id: &'a str,
    /// The OCI bundle: holds `config.json`; `rootfs` is mounted on `<bundle>/rootfs`.
    pub bundle: &'a Path,
    pub rootfs_mounts: &'a [RootfsMount],
    pub stdio: Stdio,
    pub init_exe: &'a InitExe,
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: i32,
}

impl Container {
    pub fn create(_req: CreateRequest<'_>) -> Result<Container> {
        Err(Error::Placeholder("not yet".into()))
    }
    pub fn pid(&self) -> i32 {
        self.pid
    }
    pub fn start(&mut self) -> Result<()> {
        Err(Error::Placeholder("not yet".into()))
    }
    pub fn kill(&self, _signal: i32, _all: bool) -> Result<()> {
        Err(Error::Placeholder("not yet".into()))
    }
    pub fn pids(&self) -> Result<Vec<i32>> {
        Err(Error::Placeholder("not yet".into()))
    }
    pub fn destroy(self) -> Result<()> {
        Err(Error::Placeholder("not yet".into()))
    }
}

/// Clean up after a dead shim (`containerd-shim-tent-v1 delete`): kill what is left,
/// unmount the rootfs, remove the cgroup and state. Returns the init pid if known.
pub fn cleanup_bundle(_bundle: &Path, _id: &str) -> Result<Option<i32>> {
    Err(Error::Placeholder("not yet".into()))
}

/// True when this process was started as the container init (checked first in `main`).
pub fn is_init_invocation() -> bool {
    false
}

/// Entry point of the container init; never returns.
pub fn init_main() -> ! {
    std::process::exit(1)
}

/// Make the calling process a child subreaper so orphaned container inits reparent to it.
pub fn set_child_subreaper() -> Result<()> {
    Ok(())
}
