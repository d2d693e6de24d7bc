//! The last steps of a container process before `execve`, shared by the
//! init and exec: rlimits, oom_score_adj, umask, cwd, the confinement, fds,
//! and finding the executable as runc does.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use super::{Step, StepError, StepResult};
use crate::confine::{Confinement, Identity};
use crate::error::{Error, ErrorKind, Result};

fn apply_rlimits(process: &Process) -> Result<()> {
    for rl in process.rlimits().iter().flatten() {
        let name = rl.typ().to_string();
        let res = crate::process::rlimit_resource(&name)
            .ok_or_else(|| Error::spec("process.rlimits", format!("unknown rlimit {name}")))?;
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: setrlimit with a valid resource number and struct.
        if unsafe { libc::setrlimit(res as _, &lim) } != 0 {
            return Err(Error::sys(
                format!("setrlimit {name}"),
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}

/// Writes our `oom_score_adj` through a verified procfs handle (a mount over
/// it cannot redirect the write, CVE-2025-52881); explains the EACCES some
/// hosts give for lowering it (a sandbox that runs its processes with a
/// restricted oom_score_adj, as CI machines do) instead of failing silently.
fn set_oom_score_adj(value: i32) -> Result<()> {
    use std::io::Write;
    let path = "/proc/self/oom_score_adj";
    let rel = format!("{}/oom_score_adj", std::process::id());
    let fd = crate::pathsafe::open_proc(&rel, nix::fcntl::OFlag::O_WRONLY)?;
    match std::fs::File::from(fd).write_all(value.to_string().as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let current = std::fs::read_to_string(path).unwrap_or_default();
            Err(Error::Init {
                step: format!("write {path} ({value})"),
                cause: format!(
                    "{e}: this host refuses to lower oom_score_adj below the current value {} \
                     (set restrict_oom_score_adj in the CRI config)",
                    current.trim()
                ),
                kind: ErrorKind::FailedPrecondition,
            })
        }
        Err(e) => Err(Error::io("write", path, e)),
    }
}

/// chdir into `cwd`, resolved inside the root without magic links (so no
/// `/proc/self/fd/N` or `/proc/<pid>/cwd` can lead out of it), and verify the
/// result is inside the root (CVE-2024-21626).
fn enter_cwd(cwd: &Path) -> Result<()> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let chdir_err = |e| Error::sys(format!("chdir {}", cwd.display()), e);
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(chdir_err)?;
    // RESOLVE_IN_ROOT keeps `..` and absolute symlinks inside the root.
    let rel = match cwd.strip_prefix("/") {
        Ok(r) if !r.as_os_str().is_empty() => r,
        Ok(_) => Path::new("."),
        Err(_) => cwd,
    };
    let dir = openat2(
        &root,
        rel,
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP => Error::spec(
            "process.cwd",
            format!(
                "{} leads through a magic link (e.g. /proc/self/fd/N) or a symlink loop",
                cwd.display()
            ),
        ),
        e => chdir_err(e),
    })?;
    nix::unistd::fchdir(&dir).map_err(chdir_err)?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::spec(
            "process.cwd",
            format!("{} is outside the container root", cwd.display()),
        )),
    }
}

fn env_path(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Resolves `args[0]` as runc does: a name with `/` as is, else through `$PATH`.
pub(super) fn find_executable(name: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    if name.contains('/') {
        let path = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            cwd.join(name)
        };
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err(Error::spec(
                "process.args[0]",
                format!("exec: {name:?}: {} is a directory", path.display()),
            )),
            Ok(_) => Ok(path),
            Err(e) => Err(Error::spec(
                "process.args[0]",
                format!("exec: {name:?}: stat {}: {e}", path.display()),
            )),
        };
    }
    for dir in env_path(env).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        let candidate = if candidate.is_absolute() {
            candidate
        } else {
            cwd.join(candidate)
        };
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::spec(
        "process.args[0]",
        format!("exec: {name:?}: executable file not found in $PATH"),
    ))
}

