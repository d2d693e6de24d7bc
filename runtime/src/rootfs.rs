//! The container's file system, set up by the init (stage 2) in its new mount
//! namespace: propagation, rootfs bind, spec mounts, devices, pivot_root,
//! sysctls, read-only and masked paths, read-only root.
//!
//! Mount targets are resolved with `openat2(RESOLVE_IN_ROOT)` and mounted through
//! `/proc/self/fd/N`, so a symlink planted in the image cannot redirect a mount
//! to the host (CVE-2021-30465, CVE-2024-45310, CVE-2019-19921).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fchdir, pivot_root, symlinkat, unlinkat, UnlinkatFlags};
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use crate::error::{Error, Result};
use crate::mounts::{parse_options, root_propagation};
use crate::pathsafe::{ensure_target, fd_path, mkdir_all, open_in_root, relative};
use crate::sync::InitConfig;

const NONE: Option<&str> = None;

fn mnt(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    mount(source, target, fstype, flags, data).map_err(|e| Error::sys(what(), e))
}

/// Flags of the mount at `path` that a bind remount must keep (else EPERM).
fn kept_flags(path: &str) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    out
}

/// Everything from propagation of `/` up to (not including) pivot_root.
pub fn prepare(cfg: &InitConfig, spec: &Spec) -> Result<OwnedFd> {
    let linux = spec.linux().as_ref();
    // As runc: `/` rslave unless the spec says otherwise, so host mounts made
    // later reach `rslave` volumes (HostToContainer) and nothing flows back.
    let prop = root_propagation(spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mnt(NONE, "/", NONE, prop, NONE, || {
        "set propagation of /".into()
    })?;
    // pivot_root refuses a root whose parent mount is shared (EINVAL), and a
    // bind onto a shared rootfs would propagate to the host's copy of it.
    parent_mount_private(Path::new(&cfg.rootfs))?;
    mnt(
        Some(&cfg.rootfs),
        &cfg.rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
        || format!("bind rootfs {}", cfg.rootfs),
    )?;
    if cfg.rootfs_nosuid_nodev {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | kept_flags(&cfg.rootfs);
        mnt(NONE, &cfg.rootfs, NONE, flags, NONE, || {
            format!("remount rootfs {} nosuid,nodev", cfg.rootfs)
        })?;
    }
    let root = nix::fcntl::open(
        cfg.rootfs.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open rootfs {}", cfg.rootfs), e))?;

    // Checked at create: set only where SELinux is enabled.
    let mount_label = linux
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty());
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        mount_one(&root, cfg, m, mount_label).map_err(|e| match e {
            Error::Sys { step, source } => Error::sys(
                format!("mounts[{i}] ({}): {step}", m.destination().display()),
                source,
            ),
            other => other,
        })?;
    }
    let dev_mounted = mounts.iter().any(|m| m.destination() == Path::new("/dev"));
    setup_dev(&root, spec, dev_mounted)?;
    Ok(root)
}

/// Makes the mount `path` is on (the nearest mount point at or above it)
/// private, not recursively (runc's `rootfsParentMountPrivate`).
fn parent_mount_private(path: &Path) -> Result<()> {
    let mut p = path;
    loop {
        match mount(NONE, p, NONE, MsFlags::MS_PRIVATE, NONE) {
            Ok(()) => return Ok(()),
            // Not a mount point: try the directory above.
            Err(Errno::EINVAL) if p != Path::new("/") => {
                p = p.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => {
                return Err(Error::sys(
                    format!("make the mount of {} private", p.display()),
                    e,
                ))
            }
        }
    }
}

/// After pivot_root: `linux.rootfsPropagation` for the new `/` (runc applies it
/// here, so a shared root never shares the host's rootfs mount).
pub fn apply_root_propagation(spec: &Spec) -> Result<()> {
    match root_propagation(spec)? {
        Some(flags) => mnt(NONE, "/", NONE, flags, NONE, || {
            "linux.rootfsPropagation: set propagation of /".into()
        }),
        None => Ok(()),
    }
}

/// Kernel file systems, and the directories the runtime itself sets up, must be
/// plain directories of the rootfs: no symlink anywhere on the way, not even
/// one resolving inside the root (CVE-2019-19921, CVE-2023-27561, CVE-2026-41579).
const PLAIN_DIRS: &[&str] = &["proc", "sys", "dev", "dev/pts", "dev/shm", "dev/mqueue"];
const PLAIN_TYPES: &[&str] = &["proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"];

fn must_be_plain(dest: &Path, typ: &str) -> bool {
    PLAIN_TYPES.contains(&typ) || PLAIN_DIRS.iter().any(|d| dest == Path::new(d))
}

/// Maps the errors of a `RESOLVE_NO_SYMLINKS` walk to a refusal naming `what`.
fn refuse_symlink(what: String) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        Error::Sys {
            source: Errno::ELOOP | Errno::ENOTDIR,
            ..
        } => Error::spec(
            "mounts",
            format!("refusing to {what}: not a plain directory (symlink?)"),
        ),
        other => other,
    }
}

