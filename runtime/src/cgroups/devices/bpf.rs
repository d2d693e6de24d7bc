//! The five `bpf(2)` commands the device filter needs, raw through libc: a BPF
//! crate (aya, libbpf-rs) would bring a loader, ELF parsing and maps for one
//! fixed-layout program. Attributes are the prefixes of `union bpf_attr` the
//! commands read (the kernel zero-fills the rest).
//!
//! Attaching follows runc: `BPF_F_ALLOW_MULTI`, the new program attached first
//! and the earlier ones (`BPF_PROG_QUERY`) detached after, so the cgroup is
//! never without a filter; for that instant both run, and the kernel allows
//! only what both allow. A program stays attached (the cgroup holds it) after
//! its fd is closed, until detached or the cgroup is removed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use super::program::Insn;
use crate::error::{Error, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `license` is checked by the kernel only for GPL-only helpers (none used).
const LICENSE: &[u8] = b"Apache\0";
/// Shown by `bpftool prog` (at most 15 bytes of `[A-Za-z0-9_.]`).
const NAME: &[u8] = b"tent_devices";

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`; the result (an fd or 0) or the errno.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, properly sized #[repr(C)] prefix of union
    // bpf_attr; any pointers in it point into buffers the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// An fd the kernel just returned (bpf fds are always O_CLOEXEC).
fn owned(fd: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: a new fd of ours, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fail(step: impl Into<String>, e: Errno) -> Error {
    Error::sys(format!("cgroup v2 device filter: {}", step.into()), e)
}

/// A loaded device program, not yet (or also) attached.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    insns: usize,
}

impl Program {
    /// `BPF_PROG_LOAD`. On failure the error carries the verifier's log (a
    /// second load with logging: the first runs without, the common case).
    pub fn load(prog: &[Insn]) -> Result<Program> {
        let code: Vec<u8> = prog.iter().flat_map(|i| i.to_bytes()).collect();
        let mut name = [0u8; 16];
        for (to, from) in name.iter_mut().zip(NAME) {
            *to = *from;
        }
        let attr = |log: &mut [u8]| ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: code.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            prog_name: name,
            ..Default::default()
        };
        let mut first = attr(&mut []);
        let r = match bpf(BPF_PROG_LOAD, &mut first) {
            Err(Errno::EPERM) => with_memlock_raised(|| bpf(BPF_PROG_LOAD, &mut attr(&mut []))),
            r => r,
        };
        match r {
            Ok(fd) => Ok(Program {
                fd: owned(fd).map_err(|e| fail("BPF_PROG_LOAD", e))?,
                insns: prog.len(),
            }),
            Err(e) => {
                let mut log = vec![0u8; 64 * 1024];
                let _ = bpf(BPF_PROG_LOAD, &mut attr(&mut log)).map(owned);
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default());
                let text = text.trim();
                let hint = match e {
                    Errno::ENOSYS | Errno::EINVAL if text.is_empty() => {
                        " (does the kernel have CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF? \
                         tent does not run a cgroup v2 container without its device filter)"
                    }
                    Errno::EPERM => " (needs CAP_SYS_ADMIN or CAP_BPF)",
                    _ => "",
                };
                let tail = text
                    .char_indices()
                    .nth_back(3999)
                    .map_or(text, |(i, _)| &text[i..]);
                let verifier = if tail.is_empty() {
                    String::new()
                } else {
                    format!("; verifier log: {tail}")
                };
                Err(fail(
                    format!(
                        "BPF_PROG_LOAD of {} instructions{hint}{verifier}",
                        prog.len()
                    ),
                    e,
                ))
            }
        }
    }

    /// Number of eBPF instructions.
    pub fn insns(&self) -> usize {
        self.insns
    }

    /// Attaches the program to the cgroup v2 directory `dir`, then detaches
    /// the device programs attached there before; returns how many it detached.
    pub fn install(&self, dir: &Path) -> Result<usize> {
        let cg = open_cgroup(dir)?;
        let old = query(&cg, dir)?;
        let mut attr = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: self.fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
        };
        bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| {
            let hint = if e == Errno::EINVAL {
                " (does the kernel have CONFIG_CGROUP_BPF?)"
            } else {
                ""
            };
            fail(
                format!(
                    "BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) to {}{hint}",
                    dir.display()
                ),
                e,
            )
        })?;
        let mut detached = 0;
        for id in old {
            let mut get = GetFdAttr {
                prog_id: id,
                ..Default::default()
            };
            let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get).and_then(owned) {
                Ok(fd) => fd,
                // Gone meanwhile, or hidden from us by an LSM (runc skips those
                // too: another device program can only deny more).
                Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES) => continue,
                Err(e) => return Err(fail(format!("BPF_PROG_GET_FD_BY_ID {id}"), e)),
            };
            let mut attr = AttachAttr {
                target_fd: cg.as_raw_fd() as u32,
                attach_bpf_fd: fd.as_raw_fd() as u32,
                attach_type: BPF_CGROUP_DEVICE,
                attach_flags: 0,
            };
            match bpf(BPF_PROG_DETACH, &mut attr) {
                Ok(_) => detached += 1,
                Err(Errno::ENOENT) => {}
                Err(e) => {
                    return Err(fail(
                        format!(
                            "BPF_PROG_DETACH of the earlier program {id} from {} \
                             (the new one is attached)",
                            dir.display()
                        ),
                        e,
                    ))
                }
            }
        }
        Ok(detached)
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (64 KiB by
/// default) and fail the load with EPERM. Raised only for the retry and put
/// back, because the limit would be inherited by every container the caller
/// (the shim) spawns later.
fn with_memlock_raised<T>(f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_MEMLOCK) else {
        return f();
    };
    if setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_err() {
        return Err(Errno::EPERM);
    }
    let r = f();
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, soft, hard) {
        log::warn!("restoring RLIMIT_MEMLOCK after loading the device filter: {e}");
    }
    r
}

/// A real (not O_PATH) fd of the cgroup directory, as attach and query need.
fn open_cgroup(dir: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail(format!("open {}", dir.display()), e))
}

/// Ids of the device programs attached to the cgroup itself (not inherited).
fn query(cg: &OwnedFd, dir: &Path) -> Result<Vec<u32>> {
    // A cgroup takes at most 64 programs per attach type.
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| {
        fail(
            format!("BPF_PROG_QUERY (BPF_CGROUP_DEVICE) of {}", dir.display()),
            e,
        )
    })?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Ids of the device programs attached to the cgroup v2 directory `dir`.
pub fn v2_filters(dir: &Path) -> Result<Vec<u32>> {
    query(&open_cgroup(dir)?, dir)
}

#[cfg(test)]
mod tests {
    use super::super::program::tests::{random_rule, Rng};
    use super::super::program::{compile, Insn, JMP_EXIT};
    use super::super::{emulate, DEFAULT_RULES, DENY_ALL};
    use super::*;

    fn can_load() -> bool {
        let ok = nix::unistd::geteuid().is_root();
        if !ok {
            eprintln!("skipped: loading BPF programs needs root");
        }
        ok
    }

    /// The verifier accepts every shape of program `compile` makes.
    #[test]
    fn verifier_accepts_random_lists() {
        if !can_load() {
            return;
        }
        let mut rng = Rng(0xb9f_5eed);
        for case in 0..200 {
            let mut list = vec![DENY_ALL];
            list.extend((0..rng.below(14)).map(|_| random_rule(&mut rng)));
            list.extend_from_slice(DEFAULT_RULES);
            let prog = compile(&emulate::replay(&list));
            if let Err(e) = Program::load(&prog) {
                panic!("case {case}: {e}");
            }
        }
    }

    /// A program the verifier refuses: the error names the step and carries its log.
    #[test]
    fn refused_program_reports_the_verifier_log() {
        if !can_load() {
            return;
        }
        let exit = Insn {
            code: JMP_EXIT,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        };
        let e = Program::load(&[exit]).expect_err("r0 is never set");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "cgroup v2 device filter: BPF_PROG_LOAD of 1 instructions; verifier log: "
            ),
            "{text}"
        );
        assert!(text.contains("R0 !read_ok"), "{text}");
        assert!(text.ends_with(": EACCES: Permission denied"), "{text}");
    }
}
