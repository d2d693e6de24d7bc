//! Confinement: everything that limits what a container process may do once
//! it runs — who it is (uid, gid, groups), its capability sets,
//! no_new_privileges, its AppArmor profile and SELinux label ([`lsm`]), its
//! seccomp filter ([`seccomp`]) and its own session keyring ([`keyring`]); what
//! tent cannot apply is refused (a
//! security setting is never silently dropped).
//!
//! A [`Confinement`] is built once at create from the spec ([`Confinement::for_init`]),
//! kept with the container, derived for each exec ([`Confinement::for_exec`]:
//! the exec's process overrides what it sets, the rest is the container's, as
//! runc does), and applied at one point in the child for both
//! ([`Confinement::apply`]). A mechanism is one module here ([`caps`],
//! [`lsm`], [`seccomp`]) plus its call in `apply`.

pub mod caps;
pub mod keyring;
pub mod lsm;
pub mod seccomp;

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Process, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use caps::CapSets;

/// What tent's profile (`profile.rs`) adds to a spec's confinement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardening {
    /// no_new_privileges for the init and every exec, whatever the spec says.
    pub no_new_privileges: bool,
    /// The rootfs bind is `nosuid,nodev`.
    pub rootfs_nosuid_nodev: bool,
    /// tent's default seccomp filter when the spec brings none.
    pub default_seccomp: bool,
}

/// How a container process is confined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    pub capabilities: CapSets,
    pub no_new_privileges: bool,
    pub labels: lsm::Labels,
    /// What the profile adds, for the init and every exec.
    pub hardening: Hardening,
    /// `linux.seccomp`, compiled at create; always the container's.
    pub seccomp: Option<seccomp::Filter>,
    /// The container's session keyring ([`keyring`]), set at create; always the container's.
    #[serde(default)]
    pub session_keyring: Option<String>,
}

/// The process's identity, applied with the capabilities (see [`Confinement::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

impl Identity {
    /// `process.user` (a `username` must be resolved into uid/gid before).
    pub fn of(process: &Process) -> Identity {
        let u = process.user();
        Identity {
            uid: u.uid(),
            gid: u.gid(),
            additional_gids: u.additional_gids().clone().unwrap_or_default(),
        }
    }
}

impl Confinement {
    /// The container's confinement, from its spec; refuses what tent cannot apply.
    pub fn for_init(spec: &Spec, hardening: Hardening) -> Result<Confinement> {
        let host = lsm::Host::this();
        lsm::mount_label(
            spec.linux()
                .as_ref()
                .and_then(|l| l.mount_label().as_deref()),
            &host,
        )?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::spec("process", "is missing"))?;
        Ok(Confinement {
            labels: lsm::labels_of(process, &host)?,
            capabilities: process
                .capabilities()
                .as_ref()
                .map(CapSets::from_oci)
                .unwrap_or_default(),
            no_new_privileges: process.no_new_privileges() == Some(true)
                || hardening.no_new_privileges,
            hardening,
            seccomp: match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
                Some(profile) => Some(seccomp::compile(profile)?),
                None if hardening.default_seccomp => Some(seccomp::default::filter()?),
                None => None,
            },
            session_keyring: None,
        })
    }

    /// An exec's confinement: what its process spec sets, else the container's
    /// (as runc: capabilities and no_new_privileges fall back to the
    /// container's; seccomp is always the container's).
    pub fn for_exec(&self, process: &Process) -> Result<Confinement> {
        let own = lsm::labels_of(process, &lsm::Host::this())?;
        Ok(Confinement {
            labels: lsm::Labels {
                apparmor: own.apparmor.or_else(|| self.labels.apparmor.clone()),
                selinux: own.selinux.or_else(|| self.labels.selinux.clone()),
            },
            capabilities: process
                .capabilities()
                .as_ref()
                .map_or(self.capabilities, CapSets::from_oci),
            no_new_privileges: process
                .no_new_privileges()
                .unwrap_or(self.no_new_privileges)
                || self.hardening.no_new_privileges,
            hardening: self.hardening,
            seccomp: self.seccomp.clone(),
            session_keyring: self.session_keyring.clone(),
        })
    }

    /// Confines the calling (single-threaded) process: its own session keyring (as root, before
    /// any seccomp filter), LSM labels for the
    /// coming `execve` (while root: a non-dumpable process's `/proc` belongs to
    /// root), bounding set (needs CAP_SETPCAP, so before the user switch),
    /// identity, the other capability sets, no_new_privileges, and the
    /// seccomp filter. The workload's `execve` follows.
    ///
    /// The filter goes in as runc loads it: with no_new_privileges as the
    /// very last step, so the fewest of our own calls run under it; without,
    /// right after the labels, because only CAP_SYS_ADMIN then allows
    /// loading it and the steps below drop it (the profile must then allow
    /// prctl, capset, setgroups, setresgid and setresuid, as it must with
    /// runc). Either way what runs after it is ours: for the init, sending
    /// Ready and receiving Start on the sync socket (sendmsg, recvmsg), then
    /// execve; for an exec, execve (fds were marked close-on-exec before).
    /// containerd's profiles allow all of them; runc needs write, openat,
    /// close and execve after it.
    pub fn apply(&self, who: &Identity) -> std::result::Result<(), (&'static str, Error)> {
        let load_seccomp = || match &self.seccomp {
            Some(filter) => filter.load().map_err(|e| ("seccomp", e)),
            None => Ok(()),
        };
        if let Some(name) = &self.session_keyring {
            keyring::join_session(name).map_err(|e| ("session keyring", e))?;
        }
        self.labels.apply().map_err(|e| ("security labels", e))?;
        if !self.no_new_privileges {
            load_seccomp()?;
        }
        caps::drop_bounding(&self.capabilities).map_err(|e| ("capabilities (bounding set)", e))?;
        switch_user(who).map_err(|e| ("user", e))?;
        caps::apply_sets(&self.capabilities).map_err(|e| ("capabilities", e))?;
        if self.no_new_privileges {
            prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "prctl PR_SET_NO_NEW_PRIVS")
                .map_err(|e| ("no_new_privileges", e))?;
            load_seccomp()?;
        }
        Ok(())
    }
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
        return Err(Error::sys(what.to_string(), nix::errno::Errno::last()));
    }
    Ok(())
}

