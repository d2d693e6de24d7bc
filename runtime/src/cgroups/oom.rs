//! OOM notification for the container's cgroup as one pollable fd.
//!
//! - v1: an eventfd registered through `cgroup.event_control` on
//!   `memory.oom_control`. The kernel adds 1 on every OOM in the cgroup — and
//!   also once when the cgroup is removed, so check [`OomWatcher::oom_kills`] or
//!   whether the container still exists before reporting.
//! - v2: an inotify watch (`IN_MODIFY`) on `memory.events`, which changes on
//!   every `low`/`high`/`max`/`oom`/`oom_kill` event: compare
//!   [`OomWatcher::oom_kills`] with the previous value to see a real OOM kill.
//!
//! Both fds are non-blocking and CLOEXEC. Consume: wait until readable (e.g.
//! tokio `AsyncFd::new(watcher)`), call [`OomWatcher::drain`] (reads the eventfd's
//! 8 bytes / every queued inotify event), then [`OomWatcher::oom_kills`].

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;

use super::{read_file, write_file, CgroupManager};
use crate::error::{Error, Result};

/// A pollable fd that becomes readable when the container's cgroup had an OOM
/// (v1) or its `memory.events` changed (v2). See the module docs.
#[derive(Debug)]
pub struct OomWatcher {
    fd: OwnedFd,
    /// v1: `memory.oom_control`, kept open while the eventfd is registered.
    _control: Option<File>,
    /// v1 `memory.oom_control` or v2 `memory.events`.
    counters: PathBuf,
    v2: bool,
}

fn cvt(rc: libc::c_int, what: &str) -> Result<OwnedFd> {
    if rc < 0 {
        return Err(Error::sys(what.to_string(), Errno::last()));
    }
    // SAFETY: the kernel just returned this new fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

pub(crate) fn watch(cg: &CgroupManager) -> Result<OomWatcher> {
    let dir = cg.dir_for("memory")?;
    if cg.v2() {
        let events = dir.join("memory.events");
        // SAFETY: inotify_init1 with flags only.
        let fd = cvt(
            unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) },
            "inotify_init1",
        )?;
        let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::spec("cgroup path", "contains a NUL byte"))?;
        // SAFETY: valid inotify fd and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
            return Err(Error::sys(
                format!("inotify_add_watch {}", events.display()),
                Errno::last(),
            ));
        }
        return Ok(OomWatcher {
            fd,
            _control: None,
            counters: events,
            v2: true,
        });
    }
    let control_path = dir.join("memory.oom_control");
    let control = File::open(&control_path).map_err(|e| Error::io("open", &control_path, e))?;
    // SAFETY: eventfd with flags only.
    let fd = cvt(
        unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
        "eventfd",
    )?;
    write_file(
        &dir.join("cgroup.event_control"),
        &format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()),
    )?;
    Ok(OomWatcher {
        fd,
        _control: Some(control),
        counters: control_path,
        v2: false,
    })
}

impl OomWatcher {
    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// True for an inotify fd on v2 `memory.events`, false for a v1 eventfd.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The cgroup's `oom_kill` counter (v2 `memory.events`, v1 `memory.oom_control`;
    /// 0 on v1 kernels older than 4.13).
    pub fn oom_kills(&self) -> Result<u64> {
        let text = read_file(&self.counters)?;
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Reads whatever is pending (the eventfd counter, or every queued inotify
    /// event) so the fd is no longer readable. Returns how many notifications
    /// were pending (v1: the eventfd count; v2: the number of inotify events).
    pub fn drain(&self) -> Result<u64> {
        let mut total = 0u64;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into our own buffer.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            if n < 0 {
                return match Errno::last() {
                    Errno::EAGAIN => Ok(total),
                    Errno::EINTR => continue,
                    e => Err(Error::sys("read the OOM notification fd", e)),
                };
            }
            let n = n as usize;
            if n == 0 {
                return Ok(total);
            }
            if self.v2 {
                // struct inotify_event { wd, mask, cookie, len; name[len] }
                let header = std::mem::size_of::<libc::inotify_event>();
                let mut events = buf.get(..n).unwrap_or_default();
                while let Some(len) = events
                    .get(12..16)
                    .filter(|_| events.len() >= header)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                {
                    let len = u32::from_ne_bytes(len) as usize;
                    events = events.get(header + len..).unwrap_or_default();
                    total += 1;
                }
            } else if let Some(count) = buf.get(..8).filter(|_| n == 8) {
                let count = <[u8; 8]>::try_from(count).unwrap_or_default();
                total += u64::from_ne_bytes(count);
            }
        }
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for OomWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
