//! Library-level lifecycle tests (kill, pids, destroy before start,
//! cleanup_bundle, containerd-style rootfs mounts). This test binary is also
//! the container init, so it has its own `main`. Needs root.

mod common;

use std::os::fd::OwnedFd;
use std::path::Path;

use common::{default_spec, read_all, wait_for, Bundle, TestFn};
use nix::sys::wait::WaitStatus;
use serde_json::json;
use tent_runtime::{cleanup_bundle, Container, ErrorKind, InitExe, RootfsMount, Stdio};

fn pipe_stdout() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().expect("pipe")
}

fn create(b: &Bundle, exe: &InitExe, mounts: &[RootfsMount], stdout: Option<OwnedFd>) -> Container {
    b.create(
        exe,
        mounts,
        Stdio {
            stdin: None,
            stdout,
            stderr: None,
        },
        &tent_runtime::Profile::default(),
    )
    .unwrap_or_else(|e| panic!("create {}: {e}", b.id))
}

fn kill_init_and_all(exe: &InitExe) {
    let b = Bundle::new("kill");
    b.write_config(&default_spec(&["sh", "-c", "sleep 100 & sleep 100 & wait"]));
    let mut c = create(&b, exe, &[], None);
    c.start().expect("start");
    // Give the shell a moment to fork its children.
    let mut pids = Vec::new();
    for _ in 0..100 {
        pids = c.pids().expect("pids");
        if pids.len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(pids.contains(&c.pid()), "{pids:?} lacks init {}", c.pid());
    assert_eq!(pids.len(), 3, "{pids:?}");
    c.kill(libc::SIGKILL, true).expect("kill all");
    match wait_for(c.pid()) {
        WaitStatus::Signaled(_, sig, _) => assert_eq!(sig as i32, libc::SIGKILL),
        other => panic!("unexpected {other:?}"),
    }
    let e = c
        .kill(libc::SIGTERM, false)
        .expect_err("signal to exited init");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.to_string(), "process already finished");
    c.destroy().expect("destroy");
    b.assert_clean();
}

fn kill_one(exe: &InitExe) {
    let b = Bundle::new("killone");
    b.write_config(&default_spec(&["sleep", "100"]));
    let mut c = create(&b, exe, &[], None);
    c.start().expect("start");
    c.kill(libc::SIGKILL, false).expect("kill");
    assert!(matches!(wait_for(c.pid()), WaitStatus::Signaled(..)));
    c.destroy().expect("destroy");
    b.assert_clean();
}

fn destroy_before_start(exe: &InitExe) {
    let b = Bundle::new("nostart");
    b.write_config(&default_spec(&["true"]));
    let c = create(&b, exe, &[], None);
    let pid = c.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(b.dir.join("tent-state.json").exists());
    c.destroy().expect("destroy");
    wait_for(pid);
    b.assert_clean();
}

fn cleanup_after_crash(exe: &InitExe) {
    let b = Bundle::new("crash");
    b.write_config(&default_spec(&["sleep", "100"]));
    let mut c = create(&b, exe, &[], None);
    c.start().expect("start");
    let pid = c.pid();
    std::mem::forget(c); // the "shim" dies without destroying
    let got = cleanup_bundle(&b.dir, &b.id).expect("cleanup_bundle");
    assert_eq!(got, Some(pid));
    assert!(matches!(wait_for(pid), WaitStatus::Signaled(..)));
    b.assert_clean();
    assert_eq!(cleanup_bundle(&b.dir, &b.id).expect("second cleanup"), None);
}

fn rootfs_mounts(exe: &InitExe) {
    // The image lives elsewhere; the bundle's rootfs starts empty.
    let image = Bundle::new("image");
    for kind in ["bind", "overlay"] {
        let b = Bundle::new(&format!("mnt{kind}"));
        std::fs::remove_dir_all(b.rootfs()).expect("empty rootfs");
        b.write_config(&default_spec(&[
            "sh",
            "-c",
            "echo via-$0; touch /tmp/x 2>&1 | grep -c Read-only",
            kind,
        ]));
        let mount = if kind == "bind" {
            RootfsMount {
                kind: "bind".into(),
                source: image.rootfs().to_string_lossy().into_owned(),
                target: String::new(),
                options: vec!["rbind".into(), "rw".into()],
            }
        } else {
            let (upper, work) = (b.dir.join("upper"), b.dir.join("work"));
            std::fs::create_dir_all(&upper).expect("upper");
            std::fs::create_dir_all(&work).expect("work");
            RootfsMount {
                kind: "overlay".into(),
                source: "overlay".into(),
                target: String::new(),
                options: vec![
                    format!("workdir={}", work.display()),
                    format!("upperdir={}", upper.display()),
                    format!("lowerdir={}", image.rootfs().display()),
                ],
            }
        };
        let (r, w) = pipe_stdout();
        let mut c = create(&b, exe, &[mount], Some(w));
        c.start().expect("start");
        assert!(matches!(wait_for(c.pid()), WaitStatus::Exited(_, 0)));
        c.destroy().expect("destroy");
        assert_eq!(read_all(r), format!("via-{kind}\n1\n"));
        b.assert_clean();
    }
}

