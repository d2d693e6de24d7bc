//! `tent audit --observe`: what a running container really opens and runs.
//!
//! One fanotify group (`FAN_CLASS_NOTIF`: notification only, the workload is
//! never held up and never changed), marked with `FAN_MARK_MOUNT` on the
//! container's root mount, for `FAN_OPEN | FAN_OPEN_EXEC`.
//!
//! Why the mount and not `FAN_MARK_FILESYSTEM`: the root mount is exactly
//! the tree the audit walks, as the container sees it. A filesystem mark
//! would also report every other mount of the same superblock (the shim's
//! or runc's view of the rootfs in the host's namespace, a backup scanner),
//! and on a bind-mounted rootfs (the native snapshotter) the superblock is
//! the host's whole disk, so every host open would be "used".
//!
//! Paths: each event carries an fd opened on the file; `readlink` of
//! `/proc/self/fd/N` gives the path from the root of the mount namespace it
//! was opened in, i.e. the container's own path (`/bin/sh` ...), since the
//! container's root is not reachable from ours. That text is trusted only
//! after `openat2(RESOLVE_IN_ROOT)` of it in the container's root reaches
//! the same inode; otherwise it is reported as unmapped. The kernel gives
//! the file reached, never the symlink that led to it: a file run through a
//! symlink (busybox's applets) cannot be told apart from its other names.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use nix::sys::stat::{fstat, stat};
use serde::Serialize;

use tent_audit::classify::Category;
use tent_audit::walk::{Capped, Inventory};

use crate::error::{Error, Result};

type Ino = (u64, u64);

/// How one file was used.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Use {
    pub opened: bool,
    pub executed: bool,
}

/// Why the recording stopped.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    ContainerStopped,
    Signal,
    Duration,
}

/// A fanotify group marked on a container's root mount.
pub struct Recorder {
    fan: Fanotify,
    root: OwnedFd,
    mnt_ns: Option<Ino>,
}

/// What the workload opened and ran while recorded.
#[derive(Debug, Default)]
pub struct Recording {
    used: BTreeMap<String, Use>,
    inodes: HashSet<Ino>,
    events: u64,
    own: u64,
    outside: u64,
    processes: u64,
    lost: bool,
    unmapped: Capped<String>,
    end: Option<End>,
    seconds: f64,
}

fn ino_of(st: &libc::stat) -> Ino {
    (st.st_dev, st.st_ino)
}

