//! Path safety: every path tent opens or creates on behalf of a container is
//! resolved through a file descriptor, never by string, so a symlink planted in
//! an image (or swapped in by a race) cannot lead outside the root, and a mount
//! over part of `/proc` cannot redirect a write. Used by the container's own
//! mounts (`rootfs.rs`), containerd's rootfs mounts on the host
//! (`hostfs.rs`), sysctls and process setup (`oom_score_adj`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode};

use crate::error::{Error, Result};

/// `/proc/self/fd/N`: the magic link mount(2) follows to the fd's exact dentry.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Path relative to the root, without `/`, `.` or `..` components.
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Opens `rel` inside `root` (symlinks resolved as if `root` were `/`).
pub fn open_in_root(
    root: &OwnedFd,
    rel: &Path,
    flags: OFlag,
    extra: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(
        root,
        rel,
        OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra),
    )
}

/// Creates the directory `rel` (and parents) inside `root`; returns an O_PATH fd.
/// Every step is resolved inside `root`, so a symlink (planted, or swapped in
/// by a race) can never make it create or open anything outside
/// (CVE-2021-30465, CVE-2024-45310).
pub fn mkdir_all(root: &OwnedFd, rel: &Path, extra: ResolveFlag) -> Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let mut cur = open_in_root(root, Path::new(""), flags, extra)
        .map_err(|e| Error::sys("open container root", e))?;
    let mut prefix = PathBuf::new();
    for comp in rel.components() {
        prefix.push(comp);
        cur = match open_in_root(root, &prefix, flags, extra) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(&cur, comp.as_os_str(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::sys(format!("mkdir {}", prefix.display()), e)),
                }
                open_in_root(root, &prefix, flags, extra)
                    .map_err(|e| Error::sys(format!("open {}", prefix.display()), e))?
            }
            Err(e) => return Err(Error::sys(format!("open {}", prefix.display()), e)),
        };
    }
    Ok(cur)
}

/// Ensures a mount target exists inside `root` (a directory, or an empty file
/// when `file`), and returns an O_PATH fd on it.
pub fn ensure_target(
    root: &OwnedFd,
    rel: &Path,
    file: bool,
    extra: ResolveFlag,
) -> Result<OwnedFd> {
    if !file {
        return mkdir_all(root, rel, extra);
    }
    match open_in_root(root, rel, OFlag::O_PATH, extra) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("open {}", rel.display()), e)),
    }
    let parent = mkdir_all(root, rel.parent().unwrap_or(Path::new("")), extra)?;
    let name = rel.file_name().unwrap_or_default();
    match openat(
        &parent,
        name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Error::sys(format!("create {}", rel.display()), e)),
    }
    open_in_root(root, rel, OFlag::O_PATH, extra)
        .map_err(|e| Error::sys(format!("open {}", rel.display()), e))
}

/// A handle on the root of the container's procfs with nothing mounted on top
/// of anything below it: a non-recursive `open_tree(OPEN_TREE_CLONE)` copy of
/// `/proc` (over-mounts are not copied), verified to be a procfs root. Without
/// `open_tree`, `/proc` itself (then [`open_proc`] refuses to cross a mount).
fn proc_root() -> Result<OwnedFd> {
    let path = c"/proc";
    // SAFETY: open_tree with a valid path; a returned fd is ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    let fd = if rc >= 0 {
        // SAFETY: open_tree just returned this new fd.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(rc as i32) }
    } else {
        nix::fcntl::open(
            "/proc",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open /proc", e))?
    };
    let fs = nix::sys::statfs::fstatfs(&fd).map_err(|e| Error::sys("statfs /proc", e))?;
    let st = fstat(&fd).map_err(|e| Error::sys("stat /proc", e))?;
    // PROC_ROOT_INO is 1.
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC || st.st_ino != 1 {
        return Err(Error::spec("mounts", "/proc is not the root of a procfs"));
    }
    Ok(fd)
}

/// Opens `rel` (e.g. `sys/kernel/hostname`, `1/oom_score_adj`) on a verified
/// procfs handle: no symlinks, no magic links, no mount crossings, so a mount
/// over part of `/proc` cannot redirect the write (CVE-2025-52881).
pub fn open_proc(rel: &str, flags: OFlag) -> Result<OwnedFd> {
    let what = || format!("/proc/{rel}");
    let root = proc_root()?;
    let fd = openat2(
        &root,
        rel,
        OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        ),
    )
    .map_err(|e| match e {
        Errno::EXDEV => Error::spec(
            "mounts",
            format!("refusing to write {}: something is mounted over it", what()),
        ),
        e => Error::sys(format!("open {}", what()), e),
    })?;
    let fs =
        nix::sys::statfs::fstatfs(&fd).map_err(|e| Error::sys(format!("statfs {}", what()), e))?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(Error::spec(
            "mounts",
            format!("{} is not on procfs", what()),
        ));
    }
    Ok(fd)
}
