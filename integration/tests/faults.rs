//! Faults around running containers and pods (issue #11).
//!
//! - containerd restarted (SIGTERM: its own shutdown) and crashed (SIGKILL) under
//!   [`CONTAINERS`] running containers, half through the Task API and half in two CRI pods;
//!   while it is down, [`OUTAGE_EXITS`] of them exit with distinct codes (a host `kill` of
//!   a SIGTERM handler that exits with its own code, or SIGKILL: 137). Once it is back on
//!   the same dir and config, the others still run and are served (exec, kill, CRI status,
//!   their log), every exit is reported with its code (the shim's Wait and State,
//!   `ctr task delete`, CRI's ContainerStatus) and never twice in the event stream, no
//!   shim dropped an event, and after delete nothing is left (shims, container processes,
//!   mounts, cgroups, bundles, CRI state). These two tests own their daemons
//!   ([`Containerd::start`]): a restart would break every other test on a shared one.
//! - a pod's shim SIGKILLed: containerd's `shim delete` cleans up (processes, rootfs mounts,
//!   cgroups, bundles), CRI reports 137 for every container, the pod is stopped and removed,
//!   and a new pod starts; the same for a Task API container's shim.
//!
//! Task API containers run on [`runtime()`], pods on the handler `tent`; with
//! `TENT_TEST_RUNTIME=io.containerd.runc.v2` both run on runc, which validates the tests
//! (running every scenario on both in CI would double the suite's time).
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{shim_state, shim_wait, task_status, wait_until};
use tent_integration::cri::*;
use tent_integration::*;

/// Running containers when containerd goes down: the 20, half per API. One pod's
/// shim serving five containers and a sandbox is the case a restart must not break; 20
/// start in 3-6 s on 2 busy cores, so each restart test stays near 30 s.
const CONTAINERS: usize = 20;
const TASKS: usize = CONTAINERS / 2;
const PODS: usize = 2;
const PER_POD: usize = (CONTAINERS - TASKS) / PODS;
/// Of each group, how many exit while containerd is down (the last of them by SIGKILL).
const TASK_OUTAGE_EXITS: usize = 5;
const POD_OUTAGE_EXITS: usize = 2;
const OUTAGE_EXITS: usize = TASK_OUTAGE_EXITS + PODS * POD_OUTAGE_EXITS;
/// How long containerd stays down once the outage's exits happened: a restart under load or
/// an upgrade takes seconds, and a shim must keep their events until it is back.
const OUTAGE: Duration = Duration::from_secs(5);
/// Generous bound for one step under load.
const T: Duration = Duration::from_secs(60);

/// A shell that exits with `code` on SIGTERM (also as PID 1: the trap is a handler, so a
/// host `kill` reaches it) and otherwise waits.
fn trap_exit(code: u32) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("trap 'exit {code}' TERM; while :; do sleep 1000 & wait $!; done"),
    ]
}

/// One container of the scenario.
#[derive(Debug, Clone)]
struct Victim {
    id: String,
    /// Its init's host pid.
    pid: i32,
    /// What its SIGTERM handler exits with.
    code: u32,
    /// The signal the test sends from the host while containerd is down (None: it keeps
    /// running and is stopped through containerd afterwards).
    outage: Option<i32>,
    /// Index of its pod (None: a Task API container).
    pod: Option<usize>,
    /// Its CRI log file (pods only).
    log: Option<PathBuf>,
}

impl Victim {
    /// The status it must be reported with.
    fn expected(&self) -> u32 {
        match self.outage {
            Some(libc::SIGKILL) => 137,
            _ => self.code,
        }
    }
}

/// The process has exited (reaped, or a zombie its parent has yet to reap).
fn gone(pid: i32) -> bool {
    proc_status_field(pid, "State").is_none_or(|s| s.starts_with('Z'))
}

fn lines_of(r: RunResult) -> Vec<String> {
    r.stdout.lines().map(String::from).collect()
}

