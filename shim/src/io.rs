//! Standard streams: containerd hands the shim FIFO paths (or `file://` URIs).
//! stdout and stderr go straight to the workload (no copying through the shim, so
//! output is complete when the process exits). stdin goes through a pipe the shim
//! feeds, because containerd's clients close stdin with `CloseIO`, and a FIFO whose
//! writer already came and went would otherwise never give the workload EOF.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use tent_runtime::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::logger::{self, Owner};

/// What containerd asked for.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    /// runc's `IoUid`/`IoGid`: the owner the stdio pipes get, so a workload that
    /// is not root can reopen `/proc/self/fd/1`.
    pub owner: Option<(u32, u32)>,
}

/// Closes the workload's stdin when dropped or when [`StdinCloser::close`] is called.
#[derive(Debug)]
pub struct StdinCloser(Option<oneshot::Sender<()>>);

impl StdinCloser {
    pub fn new(tx: oneshot::Sender<()>) -> Self {
        StdinCloser(Some(tx))
    }

    pub fn close(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The opened streams of one process.
pub struct Opened {
    pub stdio: Stdio,
    pub stdin: Option<StdinCloser>,
    /// The shim's own handles on the output FIFOs: they keep written output alive
    /// until containerd's reader has drained it (see [`drain`]).
    pub held: Vec<OwnedFd>,
}

/// Opens the three streams. `stdin_fifo`: the stdin FIFO if it was opened earlier
/// (see [`open_stdin_fifo`]).
pub fn open(
    paths: &StdioPaths,
    owner: Owner<'_>,
    stdin_fifo: Option<pipe::Receiver>,
) -> Result<Opened> {
    let (stdin, closer) = if paths.stdin.is_empty() {
        (None, None)
    } else {
        let fifo = match stdin_fifo {
            Some(fifo) => fifo,
            None => open_stdin_fifo(&paths.stdin)?,
        };
        let (read_end, closer) = feed_stdin(fifo)?;
        (Some(read_end), Some(closer))
    };
    let (stdout, stderr) = if paths.stdout.starts_with("binary://") {
        let (out, err) = logger::spawn(&paths.stdout, owner)?;
        (Some(out), Some(err))
    } else {
        (
            open_output("stdout", &paths.stdout)?,
            open_output("stderr", &paths.stderr)?,
        )
    };
    let mut held = Vec::new();
    for (fd, uri) in [(&stdout, &paths.stdout), (&stderr, &paths.stderr)] {
        if let (Some(fd), true) = (fd, is_fifo(uri)) {
            held.push(
                fd.try_clone()
                    .map_err(|e| Error::io(format!("hold {uri}"), e))?,
            );
        }
    }
    let stdio = Stdio {
        stdin,
        stdout,
        stderr,
    };
    if let Some((uid, gid)) = paths.owner {
        for fd in [&stdio.stdin, &stdio.stdout, &stdio.stderr]
            .into_iter()
            .flatten()
        {
            chown_pipe(fd, uid, gid)?;
        }
    }
    Ok(Opened {
        stdio,
        stdin: closer,
        held,
    })
}

/// Gives a pipe or FIFO the workload's owner (as runc's shim does for its pipes);
/// regular log files keep theirs.
fn chown_pipe(fd: &OwnedFd, uid: u32, gid: u32) -> Result<()> {
    let stat = nix::sys::stat::fstat(fd).map_err(|e| Error::io("stat stdio", e.into()))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Ok(());
    }
    nix::unistd::fchown(
        fd,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| {
        Error::io(
            format!("chown stdio pipe to IoUid {uid} IoGid {gid}"),
            e.into(),
        )
    })
}

fn is_fifo(uri: &str) -> bool {
    !uri.is_empty() && (!uri.contains("://") || uri.starts_with("fifo://"))
}

/// Waits (bounded) until nothing written to the held output FIFOs is left unread,
/// then closes them. A FIFO's buffered data dies with its last open fd, and the
/// workload's fds close at exit, maybe before containerd's reader has opened its end.
pub async fn drain(held: Vec<OwnedFd>, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    for fd in held {
        while unread(&fd) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// Bytes buffered in a pipe (FIONREAD).
fn unread(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        0
    } else {
        n
    }
}

/// Opens the read end of a stdin FIFO, non-blocking: epoll reports neither data nor
/// hang-up until a writer has appeared, so an absent writer never looks like EOF.
///
/// For an exec the shim calls this already at `Exec`, not at `Start`: a client such as
/// `ctr` opens the write end with a blocking `open()` before it sends `Exec`, and Go's
/// scheduler then stalls `ctr` for up to ~15 ms until some reader appears. The same
/// fd must then be the one that is read: a reader opened after the writer has come
/// and gone would never see the hang-up, and stdin would never end.
pub fn open_stdin_fifo(path: &str) -> Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(|e| Error::io(format!("open stdin {path}"), e))
}

/// Starts copying the stdin FIFO into a pipe; returns the pipe's read end for the
/// workload.
fn feed_stdin(fifo: pipe::Receiver) -> Result<(OwnedFd, StdinCloser)> {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("create stdin pipe", e.into()))?;
    let sender =
        pipe::Sender::from_owned_fd(write_end).map_err(|e| Error::io("register stdin pipe", e))?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(copy_stdin(fifo, sender, rx));
    Ok((read_end, StdinCloser(Some(tx))))
}

