//! `linux.resources` → one plan of cgroup file writes, used both at create and
//! by Update, so a value is validated (an error names the field) and converted
//! (cpu shares → v2 weight, OCI memory+swap → v2 swap alone) in one place.
//! [`update`] applies a plan with the old values saved, so a write the kernel
//! refuses rolls back the ones before it: nothing changes on error. Zero means
//! "leave unchanged" (as runc); `-1` means unlimited. Devices have their own
//! module ([`super::devices`]; Update replaces the v2 program), block I/O its own
//! ([`super::blockio`]); huge page limits and v2's `unified` files are here; `network`
//! (net_cls/net_prio) and `rdma` are refused. containerd sends the container's full
//! resources on every update, so each write must be idempotent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxHugepageLimit, LinuxResources};

use super::{devices, read_file, write_file, CgroupManager};
use crate::error::{Error, Result};

/// One cgroup file write of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: PathBuf,
    pub value: String,
    /// For files holding one line per device (`MAJ:MIN …`): how [`update`] finds the old
    /// value to roll back to, the line of the same key, or `reset` if there was none.
    pub keyed: Option<Keyed>,
}

/// The key of a per-device line, and the value that removes the line's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub key: String,
    pub reset: String,
}

impl Write {
    pub fn plain(path: PathBuf, value: String) -> Write {
        Write {
            path,
            value,
            keyed: None,
        }
    }
    pub fn keyed(path: PathBuf, value: String, key: &str, reset: String) -> Write {
        Write {
            path,
            value,
            keyed: Some(Keyed {
                key: key.to_string(),
                reset,
            }),
        }
    }
    /// The value that restores what `before` (the file's content) had for this write.
    fn restore(&self, before: &str) -> String {
        match &self.keyed {
            None => before.trim().to_string(),
            Some(k) => before
                .lines()
                .find(|l| l.split_whitespace().next() == Some(k.key.as_str()))
                .map_or_else(|| k.reset.clone(), |l| l.trim().to_string()),
        }
    }
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::spec(format!("resources.{field}"), reason)
}

/// `None` for unset or 0 (unchanged); an error for negatives other than -1.
pub(crate) fn limit(field: &str, v: Option<i64>) -> Result<Option<i64>> {
    match v {
        None | Some(0) => Ok(None),
        Some(v) if v < -1 => Err(invalid(
            field,
            format!("{v} is negative (only -1, unlimited, is allowed)"),
        )),
        Some(v) => Ok(Some(v)),
    }
}

