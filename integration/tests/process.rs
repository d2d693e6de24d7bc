//! Process attributes: env, cwd, hostname, user/groups, rlimits, capabilities (issue #2).
//!
//! `ctr run` has no rlimit flag and (on 1.6) no `--user`/`--hostname`, so most cases use a full
//! spec through `ctr run --config` (built by `tent_integration::Spec`).
use tent_integration::{
    cap_mask, containerd_version, parse_cap_mask, parse_status, unique_id, Containerd, RunOpts,
    Spec, Value, DEFAULT_CAPS,
};

fn status_of(c: &Containerd, id: &str, spec: &Value) -> std::collections::HashMap<String, String> {
    let r = c.run_spec(id, spec, &RunOpts::default());
    r.assert_ok();
    c.assert_no_leftovers(id);
    parse_status(&r.stdout)
}

#[test]
fn env_from_flag_and_image() {
    let c = Containerd::shared();
    let id = unique_id("proc-env");
    let r = c.run(
        &id,
        &["env"],
        &RunOpts::default()
            .flag("--env=TENT_FOO=bar baz")
            .flag("--env=TENT_EMPTY="),
    );
    r.assert_ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.contains(&"TENT_FOO=bar baz"), "{r:#?}");
    assert!(lines.contains(&"TENT_EMPTY="), "{r:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PATH=") && l.contains("/bin")),
        "image PATH missing: {r:#?}"
    );
}

#[test]
fn env_from_spec_exactly() {
    let c = Containerd::shared();
    let id = unique_id("proc-env-spec");
    let mut spec = Spec::base(c, &id, &["env"]);
    spec["process"]["env"] = serde_json::json!(["PATH=/bin", "A=1", "B=two words"]);
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    r.assert_ok();
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    // HOME may be added by the runtime (runc adds HOME when missing), nothing else.
    lines.retain(|l| !l.starts_with("HOME="));
    assert_eq!(lines, ["A=1", "B=two words", "PATH=/bin"], "{r:#?}");
}

#[test]
fn cwd_from_flag() {
    let c = Containerd::shared();
    let id = unique_id("proc-cwd");
    let r = c.run(&id, &["pwd"], &RunOpts::default().flag("--cwd=/tmp"));
    r.assert_ok();
    assert_eq!(r.stdout.trim(), "/tmp", "{r:#?}");
}

#[test]
fn cwd_hostname_from_spec() {
    let c = Containerd::shared();
    let id = unique_id("proc-cwd-host");
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "status"]);
    spec["process"]["cwd"] = "/home/tent".into();
    spec["hostname"] = "tent-host-7".into();
    let st = status_of(c, &id, &spec);
    assert_eq!(
        st.get("Cwd").map(String::as_str),
        Some("/home/tent"),
        "{st:?}"
    );
    assert_eq!(
        st.get("Hostname").map(String::as_str),
        Some("tent-host-7"),
        "{st:?}"
    );
}

#[test]
fn uid_gid_groups_from_spec() {
    let c = Containerd::shared();
    let id = unique_id("proc-user");
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "status"]);
    spec["process"]["user"] = serde_json::json!({
        "uid": 1000, "gid": 1000, "additionalGids": [65534, 1000], "umask": 23
    });
    let st = status_of(c, &id, &spec);
    assert_eq!(
        st.get("Uid")
            .map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["1000"; 4]),
        "{st:?}"
    );
    assert_eq!(
        st.get("Gid")
            .map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["1000"; 4]),
        "{st:?}"
    );
    let mut groups: Vec<&str> = st
        .get("Groups")
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    groups.sort();
    assert_eq!(groups, ["1000", "65534"], "{st:?}");
    assert_eq!(st.get("Umask").map(String::as_str), Some("0027"), "{st:?}");
}

#[test]
fn user_flag_resolves_names_from_image() {
    // `ctr run --user` exists from containerd 1.7 on.
    if containerd_version() == "1.6" {
        eprintln!("skip: ctr 1.6 has no --user (covered by uid_gid_groups_from_spec)");
        return;
    }
    let c = Containerd::shared();
    let id = unique_id("proc-user-flag");
    let r = c.run(&id, &["id"], &RunOpts::default().flag("--user=tent"));
    r.assert_ok();
    assert!(
        r.stdout.starts_with("uid=1000(tent) gid=1000(tent)"),
        "{r:#?}"
    );
    let id2 = unique_id("proc-uid-flag");
    let r = c.run(
        &id2,
        &["id", "-u"],
        &RunOpts::default().flag("--user=65534:65534"),
    );
    r.assert_ok();
    assert_eq!(r.stdout.trim(), "65534", "{r:#?}");
}

