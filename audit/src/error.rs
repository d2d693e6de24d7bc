//! The walk's errors: only the root itself can fail a walk (an entry that
//! cannot be read is a finding, not an error).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on `path` failed.
    #[error("{step} {path}: {source}", path = .path.display())]
    Sys {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// Reading `path` failed.
    #[error("{step} {path}: {source}", path = .path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
