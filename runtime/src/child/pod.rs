//! A pod helper: a fresh, single-threaded re-exec of our binary that creates a pod's
//! IPC and UTS namespaces, applies the pod's hostname and sysctls in them, pins them by
//! bind mounts onto files the caller made, reports, and exits (the caller is
//! `pod.rs`). Only here can `unshare` move the whole process.
//!
//! With `pid`, it also unshares the PID namespace and forks the pod's init: PID 1 there,
//! in the pod's network, IPC and UTS namespaces, which blocks every signal, reaps
//! whatever is reparented to it, and exits on SIGTERM or SIGINT (as `tent-pause`).

use std::os::fd::AsFd;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;

use super::{receive, Step, StepResult};
use crate::error::Error;
use crate::sync::{Channel, Message};

pub(super) fn run(ch: &Channel) -> StepResult<()> {
    let (job, _) = receive(ch, "receive pod job", |m| match m {
        Message::Pod(job) => Ok(job),
        other => Err(other),
    })?;
    if let Some(netns) = &job.netns {
        // Only for `net.*` sysctls: /proc/sys/net is the opener's network namespace.
        let fd = open(netns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys(format!("open {}", netns.display()), e))
            .step("join the pod's network namespace")?;
        setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::sys(format!("setns {}", netns.display()), e))
            .step("join the pod's network namespace")?;
    }
    let mut flags = CloneFlags::empty();
    if job.ipc_pin.is_some() {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if job.uts_pin.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if job.pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    unshare(flags)
        .map_err(|e| Error::sys("unshare", e))
        .step("create the pod's namespaces")?;
    if let (Some(_), Some(hostname)) = (&job.uts_pin, &job.hostname) {
        nix::unistd::sethostname(hostname)
            .map_err(|e| Error::sys(format!("sethostname {hostname:?}"), e))
            .step("set the pod's hostname")?;
    }
    for (key, value) in &job.sysctls {
        let one = std::collections::BTreeMap::from([(key.clone(), value.clone())]);
        crate::pod::sysctl_spec(&one, Vec::new())
            .and_then(|spec| crate::sysctl::write_all(&spec))
            .map_err(|e| Error::spec(format!("linux.sysctls[{key:?}]"), e.to_string()))
            .step("write the pod's sysctls")?;
    }
    for (kind, pin) in [("ipc", &job.ipc_pin), ("uts", &job.uts_pin)] {
        if let Some(pin) = pin {
            let ns = format!("/proc/self/ns/{kind}");
            mount(
                Some(ns.as_str()),
                pin,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::sys(format!("bind {ns} on {}", pin.display()), e))
            .step("pin the pod's namespaces")?;
        }
    }
    if !job.pid {
        return ch.send(&Message::Ready, &[]).step("report pod namespaces");
    }
    // SAFETY: this helper is single-threaded; the child runs only `init`, which makes
    // plain system calls and never returns.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => init(),
        Ok(nix::unistd::ForkResult::Parent { child }) => ch
            .send(&Message::PodInit(child.as_raw()), &[])
            .step("report the pod init"),
        Err(e) => Err(Error::sys("fork the pod init", e)).step("fork the pod init"),
    }
}

/// The pod's PID 1: reaps orphans, exits on SIGTERM/SIGINT; never returns.
fn init() -> ! {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag};
    // Nothing of the helper's (the sync socket) stays open in the pod.
    // SAFETY: close_range with plain integers; no fd is used afterwards.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    // SAFETY: prctl with a static NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"tent-pod-init".as_ptr(), 0, 0, 0) };
    let all = SigSet::all();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    loop {
        match all.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if status == nix::sys::wait::WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => super::exit(0),
            _ => {}
        }
    }
}
