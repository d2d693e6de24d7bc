//! tent's in-tree OCI runtime library.
//!
//! The shim (or any other caller) drives containers through [`Container`]:
//!
//! 1. [`InitExe::seal_current`] once per process: a read-only view of our own
//!    binary (a sealed memfd copy where the kernel cannot make one), so a
//!    container can never overwrite the host binary (CVE-2019-5736).
//! 2. [`Container::create`] spawns the single-threaded container init (a re-exec of
//!    that binary that enters [`init_main`]), sets up cgroups, namespaces,
//!    mounts, limits and confinement, and returns once the init waits for `start`.
//! 3. [`Container::start`] lets the init `execve` the user's process.
//! 4. The caller reaps exits (it is a child subreaper, see [`set_child_subreaper`]).
//! 5. [`Container::destroy`] removes everything the container left behind.
//!
//! API CONTRACT (shared with the shim; change only together):
//! see the signatures below.

// Panic policy (docs/ARCHITECTURE.md): no explicit panic in shipped code; the shim
// isolates any other panic to its request (shim/src/isolate.rs).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

// The caller's side: the public API below, lifecycle, exec, host mounts.
mod container;
mod exec;
mod features;
mod hook_runner;
mod hostfs;
mod state;
// Shared by both sides: what the spec asks for, and how it is applied.
mod cgroups;
mod confine;
mod error;
mod exe;
mod hooks;
mod mounts;
mod namespaces;
mod pathsafe;
mod pidfd;
mod pod;
mod process;
mod profile;
mod spec;
mod sync;
mod sysctl;
// The container's side of the fork (and what only it uses).
mod child;
mod rootfs;
mod tty;
// The pure parsers of untrusted input, for fuzz/ (cargo-fuzz) and its regression tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;

pub use cgroups::devices::{install_v2_filter, v2_filters, Installed};
pub use cgroups::move_to as join_cgroup;
pub use cgroups::oom::OomWatcher;
pub use cgroups::stats::{CpuStats, MemoryStats, PidsStats, Stats};
pub use error::{Error, ErrorKind, Result};
pub use exe::{is_init_invocation, reaper_guard, spawn_guard, InitExe};
pub use features::{features, features_json, FEATURES_TYPE_URL};
pub use pod::{kill_pod_init, remove_pins as remove_pod_pins, PodNamespaces, PodRequest};
pub use profile::{Allow, AuditBudget, BudgetMode, Mode, Profile};

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

/// What the caller asks for in [`Container::create`].
#[derive(Debug)]
pub struct CreateRequest<'a> {
    pub id: &'a str,
    /// The OCI bundle: holds `config.json`; `rootfs` is mounted on `<bundle>/rootfs`.
    pub bundle: &'a Path,
    pub rootfs_mounts: &'a [RootfsMount],
    pub stdio: Stdio,
    pub init_exe: &'a InitExe,
    /// How far the container may reach (tent's profile; `Profile::default()` is `tent`).
    pub profile: &'a Profile,
}

/// What the caller asks for in [`Container::exec`].
#[derive(Debug)]
pub struct ExecRequest<'a> {
    /// The exec's process: args, env, cwd, user (numeric, or `username` looked
    /// up in the container's `/etc/passwd`), capabilities, rlimits,
    /// no_new_privileges, terminal, consoleSize.
    pub process: &'a oci_spec::runtime::Process,
    /// Ignored for 0/1/2 when `process.terminal` is set.
    pub stdio: Stdio,
}

/// A process started by [`Container::exec`]. Once `exec` returned it is a child
/// of the caller (a child subreaper): reap it with `waitpid`.
#[derive(Debug)]
pub struct ExecProcess {
    /// Host pid.
    pub pid: i32,
    pidfd: OwnedFd,
    /// The pty master when `process.terminal` was set.
    pub console: Option<OwnedFd>,
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: i32,
    handle: container::Handle,
}

impl Container {
    /// Validates the bundle, mounts the rootfs, creates the cgroup and runs the
    /// init up to "ready". Blocking. On failure nothing it made is left behind.
    pub fn create(req: CreateRequest<'_>) -> Result<Container> {
        let id = req.id.to_string();
        let bundle = req.bundle.to_path_buf();
        let (pid, handle) = container::create(req)?;
        Ok(Container {
            id,
            bundle,
            pid,
            handle,
        })
    }

