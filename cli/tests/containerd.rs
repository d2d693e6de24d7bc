//! `tent audit --image` and `--rootfs-of` through a private containerd
//! (`hack/containerd.sh up`, which imports the test image
//! `docker.io/library/tent-test:latest`). The container runs under runc
//! (`io.containerd.runc.v2`) unless `TENT_TEST_RUNTIME` names another (e.g.
//! `io.containerd.tent.v1` with `TENT_SHIM_DIR` holding the shim): what is
//! tested is the auditor, not the runtime, and runc needs no shim build.
//! Skips without root, the image archive or containerd.
//! `TENT_CONTAINERD_VERSION` picks 1.6 (default), 1.7 or 2.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const IMAGE: &str = "docker.io/library/tent-test:latest";

struct Daemon {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    fn up() -> Option<Daemon> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let version = std::env::var("TENT_CONTAINERD_VERSION").unwrap_or_else(|_| "1.6".into());
        if !is_root() || !repo.join(".cache/images/tent-test.tar").exists() {
            eprintln!("SKIP: needs root and .cache/images/tent-test.tar (hack/build-image.sh)");
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("tent-audit-ctd.")
            .tempdir()
            .ok()?;
        let dir = tmp.path().join("d");
        let ok = Command::new(repo.join("hack/containerd.sh"))
            .args(["up", &version])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIP: hack/containerd.sh up {version} failed");
            let _ = Command::new(repo.join("hack/containerd.sh"))
                .arg("down")
                .arg(&dir)
                .status();
            return None;
        }
        Some(Daemon { dir, _tmp: tmp })
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.dir.join("bin/ctr"))
            .arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(args)
            .output()
            .expect("run ctr")
    }

    fn audit(&self, extra: &[&str]) -> Run {
        let addr = self.dir.join("containerd.sock");
        let ctr = self.dir.join("bin/ctr");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "audit".as_ref(),
            "--json".as_ref(),
            "--verbose".as_ref(),
            "--address".as_ref(),
            addr.as_os_str(),
            "--ctr".as_ref(),
            ctr.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        run_as(&args, Duration::from_secs(60), None)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let _ = Command::new(repo.join("hack/containerd.sh"))
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn image_and_running_container() {
    let Some(d) = Daemon::up() else { return };

    // --image: mounted read-only by containerd, audited, unmounted.
    let r = d.audit(&["--image", IMAGE]);
    let v = r.json();
    eprintln!("image: {}; {}", v["verdict"], r.stderr.trim());
    assert_eq!(v["source"], "image");
    assert_eq!(v["busybox"][0]["path"], "/bin/busybox");
    assert!(tool_names(&v, "shell").contains(&"sh".into()));
    assert!(tool_names(&v, "kernel").contains(&"mount".into()));
    assert!(v["totals"]["files"].as_u64().unwrap() >= 3);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("tent-audit."), "a mount is left: {mounts}");
    for what in ["snapshots", "leases"] {
        let o = d.ctr(&["-n", "default", what, "ls"]);
        assert!(
            !text(&o).contains("tent-audit."),
            "{what} left: {}",
            text(&o)
        );
    }

    // A bad reference fails naming it, and leaves nothing either.
    let r = d.audit(&["--image", "docker.io/library/nonexistent:none"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("nonexistent:none"), "{}", r.stderr);
    let o = d.ctr(&["-n", "default", "snapshots", "ls"]);
    assert!(
        !text(&o).contains("tent-audit."),
        "snapshot left: {}",
        text(&o)
    );

    // --rootfs-of: the live root, with what the container wrote into it.
    let id = format!("tent-audit-{}", std::process::id());
    let runtime =
        std::env::var("TENT_TEST_RUNTIME").unwrap_or_else(|_| "io.containerd.runc.v2".into());
    let o = d.ctr(&[
        "-n",
        "default",
        "run",
        "-d",
        "--runtime",
        &runtime,
        IMAGE,
        &id,
        "sh",
        "-c",
        "touch /tmp/made-inside && chmod 4755 /tmp/made-inside && exec sleep 120",
    ]);
    assert!(
        o.status.success(),
        "ctr run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut v = Value::Null;
    for _ in 0..100 {
        let r = d.audit(&["--rootfs-of", &id, "--namespace", "default"]);
        v = r.json();
        if paths(&v, "setid").contains(&"/tmp/made-inside".to_string()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = d.ctr(&["-n", "default", "task", "kill", "-s", "KILL", &id]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = d.ctr(&["-n", "default", "task", "delete", "-f", &id]);
    let _ = d.ctr(&["-n", "default", "container", "delete", &id]);
    assert_eq!(v["source"], "container");
    assert!(
        paths(&v, "setid").contains(&"/tmp/made-inside".to_string()),
        "{}",
        v["setid"]
    );
    let mp = paths(&v, "mount_points");
    for m in ["/proc", "/sys", "/dev"] {
        assert!(
            mp.contains(&m.to_string()),
            "{m} should be a mount point not descended: {mp:?}"
        );
    }
    let r = d.audit(&["--rootfs-of", "no-such-container"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("no-such-container"), "{}", r.stderr);
}

/// `tent audit --observe ID --json` started in the background; returns once
/// it says the mark is in place.
struct Observer {
    child: std::process::Child,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Observer {
    fn start(d: &Daemon, id: &str) -> Observer {
        use std::io::{BufRead, Read};
        let mut child = Command::new(tent())
            .args(["audit", "--json", "--observe", id, "--duration", "60"])
            .arg("--address")
            .arg(d.dir.join("containerd.sock"))
            .arg("--ctr")
            .arg(d.dir.join("bin/ctr"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tent audit --observe");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(|l| l.ok()) {
                if line.contains("observing container") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tent audit --observe never started: {}",
                stderr.join().unwrap_or_default()
            );
        }
        Observer {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits (30 s at most) for the report.
    fn finish(mut self) -> Value {
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("tent audit --observe did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self.stdout.join().expect("stdout thread");
        let err = self.stderr.join().expect("stderr thread");
        assert!(status.success(), "tent audit --observe: {status}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }
}

/// An HTTP GET of `path` on 127.0.0.1:`port` inside `pid`'s network
/// namespace (a thread of the test enters it: nothing runs in the
/// container, so the host side opens none of its files). Retries for 10 s.
fn fetch_in_netns(pid: i32, port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open netns");
        // SAFETY: setns on a valid netns fd, affecting only this thread.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        loopback_up();
        let mut last = String::new();
        for _ in 0..200 {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(mut c) => {
                    c.write_all(req.as_bytes()).expect("send");
                    let mut s = String::new();
                    let _ = c.read_to_string(&mut s);
                    return s;
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("connect 127.0.0.1:{port} in netns of {pid}: {last}");
    })
    .join()
    .expect("fetch thread")
}

/// Brings `lo` up in this thread's network namespace: runc does for a new
/// network namespace, tent (without CNI, as under `ctr run`) leaves it down.
fn loopback_up() {
    // SAFETY: a local socket and a zeroed ifreq naming "lo", for two ioctls.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(s >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) == 0 && {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) == 0
        };
        let err = std::io::Error::last_os_error();
        libc::close(s);
        assert!(ok, "bring lo up: {err}");
    }
}

fn task_pid(d: &Daemon, id: &str) -> i32 {
    for _ in 0..200 {
        let o = d.ctr(&["-n", "default", "task", "ls"]);
        for line in text(&o).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&id) && f.get(2) == Some(&"RUNNING") {
                return f[1].parse().expect("pid");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "task {id} never ran (an image whose tent-testbin lacks `serve`? hack/test.sh rebuilds \
         .cache/images/tent-test.tar; TENT_IMAGE names another): {}",
        text(&d.ctr(&["-n", "default", "task", "ls"]))
    );
}

fn remove(d: &Daemon, id: &str) {
    let _ = d.ctr(&["-n", "default", "task", "kill", "-s", "KILL", id]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = d.ctr(&["-n", "default", "task", "delete", "-f", id]);
    let _ = d.ctr(&["-n", "default", "container", "delete", id]);
}

fn finding_state(v: &Value, kind: &str, name: &str) -> String {
    v["observe"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["kind"] == kind && (f["name"] == name || f["path"] == name))
        .unwrap_or_else(|| panic!("no {kind} finding {name}: {}", v["observe"]["findings"]))
        ["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn start(d: &Daemon, id: &str, cmd: &[&str]) -> i32 {
    let runtime =
        std::env::var("TENT_TEST_RUNTIME").unwrap_or_else(|_| "io.containerd.runc.v2".into());
    let mut args = vec![
        "-n",
        "default",
        "run",
        "-d",
        "--runtime",
        &runtime,
        IMAGE,
        id,
    ];
    args.extend(cmd);
    let o = d.ctr(&args);
    assert!(
        o.status.success(),
        "ctr run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    task_pid(d, id)
}

#[test]
fn observe_a_server() {
    let Some(d) = Daemon::up() else { return };

    // A server that is not busybox: it opens /etc/group per request and
    // nothing else. It was exec'd before the observer started, so its
    // binary counts only through what the running process holds.
    let id = format!("tent-observe-{}", std::process::id());
    let pid = start(
        &d,
        &id,
        &["/bin/tent-testbin", "serve", "8080", "/etc/group"],
    );
    let obs = Observer::start(&d, &id);
    let page = fetch_in_netns(pid, 8080, "/");
    assert!(
        page.contains("200 OK") && page.contains("tent:x:1000"),
        "the test image's tent-testbin has no `serve` (rebuild it and the image: hack/test.sh \
         does): {page}"
    );
    let _ = d.ctr(&["-n", "default", "task", "kill", "-s", "KILL", &id]);
    let v = obs.finish();
    remove(&d, &id);
    let o = &v["observe"];
    eprintln!("observe: {o}");
    assert_eq!(o["ended_by"], "container-stopped");
    assert_eq!(o["events_lost"], false);
    assert_eq!(o["used"]["/bin/tent-testbin"]["executed"], true, "{o}");
    assert_eq!(o["used"]["/etc/group"]["opened"], true, "{o}");
    for never in ["/etc/passwd", "/bin/busybox"] {
        assert!(o["used"].get(never).is_none(), "{never} used? {o}");
    }
    for (kind, name) in [
        ("shell", "sh"),
        ("shell", "ash"),
        ("kernel", "mount"),
        ("kernel", "nsenter"),
        ("package-manager", "rpm"),
        ("network", "wget"),
        ("busybox", "/bin/busybox"),
    ] {
        assert_eq!(finding_state(&v, kind, name), "unused", "{kind} {name}");
    }

    // busybox httpd: busybox ran, so its applets (the shell among them)
    // cannot be told apart; the page it served is used. Ended by SIGINT.
    let id = format!("tent-observe-bb-{}", std::process::id());
    let pid = start(
        &d,
        &id,
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo hello-tent > /tmp/www/index.html && exec httpd -f -p 8081 -h /tmp/www",
        ],
    );
    let obs = Observer::start(&d, &id);
    let page = fetch_in_netns(pid, 8081, "/index.html");
    assert!(page.contains("hello-tent"), "{page}");
    // SAFETY: a signal to the child this test spawned.
    unsafe { libc::kill(obs.child.id() as i32, libc::SIGINT) };
    let v = obs.finish();
    remove(&d, &id);
    let o = &v["observe"];
    eprintln!("observe busybox: {o}");
    assert_eq!(o["ended_by"], "signal");
    assert_eq!(o["used"]["/bin/busybox"]["executed"], true, "{o}");
    assert_eq!(o["used"]["/tmp/www/index.html"]["opened"], true, "{o}");
    assert_eq!(o["busybox_ran"][0], "/bin/busybox");
    assert_eq!(finding_state(&v, "busybox", "/bin/busybox"), "used");
    assert_eq!(finding_state(&v, "shell", "sh"), "indistinct");
    assert_eq!(finding_state(&v, "kernel", "mount"), "indistinct");
}

/// `tent audit --running`: the shim's summary of each tent container (at its
/// Create, off the start path, cached by layers), none for runc's; Task API
/// containers have no pod names (integration/tests/cri_audit_running.rs: CRI's).
#[test]
fn running_lists_what_the_shim_computed() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shim_dir = std::env::var("TENT_SHIM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target/x86_64-unknown-linux-gnu/release"));
    if !shim_dir.join("containerd-shim-tent-v1").exists() {
        eprintln!(
            "SKIP: no tent shim in {} (hack/build-shim.sh)",
            shim_dir.display()
        );
        return;
    }
    let Some(d) = Daemon::up() else { return };
    let pid = std::process::id();
    let ids = [
        (format!("tent-run-a-{pid}"), "io.containerd.tent.v1"),
        (format!("tent-run-b-{pid}"), "io.containerd.tent.v1"),
        (format!("tent-run-c-{pid}"), "io.containerd.runc.v2"),
    ];
    for (id, rt) in &ids {
        let o = d.ctr(&[
            "-n",
            "default",
            "run",
            "-d",
            "--runtime",
            rt,
            IMAGE,
            id,
            "/bin/tent-testbin",
            "pause",
        ]);
        assert!(
            o.status.success(),
            "ctr run {rt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // The second tent container starts after the first's summary is cached.
        std::thread::sleep(Duration::from_millis(500));
    }
    let state = d.dir.join("state");
    let mut rows = Vec::new();
    for _ in 0..100 {
        let r = d.audit(&["--running", "--state", state.to_str().expect("utf-8")]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
        rows = v.as_array().cloned().unwrap_or_default();
        let done = ids[..2].iter().all(|(id, _)| {
            rows.iter()
                .any(|r| r["id"] == id.as_str() && r.get("summary").is_some())
        });
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (id, _) in &ids {
        remove(&d, id);
    }
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {rows:?}"))
            .clone()
    };
    let a = row(&ids[0].0);
    let b = row(&ids[1].0);
    let c = row(&ids[2].0);
    eprintln!("running: {a}\n{b}\n{c}");
    for r in [&a, &b] {
        let s = &r["summary"];
        assert_eq!(s["busybox"], true, "{r}");
        assert_eq!(s["shells"], 2, "{r}");
        assert!(s["kernel_tools"].as_u64().unwrap_or(0) > 10, "{r}");
        assert!(s["score"].as_u64().unwrap_or(0) > 40, "{r}");
        assert_eq!(r["namespace"], "default");
        // Not a CRI container: no pod names, the id alone.
        assert!(r.get("pod").is_none(), "{r}");
    }
    assert_eq!(a["summary"]["score"], b["summary"]["score"]);
    assert_eq!(b["summary"]["cached"], true, "same layers: {b}");
    assert!(c.get("summary").is_none(), "runc has no summary: {c}");
    assert!(
        c["note"].as_str().unwrap_or("").contains("no summary"),
        "{c}"
    );
}
