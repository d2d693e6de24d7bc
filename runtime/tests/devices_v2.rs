//! The device allow list, enforced by the kernel. The cgroup v2 eBPF filter is
//! tested on a cgroup2 directory of its own: under `/sys/fs/cgroup` on a pure
//! v2 host, else under the hybrid `/sys/fs/cgroup/unified` mount of a v1 host
//! (controller-less, but device programs work there all the same). A forked
//! probe moves itself into it, mknods nodes in a temporary directory and opens
//! them; the same probe outside the cgroup shows the nodes open there (so an
//! EPERM inside is the filter's). The container tests run on whatever the host
//! has (v1 files or the v2 program). Needs root; this binary is also the
//! container init.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{default_spec, pipe, reap_zombies, wait_for, Bundle, TestFn};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources, Process};
use serde_json::{json, Value};
use tent_runtime::{Container, ErrorKind, ExecRequest, InitExe, Stdio};

/// Where test cgroups can be made whose device programs the kernel runs.
fn cgroup2_base() -> Option<PathBuf> {
    for dir in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let is_cgroup2 = nix::sys::statfs::statfs(dir)
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        if is_cgroup2 {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

/// The cgroup2 base, or the test is skipped (counted as ignored).
fn require_cgroup2() -> PathBuf {
    cgroup2_base().unwrap_or_else(|| {
        common::skip("neither pure cgroup v2 nor a cgroup2 mount at /sys/fs/cgroup/unified")
    })
}

/// A cgroup2 directory and a node directory of a test; removed on drop.
struct Scratch {
    cg: PathBuf,
    nodes: PathBuf,
}

impl Scratch {
    fn new(base: &Path, name: &str) -> Scratch {
        let id = format!("tent-devtest-{name}-{}", std::process::id());
        let cg = base.join(&id);
        let nodes = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir(&cg);
        let _ = std::fs::remove_dir_all(&nodes);
        std::fs::create_dir(&cg).expect("mkdir cgroup");
        std::fs::create_dir(&nodes).expect("mkdir nodes");
        Scratch { cg, nodes }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.cg);
        let _ = std::fs::remove_dir_all(&self.nodes);
    }
}

fn rules(v: Value) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_value(v).expect("device rules")
}

/// One step of a probe: `Mknod(name, 'c'|'b', major, minor)` in the node
/// directory, `Open(path, flags)` (a relative path is in the node directory).
#[derive(Clone, Copy)]
enum Op<'a> {
    Mknod(&'a str, char, u64, u64),
    Open(&'a str, OFlag),
}

const R: OFlag = OFlag::O_RDONLY;
const W: OFlag = OFlag::O_WRONLY;
const RW: OFlag = OFlag::O_RDWR;

fn do_op(nodes: &Path, op: Op) -> nix::Result<()> {
    let at = |p: &str| {
        if p.starts_with('/') {
            PathBuf::from(p)
        } else {
            nodes.join(p)
        }
    };
    match op {
        Op::Mknod(name, kind, major, minor) => {
            let kind = if kind == 'b' {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFCHR
            };
            let dev = nix::sys::stat::makedev(major, minor);
            nix::sys::stat::mknod(&at(name), kind, Mode::from_bits_truncate(0o600), dev)
        }
        Op::Open(p, flags) => nix::fcntl::open(
            &at(p),
            flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::empty(),
        )
        .map(drop),
    }
}

/// Runs `ops` in a forked child, inside `cg` if given; each result (Ok or the errno).
fn probe(cg: Option<&Path>, nodes: &Path, ops: &[Op]) -> Vec<nix::Result<()>> {
    for e in std::fs::read_dir(nodes).expect("nodes").flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
    // SAFETY: the suite is single-threaded; the child only does syscalls and exits.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            drop(r);
            let mut out = String::new();
            let joined = match cg {
                Some(cg) => std::fs::write(cg.join("cgroup.procs"), "0").is_ok(),
                None => true,
            };
            if joined {
                for op in ops {
                    let code = match do_op(nodes, *op) {
                        Ok(()) => 0,
                        Err(e) => e as i32,
                    };
                    out.push_str(&format!("{code} "));
                }
            }
            let _ = nix::unistd::write(&w, out.as_bytes());
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut text = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut text);
            let _ = waitpid(child, None);
            let codes: Vec<nix::Result<()>> = text
                .split_whitespace()
                .map(|c| match c.parse::<i32>().unwrap_or(-1) {
                    0 => Ok(()),
                    e => Err(Errno::from_raw(e)),
                })
                .collect();
            assert_eq!(codes.len(), ops.len(), "probe did not join {cg:?}");
            codes
        }
    }
}

