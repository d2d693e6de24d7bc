//! `tent install` → doctor clean → a pod on each handler (the installer's own verification
//! through the CRI) → `tent uninstall` → config byte-identical, on a real private containerd
//! (`TENT_CONTAINERD_VERSION` 1.6/1.7: config version 2, 2.1: version 3); also with a root
//! config importing a drop-in directory (used on version 3; on 1.x the root file is edited).
//! On 2.1 the installer also registers `tent-pauseless` (`sandboxer = "shim"`, no options) and
//! its verification pod runs without a pause process; on 1.x it says it skipped it.

mod node;

use node::*;

const PAUSE: &str = "docker.io/library/tent-test:pause";

fn install_args(d: &Daemon, prefix: &str) -> Vec<String> {
    let profiles = repo().join("config");
    vec![
        "--prefix".into(),
        prefix.into(),
        "--shim".into(),
        shim().display().to_string(),
        "--profiles".into(),
        profiles.display().to_string(),
        "--restart".into(),
        d.restart_arg(),
        "--verify-image".into(),
        PAUSE.into(),
        "--distro".into(),
        "k8s".into(),
    ]
}

fn tent(d: &Daemon, cmd: &str, extra: &[&str], prefix: &str) -> Out {
    let mut a: Vec<String> = vec![cmd.into()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(install_args(d, prefix));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    d.tent(&refs)
}

/// install, doctor, re-install, uninstall; `changed` is the file tent writes.
fn round_trip(d: &Daemon, changed: &std::path::Path) {
    let prefix = d.dir.join("opt-tent").display().to_string();
    let root_before = std::fs::read(d.config()).expect("read config");
    let changed_before = std::fs::read(changed).ok();

    // --dry-run: the diff, nothing changed.
    let o = tent(d, "install", &["--dry-run"], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    let table = format!("+[plugins.\"{}\".containerd.runtimes.tent]", d.plugin());
    assert!(o.stdout.contains(&table), "dry run shows the table:\n{o}");
    assert_eq!(std::fs::read(d.config()).ok(), Some(root_before.clone()));
    assert_eq!(std::fs::read(changed).ok(), changed_before);
    assert!(
        !std::path::Path::new(&prefix).exists(),
        "--dry-run made {prefix}"
    );

    let o = tent(d, "install", &[], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    for h in ["tent", "tent-compat"] {
        assert!(
            o.stdout.contains(&format!("a pod on handler {h} ran")),
            "{o}"
        );
    }
    let pauseless_ran = o.stdout.contains("a pod on handler tent-pauseless ran");
    if d.v3() {
        assert!(
            pauseless_ran,
            "containerd 2.x: a pod on tent-pauseless\n{o}"
        );
    } else {
        assert!(!pauseless_ran, "{o}");
        assert!(
            o.stdout.contains("tent-pauseless skipped") && o.stdout.contains("containerd 2.x"),
            "containerd 1.x: the skip is said\n{o}"
        );
    }
    assert!(o.stdout.contains("tent doctor: no problems"), "{o}");
    assert!(o.stdout.contains("not in a cluster"), "{o}");
    // The verification pods left no pod cgroup directory (their uids are in the output).
    for uid in o
        .stdout
        .split("uid ")
        .skip(1)
        .filter_map(|r| r.split(')').next())
    {
        for h in ["memory", "pids", "cpu,cpuacct", "unified"] {
            let p = format!("/sys/fs/cgroup/{h}/kubepods/besteffort/pod{uid}");
            assert!(!std::path::Path::new(&p).exists(), "{p} left behind");
        }
    }
    assert!(o.stdout.contains("uid tentverify"), "{o}");
    let installed = std::fs::read_to_string(changed).expect("tent's config");
    if changed != d.config() {
        assert_eq!(
            std::fs::read(d.config()).ok(),
            Some(root_before.clone()),
            "the root config was edited although a drop-in was written"
        );
    }
    let shim_dest = format!("{prefix}/bin/containerd-shim-tent-v1");
    assert!(installed.contains(&shim_dest), "{installed}");
    let doc = d.doc(changed);
    let runtimes = &doc["plugins"][d.plugin()]["containerd"]["runtimes"];
    assert!(runtimes["tent"].is_table(), "{installed}");
    match runtimes.get("tent-pauseless") {
        Some(p) => {
            assert!(d.v3(), "tent-pauseless registered on 1.x:\n{installed}");
            assert_eq!(p["sandboxer"].as_str(), Some("shim"), "{installed}");
            assert!(p.get("options").is_none(), "{installed}");
        }
        None => assert!(!d.v3(), "no tent-pauseless on 2.x:\n{installed}"),
    }

    let o = d.tent(&["doctor", "--json"]);
    assert_eq!(o.code, Some(0), "doctor after install:\n{o}");
    // The pauseless handler is checked where it was registered, a note where it cannot be.
    if d.v3() {
        assert!(o.stdout.contains("\"tent-pauseless sandboxer\""), "{o}");
    } else {
        assert!(o.stdout.contains("no shim sandboxer"), "{o}");
    }
    assert!(
        o.stdout.contains(&format!("shim version {shim_dest}")),
        "{o}"
    );

    // Again: nothing changes, containerd is not restarted, the pods still run.
    let pid = std::fs::read_to_string(d.dir.join("containerd.pid")).expect("pid");
    let o = tent(d, "install", &[], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(o.stdout.contains("already registers tent"), "{o}");
    assert_eq!(
        std::fs::read_to_string(changed).ok().as_deref(),
        Some(installed.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(d.dir.join("containerd.pid")).ok(),
        Some(pid)
    );

    let o = tent(d, "uninstall", &["--dry-run"], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(
        std::fs::read_to_string(changed).ok().as_deref(),
        Some(installed.as_str())
    );

    let o = tent(d, "uninstall", &[], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(
        std::fs::read(d.config()).expect("config"),
        root_before,
        "root config not restored byte for byte"
    );
    assert_eq!(
        std::fs::read(changed).ok(),
        changed_before,
        "{} not restored",
        changed.display()
    );
    assert!(
        !std::path::Path::new(&prefix).exists(),
        "{prefix} left behind"
    );
    // containerd came back without tent.
    let o = d.tent(&["doctor", "--json"]);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stdout.contains("\"cri handler tent\""), "{o}");
    let o = tent(d, "uninstall", &[], &prefix);
    assert!(
        o.code == Some(0) && o.stdout.contains("nothing installed"),
        "{o}"
    );
}

#[test]
fn install_doctor_uninstall_config_toml() {
    let Some(d) = Daemon::up("install") else {
        return;
    };
    d.strip_tent();
    d.restart();
    round_trip(&d, &d.config());
}

#[test]
fn install_into_imported_drop_in() {
    let Some(d) = Daemon::up("dropin") else {
        return;
    };
    d.strip_tent();
    let conf_d = d.dir.join("conf.d");
    std::fs::create_dir_all(&conf_d).expect("mkdir conf.d");
    let text = std::fs::read_to_string(d.config()).expect("config");
    let text = format!("imports = [\"{}/*.toml\"]\n{text}", conf_d.display());
    std::fs::write(d.config(), text).expect("write config");
    d.restart();
    if d.v3() {
        round_trip(&d, &conf_d.join("tent.toml"));
    } else {
        // containerd 1.x replaces a plugin's whole section on import: tent edits the root.
        round_trip(&d, &d.config());
        assert!(!conf_d.join("tent.toml").exists());
    }
}

#[test]
fn install_refuses_missing_sources_and_malformed_config() {
    let Some(d) = Daemon::up("refuse") else {
        return;
    };
    let before = std::fs::read(d.config()).expect("config");
    let prefix = d.dir.join("opt-tent").display().to_string();
    let o = d.tent(&[
        "install",
        "--prefix",
        &prefix,
        "--shim",
        "/nonexistent/shim",
        "--restart",
        "none",
    ]);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stderr.contains("/nonexistent/shim"), "{o}");
    let bad = d.dir.join("bad.toml");
    std::fs::write(&bad, "version = 2\n[plugins\n").expect("write");
    let mut a = vec!["install".to_string()];
    a.extend(install_args(&d, &prefix));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = d.tent_with(&refs, &bad);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(
        o.stderr.contains("bad.toml") && o.stderr.contains("not valid TOML"),
        "{o}"
    );
    assert_eq!(
        std::fs::read_to_string(&bad).ok().as_deref(),
        Some("version = 2\n[plugins\n")
    );
    assert_eq!(std::fs::read(d.config()).expect("config"), before);
    assert!(
        !std::path::Path::new(&prefix).exists(),
        "{prefix} left behind"
    );
}

/// `tent install --wait-for-term` as the chart runs it, with a stand-in `kubectl` (a script
/// answering for the API server): the label is set after the verification; SIGTERM while
/// the DaemonSet stays (a rolling update) keeps tent; SIGTERM once it is gone removes the
/// label and uninstalls, the config byte-identical.
#[test]
fn sigterm_uninstalls_only_when_the_daemonset_goes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let Some(d) = Daemon::up("sigterm") else {
        return;
    };
    d.strip_tent();
    d.restart();
    let original = std::fs::read(d.config()).expect("config");
    let prefix = d.dir.join("opt-tent").display().to_string();
    let log = d.dir.join("kubectl.log");
    let answer = d.dir.join("ds-answer");
    let kubectl = d.dir.join("kubectl");
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/sh\necho \"$*\" >>{log}\ncase \"$*\" in *'get daemonset'*) cat {answer};; esac\n",
            log = log.display(),
            answer = answer.display()
        ),
    )
    .expect("write kubectl");
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&kubectl)
        .status()
        .expect("chmod");

    let run = |ds_answer: &str| -> (Option<i32>, String) {
        std::fs::write(&answer, ds_answer).expect("write answer");
        let mut c = Command::new(env!("CARGO_BIN_EXE_tent"));
        c.arg("install")
            .args(install_args(&d, &prefix))
            .args([
                "--wait-for-term",
                "--daemonset",
                "tent-system/tent",
                "--node",
                "n1",
            ])
            .arg("--kubectl")
            .arg(&kubectl)
            .arg("--config")
            .arg(d.config())
            .arg("--address")
            .arg(d.socket())
            .arg("--containerd")
            .arg(d.bin.join("containerd"))
            .args(["--kubelet-config", "/nonexistent/kubelet.yaml"])
            .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn tent install");
        let mut out = String::new();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for l in lines.by_ref() {
            let l = l.expect("read stdout");
            out.push_str(&l);
            out.push('\n');
            if l.contains("labelled") {
                break;
            }
        }
        assert!(
            out.contains("node n1 labelled runtime.tent.dev/ready=true"),
            "{out}"
        );
        // SAFETY: our own child, not yet waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        for l in lines {
            out.push_str(&l.expect("read stdout"));
            out.push('\n');
        }
        (child.wait().expect("wait").code(), out)
    };

    let (code, out) = run("tent ");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("tent stays installed"), "{out}");
    assert!(std::fs::read_to_string(d.config())
        .expect("config")
        .contains("runtimes.tent]"));
    let calls = std::fs::read_to_string(&log).expect("kubectl log");
    assert!(
        calls.contains("label node n1 runtime.tent.dev/ready=true --overwrite"),
        "{calls}"
    );
    assert!(
        !calls.contains("ready-"),
        "label removed during a rolling update: {calls}"
    );

    let (code, out) = run("");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("label runtime.tent.dev/ready removed from node n1"),
        "{out}"
    );
    assert!(out.contains("tent uninstall: done"), "{out}");
    assert_eq!(
        std::fs::read(d.config()).expect("config"),
        original,
        "config not restored"
    );
    assert!(
        !std::path::Path::new(&prefix).exists(),
        "{prefix} left behind"
    );
}

