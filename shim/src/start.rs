//! `containerd-shim-tent-v1 … start`: find or spawn the shim server for this
//! container's group and print its address. Runs single-threaded, before any tokio.
//!
//! The socket is bound here and handed to the server, so the address we print is
//! connectable the moment containerd reads it. The reply follows what containerd
//! wrote on stdin (see [`crate::bootstrap`]): for 2.3+'s BootstrapParams a protobuf
//! `BootstrapResult` (task API v3), else the plain address, which containerd 1.6,
//! 1.7 and 2.0–2.2 read as a version-2 ttrpc shim. The server serves both names.
//!
//! A new server is placed as containerd's runc shim places itself: into runc's
//! `ShimCgroup` if the options name one, and at containerd's OOM score + 1.
//!
//! A pod's sandbox started by containerd 2.x's shim sandbox controller (`sandboxer =
//! "shim"`, bundle under `io.containerd.sandbox.controller.v1.shim`) gets the JSON reply
//! with protocol version 3: containerd then sends the pod's containers to this shim
//! without a `start`/`delete` per container. Its pid goes to `<bundle>/shim.pid`, so
//! `delete` can end a server that did not exit.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::args::Flags;
use crate::bootstrap::Input;
use crate::error::{Error, Result};
use crate::server::LISTEN_FD_ENV;

/// The annotation containerd's CRI puts on every container of a pod.
const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// The directory of containerd 2.x's shim sandbox controller (its bundles' grandparent).
pub const SANDBOX_CONTROLLER_DIR: &str = "io.containerd.sandbox.controller.v1.shim";
/// The server's pid in a sandbox bundle.
pub const PID_FILE: &str = "shim.pid";
/// The highest `oom_score_adj` there is.
const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// What the new server is started with, from the flags and containerd's stdin.
struct Launch<'a> {
    flags: &'a Flags,
    /// `-log-level` for the server (BootstrapParams' level), if containerd named one.
    log_level: Option<log::LevelFilter>,
    /// containerd's TTRPC address from BootstrapParams, when the environment lacks it.
    ttrpc_address: Option<String>,
    shim_cgroup: Option<String>,
}

pub fn start(flags: &Flags) -> Result<()> {
    let mut stdin = Vec::new();
    std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|e| Error::io("read start's stdin", e))?;
    let input = Input::parse(&stdin, &flags.id, &flags.namespace)?;
    let mut shim_cgroup = None;
    for any in input.options() {
        if let Some(runc) = crate::runc_options::decode(any)? {
            shim_cgroup = Some(runc.shim_cgroup).filter(|c| !c.is_empty());
        }
    }
    let (dir, launch) = match &input {
        Input::Bootstrap(p) => (
            p.socket_dir
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| crate::address::SOCKET_DIR.to_string()),
            Launch {
                flags,
                log_level: Some(crate::bootstrap::log_level(p.log_level)),
                ttrpc_address: Some(p.ttrpc_address.clone()).filter(|a| !a.is_empty()),
                shim_cgroup,
            },
        ),
        Input::Legacy(_) => (
            crate::address::SOCKET_DIR.to_string(),
            Launch {
                flags,
                log_level: None,
                ttrpc_address: None,
                shim_cgroup,
            },
        ),
    };
    let bundle = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let sandbox = is_sandbox_bundle(&bundle);
    let reply_as = match input {
        Input::Bootstrap(_) => Reply::Bootstrap,
        Input::Legacy(_) if sandbox => Reply::JsonV3,
        Input::Legacy(_) => Reply::Plain,
    };
    let group = group_id(&bundle, &flags.id)?;
    let address = crate::address::socket_address(&dir, &flags.address, &flags.namespace, &group);
    let path = address.trim_start_matches("unix://").to_string();

    // One shim per group: if the group's shim is alive, reuse it.
    if UnixStream::connect(&path).is_ok() {
        write_address(&bundle, &address)?;
        return reply(&address, reply_as);
    }
    let listener = bind(&path)?;
    let child = match spawn_server(&launch, &bundle, &address, &listener) {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let placed = place(&launch, &child)
        .and_then(|_| write_address(&bundle, &address))
        .and_then(|_| match sandbox {
            true => write_pid(&bundle, child.id()),
            false => Ok(()),
        });
    if let Err(e) = placed {
        // Leave nothing behind: no half-placed server, no socket.
        abandon(child);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    reply(&address, reply_as)
}

/// A bundle made by containerd 2.x's shim sandbox controller.
pub fn is_sandbox_bundle(bundle: &Path) -> bool {
    bundle
        .ancestors()
        .nth(2)
        .and_then(Path::file_name)
        .is_some_and(|n| n == SANDBOX_CONTROLLER_DIR)
}

fn write_pid(bundle: &Path, pid: u32) -> Result<()> {
    let file = bundle.join(PID_FILE);
    std::fs::write(&file, pid.to_string())
        .map_err(|e| Error::io(format!("write {}", file.display()), e))
}

/// How `start` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// containerd 2.3+: a protobuf `BootstrapResult`.
    Bootstrap,
    /// containerd 2.0–2.2's sandbox controller: JSON, version 3.
    JsonV3,
    /// The plain address (1.6, 1.7, and 2.x tasks: version 2).
    Plain,
}

