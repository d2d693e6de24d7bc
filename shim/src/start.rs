//! `containerd-shim-tent-v1 … start`: find or spawn the shim server for this
//! container's group and print its address. Runs single-threaded, before any tokio.
//!
//! The socket is bound here and handed to the server, so the address we print is
//! connectable the moment containerd reads it. The reply is the plain address, which
//! containerd 1.6, 1.7 and 2.x all read as a version-2 ttrpc shim.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::args::Flags;
use crate::error::{Error, Result};
use crate::server::LISTEN_FD_ENV;

/// The annotation containerd's CRI puts on every container of a pod.
const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

pub fn start(flags: &Flags) -> Result<()> {
    let bundle = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let group = group_id(&bundle, &flags.id)?;
    let address = crate::address::socket_address(&flags.address, &flags.namespace, &group);
    let path = address.trim_start_matches("unix://").to_string();

    // One shim per group: if the group's shim is alive, reuse it.
    if UnixStream::connect(&path).is_ok() {
        write_address(&bundle, &address)?;
        return print_address(&address);
    }
    let listener = bind(&path)?;
    spawn_server(flags, &bundle, &address, &listener)?;
    write_address(&bundle, &address)?;
    print_address(&address)
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
    flags: &Flags,
    bundle: &Path,
    address: &str,
    listener: &UnixListener,
) -> Result<()> {
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
    cmd.spawn().map_err(|e| Error::io("spawn shim server", e))?;
    Ok(())
}

fn write_address(bundle: &Path, address: &str) -> Result<()> {
    let file = bundle.join("address");
    std::fs::write(&file, address).map_err(|e| Error::io(format!("write {}", file.display()), e))
}

fn print_address(address: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(address.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("write address to stdout", e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
