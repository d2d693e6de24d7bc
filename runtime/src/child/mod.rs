//! The container's side of the fork: everything that runs in the fresh,
//! single-threaded re-exec of our binary that becomes a container process
//! (never in the caller, which may be a multi-threaded tokio shim).
//!
//! - [`main`]: entry dispatch (init or exec), reached through [`crate::init_main`];
//! - [`fork`]: forking stage 2, straight into the cgroup on v2 (`clone3`);
//! - [`init`]: the init's stages (namespaces, rootfs, terminal, ready, start);
//! - [`exec`]: an exec's stages (join the init's namespaces, user lookup);
//! - [`hook`]: a hook runner (one OCI hook in the runtime's namespaces);
//! - [`pod`]: a pod helper (a pod's IPC/UTS namespaces, pinned, without a process);
//! - [`setup`]: the last steps before `execve`, shared by both.
//!
//! Every failing step travels back to the caller as a typed message naming
//! the step ([`StepError`]); the caller side is `container.rs` and `exec.rs`.

mod exec;
mod fork;
mod hook;
mod init;
mod pod;
mod setup;

use std::os::fd::{FromRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg};

use crate::error::{Error, Result};
use crate::sync::{Channel, Message};

/// An `Error` with the step that failed, for the sync channel.
#[derive(Debug)]
pub struct StepError {
    pub step: &'static str,
    pub error: Error,
}

type StepResult<T> = std::result::Result<T, StepError>;

trait Step<T> {
    fn step(self, step: &'static str) -> StepResult<T>;
}

impl<T> Step<T> for Result<T> {
    fn step(self, step: &'static str) -> StepResult<T> {
        self.map_err(|error| StepError { step, error })
    }
}

/// Runs stage 1 of an init or an exec (and, in the forked child, stage 2);
/// never returns.
pub fn main() -> ! {
    // fd 0 is the sync socket until the workload's stdin replaces it.
    let ch = match fcntl(std::io::stdin(), FcntlArg::F_DUPFD_CLOEXEC(3)) {
        Ok(fd) => {
            setup::close_fds_except(fd);
            // SAFETY: F_DUPFD_CLOEXEC just returned this new fd, owned by nobody else.
            Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        Err(_) => exit(120),
    };
    // Non-dumpable until execve: the container cannot reach us through /proc.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let run = if crate::exe::invocation_is(crate::exe::EXEC_MARKER) {
        exec::stage1
    } else if crate::exe::invocation_is(crate::exe::HOOK_MARKER) {
        hook::run
    } else if crate::exe::invocation_is(crate::exe::POD_MARKER) {
        pod::run
    } else {
        init::stage1
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

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and flushing, which an init must not run.
    unsafe { libc::_exit(code) }
}

fn report(ch: &Channel, e: StepError) {
    let msg = Message::Error {
        step: e.step.to_string(),
        cause: e.error.to_string(),
        kind: e.error.kind(),
    };
    let _ = ch.send(&msg, &[]);
}

/// Receives the one message a stage expects first; EOF (the caller gave up)
/// ends the process quietly.
fn receive<T>(
    ch: &Channel,
    step: &'static str,
    pick: impl FnOnce(Message) -> std::result::Result<T, Message>,
) -> StepResult<(T, Vec<OwnedFd>)> {
    match ch.recv().step(step)? {
        Some((msg, fds)) => match pick(msg) {
            Ok(v) => Ok((v, fds)),
            Err(other) => Err(Error::Protocol(format!("{step}: unexpected {other:?}"))).step(step),
        },
        None => exit(1),
    }
}
