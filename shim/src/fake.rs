//! Test doubles for the shim's two seams: a fake runtime behind
//! [`crate::runtime::Container`] that records every call, and a recording
//! [`EventSink`]; either can be told to fail or (the runtime) to panic. Exits are simulated by calling `Shim::on_exit` as the reaper would.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim_protos::protobuf::Message;
use tent_runtime::{ExecRequest, Stats};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::process::lock;
use crate::runtime::{Container, Create, ExecHandle, NewContainer, OomCounter};

/// How long a test waits for something that should happen at once.
pub const SOON: Duration = Duration::from_secs(5);

/// The fake runtime's shared state: the calls it saw, the pids it hands out, the
/// operations told to fail, and the OOM counter of the last container.
pub struct FakeRuntime {
    calls: watch::Sender<Vec<String>>,
    next_pid: AtomicI32,
    failing: Mutex<HashSet<&'static str>>,
    panicking: Mutex<HashSet<&'static str>>,
    oom_kills: Arc<AtomicU64>,
    oom_wake: Mutex<Option<OwnedFd>>,
}

impl FakeRuntime {
    /// The first container init gets `first_pid`; every create and exec the next pid.
    pub fn new(first_pid: i32) -> Arc<Self> {
        Arc::new(FakeRuntime {
            calls: watch::channel(Vec::new()).0,
            next_pid: AtomicI32::new(first_pid),
            failing: Mutex::new(HashSet::new()),
            panicking: Mutex::new(HashSet::new()),
            oom_kills: Arc::new(AtomicU64::new(0)),
            oom_wake: Mutex::new(None),
        })
    }

    /// The factory the shim holds.
    pub fn create(self: &Arc<Self>) -> Create {
        let fake = self.clone();
        Arc::new(move |req: NewContainer<'_>| {
            fake.call(format!("create {}", req.id))?;
            Ok(Box::new(FakeContainer {
                id: req.id.to_string(),
                pid: fake.take_pid(),
                execs: Mutex::new(Vec::new()),
                fake: fake.clone(),
            }) as Box<dyn Container>)
        })
    }

    /// The pid the next create or exec gets.
    pub fn next_pid(&self) -> i32 {
        self.next_pid.load(Ordering::SeqCst)
    }

    fn take_pid(&self) -> i32 {
        self.next_pid.fetch_add(1, Ordering::SeqCst)
    }

    /// Makes every later call of `op` ("create", "start", "exec", "pause", …) fail.
    pub fn fail(&self, op: &'static str) {
        lock(&self.failing).insert(op);
    }

    /// Makes the next call of `op` panic (a bug in the runtime, as the shim sees it).
    pub fn panic_once(&self, op: &'static str) {
        lock(&self.panicking).insert(op);
    }

    /// Records a call; fails or panics it if told to.
    fn call(&self, what: String) -> Result<()> {
        let op = what.split(' ').next().unwrap_or_default();
        if lock(&self.panicking).remove(op) {
            panic!("fake {what} panicked");
        }
        let fails = lock(&self.failing).contains(op);
        self.calls.send_modify(|calls| calls.push(what.clone()));
        if fails {
            return Err(Error::Internal(format!("fake {what} failed")));
        }
        Ok(())
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// Waits until `what` was called (panics after [`SOON`]).
    pub async fn called(&self, what: &str) {
        let mut rx = self.calls.subscribe();
        let seen = tokio::time::timeout(SOON, rx.wait_for(|c| c.iter().any(|w| w == what)));
        if !matches!(seen.await, Ok(Ok(_))) {
            panic!("{what} was not called; calls: {:?}", self.calls());
        }
    }

    /// The container's OOM counter rose (the kernel killed something).
    pub fn count_oom_kill(&self) {
        self.oom_kills.fetch_add(1, Ordering::SeqCst);
    }

    /// Makes the OOM fd readable, as the kernel does on an OOM event.
    pub fn wake_oom_watch(&self) {
        if let Some(fd) = lock(&self.oom_wake).as_ref() {
            nix::unistd::write(fd, b"x").expect("write to the fake OOM pipe");
        }
    }
}

