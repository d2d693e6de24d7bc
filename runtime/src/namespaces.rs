//! Entering the spec's namespaces in stage 1: every namespace path is opened
//! before any is joined (a joined mount or pid namespace changes what later
//! paths mean), then the rest are unshared.

use std::os::fd::OwnedFd;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The clone flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// True when the spec has a namespace of `typ` (new or joined).
pub fn has(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| nss.iter().any(|n| n.typ() == typ))
}

/// Joins the namespaces given by path and unshares the others, except the new
/// ones in `defer`, which are returned for the caller to unshare later. Affects
/// this process (and, for pid, its future children).
pub fn enter(spec: &Spec, defer: CloneFlags) -> Result<CloneFlags> {
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut joins: Vec<(CloneFlags, OwnedFd, String)> = Vec::new();
    let mut new = CloneFlags::empty();
    for (i, ns) in nss.iter().enumerate() {
        let flag = clone_flag(ns.typ());
        match ns.path() {
            Some(path) => {
                let fd =
                    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                        Error::sys(format!("linux.namespaces[{i}]: open {}", path.display()), e)
                    })?;
                joins.push((
                    flag,
                    fd,
                    format!("linux.namespaces[{i}]: setns {}", path.display()),
                ));
            }
            None => new |= flag,
        }
    }
    // The mount namespace last: it changes root and cwd.
    joins.sort_by_key(|(flag, _, _)| *flag == CloneFlags::CLONE_NEWNS);
    for (flag, fd, what) in &joins {
        setns(fd, *flag).map_err(|e| Error::sys(what.clone(), e))?;
    }
    let deferred = new & defer;
    let now = new - defer;
    if !now.is_empty() {
        unshare(now).map_err(|e| Error::sys(format!("unshare {now:?}"), e))?;
    }
    Ok(deferred)
}
