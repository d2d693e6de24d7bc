//! The sealed in-memory copy of our own binary that every container init runs
//! from, so a container can never reopen and overwrite the host binary
//! (CVE-2019-5736), and how it is spawned and recognised.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio as StdStdio};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

use crate::error::{Error, Result};

/// argv[1] of a container init.
pub(crate) const INIT_MARKER: &str = "__tent_container_init__";
/// argv[1] of an exec's stage 1 (a new process in a running container).
pub(crate) const EXEC_MARKER: &str = "__tent_container_exec__";
/// argv[1] of a hook runner (runs one OCI hook in the runtime's namespaces).
pub(crate) const HOOK_MARKER: &str = "__tent_hook_runner__";
/// argv[1] of a pod helper (creates and pins a pod's namespaces).
pub(crate) const POD_MARKER: &str = "__tent_pod_helper__";
/// Environment variable naming the init's sync fd (always 0 at exec time).
pub(crate) const SYNC_FD_ENV: &str = "_TENT_INIT_SYNC_FD";

/// A sealed, read-only in-memory copy of the current executable. Cloning is
/// cheap (shared fd), so it can move into blocking tasks.
#[derive(Debug, Clone)]
pub struct InitExe {
    fd: Arc<OwnedFd>,
}

impl InitExe {
    /// A read-only handle on our own binary for every container init to run from.
    /// Do this once per process. Preferred: the binary seen through a lower-only
    /// (hence read-only) overlayfs, which costs no memory; a write through
    /// `/proc/<pid>/exe` then fails with EROFS. Fallback: a sealed memfd copy.
    pub fn seal_current() -> Result<InitExe> {
        match Self::read_only_overlay() {
            Ok(fd) => Ok(InitExe { fd: Arc::new(fd) }),
            Err(e) => {
                log::debug!(
                    "read-only overlay for our binary unavailable ({e}); using a sealed memfd copy"
                );
                Self::sealed_memfd()
            }
        }
    }

    /// Opens our binary through a private, lower-only overlay mount that is never
    /// attached anywhere (or is detached right after the open): the fd keeps the
    /// read-only view alive and nothing stays mounted.
    fn read_only_overlay() -> Result<OwnedFd> {
        let exe = std::fs::read_link("/proc/self/exe")
            .map_err(|e| Error::io("read link", "/proc/self/exe", e))?;
        let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
            return Err(Error::Unsupported(format!("binary path {}", exe.display())));
        };
        let dir_str = dir.to_string_lossy();
        if exe.to_string_lossy().ends_with(" (deleted)") || dir_str.contains([',', ':', '\\']) {
            return Err(Error::Unsupported(format!(
                "binary path {} for an overlay lowerdir",
                exe.display()
            )));
        }
        let fd = match detached::overlay(&dir_str, name) {
            Ok(fd) => fd,
            Err(e) => {
                log::debug!("detached overlay unavailable ({e}); mounting on a temporary dir");
                Self::overlay_on_temp_dir(&dir_str, name)?
            }
        };
        // Must really be read-only: refuse the handle otherwise.
        let probe = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        if probe.is_ok() {
            return Err(Error::Unsupported(
                "overlay view of our binary is writable".into(),
            ));
        }
        Ok(fd)
    }

    /// Kernels without the new mount API: mount on a temporary directory, open,
    /// detach. Costs three directories on the host file system per call.
    fn overlay_on_temp_dir(dir_str: &str, name: &OsStr) -> Result<OwnedFd> {
        let mnt = std::env::temp_dir().join(format!(".tent-exe-{}", std::process::id()));
        // Without an upper layer overlayfs wants two lower layers: add an empty one.
        let empty = mnt.join("empty");
        let merged = mnt.join("merged");
        std::fs::create_dir_all(&empty)
            .map_err(|e| Error::io("create", empty.display().to_string(), e))?;
        std::fs::create_dir_all(&merged)
            .map_err(|e| Error::io("create", merged.display().to_string(), e))?;
        let result = Self::mount_and_open(&merged, dir_str, &empty, name);
        let _ = std::fs::remove_dir(&merged);
        let _ = std::fs::remove_dir(&empty);
        let _ = std::fs::remove_dir(&mnt);
        result
    }

    fn mount_and_open(
        mnt: &std::path::Path,
        dir_str: &str,
        empty: &std::path::Path,
        name: &OsStr,
    ) -> Result<OwnedFd> {
        let mounted = nix::mount::mount(
            Some("overlay"),
            mnt,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOSUID,
            Some(format!("lowerdir={dir_str}:{}", empty.display()).as_str()),
        );
        let opened = mounted
            .map_err(|e| Error::sys("mount read-only overlay of our binary", e))
            .and_then(|()| {
                let file = File::open(mnt.join(name))
                    .map_err(|e| Error::io("open", mnt.join(name).display().to_string(), e));
                let _ = nix::mount::umount2(mnt, nix::mount::MntFlags::MNT_DETACH);
                file
            });
        Ok(OwnedFd::from(opened?))
    }

    /// Copies `/proc/self/exe` into a sealed memfd (costs the binary's size in memory).
    fn sealed_memfd() -> Result<InitExe> {
        let fd = memfd_create(
            "tent-init",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| Error::sys("memfd_create tent-init", e))?;
        let mut src =
            File::open("/proc/self/exe").map_err(|e| Error::io("open", "/proc/self/exe", e))?;
        let mut dst = File::from(fd);
        std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("copy", "/proc/self/exe", e))?;
        let fd = OwnedFd::from(dst);
        let seals = SealFlag::F_SEAL_SEAL
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals))
            .map_err(|e| Error::sys("seal tent-init memfd", e))?;
        Ok(InitExe { fd: Arc::new(fd) })
    }

    /// Spawns the container init (or, with `exec`, an exec's stage 1) with `sync`
    /// as its fd 0 and `stdout`/`stderr` as 1/2.
    /// std's spawn is async-signal-safe in the child; no code of ours runs there.
    pub(crate) fn spawn(
        &self,
        role: Role,
        sync: OwnedFd,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<u32> {
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let stdio = |fd: Option<OwnedFd>| fd.map(StdStdio::from).unwrap_or_else(StdStdio::null);
        let mut cmd = Command::new(&path);
        let (arg0, marker, what) = match role {
            Role::Init => ("tent-init", INIT_MARKER, "spawn container init"),
            Role::Exec => ("tent-exec", EXEC_MARKER, "spawn exec stage 1"),
            Role::Hook => ("tent-hook", HOOK_MARKER, "spawn hook runner"),
            Role::Pod => ("tent-pod", POD_MARKER, "spawn pod helper"),
        };
        cmd.arg0(arg0)
            .arg(marker)
            .env_clear()
            .env(SYNC_FD_ENV, "0")
            .stdin(StdStdio::from(sync))
            .stdout(stdio(stdout))
            .stderr(stdio(stderr));
        let spawned = {
            let _guard = spawn_guard();
            cmd.spawn()
        };
        let child = spawned.map_err(|e| Error::io(what, path, e))?;
        // The caller reaps globally; dropping `Child` neither waits nor kills.
        Ok(child.id())
    }
}

