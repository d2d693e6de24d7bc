//! tent's profiles through containerd (`ctr run --runtime-config-path`, as a CRI handler's
//! `options.ConfigPath` arrives): `tent`, the default, forces no_new_privileges and refuses
//! dangerous capabilities and host namespaces naming the pod field; `compat`
//! (`config/tent-compat.toml`) runs the same specs as runc does; a bad config is refused with
//! the file and key named, leaving nothing behind. tent-only: skipped when the runtime under
//! test is runc.

use tent_integration::*;

fn compat() -> RunOpts {
    let path = repo_root().join("config/tent-compat.toml");
    RunOpts::default().flag(format!("--runtime-config-path={}", path.display()))
}

fn tent_config() -> RunOpts {
    let path = repo_root().join("config/tent.toml");
    RunOpts::default().flag(format!("--runtime-config-path={}", path.display()))
}

#[test]
fn no_new_privileges_is_forced_by_tent_and_not_by_compat() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    for (opts, want) in [
        (RunOpts::default(), "1"),
        (tent_config(), "1"),
        (compat(), "0"),
    ] {
        let id = unique_id("prof-nnp");
        let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "status"]);
        spec["process"]["noNewPrivileges"] = serde_json::json!(false);
        let r = c.run_spec(&id, &spec, &opts);
        r.assert_ok();
        c.assert_no_leftovers(&id);
        let st = parse_status(&r.stdout);
        assert_eq!(
            st.get("NoNewPrivs").map(String::as_str),
            Some(want),
            "{opts:?}: {st:?}"
        );
    }
}

#[test]
fn dangerous_capability_is_refused_by_tent_and_run_by_compat() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let with_admin = |id: &str| {
        let mut spec = Spec::base(c, id, &["/bin/tent-testbin", "status"]);
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = spec["process"]["capabilities"][set].as_array_mut() {
                caps.push(serde_json::json!("CAP_SYS_ADMIN"));
            }
        }
        spec
    };
    let id = unique_id("prof-cap");
    let r = c.run_spec(&id, &with_admin(&id), &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.contains(
            "securityContext.capabilities.add: CAP_SYS_ADMIN is refused by tent's profile"
        ),
        "{r:#?}"
    );
    c.assert_no_leftovers(&id);
    let id = unique_id("prof-cap-compat");
    let r = c.run_spec(&id, &with_admin(&id), &compat());
    r.assert_ok();
    c.assert_no_leftovers(&id);
    let st = parse_status(&r.stdout);
    let admin = cap_mask(&["CAP_SYS_ADMIN"]);
    assert_eq!(parse_cap_mask(&st["CapEff"]) & admin, admin, "{st:?}");
}

#[test]
fn host_network_is_refused_by_tent_and_run_by_compat() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let host_net = |id: &str| {
        let mut spec = Spec::base(c, id, &["true"]);
        if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
            nss.retain(|n| n["type"] != "network");
        }
        spec
    };
    let id = unique_id("prof-net");
    let r = c.run_spec(&id, &host_net(&id), &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr
            .contains("hostNetwork: tent's profile refuses sharing the host's network namespace"),
        "{r:#?}"
    );
    c.assert_no_leftovers(&id);
    let id = unique_id("prof-net-compat");
    c.run_spec(&id, &host_net(&id), &compat()).assert_ok();
    c.assert_no_leftovers(&id);
}

#[test]
fn bad_config_is_refused_naming_file_and_key() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let id = unique_id("prof-bad");
    let file = std::env::temp_dir().join(format!("{id}.toml"));
    std::fs::write(
        &file,
        "mode = \"tent\"\n[allow]\nprivileged = true\nhost_pid = true\n",
    )
    .expect("write config");
    let opts = RunOpts::default().flag(format!("--runtime-config-path={}", file.display()));
    let r = c.run(&id, &["true"], &opts);
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr
            .contains(&format!("tent config {}", file.display()))
            && r.stderr.contains("unknown field `host_pid`"),
        "{r:#?}"
    );
    let _ = std::fs::remove_file(&file);
    c.assert_no_leftovers(&id);
}

