//! The CLI's errors: each names the path, the container or the image it was
//! working on, and the step that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line; `tent audit --help` says what is expected.
    #[error("{0}")]
    Usage(String),
    /// A system call on `path` failed.
    #[error("{step} {path}: {source}", path = .path.display())]
    Sys {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// Running or reading `path` failed.
    #[error("{step} {path}: {source}", path = .path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The walk of the root failed.
    #[error(transparent)]
    Audit(#[from] tent_audit::Error),
    /// `ctr` (containerd's client) refused or failed; `detail` is its stderr.
    #[error("{step}: {detail}")]
    Containerd { step: String, detail: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn sys(step: &'static str, path: impl Into<PathBuf>, source: nix::Error) -> Self {
        Error::Sys {
            step,
            path: path.into(),
            source,
        }
    }
}
