//! Pods through containerd's CRI exactly as kubelet drives them, on the handlers `tent`,
//! `tent-pauseless` (containerd 2.x) and `runc` in the same run (`on_each_handler`: runc
//! validates every assertion):
//! - RunPodSandbox → CreateContainer → StartContainer → Running; ExecSync's output and exit
//!   code; the container log in CRI format and ReopenContainerLog; one shim per pod, none after
//!   StopPodSandbox + RemovePodSandbox (the `Pod` guard's leak check);
//! - ContainerStats / ListContainerStats / ListPodSandboxStats non-zero;
//! - the container's cgroup under the pod's cgroupfs `cgroup_parent`, UpdateContainerResources
//!   reaching its files, the read-only `/sys/fs/cgroup` view showing the container's own limit;
//! - StopContainer's grace period (SIGKILL after it: 137; a SIGTERM handler's own code);
//! - the pod's shared network (TCP on 127.0.0.1), IPC and UTS namespaces; the pid namespace
//!   shared only with shareProcessNamespace;
//! - a container restarted in the same pod (attempt 1);
//! - StopPodSandbox with running containers: both killed (137), the pod not ready, its shim
//!   (and a pauseless pod's pins) kept until RemovePodSandbox, which leaves nothing;
//! - securityContext: runAsUser/Group, supplementalGroups, readOnlyRootFilesystem,
//!   capabilities add/drop, allowPrivilegeEscalation=false, the default masked and read-only
//!   /proc and /sys paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tent_integration::cri::*;
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];