struct FakeContainer {
    id: String,
    pid: i32,
    /// Pids of the execs started in it (all "alive": `pids` lists them).
    execs: Mutex<Vec<i32>>,
    fake: Arc<FakeRuntime>,
}

impl Container for FakeContainer {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn start(&mut self) -> Result<()> {
        self.fake.call(format!("start {}", self.id))
    }

    fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let all = if all { " all" } else { "" };
        self.fake.call(format!("kill {} {signal}{all}", self.id))
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.fake.call(format!("pids {}", self.id))?;
        let mut pids = vec![self.pid];
        pids.extend(lock(&self.execs).iter());
        Ok(pids)
    }

    fn exec(&self, req: ExecRequest<'_>) -> Result<ExecHandle> {
        let args = req.process.args().clone().unwrap_or_default().join(" ");
        let tty = if req.process.terminal() == Some(true) {
            " (tty)"
        } else {
            ""
        };
        self.fake.call(format!("exec {} {args}{tty}", self.id))?;
        let pid = self.fake.take_pid();
        lock(&self.execs).push(pid);
        let fake = self.fake.clone();
        Ok(ExecHandle::new(pid, None, move |signal| {
            fake.call(format!("signal {pid} {signal}"))
        }))
    }

    fn pause(&self) -> Result<()> {
        self.fake.call(format!("pause {}", self.id))
    }

    fn resume(&self) -> Result<()> {
        self.fake.call(format!("resume {}", self.id))
    }

    fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let limit = resources
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .unwrap_or_default();
        self.fake.call(format!("update {} memory={limit}", self.id))
    }

    fn stats(&self) -> Result<Stats> {
        self.fake.call(format!("stats {}", self.id))?;
        let mut stats = Stats::default();
        stats.pids.current = 1;
        Ok(stats)
    }

    fn oom_watcher(&self) -> Result<Box<dyn OomCounter>> {
        self.fake.call(format!("oom_watcher {}", self.id))?;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| Error::io("fake OOM pipe", e.into()))?;
        *lock(&self.fake.oom_wake) = Some(write);
        Ok(Box::new(FakeOom {
            fd: read,
            kills: self.fake.oom_kills.clone(),
        }))
    }

    fn take_console(&mut self) -> Option<OwnedFd> {
        None
    }

    fn destroy(self: Box<Self>) -> Result<()> {
        self.fake.call(format!("destroy {}", self.id))
    }
}

/// A pipe as the OOM fd and a plain counter.
struct FakeOom {
    fd: OwnedFd,
    kills: Arc<AtomicU64>,
}

impl AsFd for FakeOom {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OomCounter for FakeOom {
    fn oom_kills(&self) -> Result<u64> {
        Ok(self.kills.load(Ordering::SeqCst))
    }

    fn drain(&self) -> Result<()> {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
        Ok(())
    }
}

/// Keeps every published event, in order.
#[derive(Default)]
pub struct RecordingSink {
    events: watch::Sender<Vec<(String, Vec<u8>)>>,
}

#[async_trait]
impl EventSink for RecordingSink {
    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.events
            .send_modify(|events| events.push((topic.to_string(), payload)));
    }
}

impl RecordingSink {
    pub fn topics(&self) -> Vec<String> {
        self.events
            .borrow()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Waits until `n` events were published (panics after [`SOON`]).
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let mut rx = self.events.subscribe();
        let seen = tokio::time::timeout(SOON, rx.wait_for(|e| e.len() >= n));
        if !matches!(seen.await, Ok(Ok(_))) {
            panic!("expected {n} events, got {:?}", self.topics());
        }
        self.topics()
    }

    /// The `i`-th event, decoded as `M`.
    pub fn event<M: Message>(&self, i: usize) -> M {
        let events = self.events.borrow();
        let (topic, payload) = events.get(i).expect("no such event");
        M::parse_from_bytes(payload).unwrap_or_else(|e| panic!("decode {topic}: {e}"))
    }
}
