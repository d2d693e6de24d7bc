//! `ctr task exec`: output, exit code, user, env, cwd, 50 at once, bad input (issue #3).
mod common;

use std::time::{Duration, Instant};

use common::{exec, Running, SLOW};
use tent_integration::Containerd;

#[test]
fn exec_output_and_exit_code() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-out", &[]);
    let x = r.exec(&[], &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(x.code, Some(7), "exec exit code: {x:#?}");
    assert_eq!(x.stdout.trim(), "out", "{x:#?}");
    assert!(x.stderr.contains("err"), "exec stderr: {x:#?}");
    let ok = r.exec(&[], &["true"]);
    assert_eq!(ok.code, Some(0), "{ok:#?}");
    r.assert_running();
    r.kill_and_check();
}

#[test]
fn exec_as_another_user() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-user", &[]);
    let x = r.exec(
        &["--user", "1000"],
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/status | grep ^Uid",
        ],
    );
    x.assert_ok();
    let lines: Vec<&str> = x.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("1000"), "uid: {x:#?}");
    assert!(
        x.stdout.contains("Uid:\t1000\t1000\t1000\t1000"),
        "all uids must be 1000: {x:#?}"
    );
    let x = r.exec(&["--user", "1000:1001"], &["sh", "-c", "id -u; id -g"]);
    x.assert_ok();
    assert_eq!(
        x.stdout.split_whitespace().collect::<Vec<_>>(),
        ["1000", "1001"],
        "{x:#?}"
    );
    // The init is still root.
    let x = r.exec(&[], &["id", "-u"]);
    assert_eq!(x.stdout.trim(), "0", "{x:#?}");
    r.kill_and_check();
}

#[test]
fn exec_env_and_cwd() {
    let c = Containerd::shared();
    // ctr task exec has no --env: the exec's process spec is the container's, so env set on
    // `ctr run --env` must reach the exec; --cwd overrides the cwd.
    let r = Running::start(
        c,
        "exec-env",
        &["--env", "TENT_FOO=bar baz", "--cwd", "/etc"],
    );
    let x = r.exec(
        &["--cwd", "/tmp"],
        &["sh", "-c", "echo \"foo=$TENT_FOO\"; pwd"],
    );
    x.assert_ok();
    assert_eq!(
        x.stdout.lines().collect::<Vec<_>>(),
        ["foo=bar baz", "/tmp"],
        "{x:#?}"
    );
    let x = r.exec(&[], &["pwd"]);
    x.assert_ok();
    assert_eq!(
        x.stdout.trim(),
        "/etc",
        "exec without --cwd uses the container's cwd: {x:#?}"
    );
    r.kill_and_check();
}

#[test]
fn exec_stdin_is_forwarded() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-stdin", &[]);
    let exec_id = tent_integration::unique_id("x");
    let mut cmd = c.ctr_command(&[
        "task",
        "exec",
        "--exec-id",
        &exec_id,
        &r.id,
        "sh",
        "-c",
        "tr a-z A-Z",
    ]);
    let o = tent_integration::run_with_timeout(&mut cmd, Some(b"hello exec\n"), common::T);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "HELLO EXEC",
        "{o:?}"
    );
    r.kill_and_check();
}

