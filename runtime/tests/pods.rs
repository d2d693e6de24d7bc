//! What Kubernetes pods ask of the runtime beyond a plain container:
//! mount propagation (`mountPropagation: HostToContainer` / `Bidirectional`,
//! `linux.rootfsPropagation`), OCI hooks, the read-only `/sys/fs/cgroup`
//! view, and `procMount` (masked and read-only paths exactly as the spec
//! says). Real namespaces, mounts and processes; this test binary is also the
//! container init, so it has its own `main`. Needs root.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{default_spec, pipe, read_all, reap_zombies, wait_for, Bundle, TestFn};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::WaitStatus;
use serde_json::{json, Value};
use tent_runtime::{cleanup_bundle, Allow, Container, ErrorKind, InitExe, Mode, Profile, Stdio};

const NONE: Option<&str> = None;

fn compat() -> Profile {
    Profile {
        mode: Mode::Compat,
        ..Profile::default()
    }
}

/// A tmpfs with shared propagation outside every bundle (like a kubelet
/// volume directory on a shared host mount); detached on drop.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(name: &str) -> SharedDir {
        let dir = std::env::temp_dir().join(format!("tent-test-vol-{name}-{}", std::process::id()));
        let _ = umount2(&dir, MntFlags::MNT_DETACH);
        std::fs::create_dir_all(&dir).expect("mkdir volume");
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("tmpfs");
        mount(NONE, &dir, NONE, MsFlags::MS_SHARED, NONE).expect("make-shared");
        SharedDir(dir)
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        for m in host_mounts_under(&self.0).iter().rev() {
            let _ = umount2(m.as_str(), MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mount points in the host's (our) mount table at or below `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

fn volume(spec: &mut Value, source: &Path, dest: &str, options: &[&str]) {
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(json!({"destination": dest, "type": "bind",
                      "source": source.to_string_lossy(), "options": options}));
    }
}

fn add_cap(spec: &mut Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        if let Some(a) = spec["process"]["capabilities"][set].as_array_mut() {
            a.push(cap.into());
        }
    }
}

fn stdout_to(w: std::os::fd::OwnedFd) -> Stdio {
    Stdio {
        stdin: None,
        stdout: Some(w),
        stderr: None,
    }
}

/// Creates, starts, waits; (exit code, stdout).
fn run(b: &Bundle, exe: &InitExe, profile: &Profile) -> (i32, String, Container) {
    let (r, w) = pipe();
    let mut c = b
        .create(exe, &[], stdout_to(w), profile)
        .unwrap_or_else(|e| panic!("create {}: {e}", b.id));
    c.start().expect("start");
    let code = match wait_for(c.pid()) {
        WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected {other:?}"),
    };
    (code, read_all(r), c)
}

/// `Bidirectional`: an `rshared` volume with `rootfsPropagation: rshared` (what
/// containerd's CRI writes): the pivot works, a mount made inside shows up on
/// the host at the volume's source, and nothing else of the container does.
fn bidirectional_volume(exe: &InitExe) {
    let vol = SharedDir::new("bidir");
    let b = Bundle::new("bidir");
    let mut spec = default_spec(&[
        "sh",
        "-c",
        "mkdir -p /vol/inner && mount -t tmpfs -o size=1m tmpfs /vol/inner \
         && echo from-container > /vol/inner/f && echo done",
    ]);
    spec["linux"]["rootfsPropagation"] = "rshared".into();
    volume(&mut spec, &vol.0, "/vol", &["rbind", "rshared"]);
    add_cap(&mut spec, "CAP_SYS_ADMIN");
    b.write_config(&spec);
    let (code, out, c) = run(&b, exe, &compat());
    assert_eq!((code, out.as_str()), (0, "done\n"));
    let inner = vol.0.join("inner");
    assert_eq!(
        host_mounts_under(&vol.0),
        vec![
            vol.0.to_string_lossy().into_owned(),
            inner.to_string_lossy().into_owned()
        ],
        "the container's mount in the volume reaches the host, and only it"
    );
    assert_eq!(
        std::fs::read_to_string(inner.join("f")).ok().as_deref(),
        Some("from-container\n")
    );
    umount2(&inner, MntFlags::MNT_DETACH).expect("unmount the propagated mount");
    c.destroy().expect("destroy");
    b.assert_clean();
    assert_eq!(
        host_mounts_under(&vol.0).len(),
        1,
        "only the volume is left"
    );
}

