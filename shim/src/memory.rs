//! Keeping an idle shim small. A node runs one shim per pod for the pod's whole
//! life, so what an idle shim keeps resident is paid many times over.
//!
//! - One malloc arena: the occasional blocking-pool thread would otherwise get
//!   an arena of its own that stays resident after the thread is gone.
//! - After a burst of requests (create, start, exec, delete), once the shim has
//!   been quiet for [`TRIM_DELAY`], free heap pages go back to the kernel. Parsing a
//!   bundle's config and setting up a container leaves most of the heap free
//!   but resident; glibc returns only its top on its own.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Notify;

/// Quiet time after the last request before the heap is trimmed.
const TRIM_DELAY: Duration = Duration::from_millis(200);

fn activity() -> &'static Notify {
    static ACTIVITY: OnceLock<Notify> = OnceLock::new();
    ACTIVITY.get_or_init(Notify::new)
}

/// Malloc settings for the shim server; call before any thread starts.
pub fn configure_allocator() {
    // SAFETY: mallopt only changes allocator parameters; no threads exist yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Notes that a request that allocates a lot (create, exec, delete) ran.
pub fn note_activity() {
    activity().notify_one();
}

/// Trims the heap once the shim has been quiet for [`TRIM_DELAY`] after activity. Runs forever.
pub async fn trim_when_idle() {
    loop {
        activity().notified().await;
        // Debounce: every further request restarts the quiet period.
        while tokio::time::timeout(TRIM_DELAY, activity().notified())
            .await
            .is_ok()
        {}
        // SAFETY: malloc_trim is thread-safe and only releases free memory.
        let released = unsafe { libc::malloc_trim(0) };
        log::debug!("heap trimmed (released: {})", released != 0);
    }
}
