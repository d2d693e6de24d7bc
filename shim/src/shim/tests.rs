//! The shim's state machine against a fake runtime and a recording event sink:
//! the event sequences containerd expects, exits that race registration, exec ids
//! reused, Delete racing an exit, OOM before exit. Exits are injected through
//! [`Shim::on_exit`], as the reaper delivers them.

use containerd_shim_protos::events::task::{TaskExecStarted, TaskExit, TaskOOM};
use containerd_shim_protos::protobuf::well_known_types::any::Any;

use super::*;
use crate::fake::{FakeRuntime, RecordingSink, SOON};

const C1: &str = "c1";
/// The fake gives the first container this pid, and counts up from it.
const INIT_PID: i32 = 1000;

const CREATE: &str = "/tasks/create";
const START: &str = "/tasks/start";
const EXEC_ADDED: &str = "/tasks/exec-added";
const EXEC_STARTED: &str = "/tasks/exec-started";
const EXIT: &str = "/tasks/exit";
const DELETE: &str = "/tasks/delete";
const OOM: &str = "/tasks/oom";
const PAUSED: &str = "/tasks/paused";
const RESUMED: &str = "/tasks/resumed";

struct Harness {
    shim: Arc<Shim>,
    fake: Arc<FakeRuntime>,
    events: Arc<RecordingSink>,
}

fn harness() -> Harness {
    let fake = FakeRuntime::new(INIT_PID);
    let events = Arc::new(RecordingSink::default());
    let shim = Arc::new(Shim::new(events.clone(), fake.create(), "ns1".into()));
    Harness { shim, fake, events }
}

impl Harness {
    async fn create(&self, id: &str) -> i32 {
        let resp = self
            .shim
            .create(CreateTaskRequest {
                id: id.to_string(),
                bundle: format!("/run/bundles/{id}"),
                ..Default::default()
            })
            .await
            .expect("create");
        resp.pid as i32
    }

    async fn start(&self, id: &str, exec_id: &str) -> Result<i32> {
        let resp = self
            .shim
            .start(StartRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            })
            .await?;
        Ok(resp.pid as i32)
    }

    /// A created and started container.
    async fn running(&self, id: &str) -> i32 {
        self.create(id).await;
        self.start(id, "").await.expect("start")
    }

    async fn exec(&self, id: &str, exec_id: &str) -> Result<()> {
        let spec = br#"{"args":["sleep","9"],"cwd":"/","user":{"uid":0,"gid":0}}"#;
        self.shim
            .exec(ExecProcessRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                spec: MessageField::some(Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                    value: spec.to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
    }

    async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        self.shim
            .kill(KillRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                signal,
                all,
                ..Default::default()
            })
            .await
    }

    async fn wait(&self, id: &str, exec_id: &str) -> u32 {
        let wait = self.shim.wait(WaitRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        });
        tokio::time::timeout(SOON, wait)
            .await
            .expect("wait returned in time")
            .expect("wait")
            .exit_status
    }

    async fn delete(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        self.shim
            .delete(DeleteRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            })
            .await
    }

    async fn state(&self, id: &str, exec_id: &str) -> Result<StateResponse> {
        self.shim
            .state(StateRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            })
            .await
    }

    async fn status(&self, id: &str, exec_id: &str) -> api::Status {
        let state = self.state(id, exec_id).await.expect("state");
        state.status.enum_value().expect("a known status")
    }

    /// Lets spawned exit recordings run, then returns the topics so far.
    async fn settled_topics(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.events.topics()
    }
}