fn run_pod<'c, 'a>(cri: &'c Cri<'a>, name: &str, handler: &str) -> Pod<'c, 'a> {
    Pod::run(cri, pod_config(cri.containerd(), name), handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"))
}

/// The container's log file (pod log directory + its `log_path`).
fn log_file(pod: &Pod, c: &ContainerConfig) -> PathBuf {
    Path::new(&pod.config.log_directory).join(&c.log_path)
}

/// Wait until `f` holds for the log file's content; the content.
#[track_caller]
fn wait_log(path: &Path, what: &str, f: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if f(&s) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{}: no {what} after 20 s; content: {s:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Is `ts` an RFC 3339 timestamp with nanoseconds (`2026-12-01T22:13:27.123456789Z` or with
/// a `+hh:mm` offset), as CRI's log format has?
fn is_rfc3339_nano(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 21 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' {
        return false;
    }
    if !digits(8..10) || b[10] != b'T' || !digits(11..13) || b[13] != b':' || !digits(14..16) {
        return false;
    }
    if b[16] != b':' || !digits(17..19) || b[19] != b'.' {
        return false;
    }
    let frac = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
    let zone = &ts[20 + frac..];
    (1..=9).contains(&frac)
        && (zone == "Z"
            || (zone.len() == 6
                && (zone.starts_with('+') || zone.starts_with('-'))
                && zone.as_bytes()[3] == b':'))
}

/// The log's `(stream, tag, text)` entries; panics on a line not in CRI format.
#[track_caller]
fn cri_log_entries(content: &str) -> Vec<(String, String, String)> {
    content
        .lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let (ts, stream, tag, text) = (
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
            );
            assert!(is_rfc3339_nano(ts), "timestamp {ts:?} in log line {l:?}");
            assert!(
                stream == "stdout" || stream == "stderr",
                "stream {stream:?} in {l:?}"
            );
            assert!(tag == "F" || tag == "P", "tag {tag:?} in {l:?}");
            (stream.to_string(), tag.to_string(), text.to_string())
        })
        .collect()
}

#[test]
fn pod_runs_containers_with_exec_sync_logs_and_one_shim() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "lifecycle", handler);
        let st = cri.pod_sandbox_status(&pod.id).expect("PodSandboxStatus");
        assert_eq!(
            st.status.map(|s| s.state),
            Some(api::PodSandboxState::SandboxReady as i32)
        );
        // The sandbox's pid: the pause process's, or 0 for a pauseless pod (no process).
        let info: Value = serde_json::from_str(st.info.get("info").map_or("{}", String::as_str))
            .expect("PodSandboxStatus info json");
        let sandbox_pid = info["pid"].as_i64();
        if is_pauseless(handler) {
            assert_eq!(sandbox_pid, Some(0), "{handler}: {info}");
        } else {
            assert!(sandbox_pid.is_some_and(|p| p > 0), "{handler}: {info}");
        }
        let app_cfg = container_config(
            "app",
            &[
                "sh",
                "-c",
                "echo hello-stdout; echo hello-stderr >&2; exec /bin/tent-testbin wait-term",
            ],
        );
        let app = pod.run_container(&app_cfg);
        let side = pod.run_container(&container_config("side", &WAIT));
        let st = pod.wait_state(&app, ContainerState::ContainerRunning, Duration::ZERO);
        assert!(st.started_at > 0, "{st:?}");

        // ExecSync: output and exit code.
        let r = pod.exec(
            &app,
            &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 7"],
        );
        assert_eq!(String::from_utf8_lossy(&r.stdout), "exec-out\n");
        assert_eq!(String::from_utf8_lossy(&r.stderr), "exec-err\n");
        assert_eq!(r.exit_code, 7);
        assert_eq!(pod.exec_ok(&side, &["hostname"]).trim(), "lifecycle");

        // The log file, in CRI format.
        let log = log_file(&pod, &app_cfg);
        let content = wait_log(&log, "`ready`", |s| s.contains("stdout F ready"));
        let entries = cri_log_entries(&content);
        for (stream, text) in [
            ("stdout", "hello-stdout"),
            ("stderr", "hello-stderr"),
            ("stdout", "ready"),
        ] {
            assert!(
                entries
                    .iter()
                    .any(|(s, tag, t)| s == stream && tag == "F" && t == text),
                "{handler}: no `{stream} F {text}` in {content:?}"
            );
        }

        // ReopenContainerLog: kubelet renames the file, asks for a reopen, and new output lands
        // in a new file at the old path.
        let rotated = log.with_extension("log.1");
        std::fs::rename(&log, &rotated).expect("rename log");
        cri.reopen_container_log(&app)
            .unwrap_or_else(|e| panic!("ReopenContainerLog on {handler}: {e}"));
        pod.exec_ok(&app, &["sh", "-c", "echo after-reopen >/proc/1/fd/1"]);
        let fresh = wait_log(&log, "`after-reopen`", |s| s.contains("after-reopen"));
        cri_log_entries(&fresh);
        assert!(fresh.contains("stdout F after-reopen"), "{fresh:?}");
        assert!(!fresh.contains("hello-stdout"), "{fresh:?}");
        let old = std::fs::read_to_string(&rotated).expect("rotated log");
        assert!(!old.contains("after-reopen"), "{old:?}");

        // One shim for the whole pod (sandbox + 2 containers).
        let shims = pod.shim_pids();
        assert_eq!(
            shims.len(),
            1,
            "{handler}: shims of the pod: {:?}",
            shims.iter().map(|p| (p, cmdline(*p))).collect::<Vec<_>>()
        );
        // Stop + remove everything: no shim, mounts, cgroups, netns pin or state left.
        pod.remove();
    });
}

/// A `UInt64Value`'s value (0 when absent).
fn val(v: &Option<api::UInt64Value>) -> u64 {
    v.as_ref().map_or(0, |v| v.value)
}