/// The binary's read-only overlay built with the new mount API (Linux 5.2+):
/// `fsopen`/`fsconfig`/`fsmount` give a mount that no namespace ever sees, so
/// there are no temporary directories, no mount-table events and no unmount.
mod detached {
    use std::ffi::{CString, OsStr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    use crate::error::{Error, Result};

    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 4;

    /// Wraps a syscall that returns a new fd.
    fn new_fd(what: &str, rc: libc::c_long) -> Result<OwnedFd> {
        if rc < 0 {
            return Err(Error::sys(what.to_string(), nix::errno::Errno::last()));
        }
        // SAFETY: the kernel just returned this fd; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
    }

    fn cstr(s: &[u8]) -> Result<CString> {
        CString::new(s).map_err(|_| Error::Unsupported("NUL in a mount option".into()))
    }

    /// A detached, read-only mount of file system `fstype` with string options.
    fn mount(fstype: &str, options: &[(&str, &[u8])]) -> Result<OwnedFd> {
        let fstype_c = cstr(fstype.as_bytes())?;
        // SAFETY: valid NUL-terminated string; returns a new fd or -1.
        let fs = new_fd(&format!("fsopen {fstype}"), unsafe {
            libc::syscall(libc::SYS_fsopen, fstype_c.as_ptr(), FSOPEN_CLOEXEC)
        })?;
        for (key, value) in options {
            let (k, v) = (cstr(key.as_bytes())?, cstr(value)?);
            // SAFETY: valid fs context fd and NUL-terminated strings.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    FSCONFIG_SET_STRING,
                    k.as_ptr(),
                    v.as_ptr(),
                    0,
                )
            };
            if rc < 0 {
                let e = nix::errno::Errno::last();
                return Err(Error::sys(format!("fsconfig {fstype} {key}"), e));
            }
        }
        // SAFETY: valid fs context fd; no pointers.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        if rc < 0 {
            let e = nix::errno::Errno::last();
            return Err(Error::sys(format!("fsconfig create {fstype}"), e));
        }
        let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        // SAFETY: valid fs context fd; no pointers.
        new_fd(&format!("fsmount {fstype}"), unsafe {
            libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
        })
    }

    /// Opens `dir/name` through a lower-only overlay of `dir`. Without an upper
    /// layer overlayfs wants two lower layers: the second is an empty tmpfs.
    pub(super) fn overlay(dir: &str, name: &OsStr) -> Result<OwnedFd> {
        let empty = mount("tmpfs", &[("size", b"4k")])?;
        let lower = format!("{dir}:/proc/self/fd/{}", empty.as_raw_fd());
        let view = mount("overlay", &[("lowerdir", lower.as_bytes())])?;
        let name_c = cstr(name.as_bytes())?;
        // SAFETY: valid dir fd and NUL-terminated relative name.
        let fd = unsafe {
            libc::openat(
                view.as_raw_fd(),
                name_c.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        new_fd(
            &format!("open {dir}/{} in the overlay", name.to_string_lossy()),
            fd as libc::c_long,
        )
    }
}

/// Serialises `Command::spawn` against a caller's global `waitpid(-1)` reaper.
///
/// When `execve` fails in the child, std's `spawn` reaps that child itself and
/// asserts that its `wait` succeeds; a reaper that collected the child first makes
/// std panic. Spawners hold the read side for the length of `spawn`; a reaper holds
/// the write side while it calls `waitpid(-1)`.
static SPAWN_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held around `Command::spawn` (see [`reaper_guard`]).
pub fn spawn_guard() -> std::sync::RwLockReadGuard<'static, ()> {
    SPAWN_LOCK.read().unwrap_or_else(|p| p.into_inner())
}