#[test]
fn fifty_concurrent_execs() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-50", &[]);
    let t = Instant::now();
    let results: Vec<(usize, tent_integration::RunResult)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..50)
            .map(|i| {
                let id = r.id.clone();
                s.spawn(move || {
                    let script = format!("echo idx-{i}; exit {}", i % 5);
                    (i, exec(c, &id, &[], &["sh", "-c", &script], SLOW))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("exec thread"))
            .collect()
    });
    eprintln!("50 concurrent execs took {:?}", t.elapsed());
    let bad: Vec<String> = results
        .iter()
        .filter(|(i, x)| x.stdout.trim() != format!("idx-{i}") || x.code != Some((*i % 5) as i32))
        .map(|(i, x)| {
            format!(
                "exec {i}: code {:?} stdout {:?} stderr {:?}",
                x.code, x.stdout, x.stderr
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of 50 execs wrong:\n{}",
        bad.len(),
        bad.join("\n")
    );
    r.assert_running();
    // All exec processes are gone from the container.
    let ps = c.ctr_result(&["task", "ps", &r.id]);
    ps.assert_ok();
    let n = ps
        .stdout
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(
        n, 1,
        "only the init should remain after the execs: {}",
        ps.stdout
    );
    r.kill_and_check();
}

/// An exec that must fail: a non-zero ctr exit with an error naming `needle`, and the container
/// keeps running (a following exec works).
fn assert_exec_refused(r: &Running, flags: &[&str], args: &[&str], needles: &[&str]) {
    let t = Instant::now();
    let x = r.exec(flags, args);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "refusal took {:?}",
        t.elapsed()
    );
    eprintln!("exec {flags:?} {args:?} refused: {}", x.stderr.trim());
    assert_ne!(
        x.code,
        Some(0),
        "exec {flags:?} {args:?} should fail: {x:#?}"
    );
    let all = format!("{}\n{}", x.stdout, x.stderr).to_lowercase();
    assert!(
        needles.iter().any(|n| all.contains(&n.to_lowercase())),
        "error for exec {flags:?} {args:?} should mention one of {needles:?}: {x:#?}"
    );
    r.assert_running();
    let ok = r.exec(&[], &["echo", "still-alive"]);
    assert_eq!(
        ok.stdout.trim(),
        "still-alive",
        "exec after a refused one: {ok:#?}"
    );
}

#[test]
fn exec_missing_binary_is_a_clear_error() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-nobin", &[]);
    assert_exec_refused(&r, &[], &["/no/such-binary", "arg"], &["/no/such-binary"]);
    assert_exec_refused(&r, &[], &["no-such-cmd-in-path"], &["no-such-cmd-in-path"]);
    r.kill_and_check();
}

#[test]
fn exec_bad_cwd_is_a_clear_error() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-badcwd", &[]);
    assert_exec_refused(&r, &["--cwd", "/no-such-dir"], &["true"], &["/no-such-dir"]);
    r.kill_and_check();
}

#[test]
fn exec_unknown_user_is_a_clear_error() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-nouser", &[]);
    // ctr resolves user names against the container's /etc/passwd itself (client side).
    assert_exec_refused(
        &r,
        &["--user", "nosuchuser"],
        &["true"],
        &["nosuchuser", "no users found", "user"],
    );
    r.kill_and_check();
}

#[test]
fn exec_empty_args_is_a_clear_error() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-noargs", &[]);
    // ctr passes the empty argv through to containerd/the shim.
    assert_exec_refused(&r, &[], &[], &["args", "argument", "empty", "exec"]);
    r.kill_and_check();
}

#[test]
fn exec_duplicate_id_is_refused() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-dup", &[]);
    let bg = tent_integration::Background::spawn(c.ctr_command(&[
        "task",
        "exec",
        "--exec-id",
        "dup",
        &r.id,
        "sleep",
        "30",
    ]));
    common::wait_until("exec dup listed", common::T, || {
        let ps = c.ctr_result(&["task", "ps", &r.id]);
        (ps.stdout.lines().count() >= 3).then_some(())
    });
    let x = exec_with_id(c, &r.id, "dup", &["true"]);
    assert_ne!(
        x.code,
        Some(0),
        "second exec with the same id must fail: {x:#?}"
    );
    assert!(
        x.stderr.contains("dup") || x.stderr.to_lowercase().contains("exists"),
        "{x:#?}"
    );
    c.ctr_result(&["task", "kill", "-s", "SIGKILL", "--exec-id", "dup", &r.id]);
    let _ = bg.finish(common::T);
    r.assert_running();
    r.kill_and_check();
}

fn exec_with_id(
    c: &Containerd,
    id: &str,
    exec_id: &str,
    args: &[&str],
) -> tent_integration::RunResult {
    let mut cmd = c.ctr_command(&["task", "exec", "--exec-id", exec_id, id]);
    cmd.args(args);
    let o = tent_integration::run_with_timeout(&mut cmd, None, common::T);
    tent_integration::RunResult {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code(),
    }
}

