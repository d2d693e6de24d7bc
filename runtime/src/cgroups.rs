//! The container's cgroup (v1 or pure v2) through cgroups-rs: path parsing
//! (cgroupfs or systemd `slice:prefix:name`), creation with the spec's limits,
//! membership, signalling every member, and removal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::devices::DevicesController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hierarchies::{V1, V2};
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Cgroup, Controller, Hierarchy, MaxValue};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A validated cgroup path, relative to each hierarchy's root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(pub String);

impl CgroupPath {
    /// Parses `linux.cgroupsPath`; empty means `/tent/<id>`.
    pub fn parse(path: &str, id: &str) -> Result<CgroupPath> {
        let bad = |reason: String| Error::spec("linux.cgroupsPath", reason);
        if path.is_empty() {
            return Ok(CgroupPath(format!("tent/{id}")));
        }
        let rel = if !path.starts_with('/') && path.split(':').count() == 3 {
            let mut parts = path.split(':');
            let (slice, prefix, name) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            if name.is_empty() {
                return Err(bad(format!("{path:?}: empty name in slice:prefix:name")));
            }
            let mut dir = expand_slice(if slice.is_empty() {
                "system.slice"
            } else {
                slice
            })
            .map_err(|r| bad(format!("{path:?}: {r}")))?;
            let unit = if name.ends_with(".slice") {
                name.to_string()
            } else if prefix.is_empty() {
                format!("{name}.scope")
            } else {
                format!("{prefix}-{name}.scope")
            };
            if unit.contains('/') {
                return Err(bad(format!("{path:?}: unit name contains '/'")));
            }
            if !dir.is_empty() {
                dir.push('/');
            }
            dir + &unit
        } else {
            path.trim_start_matches('/').to_string()
        };
        for comp in rel.split('/') {
            if comp == ".." {
                return Err(bad(format!("{path:?} contains \"..\"")));
            }
        }
        let rel = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        if rel.is_empty() {
            return Err(bad(format!("{path:?} names the root cgroup")));
        }
        Ok(CgroupPath(rel))
    }
}

/// Expands a systemd slice name as systemd does: `a-b.slice` → `a.slice/a-b.slice`.
fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let base = slice
        .strip_suffix(".slice")
        .ok_or_else(|| format!("slice {slice:?} does not end in .slice"))?;
    if base == "-" {
        return Ok(String::new());
    }
    if base.is_empty()
        || base.contains('/')
        || base.starts_with('-')
        || base.ends_with('-')
        || base.contains("--")
    {
        return Err(format!("invalid slice name {slice:?}"));
    }
    let mut out = Vec::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out.join("/"))
}

/// True on a pure cgroup v2 host; the hybrid `unified` mount without controllers is v1.
pub fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn hierarchy(v2: bool) -> Box<dyn Hierarchy> {
    if v2 {
        Box::new(V2::new())
    } else {
        Box::new(V1::new())
    }
}

/// Device rules every container gets: mknod of anything, the standard
/// character devices, ptys and tun (runc's list).
const DEFAULT_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// How a container process gets into its cgroup without anyone writing its pid
/// to `cgroup.procs`. That write takes the kernel's global
/// `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period
/// (5–16 ms per container create and per exec, measured on kernel 6.18).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Join {
    /// v1: every hierarchy's `tasks` file. A single-threaded process that writes
    /// `0` there moves its only thread, i.e. itself, and the kernel skips that
    /// lock for a thread moving itself.
    V1 { tasks: Vec<PathBuf> },
    /// v2: the cgroup directory. The process forks its child straight into it
    /// with `clone3(CLONE_INTO_CGROUP)`: no migration at all.
    V2 { dir: PathBuf },
}

impl Join {
    /// Run by a single-threaded stage 1: on v1 moves the calling process into
    /// the cgroup now; on v2 returns the directory fd to clone stage 2 into.
    pub(crate) fn enter(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        match self {
            Join::V1 { tasks } => {
                for file in tasks {
                    write_file(file, "0")?;
                }
                Ok(None)
            }
            Join::V2 { dir } => {
                let fd = nix::fcntl::open(
                    dir.as_path(),
                    nix::fcntl::OFlag::O_PATH
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| Error::sys(format!("open cgroup {}", dir.display()), e))?;
                Ok(Some(fd))
            }
        }
    }
}

