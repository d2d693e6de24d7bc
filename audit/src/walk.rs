//! The tree walk: every directory is opened relative to its parent's file
//! descriptor with `O_NOFOLLOW | O_DIRECTORY`, every entry is `fstatat`ed with
//! `AT_SYMLINK_NOFOLLOW`, and a file is opened (only regular files with an
//! exec bit, `O_NOFOLLOW | O_NONBLOCK`) relative to its directory's fd and
//! checked to be the inode that was stat'ed. No path string is ever resolved
//! by the host's root, so a symlink in the tree, or one swapped in while the
//! walk runs, cannot lead outside it. Symlinks are read, never followed; where
//! the audit needs a link's target (a shell reached as `/bin/sh`, a busybox
//! applet) it resolves it with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_XDEV)`,
//! which the kernel confines to the tree as a chroot would.
//!
//! Bounds: the walk is an explicit stack (no recursion) of open directories,
//! each read as `readdir` returns its entries: depth-first, a subdirectory is
//! entered when it is met. So the walk holds one fd and one `readdir` buffer per
//! ancestor of the directory being read (at most `max_depth`), whatever the
//! breadth: a 100,000-entry directory costs no more memory than a small one,
//! and nothing is quadratic. It stops descending below `max_depth` and reports
//! where; every list in the report keeps its first `LIST_CAP` items and the
//! true count.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::{Dir, OwningIter};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};
use serde::Serialize;

use crate::caps::{self, FileCaps};
use crate::classify::{self, Category};
use crate::elf::{self, Linking};

/// Items kept per list; the count is always exact.
pub const LIST_CAP: usize = 1000;
/// Directory depth below which the walk does not descend.
pub const MAX_DEPTH: usize = 256;
/// Largest busybox binary read for its applet table.
const MAX_BUSYBOX: u64 = 16 << 20;

/// A list that keeps its first `LIST_CAP` items and counts all.
#[derive(Debug, Serialize)]
pub struct Capped<T> {
    pub count: u64,
    pub items: Vec<T>,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            count: 0,
            items: Vec::new(),
        }
    }
}