/// `HostToContainer`: an `rslave` volume under the default root propagation:
/// a host mount made after start is seen inside; one made inside stays inside.
fn host_to_container_volume(exe: &InitExe) {
    let vol = SharedDir::new("h2c");
    let b = Bundle::new("h2c");
    let mut spec = default_spec(&[
        "sh",
        "-c",
        "i=0; while [ ! -e /vol/inner/f ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
         cat /vol/inner/f || echo missing; \
         mkdir -p /vol/back && mount -t tmpfs tmpfs /vol/back && echo mounted",
    ]);
    volume(&mut spec, &vol.0, "/vol", &["rbind", "rslave"]);
    add_cap(&mut spec, "CAP_SYS_ADMIN");
    b.write_config(&spec);
    let (r, w) = pipe();
    let mut c = b.create(exe, &[], stdout_to(w), &compat()).expect("create");
    c.start().expect("start");
    let inner = vol.0.join("inner");
    std::fs::create_dir_all(&inner).expect("mkdir");
    mount(
        Some("tmpfs"),
        &inner,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount");
    std::fs::write(inner.join("f"), "from-host\n").expect("write");
    assert!(matches!(wait_for(c.pid()), WaitStatus::Exited(_, 0)));
    assert_eq!(read_all(r), "from-host\nmounted\n");
    assert!(
        !host_mounts_under(&vol.0)
            .iter()
            .any(|m| m.ends_with("/back")),
        "a mount made in an rslave volume leaked to the host: {:?}",
        host_mounts_under(&vol.0)
    );
    umount2(&inner, MntFlags::MNT_DETACH).expect("unmount");
    c.destroy().expect("destroy");
    b.assert_clean();
}

/// No propagation asked (`rprivate` volume, no rootfsPropagation): mounts the
/// container makes, in the volume and elsewhere, never reach the host, while
/// it runs or after delete.
fn default_propagation_leaks_nothing(exe: &InitExe) {
    let vol = SharedDir::new("private");
    let b = Bundle::new("private");
    let mut spec = default_spec(&[
        "sh",
        "-c",
        "mkdir -p /vol/x && mount -t tmpfs tmpfs /vol/x && mount -t tmpfs tmpfs /tmp \
         && echo ok && sleep 100",
    ]);
    volume(&mut spec, &vol.0, "/vol", &["rbind", "rprivate"]);
    add_cap(&mut spec, "CAP_SYS_ADMIN");
    b.write_config(&spec);
    let before = host_mounts_under(Path::new("/"));
    let (r, w) = pipe();
    let mut c = b.create(exe, &[], stdout_to(w), &compat()).expect("create");
    c.start().expect("start");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(std::fs::File::from(r));
    reader.read_line(&mut line).expect("read");
    assert_eq!(line, "ok\n");
    assert_eq!(
        host_mounts_under(&vol.0).len(),
        1,
        "{:?}",
        host_mounts_under(&vol.0)
    );
    let dir = b.dir.to_string_lossy().into_owned();
    let new: Vec<String> = host_mounts_under(Path::new("/"))
        .into_iter()
        .filter(|m| !before.contains(m) && (m.starts_with(&dir) || m.contains("tent-test")))
        .collect();
    assert!(new.is_empty(), "container mounts on the host: {new:?}");
    c.kill(libc::SIGKILL, true).expect("kill");
    wait_for(c.pid());
    c.destroy().expect("destroy");
    b.assert_clean();
    assert_eq!(host_mounts_under(&vol.0).len(), 1);
}

/// An unknown rootfsPropagation is refused at create, naming the field.
fn bad_rootfs_propagation(exe: &InitExe) {
    let b = Bundle::new("badprop");
    let mut spec = default_spec(&["true"]);
    spec["linux"]["rootfsPropagation"] = "sideways".into();
    b.write_config(&spec);
    let e = b
        .create(exe, &[], Stdio::default(), &compat())
        .expect_err("bad propagation");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        e.to_string(),
        "linux.rootfsPropagation: unknown propagation \"sideways\""
    );
    b.assert_clean();
}

