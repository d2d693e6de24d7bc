//! Exec streams as kubelet's `kubectl exec` drives them (issue #15): stdin that outlives
//! the process until Delete, and the request's `terminal` deciding whether there is a pty.
//! Calls the shim directly (ttrpc), as containerd's CRI does, to shape the requests.
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{pb_bytes, pb_varint, process_request, shim_call, Running};
use tent_integration::Containerd;

/// `Task.Exec` with `tty` = (`terminal` in the request, `terminal` in the process
/// spec) and `stdio` = (stdin, stdout, stderr).
fn exec_request(
    id: &str,
    exec_id: &str,
    args: &[&str],
    tty: (bool, bool),
    stdio: (&str, &str, &str),
) -> Vec<u8> {
    let ((terminal, spec_terminal), (stdin, stdout, stderr)) = (tty, stdio);
    let spec = serde_json::json!({"args": args, "cwd": "/", "terminal": spec_terminal,
        "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}});
    let mut any = Vec::new();
    pb_bytes(
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/Process",
        &mut any,
    );
    pb_bytes(2, &serde_json::to_vec(&spec).expect("json"), &mut any);
    let mut req = process_request(id, exec_id);
    if terminal {
        pb_varint(3, 1, &mut req);
    }
    pb_bytes(4, stdin.as_bytes(), &mut req);
    pb_bytes(5, stdout.as_bytes(), &mut req);
    pb_bytes(6, stderr.as_bytes(), &mut req);
    pb_bytes(7, &any, &mut req);
    req
}

/// Reads the FIFO at `path` (as containerd's CRI does) until EOF or `limit` bytes,
/// then sends what it read.
fn read_fifo(path: &std::path::Path, limit: usize) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut f = std::fs::File::open(&path).expect("open FIFO for reading");
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        while got.len() < limit {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
    });
    rx
}

/// `kubectl exec -it` of a command that exits at once while the client still types:
/// bytes written after the exit must not break the client's pipe (containerd's CRI
/// would then tear the session down before the output is read). runc's shim keeps
/// stdin open until Delete; so must tent. Delete then lets go of it.
#[test]
fn exec_stdin_stays_open_after_the_exit_until_delete() {
    let c = Containerd::shared();
    let r = Running::start(c, "exec-stdin-exit", &[]);
    let dir = std::env::temp_dir().join(tent_integration::unique_id("stdin-exit"));
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("stdin");
    common::mkfifo(&fifo);
    // A FIFO, as CRI passes (the shim holds it open; `true` writes nothing).
    let out_fifo = dir.join("stdout");
    common::mkfifo(&out_fifo);
    let err_fifo = dir.join("stderr");
    common::mkfifo(&err_fifo);
    let _output = (
        read_fifo(&out_fifo, usize::MAX),
        read_fifo(&err_fifo, usize::MAX),
    );
    let out = out_fifo.display().to_string();
    let exec_id = tent_integration::unique_id("x");
    let ids = || process_request(&r.id, &exec_id);
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .expect("open the stdin FIFO for writing")
    });
    let req = exec_request(
        &r.id,
        &exec_id,
        &["true"],
        (false, false),
        (&fifo.to_string_lossy(), &out, &err_fifo.to_string_lossy()),
    );
    shim_call(c, &r.id, "Exec", &req).expect("Exec");
    shim_call(c, &r.id, "Start", &ids()).expect("Start");
    let mut w = writer.join().expect("writer");
    shim_call(c, &r.id, "Wait", &ids()).expect("Wait");
    let mut late = Vec::new();
    for _ in 0..5 {
        late.push(w.write_all(b"typed after the exit\n").map_err(|e| e.kind()));
        std::thread::sleep(Duration::from_millis(100));
    }
    shim_call(c, &r.id, "Delete", &ids()).expect("Delete");
    // After Delete nobody reads the FIFO any more: the writer learns it.
    let deadline = Instant::now() + common::T;
    let after_delete = loop {
        match w.write_all(b"x") {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break Ok(()),
            Err(e) => break Err(e.kind()),
            Ok(()) if Instant::now() > deadline => break Err(std::io::ErrorKind::TimedOut),
            Ok(()) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(late, vec![Ok(()); 5], "stdin broke before Delete");
    assert_eq!(
        after_delete,
        Ok(()),
        "the stdin FIFO is still read after Delete"
    );
    r.assert_running();
    r.kill_and_check();
}

/// An exec whose request asks for a terminal but whose process spec does not (or the
/// reverse) follows the request, as with runc's shim: 7 MB written to the pty arrive
/// whole on the stdout FIFO, and a plain exec whose spec says terminal gets pipes.
#[test]
fn exec_terminal_follows_the_request_and_all_output_arrives() {
    const SIZE: usize = 7_000_000;
    let c = Containerd::shared();
    let r = Running::start(c, "exec-tty-req", &[]);
    let dir = std::env::temp_dir().join(tent_integration::unique_id("tty-req"));
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("stdout");
    common::mkfifo(&fifo);
    // The shim keeps its end open: stop at the expected size (or on EOF).
    let rx = read_fifo(&fifo, SIZE);
    let exec_id = tent_integration::unique_id("t");
    let ids = || process_request(&r.id, &exec_id);
    let script = format!("head -c {SIZE} /dev/zero | tr '\\0' x");
    let req = exec_request(
        &r.id,
        &exec_id,
        &["sh", "-c", &script],
        (true, false),
        ("", &fifo.to_string_lossy(), ""),
    );
    shim_call(c, &r.id, "Exec", &req).expect("Exec");
    shim_call(c, &r.id, "Start", &ids()).expect("Start");
    let got = rx.recv_timeout(Duration::from_secs(60));
    let _ = shim_call(c, &r.id, "Wait", &ids());
    let _ = shim_call(c, &r.id, "Delete", &ids());

    // The reverse: a spec that says terminal in a request that does not gets no pty
    // (its stdout is our file, not a terminal).
    let plain_id = tent_integration::unique_id("p");
    let out = dir.join("plain-out");
    common::mkfifo(&out);
    let plain_rx = read_fifo(&out, usize::MAX);
    let plain_err = dir.join("plain-err");
    common::mkfifo(&plain_err);
    let _plain_err_rx = read_fifo(&plain_err, usize::MAX);
    let req = exec_request(
        &r.id,
        &plain_id,
        &["sh", "-c", "[ -t 1 ] && echo tty || echo pipe"],
        (false, true),
        ("", &out.to_string_lossy(), &plain_err.to_string_lossy()),
    );
    let plain = || process_request(&r.id, &plain_id);
    shim_call(c, &r.id, "Exec", &req).expect("Exec (plain)");
    shim_call(c, &r.id, "Start", &plain()).expect("Start (plain)");
    shim_call(c, &r.id, "Wait", &plain()).expect("Wait (plain)");
    let _ = shim_call(c, &r.id, "Delete", &plain());
    let plain_out = plain_rx
        .recv_timeout(common::T)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);

    let got = got.expect("no output from the terminal exec within 60 s");
    let xs = got.iter().filter(|&&b| b == b'x').count();
    assert_eq!((got.len(), xs), (SIZE, SIZE), "terminal exec output");
    assert_eq!(
        plain_out.trim(),
        "pipe",
        "a request without terminal got a pty"
    );
    r.assert_running();
    r.kill_and_check();
}
