//! A pod's namespaces held without a process (containerd's Sandbox API, no pause
//! container): the IPC and UTS namespaces are created by a pod helper — a fresh,
//! single-threaded re-exec of our binary (`child/pod.rs`), because `unshare` in the
//! multi-threaded shim would move one thread only — which applies the pod's hostname
//! and sysctls inside them and pins each by bind-mounting its `/proc/self/ns/*` file
//! onto a file the caller created. The network namespace is the one containerd's CRI
//! created and pinned (CNI has run); the helper joins it only to write `net.*`
//! sysctls. [`PodNamespaces::destroy`] (and [`remove_pins`] after a crash) unmount the
//! pins, which ends the namespaces once no container is in them.
//!
//! The common pod (its own IPC and/or UTS namespace, no sysctls, no shared PID namespace)
//! skips the re-exec: a raw fork child that makes only system calls on memory prepared
//! before the fork ([`pin_by_fork`]) does the same unshare, sethostname and bind mounts
//! (measured: about 3–5 ms less per pod start than spawning the helper).
//!
//! A pod that shares its PID namespace (shareProcessNamespace) needs a PID 1: the helper
//! also unshares the PID namespace and forks tent's pod init (`child/pod.rs`), which only
//! reaps orphans and exits on SIGTERM; its pid is the sandbox's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exe::{InitExe, Role};
use crate::sync::{Channel, Message, PodJob};

/// File names of the pins in the pod's directory.
const IPC_PIN: &str = "ns-ipc";
const UTS_PIN: &str = "ns-uts";

/// What the pod's namespaces should be.
#[derive(Debug, Clone)]
pub struct PodRequest<'a> {
    /// Where the pins go (the sandbox's bundle).
    pub dir: &'a Path,
    /// A new IPC namespace (false: the pod shares the host's, hostIPC).
    pub ipc: bool,
    /// A new UTS namespace with this hostname (None: the host's, hostNetwork).
    pub hostname: Option<&'a str>,
    /// The pod's network namespace (None: the host's).
    pub netns: Option<&'a Path>,
    /// The pod's sysctls (`linux.sysctls` of the PodSandboxConfig).
    pub sysctls: &'a BTreeMap<String, String>,
    /// A new PID namespace with tent's pod init as PID 1 (shareProcessNamespace).
    pub pid: bool,
}

/// The pinned namespaces of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNamespaces {
    /// The pinned IPC namespace (a path containers join), if the pod has its own.
    pub ipc: Option<PathBuf>,
    /// The pinned UTS namespace, if the pod has its own.
    pub uts: Option<PathBuf>,
    /// The host pid of the pod's init (PID 1 of its PID namespace), if it has one. The
    /// caller reaps it (it is reparented to the caller, a child subreaper).
    pub init: Option<i32>,
}

impl PodNamespaces {
    /// Creates and pins the pod's namespaces; on any error nothing is left.
    pub fn create(exe: &InitExe, req: &PodRequest<'_>) -> Result<PodNamespaces> {
        validate_sysctls(req)?;
        let mut pins = PodNamespaces {
            ipc: req.ipc.then(|| req.dir.join(IPC_PIN)),
            uts: req.hostname.map(|_| req.dir.join(UTS_PIN)),
            init: None,
        };
        if pins.ipc.is_none() && pins.uts.is_none() && req.sysctls.is_empty() && !req.pid {
            return Ok(pins);
        }
        let fast = req.sysctls.is_empty() && !req.pid;
        let result = pins.make_files().and_then(|()| {
            if fast {
                return pin_by_fork(pins.ipc.as_deref(), pins.uts.as_deref(), req.hostname)
                    .map(|()| None);
            }
            run_helper(
                exe,
                PodJob {
                    ipc_pin: pins.ipc.clone(),
                    uts_pin: pins.uts.clone(),
                    hostname: req.hostname.map(str::to_string),
                    netns: req.netns.map(Path::to_path_buf),
                    sysctls: req.sysctls.clone(),
                    pid: req.pid,
                },
            )
        });
        match result {
            Ok(init) => {
                pins.init = init;
                Ok(pins)
            }
            Err(e) => {
                if let Err(d) = pins.destroy() {
                    log::warn!("pod namespaces: {d}");
                }
                Err(e)
            }
        }
    }

    fn make_files(&self) -> Result<()> {
        for pin in self.ipc.iter().chain(&self.uts) {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(pin)
                .map_err(|e| Error::io("create namespace pin", pin, e))?;
        }
        Ok(())
    }

    /// Unmounts and removes the pins (idempotent).
    pub fn destroy(&self) -> Result<()> {
        let mut first = None;
        for pin in self.ipc.iter().chain(&self.uts) {
            if let Err(e) = remove_pin(pin) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Removes whatever pins a pod directory holds (`shim delete` after a crash).
pub fn remove_pins(dir: &Path) -> Result<()> {
    PodNamespaces {
        ipc: Some(dir.join(IPC_PIN)),
        uts: Some(dir.join(UTS_PIN)),
        init: None,
    }
    .destroy()
}

/// SIGKILLs `pid` if it is still a pod init (after a crash, from the state file): the
/// whole PID namespace ends with it.
pub fn kill_pod_init(pid: i32) -> Result<()> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|a| a == crate::exe::POD_MARKER.as_bytes());
    if !ours {
        return Ok(());
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::sys(format!("kill pod init {pid}"), e)),
    }
}

