//! The audit budget through containerd's CRI, as kubelet drives it: the handler
//! `tent-budget` (`config/tent-budget.toml`: deny a shell, a package manager,
//! kernel-facing tools, any setuid or capability file). The pod sandbox (tent's
//! pause image, one static file) keeps to the budget and runs; a container of
//! the test image (busybox) is refused when its task is created (containerd's
//! CRI creates the task at StartContainer), the error naming the rule and the
//! files, which kubelet shows as the container's error; the pod is then removed
//! and checked to leave nothing. The handler `tent-budget-warn` (the same rules,
//! `mode = "warn"`) runs that container, and the shim's warning naming the rules
//! and the files reaches containerd's log (what an operator reads: the CRI has
//! no field for a started container's warnings). tent-only.

use std::time::Duration;

use tent_integration::cri::*;
use tent_integration::*;

/// tent's handlers are what is tested: with runc as the runtime under test, SKIP (said).
fn runc_under_test() -> bool {
    if is_runc() {
        eprintln!(
            "SKIP cri_budget: tent's handler is what is tested, the runtime under test is runc"
        );
    }
    is_runc()
}

#[test]
fn busybox_container_is_refused_and_pause_runs() {
    if runc_under_test() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut pod = Pod::run(&cri, pod_config(ctd, "budget"), TENT_BUDGET)
        .unwrap_or_else(|e| panic!("RunPodSandbox on tent-budget: {e}\n{}", ctd.log_tail(30)));
    let ready = cri.pod_sandbox_status(&pod.id).expect("PodSandboxStatus");
    assert_eq!(
        ready.status.map(|s| s.state),
        Some(api::PodSandboxState::SandboxReady as i32)
    );
    let id = pod
        .create(&container_config(
            "busybox",
            &["/bin/tent-testbin", "wait-term"],
        ))
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    let err = pod
        .start(&id)
        .expect_err("an image with a shell must not start on tent-budget");
    eprintln!("tent-budget refused: {}", err.message());
    for want in [
        "exceeds tent's audit budget",
        "[audit] forbid = [\"shell\"]: ",
        "/bin/sh",
        "[audit] forbid = [\"package-manager\"]: ",
        "[audit] forbid = [\"kernel-tools\"]: ",
        "mode = \"deny\"",
    ] {
        assert!(err.message().contains(want), "{want:?} missing: {err:?}");
    }
    let st = pod.wait_state(
        &id,
        ContainerState::ContainerExited,
        Duration::from_secs(10),
    );
    eprintln!(
        "container status after the refusal: reason {:?}, message {:?}",
        st.reason, st.message
    );
    // What kubelet shows as the container's state.
    assert_eq!(st.reason, "StartError", "{st:?}");
    assert!(st.message.contains("exceeds tent's audit budget"), "{st:?}");
    pod.remove();
}

#[test]
fn busybox_container_runs_in_warn_mode_and_the_log_names_rule_and_files() {
    if runc_under_test() {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut pod =
        Pod::run(&cri, pod_config(ctd, "budget-warn"), TENT_BUDGET_WARN).unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox on tent-budget-warn: {e}\n{}",
                ctd.log_tail(30)
            )
        });
    let id = pod.run_container(&container_config(
        "busybox",
        &["/bin/tent-testbin", "wait-term"],
    ));
    // It runs: ExecSync through the CRI reaches the container's shell.
    let out = pod.exec_ok(&id, &["/bin/sh", "-c", "echo warned-but-running"]);
    assert!(out.contains("warned-but-running"), "{out:?}");
    // The judgement is made off the start path: poll the log for it.
    let needle = format!("container {id}: the image exceeds tent's audit budget");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let line = loop {
        let log = std::fs::read_to_string(ctd.log_path()).unwrap_or_default();
        if let Some(l) = log.lines().find(|l| l.contains(&needle)) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no budget warning for {id} in containerd's log within 60 s:\n{}",
            ctd.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("tent-budget-warn logged: {line}");
    for want in [
        "[audit] forbid = [\"shell\"]: ",
        "/bin/sh",
        "[audit] forbid = [\"package-manager\"]: ",
        "[audit] forbid = [\"kernel-tools\"]: ",
        "mode = \"warn\"",
        "the container runs",
    ] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
    // Still running after the warning, and nothing in the CRI status says otherwise.
    let st = cri
        .container_status(&id)
        .expect("ContainerStatus")
        .status
        .expect("a status");
    assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
    pod.remove();
}
