//! File capabilities: the `security.capability` xattr (`struct vfs_cap_data`,
//! linux/capability.h), decoded into capability names. Revision 1 holds one
//! 32-bit set, revisions 2 and 3 two (64 capabilities); revision 3 adds the
//! root uid of the user namespace the capabilities belong to.

use serde::Serialize;

pub const XATTR: &str = "security.capability";

const REV_MASK: u32 = 0xFF00_0000;
const REV1: u32 = 0x0100_0000;
const REV2: u32 = 0x0200_0000;
const REV3: u32 = 0x0300_0000;
const EFFECTIVE: u32 = 0x0000_0001;

/// Capability names by number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCaps {
    pub revision: u8,
    /// The effective bit: the permitted set is raised at exec without the
    /// program asking.
    pub effective: bool,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    /// Revision 3: the namespace root uid the capabilities apply to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootid: Option<u32>,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn names(lo: u32, hi: u32) -> Vec<String> {
    let bits = u64::from(lo) | (u64::from(hi) << 32);
    (0..64)
        .filter(|i| bits & (1u64 << i) != 0)
        .map(|i| match NAMES.get(i) {
            Some(n) => (*n).to_string(),
            None => format!("CAP_{i}"),
        })
        .collect()
}

/// Decodes the xattr's value; the error says what is wrong with it.
pub fn decode(b: &[u8]) -> Result<FileCaps, String> {
    let magic = le32(b, 0).ok_or("shorter than its header")?;
    let (revision, sets, len) = match magic & REV_MASK {
        REV1 => (1, 1, 12),
        REV2 => (2, 2, 20),
        REV3 => (3, 2, 24),
        other => return Err(format!("unknown revision {:#x}", other >> 24)),
    };
    if b.len() != len {
        return Err(format!(
            "revision {revision} wants {len} bytes, has {}",
            b.len()
        ));
    }
    let get = |set: usize, which: usize| le32(b, 4 + set * 8 + which * 4).unwrap_or(0);
    let hi = |which| if sets == 2 { get(1, which) } else { 0 };
    Ok(FileCaps {
        revision,
        effective: magic & EFFECTIVE != 0,
        permitted: names(get(0, 0), hi(0)),
        inheritable: names(get(0, 1), hi(1)),
        rootid: if revision == 3 { le32(b, 20) } else { None },
    })
}

/// Encodes a revision 2 value.
#[cfg(test)]
pub fn encode_v2(permitted: u64, effective: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    v.extend_from_slice(&(REV2 | u32::from(effective)).to_le_bytes());
    v.extend_from_slice(&(permitted as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_roundtrip() {
        let c = decode(&encode_v2((1 << 13) | (1 << 39), true)).unwrap();
        assert_eq!(c.revision, 2);
        assert!(c.effective);
        assert_eq!(c.permitted, ["CAP_NET_RAW", "CAP_BPF"]);
        assert!(c.inheritable.is_empty());
    }

    #[test]
    fn v3_has_rootid() {
        let mut b = encode_v2(1 << 21, false);
        b[3] = 3;
        b.extend_from_slice(&1000u32.to_le_bytes());
        let c = decode(&b).unwrap();
        assert_eq!((c.revision, c.rootid), (3, Some(1000)));
        assert_eq!(c.permitted, ["CAP_SYS_ADMIN"]);
    }

    #[test]
    fn bad_values() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0, 0, 0, 9]).is_err());
        assert!(decode(&encode_v2(1, false)[..16]).is_err());
    }
}