/// A step of process setup that fails (here lowering oom_score_adj, which
/// this kind of host refuses) is a create error, not a start error, as runc.
fn setup_failure_is_a_create_error(exe: &InitExe) {
    let b = Bundle::new("oom");
    let mut spec = default_spec(&["true"]);
    spec["process"]["oomScoreAdj"] = json!(-998);
    b.write_config(&spec);
    let created = b.create(
        exe,
        &[],
        Stdio::default(),
        &tent_runtime::Profile::default(),
    );
    match created {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("oom_score_adj"), "{msg}");
            assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{msg}");
        }
        Ok(mut c) => {
            eprintln!("  (this host allows lowering oom_score_adj)");
            c.start().expect("start");
            wait_for(c.pid());
            c.destroy().expect("destroy");
        }
    }
    b.assert_clean();
}

/// tent's default profile: no_new_privileges forced on and the rootfs
/// `nosuid,nodev`, even for a spec that asks for neither; a dangerous
/// capability or the host's network namespace refused with the pod field
/// named, nothing left behind; `compat` runs the same spec as runc would.
fn tent_profile(exe: &InitExe) {
    let script =
        "grep NoNewPrivs /proc/self/status; awk '$5 == \"/\" {print $6}' /proc/self/mountinfo";
    let run = |b: &Bundle, profile: &tent_runtime::Profile| -> String {
        let (r, w) = pipe_stdout();
        let mut c = b
            .create(
                exe,
                &[],
                Stdio {
                    stdin: None,
                    stdout: Some(w),
                    stderr: None,
                },
                profile,
            )
            .unwrap_or_else(|e| panic!("create {}: {e}", b.id));
        c.start().expect("start");
        wait_for(c.pid());
        c.destroy().expect("destroy");
        read_all(r)
    };
    let tent = tent_runtime::Profile::default();
    let compat = tent_runtime::Profile {
        mode: tent_runtime::Mode::Compat,
        ..tent_runtime::Profile::default()
    };
    let b = Bundle::new("profile");
    let mut spec = default_spec(&["sh", "-c", script]);
    spec["process"]["noNewPrivileges"] = json!(false);
    spec["root"]["readonly"] = json!(false);
    b.write_config(&spec);
    let out = run(&b, &tent);
    assert!(out.contains("NoNewPrivs:\t1"), "tent: {out:?}");
    let root_opts = out.lines().last().unwrap_or_default();
    assert!(
        root_opts.contains("nosuid") && root_opts.contains("nodev"),
        "tent rootfs: {out:?}"
    );
    let out = run(&b, &compat);
    assert!(out.contains("NoNewPrivs:\t0"), "compat: {out:?}");
    let root_opts = out.lines().last().unwrap_or_default();
    assert!(!root_opts.contains("nosuid"), "compat rootfs: {out:?}");
    b.assert_clean();

    let refused = |edit: &dyn Fn(&mut serde_json::Value), field: &str| {
        let b = Bundle::new("profile-refused");
        let mut spec = default_spec(&["true"]);
        edit(&mut spec);
        b.write_config(&spec);
        let e = b
            .create(exe, &[], Stdio::default(), &tent)
            .map(|_| ())
            .expect_err(field);
        assert!(e.to_string().starts_with(field), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        b.assert_clean();
        // compat runs it.
        let out = run(&b, &compat);
        assert_eq!(out, "", "compat run of the refused spec");
        b.assert_clean();
    };
    refused(
        &|s| {
            if let Some(caps) = s["process"]["capabilities"]["bounding"].as_array_mut() {
                caps.push(json!("CAP_SYS_ADMIN"));
            }
        },
        "securityContext.capabilities.add: CAP_SYS_ADMIN",
    );
    refused(
        &|s| {
            if let Some(nss) = s["linux"]["namespaces"].as_array_mut() {
                nss.retain(|n| n["type"] != "network");
            }
        },
        "hostNetwork: ",
    );
}

fn unsupported_user_namespace(exe: &InitExe) {
    let b = Bundle::new("userns");
    let mut spec = default_spec(&["true"]);
    if let Some(a) = spec["linux"]["namespaces"].as_array_mut() {
        a.push(json!({"type": "user"}));
    }
    b.write_config(&spec);
    let e = b
        .create(
            exe,
            &[],
            Stdio::default(),
            &tent_runtime::Profile::default(),
        )
        .expect_err("user namespace");
    assert_eq!(e.kind(), ErrorKind::Unimplemented, "{e}");
    b.assert_clean();
}

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let tests: &[(&str, TestFn)] = &[
        ("kill_init_and_all", kill_init_and_all),
        ("kill_one", kill_one),
        ("destroy_before_start", destroy_before_start),
        ("cleanup_after_crash", cleanup_after_crash),
        ("rootfs_mounts", rootfs_mounts),
        (
            "setup_failure_is_a_create_error",
            setup_failure_is_a_create_error,
        ),
        ("unsupported_user_namespace", unsupported_user_namespace),
        ("tent_profile", tent_profile),
    ];
    common::run_suite("lifecycle", tests);
}
