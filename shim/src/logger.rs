//! `binary://` log URIs: containerd's logging-binary contract. The binary gets the
//! workload's stdout and stderr as fds 3 and 4, a readiness pipe as fd 5 (it closes
//! it when ready), `CONTAINER_ID` and `CONTAINER_NAMESPACE`, and the URI's query
//! parameters as arguments.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::{Error, Result};

/// fds below this are left alone when moving the child's fds into place.
const HIGH_FD: i32 = 16;

/// Who the streams belong to (`CONTAINER_ID`, `CONTAINER_NAMESPACE`).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub container_id: &'a str,
    pub namespace: &'a str,
}

/// Parsed `binary:///path?key=value&flag`.
#[derive(Debug, PartialEq, Eq)]
pub struct BinaryUri {
    pub path: String,
    pub args: Vec<String>,
}

pub fn parse(uri: &str) -> Result<BinaryUri> {
    let rest = uri
        .strip_prefix("binary://")
        .ok_or_else(|| Error::InvalidArgument(format!("log URI {uri}: not binary://")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "log URI {uri}: the logging binary must be an absolute path"
        )));
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(unescape(key));
        if !value.is_empty() {
            args.push(unescape(value));
        }
    }
    Ok(BinaryUri {
        path: unescape(path),
        args,
    })
}

/// Percent-decoding of URI components (`%2F` → `/`, `+` kept as is), on bytes: an
/// escape cut short or ending inside a UTF-8 character is kept as it is (slicing the
/// `str` there panicked, found by the hostile corpus: `--log-uri 'binary:///x?a=%aé'`).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) if b == b'%' => {
                out.push(v);
                rest = tail.get(2..).unwrap_or_default();
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("create logger pipe", e.into()))
}

/// A CLOEXEC duplicate at or above [`HIGH_FD`], so moving it to 3..5 never clobbers
/// another of the child's sources.
fn high(fd: &OwnedFd) -> Result<OwnedFd> {
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD))
        .map_err(|e| Error::io("duplicate logger fd", e.into()))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
}

/// Starts the logger and waits until it is ready; returns the write ends of the
/// workload's stdout and stderr.
pub fn spawn(uri: &str, owner: Owner<'_>) -> Result<(OwnedFd, OwnedFd)> {
    let target = parse(uri)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let sources = [high(&out_r)?, high(&err_r)?, high(&ready_w)?];
    let [a, b, c] = sources.each_ref().map(|fd| fd.as_raw_fd());
    let mut cmd = Command::new(&target.path);
    cmd.args(&target.args)
        .env("CONTAINER_ID", owner.container_id)
        .env("CONTAINER_NAMESPACE", owner.namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only dup2, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (src, dst) in [(a, 3), (b, 4), (c, 5)] {
                if libc::dup2(src, dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let spawned = {
        let _guard = tent_runtime::spawn_guard();
        cmd.spawn()
    };
    spawned.map_err(|e| Error::io(format!("start logging binary {}", target.path), e))?;
    drop(sources);
    drop((out_r, err_r, ready_w));
    // The logger closes fd 5 when it is ready to read (EOF here).
    let mut ready = std::fs::File::from(ready_r);
    let mut sink = [0u8; 64];
    loop {
        match ready.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::io(
                    format!("wait for logging binary {}", target.path),
                    e,
                ))
            }
        }
    }
    Ok((out_w, err_w))
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn unescape_keeps_what_is_not_an_escape() {
        assert_eq!(unescape("a%2Fb%3d"), "a/b=");
        assert_eq!(unescape("%aé"), "%aé");
        assert_eq!(unescape("%é1"), "%é1");
        assert_eq!(unescape("x%"), "x%");
        assert_eq!(unescape("%4"), "%4");
        assert_eq!(unescape("%+f"), "%+f");
        assert_eq!(unescape("ü%C3%BC"), "üü");
    }

    use super::*;

    #[test]
    fn parses_path_and_query_arguments() {
        let u = parse("binary:///usr/local/bin/log-to?level=debug&file=%2Ftmp%2Fx&verbose")
            .expect("valid");
        assert_eq!(u.path, "/usr/local/bin/log-to");
        assert_eq!(u.args, vec!["level", "debug", "file", "/tmp/x", "verbose"]);
        assert!(parse("binary://relative/path").is_err());
        assert!(parse("file:///x").is_err());
    }

    #[test]
    fn logger_receives_both_streams() {
        let dir = std::env::temp_dir().join(format!("tent-logger-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let out = dir.join("out");
        // A logger written in sh: copy fd 3 and 4 to a file, then signal readiness.
        let script = dir.join("logger.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec 5>&-\ncat <&3 > {out}.1 & cat <&4 > {out}.2 & wait\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE $1\" > {out}.env\n",
                out = out.display()
            ),
        )
        .expect("write logger");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let uri = format!("binary://{}?arg1", script.display());
        let (o, e) = spawn(
            &uri,
            Owner {
                container_id: "c1",
                namespace: "ns1",
            },
        )
        .expect("spawn");
        nix::unistd::write(&o, b"to-out").expect("write out");
        nix::unistd::write(&e, b"to-err").expect("write err");
        drop((o, e));
        let env_file = format!("{}.env", out.display());
        for _ in 0..100 {
            if std::path::Path::new(&env_file).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(
            std::fs::read_to_string(format!("{}.1", out.display())).expect("out"),
            "to-out"
        );
        assert_eq!(
            std::fs::read_to_string(format!("{}.2", out.display())).expect("err"),
            "to-err"
        );
        assert_eq!(
            std::fs::read_to_string(&env_file).expect("env").trim(),
            "c1 ns1 arg1"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