fn remove_pin(pin: &Path) -> Result<()> {
    match nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("unmount {}", pin.display()), e)),
    }
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove namespace pin", pin, e)),
    }
}

/// What [`pin_by_fork`]'s child failed at, written to its error pipe as `[step, errno]`.
const FORK_STEPS: [&str; 4] = [
    "create the pod's namespaces (unshare)",
    "set the pod's hostname",
    "pin the pod's IPC namespace",
    "pin the pod's UTS namespace",
];

/// The pod helper's work without a re-exec, for a pod that needs neither sysctls nor a PID
/// namespace: a raw fork (no atfork handlers) whose child only makes system calls on the
/// C strings built here (async-signal-safe: nothing of the multi-threaded parent's locks or
/// allocator is touched), unshares IPC/UTS, sets the hostname, bind-mounts its namespace
/// files onto the pins and exits. A failure comes back as `[step, errno]` on a pipe.
fn pin_by_fork(ipc: Option<&Path>, uts: Option<&Path>, hostname: Option<&str>) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cpath = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::Protocol(format!("NUL in pin path {}", p.display())))
    };
    let ipc_pin = ipc.map(cpath).transpose()?;
    let uts_pin = uts.map(cpath).transpose()?;
    let host = hostname.filter(|_| uts.is_some()).map(str::as_bytes);
    let mut flags: libc::c_long = libc::SIGCHLD as libc::c_long;
    if ipc_pin.is_some() {
        flags |= libc::CLONE_NEWIPC as libc::c_long;
    }
    if uts_pin.is_some() {
        flags |= libc::CLONE_NEWUTS as libc::c_long;
    }
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("pipe for the pod namespaces", e))?;
    let wr_fd = std::os::fd::AsRawFd::as_raw_fd(&wr);
    let bind = libc::MS_BIND as libc::c_ulong;
    // The reaper's waitpid(-1) must not collect this child before we wait for it.
    let guard = crate::exe::spawn_guard();
    // SAFETY: a fork (clone without a new stack or CLONE_VM) of a multi-threaded process:
    // the child runs only the raw system calls below, on memory prepared before the fork,
    // and leaves by exit_group; it never returns into Rust code of the parent.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid == 0 {
        // SAFETY: the child: raw system calls on valid pointers, then _exit.
        unsafe {
            let fail = |step: i32| -> ! {
                let report = [step, *libc::__errno_location()];
                libc::write(
                    wr_fd,
                    report.as_ptr().cast(),
                    std::mem::size_of_val(&report),
                );
                libc::_exit(1)
            };
            if let Some(h) = host {
                if libc::sethostname(h.as_ptr().cast(), h.len()) != 0 {
                    fail(1);
                }
            }
            if let Some(pin) = &ipc_pin {
                let src = c"/proc/self/ns/ipc";
                if libc::mount(
                    src.as_ptr(),
                    pin.as_ptr(),
                    std::ptr::null(),
                    bind,
                    std::ptr::null(),
                ) != 0
                {
                    fail(2);
                }
            }
            if let Some(pin) = &uts_pin {
                let src = c"/proc/self/ns/uts";
                if libc::mount(
                    src.as_ptr(),
                    pin.as_ptr(),
                    std::ptr::null(),
                    bind,
                    std::ptr::null(),
                ) != 0
                {
                    fail(3);
                }
            }
            libc::_exit(0)
        }
    }
    if pid < 0 {
        let e = nix::errno::Errno::last();
        drop(guard);
        return Err(Error::sys(FORK_STEPS[0], e));
    }
    drop(wr);
    let child = nix::unistd::Pid::from_raw(pid as i32);
    let status = loop {
        match nix::sys::wait::waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    drop(guard);
    let status = status.map_err(|e| Error::sys("wait for the pod namespaces' child", e))?;
    if status == nix::sys::wait::WaitStatus::Exited(child, 0) {
        return Ok(());
    }
    let mut report = [0u8; 8];
    let n = nix::unistd::read(&rd, &mut report).unwrap_or(0);
    if n != report.len() {
        // No report: the clone itself failed in the child's setup (unshare).
        return Err(Error::Protocol(format!(
            "{}: the child ended with {status:?}",
            FORK_STEPS[0]
        )));
    }
    let step = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    let what = FORK_STEPS
        .get(step as usize)
        .copied()
        .unwrap_or(FORK_STEPS[0]);
    Err(Error::sys(what, nix::errno::Errno::from_raw(errno)))
}