#[tokio::test]
async fn init_lifecycle_publishes_create_start_exit_delete() {
    let h = harness();
    assert_eq!(h.create(C1).await, INIT_PID);
    assert_eq!(h.status(C1, "").await, api::Status::CREATED);
    assert_eq!(h.start(C1, "").await.expect("start"), INIT_PID);
    assert_eq!(h.status(C1, "").await, api::Status::RUNNING);

    h.shim.on_exit(INIT_PID, 3);
    assert_eq!(h.wait(C1, "").await, 3);
    let state = h.state(C1, "").await.expect("state");
    assert_eq!(state.status.enum_value(), Ok(api::Status::STOPPED));
    assert_eq!(state.exit_status, 3);

    let deleted = h.delete(C1, "").await.expect("delete");
    assert_eq!((deleted.pid, deleted.exit_status), (INIT_PID as u32, 3));
    assert_eq!(h.events.topics(), [CREATE, START, EXIT, DELETE]);
    let exit: TaskExit = h.events.event(2);
    assert_eq!(
        (exit.container_id.as_str(), exit.id.as_str()),
        (C1, C1),
        "the init's exit is named by the container id"
    );
    assert_eq!((exit.pid, exit.exit_status), (INIT_PID as u32, 3));
    assert_eq!(
        h.fake.calls(),
        ["create c1", "oom_watcher c1", "start c1", "destroy c1"]
    );
    let gone = h.state(C1, "").await.expect_err("deleted");
    assert_eq!(gone.to_string(), "container c1 not found");
}

#[tokio::test]
async fn init_exit_reaped_before_create_returned_is_recorded() {
    let h = harness();
    // The reaper saw the init die while the runtime was still creating it.
    h.shim.on_exit(INIT_PID, 137);
    h.create(C1).await;
    assert_eq!(h.events.wait_for(2).await, [CREATE, EXIT]);
    assert_eq!(h.wait(C1, "").await, 137);
    assert_eq!(h.status(C1, "").await, api::Status::STOPPED);
    let err = h.start(C1, "").await.expect_err("start after exit");
    assert_eq!(err.to_string(), "cannot start init in state Stopped");
    assert!(!h.fake.calls().contains(&"start c1".to_string()));
}

#[tokio::test]
async fn exec_lifecycle_publishes_added_started_exit_and_no_delete() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    assert_eq!(h.status(C1, "e1").await, api::Status::CREATED);
    let pid = h.start(C1, "e1").await.expect("start exec");
    assert_eq!(pid, INIT_PID + 1);
    assert_eq!(h.status(C1, "e1").await, api::Status::RUNNING);
    let started: TaskExecStarted = h.events.event(3);
    assert_eq!((started.exec_id.as_str(), started.pid), ("e1", pid as u32));

    h.kill(C1, "e1", 15, false).await.expect("kill exec");
    assert!(h.fake.calls().contains(&format!("signal {pid} 15")));
    h.shim.on_exit(pid, 143);
    assert_eq!(h.wait(C1, "e1").await, 143);
    assert_eq!(
        h.status(C1, "").await,
        api::Status::RUNNING,
        "init lives on"
    );

    let deleted = h.delete(C1, "e1").await.expect("delete exec");
    assert_eq!((deleted.pid, deleted.exit_status), (pid as u32, 143));
    assert_eq!(
        h.settled_topics().await,
        [CREATE, START, EXEC_ADDED, EXEC_STARTED, EXIT]
    );
    let exit: TaskExit = h.events.event(4);
    assert_eq!((exit.container_id.as_str(), exit.id.as_str()), (C1, "e1"));
    let gone = h.state(C1, "e1").await.expect_err("deleted exec");
    assert_eq!(gone.to_string(), "exec e1 not found in container c1");
}

#[tokio::test]
async fn exec_exit_reaped_before_start_returned_is_recorded() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    // A short exec can be reaped before the runtime's exec call has returned its pid.
    h.shim.on_exit(h.fake.next_pid(), 4);
    h.start(C1, "e1").await.expect("start exec");
    assert_eq!(
        h.events.wait_for(5).await,
        [CREATE, START, EXEC_ADDED, EXEC_STARTED, EXIT]
    );
    assert_eq!(h.wait(C1, "e1").await, 4);
}

#[tokio::test]
async fn exit_reaped_twice_is_published_once() {
    let h = harness();
    h.running(C1).await;
    h.shim.on_exit(INIT_PID, 0);
    h.shim.on_exit(INIT_PID, 0);
    assert_eq!(h.wait(C1, "").await, 0);
    h.shim.on_exit(INIT_PID, 9);
    assert_eq!(h.settled_topics().await, [CREATE, START, EXIT]);
    assert_eq!(h.state(C1, "").await.expect("state").exit_status, 0);
}

