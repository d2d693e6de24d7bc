//! Pods without a pause process: handler `tent-pauseless` (`sandboxer = "shim"`), where
//! containerd 2.x's CRI calls tent's Sandbox API instead of creating a pause container.
//! containerd 1.6/1.7 have no such handler (the pause path stays): every test here prints
//! SKIP there.
//! - a pod whose containers share the pod's network, IPC and UTS namespaces (same inodes,
//!   none the host's) with no sandbox container and no process from the pause image; the
//!   hostname, /etc/hosts, resolv.conf from the DNS config, a shared /dev/shm, an IPC
//!   sysctl; exec, logs, pod stats; stop/remove leaving nothing (pins, files, shims);
//! - shareProcessNamespace: tent's pod init is PID 1 of the pod (no pause image) and reaps
//!   the orphans the containers leave;
//! - PortForward reaches a server on the pauseless pod's loopback (CRI enters the netns
//!   it made; there is no pause process to enter);
//! - containerd restarted with a pauseless pod running: the pod is still ready, exec works,
//!   and it is removed leaving nothing;
//! - the pod's shim SIGKILLed: containerd's `shim delete` of the sandbox ends the pod's
//!   container too, and the pod is removed leaving nothing;
//! - a sandbox that fails to come up (a host sysctl, refused before anything exists; a
//!   net.* key that does not exist, failing after the files and pins were made) is refused
//!   naming the key and leaves nothing, no shim process included, attempt after attempt;
//! - hostIPC / hostPID pods are refused at RunPodSandbox naming the field, as on `tent`
//!   (tent's profile, the only one a pauseless handler can have), leaving nothing; a
//!   hostNetwork pod crashes containerd 2.1.x itself before tent is asked
//!   (containerd/containerd#12983), checked on a daemon of its own.
//!
//! The CRI suite (cri_pod.rs, cri_streaming.rs, cri_bad_input.rs, cri_mounts.rs,
//! cri_security.rs) also runs on `tent-pauseless` on 2.x (`handlers()`).

use std::path::Path;
use std::time::{Duration, Instant};

use tent_integration::cri::*;
use tent_integration::stream::PortStream;
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];

/// The handler exists only in containerd 2.x configs (hack/containerd.sh); checked before a
/// daemon is started, so a skipped version costs nothing.
fn skip() -> bool {
    if is_runc() {
        eprintln!("SKIP: tent-pauseless is tent's handler (runtime under test is runc)");
        return true;
    }
    let version = containerd_version();
    if !version.starts_with('2') {
        eprintln!(
            "SKIP: containerd {version} has no shim sandboxer: no tent-pauseless handler (the pause path stays)"
        );
        return true;
    }
    false
}

fn ns_of(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{kind}: {e}"))
        .display()
        .to_string()
}

/// Every process whose cgroup names pod `uid`: `(pid, cmdline)`.
fn pod_processes(uid: &str) -> Vec<(i32, String)> {
    processes()
        .into_iter()
        .filter(|(p, _)| {
            std::fs::read_to_string(format!("/proc/{p}/cgroup"))
                .unwrap_or_default()
                .contains(&format!("pod{uid}"))
        })
        .collect()
}

