//! The container init. Stage 1 receives the config, enters the cgroup, joins
//! or creates the namespaces and forks; stage 2 (PID 1 of the new pid
//! namespace) sets up the file system, the terminal and the hostname, applies
//! the process's limits and confinement, reports ready, waits for start and
//! execs the workload. Every error up to ready is a create error.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::dup2_stdin;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::fork::fork_stage2;
use super::setup::{self, find_executable};
use super::{receive, Step, StepResult};
use crate::error::Error;
use crate::hooks::{self, Kind};
use crate::sync::{Channel, InitConfig, Message};
use crate::{namespaces, rootfs, sysctl, tty};

pub(super) fn stage1(ch: &Channel) -> StepResult<()> {
    let (cfg, fds) = receive(ch, "receive config", |m| match m {
        Message::Config(cfg) => Ok(cfg),
        other => Err(other),
    })?;
    let stdin: Option<OwnedFd> = fds.into_iter().next();
    if let Some(fd) = stdin {
        dup2_stdin(&fd)
            .map_err(|e| Error::sys("dup2 stdin", e))
            .step("stdio")?;
    }
    let spec: Spec = serde_json::from_str(&cfg.spec)
        .map_err(|e| Error::spec("config.json", e.to_string()))
        .step("parse config")?;
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

fn stage2(ch: &Channel, cfg: &InitConfig, spec: &Spec) -> StepResult<std::convert::Infallible> {
    if namespaces::creates(spec, LinuxNamespaceType::Network) {
        namespaces::loopback_up().step("network")?;
    }
    let root = rootfs::prepare(cfg, spec).step("rootfs")?;
    let host_pid = creation_hooks(ch, cfg, spec, &root)?;
    rootfs::pivot(&root).step("pivot_root")?;
    drop(root);
    rootfs::apply_root_propagation(spec).step("rootfs propagation")?;
    sysctl::write_all(spec).step("sysctl")?;
    rootfs::readonly_paths(spec).step("readonly paths")?;
    rootfs::masked_paths(spec).step("masked paths")?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::spec("process", "is missing"))
        .step("process")?;
    if process.terminal() == Some(true) {
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
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let exe = find_executable(
        args.first().map(String::as_str).unwrap_or_default(),
        env,
        process.cwd(),
    )
    .step("find executable")?;
    // Limits, cwd and confinement before ready, so their errors are create
    // errors (as runc); only execve is left for start.
    let ready = setup::prepare(process, Path::new(&exe), &cfg.confinement)?;
    ch.send(&Message::Ready, &[]).step("report ready")?;
    receive(ch, "wait for start", |m| match m {
        Message::Start => Ok(()),
        other => Err(other),
    })?;
    let start_hooks = hooks::of(spec, Kind::StartContainer);
    if !start_hooks.is_empty() {
        let state = hooks::state(spec, &cfg.id, host_pid, &cfg.bundle, Kind::StartContainer);
        hooks::run_all(Kind::StartContainer, start_hooks, &state).step("startContainer hooks")?;
    }
    Err(ready.exec())
}

/// Between the mounts and pivot_root: the caller runs the prestart and
/// createRuntime hooks (runtime namespace), then the createContainer hooks run
/// here (container namespaces, cwd the rootfs, as runc). Returns the init's
/// host pid for the state of the container's hooks, when it has any.
fn creation_hooks(
    ch: &Channel,
    cfg: &InitConfig,
    spec: &Spec,
    root: &OwnedFd,
) -> StepResult<Option<i32>> {
    let creating = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
    ];
    if creating.iter().all(|k| hooks::of(spec, *k).is_empty()) {
        return Ok(None);
    }
    ch.send(&Message::Hooks, &[])
        .step("request runtime hooks")?;
    let (pid, _) = receive(ch, "wait for runtime hooks", |m| match m {
        Message::HooksDone(pid) => Ok(pid),
        other => Err(other),
    })?;
    let create = hooks::of(spec, Kind::CreateContainer);
    if !create.is_empty() {
        nix::unistd::fchdir(root)
            .map_err(|e| Error::sys("chdir to rootfs", e))
            .step("createContainer hooks")?;
        let state = hooks::state(spec, &cfg.id, Some(pid), &cfg.bundle, Kind::CreateContainer);
        hooks::run_all(Kind::CreateContainer, create, &state).step("createContainer hooks")?;
    }
    Ok(Some(pid))
}
