//! Mount option strings (as in `config.json` and containerd's rootfs mounts) →
//! mount(2) flags, propagation flags and the data string.

use nix::mount::MsFlags;

/// A parsed mount option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the initial mount (and the remount of a bind).
    pub flags: MsFlags,
    /// Flags that a bind mount can only get through a remount.
    pub clear: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
    /// `rro`: the mount and every mount below it read-only (`mount_setattr`).
    pub recursive_readonly: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            recursive_readonly: false,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn is_recursive(&self) -> bool {
        self.flags.contains(MsFlags::MS_REC)
    }

    /// Flags beyond bind/rec that a bind mount needs a remount for.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }
}

/// Every option that is a mount(2) flag: (name, sets (else clears) it, flags).
/// Also what `features` lists (with [`PROPAGATION`]), so the two cannot drift.
pub(crate) const FLAG_OPTIONS: &[(&str, bool, MsFlags)] = &[
    ("ro", true, MsFlags::MS_RDONLY),
    ("rw", false, MsFlags::MS_RDONLY),
    ("nosuid", true, MsFlags::MS_NOSUID),
    ("suid", false, MsFlags::MS_NOSUID),
    ("nodev", true, MsFlags::MS_NODEV),
    ("dev", false, MsFlags::MS_NODEV),
    ("noexec", true, MsFlags::MS_NOEXEC),
    ("exec", false, MsFlags::MS_NOEXEC),
    ("sync", true, MsFlags::MS_SYNCHRONOUS),
    ("async", false, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", true, MsFlags::MS_DIRSYNC),
    ("remount", true, MsFlags::MS_REMOUNT),
    ("mand", true, MsFlags::MS_MANDLOCK),
    ("nomand", false, MsFlags::MS_MANDLOCK),
    ("atime", false, MsFlags::MS_NOATIME),
    ("noatime", true, MsFlags::MS_NOATIME),
    ("diratime", false, MsFlags::MS_NODIRATIME),
    ("nodiratime", true, MsFlags::MS_NODIRATIME),
    ("relatime", true, MsFlags::MS_RELATIME),
    ("norelatime", false, MsFlags::MS_RELATIME),
    ("strictatime", true, MsFlags::MS_STRICTATIME),
    ("nostrictatime", false, MsFlags::MS_STRICTATIME),
    ("lazytime", true, MsFlags::MS_LAZYTIME),
    ("nolazytime", false, MsFlags::MS_LAZYTIME),
    ("iversion", true, MsFlags::MS_I_VERSION),
    ("noiversion", false, MsFlags::MS_I_VERSION),
    ("bind", true, MsFlags::MS_BIND),
    ("rbind", true, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    // No flag: the kernel's defaults.
    ("defaults", true, MsFlags::empty()),
];

/// Propagation options and their flags.
pub(crate) const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Parses OCI/fstab-style options; unknown ones go to `data` as runc does.
pub fn parse_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        match FLAG_OPTIONS.iter().find(|(name, _, _)| *name == opt) {
            Some((_, true, f)) => {
                out.flags |= *f;
                out.clear &= !*f;
            }
            Some((_, false, f)) => {
                out.flags &= !*f;
                out.clear |= *f;
            }
            None => {
                if let Some(p) = propagation(opt) {
                    out.propagation.push(p);
                } else if opt == RECURSIVE_READONLY {
                    out.recursive_readonly = true;
                } else if !opt.is_empty() && !UNSUPPORTED.contains(&opt) {
                    data.push(opt);
                }
            }
        }
    }
    out.data = data.join(",");
    out
}

/// Recursive read-only, applied with `mount_setattr(AT_RECURSIVE)` (Linux 5.12).
pub(crate) const RECURSIVE_READONLY: &str = "rro";

/// Options that are not for the kernel and that tent does not implement: refused at
/// create (`spec::validate`), never passed on as data or dropped.
pub(crate) const UNSUPPORTED: &[&str] = &["tmpcopyup", "idmap", "ridmap"];

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount at `fd` (an `O_PATH` fd of its root) and every mount below it
/// read-only, as the `rro` option asks.
pub fn set_recursive_readonly(fd: std::os::fd::BorrowedFd) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid fd, a NUL-terminated empty path, a live struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// Whether this kernel has `mount_setattr` (what `rro` needs): EBADF for a bad fd
/// means it exists, ENOSYS that it does not.
pub fn recursive_readonly_supported() -> bool {
    // SAFETY: an invalid fd and null attr: the kernel only validates and fails.
    let r = unsafe { libc::syscall(libc::SYS_mount_setattr, -1, c"".as_ptr(), 0, 0usize, 0usize) };
    !(r < 0 && nix::Error::last() == nix::Error::ENOSYS)
}

/// Maps a propagation option to its flags.
pub fn propagation(opt: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|(name, _)| *name == opt)
        .map(|(_, f)| *f)
}

/// `linux.rootfsPropagation` as mount flags (checked at create).
pub fn root_propagation(spec: &oci_spec::runtime::Spec) -> crate::error::Result<Option<MsFlags>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        .map(|p| {
            propagation(p).ok_or_else(|| {
                crate::error::Error::spec(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                )
            })
        })
        .transpose()
}

/// A mountinfo field: the kernel escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let mut rest = s.as_bytes();
    let mut out = Vec::with_capacity(rest.len());
    while let Some((&c, tail)) = rest.split_first() {
        match (c, tail) {
            (b'\\', [d0 @ b'0'..=b'7', d1 @ b'0'..=b'7', d2 @ b'0'..=b'7', after @ ..]) => {
                // Three octal digits: at most 0o777, which wraps as the kernel's byte does.
                out.push(
                    (d0 - b'0')
                        .wrapping_mul(64)
                        .wrapping_add((d1 - b'0') * 8 + (d2 - b'0')),
                );
                rest = after;
            }
            _ => {
                out.push(c);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        // Not an escape: a backslash without three octal digits stays.
        assert_eq!(unescape_mountinfo("/a\\04"), "/a\\04");
        assert_eq!(unescape_mountinfo("/a\\089\\"), "/a\\089\\");
        assert_eq!(unescape_mountinfo("\\011\\012"), "\t\n");
    }

    #[test]
    fn proc_and_tmpfs() {
        let o = parse_options(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.is_bind());
    }

    #[test]
    fn ro_rbind_with_propagation() {
        let o = parse_options(&["rbind", "ro", "nosuid", "rslave"]);
        assert!(o.is_bind() && o.is_recursive());
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, "");
    }

    #[test]
    fn later_option_wins() {
        let o = parse_options(&["ro", "rw", "noexec", "exec", "tmpcopyup"]);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.data, "");
    }

    #[test]
    fn overlay_data() {
        let o = parse_options(&["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l"]);
        assert_eq!(o.data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
    }
}