#[test]
fn pauseless_pod_shares_namespaces_files_and_leaves_nothing() {
    if skip() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut config = pod_config(ctd, "pauseless");
    config.dns_config = Some(api::DnsConfig {
        servers: vec!["10.96.0.10".into(), "10.96.0.11".into()],
        searches: vec![
            "tent-it.svc.cluster.local".into(),
            "svc.cluster.local".into(),
        ],
        options: vec!["ndots:5".into()],
    });
    pod_linux(&mut config)
        .sysctls
        .insert("kernel.shm_rmid_forced".into(), "1".into());
    let mut pod = Pod::run(&cri, config, TENT_PAUSELESS)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail(40)));

    // No sandbox container: containerd knows the pod only as a sandbox.
    // (`--namespace`: ctr refuses `-n` beside the harness's `--namespace`.)
    let info = ctd.ctr(&["--namespace", CRI_NAMESPACE, "containers", "info", &pod.id]);
    let err = String::from_utf8_lossy(&info.stderr);
    assert!(
        !info.status.success() && err.contains("not found"),
        "a container {} exists for the pauseless pod (or ctr failed otherwise): {err}",
        pod.id
    );
    let st = cri.pod_sandbox_status(&pod.id).expect("PodSandboxStatus");
    assert_eq!(
        st.status.as_ref().map(|s| s.state),
        Some(api::PodSandboxState::SandboxReady as i32),
        "{st:?}"
    );

    let mut a_cfg = container_config(
        "a",
        &["sh", "-c", "echo ready-a; exec /bin/tent-testbin wait-term"],
    );
    a_cfg.log_path = "a/0.log".into();
    let a = pod.run_container(&a_cfg);
    let b = pod.run_container(&container_config("b", &WAIT));
    let (pa, pb) = (pod.pid(&a), pod.pid(&b));
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_of(pa, kind),
            ns_of(pb, kind),
            "{kind} namespace not shared"
        );
        assert_ne!(
            ns_of(pa, kind),
            ns_of(std::process::id() as i32, kind),
            "{kind}: the host's"
        );
    }
    // Nothing but the two containers runs in the pod: no pause process.
    let procs = pod_processes(&pod.uid());
    let pids: Vec<i32> = procs.iter().map(|(p, _)| *p).collect();
    assert!(
        pids.contains(&pa) && pids.contains(&pb) && procs.len() == 2,
        "pod processes: {procs:?} (containers {pa}, {pb})"
    );
    assert!(
        !procs.iter().any(|(_, c)| c.contains("pause")),
        "a pause process runs: {procs:?}"
    );

    // Hostname, the files containerd's pause path would have written, sysctl, /dev/shm.
    assert_eq!(pod.exec_ok(&b, &["hostname"]).trim(), "pauseless");
    assert_eq!(pod.exec_ok(&a, &["cat", "/etc/hostname"]), "pauseless\n");
    assert_eq!(
        pod.exec_ok(&a, &["cat", "/etc/resolv.conf"]),
        "search tent-it.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n"
    );
    let hosts = std::fs::read_to_string("/etc/hosts").expect("host /etc/hosts");
    assert_eq!(pod.exec_ok(&b, &["cat", "/etc/hosts"]), hosts);
    assert_eq!(
        pod.exec_ok(&a, &["cat", "/proc/sys/kernel/shm_rmid_forced"])
            .trim(),
        "1"
    );
    pod.exec_ok(&a, &["sh", "-c", "echo shared > /dev/shm/x"]);
    assert_eq!(pod.exec_ok(&b, &["cat", "/dev/shm/x"]), "shared\n");
    let mounts = pod.exec_ok(&b, &["cat", "/proc/self/mounts"]);
    assert!(
        mounts.lines().any(|l| l.contains(" /dev/shm tmpfs ")),
        "/dev/shm is not the pod's tmpfs: {mounts}"
    );

    // Logs and pod stats.
    let log = Path::new(&pod.config.log_directory).join(&a_cfg.log_path);
    let t = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("stdout F ready-a")
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no ready-a in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = cri
        .list_pod_sandbox_stats(&pod.id)
        .unwrap_or_else(|e| panic!("ListPodSandboxStats: {e}\n{}", ctd.log_tail(30)));
    let mem = stats
        .first()
        .and_then(|s| s.linux.as_ref())
        .and_then(|l| l.memory.as_ref())
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(mem > 0, "pod memory working set is 0: {stats:?}");

    let bundle = ctd
        .state_dir()
        .join("io.containerd.sandbox.controller.v1.shim")
        .join(CRI_NAMESPACE)
        .join(&pod.id);
    assert!(
        bundle.join("ns-ipc").exists() && bundle.join("ns-uts").exists(),
        "no pins in {}",
        bundle.display()
    );
    pod.remove();
    assert!(!bundle.exists(), "{} left behind", bundle.display());
}

/// Zombie processes (state `Z`) seen from inside container `id`.
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
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .map(String::from)
        .collect()
}

#[test]
fn shared_pid_pod_gets_tents_init_as_pid_1_which_reaps() {
    if skip() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let shared_pid = NamespaceOption {
        pid: NamespaceMode::Pod as i32,
        ..pod_namespaces()
    };
    let mut config = pod_config(ctd, "shared-pid");
    pod_linux(&mut config)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(shared_pid.clone());
    let mut pod = Pod::run(&cri, config, TENT_PAUSELESS)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail(40)));
    let mut c = container_config("orphaner", &["/bin/tent-testbin", "orphans", "3"]);
    security_context(&mut c).namespace_options = Some(shared_pid.clone());
    let id = pod.run_container(&c);
    let mut w = container_config("waiter", &WAIT);
    security_context(&mut w).namespace_options = Some(shared_pid);
    let waiter = pod.run_container(&w);

    assert_eq!(
        pod.exec_ok(&id, &["cat", "/proc/1/comm"]).trim(),
        "tent-pod-init",
        "PID 1 of the pod"
    );
    assert_eq!(ns_of(pod.pid(&id), "pid"), ns_of(pod.pid(&waiter), "pid"));
    // The orphaned grandchildren exit after 0.3 s; the pod's PID 1 must collect them.
    let t = Instant::now();
    let mut left = zombies(&pod, &id);
    while !left.is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        left = zombies(&pod, &id);
    }
    assert!(left.is_empty(), "zombies in the pod after 5 s: {left:#?}");
    // The other container sees the orphaner: one PID namespace.
    let seen = pod.exec_ok(
        &waiter,
        &["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"],
    );
    assert!(seen.contains("tent-testbin orphans"), "{seen}");
    let procs = pod_processes(&pod.uid());
    assert!(
        !procs.iter().any(|(_, c)| c.contains("/pause")),
        "a pause process runs: {procs:?}"
    );
    pod.remove();
}