/// tent's default seccomp filter, for a spec without `linux.seccomp`: AF_ALG sockets, user
/// namespaces, keyctl and ptrace of another process are refused with EPERM, ordinary calls
/// work, for the init and for an exec; `compat` runs the same spec unfiltered.
#[test]
fn default_seccomp_filter_under_tent() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let id = unique_id("prof-seccomp");
    let spec = Spec::base(c, &id, &["/bin/tent-testbin", "syscalls"]);
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    r.assert_ok();
    c.assert_no_leftovers(&id);
    for want in [
        "socket_af_alg=EPERM",
        "unshare_user=EPERM",
        "keyctl=EPERM",
        "ptrace_attach=EPERM",
        "socket_af_unix=ok",
        "getpid=ok",
    ] {
        assert!(r.stdout.contains(want), "tent: want {want}: {r:#?}");
    }
    let id = unique_id("prof-seccomp-compat");
    let spec = Spec::base(c, &id, &["/bin/tent-testbin", "syscalls"]);
    let r = c.run_spec(&id, &spec, &compat());
    r.assert_ok();
    c.assert_no_leftovers(&id);
    // Unfiltered: keyctl works, AF_ALG is at most unsupported by the kernel, not refused.
    assert!(r.stdout.contains("keyctl=ok"), "compat: {r:#?}");
    assert!(!r.stdout.contains("socket_af_alg=EPERM"), "compat: {r:#?}");
}

/// An exec into a tent container is filtered like its init.
#[test]
fn exec_gets_the_default_filter() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let id = unique_id("prof-seccomp-exec");
    let mut bg = c.spawn_run(
        &id,
        &["/bin/tent-testbin", "wait-term"],
        &RunOpts::default(),
    );
    bg.wait_for_line("ready", std::time::Duration::from_secs(20));
    let r = c.ctr_result(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "/bin/tent-testbin",
        "syscalls",
    ]);
    let _ = c.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
    let _ = bg.finish(std::time::Duration::from_secs(20));
    r.assert_ok();
    assert!(r.stdout.contains("unshare_user=EPERM"), "{r:#?}");
    assert!(r.stdout.contains("getpid=ok"), "{r:#?}");
    c.assert_no_leftovers(&id);
}

/// A spec's own seccomp profile through containerd decides, with its errno: a profile that
/// allows everything but `keyctl`, which gets EACCES, under both profiles (tent uses a
/// spec's profile as given).
#[test]
fn spec_seccomp_profile_decides() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    for (name, opts) in [("tent", RunOpts::default()), ("compat", compat())] {
        let id = unique_id("prof-seccomp-own");
        let mut spec = Spec::base(c, &id, &["/bin/tent-testbin", "syscalls"]);
        spec["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        });
        let r = c.run_spec(&id, &spec, &opts);
        r.assert_ok();
        c.assert_no_leftovers(&id);
        assert!(r.stdout.contains("keyctl=EACCES"), "{name}: {r:#?}");
        // Not tent's default: what the profile allows is allowed.
        assert!(!r.stdout.contains("socket_af_alg=EPERM"), "{name}: {r:#?}");
        assert!(
            !r.stdout.contains("unshare_user=EPERM") || name == "tent",
            "{name}: {r:#?}"
        );
    }
}

/// Security settings the host cannot apply are refused through containerd, naming the field,
/// leaving nothing: an AppArmor profile where AppArmor is off (or the profile not loaded),
/// an SELinux label without SELinux, a seccomp architecture tent cannot compile.
#[test]
fn unapplicable_security_settings_are_refused() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "apparmor",
            serde_json::json!({"process": {"apparmorProfile": "tent-test-not-loaded"}}),
            "process.apparmorProfile: ",
        ),
        (
            "arch",
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_PPC64LE"], "syscalls": []}}}),
            "linux.seccomp.architectures[0]",
        ),
    ];
    let mut cases = cases;
    if !selinux {
        cases.push((
            "selinux",
            serde_json::json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
            "process.selinuxLabel: SELinux is not enabled on this host",
        ));
    }
    for (name, patch, want) in cases {
        let id = unique_id(&format!("prof-bad-{name}"));
        let mut spec = Spec::base(c, &id, &["true"]);
        merge(&mut spec, &patch);
        let r = c.run_spec(&id, &spec, &RunOpts::default());
        assert_ne!(r.code, Some(0), "{name}: {r:#?}");
        assert!(r.stderr.contains(want), "{name}: want {want:?}: {r:#?}");
        c.assert_no_leftovers(&id);
    }
}

fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}
