//! Shared helpers for the issue-3 tests (exec, tty, pause, update, metrics, oom, logging).
//!
//! Harness gaps filled here (candidates for `integration/src/lib.rs`):
//! - `ctr` has no `task update` in 1.6, 1.7 or 2.1, and no `ctr` command sends `ResizePty` for a
//!   non-tty process, so [`shim_call`] speaks ttrpc directly to the task's shim (address from
//!   the bundle) with hand-encoded protobuf messages.
//! - [`task_cgroup_dir`] finds a task's memory cgroup dir from `/proc/<pid>/cgroup` (v1 or v2).
//! - [`Pty`] allocates a pseudo-terminal and runs a command (ctr) on its slave as controlling
//!   terminal, so the test can type, read and resize like a user.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tent_integration::{
    is_runc, run_with_timeout, unique_id, Background, Containerd, RunOpts, RunResult, NAMESPACE,
};

pub const T: Duration = Duration::from_secs(30);
/// Generous bound for work that competes for the 2 cores (concurrent execs, OOM).
pub const SLOW: Duration = Duration::from_secs(180);

/// Kills and removes a container when dropped (also on panic), so a failing test cleans up.
pub struct Cleanup<'a> {
    pub c: &'a Containerd,
    pub id: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("daemon log tail:\n{}", self.c.log_tail(40));
        }
        self.c.force_remove(&self.id);
    }
}

/// A running long-lived container (`tent-testbin pause`), plus its background `ctr run`.
pub struct Running<'a> {
    pub c: &'a Containerd,
    pub id: String,
    pub pid: i32,
    pub bg: Option<Background>,
}

impl<'a> Running<'a> {
    /// `ctr run --rm <flags> IMAGE <id> tent-testbin pause`, waited until RUNNING.
    pub fn start(c: &'a Containerd, prefix: &str, flags: &[&str]) -> Running<'a> {
        Self::start_with(c, prefix, flags, &["/bin/tent-testbin", "pause"], "ready")
    }

    pub fn start_with(
        c: &'a Containerd,
        prefix: &str,
        flags: &[&str],
        args: &[&str],
        ready_line: &str,
    ) -> Running<'a> {
        let id = unique_id(prefix);
        let mut opts = RunOpts::default();
        for f in flags {
            opts = opts.flag(*f);
        }
        let mut bg = c.spawn_run(&id, args, &opts);
        if !ready_line.is_empty() {
            bg.wait_for_line(ready_line, T);
        }
        let pid = c.wait_running(&id, T);
        Running {
            c,
            id,
            pid,
            bg: Some(bg),
        }
    }

    /// `ctr task exec --exec-id <unique> <flags> <id> <args>`.
    pub fn exec(&self, flags: &[&str], args: &[&str]) -> RunResult {
        exec(self.c, &self.id, flags, args, T)
    }

    pub fn assert_running(&self) {
        let st = task_status(self.c, &self.id);
        assert_eq!(
            st.as_deref(),
            Some("RUNNING"),
            "container {} should still be running; log:\n{}",
            self.id,
            self.c.log_tail(30)
        );
    }

    /// SIGKILL the task, expect `ctr run` to end with 137, and no leftovers.
    pub fn kill_and_check(mut self) {
        self.c
            .ctr_result(&["task", "kill", "-s", "SIGKILL", &self.id])
            .assert_ok();
        let r = self.bg.take().expect("bg").finish(T);
        assert_eq!(r.code, Some(137), "ctr run after SIGKILL: {r:#?}");
        self.c.assert_no_leftovers(&self.id);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(bg) = self.bg.take() {
            if std::thread::panicking() {
                eprintln!("daemon log tail:\n{}", self.c.log_tail(40));
            }
            self.c.force_remove(&self.id);
            let _ = bg.finish(Duration::from_secs(10));
        }
    }
}

/// `ctr task exec --exec-id <unique> <flags> <id> <args>` bounded by `timeout`.
pub fn exec(
    c: &Containerd,
    id: &str,
    flags: &[&str],
    args: &[&str],
    timeout: Duration,
) -> RunResult {
    let exec_id = unique_id("x");
    let mut cmd = c.ctr_command(&["task", "exec", "--exec-id", &exec_id]);
    cmd.args(flags).arg(id).args(args);
    let o = run_with_timeout(&mut cmd, None, timeout);
    RunResult {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code(),
    }
}

