//! Nothing left behind: mounts, cgroups, shim processes, state (issue #2).
//!
//! These tests hold a file-wide lock so the whole-host mountinfo diff is meaningful (cargo runs
//! test binaries one after another, so only this file's tests could race).
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tent_integration::{
    cgroup_dirs, cmdline, mountinfo, mounts_mentioning, new_mounts, ppid, unique_id, Containerd,
    RunOpts, NAMESPACE,
};

static SERIAL: Mutex<()> = Mutex::new(());
const T: Duration = Duration::from_secs(30);

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait until no mount is new compared to `before` (shim/rootfs unmounts are asynchronous
/// for a moment after `ctr` returns).
fn assert_no_new_mounts(before: &[String]) {
    let t = Instant::now();
    loop {
        let new = new_mounts(before);
        if new.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "new mounts left behind:\n{}",
            new.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_gone(pid: i32, what: &str) {
    let t = Instant::now();
    while !cmdline(pid).is_empty() && cmdline(pid).contains("containerd-shim") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what} {pid} still running: {}",
            cmdline(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_rm_leaves_nothing() {
    let c = Containerd::shared();
    let _g = lock();
    // Warm up: the first container may create long-lived daemon mounts (none expected, but
    // keep the diff about the container itself).
    let before = mountinfo();
    let shims_before = c.shim_pids("");
    let id = unique_id("clean-rm");
    let r = c.run(&id, &["echo", "bye"], &RunOpts::default());
    r.assert_ok();
    assert_eq!(r.stdout, "bye\n");
    c.assert_no_leftovers(&id);
    assert_no_new_mounts(&before);
    let t = Instant::now();
    loop {
        let extra: Vec<i32> = c
            .shim_pids("")
            .into_iter()
            .filter(|p| !shims_before.contains(p))
            .collect();
        if extra.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "shims left: {extra:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn task_delete_then_container_delete_leaves_nothing() {
    let c = Containerd::shared();
    let _g = lock();
    let before = mountinfo();
    let id = unique_id("clean-del");
    let mut bg = c.spawn_run(
        &id,
        &["/bin/tent-testbin", "pause"],
        &RunOpts::default().keep(),
    );
    bg.wait_for_line("ready", T);
    let pid = c.wait_running(&id, T);
    let shim = ppid(pid).expect("shim pid");
    assert!(
        cmdline(shim).contains("containerd-shim"),
        "parent of the task is not a shim: {}",
        cmdline(shim)
    );

    // Positive control: while it runs, the things we check for afterwards do exist.
    assert!(
        c.bundle_dir(&id).is_dir(),
        "no bundle dir {}",
        c.bundle_dir(&id).display()
    );
    assert!(
        !cgroup_dirs(NAMESPACE, &id).is_empty(),
        "no cgroup dir for {id}"
    );
    assert!(
        !mounts_mentioning(&id).is_empty(),
        "no rootfs mount for {id}"
    );
    assert!(c.task_state_entries().contains(&id));

    c.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(137), "{r:#?}");
    // Without --rm, ctr run already deleted the task; delete again must say not found.
    let d = c.ctr_result(&["task", "delete", &id]);
    assert!(
        d.code == Some(0) || d.stderr.contains("not found"),
        "{d:#?}"
    );
    c.ctr_result(&["container", "delete", &id]).assert_ok();
    c.assert_no_leftovers(&id);
    assert_gone(shim, "shim");
    assert_no_new_mounts(&before);
    assert!(!c.task_state_entries().contains(&id));
}

#[test]
fn detached_task_delete_leaves_nothing() {
    let c = Containerd::shared();
    let _g = lock();
    let before = mountinfo();
    let id = unique_id("clean-detached");
    let r = c.ctr_result(&[
        "run",
        "-d",
        "--runtime",
        &tent_integration::runtime(),
        tent_integration::IMAGE,
        &id,
        "/bin/tent-testbin",
        "pause",
    ]);
    r.assert_ok();
    let pid = c.wait_running(&id, T);
    let shim = ppid(pid).expect("shim pid");
    c.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    // Wait for STOPPED, then delete the task and the container.
    let t = Instant::now();
    loop {
        let ls = c.ctr_result(&["task", "ls"]);
        if ls
            .stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
        {
            break;
        }
        assert!(t.elapsed() < T, "task not STOPPED: {}", ls.stdout);
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = c.ctr_result(&["task", "delete", &id]);
    d.assert_ok();
    assert!(d.stdout.contains("137") || d.stdout.is_empty(), "{d:#?}");
    c.ctr_result(&["container", "delete", &id]).assert_ok();
    c.assert_no_leftovers(&id);
    assert_gone(shim, "shim");
    assert_no_new_mounts(&before);
}
