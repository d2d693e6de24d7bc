//! Log URIs: `binary://` logger (fd 3/4/5 protocol, CONTAINER_ID/CONTAINER_NAMESPACE env) and
//! `file://` (issue #3).
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{wait_until, T};
use tent_integration::{processes, unique_id, Containerd, RunOpts, NAMESPACE};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn binary_logger_gets_stdout_stderr_and_env() {
    let c = Containerd::shared();
    let id = unique_id("log-bin");
    let _g = common::Cleanup { c, id: id.clone() };
    let d = c.dir().join(format!("logger-{id}"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let script = d.join("logger.sh");
    // The cats must not inherit fd 5 (the "ready" pipe), or the shim waits for them.
    std::fs::write(
        &script,
        r#"#!/bin/sh
d="$2"
printf '%s\n' "$@" > "$d/args"
env > "$d/env"
cat <&3 > "$d/out" 5>&- &
cat <&4 > "$d/err" 5>&- &
exec 5>&-
wait
"#,
    )
    .expect("write logger");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let uri = format!("binary://{}?dir={}", script.display(), d.display());
    let r = c.run(
        &id,
        &[
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; echo more-out; exit 4",
        ],
        &RunOpts::default().flag("--log-uri").flag(uri.clone()),
    );
    assert_eq!(r.code, Some(4), "{r:#?}");
    assert!(
        !r.stdout.contains("to-stdout"),
        "output went to ctr, not the logger: {r:#?}"
    );
    // The logger finishes when the container's streams close (runc's shim also sends it
    // SIGTERM then); the cats write as data arrives.
    wait_until(
        &format!("logger wrote {}/out and err (ctr: {r:?})", d.display()),
        T,
        || {
            (read(&d.join("out")) == "to-stdout\nmore-out\n"
                && read(&d.join("err")) == "to-stderr\n")
                .then_some(())
        },
    );
    assert_eq!(
        read(&d.join("out")),
        "to-stdout\nmore-out\n",
        "stdout via fd 3"
    );
    assert_eq!(read(&d.join("err")), "to-stderr\n", "stderr via fd 4");
    let args: Vec<String> = read(&d.join("args")).lines().map(String::from).collect();
    assert_eq!(
        args,
        ["dir".to_string(), d.display().to_string()],
        "logger args from the URI query"
    );
    let env = read(&d.join("env"));
    assert!(
        env.lines().any(|l| l == format!("CONTAINER_ID={id}")),
        "env:\n{env}"
    );
    assert!(
        env.lines()
            .any(|l| l == format!("CONTAINER_NAMESPACE={NAMESPACE}")),
        "env:\n{env}"
    );
    // No logger process left behind.
    let s = script.display().to_string();
    wait_until("logger process gone", Duration::from_secs(10), || {
        (!processes().iter().any(|(_, cmd)| cmd.contains(&s))).then_some(())
    });
    c.assert_no_leftovers(&id);
}

#[test]
fn binary_logger_that_fails_is_an_error() {
    let c = Containerd::shared();
    let id = unique_id("log-bin-bad");
    let _g = common::Cleanup { c, id: id.clone() };
    let uri = format!("binary://{}/no-such-logger", c.dir().display());
    let r = c.run(
        &id,
        &["echo", "hi"],
        &RunOpts::default().flag("--log-uri").flag(uri),
    );
    eprintln!("missing logger: {r:?}");
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stderr.contains("no-such-logger"),
        "error should name the logger: {r:#?}"
    );
    c.assert_no_leftovers(&id);
}

#[test]
fn file_log_uri_gets_stdout_and_stderr() {
    let c = Containerd::shared();
    let id = unique_id("log-file");
    let _g = common::Cleanup { c, id: id.clone() };
    let f = c.dir().join(format!("{id}.log"));
    let uri = format!("file://{}", f.display());
    let r = c.run(
        &id,
        &["sh", "-c", "echo file-out; echo file-err >&2"],
        &RunOpts::default().flag("--log-uri").flag(uri),
    );
    r.assert_ok();
    assert!(!r.stdout.contains("file-out"), "{r:#?}");
    wait_until(&format!("{} has both lines", f.display()), T, || {
        let s = read(&f);
        (s.contains("file-out\n") && s.contains("file-err\n")).then_some(())
    });
    let s = read(&f);
    assert_eq!(s.lines().count(), 2, "log file:\n{s}");
    c.assert_no_leftovers(&id);
}

#[test]
fn exec_with_file_log_uri() {
    let c = Containerd::shared();
    let r = common::Running::start(c, "log-exec", &[]);
    let f = c.dir().join(format!("{}-exec.log", r.id));
    let uri = format!("file://{}", f.display());
    let x = r.exec(
        &["--log-uri", &uri],
        &["sh", "-c", "echo exec-out; echo exec-err >&2"],
    );
    x.assert_ok();
    wait_until(&format!("{} has both lines", f.display()), T, || {
        let s = read(&f);
        (s.contains("exec-out\n") && s.contains("exec-err\n")).then_some(())
    });
    r.kill_and_check();
}
