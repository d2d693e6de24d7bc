//! Test harness: a private containerd per test binary, driven through `ctr`.
//!
//! - [`Containerd::shared`] starts one private daemon per test binary (a `OnceLock`) with
//!   `hack/containerd.sh up $TENT_CONTAINERD_VERSION <dir>` (default 1.6) and stops it with
//!   `hack/containerd.sh down <dir>` when the test process exits (`atexit`, since statics are
//!   never dropped). [`Containerd::start`] gives an owned daemon that is stopped on `Drop`;
//!   only an owned one may be stopped and started again on its dir
//!   ([`Containerd::stop_daemon`], [`Containerd::restart_daemon`]: the restart tests).
//! - Tests run in parallel against the shared daemon: every container gets a unique id
//!   ([`unique_id`]) and every leak check is scoped to that id (its mounts, cgroup dirs, shim
//!   processes and bundle dir), so parallel tests cannot see each other's resources.
//! - The runtime under test is `io.containerd.tent.v1` unless `TENT_TEST_RUNTIME` says otherwise
//!   (`io.containerd.runc.v2` validates the tests themselves).
//! - Daemon dirs are created under `TENT_IT_ROOT` (set by `hack/test.sh`, which also cleans up
//!   leftovers) or `/tmp`.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod cri;
pub mod stream;

pub use serde_json::{json, Value};

/// Image every test container uses (built by `hack/build-image.sh`).
pub const IMAGE: &str = "docker.io/library/tent-test:latest";
/// containerd namespace the tests use.
pub const NAMESPACE: &str = "default";
/// Default bound for one `ctr` invocation.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);

/// Root of the repository (integration/..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration crate has a parent dir")
        .to_path_buf()
}

/// The runtime type under test (`TENT_TEST_RUNTIME`, default `io.containerd.tent.v1`).
pub fn runtime() -> String {
    std::env::var("TENT_TEST_RUNTIME").unwrap_or_else(|_| "io.containerd.tent.v1".to_string())
}

/// True when the runtime under test is runc (the reference the tests are validated against).
pub fn is_runc() -> bool {
    runtime().contains("runc")
}

/// The containerd version the daemon runs (`TENT_CONTAINERD_VERSION`, default 1.6).
pub fn containerd_version() -> String {
    std::env::var("TENT_CONTAINERD_VERSION").unwrap_or_else(|_| "1.6".to_string())
}

/// A container id unique within this machine for this test run: `<prefix>-<pid>-<n>`.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Result of a finished command.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub stdout: String,
    pub stderr: String,
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
}

impl RunResult {
    fn from_output(o: Output) -> Self {
        RunResult {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code(),
        }
    }
    /// Panics with the full output unless the exit code is 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self
    }
}

/// Options for [`Containerd::run`].
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Runtime type; `None` = [`runtime()`].
    pub runtime: Option<String>,
    /// Extra `ctr run` flags before the image (e.g. `--read-only`, `--env=A=B`).
    pub flags: Vec<String>,
    /// Bytes written to `ctr run`'s stdin (then closed). `None` = stdin from /dev/null.
    pub stdin: Option<Vec<u8>>,
    /// `--rm` (default true).
    pub rm: bool,
    pub timeout: Duration,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            runtime: None,
            flags: Vec::new(),
            stdin: None,
            rm: true,
            timeout: CTR_TIMEOUT,
        }
    }
}

impl RunOpts {
    pub fn flag(mut self, f: impl Into<String>) -> Self {
        self.flags.push(f.into());
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    pub fn keep(mut self) -> Self {
        self.rm = false;
        self
    }
}

/// A private containerd started by `hack/containerd.sh`.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    version: String,
    ctr: PathBuf,
    owned: bool,
}

static SHARED: OnceLock<Containerd> = OnceLock::new();
static SHARED_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

extern "C" fn stop_shared_at_exit() {
    if let Ok(mut g) = SHARED_DIR.lock() {
        if let Some(dir) = g.take() {
            down(&dir);
        }
    }
}

