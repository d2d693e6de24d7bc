//! Operations on a running container: exec, pause/resume, stats, update, OOM
//! notification and terminals. This test binary is also the container init (it
//! has its own `main`). Needs root. Run one group with `cargo test --test ops -- exec`.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::{default_spec, pipe, reap_zombies, wait_for, Bundle, TestFn};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process};
use serde_json::{json, Value};
use tent_runtime::{Container, ErrorKind, ExecRequest, InitExe, Stdio};

/// Creates and starts a container running `args` with `edit` applied to the spec.
fn running(b: &Bundle, exe: &InitExe, args: &[&str], edit: impl FnOnce(&mut Value)) -> Container {
    let mut spec = default_spec(args);
    edit(&mut spec);
    b.write_config(&spec);
    let mut c = b
        .create(
            exe,
            &[],
            Stdio::default(),
            &tent_runtime::Profile::default(),
        )
        .unwrap_or_else(|e| panic!("create {}: {e}", b.id));
    c.start().expect("start");
    c
}

/// The default spec's process with `args` and `edit` applied.
fn process(args: &[&str], edit: impl FnOnce(&mut Value)) -> Process {
    let mut p = default_spec(args)["process"].clone();
    edit(&mut p);
    serde_json::from_value(p).expect("process")
}

fn wait(pid: i32) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(s) => return s,
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
    }
}

fn exit_code(s: WaitStatus) -> i32 {
    match s {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected {other:?}"),
    }
}

/// Execs `p` with stdout+stderr on a pipe; returns (output, exit code).
fn exec_output(c: &Container, p: &Process) -> tent_runtime::Result<(String, i32)> {
    let (r, w) = pipe();
    let w2 = w.try_clone().expect("dup");
    let proc_ = c.exec(ExecRequest {
        process: p,
        stdio: Stdio {
            stdin: None,
            stdout: Some(w),
            stderr: Some(w2),
        },
    })?;
    let mut out = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut out);
    Ok((out, exit_code(wait(proc_.pid))))
}

fn sh(c: &Container, script: &str) -> (String, i32) {
    exec_output(c, &process(&["sh", "-c", script], |_| {})).expect("exec")
}

fn finish(c: Container, b: &Bundle) {
    let pid = c.pid();
    let _ = c.kill(libc::SIGKILL, true);
    wait_for(pid);
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
}

const SLEEP: &[&str] = &["sleep", "1000"];

fn exec_output_and_exit_code(exe: &InitExe) {
    let b = Bundle::new("exec-out");
    let c = running(&b, exe, SLEEP, |_| {});
    // hostname proves the uts namespace, `ps`-free pid check the pid namespace.
    let (out, code) = sh(&c, "echo hello; hostname; echo $$ >/dev/null; exit 3");
    assert_eq!((out.as_str(), code), ("hello\ntent\n", 3));
    let (out, _) = sh(&c, "cat /proc/1/cmdline | tr '\\0' ' '");
    assert_eq!(
        out, "sleep 1000 ",
        "the exec does not see the container's pid namespace"
    );
    finish(c, &b);
}

/// The lines of `/proc/<pid>/cgroup` (read from the host) that name a hierarchy
/// with controllers, or the v2 line on a pure v2 host, as (hierarchy, path).
fn cgroup_lines(pid: i32) -> Vec<(String, String)> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .expect("read /proc/<pid>/cgroup")
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            let wanted = if v2 {
                ctl.is_empty()
            } else {
                !ctl.is_empty() && !ctl.starts_with("name=")
            };
            wanted.then(|| (ctl.to_string(), path.to_string()))
        })
        .collect()
}