/// A config the operator changed after `tent install`: uninstall takes tent's tables out and
/// keeps the operator's change (the original cannot be restored without losing it).
#[test]
fn uninstall_keeps_a_later_change() {
    let Some(d) = Daemon::up("changed") else {
        return;
    };
    d.strip_tent();
    d.restart();
    let prefix = d.dir.join("opt-tent").display().to_string();
    let o = tent(&d, "install", &[], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    let mut text = std::fs::read_to_string(d.config()).expect("config");
    text.push_str("# added by the operator after tent install\n");
    std::fs::write(d.config(), &text).expect("write config");
    let o = tent(&d, "uninstall", &[], &prefix);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(o.stderr.contains("changed since tent install"), "{o}");
    let after = std::fs::read_to_string(d.config()).expect("config");
    assert!(
        after.contains("# added by the operator after tent install"),
        "{after}"
    );
    let doc = d.doc(&d.config());
    let rt = &doc["plugins"][d.plugin()]["containerd"]["runtimes"];
    assert!(
        rt.get("tent").is_none()
            && rt.get("tent-compat").is_none()
            && rt.get("tent-pauseless").is_none(),
        "{after}"
    );
    assert!(rt.get("runc").is_some(), "{after}");
    assert!(
        !std::path::Path::new(&prefix).exists(),
        "{prefix} left behind"
    );
}