/// A block device number of this host (any: the filter decides before the
/// driver is looked up), preferring a loop device.
fn block_dev() -> (u64, u64) {
    let mut devs: Vec<(u64, u64)> = std::fs::read_dir("/sys/dev/block")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let (a, b) = n.split_once(':')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    devs.sort_by_key(|d| (d.0 != 7, *d));
    devs.first().copied().unwrap_or((7, 0))
}

const EPERM: nix::Result<()> = Err(Errno::EPERM);

/// Allow-list mode (the containerd case): the defaults and a spec-allowed
/// device open, a denied char and block device mknod but do not open.
fn filter_denies_and_allows(_: &InitExe) {
    let base = require_cgroup2();
    let s = Scratch::new(&base, "allow");
    let (bm, bn) = block_dev();
    let started = Instant::now();
    let inst = tent_runtime::install_v2_filter(
        &s.cg,
        &rules(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}
        ])),
    )
    .expect("install filter");
    println!(
        "({} insns, load+attach {:?} on {})",
        inst.insns,
        started.elapsed(),
        base.display()
    );
    assert_eq!(inst.replaced, 0);
    let ops = [
        Op::Open("/dev/null", RW),
        Op::Open("/dev/zero", RW),
        Op::Open("/dev/full", RW),
        Op::Open("/dev/urandom", RW),
        Op::Open("/dev/random", R),
        Op::Mknod("null", 'c', 1, 3),
        Op::Open("null", RW),
        Op::Mknod("mem", 'c', 1, 1),
        Op::Open("mem", R),
        Op::Mknod("kmsg", 'c', 1, 11),
        Op::Open("kmsg", R),
        Op::Open("kmsg", W),
        Op::Open("kmsg", RW),
        Op::Mknod("blk", 'b', bm, bn),
        Op::Open("blk", R),
        Op::Open("blk", W),
    ];
    let inside = probe(Some(&s.cg), &s.nodes, &ops);
    let want = [
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        Ok(()),
        EPERM,
        Ok(()),
        Ok(()),
        EPERM,
        EPERM,
        Ok(()),
        EPERM,
        EPERM,
    ];
    assert_eq!(inside, want, "inside the filtered cgroup");
    // Outside, the same nodes are not refused (kmsg even opens for writing).
    let outside = probe(None, &s.nodes, &ops);
    assert_eq!(outside[11], Ok(()), "kmsg for writing outside: {outside:?}");
    assert_ne!(outside[14], EPERM, "block device outside: {outside:?}");
}

/// Deny-list mode (a privileged-style "allow all" plus denials): a denied
/// mknod fails, a denied block access fails, everything else works.
fn deny_list_and_mknod(_: &InitExe) {
    let base = require_cgroup2();
    let s = Scratch::new(&base, "deny");
    let (bm, bn) = block_dev();
    tent_runtime::install_v2_filter(
        &s.cg,
        &rules(json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "m"},
            {"allow": false, "type": "b", "access": "w"}
        ])),
    )
    .expect("install filter");
    let ops = [
        Op::Mknod("kmsg", 'c', 1, 11),
        Op::Mknod("mem", 'c', 1, 1),
        Op::Open("/dev/null", RW),
        Op::Mknod("blk", 'b', bm, bn),
        Op::Open("blk", W),
        // Read-write asks for w too: denied as v1 denies it.
        Op::Open("blk", RW),
    ];
    let inside = probe(Some(&s.cg), &s.nodes, &ops);
    assert_eq!(inside[0], EPERM, "{inside:?}");
    assert_eq!(inside[1], Ok(()), "{inside:?}");
    assert_eq!(inside[2], Ok(()), "{inside:?}");
    assert_eq!(inside[3], Ok(()), "{inside:?}");
    assert_eq!(inside[4], EPERM, "{inside:?}");
    assert_eq!(inside[5], EPERM, "{inside:?}");
    let outside = probe(None, &s.nodes, &ops);
    assert_eq!(outside[0], Ok(()), "{outside:?}");
    assert_ne!(outside[4], EPERM, "{outside:?}");
}

