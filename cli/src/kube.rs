//! The node label and the DaemonSet check, through `kubectl` (it reads the pod's service
//! account by itself). Outside a cluster (no `KUBERNETES_SERVICE_HOST`, no `--kubeconfig`)
//! every call is a no-op that says so.

use std::path::PathBuf;
use std::process::Command;

/// The label the RuntimeClasses select on; set only after a verification pod ran.
pub const LABEL: &str = "runtime.tent.dev/ready";
/// The label the `tent-pauseless` RuntimeClass also selects on: set only where a pod ran on
/// the handler (containerd 2.x nodes), so pauseless pods are not scheduled onto 1.x nodes.
pub const PAUSELESS_LABEL: &str = "runtime.tent.dev/pauseless";

#[derive(Clone, Debug, Default)]
pub struct Kube {
    pub kubectl: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    /// This node's name (`--node`, else `$NODE_NAME` from the downward API).
    pub node: Option<String>,
}

impl Kube {
    /// Why the label cannot be managed here, if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        if self.kubeconfig.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
            return Some("not in a cluster (no KUBERNETES_SERVICE_HOST, no --kubeconfig)".into());
        }
        if self.node.is_none() {
            return Some("the node's name is unknown (set --node or NODE_NAME)".into());
        }
        None
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let mut c = Command::new(&self.kubectl);
        if let Some(k) = &self.kubeconfig {
            c.arg("--kubeconfig").arg(k);
        }
        c.args(args);
        crate::host::unblock_signals(&mut c);
        let o = c
            .output()
            .map_err(|e| format!("run {}: {e}", self.kubectl.display()))?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    /// Set (`value` = Some) or remove the label; a message of what was done.
    pub fn label(&self, value: Option<&str>) -> Result<String, String> {
        self.label_key(LABEL, value)
    }

    /// Set or remove the node label `key`; a message of what was done.
    pub fn label_key(&self, key: &str, value: Option<&str>) -> Result<String, String> {
        if let Some(why) = self.unavailable() {
            return Ok(format!("node label {key} not changed: {why}"));
        }
        let node = self.node.as_deref().unwrap_or_default();
        let arg = match value {
            Some(v) => format!("{key}={v}"),
            None => format!("{key}-"),
        };
        self.kubectl(&["label", "node", node, &arg, "--overwrite"])?;
        Ok(match value {
            Some(v) => format!("node {node} labelled {key}={v}"),
            None => format!("label {key} removed from node {node}"),
        })
    }

    /// Is DaemonSet `ns/name` going away (deleted, or being deleted)? A rolling update keeps
    /// it in place, a `helm uninstall` deletes it before its pods get SIGTERM.
    pub fn daemonset_gone(&self, ns: &str, name: &str) -> Result<bool, String> {
        if let Some(why) = self.unavailable() {
            return Err(why);
        }
        match self.kubectl(&[
            "get",
            "daemonset",
            "-n",
            ns,
            name,
            "--ignore-not-found",
            "-o",
            "jsonpath={.metadata.name} {.metadata.deletionTimestamp}",
        ]) {
            Ok(out) => {
                let mut w = out.split_whitespace();
                Ok(w.next().is_none() || w.next().is_some())
            }
            Err(e) => Err(e),
        }
    }
}
