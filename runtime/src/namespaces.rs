//! Entering the spec's namespaces in stage 1: every namespace path is opened
//! before any is joined (a joined mount or pid namespace changes what later
//! paths mean), then the rest are unshared.

use std::os::fd::OwnedFd;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// Namespaces an exec joins, by their `/proc/<pid>/ns` names, mount last (it
/// changes root and cwd). User and time namespaces are refused at create, so
/// they never differ from ours.
pub const EXEC_JOIN_ORDER: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// True when `ns` (a namespace file, by path or as an open file's metadata) is
/// the namespace of `/proc/self/ns/<kind>` kind we, the host side, are in.
pub fn is_ours(ns: &std::fs::Metadata, kind: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
}

/// [`is_ours`] for a namespace path; false when it cannot be read.
pub fn path_is_ours(path: &std::path::Path, kind: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| is_ours(&m, kind))
}

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

/// Whether the spec asks for a new (not joined) namespace of `typ`.
pub fn creates(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| nss.iter().any(|n| n.typ() == typ && n.path().is_none()))
}

/// Brings `lo` up in this process's (new) network namespace, as runc does: a fresh
/// namespace has only a loopback device, down, so even 127.0.0.1 is unreachable.
pub fn loopback_up() -> Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let sys = |what: &str| Error::sys(format!("lo up: {what}"), nix::Error::last());
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(sys("socket"));
    }
    // SAFETY: `raw` is a new fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero ifreq is valid; the name fits (with its NUL) in IFNAMSIZ.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of a live ifreq.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(sys("SIOCGIFFLAGS"));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(sys("SIOCSIFFLAGS"));
        }
    }
    Ok(())
}

/// Namespaces that stage 1 leaves for stage 2 to enter (see [`enter`]).
#[derive(Debug)]
pub struct Deferred {
    joins: Vec<(CloneFlags, OwnedFd, String)>,
    unshare: CloneFlags,
}

impl Deferred {
    /// Nothing deferred yet.
    pub fn none() -> Deferred {
        Deferred {
            joins: Vec::new(),
            unshare: CloneFlags::empty(),
        }
    }

    /// Leaves joining the namespace behind `fd` (of kind `flag`) for later;
    /// `what` names the step in an error.
    pub fn defer_join(&mut self, flag: CloneFlags, fd: OwnedFd, what: String) {
        self.joins.push((flag, fd, what));
    }

    /// Joins and unshares what was deferred; affects the calling process.
    pub fn enter(self) -> Result<()> {
        for (flag, fd, what) in &self.joins {
            setns(fd, *flag).map_err(|e| Error::sys(what.clone(), e))?;
        }
        if !self.unshare.is_empty() {
            unshare(self.unshare)
                .map_err(|e| Error::sys(format!("unshare {:?}", self.unshare), e))?;
        }
        Ok(())
    }
}

/// Joins the namespaces given by path and unshares the others, except those of
/// the kinds in `defer` (new or joined), which are returned for stage 2 to
/// enter. Affects this process (and, for pid, its future children).
pub fn enter(spec: &Spec, defer: CloneFlags) -> Result<Deferred> {
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
    let (later, now): (Vec<_>, Vec<_>) = joins
        .into_iter()
        .partition(|(flag, _, _)| defer.contains(*flag));
    let mut now = now;
    // The mount namespace last: it changes root and cwd.
    now.sort_by_key(|(flag, _, _)| *flag == CloneFlags::CLONE_NEWNS);
    for (flag, fd, what) in &now {
        setns(fd, *flag).map_err(|e| Error::sys(what.clone(), e))?;
    }
    let unshare_now = new - defer;
    if !unshare_now.is_empty() {
        unshare(unshare_now).map_err(|e| Error::sys(format!("unshare {unshare_now:?}"), e))?;
    }
    Ok(Deferred {
        joins: later,
        unshare: new & defer,
    })
}
