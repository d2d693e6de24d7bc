//! Shared helpers for the root-level tests: a busybox bundle with a runc-like
//! default spec, and checks that nothing was left behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

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
