//! Bad input through containerd: the error names the problem, nothing is left behind (issue #2).
use tent_integration::{unique_id, Containerd, RunOpts, Spec};

#[test]
fn missing_executable_names_the_path() {
    let c = Containerd::shared();
    let id = unique_id("err-noexec");
    let r = c.run(
        &id,
        &["/bin/tent-no-such-binary", "arg"],
        &RunOpts::default(),
    );
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.contains("/bin/tent-no-such-binary"),
        "error must name the path: {r:#?}"
    );
    let ls = c.ctr_result(&["container", "ls", "-q"]);
    assert!(
        !ls.stdout.lines().any(|l| l == id),
        "container still listed"
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn missing_executable_in_path_names_it() {
    let c = Containerd::shared();
    let id = unique_id("err-nocmd");
    let r = c.run(&id, &["tent-no-such-command"], &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(r.stderr.contains("tent-no-such-command"), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn bad_mount_type_in_spec_names_the_mount() {
    let c = Containerd::shared();
    let id = unique_id("err-mount");
    let mut spec = Spec::base(c, &id, &["true"]);
    spec["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(serde_json::json!({
            "destination": "/tent-bad-mount", "type": "tentnosuchfs", "source": "none"
        }));
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.contains("/tent-bad-mount"),
        "error must name the mount: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn bad_rlimit_in_spec_names_it() {
    let c = Containerd::shared();
    let id = unique_id("err-rlimit");
    let mut spec = Spec::base(c, &id, &["true"]);
    spec["process"]["rlimits"] = serde_json::json!([
        { "type": "RLIMIT_TENTBOGUS", "soft": 1, "hard": 1 }
    ]);
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.contains("RLIMIT_TENTBOGUS"),
        "error must name the rlimit: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn relative_cwd_in_spec_is_refused() {
    let c = Containerd::shared();
    let id = unique_id("err-cwd");
    let mut spec = Spec::base(c, &id, &["true"]);
    spec["process"]["cwd"] = "relative/dir".into();
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.to_lowercase().contains("cwd"),
        "error must name the cwd field: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}