/// Mounts of container `id`'s rootfs (`<bundle>/rootfs`).
fn rootfs_mounts(id: &str) -> Vec<String> {
    let needle = format!("/{id}/rootfs ");
    mountinfo()
        .into_iter()
        .filter(|l| l.contains(&needle))
        .collect()
}

/// The socket of the shim serving CRI task `id` (`<bundle>/address` or, from runc's shim
/// on containerd 2.x, `<bundle>/bootstrap.json`).
fn cri_shim_socket(ctd: &Containerd, id: &str) -> PathBuf {
    // A task's bundle, or a pauseless sandbox's (containerd 2.x's shim sandboxer).
    let b = [
        "io.containerd.runtime.v2.task",
        "io.containerd.sandbox.controller.v1.shim",
    ]
    .iter()
    .map(|d| ctd.state_dir().join(d).join(CRI_NAMESPACE).join(id))
    .find(|b| b.exists())
    .unwrap_or_else(|| panic!("no bundle of {id}"));
    let addr = std::fs::read(b.join("bootstrap.json"))
        .ok()
        .and_then(|j| serde_json::from_slice::<Value>(&j).ok())
        .and_then(|v| v["address"].as_str().map(String::from))
        .or_else(|| std::fs::read_to_string(b.join("address")).ok())
        .unwrap_or_else(|| panic!("no shim address in {}", b.display()));
    PathBuf::from(addr.trim().trim_start_matches("unix://"))
}

