//! tent's own pod sandbox image (`docker.io/library/tent-test:pause`, the static `tent-pause`)
//! as kubelet uses it, on the handlers `tent` and `runc`: in a pod that shares its process
//! namespace (`shareProcessNamespace: true`) the pause process is PID 1 and reaps the orphans
//! the app containers leave (a sleeping PID 1 would collect them as zombies).
//! Not on `tent-pauseless`: its pods run no pause image; the same reaping by tent's pod init
//! is cri_pauseless.rs's `shared_pid_pod_gets_tents_init_as_pid_1_which_reaps`.

use std::time::{Duration, Instant};

use tent_integration::cri::*;
use tent_integration::*;

/// Zombie processes (state `Z` in `/proc/<pid>/stat`) seen from inside container `id`.
fn zombies(pod: &Pod, id: &str) -> Vec<String> {
    let out = pod.exec_ok(
        id,
        &[
            "sh",
            "-c",
            "for s in /proc/[0-9]*/stat; do cat $s 2>/dev/null; echo; done",
        ],
    );
    out.lines()
        .filter(|l| {
            l.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .map(String::from)
        .collect()
}

fn pause_reaps_in(handler: &str) {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let shared_pid = NamespaceOption {
        pid: NamespaceMode::Pod as i32,
        ..pod_namespaces()
    };
    let mut config = pod_config(ctd, "pause-reaps");
    pod_linux(&mut config)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(shared_pid.clone());
    let mut pod = Pod::run(&cri, config, handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}\n{}", ctd.log_tail(20)));
    let mut c = container_config("orphaner", &["/bin/tent-testbin", "orphans", "3"]);
    security_context(&mut c).namespace_options = Some(shared_pid);
    let id = pod.run_container(&c);

    let pid1 = pod.exec_ok(&id, &["cat", "/proc/1/cmdline"]);
    assert_eq!(
        pid1.trim_end_matches('\0'),
        "/pause",
        "{handler}: PID 1 of the pod"
    );
    // The orphaned grandchildren exit after 0.3 s; the pod's PID 1 must collect them.
    let t = Instant::now();
    let mut left = zombies(&pod, &id);
    while !left.is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        left = zombies(&pod, &id);
    }
    assert!(
        left.is_empty(),
        "{handler}: zombies in the pod after 5 s: {left:#?}"
    );
    let orphaner = pod.exec_ok(
        &id,
        &["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"],
    );
    assert!(
        orphaner.contains("tent-testbin orphans"),
        "{handler}: {orphaner}"
    );
    pod.remove();
}

#[test]
fn pause_is_pid_1_of_a_shared_pid_namespace_and_reaps_on_tent() {
    pause_reaps_in(TENT);
}

#[test]
fn pause_is_pid_1_of_a_shared_pid_namespace_and_reaps_on_runc() {
    pause_reaps_in(RUNC);
}
