//! Capabilities: OCI names ↔ numbers, and applying all five sets exactly as the
//! spec lists them (inheritable/ambient stay empty unless asked: CVE-2022-29162).

use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxCapabilities};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Capability names by number (`CAP_` prefix stripped), as in linux/capability.h.
pub(crate) const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The number of a capability name (`CAP_SYS_ADMIN` or `SYS_ADMIN`).
pub fn cap_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

fn oci_number(cap: &Capability) -> Option<u32> {
    serde_json::to_value(cap)
        .ok()
        .and_then(|v| v.as_str().and_then(cap_number))
}

/// A set of capabilities as a bit mask.
pub fn mask(set: &Option<HashSet<Capability>>) -> u64 {
    set.iter()
        .flatten()
        .filter_map(oci_number)
        .fold(0u64, |m, n| m | (1u64 << n))
}

/// The five capability sets of a process as bit masks (what the child applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    /// The sets `process.capabilities` lists; a missing set is empty.
    pub fn from_oci(caps: &LinuxCapabilities) -> CapSets {
        CapSets {
            bounding: mask(caps.bounding()),
            effective: mask(caps.effective()),
            permitted: mask(caps.permitted()),
            inheritable: mask(caps.inheritable()),
            ambient: mask(caps.ambient()),
        }
    }
}

/// The highest capability this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `bounding` from the bounding set. Needs
/// CAP_SETPCAP in the effective set, so it runs before switching user.
pub fn drop_bounding(caps: &CapSets) -> Result<()> {
    let keep = caps.bounding;
    for cap in 0..=last_cap() {
        if keep & (1u64 << cap) == 0 {
            // SAFETY: plain prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                let e = nix::errno::Errno::last();
                if e != nix::errno::Errno::EINVAL {
                    return Err(Error::sys(
                        format!("drop capability {cap} from the bounding set"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets effective, permitted, inheritable and ambient exactly as listed.
pub fn apply_sets(caps: &CapSets) -> Result<()> {
    let (e, p, i) = (caps.effective, caps.permitted, caps.inheritable);
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs as capset(2) v3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(Error::sys("capset", nix::errno::Errno::last()));
    }
    // SAFETY: plain prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let ambient = caps.ambient;
    for cap in 0..64u32 {
        if ambient & (1u64 << cap) != 0 {
            // SAFETY: plain prctl with integer arguments.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            // As runc: an ambient capability that is not also permitted and
            // inheritable cannot be raised (EPERM); that is not an error.
            if rc != 0 && nix::errno::Errno::last() != nix::errno::Errno::EPERM {
                return Err(Error::sys(
                    format!(
                        "raise ambient capability {}",
                        NAMES.get(cap as usize).unwrap_or(&"?")
                    ),
                    nix::errno::Errno::last(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(cap_number("CAP_CHOWN"), Some(0));
        assert_eq!(cap_number("SYS_ADMIN"), Some(21));
        assert_eq!(cap_number("cap_net_raw"), Some(13));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_number("CAP_BOGUS"), None);
    }

    #[test]
    fn oci_mask() {
        let set: HashSet<Capability> = [
            Capability::Kill,
            Capability::AuditWrite,
            Capability::NetBindService,
        ]
        .into_iter()
        .collect();
        assert_eq!(mask(&Some(set)), (1 << 5) | (1 << 29) | (1 << 10));
        assert_eq!(mask(&None), 0);
    }
}
