//! Standard streams and exit codes through `ctr run` (issue #2).
use tent_integration::{unique_id, Containerd, RunOpts};

#[test]
fn stdout_and_stderr_are_separate() {
    let c = Containerd::shared();
    let id = unique_id("io-streams");
    let r = c.run(
        &id,
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2"],
        &RunOpts::default(),
    );
    r.assert_ok();
    assert_eq!(r.stdout.trim(), "to-stdout", "{r:#?}");
    assert!(r.stderr.contains("to-stderr"), "{r:#?}");
    assert!(
        !r.stdout.contains("to-stderr"),
        "stderr leaked into stdout: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn echo_args_reach_the_process() {
    let c = Containerd::shared();
    let id = unique_id("io-echo");
    let r = c.run(
        &id,
        &["echo", "hello", "from a", "tent"],
        &RunOpts::default(),
    );
    r.assert_ok();
    assert_eq!(r.stdout, "hello from a tent\n", "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn exit_code_propagates() {
    let c = Containerd::shared();
    let id = unique_id("io-exit3");
    let r = c.run(&id, &["sh", "-c", "exit 3"], &RunOpts::default());
    assert_eq!(r.code, Some(3), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn exit_code_of_direct_exec_propagates() {
    let c = Containerd::shared();
    let id = unique_id("io-exit-bin");
    let r = c.run(
        &id,
        &["/bin/tent-testbin", "exit", "7"],
        &RunOpts::default(),
    );
    assert_eq!(r.code, Some(7), "{r:#?}");
}

#[test]
fn stdin_through_cat() {
    let c = Containerd::shared();
    let id = unique_id("io-stdin");
    let input = "line one\nline two\n".repeat(1000);
    let r = c.run(&id, &["cat"], &RunOpts::default().stdin(input.clone()));
    r.assert_ok();
    assert_eq!(
        r.stdout.len(),
        input.len(),
        "stdout length differs: stderr {}",
        r.stderr
    );
    assert_eq!(r.stdout, input);
    c.assert_no_leftovers(&id);
}

#[test]
fn empty_stdin_gives_eof() {
    let c = Containerd::shared();
    let id = unique_id("io-eof");
    let r = c.run(
        &id,
        &["sh", "-c", "cat; echo eof-seen"],
        &RunOpts::default().stdin(Vec::new()),
    );
    r.assert_ok();
    assert_eq!(r.stdout, "eof-seen\n", "{r:#?}");
}