/// `hack/containerd.sh up <version> <dir>`: a fresh daemon, or the same one again on an
/// existing dir (same config, images re-imported: a no-op).
fn up(version: &str, dir: &Path) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/containerd.sh"))
        .arg("up")
        .arg(version)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run hack/containerd.sh: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "hack/containerd.sh up {version} {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn down(dir: &Path) {
    let _ = Command::new("bash")
        .arg(repo_root().join("hack/containerd.sh"))
        .arg("down")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
}

impl Containerd {
    /// The daemon shared by all tests of this test binary (started on first use, stopped at
    /// process exit).
    pub fn shared() -> &'static Containerd {
        SHARED.get_or_init(|| {
            let mut c = Containerd::start();
            c.owned = false;
            *SHARED_DIR.lock().expect("SHARED_DIR lock") = Some(c.dir.clone());
            // SAFETY: registering a plain extern "C" fn.
            unsafe { libc::atexit(stop_shared_at_exit) };
            c
        })
    }

    /// Start a private daemon of `TENT_CONTAINERD_VERSION` in a fresh temp dir; stopped on Drop.
    pub fn start() -> Containerd {
        let version = containerd_version();
        let parent = std::env::var("TENT_IT_ROOT").unwrap_or_else(|_| "/tmp".to_string());
        let dir = PathBuf::from(parent).join(format!("ctd-{}", unique_id("d")));
        if let Err(e) = up(&version, &dir) {
            down(&dir);
            panic!("{e}");
        }
        eprintln!(
            "harness: containerd {version} in {} (runtime under test: {})",
            dir.display(),
            runtime()
        );
        Containerd {
            ctr: dir.join("bin/ctr"),
            dir,
            version,
            owned: true,
        }
    }

    /// A daemon already running in `dir` (started by `hack/containerd.sh up`, e.g. by
    /// `hack/demo.sh` or `hack/bench.sh`); left running on Drop.
    pub fn attach(dir: &Path) -> Result<Containerd, String> {
        let env = std::fs::read_to_string(dir.join("env")).map_err(|e| {
            format!(
                "{}: {e} (not a hack/containerd.sh daemon?)",
                dir.join("env").display()
            )
        })?;
        let version = env
            .lines()
            .find_map(|l| l.strip_prefix("export TENT_CONTAINERD_VERSION="))
            .or_else(|| {
                env.lines()
                    .find_map(|l| l.strip_prefix("TENT_CONTAINERD_VERSION="))
            })
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
            .ok_or_else(|| format!("{}: no TENT_CONTAINERD_VERSION", dir.join("env").display()))?;
        if !dir.join("containerd.sock").exists() {
            return Err(format!(
                "{}: no containerd.sock: is the daemon up?",
                dir.display()
            ));
        }
        Ok(Containerd {
            ctr: dir.join("bin/ctr"),
            dir: dir.to_path_buf(),
            version,
            owned: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The daemon's pid (`containerd.pid` in its dir).
    pub fn pid(&self) -> i32 {
        let p = self.dir.join("containerd.pid");
        std::fs::read_to_string(&p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", p.display()))
    }

    /// Stops the daemon with `signal` (`SIGTERM`: containerd's own shutdown, `SIGKILL`: a
    /// crash) and waits until it is gone; its shims and containers keep running. Only for a
    /// daemon the test owns ([`Containerd::start`]): the shared one serves other tests.
    pub fn stop_daemon(&self, signal: i32) {
        assert!(self.owned, "stop_daemon on a daemon this test does not own");
        let pid = self.pid();
        // SAFETY: signalling the daemon this test started.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
        let t = Instant::now();
        while proc_status_field(pid, "State").is_some_and(|s| !s.starts_with('Z')) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "containerd {pid} still running 60 s after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A zombie still answers `kill -0` until whoever inherited it reaps it, and `up` would
        // take it for a live daemon: the pid file goes with the daemon.
        let _ = std::fs::remove_file(self.dir.join("containerd.pid"));
    }

    /// Starts the daemon again on the same dir and config, after [`Self::stop_daemon`].
    pub fn restart_daemon(&self) {
        assert!(
            self.owned,
            "restart_daemon on a daemon this test does not own"
        );
        up(&self.version, &self.dir).unwrap_or_else(|e| panic!("restart: {e}"));
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn address(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }
    /// Last `n` lines of the daemon log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
    /// The daemon's state dir (`state = ` in its config).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    /// Bundle dir of a container's task (exists while the task exists).
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(NAMESPACE)
            .join(id)
    }
    /// Entries in the v2 task state dir of our namespace (the shim state list).
    pub fn task_state_entries(&self) -> Vec<String> {
        let d = self
            .state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(NAMESPACE);
        read_dir_names(&d)
    }

    /// A `ctr` command for this daemon (`--address`, namespace `default`).
    pub fn ctr_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address")
            .arg(self.address())
            .arg("--namespace")
            .arg(NAMESPACE)
            .args(args);
        c
    }

    /// Run `ctr <args>` to completion (bounded by [`CTR_TIMEOUT`]).
    pub fn ctr<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        let mut c = self.ctr_command(args);
        run_with_timeout(&mut c, None, CTR_TIMEOUT)
    }

    /// `ctr <args>` as a [`RunResult`].
    pub fn ctr_result<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> RunResult {
        RunResult::from_output(self.ctr(args))
    }

    /// `ctr run [--rm] --runtime R <flags> IMAGE ID <args>`.
    pub fn run(&self, id: &str, args: &[&str], opts: &RunOpts) -> RunResult {
        let mut c = self.ctr_command(&["run"]);
        if opts.rm {
            c.arg("--rm");
        }
        c.arg("--runtime")
            .arg(opts.runtime.clone().unwrap_or_else(runtime))
            .args(&opts.flags)
            .arg(IMAGE)
            .arg(id)
            .args(args);
        RunResult::from_output(run_with_timeout_hook(
            &mut c,
            opts.stdin.as_deref(),
            opts.timeout,
            self.wait_running_hook(id),
        ))
    }

    /// `ctr run [--rm] --runtime R --config <spec.json> <flags> ID` (spec built with [`Spec`]).
    pub fn run_spec(&self, id: &str, spec: &Value, opts: &RunOpts) -> RunResult {
        let path = self.dir.join(format!("spec-{id}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(spec).expect("spec json"))
            .expect("write spec");
        let mut c = self.ctr_command(&["run"]);
        if opts.rm {
            c.arg("--rm");
        }
        c.arg("--runtime")
            .arg(opts.runtime.clone().unwrap_or_else(runtime))
            .arg("--config")
            .arg(&path)
            .args(&opts.flags)
            .arg(id);
        RunResult::from_output(run_with_timeout_hook(
            &mut c,
            opts.stdin.as_deref(),
            opts.timeout,
            self.wait_running_hook(id),
        ))
    }

    /// Start `ctr run` in the background (stdout/stderr piped) for tests that signal or watch a
    /// running container. Use [`Background::wait_for_line`] to sync, [`Background::finish`] to end.
    pub fn spawn_run(&self, id: &str, args: &[&str], opts: &RunOpts) -> Background {
        let mut c = self.ctr_command(&["run"]);
        if opts.rm {
            c.arg("--rm");
        }
        c.arg("--runtime")
            .arg(opts.runtime.clone().unwrap_or_else(runtime))
            .args(&opts.flags)
            .arg(IMAGE)
            .arg(id)
            .args(args);
        Background::spawn(c)
    }

    /// [`Containerd::spawn_run`] of a full spec: `ctr run --rm --runtime R --config <spec.json>
    /// ID` in the background (spec built with [`Spec`]).
    pub fn spawn_run_spec(&self, id: &str, spec: &Value) -> Background {
        let path = self.dir.join(format!("spec-{id}.json"));
        std::fs::write(&path, serde_json::to_vec(spec).expect("spec json")).expect("write spec");
        let mut c = self.ctr_command(&["run", "--rm", "--runtime"]);
        c.arg(runtime()).arg("--config").arg(&path).arg(id);
        Background::spawn(c)
    }

    /// A hook that waits (up to 20 s) until task `id` is RUNNING.
    ///
    /// `ctr run` only forwards stdin EOF (`CloseIO`) if EOF is read after the task was created
    /// (ctr sets its stdin closer after `NewTask` returns), so the harness closes `ctr run`'s
    /// stdin only once the task runs; otherwise `cat` would wait forever (a ctr race, not the
    /// runtime's).
    fn wait_running_hook(&self, id: &str) -> Box<dyn FnOnce() + Send> {
        let mut c = self.ctr_command(&["task", "ls"]);
        c.stdin(Stdio::null()).stderr(Stdio::null());
        let id = id.to_string();
        Box::new(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(o) = c.output() {
                    let s = String::from_utf8_lossy(&o.stdout).to_string();
                    let running = s.lines().any(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        f.first() == Some(&id.as_str()) && f.get(2) == Some(&"RUNNING")
                    });
                    if running {
                        std::thread::sleep(Duration::from_millis(100));
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    /// Pid of a running task (`ctr task ls`), if any.
    pub fn task_pid(&self, id: &str) -> Option<i32> {
        let out = self.ctr_result(&["task", "ls"]);
        out.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.first() == Some(&id) {
                f.get(1).and_then(|p| p.parse().ok())
            } else {
                None
            }
        })
    }

    /// Wait until the task is listed as RUNNING; returns its pid.
    pub fn wait_running(&self, id: &str, timeout: Duration) -> i32 {
        let t = Instant::now();
        loop {
            let out = self.ctr_result(&["task", "ls"]);
            for l in out.stdout.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.first() == Some(&id) && f.get(2) == Some(&"RUNNING") {
                    if let Some(p) = f.get(1).and_then(|p| p.parse().ok()) {
                        return p;
                    }
                }
            }
            assert!(
                t.elapsed() < timeout,
                "task {id} not RUNNING after {timeout:?}; ctr task ls:\n{}\nlog:\n{}",
                out.stdout,
                self.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Shim processes of this daemon (cmdline has `containerd-shim` and our address) whose
    /// cmdline also contains `needle` (e.g. `-id <id>`; "" = all of them).
    pub fn shim_pids(&self, needle: &str) -> Vec<i32> {
        let addr = self.address().display().to_string();
        processes()
            .into_iter()
            .filter(|(_, cmd)| {
                cmd.contains("containerd-shim") && cmd.contains(&addr) && cmd.contains(needle)
            })
            .map(|(p, _)| p)
            .collect()
    }

    /// Shims serving container `id` (cmdline contains `-id <id>`).
    pub fn shim_pids_for(&self, id: &str) -> Vec<i32> {
        self.shim_pids("")
            .into_iter()
            .filter(|p| {
                cmdline(*p)
                    .split(' ')
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| w[0] == "-id" && w[1] == id)
            })
            .collect()
    }

    /// Everything a container could leave behind, scoped to its id.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut v = Vec::new();
        for m in mounts_mentioning(id) {
            v.push(format!("mount: {m}"));
        }
        for d in cgroup_dirs(NAMESPACE, id) {
            v.push(format!("cgroup dir: {}", d.display()));
        }
        for p in self.shim_pids_for(id) {
            v.push(format!("shim process {p}: {}", cmdline(p)));
        }
        let b = self.bundle_dir(id);
        if b.exists() {
            v.push(format!("bundle dir: {}", b.display()));
        }
        v
    }

    /// Wait (up to 10 s: shims exit asynchronously) until [`Self::leftovers`] is empty; panic
    /// with the list otherwise.
    #[track_caller]
    pub fn assert_no_leftovers(&self, id: &str) {
        let t = Instant::now();
        loop {
            let left = self.leftovers(id);
            if left.is_empty() {
                return;
            }
            if t.elapsed() > Duration::from_secs(10) {
                panic!(
                    "container {id} left behind:\n  {}\ndaemon log:\n{}",
                    left.join("\n  "),
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Best-effort removal of a container (for test clean-up paths).
    pub fn force_remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id]);
        for _ in 0..20 {
            let o = self.ctr(&["task", "delete", "-f", id]);
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            if o.status.success() || err.contains("not found") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.ctr(&["container", "delete", id]);
    }

    /// A fresh copy of the test image's root filesystem for `--config` specs:
    /// `<dir>/rootfs/<id>`, unpacked from `.cache/images/tent-test.tar`.
    pub fn rootfs_for(&self, id: &str) -> PathBuf {
        let template = self.rootfs_template();
        let dst = self.dir.join("rootfs").join(id);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&dst)
            .status()
            .expect("cp");
        assert!(
            st.success(),
            "cp -a {} {}",
            template.display(),
            dst.display()
        );
        dst
    }

    fn rootfs_template(&self) -> PathBuf {
        static LOCK: Mutex<()> = Mutex::new(());
        let _g = LOCK.lock().expect("lock");
        let t = self.dir.join("rootfs-template");
        if t.join("bin/busybox").exists() {
            return t;
        }
        let image = std::env::var("TENT_IMAGE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".cache/images/tent-test.tar"));
        let oci = self.dir.join("oci-image");
        std::fs::create_dir_all(&oci).expect("mkdir oci");
        std::fs::create_dir_all(&t).expect("mkdir template");
        sh(&format!(
            "tar -xf '{}' -C '{}'",
            image.display(),
            oci.display()
        ));
        let index: Value = read_json(&oci.join("index.json"));
        let mdigest = index["manifests"][0]["digest"]
            .as_str()
            .expect("manifest digest");
        let manifest: Value = read_json(&blob(&oci, mdigest));
        for layer in manifest["layers"].as_array().expect("layers") {
            let d = layer["digest"].as_str().expect("layer digest");
            sh(&format!(
                "tar -xzf '{}' -C '{}' 2>/dev/null",
                blob(&oci, d).display(),
                t.display()
            ));
        }
        t
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.owned {
            down(&self.dir);
        }
    }
}

fn blob(oci: &Path, digest: &str) -> PathBuf {
    oci.join("blobs").join(digest.replacen(':', "/", 1))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "failed: {cmd}");
}

/// Run a command with stdin data and a time bound; on time-out the child is killed and the
/// test panics with what it printed so far.
pub fn run_with_timeout(c: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    run_with_timeout_hook(c, stdin, timeout, Box::new(|| {}))
}

/// Like [`run_with_timeout`]; `before_close` runs in the stdin writer thread after the data
/// was written and before stdin is closed.
pub fn run_with_timeout_hook(
    c: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    before_close: Box<dyn FnOnce() + Send>,
) -> Output {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
            before_close();
            drop(w);
        });
    }
    let out_h = read_in_thread(child.stdout.take());
    let err_h = read_in_thread(child.stderr.take());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let out = out_h.join().unwrap_or_default();
            let err = err_h.join().unwrap_or_default();
            panic!(
                "timed out after {timeout:?}: {c:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_h.join().unwrap_or_default(),
        stderr: err_h.join().unwrap_or_default(),
    }
}

fn read_in_thread<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut v);
        }
        v
    })
}