#[test]
fn container_and_pod_stats_are_non_zero() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "stats", handler);
        // Some CPU, memory and a file in the writable layer.
        let id = pod.run_container(&container_config(
            "busy",
            &[
                "sh",
                "-c",
                "dd if=/dev/zero of=/fill bs=1M count=4 2>/dev/null; n=0; while [ $n -lt 20000 ]; do n=$((n+1)); done; exec /bin/tent-testbin wait-term",
            ],
        ));
        let t = Instant::now();
        let stats = loop {
            let s = cri
                .container_stats(&id)
                .unwrap_or_else(|e| panic!("ContainerStats on {handler}: {e}"));
            let ok = s
                .cpu
                .as_ref()
                .is_some_and(|c| val(&c.usage_core_nano_seconds) > 0)
                && s.memory
                    .as_ref()
                    .is_some_and(|m| val(&m.working_set_bytes) > 0)
                && s.writable_layer
                    .as_ref()
                    .is_some_and(|w| val(&w.used_bytes) > 0);
            if ok || t.elapsed() > Duration::from_secs(20) {
                break s;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let cpu = stats.cpu.unwrap_or_default();
        let mem = stats.memory.unwrap_or_default();
        assert!(
            val(&cpu.usage_core_nano_seconds) > 0,
            "{handler}: {stats:?}"
        );
        assert!(val(&mem.working_set_bytes) > 0, "{handler}: {stats:?}");
        // containerd measures the writable layer itself (the snapshot's usage).
        let wl = stats.writable_layer.clone().unwrap_or_default();
        assert!(
            val(&wl.used_bytes) >= 4 << 20,
            "{handler}: writable layer {wl:?}"
        );

        let list = cri
            .list_container_stats(&pod.id)
            .unwrap_or_else(|e| panic!("ListContainerStats on {handler}: {e}"));
        let mine = list
            .iter()
            .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == id))
            .unwrap_or_else(|| panic!("{handler}: {id} not in ListContainerStats {list:?}"));
        assert!(
            mine.cpu
                .as_ref()
                .is_some_and(|c| val(&c.usage_core_nano_seconds) > 0),
            "{mine:?}"
        );

        match cri.list_pod_sandbox_stats(&pod.id) {
            Ok(list) => {
                assert_eq!(list.len(), 1, "{handler}: {list:?}");
                let linux = list[0].linux.clone().unwrap_or_default();
                let cpu = linux.cpu.unwrap_or_default();
                let mem = linux.memory.unwrap_or_default();
                assert!(val(&cpu.usage_core_nano_seconds) > 0, "{handler}: {list:?}");
                assert!(val(&mem.working_set_bytes) > 0, "{handler}: {list:?}");
                assert!(
                    linux
                        .containers
                        .iter()
                        .any(|c| c.attributes.as_ref().is_some_and(|a| a.id == id)),
                    "{handler}: the pod's stats list its container: {list:?}"
                );
            }
            Err(e) if e.code() == tonic::Code::Unimplemented => {
                eprintln!(
                    "containerd {} does not implement ListPodSandboxStats: {e}",
                    ctd.version()
                );
            }
            Err(e) => panic!("ListPodSandboxStats on {handler}: {e}"),
        }
        pod.remove();
    });
}

