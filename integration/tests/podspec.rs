//! What pods put in the spec beyond a plain container, through a real containerd
//! (`ctr run --config`): OCI hooks at their moments (poststop at the shim's Delete),
//! refused by tent's profile unless its config allows them; `Bidirectional` and
//! `HostToContainer` volumes (`rootfsPropagation: rshared`, `rshared`/`rslave` binds).
//! The runtime suite `runtime/tests/pods.rs` covers the same ground below containerd.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tent_integration::*;

fn compat() -> RunOpts {
    let path = repo_root().join("config/tent-compat.toml");
    RunOpts::default().flag(format!("--runtime-config-path={}", path.display()))
}

/// tent's profile with `allow.hooks` (runc: its defaults).
fn hooks_allowed(c: &Containerd) -> RunOpts {
    if is_runc() {
        return RunOpts::default();
    }
    let path = c.dir().join("tent-hooks.toml");
    std::fs::write(&path, "mode = \"tent\"\n[allow]\nhooks = true\n").expect("write config");
    RunOpts::default().flag(format!("--runtime-config-path={}", path.display()))
}

fn recording_hook(dir: &str, kind: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c",
                 format!("echo \"$0 $(readlink /proc/self/ns/mnt)\" >> {dir}/log; cat > {dir}/$0.json"),
                 kind]
    })
}