/// The shim opens an exec's stdin FIFO already at `Exec`: ctr opens the write end with a
/// blocking open() before it sends `Exec`, and stalls (up to ~15 ms in Go's scheduler)
/// until a reader appears. No `Start` is sent here, so only an early open unblocks it.
#[test]
fn exec_opens_stdin_at_exec() {
    if common::skip_under_runc("runc's shim opens exec stdin at Start") {
        return;
    }
    let c = Containerd::shared();
    let r = Running::start(c, "exec-early-stdin", &[]);
    let dir = std::env::temp_dir().join(tent_integration::unique_id("early-stdin"));
    std::fs::create_dir_all(&dir).expect("fifo dir");
    let fifo = dir.join("stdin");
    common::mkfifo(&fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer_path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::OpenOptions::new().write(true).open(&writer_path));
    });

    let exec_id = tent_integration::unique_id("x");
    common::shim_exec(c, &r.id, &exec_id, &["true"], &fifo.to_string_lossy(), "").expect("Exec");
    let opened = rx.recv_timeout(Duration::from_secs(10));
    if opened.is_err() {
        // Release the blocked writer before failing.
        let _ = std::fs::File::open(&fifo);
    }
    let deleted = common::shim_call(
        c,
        &r.id,
        "Delete",
        &common::process_request(&r.id, &exec_id),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let writer = opened.expect("the stdin FIFO's writer is still blocked after Exec");
    writer.expect("open the stdin FIFO for writing");
    deleted.expect("Delete of the never-started exec");
    r.assert_running();
    r.kill_and_check();
}

/// `CloseIO` ends stdin after what the client already wrote. The workload sleeps
/// before it reads, so when CloseIO arrives part of the input sits in the shim's copy
/// buffer and in the FIFO; all of it must still arrive, then EOF.
#[test]
fn close_io_delivers_input_already_written() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-closeio", &[]);
    let dir = std::env::temp_dir().join(tent_integration::unique_id("closeio"));
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("stdin");
    let out = dir.join("out");
    common::mkfifo(&fifo);
    let exec_id = tent_integration::unique_id("x");
    let ids = || common::process_request(&r.id, &exec_id);
    // 100 KiB: more than the workload's stdin pipe holds, less than pipe + copy buffer
    // + FIFO, so the write completes while the workload still sleeps.
    const INPUT: usize = 100 * 1024;
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .expect("open the stdin FIFO for writing");
        w.write_all(&vec![b'x'; INPUT]).expect("write stdin");
        w
    });
    common::shim_exec(
        c,
        &r.id,
        &exec_id,
        &["sh", "-c", "sleep 2; wc -c"],
        &fifo.to_string_lossy(),
        &format!("file://{}", out.display()),
    )
    .expect("Exec");
    common::shim_call(c, &r.id, "Start", &ids()).expect("Start");
    let w = writer.join().expect("writer thread");
    // CloseIO while our write end stays open and the workload has read nothing yet.
    let mut close = ids();
    common::pb_varint(3, 1, &mut close);
    common::shim_call(c, &r.id, "CloseIO", &close).expect("CloseIO");
    let (tx, rx) = std::sync::mpsc::channel();
    let (rid, wait_req) = (r.id.clone(), ids());
    std::thread::spawn(move || {
        let _ = tx.send(common::shim_call(c, &rid, "Wait", &wait_req));
    });
    let waited = rx.recv_timeout(Duration::from_secs(20));
    if waited.is_err() {
        let mut k = ids();
        common::pb_varint(3, 9, &mut k);
        let _ = common::shim_call(c, &r.id, "Kill", &k);
    }
    drop(w);
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = common::shim_call(c, &r.id, "Delete", &ids());
    let _ = std::fs::remove_dir_all(&dir);
    waited
        .expect("the workload did not end after CloseIO")
        .expect("Wait");
    assert_eq!(
        got.trim(),
        INPUT.to_string(),
        "stdin written before CloseIO was lost"
    );
    r.assert_running();
    r.kill_and_check();
}