#[test]
fn failing_sandbox_leaves_no_shim() {
    if skip() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let before = ctd.shim_pids("").len();
    // A host sysctl is refused before anything is made; a net.* key that does not exist
    // fails in the pod helper, after the pod's files and pins were made.
    for (attempt, key) in [
        "kernel.core_pattern",
        "net.ipv4.tent_no_such_key",
        "kernel.core_pattern",
    ]
    .iter()
    .enumerate()
    {
        let mut config = pod_config(ctd, "bad-sysctl");
        pod_linux(&mut config)
            .sysctls
            .insert(key.to_string(), "1".into());
        // Pod::run checks the sandbox named in the error left nothing (shim included).
        let e = match Pod::run(&cri, config, TENT_PAUSELESS) {
            Ok(pod) => panic!("attempt {attempt}: a pod with sysctl {key} ran: {}", pod.id),
            Err(e) => e,
        };
        assert!(e.message().contains(key), "attempt {attempt}: {e}");
    }
    // No shim of any attempt survives (other tests' pods may come and go meanwhile, so
    // count only shims whose bundle is a sandbox controller's that CRI no longer knows).
    let t = Instant::now();
    loop {
        let stray: Vec<String> = ctd
            .shim_pids("")
            .into_iter()
            .filter(|p| {
                let cwd = std::fs::read_link(format!("/proc/{p}/cwd")).unwrap_or_default();
                let id = cwd.file_name().map(|n| n.to_string_lossy().into_owned());
                cwd.to_string_lossy()
                    .contains("io.containerd.sandbox.controller.v1.shim")
                    && id.is_some_and(|id| cri.pod_sandbox_status(&id).is_err())
            })
            .map(|p| format!("{p}: {}", cmdline(p)))
            .collect();
        if stray.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "shims of failed sandboxes left (before: {before} shims): {stray:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killed_sandbox_shim_leaves_a_pod_that_can_be_removed() {
    if skip() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut pod = Pod::run(&cri, pod_config(ctd, "shim-killed"), TENT_PAUSELESS)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail(40)));
    let c = pod.run_container(&container_config("c", &WAIT));
    let shims = ctd.shim_pids_for(&pod.id);
    assert_eq!(shims.len(), 1, "the pod's shim: {shims:?}");
    let pid = pod.pid(&c);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &shims[0].to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -KILL {}", shims[0]);
    // containerd notices and runs `shim delete` for the sandbox: the pod's container goes.
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && cmdline(pid).contains("wait-term") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "container {c} (pid {pid}) still runs 20 s after its shim was killed\n{}",
            ctd.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // containerd retries its clean-up of the dead task (backoff) before it reports the exit.
    pod.wait_state(&c, ContainerState::ContainerExited, Duration::from_secs(30));
    pod.remove();
}

#[test]
fn port_forward_reaches_a_server_in_a_pauseless_pod() {
    if skip() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut pod = Pod::run(&cri, pod_config(ctd, "pf"), TENT_PAUSELESS)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail(40)));
    let id = pod.run_container(&container_config(
        "echo",
        &["/bin/tent-testbin", "echo-server", "8080"],
    ));
    let t = Instant::now();
    loop {
        let r = pod.exec(
            &id,
            &["/bin/tent-testbin", "connect", "127.0.0.1:8080", "up"],
        );
        if r.exit_code == 0 && r.stdout == b"up" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "echo server not answering: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = cri
        .port_forward(&pod.id, &[8080])
        .unwrap_or_else(|e| panic!("PortForward: {e}\n{}", ctd.log_tail(30)));
    let mut p = PortStream::connect(&url, 8080).unwrap_or_else(|e| panic!("port-forward: {e}"));
    let msg = "hello-through-a-pauseless-pod\n";
    p.send(msg.as_bytes()).expect("send");
    let got = p
        .read_exact(msg.len(), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("port-forward read: {e}"));
    assert_eq!(String::from_utf8_lossy(&got), msg);
    p.close();
    pod.remove();
}