/// Is this host's cgroup the unified (v2) hierarchy?
fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The host dir of `pid`'s cgroup for a v1 `controller` (the unified dir on v2), and its
/// path relative to the hierarchy's root.
fn host_cgroup(pid: i32, controller: &str) -> (PathBuf, String) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let v2 = cgroup_v2();
    for l in s.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        let rel = path.trim_start_matches('/').to_string();
        if v2 && ctrls.is_empty() {
            return (PathBuf::from("/sys/fs/cgroup").join(&rel), rel);
        }
        if !v2 && ctrls.split(',').any(|c| c == controller) {
            let root = cgroup_roots()
                .into_iter()
                .find(|r| {
                    r.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.split(',').any(|c| c == controller))
                })
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup").join(controller));
            return (root.join(&rel), rel);
        }
    }
    panic!("no {controller} cgroup for pid {pid} in:\n{s}");
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn cgroup_under_the_pod_parent_update_reaches_it_and_the_view_shows_it() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let v2 = cgroup_v2();
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "cgroups", handler);
        let mut c = container_config("c", &WAIT);
        let res = c
            .linux
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default);
        res.memory_limit_in_bytes = 96 << 20;
        let id = pod.run_container(&c);
        let pid = pod.pid(&id);

        // kubepods cgroupfs syntax: the container's cgroup is `<cgroup_parent>/<id>`.
        let parent = cgroup_parent(&pod.uid());
        let (mem_dir, rel) = host_cgroup(pid, "memory");
        assert_eq!(
            format!("/{rel}"),
            format!("{parent}/{id}"),
            "{handler}: the container's memory cgroup"
        );
        let (cpu_dir, cpu_rel) = host_cgroup(pid, "cpu");
        assert_eq!(format!("/{cpu_rel}"), format!("{parent}/{id}"));

        let (mem_file, view_file) = if v2 {
            ("memory.max", "/sys/fs/cgroup/memory.max")
        } else {
            (
                "memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            )
        };
        assert_eq!(
            read_trim(&mem_dir.join(mem_file)),
            (96u64 << 20).to_string()
        );
        // The container's read-only view of /sys/fs/cgroup: its own limit, nothing writable.
        assert_eq!(
            pod.exec_ok(&id, &["cat", view_file]).trim(),
            (96u64 << 20).to_string(),
            "{handler}: the container sees its own memory limit"
        );
        let dir_in_view = if v2 {
            "/sys/fs/cgroup/tent-probe"
        } else {
            "/sys/fs/cgroup/memory/tent-probe"
        };
        let r = pod.exec(&id, &["mkdir", dir_in_view]);
        assert_ne!(r.exit_code, 0, "{handler}: mkdir in the cgroup view worked");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("Read-only file system"),
            "{handler}: {r:?}"
        );

        // UpdateContainerResources reaches the cgroup files.
        let update = api::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        };
        cri.update_container_resources(&id, update)
            .unwrap_or_else(|e| panic!("UpdateContainerResources on {handler}: {e}"));
        assert_eq!(
            read_trim(&mem_dir.join(mem_file)),
            (64u64 << 20).to_string()
        );
        if v2 {
            assert_eq!(read_trim(&cpu_dir.join("cpu.max")), "50000 100000");
        } else {
            assert_eq!(read_trim(&cpu_dir.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read_trim(&cpu_dir.join("cpu.cfs_period_us")), "100000");
            assert_eq!(read_trim(&cpu_dir.join("cpu.shares")), "512");
        }
        assert_eq!(
            pod.exec_ok(&id, &["cat", view_file]).trim(),
            (64u64 << 20).to_string()
        );
        // containerd records the update in the container's status.
        let st = pod.wait_state(&id, ContainerState::ContainerRunning, Duration::ZERO);
        if let Some(r) = st.resources.and_then(|r| r.linux) {
            assert_eq!(r.memory_limit_in_bytes, 64 << 20, "{r:?}");
        }
        pod.remove();
    });
}

#[test]
fn stop_container_honours_the_grace_period() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "stop", handler);
        let stubborn = pod.run_container(&container_config(
            "stubborn",
            &["/bin/tent-testbin", "ignore-term"],
        ));
        let polite = pod.run_container(&container_config("polite", &WAIT));

        let t = Instant::now();
        cri.stop_container(&stubborn, 2)
            .unwrap_or_else(|e| panic!("StopContainer on {handler}: {e}"));
        let took = t.elapsed();
        let st = pod.wait_state(&stubborn, ContainerState::ContainerExited, Duration::ZERO);
        assert_eq!(st.exit_code, 137, "{handler}: {st:?}");
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_secs(8),
            "{handler}: a SIGTERM-ignoring container stopped with a 2 s grace period after {took:?}"
        );

        let t = Instant::now();
        cri.stop_container(&polite, 30)
            .unwrap_or_else(|e| panic!("StopContainer on {handler}: {e}"));
        let took = t.elapsed();
        let st = pod.wait_state(&polite, ContainerState::ContainerExited, Duration::ZERO);
        assert_eq!(
            st.exit_code, 42,
            "{handler}: the SIGTERM handler's exit code: {st:?}"
        );
        assert!(took < Duration::from_secs(10), "{handler}: took {took:?}");
        pod.remove();
    });
}

