//! The architectures a filter can cover and their syscall numbers.
//!
//! Numbers come from the `syscalls` crate (generated from the kernel's
//! tables, BSD-2), for the host and its 32-bit companion — what containerd
//! lists in its profiles: x86_64 + i386 + x32 on amd64, aarch64 + arm on
//! arm64 (each table costs ~15 KB of binary, so foreign ones are left out:
//! a profile naming one fails create). x32 has no table there: it is the
//! x86_64 table with `__X32_SYSCALL_BIT` set, minus the eleven calls x32
//! never had and with the 36 calls x32 numbers itself (512–547, frozen since
//! 4.6; every newer call is "common"), listed here and checked against
//! `<asm/unistd_x32.h>` in the tests.

use oci_spec::runtime::Arch as OciArch;

/// `__X32_SYSCALL_BIT`: x32 calls are x86_64 calls with this bit set.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Builds an ABI's [`Table`] from the crate's number → name tables (compact
/// in the binary, unlike its name → number `match`), once per process.
#[allow(unused_macros)]
macro_rules! table {
    ($arch:ident) => {
        || {
            let mut t: Table = syscalls::$arch::Sysno::iter()
                .map(|s| (s.name(), s.id() as u32))
                .collect();
            t.sort_unstable();
            t
        }
    };
}
#[allow(unused_imports)]
use table;

/// One syscall ABI the filter checks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abi {
    X86_64,
    X32,
    I386,
    Aarch64,
    Arm,
}

impl Abi {
    /// The ABI of an OCI `SCMP_ARCH_*` name; `None` for one tent has no table for.
    pub fn of(arch: OciArch) -> Option<Abi> {
        match arch {
            OciArch::ScmpArchNative => Some(Abi::native()),
            OciArch::ScmpArchX86_64 => Some(Abi::X86_64),
            OciArch::ScmpArchX32 => Some(Abi::X32),
            OciArch::ScmpArchX86 => Some(Abi::I386),
            OciArch::ScmpArchAarch64 => Some(Abi::Aarch64),
            OciArch::ScmpArchArm => Some(Abi::Arm),
            _ => None,
        }
    }

    /// The ABI of the host (always in a filter, as libseccomp adds it).
    pub const fn native() -> Abi {
        if cfg!(target_arch = "aarch64") {
            Abi::Aarch64
        } else if cfg!(target_arch = "arm") {
            Abi::Arm
        } else if cfg!(target_arch = "x86") {
            Abi::I386
        } else if cfg!(all(target_arch = "x86_64", target_pointer_width = "32")) {
            Abi::X32
        } else {
            Abi::X86_64
        }
    }

    /// `seccomp_data.arch` of the ABI (x32 shares x86_64's).
    pub const fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => 0xc000_003e,
            Abi::I386 => 0x4000_0003,
            Abi::Aarch64 => 0xc000_00b7,
            Abi::Arm => 0x4000_0028,
        }
    }

    /// Arguments are compared as 32-bit values on 32-bit ABIs (as libseccomp).
    pub const fn is_64bit(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64)
    }

    /// The syscall number of `name` in this ABI, `None` if it has no such call.
    pub fn syscall(self, name: &str) -> Option<u32> {
        // The crate spells the keyword `break` as `r#break`.
        let name = if name == "break" { "r#break" } else { name };
        let t = self.table()?;
        let nr = t
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .and_then(|i| t.get(i))
            .map(|(_, nr)| *nr);
        match self {
            Abi::X32 => x32(nr, name),
            Abi::Arm => nr.or_else(|| arm_private(name)),
            _ => nr,
        }
    }

    /// The name → number table of the ABI (x32's is x86_64's, see [`x32`]),
    /// `None` for an ABI this build has no table for: tent has the host's
    /// and its 32-bit companion's, what containerd's profiles list.
    fn table(self) -> Option<&'static Table> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Abi::X86_64 | Abi::X32 => Some(tables::X86_64.get_or_init(table!(x86_64))),
            #[cfg(target_arch = "x86_64")]
            Abi::I386 => Some(tables::I386.get_or_init(table!(x86))),
            #[cfg(target_arch = "aarch64")]
            Abi::Aarch64 => Some(tables::AARCH64.get_or_init(table!(aarch64))),
            #[cfg(target_arch = "aarch64")]
            Abi::Arm => Some(tables::ARM.get_or_init(table!(arm))),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Whether this build can compile rules for the ABI.
    pub fn supported(self) -> bool {
        self.table().is_some()
    }
}

/// The ABIs this build has tables for, for error messages.
pub const SUPPORTED: &str = if cfg!(target_arch = "x86_64") {
    "SCMP_ARCH_X86_64, SCMP_ARCH_X86 and SCMP_ARCH_X32"
} else if cfg!(target_arch = "aarch64") {
    "SCMP_ARCH_AARCH64 and SCMP_ARCH_ARM"
} else {
    "none"
};

