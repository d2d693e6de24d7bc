//! Terminals for `process.terminal`: the pty is allocated inside the container's
//! own devpts (after pivot_root or setns), its peer is opened from the master
//! with `TIOCGPTPEER` and verified — never re-opened as `/dev/pts/N` by path
//! (CVE-2025-52565) — and the init's `/dev/console` is bind-mounted through the
//! peer fd. The master goes to the caller over the sync channel.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, major, Mode, SFlag};

use crate::error::{Error, Result};

/// `DEVPTS_SUPER_MAGIC`.
const DEVPTS_MAGIC: i64 = 0x1cd1;
/// `UNIX98_PTY_SLAVE_MAJOR` and the 7 majors after it.
const PTS_MAJORS: std::ops::RangeInclusive<u64> = 136..=143;

/// A freshly allocated pty: the master (for the caller) and its verified peer.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub peer: OwnedFd,
}

fn ioctl_int(fd: impl AsFd, req: libc::Ioctl, arg: libc::c_ulong, what: &str) -> Result<i32> {
    // SAFETY: the requests used here take an integer (or a pointer we own) argument.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), req, arg) };
    if rc < 0 {
        return Err(Error::sys(what.to_string(), Errno::last()));
    }
    Ok(rc)
}

/// Opens `/dev/pts/ptmx` (or `/dev/ptmx`) of the current root, unlocks it,
/// opens and verifies the peer and applies `size` (rows × columns).
pub fn open_pty(size: Option<&oci_spec::runtime::Box>) -> Result<Pty> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = match open("/dev/pts/ptmx", flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => open("/dev/ptmx", flags, Mode::empty()).map_err(|e| {
            Error::sys(
                "open /dev/pts/ptmx and /dev/ptmx (is devpts mounted on /dev/pts?)",
                e,
            )
        })?,
        Err(e) => return Err(Error::sys("open /dev/pts/ptmx", e)),
    };
    verify_master(&master)?;
    let unlock: libc::c_int = 0;
    ioctl_int(
        &master,
        libc::TIOCSPTLCK,
        &unlock as *const libc::c_int as libc::c_ulong,
        "unlockpt (TIOCSPTLCK) on the pty master",
    )?;
    let raw = ioctl_int(
        &master,
        libc::TIOCGPTPEER,
        (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_ulong,
        "open the pty peer (TIOCGPTPEER)",
    )?;
    // SAFETY: TIOCGPTPEER just returned this new fd.
    let peer = unsafe { OwnedFd::from_raw_fd(raw) };
    verify_peer(&peer)?;
    if let Some(b) = size {
        set_size(&master, b.height(), b.width())?;
    }
    Ok(Pty { master, peer })
}

/// The master must come from a devpts `ptmx` (5:2), not from whatever the
/// rootfs put at that path.
fn verify_master(master: &OwnedFd) -> Result<()> {
    let st = fstat(master).map_err(|e| Error::sys("stat the pty master", e))?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || st.st_rdev != nix::sys::stat::makedev(5, 2) {
        return Err(Error::spec(
            "process.terminal",
            "the pty master is not the ptmx character device (5:2)",
        ));
    }
    Ok(())
}

/// The peer must be a pts character device on a devpts file system.
fn verify_peer(peer: &OwnedFd) -> Result<()> {
    let st = fstat(peer).map_err(|e| Error::sys("stat the pty peer", e))?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || !PTS_MAJORS.contains(&major(st.st_rdev)) {
        return Err(Error::spec(
            "process.terminal",
            "the pty peer is not a pts character device",
        ));
    }
    let fs = nix::sys::statfs::fstatfs(peer).map_err(|e| Error::sys("statfs the pty peer", e))?;
    if fs.filesystem_type().0 as i64 != DEVPTS_MAGIC {
        return Err(Error::spec(
            "process.terminal",
            "the pty peer is not on a devpts file system",
        ));
    }
    Ok(())
}

/// `TIOCSWINSZ` with `rows` × `cols`.
pub fn set_size(fd: impl AsFd, rows: u64, cols: u64) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows.min(u16::MAX as u64) as u16,
        ws_col: cols.min(u16::MAX as u64) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    ioctl_int(
        fd,
        libc::TIOCSWINSZ,
        &ws as *const libc::winsize as libc::c_ulong,
        "set the console size (TIOCSWINSZ)",
    )
    .map(|_| ())
}

/// Bind-mounts the peer over `/dev/console` through fds: `/dev/console` is
/// created (or opened) relative to a `/dev` fd without following symlinks and
/// must be a regular file or a character device.
pub fn bind_console(peer: &OwnedFd) -> Result<()> {
    let dev = open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open /dev", e))?;
    let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let target = match openat(&dev, "console", path_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            match openat(
                &dev,
                "console",
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::sys("create /dev/console", e)),
            }
            openat(&dev, "console", path_flags, Mode::empty())
                .map_err(|e| Error::sys("open /dev/console", e))?
        }
        Err(e) => return Err(Error::sys("open /dev/console", e)),
    };
    let st = fstat(&target).map_err(|e| Error::sys("stat /dev/console", e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG && kind != SFlag::S_IFCHR {
        return Err(Error::spec(
            "process.terminal",
            "/dev/console in the container is neither a file nor a character device",
        ));
    }
    let src = format!("/proc/self/fd/{}", peer.as_raw_fd());
    let dst = format!("/proc/self/fd/{}", target.as_raw_fd());
    mount(
        Some(src.as_str()),
        dst.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::sys("bind the pty peer over /dev/console", e))
}

/// New session with the peer as controlling terminal and as fds 0, 1 and 2.
pub fn make_controlling(peer: OwnedFd) -> Result<()> {
    nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
    ioctl_int(
        &peer,
        libc::TIOCSCTTY,
        0,
        "make the pty the controlling terminal",
    )?;
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard fds; nothing else owns them as OwnedFd here.
        if unsafe { libc::dup2(peer.as_raw_fd(), target) } < 0 {
            return Err(Error::sys(
                format!("dup2 the pty onto fd {target}"),
                Errno::last(),
            ));
        }
    }
    if peer.as_raw_fd() <= 2 {
        // It is one of 0/1/2 now; keep it open.
        std::mem::forget(peer);
    }
    Ok(())
}
