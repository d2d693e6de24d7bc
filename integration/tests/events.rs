//! Task events through `ctr events` (issue #2).
use std::time::Duration;
use tent_integration::{unique_id, Background, Containerd, RunOpts, Value};

fn field(v: &Value, keys: &[&str]) -> Value {
    keys.iter()
        .find_map(|k| v.get(*k).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn lifecycle_events_have_id_pid_and_status() {
    let c = Containerd::shared();
    let id = unique_id("ev");
    let mut events = Background::spawn(c.ctr_command(&["events"]));
    // Give the subscription time to be established.
    std::thread::sleep(Duration::from_millis(700));
    let r = c.run(&id, &["sh", "-c", "exit 3"], &RunOpts::default());
    assert_eq!(r.code, Some(3), "{r:#?}");
    events.wait_for_line_matching(&["/tasks/delete", &id], Duration::from_secs(20));
    let out = events.stop();

    let mut seen: Vec<(String, Value)> = Vec::new();
    for line in out.stdout.lines() {
        let Some(topic) = line.split_whitespace().find(|w| w.starts_with("/tasks/")) else {
            continue;
        };
        let Some(j) = line.find('{') else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&line[j..]) else {
            continue;
        };
        if field(&v, &["container_id", "containerID", "containerId"]) == id.as_str() {
            seen.push((topic.to_string(), v));
        }
    }
    let topics: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events for {id}:\n{}",
        out.stdout
    );
    let pid = |i: usize| field(&seen[i].1, &["pid"]).as_u64().unwrap_or(0);
    assert!(pid(0) > 0, "create event without pid: {:?}", seen[0]);
    assert_eq!(pid(1), pid(0), "start pid != create pid: {seen:?}");
    assert_eq!(pid(2), pid(0), "exit pid != create pid: {seen:?}");
    assert_eq!(pid(3), pid(0), "delete pid != create pid: {seen:?}");
    assert_eq!(
        field(&seen[2].1, &["id"]),
        Value::from(id.as_str()),
        "exit event id must be the container id for the init process: {:?}",
        seen[2]
    );
    let status = |i: usize| {
        field(&seen[i].1, &["exit_status", "exitStatus"])
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(status(2), 3, "exit event status: {:?}", seen[2]);
    assert_eq!(status(3), 3, "delete event status: {:?}", seen[3]);
    assert!(
        !field(&seen[2].1, &["exited_at", "exitedAt"]).is_null(),
        "exit event without exited_at: {:?}",
        seen[2]
    );
}