impl Recorder {
    /// Marks the root mount of the process whose root is `root` (an fd on
    /// `/proc/<pid>/root`, proven to be that process's). Needs
    /// `CAP_SYS_ADMIN`, as every fanotify mount mark does.
    pub fn new(root: OwnedFd, pid: i32) -> Result<Recorder> {
        let what = PathBuf::from(format!("/proc/{pid}/root"));
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF
                | InitFlags::FAN_CLOEXEC
                | InitFlags::FAN_NONBLOCK
                | InitFlags::FAN_UNLIMITED_QUEUE,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| Error::sys("fanotify_init (needs CAP_SYS_ADMIN) for", &what, e))?;
        fan.mark::<_, str>(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT,
            MaskFlags::FAN_OPEN | MaskFlags::FAN_OPEN_EXEC,
            root.as_fd(),
            None,
        )
        .map_err(|e| Error::sys("fanotify_mark (FAN_MARK_MOUNT) on", &what, e))?;
        let mnt_ns = stat(format!("/proc/{pid}/ns/mnt").as_str())
            .ok()
            .map(|s| ino_of(&s));
        Ok(Recorder { fan, root, mnt_ns })
    }

    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// What the container's processes already hold, before the mark could
    /// see it: each one's executable, mapped files (`map_files`, the loader
    /// and libraries) and open files. Opened by the magic links, so the file
    /// is checked as an event's is.
    pub fn seed(&self, rec: &mut Recording) {
        let Some(ns) = self.mnt_ns else { return };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let me = std::process::id().to_string();
        for p in procs.flatten() {
            let name = p.file_name();
            let name = name.to_string_lossy();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            let base = format!("/proc/{name}");
            match stat(format!("{base}/ns/mnt").as_str()) {
                Ok(st) if ino_of(&st) == ns => {}
                _ => continue,
            }
            rec.processes += 1;
            self.seed_link(rec, &format!("{base}/exe"), true);
            for dir in ["map_files", "fd"] {
                let Ok(entries) = std::fs::read_dir(format!("{base}/{dir}")) else {
                    continue;
                };
                for e in entries.flatten() {
                    self.seed_link(rec, &e.path().to_string_lossy(), false);
                }
            }
        }
    }

    fn seed_link(&self, rec: &mut Recording, link: &str, exec: bool) {
        let Ok(fd) = nix::fcntl::open(
            link,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) else {
            return;
        };
        match fstat(&fd) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {}
            _ => return,
        }
        // Files on the container's other mounts (/dev, /proc, a volume) are
        // not the image's: only the root mount counts, as for the mark.
        let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return;
        };
        let path = path.to_string_lossy().into_owned();
        if resolve_no_xdev(self.root(), &path).is_none() {
            return;
        }
        self.note(rec, fd.as_fd(), exec);
    }

    /// Records until `pidfd` (the container's init) exits, SIGINT/SIGTERM/
    /// SIGHUP arrives, or `duration` passes. The signals are held only for
    /// this call, read from a signalfd.
    pub fn record(&self, pidfd: BorrowedFd<'_>, duration: Option<Duration>) -> Result<Recording> {
        let started = Instant::now();
        let sig = SignalFd::new()?;
        let mut rec = Recording::default();
        self.seed(&mut rec);
        let me = std::process::id() as i32;
        let end = loop {
            let timeout = match duration {
                None => -1,
                Some(d) => {
                    let left = d.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break End::Duration;
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            let mut fds = [
                poll_fd(self.fan.as_fd().as_raw_fd()),
                poll_fd(pidfd.as_raw_fd()),
                poll_fd(sig.fd.as_raw_fd()),
            ];
            // SAFETY: three valid pollfds in a local array.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, timeout) };
            if n < 0 {
                let e = Errno::last();
                if e == Errno::EINTR {
                    continue;
                }
                return Err(Error::sys("poll", "fanotify", e));
            }
            if fds[0].revents != 0 {
                self.drain(&mut rec, me)?;
            }
            if fds[1].revents != 0 {
                self.drain(&mut rec, me)?;
                break End::ContainerStopped;
            }
            if fds[2].revents != 0 {
                self.drain(&mut rec, me)?;
                break End::Signal;
            }
        };
        rec.end = Some(end);
        rec.seconds = started.elapsed().as_secs_f64();
        Ok(rec)
    }

    fn drain(&self, rec: &mut Recording, me: i32) -> Result<()> {
        loop {
            let events = match self.fan.read_events() {
                Ok(ev) => ev,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("read", "fanotify events", e)),
            };
            if events.is_empty() {
                return Ok(());
            }
            for ev in events {
                if ev.mask().contains(MaskFlags::FAN_Q_OVERFLOW) {
                    rec.lost = true;
                }
                let Some(fd) = ev.fd() else { continue };
                rec.events += 1;
                if ev.pid() == me {
                    rec.own += 1;
                    continue;
                }
                // A process in another mount namespace reached the container's
                // root (a host tool through /proc/<pid>/root): not the
                // workload. One that already exited is counted: reporting a
                // file as used when unsure is the safe side.
                if let (Some(ns), Ok(st)) = (
                    self.mnt_ns,
                    stat(format!("/proc/{}/ns/mnt", ev.pid()).as_str()),
                ) {
                    if ino_of(&st) != ns {
                        rec.outside += 1;
                        continue;
                    }
                }
                let exec = ev.mask().contains(MaskFlags::FAN_OPEN_EXEC);
                self.note(rec, fd, exec);
            }
        }
    }

    fn note(&self, rec: &mut Recording, fd: BorrowedFd<'_>, exec: bool) {
        let Ok(st) = fstat(fd) else { return };
        let ino = ino_of(&st);
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let path = match std::fs::read_link(&link) {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => return rec.unmapped.push(format!("fd of inode {}: {e}", ino.1)),
        };
        let known = rec.used.contains_key(&path) && rec.inodes.contains(&ino);
        if !known && !self.same_file(&path, ino) {
            return rec.unmapped.push(path);
        }
        rec.inodes.insert(ino);
        let u = rec.used.entry(path).or_default();
        if exec {
            u.executed = true;
        } else {
            u.opened = true;
        }
    }

    /// Whether `path`, resolved inside the container's root, is `ino`.
    fn same_file(&self, path: &str, ino: Ino) -> bool {
        resolve(self.root(), path) == Some(ino)
    }
}

