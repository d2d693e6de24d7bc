//! The score, the verdict and the two renderings (a table for people, JSON for
//! machines). The score is exposure: 0 is a tree with nothing in it that
//! widens what a process can do, and every rule in `RULES` adds its points per
//! finding up to its cap. The weights are the table in `--help` and in
//! `cli/README.md`, printed from this one constant.

use std::fmt::Write as _;

use serde::Serialize;

use crate::classify::Category;
use crate::walk::{Inventory, LIST_CAP};

/// A scoring rule: points per unit, and the most it can add.
pub struct Rule {
    pub id: &'static str,
    pub what: &'static str,
    pub per: u64,
    pub max: u64,
}

pub const RULES: &[Rule] = &[
    Rule {
        id: "setid",
        what: "each setuid/setgid file",
        per: 10,
        max: 50,
    },
    Rule {
        id: "capabilities",
        what: "each file with capabilities",
        per: 10,
        max: 50,
    },
    Rule {
        id: "shell",
        what: "any shell",
        per: 15,
        max: 15,
    },
    Rule {
        id: "package-manager",
        what: "any package manager",
        per: 15,
        max: 15,
    },
    Rule {
        id: "interpreter",
        what: "any interpreter",
        per: 10,
        max: 10,
    },
    Rule {
        id: "compiler",
        what: "any compiler, debugger or tracer",
        per: 15,
        max: 15,
    },
    Rule {
        id: "network",
        what: "each network tool (distinct names)",
        per: 3,
        max: 15,
    },
    Rule {
        id: "kernel",
        what: "each kernel-facing tool (distinct names)",
        per: 3,
        max: 30,
    },
    Rule {
        id: "devices",
        what: "each device node",
        per: 5,
        max: 20,
    },
    Rule {
        id: "world-writable",
        what: "each world-writable directory without the sticky bit",
        per: 5,
        max: 20,
    },
    Rule {
        id: "world-writable-sticky",
        what: "each world-writable directory with the sticky bit",
        per: 1,
        max: 3,
    },
    Rule {
        id: "symlink-out",
        what: "each symlink leaving the root",
        per: 5,
        max: 20,
    },
    Rule {
        id: "files",
        what: "each 1,000 files",
        per: 1,
        max: 10,
    },
    Rule {
        id: "bytes",
        what: "each 10 MiB",
        per: 1,
        max: 10,
    },
];

/// Verdict bands: the highest score each word covers.
const BANDS: &[(u64, &str)] = &[
    (0, "minimal"),
    (10, "lean"),
    (40, "moderate"),
    (80, "wide"),
    (u64::MAX, "an OS replica"),
];

#[derive(Debug, Serialize)]
pub struct Points {
    pub rule: &'static str,
    pub count: u64,
    pub points: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub source: &'static str,
    pub score: u64,
    pub verdict: String,
    pub breakdown: Vec<Points>,
    pub list_cap: usize,
    #[serde(flatten)]
    pub inventory: Inventory,
    pub elapsed_ms: f64,
}

impl Report {
    pub fn new(target: String, source: &'static str, inv: Inventory, elapsed_ms: f64) -> Report {
        let names = &inv.tool_names;
        let n = |c: Category| names.get(&c).map_or(0, |s| s.len() as u64);
        let ww_sticky = inv.totals.world_writable_sticky;
        let ww_open = inv.world_writable_dirs.count - ww_sticky;
        let counts = [
            inv.setid.count,
            inv.capabilities.count,
            n(Category::Shell),
            n(Category::PackageManager),
            n(Category::Interpreter),
            n(Category::Compiler),
            n(Category::Network),
            n(Category::Kernel),
            inv.devices.count,
            ww_open,
            ww_sticky,
            inv.symlinks_leaving_root.count,
            inv.totals.files / 1000,
            inv.totals.bytes / (10 << 20),
        ];
        let breakdown: Vec<Points> = RULES
            .iter()
            .zip(counts)
            .filter(|(_, c)| *c > 0)
            .map(|(r, count)| Points {
                rule: r.id,
                count,
                points: (r.per * count).min(r.max),
            })
            .collect();
        let score = breakdown.iter().map(|p| p.points).sum();
        let verdict = verdict(score, &breakdown, &inv);
        Report {
            target,
            source,
            score,
            verdict,
            breakdown,
            list_cap: LIST_CAP,
            inventory: inv,
            elapsed_ms,
        }
    }
}

