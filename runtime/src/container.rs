//! Container lifecycle on the caller's side: create (validate the spec and
//! build the confinement, mount the rootfs, create the cgroup, spawn the init,
//! wait for ready), start, kill, pids, destroy, and the state-file based
//! cleanup after a crash. The container's side of the fork is `child/`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use crate::cgroups::path::systemd_name;
use crate::cgroups::{is_v2, systemd, CgroupManager, CgroupPath};
use crate::confine::Confinement;
use crate::error::{Error, Result};
use crate::exe::Role;
use crate::hooks::{self, Kind};
use crate::profile::Profile;
use crate::state::State;
use crate::sync::{Channel, InitConfig, Message};
use crate::{hostfs, pidfd, spec, CreateRequest, InitExe};

/// What the caller side holds for a live container.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) id: String,
    /// Host pid of the init.
    pub(crate) pid: i32,
    sync: Option<Channel>,
    pub(crate) pidfd: OwnedFd,
    pub(crate) cgroup: CgroupManager,
    mounts: Vec<PathBuf>,
    /// The sealed binary the init runs from; execs are spawned from it too.
    pub(crate) init_exe: InitExe,
    /// The pty master of a terminal init, until the caller takes it.
    pub(crate) console: Option<OwnedFd>,
    /// How the container's processes are confined; execs derive theirs from it.
    pub(crate) confinement: Confinement,
    /// The profile the container was created under; execs are checked against it.
    pub(crate) profile: Profile,
    /// The spec, kept only when it has poststart or poststop hooks.
    hooks: Option<Box<oci_spec::runtime::Spec>>,
    bundle: PathBuf,
}

/// Everything `create` made so far, undone on failure.
#[derive(Default)]
struct Undo {
    bundle: Option<PathBuf>,
    mounts: Vec<PathBuf>,
    cgroup: Option<CgroupManager>,
    pidfds: Vec<OwnedFd>,
}

