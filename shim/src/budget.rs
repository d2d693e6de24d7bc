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

/// Validates a profile's `[audit]` table (names in `forbid`).
pub fn validate(b: &AuditBudget) -> std::result::Result<(), String> {
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

/// Walks container `id`'s root (`/proc/<pid>/root` of its waiting init) and
/// judges it against `b`.
pub fn check(id: &str, pid: i32, b: &AuditBudget) -> Result<()> {
    let started = Instant::now();
    let path = format!("/proc/{pid}/root");
    let cpath = std::ffi::CString::new(path.clone())
        .map_err(|e| Error::Internal(format!("audit: {path}: {e}")))?;
    // SAFETY: open on a NUL-terminated path; the fd is owned below.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::Internal(format!(
            "container {id}: audit budget: open {path}: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a new fd nothing else owns.
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    // The init has pivoted into the rootfs before Create returns; if its root
    // were still the host's, the walk would judge the host.
    let same_as_host = match (nix::sys::stat::fstat(&root), nix::sys::stat::stat("/")) {
        (Ok(a), Ok(h)) => a.st_dev == h.st_dev && a.st_ino == h.st_ino,
        _ => true,
    };
    if same_as_host {
        return Err(Error::Internal(format!(
            "container {id}: audit budget: {path} (fd {}) is not the container's root",
            root.as_raw_fd()
        )));
    }
    let inv = tent_audit::walk::scan(root, tent_audit::walk::MAX_DEPTH)
        .map_err(|e| Error::Internal(format!("container {id}: audit budget: {e}")))?;
    let violations = budget::check(
        &inv,
        &Limits {
            max_setuid: b.max_setuid,
            max_capabilities: b.max_capabilities,
            forbid: &b.forbid,
        },
    )
    .map_err(Error::InvalidArgument)?;
    let unseen = inv.unreadable.count + inv.too_deep.count;
    let unseen_first: Vec<String> = inv
        .unreadable
        .items
        .iter()
        .map(|p| p.path.clone())
        .chain(inv.too_deep.items.iter().cloned())
        .take(budget::SHOWN)
        .collect();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let report = tent_audit::report::Report::new(format!("container {id}"), "container", inv, ms);
    log::info!("container {id}: audit {} (walk {ms:.1} ms)", report.verdict);
    let mode = match b.mode {
        BudgetMode::Warn => "warn",
        BudgetMode::Deny => "deny",
    };
    if b.mode == BudgetMode::Deny && unseen > 0 {
        return Err(Error::FailedPrecondition(format!(
            "container {id}: tent's audit budget cannot be checked: {unseen} entries not read: {} \
             (profile [audit] mode = \"deny\")",
            unseen_first.join(", ")
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
