//! Resource usage of the container's cgroup (v1 or v2), as plain numbers that
//! map onto containerd's `io.containerd.cgroups.v1.Metrics` and `….v2.Metrics`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{read_file, CgroupManager};
use crate::error::Result;

/// Memory usage. Unlimited limits are `u64::MAX`. Fields that one cgroup
/// version does not have stay 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// v1 `memory.usage_in_bytes`; v2 `memory.current`.
    pub usage: u64,
    /// v1 `memory.max_usage_in_bytes`; v2 `memory.peak` (0 when the kernel lacks it).
    pub max_usage: u64,
    /// v1 `memory.limit_in_bytes`; v2 `memory.max`.
    pub limit: u64,
    /// v1 `memory.failcnt`; v2 the `max` count of `memory.events`.
    pub failcnt: u64,
    /// v1 `cache` of `memory.stat`; v2 `file`.
    pub cache: u64,
    /// v1 `rss` of `memory.stat`; v2 `anon`.
    pub rss: u64,
    /// v1 `memory.memsw.usage_in_bytes` (memory + swap); v2 `memory.swap.current` (swap only).
    pub swap_usage: u64,
    /// v1 `memory.memsw.limit_in_bytes`; v2 `memory.swap.max`.
    pub swap_limit: u64,
    /// v2 `anon` of `memory.stat` (v1: `rss`).
    pub anon: u64,
    /// v2 `file` of `memory.stat` (v1: `cache`).
    pub file: u64,
    /// v2 `oom` of `memory.events`; v1 1 while `under_oom`.
    pub oom_events: u64,
    /// `oom_kill` of v2 `memory.events` / v1 `memory.oom_control`.
    pub oom_kill: u64,
    /// Every numeric line of `memory.stat`, for the full containerd MemoryStat.
    pub stat: BTreeMap<String, u64>,
}

/// CPU usage in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_total_ns: u64,
    pub usage_user_ns: u64,
    /// System (kernel) time.
    pub usage_kernel_ns: u64,
    /// v1 `cpuacct.usage_percpu` (empty on v2).
    pub per_cpu_ns: Vec<u64>,
    /// `nr_periods` of `cpu.stat`.
    pub periods: u64,
    /// `nr_throttled` of `cpu.stat`.
    pub throttled_periods: u64,
    /// v1 `throttled_time`; v2 `throttled_usec` × 1000.
    pub throttled_time_ns: u64,
}

/// Process count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `pids.max`; 0 when unlimited (`max`), as containerd reports it.
    pub limit: u64,
}

/// A snapshot of the container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub cgroup_v2: bool,
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    pub pids: PidsStats,
}

/// `"max"` → `u64::MAX`, a number → itself, anything else (or missing) → 0.
fn value(dir: &Path, file: &str) -> u64 {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(s) if s.trim() == "max" => u64::MAX,
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => 0,
    }
}

/// `key value` lines of a flat-keyed file.
fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

pub(crate) fn collect(cg: &CgroupManager) -> Result<Stats> {
    if cg.v2() {
        return collect_v2(cg);
    }
    let mut s = Stats::default();
    if let Some(dir) = cg.v1_dir("memory") {
        // The cgroup must exist; everything else is best effort.
        read_file(&dir.join("memory.usage_in_bytes"))?;
        let stat = keyed(&dir, "memory.stat");
        let oom = keyed(&dir, "memory.oom_control");
        s.memory = MemoryStats {
            usage: value(&dir, "memory.usage_in_bytes"),
            max_usage: value(&dir, "memory.max_usage_in_bytes"),
            limit: value(&dir, "memory.limit_in_bytes"),
            failcnt: value(&dir, "memory.failcnt"),
            cache: get(&stat, "cache"),
            rss: get(&stat, "rss"),
            swap_usage: value(&dir, "memory.memsw.usage_in_bytes"),
            swap_limit: value(&dir, "memory.memsw.limit_in_bytes"),
            anon: get(&stat, "rss"),
            file: get(&stat, "cache"),
            oom_events: get(&oom, "under_oom"),
            oom_kill: get(&oom, "oom_kill"),
            stat,
        };
    }
    if let Some(dir) = cg.v1_dir("cpuacct") {
        s.cpu.usage_total_ns = value(&dir, "cpuacct.usage");
        s.cpu.usage_user_ns = value(&dir, "cpuacct.usage_user");
        s.cpu.usage_kernel_ns = value(&dir, "cpuacct.usage_sys");
        s.cpu.per_cpu_ns = std::fs::read_to_string(dir.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
    }
    if let Some(dir) = cg.v1_dir("cpu") {
        let st = keyed(&dir, "cpu.stat");
        s.cpu.periods = get(&st, "nr_periods");
        s.cpu.throttled_periods = get(&st, "nr_throttled");
        s.cpu.throttled_time_ns = get(&st, "throttled_time");
    }
    if let Some(dir) = cg.v1_dir("pids") {
        s.pids = pids(&dir);
    }
    Ok(s)
}

fn pids(dir: &Path) -> PidsStats {
    PidsStats {
        current: value(dir, "pids.current"),
        limit: match value(dir, "pids.max") {
            u64::MAX => 0,
            v => v,
        },
    }
}

fn collect_v2(cg: &CgroupManager) -> Result<Stats> {
    let dir = cg.v2_dir();
    // The cgroup must exist; a missing controller file just reads as 0.
    read_file(&dir.join("cgroup.procs"))?;
    let stat = keyed(&dir, "memory.stat");
    let events = keyed(&dir, "memory.events");
    let cpu = keyed(&dir, "cpu.stat");
    Ok(Stats {
        cgroup_v2: true,
        memory: MemoryStats {
            usage: value(&dir, "memory.current"),
            max_usage: value(&dir, "memory.peak"),
            limit: value(&dir, "memory.max"),
            failcnt: get(&events, "max"),
            cache: get(&stat, "file"),
            rss: get(&stat, "anon"),
            swap_usage: value(&dir, "memory.swap.current"),
            swap_limit: value(&dir, "memory.swap.max"),
            anon: get(&stat, "anon"),
            file: get(&stat, "file"),
            oom_events: get(&events, "oom"),
            oom_kill: get(&events, "oom_kill"),
            stat,
        },
        cpu: CpuStats {
            usage_total_ns: get(&cpu, "usage_usec").saturating_mul(1000),
            usage_user_ns: get(&cpu, "user_usec").saturating_mul(1000),
            usage_kernel_ns: get(&cpu, "system_usec").saturating_mul(1000),
            per_cpu_ns: Vec::new(),
            periods: get(&cpu, "nr_periods"),
            throttled_periods: get(&cpu, "nr_throttled"),
            throttled_time_ns: get(&cpu, "throttled_usec").saturating_mul(1000),
        },
        pids: pids(&dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_values() {
        let dir = std::env::temp_dir().join(format!("tent-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        std::fs::write(dir.join("a"), "max\n").ok();
        std::fs::write(dir.join("b"), "123\n").ok();
        std::fs::write(dir.join("c"), "anon 5\nfile 7\nbad\n").ok();
        assert_eq!(value(&dir, "a"), u64::MAX);
        assert_eq!(value(&dir, "b"), 123);
        assert_eq!(value(&dir, "missing"), 0);
        let m = keyed(&dir, "c");
        assert_eq!((get(&m, "anon"), get(&m, "file"), m.len()), (5, 7, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
