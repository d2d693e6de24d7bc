//! Task events to containerd. Behind a trait so the service logic can be tested with a
//! recording sink; the real sink forwards to containerd's ttrpc event service
//! (`TTRPC_ADDRESS`) from one queue, in order.
//!
//! Events arrive encoded (static `Message::write_to_bytes`) and the `Any` type URL
//! comes from a table keyed by topic. Both avoid rust-protobuf's reflection
//! (`MessageDyn`): building the descriptors of the events file costs about 350 KiB
//! of heap plus a 140 KiB block that would stay resident in every shim.

use std::os::fd::IntoRawFd;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::context::Context;
use tokio::sync::mpsc;

#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes one encoded event; failures are logged, never fatal to the task.
    async fn publish(&self, topic: &str, payload: Vec<u8>);
}

/// Encodes `event` and hands it to `sink` (encoding failures are logged).
pub async fn send<M: Message>(sink: &dyn EventSink, topic: &str, event: M) {
    match event.write_to_bytes() {
        Ok(payload) => sink.publish(topic, payload).await,
        Err(e) => log::warn!("encode event {topic}: {e}"),
    }
}

/// `/tasks/oom` for container `id`.
pub async fn send_oom(sink: &dyn EventSink, id: &str) {
    let event = TaskOOM {
        container_id: id.to_string(),
        ..Default::default()
    };
    send(sink, topics::TASK_OOM_EVENT_TOPIC, event).await;
}

/// A protobuf timestamp (as events and replies carry them).
pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

/// Type URL (full protobuf name) of the event published on `topic`.
pub fn type_url(topic: &str) -> Option<&'static str> {
    Some(match topic {
        topics::TASK_CREATE_EVENT_TOPIC => "containerd.events.TaskCreate",
        topics::TASK_START_EVENT_TOPIC => "containerd.events.TaskStart",
        topics::TASK_OOM_EVENT_TOPIC => "containerd.events.TaskOOM",
        topics::TASK_EXIT_EVENT_TOPIC => "containerd.events.TaskExit",
        topics::TASK_DELETE_EVENT_TOPIC => "containerd.events.TaskDelete",
        topics::TASK_EXEC_ADDED_EVENT_TOPIC => "containerd.events.TaskExecAdded",
        topics::TASK_EXEC_STARTED_EVENT_TOPIC => "containerd.events.TaskExecStarted",
        topics::TASK_PAUSED_EVENT_TOPIC => "containerd.events.TaskPaused",
        topics::TASK_RESUMED_EVENT_TOPIC => "containerd.events.TaskResumed",
        topics::TASK_CHECKPOINTED_EVENT_TOPIC => "containerd.events.TaskCheckpointed",
        _ => return None,
    })
}

/// Events waiting to be forwarded; `publish` blocks (asynchronously) beyond this.
const QUEUE: usize = 1024;
/// Attempts per event before it is dropped (with an error in the log).
const ATTEMPTS: u32 = 5;

/// Forwards to containerd's event service, one event at a time, in publish order.
pub struct ContainerdEvents {
    sender: mpsc::Sender<Envelope>,
    namespace: String,
}

impl ContainerdEvents {
    /// Connects to containerd's ttrpc socket and starts the forwarding task.
    pub fn connect(address: &str, namespace: String) -> std::io::Result<Self> {
        let client = connect(address)?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(forward_all(address.to_string(), client, receiver));
        Ok(ContainerdEvents { sender, namespace })
    }
}

fn connect(address: &str) -> std::io::Result<EventsClient> {
    let stream = std::os::unix::net::UnixStream::connect(address)?;
    // SAFETY: a connected unix stream socket whose ownership moves into the client.
    let client = unsafe { Client::from_raw_unix_socket_fd(stream.into_raw_fd()) };
    Ok(EventsClient::new(client))
}

async fn forward_all(
    address: String,
    mut client: EventsClient,
    mut queue: mpsc::Receiver<Envelope>,
) {
    while let Some(envelope) = queue.recv().await {
        let topic = envelope.topic.clone();
        let mut req = ForwardRequest::new();
        req.envelope = MessageField::some(envelope);
        let mut attempt = 1;
        loop {
            let err = match client.forward(Context::default(), &req).await {
                Ok(_) => break,
                Err(e) => e,
            };
            if attempt >= ATTEMPTS {
                log::error!("event {topic} dropped after {attempt} attempts: {err}");
                break;
            }
            log::warn!("forward event {topic} (attempt {attempt}): {err}; retrying");
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            match connect(&address) {
                Ok(c) => client = c,
                Err(e) => log::warn!("reconnect to containerd events at {address}: {e}"),
            }
            attempt += 1;
        }
    }
}

#[async_trait]
impl EventSink for ContainerdEvents {
    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        let Some(type_url) = type_url(topic) else {
            log::warn!("event on unknown topic {topic} not published");
            return;
        };
        let value = payload;
        let mut any = Any::new();
        any.type_url = type_url.to_string();
        any.value = value;
        let mut envelope = Envelope::new();
        envelope.timestamp = MessageField::some(Timestamp::now());
        envelope.namespace = self.namespace.clone();
        envelope.topic = topic.to_string();
        envelope.event = MessageField::some(any);
        if self.sender.send(envelope).await.is_err() {
            log::warn!("publish {topic}: the event forwarder is gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::events::task::{
        TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit,
        TaskOOM, TaskPaused, TaskResumed, TaskStart,
    };
    use containerd_shim_protos::protobuf::MessageDyn;

    /// Every topic the shim publishes, with a default message of its type.
    fn all_events() -> Vec<(&'static str, Box<dyn MessageDyn>)> {
        vec![
            (topics::TASK_CREATE_EVENT_TOPIC, Box::new(TaskCreate::new())),
            (topics::TASK_START_EVENT_TOPIC, Box::new(TaskStart::new())),
            (topics::TASK_OOM_EVENT_TOPIC, Box::new(TaskOOM::new())),
            (topics::TASK_EXIT_EVENT_TOPIC, Box::new(TaskExit::new())),
            (topics::TASK_DELETE_EVENT_TOPIC, Box::new(TaskDelete::new())),
            (
                topics::TASK_EXEC_ADDED_EVENT_TOPIC,
                Box::new(TaskExecAdded::new()),
            ),
            (
                topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                Box::new(TaskExecStarted::new()),
            ),
            (topics::TASK_PAUSED_EVENT_TOPIC, Box::new(TaskPaused::new())),
            (
                topics::TASK_RESUMED_EVENT_TOPIC,
                Box::new(TaskResumed::new()),
            ),
            (
                topics::TASK_CHECKPOINTED_EVENT_TOPIC,
                Box::new(TaskCheckpointed::new()),
            ),
        ]
    }

    #[test]
    fn type_urls_match_the_protobuf_names() {
        for (topic, event) in all_events() {
            assert_eq!(
                type_url(topic),
                Some(event.descriptor_dyn().full_name()),
                "{topic}"
            );
        }
        assert_eq!(type_url("/tasks/unknown"), None);
    }
}
