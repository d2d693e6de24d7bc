//! pause / resume, exec and kill of a paused container, pause of a stopped one, checkpoint
//! (issue #3).
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{task_status, wait_until, Running, T};
use tent_integration::{runtime, unique_id, Background, Containerd, IMAGE};

/// Written by rename, so a pause between the truncate and the write of `echo >` cannot leave the
/// file empty while the container is frozen.
const COUNTER: &str =
    "echo ready; i=0; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.1; done";

/// The counter file read from the host through the task's rootfs (`<bundle>/rootfs`).
fn counter_file(c: &Containerd, id: &str) -> PathBuf {
    c.bundle_dir(id).join("rootfs/tmp/c")
}

fn read_counter(p: &PathBuf) -> u64 {
    wait_until(&format!("a number in {}", p.display()), T, || {
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    })
}

fn start_counter(c: &'static Containerd, prefix: &str) -> Running<'static> {
    Running::start_with(c, prefix, &[], &["sh", "-c", COUNTER], "ready")
}

fn pause(c: &Containerd, id: &str) {
    c.ctr_result(&["task", "pause", id]).assert_ok();
    assert_eq!(
        task_status(c, id).as_deref(),
        Some("PAUSED"),
        "ctr task ls after pause"
    );
}

#[test]
fn pause_stops_the_counter_and_resume_continues() {
    let c = Containerd::shared();
    let r = start_counter(c, "pause");
    let f = counter_file(c, &r.id);
    let a = read_counter(&f);
    wait_until("counter advances before pause", T, || {
        (read_counter(&f) > a + 3).then_some(())
    });

    let mut events = Background::spawn(c.ctr_command(&["events"]));
    std::thread::sleep(Duration::from_millis(500));
    pause(c, &r.id);
    events.wait_for_line_matching(&["/tasks/paused", &r.id], T);
    let frozen = read_counter(&f);
    std::thread::sleep(Duration::from_millis(1500));
    let still = read_counter(&f);
    assert_eq!(frozen, still, "counter advanced while paused");
    assert_eq!(task_status(c, &r.id).as_deref(), Some("PAUSED"));

    c.ctr_result(&["task", "resume", &r.id]).assert_ok();
    events.wait_for_line_matching(&["/tasks/resumed", &r.id], T);
    let _ = events.stop();
    assert_eq!(
        task_status(c, &r.id).as_deref(),
        Some("RUNNING"),
        "ctr task ls after resume"
    );
    wait_until("counter advances after resume", T, || {
        (read_counter(&f) > still + 3).then_some(())
    });
    let x = r.exec(&[], &["cat", "/tmp/c"]);
    x.assert_ok();
    r.kill_and_check();
}

#[test]
fn exec_into_paused_container_fails_clearly() {
    let c = Containerd::shared();
    let r = start_counter(c, "pause-exec");
    pause(c, &r.id);
    let t = Instant::now();
    let x = r.exec(&[], &["echo", "should-not-run"]);
    eprintln!("exec into paused: {x:?} after {:?}", t.elapsed());
    assert_ne!(
        x.code,
        Some(0),
        "exec into a paused container must fail: {x:#?}"
    );
    assert!(!x.stdout.contains("should-not-run"), "{x:#?}");
    assert!(
        x.stderr.to_lowercase().contains("paused"),
        "error should say the container is paused: {x:#?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "refusal took {:?}",
        t.elapsed()
    );
    assert_eq!(task_status(c, &r.id).as_deref(), Some("PAUSED"));
    // Still usable after resume.
    c.ctr_result(&["task", "resume", &r.id]).assert_ok();
    let x = r.exec(&[], &["echo", "after-resume"]);
    assert_eq!(x.stdout.trim(), "after-resume", "{x:#?}");
    r.kill_and_check();
}

#[test]
fn kill_of_paused_container_works() {
    let c = Containerd::shared();
    let r = start_counter(c, "pause-kill");
    pause(c, &r.id);
    // SIGKILL (init only, no --all) → ctr run exits 137 → no leftovers. On cgroup v1 a frozen
    // task cannot die until thawed: runc thaws after a SIGKILL to a paused container.
    r.kill_and_check();
}

#[test]
fn resume_of_running_container_fails() {
    let c = Containerd::shared();
    let r = start_counter(c, "pause-resume-running");
    let x = c.ctr_result(&["task", "resume", &r.id]);
    eprintln!("resume of running: {x:?}");
    assert_ne!(
        x.code,
        Some(0),
        "resume of a running container must fail: {x:#?}"
    );
    r.assert_running();
    r.kill_and_check();
}

#[test]
fn pause_of_stopped_container_fails() {
    let c = Containerd::shared();
    let id = unique_id("pause-stopped");
    let _g = common::Cleanup { c, id: id.clone() };
    c.ctr_result(&[
        "run",
        "-d",
        "--runtime",
        &runtime(),
        IMAGE,
        &id,
        "sh",
        "-c",
        "exit 0",
    ])
    .assert_ok();
    wait_until("task STOPPED", T, || {
        (task_status(c, &id).as_deref() == Some("STOPPED")).then_some(())
    });
    let x = c.ctr_result(&["task", "pause", &id]);
    eprintln!("pause of stopped: {x:?}");
    assert_ne!(x.code, Some(0), "pause of a stopped task must fail: {x:#?}");
    assert!(!x.stderr.trim().is_empty(), "{x:#?}");
    assert_eq!(
        task_status(c, &id).as_deref(),
        Some("STOPPED"),
        "state after refused pause"
    );
    let x = c.ctr_result(&["task", "resume", &id]);
    assert_ne!(
        x.code,
        Some(0),
        "resume of a stopped task must fail: {x:#?}"
    );
    c.ctr_result(&["task", "delete", &id]).assert_ok();
    c.ctr_result(&["container", "delete", &id]).assert_ok();
    c.assert_no_leftovers(&id);
}

#[test]
fn checkpoint_is_refused_clearly() {
    if common::skip_under_runc("runc checkpoints through criu") {
        return;
    }
    let c = Containerd::shared();
    let r = start_counter(c, "ckpt");
    let t = Instant::now();
    let x = c.ctr_result(&["task", "checkpoint", &r.id]);
    eprintln!("checkpoint: {x:?}");
    assert_ne!(x.code, Some(0), "{x:#?}");
    let e = x.stderr.to_lowercase();
    assert!(
        e.contains("tent") && e.contains("checkpoint"),
        "error should say tent does not checkpoint: {x:#?}"
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    r.assert_running();
    r.kill_and_check();
}

#[test]
fn kill_all_of_paused_container_works() {
    let c = Containerd::shared();
    let r = start_counter(c, "pause-killall");
    pause(c, &r.id);
    c.ctr_result(&["task", "kill", "--all", "-s", "SIGKILL", &r.id])
        .assert_ok();
    let mut r = r;
    let res = r.bg.take().expect("bg").finish(T);
    assert_eq!(
        res.code,
        Some(137),
        "ctr run after kill --all SIGKILL of a paused task: {res:#?}"
    );
    c.assert_no_leftovers(&r.id);
}