#[test]
fn containers_share_the_pods_network_ipc_and_uts() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "shared-ns", handler);
        let server = pod.run_container(&container_config(
            "server",
            &["/bin/tent-testbin", "echo-server", "8080"],
        ));
        let client = pod.run_container(&container_config("client", &WAIT));

        // TCP over the pod's loopback, from the other container.
        let t = Instant::now();
        loop {
            let r = pod.exec(
                &client,
                &[
                    "/bin/tent-testbin",
                    "connect",
                    "127.0.0.1:8080",
                    "ping-from-client",
                ],
            );
            if r.exit_code == 0 {
                assert_eq!(String::from_utf8_lossy(&r.stdout), "ping-from-client");
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{handler}: client cannot reach the server over 127.0.0.1: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        // Same net/ipc/uts namespaces, not the host's; a /dev/shm file seen by both.
        for ns in ["net", "ipc", "uts"] {
            let link = format!("/proc/self/ns/{ns}");
            let a = pod.exec_ok(&server, &["readlink", &link]);
            let b = pod.exec_ok(&client, &["readlink", &link]);
            let host = std::fs::read_link(&link).expect("readlink");
            assert_eq!(a, b, "{handler}: {ns} namespace of the two containers");
            assert_ne!(
                a.trim(),
                host.display().to_string(),
                "{handler}: {ns} is the host's"
            );
        }
        let token = unique_id("shm");
        pod.exec_ok(
            &server,
            &["sh", "-c", &format!("echo {token} > /dev/shm/probe")],
        );
        assert_eq!(
            pod.exec_ok(&client, &["cat", "/dev/shm/probe"]).trim(),
            token
        );
        for id in [&server, &client] {
            assert_eq!(pod.exec_ok(id, &["hostname"]).trim(), "shared-ns");
        }
        pod.remove();
    });
}

/// The command lines of the processes a container sees in its /proc.
fn visible_cmdlines(pod: &Pod, id: &str) -> String {
    pod.exec_ok(
        id,
        &[
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
        ],
    )
}

#[test]
fn share_process_namespace_shows_the_other_containers_processes() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        for shared in [true, false] {
            let mut cfg = pod_config(ctd, "share-pid");
            let mode = if shared {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            };
            pod_linux(&mut cfg)
                .security_context
                .get_or_insert_with(Default::default)
                .namespace_options
                .get_or_insert_with(pod_namespaces)
                .pid = mode as i32;
            let mut pod = Pod::run(&cri, cfg, handler)
                .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
            let with_mode = |name: &str, cmd: &[&str]| {
                let mut c = container_config(name, cmd);
                security_context(&mut c)
                    .namespace_options
                    .get_or_insert_with(pod_namespaces)
                    .pid = mode as i32;
                c
            };
            // Both handle SIGTERM (also as PID 1), so the teardown is quick.
            let a = pod.run_container(&with_mode(
                "a",
                &["/bin/tent-testbin", "echo-server", "9999"],
            ));
            let b = pod.run_container(&with_mode("b", &WAIT));
            let seen = visible_cmdlines(&pod, &b);
            let sees_a = seen.contains("tent-testbin echo-server");
            assert_eq!(
                sees_a, shared,
                "{handler}: shareProcessNamespace={shared}: container b sees {seen:?}"
            );
            let pid1 = pod.exec_ok(&b, &["sh", "-c", "tr '\\0' ' ' </proc/1/cmdline"]);
            if shared {
                // PID 1 is the sandbox's process, as with kubelet: the pause container's,
                // or tent's pod init in a pauseless pod.
                assert!(
                    !pid1.contains("tent-testbin"),
                    "{handler}: pid 1 is {pid1:?}"
                );
                if is_pauseless(handler) {
                    let comm = pod.exec_ok(&b, &["cat", "/proc/1/comm"]);
                    assert_eq!(comm.trim(), "tent-pod-init", "{handler}: pid 1");
                }
                let seen_a = visible_cmdlines(&pod, &a);
                assert!(
                    seen_a.contains("tent-testbin wait-term"),
                    "{handler}: {seen_a:?}"
                );
            } else {
                assert!(
                    pid1.contains("tent-testbin wait-term"),
                    "{handler}: pid 1 is {pid1:?}"
                );
            }
            pod.remove();
        }
    });
}