#[test]
fn pauseless_pod_survives_a_containerd_restart() {
    if skip() {
        return;
    }
    // A daemon of its own: it is stopped and started again under the other tests' feet.
    let ctd = Containerd::start();
    let id;
    let (config, c) = {
        let cri = Cri::connect(&ctd);
        let mut pod = Pod::run(&cri, pod_config(&ctd, "restart"), TENT_PAUSELESS)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail(40)));
        let c = pod.run_container(&container_config("c", &WAIT));
        id = pod.id.clone();
        // The pod must stay up while containerd is away: its guard would tear it down, so
        // only its config is kept (on a panic, the daemon's `down` ends its shims).
        let config = pod.config.clone();
        std::mem::forget(pod);
        (config, c)
    };
    let pid_file = ctd.dir().join("containerd.pid");
    let daemon: i32 = std::fs::read_to_string(&pid_file)
        .expect("containerd.pid")
        .trim()
        .parse()
        .expect("pid");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &daemon.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -TERM containerd {daemon}");
    let t = Instant::now();
    while Path::new(&format!("/proc/{daemon}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "containerd {daemon} still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let up = std::process::Command::new("bash")
        .arg(repo_root().join("hack/containerd.sh"))
        .args(["up", ctd.version()])
        .arg(ctd.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("hack/containerd.sh up");
    assert!(
        up.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let cri = Cri::connect(&ctd);
    let st = cri.pod_sandbox_status(&id).unwrap_or_else(|e| {
        panic!(
            "PodSandboxStatus after the restart: {e}\n{}",
            ctd.log_tail(30)
        )
    });
    assert_eq!(
        st.status.as_ref().map(|s| s.state),
        Some(api::PodSandboxState::SandboxReady as i32),
        "after the restart: {st:?}"
    );
    let r = cri
        .exec_sync(&c, &["hostname"], 30)
        .expect("ExecSync after the restart");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "restart");
    let uid = config
        .metadata
        .as_ref()
        .map(|m| m.uid.clone())
        .unwrap_or_default();
    for (what, r) in [
        ("StopContainer", cri.stop_container(&c, 10)),
        ("RemoveContainer", cri.remove_container(&c)),
        ("StopPodSandbox", cri.stop_pod_sandbox(&id)),
        ("RemovePodSandbox", cri.remove_pod_sandbox(&id)),
    ] {
        r.unwrap_or_else(|e| panic!("{what} after the restart: {e}\n{}", ctd.log_tail(30)));
    }
    cri.assert_pod_gone(Some(&id), &[c], &uid);
}

/// The host's name (a hostNetwork pod keeps it: it has no UTS namespace of its own).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host's name")
        .trim()
        .to_string()
}

#[test]
fn host_ipc_and_pid_pods_are_refused_naming_the_field_as_on_tent_leaving_nothing() {
    if skip() {
        return;
    }
    // A pauseless pod's containers run tent's default profile (its handler can be given no
    // options on containerd 2.1), which refuses the host's namespaces: the pod is refused at
    // RunPodSandbox as on handler `tent` (whose pause container is refused), not made ready
    // with every container then refused.
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let cases = [
        (
            "hostIPC",
            "ipc",
            NamespaceOption {
                ipc: NamespaceMode::Node as i32,
                ..pod_namespaces()
            },
        ),
        (
            "hostPID",
            "pid",
            NamespaceOption {
                pid: NamespaceMode::Node as i32,
                ..pod_namespaces()
            },
        ),
    ];
    on_each(&[TENT, TENT_PAUSELESS], |handler| {
        for (field, name, ns) in &cases {
            let mut config = pod_config(ctd, "host-ns");
            pod_linux(&mut config)
                .security_context
                .get_or_insert_with(Default::default)
                .namespace_options = Some(ns.clone());
            // Pod::run checks the refused pod left nothing (shim, bundle, pins, cgroups).
            let e = match Pod::run(&cri, config, handler) {
                Ok(pod) => panic!("{handler}: a {field} pod ran: {}", pod.id),
                Err(e) => e,
            };
            eprintln!("{handler} refused a {field} pod: {}", e.message());
            let want =
                format!("{field}: tent's profile refuses sharing the host's {name} namespace");
            assert!(e.message().contains(&want), "{handler}: {e:?}");
        }
    });
}

/// containerd 2.1.x's CRI dereferences a nil spec when a `sandboxer = "shim"` handler runs a
/// hostNetwork pod (containerd/containerd#12983, fixed upstream by #13131 after 2.1.9): the
/// daemon panics before tent is asked. Run on a daemon of its own; where containerd answers,
/// tent refuses the pod as it refuses hostIPC/hostPID.
#[test]
fn host_network_pod_is_refused_or_crashes_containerd_before_tent_is_asked() {
    if skip() {
        return;
    }
    let ctd = Containerd::start();
    let cri = Cri::connect(&ctd);
    let mut config = pod_config(&ctd, "host-net");
    config.hostname = host_name();
    pod_linux(&mut config)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(NamespaceOption {
        network: NamespaceMode::Node as i32,
        ..pod_namespaces()
    });
    let uid = config
        .metadata
        .as_ref()
        .map(|m| m.uid.clone())
        .unwrap_or_default();
    match cri.run_pod_sandbox(&config, TENT_PAUSELESS) {
        Ok(id) => panic!("a hostNetwork pod ran on tent-pauseless: {id}"),
        Err(e) if e.code() == tonic::Code::Unknown || e.code() == tonic::Code::Unavailable => {
            let log = std::fs::read_to_string(ctd.log_path()).unwrap_or_default();
            assert!(
                log.contains("panic: runtime error: invalid memory address")
                    && log.contains("NewBundle"),
                "RunPodSandbox failed without an answer, but not with containerd's known panic: {e:?}\n{}",
                ctd.log_tail(40)
            );
            eprintln!(
                "KNOWN containerd {} bug (containerd/containerd#12983): a hostNetwork pod on a shim sandboxer crashes the daemon before tent is asked",
                ctd.version()
            );
            // Nothing of the pod was made: containerd died in its own bundle set-up.
            assert!(
                !ctd.shim_pids("").into_iter().any(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/cwd/config.json"))
                        .unwrap_or_default()
                        .contains(&uid)
                }),
                "a shim of the hostNetwork pod runs"
            );
        }
        Err(e) => {
            eprintln!("tent-pauseless refused a hostNetwork pod: {}", e.message());
            assert!(
                e.message().contains(
                    "hostNetwork: tent's profile refuses sharing the host's network namespace"
                ),
                "{e:?}"
            );
            cri.assert_pod_gone(None, &[], &uid);
        }
    }
}