impl Undo {
    fn run(self) {
        for fd in &self.pidfds {
            let _ = pidfd::send_signal(fd, libc::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.signal_all(Signal::SIGKILL);
            let _ = cg.delete();
        }
        hostfs::unmount_all(&self.mounts);
        if let Some(b) = &self.bundle {
            let _ = State::remove(b);
        }
    }
}

pub(crate) fn create(req: CreateRequest<'_>) -> Result<(i32, Handle)> {
    if req.id.is_empty() || req.id.contains('/') || req.id == "." || req.id == ".." {
        return Err(Error::spec(
            "id",
            format!("invalid container id {:?}", req.id),
        ));
    }
    req.profile.validate()?;
    let mut loaded = spec::load(req.bundle, req.profile)?;
    loaded.confinement.session_keyring = Some(crate::confine::keyring::name_for(req.id));
    let rootfs = spec::rootfs_path(&loaded.spec, req.bundle);
    if req.rootfs_mounts.is_empty() && !rootfs.is_dir() {
        return Err(Error::spec(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    let cg_path = CgroupPath::parse(
        &loaded
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        req.id,
    )?;
    let mut undo = Undo::default();
    match create_inner(&req, &loaded, &rootfs, cg_path, &mut undo) {
        Ok(r) => Ok(r),
        Err(e) => {
            undo.run();
            Err(e)
        }
    }
}

/// The systemd scope for a systemd-form cgroupsPath where systemd is PID 1;
/// elsewhere `None` (cgroupfs, the path expanded as systemd would, logged).
fn systemd_driver(loaded: &spec::LoadedSpec) -> Option<systemd::UnitName> {
    let raw = loaded
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())?;
    let name = systemd_name(&raw)?;
    if systemd::booted() {
        return Some(name);
    }
    log::info!(
        "cgroupsPath {raw:?} has the systemd form but systemd is not PID 1 here: cgroupfs directory in its slice's place"
    );
    None
}

fn create_inner(
    req: &CreateRequest<'_>,
    loaded: &spec::LoadedSpec,
    rootfs: &Path,
    cg_path: CgroupPath,
    undo: &mut Undo,
) -> Result<(i32, Handle)> {
    let systemd_unit = systemd_driver(loaded);
    let mut state = State {
        id: req.id.to_string(),
        cgroup: cg_path.0.clone(),
        systemd_unit: systemd_unit.as_ref().map(|n| n.unit.clone()),
        mounts: if req.rootfs_mounts.is_empty() {
            Vec::new()
        } else {
            vec![rootfs.to_path_buf()]
        },
        poststop: hooks::of(&loaded.spec, Kind::Poststop).to_vec(),
        poststop_state: if hooks::of(&loaded.spec, Kind::Poststop).is_empty() {
            String::new()
        } else {
            let bundle = req.bundle.to_string_lossy();
            hooks::state(&loaded.spec, req.id, None, &bundle, Kind::Poststop)
        },
        ..State::default()
    };
    // Saved before any side effect, so a crash in between is cleaned up too.
    undo.bundle = Some(req.bundle.to_path_buf());
    state.save(req.bundle)?;

    undo.mounts = hostfs::mount_rootfs(rootfs, req.rootfs_mounts)?;
    let resources = loaded
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref());
    let (ch, child_end) = Channel::pair()?;
    let stdin = match &req.stdio.stdin {
        Some(fd) => fd.try_clone().map_err(|e| Error::io("dup", "stdin", e))?,
        None => OwnedFd::from(
            std::fs::File::open("/dev/null").map_err(|e| Error::io("open", "/dev/null", e))?,
        ),
    };
    let clone = |fd: &Option<OwnedFd>, name: &'static str| -> Result<Option<OwnedFd>> {
        fd.as_ref()
            .map(|f| f.try_clone().map_err(|e| Error::io("dup", name, e)))
            .transpose()
    };
    let stdout = clone(&req.stdio.stdout, "stdout")?;
    let stderr = clone(&req.stdio.stderr, "stderr")?;
    let stage1 = req.init_exe.spawn(Role::Init, child_end, stdout, stderr)? as i32;
    match pidfd::open(stage1) {
        Ok(fd) => undo.pidfds.push(fd),
        Err(e) => return Err(e),
    }
    // After stage 1 exists (it waits for its config): a systemd scope must be
    // started with a process in it, and stage 1 is that process; on v2 its
    // child, the init, is then cloned into the scope's directory, on v1 it
    // joins the hierarchies systemd does not manage through their files.
    let cgroup = match &systemd_unit {
        Some(name) => {
            let cg =
                CgroupManager::create_systemd(cg_path, name, stage1 as u32, req.id, resources)?;
            log::info!(
                "container {}: cgroup is systemd scope {} in {}",
                req.id,
                name.unit,
                name.slice
            );
            cg
        }
        None => CgroupManager::create(cg_path, resources)?,
    };
    let cgroup_v1 = if cgroup.v2() {
        Vec::new()
    } else {
        cgroup.v1_binds()
    };
    undo.cgroup = Some(cgroup);
    let cgroup_join = match &undo.cgroup {
        Some(cg) => cg.join_plan(),
        None => return Err(Error::Protocol("cgroup vanished".into())),
    };
    let cfg = InitConfig {
        id: req.id.to_string(),
        bundle: req.bundle.to_string_lossy().into_owned(),
        spec: loaded.raw.clone(),
        rootfs: rootfs.to_string_lossy().into_owned(),
        cgroup_v1,
        cgroup_v2: is_v2(),
        cgroup_join,
        rootfs_nosuid_nodev: loaded.confinement.hardening.rootfs_nosuid_nodev,
        confinement: loaded.confinement.clone(),
    };
    ch.send(&Message::Config(Box::new(cfg)), &[stdin.as_raw_fd()])?;
    drop(stdin);

    let mut stage2: Option<(i32, OwnedFd)> = None;
    let mut console: Option<OwnedFd> = None;
    // Stage 1 (the pid) and stage 2 (ready) write to the same socket from two
    // processes, so their messages may arrive in either order: wait for both.
    let mut ready = false;
    let mut hooks_asked = false;
    while !(ready && stage2.is_some()) {
        if let (true, Some((pid, _))) = (hooks_asked, &stage2) {
            hooks_asked = false;
            for kind in [Kind::Prestart, Kind::CreateRuntime] {
                crate::hook_runner::run(
                    req.init_exe,
                    &loaded.spec,
                    kind,
                    req.id,
                    Some(*pid),
                    req.bundle,
                )?;
            }
            ch.send(&Message::HooksDone(*pid), &[])?;
        }
        match ch.recv()? {
            Some((Message::Hooks, _)) => hooks_asked = true,
            Some((Message::Console, fds)) => {
                console = Some(fds.into_iter().next().ok_or_else(|| {
                    Error::Protocol("console message came without the pty master".into())
                })?);
            }
            Some((Message::Stage2Pid(pid), fds)) => {
                let fd = fds
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Protocol("stage 2 pid came without a pidfd".into()))?;
                undo.pidfds
                    .push(fd.try_clone().map_err(|e| Error::io("dup", "pidfd", e))?);
                state.pid = Some(pid);
                state.start_time = pidfd::start_time(pid);
                state.save(req.bundle)?;
                stage2 = Some((pid, fd));
            }
            Some((Message::Ready, _)) => ready = true,
            Some((Message::Error { step, cause, kind }, _)) => {
                return Err(Error::Init { step, cause, kind })
            }
            Some((other, _)) => {
                return Err(Error::Protocol(format!("unexpected message {other:?}")))
            }
            None => {
                return Err(Error::Protocol(
                    "container init exited during setup without a report".into(),
                ))
            }
        }
    }
    let (pid, fd) = stage2.ok_or_else(|| Error::Protocol("ready before the stage 2 pid".into()))?;
    let cgroup = undo
        .cgroup
        .take()
        .ok_or_else(|| Error::Protocol("cgroup vanished".into()))?;
    let terminal = loaded
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    if terminal && console.is_none() {
        undo.cgroup = Some(cgroup);
        return Err(Error::Protocol("terminal init without a pty master".into()));
    }
    let handle = Handle {
        id: req.id.to_string(),
        pid,
        sync: Some(ch),
        pidfd: fd,
        cgroup,
        mounts: std::mem::take(&mut undo.mounts),
        init_exe: req.init_exe.clone(),
        console,
        confinement: loaded.confinement.clone(),
        profile: req.profile.clone(),
        hooks: [Kind::Poststart, Kind::Poststop]
            .iter()
            .any(|k| !hooks::of(&loaded.spec, *k).is_empty())
            .then(|| Box::new(loaded.spec.clone())),
        bundle: req.bundle.to_path_buf(),
    };
    Ok((pid, handle))
}