fn cstrings<'a>(what: &str, items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>> {
    items
        .map(|s| CString::new(s).map_err(|_| Error::spec(what.to_string(), "contains a NUL byte")))
        .collect()
}

/// A process ready to `execve`: limits, cwd and confinement applied.
pub(super) struct Ready {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// Applies the process spec and `confinement` to the calling single-threaded
/// process, in the order the kernel needs: rlimits, oom_score_adj, umask, cwd
/// (resolved inside the root), fds ≥ 3 close-on-exec, then bounding set →
/// user → capabilities → no_new_privileges → seccomp ([`Confinement::apply`]).
pub(super) fn prepare(
    process: &Process,
    exe: &Path,
    confinement: &Confinement,
) -> StepResult<Ready> {
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let argv = cstrings("process.args", args.iter().map(|s| s.as_bytes())).step("prepare args")?;
    let envp = cstrings("process.env", env.iter().map(|s| s.as_bytes())).step("prepare env")?;
    let mut path = cstrings(
        "process.args[0]",
        std::iter::once(exe.as_os_str().as_bytes()),
    )
    .step("prepare args")?;
    apply_rlimits(process).step("rlimits")?;
    if let Some(adj) = process.oom_score_adj() {
        set_oom_score_adj(adj).step("oom_score_adj")?;
    }
    if let Some(mask) = process.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    enter_cwd(process.cwd()).step("cwd")?;
    // Before the confinement: a seccomp profile need not allow close_range
    // (runc closes its fds before loading the filter too). Nothing opens an
    // fd between here and execve.
    mark_fds_cloexec().step("close fds")?;
    confinement
        .apply(&Identity::of(process))
        .map_err(|(step, error)| StepError { step, error })?;
    Ok(Ready {
        path: path.remove(0),
        argv,
        envp,
    })
}

impl Ready {
    /// Execs (every fd ≥ 3 is close-on-exec since [`prepare`]); returns only on failure.
    pub(super) fn exec(self) -> StepError {
        let err = nix::unistd::execve(&self.path, &self.argv, &self.envp).unwrap_err_never();
        let mut what = format!("execve {}", self.path.to_string_lossy());
        if err == nix::errno::Errno::E2BIG {
            // Each string is checked at validation; the total depends on the stack limit.
            what.push_str(" (process.args and process.env together are over the kernel's limit)");
        }
        StepError {
            step: "exec",
            error: Error::sys(what, err),
        }
    }
}

trait NeverOk {
    fn unwrap_err_never(self) -> nix::errno::Errno;
}

impl NeverOk for nix::Result<std::convert::Infallible> {
    fn unwrap_err_never(self) -> nix::errno::Errno {
        match self {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }
}

/// Closes every fd ≥ 3 except `keep`: whatever the caller leaked to us (a host
/// directory fd that could become the cwd, CVE-2024-21626) is gone before the
/// init or exec touches the container.
pub(super) fn close_fds_except(keep: i32) {
    let close = |first: u32, last: u32| {
        if first <= last {
            // SAFETY: close_range on fds nothing in this fresh process owns.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        }
    };
    let keep = keep.max(3) as u32;
    close(3, keep - 1);
    close(keep + 1, u32::MAX);
}

/// Marks every fd ≥ 3 close-on-exec, so nothing of ours (a host directory fd
/// as cwd: CVE-2024-21626) reaches the workload.
fn mark_fds_cloexec() -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(Error::sys("close_range CLOEXEC", nix::errno::Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(
            find_executable("sh", &env, Path::new("/")).ok(),
            Some(PathBuf::from("/bin/sh"))
        );
        let e = find_executable("no-such-tool", &env, Path::new("/"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("process.args[0]: exec: \"no-such-tool\": executable file not found in $PATH")
        );
        let e = find_executable("/bin/nope", &env, Path::new("/"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("stat /bin/nope"), "{e}");
    }
}