fn hooks_allowed() -> Profile {
    Profile {
        mode: Mode::Tent,
        allow: Allow {
            hooks: true,
            ..Allow::default()
        },
        ..Profile::default()
    }
}

/// A hook that logs `<kind> <mount ns> $HOOKVAR` to `<dir>/log` and saves its
/// stdin (the state) as `<dir>/<kind>.json`.
fn recording_hook(dir: &str, kind: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c",
                 format!("echo \"$0 $(readlink /proc/self/ns/mnt) $HOOKVAR\" >> {dir}/log; cat > {dir}/$0.json"),
                 kind],
        "env": ["HOOKVAR=v"]
    })
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn mnt_ns(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every hook kind runs exactly once, at its moment, in its namespace, with
/// the state (status, pid) on stdin; a failing poststart is only logged.
fn hooks_run_once_in_order_and_namespace(exe: &InitExe) {
    let b = Bundle::new("hooks");
    let out = b.dir.join("hookout");
    std::fs::create_dir_all(&out).expect("mkdir");
    let host = out.to_string_lossy().into_owned();
    let mut spec = default_spec(&[
        "sh",
        "-c",
        "echo \"workload $(readlink /proc/self/ns/mnt)\" >> /hookout/log",
    ]);
    volume(&mut spec, &out, "/hookout", &["rbind", "rw"]);
    spec["annotations"] = json!({"tent.test/hook": "yes"});
    spec["hooks"] = json!({
        "prestart": [recording_hook(&host, "prestart")],
        "createRuntime": [recording_hook(&host, "createRuntime")],
        "createContainer": [recording_hook(&host, "createContainer")],
        // Resolved and run in the container, after pivot_root.
        "startContainer": [recording_hook("/hookout", "startContainer")],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]},
                      recording_hook(&host, "poststart")],
        "poststop": [recording_hook(&host, "poststop")]
    });
    b.write_config(&spec);
    let me = mnt_ns("self");
    let mut c = b
        .create(exe, &[], Stdio::default(), &hooks_allowed())
        .unwrap_or_else(|e| panic!("create: {e}"));
    let pid = c.pid();
    let theirs = mnt_ns(&pid.to_string());
    assert_ne!(me, theirs);
    assert_eq!(
        log_lines(&out),
        vec![
            format!("prestart {me} v"),
            format!("createRuntime {me} v"),
            format!("createContainer {theirs} v"),
        ],
        "after create"
    );
    c.start()
        .expect("start (a failing poststart hook is only logged)");
    assert!(matches!(wait_for(c.pid()), WaitStatus::Exited(_, 0)));
    let mut lines = log_lines(&out);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(lines[3], format!("startContainer {theirs} v"));
    lines[4..].sort();
    assert_eq!(
        lines[4..],
        [format!("poststart {me} v"), format!("workload {theirs}")]
    );
    c.destroy().expect("destroy");
    let lines = log_lines(&out);
    assert_eq!(lines.len(), 7, "{lines:#?}");
    assert_eq!(lines[6], format!("poststop {me} v"));
    for (kind, status, has_pid) in [
        ("prestart", "creating", true),
        ("createRuntime", "creating", true),
        ("createContainer", "creating", true),
        ("startContainer", "created", true),
        ("poststart", "running", true),
        ("poststop", "stopped", false),
    ] {
        let text = std::fs::read_to_string(out.join(format!("{kind}.json"))).unwrap_or_default();
        let state: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: state {text:?}: {e}"));
        assert_eq!(state["ociVersion"], "1.0.2", "{kind}");
        assert_eq!(state["id"], b.id.as_str(), "{kind}");
        assert_eq!(state["status"], status, "{kind}");
        assert_eq!(state["bundle"], b.dir.to_string_lossy().as_ref(), "{kind}");
        assert_eq!(state["annotations"]["tent.test/hook"], "yes", "{kind}");
        if has_pid {
            assert_eq!(state["pid"], pid, "{kind}: the init's host pid");
        } else {
            assert!(state.get("pid").is_none(), "{kind}: {state}");
        }
    }
    b.assert_clean();
}

