//! Forking stage 2 from a single-threaded stage 1: PID 1 of a new pid
//! namespace (init) or the exec's process. On v2 the child is born in the
//! container's cgroup (`clone3(CLONE_INTO_CGROUP)`), so nobody migrates it.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::unistd::{fork, ForkResult};

use super::{exit, report, Step, StepResult};
use crate::error::{Error, Result};
use crate::pidfd;
use crate::sync::{Channel, Message};

/// Forks stage 2 (PID 1 of a new pid namespace, or an exec's process), straight
/// into the cgroup directory `into_cgroup` when given (v2). The child runs
/// `stage2` and never returns; the parent reports the child's pid with a pidfd.
pub(super) fn fork_stage2(
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
fn fork_into_cgroup(dir: BorrowedFd<'_>) -> Result<ForkResult> {
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
