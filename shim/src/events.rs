//! Task events to containerd. Behind a trait so the service logic can be tested with a
//! recording sink; the real sink forwards to containerd's ttrpc event service
//! (`TTRPC_ADDRESS`) from one queue, in order. While containerd cannot be reached
//! (restarting, crashed) the queue waits for it, so the exits that happen meanwhile reach
//! it once it is back (`integration/tests/faults.rs`).
//!
//! Events arrive encoded (static `Message::write_to_bytes`) and the `Any` type URL
//! comes from a table keyed by topic. Both avoid rust-protobuf's reflection
//! (`MessageDyn`): building the descriptors of the events file costs about 350 KiB
//! of heap plus a 140 KiB block that would stay resident in every shim.

use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
use containerd_shim_protos::ttrpc::context;
use containerd_shim_protos::ttrpc::Error as TtrpcError;
use tokio::sync::{mpsc, Notify};

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
/// Attempts per event containerd refuses (it answered with an error) before it is dropped.
const REFUSED_ATTEMPTS: u32 = 5;
/// How long an event is retried while containerd cannot be reached: it is restarting,
/// being upgraded or crashed, and its exits are the state it recovers from. Longer than
/// any restart (runc's shim gives up after about 21 s, and its exits are lost with it).
const UNREACHABLE_FOR: Duration = Duration::from_secs(300);
/// Bound of one forward, so a containerd that accepted the connection but hangs does not
/// hold the queue for ever.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between attempts doubles from 200 ms up to this, so an event reaches a
/// containerd that is back within this long.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One queued event and the container it is about (for the log).
struct Queued {
    envelope: Envelope,
    container: String,
}

/// Forwards to containerd's event service, one event at a time, in publish order.
pub struct ContainerdEvents {
    sender: mpsc::Sender<Queued>,
    namespace: String,
    pending: Arc<Pending>,
}