impl<T> Capped<T> {
    pub fn push(&mut self, t: T) {
        self.count += 1;
        if self.items.len() < LIST_CAP {
            self.items.push(t);
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub files: u64,
    /// Regular files' sizes, a hard-linked inode counted once.
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub dangling_symlinks: u64,
    pub executables: u64,
    pub elf_static: u64,
    pub elf_static_pie: u64,
    pub elf_dynamic: u64,
    pub scripts: u64,
    /// FIFOs and sockets.
    pub other: u64,
    /// World-writable directories with the sticky bit (of all in the list).
    pub world_writable_sticky: u64,
}

#[derive(Debug, Serialize)]
pub struct SetId {
    pub path: String,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub setuid: bool,
    pub setgid: bool,
}

#[derive(Debug, Serialize)]
pub struct CapFile {
    pub path: String,
    #[serde(flatten)]
    pub caps: FileCaps,
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub path: String,
    pub name: String,
    pub category: Category,
    /// For a symlink: its target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Busybox {
    pub path: String,
    /// Hard links and symlinks (resolved in the root) to this binary.
    pub links: Vec<String>,
    /// Every applet compiled in (each runs as `busybox <applet>`).
    pub applets: Vec<String>,
    pub applets_by_category: BTreeMap<Category, Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct ElfFile {
    pub path: String,
    pub bits: u8,
    pub machine: u16,
    pub linking: Linking,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Device {
    pub path: String,
    pub kind: &'static str,
    pub major: u32,
    pub minor: u32,
}

#[derive(Debug, Serialize)]
pub struct WorldWritable {
    pub path: String,
    pub sticky: bool,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub path: String,
    pub target: String,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub path: String,
    pub error: String,
}

/// What the walk found.
#[derive(Debug, Default, Serialize)]
pub struct Inventory {
    pub totals: Totals,
    pub setid: Capped<SetId>,
    pub capabilities: Capped<CapFile>,
    pub tools: Capped<Tool>,
    /// Distinct tool names per category (version suffixes removed), busybox
    /// applets included: what the score counts.
    pub tool_names: BTreeMap<Category, BTreeSet<String>>,
    pub busybox: Vec<Busybox>,
    pub elf: Capped<ElfFile>,
    /// `PT_INTERP` of the dynamic executables, and how many use each.
    pub elf_interpreters: BTreeMap<String, u64>,
    /// `#!` interpreters of the scripts, and how many use each.
    pub script_interpreters: BTreeMap<String, u64>,
    pub devices: Capped<Device>,
    pub world_writable_dirs: Capped<WorldWritable>,
    pub symlinks_leaving_root: Capped<Link>,
    pub symlink_loops: Capped<String>,
    pub unreadable: Capped<Problem>,
    /// Entries that vanished or were replaced between being listed and read.
    pub changed_while_scanned: Capped<String>,
    /// Directories on another file system (not descended, as `find -xdev`).
    pub mount_points: Capped<String>,
    /// Directories deeper than the walk descends.
    pub too_deep: Capped<String>,
}

/// A directory being read: its entries (the fd of the directory itself,
/// used for every `*at` call on them), its path and depth.
struct Frame {
    entries: OwningIter,
    rel: PathBuf,
    depth: usize,
}

impl Frame {
    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `entries`, which outlives the borrow.
        unsafe { BorrowedFd::borrow_raw(self.entries.as_raw_fd()) }
    }
}

type Ino = (u64, u64);

struct Walker {
    root: OwnedFd,
    root_dev: u64,
    max_depth: usize,
    inv: Inventory,
    seen_inodes: HashSet<Ino>,
    /// Executables with several hard links: their paths.
    hard_links: HashMap<Ino, Vec<String>>,
    /// Symlinks that resolve to an executable: target inode, link path.
    exec_links: Vec<(Ino, String)>,
    busybox: Vec<(Ino, Busybox)>,
}

fn display(rel: &Path) -> String {
    format!("/{}", rel.to_string_lossy())
}

fn ino(st: &FileStat) -> Ino {
    (st.st_dev, st.st_ino)
}

/// Walks the tree under `root` (an `O_RDONLY | O_DIRECTORY` fd).
pub fn scan(root: OwnedFd, max_depth: usize) -> crate::error::Result<Inventory> {
    let st = fstat(&root).map_err(|e| crate::error::Error::sys("stat", "/", e))?;
    let entries = root
        .try_clone()
        .map_err(|e| crate::error::Error::Io {
            step: "dup",
            path: "/".into(),
            source: e,
        })
        .and_then(|d| Dir::from_fd(d).map_err(|e| crate::error::Error::sys("read", "/", e)))?;
    let mut w = Walker {
        root,
        root_dev: st.st_dev,
        max_depth,
        inv: Inventory::default(),
        seen_inodes: HashSet::new(),
        hard_links: HashMap::new(),
        exec_links: Vec::new(),
        busybox: Vec::new(),
    };
    w.inv.totals.dirs = 1;
    if st.st_mode & 0o002 != 0 {
        w.world_writable(Path::new(""), st.st_mode);
    }
    let mut stack = vec![Frame {
        entries: entries.into_iter(),
        rel: PathBuf::new(),
        depth: 0,
    }];
    while let Some(top) = stack.last_mut() {
        let entry = match top.entries.next() {
            None => {
                stack.pop();
                continue;
            }
            Some(Err(e)) => {
                let rel = top.rel.clone();
                w.problem(&rel, format!("read directory: {e}"));
                stack.pop();
                continue;
            }
            Some(Ok(entry)) => entry,
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let top: &Frame = top;
        if let Some(sub) = w.entry(top.fd(), &top.rel, name, top.depth) {
            if let Some(frame) = w.enter(top.fd(), name, sub, top.depth + 1) {
                stack.push(frame);
            }
        }
    }
    w.finish();
    Ok(w.inv)
}

impl Walker {
    fn world_writable(&mut self, rel: &Path, mode: u32) {
        let sticky = mode & 0o1000 != 0;
        self.inv.totals.world_writable_sticky += u64::from(sticky);
        self.inv.world_writable_dirs.push(WorldWritable {
            path: display(rel),
            sticky,
        });
    }

    fn tool(&mut self, path: String, name: String, category: Category, via: Option<String>) {
        self.inv
            .tool_names
            .entry(category)
            .or_default()
            .insert(classify::base_name(&name).to_string());
        self.inv.tools.push(Tool {
            path,
            name,
            category,
            via,
        });
    }

    fn problem(&mut self, rel: &Path, error: impl std::fmt::Display) {
        self.inv.unreadable.push(Problem {
            path: display(rel),
            error: error.to_string(),
        });
    }

    /// Opens subdirectory `name` of `parent` to read it.
    fn enter(
        &mut self,
        parent: BorrowedFd,
        name: &CStr,
        rel: PathBuf,
        depth: usize,
    ) -> Option<Frame> {
        let flags = OFlag::O_RDONLY
            | OFlag::O_DIRECTORY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Gone, or replaced by a symlink or a file since it was listed.
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => {
                self.inv.changed_while_scanned.push(display(&rel));
                return None;
            }
            Err(e) => {
                self.problem(&rel, format!("open directory: {e}"));
                return None;
            }
        };
        match fstat(&fd) {
            Ok(st) if st.st_dev != self.root_dev => {
                // A mount appeared there after it was listed.
                self.inv.mount_points.push(display(&rel));
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                self.problem(&rel, format!("stat directory: {e}"));
                return None;
            }
        }
        match Dir::from_fd(fd) {
            Ok(d) => Some(Frame {
                entries: d.into_iter(),
                rel,
                depth,
            }),
            Err(e) => {
                self.problem(&rel, format!("read directory: {e}"));
                None
            }
        }
    }

    /// Handles one entry; returns its path if it is a directory to enter.
    fn entry(
        &mut self,
        dirfd: BorrowedFd,
        dir_rel: &Path,
        cname: &CStr,
        depth: usize,
    ) -> Option<PathBuf> {
        let name = OsStr::from_bytes(cname.to_bytes());
        let rel = dir_rel.join(name);
        let st = match fstatat(dirfd, cname, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                self.inv.changed_while_scanned.push(display(&rel));
                return None;
            }
            Err(e) => {
                self.problem(&rel, format!("stat: {e}"));
                return None;
            }
        };
        let mode = st.st_mode;
        match mode & libc::S_IFMT {
            libc::S_IFDIR => {
                self.inv.totals.dirs += 1;
                if mode & 0o002 != 0 {
                    self.world_writable(&rel, mode);
                }
                if st.st_dev != self.root_dev {
                    self.inv.mount_points.push(display(&rel));
                } else if depth + 1 > self.max_depth {
                    self.inv.too_deep.push(display(&rel));
                } else {
                    return Some(rel);
                }
            }
            libc::S_IFREG => self.regular(dirfd, cname, &rel, &st),
            libc::S_IFLNK => self.symlink(dirfd, cname, &rel, depth),
            libc::S_IFCHR | libc::S_IFBLK => self.inv.devices.push(Device {
                path: display(&rel),
                kind: if mode & libc::S_IFMT == libc::S_IFCHR {
                    "char"
                } else {
                    "block"
                },
                major: libc::major(st.st_rdev),
                minor: libc::minor(st.st_rdev),
            }),
            _ => self.inv.totals.other += 1,
        }
        None
    }

    fn regular(&mut self, dirfd: BorrowedFd, cname: &CStr, rel: &Path, st: &FileStat) {
        let t = &mut self.inv.totals;
        t.files += 1;
        if st.st_nlink <= 1 || self.seen_inodes.insert(ino(st)) {
            t.bytes += st.st_size.max(0) as u64;
        }
        let mode = st.st_mode;
        if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            self.inv.setid.push(SetId {
                path: display(rel),
                mode: format!("{:04o}", mode & 0o7777),
                uid: st.st_uid,
                gid: st.st_gid,
                setuid: mode & libc::S_ISUID != 0,
                setgid: mode & libc::S_ISGID != 0,
            });
        }
        if mode & 0o111 != 0 {
            self.executable(dirfd, cname, rel, st);
        }
    }

    fn executable(&mut self, dirfd: BorrowedFd, cname: &CStr, rel: &Path, st: &FileStat) {
        self.inv.totals.executables += 1;
        let path = display(rel);
        let name = String::from_utf8_lossy(cname.to_bytes()).into_owned();
        if let Some(category) = classify::classify(&name) {
            self.tool(path.clone(), name.clone(), category, None);
        }
        if st.st_nlink > 1 {
            self.hard_links
                .entry(ino(st))
                .or_default()
                .push(path.clone());
        }
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = match openat(dirfd, cname, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ELOOP) => {
                return self.inv.changed_while_scanned.push(path);
            }
            Err(e) => return self.problem(rel, format!("open: {e}")),
        };
        match fstat(&fd) {
            Ok(now) if ino(&now) == ino(st) && now.st_mode & libc::S_IFMT == libc::S_IFREG => {}
            Ok(_) => return self.inv.changed_while_scanned.push(path),
            Err(e) => return self.problem(rel, format!("stat: {e}")),
        }
        self.file_caps(&fd, rel);
        let file = File::from(fd);
        match elf::parse(&file) {
            Ok(Some(info)) => {
                let t = &mut self.inv.totals;
                match info.linking {
                    Linking::Static => t.elf_static += 1,
                    Linking::StaticPie => t.elf_static_pie += 1,
                    Linking::Dynamic => t.elf_dynamic += 1,
                    Linking::Other => {}
                }
                if let Some(i) = &info.interpreter {
                    *self.inv.elf_interpreters.entry(i.clone()).or_default() += 1;
                }
                self.inv.elf.push(ElfFile {
                    path: path.clone(),
                    bits: info.bits,
                    machine: info.machine,
                    linking: info.linking,
                    interpreter: info.interpreter,
                });
            }
            Ok(None) => self.script(&file, rel),
            Err(e) => self.problem(rel, format!("read ELF headers: {e}")),
        }
        if classify::is_busybox(&name) {
            let mut image = Vec::new();
            match (&file).take(MAX_BUSYBOX).read_to_end(&mut image) {
                Ok(_) => {
                    let applets = classify::busybox_applets(&image);
                    let mut by = BTreeMap::<Category, Vec<String>>::new();
                    for a in &applets {
                        if let Some(c) = classify::classify(a) {
                            by.entry(c).or_default().push(a.clone());
                        }
                    }
                    self.busybox.push((
                        ino(st),
                        Busybox {
                            path: path.clone(),
                            links: Vec::new(),
                            applets,
                            applets_by_category: by,
                        },
                    ));
                }
                Err(e) => self.problem(rel, format!("read busybox: {e}")),
            }
        }
        // Changed under us while it was read: the facts above may be torn.
        if let Ok(after) = fstat(&file) {
            if after.st_size != st.st_size || after.st_mtime_nsec != st.st_mtime_nsec {
                self.inv.changed_while_scanned.push(path);
            }
        }
    }