#[tokio::test]
async fn exits_are_routed_to_their_own_container() {
    let h = harness();
    let p1 = h.running("c1").await;
    let p2 = h.running("c2").await;
    assert_ne!(p1, p2);
    h.shim.on_exit(p2, 1);
    assert_eq!(h.wait("c2", "").await, 1);
    assert_eq!(h.status("c1", "").await, api::Status::RUNNING);
    let exit: TaskExit = h.events.event(4);
    assert_eq!(exit.container_id, "c2");
}

#[tokio::test]
async fn exec_id_reused_after_delete_gets_only_its_own_exit() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    let first = h.start(C1, "e1").await.expect("start");
    h.shim.on_exit(first, 0);
    assert_eq!(h.wait(C1, "e1").await, 0);
    h.delete(C1, "e1").await.expect("delete");

    h.exec(C1, "e1").await.expect("exec again");
    assert_eq!(
        h.status(C1, "e1").await,
        api::Status::CREATED,
        "a fresh process, not the old exit"
    );
    let second = h.start(C1, "e1").await.expect("start again");
    assert_ne!(first, second);
    // A late duplicate of the old pid's exit belongs to nobody now.
    h.shim.on_exit(first, 99);
    assert_eq!(
        h.settled_topics().await.last().map(String::as_str),
        Some(EXEC_STARTED)
    );
    assert_eq!(h.status(C1, "e1").await, api::Status::RUNNING);

    h.shim.on_exit(second, 7);
    assert_eq!(h.wait(C1, "e1").await, 7);
    assert_eq!(
        h.events.wait_for(8).await,
        [
            CREATE,
            START,
            EXEC_ADDED,
            EXEC_STARTED,
            EXIT,
            EXEC_ADDED,
            EXEC_STARTED,
            EXIT
        ]
    );
    let exit: TaskExit = h.events.event(7);
    assert_eq!((exit.id.as_str(), exit.pid), ("e1", second as u32));
}

#[tokio::test]
async fn exec_id_in_use_is_refused() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    let err = h.exec(C1, "e1").await.expect_err("same exec id");
    assert!(matches!(err, Error::ExecExists { .. }), "{err:?}");
    assert_eq!(err.to_string(), "exec e1 already exists in container c1");
    assert_eq!(h.events.topics(), [CREATE, START, EXEC_ADDED]);
}

#[tokio::test]
async fn delete_racing_an_exit_never_overtakes_it() {
    let h = harness();
    h.running(C1).await;
    // The exit is reaped, but not recorded yet, when Delete arrives.
    h.shim.on_exit(INIT_PID, 0);
    let err = h.delete(C1, "").await.expect_err("delete before the exit");
    assert_eq!(err.to_string(), "cannot delete running task c1");
    assert!(!h.fake.calls().contains(&"destroy c1".to_string()));

    assert_eq!(h.wait(C1, "").await, 0);
    h.delete(C1, "").await.expect("delete after the exit");
    assert_eq!(h.settled_topics().await, [CREATE, START, EXIT, DELETE]);
    let destroys = h.fake.calls().iter().filter(|c| *c == "destroy c1").count();
    assert_eq!(destroys, 1);
}

#[tokio::test]
async fn delete_of_a_created_task_kills_it_and_waits_for_its_exit() {
    let h = harness();
    h.create(C1).await;
    let shim = h.shim.clone();
    let delete = tokio::spawn(async move {
        shim.delete(DeleteRequest {
            id: C1.into(),
            ..Default::default()
        })
        .await
    });
    h.fake.called("kill c1 9 all").await;
    assert!(!delete.is_finished(), "delete waits for the killed init");
    h.shim.on_exit(INIT_PID, 137);
    let deleted = tokio::time::timeout(SOON, delete)
        .await
        .expect("delete returned in time")
        .expect("join")
        .expect("delete");
    assert_eq!(deleted.exit_status, 137);
    assert_eq!(h.events.topics(), [CREATE, EXIT, DELETE]);
    assert_eq!(
        h.fake.calls(),
        ["create c1", "oom_watcher c1", "kill c1 9 all", "destroy c1"]
    );
}