/// One v1 hierarchy's copy of the container cgroup, bind-mounted into the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct V1Bind {
    /// Directory name under `/sys/fs/cgroup` (e.g. `memory`, `systemd`).
    pub name: String,
    /// Host path of the container's cgroup in that hierarchy.
    pub host_path: PathBuf,
}

/// The container's cgroup.
pub struct CgroupManager {
    cg: Cgroup,
    path: CgroupPath,
    v2: bool,
}

impl std::fmt::Debug for CgroupManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CgroupManager({}, v2={})", self.path.0, self.v2)
    }
}

impl CgroupManager {
    /// A handle on an existing (or not yet created) cgroup.
    pub fn load(path: CgroupPath) -> CgroupManager {
        let v2 = is_v2();
        let cg = Cgroup::load(hierarchy(v2), &path.0);
        CgroupManager { cg, path, v2 }
    }

    /// Creates the cgroup and applies `resources`; removes it again on failure.
    pub fn create(path: CgroupPath, resources: Option<&LinuxResources>) -> Result<CgroupManager> {
        let mgr = CgroupManager::load(path);
        mgr.cg.create().map_err(|e| mgr.err("create", e))?;
        if let Some(res) = resources {
            if let Err(e) = mgr.apply(res) {
                let _ = mgr.delete();
                return Err(e);
            }
        }
        Ok(mgr)
    }

    pub fn v2(&self) -> bool {
        self.v2
    }

    fn err(&self, step: &'static str, source: cgroups_rs::fs::error::Error) -> Error {
        Error::Cgroup {
            step,
            path: format!("/{}", self.path.0),
            source,
        }
    }

