//! The container's cgroup, v1 (every mounted hierarchy) or pure v2, written
//! through the cgroup file system directly:
//!
//! - [`path`]: `linux.cgroupsPath` (cgroupfs or systemd form) → a relative path;
//! - [`manager`]: create, join, freeze/thaw, signal every member, delete;
//! - [`resources`]: one plan of file writes from `linux.resources`, used by
//!   create and by Update (validation, unit conversions, rollback);
//! - [`blockio`]: `blockIO` weights and throttles (v1 `blkio`, v2 `io`);
//! - [`devices`]: the device allow list (v1 `devices.allow`/`devices.deny`,
//!   v2 an eBPF program);
//! - [`stats`] and [`oom`]: usage figures and OOM notifications;
//! - [`systemd`]: where systemd is PID 1, the cgroup of a systemd-form path
//!   is a transient scope systemd makes (over D-Bus) and keeps the limits of.
//!
//! No cgroup library: tent writes a handful of files, and the crate that did
//! it before (cgroups-rs) brought ~80 crates (zbus among them) for that.

pub mod blockio;
pub mod devices;
pub mod manager;
pub mod oom;
pub mod path;
pub mod resources;
pub mod stats;
pub mod systemd;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use manager::{CgroupManager, Join, V1Bind};
pub use path::CgroupPath;

/// Where the cgroup file systems are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// True on a pure cgroup v2 host; the hybrid `unified` mount without controllers is v1.
pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Its mount point, e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub mount: PathBuf,
    /// The controllers it carries (`cpu`, `cpuacct`; `name=systemd` for a named one).
    pub controllers: Vec<String>,
}

/// v1 controllers (and named hierarchies) a container gets a cgroup in, in
/// the order its processes join them: blkio before memory, as the kernel's
/// writeback accounting wants.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "memory",
    "pids",
    "cpuset",
    "cpuacct",
    "cpu",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "rdma",
    "name=systemd",
];

/// The v1 hierarchies mounted in our mount namespace (from `/proc/self/mountinfo`),
/// one per hierarchy, ordered as [`V1_CONTROLLERS`].
pub fn v1_hierarchies() -> Vec<Hierarchy> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_v1_hierarchies(&text)
}

fn parse_v1_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut found: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        // `id parent maj:min root mountpoint opts [optional…] - fstype source superopts`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let superopts = r.nth(1).unwrap_or_default();
        let Some(mount) = left.split_whitespace().nth(4) else {
            continue;
        };
        let controllers: Vec<String> = superopts
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() || found.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        found.push(Hierarchy {
            mount: PathBuf::from(crate::mounts::unescape_mountinfo(mount)),
            controllers,
        });
    }
    let rank = |h: &Hierarchy| {
        h.controllers
            .iter()
            .filter_map(|c| V1_CONTROLLERS.iter().position(|k| k == c))
            .min()
            .unwrap_or(usize::MAX)
    };
    found.sort_by_key(rank);
    found
}

/// Reads a cgroup file; errors name the path.
pub fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Writes a cgroup file; errors name the path and value.
pub fn write_file(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| Error::io("write", format!("{} ({value})", path.display()), e))
}

/// Moves `pid` into the existing cgroup `path` (absolute from each hierarchy's
/// root, as containerd's `ShimCgroup`): on pure v2 its `cgroup.procs`; on v1 and
/// hybrid hosts every mounted v1 hierarchy where that cgroup exists, as
/// containerd's runc shim does. Nothing is created; `..` is refused.
pub fn move_to(path: &str, pid: i32) -> Result<()> {
    let field = "ShimCgroup";
    if path.split('/').any(|c| c == "..") {
        return Err(Error::spec(field, format!("{path:?} contains \"..\"")));
    }
    let rel = path.trim_start_matches('/');
    let roots: Vec<PathBuf> = if is_v2() {
        vec![PathBuf::from(ROOT)]
    } else {
        v1_hierarchies().into_iter().map(|h| h.mount).collect()
    };
    let mut joined = 0;
    for root in roots {
        let dir = root.join(rel);
        if !dir.is_dir() {
            continue;
        }
        write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        joined += 1;
    }
    if joined == 0 {
        return Err(Error::spec(
            field,
            format!("cgroup {path:?} does not exist in any mounted hierarchy"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_from_mountinfo() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/misc rw - cgroup cgroup rw,misc
50 31 0:32 / /mnt/mem\\040copy rw - cgroup cgroup rw,memory
";
        let h = parse_v1_hierarchies(text);
        let mounts: Vec<_> = h.iter().map(|h| h.mount.display().to_string()).collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/systemd"
            ]
        );
        assert_eq!(h[1].controllers, ["cpu", "cpuacct"]);
    }
}