#[tokio::test]
async fn delete_of_a_created_task_whose_init_just_died() {
    let h = harness();
    h.create(C1).await;
    // Reaped, not yet recorded, when Delete arrives: Delete still ends in one exit.
    h.shim.on_exit(INIT_PID, 137);
    let deleted = h.delete(C1, "").await.expect("delete");
    assert_eq!(deleted.exit_status, 137);
    assert_eq!(h.settled_topics().await, [CREATE, EXIT, DELETE]);
    let destroys = h.fake.calls().iter().filter(|c| *c == "destroy c1").count();
    assert_eq!(destroys, 1);
}

#[tokio::test]
async fn oom_counted_before_the_exit_is_published_before_it() {
    let h = harness();
    h.running(C1).await;
    // The kernel counted the kill, but the OOM watch has not woken up yet.
    h.fake.count_oom_kill();
    h.shim.on_exit(INIT_PID, 137);
    assert_eq!(h.events.wait_for(4).await, [CREATE, START, OOM, EXIT]);
    let oom: TaskOOM = h.events.event(2);
    assert_eq!(oom.container_id, C1);
}

#[tokio::test]
async fn oom_watch_publishes_each_kill_once() {
    let h = harness();
    h.running(C1).await;
    h.fake.count_oom_kill();
    h.fake.wake_oom_watch();
    assert_eq!(h.events.wait_for(3).await, [CREATE, START, OOM]);
    // The exit checks the counter again: nothing new, no second event.
    h.shim.on_exit(INIT_PID, 137);
    assert_eq!(h.wait(C1, "").await, 137);
    assert_eq!(h.settled_topics().await, [CREATE, START, OOM, EXIT]);
}

#[tokio::test]
async fn oom_watch_ends_with_its_task() {
    let h = harness();
    h.running(C1).await;
    h.shim.on_exit(INIT_PID, 0);
    h.wait(C1, "").await;
    h.delete(C1, "").await.expect("delete");
    h.fake.count_oom_kill();
    h.fake.wake_oom_watch();
    assert_eq!(h.settled_topics().await, [CREATE, START, EXIT, DELETE]);
}

#[tokio::test]
async fn kill_names_what_is_missing_or_finished() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    let err = h.kill(C1, "e1", 9, false).await.expect_err("not started");
    assert_eq!(err.to_string(), "exec e1 in container c1 is not started");
    let pid = h.start(C1, "e1").await.expect("start exec");
    h.shim.on_exit(pid, 0);
    h.wait(C1, "e1").await;
    h.shim.on_exit(INIT_PID, 0);
    h.wait(C1, "").await;

    let err = h.kill(C1, "", 9, false).await.expect_err("init finished");
    assert_eq!(err.to_string(), "container c1: process already finished");
    assert!(err.is_not_found());
    let err = h.kill(C1, "e1", 9, false).await.expect_err("exec finished");
    assert_eq!(
        err.to_string(),
        "exec e1 in container c1: process already finished"
    );
    assert!(err.is_not_found());
    let err = h.kill(C1, "e9", 9, false).await.expect_err("no such exec");
    assert_eq!(err.to_string(), "exec e9 not found in container c1");
    let err = h
        .kill("c9", "", 9, false)
        .await
        .expect_err("no such container");
    assert_eq!(err.to_string(), "container c9 not found");

    // `--all` still reaches what is left in the cgroup.
    h.kill(C1, "", 9, true).await.expect("kill --all");
    assert!(h.fake.calls().contains(&"kill c1 9 all".to_string()));
}

#[tokio::test]
async fn failed_exec_start_ends_the_exec() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    h.fake.fail("exec");
    let err = h.start(C1, "e1").await.expect_err("runtime refuses");
    assert_eq!(err.to_string(), "fake exec c1 sleep 9 failed");
    assert_eq!(h.status(C1, "e1").await, api::Status::STOPPED);
    assert_eq!(h.wait(C1, "e1").await, 128);
    assert_eq!(h.events.topics(), [CREATE, START, EXEC_ADDED]);
}

