//! Panic policy: one request's panic stays that request's.
//!
//! One shim serves every container of a pod, so a panic that ended the process would
//! take the pod's other containers' managers with it. The release profile therefore
//! unwinds (`panic = "unwind"`, enforced below), and every Task and Sandbox API request runs under
//! [`isolated`]: a panic is logged with its location and answered with an `Internal`
//! status naming the request, and the shim keeps serving. Without this, ttrpc's
//! per-request task would swallow the panic and never answer (containerd would wait).
//! Runtime work runs on tokio's blocking pool, whose panics already arrive as a
//! `JoinError` (mapped to `Internal` where it is awaited); shared state sits behind
//! poison-tolerant locks ([`crate::process::lock`]).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;

use containerd_shim_protos::ttrpc::Result as TtrpcResult;

use crate::error::Error;

// An abort would bypass `isolated`; a release build with it is a policy change, not a tweak.
#[cfg(all(panic = "abort", not(debug_assertions)))]
compile_error!("the shim must unwind: one request's panic must not end every container's manager (see shim/src/isolate.rs)");

/// Runs one request; a panic in it becomes an `Internal` error for that request alone.
pub async fn isolated<T>(
    rpc: &'static str,
    request: impl Future<Output = TtrpcResult<T>>,
) -> TtrpcResult<T> {
    let mut request = Box::pin(request);
    std::future::poll_fn(move |cx| {
        // AssertUnwindSafe: what a request shares with others is behind poison-tolerant
        // locks; the request itself is abandoned.
        match catch_unwind(AssertUnwindSafe(|| request.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let what = message(payload.as_ref());
                log::error!("{rpc}: request panicked ({what}); answered Internal, still serving");
                Poll::Ready(Err(Error::Internal(format!(
                    "{rpc}: the shim hit a bug (panic: {what}); the request was abandoned, the shim keeps serving"
                ))
                .into()))
            }
        }
    })
    .await
}

/// Sends panic reports (message and location) to the shim log, where operators look,
/// instead of a stderr nobody reads.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        log::error!("panicked{location}: {}", message(info.payload()));
    }));
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string payload".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::ttrpc::{self, Code};

    fn status<T: std::fmt::Debug>(r: TtrpcResult<T>) -> (Code, String) {
        match r {
            Err(ttrpc::Error::RpcStatus(s)) => (s.code(), s.message),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_panicking_request_is_answered_internal_and_the_next_one_served() {
        let (code, msg) = status(
            isolated("create", async {
                tokio::task::yield_now().await;
                if true {
                    panic!("boom in a handler");
                }
                Ok(1)
            })
            .await,
        );
        assert_eq!(code, Code::INTERNAL);
        assert!(
            msg.contains("create") && msg.contains("boom in a handler"),
            "{msg}"
        );
        assert_eq!(isolated("state", async { Ok(2) }).await.ok(), Some(2));
    }

    #[tokio::test]
    async fn errors_pass_through_unchanged() {
        let r: TtrpcResult<()> = isolated("kill", async {
            Err(Error::ContainerNotFound("c9".into()).into())
        })
        .await;
        assert_eq!(status(r).0, Code::NOT_FOUND);
    }
}