/// (name, number) sorted by name.
type Table = Vec<(&'static str, u32)>;

#[allow(dead_code)]
mod tables {
    use std::sync::OnceLock;
    pub static X86_64: OnceLock<super::Table> = OnceLock::new();
    pub static I386: OnceLock<super::Table> = OnceLock::new();
    pub static AARCH64: OnceLock<super::Table> = OnceLock::new();
    pub static ARM: OnceLock<super::Table> = OnceLock::new();
}

/// i386's `socketcall(2)` and `ipc(2)`, and the call number (their first
/// argument) of each call they multiplex.
pub const I386_SOCKETCALL: u32 = 102;
pub const I386_IPC: u32 = 117;

/// The multiplexer and call number of `name` on i386, if it has one.
pub fn i386_multiplexed(name: &str) -> Option<(u32, u64)> {
    const SOCKET: &[&str] = &[
        "socket",
        "bind",
        "connect",
        "listen",
        "accept",
        "getsockname",
        "getpeername",
        "socketpair",
        "send",
        "recv",
        "sendto",
        "recvfrom",
        "shutdown",
        "setsockopt",
        "getsockopt",
        "sendmsg",
        "recvmsg",
        "accept4",
        "recvmmsg",
        "sendmmsg",
    ];
    const IPC: &[(&str, u64)] = &[
        ("semop", 1),
        ("semget", 2),
        ("semctl", 3),
        ("semtimedop", 4),
        ("msgsnd", 11),
        ("msgrcv", 12),
        ("msgget", 13),
        ("msgctl", 14),
        ("shmat", 21),
        ("shmdt", 22),
        ("shmget", 23),
        ("shmctl", 24),
    ];
    if let Some(i) = SOCKET.iter().position(|n| *n == name) {
        return Some((I386_SOCKETCALL, i as u64 + 1));
    }
    IPC.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, call)| (I386_IPC, *call))
}

/// arm's private calls (`__ARM_NR_BASE` + n), which the crate's table lacks
/// and containerd's arm profile allows (`breakpoint`, `cacheflush`, `set_tls`).
fn arm_private(name: &str) -> Option<u32> {
    const BASE: u32 = 0x0f_0000;
    let n = [
        "breakpoint",
        "cacheflush",
        "usr26",
        "usr32",
        "set_tls",
        "get_tls",
    ]
    .iter()
    .position(|n| *n == name)?;
    Some(BASE + 1 + n as u32)
}

/// x86_64 calls the x32 ABI does not have.
const X32_ABSENT: &[&str] = &[
    "_sysctl",
    "create_module",
    "epoll_ctl_old",
    "epoll_wait_old",
    "get_kernel_syms",
    "get_thread_area",
    "nfsservctl",
    "query_module",
    "set_thread_area",
    "uselib",
    "vserver",
];

/// Calls x32 has under its own numbers (their x86_64 numbers are 64-bit only).
const X32_OWN: &[(&str, u32)] = &[
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// x32's number for `name`, whose x86_64 number is `x86_64`.
fn x32(x86_64: Option<u32>, name: &str) -> Option<u32> {
    if X32_ABSENT.contains(&name) {
        return None;
    }
    let nr = match X32_OWN.iter().find(|(n, _)| *n == name) {
        Some((_, nr)) => *nr,
        None => x86_64?,
    };
    Some(X32_SYSCALL_BIT | nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, number)` of every `#define __NR_name <number>` line.
    fn header(path: &str, x32: bool) -> Vec<(String, u32)> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("#define __NR_")?;
                let (name, value) = rest.split_once(' ')?;
                let value = if x32 {
                    value
                        .strip_prefix("(__X32_SYSCALL_BIT + ")?
                        .strip_suffix(')')?
                        .parse::<u32>()
                        .ok()?
                        | X32_SYSCALL_BIT
                } else {
                    value.parse().ok()?
                };
                Some((name.to_string(), value))
            })
            .collect()
    }

    #[test]
    fn known_numbers() {
        assert_eq!(Abi::X86_64.syscall("execve"), Some(59));
        assert_eq!(Abi::X32.syscall("execve"), Some(0x4000_0208));
        assert_eq!(Abi::X32.syscall("read"), Some(0x4000_0000));
        assert_eq!(Abi::X32.syscall("uselib"), None);
        assert_eq!(Abi::I386.syscall("socketcall"), Some(102));
        assert_eq!(Abi::X86_64.syscall("socketcall"), None);
        assert_eq!(arm_private("cacheflush"), Some(0x0f_0002));
        assert_eq!(arm_private("set_tls"), Some(0x0f_0005));
        if cfg!(target_arch = "x86_64") {
            assert!(!Abi::Aarch64.supported() && !Abi::Arm.supported());
            assert_eq!(Abi::Aarch64.syscall("openat"), None);
        }
        assert_eq!(Abi::X86_64.syscall("no_such_call"), None);
    }

    /// Every call the host's kernel headers list has the same number here
    /// (the headers may be older than the table, not newer).
    #[test]
    fn tables_match_the_kernel_headers() {
        let dir = "/usr/include/x86_64-linux-gnu/asm";
        for (file, abi, is_x32) in [
            ("unistd_64.h", Abi::X86_64, false),
            ("unistd_32.h", Abi::I386, false),
            ("unistd_x32.h", Abi::X32, true),
        ] {
            let entries = header(&format!("{dir}/{file}"), is_x32);
            if entries.is_empty() {
                eprintln!("{dir}/{file} missing: skipped");
                continue;
            }
            for (name, nr) in entries {
                assert_eq!(abi.syscall(&name), Some(nr), "{file}: {name}");
            }
        }
    }
}
