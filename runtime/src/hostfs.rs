//! Host-side mounts of containerd's rootfs (`CreateTaskRequest.rootfs`) on
//! `<bundle>/rootfs`, and undoing them.
//!
//! These mounts happen in the caller's (the host's) mount namespace, so a
//! target below the rootfs is resolved inside it with `openat2(RESOLVE_IN_ROOT)`
//! and mounted through `/proc/self/fd/N`: a symlink in an image layer mounted
//! earlier cannot redirect a later mount onto the host (CVE-2021-30465).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::stat::Mode;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};
use crate::mounts::parse_options;
use crate::RootfsMount;

/// Mounts each entry (target relative to `rootfs`, empty = `rootfs` itself).
/// Returns the mount points in order; on failure unmounts what it mounted.
pub fn mount_rootfs(rootfs: &Path, mounts: &[RootfsMount]) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        match mount_entry(rootfs, m, i) {
            Ok(target) => done.push(target),
            Err(e) => {
                unmount_all(&done);
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// The mount point of `m`: `rootfs` itself, or a directory resolved (and
/// created) inside it. Returns an fd on it (None for `rootfs`) and its real path.
fn resolve_target(rootfs: &Path, m: &RootfsMount, i: usize) -> Result<(Option<OwnedFd>, PathBuf)> {
    let rel = crate::pathsafe::relative(Path::new(&m.target));
    if rel.as_os_str().is_empty() {
        std::fs::create_dir_all(rootfs)
            .map_err(|e| Error::io("create rootfs mount point", rootfs, e))?;
        return Ok((None, rootfs.to_path_buf()));
    }
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("rootfs[{i}]: open {}", rootfs.display()), e))?;
    let fd =
        crate::pathsafe::mkdir_all(&root, &rel, ResolveFlag::empty()).map_err(|e| match e {
            Error::Sys { step, source } => Error::sys(
                format!(
                    "rootfs[{i}].target {}: {step} (inside {})",
                    m.target,
                    rootfs.display()
                ),
                source,
            ),
            other => other,
        })?;
    let real = std::fs::read_link(crate::pathsafe::fd_path(&fd))
        .map_err(|e| Error::io("resolve rootfs mount point", rootfs.join(&rel), e))?;
    Ok((Some(fd), real))
}

fn mount_entry(rootfs: &Path, m: &RootfsMount, i: usize) -> Result<PathBuf> {
    if m.target.split('/').any(|c| c == "..") {
        return Err(Error::spec(
            format!("rootfs[{i}].target"),
            format!("{:?} contains \"..\"", m.target),
        ));
    }
    let (fd, real) = resolve_target(rootfs, m, i)?;
    // Mount through the fd, not the path.
    let target = match &fd {
        Some(fd) => PathBuf::from(crate::pathsafe::fd_path(fd)),
        None => real.clone(),
    };
    // A remount must go to the new mount: reopen the target (inside the root).
    let reopen = || -> Result<(Option<OwnedFd>, PathBuf)> {
        if fd.is_none() {
            return Ok((None, real.clone()));
        }
        let (t, _) = resolve_target(rootfs, m, i)?;
        let p = t
            .as_ref()
            .map(|t| PathBuf::from(crate::pathsafe::fd_path(t)))
            .unwrap_or_else(|| real.clone());
        Ok((t, p))
    };
    let opts = parse_options(&m.options);
    let is_bind = opts.is_bind() || m.kind == "bind" || m.kind == "rbind";
    let what = || {
        format!(
            "rootfs[{i}]: mount {} {} on {}",
            m.kind,
            m.source,
            real.display()
        )
    };
    if is_bind {
        let mut flags = MsFlags::MS_BIND;
        if opts.is_recursive() || m.kind == "rbind" {
            flags |= MsFlags::MS_REC;
        }
        mount(
            Some(m.source.as_str()),
            &target,
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| Error::sys(what(), e))?;
        let remount = opts.remount_flags();
        if !remount.is_empty() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount;
            let (_keep, top) = reopen()?;
            if let Err(e) = mount(None::<&str>, &top, None::<&str>, flags, None::<&str>) {
                let _ = unmount(&real);
                return Err(Error::sys(what(), e));
            }
        }
    } else {
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        mount(
            Some(m.source.as_str()),
            &target,
            Some(m.kind.as_str()),
            opts.flags & !MsFlags::MS_REMOUNT,
            data,
        )
        .map_err(|e| Error::sys(what(), e))?;
    }
    Ok(real)
}

/// Unmounts `points` in reverse order, lazily; best effort.
pub fn unmount_all(points: &[PathBuf]) {
    for p in points.iter().rev() {
        let _ = unmount(p);
    }
}

/// Unmounts `path` if it is a mount point (lazily, so a busy mount goes too).
pub fn unmount(path: &Path) -> Result<()> {
    while is_mountpoint(path) {
        umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
            .map_err(|e| Error::sys(format!("unmount {}", path.display()), e))?;
    }
    Ok(())
}

/// True when `path` appears as a mount point in `/proc/self/mountinfo`.
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| crate::mounts::unescape_mountinfo(mp) == want)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_root_is_a_mountpoint() {
        assert!(super::is_mountpoint(std::path::Path::new("/")));
    }
}
