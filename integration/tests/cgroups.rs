//! Cgroup limits: memory (`--memory-limit`), pids and cpu (spec) in the container's cgroup
//! (issues #2, #5). Runs on the host's cgroup v1 and in the cgroup v2 VM (`TENT_CGROUP_V2=1`,
//! hack/vm/run-v2-tests.sh): the limit files are `memory.limit_in_bytes` / `pids.max` /
//! `cpu.cfs_quota_us` on v1 and `memory.max` / `pids.max` / `cpu.max` on v2.
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{cgroup_v2, read_trim, task_cgroup_dir_for};
use tent_integration::{cgroup_procs, unique_id, Containerd, RunOpts, Spec};

const T: Duration = Duration::from_secs(30);

/// The container's dir for a v1 `controller` (or its unified dir on v2), checked to be ctr's
/// `/<ns>/<id>` and to hold `pid`.
fn cg_dir(pid: i32, controller: &str, id: &str) -> PathBuf {
    let d = task_cgroup_dir_for(pid, controller);
    assert!(
        d.ends_with(common::expected_cgroup_suffix(id)),
        "cgroup {} of {pid} is not /<ns>/{id}",
        d.display()
    );
    assert!(
        cgroup_procs(&d).contains(&pid),
        "task {pid} not in {}",
        d.display()
    );
    d
}

/// `memory.max` (v2) or `memory.limit_in_bytes` (v1) of the container.
fn memory_limit(pid: i32, id: &str) -> String {
    let d = cg_dir(pid, "memory", id);
    read_trim(&d.join(if cgroup_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }))
}

#[test]
fn memory_limit_in_cgroup() {
    let c = Containerd::shared();
    let id = unique_id("cg-mem");
    let limit = 64 * 1024 * 1024;
    let mut bg = c.spawn_run(
        &id,
        &["/bin/tent-testbin", "pause"],
        &RunOpts::default().flag(format!("--memory-limit={limit}")),
    );
    bg.wait_for_line("ready", T);
    let pid = c.wait_running(&id, T);
    assert_eq!(memory_limit(pid, &id), limit.to_string());
    c.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    assert_eq!(bg.finish(T).code, Some(137));
    c.assert_no_leftovers(&id);
}

#[test]
fn pids_limit_in_cgroup() {
    let c = Containerd::shared();
    let id = unique_id("cg-pids");
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "wait-term"]);
    spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 42 });
    spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 100663296 });
    let mut bg = c.spawn_run_spec(&id, &spec);
    bg.wait_for_line("ready", T);
    let pid = c.wait_running(&id, T);
    let pids = cg_dir(pid, "pids", &id);
    assert_eq!(read_trim(&pids.join("pids.max")), "42");
    assert_eq!(memory_limit(pid, &id), "100663296");
    c.ctr_result(&["task", "kill", "-s", "SIGTERM", &id])
        .assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(42), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn cpu_limit_in_cgroup() {
    let c = Containerd::shared();
    let id = unique_id("cg-cpu");
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "wait-term"]);
    spec["linux"]["resources"]["cpu"] =
        serde_json::json!({ "quota": 50000, "period": 100000, "shares": 512 });
    let mut bg = c.spawn_run_spec(&id, &spec);
    bg.wait_for_line("ready", T);
    let pid = c.wait_running(&id, T);
    let d = cg_dir(pid, "cpu", &id);
    if cgroup_v2() {
        assert_eq!(read_trim(&d.join("cpu.max")), "50000 100000");
        // OCI shares 512 -> cpu.weight 1 + (512 - 2) * 9999 / 262142 = 20 (runc's conversion).
        assert_eq!(read_trim(&d.join("cpu.weight")), "20");
    } else {
        assert_eq!(read_trim(&d.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read_trim(&d.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read_trim(&d.join("cpu.shares")), "512");
    }
    c.ctr_result(&["task", "kill", "-s", "SIGTERM", &id])
        .assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(42), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn pids_limit_is_enforced() {
    let c = Containerd::shared();
    let id = unique_id("cg-pids-enforced");
    let mut spec = Spec::base(
        c,
        &id,
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait; echo done",
        ],
    );
    spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 4 });
    let r = c.run_spec(
        &id,
        &spec,
        &RunOpts {
            timeout: common::SLOW,
            ..RunOpts::default()
        },
    );
    assert!(
        r.stderr.contains("can't fork") || r.stderr.contains("Resource temporarily unavailable"),
        "forks beyond pids.max should fail: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}