/// As [`resolve`], without leaving the root's mount.
fn resolve_no_xdev(root: BorrowedFd<'_>, path: &str) -> Option<Ino> {
    resolve_how(root, path, ResolveFlag::RESOLVE_NO_XDEV)
}

/// The inode `path` reaches inside `root` (symlinks followed, in the root).
pub fn resolve(root: BorrowedFd<'_>, path: &str) -> Option<Ino> {
    resolve_how(root, path, ResolveFlag::empty())
}

fn resolve_how(root: BorrowedFd<'_>, path: &str, extra: ResolveFlag) -> Option<Ino> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return None;
    }
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra);
    let fd = openat2(root, rel, how).ok()?;
    fstat(&fd).ok().map(|s| ino_of(&s))
}

fn poll_fd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// SIGINT, SIGTERM and SIGHUP blocked and readable from an fd while it lives.
struct SignalFd {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl SignalFd {
    fn new() -> Result<SignalFd> {
        // SAFETY: sigset operations on local, initialised sets; signalfd on
        // a valid set returns a new fd or -1.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                let e = Errno::last();
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(Error::sys("signalfd", "SIGINT/SIGTERM/SIGHUP", e));
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
                old_mask: old,
            })
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // The signal that ended the recording was read as a stop request:
        // consume it so it does not kill the report on unblocking.
        let mut info = [0u8; 128];
        // SAFETY: reads into a local buffer from our own non-blocking fd,
        // then restores the mask saved in new().
        unsafe {
            while libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) > 0 {}
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}

/// Whether a finding was used while recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// This very path was opened or run.
    Used,
    /// The file it reaches was run, under another name (a symlink or a
    /// busybox applet): which names were used cannot be told apart.
    Indistinct,
    Unused,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: State,
}

/// A finding's identity, taken right after the walk (before the workload
/// can change or the container's removal can delete it).
pub struct Watch {
    kind: &'static str,
    path: String,
    name: Option<String>,
    ino: Option<Ino>,
}

/// The findings of `inv` to match against what is used: tools (busybox
/// applets' links included), setuid/setgid and capability files, busybox.
pub fn watches(root: BorrowedFd<'_>, inv: &Inventory) -> Vec<Watch> {
    let mut w = Vec::new();
    let mut add = |kind, path: &str, name: Option<String>| {
        w.push(Watch {
            kind,
            path: path.to_string(),
            name,
            ino: resolve(root, path),
        })
    };
    for t in &inv.tools.items {
        add(category_kind(t.category), &t.path, Some(t.name.clone()));
    }
    for s in &inv.setid.items {
        add("setid", &s.path, None);
    }
    for c in &inv.capabilities.items {
        add("capabilities", &c.path, None);
    }
    for b in &inv.busybox {
        add("busybox", &b.path, None);
    }
    w
}

fn category_kind(c: Category) -> &'static str {
    match c {
        Category::Shell => "shell",
        Category::PackageManager => "package-manager",
        Category::Interpreter => "interpreter",
        Category::Compiler => "compiler",
        Category::Network => "network",
        Category::Kernel => "kernel",
    }
}

