//! Cgroup limits: memory (`--memory-limit`) and pids (spec) in the container's cgroup (issue #2).
use std::time::Duration;
use tent_integration::{cgroup_procs, cgroup_v1_dir, unique_id, Containerd, RunOpts, Spec};

const T: Duration = Duration::from_secs(30);

fn read_trim(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
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
    let dir = cgroup_v1_dir("memory", &id);
    assert_eq!(
        read_trim(&dir.join("memory.limit_in_bytes")),
        limit.to_string()
    );
    assert!(
        cgroup_procs(&dir).contains(&pid),
        "task {pid} not in {}",
        dir.display()
    );
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
    let path = c.dir().join(format!("spec-{id}.json"));
    std::fs::write(&path, serde_json::to_vec(&spec).expect("json")).expect("write spec");
    let mut cmd = c.ctr_command(&["run", "--rm", "--runtime"]);
    cmd.arg(tent_integration::runtime())
        .arg("--config")
        .arg(&path)
        .arg(&id);
    let mut bg = tent_integration::Background::spawn(cmd);
    bg.wait_for_line("ready", T);
    let pid = c.wait_running(&id, T);
    let pids = cgroup_v1_dir("pids", &id);
    assert_eq!(read_trim(&pids.join("pids.max")), "42");
    assert!(cgroup_procs(&pids).contains(&pid));
    let mem = cgroup_v1_dir("memory", &id);
    assert_eq!(read_trim(&mem.join("memory.limit_in_bytes")), "100663296");
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
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    assert!(
        r.stderr.contains("can't fork") || r.stderr.contains("Resource temporarily unavailable"),
        "forks beyond pids.max should fail: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}
