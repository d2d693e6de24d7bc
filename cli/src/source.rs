//! Where the tree comes from: a directory, a running container's root
//! (`/proc/<init pid>/root`), or an image's snapshot mounted read-only by
//! containerd.
//!
//! containerd is driven through `ctr`, its own client, which every
//! containerd install ships (1.6, 1.7 and 2.1 alike offer `task ls` and
//! `images mount`/`unmount --rm`). The containerd-client crate would talk gRPC
//! itself but brings tonic, prost, hyper, h2 and tower (and protoc at build
//! time) into an otherwise five-crate binary, for two calls.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// How to reach containerd.
#[derive(Debug, Clone)]
pub struct Containerd {
    pub ctr: OsString,
    pub address: OsString,
    pub namespace: String,
}

impl Containerd {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address")
            .arg(&self.address)
            .arg("--namespace")
            .arg(&self.namespace);
        c
    }

    pub fn run(&self, step: String, args: &[&std::ffi::OsStr]) -> Result<String> {
        let out = self.command().args(args).output().map_err(|e| Error::Io {
            step: "run",
            path: PathBuf::from(&self.ctr),
            source: e,
        })?;
        if !out.status.success() {
            return Err(Error::Containerd {
                step,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The init pid of container `id`'s task, from `ctr task ls`.
    pub fn task_pid(&self, id: &str) -> Result<i32> {
        let out = self.run(
            format!("list tasks in namespace {}", self.namespace),
            &["task".as_ref(), "ls".as_ref()],
        )?;
        for line in out.lines().skip(1) {
            let mut f = line.split_whitespace();
            if f.next() == Some(id) {
                if let Some(pid) = f.next().and_then(|p| p.parse::<i32>().ok()) {
                    if pid > 0 {
                        return Ok(pid);
                    }
                }
            }
        }
        Err(Error::Containerd {
            step: format!("container {id}"),
            detail: format!("no running task in namespace {}", self.namespace),
        })
    }
}

/// Opens a directory as the walk's root.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", path, e))
}

/// Opens `/proc/<pid>/root`, and proves the fd belongs to that process: a
/// pidfd taken first must still be alive after the open, so the pid cannot
/// have been reused in between.
pub fn open_proc_root(pid: i32) -> Result<OwnedFd> {
    open_proc_root_pidfd(pid).map(|(_, root)| root)
}

/// As [`open_proc_root`], and returns the pidfd too (readable when the
/// process exits).
pub fn open_proc_root_pidfd(pid: i32) -> Result<(OwnedFd, OwnedFd)> {
    let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(Error::sys("pidfd_open for", proc_root, nix::Error::last()));
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let root = open_dir(&proc_root)?;
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n != 0 {
        return Err(Error::sys(
            "the process exited while opening",
            proc_root,
            nix::Error::ESRCH,
        ));
    }
    Ok((pidfd, root))
}

/// An image's snapshot, mounted read-only by `ctr images mount` in a fresh
/// temporary directory; dropping it unmounts it, removes the snapshot and its
/// lease (`unmount --rm`) and the directory. SIGINT, SIGTERM and SIGHUP are
/// held while it lives, so an interrupted audit still cleans up (they are
/// delivered when it is dropped).
pub struct ImageMount {
    containerd: Containerd,
    dir: PathBuf,
    old_mask: libc::sigset_t,
}

impl ImageMount {
    pub fn new(c: &Containerd, image: &str, snapshotter: Option<&str>) -> Result<ImageMount> {
        // SAFETY: sigset operations on local, initialised sets.
        let old_mask = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            old
        };
        let dir = match make_temp_dir() {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: restores the mask saved above.
                unsafe {
                    libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut())
                };
                return Err(e);
            }
        };
        let m = ImageMount {
            containerd: c.clone(),
            dir,
            old_mask,
        };
        let mut args: Vec<&std::ffi::OsStr> = vec!["images".as_ref(), "mount".as_ref()];
        if let Some(s) = snapshotter {
            args.push("--snapshotter".as_ref());
            args.push(s.as_ref());
        }
        args.push(image.as_ref());
        args.push(m.dir.as_os_str());
        // On failure the drop removes whatever ctr had made.
        c.run(format!("mount image {image}"), &args)?;
        Ok(m)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ImageMount {
    fn drop(&mut self) {
        let args: [&std::ffi::OsStr; 4] = [
            "images".as_ref(),
            "unmount".as_ref(),
            "--rm".as_ref(),
            self.dir.as_os_str(),
        ];
        let mounted = is_mount_point(&self.dir);
        if let Err(e) = self
            .containerd
            .run(format!("unmount {}", self.dir.display()), &args)
        {
            if mounted {
                eprintln!("tent audit: {e}");
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("tent audit: remove {}: {e}", self.dir.display());
        }
        // SAFETY: restores the mask saved in new(); pending signals arrive now.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

fn make_temp_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    let mut template = base
        .join("tent-audit.XXXXXX")
        .into_os_string()
        .into_encoded_bytes();
    template.push(0);
    // SAFETY: template is a NUL-terminated, writable buffer ending in XXXXXX.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(Error::sys("mkdtemp in", base, nix::Error::last()));
    }
    template.pop();
    // SAFETY: the bytes came from an OsString and mkdtemp only replaced X's.
    Ok(PathBuf::from(unsafe {
        OsString::from_encoded_bytes_unchecked(template)
    }))
}
