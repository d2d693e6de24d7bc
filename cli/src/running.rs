//! `tent audit --running`: every running container of every containerd
//! namespace with the exposure tent's shim computed at its Create (the
//! summary it keeps in the bundle, `tent-audit.json`). Containers of another
//! runtime (runc) have none and say so.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::source::Containerd;

/// containerd's task directory under its state directory (the v2 runtime's
/// layout, the same on 1.6, 1.7 and 2.x).
const TASK_DIR: &str = "io.containerd.runtime.v2.task";

#[derive(Debug, Serialize)]
pub struct Running {
    pub namespace: String,
    pub id: String,
    pub pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every running task, namespace by namespace, with its summary.
pub fn list(c: &Containerd, state: &Path) -> Result<Vec<Running>> {
    let nss = c.run(
        "list namespaces".into(),
        &["namespaces".as_ref(), "ls".as_ref(), "-q".as_ref()],
    )?;
    let mut out = Vec::new();
    for ns in nss.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let mut cn = c.clone();
        cn.namespace = ns.to_string();
        let tasks = cn.run(
            format!("list tasks in namespace {ns}"),
            &["task".as_ref(), "ls".as_ref()],
        )?;
        for line in tasks.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(pid), Some(status)) = (f.first(), f.get(1), f.get(2)) else {
                continue;
            };
            if *status != "RUNNING" {
                continue;
            }
            let file: PathBuf = state
                .join(TASK_DIR)
                .join(ns)
                .join(id)
                .join("tent-audit.json");
            let (summary, note) = match std::fs::read(&file) {
                Ok(b) => match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => (Some(v), None),
                    Err(e) => (None, Some(format!("{}: {e}", file.display()))),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    None,
                    Some("no summary (not a tent container, or still being computed)".into()),
                ),
                Err(e) => (None, Some(format!("{}: {e}", file.display()))),
            };
            out.push(Running {
                namespace: ns.to_string(),
                id: id.to_string(),
                pid: pid.parse().unwrap_or(0),
                summary,
                note,
            });
        }
    }
    Ok(out)
}

/// The readable rendering.
pub fn table(rows: &[Running]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<10} {:<28} {:>8} {:>5}  verdict",
        "namespace", "container", "pid", "score"
    );
    for r in rows {
        let id: String = if r.id.chars().count() > 28 {
            format!("{}…", r.id.chars().take(27).collect::<String>())
        } else {
            r.id.clone()
        };
        match &r.summary {
            Some(s) => {
                let _ = writeln!(
                    o,
                    "{:<10} {id:<28} {:>8} {:>5}  {}",
                    r.namespace,
                    r.pid,
                    s["score"]
                        .as_u64()
                        .map_or_else(|| "?".into(), |n| n.to_string()),
                    s["verdict"].as_str().unwrap_or("?")
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "{:<10} {id:<28} {:>8} {:>5}  {}",
                    r.namespace,
                    r.pid,
                    "-",
                    r.note.as_deref().unwrap_or("")
                );
            }
        }
    }
    if rows.is_empty() {
        o.push_str("no running containers\n");
    }
    o
}
