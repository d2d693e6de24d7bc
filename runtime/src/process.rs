//! Setting up the container process right before `execve`: rlimits,
//! oom_score_adj, umask, cwd, user, capabilities, no_new_privs, fds, env.
//! Shared by the container init and (later) `exec`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::Process;

use crate::error::{Error, ErrorKind, Result};

/// An `Error` with the init step that failed, for the sync channel.
#[derive(Debug)]
pub struct StepError {
    pub step: &'static str,
    pub error: Error,
}

pub(crate) trait Step<T> {
    fn step(self, step: &'static str) -> std::result::Result<T, StepError>;
}

impl<T> Step<T> for Result<T> {
    fn step(self, step: &'static str) -> std::result::Result<T, StepError> {
        self.map_err(|error| StepError { step, error })
    }
}

/// The resource number of an OCI rlimit name.
#[allow(clippy::unnecessary_cast)] // the libc type differs between glibc and musl
pub fn rlimit_resource(name: &str) -> Option<u32> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    } as u32)
}

fn apply_rlimits(process: &Process) -> Result<()> {
    for rl in process.rlimits().iter().flatten() {
        let name = rl.typ().to_string();
        let res = rlimit_resource(&name)
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
/// hosts give for lowering it (see DESIGN §6) instead of failing silently.
pub fn set_oom_score_adj(value: i32) -> Result<()> {
    use std::io::Write;
    let path = "/proc/self/oom_score_adj";
    let rel = format!("{}/oom_score_adj", std::process::id());
    let fd = crate::rootfs::open_proc(&rel, nix::fcntl::OFlag::O_WRONLY)?;
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

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
        return Err(Error::sys(what.to_string(), nix::errno::Errno::last()));
    }
    Ok(())
}

fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| Error::sys("setgroups", e))?;
    prctl(libc::PR_SET_KEEPCAPS, 1, "prctl PR_SET_KEEPCAPS")?;
    nix::unistd::setresgid(
        Gid::from_raw(user.gid()),
        Gid::from_raw(user.gid()),
        Gid::from_raw(user.gid()),
    )
    .map_err(|e| Error::sys(format!("setgid {}", user.gid()), e))?;
    nix::unistd::setresuid(
        Uid::from_raw(user.uid()),
        Uid::from_raw(user.uid()),
        Uid::from_raw(user.uid()),
    )
    .map_err(|e| Error::sys(format!("setuid {}", user.uid()), e))?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "prctl PR_SET_KEEPCAPS")
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
pub fn find_executable(name: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
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

/// Applies the process spec to the calling (single-threaded) process and execs
/// `exe`. Returns only on failure.
pub fn setup_and_exec(process: &Process, exe: &Path) -> StepError {
    match setup_and_exec_inner(process, exe) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn setup_and_exec_inner(
    process: &Process,
    exe: &Path,
) -> std::result::Result<std::convert::Infallible, StepError> {
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let argv = cstrings("process.args", args.iter().map(|s| s.as_bytes())).step("prepare args")?;
    let envp = cstrings("process.env", env.iter().map(|s| s.as_bytes())).step("prepare env")?;
    let path = cstrings(
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
    let none = crate::caps::none();
    crate::caps::drop_bounding(process.capabilities().as_ref().unwrap_or(&none))
        .step("capabilities (bounding set)")?;
    switch_user(process).step("user")?;
    match process.capabilities() {
        Some(caps) => crate::caps::apply_sets(caps),
        None => crate::caps::apply_sets(&crate::caps::none()),
    }
    .step("capabilities")?;
    if process.no_new_privileges() == Some(true) {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "prctl PR_SET_NO_NEW_PRIVS")
            .step("no_new_privileges")?;
    }
    mark_fds_cloexec().step("close fds")?;
    let err = nix::unistd::execve(&path[0], &argv, &envp).unwrap_err_never();
    Err(StepError {
        step: "exec",
        error: Error::sys(format!("execve {}", exe.display()), err),
    })
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
pub fn close_fds_except(keep: i32) {
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
pub fn mark_fds_cloexec() -> Result<()> {
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
    fn rlimit_names() {
        // x86_64/aarch64 numbering.
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(7));
        assert_eq!(rlimit_resource("RLIMIT_NPROC"), Some(6));
        assert_eq!(rlimit_resource("NOFILE"), None);
    }

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