/// runc's sysctl rules against the namespaces the pod will have, before anything exists.
fn validate_sysctls(req: &PodRequest<'_>) -> Result<()> {
    if req.sysctls.is_empty() {
        return Ok(());
    }
    let mut namespaces = vec![serde_json::json!({"type": "mount"})];
    if req.ipc {
        namespaces.push(serde_json::json!({"type": "ipc"}));
    }
    if req.hostname.is_some() {
        namespaces.push(serde_json::json!({"type": "uts"}));
    }
    if let Some(netns) = req.netns {
        namespaces.push(serde_json::json!({"type": "network", "path": netns}));
    }
    crate::sysctl::validate(&sysctl_spec(req.sysctls, namespaces)?).map_err(|e| match e {
        Error::InvalidSpec { field, reason } => Error::InvalidSpec {
            field: field.replace("linux.sysctl", "linux.sysctls"),
            reason,
        },
        other => other,
    })
}

/// A spec carrying only `sysctls` and `namespaces`, for the sysctl module's rules.
pub(crate) fn sysctl_spec(
    sysctls: &BTreeMap<String, String>,
    namespaces: Vec<serde_json::Value>,
) -> Result<oci_spec::runtime::Spec> {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {"namespaces": namespaces, "sysctl": sysctls},
    }))
    .map_err(|e| Error::spec("linux.sysctls", e.to_string()))
}

/// Runs the pod helper; the pod init's pid when it forked one.
fn run_helper(exe: &InitExe, job: PodJob) -> Result<Option<i32>> {
    let (ch, child_end) = Channel::pair()?;
    exe.spawn(Role::Pod, child_end, None, None)?;
    ch.send(&Message::Pod(Box::new(job)), &[])?;
    match ch.recv()? {
        Some((Message::Ready, _)) => Ok(None),
        Some((Message::PodInit(pid), _)) => Ok(Some(pid)),
        Some((Message::Error { step, cause, kind }, _)) => Err(Error::Pod { step, cause, kind }),
        Some((other, _)) => Err(Error::Protocol(format!(
            "pod helper: unexpected message {other:?}"
        ))),
        None => Err(Error::Protocol(
            "the pod helper exited without a report".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fork path (no sysctls, no PID namespace): both pins are namespaces other than
    /// ours, the UTS one has the pod's hostname, and destroy leaves no mount or file.
    #[test]
    fn common_pod_is_pinned_without_the_helper() -> Result<()> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: needs root (namespaces, mounts)");
            return Ok(());
        }
        let dir = std::env::temp_dir().join(format!("tent-pod-fork-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
        let exe = InitExe::seal_current()?;
        let none = BTreeMap::new();
        let ns = PodNamespaces::create(
            &exe,
            &PodRequest {
                dir: &dir,
                ipc: true,
                hostname: Some("tent-fork-pod"),
                netns: None,
                sysctls: &none,
                pid: false,
            },
        )?;
        let ino = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        for (pin, own) in [
            (&ns.ipc, "/proc/self/ns/ipc"),
            (&ns.uts, "/proc/self/ns/uts"),
        ] {
            let pin = pin.as_deref().expect("pinned");
            let (a, b) = (
                ino(pin).expect("stat pin"),
                ino(Path::new(own)).expect("stat own"),
            );
            assert_ne!(a, b, "{} is not a new namespace", pin.display());
        }
        let out = std::process::Command::new("nsenter")
            .arg(format!("--uts={}", dir.join(UTS_PIN).display()))
            .arg("hostname")
            .output()
            .expect("run nsenter");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tent-fork-pod");
        assert_eq!(ns.init, None);
        ns.destroy()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        assert!(!mounts.contains(&dir.display().to_string()), "{mounts}");
        assert!(!dir.join(IPC_PIN).exists() && !dir.join(UTS_PIN).exists());
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    }

    /// A mount that fails in the fork child comes back as the step and errno, and nothing
    /// is left (the pins are removed).
    #[test]
    fn a_failing_pin_is_reported_by_step() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: needs root");
            return;
        }
        let e = pin_by_fork(Some(Path::new("/nonexistent/tent-pin")), None, None)
            .expect_err("a pin that does not exist");
        let msg = e.to_string();
        assert!(msg.contains("pin the pod's IPC namespace"), "{msg}");
        assert!(
            msg.contains("ENOENT") || msg.contains("No such file"),
            "{msg}"
        );
    }

    #[test]
    fn sysctls_outside_the_pods_namespaces_are_refused_by_name() {
        let dir = Path::new("/nonexistent");
        let sysctls = BTreeMap::from([("kernel.core_pattern".to_string(), "|/x".to_string())]);
        let req = PodRequest {
            dir,
            ipc: true,
            hostname: Some("h"),
            netns: None,
            sysctls: &sysctls,
            pid: false,
        };
        let e = validate_sysctls(&req).expect_err("host sysctl");
        assert!(
            e.to_string()
                .contains("linux.sysctls[\"kernel.core_pattern\"]"),
            "{e}"
        );
        let shm = BTreeMap::from([("kernel.shmmni".to_string(), "100".to_string())]);
        let host_ipc = PodRequest {
            ipc: false,
            sysctls: &shm,
            ..req.clone()
        };
        assert!(validate_sysctls(&host_ipc).is_err());
        let own_ipc = PodRequest {
            sysctls: &shm,
            ..req
        };
        validate_sysctls(&own_ipc).expect("IPC sysctl in the pod's IPC namespace");
    }
}