/// The observation's part of the report.
#[derive(Debug, Serialize)]
pub struct Observation {
    pub ended_by: End,
    pub seconds: f64,
    /// Events read, own (the audit's walk) and from other mount namespaces
    /// (not the workload) included.
    pub events: u64,
    pub events_from_outside: u64,
    /// The container's processes found running when the recording began:
    /// their executables, mapped and open files count as used.
    pub processes_at_start: u64,
    /// The kernel's queue overflowed: some opens were not seen, so "unused"
    /// is not to be trusted.
    pub events_lost: bool,
    /// Files opened or run, by their path in the container.
    pub used: BTreeMap<String, Use>,
    /// Paths the kernel gave that did not resolve to the same inode in the
    /// container's root (deleted, renamed, or on another mount).
    pub unmapped: Capped<String>,
    pub findings: Vec<Finding>,
    /// Per kind: how many findings are used, indistinct, unused.
    pub summary: BTreeMap<&'static str, [u64; 3]>,
    /// Busybox binaries that ran: their applets cannot be told apart.
    pub busybox_ran: Vec<String>,
}

impl Observation {
    pub fn new(rec: Recording, watches: Vec<Watch>) -> Observation {
        let mut findings = Vec::new();
        let mut summary: BTreeMap<&'static str, [u64; 3]> = BTreeMap::new();
        let mut busybox_ran = Vec::new();
        for w in watches {
            let state = if rec.used.contains_key(&w.path) {
                State::Used
            } else if w.ino.is_some_and(|i| rec.inodes.contains(&i)) {
                State::Indistinct
            } else {
                State::Unused
            };
            if w.kind == "busybox" && state != State::Unused {
                busybox_ran.push(w.path.clone());
            }
            let slot = match state {
                State::Used => 0,
                State::Indistinct => 1,
                State::Unused => 2,
            };
            summary.entry(w.kind).or_default()[slot] += 1;
            findings.push(Finding {
                kind: w.kind,
                path: w.path,
                name: w.name,
                state,
            });
        }
        Observation {
            ended_by: rec.end.unwrap_or(End::Duration),
            seconds: rec.seconds,
            events: rec.events,
            events_from_outside: rec.outside,
            processes_at_start: rec.processes,
            events_lost: rec.lost,
            used: rec.used,
            unmapped: rec.unmapped,
            findings,
            summary,
            busybox_ran,
        }
    }

    /// The files a minimal image would need: those opened or run. Symlinks
    /// that led to them are not seen by fanotify: keep the names the
    /// workload is started by (its command, `PT_INTERP`) as links or copies.
    pub fn minimal_list(&self) -> String {
        let mut o = String::new();
        for (p, u) in &self.used {
            o.push_str(p);
            if u.executed {
                o.push_str("\t(executed)");
            }
            o.push('\n');
        }
        o
    }

    /// The readable rendering, printed after the audit's table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\nobserved {:.1} s (ended: {}), {} running at start, {} events, {} files used{}",
            self.seconds,
            match self.ended_by {
                End::ContainerStopped => "container stopped",
                End::Signal => "signal",
                End::Duration => "duration",
            },
            plural(self.processes_at_start, "process", "processes"),
            self.events,
            self.used.len(),
            if self.events_lost {
                "; EVENTS LOST (queue overflow): unused is not proven"
            } else {
                ""
            }
        );
        let _ = writeln!(o, "used:");
        for (p, u) in &self.used {
            let _ = writeln!(o, "  {p}{}", if u.executed { " (executed)" } else { "" });
        }
        if self.unmapped.count > 0 {
            let _ = writeln!(
                o,
                "not mapped to a path in the image ({}): {}",
                self.unmapped.count,
                self.unmapped.items.join(", ")
            );
        }
        let _ = writeln!(
            o,
            "\nfinding kind           used indistinct unused  never used"
        );
        for (kind, [u, i, n]) in &self.summary {
            let mut names: BTreeSet<String> = BTreeSet::new();
            for f in &self.findings {
                if f.kind == *kind && f.state == State::Unused {
                    names.insert(f.name.clone().unwrap_or_else(|| f.path.clone()));
                }
            }
            let names: Vec<String> = names.into_iter().collect();
            let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
            let more = if names.len() > 12 {
                format!(", … and {} more", names.len() - 12)
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{kind:<22} {u:>4} {i:>10} {n:>6}  {}{more}",
                shown.join(", ")
            );
        }
        for b in &self.busybox_ran {
            let _ = writeln!(
                o,
                "busybox {b} ran: its applets are one file, so which ran cannot be told apart \
                 (shown as indistinct)"
            );
        }
        o
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