#[test]
fn container_restarted_in_the_same_pod_runs_again() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "restart", handler);
        let keeper = pod.run_container(&container_config("keeper", &WAIT));
        let mut c = container_config("c", &WAIT);
        let first = pod.run_container(&c);
        pod.exec_ok(&first, &["touch", "/tmp/first-attempt"]);
        pod.remove_container(&first, 10)
            .unwrap_or_else(|e| panic!("{handler}: stop/remove attempt 0: {e}"));

        // kubelet's restart: a new container, attempt 1, its own log file.
        c.metadata.as_mut().expect("metadata").attempt = 1;
        c.log_path = "c/1.log".to_string();
        let second = pod.run_container(&c);
        assert_ne!(first, second);
        let r = pod.exec(&second, &["test", "-e", "/tmp/first-attempt"]);
        assert_ne!(
            r.exit_code, 0,
            "{handler}: attempt 1 got attempt 0's writable layer"
        );
        let st = pod.wait_state(&second, ContainerState::ContainerRunning, Duration::ZERO);
        assert_eq!(st.metadata.map(|m| m.attempt), Some(1));
        let log = log_file(&pod, &c);
        wait_log(&log, "`ready`", |s| s.contains("stdout F ready"));
        let list = cri.list_containers(&pod.id).expect("ListContainers");
        assert!(
            !list.iter().any(|x| x.id == first),
            "{handler}: the removed attempt is still listed"
        );
        pod.wait_state(&keeper, ContainerState::ContainerRunning, Duration::ZERO);
        pod.remove();
    });
}

/// Container `name` running the status probe's waiter with a security context from `f`.
fn with_sc(name: &str, f: impl FnOnce(&mut api::LinuxContainerSecurityContext)) -> ContainerConfig {
    let mut c = container_config(name, &WAIT);
    f(security_context(&mut c));
    c
}

/// The container's mountinfo as `mount point → options`.
fn mount_options(pod: &Pod, id: &str) -> HashMap<String, String> {
    pod.exec_ok(id, &["cat", "/proc/self/mountinfo"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
        })
        .collect()
}

#[test]
fn security_context_fields_reach_the_process() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "security-context", handler);
        let user = pod.run_container(&with_sc("user", |sc| {
            sc.run_as_user = Some(api::Int64Value { value: 1000 });
            sc.run_as_group = Some(api::Int64Value { value: 1000 });
            sc.supplemental_groups = vec![2000, 3000];
            sc.readonly_rootfs = true;
            sc.no_new_privs = true;
        }));
        let caps = pod.run_container(&with_sc("caps", |sc| {
            sc.capabilities = Some(Capability {
                add_capabilities: vec!["SYS_NICE".to_string()],
                drop_capabilities: vec!["CHOWN".to_string(), "KILL".to_string()],
                ..Default::default()
            });
        }));

        let st = parse_status(&pod.exec_ok(&user, &["/bin/tent-testbin", "status"]));
        let ids = |k: &str| {
            st[k]
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("Uid"), ["1000"; 4], "{handler}: {st:?}");
        assert_eq!(ids("Gid"), ["1000"; 4], "{handler}: {st:?}");
        let groups = ids("Groups");
        for g in ["2000", "3000"] {
            assert!(
                groups.iter().any(|x| x == g),
                "{handler}: groups {groups:?}"
            );
        }
        assert_eq!(
            st["NoNewPrivs"], "1",
            "{handler}: allowPrivilegeEscalation=false"
        );
        // readOnlyRootFilesystem: / is read-only, the pod's /dev/shm is not.
        let r = pod.exec(&user, &["touch", "/probe"]);
        assert_ne!(r.exit_code, 0, "{handler}: wrote to a read-only root");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("Read-only file system"),
            "{handler}: {r:?}"
        );
        pod.exec_ok(&user, &["touch", "/dev/shm/probe"]);

        let st = parse_status(&pod.exec_ok(&caps, &["/bin/tent-testbin", "status"]));
        let want: Vec<&str> = DEFAULT_CAPS
            .iter()
            .copied()
            .filter(|c| *c != "CAP_CHOWN" && *c != "CAP_KILL")
            .chain(["CAP_SYS_NICE"])
            .collect();
        assert_eq!(
            parse_cap_mask(&st["CapEff"]),
            cap_mask(&want),
            "{handler}: CapEff {} (want {want:?})",
            st["CapEff"]
        );
        assert_eq!(
            parse_cap_mask(&st["CapBnd"]),
            cap_mask(&want),
            "{handler}: {st:?}"
        );

        // procMount Default: kubelet's masked paths are masked (those this kernel has), its
        // read-only paths read-only.
        for p in KUBELET_MASKED_PATHS {
            if !Path::new(p).exists() {
                eprintln!("{p} does not exist on this host: not checked");
                continue;
            }
            let out = pod.exec(
                &caps,
                &[
                    "sh",
                    "-c",
                    &format!("if [ -d {p} ]; then ls -A {p}; else cat {p}; fi"),
                ],
            );
            assert!(
                out.stdout.is_empty(),
                "{handler}: {p} is not masked: {:?}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let opts = mount_options(&pod, &caps);
        for p in KUBELET_READONLY_PATHS {
            if !Path::new(p).exists() {
                continue;
            }
            let o = opts
                .get(p)
                .unwrap_or_else(|| panic!("{handler}: {p} is not a mount: {opts:?}"));
            assert!(
                o.split(',').any(|x| x == "ro"),
                "{handler}: {p} mounted {o}"
            );
        }
        pod.remove();
    });
}

