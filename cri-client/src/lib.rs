//! The CRI v1 client both the operator CLI (`tent doctor`, `tent install`'s verification pod)
//! and the integration tests talk to containerd with: one gRPC channel over containerd's unix
//! socket (tonic, client side only), driven by a current-thread tokio runtime so that callers
//! stay blocking, every call bounded in time. What each caller sends lives with the caller;
//! this crate holds only the connection and the facts both need about kubelet.
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// The generated CRI v1 types and client (`runtime.v1`, from `proto/cri-api-v1.proto`).
pub mod api {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("runtime.v1");
}

pub use tonic::Status;

/// The generated client on the connection's channel, as [`Connection::call`] hands it out.
pub type Client = api::runtime_service_client::RuntimeServiceClient<Channel>;

/// kubelet's default masked paths (`procMount: Default`): without them the CRI asks for an
/// unmasked /proc, which tent's profile refuses.
pub const KUBELET_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// kubelet's default read-only paths.
pub const KUBELET_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Why a bounded call did not return the answer.
#[derive(Debug)]
pub enum CallError {
    /// containerd answered with an error status.
    Status(Status),
    /// No answer within the bound.
    Timeout(Duration),
}

/// A blocking connection to one containerd's CRI.
pub struct Connection {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Connection {
    /// Connects to the CRI at `socket` (containerd's gRPC socket), waiting at most
    /// `connect_timeout`. The error names the socket.
    pub fn open(socket: &Path, connect_timeout: Duration) -> Result<Connection, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime for the CRI client: {e}"))?;
        let sock = socket.to_path_buf();
        let channel = rt
            .block_on(async {
                Endpoint::from_static("http://localhost")
                    .connect_timeout(connect_timeout)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(sock).await?,
                            ))
                        }
                    }))
                    .await
            })
            .map_err(|e| format!("connect to {}: {e}", socket.display()))?;
        Ok(Connection {
            rt,
            client: Client::new(channel),
        })
    }

    /// One call on a clone of the client (cheap: the channel is shared), at most `bound`.
    pub fn call<T, F, Fut>(&self, bound: Duration, f: F) -> Result<T, CallError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let fut = f(self.client.clone());
        self.rt
            .block_on(async { tokio::time::timeout(bound, fut).await })
            .map_err(|_| CallError::Timeout(bound))?
            .map(tonic::Response::into_inner)
            .map_err(CallError::Status)
    }
}
