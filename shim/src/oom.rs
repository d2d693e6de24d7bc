//! `/tasks/oom`: wait on the runtime's OOM watcher fd and publish an event per OOM.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::service::Shim;

struct Watched(tent_runtime::OomWatcher);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd().as_raw_fd()
    }
}

impl AsFd for Watched {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.fd()
    }
}

/// Spawns the watch; it ends when the container is gone.
pub fn watch(shim: Arc<Shim>, id: String, watcher: tent_runtime::OomWatcher) {
    // Both kinds of fd also fire for things that are not OOM kills (v1: the cgroup's
    // removal; v2: every memory.events change), so the oom_kill counter decides.
    let mut seen = watcher.oom_kills().unwrap_or(0);
    // SAFETY: the AsyncFd owns the watcher, whose fd stays open and the same until drop.
    let registered =
        unsafe { AsyncFd::register_with_interest(Watched(watcher), Interest::READABLE) };
    let fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("container {id}: cannot watch for OOM: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            guard.clear_ready();
            let watcher = &fd.get_ref().0;
            if let Err(e) = watcher.drain() {
                log::debug!("container {id}: OOM watch ended: {e}");
                return;
            }
            if !shim.has_task(&id) {
                return;
            }
            // v1 signals the eventfd when the OOM starts, before the kill is counted:
            // give the counter a moment to move.
            let mut oom = false;
            for _ in 0..20 {
                match watcher.oom_kills() {
                    Ok(kills) if kills > seen => {
                        seen = kills;
                        oom = true;
                        break;
                    }
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    Err(_) => return, // the counter file is gone with the cgroup
                }
            }
            if oom {
                log::info!("container {id}: OOM");
                shim.publish_oom(&id).await;
            }
        }
    });
}
