//! AppArmor and SELinux: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel`. Both are exec-time transitions: the label written to
//! the process's `attr` file takes effect at the workload's `execve`.
//!
//! A label the host cannot apply (its LSM is not enabled, or the AppArmor
//! profile is not loaded) is an error naming the field, never ignored: a pod
//! that asked to be confined does not run unconfined.

use std::io::Write;
use std::path::Path;

use nix::fcntl::OFlag;
use oci_spec::runtime::Process;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pathsafe::open_proc;

/// The labels a container process gets at `execve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// AppArmor profile name (`unconfined` means none is applied).
    pub apparmor: Option<String>,
    /// SELinux process label.
    pub selinux: Option<String>,
}

/// Where the host's LSM state is read; a parameter so tests can fake a host.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    pub sys: &'a Path,
}

impl Host<'static> {
    pub fn this() -> Host<'static> {
        Host {
            sys: Path::new("/sys"),
        }
    }
}

impl Host<'_> {
    pub fn apparmor_enabled(&self) -> bool {
        std::fs::read_to_string(self.sys.join("module/apparmor/parameters/enabled"))
            .is_ok_and(|s| s.trim_start().starts_with('Y'))
    }

    /// Loaded profile names, when securityfs shows them.
    fn apparmor_profiles(&self) -> Option<Vec<String>> {
        let text =
            std::fs::read_to_string(self.sys.join("kernel/security/apparmor/profiles")).ok()?;
        Some(
            text.lines()
                .map(|l| match l.rsplit_once(" (") {
                    Some((name, _mode)) => name.to_string(),
                    None => l.to_string(),
                })
                .collect(),
        )
    }

    pub fn selinux_enabled(&self) -> bool {
        self.sys.join("fs/selinux/enforce").exists()
    }
}

fn set(v: &Option<String>) -> Option<String> {
    v.as_deref().filter(|s| !s.is_empty()).map(str::to_string)
}

fn unavailable(field: &str, what: &str) -> Error {
    Error::Precondition(format!(
        "{field}: {what} is not enabled on this host; refusing to run the container unconfined"
    ))
}

/// The labels `process` asks for, checked against the host.
pub fn labels_of(process: &Process, host: &Host<'_>) -> Result<Labels> {
    let labels = Labels {
        apparmor: set(process.apparmor_profile()),
        selinux: set(process.selinux_label()),
    };
    check(&labels, host)?;
    Ok(labels)
}

/// Fails when the host cannot apply `labels`.
pub fn check(labels: &Labels, host: &Host<'_>) -> Result<()> {
    if let Some(profile) = labels.apparmor.as_deref().filter(|p| *p != "unconfined") {
        if !host.apparmor_enabled() {
            return Err(unavailable("process.apparmorProfile", "AppArmor"));
        }
        if let Some(loaded) = host.apparmor_profiles() {
            if !loaded.iter().any(|l| l == profile) {
                return Err(Error::spec(
                    "process.apparmorProfile",
                    format!("AppArmor profile {profile:?} is not loaded on this host (load it with apparmor_parser)"),
                ));
            }
        }
    }
    if labels.selinux.is_some() && !host.selinux_enabled() {
        return Err(unavailable("process.selinuxLabel", "SELinux"));
    }
    Ok(())
}

/// `linux.mountLabel`, checked against the host: the `context=` option tent
/// adds to the container's own (non-bind) mounts.
pub fn mount_label(label: Option<&str>, host: &Host<'_>) -> Result<Option<String>> {
    match label.filter(|l| !l.is_empty()) {
        None => Ok(None),
        Some(_) if !host.selinux_enabled() => Err(unavailable("linux.mountLabel", "SELinux")),
        Some(l) => Ok(Some(l.to_string())),
    }
}

