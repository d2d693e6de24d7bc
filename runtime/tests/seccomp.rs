//! seccomp through the runtime: a container and an exec under containerd's
//! RuntimeDefault profile (the fixture, as containerd puts it into specs on
//! amd64), a kill action, and a profile tent cannot compile failing create
//! with nothing left behind. The compiler itself is unit-tested in
//! `src/confine/seccomp/tests.rs`.
//!
//! This test binary is also the container init (it has its own `main`).
//! Needs root. Run one with `cargo test -p tent-runtime --test seccomp -- exec`.

mod common;

use std::os::fd::OwnedFd;

use common::{default_spec, read_all, wait_for, Bundle, TestFn};
use nix::sys::wait::WaitStatus;
use serde_json::{json, Value};
use tent_runtime::{Container, ErrorKind, ExecRequest, InitExe, Mode, Profile, Stdio};

fn runtime_default() -> Value {
    let text = include_str!("fixtures/seccomp-runtime-default-amd64.json");
    serde_json::from_str(text).expect("fixture")
}

/// The default spec with `profile` and CAP_SYS_ADMIN, so what fails below
/// fails because of the filter, not for want of a capability.
fn spec(args: &[&str], profile: Value) -> Value {
    let mut s = default_spec(args);
    let caps = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_SYS_ADMIN",
        "CAP_SETPCAP"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        s["process"]["capabilities"][set] = caps.clone();
    }
    s["linux"]["seccomp"] = profile;
    s
}

/// stdout and stderr into one pipe.
fn output_pipe() -> (OwnedFd, Stdio) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let w2 = w.try_clone().expect("dup");
    (
        r,
        Stdio {
            stdin: None,
            stdout: Some(w),
            stderr: Some(w2),
        },
    )
}

/// runc's semantics (tent's `compat` profile): the spec's CAP_SYS_ADMIN and
/// no_new_privileges as they are.
fn compat() -> Profile {
    Profile {
        mode: Mode::Compat,
        ..Profile::default()
    }
}

fn create(b: &Bundle, exe: &InitExe, stdio: Stdio) -> Container {
    b.create(exe, &[], stdio, &compat())
        .unwrap_or_else(|e| panic!("create {}: {e}", b.id))
}

/// Blocked calls fail with EPERM, everything a shell needs works, and the
/// kernel reports the process filtered.
const PROBE: &str = "grep -E '^Seccomp:' /proc/self/status; \
    unshare -U true; echo unshare=$?; \
    mount -t tmpfs none /dev/shm; echo mount=$?; \
    ls / > /dev/null; echo ls=$?; echo done";

fn assert_probe(out: &str) {
    assert!(out.contains("Seccomp:\t2"), "not filtered: {out}");
    assert!(
        out.contains("unshare=1") && out.contains("mount=1"),
        "{out}"
    );
    // EPERM as busybox words it for each.
    assert!(
        out.contains("unshare(0x10000000): Operation not permitted"),
        "{out}"
    );
    assert!(out.contains("mount: permission denied"), "{out}");
    assert!(out.contains("ls=0") && out.contains("done"), "{out}");
}

/// Runs [`PROBE`] as the init of a container with `profile`; its output.
fn probe_init(exe: &InitExe, name: &str, profile: Value) -> String {
    let b = Bundle::new(name);
    let mut s = spec(&["sh", "-c", PROBE], profile);
    if s["linux"]["seccomp"].is_null() {
        if let Some(linux) = s["linux"].as_object_mut() {
            linux.remove("seccomp");
        }
    }
    b.write_config(&s);
    let (r, stdio) = output_pipe();
    let mut c = create(&b, exe, stdio);
    c.start().expect("start");
    assert!(matches!(wait_for(c.pid()), WaitStatus::Exited(_, 0)));
    c.destroy().expect("destroy");
    b.assert_clean();
    read_all(r)
}