/// Events published and not yet delivered or dropped, for [`ContainerdEvents::flush`].
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Pending {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl ContainerdEvents {
    /// Connects to containerd's ttrpc socket and starts the forwarding task.
    pub fn connect(address: &str, namespace: String) -> std::io::Result<Self> {
        let client = connect(address)?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        let pending = Arc::new(Pending::default());
        tokio::spawn(forward_all(
            address.to_string(),
            client,
            receiver,
            pending.clone(),
        ));
        Ok(ContainerdEvents {
            sender,
            namespace,
            pending,
        })
    }

    /// Waits (at most `limit`) until every published event was delivered or dropped; false
    /// if some are still queued. A shim told to shut down while containerd was not yet
    /// serving (containerd 1.7+ deletes stopped tasks while it starts) still has the exits
    /// that happened while containerd was away.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.pending.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending.count.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }
}

fn connect(address: &str) -> std::io::Result<EventsClient> {
    let stream = std::os::unix::net::UnixStream::connect(address)?;
    // SAFETY: a connected unix stream socket whose ownership moves into the client.
    let client = unsafe { Client::from_raw_unix_socket_fd(stream.into_raw_fd()) };
    Ok(EventsClient::new(client))
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    After(Duration),
    GiveUp,
}

/// The policy: containerd's own refusal is retried a few times; an unreachable containerd
/// (a socket error, a closed connection, a time-out) until [`UNREACHABLE_FOR`] has passed
/// since the first attempt.
fn retry(refused: bool, attempt: u32, elapsed: Duration) -> Retry {
    let give_up = if refused {
        attempt >= REFUSED_ATTEMPTS
    } else {
        elapsed >= UNREACHABLE_FOR
    };
    if give_up {
        return Retry::GiveUp;
    }
    let backoff = Duration::from_millis(100u64 << attempt.min(5));
    Retry::After(backoff.min(MAX_BACKOFF))
}

async fn forward_all(
    address: String,
    mut client: EventsClient,
    mut queue: mpsc::Receiver<Queued>,
    pending: Arc<Pending>,
) {
    while let Some(Queued {
        envelope,
        container,
    }) = queue.recv().await
    {
        forward_one(&address, &mut client, envelope, &container).await;
        pending.done();
    }
}

/// Delivers one event, retrying by [`retry`]'s policy.
async fn forward_one(
    address: &str,
    client: &mut EventsClient,
    envelope: Envelope,
    container: &str,
) {
    let what = format!("{} of container {container}", envelope.topic);
    let mut req = ForwardRequest::new();
    req.envelope = MessageField::some(envelope);
    let first = tokio::time::Instant::now();
    let mut attempt = 1;
    loop {
        let ctx = context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
        let err = match client.forward(ctx, &req).await {
            Ok(_) => {
                if attempt > 1 {
                    log::info!(
                        "event {what} delivered after {attempt} attempts ({:.1?})",
                        first.elapsed()
                    );
                }
                return;
            }
            Err(e) => e,
        };
        let refused = matches!(err, TtrpcError::RpcStatus(_));
        let pause = match retry(refused, attempt, first.elapsed()) {
            Retry::After(pause) => pause,
            Retry::GiveUp => {
                log::error!(
                    "event {what} dropped after {attempt} attempts ({:.1?}): {err}",
                    first.elapsed()
                );
                return;
            }
        };
        // While containerd is away every attempt fails the same way: say it once.
        if attempt == 1 {
            log::warn!("forward event {what}: {err}; retrying");
        } else {
            log::debug!("forward event {what} (attempt {attempt}): {err}");
        }
        tokio::time::sleep(pause).await;
        match connect(address) {
            Ok(c) => *client = c,
            Err(e) => log::debug!("reconnect to containerd events at {address}: {e}"),
        }
        attempt += 1;
    }
}

/// The container id of an encoded task event: field 1 of every `containerd.events.Task*`.
fn container_of(payload: &[u8]) -> String {
    crate::pb::fields(payload, "event")
        .ok()
        .and_then(|f| f.into_iter().find(|(n, _)| *n == 1))
        .and_then(|(_, v)| v.string("event", "container_id").ok())
        .unwrap_or_default()
}

#[async_trait]
impl EventSink for ContainerdEvents {
    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        let Some(type_url) = type_url(topic) else {
            log::warn!("event on unknown topic {topic} not published");
            return;
        };
        let mut any = Any::new();
        any.type_url = type_url.to_string();
        any.value = payload;
        let mut envelope = Envelope::new();
        envelope.timestamp = MessageField::some(Timestamp::now());
        envelope.namespace = self.namespace.clone();
        envelope.topic = topic.to_string();
        envelope.event = MessageField::some(any);
        let container = container_of(&envelope.event.value);
        let queued = Queued {
            envelope,
            container,
        };
        self.pending.count.fetch_add(1, Ordering::SeqCst);
        if self.sender.send(queued).await.is_err() {
            self.pending.done();
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
    fn an_unreachable_containerd_is_waited_for_and_a_refusal_is_not() {
        let s = Duration::from_secs;
        assert_eq!(
            retry(false, 1, s(0)),
            Retry::After(Duration::from_millis(200))
        );
        assert_eq!(
            retry(false, 2, s(1)),
            Retry::After(Duration::from_millis(400))
        );
        // A restart of a minute: still waited for, never more than MAX_BACKOFF apart.
        assert_eq!(retry(false, 40, s(60)), Retry::After(MAX_BACKOFF));
        assert_eq!(retry(false, 200, UNREACHABLE_FOR), Retry::GiveUp);
        assert_eq!(
            retry(true, 1, s(0)),
            Retry::After(Duration::from_millis(200))
        );
        assert_eq!(retry(true, REFUSED_ATTEMPTS, s(1)), Retry::GiveUp);
    }

    /// A stand-in for containerd's event service: records what it is forwarded.
    #[derive(Default)]
    struct FakeContainerd(std::sync::Mutex<Vec<(String, String)>>);

    #[async_trait]
    impl containerd_shim_protos::shim_async::Events for FakeContainerd {
        async fn forward(
            &self,
            _ctx: &containerd_shim_protos::ttrpc::r#async::TtrpcContext,
            req: ForwardRequest,
        ) -> containerd_shim_protos::ttrpc::Result<containerd_shim_protos::api::Empty> {
            let e = req.envelope.into_option().unwrap_or_default();
            let container = container_of(&e.event.value);
            self.0.lock().expect("lock").push((e.topic, container));
            Ok(Default::default())
        }
    }

    async fn serve_events(
        path: &std::path::Path,
        fake: Arc<FakeContainerd>,
    ) -> containerd_shim_protos::ttrpc::r#async::Server {
        use containerd_shim_protos::ttrpc::r#async::transport::Listener;
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
        let mut server = containerd_shim_protos::ttrpc::r#async::Server::new()
            .add_listener(Listener::try_from(listener).expect("listener"))
            .register_service(containerd_shim_protos::shim_async::create_events(fake));
        server.start().await.expect("start");
        server
    }

    #[tokio::test]
    async fn an_exit_while_containerd_is_away_reaches_it_once_it_is_back() {
        let dir = std::env::temp_dir().join(format!("tent-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let sock = dir.join("containerd.sock.ttrpc");
        let first = Arc::new(FakeContainerd::default());
        let mut server = serve_events(&sock, first.clone()).await;
        let events =
            ContainerdEvents::connect(&sock.display().to_string(), "ns".into()).expect("connect");

        // containerd goes away; a container exits meanwhile.
        server.shutdown().await.expect("shutdown");
        std::fs::remove_file(&sock).expect("remove socket");
        let exit = TaskExit {
            container_id: "c1".into(),
            id: "c1".into(),
            exit_status: 7,
            ..Default::default()
        };
        send(&events, topics::TASK_EXIT_EVENT_TOPIC, exit).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            !events.flush(Duration::from_millis(50)).await,
            "nobody took it yet"
        );

        // containerd is back on the same socket: the event arrives, once.
        let second = Arc::new(FakeContainerd::default());
        let _server = serve_events(&sock, second.clone()).await;
        assert!(events.flush(Duration::from_secs(10)).await, "delivered");
        assert!(first.0.lock().expect("lock").is_empty());
        assert_eq!(
            *second.0.lock().expect("lock"),
            vec![("/tasks/exit".to_string(), "c1".to_string())]
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn events_name_their_container() {
        let exit = TaskExit {
            container_id: "c1".into(),
            id: "exec-1".into(),
            exit_status: 7,
            ..Default::default()
        };
        let bytes = exit.write_to_bytes().expect("encode");
        assert_eq!(container_of(&bytes), "c1");
        let oom = TaskOOM {
            container_id: "c2".into(),
            ..Default::default()
        };
        assert_eq!(container_of(&oom.write_to_bytes().expect("encode")), "c2");
        assert_eq!(container_of(b"\xff\xff"), "");
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
