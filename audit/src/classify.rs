//! What a program's name says it is. Tools are recognised by their file name
//! (a version suffix removed: `python3.11` is `python`), because that is how a
//! shell, a script or an attacker finds them: by name, on `PATH`. The lists
//! are the programs that widen what a process in the container can do; a
//! name in several lists counts once, in the first that matches.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Shell,
    PackageManager,
    Interpreter,
    Compiler,
    Network,
    Kernel,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::Shell => "shells",
            Category::PackageManager => "package managers",
            Category::Interpreter => "interpreters",
            Category::Compiler => "compilers, debuggers, tracers",
            Category::Network => "network tools",
            Category::Kernel => "kernel-facing tools",
        }
    }
}

const SHELLS: &[&str] = &[
    "sh", "bash", "rbash", "dash", "ash", "hush", "zsh", "ksh", "mksh", "pdksh", "csh", "tcsh",
    "fish", "yash",
];
const PACKAGE_MANAGERS: &[&str] = &[
    "apt",
    "apt-get",
    "aptitude",
    "dpkg",
    "dpkg-deb",
    "rpm",
    "yum",
    "dnf",
    "microdnf",
    "tdnf",
    "apk",
    "pip",
    "pipx",
    "easy_install",
    "npm",
    "npx",
    "yarn",
    "pnpm",
    "gem",
    "bundle",
    "composer",
    "zypper",
    "pacman",
    "opkg",
    "ipkg",
    "conda",
    "mamba",
    "micromamba",
    "emerge",
    "nix-env",
    "snap",
    "flatpak",
    "cargo",
    "dpkg-install",
];
const INTERPRETERS: &[&str] = &[
    "python", "perl", "ruby", "irb", "node", "nodejs", "php", "php-cgi", "lua", "luajit", "tclsh",
    "wish", "expect", "java", "jshell", "Rscript", "R", "deno", "bun", "awk", "gawk", "mawk",
    "nawk", "guile", "racket", "erl", "escript", "elixir", "ocaml", "julia", "pwsh", "groovy",
    "scala", "kotlin",
];
const COMPILERS: &[&str] = &[
    "gcc",
    "cc",
    "c++",
    "g++",
    "cpp",
    "clang",
    "clang++",
    "tcc",
    "as",
    "ld",
    "ld.bfd",
    "ld.gold",
    "ld.lld",
    "lld",
    "go",
    "rustc",
    "javac",
    "gdb",
    "gdbserver",
    "lldb",
    "strace",
    "ltrace",
    "perf",
    "bpftrace",
    "valgrind",
    "sysdig",
    "make",
];
const NETWORK: &[&str] = &[
    "curl",
    "wget",
    "nc",
    "netcat",
    "ncat",
    "socat",
    "telnet",
    "ssh",
    "scp",
    "sftp",
    "ftp",
    "tftp",
    "rsync",
    "nmap",
    "ping",
    "ping6",
    "traceroute",
    "traceroute6",
    "tracepath",
    "dig",
    "nslookup",
    "host",
    "openssl",
    "ftpget",
    "ftpput",
    "ssl_client",
    "tcpdump",
    "arping",
    "ether-wake",
    "whois",
    "udhcpc",
    "dhclient",
    "sshd",
    "telnetd",
    "ftpd",
    "tftpd",
    "httpd",
    "inetd",
    "nbd-client",
    "sendmail",
];
const KERNEL: &[&str] = &[
    "mount",
    "umount",
    "modprobe",
    "insmod",
    "rmmod",
    "lsmod",
    "depmod",
    "modinfo",
    "nft",
    "ip",
    "ifconfig",
    "route",
    "tc",
    "brctl",
    "bridge",
    "nsenter",
    "unshare",
    "capsh",
    "setcap",
    "getcap",
    "chroot",
    "pivot_root",
    "switch_root",
    "sysctl",
    "losetup",
    "swapon",
    "swapoff",
    "setpriv",
    "kexec",
    "debugfs",
    "mknod",
    "mdev",
    "devmem",
    "keyctl",
    "ethtool",
    "nameif",
    "tunctl",
    "vconfig",
    "blockdev",
    "fdisk",
    "sfdisk",
    "dmesg",
    "reboot",
    "poweroff",
    "halt",
    "hwclock",
    "bpftool",
    "runc",
    "crun",
    "ctr",
    "docker",
    "kubectl",
];
/// Name prefixes for tool families with many variants.
const KERNEL_PREFIXES: &[&str] = &[
    "iptables",
    "ip6tables",
    "ebtables",
    "arptables",
    "xtables",
    "mkfs",
    "fsck",
    "mount.",
];
/// Cross compilers: `x86_64-linux-gnu-gcc-12`.
const COMPILER_SUFFIXES: &[&str] = &["-gcc", "-g++", "-cc", "-c++", "-ld", "-as", "-clang"];