/// `ctr task delete`'s report of the exit status (it warns about a non-zero one).
fn delete_task(ctd: &Containerd, id: &str) -> u32 {
    let r = ctd.ctr_result(&["task", "delete", id]);
    r.assert_ok();
    r.stderr
        .split("exit code ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Lines of the daemon's log (its shims' logs included) that say an event was lost: tent's
/// "dropped after N attempts", runc's shim "evicting … from queue".
fn dropped_events(ctd: &Containerd) -> Vec<String> {
    std::fs::read_to_string(ctd.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("dropped after") || l.contains("evicting"))
        .map(String::from)
        .collect()
}

/// CRI's view of a container once its status is readable again after a restart (CRI
/// answers "not initialized" while it recovers).
fn cri_status(cri: &Cri, id: &str) -> ContainerStatus {
    wait_until(
        &format!("ContainerStatus {id} after the restart"),
        T,
        || cri.container_status(id).ok().and_then(|r| r.status),
    )
}

fn restart_under_load(signal: i32) {
    let t0 = Instant::now();
    let ctd = Containerd::start();
    let cri = Cri::connect(&ctd);

    // Task API containers, started 4 at a time.
    let mut victims: Vec<Victim> = Vec::new();
    let task_specs: Vec<(String, u32, Option<i32>)> = (0..TASKS)
        .map(|i| {
            let outage = match i {
                i if i + 1 == TASK_OUTAGE_EXITS => Some(libc::SIGKILL),
                i if i < TASK_OUTAGE_EXITS => Some(libc::SIGTERM),
                _ => None,
            };
            // A suffix: the leak check matches ids as substrings (`-1` in `-10`).
            (format!("{}-t", unique_id("rs")), 10 + i as u32, outage)
        })
        .collect();
    for chunk in task_specs.chunks(4) {
        std::thread::scope(|s| {
            for (id, code, _) in chunk {
                let ctd = &ctd;
                s.spawn(move || {
                    let args = trap_exit(*code);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    ctd.run(id, &args, &RunOpts::default().keep().flag("-d"))
                        .assert_ok();
                });
            }
        });
    }
    for (id, code, outage) in task_specs {
        let pid = ctd.wait_running(&id, T);
        victims.push(Victim {
            id,
            pid,
            code,
            outage,
            pod: None,
            log: None,
        });
    }

    // Pods.
    let mut pods = Vec::new();
    for p in 0..PODS {
        let mut pod = Pod::run(
            &cri,
            pod_config(&ctd, &format!("restart{p}")),
            handler_under_test(),
        )
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        for j in 0..PER_POD {
            let code = 20 + (10 * p + j) as u32;
            let cfg = container_config(&format!("c{j}"), &[]);
            let cfg = ContainerConfig {
                command: trap_exit(code),
                ..cfg
            };
            let id = pod.run_container(&cfg);
            let outage = match j {
                j if j + 1 == POD_OUTAGE_EXITS && p + 1 == PODS => Some(libc::SIGKILL),
                j if j < POD_OUTAGE_EXITS => Some(libc::SIGTERM),
                _ => None,
            };
            victims.push(Victim {
                pid: pod.pid(&id),
                id,
                code,
                outage,
                pod: Some(p),
                log: Some(Path::new(&pod.config.log_directory).join(&cfg.log_path)),
            });
        }
        pods.push(pod);
    }
    assert_eq!(victims.len(), CONTAINERS);
    assert_eq!(
        victims.iter().filter(|v| v.outage.is_some()).count(),
        OUTAGE_EXITS
    );
    let shims_before: Vec<(i32, String)> = ctd
        .shim_pids("")
        .into_iter()
        .map(|p| (p, cmdline(p)))
        .collect();
    eprintln!(
        "{CONTAINERS} containers running after {:.1?}; {} shims",
        t0.elapsed(),
        shims_before.len()
    );

    // The outage: containerd goes, some containers exit, containerd comes back.
    let t_down = Instant::now();
    ctd.stop_daemon(signal);
    for v in victims.iter().filter(|v| v.outage.is_some()) {
        // SAFETY: signalling a container process this test started.
        assert_eq!(unsafe { libc::kill(v.pid, v.outage.unwrap_or(0)) }, 0);
    }
    for v in victims.iter().filter(|v| v.outage.is_some()) {
        // Reaped by its shim while containerd is away.
        wait_until(&format!("{} (pid {}) reaped", v.id, v.pid), T, || {
            gone(v.pid).then_some(())
        });
    }
    std::thread::sleep(OUTAGE);
    ctd.restart_daemon();
    let mut events = Background::spawn(ctd.ctr_command(&["events"]));
    eprintln!(
        "containerd down {:.1?} (signal {signal}), {OUTAGE_EXITS} exits meanwhile",
        t_down.elapsed()
    );
    // containerd 1.7+ deletes a task it finds stopped while it starts ("cleaning leaked
    // shim process", for runc as for tent): its exit is then the event the shim still had,
    // and a shim whose only task that was may be gone.
    let deleted_at_start = !ctd.version().starts_with("1.6");
    let running: Vec<&str> = victims
        .iter()
        .filter(|v| v.outage.is_none())
        .map(|v| v.id.as_str())
        .chain(pods.iter().map(|p| p.id.as_str()))
        .collect();
    for (p, cmd) in &shims_before {
        let serves_a_running_one = running
            .iter()
            .any(|id| cmd.contains(&format!(" -id {id} ")));
        if deleted_at_start && !serves_a_running_one {
            continue;
        }
        assert!(
            !gone(*p),
            "shim {p} ({cmd}) died during the outage:\n{}",
            std::fs::read_to_string(ctd.log_path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("shim") || l.contains("rs-"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // Task API: the exited ones are reported with their codes, the others still served.
    for v in victims.iter().filter(|v| v.pod.is_none()) {
        if v.outage.is_some() && deleted_at_start {
            wait_until(&format!("{} deleted by containerd", v.id), T, || {
                task_status(&ctd, &v.id).is_none().then_some(())
            });
        } else if v.outage.is_some() {
            assert_eq!(
                task_status(&ctd, &v.id).as_deref(),
                Some("STOPPED"),
                "{v:?}"
            );
            assert_eq!(shim_wait(&ctd, &v.id, ""), Ok(v.expected()), "Wait {v:?}");
            assert_eq!(
                shim_state(&ctd, &v.id, ""),
                Ok((3, v.expected())),
                "State {v:?}"
            );
        } else {
            assert_eq!(ctd.task_pid(&v.id), Some(v.pid), "{v:?}");
            assert_eq!(
                task_status(&ctd, &v.id).as_deref(),
                Some("RUNNING"),
                "{v:?}"
            );
            let r = common::exec(&ctd, &v.id, &[], &["echo", "alive"], T);
            if is_runc() && r.code == Some(0) && r.stdout.is_empty() {
                // runc's shim (1.1.5) lost an exec's output after the restart in 2 of 5
                // runs here (its exit status stays right); reported, not failed. tent must
                // deliver it.
                eprintln!("runc: exec in {} exited 0 but its output was lost", v.id);
            } else {
                assert_eq!((r.code, r.stdout.as_str()), (Some(0), "alive\n"), "{r:#?}");
            }
            ctd.ctr_result(&["task", "kill", "-s", "SIGTERM", &v.id])
                .assert_ok();
        }
    }
    // CRI: the same through ContainerStatus, ExecSync, the log and StopContainer.
    for v in victims.iter().filter(|v| v.pod.is_some()) {
        let st = cri_status(&cri, &v.id);
        if v.outage.is_some() {
            assert_eq!(
                st.state,
                ContainerState::ContainerExited as i32,
                "{v:?}: {st:?}"
            );
            // On 1.7+ the task is gone before CRI recovers, and CRI records 255 ("unknown")
            // whatever the shim says later (runc alike); 1.6 recovers the code.
            let unknown = deleted_at_start && st.exit_code == 255;
            assert!(
                st.exit_code == v.expected() as i32 || unknown,
                "{v:?}: exit code {} instead of {}: {st:?}",
                st.exit_code,
                v.expected()
            );
            continue;
        }
        assert_eq!(
            st.state,
            ContainerState::ContainerRunning as i32,
            "{v:?}: {st:?}"
        );
        let r = cri
            .exec_sync(&v.id, &["sh", "-c", "echo after-restart >/proc/1/fd/1"], 30)
            .unwrap_or_else(|e| panic!("ExecSync in {v:?}: {e}"));
        assert_eq!(r.exit_code, 0, "{r:?}");
    }
    for v in victims
        .iter()
        .filter(|v| v.pod.is_some() && v.outage.is_none())
    {
        // Output written after the restart reaches the log: CRI reopened the FIFOs.
        let log = v.log.clone().expect("a pod container's log");
        wait_until(&format!("after-restart in {}", log.display()), T, || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("stdout F after-restart")
                .then_some(())
        });
        cri.stop_container(&v.id, 10)
            .unwrap_or_else(|e| panic!("StopContainer {v:?}: {e}"));
        let st = cri_status(&cri, &v.id);
        assert_eq!(
            (st.state, st.exit_code),
            (ContainerState::ContainerExited as i32, v.code as i32),
            "{v:?}: {st:?}"
        );
    }

    // Every Task API container: its exit once, with the code; delete leaves nothing.
    let after_restart: Vec<&Victim> = victims.iter().filter(|v| v.outage.is_none()).collect();
    events.wait_for_lines("the exits after the restart", T, |lines| {
        let exits = init_exits(lines);
        after_restart.iter().all(|v| exits.contains_key(&v.id))
    });
    for v in victims.iter().filter(|v| v.pod.is_none()) {
        if !(v.outage.is_some() && deleted_at_start) {
            wait_until(&format!("{} stopped", v.id), T, || {
                (task_status(&ctd, &v.id).as_deref() == Some("STOPPED")).then_some(())
            });
            assert_eq!(shim_wait(&ctd, &v.id, ""), Ok(v.expected()), "Wait {v:?}");
            assert_eq!(delete_task(&ctd, &v.id), v.expected(), "delete {v:?}");
        }
        ctd.ctr_result(&["container", "delete", &v.id]).assert_ok();
        ctd.assert_no_leftovers(&v.id);
    }
    for pod in pods {
        pod.remove();
    }
    let exits = init_exits(&lines_of(events.stop()));
    for v in &victims {
        let seen = exits.get(&v.id).cloned().unwrap_or_default();
        if v.outage.is_some() {
            // Delivered late (the shim kept it while containerd was down) or reported by
            // State alone if it went out before anyone subscribed; never twice.
            assert!(seen.len() <= 1, "{v:?}: exits {seen:?}");
        } else {
            assert_eq!(seen.len(), 1, "{v:?}: exits {seen:?}");
        }
        assert!(
            seen.iter().all(|s| *s == v.expected()),
            "{v:?}: exits {seen:?}"
        );
    }
    let dropped = dropped_events(&ctd);
    assert!(dropped.is_empty(), "events lost:\n{}", dropped.join("\n"));
    if !is_runc() {
        // The first exit each shim queued while containerd was away reached it once it was
        // back (the shim's log says so; runc's shim logs nothing when it succeeds). On 1.7+
        // a Task API container's shim is shut down while containerd starts, and containerd
        // stops reading its log then: only the pods' shims can tell.
        let log = std::fs::read_to_string(ctd.log_path()).unwrap_or_default();
        let delivered = |v: &Victim| {
            log.contains(&format!(
                "/tasks/exit of container {} delivered after",
                v.id
            ))
        };
        let outage: Vec<&Victim> = victims.iter().filter(|v| v.outage.is_some()).collect();
        for v in outage
            .iter()
            .filter(|v| v.pod.is_none() && !deleted_at_start)
        {
            assert!(
                delivered(v),
                "{v:?}: its exit never reached containerd:\n{}",
                log.lines()
                    .filter(|l| l.contains(&v.id))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        for p in 0..PODS {
            assert!(
                outage.iter().any(|v| v.pod == Some(p) && delivered(v)),
                "pod {p}: its exits never reached containerd"
            );
        }
    }
    // Nothing orphaned: no shim of this daemon, no container process.
    wait_until("every shim gone", Duration::from_secs(20), || {
        ctd.shim_pids("").is_empty().then_some(())
    });
    for v in &victims {
        assert!(gone(v.pid), "{v:?} still has its process");
    }
    eprintln!(
        "restart test (signal {signal}) done in {:.1?}: {} exits checked",
        t0.elapsed(),
        victims.len()
    );
}

#[test]
fn containerd_restart_keeps_containers_and_reports_outage_exits() {
    restart_under_load(libc::SIGTERM);
}

#[test]
fn containerd_kill9_keeps_containers_and_reports_outage_exits() {
    restart_under_load(libc::SIGKILL);
}

/// Processes whose cgroup is inside pod `uid`'s (`…/pod<uid>/…` in any hierarchy).
fn processes_in_pod(uid: &str) -> Vec<(i32, String)> {
    let dir = format!("pod{uid}/");
    processes()
        .into_iter()
        .filter(|(p, _)| {
            std::fs::read_to_string(format!("/proc/{p}/cgroup"))
                .unwrap_or_default()
                .contains(&dir)
        })
        .collect()
}

/// Container cgroup dirs left under pod `uid`'s cgroup (the pod's own dir is kubelet's).
fn container_cgroups(uid: &str) -> Vec<PathBuf> {
    pod_cgroup_dirs(uid)
        .into_iter()
        .flat_map(|d| {
            std::fs::read_dir(&d)
                .map(|it| {
                    it.filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// What the dead pod shim held is gone before anyone stops the pod: processes (the
/// shim's too), rootfs mounts, cgroups, bundles.
fn assert_cleaned_up(
    ctd: &Containerd,
    handler: &str,
    uid: &str,
    pod_id: &str,
    ids: &[String],
    pids: &[i32],
    shims: &[i32],
) {
    wait_until(&format!("{handler}: the pod's processes gone"), T, || {
        processes_in_pod(uid).is_empty().then_some(())
    });
    for p in pids.iter().chain(shims) {
        assert!(gone(*p), "{handler}: process {p} survived the shim");
    }
    let all: Vec<&str> = ids.iter().map(String::as_str).chain([pod_id]).collect();
    let t = Instant::now();
    loop {
        let left: Vec<String> = all.iter().flat_map(|id| rootfs_mounts(id)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < T,
            "{handler}: rootfs mounts left:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = container_cgroups(uid);
    assert!(left.is_empty(), "{handler}: cgroups left: {left:?}");
    for id in all {
        let bundle = ctd
            .state_dir()
            .join("io.containerd.runtime.v2.task")
            .join(CRI_NAMESPACE)
            .join(id);
        assert!(
            !bundle.exists(),
            "{handler}: bundle {} left",
            bundle.display()
        );
    }
}

#[test]
fn pod_shim_killed_is_cleaned_up_and_the_pod_replaced() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    // runc's shim on containerd 2.x does not survive this: containerd ends one task of the
    // dead pod shim (one /tasks/exit), and the other containers' processes and cgroups
    // outlive StopPodSandbox and RemovePodSandbox (containerd 2.1, runc 1.1.5). That leaks
    // on the test machine, so the reference runs on 1.6 and 1.7 only.
    let list: Vec<&str> = handlers()
        .into_iter()
        .filter(|h| *h != RUNC || !ctd.version().starts_with('2'))
        .collect();
    if list.is_empty() {
        eprintln!("SKIP: runc's shim leaks a killed pod shim's containers on containerd 2.x");
    }
    on_each(&list, |handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "shimkill"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
        let uid = pod.uid();
        // One container with a second process (a background sleep), one plain.
        let busy = ContainerConfig {
            command: vec![
                "sh".into(),
                "-c".into(),
                "sleep 1000 & trap 'exit 5' TERM; while :; do sleep 1000 & wait $!; done".into(),
            ],
            ..container_config("busy", &[])
        };
        let plain = ContainerConfig {
            command: trap_exit(6),
            ..container_config("plain", &[])
        };
        let ids = [pod.run_container(&busy), pod.run_container(&plain)];
        let pids: Vec<i32> = ids.iter().map(|id| pod.pid(id)).collect();
        let shims = pod.shim_pids();
        assert_eq!(shims.len(), 1, "{handler}: one shim per pod: {shims:?}");
        let socket = cri_shim_socket(ctd, &pod.id);
        let in_pod = processes_in_pod(&uid);
        // A pauseless pod has no pause process, and its sandbox no rootfs.
        let pauseless = is_pauseless(handler);
        assert!(
            in_pod.len() >= if pauseless { 3 } else { 4 },
            "{handler}: pause (not pauseless), two inits and a sleep in the pod: {in_pod:?}"
        );
        let sandbox_rootfs = (!pauseless).then_some(&pod.id);
        for id in ids.iter().chain(sandbox_rootfs) {
            assert!(
                !rootfs_mounts(id).is_empty(),
                "{handler}: no rootfs mount of {id}"
            );
        }
        let mut events = Background::spawn(ctd.ctr_command(&["events"]));
        std::thread::sleep(Duration::from_millis(500)); // the subscription is up
        assert!(!container_cgroups(&uid).is_empty());

        // SAFETY: killing the shim this test's pod runs on.
        assert_eq!(unsafe { libc::kill(shims[0], libc::SIGKILL) }, 0);

        // containerd notices, runs `shim delete` for every task of the pod, and reports 137.
        // containerd publishes `shim delete`'s 137 for each; CRI's own status says 255
        // ("Error"): its wait on the task failed with the shim (containerd 1.6-2.1, runc alike).
        for id in &ids {
            let st = pod.wait_state(id, ContainerState::ContainerExited, T);
            assert!(
                [137, 255].contains(&st.exit_code),
                "{handler}: {id}: {st:?}"
            );
        }
        // containerd 2.1 runs `shim delete` for a pauseless pod's sandbox only (its
        // containers are tasks of the sandbox's shim, which tent's sandbox delete ends) and
        // publishes that one exit; CRI still reports every container exited (above).
        let exited: Vec<&String> = if pauseless {
            vec![&pod.id]
        } else {
            ids.iter().collect()
        };
        let exits = init_exits(events.wait_for_lines("the tasks' exits", T, |lines| {
            let exits = init_exits(lines);
            exited.iter().all(|id| exits.contains_key(*id))
        }));
        events.stop();
        for id in exited {
            assert_eq!(
                exits.get(id),
                Some(&vec![137]),
                "{handler}: {id}: {exits:?}"
            );
        }
        assert_cleaned_up(ctd, handler, &uid, &pod.id, &ids, &pids, &shims);
        wait_until(&format!("{handler}: sandbox not ready"), T, || {
            let st = cri.pod_sandbox_status(&pod.id).ok()?.status?;
            (st.state == api::PodSandboxState::SandboxNotready as i32).then_some(())
        });
        // runc's shim leaves it (containerd 1.6); tent's `shim delete` removes it.
        if handler != RUNC {
            assert!(
                !socket.exists(),
                "{handler}: the dead shim's socket {} left",
                socket.display()
            );
        }
        // The pod is stopped and removed through the CRI (with the full leak check) ...
        pod.remove();
        // ... and a new one runs on the same handler.
        let mut next = Pod::run(&cri, pod_config(ctd, "shimkill2"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox after the kill on {handler}: {e}"));
        let id = next.run_container(&container_config(
            "app",
            &["/bin/tent-testbin", "wait-term"],
        ));
        assert_eq!(next.exec_ok(&id, &["echo", "ok"]), "ok\n");
        next.remove();
    });
}

#[test]
fn task_shim_killed_is_cleaned_up_and_the_id_reusable() {
    let ctd = Containerd::shared();
    let id = format!("{}-t", unique_id("shimkill"));
    let args = trap_exit(4);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ctd.run(&id, &args, &RunOpts::default().keep().flag("-d"))
        .assert_ok();
    let pid = ctd.wait_running(&id, T);
    // An exec that is still running when the shim dies.
    let mut exec = Background::spawn(ctd.ctr_command(&[
        "task",
        "exec",
        "--exec-id",
        "long",
        &id,
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]));
    exec.wait_for_line("started", T);
    // The exec's `sleep` (the init's own sleeps are its children).
    let exec_pid = wait_until("the exec's sleep", T, || {
        processes()
            .into_iter()
            .filter(|(p, c)| c == "sleep 1000" && ppid(*p).is_some_and(|pp| pp != pid))
            .find(|(p, _)| {
                std::fs::read_to_string(format!("/proc/{p}/cgroup"))
                    .unwrap_or_default()
                    .contains(&format!("/{id}\n"))
            })
            .map(|(p, _)| p)
    });
    let shims = ctd.shim_pids_for(&id);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let socket = common::shim_socket(ctd, &id);
    let mut events = Background::spawn(ctd.ctr_command(&["events"]));
    std::thread::sleep(Duration::from_millis(500)); // the subscription is up

    // SAFETY: killing the shim of this test's container.
    assert_eq!(unsafe { libc::kill(shims[0], libc::SIGKILL) }, 0);

    // containerd's `shim delete` ends the container; its exit is published as 137.
    events.wait_for_lines("the init's exit", T, |lines| {
        init_exits(lines).contains_key(&id)
    });
    for p in [pid, exec_pid, shims[0]] {
        wait_until(&format!("process {p} gone"), T, || gone(p).then_some(()));
    }
    ctd.assert_no_leftovers(&id);
    if !is_runc() {
        // runc's shim leaves it (containerd 1.6); tent's `shim delete` removes it.
        assert!(
            !socket.exists(),
            "the dead shim's socket {} left",
            socket.display()
        );
    }
    let r = exec.finish(T);
    assert_ne!(r.code, Some(0), "the exec cannot have succeeded: {r:#?}");
    ctd.ctr_result(&["container", "delete", &id]).assert_ok();
    // The id is free again.
    let r = ctd.run(&id, &["echo", "again"], &RunOpts::default());
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "again\n"), "{r:#?}");
    ctd.assert_no_leftovers(&id);
    let exits = init_exits(&lines_of(events.stop()));
    assert_eq!(exits.get(&id), Some(&vec![137, 0]), "{exits:?}");
}