async fn copy_stdin(
    mut fifo: pipe::Receiver,
    mut sink: pipe::Sender,
    mut closed: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Only the read races CloseIO (a read that did not complete consumed nothing);
        // bytes once read are always written, so no input is lost mid-copy.
        let n = tokio::select! {
            _ = &mut closed => {
                // CloseIO means "no more input": what the client wrote before it
                // still belongs to the workload (it may already sit in the FIFO).
                drain_stdin(&fifo, &mut sink, &mut buf).await;
                break;
            }
            r = fifo.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    log::debug!("stdin copy ended: {e}");
                    break;
                }
            },
        };
        if let Err(e) = sink.write_all(buf.get(..n).unwrap_or_default()).await {
            log::debug!("stdin: the workload stopped reading ({e}); discarding until Delete");
            discard(fifo, closed, &mut buf).await;
            return;
        }
    }
    // Dropping `sink` closes the pipe: the workload reads EOF.
}

/// Reads and drops input nobody can read any more (the workload closed its stdin or
/// exited), keeping the FIFO open until CloseIO or Delete: a client that still
/// writes must not get EPIPE (runc's shim keeps the pipe open the same way).
pub(crate) async fn discard<R: AsyncReadExt + Unpin>(
    mut input: R,
    mut closed: oneshot::Receiver<()>,
    buf: &mut [u8],
) {
    loop {
        tokio::select! {
            _ = &mut closed => return,
            r = input.read(buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}

/// Copies what is buffered in the stdin FIFO right now, without waiting for more.
async fn drain_stdin(fifo: &pipe::Receiver, sink: &mut pipe::Sender, buf: &mut [u8]) {
    use std::os::fd::AsFd;
    loop {
        // A plain non-blocking read: tokio's readiness may not have caught up yet.
        match nix::unistd::read(fifo.as_fd(), buf).map_err(std::io::Error::from) {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = sink.write_all(buf.get(..n).unwrap_or_default()).await {
                    log::debug!("stdin copy ended: {e}");
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Opens an output stream: a FIFO read-write (never blocks, never SIGPIPEs the
/// workload if containerd restarts), or a `file://` URI for appending.
fn open_output(name: &str, uri: &str) -> Result<Option<OwnedFd>> {
    if uri.is_empty() {
        return Ok(None);
    }
    let file: File = if let Some(path) = uri.strip_prefix("file://") {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(format!("open {name} log file {path}"), e))?
    } else if let Some((scheme, _)) = uri.split_once("://") {
        if scheme != "fifo" {
            return Err(Error::Unimplemented(format!(
                "{name} log URI scheme {scheme}://"
            )));
        }
        open_fifo(name, &uri[7..])?
    } else {
        open_fifo(name, uri)?
    };
    Ok(Some(OwnedFd::from(file)))
}

fn open_fifo(name: &str, path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(format!("open {name} {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn io_uid_and_gid_own_the_pipes_but_not_log_files() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("tent-io-owner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        for name in ["stdin", "stdout"] {
            nix::unistd::mkfifo(&dir.join(name), mode).expect("mkfifo");
        }
        let log = dir.join("err.log");
        let paths = StdioPaths {
            stdin: dir.join("stdin").display().to_string(),
            stdout: dir.join("stdout").display().to_string(),
            stderr: format!("file://{}", log.display()),
            terminal: false,
            owner: Some((4321, 8765)),
        };
        let owner = Owner {
            container_id: "c1",
            namespace: "ns",
        };
        let opened = open(&paths, owner, None).expect("open");
        let owner_of = |fd: &Option<OwnedFd>| {
            let st = nix::sys::stat::fstat(fd.as_ref().expect("a stream")).expect("fstat");
            (st.st_uid, st.st_gid)
        };
        assert_eq!(owner_of(&opened.stdio.stdin), (4321, 8765), "stdin pipe");
        assert_eq!(owner_of(&opened.stdio.stdout), (4321, 8765), "stdout FIFO");
        let meta = std::fs::metadata(&log).expect("log file");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            "a log file keeps its owner"
        );
        drop(opened);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn file_uri_is_created_and_other_schemes_are_refused() {
        let dir = std::env::temp_dir().join(format!("tent-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let log = dir.join("out.log");
        let uri = format!("file://{}", log.display());
        assert!(open_output("stdout", &uri).expect("file uri").is_some());
        assert!(log.exists());
        let err = open_output("stdout", "tcp://127.0.0.1:1").expect_err("tcp");
        assert!(err.to_string().contains("tcp://"), "{err}");
        assert!(open_output("stdout", "").expect("empty").is_none());
        let err = open_output("stderr", "/nonexistent/dir/fifo").expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/dir/fifo"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
