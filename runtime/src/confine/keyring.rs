//! The container's own session keyring, `_ses.<id>`, as runc joins one. Without it the
//! container's processes keep the session keyring they inherit — the shim's, which is
//! containerd's, the host's — and wherever `keyctl` is allowed (the `tent-compat` profile, a
//! pod's own seccomp profile) could read, link or revoke the keys in it. Every exec joins the
//! same keyring by its name.

use std::ffi::CString;

use nix::errno::Errno;

use crate::error::{Error, Result};

const KEYCTL_DESCRIBE: libc::c_long = 6;
const KEYCTL_SETPERM: libc::c_long = 5;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
/// `KEY_USR_SEARCH`: the owner may find the keyring by name (what an exec's join needs once
/// the init runs as another user), as runc sets it.
const USR_SEARCH: u32 = 0x0008_0000;

/// The keyring's name for container `id`.
pub fn name_for(id: &str) -> String {
    format!("_ses.{id}")
}

/// Joins (creating it if none exists) the session keyring `name`, searchable by its owner.
/// A kernel without keyrings (`ENOSYS`) has nothing to share either: not an error.
pub fn join_session(name: &str) -> Result<()> {
    let what = || format!("join the session keyring {name}");
    let c_name = CString::new(name).map_err(|_| Error::spec("id", "contains a NUL byte"))?;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING reads one NUL-terminated string.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            c_name.as_ptr(),
        )
    };
    if serial < 0 {
        return match Errno::last() {
            Errno::ENOSYS => Ok(()),
            e => Err(Error::sys(what(), e)),
        };
    }
    let perm = describe(serial).map_err(|e| Error::sys(what(), e))?;
    // SAFETY: KEYCTL_SETPERM takes a key serial and a permission mask.
    if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, perm | USR_SEARCH) } < 0 {
        return Err(Error::sys(what(), Errno::last()));
    }
    Ok(())
}

/// The permission mask of key `serial` (`type;uid;gid;perm;description`, perm in hex).
fn describe(serial: libc::c_long) -> std::result::Result<u32, Errno> {
    let mut buf = [0u8; 256];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            serial,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Errno::last());
    }
    let text = buf.get(..(n as usize).min(buf.len())).unwrap_or_default();
    String::from_utf8_lossy(text)
        .split(';')
        .nth(3)
        .and_then(|p| u32::from_str_radix(p.trim_end_matches('\0'), 16).ok())
        .ok_or(Errno::EINVAL)
}