/// File systems that take no SELinux `context=` option from `linux.mountLabel`.
const UNLABELLED: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "mqueue"];

fn mount_one(root: &OwnedFd, cfg: &InitConfig, m: &Mount, label: Option<&str>) -> Result<()> {
    let dest = relative(m.destination());
    let typ = m.typ().as_deref().unwrap_or("none");
    let mut opts = parse_options(m.options().as_deref().unwrap_or_default());
    if let Some(label) = label.filter(|_| !opts.is_bind() && !UNLABELLED.contains(&typ)) {
        let context = format!("context=\"{label}\"");
        opts.data = if opts.data.is_empty() {
            context
        } else {
            format!("{},{context}", opts.data)
        };
    }
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let strict = if must_be_plain(&dest, typ) {
        ResolveFlag::RESOLVE_NO_SYMLINKS
    } else {
        ResolveFlag::empty()
    };
    let refuse = || refuse_symlink(format!("mount {typ} on {}", m.destination().display()));

    if opts.is_bind() {
        let src = m.source().as_deref().unwrap_or(Path::new(""));
        let src = if src.is_absolute() {
            src.to_path_buf()
        } else {
            Path::new(&cfg.bundle).join(src)
        };
        let meta = std::fs::metadata(&src).map_err(|e| Error::io("stat bind source", &src, e))?;
        let target = ensure_target(root, &dest, !meta.is_dir(), strict).map_err(refuse())?;
        let src = src.to_string_lossy();
        mnt(
            Some(&src),
            &fd_path(&target),
            NONE,
            opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
            NONE,
            || format!("bind {src}"),
        )?;
        let remount = opts.remount_flags();
        if !remount.is_empty() {
            // Reopen: the old fd still points below the new mount.
            let top = open_in_root(root, &dest, OFlag::O_PATH, strict)
                .map_err(|e| Error::sys("reopen bind target", e))?;
            let p = fd_path(&top);
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount | kept_flags(&p);
            mnt(NONE, &p, NONE, flags, NONE, || {
                format!("remount bind {src}")
            })?;
        }
    } else {
        match typ {
            "proc" | "sysfs" => {
                // Refuse any symlink on the way (CVE-2019-19921, CVE-2023-27561).
                let target = mkdir_all(root, &dest, strict).map_err(refuse())?;
                mnt(
                    Some(typ),
                    &fd_path(&target),
                    Some(typ),
                    opts.flags,
                    data,
                    || format!("mount {typ}"),
                )?;
            }
            "cgroup" => mount_cgroup(root, cfg, &dest, &opts).map_err(refuse())?,
            _ => {
                let target = mkdir_all(root, &dest, strict).map_err(refuse())?;
                let src = m
                    .source()
                    .as_deref()
                    .map(|s| s.to_string_lossy().into_owned());
                mnt(
                    Some(src.as_deref().unwrap_or(typ)),
                    &fd_path(&target),
                    Some(typ),
                    opts.flags & !MsFlags::MS_REMOUNT,
                    data,
                    || format!("mount {typ}"),
                )?;
            }
        }
    }
    if !opts.propagation.is_empty() {
        let top = open_in_root(root, &dest, OFlag::O_PATH, strict)
            .map_err(|e| Error::sys("reopen mount target", e))?;
        for p in &opts.propagation {
            mnt(NONE, &fd_path(&top), NONE, *p, NONE, || {
                "set propagation".into()
            })?;
        }
    }
    if opts.recursive_readonly {
        let top = open_in_root(root, &dest, OFlag::O_PATH, strict)
            .map_err(|e| Error::sys("reopen mount target", e))?;
        crate::mounts::set_recursive_readonly(top.as_fd()).map_err(|e| {
            Error::sys(
                format!(
                    "rro: make {} and its submounts read-only",
                    m.destination().display()
                ),
                e,
            )
        })?;
    }
    Ok(())
}