/// A failing createRuntime hook fails create with the hook named and its
/// output; nothing is left and the later hooks never run.
fn failing_create_runtime_hook_leaves_nothing(exe: &InitExe) {
    let b = Bundle::new("hookfail");
    let out = b.dir.join("hookout");
    std::fs::create_dir_all(&out).expect("mkdir");
    let host = out.to_string_lossy().into_owned();
    let mut spec = default_spec(&["true"]);
    spec["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no-go >&2; exit 7"]}],
        "createContainer": [recording_hook(&host, "createContainer")],
        "poststop": [recording_hook(&host, "poststop")]
    });
    b.write_config(&spec);
    let e = b
        .create(exe, &[], Stdio::default(), &hooks_allowed())
        .expect_err("failing hook");
    assert_eq!(
        e.to_string(),
        "hooks.createRuntime[0] (/bin/sh): exited with status 7: no-go"
    );
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert!(log_lines(&out).is_empty(), "{:?}", log_lines(&out));
    reap_zombies();
    b.assert_clean();
}

/// A hook past its timeout is killed, with what it started, and named.
fn hook_timeout_kills_and_names_it(exe: &InitExe) {
    let b = Bundle::new("hooktimeout");
    let out = b.dir.join("hookout");
    std::fs::create_dir_all(&out).expect("mkdir");
    let host = out.to_string_lossy().into_owned();
    let mut spec = default_spec(&["true"]);
    spec["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "timeout": 1, "args": ["sh", "-c",
            format!("echo $$ > {host}/pid; sleep 60 & echo $! > {host}/child; wait")]}]
    });
    b.write_config(&spec);
    let t = Instant::now();
    let e = b
        .create(exe, &[], Stdio::default(), &hooks_allowed())
        .expect_err("timeout");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(
        e.to_string(),
        "hooks.createRuntime[0] (/bin/sh): killed after its timeout of 1s"
    );
    for f in ["pid", "child"] {
        let pid = std::fs::read_to_string(out.join(f)).expect(f);
        let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc.exists() && Instant::now() < deadline {
            reap_zombies();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!proc.exists(), "{f} {} survived the timeout", pid.trim());
    }
    b.assert_clean();
}

/// tent's profile refuses hooks unless allowed, naming the rule; none runs.
fn tent_profile_refuses_hooks(exe: &InitExe) {
    let b = Bundle::new("hookrefused");
    let out = b.dir.join("hookout");
    std::fs::create_dir_all(&out).expect("mkdir");
    let mut spec = default_spec(&["true"]);
    spec["hooks"] =
        json!({"createRuntime": [recording_hook(&out.to_string_lossy(), "createRuntime")]});
    b.write_config(&spec);
    let e = b
        .create(exe, &[], Stdio::default(), &Profile::default())
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("hooks: tent's profile refuses OCI hooks"),
        "{msg}"
    );
    assert!(msg.contains("allow.hooks"), "{msg}");
    assert!(log_lines(&out).is_empty());
    b.assert_clean();
}

