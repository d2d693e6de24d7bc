//! kubelet's streaming calls through containerd's CRI, on the handlers `tent` and `runc` in
//! the same run (`tent_integration::cri::on_each_handler`): the CRI call returns a URL on
//! containerd's streaming server, which the test speaks WebSocket to
//! (`tent_integration::stream`), as `kubectl exec/attach/port-forward` do through the API
//! server.
//! - Exec with a tty, 50 times in a row, every output complete, with a byte of stdin typed
//!   after the output (the `kubectl exec -it` race: an exec's stdin closed at its exit breaks
//!   containerd's copy and the output is torn down unread);
//! - Exec without a tty: stdout and stderr apart, the exit code from the error channel, stdin;
//! - Attach to a container with a tty (typing into its shell) and without (stdout and stderr
//!   apart), detaching leaves the container running;
//! - PortForward to a TCP echo server on 127.0.0.1 in the pod's network namespace.

use std::time::Duration;

use tent_integration::cri::*;
use tent_integration::stream::{Outcome, PortStream, Stream, STDIN};
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];
const T: Duration = Duration::from_secs(30);

fn exec_url(cri: &Cri, req: api::ExecRequest) -> String {
    cri.exec(req).unwrap_or_else(|e| panic!("Exec: {e}"))
}

fn exec_req(id: &str, cmd: &[&str], tty: bool, stdin: bool, stderr: bool) -> api::ExecRequest {
    api::ExecRequest {
        container_id: id.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr,
    }
}

/// containerd's own report of the `kubectl exec -it` race: it could not write the user's
/// input into an exec's stdin FIFO (the runtime closed it while the session was open), and
/// then tore the session's output down. With runc's shim (stdin open until Delete) there is
/// none.
const STDIN_BROKEN: [&str; 2] = [
    "Failed to redirect stdin for container exec",
    "Failed to pipe \"stdout\" for container exec",
];

/// Lines of `ctd`'s log past byte `from` that report a broken exec stream.
fn broken_stream_lines(ctd: &Containerd, from: usize) -> Vec<String> {
    let log = std::fs::read(ctd.log_path()).unwrap_or_default();
    String::from_utf8_lossy(log.get(from..).unwrap_or_default())
        .lines()
        .filter(|l| STDIN_BROKEN.iter().any(|m| l.contains(m)))
        .map(String::from)
        .collect()
}

/// Lines of output each tty exec prints.
const LINES: usize = 100;

/// 50 tty execs in a row in container `id`, each typed into while it prints and after it
/// exits; panics at the first one whose output is incomplete or whose status is wrong, and
/// returns the tags of those that ended with all output but no status.
fn tty_execs(cri: &Cri, id: &str, handler: &str, seq: usize) -> Vec<String> {
    let mut no_status = Vec::new();
    for i in 0..50 {
        let tag = format!("{seq}-{i}");
        // Output of a few KiB, then exit at once. The terminal does not echo (so typed bytes
        // cannot land inside a line of output).
        let script = format!(
            "stty -echo; echo begin-{tag}; n=0; while [ $n -lt {LINES} ]; do echo line-{tag}-$n; n=$((n+1)); done; echo end-{tag}"
        );
        let url = cri
            .exec(exec_req(id, &["sh", "-c", &script], true, true, false))
            .unwrap_or_else(|e| panic!("Exec #{tag}: {e}"));
        let mut s = Stream::connect(&url, "").unwrap_or_else(|e| panic!("#{tag}: {e}"));
        let _ = s.resize(120, 40);
        let mut out = Outcome::default();
        let begin = format!("begin-{tag}");
        s.read_until(&mut out, T, |o| o.stdout_str().contains(&begin))
            .unwrap_or_else(|e| {
                panic!(
                    "exec #{tag} on {handler}: {e}\n{}",
                    cri.containerd().log_tail(40)
                )
            });
        // A user typing while the command prints and right after it exits, until the session
        // ends: an exec's stdin closed at its exit makes these writes fail, and containerd
        // then tears the output down unread. A send may fail once the server closed the
        // session: what counts is that all output and the status arrived.
        let t = std::time::Instant::now();
        loop {
            let _ = s.send(STDIN, b"y");
            let closed = s
                .read_for(&mut out, Duration::from_millis(1))
                .unwrap_or_else(|e| panic!("exec #{tag}: {e}"));
            if closed {
                break;
            }
            assert!(
                t.elapsed() < T,
                "exec #{tag} on {handler}: the session did not end: {out:?}"
            );
        }
        let text = out.stdout_str();
        let missing: Vec<usize> = (0..LINES)
            .filter(|n| !text.contains(&format!("line-{tag}-{n}\r\n")))
            .collect();
        assert!(
            missing.is_empty() && text.contains(&format!("end-{tag}\r\n")),
            "exec #{tag} on {handler}: output incomplete, lines {missing:?} missing: {text:?}\n{}",
            cri.containerd().log_tail(20)
        );
        // A session that ends with all output but no status was seen once in 100 execs on
        // runc (CI, 2026-12-01) and once on tent (under load, 2026-12-02): the streaming
        // server's race, not a shim's. The caller bounds how often it may happen.
        match out.exit_code() {
            Some(0) => {}
            None => {
                eprintln!(
                    "exec #{tag} on {handler}: output complete, no status ({:?})\n{}",
                    String::from_utf8_lossy(&out.error),
                    cri.containerd().log_tail(10)
                );
                no_status.push(tag);
            }
            code => panic!(
                "exec #{tag} on {handler}: status {code:?} {:?}",
                String::from_utf8_lossy(&out.error)
            ),
        }
    }
    no_status
}

