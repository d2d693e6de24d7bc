//! Shim errors and the one place they become ttrpc status codes.

use containerd_shim_protos::ttrpc::{self, Code};
use tent_runtime::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Runtime(#[from] tent_runtime::Error),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("exec {exec_id} not found in container {container_id}")]
    ExecNotFound {
        container_id: String,
        exec_id: String,
    },
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    #[error("container {0} already exists")]
    ContainerExists(String),
    #[error("exec {exec_id} already exists in container {container_id}")]
    ExecExists {
        container_id: String,
        exec_id: String,
    },
    /// Signalling a process that has exited (containerd expects NOT_FOUND).
    #[error("{process}: process already finished")]
    Finished { process: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("not implemented: {0}")]
    Unimplemented(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True for errors containerd sees as NOT_FOUND (from the shim or the runtime).
    pub fn is_not_found(&self) -> bool {
        self.code() == Code::NOT_FOUND
    }

    fn code(&self) -> Code {
        match self {
            Error::Runtime(e) => match e.kind() {
                ErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
                ErrorKind::NotFound => Code::NOT_FOUND,
                ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
                ErrorKind::Unimplemented => Code::UNIMPLEMENTED,
                ErrorKind::Internal => Code::INTERNAL,
            },
            Error::ContainerNotFound(_)
            | Error::SandboxNotFound(_)
            | Error::ExecNotFound { .. }
            | Error::Finished { .. } => Code::NOT_FOUND,
            Error::ContainerExists(_) | Error::ExecExists { .. } => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Io { .. } | Error::Internal(_) => Code::INTERNAL,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        // The full cause chain, so containerd (and `ctr`) show why, not just what.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), message))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: Error) -> (Code, String) {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => (s.code(), s.message),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn lookups_and_finished_processes_read_as_sentences_with_their_codes() {
        let (container_id, exec_id) = ("c1".to_string(), "e1".to_string());
        assert_eq!(
            status(Error::ContainerNotFound("c1".into())),
            (Code::NOT_FOUND, "container c1 not found".into())
        );
        assert_eq!(
            status(Error::ExecNotFound {
                container_id: container_id.clone(),
                exec_id: exec_id.clone(),
            }),
            (Code::NOT_FOUND, "exec e1 not found in container c1".into())
        );
        assert_eq!(
            status(Error::ExecExists {
                container_id,
                exec_id
            }),
            (
                Code::ALREADY_EXISTS,
                "exec e1 already exists in container c1".into()
            )
        );
        assert_eq!(
            status(Error::Finished {
                process: "container c1".into()
            }),
            (
                Code::NOT_FOUND,
                "container c1: process already finished".into()
            )
        );
    }

    #[test]
    fn io_errors_keep_their_cause() {
        let io = Error::io("open stdout /x", std::io::Error::other("gone"));
        assert!(!io.is_not_found());
        assert_eq!(status(io), (Code::INTERNAL, "open stdout /x: gone".into()));
    }
}
