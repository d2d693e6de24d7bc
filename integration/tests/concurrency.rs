//! Concurrency, zombies and orphans (issue #11), on the binary's shared daemon:
//! - 50 containers created and started at once in one pod's shim (CRI);
//! - 100 simultaneous execs into one container, each with its own exit code;
//! - kill racing start, delete racing exit, two `ctr run` and two CreateContainer of the
//!   same id/name at once (one wins, the other gets a clear error, nothing leaks);
//! - execs exiting while the init is killed, an init exiting while an exec runs, a
//!   SIGTERM-ignoring process at StopContainer (SIGKILL after the grace period).
//!
//! After each: no zombie under the shim (its children's `State`, read from
//! `/proc/<shim>/task/*/children`), every exit reported exactly once in `ctr events`.
//! Task API containers run on [`runtime()`], pods on handler `tent` (`runc` with
//! `TENT_TEST_RUNTIME=io.containerd.runc.v2`, which validates the tests).
mod common;

use std::time::{Duration, Instant};

use common::{task_status, wait_until};
use tent_integration::cri::*;
use tent_integration::*;

/// Containers started at once in one pod: the number.
const POD_CONTAINERS: usize = 50;
/// Execs started at once in one container: the number.
const EXECS: usize = 100;
/// Rounds of each race (kill vs start, delete vs exit).
const ROUNDS: usize = 5;
const T: Duration = Duration::from_secs(120);

fn lines_of(r: RunResult) -> Vec<String> {
    r.stdout.lines().map(String::from).collect()
}

/// Children of `pid` that are zombies (from every thread's `children` list).
fn zombie_children(pid: i32) -> Vec<(i32, String)> {
    let mut v = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in list
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
        {
            let st = proc_status_field(c, "State").unwrap_or_default();
            if st.starts_with('Z') {
                v.push((c, cmdline(c)));
            }
        }
    }
    v
}