/// Held by a global reaper around its `waitpid(-1)` calls, so it never collects a
/// child that std's `spawn` is about to wait for.
pub fn reaper_guard() -> std::sync::RwLockWriteGuard<'static, ()> {
    SPAWN_LOCK.write().unwrap_or_else(|p| p.into_inner())
}

/// True when this process was started as the container init (checked first in `main`).
pub fn is_init_invocation() -> bool {
    invocation_is(INIT_MARKER)
        || invocation_is(EXEC_MARKER)
        || invocation_is(HOOK_MARKER)
        || invocation_is(POD_MARKER)
}

/// What a spawned re-exec of our binary becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Init,
    Exec,
    Hook,
    Pod,
}

/// True when argv[1] is `marker` and the sync fd is announced.
pub(crate) fn invocation_is(marker: &str) -> bool {
    std::env::args_os().nth(1).as_deref() == Some(OsStr::new(marker))
        && std::env::var_os(SYNC_FD_ENV).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_view_is_read_only_and_leaves_no_mount() -> Result<()> {
        check_view(InitExe::read_only_overlay)
    }

    #[test]
    fn fallback_overlay_view_is_read_only_and_leaves_no_mount() -> Result<()> {
        check_view(|| {
            let exe = std::fs::read_link("/proc/self/exe")
                .map_err(|e| Error::io("read link", "/proc/self/exe", e))?;
            let dir = exe.parent().map(|d| d.to_string_lossy().into_owned());
            let name = exe.file_name().map(|n| n.to_os_string());
            let (Some(dir), Some(name)) = (dir, name) else {
                return Err(Error::Unsupported("binary path".into()));
            };
            InitExe::overlay_on_temp_dir(&dir, &name)
        })
    }

    fn check_view(make: impl FnOnce() -> Result<OwnedFd>) -> Result<()> {
        let before = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read", "mountinfo", e))?;
        let fd = make()?;
        let after = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read", "mountinfo", e))?;
        assert_eq!(
            before.lines().count(),
            after.lines().count(),
            "overlay mount left behind"
        );
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect_err("writable");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        // Same bytes as the real binary.
        let real = std::fs::metadata("/proc/self/exe").map_err(|e| Error::io("stat", "exe", e))?;
        let seen = std::fs::metadata(&path).map_err(|e| Error::io("stat", path.clone(), e))?;
        assert_eq!(real.len(), seen.len());
        Ok(())
    }

    #[test]
    fn sealed_copy_is_read_only() -> Result<()> {
        let exe = InitExe::sealed_memfd()?;
        let seals =
            fcntl(&*exe.fd, FcntlArg::F_GET_SEALS).map_err(|e| Error::sys("get seals", e))?;
        let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        assert_eq!(seals & want, want);
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", exe.fd.as_raw_fd()));
        if let Ok(mut f) = w {
            use std::io::Write;
            assert!(f.write_all(b"x").is_err(), "sealed memfd accepted a write");
        }
        Ok(())
    }
}
