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