/// No zombie under `shim` (polled: the reaper runs on SIGCHLD, asynchronously).
#[track_caller]
fn assert_no_zombies(shim: i32) {
    let list = format!("/proc/{shim}/task/{shim}/children");
    assert!(
        std::path::Path::new(&list).exists(),
        "{list} missing (a kernel without CONFIG_PROC_CHILDREN, or the shim is gone)"
    );
    let t = Instant::now();
    loop {
        let z = zombie_children(shim);
        if z.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "zombies under the shim {shim}: {z:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ctr events`, subscribed (give the subscription a moment before acting).
fn subscribe(ctd: &Containerd) -> Background {
    let bg = Background::spawn(ctd.ctr_command(&["events"]));
    std::thread::sleep(Duration::from_millis(500));
    bg
}

/// All `/tasks/exit` events: (container id, process id, status).
fn exits(lines: &[String]) -> Vec<(String, String, u32)> {
    lines
        .iter()
        .filter_map(|l| Event::parse(l))
        .filter(|e| e.topic == "/tasks/exit")
        .map(|e| {
            let id = e.field(&["id"]).as_str().unwrap_or_default().to_string();
            let st = e
                .field(&["exit_status", "exitStatus"])
                .as_u64()
                .unwrap_or(0) as u32;
            (e.container_id(), id, st)
        })
        .collect()
}

/// A Task API container running a SIGTERM-handling shell (exit `code`); its init pid.
fn run_detached(ctd: &Containerd, id: &str, code: u32) -> i32 {
    let script = format!("trap 'exit {code}' TERM; while :; do sleep 1000 & wait $!; done");
    ctd.run(
        id,
        &["sh", "-c", &script],
        &RunOpts::default().keep().flag("-d"),
    )
    .assert_ok();
    ctd.wait_running(id, T)
}

/// `ctr task delete` (retried while the task still runs) and `ctr container delete`; the
/// status delete reported.
fn delete(ctd: &Containerd, id: &str) -> u32 {
    let r = wait_until(&format!("task delete {id}"), T, || {
        let r = ctd.ctr_result(&["task", "delete", id]);
        (r.code == Some(0)).then_some(r)
    });
    ctd.ctr_result(&["container", "delete", id]).assert_ok();
    r.stderr
        .split("exit code ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn fifty_containers_start_at_once_in_one_pod() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let pod = Pod::run(&cri, pod_config(ctd, "fifty"), handler_under_test())
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let t = Instant::now();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..POD_CONTAINERS)
            .map(|i| {
                let (pod_id, sandbox) = (pod.id.clone(), pod.config.clone());
                s.spawn(move || {
                    // A client per thread, as many kubelet workers would be.
                    let cri = Cri::connect(ctd);
                    let cfg =
                        container_config(&format!("c{i}"), &["/bin/tent-testbin", "wait-term"]);
                    let id = cri
                        .create_container(&pod_id, &cfg, &sandbox)
                        .unwrap_or_else(|e| panic!("CreateContainer c{i}: {e}"));
                    cri.start_container(&id)
                        .unwrap_or_else(|e| panic!("StartContainer c{i}: {e}"));
                    id
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a CreateContainer thread"))
            .collect()
    });
    eprintln!(
        "{POD_CONTAINERS} containers created and started in {:.1?}",
        t.elapsed()
    );
    for id in &ids {
        pod.wait_state(id, ContainerState::ContainerRunning, T);
    }
    let shims = pod.shim_pids();
    assert_eq!(shims.len(), 1, "one shim for the pod: {shims:?}");
    let r = pod.exec(&ids[POD_CONTAINERS - 1], &["echo", "ok"]);
    assert_eq!(String::from_utf8_lossy(&r.stdout), "ok\n");
    // Stopped at once too; every container exits with its handler's 42, once.
    let mut events = subscribe(ctd);
    std::thread::scope(|s| {
        for id in &ids {
            s.spawn(move || {
                let cri = Cri::connect(ctd);
                cri.stop_container(id, 10)
                    .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
            });
        }
    });
    for id in &ids {
        let st = pod.wait_state(id, ContainerState::ContainerExited, T);
        assert_eq!(st.exit_code, 42, "{id}: {st:?}");
    }
    events.wait_for_lines("50 exits", T, |l| {
        let e = init_exits(l);
        ids.iter().all(|id| e.contains_key(id))
    });
    assert_no_zombies(shims[0]);
    let seen = init_exits(&lines_of(events.stop()));
    for id in &ids {
        let got = seen.get(id).cloned().unwrap_or_default();
        if is_runc() && got.len() > 1 && got.iter().all(|s| *s == 42) {
            // runc's shim on containerd 1.7 reported one of 50 exits twice; reported here,
            // tent must report each once.
            eprintln!("runc: {id} exited {} times in the event stream", got.len());
            continue;
        }
        assert_eq!(got, vec![42], "{id}");
    }
    for id in &ids {
        cri.remove_container(id)
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }
    pod.remove();
}

#[test]
fn a_hundred_execs_at_once() {
    let ctd = Containerd::shared();
    if is_runc() && ctd.version().starts_with("1.6") {
        // runc's shim (1.1.5) on containerd 1.6 loses the exit of some of 100 simultaneous
        // execs: `ctr task exec` never returns (seen in 3 of 100). It passes on 1.7 and 2.1.
        eprintln!("SKIP on runc + containerd 1.6: it loses exec exits under this load");
        return;
    }
    let id = format!("{}-c", unique_id("execs"));
    run_detached(ctd, &id, 3);
    let shim = ctd.shim_pids_for(&id)[0];
    let mut events = subscribe(ctd);
    let t = Instant::now();
    let results: Vec<(usize, RunResult)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..EXECS)
            .map(|i| {
                let id = id.clone();
                s.spawn(move || {
                    let script = format!("echo out-{i}; exit {}", i + 1);
                    let mut c = ctd.ctr_command(&[
                        "task",
                        "exec",
                        "--exec-id",
                        &format!("e{i}"),
                        &id,
                        "sh",
                        "-c",
                        &script,
                    ]);
                    let o = run_with_timeout(&mut c, None, T);
                    let r = RunResult {
                        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                        code: o.status.code(),
                    };
                    (i, r)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("exec thread"))
            .collect()
    });
    eprintln!("{EXECS} execs in {:.1?}", t.elapsed());
    let mut lost_output = 0;
    for (i, r) in &results {
        assert_eq!(r.code, Some(*i as i32 + 1), "exec {i}: {r:#?}");
        if r.stdout != format!("out-{i}\n") {
            // runc's shim loses an exec's output now and then (cri_streaming.rs); tent
            // must not.
            assert!(is_runc(), "exec {i}: {r:#?}");
            lost_output += 1;
        }
    }
    if lost_output > 0 {
        eprintln!("runc: {lost_output} of {EXECS} execs lost their output");
    }
    events.wait_for_lines("100 exec exits", T, |l| {
        exits(l).iter().filter(|(c, _, _)| *c == id).count() >= EXECS
    });
    assert_no_zombies(shim);
    ctd.ctr_result(&["task", "kill", "-s", "SIGTERM", &id])
        .assert_ok();
    assert_eq!(delete(ctd, &id), 3);
    ctd.assert_no_leftovers(&id);
    let all = exits(&lines_of(events.stop()));
    for i in 0..EXECS {
        let of_exec: Vec<u32> = all
            .iter()
            .filter(|(c, e, _)| *c == id && *e == format!("e{i}"))
            .map(|(_, _, s)| *s)
            .collect();
        assert_eq!(of_exec, vec![i as u32 + 1], "exec e{i}: {all:?}");
    }
    let init: Vec<u32> = all
        .iter()
        .filter(|(c, e, _)| *c == id && *e == id)
        .map(|(_, _, s)| *s)
        .collect();
    assert_eq!(init, vec![3], "the init's exit once: {all:?}");
}

#[test]
fn kill_racing_start_and_delete_racing_exit() {
    let ctd = Containerd::shared();
    let mut events = subscribe(ctd);
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        // kill racing start: SIGKILL sent again and again from the moment `ctr run` begins.
        let id = format!("{}-k", unique_id("race"));
        std::thread::scope(|s| {
            let run = s.spawn(|| {
                ctd.run(
                    &id,
                    &["/bin/tent-testbin", "pause"],
                    &RunOpts::default().keep().flag("-d"),
                )
            });
            let t = Instant::now();
            loop {
                let k = ctd.ctr_result(&["task", "kill", "-s", "SIGKILL", &id]);
                if k.code == Some(0) {
                    break;
                }
                assert!(
                    t.elapsed() < T,
                    "round {round}: kill never reached {id}: {k:?}"
                );
            }
            let r = run.join().expect("run");
            // `ctr run -d` may see the start succeed or the task already gone; never hang.
            let _ = r;
        });
        wait_until(&format!("{id} stopped"), T, || {
            (task_status(ctd, &id).as_deref() == Some("STOPPED")).then_some(())
        });
        assert_eq!(delete(ctd, &id), 137, "round {round}");
        ctd.assert_no_leftovers(&id);
        ids.push((id, 137));

        // delete racing exit: a container that exits at once, deleted as soon as it can be.
        let id = format!("{}-d", unique_id("race"));
        let r = ctd.run(
            &id,
            &["sh", "-c", "exit 3"],
            &RunOpts::default().keep().flag("-d"),
        );
        r.assert_ok();
        assert_eq!(delete(ctd, &id), 3, "round {round}");
        ctd.assert_no_leftovers(&id);
        ids.push((id, 3));
    }
    events.wait_for_lines("every exit", T, |l| {
        let e = init_exits(l);
        ids.iter().all(|(id, _)| e.contains_key(id))
    });
    let seen = init_exits(&lines_of(events.stop()));
    for (id, code) in &ids {
        assert_eq!(seen.get(id), Some(&vec![*code]), "{id}");
    }
}

#[test]
fn the_same_id_twice_at_once() {
    let ctd = Containerd::shared();
    // Two `ctr run` of one id.
    let id = format!("{}-s", unique_id("twice"));
    let results: Vec<RunResult> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    ctd.run(
                        &id,
                        &["/bin/tent-testbin", "wait-term"],
                        &RunOpts::default().keep().flag("-d"),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("run")).collect()
    });
    let won = results.iter().filter(|r| r.code == Some(0)).count();
    assert_eq!(won, 1, "exactly one wins: {results:#?}");
    let lost = results.iter().find(|r| r.code != Some(0)).expect("a loser");
    assert!(
        lost.stderr.contains("already exists"),
        "the loser's error: {lost:#?}"
    );
    ctd.wait_running(&id, T);
    assert_eq!(ctd.shim_pids_for(&id).len(), 1);
    ctd.ctr_result(&["task", "kill", "-s", "SIGTERM", &id])
        .assert_ok();
    assert_eq!(delete(ctd, &id), 42);
    ctd.assert_no_leftovers(&id);

    // Two CreateContainer of one name in one pod.
    let cri = Cri::connect(ctd);
    let mut pod = Pod::run(&cri, pod_config(ctd, "twice"), handler_under_test())
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let cfg = container_config("same", &["/bin/tent-testbin", "wait-term"]);
    let results: Vec<Result<String, Status>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (pod_id, sandbox, cfg) = (pod.id.clone(), pod.config.clone(), cfg.clone());
                s.spawn(move || Cri::connect(ctd).create_container(&pod_id, &cfg, &sandbox))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("create")).collect()
    });
    let won: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "exactly one wins: {results:?}");
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("a loser");
    assert!(
        err.message().contains("reserved") || err.message().contains("already exists"),
        "the loser's error: {err}"
    );
    let winner = won[0].clone();
    cri.start_container(&winner).expect("StartContainer");
    pod.wait_state(&winner, ContainerState::ContainerRunning, T);
    let listed = cri.list_containers(&pod.id).expect("ListContainers");
    assert_eq!(listed.len(), 1, "{listed:?}");
    // Removed now, and so in the pod's leak check.
    pod.remove_container(&winner, 10).expect("remove");
    pod.remove();
}

