//! `containerd-shim-tent-v1 … delete`: containerd's cleanup after a shim died.
//! Kills what is left, unmounts and removes state and the dead server's socket, and
//! answers with a `DeleteResponse` on stdout (exit status 137, as runc's shim reports).

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use crate::args::Flags;
use crate::error::{Error, Result};

pub fn delete(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|e| Error::io("current directory", e))?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let pid = tent_runtime::cleanup_bundle(&bundle, &flags.id)?;
    remove_dead_socket(&bundle);
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
