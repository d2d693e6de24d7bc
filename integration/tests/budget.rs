//! The tent profile's audit budget (`[audit]`) through containerd's Task API
//! (`ctr run --runtime-config-path`, as a CRI handler's `options.ConfigPath`
//! arrives). The test image carries busybox: a shell, `mount`, `nsenter`, …
//! In `deny` mode Create fails naming the rule and the files and leaves
//! nothing behind; in `warn` mode the container runs and the shim logs the
//! breach; a budget the image keeps to runs. tent-only (runc has no budget).

use tent_integration::*;

fn profile(c: &Containerd, name: &str, audit: &str) -> RunOpts {
    let path = c
        .dir()
        .join(format!("budget-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, format!("mode = \"tent\"\n\n[audit]\n{audit}\n")).expect("write profile");
    RunOpts::default().flag(format!("--runtime-config-path={}", path.display()))
}

fn log_since(c: &Containerd, from: usize) -> String {
    let s = std::fs::read_to_string(c.log_path()).unwrap_or_default();
    s.get(from..).unwrap_or_default().to_string()
}

fn log_len(c: &Containerd) -> usize {
    std::fs::metadata(c.log_path()).map_or(0, |m| m.len() as usize)
}

#[test]
fn deny_refuses_create_naming_rule_and_files() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let opts = profile(
        c,
        "deny",
        "mode = \"deny\"\nforbid = [\"shell\", \"kernel-tools\", \"compiler\"]\nmax_setuid = 0",
    );
    let id = unique_id("budget-deny");
    let r = c.run(&id, &["/bin/tent-testbin", "exit", "0"], &opts);
    assert_ne!(r.code, Some(0), "{r:#?}");
    for want in [
        "exceeds tent's audit budget",
        "[audit] forbid = [\"shell\"]: /bin/",
        "/bin/sh",
        "[audit] forbid = [\"kernel-tools\"]:",
        "mode = \"deny\"",
    ] {
        assert!(r.stderr.contains(want), "{want:?} missing: {r:#?}");
    }
    // Within budget: no setuid files, no compiler in the image.
    assert!(!r.stderr.contains("max_setuid"), "{r:#?}");
    assert!(!r.stderr.contains("compiler"), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn warn_runs_and_logs() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let opts = profile(c, "warn", "mode = \"warn\"\nforbid = [\"shell\"]");
    let id = unique_id("budget-warn");
    let from = log_len(c);
    // A container that runs until the judgement is logged: it is made off the start path, in a
    // low-priority thread, and a shim whose last container is gone may exit (and its log end)
    // before a starved thread logs it.
    let mut bg = c.spawn_run(&id, &["/bin/tent-testbin", "pause"], &opts);
    bg.wait_for_line("ready", std::time::Duration::from_secs(30));
    let mut log = String::new();
    for _ in 0..400 {
        log = log_since(c, from);
        if log.contains("exceeds tent's audit budget") && log.contains("audit score") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    c.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    assert_eq!(
        bg.finish(std::time::Duration::from_secs(30)).code,
        Some(137)
    );
    c.assert_no_leftovers(&id);
    let line = log
        .lines()
        .find(|l| l.contains(&id) && l.contains("exceeds tent's audit budget"))
        .unwrap_or_else(|| panic!("no budget warning for {id} in the log:\n{log}"));
    assert!(line.contains("/bin/sh") && line.contains("warn"), "{line}");
    assert!(
        log.lines()
            .any(|l| l.contains(&id) && l.contains("audit score")),
        "no audit summary for {id}:\n{log}"
    );
}

#[test]
fn within_budget_runs_and_bad_budget_is_refused() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let opts = profile(
        c,
        "ok",
        "mode = \"deny\"\nmax_setuid = 0\nmax_capabilities = 0\nforbid = [\"compiler\", \"devices\"]",
    );
    let id = unique_id("budget-ok");
    let r = c.run(&id, &["/bin/tent-testbin", "exit", "0"], &opts);
    r.assert_ok();
    c.assert_no_leftovers(&id);

    let opts = profile(c, "bad", "forbid = [\"shells\"]");
    let id = unique_id("budget-bad");
    let r = c.run(&id, &["/bin/tent-testbin", "exit", "0"], &opts);
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.contains("[audit] forbid: unknown \"shells\""),
        "{r:#?}"
    );
    c.assert_no_leftovers(&id);
}

/// `[audit] summary = false`: no walk at Create, so no `tent-audit.json` in the bundle and no
/// summary in the log, while a container of the default profile started after it gets both;
/// with a budget it is refused (the budget needs the walk), naming the field.
#[test]
fn summary_off_keeps_no_summary_and_refuses_a_budget() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let off = profile(c, "nosummary", "summary = false");
    let off_id = unique_id("summary-off");
    let on_id = unique_id("summary-on");
    let mut a = c.spawn_run(&off_id, &["/bin/tent-testbin", "pause"], &off);
    a.wait_for_line("ready", std::time::Duration::from_secs(30));
    let mut b = c.spawn_run(&on_id, &["/bin/tent-testbin", "pause"], &RunOpts::default());
    b.wait_for_line("ready", std::time::Duration::from_secs(30));
    // The control: the default profile's summary appears (made after `off_id`'s would have).
    let on_file = c.bundle_dir(&on_id).join("tent-audit.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !on_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {} within 60 s:\n{}",
            on_file.display(),
            c.log_tail(30)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let off_bundle = c.bundle_dir(&off_id);
    assert!(
        off_bundle.join("config.json").exists(),
        "{off_id} still running"
    );
    let off_kept = off_bundle.join("tent-audit.json").exists();
    let log = std::fs::read_to_string(c.log_path()).unwrap_or_default();
    for id in [&off_id, &on_id] {
        c.ctr_result(&["task", "kill", "-s", "SIGKILL", id])
            .assert_ok();
    }
    assert_eq!(a.finish(std::time::Duration::from_secs(30)).code, Some(137));
    assert_eq!(b.finish(std::time::Duration::from_secs(30)).code, Some(137));
    assert!(
        !off_kept,
        "{off_id} has a tent-audit.json with summary = false"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains(&format!("container {off_id}: audit"))),
        "a summary logged for {off_id}:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("container {on_id}: audit"))),
        "no summary logged for {on_id}"
    );
    c.assert_no_leftovers(&off_id);
    c.assert_no_leftovers(&on_id);

    let opts = profile(
        c,
        "nosummary-budget",
        "summary = false\nforbid = [\"shell\"]",
    );
    let id = unique_id("summary-off-budget");
    let r = c.run(&id, &["/bin/tent-testbin", "exit", "0"], &opts);
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr
            .contains("[audit] summary = false: the budget (forbid)"),
        "{r:#?}"
    );
    c.assert_no_leftovers(&id);
}
