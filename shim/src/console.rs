//! Terminals: the runtime hands the shim the pty master; the shim copies it to the
//! stdout FIFO and the stdin FIFO into it, and resizes it on `ResizePty`.

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;

use crate::error::{Error, Result};
use crate::io::StdinCloser;
use crate::process::Process;

/// Starts copying between `master` and the process's FIFOs.
pub fn attach(process: &Process, master: OwnedFd) -> Result<()> {
    set_nonblocking(&master)?;
    // SAFETY: the AsyncFd owns `master` (an OwnedFd), so the fd stays open and the
    // same for the AsyncFd's whole life.
    let registered =
        unsafe { AsyncFd::register_with_interest(master, Interest::READABLE | Interest::WRITABLE) };
    let master =
        std::sync::Arc::new(registered.map_err(|e| Error::io("register pty master", e.into()))?);
    if !process.stdio.stdout.is_empty() {
        let out = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&process.stdio.stdout)
            .map_err(|e| Error::io(format!("open stdout {}", process.stdio.stdout), e))?;
        let done = process.expect_output();
        let master = master.clone();
        tokio::spawn(async move {
            copy_out(&master, out).await;
            done.send_replace(true);
        });
    }
    if !process.stdio.stdin.is_empty() {
        let input = pipe::OpenOptions::new()
            .open_receiver(&process.stdio.stdin)
            .map_err(|e| Error::io(format!("open stdin {}", process.stdio.stdin), e))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        process.set_stdin(Some(StdinCloser::new(tx)));
        tokio::spawn(copy_in(input, master.clone(), rx));
    }
    process.set_console(dup(&master)?);
    Ok(())
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::io("pty flags", e.into()))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::io("pty non-blocking", e.into()))?;
    Ok(())
}

fn dup(master: &AsyncFd<OwnedFd>) -> Result<OwnedFd> {
    master
        .get_ref()
        .try_clone()
        .map_err(|e| Error::io("duplicate pty master", e))
}

/// Master → stdout until the last slave closes (read gives EIO) or the FIFO breaks.
async fn copy_out(master: &AsyncFd<OwnedFd>, mut out: pipe::Sender) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match master.readable().await {
            Ok(mut guard) => match guard.try_io(|fd| read(fd.get_ref(), &mut buf)) {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return, // EIO: the terminal is closed
                Err(_would_block) => continue,
            },
            Err(_) => return,
        };
        if out
            .write_all(buf.get(..n).unwrap_or_default())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// stdin → master until EOF or `CloseIO` (then an EOT, so a shell sees end of input).
async fn copy_in(
    mut input: pipe::Receiver,
    master: std::sync::Arc<AsyncFd<OwnedFd>>,
    mut closed: tokio::sync::oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = &mut closed => break,
            r = input.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let mut written = 0;
        while written < n {
            match master.writable().await {
                Ok(mut guard) => match guard
                    .try_io(|fd| write(fd.get_ref(), buf.get(written..n).unwrap_or_default()))
                {
                    Ok(Ok(w)) => written += w,
                    Ok(Err(_)) => return crate::io::discard(input, closed, &mut buf).await,
                    Err(_would_block) => continue,
                },
                Err(_) => return crate::io::discard(input, closed, &mut buf).await,
            }
        }
    }
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    nix::unistd::read(fd, buf).map_err(std::io::Error::from)
}

fn write(fd: &OwnedFd, buf: &[u8]) -> std::io::Result<usize> {
    nix::unistd::write(fd, buf).map_err(std::io::Error::from)
}

/// `ResizePty`: TIOCSWINSZ on the master.
pub fn resize(master: &OwnedFd, width: u32, height: u32) -> Result<()> {
    let rows = u16::try_from(height)
        .map_err(|_| Error::InvalidArgument(format!("resize: height {height} too large")))?;
    let cols = u16::try_from(width)
        .map_err(|_| Error::InvalidArgument(format!("resize: width {width} too large")))?;
    Ok(tent_runtime::resize_console(master.as_fd(), rows, cols)?)
}