/// A background `ctr` process (e.g. `ctr run` of a long-running container, `ctr events`).
pub struct Background {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    err: std::thread::JoinHandle<Vec<u8>>,
}

impl Background {
    pub fn spawn(mut c: Command) -> Background {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let err = read_in_thread(child.stderr.take());
        Background {
            child,
            lines: rx,
            seen: Vec::new(),
            err,
        }
    }

    /// Wait for a stdout line containing `needle`; panics on time-out or EOF.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let t = Instant::now();
        loop {
            let left = timeout.saturating_sub(t.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line containing {needle:?} ({e:?}) after {:?}; stdout so far: {:?}",
                        t.elapsed(),
                        self.seen
                    );
                }
            }
        }
    }

    /// Wait for a stdout line containing all of `needles`; panics on time-out or EOF.
    pub fn wait_for_line_matching(&mut self, needles: &[&str], timeout: Duration) -> String {
        let t = Instant::now();
        loop {
            let left = timeout.saturating_sub(t.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if needles.iter().all(|n| l.contains(n)) {
                        return l;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line containing {needles:?} ({e:?}) after {:?}; stdout so far: {:?}",
                        t.elapsed(),
                        self.seen
                    );
                }
            }
        }
    }

    /// Wait until `done` holds for all stdout lines read so far (in any order); panics with
    /// `what` and the lines on time-out or EOF. Returns the lines.
    pub fn wait_for_lines(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> &[String] {
        let t = Instant::now();
        while !done(&self.seen) {
            let left = timeout.saturating_sub(t.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(e) => {
                    let _ = self.child.kill();
                    panic!(
                        "{what}: not seen ({e:?}) after {:?}; stdout so far:\n{}",
                        t.elapsed(),
                        self.seen.join("\n")
                    );
                }
            }
        }
        &self.seen
    }

    /// Wait for the process to exit (killing it after `timeout`); returns all output.
    pub fn finish(mut self, timeout: Duration) -> RunResult {
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                break self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Drain remaining lines (the reader thread ends at EOF).
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(l);
        }
        RunResult {
            stdout: self.seen.join("\n"),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap_or_default()).into_owned(),
            code: status.code(),
        }
    }

    /// Kill the process now (SIGTERM to `ctr`) and collect the output.
    pub fn stop(self) -> RunResult {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.finish(Duration::from_secs(5))
    }
}

