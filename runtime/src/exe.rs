//! The sealed in-memory copy of our own binary that every container init runs
//! from, so a container can never reopen and overwrite the host binary
//! (CVE-2019-5736), and how it is spawned and recognised.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio as StdStdio};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

use crate::error::{Error, Result};

/// argv[1] of a container init.
pub(crate) const INIT_MARKER: &str = "__tent_container_init__";
/// Environment variable naming the init's sync fd (always 0 at exec time).
pub(crate) const SYNC_FD_ENV: &str = "_TENT_INIT_SYNC_FD";

/// A sealed, read-only in-memory copy of the current executable. Cloning is
/// cheap (shared fd), so it can move into blocking tasks.
#[derive(Debug, Clone)]
pub struct InitExe {
    fd: Arc<OwnedFd>,
}

impl InitExe {
    /// Copies `/proc/self/exe` into a sealed memfd. Do this once per process.
    pub fn seal_current() -> Result<InitExe> {
        let fd = memfd_create(
            "tent-init",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| Error::sys("memfd_create tent-init", e))?;
        let mut src =
            File::open("/proc/self/exe").map_err(|e| Error::io("open", "/proc/self/exe", e))?;
        let mut dst = File::from(fd);
        std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("copy", "/proc/self/exe", e))?;
        let fd = OwnedFd::from(dst);
        let seals = SealFlag::F_SEAL_SEAL
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| Error::sys("seal tent-init memfd", e))?;
        Ok(InitExe { fd: Arc::new(fd) })
    }

    /// Spawns the container init with `sync` as its fd 0 and `stdout`/`stderr` as 1/2.
    /// std's spawn is async-signal-safe in the child; no code of ours runs there.
    pub(crate) fn spawn(
        &self,
        sync: OwnedFd,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<u32> {
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let stdio = |fd: Option<OwnedFd>| fd.map(StdStdio::from).unwrap_or_else(StdStdio::null);
        let mut cmd = Command::new(&path);
        cmd.arg0("tent-init")
            .arg(INIT_MARKER)
            .env_clear()
            .env(SYNC_FD_ENV, "0")
            .stdin(StdStdio::from(sync))
            .stdout(stdio(stdout))
            .stderr(stdio(stderr));
        let child = cmd
            .spawn()
            .map_err(|e| Error::io("spawn container init", path, e))?;
        // The caller reaps globally; dropping `Child` neither waits nor kills.
        Ok(child.id())
    }
}

/// True when this process was started as the container init (checked first in `main`).
pub fn is_init_invocation() -> bool {
    std::env::args_os().nth(1).as_deref() == Some(OsStr::new(INIT_MARKER))
        && std::env::var_os(SYNC_FD_ENV).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_copy_is_read_only() -> Result<()> {
        let exe = InitExe::seal_current()?;
        let seals =
            fcntl(&*exe.fd, FcntlArg::F_GET_SEALS).map_err(|e| Error::sys("get seals", e))?;
        let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        assert_eq!(seals & want, want);
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", exe.fd.as_raw_fd()));
        if let Ok(mut f) = w {
            use std::io::Write;
            assert!(f.write_all(b"x").is_err(), "sealed memfd accepted a write");
        }
        Ok(())
    }
}
