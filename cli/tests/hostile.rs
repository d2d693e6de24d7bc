//! Hostile trees never hurt the auditor: symlink loops, symlinks out of the
//! root, a FIFO posing as a shell, a 100,000-entry directory (files and
//! subdirectories), deep nesting, unreadable entries, and a tree that changes
//! while it is walked. Each run has a deadline; outside the root sits a setuid
//! "marker" that a walk leaving the root would report.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// `<tmp>/outside/marker` (setuid, executable) beside `<tmp>/root`.
fn with_marker(t: &Tree) {
    t.file("outside/marker", b"#!/bin/sh\n", 0o4755);
    t.file("outside/realsh", b"#!/bin/sh\n", 0o755);
    t.file("outside/sub/marker2", b"#!/bin/sh\n", 0o4755);
}

fn assert_never_left(v: &Value) {
    let s = v.to_string();
    for p in paths(v, "setid") {
        assert!(!p.contains("marker"), "walked outside the root: {p}");
    }
    assert_eq!(count(v, "setid"), 0, "setid found: {}", v["setid"]);
    assert!(!s.contains("marker2"), "walked outside the root: {s}");
}

#[test]
fn symlink_loops_and_links_out_of_the_root() {
    let t = Tree::new();
    with_marker(&t);
    t.symlink("loop2", "root/loop1");
    t.symlink("loop1", "root/loop2");
    t.symlink("self", "root/self");
    t.symlink("../outside", "root/escape");
    t.symlink("../../outside/marker", "root/deep/escape2");
    t.symlink("../../outside/realsh", "root/bin/sh");
    t.symlink("/outside", "root/abs");
    t.symlink("../../../../../../../../..", "root/far/up");
    t.symlink(".", "root/dot");
    t.symlink("..", "root/far/dotdot");
    // A FIFO named like a shell, exec bits set: opening it would block.
    t.mkfifo("root/bin/bash");
    let started = Instant::now();
    let v = audit(&t.root());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_never_left(&v);
    let loops = paths(&v, "symlink_loops");
    for l in ["/loop1", "/loop2", "/self"] {
        assert!(loops.contains(&l.to_string()), "{l} not a loop: {loops:?}");
    }
    let out = paths(&v, "symlinks_leaving_root");
    for l in ["/escape", "/deep/escape2", "/bin/sh", "/far/up"] {
        assert!(out.contains(&l.to_string()), "{l} not reported: {out:?}");
    }
    for l in ["/abs", "/dot", "/far/dotdot"] {
        assert!(!out.contains(&l.to_string()), "{l} stays inside: {out:?}");
    }
    // /bin/sh resolves, inside the root, to nothing: no shell here.
    assert!(tool_names(&v, "shell").is_empty(), "{}", v["tool_names"]);
    assert_eq!(v["totals"]["symlinks"], 10);
    assert_eq!(v["totals"]["other"], 1, "the FIFO");
    assert!(v["verdict"]
        .as_str()
        .unwrap()
        .contains("symlinks leaving the root"));
}

#[test]
fn a_100000_entry_directory_is_linear_and_bounded() {
    let t = Tree::new();
    let big = t.mkdir("root/big", 0o755);
    for i in 0..100_000 {
        // setuid + exec: every entry is a finding and is opened.
        let p = big.join(format!("f{i:06}"));
        if i % 10 == 5 {
            // Subdirectories too: entered as met, nothing queued per entry.
            std::fs::create_dir(&p).unwrap();
            continue;
        }
        std::fs::File::create(&p).unwrap();
        if i % 10 == 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
        }
    }
    let r = run_as(
        &[
            "audit".as_ref(),
            "--json".as_ref(),
            "--verbose".as_ref(),
            t.root().as_os_str(),
        ],
        Duration::from_secs(60),
        None,
    );
    // The auditor's own peak (VmHWM); wait4's maxrss counts the forking test.
    let rss: u64 = r
        .stderr
        .split("peak RSS ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {}", r.stderr));
    let v = r.json();
    assert_eq!(v["totals"]["files"], 90_000);
    assert_eq!(v["totals"]["dirs"], 10_002);
    assert_eq!(count(&v, "setid"), 10_000);
    assert_eq!(
        v["setid"]["items"].as_array().unwrap().len(),
        v["list_cap"].as_u64().unwrap() as usize
    );
    eprintln!(
        "100,000 entries: walk {:.0} ms, process {:?}, peak RSS {rss} KiB",
        v["elapsed_ms"].as_f64().unwrap(),
        r.elapsed,
    );
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    assert!(rss < 32 * 1024, "peak RSS {rss} KiB");
}