/// All processes: (pid, cmdline with NULs as spaces).
pub fn processes() -> Vec<(i32, String)> {
    let mut v = Vec::new();
    for name in read_dir_names(Path::new("/proc")) {
        if let Ok(pid) = name.parse::<i32>() {
            let c = cmdline(pid);
            if !c.is_empty() {
                v.push((pid, c));
            }
        }
    }
    v
}

/// A process's cmdline (NUL-separated args joined by spaces), "" if gone.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// One field of /proc/<pid>/status (e.g. "State"), trimmed.
pub fn proc_status_field(pid: i32, field: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|r| r.trim().to_string())
    })
}

/// Parent pid of a process.
pub fn ppid(pid: i32) -> Option<i32> {
    proc_status_field(pid, "PPid").and_then(|s| s.parse().ok())
}

/// Direct children of `pid` (by scanning /proc/*/status PPid).
pub fn children(pid: i32) -> Vec<i32> {
    read_dir_names(Path::new("/proc"))
        .into_iter()
        .filter_map(|n| n.parse::<i32>().ok())
        .filter(|p| ppid(*p) == Some(pid))
        .collect()
}

/// Snapshot of /proc/self/mountinfo lines.
pub fn mountinfo() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Lines of mountinfo that are new compared to `before`.
pub fn new_mounts(before: &[String]) -> Vec<String> {
    mountinfo()
        .into_iter()
        .filter(|l| !before.contains(l))
        .collect()
}

