//! The container init, entered through [`crate::init_main`] in a fresh exec of
//! the sealed binary. Stage 1 joins/creates namespaces and forks; stage 2 (PID 1
//! of the new pid namespace) sets up the file system, reports ready, waits for
//! start and execs the workload. Failures travel back as typed messages.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg};
use nix::sched::CloneFlags;
use nix::unistd::{dup2_stdin, fork, ForkResult};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::Error;
use crate::process::{find_executable, setup_and_exec, Step, StepError};
use crate::sync::{Channel, InitConfig, Message};
use crate::{namespaces, pidfd, rootfs, tty};

type StepResult<T> = std::result::Result<T, StepError>;

/// Runs stage 1 (and, in the forked child, stage 2); never returns.
pub fn main() -> ! {
    // fd 0 is the sync socket until the workload's stdin replaces it.
    let ch = match fcntl(std::io::stdin(), FcntlArg::F_DUPFD_CLOEXEC(3)) {
        Ok(fd) => {
            crate::process::close_fds_except(fd);
            // SAFETY: F_DUPFD_CLOEXEC just returned this new fd, owned by nobody else.
            Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        Err(_) => exit(120),
    };
    let run = if crate::exe::invocation_is(crate::exe::EXEC_MARKER) {
        crate::exec::stage1
    } else {
        stage1
    };
    let code = match run(&ch) {
        Ok(()) => 0,
        Err(e) => {
            report(&ch, e);
            1
        }
    };
    exit(code)
}

pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and flushing, which an init must not run.
    unsafe { libc::_exit(code) }
}

pub(crate) fn report(ch: &Channel, e: StepError) {
    let msg = Message::Error {
        step: e.step.to_string(),
        cause: e.error.to_string(),
        kind: e.error.kind(),
    };
    let _ = ch.send(&msg, &[]);
}

fn stage1(ch: &Channel) -> StepResult<()> {
    let (cfg, fds) = match ch.recv().step("receive config")? {
        Some((Message::Config(cfg), fds)) => (cfg, fds),
        Some((other, _)) => {
            return Err(Error::Protocol(format!("expected config, got {other:?}")))
                .step("receive config")
        }
        None => exit(1),
    };
    let stdin: Option<OwnedFd> = fds.into_iter().next();
    if let Some(fd) = stdin {
        dup2_stdin(&fd)
            .map_err(|e| Error::sys("dup2 stdin", e))
            .step("stdio")?;
    }
    let spec: Spec = serde_json::from_str(&cfg.spec)
        .map_err(|e| Error::spec("config.json", e.to_string()))
        .step("parse config")?;
    // Non-dumpable until execve: the container cannot reach us through /proc.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let into_cgroup = cfg.cgroup_join.enter().step("join cgroup")?;
    // When only stage 2 is born in the container's cgroup (v2), stage 2 enters the
    // cgroup namespace: a new one is rooted at the cgroup of whoever unshares it,
    // and with nsdelegate a process cannot be cloned into a cgroup outside its
    // own cgroup namespace.
    let defer = match into_cgroup {
        Some(_) => CloneFlags::CLONE_NEWCGROUP,
        None => CloneFlags::empty(),
    };
    let deferred = namespaces::enter(&spec, defer).step("namespaces")?;
    fork_stage2(ch, into_cgroup.as_ref().map(|fd| fd.as_fd()), || {
        deferred.enter().step("namespaces")?;
        stage2(ch, &cfg, &spec)
    })
}

