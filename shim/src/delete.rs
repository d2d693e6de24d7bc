//! `containerd-shim-tent-v1 … delete`: containerd's cleanup after a shim died (or, for a
//! pod's sandbox, after ShutdownSandbox). Kills what is left, unmounts and removes state,
//! and answers with a `DeleteResponse` on stdout (exit status 137, as runc's shim reports).
//!
//! A sandbox bundle (containerd 2.x's shim sandbox controller) has no container: its
//! server is ended if it still runs (`shim.pid`, checked to be our server for this id),
//! then the pod's containers, which containerd never `shim delete`s with protocol 3 (from
//! the copies of their `tent-state.json` the sandbox keeps, since containerd may remove
//! their bundles first), then the pod's pins, files and socket
//! ([`crate::sandbox::cleanup_bundle`]).

use std::io::Write;
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
        tent_runtime::cleanup_bundle(&bundle, &flags.id)?
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
    crate::sandbox::cleanup_bundle(bundle)?;
    // A killed server leaves its socket file.
    if let Ok(a) = std::fs::read_to_string(bundle.join("address")) {
        let path = a.trim().trim_start_matches("unix://").to_string();
        if !path.is_empty() && std::os::unix::net::UnixStream::connect(&path).is_err() {
            let _ = std::fs::remove_file(&path);
        }
    }
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
