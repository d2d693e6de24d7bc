//! `tent-testbin`: a tiny static helper that runs inside test containers.
//!
//! Built static (`RUSTFLAGS=-C target-feature=+crt-static`, x86_64-unknown-linux-gnu) and
//! copied into the test image as `/bin/tent-testbin` by `hack/build-image.sh --add`.
//!
//! Subcommands:
//! - `wait-term`            install a SIGTERM handler, print `ready`, wait; on SIGTERM print
//!   `got SIGTERM` and exit 42 (distinct from 143, the default action)
//! - `orphans N`            fork a child that forks N grandchildren (each sleeps 300 ms) and exits
//!   at once; as PID 1, reap every child with waitpid(-1), print
//!   `reaped K`, then `ready` and wait for SIGTERM (exit 0)
//! - `status`               print Cap*/Uid/Gid/Groups/NoNewPrivs from /proc/self/status, `Cwd:`,
//!   `Hostname:`, `Pid:` and /proc/self/limits
//! - `exit N`               exit with code N
//! - `pause`                print `ready` and wait for any signal without a handler
//! - `ignore-term`          ignore SIGTERM (SIG_IGN, also when not PID 1), print `ready`, wait
//! - `echo-server PORT`     listen on 127.0.0.1:PORT, print `listening`, echo every
//!   connection's bytes back as they arrive (one thread per connection); exit 0 on SIGTERM
//! - `connect ADDR MSG`     connect to ADDR (`host:port`), send MSG, shut down the write half,
//!   print what comes back until EOF
//! - `serve PORT FILE`      a minimal HTTP server on 127.0.0.1:PORT: each connection gets
//!   `200 OK` and FILE's bytes, read anew per request (`tent audit --observe` sees it opened);
//!   touches no other file
//! - `keyring`              print `keyring <serial> <description>` of the session keyring
//!   (`keyctl` DESCRIBE, without creating one), or `keyring error <errno>`
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static GOT_TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    GOT_TERM.store(true, Ordering::SeqCst);
}

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

fn install_term_handler() {
    // SAFETY: a plain sigaction with an async-signal-safe handler (one atomic store).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_term as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut()) != 0 {
            eprintln!("sigaction: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
    }
}

fn wait_for_term() -> ! {
    while !GOT_TERM.load(Ordering::SeqCst) {
        // SAFETY: pause() just waits for a signal.
        unsafe { libc::pause() };
    }
    say("got SIGTERM");
    std::process::exit(42);
}

fn orphans(n: u32) -> ! {
    install_term_handler();
    // SAFETY: single-threaded program; children only call async-signal-safe functions.
    let child = unsafe { libc::fork() };
    if child < 0 {
        eprintln!("fork: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    if child == 0 {
        for _ in 0..n {
            // SAFETY: as above.
            let g = unsafe { libc::fork() };
            if g == 0 {
                // SAFETY: usleep and _exit are async-signal-safe.
                unsafe {
                    libc::usleep(300_000);
                    libc::_exit(0);
                }
            }
        }
        // SAFETY: leave the grandchildren orphaned.
        unsafe { libc::_exit(0) };
    }
    let mut reaped = 0;
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r > 0 {
            reaped += 1;
            continue;
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break; // ECHILD: nothing left
    }
    say(&format!("reaped {reaped}"));
    say("ready");
    while !GOT_TERM.load(Ordering::SeqCst) {
        // SAFETY: as above.
        unsafe { libc::pause() };
    }
    std::process::exit(0);
}

fn status() {
    let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in st.lines() {
        let key = line.split(':').next().unwrap_or("");
        if key.starts_with("Cap")
            || matches!(
                key,
                "Uid" | "Gid" | "Groups" | "NoNewPrivs" | "Pid" | "Seccomp"
            )
        {
            say(line);
        }
    }
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("error {e}"));
    say(&format!("Cwd:\t{cwd}"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    say(&format!("Hostname:\t{}", host.trim()));
    // SAFETY: umask read-and-restore.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    say(&format!("Umask:\t{mask:04o}"));
    print!(
        "{}",
        std::fs::read_to_string("/proc/self/limits").unwrap_or_default()
    );
}

/// Tries the calls a seccomp profile is judged by and prints `name=result`
/// (`ok` or the errno): what tent's default filter must refuse.
fn syscalls() {
    let errno = |rc: libc::c_long| -> String {
        if rc >= 0 {
            "ok".into()
        } else {
            std::io::Error::last_os_error()
                .raw_os_error()
                .map_or("?".into(), |e| match e {
                    libc::EPERM => "EPERM".into(),
                    libc::ENOSYS => "ENOSYS".into(),
                    libc::EACCES => "EACCES".into(),
                    e => format!("errno{e}"),
                })
        }
    };
    // SAFETY: each call gets valid arguments or null pointers where the
    // kernel accepts them; results are only printed.
    unsafe {
        let r = libc::syscall(libc::SYS_socket, libc::AF_ALG, libc::SOCK_SEQPACKET, 0);
        say(&format!("socket_af_alg={}", errno(r)));
        let r = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
        say(&format!("socket_af_unix={}", errno(r)));
        let r = libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER);
        say(&format!("unshare_user={}", errno(r)));
        let r = libc::syscall(
            libc::SYS_keyctl,
            0 as libc::c_long,  // KEYCTL_GET_KEYRING_ID
            -3 as libc::c_long, // KEY_SPEC_SESSION_KEYRING
            0 as libc::c_long,
        );
        say(&format!("keyctl={}", errno(r)));
        // ptrace of another process (our parent's pid is outside the pid
        // namespace: use a child that stops itself).
        let child = libc::fork();
        if child == 0 {
            libc::pause();
            libc::_exit(0);
        }
        let r = libc::syscall(libc::SYS_ptrace, libc::PTRACE_ATTACH, child, 0, 0);
        say(&format!("ptrace_attach={}", errno(r)));
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        let r = libc::syscall(libc::SYS_getpid);
        say(&format!("getpid={}", errno(r)));
    }
}

fn ignore_term() -> ! {
    // SAFETY: setting a signal's disposition to SIG_IGN.
    if unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) } == libc::SIG_ERR {
        eprintln!("signal: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    say("ready");
    loop {
        // SAFETY: as above.
        unsafe { libc::pause() };
    }
}

/// A TCP echo server for the pod-network and PortForward tests. A SIGTERM handler is
/// installed first, so the server stops on StopContainer even as a container's PID 1.
fn echo_server(port: &str) -> ! {
    use std::io::Read;
    install_term_handler_exit0();
    let l = std::net::TcpListener::bind(format!("127.0.0.1:{port}")).unwrap_or_else(|e| {
        eprintln!("bind 127.0.0.1:{port}: {e}");
        std::process::exit(2);
    });
    say("listening");
    for conn in l.incoming() {
        let Ok(mut c) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    std::process::exit(0);
}

extern "C" fn exit0(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) };
}