/// Containers of one Kubernetes pod share the pod's shim.
fn group_id(bundle: &Path, id: &str) -> Result<String> {
    let config = bundle.join("config.json");
    let Ok(text) = std::fs::read(&config) else {
        return Ok(id.to_string());
    };
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", config.display())))?;
    Ok(value
        .pointer("/annotations")
        .and_then(|a| a.get(SANDBOX_ID_ANNOTATION))
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
        .to_string())
}

fn bind(path: &str) -> Result<UnixListener> {
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    // A socket file nobody answers on is left over from a dead shim.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("remove stale socket {path}"), e)),
    }
    UnixListener::bind(path).map_err(|e| Error::io(format!("bind {path}"), e))
}

fn spawn_server(
    launch: &Launch<'_>,
    bundle: &Path,
    address: &str,
    listener: &UnixListener,
) -> Result<Child> {
    let flags = launch.flags;
    let exe = std::env::current_exe().map_err(|e| Error::io("locate own binary", e))?;
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.current_dir(bundle)
        .args([
            "-namespace",
            &flags.namespace,
            "-id",
            &flags.id,
            "-address",
            &flags.address,
        ])
        .args(["-publish-binary", &flags.publish_binary, "-socket", address])
        .env(LISTEN_FD_ENV, fd.to_string())
        // containerd reads our stdout to EOF: the server must not hold it.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if flags.debug {
        cmd.arg("-debug");
    }
    if let Some(level) = launch.log_level {
        cmd.args(["-log-level", level.as_str()]);
    }
    if let (Some(ttrpc), None) = (&launch.ttrpc_address, std::env::var_os("TTRPC_ADDRESS")) {
        cmd.env("TTRPC_ADDRESS", ttrpc.trim_start_matches("unix://"));
    }
    // SAFETY: `start` is single-threaded; setsid and fcntl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Let the listener survive exec (it is CLOEXEC in this process).
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| Error::io("spawn shim server", e))
}

/// Puts the new server where containerd's runc shim puts itself.
fn place(launch: &Launch<'_>, child: &Child) -> Result<()> {
    let pid = child.id() as i32;
    if let Some(cgroup) = &launch.shim_cgroup {
        tent_runtime::join_cgroup(cgroup, pid)
            .map_err(|e| Error::InvalidArgument(format!("start: runc option {e}")))?;
    }
    adjust_oom_score(std::os::unix::process::parent_id() as i32, pid)
}