fn bind(spec: &mut Value, source: &Path, dest: &str, options: &[&str]) {
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(json!({"destination": dest, "type": "bind",
                      "source": source.display().to_string(), "options": options}));
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hooks_run_once_at_their_moments() {
    let c = Containerd::shared();
    let id = unique_id("hooks");
    let out = c.dir().join(format!("hookout-{id}"));
    std::fs::create_dir_all(&out).expect("mkdir");
    let host = out.display().to_string();
    let mut spec = Spec::base(
        c,
        &id,
        &[
            "sh",
            "-c",
            "echo \"workload $(readlink /proc/self/ns/mnt)\" >> /hookout/log",
        ],
    );
    bind(&mut spec, &out, "/hookout", &["rbind", "rw"]);
    spec["annotations"] = json!({"tent.test/hook": "yes"});
    spec["hooks"] = json!({
        "prestart": [recording_hook(&host, "prestart")],
        "createRuntime": [recording_hook(&host, "createRuntime")],
        "createContainer": [recording_hook(&host, "createContainer")],
        "startContainer": [recording_hook("/hookout", "startContainer")],
        "poststart": [recording_hook(&host, "poststart")],
        "poststop": [recording_hook(&host, "poststop")]
    });
    let r = c.run_spec(&id, &spec, &hooks_allowed(c));
    r.assert_ok();
    c.assert_no_leftovers(&id);
    let me = std::fs::read_link("/proc/self/ns/mnt")
        .expect("own mnt ns")
        .display()
        .to_string();
    let log = lines(&out.join("log"));
    assert_eq!(log.len(), 7, "{log:#?}");
    let field = |i: usize, kind: &str| -> String {
        let (k, ns) = log[i].split_once(' ').unwrap_or_default();
        assert_eq!(k, kind, "{log:#?}");
        ns.to_string()
    };
    assert_eq!(field(0, "prestart"), me);
    assert_eq!(field(1, "createRuntime"), me);
    let theirs = field(2, "createContainer");
    assert_ne!(
        theirs, me,
        "createContainer runs in the container's mount namespace"
    );
    // The OCI spec puts poststart after the process was executed; runc 1.1 runs it
    // while its init is still in the startContainer hooks, tent strictly after.
    let mut middle = log[3..6].to_vec();
    if !is_runc() {
        assert_eq!(field(3, "startContainer"), theirs);
    }
    middle.sort();
    assert_eq!(
        middle,
        vec![
            format!("poststart {me}"),
            format!("startContainer {theirs}"),
            format!("workload {theirs}")
        ]
    );
    assert_eq!(field(6, "poststop"), me, "poststop runs at delete, last");
    let mut pid = None;
    for (kind, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
    ] {
        let text = std::fs::read_to_string(out.join(format!("{kind}.json"))).unwrap_or_default();
        let state: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: {text:?}: {e}"));
        assert_eq!(state["id"], id.as_str(), "{kind}");
        // runc 1.1 reports poststart while its init has not exec'd yet: "created".
        if !(is_runc() && kind == "poststart" && state["status"] == "created") {
            assert_eq!(state["status"], status, "{kind}");
        }
        assert_eq!(state["annotations"]["tent.test/hook"], "yes", "{kind}");
        assert_eq!(
            PathBuf::from(state["bundle"].as_str().unwrap_or_default()),
            c.bundle_dir(&id),
            "{kind}"
        );
        // The runtime-side hooks see the init's host pid, all the same one.
        if ["prestart", "createRuntime", "poststart"].contains(&kind) {
            let p = state["pid"].as_i64().unwrap_or_default();
            assert!(p > 1, "{kind}: {state}");
            assert_eq!(*pid.get_or_insert(p), p, "{kind}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn tent_refuses_hooks_unless_its_config_allows_them() {
    if is_runc() {
        return;
    }
    let c = Containerd::shared();
    let id = unique_id("hooks-refused");
    let out = c.dir().join(format!("hookout-{id}"));
    std::fs::create_dir_all(&out).expect("mkdir");
    let mut spec = Spec::base(c, &id, &["true"]);
    spec["hooks"] =
        json!({"createRuntime": [recording_hook(&out.display().to_string(), "createRuntime")]});
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    assert_ne!(r.code, Some(0), "{r:?}");
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("hooks: tent's profile refuses OCI hooks") && text.contains("allow.hooks"),
        "{text}"
    );
    assert!(lines(&out.join("log")).is_empty(), "a refused hook ran");
    c.force_remove(&id);
    c.assert_no_leftovers(&id);
    let _ = std::fs::remove_dir_all(&out);
}

/// A tmpfs with shared propagation, like a kubelet volume on a shared mount.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(c: &Containerd, name: &str) -> SharedDir {
        let dir = c.dir().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let sh = |args: &[&str]| {
            let st = std::process::Command::new("mount")
                .args(args)
                .status()
                .expect("mount");
            assert!(st.success(), "mount {args:?}");
        };
        let d = dir.display().to_string();
        sh(&["-t", "tmpfs", "-o", "size=1m", "tmpfs", &d]);
        sh(&["--make-shared", &d]);
        SharedDir(dir)
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mounted(path: &Path) -> bool {
    let p = path.display().to_string();
    mountinfo()
        .iter()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

#[test]
fn bidirectional_and_host_to_container_volumes() {
    let c = Containerd::shared();
    let id = unique_id("propagation");
    // Named apart from the id: these are the host's, not the container's leftovers.
    let bi = SharedDir::new(c, &unique_id("vol-bi"));
    let h2c = SharedDir::new(c, &unique_id("vol-h2c"));
    let mut spec = Spec::base(
        c,
        &id,
        &[
            "sh",
            "-c",
            "mkdir -p /bi/inner && mount -t tmpfs tmpfs /bi/inner && echo in > /bi/inner/f; \
             i=0; while [ ! -e /h2c/inner/f ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
             cat /h2c/inner/f || echo missing; \
             mkdir -p /h2c/back && mount -t tmpfs tmpfs /h2c/back && echo mounted",
        ],
    );
    spec["linux"]["rootfsPropagation"] = "rshared".into();
    bind(&mut spec, &bi.0, "/bi", &["rbind", "rshared"]);
    bind(&mut spec, &h2c.0, "/h2c", &["rbind", "rslave"]);
    for set in ["bounding", "effective", "permitted"] {
        if let Some(caps) = spec["process"]["capabilities"][set].as_array_mut() {
            caps.push(json!("CAP_SYS_ADMIN"));
        }
    }
    let inner = h2c.0.join("inner");
    let host_side = {
        let inner = inner.clone();
        let bi_file = bi.0.join("inner/f");
        std::thread::spawn(move || {
            // Once the container has mounted into the Bidirectional volume, mount
            // into the HostToContainer one.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !bi_file.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::fs::create_dir_all(&inner).expect("mkdir");
            let st = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(&inner)
                .status()
                .expect("mount");
            assert!(st.success());
            std::fs::write(inner.join("f"), "from-host\n").expect("write");
        })
    };
    let r = c.run_spec(&id, &spec, &compat());
    host_side.join().expect("host side");
    r.assert_ok();
    assert_eq!(r.stdout, "from-host\nmounted\n", "{r:?}");
    assert!(
        mounted(&bi.0.join("inner")),
        "the container's mount in the Bidirectional volume is on the host"
    );
    assert_eq!(
        std::fs::read_to_string(bi.0.join("inner/f"))
            .ok()
            .as_deref(),
        Some("in\n")
    );
    assert!(
        !mounted(&h2c.0.join("back")),
        "a mount in the HostToContainer volume leaked to the host"
    );
    c.assert_no_leftovers(&id);
}