/// Writes `value` to `/proc/<our pid>/attr/<file>` through the verified procfs
/// handle (the container's `/proc`: we are past pivot_root or in its mount
/// namespace; our pid is the one that procfs knows).
fn write_attr(files: &[&str], value: &str, field: &str) -> Result<()> {
    let pid = std::process::id();
    let mut last = None;
    for file in files {
        match open_proc(&format!("{pid}/attr/{file}"), OFlag::O_WRONLY) {
            Ok(fd) => {
                return std::fs::File::from(fd)
                    .write_all(value.as_bytes())
                    .map_err(|e| {
                        Error::io(
                            "write",
                            format!("{field}: /proc/self/attr/{file} ({value})"),
                            e,
                        )
                    });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::spec(field, "no attr file to write")))
}

impl Labels {
    /// Sets the exec-time labels of the calling process. Runs while still root
    /// (a non-dumpable process's `/proc` files belong to root).
    pub fn apply(&self) -> Result<()> {
        if let Some(profile) = self.apparmor.as_deref().filter(|p| *p != "unconfined") {
            write_attr(
                &["apparmor/exec", "exec"],
                &format!("exec {profile}"),
                "process.apparmorProfile",
            )?;
        }
        if let Some(label) = self.selinux.as_deref() {
            write_attr(&["selinux/exec", "exec"], label, "process.selinuxLabel")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(apparmor: Option<&str>, profiles: Option<&str>, selinux: bool) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        if let Some(v) = apparmor {
            d.write("module/apparmor/parameters/enabled", v);
        }
        if let Some(p) = profiles {
            d.write("kernel/security/apparmor/profiles", p);
        }
        if selinux {
            d.write("fs/selinux/enforce", "1");
        }
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("tent-lsm-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                Dir(p)
            }
            pub fn write(&self, rel: &str, v: &str) {
                let f = self.0.join(rel);
                if let Some(parent) = f.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::write(f, v);
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn labels(apparmor: Option<&str>, selinux: Option<&str>) -> Labels {
        Labels {
            apparmor: apparmor.map(str::to_string),
            selinux: selinux.map(str::to_string),
        }
    }

    fn err(l: &Labels, d: &tempdir::Dir) -> String {
        check(l, &Host { sys: &d.0 }).map_or_else(|e| e.to_string(), |()| "ok".into())
    }

    #[test]
    fn apparmor_needs_the_lsm_and_the_profile() {
        let l = labels(Some("cri-containerd.apparmor.d"), None);
        assert_eq!(
            err(&l, &host(None, None, false)),
            "process.apparmorProfile: AppArmor is not enabled on this host; refusing to run the container unconfined"
        );
        assert!(err(&l, &host(Some("N"), None, false)).contains("not enabled"));
        let loaded = "cri-containerd.apparmor.d (enforce)\nother (complain)\n";
        assert_eq!(err(&l, &host(Some("Y"), Some(loaded), false)), "ok");
        assert_eq!(
            err(&labels(Some("missing"), None), &host(Some("Y"), Some(loaded), false)),
            "process.apparmorProfile: AppArmor profile \"missing\" is not loaded on this host (load it with apparmor_parser)"
        );
        assert_eq!(
            err(&labels(Some("unconfined"), None), &host(None, None, false)),
            "ok"
        );
    }

    #[test]
    fn selinux_needs_the_lsm() {
        let l = labels(None, Some("system_u:system_r:container_t:s0"));
        assert!(err(&l, &host(None, None, false))
            .contains("process.selinuxLabel: SELinux is not enabled"));
        assert_eq!(err(&l, &host(None, None, true)), "ok");
        let d = host(None, None, false);
        let e = mount_label(Some("x"), &Host { sys: &d.0 })
            .map_or_else(|e| e.to_string(), |_| "ok".into());
        assert!(
            e.contains("linux.mountLabel: SELinux is not enabled"),
            "{e}"
        );
        assert_eq!(mount_label(Some(""), &Host { sys: &d.0 }).ok(), Some(None));
    }
}
