//! Shared harness of the root-level tests: a busybox bundle with a runc-like
//! default spec, checks that nothing was left behind, and the `main` of the
//! suites whose test binary is also the container init (`harness = false`),
//! which prints libtest's summary line so `hack/test.sh` counts their tests.

#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tent_runtime::{Container, CreateRequest, InitExe, Profile, RootfsMount, Stdio};

/// A CLOEXEC pipe (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

/// Reaps every child until `pid` exited; its wait status. (A pid namespace's
/// init cannot finish exiting while zombies of failed execs, our children,
/// are left in it.)
pub fn wait_for(pid: i32) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(s) if s.pid() == Some(Pid::from_raw(pid)) => return s,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => panic!("waitpid: {e}"),
        }
    }
}

/// Reaps leftover zombies (exec stage 1s) without waiting.
pub fn reap_zombies() {
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Everything readable from `fd` until EOF, as text.
pub fn read_all(fd: OwnedFd) -> String {
    use std::io::Read;
    let mut s = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut s);
    s
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A bundle under /tmp with a busybox-static rootfs; removed on drop.
pub struct Bundle {
    pub dir: PathBuf,
    pub id: String,
}

impl Bundle {
    pub fn new(name: &str) -> Bundle {
        let id = format!("tent-test-{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("create bundle");
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("copy busybox (apt-get install busybox-static)");
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
            }
        }
        for d in ["proc", "sys", "dev", "etc", "tmp", "home/user"] {
            std::fs::create_dir_all(dir.join("rootfs").join(d)).expect("mkdir");
        }
        std::fs::write(
            dir.join("rootfs/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
        )
        .expect("passwd");
        let b = Bundle { dir, id };
        b.write_config(&default_spec(&["true"]));
        b
    }

    /// `Container::create` of this bundle.
    pub fn create(
        &self,
        exe: &InitExe,
        mounts: &[RootfsMount],
        stdio: Stdio,
        profile: &Profile,
    ) -> tent_runtime::Result<Container> {
        Container::create(CreateRequest {
            id: &self.id,
            bundle: &self.dir,
            rootfs_mounts: mounts,
            stdio,
            init_exe: exe,
            profile,
        })
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn write_config(&self, spec: &Value) {
        std::fs::write(self.dir.join("config.json"), spec.to_string()).expect("write config");
    }

    pub fn write_raw_config(&self, text: &str) {
        std::fs::write(self.dir.join("config.json"), text).expect("write config");
    }

    /// Nothing of the container is left: mounts, cgroup dirs, state file.
    pub fn assert_clean(&self) {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.to_string_lossy();
        let left: Vec<&str> = info.lines().filter(|l| l.contains(dir.as_ref())).collect();
        assert!(left.is_empty(), "mounts left behind: {left:#?}");
        for cg in cgroup_dirs(&format!("tent/{}", self.id)) {
            assert!(!cg.exists(), "cgroup left behind: {}", cg.display());
        }
        assert!(
            !self.dir.join("tent-state.json").exists(),
            "tent-state.json left behind"
        );
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `<hierarchy>/<rel>` for every mounted cgroup hierarchy.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.join(rel)];
    }
    std::fs::read_dir(base)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(rel))
                .filter(|p| !p.starts_with("/sys/fs/cgroup/unified"))
                .collect()
        })
        .unwrap_or_default()
}

const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// A runc-`spec`-like default config running `args`.
pub fn default_spec(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "tent",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// One test of an own-harness suite.
pub type TestFn = fn(&tent_runtime::InitExe);

/// Why a test could not run here; reported as ignored, never as passed.
struct Skipped(String);

/// Ends the current test as skipped (it is counted as ignored) with `reason`.
pub fn skip(reason: &str) -> ! {
    std::panic::resume_unwind(Box::new(Skipped(reason.to_string())))
}

/// Runs `tests` (filtered by the first argument, as libtest does), each
/// isolated by `catch_unwind`, and ends with libtest's `test result:` line;
/// exits non-zero when one failed. Call after the init-invocation check.
pub fn run_suite(suite: &str, tests: &[(&str, TestFn)]) {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let selected: Vec<&(&str, TestFn)> = tests
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    let filtered = tests.len() - selected.len();
    if !is_root() {
        eprintln!("{suite} tests skipped: need root");
        println!(
            "test result: ok. 0 passed; 0 failed; {} ignored; 0 measured; {filtered} filtered out",
            selected.len()
        );
        return;
    }
    tent_runtime::set_child_subreaper().expect("subreaper");
    let exe = tent_runtime::InitExe::seal_current().expect("seal");
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut skipped = 0;
    println!("\nrunning {} tests ({suite})", selected.len());
    for (name, f) in &selected {
        {
            use std::io::Write;
            print!("test {name} ... ");
            let _ = std::io::stdout().flush();
        }
        match std::panic::catch_unwind(|| f(&exe)) {
            Ok(()) => println!("ok"),
            Err(payload) => match payload.downcast_ref::<Skipped>() {
                Some(Skipped(why)) => {
                    println!("ignored ({why})");
                    skipped += 1;
                }
                None => {
                    println!("FAILED");
                    failed.push(*name);
                }
            },
        }
    }
    let passed = selected.len() - failed.len() - skipped;
    let status = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {status}. {passed} passed; {} failed; {skipped} ignored; 0 measured; {filtered} filtered out; finished in {:.2}s\n",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
