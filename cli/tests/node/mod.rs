//! A private containerd (`hack/containerd.sh up $TENT_CONTAINERD_VERSION`) that the tests may
//! reconfigure and restart, and `tent doctor`/`install`/`uninstall` run against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use toml_edit::DocumentMut;

pub const CRI_V2: &str = "io.containerd.grpc.v1.cri";
pub const CRI_V3: &str = "io.containerd.cri.v1.runtime";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn version() -> String {
    std::env::var("TENT_CONTAINERD_VERSION").unwrap_or_else(|_| "1.6".into())
}

pub fn shim() -> PathBuf {
    repo().join("target/x86_64-unknown-linux-gnu/release/containerd-shim-tent-v1")
}

pub struct Daemon {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub version: String,
}

pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Daemon {
    /// A daemon, or `None` (with SKIP) without root, the shim or the test image.
    pub fn up(name: &str) -> Option<Daemon> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || !shim().exists() || !repo().join(".cache/images/tent-test.tar").exists() {
            eprintln!(
                "SKIP: needs root, {} (hack/build-shim.sh) and .cache/images/tent-test.tar",
                shim().display()
            );
            return None;
        }
        let parent = std::env::var("TENT_IT_ROOT").unwrap_or_else(|_| "/tmp".into());
        let dir = PathBuf::from(parent).join(format!("tent-{name}-{}", std::process::id()));
        let version = version();
        let out = Command::new("bash")
            .arg(repo().join("hack/containerd.sh"))
            .args(["up", &version])
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run hack/containerd.sh");
        let env = std::fs::read_to_string(dir.join("env")).unwrap_or_default();
        let d = Daemon {
            bin: env
                .lines()
                .find_map(|l| l.strip_prefix("export TENT_CONTAINERD_BIN="))
                .map(PathBuf::from)
                .unwrap_or_default(),
            dir,
            version,
        };
        assert!(
            out.status.success(),
            "hack/containerd.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(d.dir.join("restart.sh"), d.restart_script()).expect("write restart.sh");
        Some(d)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    pub fn v3(&self) -> bool {
        self.version.starts_with('2')
    }

    pub fn plugin(&self) -> &'static str {
        if self.v3() {
            CRI_V3
        } else {
            CRI_V2
        }
    }

    pub fn ignored_plugin(&self) -> &'static str {
        if self.v3() {
            CRI_V2
        } else {
            CRI_V3
        }
    }

    /// Stop the daemon, start it again on its config (what `systemctl restart` does).
    fn restart_script(&self) -> String {
        let d = self.dir.display();
        let b = self.bin.display();
        let shimdir = shim()
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            r#"set -e
pid=$(cat {d}/containerd.pid)
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -lt 300 ] || kill -KILL "$pid"; sleep 0.1; done
PATH={shimdir}:{b}:/usr/sbin:/usr/bin:/sbin:/bin setsid {b}/containerd --config {d}/config.toml </dev/null >>{d}/containerd.log 2>&1 &
echo $! >{d}/containerd.pid
i=0
until {b}/ctr --address {d}/containerd.sock version >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 300 ] || {{ echo "containerd did not come back" >&2; tail -n 20 {d}/containerd.log >&2; exit 1; }}
  sleep 0.1
done
"#
        )
    }

    pub fn restart_arg(&self) -> String {
        format!("cmd:sh {}/restart.sh", self.dir.display())
    }

    pub fn restart(&self) {
        let o = Command::new("sh")
            .arg(self.dir.join("restart.sh"))
            .output()
            .expect("sh restart.sh");
        assert!(
            o.status.success(),
            "restart: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The config parsed.
    pub fn doc(&self, path: &Path) -> DocumentMut {
        std::fs::read_to_string(path)
            .expect("read config")
            .parse()
            .expect("parse config")
    }

    /// The config without the tent handlers hack/containerd.sh writes.
    pub fn strip_tent(&self) {
        let mut d = self.doc(&self.config());
        let rt = d["plugins"][self.plugin()]["containerd"]["runtimes"]
            .as_table_mut()
            .expect("runtimes table");
        for h in [
            "tent",
            "tent-compat",
            "tent-budget",
            "tent-budget-warn",
            "tent-pauseless",
        ] {
            rt.remove(h);
        }
        std::fs::write(self.config(), d.to_string()).expect("write config");
    }

    /// `tent <args>` with this daemon's config, socket and containerd; no cluster.
    pub fn tent(&self, args: &[&str]) -> Out {
        self.tent_with(args, &self.config())
    }

    pub fn tent_with(&self, args: &[&str], config: &Path) -> Out {
        // Bounded by timeout(1): a hung CRI call fails the test with the output so far.
        let mut c = Command::new("timeout");
        c.args(["-k", "10", "300"])
            .arg(env!("CARGO_BIN_EXE_tent"))
            .args(args)
            .arg("--config")
            .arg(config)
            .arg("--address")
            .arg(self.socket())
            .arg("--containerd")
            .arg(self.bin.join("containerd"))
            .args(["--kubelet-config", "/nonexistent/kubelet.yaml"])
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("NODE_NAME")
            .stdin(Stdio::null());
        let o = c.output().expect("run tent");
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("hack/containerd.sh"))
            .arg("down")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}