/// The init and an exec each enter the container's cgroup in every hierarchy
/// (they move themselves, or are cloned into it, rather than being moved).
fn processes_join_every_hierarchy(exe: &InitExe) {
    let b = Bundle::new("cgjoin");
    let c = running(&b, exe, SLEEP, |_| {});
    let want = format!("/tent/{}", b.id);
    let init = cgroup_lines(c.pid());
    assert!(!init.is_empty(), "no cgroup lines for the init");
    for (ctl, path) in &init {
        assert_eq!(path, &want, "init in hierarchy {ctl:?}");
    }
    let (r, w) = pipe();
    let p = c
        .exec(ExecRequest {
            process: &process(&["sleep", "1000"], |_| {}),
            stdio: Stdio {
                stdin: None,
                stdout: Some(w),
                stderr: None,
            },
        })
        .expect("exec");
    let exec = cgroup_lines(p.pid);
    assert_eq!(
        exec.len(),
        init.len(),
        "exec sees other hierarchies: {exec:?}"
    );
    for (ctl, path) in &exec {
        assert_eq!(path, &want, "exec in hierarchy {ctl:?}");
    }
    drop(r);
    let _ = p.kill(libc::SIGKILL);
    wait(p.pid);
    // The cgroup namespace is rooted at the container's cgroup: inside, every
    // hierarchy reads `/`.
    let (inside, code) = sh(&c, "cat /proc/self/cgroup");
    assert_eq!(code, 0, "{inside}");
    for line in inside.lines() {
        assert!(
            line.ends_with(":/"),
            "not rooted at the container cgroup: {inside}"
        );
    }
    finish(c, &b);
}

fn exec_user_env_cwd(exe: &InitExe) {
    let b = Bundle::new("exec-user");
    std::fs::write(
        b.rootfs().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:4321::/home/alice:/bin/sh\n",
    )
    .expect("passwd");
    let c = running(&b, exe, SLEEP, |_| {});
    let p = process(&["sh", "-c", "id -u; id -g"], |p| {
        p["user"] = json!({"uid": 1000, "gid": 1001});
    });
    assert_eq!(
        exec_output(&c, &p).expect("exec"),
        ("1000\n1001\n".into(), 0)
    );
    let p = process(&["sh", "-c", "id -u; id -g; echo $HOME"], |p| {
        p["user"] = json!({"uid": 0, "gid": 0, "username": "alice"});
    });
    assert_eq!(
        exec_output(&c, &p).expect("exec"),
        ("1234\n4321\n/home/alice\n".into(), 0)
    );
    let p = process(&["sh", "-c", "echo $FOO; pwd"], |p| {
        p["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
        p["cwd"] = json!("/home/user");
    });
    assert_eq!(
        exec_output(&c, &p).expect("exec"),
        ("bar baz\n/home/user\n".into(), 0)
    );
    finish(c, &b);
}

fn exec_errors_leave_container_running(exe: &InitExe) {
    let b = Bundle::new("exec-err");
    let c = running(&b, exe, SLEEP, |_| {});
    let cases: Vec<(Process, ErrorKind, &str)> = vec![
        (
            process(&["/bin/no-such-binary"], |_| {}),
            ErrorKind::InvalidArgument,
            "/bin/no-such-binary",
        ),
        (
            process(&["no-such-tool"], |_| {}),
            ErrorKind::InvalidArgument,
            "\"no-such-tool\": executable file not found in $PATH",
        ),
        (
            process(&["true"], |p| p["cwd"] = json!("/no/such/dir")),
            ErrorKind::InvalidArgument,
            "process.cwd: /no/such/dir",
        ),
        (
            process(&["true"], |p| {
                p["user"] = json!({"uid": 0, "gid": 0, "username": "bob"})
            }),
            ErrorKind::InvalidArgument,
            "user \"bob\" not found in the container's /etc/passwd",
        ),
        (
            process(&["true"], |p| p["args"] = json!([])),
            ErrorKind::InvalidArgument,
            "process.args: is empty: nothing to run",
        ),
        (
            process(&["true"], |p| {
                p["apparmorProfile"] = json!("tent-test-not-loaded")
            }),
            // Where AppArmor is enabled (the v2 VM) the profile is not loaded;
            // elsewhere the host cannot apply any profile.
            if apparmor_enabled() {
                ErrorKind::InvalidArgument
            } else {
                ErrorKind::FailedPrecondition
            },
            "process.apparmorProfile: ",
        ),
    ];
    for (p, kind, want) in cases {
        let e = exec_output(&c, &p).expect_err("bad exec");
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains(want), "{e:?} lacks {want:?}");
    }
    c.kill(0, false).expect("init still alive");
    assert_eq!(sh(&c, "echo ok"), ("ok\n".into(), 0));
    finish(c, &b);
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

fn exec_into_stopped_container(exe: &InitExe) {
    let b = Bundle::new("exec-stopped");
    let c = running(&b, exe, SLEEP, |_| {});
    c.kill(libc::SIGKILL, false).expect("kill");
    wait_for(c.pid());
    let e = exec_output(&c, &process(&["true"], |_| {})).expect_err("exec after exit");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("init process has exited"), "{e}");
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
}