    /// Host pid of the container init (PID 1 inside the container).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the init exec the workload; `Ok` once `execve` succeeded. Blocking.
    pub fn start(&mut self) -> Result<()> {
        self.handle.start()
    }

    /// Signals the init (through a pidfd), or with `all` every process in the
    /// cgroup. An exited init gives [`ErrorKind::NotFound`].
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        self.handle.kill(signal, all)
    }

    /// Pids of all processes in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(self.handle.pids())
    }

    /// Starts a new process in the running container and returns once its
    /// `execve` succeeded (or with the failing step, naming the path/field).
    /// Blocking; safe to call from several threads at once. A paused container
    /// or one whose init exited gives [`ErrorKind::FailedPrecondition`].
    pub fn exec(&self, req: ExecRequest<'_>) -> Result<ExecProcess> {
        exec::exec(&self.handle, req)
    }

    /// Freezes every process of the container and waits until the kernel
    /// reports the cgroup frozen. Blocking (usually milliseconds, at most 10 s).
    pub fn pause(&self) -> Result<()> {
        self.handle.cgroup.freeze()
    }

    /// Thaws the container.
    pub fn resume(&self) -> Result<()> {
        self.handle.cgroup.thaw()
    }

    /// True while the container is frozen (or being frozen).
    pub fn is_paused(&self) -> Result<bool> {
        self.handle.cgroup.is_frozen()
    }

    /// New memory/cpu/pids limits and, on cgroup v2, device rules (a new device
    /// program); validated first ([`ErrorKind::InvalidArgument`] naming the
    /// field), all or nothing.
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        cgroups::resources::update(&self.handle.cgroup, resources)?;
        self.handle.cgroup.update_unit(resources)
    }

    /// The systemd scope unit that holds the container's cgroup, when systemd
    /// made it (systemd is PID 1 and `linux.cgroupsPath` has the systemd form).
    pub fn systemd_unit(&self) -> Option<&str> {
        self.handle.cgroup.unit()
    }

    /// Memory, cpu and pids usage of the container's cgroup.
    pub fn stats(&self) -> Result<Stats> {
        cgroups::stats::collect(&self.handle.cgroup)
    }

    /// A pollable fd that reports OOM events of the container's cgroup.
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        cgroups::oom::watch(&self.handle.cgroup)
    }

    /// The pty master of a terminal init (`process.terminal`); `Some` once.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.handle.console.take()
    }

    /// Kills what is left, removes the cgroup, unmounts the rootfs and removes
    /// the state file. Call after the init exited.
    pub fn destroy(self) -> Result<()> {
        self.handle.destroy(&self.bundle)
    }
}

/// Clean up after a dead shim (`containerd-shim-tent-v1 delete`): kill what is left,
/// unmount the rootfs, remove the cgroup and state, run the poststop hooks. Returns
/// the init pid if known. It waits for the hooks with `waitpid` on their pids: do
/// not call it while a global `waitpid(-1)` reaper runs in the same process.
pub fn cleanup_bundle(bundle: &Path, id: &str) -> Result<Option<i32>> {
    container::cleanup_bundle(bundle, id)
}

/// Statistics of a cgroup by its path (a pod's `cgroup_parent`, holding its containers'
/// cgroups; cgroupfs or systemd slice form): pod stats for a sandbox without a pause container.
pub fn cgroup_stats(path: &str) -> Result<Stats> {
    let path = cgroups::path::CgroupPath::parse_parent(path)?;
    cgroups::stats::collect(&cgroups::manager::CgroupManager::load(path))
}

/// Entry point of the container init; never returns.
pub fn init_main() -> ! {
    child::main()
}

/// Sets the window size of a console (the pty master from [`Container::take_console`]
/// or [`ExecProcess::console`]); for the Task API's `ResizePty`.
pub fn resize_console(master: std::os::fd::BorrowedFd<'_>, height: u16, width: u16) -> Result<()> {
    tty::set_size(master, height.into(), width.into())
}

/// Make the calling process a child subreaper so orphaned container inits reparent to it.
pub fn set_child_subreaper() -> Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Error::sys(
            "prctl PR_SET_CHILD_SUBREAPER",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}
