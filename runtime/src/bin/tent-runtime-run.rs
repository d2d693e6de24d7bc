//! `tent-runtime-run <bundle> <id>`: run one container to completion, like
//! `runc run`. Used by the tests and the benchmark; it is also its own init.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tent_runtime::{Container, CreateRequest, InitExe, Mode, Profile, Stdio};

fn dup(fd: impl AsFd) -> Option<OwnedFd> {
    fd.as_fd().try_clone_to_owned().ok()
}

fn run(bundle: &Path, id: &str) -> Result<u8, String> {
    let exe = InitExe::seal_current().map_err(|e| e.to_string())?;
    tent_runtime::set_child_subreaper().map_err(|e| e.to_string())?;
    let stdio = Stdio {
        stdin: dup(std::io::stdin()),
        stdout: dup(std::io::stdout()),
        stderr: dup(std::io::stderr()),
    };
    // tent's default profile, or `TENT_PROFILE=compat` for runc's behaviour.
    let profile = Profile {
        mode: match std::env::var("TENT_PROFILE").as_deref() {
            Ok("compat") => Mode::Compat,
            Ok("tent") | Err(_) => Mode::Tent,
            Ok(other) => {
                return Err(format!(
                    "TENT_PROFILE: unknown profile {other:?} (tent, compat)"
                ))
            }
        },
        ..Profile::default()
    };
    let mut c = Container::create(CreateRequest {
        id,
        bundle,
        rootfs_mounts: &[],
        stdio,
        init_exe: &exe,
        profile: &profile,
    })
    .map_err(|e| format!("create: {e}"))?;
    if let Err(e) = c.start() {
        let _ = c.destroy();
        return Err(format!("start: {e}"));
    }
    let code = loop {
        // Reap everything (stage 1 too); stop when the container init exits.
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == c.pid => break code as u8,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == c.pid => {
                break 128u8.wrapping_add(sig as u8)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                let _ = c.destroy();
                return Err(format!("wait: {e}"));
            }
        }
    };
    c.destroy().map_err(|e| format!("destroy: {e}"))?;
    Ok(code)
}

fn main() -> ExitCode {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: tent-runtime-run <bundle> <id>");
        return ExitCode::from(2);
    }
    match run(Path::new(&args[1]), &args[2]) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tent-runtime-run: {e}");
            ExitCode::from(125)
        }
    }
}