fn container_under_runtime_default(exe: &InitExe) {
    assert_probe(&probe_init(exe, "seccomp-init", runtime_default()));
    // The same container without the filter may do both: the filter, not a
    // missing capability, refused them.
    let out = probe_init(exe, "seccomp-none", Value::Null);
    assert!(out.contains("Seccomp:\t0"), "{out}");
    assert!(
        out.contains("unshare=0") && out.contains("mount=0"),
        "{out}"
    );
}

/// An exec is confined like its container, also when it turns
/// no_new_privileges off and keeps no CAP_SYS_ADMIN: the filter then has to
/// go in before the capabilities are dropped (as runc), or loading it fails.
fn exec_under_the_containers_filter(exe: &InitExe) {
    let b = Bundle::new("seccomp-exec");
    b.write_config(&spec(&["sleep", "100"], runtime_default()));
    let mut c = create(&b, exe, Stdio::default());
    c.start().expect("start");
    let process: oci_spec::runtime::Process = serde_json::from_value(json!({
        "args": ["sh", "-c", PROBE], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"], "noNewPrivileges": false,
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    }))
    .expect("process");
    let (r, stdio) = output_pipe();
    let p = c.exec(ExecRequest {
        process: &process,
        stdio,
    });
    let p = p.unwrap_or_else(|e| panic!("exec: {e}"));
    assert!(matches!(wait_for(p.pid), WaitStatus::Exited(_, 0)));
    c.kill(libc::SIGKILL, true).expect("kill");
    wait_for(c.pid());
    c.destroy().expect("destroy");
    assert_probe(&read_all(r));
    b.assert_clean();
}

/// A profile older than close_range (containerd < 1.5) still runs
/// containers and execs: tent's own close_range happens before the filter.
fn profile_without_close_range(exe: &InitExe) {
    let mut profile = runtime_default();
    if let Some(names) = profile["syscalls"][0]["names"].as_array_mut() {
        names.retain(|n| n != "close_range");
    }
    let b = Bundle::new("seccomp-old");
    b.write_config(&spec(&["sleep", "100"], profile));
    let mut c = create(&b, exe, Stdio::default());
    c.start().expect("start");
    let process: oci_spec::runtime::Process = serde_json::from_value(json!({
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]
    }))
    .expect("process");
    let p = c.exec(ExecRequest {
        process: &process,
        stdio: Stdio::default(),
    });
    let p = p.unwrap_or_else(|e| panic!("exec: {e}"));
    assert!(matches!(wait_for(p.pid), WaitStatus::Exited(_, 0)));
    c.kill(libc::SIGKILL, true).expect("kill");
    wait_for(c.pid());
    c.destroy().expect("destroy");
    b.assert_clean();
}

fn kill_action_kills(exe: &InitExe) {
    let b = Bundle::new("seccomp-kill");
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]});
    b.write_config(&spec(&["uname"], profile));
    let mut c = create(&b, exe, Stdio::default());
    c.start().expect("start");
    let status = wait_for(c.pid());
    assert!(
        matches!(status, WaitStatus::Signaled(_, nix::sys::signal::SIGSYS, _)),
        "{status:?}"
    );
    c.destroy().expect("destroy");
    b.assert_clean();
}

fn uncompilable_profile_fails_create(exe: &InitExe) {
    let b = Bundle::new("seccomp-bad");
    let mut profile = runtime_default();
    profile["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE"]);
    b.write_config(&spec(&["true"], profile));
    let e = b
        .create(exe, &[], Stdio::default(), &compat())
        .expect_err("ppc64le");
    assert_eq!(e.kind(), ErrorKind::Unimplemented, "{e}");
    assert!(
        e.to_string().contains("linux.seccomp.architectures[1]"),
        "{e}"
    );
    b.assert_clean();
}

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let tests: &[(&str, TestFn)] = &[
        (
            "container_under_runtime_default",
            container_under_runtime_default,
        ),
        (
            "exec_under_the_containers_filter",
            exec_under_the_containers_filter,
        ),
        ("profile_without_close_range", profile_without_close_range),
        ("kill_action_kills", kill_action_kills),
        (
            "uncompilable_profile_fails_create",
            uncompilable_profile_fails_create,
        ),
    ];
    common::run_suite("seccomp", tests);
}
