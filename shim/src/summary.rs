//! Every container's audit summary (tent-audit's score and counts), kept in
//! its bundle as `tent-audit.json` (containerd removes the bundle at
//! delete), logged, and listed by `tent audit --running`.
//!
//! Off the start path: a thread of its own, at nice 19 and the idle I/O
//! class, started after Create has its container; Create does not wait for
//! it. In deny mode the budget is judged before Create returns (it has to
//! be), and that walk's summary is written instead.
//!
//! Cached by the image's identity: an overlay rootfs's `lowerdir` (the
//! committed layers' snapshot directories, which containerd never reuses for
//! other content); the upper layer is the container's own and empty at
//! Create. A rootfs of another kind is walked every time.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tent_audit::classify::Category;
use tent_audit::report::Report;
use tent_runtime::{AuditBudget, RootfsMount};

/// The file in the bundle.
pub const FILE: &str = "tent-audit.json";
/// Summaries by layers, in containerd's state directory (tmpfs on a
/// host, gone with a test's private daemon): `<state>/tent-audit-cache`.
const CACHE_DIR: &str = "tent-audit-cache";

/// `<state>/tent-audit-cache` for a bundle `<state>/io.containerd.runtime.v2.task/<ns>/<id>`.
fn cache_dir(bundle: &Path) -> Option<PathBuf> {
    let tasks = bundle.parent()?.parent()?;
    if tasks.file_name()? != "io.containerd.runtime.v2.task" {
        return None;
    }
    Some(tasks.parent()?.join(CACHE_DIR))
}

/// What `tent audit --running` shows of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub score: u64,
    pub verdict: String,
    pub files: u64,
    pub bytes: u64,
    pub setid: u64,
    pub capabilities: u64,
    pub shells: u64,
    pub package_managers: u64,
    pub interpreters: u64,
    pub compilers: u64,
    pub network_tools: u64,
    pub kernel_tools: u64,
    pub busybox: bool,
    pub incomplete: bool,
    pub walk_ms: f64,
    /// Taken from the cache of another container of the same layers.
    #[serde(default)]
    pub cached: bool,
}

impl Summary {
    pub fn of(r: &Report) -> Summary {
        let inv = &r.inventory;
        let n = |c| inv.tool_names.get(&c).map_or(0, |s| s.len() as u64);
        Summary {
            score: r.score,
            verdict: r.verdict.clone(),
            files: inv.totals.files,
            bytes: inv.totals.bytes,
            setid: inv.setid.count,
            capabilities: inv.capabilities.count,
            shells: n(Category::Shell),
            package_managers: n(Category::PackageManager),
            interpreters: n(Category::Interpreter),
            compilers: n(Category::Compiler),
            network_tools: n(Category::Network),
            kernel_tools: n(Category::Kernel),
            busybox: !inv.busybox.is_empty(),
            incomplete: inv.unreadable.count + inv.too_deep.count > 0,
            walk_ms: r.elapsed_ms,
            cached: false,
        }
    }
}