/// containerd's images in namespace `k8s.io` (`ctr images ls -q`).
fn cri_images(ctd: &Containerd) -> Vec<String> {
    let o = ctd.ctr(&["--namespace", CRI_NAMESPACE, "images", "ls", "-q"]);
    assert!(o.status.success(), "ctr images ls: {o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn pauseless_pod_needs_no_pause_image() {
    if skip() {
        return;
    }
    // A daemon of its own: its sandbox image is removed, which every pause pod needs.
    let ctd = Containerd::start();
    const PAUSE: &str = "docker.io/library/tent-test:pause";
    let images = cri_images(&ctd);
    assert!(
        images.iter().any(|i| i == PAUSE),
        "{PAUSE} imported: {images:?}"
    );
    ctd.ctr_result(&[
        "--namespace",
        CRI_NAMESPACE,
        "images",
        "rm",
        "--sync",
        PAUSE,
    ])
    .assert_ok();
    let t = Instant::now();
    while cri_images(&ctd).iter().any(|i| i == PAUSE) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{PAUSE} still listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cri = Cri::connect(&ctd);
    // The control: a pod on the pause path cannot start without it (there is no registry to
    // pull it from), so the image is really gone for the CRI.
    let refused = Pod::run(&cri, pod_config(&ctd, "with-pause"), TENT);
    let e = match refused {
        Ok(_) => panic!("a pause pod started without its sandbox image"),
        Err(e) => e,
    };
    assert!(e.message().contains("tent-test:pause"), "{e}");
    // A pauseless pod starts, runs a container and is removed leaving nothing.
    let mut pod =
        Pod::run(&cri, pod_config(&ctd, "no-pause"), TENT_PAUSELESS).unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox without a pause image: {e}\n{}",
                ctd.log_tail(40)
            )
        });
    let c = pod.run_container(&container_config("c", &WAIT));
    let r = cri.exec_sync(&c, &["hostname"], 30).expect("ExecSync");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "no-pause");
    assert!(
        !cri_images(&ctd).iter().any(|i| i == PAUSE),
        "the pauseless pod pulled or imported {PAUSE}"
    );
    pod.remove();
}
