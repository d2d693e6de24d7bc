//! `tent audit <DIR>` on trees built here with known contents: every finding
//! appears, the static single binary scores best, the table renders them.
//! Root is needed for setuid files owned by root, capability xattrs and mknod.

mod common;

use std::path::Path;

use common::*;

/// A tree with one of everything the audit looks for.
fn known_tree(t: &Tree) {
    let sh = b"#!/bin/sh\nexit 0\n";
    t.file("root/usr/bin/su", sh, 0o4755);
    t.file("root/usr/bin/wall", sh, 0o2755);
    t.file("root/usr/bin/ping", sh, 0o755);
    t.setcap("root/usr/bin/ping", 1 << 13, true);
    if Path::new("/bin/dash").exists() {
        t.copy(Path::new("/bin/dash"), "root/bin/bash", 0o755);
    } else {
        t.file("root/bin/bash", sh, 0o755);
    }
    t.file("root/usr/bin/apt", sh, 0o755);
    t.file("root/usr/bin/python3.11", sh, 0o755);
    t.file("root/usr/bin/gdb", sh, 0o755);
    t.file("root/usr/bin/curl", sh, 0o755);
    t.file("root/sbin/modprobe", sh, 0o755);
    t.file("root/usr/sbin/iptables-legacy", sh, 0o755);
    t.file("root/usr/bin/nsenter", sh, 0o755);
    t.file("root/usr/sbin/setcap", sh, 0o755);
    t.file("root/etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644);
    t.mknod("root/dev/null", false, 1, 3);
    t.mknod("root/dev/sda", true, 8, 0);
    t.mkdir("root/tmp", 0o1777);
    t.mkdir("root/var/drop", 0o777);
    if let Some(bb) = busybox() {
        t.copy(&bb, "root/bin/busybox", 0o755);
        t.symlink("busybox", "root/bin/mount");
        t.symlink("/bin/busybox", "root/usr/bin/wget");
        t.hard_link("root/bin/busybox", "root/bin/nc");
    }
}

#[test]
fn every_finding_of_a_known_tree() {
    if !is_root() {
        eprintln!("SKIP: needs root (setuid root files, security.capability, mknod)");
        return;
    }
    let t = Tree::new();
    known_tree(&t);
    let v = audit(&t.root());

    let setid = &v["setid"]["items"];
    assert_eq!(count(&v, "setid"), 2, "{setid}");
    let su = setid
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "/usr/bin/su")
        .unwrap();
    assert_eq!(
        (su["setuid"].as_bool(), su["setgid"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(su["mode"], "4755");
    assert!(paths(&v, "setid").contains(&"/usr/bin/wall".to_string()));

    let caps = &v["capabilities"]["items"][0];
    assert_eq!(caps["path"], "/usr/bin/ping");
    assert_eq!(caps["permitted"], serde_json::json!(["CAP_NET_RAW"]));
    assert_eq!(caps["effective"], true);
    assert_eq!(caps["revision"], 2);

    assert!(tool_names(&v, "shell").contains(&"bash".into()));
    assert!(tool_names(&v, "package-manager").contains(&"apt".into()));
    assert!(tool_names(&v, "interpreter").contains(&"python".into()));
    assert!(tool_names(&v, "compiler").contains(&"gdb".into()));
    for n in ["curl", "ping"] {
        assert!(tool_names(&v, "network").contains(&n.into()), "{n}");
    }
    for n in ["modprobe", "iptables-legacy", "nsenter", "setcap"] {
        assert!(tool_names(&v, "kernel").contains(&n.into()), "{n}");
    }
    let mut devs: Vec<(String, String, u64, u64)> = v["devices"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().into(),
                d["kind"].as_str().unwrap().into(),
                d["major"].as_u64().unwrap(),
                d["minor"].as_u64().unwrap(),
            )
        })
        .collect();
    devs.sort();
    assert_eq!(
        devs,
        [
            ("/dev/null".into(), "char".into(), 1, 3),
            ("/dev/sda".into(), "block".into(), 8, 0)
        ]
    );
    let ww = &v["world_writable_dirs"]["items"];
    assert_eq!(count(&v, "world_writable_dirs"), 2, "{ww}");
    for w in ww.as_array().unwrap() {
        let sticky = w["sticky"].as_bool().unwrap();
        match w["path"].as_str().unwrap() {
            "/tmp" => assert!(sticky),
            "/var/drop" => assert!(!sticky),
            p => panic!("unexpected world-writable {p}"),
        }
    }
    assert!(v["totals"]["scripts"].as_u64().unwrap() >= 10);
    assert!(v["script_interpreters"]["/bin/sh"].as_u64().unwrap() >= 10);
    if Path::new("/bin/dash").exists() {
        let bash = v["elf"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/bin/bash")
            .expect("ELF facts of /bin/bash");
        assert_eq!(bash["linking"], "dynamic");
        assert!(bash["interpreter"].as_str().unwrap().contains("ld-linux"));
    }
    if busybox().is_some() {
        let bb = &v["busybox"][0];
        assert_eq!(bb["path"], "/bin/busybox");
        assert_eq!(
            bb["links"],
            serde_json::json!(["/bin/mount", "/bin/nc", "/usr/bin/wget"])
        );
        let applets: Vec<&str> = bb["applets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(
            applets.contains(&"sh") && applets.contains(&"mount"),
            "{applets:?}"
        );
        assert!(bb["applets_by_category"]["kernel"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "mount"));
        // Links reached through symlinks are tools at the link's path.
        assert!(paths(&v, "tools").contains(&"/bin/mount".to_string()));
        let static_elf = v["totals"]["elf_static"].as_u64().unwrap()
            + v["totals"]["elf_static_pie"].as_u64().unwrap();
        assert!(static_elf >= 2, "busybox and its hard link are static");
    }
    assert!(v["totals"]["files"].as_u64().unwrap() >= 15);
    assert!(v["totals"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(count(&v, "unreadable"), 0, "{}", v["unreadable"]);
    let score = v["score"].as_u64().unwrap();
    assert!(score >= 100, "score {score}");
    assert!(v["verdict"]
        .as_str()
        .unwrap()
        .starts_with(&format!("score {score}, ")));

    // The table names the same findings.
    let table = run(&["audit".as_ref(), t.root().as_os_str()]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    for needle in [
        "setuid/setgid files",
        "/usr/bin/su (4755 0:0)",
        "/usr/bin/ping (CAP_NET_RAW +ep)",
        "package managers",
        "/dev/sda (block 8:0)",
        "/var/drop",
        "/tmp (sticky)",
    ] {
        assert!(
            table.stdout.contains(needle),
            "{needle} missing:\n{}",
            table.stdout
        );
    }
}

#[test]
fn the_static_single_binary_scores_best() {
    let work = tempfile::tempdir().unwrap();
    let Some(bin) = tiny_static(work.path()) else {
        eprintln!("SKIP: no cc -static and no tent-testbin");
        return;
    };
    let minimal = Tree::new();
    minimal.copy(&bin, "root/app", 0o755);
    let m = audit(&minimal.root());
    assert_eq!(m["score"], 0, "{}", m["verdict"]);
    assert!(
        m["verdict"].as_str().unwrap().contains("minimal"),
        "{}",
        m["verdict"]
    );
    let e = &m["elf"]["items"][0];
    assert_eq!(e["path"], "/app");
    assert_ne!(e["linking"], "dynamic");
    assert!(e.get("interpreter").is_none());

    let mut scores = vec![0];
    if let Some(bb) = busybox() {
        let b = Tree::new();
        b.copy(&bb, "root/bin/busybox", 0o755);
        b.symlink("busybox", "root/bin/sh");
        let s = audit(&b.root())["score"].as_u64().unwrap();
        scores.push(s);
    }
    if is_root() {
        let k = Tree::new();
        known_tree(&k);
        scores.push(audit(&k.root())["score"].as_u64().unwrap());
    }
    eprintln!("scores: static binary, busybox, known tree: {scores:?}");
    assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
}

#[test]
fn ten_thousand_files_well_under_a_second() {
    let t = Tree::new();
    for d in 0..100 {
        t.mkdir(&format!("root/d{d}"), 0o755);
        for f in 0..100 {
            let mode = if f % 2 == 0 { 0o755 } else { 0o644 };
            t.file(&format!("root/d{d}/f{f}"), b"#!/bin/sh\n", mode);
        }
    }
    // Warm the caches once, then measure.
    audit(&t.root());
    let r = run(&[
        "audit".as_ref(),
        "--json".as_ref(),
        "--verbose".as_ref(),
        t.root().as_os_str(),
    ]);
    let v = r.json();
    assert_eq!(v["totals"]["files"], 10_000);
    assert_eq!(v["totals"]["scripts"], 5_000);
    let ms = v["elapsed_ms"].as_f64().unwrap();
    eprintln!(
        "10,000 files: walk {ms:.1} ms, process {:?}; {}",
        r.elapsed,
        r.stderr.trim()
    );
    assert!(r.stderr.contains("walked 10101 entries"), "{}", r.stderr);
    assert!(ms < 1000.0, "walk took {ms} ms");
}

#[test]
fn usage_errors_name_the_problem() {
    let r = run(&["audit".as_ref()]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("what to audit"), "{}", r.stderr);
    let r = run(&["audit".as_ref(), "/nonexistent/tent-audit".as_ref()]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("/nonexistent/tent-audit"), "{}", r.stderr);
    let r = run(&["--help".as_ref()]);
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.contains("each setuid/setgid file"), "{}", r.stdout);
}
