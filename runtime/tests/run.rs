//! End-to-end runs of real containers through the `tent-runtime-run` CLI
//! (which is also the container init). Needs root.

mod common;

use std::process::{Command, Output};

use common::{default_spec, is_root, Bundle};
use serde_json::{json, Value};

fn run(b: &Bundle) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tent-runtime-run"))
        .arg(&b.dir)
        .arg(&b.id)
        .output()
        .expect("run tent-runtime-run")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `sh -c script` with `edit` applied to the default spec.
fn sh(name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> (Output, Bundle) {
    let b = Bundle::new(name);
    let mut spec = default_spec(&["sh", "-c", script]);
    edit(&mut spec);
    b.write_config(&spec);
    let o = run(&b);
    b.assert_clean();
    (o, b)
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

#[test]
fn echo_reaches_stdout_and_exit_code_propagates() {
    require_root!();
    let (o, _b) = sh("echo", "echo hello from tent; exit 7", |_| {});
    assert_eq!(stdout(&o), "hello from tent\n", "stderr: {}", stderr(&o));
    assert_eq!(o.status.code(), Some(7));
}

#[test]
fn hostname_user_env_cwd() {
    require_root!();
    let (o, _b) = sh(
        "ident",
        "hostname; id -u; id -g; id -G; echo $FOO; pwd; umask",
        |s| {
            s["hostname"] = json!("box1");
            s["process"]["user"] =
                json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23});
            if let Some(e) = s["process"]["env"].as_array_mut() {
                e.push(json!("FOO=bar baz"));
            }
            s["process"]["cwd"] = json!("/home/user");
        },
    );
    assert_eq!(
        stdout(&o),
        "box1\n1000\n1001\n1001 10 20\nbar baz\n/home/user\n0027\n",
        "stderr: {}",
        stderr(&o)
    );
    assert!(o.status.success());
}

#[test]
fn readonly_rootfs_and_writable_tmpfs() {
    require_root!();
    let (o, _b) = sh(
        "ro",
        "touch /x 2>&1; echo rc=$?; touch /dev/shm/y && echo shm-ok",
        |_| {},
    );
    let out = stdout(&o);
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("shm-ok"), "{out}");
}

fn assert_lines(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
}

const CAP_SCRIPT: &str = "grep ^Cap /proc/self/status; grep NoNewPrivs /proc/self/status";

#[test]
fn capabilities_exactly_as_listed() {
    require_root!();
    let (o, _b) = sh("caps", CAP_SCRIPT, |_| {});
    // AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10); nothing inheritable (CVE-2022-29162).
    assert_lines(
        &stdout(&o),
        &[
            "CapInh:\t0000000000000000",
            "CapPrm:\t0000000020000420",
            "CapEff:\t0000000020000420",
            "CapBnd:\t0000000020000420",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t1",
        ],
    );
}

#[test]
fn non_root_keeps_only_ambient_capabilities() {
    require_root!();
    let (o, _b) = sh("capsuser", CAP_SCRIPT, |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
        s["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
    });
    assert_lines(
        &stdout(&o),
        &[
            "CapInh:\t0000000000000020",
            "CapPrm:\t0000000000000020",
            "CapEff:\t0000000000000020",
            "CapBnd:\t0000000020000420",
            "CapAmb:\t0000000000000020",
        ],
    );
}

#[test]
fn cgroup_limits_and_mounts() {
    require_root!();
    let (o, _b) = sh(
        "cglimits",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
         grep -c . /sys/fs/cgroup/pids/cgroup.procs; cat /proc/1/cmdline | tr '\\0' ' '; echo; \
         ls /dev; cat /proc/kcore 2>&1 | wc -c; echo > /proc/sys/kernel/domainname 2>&1 || echo sys-ro; \
         cat /sys/fs/cgroup/devices/devices.list",
        |s| {
            s["linux"]["resources"]["memory"] = json!({"limit": 104857600});
            s["linux"]["resources"]["pids"] = json!({"limit": 50});
        },
    );
    let out = stdout(&o);
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert!(out.starts_with("104857600\n50\n"), "{out}\n{}", stderr(&o));
    }
    assert!(out.contains("sh -c"), "pid 1 is the workload: {out}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd",
    ] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
    assert!(out.contains("sys-ro"), "{out}");
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert!(!out.contains("a *:* rwm"), "devices not restricted: {out}");
        assert!(out.contains("c 1:3 rwm"), "{out}");
    }
}

fn expect_failure(name: &str, edit: impl FnOnce(&Bundle), want: &str) {
    let b = Bundle::new(name);
    edit(&b);
    let o = run(&b);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(125),
        "stderr: {err} stdout: {}",
        stdout(&o)
    );
    assert!(err.contains(want), "want {want:?} in {err:?}");
    b.assert_clean();
}

