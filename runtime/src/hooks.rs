//! OCI hooks (`hooks.prestart`, `createRuntime`, `createContainer`,
//! `startContainer`, `poststart`, `poststop`): which run when, what they see on
//! stdin, and running one with its timeout.
//!
//! A hook is waited for with `waitpid`, so [`run`] is only called from a
//! single-threaded process of ours that no other reaper shares: the container
//! init (createContainer, startContainer) or a hook runner, a re-exec of the
//! init binary that the caller spawns for the hooks of the runtime namespace
//! (prestart, createRuntime, poststart, poststop) — the shim's global
//! `waitpid(-1)` would otherwise collect the hook's exit status (`hook_runner.rs`).
//! `cleanup_bundle` (`shim delete`, a process without a reaper) runs poststop
//! itself.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The six points of the lifecycle where hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    /// The field name under `hooks` in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// The container status in the state a hook of this kind gets (as runc).
    pub fn status(self) -> &'static str {
        match self {
            Kind::Prestart | Kind::CreateRuntime | Kind::CreateContainer => "creating",
            Kind::StartContainer => "created",
            Kind::Poststart => "running",
            Kind::Poststop => "stopped",
        }
    }

    /// Whether a failure fails the operation; the spec has poststart and
    /// poststop failures only logged.
    pub fn fatal(self) -> bool {
        !matches!(self, Kind::Poststart | Kind::Poststop)
    }
}

/// The hooks of `kind` in `spec` (empty when none).
pub fn of(spec: &Spec, kind: Kind) -> &[Hook] {
    let Some(h) = spec.hooks().as_ref() else {
        return &[];
    };
    let list = match kind {
        Kind::Prestart => h.prestart(),
        Kind::CreateRuntime => h.create_runtime(),
        Kind::CreateContainer => h.create_container(),
        Kind::StartContainer => h.start_container(),
        Kind::Poststart => h.poststart(),
        Kind::Poststop => h.poststop(),
    };
    list.as_deref().unwrap_or_default()
}

/// True when the spec has any hook.
pub fn any(spec: &Spec) -> bool {
    Kind::ALL.iter().any(|k| !of(spec, *k).is_empty())
}

