//! The audit budget through containerd's CRI, as kubelet drives it: the handler
//! `tent-budget` (`config/tent-budget.toml`: deny a shell, a package manager,
//! kernel-facing tools, any setuid or capability file). The pod sandbox (tent's
//! pause image, one static file) keeps to the budget and runs; a container of
//! the test image (busybox) is refused when its task is created (containerd's
//! CRI creates the task at StartContainer), the error naming the rule and the
//! files, which kubelet shows as the container's error; the pod is then removed
//! and checked to leave nothing. tent-only.

use std::time::Duration;

use tent_integration::cri::*;
use tent_integration::*;

#[test]
fn busybox_container_is_refused_and_pause_runs() {
    if is_runc() {
        eprintln!(
            "SKIP cri_budget: tent's handler is what is tested, the runtime under test is runc"
        );
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
