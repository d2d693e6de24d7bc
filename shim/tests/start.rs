//! The real shim binary's `start`, run the way containerd runs it: cwd = bundle,
//! containerd's argv, and on stdin containerd 2.3.4's captured BootstrapParams or
//! 1.6's runtime-options `Any`. Checks where the server's socket appears, what
//! `start` replies, where the server is placed (cgroup, oom_score_adj), and that
//! it goes away on Shutdown leaving nothing behind. Needs root (cgroups, oom).

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{ConnectRequest, ShutdownRequest};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, CodedOutputStream, Message};
use containerd_shim_protos::shim_sync::{Client, TaskClient};
use containerd_shim_protos::ttrpc::context;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-tent-v1");
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/containerd-2.3.4"
);
const WAIT: Duration = Duration::from_secs(10);

/// A scratch directory with a bundle and a stand-in for containerd's TTRPC socket
/// (a listener nobody answers on: the server only needs to connect).
struct Scratch {
    dir: PathBuf,
    _ttrpc: UnixListener,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        // Short: the socket path must fit a sockaddr_un.
        let dir = PathBuf::from(format!("/tmp/tsh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bundle")).expect("bundle dir");
        let ttrpc = UnixListener::bind(dir.join("c.ttrpc")).expect("bind fake TTRPC socket");
        Scratch { dir, _ttrpc: ttrpc }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    /// `<shim> -namespace default -address <address> … -id <id> start`, stdin `input`.
    fn start(&self, id: &str, address: &str, input: &[u8]) -> Output {
        self.start_with_ttrpc(id, address, input, &self.dir.join("c.ttrpc"))
    }

