//! The profile's audit budget (`[audit]`), checked at Create on the created
//! container's root before Create returns (the workload has not run yet, so
//! the tree is the image's): in `deny` mode a breach fails Create with the
//! rule and the files, which Kubernetes shows as the container's error; in
//! `warn` mode it is logged. The check runs on the blocking pool.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use tent_audit::budget::{self, Limits};
use tent_runtime::{AuditBudget, BudgetMode};

use crate::error::{Error, Result};

/// Validates a profile's `[audit]` table: names in `forbid`, and no limit
/// with `summary = false` (a budget is judged on the walk that option skips;
/// dropping the budget silently would let the image through unchecked).
pub fn validate(b: &AuditBudget) -> std::result::Result<(), String> {
    if !b.summary && b.is_set() {
        let mut set = Vec::new();
        if b.max_setuid.is_some() {
            set.push("max_setuid");
        }
        if b.max_capabilities.is_some() {
            set.push("max_capabilities");
        }
        if !b.forbid.is_empty() {
            set.push("forbid");
        }
        return Err(format!(
            "[audit] summary = false: the budget ({}) is judged on the rootfs walk this skips; \
             remove the limits or set summary = true",
            set.join(", ")
        ));
    }
    for name in &b.forbid {
        if !budget::is_forbiddable(name) {
            return Err(format!(
                "[audit] forbid: unknown {name:?} (one of: {})",
                budget::FORBIDDABLE
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Opens container `id`'s root, `/proc/<pid>/root` of its init (pivoted
/// into the rootfs before Create returns), while Create still holds the init:
/// a pidfd taken first must still be alive once the root is open, so the fd
/// is that process's root. Opened on Create's path (a few system calls) so
/// that a walk after an init that exits at once still has its tree.
pub fn open_root(id: &str, pid: i32) -> Result<OwnedFd> {
    let fail = |what: String| Error::Internal(format!("container {id}: audit: {what}"));
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(fail(format!(
            "pidfd_open {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a new fd nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let path = format!("/proc/{pid}/root");
    let cpath = std::ffi::CString::new(path.clone()).map_err(|e| fail(format!("{path}: {e}")))?;
    // SAFETY: open on a NUL-terminated path; the fd is owned below.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(fail(format!(
            "open {path}: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a new fd nothing else owns.
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    if unsafe { libc::poll(&mut p, 1, 0) } != 0 {
        return Err(fail(format!("its init (pid {pid}) exited")));
    }
    // If the init's root were still the host's, the walk would judge the host.
    let same_as_host = match (nix::sys::stat::fstat(&root), nix::sys::stat::stat("/")) {
        (Ok(a), Ok(h)) => a.st_dev == h.st_dev && a.st_ino == h.st_ino,
        _ => true,
    };
    if same_as_host {
        return Err(fail(format!("{path} is not the container's root")));
    }
    Ok(root)
}

/// Walks a container's root (from [`open_root`]). Returns the inventory and
/// the walk's time in ms.
pub fn walk(id: &str, root: OwnedFd) -> Result<(tent_audit::walk::Inventory, f64)> {
    let started = Instant::now();
    let inv = tent_audit::walk::scan(root, tent_audit::walk::MAX_DEPTH)
        .map_err(|e| Error::Internal(format!("container {id}: audit: {e}")))?;
    Ok((inv, started.elapsed().as_secs_f64() * 1000.0))
}

/// Judges container `id`'s inventory against `b`: `Err` in deny mode when a
/// rule is broken (or the tree could not be read whole), a warning in warn
/// mode.
pub fn judge(id: &str, inv: &tent_audit::walk::Inventory, b: &AuditBudget) -> Result<()> {
    let violations = budget::check(
        inv,
        &Limits {
            max_setuid: b.max_setuid,
            max_capabilities: b.max_capabilities,
            forbid: &b.forbid,
        },
    )
    .map_err(Error::InvalidArgument)?;
    let unseen = inv.unreadable.count + inv.too_deep.count;
    let mode = match b.mode {
        BudgetMode::Warn => "warn",
        BudgetMode::Deny => "deny",
    };
    if b.mode == BudgetMode::Deny && unseen > 0 {
        let first: Vec<String> = inv
            .unreadable
            .items
            .iter()
            .map(|p| p.path.clone())
            .chain(inv.too_deep.items.iter().cloned())
            .take(budget::SHOWN)
            .collect();
        return Err(Error::FailedPrecondition(format!(
            "container {id}: tent's audit budget cannot be checked: {unseen} entries not read: {} \
             (profile [audit] mode = \"deny\")",
            first.join(", ")
        )));
    }
    if violations.is_empty() {
        return Ok(());
    }
    let msg = format!(
        "container {id}: the image exceeds tent's audit budget: {} (profile [audit] mode = \"{mode}\")",
        budget::describe(&violations)
    );
    match b.mode {
        BudgetMode::Warn => {
            log::warn!("{msg}: the container runs");
            Ok(())
        }
        BudgetMode::Deny => Err(Error::FailedPrecondition(msg)),
    }
}