/// A caller that died without destroying (`shim delete` after a crash):
/// `cleanup_bundle` still runs the poststop hooks, once.
fn poststop_runs_at_cleanup_after_a_crash(exe: &InitExe) {
    let b = Bundle::new("hookcrash");
    let out = b.dir.join("hookout");
    std::fs::create_dir_all(&out).expect("mkdir");
    let mut spec = default_spec(&["sleep", "100"]);
    spec["hooks"] = json!({"poststop": [recording_hook(&out.to_string_lossy(), "poststop")]});
    b.write_config(&spec);
    let mut c = b
        .create(exe, &[], Stdio::default(), &hooks_allowed())
        .expect("create");
    c.start().expect("start");
    let pid = c.pid();
    std::mem::forget(c);
    assert!(log_lines(&out).is_empty());
    assert_eq!(cleanup_bundle(&b.dir, &b.id).expect("cleanup"), Some(pid));
    assert!(matches!(wait_for(pid), WaitStatus::Signaled(..)));
    assert_eq!(
        log_lines(&out),
        vec![format!("poststop {} v", mnt_ns("self"))]
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("poststop.json")).unwrap_or_default(),
    )
    .expect("state");
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["id"], b.id.as_str());
    assert_eq!(cleanup_bundle(&b.dir, &b.id).expect("second cleanup"), None);
    assert_eq!(log_lines(&out).len(), 1, "poststop ran twice");
    b.assert_clean();
}