#[test]
fn stop_pod_sandbox_with_running_containers_kills_them_and_remove_leaves_nothing() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = run_pod(&cri, "stop-pod", handler);
        // One that exits 42 on SIGTERM, one that ignores it: 137 for both proves a SIGKILL.
        let a = pod.run_container(&container_config("a", &WAIT));
        let b = pod.run_container(&container_config(
            "b",
            &["/bin/tent-testbin", "ignore-term"],
        ));
        let pids = [pod.pid(&a), pod.pid(&b)];
        let shims = pod.shim_pids();
        assert_eq!(shims.len(), 1, "{handler}: shims of the pod: {shims:?}");
        let sandbox_bundle = ctd
            .state_dir()
            .join("io.containerd.sandbox.controller.v1.shim")
            .join(CRI_NAMESPACE)
            .join(&pod.id);

        // kubelet may go straight to StopPodSandbox (a pod deleted with grace period 0):
        // containerd's CRI kills the pod's containers itself, with no grace period, then
        // stops the sandbox.
        cri.stop_pod_sandbox(&pod.id)
            .unwrap_or_else(|e| panic!("StopPodSandbox on {handler}: {e}\n{}", ctd.log_tail(30)));
        for id in [&a, &b] {
            let st = pod.wait_state(id, ContainerState::ContainerExited, Duration::from_secs(30));
            assert_eq!(
                st.exit_code, 137,
                "{handler}: {id} after StopPodSandbox: {st:?}"
            );
            assert!(st.finished_at >= st.started_at, "{handler}: {st:?}");
        }
        for p in pids {
            assert!(
                !cmdline(p).contains("tent-testbin"),
                "{handler}: container process {p} runs after StopPodSandbox: {}",
                cmdline(p)
            );
        }
        let st = cri.pod_sandbox_status(&pod.id).expect("PodSandboxStatus");
        assert_eq!(
            st.status.as_ref().map(|s| s.state),
            Some(api::PodSandboxState::SandboxNotready as i32),
            "{handler}: {st:?}"
        );
        // A pauseless sandbox is shut down only at its removal, so its shim stays until
        // RemovePodSandbox. On the pause path it depends on containerd, not the runtime: on
        // the host's 1.6 the shim stays, in the v2 VM's 1.6 it exits at StopPodSandbox, for
        // tent and runc alike; there it is only logged.
        for p in &shims {
            let alive = Path::new(&format!("/proc/{p}")).exists();
            if is_pauseless(handler) {
                assert!(
                    alive,
                    "{handler}: the pod's shim {p} exited at StopPodSandbox"
                );
            } else {
                eprintln!("{handler}: the pod's shim {p} after StopPodSandbox: alive={alive}");
            }
        }
        // ... and so do a pauseless pod's namespace pins (ShutdownSandbox removes them).
        if is_pauseless(handler) {
            assert!(
                sandbox_bundle.join("ns-ipc").exists(),
                "{handler}: the pod's IPC pin went at StopPodSandbox ({})",
                sandbox_bundle.display()
            );
        }
        // Stop (again, a no-op) and remove: nothing left, shim and pins included.
        pod.remove();
        assert!(
            !sandbox_bundle.exists(),
            "{handler}: {} left",
            sandbox_bundle.display()
        );
    });
}
