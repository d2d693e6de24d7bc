//! `exec`: a new process in a running container.
//!
//! Caller side ([`exec`]): checks the container is running and not paused, opens
//! every namespace fd of the init (before anything joins one), re-checks the
//! init is still the same process (pidfd), spawns stage 1 from the sealed
//! binary and sends it the process spec with the fds. Stage 1 ([`stage1`]):
//! non-dumpable, enters the cgroup, joins the namespaces (mount
//! last), forks (the pid namespace applies to children), reports the stage-2
//! pid and exits, so stage 2 is reparented to the (subreaper) caller. Stage 2:
//! terminal, user lookup, cwd and executable checks, then the shared
//! [`setup_and_exec`]. EOF on the CLOEXEC sync socket means `execve` succeeded.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use nix::unistd::dup2_stdin;
use oci_spec::runtime::Process;

use crate::container::Handle;
use crate::error::{Error, Result};
use crate::init::{exit, fork_stage2};
use crate::process::{find_executable, setup_and_exec, Step, StepError};
use crate::sync::{Channel, ExecConfig, Message};
use crate::{namespaces, pidfd, tty, ExecProcess, ExecRequest};

type StepResult<T> = std::result::Result<T, StepError>;

/// Namespaces an exec joins, mount last (it changes root and cwd). User and
/// time namespaces are refused at create, so they never differ from ours.
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// How long `exec` waits for stage 1 to exit after stage 2 was reported.
const STAGE1_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks on the exec's process spec that need nothing from the container.
fn validate(process: &Process) -> Result<()> {
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(Error::spec("process.args", "is empty")),
    }
    if !process.cwd().is_absolute() {
        return Err(Error::spec(
            "process.cwd",
            format!("{} is not an absolute path", process.cwd().display()),
        ));
    }
    for (i, rl) in process.rlimits().iter().flatten().enumerate() {
        if crate::process::rlimit_resource(&rl.typ().to_string()).is_none() {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                format!("unknown rlimit type {}", rl.typ()),
            ));
        }
        if rl.soft() > rl.hard() {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                format!("soft limit {} exceeds hard limit {}", rl.soft(), rl.hard()),
            ));
        }
    }
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Error::Unsupported(
            "process.apparmorProfile: AppArmor profiles are not supported by tent yet".into(),
        ));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Error::Unsupported(
            "process.selinuxLabel: SELinux labels are not supported by tent yet".into(),
        ));
    }
    Ok(())
}

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
    for (kind, _) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{kind}");
        let fd = std::fs::File::open(&theirs).map_err(|e| Error::io("open", &theirs, e))?;
        let ours = format!("/proc/self/ns/{kind}");
        let same = match (fd.metadata(), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
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
    validate(req.process)?;
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
    let stage1 = h.init_exe.spawn(true, child_end, stdout, stderr)? as i32;
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

/// Stage 1 of an exec, in a fresh exec of the sealed binary (single-threaded).
pub(crate) fn stage1(ch: &Channel) -> StepResult<()> {
    // Non-dumpable before joining anything: the container cannot reach us via /proc.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let (cfg, fds) = match ch.recv().step("receive exec config")? {
        Some((Message::Exec(cfg), fds)) => (cfg, fds),
        Some((other, _)) => {
            return Err(Error::Protocol(format!(
                "expected exec config, got {other:?}"
            )))
            .step("receive exec config")
        }
        None => exit(1),
    };
    let mut fds = fds.into_iter();
    let stdin = fds
        .next()
        .ok_or_else(|| Error::Protocol("exec config came without stdin".into()))
        .step("receive exec config")?;
    dup2_stdin(&stdin)
        .map_err(|e| Error::sys("dup2 stdin", e))
        .step("stdio")?;
    drop(stdin);
    // Before setns: the cgroup paths are the host's.
    let into_cgroup = cfg.cgroup_join.enter().step("join cgroup")?;
    let process: Process = serde_json::from_str(&cfg.process)
        .map_err(|e| Error::spec("process", e.to_string()))
        .step("parse process")?;
    let ns_fds: Vec<OwnedFd> = fds.collect();
    if ns_fds.len() != cfg.namespaces.len() {
        return Err(Error::Protocol(format!(
            "{} namespace fds for {} namespaces",
            ns_fds.len(),
            cfg.namespaces.len()
        )))
        .step("receive exec config");
    }
    // Cloned into the cgroup (v2): stage 2 joins the cgroup namespace, because with
    // nsdelegate nothing can be cloned into a cgroup outside its cgroup namespace.
    let mut deferred = namespaces::Deferred::none();
    for (kind, fd) in cfg.namespaces.iter().zip(ns_fds) {
        let flag = NAMESPACES
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, f)| *f)
            .ok_or_else(|| Error::Protocol(format!("unknown namespace {kind}")))
            .step("namespaces")?;
        if flag == CloneFlags::CLONE_NEWCGROUP && into_cgroup.is_some() {
            deferred.defer_join(flag, fd, format!("setns {kind}"));
            continue;
        }
        setns(&fd, flag)
            .map_err(|e| Error::sys(format!("setns {kind}"), e))
            .step("join namespaces")?;
    }
    fork_stage2(ch, into_cgroup.as_ref().map(|fd| fd.as_fd()), || {
        deferred.enter().step("join namespaces")?;
        stage2(ch, &process)
    })
}

fn stage2(ch: &Channel, process: &Process) -> StepResult<std::convert::Infallible> {
    if process.terminal() == Some(true) {
        let pty = tty::open_pty(process.console_size().as_ref()).step("terminal")?;
        ch.send(&Message::Console, &[pty.master.as_raw_fd()])
            .step("terminal: send the pty master")?;
        drop(pty.master);
        tty::make_controlling(pty.peer).step("terminal")?;
    }
    let process = resolve_user(process).step("user")?;
    let cwd = process.cwd();
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::spec(
                "process.cwd",
                format!("{} is not a directory", cwd.display()),
            ))
            .step("cwd")
        }
        Err(e) => {
            return Err(Error::spec(
                "process.cwd",
                format!("{}: {e}", cwd.display()),
            ))
            .step("cwd")
        }
    }
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let exe = find_executable(
        args.first().map(String::as_str).unwrap_or_default(),
        env,
        cwd,
    )
    .step("find executable")?;
    Err(setup_and_exec(&process, Path::new(&exe)))
}

/// One `/etc/passwd` entry.
struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// The container's `/etc/passwd` (we are inside its mount namespace and root).
fn passwd_entries() -> Vec<Passwd> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// Resolves `user.username` through the container's `/etc/passwd` (numeric
/// uids need no entry) and sets `HOME` when the env lacks it, as runc does.
fn resolve_user(process: &Process) -> Result<Process> {
    let mut p = process.clone();
    let entries = passwd_entries();
    let mut user = p.user().clone();
    if let Some(name) = user.username().as_deref().filter(|n| !n.is_empty()) {
        let e = entries.iter().find(|e| e.name == name).ok_or_else(|| {
            Error::spec(
                "process.user.username",
                format!("user {name:?} not found in the container's /etc/passwd"),
            )
        })?;
        user.set_uid(e.uid);
        user.set_gid(e.gid);
    }
    let mut env = p.env().clone().unwrap_or_default();
    if !env.iter().any(|v| v.starts_with("HOME=")) {
        let home = entries
            .iter()
            .find(|e| e.uid == user.uid())
            .map_or("/", |e| e.home.as_str());
        env.push(format!("HOME={home}"));
    }
    p.set_user(user);
    p.set_env(Some(env));
    Ok(p)
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