    fn apply(&self, res: &LinuxResources) -> Result<()> {
        if let Some(mem) = res.memory() {
            let c = self.cg.controller_of::<MemController>();
            if let Some(c) = c {
                if let Some(v) = mem.limit() {
                    c.set_limit(v)
                        .map_err(|e| self.err("set memory limit", e))?;
                }
                if let Some(v) = mem.reservation() {
                    c.set_soft_limit(v)
                        .map_err(|e| self.err("set memory reservation", e))?;
                }
                if let Some(swap) = mem.swap() {
                    // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
                    let v = match (self.v2, mem.limit()) {
                        (true, Some(limit)) if swap > 0 && limit > 0 => (swap - limit).max(0),
                        _ => swap,
                    };
                    c.set_memswap_limit(v)
                        .map_err(|e| self.err("set memory swap limit", e))?;
                }
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(c) = self.cg.controller_of::<CpuController>() {
                if let Some(v) = cpu.shares().filter(|v| !self.v2 || *v != 0) {
                    // cgroups-rs writes the value as is; v2's cpu.weight (1..=10000) needs
                    // runc's conversion from shares (2..=262144), as in update.rs.
                    let v = if self.v2 {
                        1 + ((v.clamp(2, 262_144) - 2) * 9999) / 262_142
                    } else {
                        v
                    };
                    c.set_shares(v).map_err(|e| self.err("set cpu shares", e))?;
                }
                if cpu.quota().is_some() || cpu.period().is_some() {
                    c.set_cfs_quota_and_period(cpu.quota(), cpu.period())
                        .map_err(|e| self.err("set cpu quota/period", e))?;
                }
            }
            if let Some(c) = self.cg.controller_of::<CpuSetController>() {
                if let Some(v) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                    c.set_cpus(v).map_err(|e| self.err("set cpuset.cpus", e))?;
                }
                if let Some(v) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                    c.set_mems(v).map_err(|e| self.err("set cpuset.mems", e))?;
                }
            }
        }
        if let Some(devices) = res.devices() {
            self.apply_devices(devices)?;
        }
        if let Some(pids) = res.pids() {
            if let Some(c) = self.cg.controller_of::<PidController>() {
                let v = if pids.limit() > 0 {
                    MaxValue::Value(pids.limit())
                } else {
                    MaxValue::Max
                };
                c.set_pid_max(v)
                    .map_err(|e| self.err("set pids limit", e))?;
            }
        }
        Ok(())
    }

    /// v1 device rules: the spec's rules in order, then the devices every
    /// container gets (as runc). v2 needs an eBPF program: not done yet.
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        if self.v2 {
            return Ok(());
        }
        let Some(c) = self.cg.controller_of::<DevicesController>() else {
            return Ok(());
        };
        let dir = c.path().to_path_buf();
        let mut lines: Vec<(bool, String)> = rules
            .iter()
            .map(|r| {
                let typ = match r.typ() {
                    Some(LinuxDeviceType::C) => "c",
                    Some(LinuxDeviceType::B) => "b",
                    _ => "a",
                };
                let num = |n: Option<i64>| {
                    n.filter(|n| *n >= 0)
                        .map_or("*".to_string(), |n| n.to_string())
                };
                let access = r.access().clone().unwrap_or_else(|| "rwm".into());
                let line = if typ == "a" {
                    "a".to_string()
                } else {
                    format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
                };
                (r.allow(), line)
            })
            .collect();
        for d in DEFAULT_DEVICES {
            lines.push((true, d.to_string()));
        }
        for (allow, line) in lines {
            let file = dir.join(if allow {
                "devices.allow"
            } else {
                "devices.deny"
            });
            std::fs::write(&file, &line)
                .map_err(|e| Error::io("write device rule", file.join(&line), e))?;
        }
        Ok(())
    }

    /// How a new process of the container enters this cgroup by itself (see [`Join`]).
    pub fn join_plan(&self) -> Join {
        if self.v2 {
            return Join::V2 { dir: self.v2_dir() };
        }
        let mut tasks: Vec<PathBuf> = Vec::new();
        for sub in self.cg.subsystems() {
            // Controllers sharing a hierarchy (cpu,cpuacct) share the directory.
            let file = sub.to_controller().path().join("tasks");
            if !tasks.contains(&file) {
                tasks.push(file);
            }
        }
        Join::V1 { tasks }
    }

    /// Pids of every process in the cgroup.
    pub fn procs(&self) -> Vec<i32> {
        self.cg.procs().into_iter().map(|p| p.pid as i32).collect()
    }

    /// Sends `signal` to every process in the cgroup: `cgroup.kill` for SIGKILL on v2,
    /// otherwise freeze, signal each, thaw (so nothing forks past us). A paused
    /// cgroup stays paused, except that SIGKILL thaws it (frozen tasks cannot die).
    pub fn signal_all(&self, signal: Signal) -> Result<()> {
        if self.v2 && signal == Signal::SIGKILL && self.cg.kill().is_ok() {
            return Ok(());
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let freezer = self.cg.controller_of::<FreezerController>();
        let frozen = was_frozen || freezer.map(|f| f.freeze().is_ok()).unwrap_or(false);
        for pid in self.procs() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
        if frozen && (!was_frozen || signal == Signal::SIGKILL) {
            self.thaw()?;
        }
        Ok(())
    }

    /// The directory of v1 controller `name` (`memory`, `cpuacct`, …), if mounted.
    pub fn v1_dir(&self, name: &str) -> Option<PathBuf> {
        self.cg
            .subsystems()
            .iter()
            .find(|s| s.controller_name() == name)
            .map(|s| s.to_controller().path().to_path_buf())
    }

    /// The v2 directory of the cgroup.
    pub fn v2_dir(&self) -> PathBuf {
        Path::new(cgroups_rs::fs::hierarchies::UNIFIED_MOUNTPOINT).join(&self.path.0)
    }

    /// The directory holding `file` of controller `v1` (v1), or the v2 directory.
    pub fn dir_for(&self, v1: &str) -> Result<PathBuf> {
        if self.v2 {
            return Ok(self.v2_dir());
        }
        self.v1_dir(v1).ok_or_else(|| {
            Error::Precondition(format!(
                "cgroup v1 controller {v1} is not mounted for /{}",
                self.path.0
            ))
        })
    }

    /// Freezes every process and waits until the kernel reports the cgroup
    /// frozen (v1 `freezer.state` FROZEN, v2 `frozen 1` in `cgroup.events`).
    pub fn freeze(&self) -> Result<()> {
        let (file, value) = if self.v2 {
            ("cgroup.freeze", "1")
        } else {
            ("freezer.state", "FROZEN")
        };
        let path = self.dir_for("freezer")?.join(file);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut delay = Duration::from_millis(1);
        write_file(&path, value)?;
        loop {
            if !self.v2 {
                // v1: a write while FREEZING retries the tasks that were busy.
                write_file(&path, value)?;
            }
            if self.frozen_now()? {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.thaw();
                return Err(Error::Precondition(format!(
                    "freeze /{}: not frozen after 10 s (a task in uninterruptible sleep?)",
                    self.path.0
                )));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<()> {
        let (file, value) = if self.v2 {
            ("cgroup.freeze", "0")
        } else {
            ("freezer.state", "THAWED")
        };
        write_file(&self.dir_for("freezer")?.join(file), value)
    }

    /// True when the cgroup is frozen or being frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        let dir = self.dir_for("freezer")?;
        if self.v2 {
            return Ok(read_file(&dir.join("cgroup.freeze"))?.trim() == "1");
        }
        Ok(read_file(&dir.join("freezer.state"))?.trim() != "THAWED")
    }

    /// True once the kernel reports every task frozen.
    fn frozen_now(&self) -> Result<bool> {
        let dir = self.dir_for("freezer")?;
        if self.v2 {
            let events = read_file(&dir.join("cgroup.events"))?;
            return Ok(events.lines().any(|l| l.trim() == "frozen 1"));
        }
        Ok(read_file(&dir.join("freezer.state"))?.trim() == "FROZEN")
    }

    /// Binds of the container's cgroup, one per mounted v1 hierarchy (for the
    /// container's `/sys/fs/cgroup`).
    pub fn v1_binds(&self) -> Vec<V1Bind> {
        let mut out: Vec<V1Bind> = Vec::new();
        for sub in self.cg.subsystems() {
            let ctl = sub.to_controller();
            let path = ctl.path().to_path_buf();
            // <mountpoint>/<rel>: the mountpoint's basename names the directory.
            let mut mount = path.clone();
            for _ in self.path.0.split('/') {
                mount.pop();
            }
            let Some(name) = mount.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if path.is_dir() && !out.iter().any(|b| b.name == name) {
                out.push(V1Bind {
                    name,
                    host_path: path,
                });
            }
        }
        out
    }

    /// Removes the cgroup, killing leftovers and retrying while the kernel still
    /// reports it busy.
    pub fn delete(&self) -> Result<()> {
        let mut last = None;
        for attempt in 0..50 {
            if !self.procs().is_empty() {
                let _ = self.signal_all(Signal::SIGKILL);
            }
            match self.cg.delete() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(if attempt < 10 { 5 } else { 20 }));
        }
        match last {
            Some(e) => Err(self.err("remove", e)),
            None => Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        match CgroupPath::parse(s, "c1") {
            Ok(p) => p.0,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn cgroupfs_paths() {
        assert_eq!(p(""), "tent/c1");
        assert_eq!(
            p("/kubepods/besteffort/pod1/c1"),
            "kubepods/besteffort/pod1/c1"
        );
        assert_eq!(p("relative/x"), "relative/x");
        assert!(p("/a/../b").starts_with("ERR linux.cgroupsPath: "));
        assert!(p("../b").starts_with("ERR"));
        assert!(p("/").starts_with("ERR"));
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            p("kubepods-besteffort-pod12.slice:cri-containerd:abc"),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
        );
        assert_eq!(p("system.slice:docker:x"), "system.slice/docker-x.scope");
        assert_eq!(p(":tent:x"), "system.slice/tent-x.scope");
        assert_eq!(p("-.slice:p:x"), "p-x.scope");
        assert_eq!(p("a.slice::x"), "a.slice/x.scope");
        assert!(p("bad:p:x").starts_with("ERR"));
        assert!(p("a.slice:p:..").starts_with("ERR") || p("a.slice:p:..") == "a.slice/p-...scope");
        assert!(p("a--b.slice:p:x").starts_with("ERR"));
    }
}