#[test]
fn exits_around_a_dying_init_are_reaped_and_reported_once() {
    let ctd = Containerd::shared();
    let mut events = subscribe(ctd);

    // Execs that exit while the init is being killed.
    let id = format!("{}-a", unique_id("reap"));
    run_detached(ctd, &id, 5);
    let shim = ctd.shim_pids_for(&id)[0];
    let mut execs = Vec::new();
    for i in 0..5 {
        let mut c = ctd.ctr_command(&[
            "task",
            "exec",
            "--exec-id",
            &format!("x{i}"),
            &id,
            "sh",
            "-c",
            "echo up; sleep 0.3; exit 9",
        ]);
        c.stdin(std::process::Stdio::null());
        execs.push(Background::spawn(c));
    }
    for e in &mut execs {
        e.wait_for_line("up", T);
    }
    ctd.ctr_result(&["task", "kill", "-s", "SIGKILL", &id])
        .assert_ok();
    for e in execs {
        let r = e.finish(T);
        // Each exec either finished (9) or died with its container (137).
        assert!(
            [Some(9), Some(137)].contains(&r.code),
            "exec during the kill: {r:#?}"
        );
    }
    wait_until("the init stopped", T, || {
        (task_status(ctd, &id).as_deref() == Some("STOPPED")).then_some(())
    });
    assert_no_zombies(shim);
    assert_eq!(delete(ctd, &id), 137);
    ctd.assert_no_leftovers(&id);

    // The init exits while an exec still runs.
    let id2 = format!("{}-b", unique_id("reap"));
    let pid = run_detached(ctd, &id2, 6);
    let shim2 = ctd.shim_pids_for(&id2)[0];
    let mut long = Background::spawn(ctd.ctr_command(&[
        "task",
        "exec",
        "--exec-id",
        "long",
        &id2,
        "sh",
        "-c",
        "echo up; exec sleep 1000",
    ]));
    long.wait_for_line("up", T);
    // SAFETY: signalling this test's container init from the host (its trap exits 6).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let r = long.finish(T);
    assert_eq!(
        r.code,
        Some(137),
        "the exec dies with its pid namespace: {r:#?}"
    );
    wait_until("the init stopped", T, || {
        (task_status(ctd, &id2).as_deref() == Some("STOPPED")).then_some(())
    });
    assert_no_zombies(shim2);
    assert_eq!(delete(ctd, &id2), 6);
    ctd.assert_no_leftovers(&id2);

    events.wait_for_lines("both inits' exits", T, |l| {
        let e = init_exits(l);
        e.contains_key(&id) && e.contains_key(&id2)
    });
    let all = exits(&lines_of(events.stop()));
    let count = |c: &str, p: &str| all.iter().filter(|(a, b, _)| a == c && b == p).count();
    for i in 0..5 {
        assert_eq!(count(&id, &format!("x{i}")), 1, "exec x{i}: {all:?}");
    }
    assert_eq!(count(&id, &id), 1, "{all:?}");
    assert_eq!(count(&id2, "long"), 1, "{all:?}");
    assert_eq!(count(&id2, &id2), 1, "{all:?}");
}

#[test]
fn a_process_ignoring_sigterm_is_killed_at_stop_container() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "ignoreterm"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
        let id = pod.run_container(&container_config(
            "stubborn",
            &[
                "sh",
                "-c",
                "/bin/tent-testbin ignore-term & exec /bin/tent-testbin ignore-term",
            ],
        ));
        let shims = pod.shim_pids();
        let mut events = subscribe(ctd);
        let t = Instant::now();
        cri.stop_container(&id, 2)
            .unwrap_or_else(|e| panic!("StopContainer on {handler}: {e}"));
        assert!(
            t.elapsed() >= Duration::from_secs(2),
            "the grace period was kept"
        );
        let st = pod.wait_state(&id, ContainerState::ContainerExited, T);
        assert_eq!(st.exit_code, 137, "{handler}: {st:?}");
        events.wait_for_lines("the exit", T, |l| init_exits(l).contains_key(&id));
        assert_no_zombies(shims[0]);
        let seen = init_exits(&lines_of(events.stop()));
        assert_eq!(seen.get(&id), Some(&vec![137]), "{handler}");
        pod.remove();
    });
}