/// Host mountinfo lines whose mount point or source mentions `needle` (e.g. a container id).
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    mountinfo()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

/// Cgroup v1 controller mount points and the cgroup2 mount point(s) of this host.
pub fn cgroup_roots() -> Vec<PathBuf> {
    mountinfo()
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let fstype = f.get(dash + 1)?;
            (*fstype == "cgroup" || *fstype == "cgroup2").then(|| PathBuf::from(f[4]))
        })
        .collect()
}

/// Existing cgroup dirs named `<id>` under `<ns>` (ctr's default `cgroupsPath` `/<ns>/<id>`) or
/// anywhere one level deeper (other cgroup paths), in every hierarchy.
pub fn cgroup_dirs(ns: &str, id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for root in cgroup_roots() {
        let p = root.join(ns).join(id);
        if p.is_dir() {
            v.push(p);
        }
        let p = root.join(id);
        if p.is_dir() {
            v.push(p);
        }
    }
    v
}

/// The cgroup dir of container `id` for a v1 controller (`memory`, `pids`, ...).
pub fn cgroup_v1_dir(controller: &str, id: &str) -> PathBuf {
    // On a pure cgroup v2 host there is no per-controller hierarchy: the unified one.
    let unified = PathBuf::from("/sys/fs/cgroup");
    let root = if unified.join("cgroup.controllers").exists() {
        unified
    } else {
        cgroup_roots()
            .into_iter()
            .find(|r| r.file_name().and_then(|n| n.to_str()) == Some(controller))
            .unwrap_or_else(|| unified.join(controller))
    };
    root.join(NAMESPACE).join(id)
}

