//! Typed messages between the caller and the container init over a
//! `SOCK_SEQPACKET` socketpair: one JSON message per packet, fds via `SCM_RIGHTS`.
//! A failing init step arrives as [`Message::Error`] with its cause; EOF after
//! `Start` means the CLOEXEC socket was closed by a successful `execve`.
//!
//! A packet is bounded by the socket buffer (~200 KiB), a valid spec is not
//! (MiBs of env or annotations, thousands of mounts): a message larger than
//! [`INLINE_MAX`] travels as a sealed memfd instead ([`Message::Sealed`]),
//! transparently to both ends, so a config's size is bounded only by what
//! containerd accepts.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::confine::Confinement;
use crate::error::{Error, ErrorKind, Result};

/// Everything stage 1 needs. Stage 1 enters the cgroup itself (`cgroup_join`).
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub id: String,
    /// The bundle directory (relative bind sources are relative to it).
    pub bundle: String,
    /// The validated `config.json` text.
    pub spec: String,
    /// Host path of the container's root directory.
    pub rootfs: String,
    /// v1 hierarchies to bind for a `cgroup` mount (empty on v2).
    pub cgroup_v1: Vec<crate::cgroups::V1Bind>,
    pub cgroup_v2: bool,
    /// How stage 1 puts itself (v1) or stage 2 (v2) into the container's cgroup.
    pub cgroup_join: crate::cgroups::Join,
    /// Mount the rootfs `nosuid,nodev` (tent's profile).
    pub rootfs_nosuid_nodev: bool,
    /// How the workload is confined.
    pub confinement: Confinement,
}

/// Everything an exec's stage 1 needs. Attached fds: stdin, then one fd per
/// entry of `namespaces`, in that order.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The exec's `process` spec as JSON.
    pub process: String,
    /// Namespace kinds (`/proc/<pid>/ns/<kind>` names) of the attached fds.
    pub namespaces: Vec<String>,
    /// How the exec enters the container's cgroup (as for the init).
    pub cgroup_join: crate::cgroups::Join,
    /// The exec's confinement, derived from the container's.
    pub confinement: Confinement,
}

/// The job a pod helper gets over the sync channel (`pod.rs` sends it, `child/pod.rs`
/// runs it).
#[derive(Debug, Serialize, Deserialize)]
pub struct PodJob {
    pub ipc_pin: Option<PathBuf>,
    pub uts_pin: Option<PathBuf>,
    pub hostname: Option<String>,
    pub netns: Option<PathBuf>,
    pub sysctls: BTreeMap<String, String>,
    /// Fork a PID 1 in a new PID namespace.
    pub pid: bool,
}

/// A message on the sync channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Caller → stage 1, with the workload's stdin fd attached.
    Config(Box<InitConfig>),
    /// Caller → exec stage 1, with stdin and the init's namespace fds attached.
    Exec(Box<ExecConfig>),
    /// Stage 2 → caller: the pty master of a terminal process is attached.
    Console,
    /// Stage 1 → caller: host pid of stage 2, with a pidfd for it attached.
    Stage2Pid(i32),
    /// Stage 2 → caller: mounts are done; run the prestart and createRuntime
    /// hooks, then answer [`Message::HooksDone`] (only when the spec has hooks).
    Hooks,
    /// Caller → stage 2: the runtime's hooks ran; the init's host pid, for the
    /// state the container's own hooks get.
    HooksDone(i32),
    /// Caller → hook runner: run this hook; it answers `Ready` or `Error`.
    Hook(Box<crate::hooks::Job>),
    /// Caller → pod helper: create and pin these namespaces; it answers `Ready` or `Error`.
    Pod(Box<PodJob>),
    /// Pod helper → caller: the pod's namespaces are pinned and its init forked (host pid).
    PodInit(i32),
    /// Stage 2 → caller: set up, waiting for `Start`.
    Ready,
    /// Caller → stage 2: go ahead and `execve`.
    Start,
    /// Init → caller: a setup step failed.
    Error {
        step: String,
        cause: String,
        kind: ErrorKind,
    },
    /// A message of `len` bytes too large for one packet: its JSON is in the
    /// sealed memfd attached last.
    Sealed { len: usize },
}

/// Messages up to this size go inline; larger ones as a sealed memfd.
pub const INLINE_MAX: usize = 64 * 1024;

/// Seals that make a memfd's content immutable for the receiver.
fn content_seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Writes `buf` into a new memfd and seals it.
fn seal_into_memfd(buf: &[u8]) -> Result<OwnedFd> {
    let fd = memfd_create(
        "tent-sync",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| Error::sys("memfd_create for a large sync message", e))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(buf)
        .map_err(|e| Error::Protocol(format!("write a large message into its memfd: {e}")))?;
    let fd = OwnedFd::from(file);
    fcntl(
        &fd,
        FcntlArg::F_ADD_SEALS(content_seals() | SealFlag::F_SEAL_SEAL),
    )
    .map_err(|e| Error::sys("seal the memfd of a large sync message", e))?;
    Ok(fd)
}