fn verdict(score: u64, breakdown: &[Points], inv: &Inventory) -> String {
    let word = BANDS
        .iter()
        .find(|(max, _)| score <= *max)
        .map_or("an OS replica", |b| b.1);
    let mut top: Vec<&Points> = breakdown.iter().collect();
    top.sort_by_key(|p| std::cmp::Reverse(p.points));
    let mut v = format!("score {score}, {word}");
    if !top.is_empty() {
        let parts: Vec<String> = top
            .iter()
            .take(4)
            .map(|p| format!("{} ({})", rule_short(p.rule), p.count))
            .collect();
        let _ = write!(v, ": {}", parts.join(", "));
    } else {
        v.push_str(": nothing in it widens what a process can do");
    }
    let incomplete = inv.unreadable.count + inv.too_deep.count;
    if incomplete > 0 {
        let _ = write!(v, "; incomplete, {incomplete} entries could not be read");
    }
    v
}

fn rule_short(id: &str) -> &'static str {
    match id {
        "setid" => "setuid/setgid files",
        "capabilities" => "files with capabilities",
        "shell" => "shells",
        "package-manager" => "package managers",
        "interpreter" => "interpreters",
        "compiler" => "compilers/debuggers",
        "network" => "network tools",
        "kernel" => "kernel-facing tools",
        "devices" => "device nodes",
        "world-writable" => "world-writable dirs",
        "world-writable-sticky" => "sticky world-writable dirs",
        "symlink-out" => "symlinks leaving the root",
        "files" => "thousands of files",
        _ => "tens of MiB",
    }
}

/// The weights as a text table (for `--help` and the README).
pub fn weights_table() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  points  for                                                    at most"
    );
    for r in RULES {
        let _ = writeln!(s, "  {:>6}  {:<54} {:>7}", r.per, r.what, r.max);
    }
    let bands: Vec<String> = BANDS
        .iter()
        .map(|(m, w)| {
            if *m == u64::MAX {
                format!("above: {w}")
            } else {
                format!("<= {m}: {w}")
            }
        })
        .collect();
    let _ = writeln!(s, "  verdict: {}", bands.join(", "));
    s
}

fn plural(n: u64, one: &str) -> String {
    match (n, one.strip_suffix('y')) {
        (1, _) => format!("1 {one}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {one}s"),
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B"))
    }
}

/// At most `n` items, then "… and K more".
fn some(items: &[String], total: u64, n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    let shown = items.len().min(n) as u64;
    if total > shown {
        let _ = write!(s, ", … and {} more", total - shown);
    }
    s
}