fn concurrent_execs(exe: &InitExe) {
    let b = Bundle::new("exec-many");
    let c = running(&b, exe, SLEEP, |_| {});
    let n = 50;
    let results: Vec<(usize, tent_runtime::Result<(String, i32)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    let script = format!("echo exec-{i}; exit {}", i % 7);
                    (i, exec_output(c, &process(&["sh", "-c", &script], |_| {})))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (i, r) in results {
        let (out, code) = r.unwrap_or_else(|e| panic!("exec {i}: {e}"));
        assert_eq!((out, code), (format!("exec-{i}\n"), (i % 7) as i32));
    }
    finish(c, &b);
}

fn counter(b: &Bundle) -> u64 {
    std::fs::read_to_string(b.rootfs().join("tmp/n"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn pause_resume(exe: &InitExe) {
    let b = Bundle::new("pause");
    // Written by rename: a freeze between `echo >`'s truncate and write would leave the
    // file empty for the whole pause.
    let script =
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.1; done";
    let c = running(&b, exe, &["sh", "-c", script], |s| {
        s["root"]["readonly"] = json!(false)
    });
    let t = std::time::Instant::now();
    while counter(&b) == 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(counter(&b) > 0, "counter never started");
    assert!(!c.is_paused().expect("is_paused"));
    c.pause().expect("pause");
    assert!(c.is_paused().expect("is_paused"));
    let frozen_at = counter(&b);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(counter(&b), frozen_at, "counter advanced while paused");
    let e = exec_output(&c, &process(&["true"], |_| {})).expect_err("exec while paused");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("paused"), "{e}");
    c.resume().expect("resume");
    assert!(!c.is_paused().expect("is_paused"));
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        counter(&b) > frozen_at,
        "counter did not advance after resume"
    );
    // A kill --all of a paused container still kills it.
    c.pause().expect("pause again");
    let pid = c.pid();
    c.kill(libc::SIGKILL, true).expect("kill all while paused");
    assert_eq!(exit_code(wait_for(pid)), 137);
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
}

fn stats(exe: &InitExe) {
    let b = Bundle::new("stats");
    let c = running(
        &b,
        exe,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000",
        ],
        |_| {},
    );
    std::thread::sleep(Duration::from_millis(300));
    let s = c.stats().expect("stats");
    assert_eq!(
        s.cgroup_v2,
        std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    );
    assert!(s.memory.usage > 0, "{s:?}");
    assert!(s.memory.limit > 0, "{s:?}");
    assert!(s.cpu.usage_total_ns > 0, "{s:?}");
    assert!(s.cpu.usage_user_ns + s.cpu.usage_kernel_ns > 0, "{s:?}");
    assert!(s.pids.current >= 1, "{s:?}");
    if !s.cgroup_v2 {
        assert!(!s.cpu.per_cpu_ns.is_empty(), "{s:?}");
        assert!(s.memory.stat.contains_key("rss"), "{s:?}");
    }
    finish(c, &b);
}

fn memory_limit_file(b: &Bundle) -> String {
    let rel = format!("tent/{}", b.id);
    let (file, dir) = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        (
            "memory.max",
            std::path::Path::new("/sys/fs/cgroup").join(&rel),
        )
    } else {
        (
            "memory.limit_in_bytes",
            std::path::Path::new("/sys/fs/cgroup/memory").join(&rel),
        )
    };
    std::fs::read_to_string(dir.join(file))
        .expect("read memory limit")
        .trim()
        .to_string()
}

