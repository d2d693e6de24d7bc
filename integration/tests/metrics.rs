//! `ctr task metrics`: non-zero memory usage, table and json, on 1.6/1.7/2.1 (issue #3).
mod common;

use common::Running;
use tent_integration::{Containerd, Value};

/// A container whose shell holds ~8 MB of data.
fn start_big(c: &'static Containerd, prefix: &str) -> Running<'static> {
    Running::start_with(
        c,
        prefix,
        &[],
        &[
            "sh",
            "-c",
            "x=$(head -c 8000000 /dev/zero | tr '\\0' a); echo ready; /bin/tent-testbin pause; echo $x",
        ],
        "ready",
    )
}

/// First number on a table line whose metric name matches one of `names`.
fn table_value(out: &str, names: &[&str]) -> Option<u64> {
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 2 && names.contains(&f[0])).then(|| f[1].parse().ok())?
    })
}

/// Memory usage from `--format json` (v1 `memory.usage.usage`, v2 `memory.usage`).
fn json_usage(v: &Value) -> Option<u64> {
    let m = v.get("memory").or_else(|| v.get("Memory"))?;
    let u = m.get("usage").or_else(|| m.get("Usage"))?;
    u.as_u64().or_else(|| {
        u.get("usage")
            .or_else(|| u.get("Usage"))
            .and_then(|x| x.as_u64())
    })
}

#[test]
fn metrics_show_memory_usage() {
    let c = Containerd::shared();
    let r = start_big(c, "metrics");
    // Table format (1.6/1.7/2.1 print "METRIC VALUE" rows).
    let t = c.ctr_result(&["task", "metrics", &r.id]);
    t.assert_ok();
    eprintln!("table:\n{}", t.stdout);
    let usage = table_value(&t.stdout, &["memory.usage_in_bytes", "memory.usage"])
        .unwrap_or_else(|| panic!("no memory usage row in:\n{}", t.stdout));
    assert!(
        usage > 4_000_000,
        "memory usage {usage} should cover the 8 MB the shell holds:\n{}",
        t.stdout
    );
    let pids = table_value(&t.stdout, &["pids.current"]);
    assert!(
        pids.unwrap_or(0) >= 1,
        "pids.current should be >= 1:\n{}",
        t.stdout
    );
    if let Some(cpu) = table_value(&t.stdout, &["cpuacct.usage", "cpu.usage_usec"]) {
        assert!(cpu > 0, "cpu usage 0:\n{}", t.stdout);
    }

    // JSON format.
    let j = c.ctr_result(&["task", "metrics", "--format", "json", &r.id]);
    j.assert_ok();
    let v: Value = serde_json::from_str(j.stdout.trim())
        .unwrap_or_else(|e| panic!("metrics json: {e}:\n{}", j.stdout));
    let ju = json_usage(&v).unwrap_or_else(|| panic!("no memory usage in json:\n{}", j.stdout));
    assert!(ju > 4_000_000, "json memory usage {ju}:\n{}", j.stdout);
    r.assert_running();
    r.kill_and_check();
}

#[test]
fn metrics_of_paused_container_work_and_unknown_task_fails() {
    let c = Containerd::shared();
    let r = start_big(c, "metrics-paused");
    c.ctr_result(&["task", "pause", &r.id]).assert_ok();
    let t = c.ctr_result(&["task", "metrics", &r.id]);
    t.assert_ok();
    assert!(
        table_value(&t.stdout, &["memory.usage_in_bytes", "memory.usage"]).unwrap_or(0) > 0,
        "{}",
        t.stdout
    );
    c.ctr_result(&["task", "resume", &r.id]).assert_ok();
    let x = c.ctr_result(&["task", "metrics", "no-such-task-metrics"]);
    assert_ne!(x.code, Some(0), "{x:#?}");
    r.kill_and_check();
}