/// The server's `oom_score_adj` is containerd's (our parent's) + 1, capped: the
/// kernel's OOM killer picks a shim before the containerd that manages it.
fn adjust_oom_score(parent: i32, pid: i32) -> Result<()> {
    let from = format!("/proc/{parent}/oom_score_adj");
    let text = std::fs::read_to_string(&from).map_err(|e| Error::io(format!("read {from}"), e))?;
    let score: i32 = text
        .trim()
        .parse()
        .map_err(|e| Error::Internal(format!("{from}: {:?}: {e}", text.trim())))?;
    let to = format!("/proc/{pid}/oom_score_adj");
    let value = score.saturating_add(1).min(OOM_SCORE_ADJ_MAX);
    match std::fs::write(&to, value.to_string()) {
        Ok(()) => Ok(()),
        // Lowering a score needs CAP_SYS_RESOURCE; without it (a user namespace, a
        // sandbox) the server keeps the score it inherited, as containerd's own
        // shims do. Raising never needs it, so any other failure is an error.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && value < inherited(pid) => {
            Ok(())
        }
        Err(e) => Err(Error::io(format!("write {value} to {to}"), e)),
    }
}

/// The score `pid` has now (`i32::MIN` if unreadable, so nothing counts as lower).
fn inherited(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(i32::MIN)
}

/// Ends a server that could not be set up as asked.
fn abandon(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn write_address(bundle: &Path, address: &str) -> Result<()> {
    let file = bundle.join("address");
    std::fs::write(&file, address).map_err(|e| Error::io(format!("write {}", file.display()), e))
}

/// The address, as a `BootstrapResult` for containerd 2.3+, JSON version 3 for a 2.x
/// sandbox, plain otherwise.
fn reply(address: &str, how: Reply) -> Result<()> {
    let bytes = match how {
        Reply::Bootstrap => crate::bootstrap::encode_result(address)?,
        Reply::JsonV3 => serde_json::json!({"version": 3, "address": address, "protocol": "ttrpc"})
            .to_string()
            .into_bytes(),
        Reply::Plain => address.as_bytes().to_vec(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("write the start reply to stdout", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_score_adj_is_the_parents_plus_one_capped() {
        let sleep = || {
            Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("spawn sleep")
        };
        let (mut parent, mut child) = (sleep(), sleep());
        let score = |c: &Child| {
            std::fs::read_to_string(format!("/proc/{}/oom_score_adj", c.id()))
                .expect("read oom_score_adj")
                .trim()
                .to_string()
        };
        let mut results = Vec::new();
        // Raising only: lowering needs CAP_SYS_RESOURCE, which a sandbox lacks.
        for given in ["5", "999", "1000"] {
            std::fs::write(format!("/proc/{}/oom_score_adj", parent.id()), given)
                .expect("set the parent's score");
            adjust_oom_score(parent.id() as i32, child.id() as i32).expect("adjust");
            results.push(score(&child));
        }
        for c in [&mut parent, &mut child] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert_eq!(results, ["6", "1000", "1000"]);
        let err = adjust_oom_score(i32::MAX, 1).expect_err("no such parent");
        assert!(err.to_string().contains("oom_score_adj"), "{err}");
    }

    #[test]
    fn sandbox_bundles_are_told_by_their_controllers_dir() {
        assert!(is_sandbox_bundle(Path::new(
            "/run/containerd/io.containerd.sandbox.controller.v1.shim/k8s.io/abc"
        )));
        assert!(!is_sandbox_bundle(Path::new(
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc"
        )));
        assert!(!is_sandbox_bundle(Path::new("/")));
    }

    #[test]
    fn pods_group_by_sandbox_id() {
        let dir = std::env::temp_dir().join(format!("tent-start-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        assert_eq!(group_id(&dir, "c1").expect("no config"), "c1");
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .expect("write");
        assert_eq!(group_id(&dir, "c1").expect("config"), "pod1");
        std::fs::write(dir.join("config.json"), "{not json").expect("write");
        let err = group_id(&dir, "c1").expect_err("malformed");
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
