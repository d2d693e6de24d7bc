//! `containerd-shim-tent-v1 … delete`: containerd's cleanup after a shim died (or, for a
//! pod's sandbox, after ShutdownSandbox). Kills what is left, unmounts and removes state and
//! the dead server's socket, and answers with a `DeleteResponse` on stdout (exit status 137,
//! as runc's shim reports).
//!
//! A sandbox bundle (containerd 2.x's shim sandbox controller) has no container: its
//! server is ended if it still runs (`shim.pid`, checked to be our server for this id),
//! then the pod's containers, which containerd never `shim delete`s with protocol 3 (from
//! the copies of their `tent-state.json` the sandbox keeps, since containerd may remove
//! their bundles first), then the pod's pins, files and socket
//! ([`crate::sandbox::cleanup_bundle`]).

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use crate::args::Flags;
use crate::error::{Error, Result};

/// How long `delete` waits for a killed sandbox server to be gone.
const SERVER_EXIT: Duration = Duration::from_secs(5);

pub fn delete(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|e| Error::io("current directory", e))?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let pid = if crate::start::is_sandbox_bundle(&bundle) {
        delete_sandbox(&bundle, &flags.id)?
    } else {
        let pid = tent_runtime::cleanup_bundle(&bundle, &flags.id)?;
        remove_dead_socket(&bundle);
        pid
    };
    let response = DeleteResponse {
        pid: pid.unwrap_or(0) as u32,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: crate::events::timestamp(SystemTime::now()),
        ..Default::default()
    };
    let bytes = response
        .write_to_bytes()
        .map_err(|e| Error::Internal(format!("encode DeleteResponse: {e}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("write DeleteResponse", e))
}

fn delete_sandbox(bundle: &Path, id: &str) -> Result<Option<i32>> {
    if let Some(pid) = our_server(bundle, id) {
        log::info!("sandbox {id}: ending its server {pid}");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let t = Instant::now();
        while alive(pid) && t.elapsed() < SERVER_EXIT {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for (cid, dir) in crate::sandbox::kept_containers(bundle) {
        match tent_runtime::cleanup_bundle(&dir, &cid) {
            Ok(_) => log::info!("sandbox {id}: cleaned up container {cid}"),
            Err(e) => eprintln!("sandbox {id}: container {cid}: {e}"),
        }
    }
    // Before the bundle's files go: `address` names the killed server's socket.
    remove_dead_socket(bundle);
    crate::sandbox::cleanup_bundle(bundle)?;
    Ok(None)
}

/// The pid in `<bundle>/shim.pid` if it is still our server for sandbox `id`.
fn our_server(bundle: &Path, id: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(bundle.join(crate::start::PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args
        .first()
        .is_some_and(|a| a.ends_with(crate::NAME.as_bytes()));
    let named = args
        .windows(2)
        .any(|w| matches!(w, [flag, value] if *flag == b"-id" && *value == id.as_bytes()));
    (ours && named && alive(pid)).then_some(pid)
}

/// Running (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Removes the socket of a server that died (SIGKILL leaves it, and nothing else removes
/// it: a pod's sandbox id is never reused, so every crashed pod shim would leave one in
/// `/run/containerd/s`). Only the path the bundle's `address` names, only a socket, only
/// when nobody answers on it (a pod's shim still serving other containers keeps it), and
/// only if it is still the file that refused. Best effort: the cleanup does not fail on it.
fn remove_dead_socket(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = Path::new(address.trim().trim_start_matches("unix://"));
    if !path.is_absolute() {
        return;
    }
    let Ok(before) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !before.file_type().is_socket() {
        return;
    }
    match UnixStream::connect(path) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        _ => return,
    }
    let same = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.dev() == before.dev() && m.ino() == before.ino());
    if same {
        if let Err(e) = std::fs::remove_file(path) {
            eprintln!("remove the dead shim's socket {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn bundle_with_address(name: &str, socket: &Path) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tent-delete-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bundle");
        std::fs::write(dir.join("address"), format!("unix://{}", socket.display()))
            .expect("address");
        dir
    }

    #[test]
    fn a_dead_servers_socket_goes_and_a_live_ones_stays() {
        let dir = std::env::temp_dir().join(format!("tent-delete-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");

        let live = dir.join("live");
        let _listener = UnixListener::bind(&live).expect("bind");
        let bundle = bundle_with_address("live", &live);
        remove_dead_socket(&bundle);
        assert!(live.exists(), "a socket someone listens on is kept");

        let dead = dir.join("dead");
        drop(UnixListener::bind(&dead).expect("bind"));
        let bundle = bundle_with_address("dead", &dead);
        remove_dead_socket(&bundle);
        assert!(!dead.exists(), "a socket nobody answers on is removed");

        let file = dir.join("plain");
        std::fs::write(&file, "x").expect("file");
        let bundle = bundle_with_address("plain", &file);
        remove_dead_socket(&bundle);
        assert!(file.exists(), "only sockets are removed");
        for name in ["live", "dead", "plain"] {
            let _ = std::fs::remove_dir_all(bundle_with_address(name, &file));
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
