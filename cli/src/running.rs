//! `tent audit --running`: every running container of every containerd
//! namespace with the exposure tent's shim computed at its Create (the
//! summary it keeps in the bundle, `tent-audit.json`). Containers of another
//! runtime (runc) have none and say so. A CRI container is named by its pod
//! (namespace/name) and container name, from the annotations containerd's
//! CRI puts in its spec (the bundle's `config.json`), as an operator knows it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::source::Containerd;

/// containerd's task directory under its state directory (the v2 runtime's
/// layout, the same on 1.6, 1.7 and 2.x).
const TASK_DIR: &str = "io.containerd.runtime.v2.task";

/// CRI annotations of a container's spec (containerd 1.6, 1.7 and 2.x).
const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// The Kubernetes names of a CRI container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// The container's name; none for the pod's sandbox (pause) container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The pod's sandbox container.
    pub sandbox: bool,
}

impl PodRef {
    /// From a spec's annotations; `None` without the pod's namespace and
    /// name (a container not made by the CRI).
    pub fn of(spec: &Value) -> Option<PodRef> {
        let a = spec.get("annotations")?;
        let get = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
        Some(PodRef {
            namespace: get(SANDBOX_NAMESPACE)?,
            name: get(SANDBOX_NAME)?,
            container: get(CONTAINER_NAME).filter(|n| !n.is_empty()),
            sandbox: get(CONTAINER_TYPE).as_deref() == Some("sandbox"),
        })
    }

    /// `namespace/pod/container`, `namespace/pod (sandbox)`.
    pub fn label(&self) -> String {
        match (&self.container, self.sandbox) {
            (Some(c), _) => format!("{}/{}/{c}", self.namespace, self.name),
            (None, true) => format!("{}/{} (sandbox)", self.namespace, self.name),
            (None, false) => format!("{}/{}", self.namespace, self.name),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub namespace: String,
    pub id: String,
    pub pid: i32,
    /// The pod and container names of a CRI container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
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
            let bundle: PathBuf = state.join(TASK_DIR).join(ns).join(id);
            let file = bundle.join("tent-audit.json");
            // Informational: a spec that cannot be read leaves the id alone.
            let pod = std::fs::read(bundle.join("config.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .as_ref()
                .and_then(PodRef::of);
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
                pod,
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
        "{:<10} {:<28} {:<36} {:>8} {:>5}  verdict",
        "namespace", "container", "pod", "pid", "score"
    );
    for r in rows {
        let id = clip(&r.id, 28);
        // Whole (a cut name is no name), so a long one shifts the columns after it.
        let pod = r.pod.as_ref().map_or_else(|| "-".into(), PodRef::label);
        let (score, verdict) = match &r.summary {
            Some(s) => (
                s["score"]
                    .as_u64()
                    .map_or_else(|| "?".into(), |n| n.to_string()),
                s["verdict"].as_str().unwrap_or("?").to_string(),
            ),
            None => ("-".into(), r.note.clone().unwrap_or_default()),
        };
        let _ = writeln!(
            o,
            "{:<10} {id:<28} {pod:<36} {:>8} {score:>5}  {verdict}",
            r.namespace, r.pid
        );
    }
    if rows.is_empty() {
        o.push_str("no running containers\n");
    }
    o
}

/// `s` cut to `n` characters, the cut marked.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_annotations_name_the_pod_and_container() {
        let c: Value = serde_json::json!({"annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "web",
            "io.kubernetes.cri.sandbox-name": "shop",
            "io.kubernetes.cri.sandbox-namespace": "prod",
        }});
        let p = PodRef::of(&c).expect("a CRI container");
        assert_eq!(p.label(), "prod/shop/web");
        let s: Value = serde_json::json!({"annotations": {
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-name": "shop",
            "io.kubernetes.cri.sandbox-namespace": "prod",
        }});
        assert_eq!(
            PodRef::of(&s).map(|p| p.label()).as_deref(),
            Some("prod/shop (sandbox)")
        );
        assert_eq!(
            PodRef::of(&serde_json::json!({"ociVersion": "1.0.2"})),
            None
        );
        let half = serde_json::json!({"annotations": {"io.kubernetes.cri.sandbox-name": "x"}});
        assert_eq!(PodRef::of(&half), None);
    }

    #[test]
    fn the_table_shows_the_pod_beside_the_id() {
        let rows = [
            Running {
                namespace: "k8s.io".into(),
                id: "0123456789abcdef0123456789abcdef".into(),
                pid: 42,
                pod: Some(PodRef {
                    namespace: "prod".into(),
                    name: "shop".into(),
                    container: Some("web".into()),
                    sandbox: false,
                }),
                summary: Some(serde_json::json!({"score": 61, "verdict": "busybox"})),
                note: None,
            },
            Running {
                namespace: "default".into(),
                id: "plain".into(),
                pid: 7,
                pod: None,
                summary: None,
                note: Some("no summary".into()),
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains("0123456789abcdef0123456789a…"), "{t}");
        assert!(
            lines[1].contains("prod/shop/web") && lines[1].contains("61"),
            "{t}"
        );
        assert!(
            lines[2].contains("plain") && lines[2].contains(" - "),
            "{t}"
        );
        assert!(!lines[2].contains("prod"), "{t}");
    }
}
