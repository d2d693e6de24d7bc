//! Shim errors and the one place they become ttrpc status codes.

use containerd_shim_protos::ttrpc::{self, Code};
use tent_runtime::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Runtime(#[from] tent_runtime::Error),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
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

    fn code(&self) -> Code {
        match self {
            Error::Runtime(e) => match e.kind() {
                ErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
                ErrorKind::NotFound => Code::NOT_FOUND,
                ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
                ErrorKind::Unimplemented => Code::UNIMPLEMENTED,
                ErrorKind::Internal => Code::INTERNAL,
            },
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
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
