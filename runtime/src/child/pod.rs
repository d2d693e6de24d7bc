//! A pod helper: a fresh, single-threaded re-exec of our binary that creates a pod's
//! IPC and UTS namespaces, applies the pod's hostname and sysctls in them, pins them by
//! bind mounts onto files the caller made, reports, and exits (the caller is
//! `pod.rs`). Only here can `unshare` move the whole process.

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
    unshare(flags)
        .map_err(|e| Error::sys("unshare", e))
        .step("create the pod's namespaces")?;
    if let (Some(_), Some(hostname)) = (&job.uts_pin, &job.hostname) {
        nix::unistd::sethostname(hostname)
            .map_err(|e| Error::sys(format!("sethostname {hostname:?}"), e))
            .step("set the pod's hostname")?;
    }
    if !job.sysctls.is_empty() {
        let spec = crate::pod::sysctl_spec(&job.sysctls, Vec::new()).step("pod sysctls")?;
        crate::sysctl::write_all(&spec).step("write the pod's sysctls")?;
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
    ch.send(&Message::Ready, &[]).step("report pod namespaces")
}
