//! An exec's stages in the container. Stage 1 receives the process spec and
//! the init's namespace fds, enters the cgroup, joins the namespaces (mount
//! last) and forks — the pid namespace applies to children — then exits, so
//! stage 2 is reparented to the (subreaper) caller. Stage 2: terminal, user
//! lookup in the container's `/etc/passwd`, cwd and executable checks, then
//! the shared [`setup`] and `execve`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::unistd::dup2_stdin;
use oci_spec::runtime::Process;

use super::fork::fork_stage2;
use super::setup::{self, find_executable};
use super::{receive, Step, StepResult};
use crate::confine::Confinement;
use crate::error::{Error, Result};
use crate::sync::{Channel, Message};
use crate::{namespaces, tty};

/// Stage 1 of an exec, in a fresh exec of the sealed binary (single-threaded).
pub(super) fn stage1(ch: &Channel) -> StepResult<()> {
    let (cfg, fds) = receive(ch, "receive exec config", |m| match m {
        Message::Exec(cfg) => Ok(cfg),
        other => Err(other),
    })?;
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
        let flag = namespaces::EXEC_JOIN_ORDER
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
        stage2(ch, &process, &cfg.confinement)
    })
}

fn stage2(
    ch: &Channel,
    process: &Process,
    confinement: &Confinement,
) -> StepResult<std::convert::Infallible> {
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
    let ready = setup::prepare(&process, Path::new(&exe), confinement)?;
    Err(ready.exec())
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
            let [name, _, uid, gid, _, home, _, ..] = f.as_slice() else {
                return None;
            };
            Some(Passwd {
                name: name.to_string(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: home.to_string(),
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
