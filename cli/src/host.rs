//! Running commands on the node from the installer's container: with `--host-ns` a command is
//! started in PID 1's mount, UTS, IPC, network and PID namespaces (hostPID), as
//! `nsenter -t 1 -m -u -i -n -p` would, without shipping nsenter: the namespace fds are opened
//! before the fork and only `setns` (a system call) runs between fork and exec.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

/// How commands reach the host.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub enter_ns: bool,
    /// Whose namespaces (1 on a node; tests name another process, as PID 1 of a sandbox may
    /// not be reachable).
    pub pid: u32,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            enter_ns: false,
            pid: 1,
        }
    }
}

const NAMESPACES: [(&str, libc::c_int); 5] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// Children start with no signal blocked: `tent install --wait-for-term` blocks SIGTERM for
/// itself from the start, and a daemon it restarts must still stop on SIGTERM.
pub fn unblock_signals(cmd: &mut Command) {
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe; the set is local.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Host {
    /// Run `cmd` to completion (in the host's namespaces with `enter_ns`).
    pub fn output(&self, mut cmd: Command) -> Result<Output, String> {
        let what = format!("{cmd:?}");
        unblock_signals(&mut cmd);
        if self.enter_ns {
            let mut fds: Vec<(OwnedFd, libc::c_int)> = Vec::new();
            for (n, flag) in NAMESPACES {
                let p = format!("/proc/{}/ns/{n}", self.pid);
                let f = File::open(&p).map_err(|e| format!("open {p} (needs hostPID): {e}"))?;
                fds.push((f.into(), flag));
            }
            let raw: Vec<(i32, libc::c_int)> =
                fds.iter().map(|(f, fl)| (f.as_raw_fd(), *fl)).collect();
            // SAFETY: only setns(2) and chdir(2) run in the child, both async-signal-safe; the
            // fds stay open in the parent until spawn returns.
            unsafe {
                cmd.pre_exec(move || {
                    for (fd, fl) in &raw {
                        if libc::setns(*fd, *fl) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if libc::chdir(c"/".as_ptr()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let out = cmd
                .output()
                .map_err(|e| format!("run {what} in the host's namespaces: {e}"));
            drop(fds);
            out
        } else {
            cmd.output().map_err(|e| format!("run {what}: {e}"))
        }
    }

    /// Run `cmd`; its stdout, or an error with its stderr.
    pub fn run(&self, cmd: Command) -> Result<String, String> {
        let what = format!("{cmd:?}");
        let o = self.output(cmd)?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "{what} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }
}

/// How containerd is restarted after its config changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// `systemctl restart <unit>` (containerd, k3s, k3s-agent, rke2-server, rke2-agent).
    Systemd(String),
    /// `sh -c <command>` (tests: a private daemon's own restart).
    Command(String),
    /// Not restarted (the operator does it; verification then sees the old config).
    None,
}

impl Restart {
    pub fn parse(s: &str) -> Result<Restart, String> {
        if let Some(u) = s.strip_prefix("systemd:") {
            if u.is_empty() || u.contains('/') {
                return Err(format!("--restart {s}: not a unit name"));
            }
            Ok(Restart::Systemd(u.to_string()))
        } else if let Some(c) = s.strip_prefix("cmd:") {
            Ok(Restart::Command(c.to_string()))
        } else if s == "none" {
            Ok(Restart::None)
        } else {
            Err(format!(
                "--restart {s}: expected systemd:UNIT, cmd:COMMAND or none"
            ))
        }
    }

    pub fn run(&self, host: &Host) -> Result<(), String> {
        let cmd = match self {
            Restart::None => return Ok(()),
            Restart::Systemd(u) => {
                let mut c = Command::new("systemctl");
                c.args(["restart", u]);
                c
            }
            Restart::Command(s) => {
                let mut c = Command::new("sh");
                c.args(["-c", s]);
                c
            }
        };
        host.run(cmd).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_parse() {
        assert_eq!(
            Restart::parse("systemd:k3s").unwrap(),
            Restart::Systemd("k3s".into())
        );
        assert_eq!(
            Restart::parse("cmd:true").unwrap(),
            Restart::Command("true".into())
        );
        assert!(Restart::parse("systemd:").is_err());
        assert!(Restart::parse("reboot").is_err());
    }

    #[test]
    fn failing_command_names_its_stderr() {
        let e = Restart::Command("echo nope >&2; exit 3".into())
            .run(&Host::default())
            .unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }
}