/// setgroups, then gid and uid (all three ids each), keeping the capability
/// sets across the uid change so [`caps::apply_sets`] can set them exactly.
fn switch_user(who: &Identity) -> Result<()> {
    let groups: Vec<Gid> = who
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| Error::sys("setgroups", e))?;
    prctl(libc::PR_SET_KEEPCAPS, 1, "prctl PR_SET_KEEPCAPS")?;
    let gid = Gid::from_raw(who.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| Error::sys(format!("setgid {}", who.gid), e))?;
    let uid = Uid::from_raw(who.uid);
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| Error::sys(format!("setuid {}", who.uid), e))?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "prctl PR_SET_KEEPCAPS")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "noNewPrivileges": true,
                        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}]}
        });
        if let (Some(b), Some(p)) = (base.as_object_mut(), v.as_object()) {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap_or_default()
    }

    impl Confinement {
        fn for_init_default(spec: &Spec) -> Result<Confinement> {
            Confinement::for_init(spec, Hardening::default())
        }
    }

    #[test]
    fn hardening_forces_no_new_privileges() -> Result<()> {
        let s = spec(
            serde_json::json!({"process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}),
        );
        let h = Hardening {
            no_new_privileges: true,
            rootfs_nosuid_nodev: true,
            default_seccomp: true,
        };
        let c = Confinement::for_init(&s, h)?;
        assert!(c.no_new_privileges);
        assert!(
            c.seccomp.is_some(),
            "tent's default filter for a spec without one"
        );
        assert!(Confinement::for_init_default(&s)?.seccomp.is_none());
        let off: Process = serde_json::from_value(serde_json::json!(
            {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "noNewPrivileges": false}
        ))
        .unwrap_or_default();
        assert!(
            c.for_exec(&off)?.no_new_privileges,
            "an exec cannot turn it off"
        );
        assert!(!Confinement::for_init_default(&s)?.no_new_privileges);
        Ok(())
    }

    #[test]
    fn init_from_spec() -> Result<()> {
        let c = Confinement::for_init_default(&spec(serde_json::json!({})))?;
        assert!(c.no_new_privileges);
        assert_eq!(c.capabilities.bounding, 1 << 5);
        assert_eq!(c.capabilities.permitted, 0);
        Ok(())
    }

    #[test]
    fn exec_inherits_what_its_process_leaves_out() -> Result<()> {
        let c = Confinement::for_init_default(&spec(serde_json::json!({})))?;
        let bare: Process = serde_json::from_value(serde_json::json!(
            {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
        ))
        .unwrap_or_default();
        assert_eq!(c.for_exec(&bare)?, c);
        let own: Process = serde_json::from_value(serde_json::json!(
            {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
             "noNewPrivileges": false, "capabilities": {"bounding": ["CAP_CHOWN"]}}
        ))
        .unwrap_or_default();
        let e = c.for_exec(&own)?;
        assert!(!e.no_new_privileges);
        assert_eq!(e.capabilities.bounding, 1);
        Ok(())
    }

    #[test]
    fn exec_gets_the_containers_filter() -> Result<()> {
        let c = Confinement::for_init_default(&spec(serde_json::json!({"linux": {
            "namespaces": [{"type": "mount"}],
            "seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
        }})))?;
        assert!(c.seccomp.is_some());
        let own: Process = serde_json::from_value(serde_json::json!(
            {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "noNewPrivileges": false}
        ))
        .unwrap_or_default();
        assert_eq!(c.for_exec(&own)?.seccomp, c.seccomp);
        Ok(())
    }

    #[test]
    fn unsupported_settings_are_refused() {
        let err = Confinement::for_init_default(&spec(serde_json::json!(
            {"linux": {"namespaces": [{"type": "mount"}], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}}}
        )))
        .map(|_| ())
        .map_err(|e| (e.kind(), e.to_string()));
        match err {
            Err((kind, msg)) => {
                assert_eq!(kind, crate::ErrorKind::Unimplemented, "{msg}");
                assert!(msg.starts_with("linux.seccomp.syscalls[0].action"), "{msg}");
            }
            Ok(()) => panic!("SCMP_ACT_NOTIFY accepted"),
        }
    }
}
