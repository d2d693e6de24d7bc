//! The files containerd's pause path (its podsandbox controller) writes for a pod, which
//! CRI then binds into every app container only if they exist: `hostname`, `hosts`,
//! `resolv.conf` under `<cri root>/sandboxes/<id>/`, and the pod's `/dev/shm` tmpfs at
//! `<cri state>/sandboxes/<id>/shm`. With `sandboxer = "shim"` nobody else writes them.
//!
//! Where: CRI's root and state are `io.containerd.grpc.v1.cri` beside the sandbox
//! controller's own dirs, found from the bundle containerd made
//! (`<state>/io.containerd.sandbox.controller.v1.shim/<ns>/<id>`, whose `work` link
//! points into `<root>/…`). Contents as containerd 2.1 writes them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pod_config::{Mode, PodConfig};

/// containerd's CRI plugin directory name under its root and state.
const CRI_DIR: &str = "io.containerd.grpc.v1.cri";
/// The pod's /dev/shm size (containerd's defaultShmSize, 64 MiB).
const SHM_OPTIONS: &str = "mode=1777,size=67108864";

/// What was made for a pod (kept in the sandbox state for clean-up after a crash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodFiles {
    /// `<cri root>/sandboxes/<id>`.
    pub root_dir: Option<PathBuf>,
    /// `<cri state>/sandboxes/<id>` (holds `shm`).
    pub state_dir: Option<PathBuf>,
    /// The shm tmpfs, when mounted.
    pub shm: Option<PathBuf>,
}

/// CRI's `(root, state)` directories for a sandbox bundle made by containerd.
pub fn cri_dirs(bundle: &Path) -> Result<(PathBuf, PathBuf)> {
    let up3 = |p: &Path| p.ancestors().nth(3).map(Path::to_path_buf);
    let state = up3(bundle).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "bundle_path {}: not <state>/<plugin>/<namespace>/<id>",
            bundle.display()
        ))
    })?;
    let work = std::fs::read_link(bundle.join("work"))
        .map_err(|e| Error::io(format!("read {}/work", bundle.display()), e))?;
    let root = up3(&work).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}/work -> {}: not <root>/<plugin>/<namespace>/<id>",
            bundle.display(),
            work.display()
        ))
    })?;
    Ok((root.join(CRI_DIR), state.join(CRI_DIR)))
}

/// The resolv.conf containerd writes from a DNSConfig.
pub fn resolv_conf(dns: &crate::pod_config::Dns) -> String {
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s += &format!("search {}\n", dns.searches.join(" "));
    }
    if !dns.servers.is_empty() {
        s += &format!("nameserver {}\n", dns.servers.join("\nnameserver "));
    }
    if !dns.options.is_empty() {
        s += &format!("options {}\n", dns.options.join(" "));
    }
    s
}

impl PodFiles {
    /// Writes the pod's files; on error what was made is removed again.
    pub fn create(id: &str, bundle: &Path, config: &PodConfig) -> Result<PodFiles> {
        let (root, state) = cri_dirs(bundle)?;
        let mut files = PodFiles {
            root_dir: Some(root.join("sandboxes").join(id)),
            state_dir: Some(state.join("sandboxes").join(id)),
            shm: None,
        };
        if let Err(e) = files.write(config) {
            if let Err(d) = files.remove() {
                log::warn!("sandbox {id}: {d}");
            }
            return Err(e);
        }
        Ok(files)
    }

    fn write(&mut self, config: &PodConfig) -> Result<()> {
        let (Some(root), Some(state)) = (self.root_dir.clone(), self.state_dir.clone()) else {
            return Ok(());
        };
        for d in [&root, &state] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        let hostname = if config.hostname.is_empty() {
            nix::unistd::gethostname()
                .map_err(|e| Error::io("gethostname", e.into()))?
                .to_string_lossy()
                .into_owned()
        } else {
            config.hostname.clone()
        };
        write(&root.join("hostname"), format!("{hostname}\n").as_bytes())?;
        copy("/etc/hosts", &root.join("hosts"))?;
        match &config.dns {
            Some(dns) => write(&root.join("resolv.conf"), resolv_conf(dns).as_bytes())?,
            None => copy("/etc/resolv.conf", &root.join("resolv.conf"))?,
        }
        if config.ipc != Mode::Node {
            let shm = state.join("shm");
            std::fs::create_dir_all(&shm)
                .map_err(|e| Error::io(format!("create {}", shm.display()), e))?;
            use nix::mount::MsFlags;
            nix::mount::mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(SHM_OPTIONS),
            )
            .map_err(|e| {
                Error::io(
                    format!("mount the pod's shm on {}", shm.display()),
                    e.into(),
                )
            })?;
            self.shm = Some(shm);
        }
        Ok(())
    }

    /// Unmounts the shm and removes both directories (idempotent).
    pub fn remove(&self) -> Result<()> {
        if let Some(shm) = &self.shm {
            match nix::mount::umount2(shm, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(Error::io(format!("unmount {}", shm.display()), e.into())),
            }
        }
        for d in self.root_dir.iter().chain(&self.state_dir) {
            match std::fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", d.display()), e)),
            }
        }
        Ok(())
    }
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

fn copy(from: &str, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::io(format!("copy {from} to {}", to.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_config::Dns;

    #[test]
    fn resolv_conf_as_containerd_writes_it() {
        let dns = Dns {
            servers: vec!["10.0.0.10".into(), "1.1.1.1".into()],
            searches: vec!["a.svc".into(), "svc".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search a.svc svc\nnameserver 10.0.0.10\nnameserver 1.1.1.1\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf(&Dns::default()), "");
    }

    #[test]
    fn cri_dirs_from_the_controllers_bundle() {
        let tmp = std::env::temp_dir().join(format!("tent-podfiles-{}", std::process::id()));
        let bundle = tmp.join("state/io.containerd.sandbox.controller.v1.shim/k8s.io/sb1");
        let work = tmp.join("root/io.containerd.sandbox.controller.v1.shim/k8s.io/sb1");
        std::fs::create_dir_all(&bundle).expect("mkdir");
        std::os::unix::fs::symlink(&work, bundle.join("work")).expect("symlink");
        let (root, state) = cri_dirs(&bundle).expect("dirs");
        assert_eq!(root, tmp.join("root/io.containerd.grpc.v1.cri"));
        assert_eq!(state, tmp.join("state/io.containerd.grpc.v1.cri"));
        std::fs::remove_dir_all(&tmp).expect("cleanup");
        assert!(cri_dirs(Path::new("/x")).is_err());
    }
}