/// Reads a [`Message::Sealed`] body, checking that nobody can still change it.
fn read_sealed(fd: &OwnedFd, len: usize) -> Result<Vec<u8>> {
    let seals = fcntl(fd, FcntlArg::F_GET_SEALS)
        .map_err(|e| Error::sys("get the seals of a large sync message", e))?;
    if !SealFlag::from_bits_truncate(seals).contains(content_seals()) {
        return Err(Error::Protocol("large message memfd is not sealed".into()));
    }
    let file = std::fs::File::from(
        fd.try_clone()
            .map_err(|e| Error::Protocol(format!("dup a large message memfd: {e}")))?,
    );
    // The length comes from the peer: it must be the memfd's, so a wrong one cannot make
    // us allocate more than the sender actually wrote.
    let size = file
        .metadata()
        .map_err(|e| Error::Protocol(format!("stat a large message memfd: {e}")))?
        .len();
    if u64::try_from(len).ok() != Some(size) {
        return Err(Error::Protocol(format!(
            "large message announced {len} bytes, its memfd has {size}"
        )));
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| Error::Protocol(format!("read a large message of {len} bytes: {e}")))?;
    Ok(buf)
}

/// One end of the sync channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

const MAX_FDS: usize = 16;

impl Channel {
    /// A connected pair; both ends are CLOEXEC.
    pub fn pair() -> Result<(Channel, OwnedFd)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::sys("socketpair for the sync channel", e))?;
        Ok((Channel { fd: a }, b))
    }

    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    /// Sends `msg` with `fds` attached (as a sealed memfd when it is large).
    pub fn send(&self, msg: &Message, fds: &[RawFd]) -> Result<()> {
        let buf = serde_json::to_vec(msg).map_err(|e| Error::Protocol(format!("encode: {e}")))?;
        if buf.len() <= INLINE_MAX {
            return self.send_packet(&buf, fds);
        }
        let memfd = seal_into_memfd(&buf)?;
        let header = serde_json::to_vec(&Message::Sealed { len: buf.len() })
            .map_err(|e| Error::Protocol(format!("encode: {e}")))?;
        let mut all: Vec<RawFd> = fds.to_vec();
        all.push(memfd.as_raw_fd());
        self.send_packet(&header, &all)
    }

    fn send_packet(&self, buf: &[u8], fds: &[RawFd]) -> Result<()> {
        if fds.len() > MAX_FDS {
            return Err(Error::Protocol(format!(
                "{} fds in one message (at most {MAX_FDS})",
                fds.len()
            )));
        }
        let iov = [IoSlice::new(buf)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("send on the sync channel", e)),
            }
        }
    }

    /// Receives one message and any fds attached; `None` at EOF.
    pub fn recv(&self) -> Result<Option<(Message, Vec<OwnedFd>)>> {
        let len = loop {
            let mut probe = [0u8; 1];
            let mut iov = [IoSliceMut::new(&mut probe)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                None,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Ok(r) => break r.bytes,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("receive on the sync channel", e)),
            }
        };
        let mut buf = vec![0u8; len.max(1)];
        let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (bytes, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_buf),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fds = Vec::new();
                    if let Ok(cmsgs) = r.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(raw) = c {
                                // SAFETY: the kernel just installed these fds for us.
                                fds.extend(
                                    raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }),
                                );
                            }
                        }
                    }
                    break (r.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("receive on the sync channel", e)),
            }
        };
        if bytes == 0 {
            return Ok(None);
        }
        let msg = decode(buf.get(..bytes).unwrap_or_default())?;
        let Message::Sealed { len } = msg else {
            return Ok(Some((msg, fds)));
        };
        let mut fds = fds;
        let memfd = fds
            .pop()
            .ok_or_else(|| Error::Protocol("large message came without its memfd".into()))?;
        let body = read_sealed(&memfd, len)?;
        match decode(&body)? {
            Message::Sealed { .. } => Err(Error::Protocol("nested large message".into())),
            msg => Ok(Some((msg, fds))),
        }
    }
}

/// Decodes one message's JSON (a packet, or a sealed memfd's body).
pub fn decode(bytes: &[u8]) -> Result<Message> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol(format!("decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_length_must_be_the_memfds() -> Result<()> {
        let (a, b) = Channel::pair()?;
        let b = Channel::from_fd(b);
        let memfd = seal_into_memfd(b"\"Ready\"")?;
        // A peer announcing more than it wrote must not make the receiver allocate it.
        a.send(&Message::Sealed { len: 1 << 40 }, &[memfd.as_raw_fd()])?;
        match b.recv() {
            Err(e) => assert!(e.to_string().contains("announced"), "{e}"),
            Ok(other) => panic!("accepted: {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn large_message_goes_through_a_sealed_memfd() -> Result<()> {
        let (a, b) = Channel::pair()?;
        let b = Channel::from_fd(b);
        let (_x, y) = Channel::pair()?;
        let cause = "x".repeat(4 << 20);
        let msg = Message::Error {
            step: "big".into(),
            cause: cause.clone(),
            kind: ErrorKind::Internal,
        };
        a.send(&msg, &[y.as_raw_fd()])?;
        match b.recv()? {
            Some((Message::Error { cause: got, .. }, fds)) => {
                assert_eq!(got.len(), cause.len());
                assert_eq!(fds.len(), 1, "the caller's fds arrive, the memfd does not");
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn unsealed_memfd_is_refused() -> Result<()> {
        let fd = memfd_create("t", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
            .map_err(|e| Error::sys("memfd", e))?;
        let e = read_sealed(&fd, 0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not sealed"), "{e}");
        Ok(())
    }

    #[test]
    fn roundtrip_with_fd() -> Result<()> {
        let (a, b) = Channel::pair()?;
        let b = Channel::from_fd(b);
        let (_x, y) = Channel::pair()?;
        a.send(&Message::Stage2Pid(42), &[y.as_raw_fd()])?;
        match b.recv()? {
            Some((Message::Stage2Pid(42), fds)) => assert_eq!(fds.len(), 1),
            other => panic!("unexpected {other:?}"),
        }
        drop(a);
        assert!(b.recv()?.is_none());
        Ok(())
    }
}
