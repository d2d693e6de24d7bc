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

/// The CRI handler of the runtime under test.
fn handler() -> &'static str {
    if is_runc() {
        RUNC
    } else {
        TENT
    }
}

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

fn gone(pid: i32) -> bool {
    proc_status_field(pid, "State").is_none()
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
        let mut pod = Pod::run(&cri, pod_config(&ctd, &format!("restart{p}")), handler())
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
    let shims_before = ctd.shim_pids("");
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
    for p in &shims_before {
        assert!(
            !gone(*p),
            "shim {p} died during the outage:\n{}",
            ctd.log_tail(40)
        );
    }

    // Task API: the exited ones are reported with their codes, the others still served.
    for v in victims.iter().filter(|v| v.pod.is_none()) {
        if v.outage.is_some() {
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
                (st.state, st.exit_code),
                (ContainerState::ContainerExited as i32, v.expected() as i32),
                "{v:?}: {st:?}"
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
        wait_until(&format!("{} stopped", v.id), T, || {
            (task_status(&ctd, &v.id).as_deref() == Some("STOPPED")).then_some(())
        });
        assert_eq!(shim_wait(&ctd, &v.id, ""), Ok(v.expected()), "Wait {v:?}");
        assert_eq!(delete_task(&ctd, &v.id), v.expected(), "delete {v:?}");
        ctd.ctr_result(&["container", "delete", &v.id]).assert_ok();
        ctd.assert_no_leftovers(&v.id);
    }
    for pod in pods {
        pod.remove();
    }
    let out = events.stop();
    let lines: Vec<String> = out.stdout.lines().map(String::from).collect();
    let exits = init_exits(&lines);
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
        // back (the shim's log says so; runc's shim logs nothing when it succeeds).
        let log = std::fs::read_to_string(ctd.log_path()).unwrap_or_default();
        let delivered = |v: &Victim| {
            log.contains(&format!(
                "/tasks/exit of container {} delivered after",
                v.id
            ))
        };
        let outage: Vec<&Victim> = victims.iter().filter(|v| v.outage.is_some()).collect();
        for v in outage.iter().filter(|v| v.pod.is_none()) {
            assert!(delivered(v), "{v:?}: its exit never reached containerd");
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