#[tokio::test]
async fn exec_needs_a_running_container() {
    let h = harness();
    h.running(C1).await;
    h.shim
        .pause(PauseRequest {
            id: C1.into(),
            ..Default::default()
        })
        .await
        .expect("pause");
    assert_eq!(h.status(C1, "").await, api::Status::PAUSED);
    h.exec(C1, "e1").await.expect("exec is added while paused");
    let err = h.start(C1, "e1").await.expect_err("start while paused");
    assert_eq!(err.to_string(), "cannot exec in paused container c1");
    h.shim
        .resume(ResumeRequest {
            id: C1.into(),
            ..Default::default()
        })
        .await
        .expect("resume");
    assert_eq!(h.status(C1, "").await, api::Status::RUNNING);

    h.shim.on_exit(INIT_PID, 0);
    h.wait(C1, "").await;
    let err = h.exec(C1, "e2").await.expect_err("exec after exit");
    assert_eq!(err.to_string(), "cannot exec in stopped container c1");
    assert_eq!(
        h.events.topics(),
        [CREATE, START, PAUSED, EXEC_ADDED, RESUMED, EXIT]
    );
}

#[tokio::test]
async fn failed_pause_leaves_the_task_running() {
    let h = harness();
    h.running(C1).await;
    h.fake.fail("pause");
    let pause = PauseRequest {
        id: C1.into(),
        ..Default::default()
    };
    h.shim.pause(pause).await.expect_err("runtime refuses");
    assert_eq!(h.status(C1, "").await, api::Status::RUNNING);
    let resume = ResumeRequest {
        id: C1.into(),
        ..Default::default()
    };
    let err = h.shim.resume(resume).await.expect_err("not paused");
    assert_eq!(
        err.to_string(),
        "cannot resume container c1 in state Running"
    );
    assert_eq!(h.events.topics(), [CREATE, START]);
}

#[tokio::test]
async fn create_refuses_duplicates_and_registers_nothing_on_failure() {
    let h = harness();
    h.create(C1).await;
    let again = CreateTaskRequest {
        id: C1.into(),
        ..Default::default()
    };
    let err = h.shim.create(again).await.expect_err("duplicate id");
    assert_eq!(err.to_string(), "container c1 already exists");

    h.fake.fail("create");
    let c2 = CreateTaskRequest {
        id: "c2".into(),
        ..Default::default()
    };
    h.shim.create(c2).await.expect_err("runtime refuses");
    assert!(h.state("c2", "").await.is_err());
    assert_eq!(h.events.topics(), [CREATE]);
}

#[tokio::test]
async fn shutdown_waits_for_the_last_task() {
    let h = harness();
    h.running(C1).await;
    h.shim
        .shutdown(ShutdownRequest::default())
        .await
        .expect("shutdown");
    let early = tokio::time::timeout(Duration::from_millis(50), h.shim.shutdown.notified());
    assert!(early.await.is_err(), "a shim with a task keeps serving");

    h.shim.on_exit(INIT_PID, 0);
    h.wait(C1, "").await;
    h.delete(C1, "").await.expect("delete");
    h.shim
        .shutdown(ShutdownRequest::default())
        .await
        .expect("shutdown");
    let done = tokio::time::timeout(SOON, h.shim.shutdown.notified());
    assert!(done.await.is_ok(), "an empty shim shuts down");
}

#[tokio::test]
async fn pids_name_exec_processes() {
    let h = harness();
    h.running(C1).await;
    h.exec(C1, "e1").await.expect("exec");
    let exec_pid = h.start(C1, "e1").await.expect("start exec");
    let pids = h
        .shim
        .pids(PidsRequest {
            id: C1.into(),
            ..Default::default()
        })
        .await
        .expect("pids");
    let listed: Vec<(u32, bool)> = pids
        .processes
        .iter()
        .map(|p| (p.pid, p.info.is_some()))
        .collect();
    assert_eq!(
        listed,
        [(INIT_PID as u32, false), (exec_pid as u32, true)],
        "only the exec carries ProcessDetails"
    );
}

