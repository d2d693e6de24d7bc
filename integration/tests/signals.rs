//! Signals: SIGTERM to a handler, SIGKILL, `kill --all` (issue #2).
use std::time::Duration;
use tent_integration::{cgroup_procs, cgroup_v1_dir, unique_id, Containerd, RunOpts};

const T: Duration = Duration::from_secs(30);

#[test]
fn sigterm_reaches_a_handler() {
    let c = Containerd::shared();
    let id = unique_id("sig-term");
    let mut bg = c.spawn_run(
        &id,
        &["/bin/tent-testbin", "wait-term"],
        &RunOpts::default(),
    );
    bg.wait_for_line("ready", T);
    let k = c.ctr_result(&["task", "kill", "-s", "SIGTERM", &id]);
    k.assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(42), "handler exit code expected: {r:#?}");
    assert!(r.stdout.contains("got SIGTERM"), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn sigkill_gives_137() {
    let c = Containerd::shared();
    let id = unique_id("sig-kill");
    let mut bg = c.spawn_run(&id, &["/bin/tent-testbin", "pause"], &RunOpts::default());
    bg.wait_for_line("ready", T);
    c.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(137), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn sigterm_without_handler_is_ignored_by_pid1() {
    // PID 1 of a pid namespace only gets signals it handles: the container must keep running.
    let c = Containerd::shared();
    let id = unique_id("sig-ignored");
    let mut bg = c.spawn_run(&id, &["/bin/tent-testbin", "pause"], &RunOpts::default());
    bg.wait_for_line("ready", T);
    c.ctr_result(&["task", "kill", "-s", "SIGTERM", &id])
        .assert_ok();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        c.task_pid(&id).is_some(),
        "task died from an unhandled SIGTERM"
    );
    c.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(137), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn kill_all_signals_every_process() {
    let c = Containerd::shared();
    let id = unique_id("sig-all");
    let mut bg = c.spawn_run(
        &id,
        &[
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & echo started; wait; echo all-children-gone",
        ],
        &RunOpts::default(),
    );
    bg.wait_for_line("started", T);
    let procs = cgroup_procs(&cgroup_v1_dir("pids", &id));
    assert_eq!(
        procs.len(),
        3,
        "expected sh + 2 sleeps in the cgroup: {procs:?}"
    );
    // sh as PID 1 has no TERM handler and ignores it; the sleeps die from it only with --all.
    c.ctr_result(&["task", "kill", "--all", "-s", "SIGTERM", &id])
        .assert_ok();
    let r = bg.finish(T);
    assert!(r.stdout.contains("all-children-gone"), "{r:#?}");
    assert_eq!(r.code, Some(0), "{r:#?}");
    c.assert_no_leftovers(&id);
}