fn resources(v: Value) -> LinuxResources {
    serde_json::from_value(v).expect("resources")
}

fn update(exe: &InitExe) {
    let b = Bundle::new("update");
    let c = running(&b, exe, SLEEP, |_| {});
    c.update(&resources(json!({
        "memory": {"limit": 64 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 100}
    })))
    .expect("update");
    assert_eq!(memory_limit_file(&b), (64u64 << 20).to_string());
    assert_eq!(c.stats().expect("stats").pids.limit, 100);
    let bad: Vec<(Value, &str)> = vec![
        (json!({"memory": {"limit": -5}}), "resources.memory.limit"),
        (
            json!({"memory": {"limit": 32 << 20, "swap": 16 << 20}}),
            "resources.memory.swap",
        ),
        (json!({"cpu": {"cpus": "0-4095"}}), "resources.cpu.cpus"),
        (json!({"cpu": {"mems": "7"}}), "resources.cpu.mems"),
        (json!({"cpu": {"quota": 10}}), "resources.cpu.quota"),
        (json!({"cpu": {"shares": 1}}), "resources.cpu.shares"),
        // A valid memory limit with an invalid pids limit changes nothing.
        (
            json!({"memory": {"limit": 32 << 20}, "pids": {"limit": -7}}),
            "resources.pids.limit",
        ),
    ];
    for (v, field) in bad {
        let e = c.update(&resources(v.clone())).expect_err("invalid update");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{v}: {e}");
        assert!(e.to_string().starts_with(field), "{v}: {e}");
        assert_eq!(memory_limit_file(&b), (64u64 << 20).to_string(), "{v}");
    }
    // Kernel-refused value (v1: memory above memsw) rolls back what was written.
    finish(c, &b);
}