#[tokio::test]
async fn update_and_stats_reach_the_runtime() {
    let h = harness();
    h.running(C1).await;
    let update = |json: &[u8]| UpdateTaskRequest {
        id: C1.into(),
        resources: MessageField::some(Any {
            value: json.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    h.shim
        .update(update(br#"{"memory":{"limit":1048576}}"#))
        .await
        .expect("update");
    assert!(h
        .fake
        .calls()
        .contains(&"update c1 memory=1048576".to_string()));
    let err = h.shim.update(update(b"")).await.expect_err("no resources");
    assert_eq!(err.to_string(), "update: no resources given");

    let stats = h
        .shim
        .stats(StatsRequest {
            id: C1.into(),
            ..Default::default()
        })
        .await
        .expect("stats");
    assert_eq!(stats.stats.type_url, "io.containerd.cgroups.v1.Metrics");
}

impl Harness {
    /// An exec of `sh` with the request's `terminal` and the spec's `terminal`, and
    /// `stdin` as the stdin FIFO ("" for none).
    async fn exec_with(&self, exec_id: &str, req_tty: bool, spec_tty: bool, stdin: &str) {
        let spec = format!(
            r#"{{"args":["sh"],"cwd":"/","terminal":{spec_tty},"user":{{"uid":0,"gid":0}}}}"#
        );
        self.shim
            .exec(ExecProcessRequest {
                id: C1.to_string(),
                exec_id: exec_id.to_string(),
                terminal: req_tty,
                stdin: stdin.to_string(),
                spec: MessageField::some(Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                    value: spec.into_bytes(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("exec");
    }
}

#[tokio::test]
async fn exec_terminal_is_taken_from_the_request_not_the_spec() {
    let h = harness();
    h.running(C1).await;
    h.exec_with("tty", true, false, "").await;
    h.start(C1, "tty").await.expect("start tty exec");
    h.exec_with("plain", false, true, "").await;
    h.start(C1, "plain").await.expect("start plain exec");
    let execs: Vec<String> = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("exec "))
        .collect();
    assert_eq!(execs, ["exec c1 sh (tty)", "exec c1 sh"]);
}

/// A FIFO in a fresh temporary directory (removed by the caller).
fn fifo(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tent-shim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("stdin");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    path
}

/// Writes one byte without blocking; the error kind if it failed.
fn write_byte(w: &mut std::fs::File) -> std::result::Result<(), std::io::ErrorKind> {
    use std::io::Write;
    w.write_all(b"x").map_err(|e| e.kind())
}

#[tokio::test]
async fn exec_stdin_stays_open_after_the_exit_until_delete() {
    use std::os::unix::fs::OpenOptionsExt;
    let h = harness();
    h.running(C1).await;
    let path = fifo("stdin-after-exit");
    h.exec_with("e1", false, false, &path.to_string_lossy())
        .await;
    // The shim holds the read end from Exec on, so a non-blocking writer opens.
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .expect("open the stdin FIFO for writing");
    // The fake drops the workload's end of stdin at once: it is as gone as an exited
    // process's.
    let pid = h.start(C1, "e1").await.expect("start");
    h.shim.on_exit(pid, 0);
    assert_eq!(h.wait(C1, "e1").await, 0);
    for _ in 0..3 {
        assert_eq!(write_byte(&mut writer), Ok(()), "stdin broke before Delete");
        // Let the shim's copy read the byte and find nobody to give it to.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.delete(C1, "e1").await.expect("delete");
    // Delete lets go of the FIFO: the writer now sees that nobody reads.
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match write_byte(&mut writer) {
            Err(std::io::ErrorKind::BrokenPipe) => break,
            other if tokio::time::Instant::now() > deadline => {
                panic!("stdin FIFO still read after Delete: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}

#[tokio::test]
async fn close_io_still_ends_stdin_before_the_exit() {
    use std::os::unix::fs::OpenOptionsExt;
    let h = harness();
    h.running(C1).await;
    let path = fifo("stdin-closeio");
    h.exec_with("e1", false, false, &path.to_string_lossy())
        .await;
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .expect("open the stdin FIFO for writing");
    h.start(C1, "e1").await.expect("start");
    h.shim
        .close_io(CloseIORequest {
            id: C1.to_string(),
            exec_id: "e1".to_string(),
            stdin: true,
            ..Default::default()
        })
        .await
        .expect("close io");
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match write_byte(&mut writer) {
            Err(std::io::ErrorKind::BrokenPipe) => break,
            other if tokio::time::Instant::now() > deadline => {
                panic!("stdin FIFO still read after CloseIO: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
