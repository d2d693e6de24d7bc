//! Terminals: `ctr task exec -t` / `ctr run -t` under a pty the test drives: echo, resize
//! (SIGWINCH → ResizePty), ^C → SIGINT; ResizePty of a non-tty process (issue #3).
mod common;

use std::time::{Duration, Instant};

use common::{shim_resize, Pty, Running, T};
use tent_integration::{runtime, unique_id, Containerd, IMAGE};

/// Type `cmd` repeatedly until the output after it contains `want` (for state that changes
/// asynchronously, like the window size after SIGWINCH).
fn type_until(p: &mut Pty, cmd: &str, want: &str, timeout: Duration) {
    retype_until(p, cmd, want, timeout, |_| {})
}

/// [`type_until`] after a resize: before every retry ctr gets SIGWINCH again, as a terminal
/// sends it. ctr installs its SIGWINCH handler only after its initial ResizePty, so a resize
/// in that window is lost to ctr (seen once on 1.7 under load: the size stayed for 15 s);
/// what is checked is that a SIGWINCH ctr does see reaches the container's terminal.
fn type_until_resized(p: &mut Pty, want: &str, timeout: Duration) {
    retype_until(p, "stty size\r", want, timeout, |p| {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(p.child.id() as i32, libc::SIGWINCH) };
    })
}

fn retype_until(
    p: &mut Pty,
    cmd: &str,
    want: &str,
    timeout: Duration,
    before_retry: impl Fn(&Pty),
) {
    let t = Instant::now();
    let mut first = true;
    loop {
        if !first {
            before_retry(p);
        }
        first = false;
        let from = p.seen.len();
        p.write(cmd);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.expect_after(from, want, Duration::from_secs(2))
        }));
        if r.is_ok() {
            return;
        }
        assert!(
            t.elapsed() < timeout,
            "no {want:?} after typing {cmd:?} for {timeout:?}; output: {:?}",
            p.seen_str()
        );
    }
}

#[test]
fn exec_tty_echo_resize_and_ctrl_c() {
    let c = Containerd::shared();
    let r = Running::start(c, "tty-exec", &[]);
    let exec_id = unique_id("tx");
    let cmd = c.ctr_command(&["task", "exec", "-t", "--exec-id", &exec_id, &r.id, "sh"]);
    let mut p = Pty::spawn(cmd, 80, 24);
    let mut at = p.expect_after(0, "# ", T);

    // Typing: sh runs what was typed. Only the result is matched: busybox's line
    // editor may redraw the echoed line anywhere after an unanswered cursor query
    // (`echo tty-$((6\r/ # echo tty-$((6\x1b[J*7))`).
    p.write("echo tty-$((6*7))\r");
    at = p.expect_after(at, "tty-42", T);

    // It is a real terminal inside.
    p.write("tty; test -t 0 && echo is-a-tty\r");
    at = p.expect_after(at, "/dev/pts/", T);
    p.expect_after(at, "is-a-tty", T);

    // Initial size (ctr sends a resize right after start).
    type_until(&mut p, "stty size\r", "24 80", Duration::from_secs(10));

    // Resize our terminal: ctr gets SIGWINCH and forwards it as ResizePty.
    p.resize(100, 33);
    type_until_resized(&mut p, "33 100", Duration::from_secs(15));

    // ^C reaches the foreground job of the container's terminal as SIGINT.
    at = p.seen.len();
    p.write("sleep 100\r");
    // No sync on the echo (see above): give sh time to start the sleep.
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    p.write("\x03");
    p.write("echo rc=$?\r");
    p.expect_after(at, "rc=130", T);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "^C took {:?}",
        t.elapsed()
    );

    // Exit status of the tty exec reaches ctr.
    p.write("exit 3\r");
    let code = p.wait(T);
    assert_eq!(
        code,
        Some(3),
        "ctr task exec -t exit code; output: {:?}",
        p.seen_str()
    );
    r.assert_running();
    r.kill_and_check();
}

#[test]
fn run_tty_init_resize_and_exit() {
    let c = Containerd::shared();
    let id = unique_id("tty-run");
    let _g = common::Cleanup { c, id: id.clone() };
    let cmd = c.ctr_command(&[
        "run",
        "--rm",
        "-t",
        "--runtime",
        &runtime(),
        IMAGE,
        &id,
        "sh",
    ]);
    let mut p = Pty::spawn(cmd, 90, 30);
    let at = p.expect_after(0, "# ", T);
    p.write("echo init-$((2+3))\r");
    p.expect_after(at, "init-5", T);
    type_until(&mut p, "stty size\r", "30 90", Duration::from_secs(10));
    p.resize(120, 40);
    type_until_resized(&mut p, "40 120", Duration::from_secs(15));
    p.write("exit 5\r");
    let code = p.wait(T);
    assert_eq!(
        code,
        Some(5),
        "ctr run -t exit code; output: {:?}",
        p.seen_str()
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn resize_of_non_tty_process_is_harmless() {
    // ctr never sends ResizePty for a process without a terminal, so the test calls the shim's
    // Task API directly. runc's shim ignores it (returns OK); an error is acceptable too, but the
    // container must be unharmed.
    let c = Containerd::shared();
    let r = Running::start(c, "tty-noresize", &[]);
    let res = shim_resize(c, &r.id, "", 100, 40);
    eprintln!("ResizePty of a non-tty init: {res:?}");
    if let Err((code, msg)) = &res {
        assert!(!msg.is_empty(), "error without message (code {code})");
    }
    let res = shim_resize(c, &r.id, "no-such-exec", 100, 40);
    eprintln!("ResizePty of an unknown exec: {res:?}");
    let (_, msg) = res.expect_err("ResizePty of an unknown exec id must fail");
    assert!(
        msg.contains("no-such-exec") || msg.contains("not found"),
        "error should name the missing exec: {msg}"
    );
    r.assert_running();
    let x = r.exec(&[], &["echo", "ok"]);
    assert_eq!(x.stdout.trim(), "ok", "{x:#?}");
    r.kill_and_check();
}