/// A `cgroup` mount: cgroup2 on v2; on v1 a tmpfs with a bind of the container's
/// cgroup per hierarchy, read-only when asked, as runc does.
fn mount_cgroup(
    root: &OwnedFd,
    cfg: &InitConfig,
    dest: &Path,
    opts: &crate::mounts::MountOptions,
) -> Result<()> {
    let target = mkdir_all(root, dest, ResolveFlag::RESOLVE_NO_SYMLINKS)?;
    let base = opts.flags & !(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT);
    if cfg.cgroup_v2 {
        return mnt(
            Some("cgroup2"),
            &fd_path(&target),
            Some("cgroup2"),
            opts.flags & !MsFlags::MS_REMOUNT,
            NONE,
            || "mount cgroup2".into(),
        );
    }
    mnt(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
        || "mount tmpfs for cgroup".into(),
    )?;
    for b in &cfg.cgroup_v1 {
        let sub = dest.join(&b.name);
        let t = mkdir_all(root, &sub, ResolveFlag::empty())?;
        let src = b.host_path.to_string_lossy();
        mnt(
            Some(&src),
            &fd_path(&t),
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
            || format!("bind cgroup {src}"),
        )?;
        let top = open_in_root(root, &sub, OFlag::O_PATH, ResolveFlag::empty())
            .map_err(|e| Error::sys("reopen cgroup bind", e))?;
        let p = fd_path(&top);
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.flags & !MsFlags::MS_REMOUNT;
        mnt(NONE, &p, NONE, flags | kept_flags(&p), NONE, || {
            format!("remount cgroup {src}")
        })?;
    }
    let tmpfs = open_in_root(root, dest, OFlag::O_PATH, ResolveFlag::empty())
        .map_err(|e| Error::sys("reopen cgroup tmpfs", e))?;
    for b in &cfg.cgroup_v1 {
        for link in v1_links(&b.name) {
            symlinkat(b.name.as_str(), &tmpfs, link)
                .map_err(|e| Error::sys(format!("symlink cgroup {link} -> {}", b.name), e))?;
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top = tmpfs;
        mnt(
            NONE,
            &fd_path(&top),
            NONE,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
            NONE,
            || "remount cgroup tmpfs read-only".into(),
        )?;
    }
    Ok(())
}

/// The links a combined v1 hierarchy gets in the container's `/sys/fs/cgroup`,
/// as runc makes them: `cpu` and `cpuacct` → `cpu,cpuacct`.
fn v1_links(name: &str) -> Vec<&str> {
    if !name.contains(',') {
        return Vec::new();
    }
    name.split(',')
        .filter(|c| !c.is_empty() && !c.contains('='))
        .collect()
}

const STD_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Standard devices (bind-mounted from the host), `/dev` symlinks, `/dev/shm`,
/// and the spec's `linux.devices` (mknod), all relative to a `/dev` fd
/// (CVE-2026-41579).
fn setup_dev(root: &OwnedFd, spec: &Spec, dev_mounted: bool) -> Result<()> {
    let dev = mkdir_all(root, Path::new("dev"), ResolveFlag::RESOLVE_NO_SYMLINKS)
        .map_err(refuse_symlink("set up /dev".into()))?;
    let spec_devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    if dev_mounted {
        for name in STD_DEVICES {
            let path = PathBuf::from("/dev").join(name);
            if spec_devices.iter().any(|d| d.path() == &path) {
                continue;
            }
            let target = ensure_target(root, &relative(&path), true, ResolveFlag::empty())?;
            let st =
                fstat(&target).map_err(|e| Error::sys(format!("stat {}", path.display()), e))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Err(Error::spec(
                    "devices",
                    format!("{} in the rootfs is not a regular file", path.display()),
                ));
            }
            let host = path.to_string_lossy();
            mnt(
                Some(&host),
                &fd_path(&target),
                NONE,
                MsFlags::MS_BIND,
                NONE,
                || format!("bind device {host}"),
            )?;
        }
        let links: &[(&str, &str)] = &[
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ];
        for (name, to) in links {
            match symlinkat(*to, &dev, *name) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::sys(format!("symlink /dev/{name}"), e)),
            }
        }
        let _ = unlinkat(&dev, "ptmx", UnlinkatFlags::NoRemoveDir);
        symlinkat("pts/ptmx", &dev, "ptmx").map_err(|e| Error::sys("symlink /dev/ptmx", e))?;
    }
    match mkdirat(&dev, "shm", Mode::from_bits_truncate(0o1777)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Error::sys("mkdir /dev/shm", e)),
    }
    for (i, d) in spec_devices.iter().enumerate() {
        let rel = relative(d.path());
        let parent = mkdir_all(
            root,
            rel.parent().unwrap_or(Path::new("")),
            ResolveFlag::empty(),
        )?;
        let name = rel.file_name().unwrap_or_default();
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let perm = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
        let devno = nix::sys::stat::makedev(d.major() as u64, d.minor() as u64);
        let _ = unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir);
        nix::sys::stat::mknodat(&parent, name, kind, perm, devno).map_err(|e| {
            Error::sys(
                format!("linux.devices[{i}]: mknod {}", d.path().display()),
                e,
            )
        })?;
        nix::unistd::fchownat(
            &parent,
            name,
            d.uid().map(nix::unistd::Uid::from_raw),
            d.gid().map(nix::unistd::Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| {
            Error::sys(
                format!("linux.devices[{i}]: chown {}", d.path().display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Makes `root` the process's `/` and detaches the old root.
pub fn pivot(root: &OwnedFd) -> Result<()> {
    let old = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open the old root", e))?;
    fchdir(root).map_err(|e| Error::sys("chdir to rootfs", e))?;
    pivot_root(".", ".").map_err(|e| Error::sys("pivot_root", e))?;
    // "." is the new root now; the old one is stacked on it. Through its fd,
    // so the propagation change hits the old root and not the container's
    // tree (whose rshared volumes must stay peers of the host's).
    fchdir(&old).map_err(|e| Error::sys("chdir to the old root", e))?;
    // Keep the unmount from propagating to the host.
    mnt(
        NONE,
        ".",
        NONE,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        NONE,
        || "make old root rslave".into(),
    )?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::sys("detach old root", e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("chdir /", e))
}

/// Opens an existing path inside the (pivoted) root without following a final
/// symlink; `None` when missing.
fn open_existing(path: &Path) -> Result<Option<OwnedFd>> {
    match nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::sys(format!("open {}", path.display()), e)),
    }
}

/// `linux.readonlyPaths`: bind each onto itself and remount read-only.
pub fn readonly_paths(spec: &Spec) -> Result<()> {
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default();
    for p in paths {
        let Some(fd) = open_existing(Path::new(&p))? else {
            continue;
        };
        let fp = fd_path(&fd);
        mnt(
            Some(&fp),
            &fp,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
            || format!("linux.readonlyPaths: bind {p}"),
        )?;
        let Some(top) = open_existing(Path::new(&p))? else {
            continue;
        };
        let tp = fd_path(&top);
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | kept_flags(&tp);
        mnt(NONE, &tp, NONE, flags, NONE, || {
            format!("linux.readonlyPaths: remount {p} read-only")
        })?;
    }
    Ok(())
}

/// `linux.maskedPaths`: `/dev/null` over files (after checking it really is the
/// 1:3 char device, CVE-2025-31133), a read-only tmpfs over directories.
pub fn masked_paths(spec: &Spec) -> Result<()> {
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    if paths.is_empty() {
        return Ok(());
    }
    let mut null: Option<OwnedFd> = None;
    for p in paths {
        let Some(fd) = open_existing(Path::new(&p))? else {
            continue;
        };
        let st = fstat(&fd).map_err(|e| Error::sys(format!("linux.maskedPaths: stat {p}"), e))?;
        let fp = fd_path(&fd);
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            mnt(
                Some("tmpfs"),
                &fp,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                NONE,
                || format!("linux.maskedPaths: tmpfs over {p}"),
            )?;
            continue;
        }
        if null.is_none() {
            null = Some(verified_dev_null()?);
        }
        let Some(n) = null.as_ref() else { continue };
        mnt(Some(&fd_path(n)), &fp, NONE, MsFlags::MS_BIND, NONE, || {
            format!("linux.maskedPaths: bind /dev/null over {p}")
        })?;
    }
    Ok(())
}

fn verified_dev_null() -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        "/dev/null",
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open /dev/null", e))?;
    let st = fstat(fd.as_fd()).map_err(|e| Error::sys("stat /dev/null", e))?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        return Err(Error::spec(
            "linux.maskedPaths",
            "/dev/null in the container is not the 1:3 character device",
        ));
    }
    Ok(fd)
}

/// `root.readonly`: remount `/` read-only, keeping its other flags.
pub fn readonly_root() -> Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags("/");
    mnt(NONE, "/", NONE, flags, NONE, || {
        "remount / read-only".into()
    })
}

#[cfg(test)]
mod tests {
    use super::v1_links;

    #[test]
    fn combined_v1_hierarchies_get_a_link_per_controller() {
        assert_eq!(v1_links("cpu,cpuacct"), vec!["cpu", "cpuacct"]);
        assert_eq!(v1_links("net_cls,net_prio"), vec!["net_cls", "net_prio"]);
        assert!(v1_links("memory").is_empty());
        assert!(v1_links("systemd").is_empty());
    }
}