/// The cache key of a rootfs: the hex SHA-256 of an overlay's `lowerdir`.
///
/// What the key does not cover, so what a cached summary can get wrong:
/// - The upper layer (`upperdir`). Assumed empty at Create: containerd makes
///   a fresh active snapshot per container and neither its Task API nor its
///   CRI writes into it before the task's Create (the CRI's image-volume
///   copy, `WithVolumes`, mounts the snapshot read-only and copies *out*).
///   A client that writes into a container's snapshot before creating its
///   task (containerd's API allows it) is not seen on a cache hit; the
///   runtime's own mount-point directories and files there are empty.
/// - The mounts over the rootfs, which differ between containers of one
///   image. The walk never crosses into another file system (`-xdev`), so
///   it never counts what is under a bind mount; the cache then hands the
///   first container's view to the others. Image-defined volumes (`VOLUME`
///   in the image config) are the sharp case: through the CRI, containerd
///   copies the image's files at that path into a host directory and
///   bind-mounts it there, so a CRI container's walk does not count the
///   image's files under a VOLUME path (they are still there for the
///   workload), while a Task API container of the same image (no such
///   mount) counts them, and whichever walked first fills the cache.
/// - Mounts are not part of the key on purpose: a key of the spec's mounts
///   would miss the cache for every pod (each has its own hosts, resolv.conf
///   and service-account paths), and a budget (warn or deny) never uses the
///   cache (it walks at every Create).
pub fn layers_key(mounts: &[RootfsMount]) -> Option<String> {
    use sha2::Digest;
    let [m] = mounts else { return None };
    if m.kind != "overlay" {
        return None;
    }
    let lower = m.options.iter().find_map(|o| o.strip_prefix("lowerdir="))?;
    let d = sha2::Sha256::digest(lower.as_bytes());
    Some(d.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `s` to `dir/name` through a temporary file and a rename.
fn write_json(dir: &Path, name: &str, s: &Summary) -> std::io::Result<()> {
    let body = serde_json::to_vec(s).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Keeps `s` with container `id`'s state and logs it.
pub fn keep(id: &str, bundle: &Path, s: &Summary) {
    log::info!(
        "container {id}: audit {}{} (walk {:.1} ms)",
        s.verdict,
        if s.cached { ", cached" } else { "" },
        s.walk_ms
    );
    if let Err(e) = write_json(bundle, FILE, s) {
        log::warn!(
            "container {id}: keep the audit summary in {}: {e}",
            bundle.display()
        );
    }
}

fn cached(dir: &Path, key: &str) -> Option<Summary> {
    let text = std::fs::read(dir.join(format!("{key}.json"))).ok()?;
    let mut s: Summary = serde_json::from_slice(&text).ok()?;
    s.cached = true;
    Some(s)
}

fn store(dir: &Path, key: &str, s: &Summary) {
    use std::os::unix::fs::DirBuilderExt;
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    if let Err(e) = made.and_then(|_| write_json(dir, &format!("{key}.json"), s)) {
        log::debug!("audit cache {}: {e}", dir.display());
    }
}

/// Summaries in flight, for [`drain`].
static PENDING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Counts a summary thread in flight while it lives.
struct InFlight;

impl InFlight {
    fn new() -> InFlight {
        *PENDING.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut n = PENDING.0.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        PENDING.1.notify_all();
    }
}

/// Waits (at most `limit`) for the summaries in flight: the shim calls it
/// before it exits, so a container that lived a few milliseconds still gets
/// its summary logged and its warn-mode budget judged.
pub fn drain(limit: std::time::Duration) {
    let n = PENDING.0.lock().unwrap_or_else(|p| p.into_inner());
    let (n, timeout) = PENDING
        .1
        .wait_timeout_while(n, limit, |n| *n > 0)
        .unwrap_or_else(|p| p.into_inner());
    if timeout.timed_out() {
        log::warn!("{} audit summaries unfinished at exit", *n);
    }
}

/// This thread at the lowest CPU and I/O priority (Linux applies both per
/// thread).
fn lower_priority() {
    // SAFETY: gettid, setpriority and ioprio_set on this thread only.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        // IOPRIO_WHO_PROCESS = 1, IOPRIO_CLASS_IDLE = 3 << 13.
        libc::syscall(libc::SYS_ioprio_set, 1, tid, 3 << 13);
    }
}

/// Starts the summary of container `id` (its root opened by
/// `budget::open_root`) on its own thread. A
/// warn-mode budget is judged there too (it walks; the cache holds no lists).
pub fn spawn(
    id: String,
    root: crate::error::Result<std::os::fd::OwnedFd>,
    bundle: PathBuf,
    key: Option<String>,
    budget: AuditBudget,
) {
    let root = match root {
        Ok(r) => r,
        Err(e) => return log::warn!("no audit summary: {e}"),
    };
    let in_flight = InFlight::new();
    let run = move || {
        let _in_flight = in_flight;
        lower_priority();
        let judge = budget.is_set();
        let cache = cache_dir(&bundle).zip(key);
        if !judge {
            if let Some(s) = cache.as_ref().and_then(|(d, k)| cached(d, k)) {
                return keep(&id, &bundle, &s);
            }
        }
        let (inv, ms) = match crate::budget::walk(&id, root) {
            Ok(w) => w,
            Err(e) => return log::debug!("container {id}: no audit summary: {e}"),
        };
        if judge {
            // Warn mode only here: deny was judged before Create returned.
            let _ = crate::budget::judge(&id, &inv, &budget);
        }
        let report = Report::new(format!("container {id}"), "container", inv, ms);
        let s = Summary::of(&report);
        if let (Some((d, k)), false) = (&cache, s.incomplete) {
            store(d, k, &s);
        }
        keep(&id, &bundle, &s);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("tent-audit".into())
        .spawn(run)
    {
        log::warn!("no audit summary: thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: &str, opts: &[&str]) -> RootfsMount {
        RootfsMount {
            kind: kind.into(),
            source: "overlay".into(),
            target: String::new(),
            options: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_key_is_the_layers() {
        let a = m(
            "overlay",
            &[
                "index=off",
                "workdir=/s/9/work",
                "upperdir=/s/9/fs",
                "lowerdir=/s/2/fs:/s/1/fs",
            ],
        );
        let b = m(
            "overlay",
            &[
                "workdir=/s/10/work",
                "upperdir=/s/10/fs",
                "lowerdir=/s/2/fs:/s/1/fs",
            ],
        );
        let c = m(
            "overlay",
            &["upperdir=/s/11/fs", "lowerdir=/s/3/fs:/s/1/fs"],
        );
        let ka = layers_key(&[a]).expect("overlay key");
        assert_eq!(Some(ka.clone()), layers_key(&[b]));
        assert_ne!(Some(ka), layers_key(&[c]));
        assert_eq!(layers_key(&[m("bind", &["rbind", "ro"])]), None);
        assert_eq!(layers_key(&[]), None);
    }

    #[test]
    fn the_cache_is_in_containerds_state() {
        let b = Path::new("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc");
        assert_eq!(
            cache_dir(b),
            Some(PathBuf::from("/run/containerd/tent-audit-cache"))
        );
        assert_eq!(cache_dir(Path::new("/tmp/bundle")), None);
    }
}
