//! Self-checks of the harness: the runtime under test is really the one that runs.
use std::time::Duration;
use tent_integration::{cmdline, ppid, runtime, unique_id, Containerd, RunOpts};

#[test]
fn the_runtime_under_test_serves_the_container() {
    let c = Containerd::shared();
    let id = unique_id("harness-shim");
    let mut bg = c.spawn_run(
        &id,
        &["/bin/tent-testbin", "wait-term"],
        &RunOpts::default(),
    );
    bg.wait_for_line("ready", Duration::from_secs(30));
    let pid = c.wait_running(&id, Duration::from_secs(30));
    let shims = c.shim_pids_for(&id);
    // io.containerd.tent.v1 -> containerd-shim-tent-v1, io.containerd.runc.v2 -> ...-runc-v2
    let rt = runtime();
    let parts: Vec<&str> = rt.split('.').collect();
    let binary = format!("containerd-shim-{}-{}", parts[2], parts[3]);
    assert!(
        shims.iter().any(|p| cmdline(*p).contains(&binary)),
        "no {binary} among the shims of {id}: {:?}",
        shims.iter().map(|p| cmdline(*p)).collect::<Vec<_>>()
    );
    assert!(
        shims.contains(&ppid(pid).unwrap_or(0)),
        "the container's init is not a child of its shim"
    );
    c.ctr_result(&["task", "kill", "-s", "SIGTERM", &id])
        .assert_ok();
    assert_eq!(bg.finish(Duration::from_secs(30)).code, Some(42));
    c.assert_no_leftovers(&id);
}