/// Pids listed in a cgroup dir's `cgroup.procs`.
pub fn cgroup_procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

pub(crate) fn read_dir_names(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Parse a `/proc/<pid>/status` capability mask line value (hex) into a u64.
pub fn parse_cap_mask(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("cap mask {hex:?}: {e}"))
}

/// Capability number by name (`CAP_CHOWN` → 0 …), for the names tests use.
pub fn cap_number(name: &str) -> u32 {
    tent_audit::caps::NAMES
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// Bit mask of a list of capability names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| m | (1u64 << cap_number(n)))
}

/// The 14 default capabilities containerd puts in a spec.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Builder for a full OCI runtime spec for `ctr run --config` (root = a fresh rootfs copy,
/// cgroupsPath `/default/<id>`, the standard mounts, pid/ipc/uts/mount/network namespaces).
pub struct Spec;

impl Spec {
    pub fn base(c: &Containerd, id: &str, args: &[&str]) -> Value {
        let rootfs = c.rootfs_for(id);
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": { "uid": 0, "gid": 0 },
                "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "cwd": "/",
                "capabilities": {
                    "bounding": DEFAULT_CAPS,
                    "effective": DEFAULT_CAPS,
                    "permitted": DEFAULT_CAPS
                },
                "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
                "noNewPrivileges": true
            },
            "root": { "path": rootfs.display().to_string(), "readonly": false },
            "hostname": "tent-spec",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
                { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
                { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
                { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
                { "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }
            ],
            "linux": {
                "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
                "cgroupsPath": format!("/{NAMESPACE}/{id}"),
                "namespaces": [
                    { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
                    { "type": "mount" }, { "type": "network" }
                ],
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        })
    }
}

/// Parse `Key:\tvalue` lines (as printed by `tent-testbin status`) into a map.
pub fn parse_status(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// One line of `ctr events`: `<date> <time> <zone> UTC <namespace> <topic> <json>`.
#[derive(Debug, Clone)]
pub struct Event {
    pub namespace: String,
    pub topic: String,
    pub body: Value,
}

impl Event {
    /// Parses a `ctr events` line; `None` for anything else.
    pub fn parse(line: &str) -> Option<Event> {
        let j = line.find('{')?;
        let words: Vec<&str> = line[..j].split_whitespace().collect();
        let topic = words.iter().position(|w| w.starts_with('/'))?;
        Some(Event {
            namespace: words.get(topic.checked_sub(1)?)?.to_string(),
            topic: words[topic].to_string(),
            body: serde_json::from_str(&line[j..]).ok()?,
        })
    }

    /// A field by any of the spellings containerd versions print (`container_id`,
    /// `containerID`, …); `Null` if absent.
    pub fn field(&self, keys: &[&str]) -> Value {
        keys.iter()
            .find_map(|k| self.body.get(*k).cloned())
            .unwrap_or(Value::Null)
    }

    pub fn container_id(&self) -> String {
        let v = self.field(&["container_id", "containerID", "containerId"]);
        v.as_str().unwrap_or_default().to_string()
    }

    /// `/tasks/exit` of a container's init (its `id` is the container id; an exec's is the
    /// exec id), with its exit status.
    pub fn init_exit(&self) -> Option<(String, u32)> {
        let id = self.container_id();
        if self.topic != "/tasks/exit" || self.field(&["id"]) != id.as_str() {
            return None;
        }
        // A zero status is left out of the JSON.
        let status = self
            .field(&["exit_status", "exitStatus"])
            .as_u64()
            .unwrap_or(0);
        Some((id, status as u32))
    }
}

/// The init exits in `ctr events` lines: container id → every exit status reported.
pub fn init_exits(lines: &[String]) -> std::collections::HashMap<String, Vec<u32>> {
    let mut m: std::collections::HashMap<String, Vec<u32>> = Default::default();
    for (id, status) in lines
        .iter()
        .filter_map(|l| Event::parse(l))
        .filter_map(|e| e.init_exit())
    {
        m.entry(id).or_default().push(status);
    }
    m
}

/// The host side of a hostile-input run is untouched: nothing was written into `canary` (a
/// host dir the cases aim at; removed here) and containerd's log at `log` shows no panic.
pub fn assert_canary_untouched_and_no_panic(canary: &Path, log: &Path) {
    let entries: Vec<String> = std::fs::read_dir(canary)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir(canary);
    assert!(
        entries.is_empty(),
        "the host canary dir was written: {entries:?}"
    );
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "the shim panicked: {panics:#?}");
}

/// The hostile input corpus's case files (`integration/corpus/hostile/*.json`), sorted.
pub fn hostile_corpus_files() -> Vec<PathBuf> {
    let dir = repo_root().join("integration/corpus/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}
