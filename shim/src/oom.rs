//! `/tasks/oom`: watch the runtime's OOM fd and publish one event per OOM kill.
//!
//! Both kinds of fd also fire for things that are not OOM kills (v1: the cgroup's
//! removal; v2: every `memory.events` change), and v1 fires when the OOM starts,
//! before the kill is counted. So the `oom_kill` counter decides, and the init's exit
//! checks it once more before `/tasks/exit` (the watch may not have run yet).
//!
//! The watch needs only the event sink: it ends when its task is deleted
//! ([`OomMonitor::close`]) or the cgroup is gone.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use crate::events::{self, EventSink};
use crate::runtime::OomCounter;

/// How long a wake-up waits for the kill to be counted.
const COUNT_GRACE: Duration = Duration::from_millis(200);

struct Watched(Box<dyn OomCounter>);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl AsFd for Watched {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// One container's OOM counter, shared by the watch and the exit path.
pub struct OomMonitor {
    fd: AsyncFd<Watched>,
    seen: AtomicU64,
    closed: watch::Sender<bool>,
}

impl OomMonitor {
    /// Ok(true) once for every new OOM kill; Err when the cgroup is gone.
    pub fn check(&self) -> Result<bool, ()> {
        let kills = self.fd.get_ref().0.oom_kills().map_err(|_| ())?;
        let seen = self.seen.load(Ordering::SeqCst);
        Ok(kills > seen
            && self
                .seen
                .compare_exchange(seen, kills, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok())
    }

    /// Ends the watch (the task is deleted): no `/tasks/oom` after this.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// Starts watching; the watch ends when the container's cgroup is gone.
pub fn watch(
    events: Arc<dyn EventSink>,
    id: String,
    watcher: Box<dyn OomCounter>,
) -> Option<Arc<OomMonitor>> {
    let seen = AtomicU64::new(watcher.oom_kills().unwrap_or(0));
    // SAFETY: the AsyncFd owns the watcher, whose fd stays open and the same until drop.
    let registered =
        unsafe { AsyncFd::register_with_interest(Watched(watcher), Interest::READABLE) };
    let fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!(
                "container {id}: cannot watch for OOM: {}",
                std::io::Error::from(e)
            );
            return None;
        }
    };
    let monitor = Arc::new(OomMonitor {
        fd,
        seen,
        closed: watch::channel(false).0,
    });
    let m = monitor.clone();
    let mut closed = monitor.closed.subscribe();
    tokio::spawn(async move {
        loop {
            let readable = tokio::select! {
                r = m.fd.readable() => r,
                _ = closed.wait_for(|c| *c) => return,
            };
            let Ok(mut guard) = readable else {
                return;
            };
            guard.clear_ready();
            if let Err(e) = m.fd.get_ref().0.drain() {
                log::debug!("container {id}: OOM watch ended: {e}");
                return;
            }
            if m.is_closed() {
                return;
            }
            let deadline = tokio::time::Instant::now() + COUNT_GRACE;
            loop {
                match m.check() {
                    Ok(true) => {
                        log::info!("container {id}: OOM");
                        events::send_oom(&*events, &id).await;
                        break;
                    }
                    Ok(false) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Ok(false) => break,
                    Err(()) => return, // the counter file is gone with the cgroup
                }
            }
        }
    });
    Some(monitor)
}
