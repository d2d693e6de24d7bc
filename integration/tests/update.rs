//! Task.Update: new limits visible in the container's cgroup; invalid values refused with the
//! container unharmed (issue #3).
//!
//! `ctr` has no `task update` in containerd 1.6, 1.7 or 2.1, so these tests send the Task API
//! `Update` to the task's shim over ttrpc (what containerd's `Tasks.Update` forwards): an `Any`
//! with the runtime-spec `LinuxResources` type URL and JSON bytes.
mod common;

use common::{memory_limit_file, read_trim, shim_update, task_cgroup_dir_for, Running};
use tent_integration::{json, Containerd};

const MIB: u64 = 1024 * 1024;

#[test]
fn update_memory_limit_is_visible_in_cgroup() {
    let c = Containerd::shared();
    let r = Running::start(c, "upd-mem", &["--memory-limit", &(64 * MIB).to_string()]);
    let f = memory_limit_file(r.pid);
    assert!(
        f.to_string_lossy()
            .contains(&common::expected_cgroup_suffix(&r.id)),
        "task cgroup {} is not ctr's /<ns>/<id>",
        f.display()
    );
    assert_eq!(read_trim(&f), (64 * MIB).to_string());
    shim_update(c, &r.id, &json!({ "memory": { "limit": 128 * MIB } }))
        .unwrap_or_else(|e| panic!("update memory.limit: {e:?}"));
    assert_eq!(
        read_trim(&f),
        (128 * MIB).to_string(),
        "{} after update",
        f.display()
    );
    // Lower again, and the container keeps working.
    shim_update(c, &r.id, &json!({ "memory": { "limit": 96 * MIB } }))
        .unwrap_or_else(|e| panic!("update memory.limit: {e:?}"));
    assert_eq!(read_trim(&f), (96 * MIB).to_string());
    r.assert_running();
    let x = r.exec(&[], &["echo", "ok"]);
    assert_eq!(x.stdout.trim(), "ok", "{x:#?}");
    r.kill_and_check();
}

#[test]
fn update_cpu_and_pids_are_visible_in_cgroup() {
    let c = Containerd::shared();
    let r = Running::start(c, "upd-cpu", &[]);
    shim_update(
        c,
        &r.id,
        &json!({ "cpu": { "shares": 512, "quota": 50000, "period": 100000 }, "pids": { "limit": 77 } }),
    )
    .unwrap_or_else(|e| panic!("update cpu/pids: {e:?}"));
    if common::cgroup_v2() {
        let d = task_cgroup_dir_for(r.pid, "cpu");
        assert_eq!(read_trim(&d.join("cpu.max")), "50000 100000");
        assert_eq!(read_trim(&d.join("pids.max")), "77");
    } else {
        let cpu = task_cgroup_dir_for(r.pid, "cpu");
        assert_eq!(read_trim(&cpu.join("cpu.shares")), "512");
        assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read_trim(&cpu.join("cpu.cfs_period_us")), "100000");
        let pids = task_cgroup_dir_for(r.pid, "pids");
        assert_eq!(read_trim(&pids.join("pids.max")), "77");
    }
    r.assert_running();
    r.kill_and_check();
}

/// An update that must be refused: an error with a message, the old limit kept, the container
/// still running and still updatable.
fn assert_update_refused(r: &Running, resources: serde_json::Value, needles: &[&str]) {
    let f = memory_limit_file(r.pid);
    let before = read_trim(&f);
    let cpus = task_cgroup_dir_for(r.pid, "cpuset");
    // Same file name on cgroup v1 and v2.
    let cpus_file = "cpuset.cpus";
    let cpus_before = std::fs::read_to_string(cpus.join(cpus_file)).unwrap_or_default();
    let res = shim_update(r.c, &r.id, &resources);
    eprintln!("update {resources} → {res:?}");
    let (code, msg) = res.expect_err(&format!("update {resources} must fail"));
    assert_ne!(code, 0);
    let m = msg.to_lowercase();
    assert!(
        needles.iter().any(|n| m.contains(&n.to_lowercase())),
        "error for {resources} should mention one of {needles:?}: {msg}"
    );
    assert_eq!(
        read_trim(&f),
        before,
        "memory limit changed by a refused update"
    );
    assert_eq!(
        std::fs::read_to_string(cpus.join(cpus_file)).unwrap_or_default(),
        cpus_before,
        "cpuset changed by a refused update"
    );
    r.assert_running();
    let x = r.exec(&[], &["echo", "ok"]);
    assert_eq!(x.stdout.trim(), "ok", "{x:#?}");
}

#[test]
fn update_with_invalid_values_is_refused_and_harmless() {
    let c = Containerd::shared();
    let r = Running::start(c, "upd-bad", &["--memory-limit", &(64 * MIB).to_string()]);
    assert_update_refused(
        &r,
        json!({ "memory": { "limit": -5 } }),
        &["memory", "limit", "-5", "invalid"],
    );
    assert_update_refused(
        &r,
        json!({ "cpu": { "cpus": "99" } }),
        &["cpus", "cpuset", "99", "invalid"],
    );
    assert_update_refused(
        &r,
        json!({ "cpu": { "cpus": "0-1,x" } }),
        &["cpus", "cpuset", "invalid"],
    );
    // The container is still updatable afterwards.
    shim_update(c, &r.id, &json!({ "memory": { "limit": 80 * MIB } }))
        .unwrap_or_else(|e| panic!("valid update after refused ones: {e:?}"));
    assert_eq!(read_trim(&memory_limit_file(r.pid)), (80 * MIB).to_string());
    r.kill_and_check();
}

#[test]
fn update_of_unknown_task_fails() {
    let c = Containerd::shared();
    let r = Running::start(c, "upd-unknown", &[]);
    // Same shim, another id: must fail with not-found and leave the real task alone.
    let mut any = Vec::new();
    common::pb_bytes(
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
        &mut any,
    );
    common::pb_bytes(2, br#"{"memory":{"limit":67108864}}"#, &mut any);
    let mut req = Vec::new();
    common::pb_bytes(1, b"no-such-task", &mut req);
    common::pb_bytes(2, &any, &mut req);
    let res = common::shim_call(c, &r.id, "Update", &req);
    eprintln!("update of unknown task: {res:?}");
    let (_, msg) = res.expect_err("update of an unknown task must fail");
    assert!(
        msg.contains("no-such-task") || msg.contains("not found"),
        "{msg}"
    );
    r.assert_running();
    r.kill_and_check();
}
