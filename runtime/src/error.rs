//! The crate error: every variant names the failing step and the field or path, and
//! maps onto an [`ErrorKind`] so the shim can pick a ttrpc/gRPC status code.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Broad class of a runtime error, for mapping onto ttrpc/gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    FailedPrecondition,
    Unimplemented,
    Internal,
}

/// A runtime error. Display names the failing step and the field or path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `config.json` (or a request field) is invalid; `field` names where.
    #[error("{field}: {reason}")]
    InvalidSpec { field: String, reason: String },
    /// A valid request asks for something tent does not do yet.
    #[error("{0}")]
    Unsupported(String),
    /// A file-system step failed on `path`.
    #[error("{step} {path}: {source}", path = .path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{step}: {source}")]
    Sys {
        step: String,
        #[source]
        source: nix::Error,
    },
    /// A cgroup operation failed.
    #[error("cgroup {step} {path}: {source}", path = .path.display())]
    Cgroup {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The container init reported a failing step.
    #[error("container init: {step}: {cause}")]
    Init {
        step: String,
        cause: String,
        kind: ErrorKind,
    },
    /// A setup step of an exec'd process failed inside the container.
    #[error("exec: {step}: {cause}")]
    Exec {
        step: String,
        cause: String,
        kind: ErrorKind,
    },
    /// The pod helper reported a failing step (a pauseless pod's namespaces).
    #[error("pod namespaces: {step}: {cause}")]
    Pod {
        step: String,
        cause: String,
        kind: ErrorKind,
    },
    /// The sync channel to the container init broke or carried something unexpected.
    #[error("sync with container init: {0}")]
    Protocol(String),
    /// The process to signal has already exited.
    #[error("process already finished")]
    ProcessFinished,
    /// A precondition on the container's state does not hold.
    #[error("{0}")]
    Precondition(String),
    /// An OCI hook failed (the message names the hook, its path and why).
    #[error("{0}")]
    Hook(String),
    /// `<bundle>/tent-state.json` could not be read or written.
    #[error("state file {path}: {reason}", path = .path.display())]
    State { path: PathBuf, reason: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSpec { .. } => ErrorKind::InvalidArgument,
            Error::Unsupported(_) => ErrorKind::Unimplemented,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Init { kind, .. } | Error::Exec { kind, .. } | Error::Pod { kind, .. } => *kind,
            Error::ProcessFinished => ErrorKind::NotFound,
            Error::Precondition(_) | Error::Hook(_) => ErrorKind::FailedPrecondition,
            Error::Io { .. }
            | Error::Sys { .. }
            | Error::Cgroup { .. }
            | Error::Protocol(_)
            | Error::State { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn spec(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(step: impl Into<String>, source: nix::Error) -> Error {
        Error::Sys {
            step: step.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
