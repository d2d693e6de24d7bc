//! `exec`, the caller's side: a new process in a running container.
//!
//! Validates the process spec (the same checks as create) and derives its
//! confinement from the container's, checks the container is running and not
//! paused, opens every namespace fd of the init (before anything joins one),
//! re-checks the init is still the same process (pidfd), spawns stage 1 from
//! the read-only binary view and sends it the process spec with the fds. The
//! container's side is `child/exec.rs`. EOF on the CLOEXEC sync socket means
//! `execve` succeeded.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::container::Handle;
use crate::error::{Error, Result};
use crate::namespaces::EXEC_JOIN_ORDER;
use crate::sync::{Channel, ExecConfig, Message};
use crate::{namespaces, pidfd, process, ExecProcess, ExecRequest};

/// How long `exec` waits for stage 1 to exit after stage 2 was reported.
const STAGE1_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// True when the process behind `fd` has exited (readable pidfd), waiting up
/// to `timeout_ms`.
fn exited(fd: &OwnedFd, timeout_ms: i32) -> Result<bool> {
    let mut pfd = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(pfd.as_mut_ptr(), 1, timeout_ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = nix::errno::Errno::last();
        if e != nix::errno::Errno::EINTR {
            return Err(Error::sys("poll pidfd", e));
        }
    }
}

/// Opens `/proc/<pid>/ns/<kind>` of every namespace the init does not share with us.
fn open_namespaces(pid: i32) -> Result<Vec<(String, OwnedFd)>> {
    let mut out = Vec::new();
    for (kind, _) in EXEC_JOIN_ORDER {
        let theirs = format!("/proc/{pid}/ns/{kind}");
        let fd = std::fs::File::open(&theirs).map_err(|e| Error::io("open", &theirs, e))?;
        if !fd.metadata().is_ok_and(|m| namespaces::is_ours(&m, kind)) {
            out.push((kind.to_string(), OwnedFd::from(fd)));
        }
    }
    Ok(out)
}

/// Kills what an exec started so far (stage 1 and stage 2) on failure.
struct Undo(Vec<OwnedFd>);

impl Drop for Undo {
    fn drop(&mut self) {
        for fd in &self.0 {
            let _ = pidfd::send_signal(fd, libc::SIGKILL);
        }
    }
}

/// Caller side of [`crate::Container::exec`]. Blocking.
pub(crate) fn exec(h: &Handle, req: ExecRequest<'_>) -> Result<ExecProcess> {
    process::validate(req.process)?;
    h.profile.check_process(req.process)?;
    let confinement = h.confinement.for_exec(req.process)?;
    let terminal = req.process.terminal() == Some(true);
    let not_running = || {
        Error::Precondition(format!(
            "cannot exec in container {}: its init process has exited",
            h.id
        ))
    };
    if exited(&h.pidfd, 0)? {
        return Err(not_running());
    }
    if h.cgroup.is_frozen()? {
        return Err(Error::Precondition(format!(
            "cannot exec in container {}: it is paused",
            h.id
        )));
    }
    let namespaces = open_namespaces(h.pid).map_err(|e| match e.kind() {
        crate::ErrorKind::NotFound => not_running(),
        _ => e,
    })?;
    // The namespace fds are the init's only if the init still lives (pid reuse).
    if exited(&h.pidfd, 0)? {
        return Err(not_running());
    }
    let process_json = serde_json::to_string(req.process)
        .map_err(|e| Error::spec("process", format!("encode: {e}")))?;

    let stdin = match (&req.stdio.stdin, terminal) {
        (Some(fd), false) => fd.try_clone().map_err(|e| Error::io("dup", "stdin", e))?,
        _ => OwnedFd::from(
            std::fs::File::open("/dev/null").map_err(|e| Error::io("open", "/dev/null", e))?,
        ),
    };
    let clone = |fd: &Option<OwnedFd>, name: &'static str| -> Result<Option<OwnedFd>> {
        match (fd, terminal) {
            (Some(f), false) => f
                .try_clone()
                .map(Some)
                .map_err(|e| Error::io("dup", name, e)),
            _ => Ok(None),
        }
    };
    let stdout = clone(&req.stdio.stdout, "stdout")?;
    let stderr = clone(&req.stdio.stderr, "stderr")?;

    let (ch, child_end) = Channel::pair()?;
    let stage1 = h
        .init_exe
        .spawn(crate::exe::Role::Exec, child_end, stdout, stderr)? as i32;
    let stage1_fd = pidfd::open(stage1)?;
    let mut undo = Undo(vec![stage1_fd
        .try_clone()
        .map_err(|e| Error::io("dup", "pidfd", e))?]);

    let mut fds: Vec<RawFd> = vec![stdin.as_raw_fd()];
    fds.extend(namespaces.iter().map(|(_, fd)| fd.as_raw_fd()));
    let cfg = ExecConfig {
        process: process_json,
        namespaces: namespaces.iter().map(|(k, _)| k.clone()).collect(),
        cgroup_join: h.cgroup.join_plan(),
        confinement,
    };
    ch.send(&Message::Exec(Box::new(cfg)), &fds)?;
    drop(stdin);
    drop(namespaces);

    let mut stage2: Option<(i32, OwnedFd)> = None;
    let mut console: Option<OwnedFd> = None;
    loop {
        match ch.recv()? {
            Some((Message::Stage2Pid(pid), fds)) => {
                let fd = fds
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Protocol("stage 2 pid came without a pidfd".into()))?;
                undo.0
                    .push(fd.try_clone().map_err(|e| Error::io("dup", "pidfd", e))?);
                stage2 = Some((pid, fd));
            }
            Some((Message::Console, fds)) => {
                console = Some(fds.into_iter().next().ok_or_else(|| {
                    Error::Protocol("console message came without the pty master".into())
                })?);
            }
            Some((Message::Error { step, cause, kind }, _)) => {
                return Err(Error::Exec { step, cause, kind })
            }
            Some((other, _)) => {
                return Err(Error::Protocol(format!("unexpected message {other:?}")))
            }
            None => break,
        }
    }
    let (pid, pidfd) = stage2.ok_or_else(|| {
        Error::Protocol("exec stage 1 exited without reporting the process".into())
    })?;
    if terminal && console.is_none() {
        return Err(Error::Protocol("terminal exec without a pty master".into()));
    }
    // Once stage 1 is gone, stage 2 is the caller's child (subreaper): reapable.
    if !exited(&stage1_fd, STAGE1_EXIT_TIMEOUT.as_millis() as i32)? {
        return Err(Error::Protocol(format!(
            "exec stage 1 (pid {stage1}) did not exit"
        )));
    }
    undo.0.clear();
    Ok(ExecProcess {
        pid,
        pidfd,
        console,
    })
}

impl ExecProcess {
    /// Signals the process through its pidfd; [`crate::ErrorKind::NotFound`] once reaped.
    pub fn kill(&self, signal: i32) -> Result<()> {
        pidfd::send_signal(&self.pidfd, signal)
    }

    /// The pidfd: readable once the process exited (usable with tokio's `AsyncFd`).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}