/// Checks every hook before anything is created: absolute path, `KEY=VALUE`
/// env, a positive timeout.
pub fn validate(spec: &Spec) -> Result<()> {
    for kind in Kind::ALL {
        for (i, h) in of(spec, kind).iter().enumerate() {
            let field = format!("hooks.{}[{i}]", kind.name());
            if !h.path().is_absolute() {
                return Err(Error::spec(
                    format!("{field}.path"),
                    format!("{} is not an absolute path", h.path().display()),
                ));
            }
            if let Some(t) = h.timeout().filter(|t| *t <= 0) {
                return Err(Error::spec(
                    format!("{field}.timeout"),
                    format!("{t} is not greater than zero"),
                ));
            }
            for (j, e) in h.env().iter().flatten().enumerate() {
                if !e.contains('=') || e.starts_with('=') {
                    return Err(Error::spec(
                        format!("{field}.env[{j}]"),
                        format!("{e:?} is not KEY=VALUE"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The OCI state JSON a hook reads on stdin.
pub fn state(spec: &Spec, id: &str, pid: Option<i32>, bundle: &str, kind: Kind) -> String {
    let mut v = serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": kind.status(),
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    });
    if let (Some(pid), Some(state)) = (pid, v.as_object_mut()) {
        state.insert("pid".into(), pid.into());
    }
    v.to_string()
}

/// What a hook runner is asked to do (sent over the sync channel).
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub kind: Kind,
    pub index: usize,
    pub hook: Hook,
    pub state: String,
}

/// How much of a failed hook's output goes into the error.
const OUTPUT_TAIL: usize = 2048;
/// How often a running hook is checked for having exited when no pidfd tells.
const POLL_MS: i32 = 5;

/// `hooks.<kind>[<i>] (<path>)`: how errors name a hook.
pub fn label(kind: Kind, index: usize, hook: &Hook) -> String {
    format!("hooks.{}[{index}] ({})", kind.name(), hook.path().display())
}

/// Runs the hooks of `kind` in order: the first failure of a fatal kind is
/// returned; failures of the others are logged and the rest still run.
pub fn run_all(kind: Kind, hooks: &[Hook], state: &str) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run(kind, i, h, state) {
            if kind.fatal() {
                return Err(e);
            }
            log::warn!("{e}");
        }
    }
    Ok(())
}

/// Runs one hook: `state` on stdin, only the hook's own env, stdout and stderr
/// kept for the error; its process group SIGKILLed when its timeout passes. A non-zero exit, a
/// signal or the timeout is an error naming the hook.
pub fn run(kind: Kind, index: usize, hook: &Hook, state: &str) -> Result<()> {
    let what = label(kind, index, hook);
    let fail = |reason: String| Error::Hook(format!("{what}: {reason}"));
    let stdin = state_fd(state).map_err(|e| fail(format!("state for stdin: {e}")))?;
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(format!("pipe: {e}")))?;
    let out_w2 = out_w.try_clone().map_err(|e| fail(format!("dup: {e}")))?;
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = hook.args().as_deref().unwrap_or_default().split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Its own process group, so a timeout kills what the hook started too.
    cmd.process_group(0)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(out_w2));
    let child = cmd.spawn().map_err(|e| fail(format!("spawn: {e}")))?;
    // The parent's copies of the write end went with `cmd`.
    drop(cmd);
    let pid = Pid::from_raw(child.id() as i32);
    let timeout = hook
        .timeout()
        .map(|t| Duration::from_secs(t.unsigned_abs()));
    let (status, output, timed_out) = wait(pid, out_r, timeout);
    let tail = || {
        let text = String::from_utf8_lossy(&output);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    };
    match status {
        _ if timed_out => Err(fail(format!(
            "killed after its timeout of {}s{}",
            timeout.map_or(0, |t| t.as_secs()),
            tail()
        ))),
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(WaitStatus::Exited(_, code)) => {
            Err(fail(format!("exited with status {code}{}", tail())))
        }
        Ok(WaitStatus::Signaled(_, sig, _)) => {
            Err(fail(format!("killed by signal {sig}{}", tail())))
        }
        Ok(other) => Err(fail(format!("unexpected wait status {other:?}"))),
        Err(e) => Err(fail(format!("waitpid: {e}"))),
    }
}

/// The state in a memfd, so a large state never blocks on a pipe a hook does
/// not read.
fn state_fd(state: &str) -> std::io::Result<OwnedFd> {
    let fd = memfd_create("tent-hook-state", MFdFlags::MFD_CLOEXEC)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(state.as_bytes())?;
    f.rewind()?;
    Ok(OwnedFd::from(f))
}

/// Waits for `pid` until `timeout` (SIGKILL then), collecting the tail of its
/// output; (wait status, output, timed out).
fn wait(
    pid: Pid,
    out: OwnedFd,
    timeout: Option<Duration>,
) -> (nix::Result<WaitStatus>, Vec<u8>, bool) {
    let start = Instant::now();
    let mut output = Vec::new();
    // Wakes the wait as soon as the hook exits (without it, within POLL_MS).
    let exit_fd = crate::pidfd::open(pid.as_raw()).ok();
    let mut out = Some(std::fs::File::from(out));
    if let Some(f) = &out {
        let _ = nix::fcntl::fcntl(
            f,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            done => {
                if let Some(f) = out.as_mut() {
                    drain(f, &mut output);
                }
                return (done, output, false);
            }
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
            let status = loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => continue,
                    s => break s,
                }
            };
            if let Some(f) = out.as_mut() {
                drain(f, &mut output);
            }
            return (status, output, true);
        }
        // Sleep until output arrives, the hook exits (its pidfd turns readable)
        // or the next check; EOF closes the pipe.
        let mut pfd = [
            libc::pollfd {
                fd: out.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: exit_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds (a negative fd is ignored by poll).
        unsafe { libc::poll(pfd.as_mut_ptr(), 2, POLL_MS) };
        if pfd[0].revents != 0 {
            if let Some(f) = out.as_mut() {
                if drain(f, &mut output) {
                    out = None;
                }
            }
        }
    }
}

/// Reads what is available, keeping the last [`OUTPUT_TAIL`] bytes; true at EOF.
fn drain(f: &mut std::fs::File, output: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                output.extend_from_slice(buf.get(..n).unwrap_or_default());
                if output.len() > OUTPUT_TAIL {
                    output.drain(..output.len() - OUTPUT_TAIL);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hooks: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "annotations": {"a": "b"},
            "hooks": hooks
        }))
        .expect("spec")
    }

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).expect("hook")
    }

    #[test]
    fn validation_names_the_field() {
        let err = |h: serde_json::Value| {
            validate(&spec(h)).map_or_else(|e| e.to_string(), |()| "ok".into())
        };
        assert_eq!(
            err(serde_json::json!({"poststart": [{"path": "/bin/true"}, {"path": "true"}]})),
            "hooks.poststart[1].path: true is not an absolute path"
        );
        assert_eq!(
            err(serde_json::json!({"createRuntime": [{"path": "/bin/true", "timeout": 0}]})),
            "hooks.createRuntime[0].timeout: 0 is not greater than zero"
        );
        assert_eq!(
            err(serde_json::json!({"prestart": [{"path": "/bin/true", "env": ["A"]}]})),
            "hooks.prestart[0].env[0]: \"A\" is not KEY=VALUE"
        );
        assert_eq!(
            err(serde_json::json!({"poststop": [{"path": "/bin/true", "timeout": 3}]})),
            "ok"
        );
    }

    #[test]
    fn state_has_the_fields_of_the_spec() {
        let s = spec(serde_json::json!({}));
        let v: serde_json::Value =
            serde_json::from_str(&state(&s, "c1", Some(42), "/b", Kind::StartContainer))
                .expect("json");
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["id"], "c1");
        assert_eq!(v["status"], "created");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["bundle"], "/b");
        assert_eq!(v["annotations"]["a"], "b");
        let v: serde_json::Value =
            serde_json::from_str(&state(&s, "c1", None, "/b", Kind::Poststop)).expect("json");
        assert_eq!(v["status"], "stopped");
        assert!(v.get("pid").is_none());
    }

    #[test]
    fn a_hook_gets_args_env_and_state_and_its_failure_is_named() {
        // The unit tests' harness is multi-threaded, but nothing else reaps here.
        let dir = std::env::temp_dir().join(format!("tent-hook-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("out");
        // busybox picks its applet by argv[0]: args[0] must reach it as such.
        let h = hook(serde_json::json!({
            "path": "/bin/busybox",
            "args": ["sh", "-c", format!("echo \"$0 $1 $X $HOME\" > {0}; cat >> {0}", out.display()),
                     "zero", "one"],
            "env": ["X=y=z"]
        }));
        run(Kind::Poststart, 0, &h, "{\"id\":\"s\"}").expect("hook runs");
        let got = std::fs::read_to_string(&out).expect("out");
        assert_eq!(got, "zero one y=z \n{\"id\":\"s\"}");
        let h = hook(serde_json::json!({
            "path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]
        }));
        let e = run(Kind::CreateRuntime, 2, &h, "{}").expect_err("fails");
        assert_eq!(
            e.to_string(),
            "hooks.createRuntime[2] (/bin/sh): exited with status 3: nope"
        );
        let h = hook(serde_json::json!({
            "path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1
        }));
        let t = Instant::now();
        let e = run(Kind::Prestart, 0, &h, "{}").expect_err("times out");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(
            e.to_string(),
            "hooks.prestart[0] (/bin/sh): killed after its timeout of 1s"
        );
        let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        let e = run(Kind::Poststop, 0, &h, "{}").expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("hooks.poststop[0] (/nonexistent/hook): spawn: "),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