/// Update: the new program replaces the old (one attached, a new id), and
/// what it allows changes; bad rules change nothing.
fn update_replaces_program(_: &InitExe) {
    let base = require_cgroup2();
    let s = Scratch::new(&base, "update");
    let kmsg_r = rules(json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}
    ]));
    let ops = [Op::Mknod("kmsg", 'c', 1, 11), Op::Open("kmsg", R)];
    tent_runtime::install_v2_filter(&s.cg, &kmsg_r).expect("install");
    let first = tent_runtime::v2_filters(&s.cg).expect("query");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(probe(Some(&s.cg), &s.nodes, &ops), [Ok(()), Ok(())]);

    let started = Instant::now();
    let inst = tent_runtime::install_v2_filter(&s.cg, &rules(json!([]))).expect("replace");
    println!("(replace {:?})", started.elapsed());
    assert_eq!(inst.replaced, 1);
    let second = tent_runtime::v2_filters(&s.cg).expect("query");
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    assert_eq!(probe(Some(&s.cg), &s.nodes, &ops), [Ok(()), EPERM]);

    for (bad, field) in [
        (
            json!([{"allow": true, "type": "u"}]),
            "resources.devices[0].type",
        ),
        (
            json!([{"allow": true, "access": "rwm"}, {"allow": true, "type": "c", "access": "rwx"}]),
            "resources.devices[1].access",
        ),
    ] {
        let e = tent_runtime::install_v2_filter(&s.cg, &rules(bad)).expect_err("bad rule");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().starts_with(field), "{e}");
        assert_eq!(tent_runtime::v2_filters(&s.cg).expect("query"), second);
    }
    tent_runtime::install_v2_filter(&s.cg, &kmsg_r).expect("install again");
    assert_eq!(probe(Some(&s.cg), &s.nodes, &ops), [Ok(()), Ok(())]);
    assert_eq!(tent_runtime::v2_filters(&s.cg).expect("query").len(), 1);
}

const MKNOD_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_MKNOD"];

fn with_mknod(p: &mut Value) {
    for set in ["bounding", "effective", "permitted"] {
        p["capabilities"][set] = json!(MKNOD_CAPS);
    }
}

/// `sh -c script` exec'd in `c` with CAP_MKNOD; its output.
fn sh(c: &Container, script: &str) -> String {
    let mut p = default_spec(&["sh", "-c", script])["process"].clone();
    with_mknod(&mut p);
    let p: Process = serde_json::from_value(p).expect("process");
    let (r, w) = pipe();
    let w2 = w.try_clone().expect("dup");
    let proc_ = c
        .exec(ExecRequest {
            process: &p,
            stdio: Stdio {
                stdin: None,
                stdout: Some(w),
                stderr: Some(w2),
            },
        })
        .expect("exec");
    let mut out = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut out);
    wait_for(proc_.pid);
    out
}

/// In the container's /dev (a tmpfs): mknod, then open for reading and writing.
const PROBE: &str = "for n in 'kmsg c 1 11' 'mem c 1 1' 'blk b 7 0' 'null2 c 1 3'; do \
    set -- $n; mknod /dev/x$1 $2 $3 $4 2>/dev/null && echo $1 m; \
    (: </dev/x$1) 2>/dev/null && echo $1 r; (: >/dev/x$1) 2>/dev/null && echo $1 w; \
    rm -f /dev/x$1; done; (: >/dev/null) 2>/dev/null && echo null w";