impl Handle {
    pub(crate) fn start(&mut self) -> Result<()> {
        let ch = self
            .sync
            .take()
            .ok_or_else(|| Error::Precondition("container already started".into()))?;
        ch.send(&Message::Start, &[])?;
        match ch.recv()? {
            None => {
                if let Some(spec) = &self.hooks {
                    let kind = Kind::Poststart;
                    crate::hook_runner::run(
                        &self.init_exe,
                        spec,
                        kind,
                        &self.id,
                        Some(self.pid),
                        &self.bundle,
                    )?;
                }
                Ok(())
            }
            Some((Message::Error { step, cause, kind }, _)) => {
                Err(Error::Init { step, cause, kind })
            }
            Some((other, _)) => Err(Error::Protocol(format!("unexpected message {other:?}"))),
        }
    }

    pub(crate) fn kill(&self, signal: i32, all: bool) -> Result<()> {
        if all {
            let sig = Signal::try_from(signal)
                .map_err(|_| Error::spec("signal", format!("invalid signal {signal}")))?;
            if self.cgroup.procs().is_empty() {
                return Err(Error::ProcessFinished);
            }
            return self.cgroup.signal_all(sig);
        }
        pidfd::send_signal(&self.pidfd, signal)?;
        // A frozen task cannot act on SIGKILL until thawed (as runc, thaw after it).
        if signal == libc::SIGKILL && self.cgroup.is_frozen().unwrap_or(false) {
            self.cgroup.thaw()?;
        }
        Ok(())
    }

    pub(crate) fn pids(&self) -> Vec<i32> {
        self.cgroup.procs()
    }

    pub(crate) fn destroy(self, bundle: &Path) -> Result<()> {
        let _ = pidfd::send_signal(&self.pidfd, libc::SIGKILL);
        let mut first: Option<Error> = None;
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        keep(self.cgroup.delete());
        for m in self.mounts.iter().rev() {
            keep(hostfs::unmount(m));
        }
        keep(State::remove(bundle));
        if let Some(spec) = &self.hooks {
            keep(crate::hook_runner::run(
                &self.init_exe,
                spec,
                Kind::Poststop,
                &self.id,
                None,
                bundle,
            ));
        }
        first.map_or(Ok(()), Err)
    }
}

/// Cleanup from `<bundle>/tent-state.json` after the caller died.
pub(crate) fn cleanup_bundle(bundle: &Path, id: &str) -> Result<Option<i32>> {
    let Some(state) = State::load(bundle)? else {
        return Ok(None);
    };
    if !state.id.is_empty() && state.id != id {
        return Err(Error::Precondition(format!(
            "state in {} belongs to container {:?}, not {id:?}",
            bundle.display(),
            state.id
        )));
    }
    if let (Some(pid), Some(start)) = (state.pid, state.start_time) {
        if pidfd::start_time(pid) == Some(start) {
            if let Ok(fd) = pidfd::open(pid) {
                // Re-check now that the pidfd pins the process.
                if pidfd::start_time(pid) == Some(start) {
                    let _ = pidfd::send_signal(&fd, libc::SIGKILL);
                }
            }
        }
    }
    let mut first: Option<Error> = None;
    if !state.cgroup.is_empty() {
        let cg =
            CgroupManager::load(CgroupPath(state.cgroup.clone())).with_unit(state.systemd_unit);
        if let Err(e) = cg.delete() {
            first.get_or_insert(e);
        }
    }
    for m in state.mounts.iter().rev() {
        if let Err(e) = hostfs::unmount(m) {
            first.get_or_insert(e);
        }
    }
    if let Err(e) = State::remove(bundle) {
        first.get_or_insert(e);
    }
    // In this process (`shim delete` has no reaper to race), after the
    // state is gone so they never run twice; failures are logged only.
    if let Err(e) = hooks::run_all(Kind::Poststop, &state.poststop, &state.poststop_state) {
        log::warn!("{id}: {e}");
    }
    match first {
        Some(e) => Err(e),
        None => Ok(state.pid),
    }
}
