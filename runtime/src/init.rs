//! The container init, entered through [`crate::init_main`] in a fresh exec of
//! the sealed binary. Stage 1 joins/creates namespaces and forks; stage 2 (PID 1
//! of the new pid namespace) sets up the file system, reports ready, waits for
//! start and execs the workload. Failures travel back as typed messages.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg};
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
    namespaces::enter(&spec).step("namespaces")?;
    fork_stage2(ch, || stage2(ch, &cfg, &spec))
}

/// Forks stage 2 (PID 1 of a new pid namespace, or an exec's process). The child runs
/// `stage2` and never returns; the parent reports the child's pid with a pidfd.
pub(crate) fn fork_stage2(
    ch: &Channel,
    stage2: impl FnOnce() -> StepResult<std::convert::Infallible>,
) -> StepResult<()> {
    // SAFETY: stage 1 is single-threaded (a fresh exec), so fork is safe.
    match unsafe { fork() }
        .map_err(|e| Error::sys("fork stage 2", e))
        .step("fork")?
    {
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