/// The readable rendering.
pub fn table(r: &Report) -> String {
    let inv = &r.inventory;
    let t = &inv.totals;
    let mut o = String::new();
    let _ = writeln!(o, "tent audit of {} ({})", r.target, r.source);
    let _ = writeln!(o, "{}", r.verdict);
    let _ = writeln!(
        o,
        "{} ({}), {}, {} ({} dangling), {} other",
        plural(t.files, "file"),
        human_bytes(t.bytes),
        plural(t.dirs, "directory"),
        plural(t.symlinks, "symlink"),
        t.dangling_symlinks,
        t.other
    );
    let _ = writeln!(
        o,
        "{}: ELF {} static, {} static-pie/shared, {} dynamic; {}",
        plural(t.executables, "executable"),
        t.elf_static,
        t.elf_static_pie,
        t.elf_dynamic,
        plural(t.scripts, "script")
    );
    for (label, map) in [
        ("ELF interpreter", &inv.elf_interpreters),
        ("script #!", &inv.script_interpreters),
    ] {
        let mut by: Vec<(&String, &u64)> = map.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, n) in by.iter().take(6) {
            let _ = writeln!(
                o,
                "  {label}{}{i}: {n}",
                if label.ends_with('!') { "" } else { " " }
            );
        }
        if by.len() > 6 {
            let _ = writeln!(o, "  … and {} more {label} kinds", by.len() - 6);
        }
    }
    let _ = writeln!(o);
    if r.breakdown.is_empty() {
        let _ = writeln!(o, "no findings");
    } else {
        let _ = writeln!(o, "{:<34} {:>6} {:>6}  what", "finding", "count", "points");
    }
    let points = |id: &str| {
        r.breakdown
            .iter()
            .find(|p| p.rule == id)
            .map_or(0, |p| p.points)
    };
    let mut row = |label: &str, count: u64, pts: u64, what: String| {
        if count > 0 {
            let _ = writeln!(o, "{label:<34} {count:>6} {pts:>6}  {what}");
        }
    };
    let setid: Vec<String> = inv
        .setid
        .items
        .iter()
        .map(|s| format!("{} ({} {}:{})", s.path, s.mode, s.uid, s.gid))
        .collect();
    row(
        "setuid/setgid files",
        inv.setid.count,
        points("setid"),
        some(&setid, inv.setid.count, 6),
    );
    let caps: Vec<String> = inv
        .capabilities
        .items
        .iter()
        .map(|c| {
            format!(
                "{} ({}{})",
                c.path,
                c.caps.permitted.join(","),
                if c.caps.effective { " +ep" } else { " +p" }
            )
        })
        .collect();
    row(
        "files with capabilities",
        inv.capabilities.count,
        points("capabilities"),
        some(&caps, inv.capabilities.count, 4),
    );
    for (cat, id) in [
        (Category::Shell, "shell"),
        (Category::PackageManager, "package-manager"),
        (Category::Interpreter, "interpreter"),
        (Category::Compiler, "compiler"),
        (Category::Network, "network"),
        (Category::Kernel, "kernel"),
    ] {
        let names: Vec<String> = r
            .inventory
            .tool_names
            .get(&cat)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        row(
            cat.label(),
            names.len() as u64,
            points(id),
            some(&names, names.len() as u64, 12),
        );
    }
    let devs: Vec<String> = inv
        .devices
        .items
        .iter()
        .map(|d| format!("{} ({} {}:{})", d.path, d.kind, d.major, d.minor))
        .collect();
    row(
        "device nodes",
        inv.devices.count,
        points("devices"),
        some(&devs, inv.devices.count, 6),
    );
    let ww: Vec<String> = inv
        .world_writable_dirs
        .items
        .iter()
        .map(|w| format!("{}{}", w.path, if w.sticky { " (sticky)" } else { "" }))
        .collect();
    row(
        "world-writable directories",
        inv.world_writable_dirs.count,
        points("world-writable") + points("world-writable-sticky"),
        some(&ww, inv.world_writable_dirs.count, 6),
    );
    let out: Vec<String> = inv
        .symlinks_leaving_root
        .items
        .iter()
        .map(|l| format!("{} -> {}", l.path, l.target))
        .collect();
    row(
        "symlinks leaving the root",
        inv.symlinks_leaving_root.count,
        points("symlink-out"),
        some(&out, inv.symlinks_leaving_root.count, 4),
    );
    row(
        "size",
        t.files / 1000 + t.bytes / (10 << 20),
        points("files") + points("bytes"),
        String::from("per 1,000 files and per 10 MiB"),
    );
    for bb in &inv.busybox {
        let _ = writeln!(
            o,
            "\nbusybox {}: {} applets compiled in, {} linked by name",
            bb.path,
            bb.applets.len(),
            bb.links.len()
        );
        for (c, a) in &bb.applets_by_category {
            let _ = writeln!(o, "  {}: {}", c.label(), a.join(" "));
        }
        if !bb.links.is_empty() {
            let _ = writeln!(o, "  links: {}", some(&bb.links, bb.links.len() as u64, 12));
        }
    }
    let mut note = |label: &str, items: Vec<String>, count: u64| {
        if count > 0 {
            let _ = writeln!(o, "\n{label} ({count}): {}", some(&items, count, 8));
        }
    };
    note(
        "symlink loops",
        inv.symlink_loops.items.clone(),
        inv.symlink_loops.count,
    );
    note(
        "could not read",
        inv.unreadable
            .items
            .iter()
            .map(|p| format!("{}: {}", p.path, p.error))
            .collect(),
        inv.unreadable.count,
    );
    note(
        "changed while scanned",
        inv.changed_while_scanned.items.clone(),
        inv.changed_while_scanned.count,
    );
    note(
        "mount points not descended",
        inv.mount_points.items.clone(),
        inv.mount_points.count,
    );
    note(
        "too deep, not descended",
        inv.too_deep.items.clone(),
        inv.too_deep.count,
    );
    o
}
