//! Task events to containerd. Behind a trait so the service logic can be tested with a
//! recording sink; the real sink is containerd's `RemotePublisher` (ordered queue).

use async_trait::async_trait;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim_protos::protobuf::MessageDyn;
use containerd_shim_protos::ttrpc::context::Context;

#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes one event; failures are logged, never fatal to the task.
    async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>);
}

/// Publishes through containerd's ttrpc event service (`TTRPC_ADDRESS`).
pub struct ContainerdEvents {
    publisher: RemotePublisher,
    namespace: String,
}

impl ContainerdEvents {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        ContainerdEvents {
            publisher,
            namespace,
        }
    }
}

#[async_trait]
impl EventSink for ContainerdEvents {
    async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        if let Err(e) = self
            .publisher
            .publish(Context::default(), topic, &self.namespace, event)
            .await
        {
            log::warn!("publish {topic}: {e}");
        }
    }
}
