//! The runtime's cgroup numbers as containerd's `Metrics` messages (cgroup v1 or
//! v2 type), and the `ProcessDetails` that name exec processes in `Pids`.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use tent_runtime::Stats;

use crate::error::{Error, Result};

const V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
const V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";
const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";

/// Encodes `stats` as the Metrics type containerd expects for the host's cgroup version.
pub fn to_any(stats: &Stats) -> Result<Any> {
    let (type_url, value) = if stats.cgroup_v2 {
        (V2_METRICS, v2_metrics(stats).write_to_bytes())
    } else {
        (V1_METRICS, v1_metrics(stats).write_to_bytes())
    };
    Ok(Any {
        type_url: type_url.to_string(),
        value: value.map_err(|e| Error::Internal(format!("encode metrics: {e}")))?,
        ..Default::default()
    })
}

fn stat(stats: &Stats, key: &str) -> u64 {
    stats.memory.stat.get(key).copied().unwrap_or(0)
}

fn v1_metrics(s: &Stats) -> v1::Metrics {
    let m = &s.memory;
    v1::Metrics {
        pids: MessageField::some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: s.cpu.usage_total_ns,
                kernel: s.cpu.usage_kernel_ns,
                user: s.cpu.usage_user_ns,
                per_cpu: s.cpu.per_cpu_ns.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(v1::Throttle {
                periods: s.cpu.periods,
                throttled_periods: s.cpu.throttled_periods,
                throttled_time: s.cpu.throttled_time_ns,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(v1::MemoryStat {
            cache: m.cache,
            rss: m.rss,
            rss_huge: stat(s, "rss_huge"),
            mapped_file: stat(s, "mapped_file"),
            dirty: stat(s, "dirty"),
            writeback: stat(s, "writeback"),
            pg_pg_in: stat(s, "pgpgin"),
            pg_pg_out: stat(s, "pgpgout"),
            pg_fault: stat(s, "pgfault"),
            pg_maj_fault: stat(s, "pgmajfault"),
            inactive_anon: stat(s, "inactive_anon"),
            active_anon: stat(s, "active_anon"),
            inactive_file: stat(s, "inactive_file"),
            active_file: stat(s, "active_file"),
            unevictable: stat(s, "unevictable"),
            hierarchical_memory_limit: stat(s, "hierarchical_memory_limit"),
            hierarchical_swap_limit: stat(s, "hierarchical_memsw_limit"),
            total_cache: stat(s, "total_cache"),
            total_rss: stat(s, "total_rss"),
            total_rss_huge: stat(s, "total_rss_huge"),
            total_mapped_file: stat(s, "total_mapped_file"),
            total_dirty: stat(s, "total_dirty"),
            total_writeback: stat(s, "total_writeback"),
            total_pg_pg_in: stat(s, "total_pgpgin"),
            total_pg_pg_out: stat(s, "total_pgpgout"),
            total_pg_fault: stat(s, "total_pgfault"),
            total_pg_maj_fault: stat(s, "total_pgmajfault"),
            total_inactive_anon: stat(s, "total_inactive_anon"),
            total_active_anon: stat(s, "total_active_anon"),
            total_inactive_file: stat(s, "total_inactive_file"),
            total_active_file: stat(s, "total_active_file"),
            total_unevictable: stat(s, "total_unevictable"),
            usage: MessageField::some(v1::MemoryEntry {
                limit: m.limit,
                usage: m.usage,
                max: m.max_usage,
                failcnt: m.failcnt,
                ..Default::default()
            }),
            swap: MessageField::some(v1::MemoryEntry {
                limit: m.swap_limit,
                usage: m.swap_usage,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory_oom_control: MessageField::some(v1::MemoryOomControl {
            under_oom: m.oom_events,
            oom_kill: m.oom_kill,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn v2_metrics(s: &Stats) -> v2::Metrics {
    let m = &s.memory;
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: s.cpu.usage_total_ns / 1000,
            user_usec: s.cpu.usage_user_ns / 1000,
            system_usec: s.cpu.usage_kernel_ns / 1000,
            nr_periods: s.cpu.periods,
            nr_throttled: s.cpu.throttled_periods,
            throttled_usec: s.cpu.throttled_time_ns / 1000,
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: m.anon,
            file: m.file,
            kernel_stack: stat(s, "kernel_stack"),
            slab: stat(s, "slab"),
            sock: stat(s, "sock"),
            shmem: stat(s, "shmem"),
            file_mapped: stat(s, "file_mapped"),
            file_dirty: stat(s, "file_dirty"),
            file_writeback: stat(s, "file_writeback"),
            anon_thp: stat(s, "anon_thp"),
            inactive_anon: stat(s, "inactive_anon"),
            active_anon: stat(s, "active_anon"),
            inactive_file: stat(s, "inactive_file"),
            active_file: stat(s, "active_file"),
            unevictable: stat(s, "unevictable"),
            slab_reclaimable: stat(s, "slab_reclaimable"),
            slab_unreclaimable: stat(s, "slab_unreclaimable"),
            pgfault: stat(s, "pgfault"),
            pgmajfault: stat(s, "pgmajfault"),
            usage: m.usage,
            usage_limit: m.limit,
            swap_usage: m.swap_usage,
            swap_limit: m.swap_limit,
            max_usage: m.max_usage,
            ..Default::default()
        }),
        memory_events: MessageField::some(v2::MemoryEvents {
            max: m.failcnt,
            oom: m.oom_events,
            oom_kill: m.oom_kill,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `info` for an exec process in a `Pids` reply (as runc's shim sends it).
pub fn process_details(exec_id: &str) -> Option<Any> {
    let details = ProcessDetails {
        exec_id: exec_id.to_string(),
        ..Default::default()
    };
    Some(Any {
        type_url: PROCESS_DETAILS.to_string(),
        value: details.write_to_bytes().ok()?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_metrics_carry_the_numbers() {
        let mut stats = Stats::default();
        stats.memory.usage = 4096;
        stats.memory.limit = 1 << 20;
        stats.cpu.usage_total_ns = 5_000_000;
        stats.pids.current = 3;
        let any = to_any(&stats).expect("v1");
        assert_eq!(any.type_url, V1_METRICS);
        let m = v1::Metrics::parse_from_bytes(&any.value).expect("decode v1");
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 1 << 20);
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.pids.current, 3);

        stats.cgroup_v2 = true;
        let any = to_any(&stats).expect("v2");
        assert_eq!(any.type_url, V2_METRICS);
        let m = v2::Metrics::parse_from_bytes(&any.value).expect("decode v2");
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.usage_limit, 1 << 20);
        assert_eq!(m.cpu.usage_usec, 5000);
        assert_eq!(m.pids.current, 3);
    }
}