    fn start_with_ttrpc(&self, id: &str, address: &str, input: &[u8], ttrpc: &Path) -> Output {
        let mut child = Command::new(SHIM)
            .args(["-namespace", "default", "-address", address])
            .args(["-publish-binary", "/usr/bin/containerd", "-id", id, "start"])
            .current_dir(self.bundle())
            .env("TTRPC_ADDRESS", ttrpc)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run shim start");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("shim start")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Orphaned servers are re-parented to us, so we can reap them and see them end.
fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// The fields of a protobuf message: (field number, varint or bytes).
fn fields(bytes: &[u8]) -> Vec<(u32, Result<u64, Vec<u8>>)> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut out = Vec::new();
    while let Some(tag) = input.read_raw_tag_or_eof().expect("tag") {
        let value = match tag & 7 {
            0 => Ok(input.read_raw_varint64().expect("varint")),
            2 => Err(input.read_bytes().expect("bytes")),
            w => panic!("unexpected wire type {w}"),
        };
        out.push((tag >> 3, value));
    }
    out
}

/// A `BootstrapResult`'s version, address and protocol.
fn bootstrap_result(bytes: &[u8]) -> (u64, String, String) {
    let (mut version, mut address, mut protocol) = (0, String::new(), String::new());
    for (field, value) in fields(bytes) {
        match (field, value) {
            (1, Ok(v)) => version = v,
            (2, Err(b)) => address = String::from_utf8(b).expect("address"),
            (3, Err(b)) => protocol = String::from_utf8(b).expect("protocol"),
            other => panic!("unexpected field {other:?}"),
        }
    }
    (version, address, protocol)
}

/// Asks the server at `address` for its pid (Connect), over task API v2.
fn connect(address: &str) -> TaskClient {
    TaskClient::new(Client::connect(address).expect("connect to the shim server"))
}

fn shim_pid(client: &TaskClient) -> i32 {
    let reply = client
        .connect(context::with_timeout(5_000_000_000), &ConnectRequest::new())
        .expect("Connect");
    reply.shim_pid as i32
}

/// Shuts the server down and waits until it has exited (we reap it) and its
/// socket is gone.
fn shut_down(client: &TaskClient, pid: i32, socket: &Path) {
    client
        .shutdown(
            context::with_timeout(5_000_000_000),
            &ShutdownRequest::new(),
        )
        .expect("Shutdown");
    let deadline = Instant::now() + WAIT;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a pid we were made the reaper of.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(
            rc >= 0,
            "waitpid {pid}: {}",
            std::io::Error::last_os_error()
        );
        if rc == pid {
            assert!(
                libc::WIFEXITED(status),
                "server ended with status {status:#x}"
            );
            assert_eq!(libc::WEXITSTATUS(status), 0, "server exit code");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server {pid} did not exit after Shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists(), "socket {} left behind", socket.display());
}

/// Pids of processes whose cwd is `dir` (a shim server runs in its bundle).
fn processes_in(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|c| c == dir) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn containerd_2_3_params_put_the_socket_in_socket_dir_and_get_a_bootstrap_result() {
    become_subreaper();
    let scratch = Scratch::new("boot");
    let socket_dir = scratch.dir.join("s");
    // containerd 2.3.4's bytes, with socket_dir (field 9) given again: the last
    // value of a field wins, so this only moves the socket into our scratch dir.
    let mut input = fixture("start-stdin-plain.bin");
    {
        let mut out = CodedOutputStream::vec(&mut input);
        out.write_string(9, &socket_dir.to_string_lossy())
            .expect("socket_dir");
        out.flush().expect("flush");
    }
    // The highest score there is: +1 must be capped.
    std::fs::write("/proc/self/oom_score_adj", "999").expect("raise our oom_score_adj");

    let out = scratch.start("probe-plain", "/run/containerd/containerd.sock", &input);
    assert!(
        out.status.success(),
        "start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (version, address, protocol) = bootstrap_result(&out.stdout);
    assert_eq!((version, protocol.as_str()), (3, "ttrpc"), "{address}");
    let socket = PathBuf::from(address.strip_prefix("unix://").expect("a unix address"));
    assert_eq!(socket.parent(), Some(socket_dir.as_path()));
    assert!(socket.exists(), "no socket at {}", socket.display());
    let written = std::fs::read_to_string(scratch.bundle().join("address")).expect("address file");
    assert_eq!(written, address);

    let client = connect(&address);
    let pid = shim_pid(&client);
    let score = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("oom score");
    assert_eq!(score.trim(), "1000", "containerd's 999 + 1, capped");
    // A second start for the same group finds the live server and reuses it.
    let again = scratch.start("probe-plain", "/run/containerd/containerd.sock", &input);
    assert!(again.status.success());
    assert_eq!(bootstrap_result(&again.stdout).1, address);
    assert_eq!(processes_in(&scratch.bundle()), [pid]);

    shut_down(&client, pid, &socket);
    assert_eq!(processes_in(&scratch.bundle()), Vec::<i32>::new());
}

/// A cgroup made for the test in every v1 hierarchy (or in the v2 tree).
struct TestCgroup {
    path: String,
    dirs: Vec<PathBuf>,
}

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let path = format!("/tent-test-{name}-{}", std::process::id());
        let roots: Vec<PathBuf> = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            vec![PathBuf::from("/sys/fs/cgroup")]
        } else {
            ["memory", "pids"]
                .iter()
                .map(|c| Path::new("/sys/fs/cgroup").join(c))
                .filter(|p| p.is_dir())
                .collect()
        };
        let dirs: Vec<PathBuf> = roots.iter().map(|r| r.join(&path[1..])).collect();
        for d in &dirs {
            std::fs::create_dir(d).expect("create test cgroup");
        }
        TestCgroup { path, dirs }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `containerd.runc.v1.Options{shim_cgroup}` as containerd 1.6 writes it on stdin.
fn runc_options(shim_cgroup: &str) -> Vec<u8> {
    let mut value = Vec::new();
    {
        let mut out = CodedOutputStream::vec(&mut value);
        out.write_string(3, shim_cgroup).expect("shim_cgroup");
        out.flush().expect("flush");
    }
    Any {
        type_url: "containerd.runc.v1.Options".into(),
        value,
        ..Default::default()
    }
    .write_to_bytes()
    .expect("encode Any")
}

/// `BootstrapParams` from containerd 2.3.4's capture, for `id`, with `socket_dir`
/// and the runtime options `any` as one extension, as 2.3 nests them.
fn params_with_options(id: &str, socket_dir: &Path, any: &[u8]) -> Vec<u8> {
    // The capture's own fields, but for the id (field 1, which must match -id).
    let plain = fixture("start-stdin-plain.bin");
    let mut out = Vec::new();
    {
        let mut o = CodedOutputStream::vec(&mut out);
        o.write_string(1, id).expect("instance_id");
        for (field, value) in fields(&plain) {
            match (field, value) {
                (1, _) => {}
                (f, Err(b)) => o.write_bytes(f, &b).expect("field"),
                (f, Ok(v)) => o.write_uint64(f, v).expect("field"),
            }
        }
        let mut ext = Vec::new();
        {
            let mut e = CodedOutputStream::vec(&mut ext);
            e.write_bytes(1, any).expect("Extension.value");
            e.flush().expect("flush");
        }
        o.write_bytes(8, &ext).expect("extensions");
        o.write_string(9, &socket_dir.to_string_lossy())
            .expect("socket_dir");
        o.flush().expect("flush");
    }
    out
}

/// Runs `start` with ShimCgroup given by `input(cgroup path)` and checks the server
/// joined it; returns after Shutdown.
fn shim_cgroup_is_joined(name: &str, id: &str, input: impl Fn(&Scratch, &str) -> Vec<u8>) {
    become_subreaper();
    let scratch = Scratch::new(name);
    let cgroup = TestCgroup::new(name);
    // A containerd address of our own: the socket name is then this test's alone.
    let address = scratch.dir.join("containerd.sock");
    let out = scratch.start(
        id,
        &address.to_string_lossy(),
        &input(&scratch, &cgroup.path),
    );
    assert!(
        out.status.success(),
        "start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = match String::from_utf8(out.stdout.clone()) {
        // containerd 1.6 … 2.2: the plain address.
        Ok(plain) if plain.starts_with("unix://") => plain,
        _ => bootstrap_result(&out.stdout).1,
    };
    let socket = PathBuf::from(reply.trim_start_matches("unix://"));
    let client = connect(&reply);
    let pid = shim_pid(&client);
    for dir in &cgroup.dirs {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).expect("cgroup.procs");
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "server {pid} not in {}: {procs:?}",
            dir.display()
        );
    }
    shut_down(&client, pid, &socket);
}