#[test]
fn deep_nesting_is_bounded() {
    let t = Tree::new();
    let mut p = t.root();
    for _ in 0..1000 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("bottom"), b"").unwrap();
    let v = audit(&t.root());
    // The default stops at depth 256 and says where.
    assert_eq!(count(&v, "too_deep"), 1);
    assert_eq!(paths(&v, "too_deep")[0].matches('d').count(), 257);
    assert_eq!(v["totals"]["files"], 0);
    assert!(v["verdict"].as_str().unwrap().contains("incomplete"));
    // Deeper on request: the explicit stack walks all 1,000 levels.
    let v = run(&[
        "audit".as_ref(),
        "--json".as_ref(),
        "--max-depth".as_ref(),
        "2000".as_ref(),
        t.root().as_os_str(),
    ])
    .json();
    assert_eq!(count(&v, "too_deep"), 0);
    assert_eq!(v["totals"]["files"], 1);
    assert_eq!(v["totals"]["dirs"], 1001);
}

#[test]
fn unreadable_entries_are_reported_and_the_walk_goes_on() {
    if !is_root() {
        eprintln!("SKIP: needs root to build a tree another user cannot read");
        return;
    }
    let t = Tree::new();
    t.file("root/secret/hidden-setuid", b"#!/bin/sh\n", 0o4755);
    t.mkdir("root/secret", 0o700);
    t.file("root/bin/exec-only", b"#!/bin/sh\n", 0o711);
    t.file("root/bin/sh", b"#!/bin/sh\n", 0o755);
    t.file("root/zz/after", b"", 0o644);
    // As nobody: root's 0700 directory and the exec-only file cannot be read.
    let r = run_as(
        &["audit".as_ref(), "--json".as_ref(), t.root().as_os_str()],
        Duration::from_secs(30),
        Some(65534),
    );
    let v = r.json();
    let unreadable = paths(&v, "unreadable");
    assert!(
        unreadable.contains(&"/secret".to_string()),
        "{}",
        v["unreadable"]
    );
    assert!(
        unreadable.contains(&"/bin/exec-only".to_string()),
        "{}",
        v["unreadable"]
    );
    assert!(
        v["unreadable"].to_string().contains("Permission denied")
            || v["unreadable"].to_string().contains("EACCES")
    );
    assert!(tool_names(&v, "shell").contains(&"sh".into()));
    assert_eq!(v["totals"]["files"], 3, "the walk went on past them");
    assert!(v["verdict"].as_str().unwrap().contains("incomplete"));
}

#[test]
fn a_tree_that_changes_while_scanned_never_leads_out() {
    let t = Tree::new();
    with_marker(&t);
    for i in 0..200 {
        t.file(&format!("root/flip/f{i}"), b"#!/bin/sh\n", 0o755);
    }
    t.file("root/grow", b"", 0o755);
    let root = t.root();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || {
            let (dir, away) = (root.join("flip"), root.join("flip.away"));
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The directory becomes a symlink out of the root, and back.
                std::fs::rename(&dir, &away).unwrap();
                std::os::unix::fs::symlink("../outside", &dir).unwrap();
                std::fs::remove_file(&dir).unwrap();
                std::fs::rename(&away, &dir).unwrap();
                // A file that grows, is replaced, and disappears.
                let g = root.join("grow");
                let _ = std::fs::write(&g, vec![0x7f; (n % 4096) as usize]);
                if n.is_multiple_of(3) {
                    let _ = std::fs::remove_file(&g);
                    let _ = std::fs::write(&g, b"\x7fELF\x02\x01");
                }
                n += 1;
            }
            n
        })
    };
    let mut changed = 0;
    let mut out = 0;
    for _ in 0..40 {
        let v = audit(&root);
        assert_never_left(&v);
        changed += count(&v, "changed_while_scanned");
        out += count(&v, "symlinks_leaving_root");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    eprintln!("{flips} flips; {changed} entries changed while scanned, {out} links out seen");
}