#[test]
fn rlimits_from_spec() {
    let c = Containerd::shared();
    let id = unique_id("proc-rlimit");
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "status"]);
    spec["process"]["rlimits"] = serde_json::json!([
        { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 768 },
        { "type": "RLIMIT_NPROC", "soft": 300, "hard": 400 },
        { "type": "RLIMIT_CORE", "soft": 0, "hard": 4096 }
    ]);
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    r.assert_ok();
    let limit = |name: &str| -> Vec<String> {
        r.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .take(2)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(limit("Max open files"), ["512", "768"], "{}", r.stdout);
    assert_eq!(limit("Max processes"), ["300", "400"], "{}", r.stdout);
    assert_eq!(limit("Max core file size"), ["0", "4096"], "{}", r.stdout);
    c.assert_no_leftovers(&id);
}

fn caps(st: &std::collections::HashMap<String, String>, k: &str) -> u64 {
    parse_cap_mask(st.get(k).unwrap_or_else(|| panic!("{k} missing in {st:?}")))
}

#[test]
fn default_capabilities_from_image_run() {
    let c = Containerd::shared();
    let id = unique_id("proc-caps-default");
    let r = c.run(&id, &["/bin/tent-testbin", "status"], &RunOpts::default());
    r.assert_ok();
    let st = parse_status(&r.stdout);
    let want = cap_mask(&DEFAULT_CAPS);
    assert_eq!(caps(&st, "CapBnd"), want, "{st:?}");
    assert_eq!(caps(&st, "CapPrm"), want, "{st:?}");
    assert_eq!(caps(&st, "CapEff"), want, "{st:?}");
    // CVE-2022-29162: never inheritable/ambient unless the spec asks.
    assert_eq!(caps(&st, "CapInh"), 0, "{st:?}");
    assert_eq!(caps(&st, "CapAmb"), 0, "{st:?}");
    assert_eq!(
        st.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "{st:?}"
    );
}

#[test]
fn capability_sets_from_spec() {
    let c = Containerd::shared();
    let id = unique_id("proc-caps");
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_SYS_CHROOT",
    ];
    let prm = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    // For uid 0 under no_new_privs the kernel sets effective = permitted at execve, so the
    // spec's effective set equals its permitted set here.
    let eff = prm;
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "status"]);
    spec["process"]["capabilities"] = serde_json::json!({
        "bounding": bnd, "permitted": prm, "effective": eff
    });
    let st = status_of(c, &id, &spec);
    assert_eq!(caps(&st, "CapBnd"), cap_mask(&bnd), "{st:?}");
    assert_eq!(caps(&st, "CapPrm"), cap_mask(&prm), "{st:?}");
    assert_eq!(caps(&st, "CapEff"), cap_mask(&eff), "{st:?}");
    assert_eq!(caps(&st, "CapInh"), 0, "{st:?}");
    assert_eq!(caps(&st, "CapAmb"), 0, "{st:?}");
}

#[test]
fn inheritable_and_ambient_when_asked() {
    let c = Containerd::shared();
    let id = unique_id("proc-caps-amb");
    let set = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "status"]);
    spec["process"]["user"] = serde_json::json!({ "uid": 1000, "gid": 1000 });
    spec["process"]["capabilities"] = serde_json::json!({
        "bounding": set, "permitted": set, "effective": set,
        "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let st = status_of(c, &id, &spec);
    let nbs = cap_mask(&["CAP_NET_BIND_SERVICE"]);
    assert_eq!(caps(&st, "CapInh"), nbs, "{st:?}");
    assert_eq!(caps(&st, "CapAmb"), nbs, "{st:?}");
    assert_eq!(caps(&st, "CapBnd"), cap_mask(&set), "{st:?}");
    // After execve as non-root, ambient caps become permitted and effective.
    assert_eq!(caps(&st, "CapEff") & nbs, nbs, "{st:?}");
}
