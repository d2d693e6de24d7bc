//! `containerd-shim-tent-v1 … delete`: containerd's cleanup after a shim died.
//! Kills what is left, unmounts and removes state, and answers with a
//! `DeleteResponse` on stdout (exit status 137, as runc's shim reports).

use std::io::Write;
use std::path::PathBuf;
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