fn oom_kill_is_reported(exe: &InitExe) {
    let b = Bundle::new("oom");
    let script = "sleep 0.2; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived";
    let mut spec = default_spec(&["sh", "-c", script]);
    spec["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    b.write_config(&spec);
    let mut c = b
        .create(
            exe,
            &[],
            Stdio::default(),
            &tent_runtime::Profile::default(),
        )
        .expect("create");
    let w = c.oom_watcher().expect("oom watcher");
    let before = w.oom_kills().expect("oom_kills");
    c.start().expect("start");
    let mut pfd = [libc::pollfd {
        fd: w.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(pfd.as_mut_ptr(), 1, 20_000) };
    assert_eq!(n, 1, "no OOM notification within 20 s");
    assert!(w.drain().expect("drain") >= 1);
    assert_eq!(exit_code(wait_for(c.pid())), 137);
    assert!(w.oom_kills().expect("oom_kills") > before);
    assert!(c.stats().expect("stats").memory.oom_kill >= 1);
    drop(w);
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
}

/// Reads the master until the other side is gone (EIO) or `timeout`.
fn read_master(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master.try_clone().expect("dup"));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = [libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(pfd.as_mut_ptr(), 1, left.as_millis() as i32) } <= 0 {
            break;
        }
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

fn set_winsize(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize.
    assert_eq!(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0
    );
}

fn terminal_exec(exe: &InitExe) {
    let b = Bundle::new("tty-exec");
    let c = running(&b, exe, SLEEP, |_| {});
    let p = process(&["sh"], |p| p["terminal"] = json!(true));
    let e = c
        .exec(ExecRequest {
            process: &p,
            stdio: Stdio::default(),
        })
        .expect("terminal exec");
    let master = e.console.as_ref().expect("pty master");
    set_winsize(master, 33, 111);
    std::fs::File::from(master.try_clone().expect("dup"))
        .write_all(b"stty size; tty; exit 5\n")
        .expect("write to the master");
    let out = read_master(master, Duration::from_secs(10));
    assert!(out.contains("33 111\n"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert_eq!(exit_code(wait(e.pid)), 5);
    assert_eq!(
        e.kill(libc::SIGTERM).expect_err("reaped").kind(),
        ErrorKind::NotFound
    );
    // consoleSize applies before the process starts.
    let p = process(&["sh", "-c", "stty size"], |p| {
        p["terminal"] = json!(true);
        p["consoleSize"] = json!({"height": 25, "width": 80});
    });
    let e = c
        .exec(ExecRequest {
            process: &p,
            stdio: Stdio::default(),
        })
        .expect("terminal exec");
    let out = read_master(
        e.console.as_ref().expect("pty master"),
        Duration::from_secs(10),
    );
    assert_eq!(out, "25 80\n");
    wait(e.pid);
    finish(c, &b);
}

fn terminal_init(exe: &InitExe) {
    let b = Bundle::new("tty-init");
    let script = "tty; stty size; stat -c %t:%T /dev/console; stat -c %t:%T $(tty)";
    let mut spec = default_spec(&["sh", "-c", script]);
    spec["process"]["terminal"] = json!(true);
    spec["process"]["consoleSize"] = json!({"height": 40, "width": 132});
    b.write_config(&spec);
    let mut c = b
        .create(
            exe,
            &[],
            Stdio::default(),
            &tent_runtime::Profile::default(),
        )
        .expect("create terminal init");
    let master = c.take_console().expect("pty master");
    assert!(c.take_console().is_none());
    c.start().expect("start");
    let out = read_master(&master, Duration::from_secs(10));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(lines[1], "40 132");
    assert_eq!(lines[2], lines[3], "/dev/console is not the pty: {out:?}");
    assert_eq!(exit_code(wait_for(c.pid())), 0);
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
}

/// `process.apparmorProfile` confines the init and, inherited, its execs: a
/// profile that denies reading `/secret` makes `cat /secret` fail in both,
/// while the same container without the profile reads it. Runs where AppArmor
/// is enabled and `apparmor_parser` exists (the v2 VM); skipped elsewhere.
fn apparmor_confines(exe: &InitExe) {
    if !apparmor_enabled() {
        common::skip("AppArmor is not enabled on this host");
    }
    let Some(parser) = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        common::skip("apparmor_parser is not installed");
    };
    let name = format!("tent-test-deny-{}", std::process::id());
    let profile = format!(
        "profile {name} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  capability,\n  \
         network,\n  signal,\n  unix,\n  ptrace,\n  mount,\n  umount,\n  pivot_root,\n  \
         deny /secret r,\n}}\n"
    );
    let dir = std::env::temp_dir().join(&name);
    std::fs::write(&dir, profile).expect("write profile");
    let load = std::process::Command::new(parser)
        .args(["-r", "-W"])
        .arg(&dir)
        .output()
        .expect("apparmor_parser");
    assert!(
        load.status.success(),
        "apparmor_parser: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let read_secret = |b: &Bundle, profile: Option<&str>| -> (String, i32, String, i32) {
        std::fs::write(b.rootfs().join("secret"), "s3cret\n").expect("secret");
        let c = running(b, exe, SLEEP, |spec| {
            if let Some(p) = profile {
                spec["process"]["apparmorProfile"] = json!(p);
            }
        });
        let (init_out, init_code) = sh(&c, "cat /proc/1/attr/current; cat /secret");
        let (exec_out, exec_code) = sh(&c, "cat /secret");
        finish(c, b);
        (init_out, init_code, exec_out, exec_code)
    };
    let confined = read_secret(&Bundle::new("aa-on"), Some(&name));
    let free = read_secret(&Bundle::new("aa-off"), None);
    let _ = std::process::Command::new(parser)
        .arg("-R")
        .arg(&dir)
        .output();
    let _ = std::fs::remove_file(&dir);
    assert!(
        confined.0.contains(&name),
        "the init is not in {name}: {confined:?}"
    );
    assert_ne!(
        confined.1, 0,
        "the confined init read /secret: {confined:?}"
    );
    assert!(
        !confined.2.contains("s3cret"),
        "the exec read /secret: {confined:?}"
    );
    assert_ne!(confined.3, 0, "{confined:?}");
    assert!(
        free.0.contains("s3cret") && free.1 == 0,
        "unconfined: {free:?}"
    );
    assert_eq!((free.2.as_str(), free.3), ("s3cret\n", 0));
}

/// A 4 MiB spec (1 MiB of env in 1,024 variables, ~3 MiB of annotations,
/// 1,000 mounts) reaches the init, and an exec with 1 MiB of env reaches its
/// process: the config travels as a sealed memfd, not one socket packet.
fn large_spec_and_exec(exe: &InitExe) {
    let b = Bundle::new("large");
    let env_vars = |tag: &str| -> Vec<Value> {
        (0..1024)
            .map(|i| Value::from(format!("{tag}{i:04}={}", "e".repeat(1010))))
            .collect()
    };
    let c = running(&b, exe, SLEEP, |spec| {
        if let Some(env) = spec["process"]["env"].as_array_mut() {
            env.extend(env_vars("BIG"));
        }
        let annotations: serde_json::Map<String, Value> = (0..3000)
            .map(|i| (format!("tent.test/a{i}"), Value::from("a".repeat(1000))))
            .collect();
        spec["annotations"] = Value::Object(annotations);
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            for i in 0..1000 {
                mounts.push(serde_json::json!({
                    "destination": format!("/tmp/m/{i}"), "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=4k"]
                }));
            }
        }
    });
    let size = std::fs::metadata(b.dir.join("config.json")).map_or(0, |m| m.len());
    assert!(size >= 4 << 20, "the spec is only {size} bytes");
    let environ = std::fs::read(format!("/proc/{}/environ", c.pid())).expect("environ");
    let vars = environ
        .split(|c| *c == 0)
        .filter(|v| v.starts_with(b"BIG"))
        .count();
    assert_eq!(vars, 1024, "the init's environment lost variables");
    let (out, code) = sh(&c, "ls /tmp/m | wc -l");
    assert_eq!((out.trim(), code), ("1000", 0));
    let p = process(&["sh", "-c", "env | grep -c '^XBIG'"], |p| {
        if let Some(env) = p["env"].as_array_mut() {
            env.extend(env_vars("XBIG"));
        }
    });
    let (out, code) = exec_output(&c, &p).expect("exec with 1 MiB of env");
    assert_eq!((out.trim(), code), ("1024", 0));
    finish(c, &b);
}

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let tests: &[(&str, TestFn)] = &[
        ("exec_output_and_exit_code", exec_output_and_exit_code),
        ("exec_user_env_cwd", exec_user_env_cwd),
        (
            "processes_join_every_hierarchy",
            processes_join_every_hierarchy,
        ),
        (
            "exec_errors_leave_container_running",
            exec_errors_leave_container_running,
        ),
        ("exec_into_stopped_container", exec_into_stopped_container),
        ("exec_concurrent", concurrent_execs),
        ("pause_resume", pause_resume),
        ("stats", stats),
        ("update", update),
        ("oom_kill_is_reported", oom_kill_is_reported),
        ("terminal_exec", terminal_exec),
        ("terminal_init", terminal_init),
        ("large_spec_and_exec", large_spec_and_exec),
        ("apparmor_confines", apparmor_confines),
    ];
    common::run_suite("ops", tests);
}
