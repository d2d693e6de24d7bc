//! Cgroup-version-specific mechanisms (issue #5). Every test runs on the host's cgroup v1 and in
//! the pure cgroup v2 VM (hack/vm/run-v2-tests.sh sets `TENT_CGROUP_V2=1`) and asserts what the
//! version provides:
//! - `/proc/self/cgroup` of a container: its own cgroup, or `/` in a cgroup namespace;
//! - pause: v2 `cgroup.freeze` 1 and `frozen 1` in `cgroup.events`; v1 `freezer.state` FROZEN;
//! - `kill --all` (v2: `cgroup.kill`) leaves the cgroup empty; `task delete` removes it;
//! - metrics are `io.containerd.cgroups.v2.Metrics` / `….v1.Metrics` with real values;
//! - an OOM kill is counted in v2 `memory.events` / v1 `memory.oom_control` and published.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    cgroup_v2, read_trim, task_cgroup_dir_for, task_status, wait_until, Running, SLOW, T,
};
use tent_integration::{
    cgroup_procs, runtime, unique_id, Background, Containerd, RunOpts, Spec, Value, IMAGE,
    NAMESPACE,
};

/// `key value` lines of a cgroup file (`cgroup.events`, `memory.events`, `memory.oom_control`).
fn kv(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

fn version() -> &'static str {
    if cgroup_v2() {
        "v2"
    } else {
        "v1"
    }
}

#[test]
fn proc_self_cgroup_shows_the_container_cgroup() {
    let c = Containerd::shared();
    let id = unique_id("cg-self");
    let spec = Spec::base(c, &id, &["cat", "/proc/self/cgroup"]);
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    r.assert_ok();
    let want = format!("/{NAMESPACE}/{id}");
    if cgroup_v2() {
        assert_eq!(
            r.stdout.trim(),
            format!("0::{want}"),
            "v2: one unified line"
        );
    } else {
        let mem = r.stdout.lines().find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory"))
        });
        assert_eq!(
            mem.and_then(|l| l.splitn(3, ':').nth(2)),
            Some(want.as_str()),
            "v1 memory line:\n{}",
            r.stdout
        );
    }
    c.assert_no_leftovers(&id);
}

#[test]
fn cgroup_namespace_makes_the_container_cgroup_its_root() {
    let c = Containerd::shared();
    let id = unique_id("cg-ns");
    let limit = 100_663_296u64;
    let limit_file = if cgroup_v2() {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let script = format!("cat /proc/self/cgroup; echo ---; cat {limit_file}");
    let mut spec = Spec::base(c, &id, &["sh", "-c", &script]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(serde_json::json!({ "type": "cgroup" }));
    spec["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(serde_json::json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
        }));
    spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": limit });
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    r.assert_ok();
    let (cg, lim) = r
        .stdout
        .split_once("---")
        .unwrap_or_else(|| panic!("{r:#?}"));
    if cgroup_v2() {
        assert_eq!(cg.trim(), "0::/", "v2 cgroup namespace root: {r:#?}");
    } else {
        let mem = cg
            .lines()
            .find(|l| l.contains(":memory"))
            .unwrap_or_else(|| panic!("no memory line: {r:#?}"));
        assert!(mem.ends_with(":/"), "v1 cgroup namespace root: {r:#?}");
    }
    assert_eq!(
        lim.trim(),
        limit.to_string(),
        "{limit_file} in the container: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn pause_freezes_the_cgroup() {
    let c = Containerd::shared();
    let r = Running::start(c, "cg-freeze", &[]);
    let d = task_cgroup_dir_for(r.pid, "freezer");
    c.ctr_result(&["task", "pause", &r.id]).assert_ok();
    assert_eq!(task_status(c, &r.id).as_deref(), Some("PAUSED"));
    if cgroup_v2() {
        assert_eq!(read_trim(&d.join("cgroup.freeze")), "1");
        assert_eq!(kv(&d.join("cgroup.events"), "frozen"), Some(1), "frozen 1");
    } else {
        assert_eq!(read_trim(&d.join("freezer.state")), "FROZEN");
    }
    c.ctr_result(&["task", "resume", &r.id]).assert_ok();
    assert_eq!(task_status(c, &r.id).as_deref(), Some("RUNNING"));
    if cgroup_v2() {
        assert_eq!(read_trim(&d.join("cgroup.freeze")), "0");
        assert_eq!(kv(&d.join("cgroup.events"), "frozen"), Some(0), "frozen 0");
    } else {
        assert_eq!(read_trim(&d.join("freezer.state")), "THAWED");
    }
    r.assert_running();
    r.kill_and_check();
}

/// Waits until the task is STOPPED (`ctr task ls`).
fn wait_stopped(c: &Containerd, id: &str) {
    wait_until(&format!("task {id} STOPPED"), SLOW, || {
        (task_status(c, id).as_deref() == Some("STOPPED")).then_some(())
    });
}

#[test]
fn kill_all_empties_the_cgroup_and_delete_removes_it() {
    let c = Containerd::shared();
    let id = unique_id("cg-killall");
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
        "sleep 1000 & sleep 1000 & wait",
    ])
    .assert_ok();
    let pid = c.wait_running(&id, T);
    let d: PathBuf = task_cgroup_dir_for(pid, "pids");
    assert!(
        d.ends_with(common::expected_cgroup_suffix(&id)),
        "{}",
        d.display()
    );
    wait_until("sh + 2 sleeps in the cgroup", T, || {
        (cgroup_procs(&d).len() >= 3).then_some(())
    });
    c.ctr_result(&["task", "kill", "--all", "-s", "SIGKILL", &id])
        .assert_ok();
    wait_stopped(c, &id);
    // The cgroup stays until the task is deleted, empty.
    assert!(d.is_dir(), "{} gone before task delete", d.display());
    wait_until("empty cgroup after kill --all", T, || {
        cgroup_procs(&d).is_empty().then_some(())
    });
    if cgroup_v2() {
        assert_eq!(kv(&d.join("cgroup.events"), "populated"), Some(0));
    }
    c.ctr_result(&["task", "delete", &id]).assert_ok();
    assert!(!d.exists(), "{} left after task delete", d.display());
    c.ctr_result(&["container", "delete", &id]).assert_ok();
    c.assert_no_leftovers(&id);
}

