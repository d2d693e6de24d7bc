//! The systemd cgroup driver against a real systemd (PID 1): a container with
//! a systemd-form `linux.cgroupsPath` runs in a transient scope whose unit
//! properties are its limits, keeps its processes and limits across
//! `systemctl daemon-reload` and a `set-property` on its slice, follows
//! Update, and leaves no unit behind. Where systemd is not PID 1 (the build
//! host), the same path is a cgroupfs directory, and the systemd tests are
//! skipped (ignored). Run in the VM: `hack/vm-cgroupv2.sh --systemd v2|v1`
//! (see hack/vm/run-systemd-tests.sh). Needs root; this binary is also the
//! container init.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{default_spec, wait_for, Bundle, TestFn};
use oci_spec::runtime::LinuxResources;
use serde_json::json;
use tent_runtime::{Container, ErrorKind, InitExe, Stdio};

const V2: &str = "/sys/fs/cgroup/cgroup.controllers";

fn v2() -> bool {
    Path::new(V2).exists()
}

fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn require_systemd() {
    if !systemd_booted() {
        common::skip("systemd is not PID 1 (run hack/vm-cgroupv2.sh --systemd)");
    }
}

fn systemctl(args: &[&str]) -> String {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .expect("run systemctl");
    assert!(
        out.status.success(),
        "systemctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One property of a unit, as `systemctl show` prints it.
fn show(unit: &str, prop: &str) -> String {
    systemctl(&["show", "--value", "-p", prop, unit])
}

/// Where the v2 cgroup, or the v1 `controller` copy, of a relative path lies.
fn cg_dir(controller: &str, rel: &str) -> PathBuf {
    if v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        let mount = match controller {
            "cpu" => "cpu,cpuacct",
            c => c,
        };
        Path::new("/sys/fs/cgroup").join(mount).join(rel)
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Pod slice and container name of a test: `tentsd-pod<n>.slice:tent:<id>`.
struct Names {
    slice: String,
    unit: String,
    rel: String,
}

fn names(b: &Bundle, pod: &str) -> (String, Names) {
    let slice = format!("tentsd-{pod}.slice");
    let unit = format!("tent-{}.scope", b.id);
    let rel = format!("tentsd.slice/{slice}/{unit}");
    (format!("{slice}:tent:{}", b.id), Names { slice, unit, rel })
}

fn create(b: &Bundle, exe: &InitExe, spec: &serde_json::Value) -> tent_runtime::Result<Container> {
    b.write_config(spec);
    b.create(
        exe,
        &[],
        Stdio::default(),
        &tent_runtime::Profile::default(),
    )
}

/// The container's limits, read from cgroupfs: (memory, pids, cpu quota, cpu weight or shares).
fn limits(rel: &str) -> (String, String, String, String) {
    if v2() {
        let d = cg_dir("", rel);
        (
            read(d.join("memory.max")),
            read(d.join("pids.max")),
            read(d.join("cpu.max")),
            read(d.join("cpu.weight")),
        )
    } else {
        (
            read(cg_dir("memory", rel).join("memory.limit_in_bytes")),
            read(cg_dir("pids", rel).join("pids.max")),
            read(cg_dir("cpu", rel).join("cpu.cfs_quota_us")),
            read(cg_dir("cpu", rel).join("cpu.shares")),
        )
    }
}

/// The cgroup of `pid` in the v2 or the v1 systemd (name=systemd) hierarchy.
fn cgroup_of(pid: i32) -> String {
    let text = read(PathBuf::from(format!("/proc/{pid}/cgroup")));
    let want = if v2() { "0::" } else { ":name=systemd:" };
    text.lines()
        .find_map(|l| l.find(want).map(|i| l[i + want.len()..].to_string()))
        .unwrap_or_else(|| panic!("no {want} line in /proc/{pid}/cgroup: {text}"))
}

fn scope_holds_container(exe: &InitExe) {
    require_systemd();
    let b = Bundle::new("sdscope");
    let (path, n) = names(&b, "pod1");
    let mut spec = default_spec(&["sleep", "1000"]);
    spec["linux"]["cgroupsPath"] = json!(path);
    spec["linux"]["resources"]["memory"] = json!({"limit": 256 << 20});
    spec["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    spec["linux"]["resources"]["pids"] = json!({"limit": 77});
    let mut c = create(&b, exe, &spec).expect("create");
    assert_eq!(c.systemd_unit(), Some(n.unit.as_str()));
    c.start().expect("start");

    // The unit: active, in the pod slice, delegated, holding the init.
    assert_eq!(show(&n.unit, "ActiveState"), "active");
    assert_eq!(show(&n.unit, "Slice"), n.slice);
    assert_eq!(show(&n.unit, "Delegate"), "yes");
    assert_eq!(show(&n.unit, "ControlGroup"), format!("/{}", n.rel));
    assert_eq!(cgroup_of(c.pid()), format!("/{}", n.rel));
    let status = systemctl(&["status", "--no-pager", &n.unit]);
    assert!(status.contains(&c.pid().to_string()), "{status}");

    // Its properties are the container's limits, and so are the files.
    assert_eq!(show(&n.unit, "TasksMax"), "77");
    assert_eq!(show(&n.unit, "CPUQuotaPerSecUSec"), "500ms");
    let expect_v2 = || {
        (
            (256u64 << 20).to_string(),
            "77".to_string(),
            "50000 100000".to_string(),
            "20".to_string(),
        )
    };
    let expect_v1 = || {
        (
            (256u64 << 20).to_string(),
            "77".to_string(),
            "50000".to_string(),
            "512".to_string(),
        )
    };
    let expect = if v2() { expect_v2() } else { expect_v1() };
    if v2() {
        assert_eq!(show(&n.unit, "MemoryMax"), (256u64 << 20).to_string());
        assert_eq!(show(&n.unit, "CPUWeight"), "20");
    } else {
        assert_eq!(show(&n.unit, "MemoryLimit"), (256u64 << 20).to_string());
        assert_eq!(show(&n.unit, "CPUShares"), "512");
        assert_eq!(show(&n.unit, "DevicePolicy"), "strict");
    }
    assert_eq!(limits(&n.rel), expect);

    // systemd re-applies every unit's cgroup attributes on daemon-reload and
    // on a set-property of the slice: the container keeps its place and values.
    systemctl(&["daemon-reload"]);
    let weight = if v2() {
        "CPUWeight=300"
    } else {
        "CPUShares=300"
    };
    systemctl(&[
        "set-property",
        "--runtime",
        &n.slice,
        weight,
        "TasksMax=500",
    ]);
    systemctl(&["daemon-reload"]);
    assert_eq!(cgroup_of(c.pid()), format!("/{}", n.rel));
    assert_eq!(
        limits(&n.rel),
        expect,
        "limits after daemon-reload and set-property"
    );
    if !v2() {
        // systemd's default for a v1 scope would be `devices.allow a`.
        let list = read(cg_dir("devices", &n.rel).join("devices.list"));
        assert!(
            !list.contains("a *:* rwm"),
            "devices.list after reload: {list}"
        );
        assert!(
            list.contains("c 1:3 rwm"),
            "devices.list after reload: {list}"
        );
    }

    // Update: the files and the unit.
    let r: LinuxResources = serde_json::from_value(json!({
        "memory": {"limit": 128 << 20}, "pids": {"limit": 55}
    }))
    .expect("resources");
    c.update(&r).expect("update");
    assert_eq!(show(&n.unit, "TasksMax"), "55");
    let mem = if v2() { "MemoryMax" } else { "MemoryLimit" };
    assert_eq!(show(&n.unit, mem), (128u64 << 20).to_string());
    systemctl(&["daemon-reload"]);
    let (m, p, _, _) = limits(&n.rel);
    assert_eq!((m, p), ((128u64 << 20).to_string(), "55".to_string()));
    let bad: LinuxResources =
        serde_json::from_value(json!({"pids": {"limit": -7}})).expect("resources");
    let e = c.update(&bad).expect_err("invalid update");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(show(&n.unit, "TasksMax"), "55");

    // Delete: no unit, no directory.
    c.kill(libc::SIGKILL, false).expect("kill");
    wait_for(c.pid());
    c.destroy().expect("destroy");
    assert_eq!(show(&n.unit, "LoadState"), "not-found");
    assert!(!cg_dir("memory", &n.rel).exists(), "{} left", n.rel);
    b.assert_clean();
}

fn bad_spec_leaves_no_unit(exe: &InitExe) {
    require_systemd();
    let b = Bundle::new("sdbad");
    let (path, n) = names(&b, "pod2");
    let mut spec = default_spec(&["true"]);
    spec["linux"]["cgroupsPath"] = json!(path);
    // Valid for systemd, refused by the kernel check of the plan: after the unit started.
    spec["linux"]["resources"]["cpu"] = json!({"cpus": "0-4095"});
    let e = create(&b, exe, &spec).expect_err("create with an offline cpu");
    assert!(e.to_string().contains("resources.cpu.cpus"), "{e}");
    assert_eq!(show(&n.unit, "LoadState"), "not-found");
    assert!(!cg_dir("memory", &n.rel).exists(), "{} left", n.rel);
    // A slice as the container's unit is refused, naming the field.
    spec["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    spec["linux"]["cgroupsPath"] = json!(format!("{}:tent:x.slice", n.slice));
    let e = create(&b, exe, &spec).expect_err("a slice as the unit");
    assert!(e.to_string().starts_with("linux.cgroupsPath"), "{e}");
    b.assert_clean();
}

/// After a crash of its caller, `cleanup_bundle` stops the unit named in the state file.
fn cleanup_after_crash_stops_unit(exe: &InitExe) {
    require_systemd();
    let b = Bundle::new("sdcrash");
    let (path, n) = names(&b, "pod4");
    let mut spec = default_spec(&["sleep", "1000"]);
    spec["linux"]["cgroupsPath"] = json!(path);
    let mut c = create(&b, exe, &spec).expect("create");
    c.start().expect("start");
    let pid = c.pid();
    assert_eq!(show(&n.unit, "ActiveState"), "active");
    std::mem::forget(c); // the "shim" dies without destroying
    let got = tent_runtime::cleanup_bundle(&b.dir, &b.id).expect("cleanup_bundle");
    assert_eq!(got, Some(pid));
    wait_for(pid);
    assert_eq!(show(&n.unit, "LoadState"), "not-found");
    assert!(!cg_dir("memory", &n.rel).exists(), "{} left", n.rel);
    b.assert_clean();
}

fn without_systemd_cgroupfs(exe: &InitExe) {
    if systemd_booted() {
        common::skip("systemd is PID 1 here");
    }
    let b = Bundle::new("sdnone");
    let (path, n) = names(&b, "pod3");
    let mut spec = default_spec(&["sleep", "1000"]);
    spec["linux"]["cgroupsPath"] = json!(path);
    spec["linux"]["resources"]["pids"] = json!({"limit": 33});
    let mut c = create(&b, exe, &spec).expect("create");
    assert_eq!(c.systemd_unit(), None);
    c.start().expect("start");
    assert_eq!(read(cg_dir("pids", &n.rel).join("pids.max")), "33");
    c.kill(libc::SIGKILL, false).expect("kill");
    wait_for(c.pid());
    c.destroy().expect("destroy");
    assert!(!cg_dir("pids", &n.rel).exists(), "{} left", n.rel);
    // The parent slices stay, as systemd's would (cgroupfs does not know who else uses them).
    for d in ["tentsd.slice/tentsd-pod3.slice", "tentsd.slice"] {
        for dir in common::cgroup_dirs(d) {
            let _ = std::fs::remove_dir(dir);
        }
    }
    b.assert_clean();
}

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let tests: &[(&str, TestFn)] = &[
        ("scope_holds_container", scope_holds_container),
        ("bad_spec_leaves_no_unit", bad_spec_leaves_no_unit),
        (
            "cleanup_after_crash_stops_unit",
            cleanup_after_crash_stops_unit,
        ),
        ("without_systemd_cgroupfs", without_systemd_cgroupfs),
    ];
    common::run_suite("systemd", tests);
}
