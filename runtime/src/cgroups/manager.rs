//! The container's cgroup as a set of directories: one per mounted v1
//! hierarchy, or one on v2. Creation (with the resources plan and the device
//! list), how processes join it, freezing, signalling every member, removal.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::systemd::{self, UnitName};
use super::{devices, is_v2, read_file, resources, v1_hierarchies, write_file, CgroupPath, ROOT};
use crate::error::{Error, Result};

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
    pub(crate) fn enter(&self) -> Result<Option<OwnedFd>> {
        match self {
            Join::V1 { tasks } => {
                for file in tasks {
                    write_file(file, "0")?;
                }
                Ok(None)
            }
            Join::V2 { dir } => open_dir(dir).map(Some),
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
#[derive(Debug)]
pub struct CgroupManager {
    path: CgroupPath,
    v2: bool,
    /// v1: the cgroup's directory in each hierarchy with the controllers it
    /// carries, in join order; v2: the one directory (no controller names).
    dirs: Vec<(Vec<String>, PathBuf)>,
    /// The systemd scope that owns the cgroup (see [`super::systemd`]).
    unit: Option<String>,
}

impl CgroupManager {
    /// A handle on an existing (or not yet created) cgroup.
    pub fn load(path: CgroupPath) -> CgroupManager {
        let v2 = is_v2();
        let dirs = if v2 {
            vec![(Vec::new(), Path::new(ROOT).join(&path.0))]
        } else {
            v1_hierarchies()
                .into_iter()
                .map(|h| {
                    let dir = h.mount.join(&path.0);
                    (h.controllers, dir)
                })
                .collect()
        };
        CgroupManager {
            path,
            v2,
            dirs,
            unit: None,
        }
    }

    /// A handle on a cgroup owned by the systemd scope `unit` (if any).
    pub fn with_unit(mut self, unit: Option<String>) -> CgroupManager {
        self.unit = unit;
        self
    }

    /// The systemd scope that owns the cgroup, if systemd made it.
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// Creates the cgroup as the systemd scope `name` holding `pid` (the
    /// container's first process, which must exist: systemd refuses an empty
    /// scope), with the limits systemd holds as unit properties; then the
    /// same cgroupfs steps as [`CgroupManager::create`] (directories of the
    /// v1 hierarchies systemd does not manage, every limit, the device list).
    /// On failure the unit is stopped again.
    pub fn create_systemd(
        path: CgroupPath,
        name: &UnitName,
        pid: u32,
        id: &str,
        res: Option<&LinuxResources>,
    ) -> Result<CgroupManager> {
        if !name.unit.ends_with(".scope") {
            return Err(Error::spec(
                "linux.cgroupsPath",
                format!(
                    "{}: tent's systemd driver makes scopes, not slices, for containers",
                    name.unit
                ),
            ));
        }
        let mgr = CgroupManager::load(path).with_unit(Some(name.unit.clone()));
        let mut props = systemd::resource_properties(res, mgr.v2, true)?;
        if !mgr.v2 {
            let rules = res.and_then(|r| r.devices().as_deref()).unwrap_or_default();
            props.extend(systemd::device_properties(rules)?);
        }
        systemd::start(name, pid, id, props)?;
        if let Err(e) = mgr.make_dirs().and_then(|()| mgr.configure(res)) {
            let _ = mgr.delete();
            return Err(e);
        }
        Ok(mgr)
    }

    /// Update's systemd half: the unit's properties for what `r` sets (after
    /// the cgroupfs writes, which validate and apply it all or nothing).
    pub fn update_unit(&self, r: &LinuxResources) -> Result<()> {
        let Some(unit) = &self.unit else {
            return Ok(());
        };
        systemd::set_properties(
            unit,
            &systemd::resource_properties(Some(r), self.v2, false)?,
        )
    }

    /// Creates the cgroup, applies `resources` (the same plan Update uses) and
    /// the device list; removes it again on failure.
    pub fn create(path: CgroupPath, res: Option<&LinuxResources>) -> Result<CgroupManager> {
        let mgr = CgroupManager::load(path);
        if let Err(e) = mgr.make_dirs().and_then(|()| mgr.configure(res)) {
            let _ = mgr.delete();
            return Err(e);
        }
        Ok(mgr)
    }

    fn make_dirs(&self) -> Result<()> {
        if self.dirs.is_empty() {
            return Err(Error::Precondition(
                "no cgroup hierarchy is mounted under /sys/fs/cgroup".into(),
            ));
        }
        if self.v2 {
            return self.make_v2_dir();
        }
        for (controllers, dir) in &self.dirs {
            std::fs::create_dir_all(dir).map_err(|e| self.err("create", dir, e))?;
            if controllers.iter().any(|c| c == "cpuset") {
                inherit_cpuset(dir)?;
            }
        }
        Ok(())
    }

    /// v2: a controller is usable in a cgroup only when every ancestor enables it
    /// in `cgroup.subtree_control`; enable what the root offers on the way down.
    fn make_v2_dir(&self) -> Result<()> {
        let root = Path::new(ROOT);
        let offered = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let mut dir = root.to_path_buf();
        for part in self.path.0.split('/') {
            for c in offered.split_whitespace() {
                // Best effort, one by one: a controller the parent cannot
                // delegate (e.g. busy with processes) fails alone and is
                // reported when a limit needs its files.
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
            }
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.err("create", &dir, e)),
            }
        }
        Ok(())
    }

    /// The device list is applied even without `resources`: its base is
    /// "deny all", and on v2 the program is the only device check there is.
    fn configure(&self, res: Option<&LinuxResources>) -> Result<()> {
        if let Some(res) = res {
            for w in resources::plan(self, res)? {
                write_file(&w.path, &w.value)?;
            }
        }
        let rules = res.and_then(|r| r.devices().as_deref()).unwrap_or_default();
        devices::apply(self, rules)
    }

    pub fn v2(&self) -> bool {
        self.v2
    }

    fn err(&self, step: &'static str, dir: &Path, source: std::io::Error) -> Error {
        Error::Cgroup {
            step,
            path: dir.to_path_buf(),
            source,
        }
    }

    /// How a new process of the container enters this cgroup by itself (see [`Join`]).
    pub fn join_plan(&self) -> Join {
        if self.v2 {
            return Join::V2 { dir: self.v2_dir() };
        }
        Join::V1 {
            tasks: self.dirs.iter().map(|(_, d)| d.join("tasks")).collect(),
        }
    }

    /// Pids of every process in the cgroup.
    pub fn procs(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|(_, d)| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Sends `signal` to every process in the cgroup: `cgroup.kill` for SIGKILL on v2,
    /// otherwise freeze, signal each, thaw (so nothing forks past us). A paused
    /// cgroup stays paused, except that SIGKILL thaws it (frozen tasks cannot die).
    pub fn signal_all(&self, signal: Signal) -> Result<()> {
        if self.v2
            && signal == Signal::SIGKILL
            && write_file(&self.v2_dir().join("cgroup.kill"), "1").is_ok()
        {
            return Ok(());
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let frozen = was_frozen || self.request_freeze().is_ok();
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
        if self.v2 {
            return None;
        }
        self.dirs
            .iter()
            .find(|(cs, _)| cs.iter().any(|c| c == name))
            .map(|(_, d)| d.clone())
    }

    /// The v2 directory of the cgroup.
    pub fn v2_dir(&self) -> PathBuf {
        Path::new(ROOT).join(&self.path.0)
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

    fn freeze_file(&self) -> Result<(PathBuf, &'static str, &'static str)> {
        let dir = self.dir_for("freezer")?;
        Ok(if self.v2 {
            (dir.join("cgroup.freeze"), "1", "0")
        } else {
            (dir.join("freezer.state"), "FROZEN", "THAWED")
        })
    }

    fn request_freeze(&self) -> Result<()> {
        let (file, frozen, _) = self.freeze_file()?;
        write_file(&file, frozen)
    }

    /// Freezes every process and waits until the kernel reports the cgroup
    /// frozen (v1 `freezer.state` FROZEN, v2 `frozen 1` in `cgroup.events`).
    pub fn freeze(&self) -> Result<()> {
        let (path, value, _) = self.freeze_file()?;
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
        let (file, _, thawed) = self.freeze_file()?;
        write_file(&file, thawed)
    }

    /// True when the cgroup is frozen or being frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        let (file, _, thawed) = self.freeze_file()?;
        let now = read_file(&file)?;
        Ok(if self.v2 {
            now.trim() == "1"
        } else {
            now.trim() != thawed
        })
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
        for (_, dir) in &self.dirs {
            // <mountpoint>/<rel>: the mountpoint's basename names the directory.
            let mut mount = dir.clone();
            for _ in self.path.0.split('/') {
                mount.pop();
            }
            let Some(name) = mount.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if dir.is_dir() && !out.iter().any(|b| b.name == name) {
                out.push(V1Bind {
                    name,
                    host_path: dir.clone(),
                });
            }
        }
        out
    }

    /// Removes the cgroup's directories, killing leftovers and retrying while
    /// the kernel still reports them busy.
    /// A systemd scope is stopped first (after its processes were killed, so
    /// systemd's stop does not wait on them), which removes its directories.
    pub fn delete(&self) -> Result<()> {
        let mut stopped = Ok(());
        if let Some(unit) = &self.unit {
            if !self.procs().is_empty() {
                let _ = self.signal_all(Signal::SIGKILL);
            }
            stopped = systemd::stop(unit);
        }
        self.remove_dirs()?;
        stopped
    }

    fn remove_dirs(&self) -> Result<()> {
        let mut last: Option<(PathBuf, std::io::Error)> = None;
        for attempt in 0..50 {
            if !self.procs().is_empty() {
                let _ = self.signal_all(Signal::SIGKILL);
            }
            last = None;
            for (_, dir) in &self.dirs {
                match std::fs::remove_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => last = Some((dir.clone(), e)),
                }
            }
            if last.is_none() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(if attempt < 10 { 5 } else { 20 }));
        }
        match last {
            Some((dir, e)) => Err(self.err("remove", &dir, e)),
            None => Ok(()),
        }
    }
}

/// A new v1 cpuset cgroup starts with empty `cpuset.cpus`/`cpuset.mems`, and
/// nothing can join it until they are set: copy them down from the nearest
/// ancestor that has them.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut empty: Vec<PathBuf> = Vec::new();
        let mut cur = dir.to_path_buf();
        let value = loop {
            let v = read_file(&cur.join(file))?.trim().to_string();
            if !v.is_empty() {
                break v;
            }
            empty.push(cur.clone());
            if !cur.pop() {
                break String::new();
            }
        };
        if value.is_empty() {
            continue;
        }
        for d in empty.iter().rev() {
            write_file(&d.join(file), &value)?;
        }
    }
    Ok(())
}

/// Opens the v2 directory a stage 1 clones its child into.
fn open_dir(dir: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open cgroup {}", dir.display()), e))
}
