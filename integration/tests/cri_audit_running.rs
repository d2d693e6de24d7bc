//! `tent audit --running` names CRI containers as an operator knows them: a pod on the
//! `tent` handler with one container, then the CLI (release build of `tent-cli`, or
//! `TENT_CLI`) lists the container and the pod's sandbox beside their ids with the pod's
//! namespace/name and the container's name (containerd's CRI annotations in each spec), in
//! `--json` and in the table, each with the summary the shim kept. tent-only.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tent_integration::cri::*;
use tent_integration::*;

/// The `tent` CLI: `TENT_CLI`, else the workspace's release build (hack/test.sh builds it
/// before the integration tests), else the debug build.
fn tent_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("TENT_CLI") {
        return PathBuf::from(p);
    }
    let target = repo_root().join("target");
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("tent"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no tent CLI in {}/{{release,debug}}: cargo build --release -p tent-cli (or set TENT_CLI)",
                target.display()
            )
        })
}

fn audit_running(ctd: &Containerd, json: bool) -> String {
    let mut c = Command::new(tent_cli());
    c.arg("audit").arg("--running");
    if json {
        c.arg("--json");
    }
    c.arg("--state")
        .arg(ctd.state_dir())
        .arg("--address")
        .arg(ctd.address())
        .arg("--ctr")
        .arg(ctd.dir().join("bin/ctr"));
    let out = run_with_timeout(&mut c, None, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "tent audit --running: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn running_names_the_pod_and_the_container() {
    if is_runc() {
        eprintln!("SKIP cri_audit_running: the summary is tent's; the runtime under test is runc");
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let name = format!("audit-running-{}", std::process::id());
    let mut pod = Pod::run(&cri, pod_config(ctd, &name), TENT)
        .unwrap_or_else(|e| panic!("RunPodSandbox on tent: {e}\n{}", ctd.log_tail(30)));
    let id = pod.run_container(&container_config(
        "app",
        &["/bin/tent-testbin", "wait-term"],
    ));
    // Both summaries are made off the start path: poll until both are kept.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let v: Value = serde_json::from_str(&audit_running(ctd, true)).expect("JSON");
        let rows = v.as_array().cloned().unwrap_or_default();
        let kept = |want: &str| {
            rows.iter()
                .any(|r| r["id"] == want && r.get("summary").is_some())
        };
        if kept(&id) && kept(&pod.id) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no summaries for {id} and sandbox {} within 60 s: {rows:?}\n{}",
            pod.id,
            ctd.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let row = |want: &str| {
        rows.iter()
            .find(|r| r["id"] == want)
            .cloned()
            .unwrap_or_else(|| panic!("{want} not listed: {rows:?}"))
    };
    let c = row(&id);
    let s = row(&pod.id);
    eprintln!("container: {c}\nsandbox: {s}");
    assert!(
        c.get("pod").is_some(),
        "no pod names for {id}: is {} older than this tree? (cargo build --release -p tent-cli)",
        tent_cli().display()
    );
    assert_eq!(c["namespace"], CRI_NAMESPACE, "{c}");
    assert_eq!(c["pod"]["namespace"], "tent-it", "{c}");
    assert_eq!(c["pod"]["name"], name.as_str(), "{c}");
    assert_eq!(c["pod"]["container"], "app", "{c}");
    assert_eq!(c["pod"]["sandbox"], false, "{c}");
    assert_eq!(c["summary"]["busybox"], true, "the test image: {c}");
    assert_eq!(s["pod"]["name"], name.as_str(), "{s}");
    assert_eq!(s["pod"]["namespace"], "tent-it", "{s}");
    assert_eq!(s["pod"]["sandbox"], true, "{s}");
    assert!(s["pod"].get("container").is_none(), "{s}");
    assert_eq!(s["summary"]["busybox"], false, "tent's pause image: {s}");
    // Containers made through the Task API (other tests' `ctr run`s) carry no pod.
    for r in rows.iter().filter(|r| r["namespace"] != CRI_NAMESPACE) {
        assert!(r.get("pod").is_none(), "a Task API container: {r}");
    }

    let table = audit_running(ctd, false);
    eprintln!("{table}");
    let short = |x: &str| x.chars().take(27).collect::<String>();
    let line = |x: &str| {
        table
            .lines()
            .find(|l| l.contains(&short(x)))
            .unwrap_or_else(|| panic!("{x} not in the table:\n{table}"))
            .to_string()
    };
    assert!(
        line(&id).contains(&format!("tent-it/{name}/app")),
        "{table}"
    );
    assert!(
        line(&pod.id).contains(&format!("tent-it/{name} (sandbox)")),
        "{table}"
    );
    pod.remove();
}
