//! Standard streams: containerd hands the shim FIFO paths (or `file://` URIs); the
//! shim opens them and passes the fds straight to the container init, so output is
//! never copied through the shim and is complete when the process exits.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use tent_runtime::Stdio;

use crate::error::{Error, Result};

/// How long to wait for the writer of the stdin FIFO to appear before giving up.
const STDIN_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What containerd asked for.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Opens the three streams. stdin blocks until containerd's writer opens the FIFO
/// (opening it non-blocking would let the process read EOF before the writer exists).
pub async fn open(paths: &StdioPaths) -> Result<Stdio> {
    let stdin = if paths.stdin.is_empty() {
        None
    } else {
        let path = paths.stdin.clone();
        let open = tokio::task::spawn_blocking(move || {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| Error::io(format!("open stdin {path}"), e))
        });
        match tokio::time::timeout(STDIN_OPEN_TIMEOUT, open).await {
            Ok(Ok(file)) => Some(OwnedFd::from(file?)),
            Ok(Err(join)) => return Err(Error::Internal(format!("open stdin: {join}"))),
            Err(_) => {
                return Err(Error::FailedPrecondition(format!(
                    "open stdin {}: no writer within {STDIN_OPEN_TIMEOUT:?}",
                    paths.stdin
                )))
            }
        }
    };
    Ok(Stdio {
        stdin,
        stdout: open_output("stdout", &paths.stdout)?,
        stderr: open_output("stderr", &paths.stderr)?,
    })
}

/// Opens an output stream: a FIFO read-write (never blocks, never SIGPIPEs the
/// workload if containerd restarts), or a `file://` URI for appending.
fn open_output(name: &str, uri: &str) -> Result<Option<OwnedFd>> {
    if uri.is_empty() {
        return Ok(None);
    }
    let file: File = if let Some(path) = uri.strip_prefix("file://") {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(format!("open {name} log file {path}"), e))?
    } else if let Some((scheme, _)) = uri.split_once("://") {
        if scheme != "fifo" {
            return Err(Error::Unimplemented(format!(
                "{name} log URI scheme {scheme}://"
            )));
        }
        open_fifo(name, &uri[7..])?
    } else {
        open_fifo(name, uri)?
    };
    Ok(Some(OwnedFd::from(file)))
}

fn open_fifo(name: &str, path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(format!("open {name} {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uri_is_created_and_other_schemes_are_refused() {
        let dir = std::env::temp_dir().join(format!("tent-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let log = dir.join("out.log");
        let uri = format!("file://{}", log.display());
        assert!(open_output("stdout", &uri).expect("file uri").is_some());
        assert!(log.exists());
        let err = open_output("stdout", "binary:///usr/bin/logger").expect_err("binary");
        assert!(err.to_string().contains("binary://"), "{err}");
        assert!(open_output("stdout", "").expect("empty").is_none());
        let err = open_output("stderr", "/nonexistent/dir/fifo").expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/dir/fifo"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