/// Parses a cpuset list (`0-3,5`).
pub(crate) fn parse_list(field: &str, s: &str) -> Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.trim().is_empty()) {
        let bad = || invalid(field, format!("{s:?} is not a list like 0-3,5"));
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a > b || b - a > 65536 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// Checks `list` against the host's online cpus or memory nodes.
fn check_cpuset(field: &str, list: &str, online_file: &str) -> Result<()> {
    let want = parse_list(field, list)?;
    let online = match std::fs::read_to_string(online_file) {
        Ok(s) => parse_list(field, &s)?,
        Err(_) => BTreeSet::from([0]),
    };
    if let Some(bad) = want.iter().find(|c| !online.contains(c)) {
        return Err(invalid(
            field,
            format!(
                "{list:?}: {bad} is not online on this host (online: {})",
                std::fs::read_to_string(online_file)
                    .unwrap_or_else(|_| "0".into())
                    .trim()
            ),
        ));
    }
    Ok(())
}

/// `-1` → `max` on v2 and `-1` on v1.
fn v2_max(v: i64) -> String {
    if v == -1 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Validates `r` and turns it into ordered writes. Reads (never writes) the
/// cgroup where the order or a combined value depends on the current state.
/// v2 `cpu.weight` (1..=10000) for v1 `cpu.shares` (2..=262144), as runc converts.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// Validates `r` and turns it into the writes that apply it to `cg`, in order.
pub fn plan(cg: &CgroupManager, r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w: Vec<Write> = Vec::new();
    let v2 = cg.v2();
    if let Some(mem) = r.memory() {
        let lim = limit("memory.limit", mem.limit())?;
        let res = limit("memory.reservation", mem.reservation())?;
        let mut swap = limit("memory.swap", mem.swap())?;
        if let (Some(l), Some(s)) = (lim, swap) {
            if l > 0 && s > 0 && s < l {
                return Err(invalid(
                    "memory.swap",
                    format!("memory+swap limit {s} is below the memory limit {l}"),
                ));
            }
        }
        if lim == Some(-1) && swap.is_none() {
            swap = Some(-1);
        }
        let dir = cg.dir_for("memory")?;
        if v2 {
            if let Some(l) = lim {
                w.push(Write::plain(dir.join("memory.max"), v2_max(l)));
            }
            if let Some(v) = res {
                w.push(Write::plain(dir.join("memory.low"), v2_max(v)));
            }
            if let Some(s) = swap {
                let value = match (s, lim) {
                    (-1, _) => "max".to_string(),
                    (_, Some(l)) if l > 0 => (s - l).to_string(),
                    (_, Some(_)) => "max".to_string(),
                    (_, None) => {
                        return Err(invalid(
                            "memory.swap",
                            "cannot set a swap limit without a memory limit on cgroup v2",
                        ))
                    }
                };
                let path = dir.join("memory.swap.max");
                if path.exists() {
                    w.push(Write::plain(path, value));
                }
            }
        } else {
            let mem_w = lim.map(|l| Write::plain(dir.join("memory.limit_in_bytes"), l.to_string()));
            let memsw_path = dir.join("memory.memsw.limit_in_bytes");
            let swap_w = swap
                .filter(|_| memsw_path.exists())
                .map(|s| Write::plain(memsw_path, s.to_string()));
            // memsw must stay ≥ memory at every step: raise memsw first when growing.
            let swap_first = match (swap, &mem_w) {
                (Some(-1), _) => true,
                (Some(s), Some(_)) => {
                    let cur: i64 = read_file(&dir.join("memory.limit_in_bytes"))?
                        .trim()
                        .parse()
                        .unwrap_or(i64::MAX);
                    cur < s
                }
                _ => false,
            };
            if swap_first {
                w.extend(swap_w.clone());
                w.extend(mem_w);
            } else {
                w.extend(mem_w);
                w.extend(swap_w);
            }
            if let Some(v) = res {
                w.push(Write::plain(
                    dir.join("memory.soft_limit_in_bytes"),
                    v.to_string(),
                ));
            }
        }
    }
    if let Some(cpu) = r.cpu() {
        let shares = cpu.shares().filter(|s| *s != 0);
        if let Some(s) = shares {
            if !(2..=262144).contains(&s) {
                return Err(invalid("cpu.shares", format!("{s} is outside 2..=262144")));
            }
        }
        let quota = limit("cpu.quota", cpu.quota())?;
        if let Some(q) = quota {
            if q != -1 && q < 1000 {
                return Err(invalid(
                    "cpu.quota",
                    format!("{q} µs is below the kernel's minimum of 1000"),
                ));
            }
        }
        let period = cpu.period().filter(|p| *p != 0);
        if let Some(p) = period {
            if !(1000..=1_000_000).contains(&p) {
                return Err(invalid(
                    "cpu.period",
                    format!("{p} µs is outside 1000..=1000000"),
                ));
            }
        }
        let cpus = cpu.cpus().as_deref().filter(|s| !s.trim().is_empty());
        if let Some(c) = cpus {
            check_cpuset("cpu.cpus", c, "/sys/devices/system/cpu/online")?;
        }
        let mems = cpu.mems().as_deref().filter(|s| !s.trim().is_empty());
        if let Some(m) = mems {
            check_cpuset("cpu.mems", m, "/sys/devices/system/node/online")?;
        }
        if shares.is_some() || quota.is_some() || period.is_some() {
            let dir = cg.dir_for("cpu")?;
            if v2 {
                if let Some(s) = shares {
                    w.push(Write::plain(
                        dir.join("cpu.weight"),
                        cpu_weight(s).to_string(),
                    ));
                }
                if quota.is_some() || period.is_some() {
                    let cur = read_file(&dir.join("cpu.max"))?;
                    let mut it = cur.split_whitespace();
                    let cur_q = it.next().unwrap_or("max").to_string();
                    let cur_p = it.next().unwrap_or("100000").to_string();
                    let q = quota.map_or(cur_q, v2_max);
                    let p = period.map_or(cur_p, |p| p.to_string());
                    w.push(Write::plain(dir.join("cpu.max"), format!("{q} {p}")));
                }
            } else {
                if let Some(s) = shares {
                    w.push(Write::plain(dir.join("cpu.shares"), s.to_string()));
                }
                if let Some(p) = period {
                    w.push(Write::plain(dir.join("cpu.cfs_period_us"), p.to_string()));
                }
                if let Some(q) = quota {
                    w.push(Write::plain(dir.join("cpu.cfs_quota_us"), q.to_string()));
                }
            }
        }
        if cpus.is_some() || mems.is_some() {
            let dir = cg.dir_for("cpuset")?;
            if let Some(c) = cpus {
                w.push(Write::plain(dir.join("cpuset.cpus"), c.trim().to_string()));
            }
            if let Some(m) = mems {
                w.push(Write::plain(dir.join("cpuset.mems"), m.trim().to_string()));
            }
        }
    }
    if let Some(pids) = r.pids() {
        if let Some(l) = limit("pids.limit", Some(pids.limit()))? {
            w.push(Write::plain(
                cg.dir_for("pids")?.join("pids.max"),
                if l > 0 { l.to_string() } else { "max".into() },
            ));
        }
    }
    if let Some(b) = r.block_io() {
        super::blockio::plan(cg, b, &mut w)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        w.push(hugepage_limit(cg, &format!("hugepageLimits[{i}]"), h)?);
    }
    if r.network().is_some() {
        return Err(invalid(
            "network",
            "net_cls/net_prio (classID, priorities) are not applied by tent",
        ));
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(invalid(
            "rdma",
            "the rdma controller is not applied by tent",
        ));
    }
    // Last, as runc: a unified value overrides what the fields above wrote.
    for (key, value) in r.unified().iter().flatten().collect::<BTreeMap<_, _>>() {
        unified(cg, key, value, &mut w)?;
    }
    Ok(w)
}

/// `hugetlb.<size>.limit_in_bytes` (v1) or `hugetlb.<size>.max` (v2, with the reservation
/// limit `hugetlb.<size>.rsvd.max` too where the kernel has it, as runc). kubelet sends a
/// limit for every page size the node has, 0 for those the pod did not ask for: dropping them
/// would let any container take the node's huge pages.
fn hugepage_limit(cg: &CgroupManager, field: &str, h: &LinuxHugepageLimit) -> Result<Write> {
    let size = h.page_size();
    let well_formed = size
        .strip_suffix("KB")
        .or_else(|| size.strip_suffix("MB"))
        .or_else(|| size.strip_suffix("GB"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    if !well_formed {
        return Err(invalid(
            &format!("{field}.pageSize"),
            format!("{size:?} is not a page size like 2MB or 1GB"),
        ));
    }
    if h.limit() < 0 {
        return Err(invalid(
            &format!("{field}.limit"),
            format!("{} is negative", h.limit()),
        ));
    }
    let dir = cg.dir_for("hugetlb").map_err(|_| {
        invalid(
            field,
            "the hugetlb cgroup controller is not mounted on this host: huge page limits cannot be applied",
        )
    })?;
    let file = if cg.v2() {
        format!("hugetlb.{size}.max")
    } else {
        format!("hugetlb.{size}.limit_in_bytes")
    };
    let path = dir.join(&file);
    if !path.exists() {
        return Err(invalid(
            &format!("{field}.pageSize"),
            format!(
                "{size}: no {} (the page size is not supported here, or the hugetlb controller is not enabled for this cgroup)",
                path.display()
            ),
        ));
    }
    Ok(Write::plain(path, h.limit().to_string()))
}

/// One `unified` entry (v2 only): a file of the container's cgroup by name, each line of the
/// value written on its own. Names are checked, not trusted: no path, only
/// `controller.parameter` files that exist, and none of the `cgroup.*` files that move
/// processes or change the tree (only the two `cgroup.max.*` limits).
fn unified(cg: &CgroupManager, key: &str, value: &str, w: &mut Vec<Write>) -> Result<()> {
    let field = format!("unified[{key:?}]");
    if !cg.v2() {
        return Err(invalid(
            &field,
            "unified is cgroup v2's; this host's cgroups are v1",
        ));
    }
    let well_formed = key.split_once('.').is_some_and(|(c, p)| {
        !c.is_empty()
            && !p.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    });
    if !well_formed {
        return Err(invalid(
            &field,
            "not a cgroup file name of the form controller.parameter",
        ));
    }
    if key.starts_with("cgroup.") && key != "cgroup.max.depth" && key != "cgroup.max.descendants" {
        return Err(invalid(
            &field,
            "cgroup.* files other than cgroup.max.depth/cgroup.max.descendants are tent's to manage",
        ));
    }
    let path = cg.v2_dir().join(key);
    if !path.is_file() {
        return Err(invalid(
            &field,
            format!(
                "{} does not exist (is its controller enabled for this cgroup?)",
                path.display()
            ),
        ));
    }
    for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        w.push(Write::plain(path.clone(), line.to_string()));
    }
    Ok(())
}

/// Applies `r` to a live cgroup, all or nothing. On v2, `devices` replaces
/// the device program: loaded before any write (a rule or kernel error changes
/// nothing), attached after them (a failure rolls them back). On v1 `devices`
/// is ignored, as before (see [`super::devices`]).
pub fn update(cg: &CgroupManager, r: &LinuxResources) -> Result<()> {
    let writes = plan(cg, r)?;
    let filter = devices::load_for_update(cg, r.devices().as_deref())?;
    let mut old: Vec<Write> = Vec::new();
    for wr in &writes {
        let before = read_file(&wr.path)?;
        old.push(Write::plain(wr.path.clone(), wr.restore(&before)));
    }
    let rollback = |done: &[Write]| {
        for o in done.iter().rev() {
            if let Err(re) = write_file(&o.path, &o.value) {
                log::warn!("update: rolling back {}: {re}", o.path.display());
            }
        }
    };
    for (i, wr) in writes.iter().enumerate() {
        if let Err(e) = write_file(&wr.path, &wr.value) {
            rollback(old.get(..i).unwrap_or_default());
            return Err(e);
        }
    }
    if let Some(f) = filter {
        if let Err(e) = f.install(&cg.v2_dir()) {
            rollback(&old);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("cpu.cpus", "0-2,5").ok(),
            Some(BTreeSet::from([0, 1, 2, 5]))
        );
        assert!(parse_list("cpu.cpus", "3-1").is_err());
        assert!(parse_list("cpu.cpus", "a").is_err());
        let e = check_cpuset("cpu.cpus", "0,4096", "/sys/devices/system/cpu/online")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("resources.cpu.cpus: \"0,4096\": 4096 is not online"),
            "{e}"
        );
    }

    #[test]
    fn weight_from_shares() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(512), 20);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(1), 1);
    }

    #[test]
    fn limits() {
        assert_eq!(limit("memory.limit", Some(0)).ok(), Some(None));
        assert_eq!(limit("memory.limit", Some(-1)).ok(), Some(Some(-1)));
        let e = limit("memory.limit", Some(-5))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "resources.memory.limit: -5 is negative (only -1, unlimited, is allowed)"
        );
    }
}
