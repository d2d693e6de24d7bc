//! pidfds, so signals never hit a recycled pid, and `/proc/<pid>/stat` start
//! times for when only a pid was recorded.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// `pidfd_open(pid, 0)`.
pub fn open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::sys(format!("pidfd_open {pid}"), Errno::last()));
    }
    // SAFETY: the kernel just returned this fd to us (pidfds are CLOEXEC).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(fd, signal)`; an exited process is [`Error::ProcessFinished`].
pub fn send_signal(fd: &OwnedFd, signal: i32) -> Result<()> {
    // SAFETY: valid pidfd, null siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        return Err(match Errno::last() {
            Errno::ESRCH => Error::ProcessFinished,
            Errno::EINVAL => Error::spec("signal", format!("invalid signal {signal}")),
            e => Error::sys(format!("send signal {signal}"), e),
        });
    }
    Ok(())
}

/// Start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the comm: state is field 3, start time field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_start_time() {
        let me = std::process::id() as i32;
        assert!(super::start_time(me).is_some());
        assert_eq!(super::start_time(-5), None);
    }
}
