//! Host-side mounts of containerd's rootfs (`CreateTaskRequest.rootfs`) on
//! `<bundle>/rootfs`, and undoing them.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};
use crate::mounts::parse_options;
use crate::RootfsMount;

/// Mounts each entry (target relative to `rootfs`, empty = `rootfs` itself).
/// Returns the mount points in order; on failure unmounts what it mounted.
pub fn mount_rootfs(rootfs: &Path, mounts: &[RootfsMount]) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_entry(rootfs, m, i) {
            unmount_all(&done);
            return Err(e);
        }
        let target = target_of(rootfs, m);
        done.push(target);
    }
    Ok(done)
}

fn target_of(rootfs: &Path, m: &RootfsMount) -> PathBuf {
    let t = m.target.trim_start_matches('/');
    if t.is_empty() {
        rootfs.to_path_buf()
    } else {
        rootfs.join(t)
    }
}

fn mount_entry(rootfs: &Path, m: &RootfsMount, i: usize) -> Result<()> {
    if m.target.split('/').any(|c| c == "..") {
        return Err(Error::spec(
            format!("rootfs[{i}].target"),
            format!("{:?} contains \"..\"", m.target),
        ));
    }
    let target = target_of(rootfs, m);
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::io("create rootfs mount point", &target, e))?;
    let opts = parse_options(&m.options);
    let is_bind = opts.is_bind() || m.kind == "bind" || m.kind == "rbind";
    let what = || {
        format!(
            "rootfs[{i}]: mount {} {} on {}",
            m.kind,
            m.source,
            target.display()
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
            if let Err(e) = mount(None::<&str>, &target, None::<&str>, flags, None::<&str>) {
                let _ = umount2(&target, MntFlags::MNT_DETACH);
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
    Ok(())
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
        umount2(path, MntFlags::MNT_DETACH)
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
        .any(|mp| unescape(mp) == want)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescape_mountinfo() {
        assert_eq!(super::unescape("/a\\040b"), "/a b");
        assert_eq!(super::unescape("/plain"), "/plain");
        assert!(super::is_mountpoint(std::path::Path::new("/")));
    }
}
