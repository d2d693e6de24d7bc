//! The resources beyond memory/cpu/pids (`cgroups.rs`): `blockIO` (weights and throttles on a
//! real block device of this host), `hugepageLimits`, v2's `unified`, and the refused
//! `network`/`rdma`. Each is applied at create and by Update, or refused naming the field with
//! nothing left behind — never dropped. Runs on the host's cgroup v1 and in the cgroup v2 VM
//! (hack/vm/run-v2-tests.sh), with the files and refusals of each version.
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{cgroup_v2, read_trim, shim_update, task_cgroup_dir_for, Cleanup};
use serde_json::{json, Value};
use tent_integration::{is_runc, unique_id, Background, Containerd, RunOpts, Spec};

const T: Duration = Duration::from_secs(30);

/// `MAJ:MIN` of a whole disk of this host (not a loop or ram device), for the throttles.
fn block_device() -> Option<(i64, i64)> {
    let mut disks: Vec<_> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    disks.sort();
    let dev = std::fs::read_to_string(format!("/sys/block/{}/dev", disks.first()?)).ok()?;
    let (major, minor) = dev.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Containerd's default spec for `args` with `resources` merged into `linux.resources`.
fn spec_with(c: &Containerd, id: &str, args: &[&str], resources: &Value) -> Value {
    let mut spec = Spec::base(c, id, args);
    if let (Some(to), Some(from)) = (
        spec["linux"]["resources"].as_object_mut(),
        resources.as_object(),
    ) {
        to.extend(from.clone());
    }
    spec
}

/// A running `tent-testbin wait-term` with `resources`: (id, pid, its `ctr run`).
fn run_with(c: &Containerd, prefix: &str, resources: Value) -> (String, i32, Background) {
    let id = unique_id(prefix);
    let spec = spec_with(c, &id, &["/bin/tent-testbin", "wait-term"], &resources);
    let mut bg = c.spawn_run_spec(&id, &spec);
    bg.wait_for_line("ready", T);
    let pid = c.wait_running(&id, T);
    (id, pid, bg)
}

/// A container of `true` with `resources` must be refused with every one of `needles` in the
/// error, leaving nothing behind.
fn assert_refused(c: &Containerd, prefix: &str, resources: Value, needles: &[&str]) {
    let id = unique_id(prefix);
    let spec = spec_with(c, &id, &["true"], &resources);
    let r = c.run_spec(&id, &spec, &RunOpts::default());
    let _guard = Cleanup { c, id: id.clone() };
    assert_ne!(r.code, Some(0), "{resources} must be refused: {r:#?}");
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "{resources}: the error must say {n:?}: {r:#?}"
        );
    }
    c.assert_no_leftovers(&id);
}

fn stop(c: &Containerd, id: &str, bg: Background) {
    c.ctr_result(&["task", "kill", "-s", "SIGTERM", id])
        .assert_ok();
    let r = bg.finish(T);
    assert_eq!(r.code, Some(42), "{r:#?}");
    c.assert_no_leftovers(id);
}

fn dir(pid: i32, controller: &str) -> PathBuf {
    task_cgroup_dir_for(pid, controller)
}

