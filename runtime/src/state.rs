//! `<bundle>/tent-state.json`: what `cleanup_bundle` needs after the caller died.
//! It lives in the bundle so containerd's removal of the bundle removes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FILE: &str = "tent-state.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container init, once known.
    pub pid: Option<i32>,
    /// Its start time, to tell it from a recycled pid.
    pub start_time: Option<u64>,
    /// Cgroup path relative to each hierarchy root.
    pub cgroup: String,
    /// The systemd scope owning the cgroup, when systemd made it.
    #[serde(default)]
    pub systemd_unit: Option<String>,
    /// Mount points we created on the host (the rootfs), in mount order.
    pub mounts: Vec<PathBuf>,
    /// The spec's poststop hooks and the state they get, so a delete after the
    /// caller died still runs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub poststop_state: String,
}

pub fn path(bundle: &Path) -> PathBuf {
    bundle.join(FILE)
}

impl State {
    /// Writes atomically (temp file + rename).
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let path = path(bundle);
        let err = |reason: String| Error::State {
            path: path.clone(),
            reason,
        };
        let data = serde_json::to_vec(self).map_err(|e| err(e.to_string()))?;
        let tmp = bundle.join(format!(".{FILE}.tmp"));
        std::fs::write(&tmp, data).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))
    }

    /// `None` when there is no state file.
    pub fn load(bundle: &Path) -> Result<Option<State>> {
        let path = path(bundle);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::State {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::State {
                path,
                reason: e.to_string(),
            })
    }

    pub fn remove(bundle: &Path) -> Result<()> {
        let path = path(bundle);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }
}