    fn file_caps(&mut self, fd: &OwnedFd, rel: &Path) {
        let mut buf = [0u8; 64];
        let name = c"security.capability";
        debug_assert_eq!(name.to_bytes(), caps::XATTR.as_bytes());
        // SAFETY: buf is valid for buf.len() bytes; name is NUL-terminated.
        let n = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            match Errno::last() {
                Errno::ENODATA | Errno::EOPNOTSUPP => {}
                e => self.problem(rel, format!("read {}: {e}", caps::XATTR)),
            }
            return;
        }
        let value = buf.get(..n as usize).unwrap_or_default();
        match caps::decode(value) {
            Ok(caps) => self.inv.capabilities.push(CapFile {
                path: display(rel),
                caps,
            }),
            Err(e) => self.problem(rel, format!("{}: {e}", caps::XATTR)),
        }
    }

    fn script(&mut self, file: &File, rel: &Path) {
        let mut head = [0u8; 256];
        let n = match std::os::unix::fs::FileExt::read_at(file, &mut head, 0) {
            Ok(n) => n,
            Err(e) => return self.problem(rel, format!("read: {e}")),
        };
        let Some(line) = head.get(..n).and_then(|h| h.strip_prefix(b"#!")) else {
            return;
        };
        let line = line.split(|&c| c == b'\n').next().unwrap_or_default();
        let interp = String::from_utf8_lossy(line).trim().to_string();
        self.inv.totals.scripts += 1;
        *self.inv.script_interpreters.entry(interp).or_default() += 1;
    }

    fn symlink(&mut self, dirfd: BorrowedFd, cname: &CStr, rel: &Path, depth: usize) {
        self.inv.totals.symlinks += 1;
        let target = match nix::fcntl::readlinkat(dirfd, cname) {
            Ok(t) => t,
            Err(Errno::ENOENT | Errno::EINVAL) => {
                return self.inv.changed_while_scanned.push(display(rel));
            }
            Err(e) => return self.problem(rel, format!("readlink: {e}")),
        };
        let target_s = target.to_string_lossy().into_owned();
        if leaves_root(depth, Path::new(&target)) {
            self.inv.symlinks_leaving_root.push(Link {
                path: display(rel),
                target: target_s.clone(),
            });
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_IN_ROOT
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        let resolved = match openat2(&self.root, rel, how) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) => return self.inv.symlink_loops.push(display(rel)),
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::EXDEV | Errno::EACCES) => {
                self.inv.totals.dangling_symlinks += 1;
                return;
            }
            Err(e) => return self.problem(rel, format!("resolve symlink in the root: {e}")),
        };
        let Ok(st) = fstat(&resolved) else { return };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_mode & 0o111 == 0 {
            return;
        }
        let name = String::from_utf8_lossy(cname.to_bytes()).into_owned();
        if let Some(category) = classify::classify(&name) {
            self.tool(display(rel), name, category, Some(target_s));
        }
        if self.exec_links.len() < 100 * LIST_CAP {
            self.exec_links.push((ino(&st), display(rel)));
        }
    }

    /// Links each busybox binary to the names that reach it.
    fn finish(&mut self) {
        for (i, mut bb) in std::mem::take(&mut self.busybox) {
            if let Some(paths) = self.hard_links.get(&i) {
                bb.links
                    .extend(paths.iter().filter(|p| **p != bb.path).cloned());
            }
            bb.links.extend(
                self.exec_links
                    .iter()
                    .filter(|(t, _)| *t == i)
                    .map(|(_, p)| p.clone()),
            );
            bb.links.sort();
            for (c, applets) in &bb.applets_by_category {
                let names = self.inv.tool_names.entry(*c).or_default();
                names.extend(applets.iter().map(|a| classify::base_name(a).to_string()));
            }
            self.inv.busybox.push(bb);
        }
    }
}

/// Whether a symlink at `depth` directories below the root climbs above the
/// root with `..`: followed from the host, it would leave the tree. (An
/// absolute target does not: inside the container, and for this audit, `/`
/// is the tree's root.)
pub fn leaves_root(depth: usize, target: &Path) -> bool {
    let mut d = depth as i64;
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return false,
            Component::ParentDir => {
                d -= 1;
                if d < 0 {
                    return true;
                }
            }
            Component::Normal(_) => d += 1,
            Component::CurDir => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaving_the_root() {
        assert!(leaves_root(0, Path::new("../etc")));
        assert!(leaves_root(1, Path::new("../../etc/shadow")));
        assert!(!leaves_root(1, Path::new("../etc/shadow")));
        assert!(!leaves_root(0, Path::new("/etc/shadow")));
        assert!(leaves_root(0, Path::new("a/../../b")));
        assert!(!leaves_root(2, Path::new("./x/../../y")));
    }
}