/// Forks stage 2 (PID 1 of a new pid namespace, or an exec's process), straight
/// into the cgroup directory `into_cgroup` when given (v2). The child runs
/// `stage2` and never returns; the parent reports the child's pid with a pidfd.
pub(crate) fn fork_stage2(
    ch: &Channel,
    into_cgroup: Option<BorrowedFd<'_>>,
    stage2: impl FnOnce() -> StepResult<std::convert::Infallible>,
) -> StepResult<()> {
    let forked = match into_cgroup {
        Some(dir) => fork_into_cgroup(dir),
        // SAFETY: stage 1 is single-threaded (a fresh exec), so fork is safe.
        None => unsafe { fork() }.map_err(|e| Error::sys("fork stage 2", e)),
    };
    match forked.step("fork")? {
        ForkResult::Child => {
            let e = match stage2() {
                Ok(never) => match never {},
                Err(e) => e,
            };
            report(ch, e);
            exit(1)
        }
        ForkResult::Parent { child } => {
            let fd = pidfd::open(child.as_raw()).step("pidfd_open stage 2")?;
            ch.send(&Message::Stage2Pid(child.as_raw()), &[fd.as_raw_fd()])
                .step("report stage 2 pid")?;
            Ok(())
        }
    }
}

/// `CLONE_INTO_CGROUP` (a 64-bit clone3 flag; libc's constant is an overflowing i32).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (size version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `fork()` whose child starts in the v2 cgroup `dir` (`clone3` with
/// `CLONE_INTO_CGROUP`, Linux 5.7). Falls back to moving ourselves through
/// `cgroup.procs` and a plain fork where the kernel lacks it.
fn fork_into_cgroup(dir: BorrowedFd<'_>) -> crate::error::Result<ForkResult> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM duplicates this single-threaded process as
    // fork() does; `args` is a valid clone_args of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        0 => Ok(ForkResult::Child),
        pid if pid > 0 => Ok(ForkResult::Parent {
            child: nix::unistd::Pid::from_raw(pid as i32),
        }),
        _ => {
            let errno = nix::errno::Errno::last();
            if errno != nix::errno::Errno::ENOSYS {
                return Err(Error::sys("clone3 into the container cgroup", errno));
            }
            // Move ourselves instead (waits for the cgroup lock; still correct).
            let procs = nix::fcntl::openat(
                dir,
                "cgroup.procs",
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::sys("open cgroup.procs of the container cgroup", e))?;
            nix::unistd::write(&procs, b"0")
                .map_err(|e| Error::sys("write cgroup.procs of the container cgroup", e))?;
            // SAFETY: stage 1 is single-threaded (a fresh exec), so fork is safe.
            unsafe { fork() }.map_err(|e| Error::sys("fork stage 2", e))
        }
    }
}

fn stage2(ch: &Channel, cfg: &InitConfig, spec: &Spec) -> StepResult<std::convert::Infallible> {
    let root = rootfs::prepare(cfg, spec).step("rootfs")?;
    rootfs::pivot(&root).step("pivot_root")?;
    drop(root);
    rootfs::write_sysctls(spec).step("sysctl")?;
    rootfs::readonly_paths(spec).step("readonly paths")?;
    rootfs::masked_paths(spec).step("masked paths")?;
    if let Some(process) = spec
        .process()
        .as_ref()
        .filter(|p| p.terminal() == Some(true))
    {
        let pty = tty::open_pty(process.console_size().as_ref()).step("terminal")?;
        tty::bind_console(&pty.peer).step("terminal: /dev/console")?;
        ch.send(&Message::Console, &[pty.master.as_raw_fd()])
            .step("terminal: send the pty master")?;
        drop(pty.master);
        tty::make_controlling(pty.peer).step("terminal")?;
    }
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if namespaces::has(spec, LinuxNamespaceType::Uts) {
            nix::unistd::sethostname(hostname)
                .map_err(|e| Error::sys(format!("sethostname {hostname}"), e))
                .step("hostname")?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root().step("readonly rootfs")?;
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::spec("config.json", "process is missing"))
        .step("process")?;
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let exe = find_executable(
        args.first().map(String::as_str).unwrap_or_default(),
        env,
        process.cwd(),
    )
    .step("find executable")?;
    ch.send(&Message::Ready, &[]).step("report ready")?;
    match ch.recv().step("wait for start")? {
        Some((Message::Start, _)) => {}
        Some((other, _)) => {
            return Err(Error::Protocol(format!("expected start, got {other:?}")))
                .step("wait for start")
        }
        None => exit(1),
    }
    Err(setup_and_exec(process, Path::new(&exe)))
}
