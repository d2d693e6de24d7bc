//! `tent doctor` against a real private containerd (1.6/1.7/2.1 by
//! `TENT_CONTAINERD_VERSION`): clean on a good config, and each deliberately broken config
//! named with its fix and a non-zero exit status.

mod node;

use std::os::unix::fs::PermissionsExt;

use node::*;
use serde_json::Value;

fn findings(o: &Out) -> Vec<Value> {
    serde_json::from_str::<Value>(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor JSON ({e}):\n{o}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The finding whose check is `check`, asserting its level.
fn expect(o: &Out, check: &str, level: &str) -> Value {
    let f = findings(o);
    let x = f
        .iter()
        .find(|x| x["check"] == check)
        .unwrap_or_else(|| panic!("no finding {check:?}:\n{o}"))
        .clone();
    assert_eq!(x["level"], level, "{check}:\n{o}");
    x
}

#[test]
fn doctor_on_good_and_broken_configs() {
    let Some(d) = Daemon::up("doctor") else {
        return;
    };
    // hack/containerd.sh's config: tent and tent-compat by PATH, reported by the CRI.
    let o = d.tent(&["doctor", "--json"]);
    assert_eq!(o.code, Some(0), "{o}");
    expect(&o, "handler tent", "ok");
    expect(&o, "handler tent-compat", "ok");
    expect(&o, "cri handler tent", "ok");
    expect(&o, "cri RuntimeReady", "ok");
    expect(&o, "tent runtime_path", "info");
    // The same through another process's namespaces (the chart's --host-ns enters PID 1's;
    // here this test's own, as the sandbox's PID 1 is out of reach): setns before exec works.
    let me = std::process::id().to_string();
    let o = d.tent(&[
        "doctor",
        "--json",
        "--host-ns",
        "--host-pid",
        &me,
        "--host-root",
        "/",
    ]);
    assert_eq!(o.code, Some(0), "{o}");
    expect(&o, "handler tent", "ok");
    let table = d.tent(&["doctor"]);
    assert!(table.stdout.contains("tent doctor: no problems"), "{table}");

    let base = d.doc(&d.config());
    let write = |name: &str, doc: &toml_edit::DocumentMut| {
        let p = d.dir.join(name);
        std::fs::write(&p, doc.to_string()).expect("write config");
        p
    };

    // The handler under the plugin id this config version ignores.
    let mut wrong = base.clone();
    let t = wrong["plugins"][d.plugin()]["containerd"]["runtimes"]
        .as_table_mut()
        .expect("runtimes")
        .remove("tent")
        .expect("tent table");
    wrong["plugins"][d.ignored_plugin()]["containerd"]["runtimes"]["tent"] = t;
    let p = write("wrong-plugin.toml", &wrong);
    let o = d.tent_with(&["doctor", "--json", "--no-cri"], &p);
    assert_eq!(o.code, Some(1), "{o}");
    let f = expect(&o, "handler tent", "problem");
    let detail = f["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(d.ignored_plugin()) && detail.contains("ignored"),
        "{o}"
    );
    assert!(
        f["fix"].as_str().unwrap_or_default().contains(d.plugin()),
        "{o}"
    );
    expect(&o, "handler tent-compat", "ok");

    // Missing handler.
    let mut missing = base.clone();
    missing["plugins"][d.plugin()]["containerd"]["runtimes"]
        .as_table_mut()
        .expect("runtimes")
        .remove("tent-compat");
    let p_missing = write("missing.toml", &missing);
    let o = d.tent_with(&["doctor", "--json", "--no-cri"], &p_missing);
    assert_eq!(o.code, Some(1), "{o}");
    let f = expect(&o, "handler tent-compat", "problem");
    assert!(
        f["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no [plugins"),
        "{o}"
    );

    // runtime_path not executable.
    let noexec = d.dir.join("shim-noexec");
    std::fs::copy(shim(), &noexec).expect("copy shim");
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut bad = base.clone();
    bad["plugins"][d.plugin()]["containerd"]["runtimes"]["tent"]["runtime_path"] =
        toml_edit::value(noexec.display().to_string());
    let p = write("noexec.toml", &bad);
    let o = d.tent_with(&["doctor", "--json", "--no-cri"], &p);
    assert_eq!(o.code, Some(1), "{o}");
    let f = expect(&o, "tent runtime_path", "problem");
    assert!(
        f["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not executable"),
        "{o}"
    );

    // A shim of another version than expected; the real shim is accepted.
    let mut real = base.clone();
    real["plugins"][d.plugin()]["containerd"]["runtimes"]["tent"]["runtime_path"] =
        toml_edit::value(shim().display().to_string());
    let p = write("real-shim.toml", &real);
    let o = d.tent_with(&["doctor", "--json", "--no-cri"], &p);
    assert_eq!(o.code, Some(0), "{o}");
    let check = format!("shim version {}", shim().display());
    expect(&o, &check, "ok");
    let o = d.tent_with(
        &["doctor", "--json", "--no-cri", "--expect-version", "9.9.9"],
        &p,
    );
    assert_eq!(o.code, Some(1), "{o}");
    let f = expect(&o, &check, "problem");
    assert!(
        f["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expected 9.9.9"),
        "{o}"
    );

    // A config containerd cannot read at all.
    let p = d.dir.join("malformed.toml");
    std::fs::write(&p, "version = 2\n[plugins\n").expect("write");
    let o = d.tent_with(&["doctor", "--json", "--no-cri"], &p);
    assert_eq!(o.code, Some(1), "{o}");
    expect(&o, "config", "problem");

    // The live daemon restarted without tent-compat: the CRI does not report it.
    std::fs::copy(&p_missing, d.config()).expect("install the missing-handler config");
    d.restart();
    let o = d.tent(&["doctor", "--json"]);
    assert_eq!(o.code, Some(1), "{o}");
    expect(&o, "cri handler tent-compat", "problem");
    expect(&o, "cri handler tent", "ok");
}