fn install_term_handler_exit0() {
    // SAFETY: a plain sigaction with an async-signal-safe handler (_exit).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = exit0 as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut()) != 0 {
            eprintln!("sigaction: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
    }
}

fn connect(addr: &str, msg: &str) {
    use std::io::Read;
    let mut c = std::net::TcpStream::connect(addr).unwrap_or_else(|e| {
        eprintln!("connect {addr}: {e}");
        std::process::exit(2);
    });
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    if let Err(e) = c.write_all(msg.as_bytes()) {
        eprintln!("write to {addr}: {e}");
        std::process::exit(2);
    }
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    if let Err(e) = c.read_to_end(&mut got) {
        eprintln!("read from {addr}: {e}");
        std::process::exit(2);
    }
    let _ = std::io::stdout().write_all(&got);
}

/// `serve PORT FILE`: one request per connection, served in turn.
fn serve(port: &str, file: &str) {
    use std::io::Read;
    let l = match std::net::TcpListener::bind(format!("127.0.0.1:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tent-testbin serve: bind 127.0.0.1:{port}: {e}");
            std::process::exit(2);
        }
    };
    say("ready");
    for conn in l.incoming() {
        let Ok(mut c) = conn else { continue };
        let mut req = [0u8; 1024];
        let _ = c.read(&mut req);
        let (status, body) = match std::fs::read(file) {
            Ok(b) => ("200 OK", b),
            Err(e) => ("404 Not Found", format!("{file}: {e}\n").into_bytes()),
        };
        let _ = write!(
            c,
            "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = c.write_all(&body);
    }
}

/// The session keyring: `KEYCTL_GET_KEYRING_ID(KEY_SPEC_SESSION_KEYRING, create = 0)`, then
/// `KEYCTL_DESCRIBE` (`type;uid;gid;perm;description`).
fn keyring() {
    const GET_KEYRING_ID: libc::c_long = 0;
    const DESCRIBE: libc::c_long = 6;
    const SESSION: libc::c_long = -3;
    // SAFETY: keyctl with integer arguments.
    let serial = unsafe { libc::syscall(libc::SYS_keyctl, GET_KEYRING_ID, SESSION, 0) };
    if serial < 0 {
        say(&format!(
            "keyring error {}",
            std::io::Error::last_os_error()
        ));
        std::process::exit(1);
    }
    let mut buf = [0u8; 512];
    // SAFETY: the kernel writes at most buf.len() bytes.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            DESCRIBE,
            serial,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        say(&format!(
            "keyring error {}",
            std::io::Error::last_os_error()
        ));
        std::process::exit(1);
    }
    let text = String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())]);
    say(&format!("keyring {serial} {}", text.trim_end_matches('\0')));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "wait-term" => {
            install_term_handler();
            say("ready");
            wait_for_term();
        }
        "orphans" => orphans(arg(2).parse().unwrap_or(3)),
        "status" => status(),
        "syscalls" => syscalls(),
        "exit" => std::process::exit(arg(2).parse().unwrap_or(1)),
        "ignore-term" => ignore_term(),
        "echo-server" => echo_server(arg(2)),
        "connect" => connect(arg(2), arg(3)),
        "pause" => {
            say("ready");
            loop {
                // SAFETY: as above.
                unsafe { libc::pause() };
            }
        }
        "serve" => serve(arg(2), arg(3)),
        "keyring" => keyring(),
        other => {
            eprintln!("tent-testbin: unknown subcommand '{other}' (wait-term|orphans N|status|syscalls|exit N|pause|ignore-term|echo-server PORT|connect ADDR MSG|serve PORT FILE|keyring)");
            std::process::exit(2);
        }
    }
}
