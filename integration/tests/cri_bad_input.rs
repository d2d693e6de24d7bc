//! Bad input to a pod through containerd's CRI, on the handlers `tent` and `runc` in the same
//! run: each fails with a clear error (the path or name that is wrong), leaves nothing behind
//! (the `Pod` guard's leak check: shims, mounts, cgroups, bundles, CRI state, netns pins), and
//! leaves the pod's other containers running:
//! - a container whose command (or image command, from `args`) does not exist;
//! - an unknown runtime handler (containerd's error passes through);
//! - a container referring to a removed sandbox;
//! - a sandbox whose network namespace pin vanished before a container was created.

use std::path::Path;
use std::time::Duration;

use tent_integration::cri::*;
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];

/// CreateContainer + StartContainer: the status of whichever step failed.
fn create_and_start(pod: &mut Pod, c: &ContainerConfig) -> Result<String, Status> {
    let id = pod.create(c)?;
    pod.start(&id)?;
    Ok(id)
}

/// The keeper container still runs and answers an ExecSync.
#[track_caller]
fn keeper_alive(pod: &Pod, keeper: &str) {
    pod.wait_state(keeper, ContainerState::ContainerRunning, Duration::ZERO);
    assert_eq!(pod.exec_ok(keeper, &["echo", "still-here"]), "still-here\n");
}

#[test]
fn missing_command_fails_naming_the_path_and_the_pod_keeps_running() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "missing-cmd"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let keeper = pod.run_container(&container_config("keeper", &WAIT));

        // `command:` (the image's entrypoint replaced) and `args:` (the image's command
        // replaced, no entrypoint in the image): both name a binary that is not there.
        let by_command = container_config("by-command", &["/no/such/binary"]);
        let mut by_args = container_config("by-args", &[]);
        by_args.args = vec!["/no/such/image-cmd".to_string(), "arg".to_string()];
        for (c, path) in [
            (by_command, "/no/such/binary"),
            (by_args, "/no/such/image-cmd"),
        ] {
            let err = match create_and_start(&mut pod, &c) {
                Ok(id) => panic!("{handler}: a container running {path} started: {id}"),
                Err(e) => e,
            };
            eprintln!("{handler}: {path}: {}", err.message());
            assert!(
                err.message().contains(path),
                "{handler}: the error does not name {path}: {err:?}"
            );
            // The failed container is not running; the pod and its other container are.
            if let Some(id) = pod.containers().last().cloned() {
                if id != keeper {
                    let st = cri.container_status(&id).expect("ContainerStatus");
                    let state = st.status.map(|s| s.state);
                    assert_ne!(
                        state,
                        Some(ContainerState::ContainerRunning as i32),
                        "{handler}: {id}"
                    );
                    pod.remove_container(&id, 2)
                        .unwrap_or_else(|e| panic!("{handler}: remove failed container: {e}"));
                }
            }
            keeper_alive(&pod, &keeper);
        }
        let ready = cri.pod_sandbox_status(&pod.id).expect("PodSandboxStatus");
        assert_eq!(
            ready.status.map(|s| s.state),
            Some(api::PodSandboxState::SandboxReady as i32)
        );
        pod.remove();
    });
}

#[test]
fn unknown_runtime_handler_fails_with_containerds_error_and_leaves_nothing() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let handler = "no-such-handler";
    // Pod::run checks that a refused pod left nothing of its uid behind.
    let r = Pod::run(&cri, pod_config(ctd, "unknown-handler"), handler).map(|p| p.id.clone());
    match r {
        Ok(id) => panic!("a pod ran on handler {handler}: {id}"),
        Err(e) => {
            eprintln!("unknown handler: {}", e.message());
            assert!(e.message().contains(handler), "{e:?}");
        }
    }
}

#[test]
fn container_in_a_removed_sandbox_is_refused_and_other_pods_keep_running() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut other = Pod::run(&cri, pod_config(ctd, "bystander"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let keeper = other.run_container(&container_config("keeper", &WAIT));

        let gone = Pod::run(&cri, pod_config(ctd, "removed"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let (gone_id, gone_cfg, uid) = (gone.id.clone(), gone.config.clone(), gone.uid());
        gone.remove();

        let c = container_config("late", &WAIT);
        let err = cri
            .create_container(&gone_id, &c, &gone_cfg)
            .expect_err("CreateContainer in a removed sandbox must fail");
        eprintln!("{handler}: removed sandbox: {}", err.message());
        assert!(err.message().contains(&gone_id), "{handler}: {err:?}");
        // Nothing was made for it.
        cri.assert_pod_gone(Some(&gone_id), &[], &uid);
        let listed = cri.list_containers(&gone_id).expect("ListContainers");
        assert!(listed.is_empty(), "{handler}: {listed:?}");
        keeper_alive(&other, &keeper);
        other.remove();
    });
}

#[test]
fn vanished_network_namespace_pin_gives_a_clear_answer_and_harms_nothing() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "netns-gone"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let keeper = pod.run_container(&container_config("keeper", &WAIT));
        let ns = pod
            .netns_path()
            .unwrap_or_else(|| panic!("{handler}: the sandbox has no netns path"));
        unpin(&ns);

        // containerd joins app containers to the sandbox's namespaces through its pid, not the
        // pin: a new container either runs in the pod's network namespace, or fails with an
        // error that names what is missing. Never another namespace, a hang, or a leak.
        let c = container_config("late", &WAIT);
        match create_and_start(&mut pod, &c) {
            Ok(id) => {
                pod.wait_state(
                    &id,
                    ContainerState::ContainerRunning,
                    Duration::from_secs(20),
                );
                let a = pod.exec_ok(&id, &["readlink", "/proc/self/ns/net"]);
                let b = pod.exec_ok(&keeper, &["readlink", "/proc/self/ns/net"]);
                assert_eq!(a, b, "{handler}: the late container's network namespace");
                eprintln!("{handler}: a container created after the netns pin vanished runs in the pod's namespace");
            }
            Err(e) => {
                eprintln!("{handler}: netns pin vanished: {}", e.message());
                let m = e.message();
                assert!(
                    m.contains(&ns.display().to_string())
                        || m.contains("network namespace")
                        || m.contains("netns"),
                    "{handler}: unclear error: {e:?}"
                );
            }
        }
        keeper_alive(&pod, &keeper);
        // Stop/Remove still work and leave nothing (the pin is gone already).
        pod.remove();
    });
}

/// Remove a network namespace pin (a bind mount of nsfs) as a host accident would: detach
/// the mount, delete the file.
fn unpin(ns: &Path) {
    let c = std::ffi::CString::new(ns.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: umount2 with a valid C string.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(
        rc,
        0,
        "umount {}: {}",
        ns.display(),
        std::io::Error::last_os_error()
    );
    std::fs::remove_file(ns).unwrap_or_else(|e| panic!("rm {}: {e}", ns.display()));
}
