//! OOM: a container over its memory limit is killed, `/tasks/oom` is published, exit 137
//! (issue #3).
mod common;

use std::time::Duration;

use common::SLOW;
use tent_integration::{unique_id, Background, Containerd, RunOpts};

#[test]
fn oom_kill_publishes_event_and_exits_137() {
    let c = Containerd::shared();
    let id = unique_id("oom");
    let _g = common::Cleanup { c, id: id.clone() };
    let mut events = Background::spawn(c.ctr_command(&["events"]));
    std::thread::sleep(Duration::from_millis(700));
    let r = c.run(
        &id,
        &[
            "sh",
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
        ],
        &RunOpts {
            timeout: SLOW,
            ..RunOpts::default()
        }
        .flag("--memory-limit")
        .flag("16777216"),
    );
    assert_eq!(
        r.code,
        Some(137),
        "task over its memory limit should exit 137: {r:#?}"
    );
    assert!(!r.stdout.contains("survived"), "{r:#?}");
    let line = events.wait_for_line_matching(&["/tasks/oom", &id], Duration::from_secs(20));
    eprintln!("oom event: {line}");
    events.wait_for_line_matching(&["/tasks/delete", &id], Duration::from_secs(20));
    let out = events.stop();
    // The OOM event comes before the task's exit is reported to containerd... at least before
    // its delete; and exactly one /tasks/exit with status 137 for the init.
    let exit = out
        .stdout
        .lines()
        .find(|l| l.contains("/tasks/exit") && l.contains(&id))
        .unwrap_or_else(|| panic!("no /tasks/exit for {id}:\n{}", out.stdout));
    assert!(exit.contains("137"), "exit event should carry 137: {exit}");
    c.assert_no_leftovers(&id);
}

#[test]
fn no_oom_event_below_the_limit() {
    let c = Containerd::shared();
    let id = unique_id("no-oom");
    let _g = common::Cleanup { c, id: id.clone() };
    let mut events = Background::spawn(c.ctr_command(&["events"]));
    std::thread::sleep(Duration::from_millis(700));
    let r = c.run(
        &id,
        &[
            "sh",
            "-c",
            "x=$(head -c 2000000 /dev/zero | tr '\\0' a); echo fine",
        ],
        &RunOpts::default().flag("--memory-limit").flag("67108864"),
    );
    r.assert_ok();
    assert_eq!(r.stdout.trim(), "fine");
    events.wait_for_line_matching(&["/tasks/delete", &id], Duration::from_secs(20));
    let out = events.stop();
    assert!(
        !out.stdout
            .lines()
            .any(|l| l.contains("/tasks/oom") && l.contains(&id)),
        "unexpected oom event:\n{}",
        out.stdout
    );
    c.assert_no_leftovers(&id);
}
