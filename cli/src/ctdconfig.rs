//! containerd's configuration as the CRI reads it: the config version decides which plugin id
//! holds the runtimes (a table under the other id is silently ignored), and `config dump` is
//! the merged result of the root file and its imports.

use std::path::{Path, PathBuf};
use std::process::Command;

use toml_edit::{DocumentMut, Item};

use crate::host::Host;

/// CRI plugin id holding `containerd.runtimes` for config version 1/2 (containerd 1.x).
pub const CRI_V2: &str = "io.containerd.grpc.v1.cri";
/// ... and for version 3 and later (containerd 2.x).
pub const CRI_V3: &str = "io.containerd.cri.v1.runtime";
/// tent's runtime type (containerd runs `containerd-shim-tent-v1`).
pub const RUNTIME_TYPE: &str = "io.containerd.tent.v1";

/// The plugin id whose `containerd.runtimes` the CRI of this config version reads.
pub fn runtime_plugin(version: i64) -> &'static str {
    if version >= 3 {
        CRI_V3
    } else {
        CRI_V2
    }
}

/// The plugin id the CRI of this config version ignores for runtimes.
pub fn ignored_plugin(version: i64) -> &'static str {
    if version >= 3 {
        CRI_V2
    } else {
        CRI_V3
    }
}

/// A config's `version` (none = 1, as containerd reads it).
pub fn version(doc: &DocumentMut) -> i64 {
    doc.get("version").and_then(Item::as_integer).unwrap_or(1)
}

/// The item at `path` (table keys), if every step exists.
pub fn get<'a>(doc: &'a DocumentMut, path: &[&str]) -> Option<&'a Item> {
    let mut it = doc.as_item();
    for k in path {
        it = it.get(k)?;
    }
    Some(it)
}

/// The string at `path`.
pub fn get_str<'a>(doc: &'a DocumentMut, path: &[&str]) -> Option<&'a str> {
    get(doc, path).and_then(Item::as_str)
}

/// The runtime table of handler `h` under `plugin`.
pub fn runtime<'a>(doc: &'a DocumentMut, plugin: &str, h: &str) -> Option<&'a Item> {
    get(doc, &["plugins", plugin, "containerd", "runtimes", h])
}

/// The image CRI runs as a pod's sandbox (the pause image).
pub fn sandbox_image(doc: &DocumentMut) -> Option<String> {
    if version(doc) >= 3 {
        get_str(
            doc,
            &[
                "plugins",
                "io.containerd.cri.v1.images",
                "pinned_images",
                "sandbox",
            ],
        )
    } else {
        get_str(doc, &["plugins", CRI_V2, "sandbox_image"])
    }
    .map(str::to_string)
}

/// The `imports` globs of a root config.
pub fn imports(doc: &DocumentMut) -> Vec<String> {
    doc.get("imports")
        .and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How to reach a containerd. Paths are the host's: from a pod they are read under
/// `host_root` and commands run in the host's namespaces (`host`).
#[derive(Clone)]
pub struct Target {
    /// The containerd binary (`config dump` is run with it).
    pub containerd: PathBuf,
    /// Its root config.
    pub config: PathBuf,
    /// Its gRPC socket (the CRI).
    pub address: PathBuf,
    /// Where the host's `/` is in this process's file system (`/` on the node itself).
    pub host_root: PathBuf,
    pub host: Host,
}

impl Target {
    /// Host path `p` as this process reaches it.
    pub fn at(&self, p: &Path) -> PathBuf {
        self.host_root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// `containerd --config <config> config dump`, parsed.
    pub fn dump(&self) -> Result<DocumentMut, String> {
        let mut cmd = Command::new(&self.containerd);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["config", "dump"]);
        let out = self.host.output(cmd)?;
        if !out.status.success() {
            return Err(format!(
                "{} --config {} config dump: {}",
                self.containerd.display(),
                self.config.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.parse::<DocumentMut>().map_err(|e| {
            format!(
                "parse the output of `containerd config dump` ({}): {e}",
                self.config.display()
            )
        })
    }
}

/// Parse a config file, naming it in the error.
pub fn parse_file(path: &Path) -> Result<(String, DocumentMut), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?;
    Ok((text, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_by_version() {
        assert_eq!(runtime_plugin(1), CRI_V2);
        assert_eq!(runtime_plugin(2), CRI_V2);
        assert_eq!(runtime_plugin(3), CRI_V3);
        assert_eq!(ignored_plugin(3), CRI_V2);
        let d: DocumentMut = "a = 1".parse().unwrap();
        assert_eq!(version(&d), 1);
        let d: DocumentMut = "version = 3\nimports = [\"/x/*.toml\"]\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\nsandbox = \"p:1\"".parse().unwrap();
        assert_eq!(version(&d), 3);
        assert_eq!(imports(&d), vec!["/x/*.toml".to_string()]);
        assert_eq!(sandbox_image(&d).as_deref(), Some("p:1"));
    }
}
