//! `tent-pause`: the process of a pod's sandbox container (the image
//! `docker.io/library/tent-test:pause`, built by `hack/build-image.sh`).
//!
//! It exists only to hold the pod's namespaces: it sleeps in `sigwaitinfo`, reaps
//! whatever is re-parented to it (as PID 1 of a shared pid namespace it inherits the
//! pod's orphans), and exits 0 on SIGTERM or SIGINT, which is what containerd's CRI
//! sends at StopPodSandbox. No allocation, no threads, no files: a few pages of RSS.
//!
//! Signals are blocked and taken synchronously, so PID 1's default-ignore rule for
//! unhandled signals does not matter and no handler runs async code.

fn main() {
    if std::env::args_os().len() > 1 {
        eprintln!("tent-pause: takes no arguments (it holds a pod's namespaces until SIGTERM)");
        std::process::exit(2);
    }
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t; single-threaded.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            eprintln!("tent-pause: sigprocmask: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
        loop {
            let sig = libc::sigwaitinfo(&set, std::ptr::null_mut());
            match sig {
                libc::SIGTERM | libc::SIGINT => std::process::exit(0),
                libc::SIGCHLD => reap(),
                // EINTR (a stop/continue): wait again.
                _ => {}
            }
        }
    }
}

/// Collects every exited child; the pod's orphans end here when it shares its pid namespace.
fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}