/// `type: cgroup` read-only: the container sees its own cgroup (its memory
/// limit) and cannot write it. v1: a read-only tmpfs with a read-only bind
/// per hierarchy; v2: cgroup2 in the container's cgroup namespace.
fn cgroup_mount_is_own_and_read_only(exe: &InitExe) {
    let b = Bundle::new("cgview");
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let file = if v2 {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let mut spec = default_spec(&[
        "sh",
        "-c",
        &format!(
            "cat {file}; (echo 1 > {file}) 2>/dev/null && echo writable || echo ro; \
             (mkdir /sys/fs/cgroup/x) 2>/dev/null && echo root-writable || echo root-ro; \
             ls /sys/fs/cgroup | tr '\\n' ' '"
        ),
    ]);
    spec["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.write_config(&spec);
    let (code, out, c) = run(&b, exe, &Profile::default());
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("67108864"), "{out}");
    assert_eq!(lines.next(), Some("ro"), "{out}");
    assert_eq!(lines.next(), Some("root-ro"), "{out}");
    let listing: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let want: &[&str] = if v2 {
        &["cgroup.procs", "memory.max"]
    } else {
        &["cpu", "memory", "pids", "devices", "freezer"]
    };
    for w in want {
        assert!(listing.contains(w), "{w} missing in {listing:?}");
    }
    c.destroy().expect("destroy");
    b.assert_clean();
}

/// Which masked and read-only mounts the container's /proc (and
/// /sys/firmware) has, as `<path> <ro|rw>` lines.
fn proc_masks(b: &Bundle, exe: &InitExe, masked: Value, readonly: Value) -> Vec<String> {
    let mut spec = default_spec(&[
        "sh",
        "-c",
        "awk '$5 ~ /^\\/proc\\/./ || $5 == \"/sys/firmware\" { split($6, o, \",\"); print $5, o[1] }' \
         /proc/self/mountinfo",
    ]);
    spec["linux"]["maskedPaths"] = masked;
    spec["linux"]["readonlyPaths"] = readonly;
    b.write_config(&spec);
    let (code, out, c) = run(b, exe, &compat());
    assert_eq!(code, 0, "{out}");
    c.destroy().expect("destroy");
    b.assert_clean();
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// `procMount: Unmasked` (no maskedPaths/readonlyPaths): nothing is masked or
/// made read-only beyond what the spec lists; and what it lists, is.
fn proc_mount_is_exactly_what_the_spec_says(exe: &InitExe) {
    let b = Bundle::new("procmount");
    assert_eq!(
        proc_masks(&b, exe, json!([]), json!([])),
        Vec::<String>::new(),
        "Unmasked: nothing over /proc"
    );
    let masked = [
        "/proc/timer_list",
        "/proc/acpi",
        "/proc/keys",
        "/sys/firmware",
        "/proc/kcore",
    ];
    let readonly = ["/proc/sys", "/proc/irq", "/proc/sysrq-trigger"];
    let mut want: Vec<String> = Vec::new();
    for p in masked {
        if Path::new(p).exists() {
            let dir = Path::new(p).is_dir();
            // Directories get a read-only tmpfs, files the (rw) null device.
            want.push(format!("{p} {}", if dir { "ro" } else { "rw" }));
        }
    }
    for p in readonly {
        if Path::new(p).exists() {
            want.push(format!("{p} ro"));
        }
    }
    want.sort();
    assert!(want.len() >= 4, "too few of the paths exist here: {want:?}");
    assert_eq!(proc_masks(&b, exe, json!(masked), json!(readonly)), want);
}

/// `rro` makes a volume and the mounts below it read-only; plain `ro` leaves its
/// submounts writable (why `rro` exists).
fn recursive_readonly_volume(exe: &InitExe) {
    let probe = "for d in /vol /vol/sub; do \
                 if touch $d/w 2>/dev/null; then echo $d rw; else echo $d ro; fi; done";
    for (opts, want) in [
        (&["rbind", "rro"][..], "/vol ro\n/vol/sub ro\n"),
        (&["rbind", "ro"][..], "/vol ro\n/vol/sub rw\n"),
    ] {
        let vol = SharedDir::new("rro");
        let sub = vol.0.join("sub");
        std::fs::create_dir_all(&sub).expect("mkdir sub");
        mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("sub");
        let b = Bundle::new("rro");
        let mut spec = default_spec(&["sh", "-c", probe]);
        volume(&mut spec, &vol.0, "/vol", opts);
        b.write_config(&spec);
        let (r, w) = pipe();
        let mut c = b.create(exe, &[], stdout_to(w), &compat()).expect("create");
        c.start().expect("start");
        assert!(matches!(wait_for(c.pid()), WaitStatus::Exited(_, 0)));
        assert_eq!(read_all(r), want, "options {opts:?}");
        c.destroy().expect("destroy");
        b.assert_clean();
    }
}

/// A new network namespace gets its loopback device up (as runc brings it up), so
/// 127.0.0.1 works inside a container that has no CNI.
fn new_network_namespace_has_loopback_up(exe: &InitExe) {
    let b = Bundle::new("lo");
    let spec = default_spec(&["cat", "/sys/class/net/lo/flags"]);
    b.write_config(&spec);
    let (r, w) = pipe();
    let mut c = b.create(exe, &[], stdout_to(w), &compat()).expect("create");
    c.start().expect("start");
    assert!(matches!(wait_for(c.pid()), WaitStatus::Exited(_, 0)));
    let out = read_all(r);
    let flags = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("lo flags: {out:?}"));
    assert_eq!(
        flags & libc::IFF_UP as u32,
        libc::IFF_UP as u32,
        "lo is down: {out}"
    );
    c.destroy().expect("destroy");
    b.assert_clean();
}

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let tests: &[(&str, TestFn)] = &[
        ("bidirectional_volume", bidirectional_volume),
        ("host_to_container_volume", host_to_container_volume),
        (
            "default_propagation_leaks_nothing",
            default_propagation_leaks_nothing,
        ),
        ("bad_rootfs_propagation", bad_rootfs_propagation),
        ("recursive_readonly_volume", recursive_readonly_volume),
        (
            "new_network_namespace_has_loopback_up",
            new_network_namespace_has_loopback_up,
        ),
        (
            "hooks_run_once_in_order_and_namespace",
            hooks_run_once_in_order_and_namespace,
        ),
        (
            "failing_create_runtime_hook_leaves_nothing",
            failing_create_runtime_hook_leaves_nothing,
        ),
        (
            "hook_timeout_kills_and_names_it",
            hook_timeout_kills_and_names_it,
        ),
        ("tent_profile_refuses_hooks", tent_profile_refuses_hooks),
        (
            "poststop_runs_at_cleanup_after_a_crash",
            poststop_runs_at_cleanup_after_a_crash,
        ),
        (
            "cgroup_mount_is_own_and_read_only",
            cgroup_mount_is_own_and_read_only,
        ),
        (
            "proc_mount_is_exactly_what_the_spec_says",
            proc_mount_is_exactly_what_the_spec_says,
        ),
    ];
    common::run_suite("pods", tests);
}