/// STATUS column of `ctr task ls` for `id`.
pub fn task_status(c: &Containerd, id: &str) -> Option<String> {
    let out = c.ctr_result(&["task", "ls"]);
    out.stdout.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id)).then(|| f.get(2).map(|s| s.to_string()))?
    })
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_until<R>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<R>) -> R {
    let t = Instant::now();
    loop {
        if let Some(r) = f() {
            return r;
        }
        assert!(t.elapsed() < timeout, "timed out after {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// True when the host uses the unified (v2) hierarchy for controllers.
pub fn cgroup_v2() -> bool {
    std::env::var("TENT_CGROUP_V2")
        .map(|v| v == "1")
        .unwrap_or(false)
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The memory cgroup dir of a process (see [`task_cgroup_dir_for`]).
pub fn task_cgroup_dir(pid: i32) -> PathBuf {
    task_cgroup_dir_for(pid, "memory")
}

/// A process's cgroup dir for a v1 `controller` (from `/proc/<pid>/cgroup`, mounted at
/// `/sys/fs/cgroup/<controller>`), or its unified dir on a v2 host.
pub fn task_cgroup_dir_for(pid: i32, controller: &str) -> PathBuf {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let v2 = cgroup_v2();
    for l in s.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        let path = path.trim_start_matches('/');
        if v2 && ctrls.is_empty() {
            return PathBuf::from("/sys/fs/cgroup").join(path);
        }
        if !v2 && ctrls.split(',').any(|c| c == controller) {
            return PathBuf::from("/sys/fs/cgroup").join(controller).join(path);
        }
    }
    panic!("no {controller} cgroup for pid {pid} in:\n{s}");
}

/// The memory limit file of the container's cgroup (`memory.limit_in_bytes` or `memory.max`).
pub fn memory_limit_file(pid: i32) -> PathBuf {
    let d = task_cgroup_dir(pid);
    if cgroup_v2() {
        d.join("memory.max")
    } else {
        d.join("memory.limit_in_bytes")
    }
}

/// `/sys/fs/cgroup/memory/<ns>/<id>` or the unified equivalent, when the task runs under ctr's
/// default cgroupsPath.
pub fn expected_cgroup_suffix(id: &str) -> String {
    format!("{NAMESPACE}/{id}")
}

// ---------------------------------------------------------------------------------------------
// ttrpc to the shim
// ---------------------------------------------------------------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Protobuf: length-delimited field.
pub fn pb_bytes(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// Protobuf: varint field.
pub fn pb_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    varint((field << 3) as u64, out);
    varint(v, out);
}

/// Minimal protobuf decoder: (field, wire type, varint value or bytes).
fn pb_fields(mut b: &[u8]) -> Vec<(u32, u64, Vec<u8>)> {
    fn rd(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        let mut s = 0;
        while let Some((&x, rest)) = b.split_first() {
            *b = rest;
            v |= ((x & 0x7f) as u64) << s;
            s += 7;
            if x & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut v = Vec::new();
    while !b.is_empty() {
        let tag = rd(&mut b);
        let (f, wt) = ((tag >> 3) as u32, tag & 7);
        match wt {
            0 => {
                let x = rd(&mut b);
                v.push((f, x, Vec::new()));
            }
            2 => {
                let n = rd(&mut b) as usize;
                let n = n.min(b.len());
                v.push((f, 0, b[..n].to_vec()));
                b = &b[n..];
            }
            5 => b = &b[4.min(b.len())..],
            1 => b = &b[8.min(b.len())..],
            _ => break,
        }
    }
    v
}

/// The shim's socket path for a task (from `<bundle>/bootstrap.json` or `<bundle>/address`).
pub fn shim_socket(c: &Containerd, id: &str) -> PathBuf {
    let b = c.bundle_dir(id);
    let addr = std::fs::read(b.join("bootstrap.json"))
        .ok()
        .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
        .and_then(|v| v["address"].as_str().map(String::from))
        .or_else(|| std::fs::read_to_string(b.join("address")).ok())
        .unwrap_or_else(|| panic!("no shim address in {}", b.display()));
    let a = addr.trim();
    PathBuf::from(a.strip_prefix("unix://").unwrap_or(a))
}

/// One ttrpc call to the task's shim. `Ok(response payload)` or `Err((grpc code, message))`.
/// Tries `containerd.task.v3.Task` on containerd 2.x (v2 otherwise) and the other on
/// "service not found".
pub fn shim_call(
    c: &Containerd,
    id: &str,
    method: &str,
    payload: &[u8],
) -> Result<Vec<u8>, (u64, String)> {
    let first_v3 = c.version().starts_with('2');
    let services = if first_v3 {
        ["containerd.task.v3.Task", "containerd.task.v2.Task"]
    } else {
        ["containerd.task.v2.Task", "containerd.task.v3.Task"]
    };
    let sock = shim_socket(c, id);
    let mut last = (0, String::new());
    for svc in services {
        match ttrpc_call(&sock, svc, method, payload) {
            Err((code, msg)) if code == 12 && msg.contains("not") && msg.contains(svc) => {
                last = (code, msg);
                continue;
            }
            Err((code, msg)) if code == 12 && msg.contains("service") => {
                last = (code, msg);
                continue;
            }
            r => return r,
        }
    }
    Err(last)
}

fn ttrpc_call(
    sock: &Path,
    service: &str,
    method: &str,
    payload: &[u8],
) -> Result<Vec<u8>, (u64, String)> {
    let mut s =
        UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(T)).expect("timeout");
    let mut req = Vec::new();
    pb_bytes(1, service.as_bytes(), &mut req);
    pb_bytes(2, method.as_bytes(), &mut req);
    pb_bytes(3, payload, &mut req);
    pb_varint(4, 20_000_000_000, &mut req);
    let mut kv = Vec::new();
    pb_bytes(1, b"containerd-namespace", &mut kv);
    pb_bytes(2, NAMESPACE.as_bytes(), &mut kv);
    pb_bytes(5, &kv, &mut req);
    let mut frame = Vec::new();
    frame.extend_from_slice(&(req.len() as u32).to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes()); // stream id (odd: client)
    frame.push(1); // request
    frame.push(0);
    frame.extend_from_slice(&req);
    s.write_all(&frame).expect("write ttrpc request");
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).expect("read ttrpc header");
    let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    assert_eq!(
        hdr[8], 2,
        "ttrpc: expected a response frame, got type {}",
        hdr[8]
    );
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read ttrpc body");
    let mut payload = Vec::new();
    for (f, _, b) in pb_fields(&body) {
        match f {
            1 => {
                let (mut code, mut msg) = (0, String::new());
                for (sf, v, sb) in pb_fields(&b) {
                    match sf {
                        1 => code = v,
                        2 => msg = String::from_utf8_lossy(&sb).into_owned(),
                        _ => {}
                    }
                }
                if code != 0 {
                    return Err((code, msg));
                }
            }
            2 => payload = b,
            _ => {}
        }
    }
    Ok(payload)
}

/// `Task.Update` with OCI `LinuxResources` JSON (as containerd sends it: an `Any` with the
/// runtime-spec type URL and JSON bytes).
pub fn shim_update(
    c: &Containerd,
    id: &str,
    resources: &serde_json::Value,
) -> Result<(), (u64, String)> {
    let mut any = Vec::new();
    pb_bytes(
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
        &mut any,
    );
    pb_bytes(2, &serde_json::to_vec(resources).expect("json"), &mut any);
    let mut req = Vec::new();
    pb_bytes(1, id.as_bytes(), &mut req);
    pb_bytes(2, &any, &mut req);
    shim_call(c, id, "Update", &req).map(|_| ())
}

/// A FIFO at `path` (mode 0600), as containerd makes them for a process's stdio.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// The `{id, exec_id}` message that Start, Wait, Delete, CloseIO and Kill begin with.
pub fn process_request(id: &str, exec_id: &str) -> Vec<u8> {
    let mut m = Vec::new();
    pb_bytes(1, id.as_bytes(), &mut m);
    pb_bytes(2, exec_id.as_bytes(), &mut m);
    m
}

/// `Task.Wait` of a process through its shim (what containerd's Wait forwards to): its exit
/// status.
pub fn shim_wait(c: &Containerd, id: &str, exec_id: &str) -> Result<u32, (u64, String)> {
    let r = shim_call(c, id, "Wait", &process_request(id, exec_id))?;
    // WaitResponse: exit_status = 1 (a zero status is left out).
    Ok(pb_fields(&r)
        .into_iter()
        .find(|(f, _, _)| *f == 1)
        .map_or(0, |(_, v, _)| v as u32))
}

/// `Task.State` of a process through its shim: (status: 1 created, 2 running, 3 stopped,
/// 4 paused; exit status).
pub fn shim_state(c: &Containerd, id: &str, exec_id: &str) -> Result<(u64, u32), (u64, String)> {
    let r = shim_call(c, id, "State", &process_request(id, exec_id))?;
    let fields = pb_fields(&r);
    let get = |n: u32| fields.iter().find(|(f, _, _)| *f == n).map_or(0, |f| f.1);
    // StateResponse: status = 4, exit_status = 9.
    Ok((get(4), get(9) as u32))
}

/// `Task.Exec` (not started) of `args` as root in `/`, with the given stdin and stdout URIs.
pub fn shim_exec(
    c: &Containerd,
    id: &str,
    exec_id: &str,
    args: &[&str],
    stdin: &str,
    stdout: &str,
) -> Result<(), (u64, String)> {
    let spec = serde_json::json!({"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0}});
    let mut any = Vec::new();
    pb_bytes(
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/Process",
        &mut any,
    );
    pb_bytes(2, &serde_json::to_vec(&spec).expect("json"), &mut any);
    let mut req = process_request(id, exec_id);
    pb_bytes(4, stdin.as_bytes(), &mut req);
    pb_bytes(5, stdout.as_bytes(), &mut req);
    pb_bytes(7, &any, &mut req);
    shim_call(c, id, "Exec", &req).map(|_| ())
}

/// `Task.ResizePty` for a process of the task (`exec_id` "" = init).
pub fn shim_resize(
    c: &Containerd,
    id: &str,
    exec_id: &str,
    w: u32,
    h: u32,
) -> Result<(), (u64, String)> {
    let mut req = Vec::new();
    pb_bytes(1, id.as_bytes(), &mut req);
    if !exec_id.is_empty() {
        pb_bytes(2, exec_id.as_bytes(), &mut req);
    }
    pb_varint(3, w as u64, &mut req);
    pb_varint(4, h as u64, &mut req);
    shim_call(c, id, "ResizePty", &req).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Pseudo-terminal driven by the test
// ---------------------------------------------------------------------------------------------

/// A command running with a pty slave as its controlling terminal and stdio; the test holds the
/// master.
pub struct Pty {
    pub master: OwnedFd,
    pub child: Child,
    rx: Receiver<Vec<u8>>,
    /// Everything read from the master so far.
    pub seen: Vec<u8>,
}

impl Pty {
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> Pty {
        let (mut m, mut s) = (-1, -1);
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty with valid out-pointers.
        let rc =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh fds from openpty, owned here.
        let master = unsafe { OwnedFd::from_raw_fd(m) };
        let slave = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: fcntl on our own fd.
        unsafe { libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC) };
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn under pty");
        let mut reader = std::fs::File::from(master.try_clone().expect("dup master"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Pty {
            master,
            child,
            rx,
            seen: Vec::new(),
        }
    }

    pub fn write(&mut self, s: &str) {
        let mut f = std::fs::File::from(self.master.try_clone().expect("dup master"));
        f.write_all(s.as_bytes()).expect("write to pty master");
    }

    pub fn seen_str(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Wait until the output read after `from` contains `needle`; returns the end offset.
    pub fn expect_after(&mut self, from: usize, needle: &str, timeout: Duration) -> usize {
        let t = Instant::now();
        loop {
            let hay = String::from_utf8_lossy(&self.seen[from.min(self.seen.len())..]).into_owned();
            if let Some(i) = hay.find(needle) {
                return from + i + needle.len();
            }
            let left = timeout.saturating_sub(t.elapsed());
            match self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(b) => self.seen.extend_from_slice(&b),
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(e) => panic!(
                    "pty: no {needle:?} after {:?} ({e:?}); output since {from}: {:?}",
                    t.elapsed(),
                    String::from_utf8_lossy(&self.seen[from.min(self.seen.len())..])
                ),
            }
        }
    }

    /// Set the window size on the test's side (the kernel sends SIGWINCH to the foreground
    /// process group of the terminal: ctr).
    pub fn resize(&self, cols: u16, rows: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: ioctl on our master fd with a valid winsize.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ as _, &ws) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Wait for the child to exit; returns its exit code (None = signal / time-out kill).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                while let Ok(b) = self.rx.recv_timeout(Duration::from_millis(200)) {
                    self.seen.extend_from_slice(&b);
                }
                return s.code();
            }
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "pty child did not exit after {timeout:?}; output: {:?}",
                    self.seen_str()
                );
            }
            while let Ok(b) = self.rx.try_recv() {
                self.seen.extend_from_slice(&b);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Skip helper: returns true (and says why) when running against runc.
pub fn skip_under_runc(why: &str) -> bool {
    if is_runc() {
        eprintln!("skipped under runc: {why}");
        return true;
    }
    false
}