#[test]
fn runc_shim_cgroup_option_puts_the_server_in_that_cgroup() {
    // containerd 1.6 … 2.2: the options Any alone on stdin, the plain address back,
    // the socket in the default directory.
    shim_cgroup_is_joined("cg", "cg1", |_, cgroup| runc_options(cgroup));
}

#[test]
fn runc_shim_cgroup_inside_bootstrap_params_is_honoured_too() {
    // containerd 2.3: the same options nested in BootstrapParams.extensions.
    shim_cgroup_is_joined("cg23", "cg23", |scratch, cgroup| {
        params_with_options("cg23", &scratch.dir.join("s"), &runc_options(cgroup))
    });
}

#[test]
fn a_missing_shim_cgroup_fails_start_and_leaves_nothing_behind() {
    become_subreaper();
    let scratch = Scratch::new("nocg");
    let address = scratch.dir.join("containerd.sock");
    let missing = format!("/tent-test-missing-{}", std::process::id());
    let out = scratch.start("nocg1", &address.to_string_lossy(), &runc_options(&missing));
    assert!(!out.status.success(), "start must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ShimCgroup") && stderr.contains(&missing),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no address on failure");
    // `start` killed and reaped the half-placed server, and removed its socket.
    assert_eq!(processes_in(&scratch.bundle()), Vec::<i32>::new());
    assert!(
        !scratch.bundle().join("address").exists(),
        "address file left behind"
    );
    let socket = socket_for(&address.to_string_lossy(), "default", "nocg1");
    assert!(!socket.exists(), "socket {} left behind", socket.display());
}

/// containerd's socket path for a group: `/run/containerd/s/<sha256 of address/ns/group>`.
fn socket_for(address: &str, namespace: &str, group: &str) -> PathBuf {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{address}/{namespace}/{group}").as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    Path::new("/run/containerd/s").join(hex)
}

#[test]
fn a_server_that_cannot_reach_containerd_exits_and_removes_its_socket() {
    let scratch = Scratch::new("noctd");
    let socket_dir = scratch.dir.join("s");
    let mut input = fixture("start-stdin-plain.bin");
    {
        let mut out = CodedOutputStream::vec(&mut input);
        out.write_string(9, &socket_dir.to_string_lossy())
            .expect("socket_dir");
        out.flush().expect("flush");
    }
    let nowhere = scratch.dir.join("no-containerd.ttrpc");
    let out = scratch.start_with_ttrpc(
        "probe-plain",
        "/run/containerd/containerd.sock",
        &input,
        &nowhere,
    );
    // `start` cannot know: it answers, and the server gives up on its own.
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, address, _) = bootstrap_result(&out.stdout);
    let socket = PathBuf::from(address.trim_start_matches("unix://"));
    let deadline = Instant::now() + WAIT;
    while socket.exists() || !processes_in(&scratch.bundle()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "server still there: socket {} exists: {}, processes {:?}",
            socket.display(),
            socket.exists(),
            processes_in(&scratch.bundle())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