#[test]
fn exec_with_a_tty_50_times_in_a_row_every_output_complete() {
    // A daemon of its own: its log then speaks of this test's execs only.
    let ctd = Containerd::start();
    let ctd = &ctd;
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let log_from = std::fs::metadata(ctd.log_path()).map_or(0, |m| m.len() as usize);
        let mut pod = Pod::run(&cri, pod_config(ctd, "exec-tty"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let id = pod.run_container(&container_config("c", &WAIT));
        // Two users, each running 50 execs in a row, at the same time (two chances per
        // moment to hit the race; each sequence on its own CRI connection).
        std::thread::scope(|sc| {
            let runs: Vec<_> = (0..2)
                .map(|seq| {
                    let id = &id;
                    sc.spawn(move || tty_execs(&Cri::connect(ctd), id, handler, seq))
                })
                .collect();
            let mut no_status = Vec::new();
            for r in runs {
                match r.join() {
                    Ok(tags) => no_status.extend(tags),
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
            // Every status may not be lost: at most one of the 100 (the rare race above);
            // a shim that lost statuses would lose many.
            assert!(
                no_status.len() <= 1,
                "{handler}: {} of 2x50 tty execs ended without an exit status: {no_status:?}",
                no_status.len()
            );
        });
        let broken = broken_stream_lines(ctd, log_from);
        assert!(
            broken.is_empty(),
            "{handler}: containerd could not deliver typed input to {} of 2x50 execs and tore their streams down (the exec's stdin FIFO was closed while its session was open):\n{}",
            broken.iter().filter(|l| l.contains(STDIN_BROKEN[0])).count(),
            broken.join("\n")
        );
        // The container is unharmed by the execs.
        pod.wait_state(&id, ContainerState::ContainerRunning, Duration::ZERO);
        pod.remove();
    });
}

#[test]
fn exec_without_a_tty_separates_stdout_and_stderr_and_reports_the_exit_code() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "exec-pipes"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let id = pod.run_container(&container_config("c", &WAIT));

        let url = exec_url(
            &cri,
            exec_req(
                &id,
                &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
                false,
                false,
                true,
            ),
        );
        let mut s = Stream::connect(&url, "").unwrap_or_else(|e| panic!("{e}"));
        let mut out = Outcome::default();
        s.finish(&mut out, T).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.stdout_str(), "to-out\n", "{handler}: {out:?}");
        assert_eq!(out.stderr_str(), "to-err\n", "{handler}: {out:?}");
        assert_eq!(
            out.exit_code(),
            Some(3),
            "{handler}: status {:?}",
            String::from_utf8_lossy(&out.error)
        );

        // stdin reaches the process: it reads one line and answers.
        let url = exec_url(
            &cri,
            exec_req(&id, &["sh", "-c", "read l; echo got-$l"], false, true, true),
        );
        let mut s = Stream::connect(&url, "").unwrap_or_else(|e| panic!("{e}"));
        s.send(STDIN, b"hello\n").expect("stdin");
        let mut out = Outcome::default();
        s.finish(&mut out, T).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.stdout_str(), "got-hello\n", "{handler}: {out:?}");
        assert_eq!(out.stderr_str(), "", "{handler}: {out:?}");
        assert_eq!(out.exit_code(), Some(0), "{handler}: {out:?}");
        pod.remove();
    });
}