fn create(b: &Bundle, exe: &InitExe) -> tent_runtime::Result<Container> {
    b.create(
        exe,
        &[],
        Stdio::default(),
        &tent_runtime::Profile::default(),
    )
}

/// A container (v1 files or the v2 program, as the host has): the defaults
/// and a spec-allowed write work, the rest does not; Update with devices
/// replaces the program on v2 and is ignored on v1.
fn container_devices(exe: &InitExe) {
    let b = Bundle::new("devices");
    let mut spec = default_spec(&["sleep", "1000"]);
    with_mknod(&mut spec["process"]);
    // kmsg for writing: opens without capabilities (reading needs CAP_SYSLOG,
    // /dev/mem CAP_SYS_RAWIO: those fail in the container anyway).
    spec["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
    ]);
    b.write_config(&spec);
    let mut c = create(&b, exe).expect("create");
    c.start().expect("start");
    let lines = |s: String| s.lines().map(str::to_string).collect::<Vec<_>>();
    let before = lines(sh(&c, PROBE));
    let res: LinuxResources = serde_json::from_value(json!({
        "pids": {"limit": 200},
        "devices": [{"allow": false, "access": "rwm"}]
    }))
    .expect("resources");
    let updated = c.update(&res).map(|()| lines(sh(&c, PROBE)));
    let bad: LinuxResources = serde_json::from_value(json!({
        "devices": [{"allow": true, "type": "p"}]
    }))
    .expect("resources");
    let bad_update = c.update(&bad);
    let after_bad = lines(sh(&c, PROBE));
    let pid = c.pid();
    let _ = c.kill(libc::SIGKILL, true);
    wait_for(pid);
    c.destroy().expect("destroy");
    reap_zombies();

    let want = [
        "kmsg m", "kmsg w", "mem m", "blk m", "null2 m", "null2 r", "null2 w", "null w",
    ];
    assert_eq!(before, want);
    let updated = updated.expect("update");
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        // The spec's kmsg write is gone with the old program.
        let want: Vec<&str> = want.into_iter().filter(|l| *l != "kmsg w").collect();
        assert_eq!(updated, want);
        assert_eq!(after_bad, want, "a refused update changes nothing");
        let e = bad_update.expect_err("bad device rule");
        assert!(
            e.to_string().starts_with("resources.devices[0].type"),
            "{e}"
        );
    } else {
        // v1: Update leaves the device list alone (and does not look at it).
        assert_eq!(updated, want);
        assert!(bad_update.is_ok(), "{bad_update:?}");
    }
    b.assert_clean();
}

/// An invalid rule fails create naming the field, and leaves nothing behind.
fn bad_rule_leaves_nothing(exe: &InitExe) {
    for (rule, field) in [
        (
            json!({"allow": true, "type": "u"}),
            "resources.devices[1].type",
        ),
        (
            json!({"allow": true, "type": "x"}),
            "resources.devices[1].type",
        ),
        (
            json!({"allow": true, "type": "c", "access": "rwq"}),
            "resources.devices[1].access",
        ),
        (
            json!({"allow": true, "type": "b", "major": 1_i64 << 40}),
            "resources.devices[1].major",
        ),
    ] {
        let b = Bundle::new("badrule");
        let mut spec = default_spec(&["true"]);
        spec["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}, rule]);
        b.write_config(&spec);
        let e = create(&b, exe).expect_err("create must fail");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{rule}: {e}");
        assert!(e.to_string().contains(field), "{rule}: {e}");
        reap_zombies();
        b.assert_clean();
    }
}

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let tests: &[(&str, TestFn)] = &[
        ("filter_denies_and_allows", filter_denies_and_allows),
        ("deny_list_and_mknod", deny_list_and_mknod),
        ("update_replaces_program", update_replaces_program),
        ("container_devices", container_devices),
        ("bad_rule_leaves_nothing", bad_rule_leaves_nothing),
    ];
    common::run_suite("devices_v2", tests);
}
