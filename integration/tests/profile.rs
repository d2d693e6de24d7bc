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