#[test]
fn attach_with_and_without_a_tty() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "attach"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        // With a tty: an interactive shell, typed into.
        let mut c = container_config("tty", &["sh"]);
        c.tty = true;
        c.stdin = true;
        let tty = pod.run_container(&c);
        // Without: a loop answering each line on stdout and on stderr.
        let mut c = container_config(
            "pipes",
            &[
                "sh",
                "-c",
                "while read l; do echo out-$l; echo err-$l >&2; done",
            ],
        );
        c.stdin = true;
        let pipes = pod.run_container(&c);

        let attach = |id: &str, tty: bool| {
            let url = cri
                .attach(api::AttachRequest {
                    container_id: id.to_string(),
                    stdin: true,
                    tty,
                    stdout: true,
                    stderr: !tty,
                })
                .unwrap_or_else(|e| panic!("Attach on {handler}: {e}"));
            Stream::connect(&url, "").unwrap_or_else(|e| panic!("attach: {e}"))
        };

        for round in 0..2 {
            let mut s = attach(&tty, true);
            s.send(
                STDIN,
                format!("echo attached-{round}-$((6*7))\n").as_bytes(),
            )
            .expect("stdin");
            let mut out = Outcome::default();
            let want = format!("attached-{round}-42");
            s.read_until(&mut out, T, |o| o.stdout_str().contains(&want))
                .unwrap_or_else(|e| panic!("{handler}: tty attach round {round}: {e}"));
            assert!(out.stdout_str().contains(&want), "{handler}: {out:?}");
            s.close();
        }
        pod.wait_state(&tty, ContainerState::ContainerRunning, Duration::ZERO);

        for round in 0..2 {
            let mut s = attach(&pipes, false);
            s.send(STDIN, format!("r{round}\n").as_bytes())
                .expect("stdin");
            let mut out = Outcome::default();
            let (o, e) = (format!("out-r{round}\n"), format!("err-r{round}\n"));
            s.read_until(&mut out, T, |x| {
                x.stdout_str().contains(&o) && x.stderr_str().contains(&e)
            })
            .unwrap_or_else(|err| panic!("{handler}: attach round {round}: {err}"));
            assert!(!out.stdout_str().contains("err-"), "{handler}: {out:?}");
            assert!(!out.stderr_str().contains("out-"), "{handler}: {out:?}");
            s.close();
        }
        pod.wait_state(&pipes, ContainerState::ContainerRunning, Duration::ZERO);
        // Both shells are PID 1 without a SIGTERM handler: a short grace period, not 10 s.
        for id in [&tty, &pipes] {
            pod.remove_container(id, 1)
                .unwrap_or_else(|e| panic!("{handler}: remove {id}: {e}"));
        }
        pod.remove();
    });
}

#[test]
fn port_forward_reaches_a_server_on_the_pods_loopback() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "port-forward"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let id = pod.run_container(&container_config(
            "echo",
            &["/bin/tent-testbin", "echo-server", "8080"],
        ));
        wait_listening(&pod, &id);
        for round in 0..3 {
            let url = cri
                .port_forward(&pod.id, &[8080])
                .unwrap_or_else(|e| panic!("PortForward on {handler}: {e}"));
            let mut p = PortStream::connect(&url, 8080)
                .unwrap_or_else(|e| panic!("{handler}: port-forward: {e}"));
            let msg = format!("hello-{round}-through-port-forward\n");
            p.send(msg.as_bytes()).expect("send");
            let got = p
                .read_exact(msg.len(), T)
                .unwrap_or_else(|e| panic!("{handler}: round {round}: {e}"));
            assert_eq!(String::from_utf8_lossy(&got), msg, "{handler}");
            p.close();
        }
        pod.remove();
    });
}

/// Wait until the echo server in `id` answers on the pod's loopback (from an exec).
#[track_caller]
fn wait_listening(pod: &Pod, id: &str) {
    let t = std::time::Instant::now();
    loop {
        let r = pod.exec(
            id,
            &["/bin/tent-testbin", "connect", "127.0.0.1:8080", "up"],
        );
        if r.exit_code == 0 && r.stdout == b"up" {
            return;
        }
        assert!(t.elapsed() < T, "echo server in {id} not answering: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