#[test]
fn metrics_are_of_the_cgroup_version() {
    let c = Containerd::shared();
    let r = Running::start_with(
        c,
        "cg-metrics",
        &["--memory-limit=134217728"],
        &[
            "sh",
            "-c",
            "x=$(head -c 4000000 /dev/zero | tr '\\0' a); echo ready; /bin/tent-testbin pause; echo $x",
        ],
        "ready",
    );
    let t = c.ctr_result(&["task", "metrics", &r.id]);
    t.assert_ok();
    let j = c.ctr_result(&["task", "metrics", "--format", "json", &r.id]);
    j.assert_ok();
    eprintln!("{} metrics:\n{}\n{}", version(), t.stdout, j.stdout);
    let v: Value = serde_json::from_str(j.stdout.trim())
        .unwrap_or_else(|e| panic!("metrics json: {e}:\n{}", j.stdout));
    let row = |name: &str| {
        t.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 2 && f[0] == name).then(|| f[1].parse::<u64>().ok())?
        })
    };
    if cgroup_v2() {
        // io.containerd.cgroups.v2.Metrics: flat memory.usage, pids.current, cpu.usage_usec.
        assert!(
            row("memory.usage_in_bytes").is_none(),
            "v1 rows on v2:\n{}",
            t.stdout
        );
        let usage = v["memory"]["usage"].as_u64().unwrap_or(0);
        assert!(usage > 2_000_000, "v2 memory.usage {usage}:\n{}", j.stdout);
        assert_eq!(
            v["memory"]["usage_limit"].as_u64(),
            Some(134_217_728),
            "v2 memory.usage_limit:\n{}",
            j.stdout
        );
        assert!(row("memory.usage").unwrap_or(0) > 2_000_000, "{}", t.stdout);
        assert!(
            v["pids"]["current"].as_u64().unwrap_or(0) >= 1,
            "{}",
            j.stdout
        );
        assert!(
            v["cpu"]["usage_usec"].as_u64().unwrap_or(0) > 0,
            "{}",
            j.stdout
        );
    } else {
        // io.containerd.cgroups.v1.Metrics: memory.usage.usage, memory.usage.limit.
        let usage = v["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        assert!(
            usage > 2_000_000,
            "v1 memory.usage.usage {usage}:\n{}",
            j.stdout
        );
        assert_eq!(
            v["memory"]["usage"]["limit"].as_u64(),
            Some(134_217_728),
            "v1 memory.usage.limit:\n{}",
            j.stdout
        );
        assert!(
            row("memory.usage_in_bytes").unwrap_or(0) > 2_000_000,
            "{}",
            t.stdout
        );
        assert!(
            v["pids"]["current"].as_u64().unwrap_or(0) >= 1,
            "{}",
            j.stdout
        );
    }
    r.assert_running();
    r.kill_and_check();
}

#[test]
fn oom_kill_is_counted_and_reported() {
    let c = Containerd::shared();
    let r = Running::start(c, "cg-oom", &["--memory-limit=16777216"]);
    let d = task_cgroup_dir_for(r.pid, "memory");
    let counter = if cgroup_v2() {
        d.join("memory.events")
    } else {
        d.join("memory.oom_control")
    };
    assert_eq!(kv(&counter, "oom_kill"), Some(0), "{}", counter.display());
    let mut events = Background::spawn(c.ctr_command(&["events"]));
    std::thread::sleep(Duration::from_millis(700));
    // The exec's shell holds the string: it is the biggest process, the OOM killer's pick.
    let x = common::exec(
        c,
        &r.id,
        &[],
        &[
            "sh",
            "-c",
            "x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo survived",
        ],
        SLOW,
    );
    assert_eq!(x.code, Some(137), "exec over the memory limit: {x:#?}");
    assert!(!x.stdout.contains("survived"), "{x:#?}");
    let line = events.wait_for_line_matching(&["/tasks/oom", &r.id], Duration::from_secs(30));
    eprintln!("oom event: {line}");
    let _ = events.stop();
    let kills = kv(&counter, "oom_kill").unwrap_or(0);
    assert!(kills >= 1, "oom_kill {kills} in {}", counter.display());
    if cgroup_v2() {
        assert!(
            kv(&counter, "oom").unwrap_or(0) >= 1,
            "{}",
            read_trim(&counter)
        );
    }
    r.assert_running();
    r.kill_and_check();
}