fn with_spec(edit: impl FnOnce(&mut Value)) -> impl FnOnce(&Bundle) {
    move |b: &Bundle| {
        let mut s = default_spec(&["true"]);
        edit(&mut s);
        b.write_config(&s);
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    require_root!();
    expect_failure(
        "badjson",
        |b| b.write_raw_config("{\"ociVersion\": "),
        "config.json: ",
    );
    expect_failure(
        "noargs",
        with_spec(|s| s["process"]["args"] = json!([])),
        "process.args: is empty: nothing to run",
    );
    expect_failure(
        "badns",
        with_spec(|s| s["linux"]["namespaces"][2]["type"] = json!("bogus")),
        "linux.namespaces[2]: unknown namespace type \"bogus\"",
    );
    expect_failure(
        "nspath",
        with_spec(|s| s["linux"]["namespaces"][1]["path"] = json!("/proc/999999/ns/net")),
        "linux.namespaces[1]: path /proc/999999/ns/net does not exist",
    );
    expect_failure(
        "rlimit",
        with_spec(|s| {
            s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
        }),
        "process.rlimits[0]: RLIMIT_NOFILE: soft limit 10 exceeds hard limit 5",
    );
    expect_failure(
        "rlimittype",
        with_spec(|s| {
            s["process"]["rlimits"] = json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}])
        }),
        "process.rlimits[0]: unknown rlimit type",
    );
    expect_failure(
        "cgdotdot",
        with_spec(|s| s["linux"]["cgroupsPath"] = json!("/tent/../../escape")),
        "linux.cgroupsPath: ",
    );
    expect_failure(
        "terminal-no-devpts",
        with_spec(|s| {
            s["process"]["terminal"] = json!(true);
            if let Some(m) = s["mounts"].as_array_mut() {
                m.retain(|m| m["destination"] != "/dev/pts");
            }
        }),
        "is devpts mounted on /dev/pts?",
    );
    expect_failure(
        "norootfs",
        |b| {
            let _ = std::fs::remove_dir_all(b.rootfs());
        },
        "root.path: ",
    );
    expect_failure(
        "notinpath",
        with_spec(|s| s["process"]["args"] = json!(["no-such-tool"])),
        "exec: \"no-such-tool\": executable file not found in $PATH",
    );
    expect_failure(
        "abspath",
        with_spec(|s| s["process"]["args"] = json!(["/bin/nope"])),
        "stat /bin/nope",
    );
}

#[test]
fn proc_on_symlink_is_refused() {
    require_root!();
    expect_failure(
        "procsymlink",
        |b| {
            let proc_dir = b.rootfs().join("proc");
            let _ = std::fs::remove_dir(&proc_dir);
            let _ = std::os::unix::fs::symlink("/tmp", &proc_dir);
        },
        "refusing to mount proc",
    );
}

#[test]
fn failing_setup_step_is_reported_and_cleaned() {
    require_root!();
    // Setting a sysctl that does not exist fails inside the init after mounts.
    expect_failure(
        "sysctl",
        with_spec(|s| s["linux"]["sysctl"] = json!({"net.no.such.key": "1"})),
        "linux.sysctl: open /proc/sys/net/no/such/key",
    );
}

#[test]
fn systemd_cgroup_path() {
    require_root!();
    let (o, b) = sh("systemd", "cat /proc/self/cgroup", |s| {
        s["linux"]["cgroupsPath"] = json!("tent-test.slice:tent:sd");
    });
    let _ = b;
    let out = stdout(&o);
    // With a cgroup namespace the container sees itself at the root.
    let want = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "0::/\n"
    } else {
        "memory:/\n"
    };
    assert!(out.contains(want), "{out} {}", stderr(&o));
    assert!(o.status.success(), "{}", stderr(&o));
    for d in common::cgroup_dirs("tent.slice/tent-test.slice/tent-sd.scope") {
        assert!(!d.exists(), "{} left", d.display());
    }
    // The parent slices stay (as with runc); tidy up after ourselves.
    for rel in ["tent.slice/tent-test.slice", "tent.slice"] {
        for d in common::cgroup_dirs(rel) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn no_fds_leak_into_the_workload() {
    require_root!();
    // 0, 1, 2 and the directory fd of `ls` itself.
    let (o, _b) = sh(
        "fds",
        "ls /proc/self/fd | wc -l; readlink /proc/1/exe",
        |_| {},
    );
    assert_eq!(stdout(&o), "4\n/bin/busybox\n", "{}", stderr(&o));
}