/// The name without a version suffix: `python3.11` → `python`, `gcc-12` → `gcc`.
pub fn base_name(name: &str) -> &str {
    let t = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '_');
    if t.is_empty() {
        name
    } else {
        t
    }
}

pub fn classify(name: &str) -> Option<Category> {
    let lists: [(Category, &[&str]); 6] = [
        (Category::Shell, SHELLS),
        (Category::PackageManager, PACKAGE_MANAGERS),
        (Category::Interpreter, INTERPRETERS),
        (Category::Compiler, COMPILERS),
        (Category::Network, NETWORK),
        (Category::Kernel, KERNEL),
    ];
    for candidate in [name, base_name(name)] {
        for (cat, list) in lists {
            if list.contains(&candidate) {
                return Some(cat);
            }
        }
    }
    if KERNEL_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Some(Category::Kernel);
    }
    let b = base_name(name);
    if COMPILER_SUFFIXES.iter().any(|s| b.ends_with(s)) {
        return Some(Category::Compiler);
    }
    None
}

/// A multi-call binary whose applets are reached by link name or argument.
pub fn is_busybox(name: &str) -> bool {
    name == "busybox" || name.starts_with("busybox.") || name.starts_with("busybox-")
}

/// The applet names compiled into a busybox binary: its `applet_names` table,
/// a NUL-separated, sorted list that starts with `[` and `[[`.
pub fn busybox_applets(image: &[u8]) -> Vec<String> {
    const START: &[u8] = b"\0[\0[[\0";
    let Some(at) = image.windows(START.len()).position(|w| w == START) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for raw in image.get(at + 1..).unwrap_or_default().split(|&c| c == 0) {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"[-_.".contains(&c));
        if !ok {
            break;
        }
        out.push(String::from_utf8_lossy(raw).into_owned());
        if out.len() >= 1024 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify("python3.11"), Some(Category::Interpreter));
        assert_eq!(classify("sh"), Some(Category::Shell));
        assert_eq!(classify("apt-get"), Some(Category::PackageManager));
        assert_eq!(classify("pip3"), Some(Category::PackageManager));
        assert_eq!(classify("iptables-legacy"), Some(Category::Kernel));
        assert_eq!(classify("mkfs.ext4"), Some(Category::Kernel));
        assert_eq!(
            classify("x86_64-linux-gnu-gcc-12"),
            Some(Category::Compiler)
        );
        assert_eq!(classify("gcc-12"), Some(Category::Compiler));
        assert_eq!(classify("nc"), Some(Category::Network));
        assert_eq!(classify("ls"), None);
        assert_eq!(classify("123"), None);
        assert_eq!(classify("libc.so.6"), None);
    }

    #[test]
    fn applet_table() {
        let img = b"junk\0[\0[[\0acpid\0ash\0mount\0\0more";
        assert_eq!(busybox_applets(img), ["[", "[[", "acpid", "ash", "mount"]);
        assert!(busybox_applets(b"nothing here").is_empty());
        if let Ok(b) = std::fs::read("/bin/busybox") {
            let a = busybox_applets(&b);
            assert!(a.iter().any(|x| x == "sh"), "{a:?}");
            assert!(a.iter().any(|x| x == "mount"));
        }
    }
}