/// The line of `dev` in a per-device file, `""` when it has none.
fn line_of(path: &std::path::Path, dev: &str) -> String {
    read_trim(path)
        .lines()
        .find(|l| l.starts_with(&format!("{dev} ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn block_io_throttles_reach_the_cgroup_and_update_changes_them() {
    let c = Containerd::shared();
    let Some((major, minor)) = block_device() else {
        eprintln!("SKIP: no block device under /sys/block to throttle");
        return;
    };
    let dev = format!("{major}:{minor}");
    let (id, pid, bg) = run_with(
        c,
        "res-blkio",
        json!({ "blockIO": {
            "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 1048576 }],
            "throttleWriteIOPSDevice": [{ "major": major, "minor": minor, "rate": 120 }],
        }}),
    );
    let _guard = Cleanup { c, id: id.clone() };
    if cgroup_v2() {
        let io_max = dir(pid, "io").join("io.max");
        assert_eq!(
            line_of(&io_max, &dev),
            format!("{dev} rbps=1048576 wbps=max riops=max wiops=120")
        );
    } else {
        let d = dir(pid, "blkio");
        assert_eq!(
            line_of(&d.join("blkio.throttle.read_bps_device"), &dev),
            format!("{dev} 1048576")
        );
        assert_eq!(
            line_of(&d.join("blkio.throttle.write_iops_device"), &dev),
            format!("{dev} 120")
        );
    }
    if !is_runc() {
        // Update: a new read rate; then one refused (a weight out of range) changes nothing.
        shim_update(
            c,
            &id,
            &json!({ "blockIO": {
                "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 2097152 }],
            }}),
        )
        .unwrap_or_else(|e| panic!("update blockIO: {e:?}"));
        let read_rate = || {
            if cgroup_v2() {
                line_of(&dir(pid, "io").join("io.max"), &dev)
            } else {
                line_of(
                    &dir(pid, "blkio").join("blkio.throttle.read_bps_device"),
                    &dev,
                )
            }
        };
        assert!(read_rate().contains("2097152"), "{}", read_rate());
        let refused = shim_update(
            c,
            &id,
            &json!({ "blockIO": {
                "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 4194304 }],
                "weight": 5,
            }}),
        );
        let (_, msg) = refused.expect_err("a weight of 5 must be refused");
        assert!(msg.contains("blockIO.weight"), "{msg}");
        assert!(
            read_rate().contains("2097152"),
            "changed by a refused update: {}",
            read_rate()
        );
    }
    stop(c, &id, bg);
}

#[test]
fn block_io_weight_is_applied_where_the_scheduler_has_one_and_refused_where_not() {
    let c = Containerd::shared();
    if is_runc() {
        eprintln!("SKIP: tent's refusal (runc writes the file regardless)");
        return;
    }
    // Where the weight goes depends on the host's I/O scheduler files (BFQ's, or io.cost's on
    // v2); the container's parent shows which exist.
    let probe = run_with(c, "res-probe", json!({}));
    let d = dir(probe.1, if cgroup_v2() { "io" } else { "blkio" });
    let candidates: &[&str] = if cgroup_v2() {
        &["io.bfq.weight", "io.weight"]
    } else {
        &["blkio.bfq.weight", "blkio.weight"]
    };
    let file = candidates.iter().find(|f| d.join(f).exists()).copied();
    stop(c, &probe.0, probe.2);
    let res = json!({ "blockIO": { "weight": 300 } });
    match file {
        Some(file) => {
            let (id, pid, bg) = run_with(c, "res-weight", res);
            let _guard = Cleanup { c, id: id.clone() };
            let got = read_trim(&dir(pid, if cgroup_v2() { "io" } else { "blkio" }).join(file));
            let want = match file {
                // runc's conversion: 1 + (300 - 10) * 9999 / 990 = 2930.
                "io.weight" => "default 2930",
                "io.bfq.weight" => "default 300",
                _ => "300",
            };
            assert!(
                got.lines().any(|l| l == want),
                "{file} must hold {want:?}: {got:?}"
            );
            stop(c, &id, bg);
        }
        None => assert_refused(
            c,
            "res-weight",
            res,
            &["blockIO.weight", "weights cannot be applied"],
        ),
    }
    assert_refused(
        c,
        "res-weight-range",
        json!({ "blockIO": { "weight": 1001 } }),
        &["blockIO.weight", "outside 10..=1000"],
    );
    assert_refused(
        c,
        "res-leaf",
        json!({ "blockIO": { "leafWeight": 100 } }),
        &["blockIO.leafWeight"],
    );
    assert_refused(
        c,
        "res-dev",
        json!({ "blockIO": { "throttleReadBpsDevice": [{ "major": 1 << 12, "minor": 0, "rate": 1 }] } }),
        &["blockIO.throttleReadBpsDevice[0]", "not a device number"],
    );
}

#[test]
fn hugepage_limits_are_applied_or_refused_never_dropped() {
    let c = Containerd::shared();
    if is_runc() {
        eprintln!("SKIP: tent's messages");
        return;
    }
    let sizes: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let kb: u64 = e
                        .file_name()
                        .to_string_lossy()
                        .strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()?;
                    Some(if kb >= 1 << 20 {
                        format!("{}GB", kb >> 20)
                    } else if kb >= 1 << 10 {
                        format!("{}MB", kb >> 10)
                    } else {
                        format!("{kb}KB")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // kubelet's request: a limit for every page size of the node, 0 for those not asked for.
    let limits: Vec<Value> = sizes
        .iter()
        .map(|s| json!({ "pageSize": s, "limit": 0 }))
        .collect();
    let hugetlb = tent_integration::cgroup_roots()
        .iter()
        .any(|r| r.join("hugetlb.2MB.max").exists() || r.ends_with("hugetlb"))
        || (cgroup_v2()
            && std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == "hugetlb"));
    if sizes.is_empty() {
        eprintln!("SKIP: this kernel has no huge page sizes");
    } else if hugetlb {
        let (id, pid, bg) = run_with(c, "res-huge", json!({ "hugepageLimits": limits }));
        let _guard = Cleanup { c, id: id.clone() };
        let d = dir(pid, "hugetlb");
        for s in &sizes {
            let f = if cgroup_v2() {
                format!("hugetlb.{s}.max")
            } else {
                format!("hugetlb.{s}.limit_in_bytes")
            };
            assert_eq!(read_trim(&d.join(&f)), "0", "{f}");
        }
        stop(c, &id, bg);
    } else {
        assert_refused(
            c,
            "res-huge",
            json!({ "hugepageLimits": limits }),
            &[
                "hugepageLimits[0]",
                "hugetlb cgroup controller is not mounted",
            ],
        );
    }
    assert_refused(
        c,
        "res-huge-bad",
        json!({ "hugepageLimits": [{ "pageSize": "2MB/../x", "limit": 0 }] }),
        &["hugepageLimits[0].pageSize", "is not a page size"],
    );
}

#[test]
fn unified_is_applied_on_v2_checked_and_refused_on_v1() {
    let c = Containerd::shared();
    if is_runc() {
        eprintln!("SKIP: tent's messages");
        return;
    }
    if cgroup_v2() {
        let (id, pid, bg) = run_with(
            c,
            "res-unified",
            json!({ "unified": { "pids.max": "17", "memory.high": "67108864" } }),
        );
        let _guard = Cleanup { c, id: id.clone() };
        let d = dir(pid, "pids");
        assert_eq!(read_trim(&d.join("pids.max")), "17");
        assert_eq!(read_trim(&d.join("memory.high")), "67108864");
        stop(c, &id, bg);
        for (key, needle) in [
            ("cgroup.procs", "tent's to manage"),
            ("../pids.max", "controller.parameter"),
            ("nosuch.file", "does not exist"),
        ] {
            assert_refused(
                c,
                "res-unified-bad",
                json!({ "unified": { key: "1" } }),
                &[&format!("unified[{key:?}]"), needle],
            );
        }
    } else {
        assert_refused(
            c,
            "res-unified-v1",
            json!({ "unified": { "pids.max": "17" } }),
            &["unified[\"pids.max\"]", "cgroup v2's"],
        );
    }
}

#[test]
fn network_and_rdma_resources_are_refused() {
    let c = Containerd::shared();
    if is_runc() {
        eprintln!("SKIP: tent's refusal (runc applies net_cls/net_prio where mounted)");
        return;
    }
    assert_refused(
        c,
        "res-net",
        json!({ "network": { "classID": 1048577 } }),
        &["resources.network", "not applied by tent"],
    );
    assert_refused(
        c,
        "res-rdma",
        json!({ "rdma": { "mlx5_0": { "hcaHandles": 3 } } }),
        &["resources.rdma"],
    );
}
