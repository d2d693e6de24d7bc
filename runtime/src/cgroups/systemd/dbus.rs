//! A minimal, blocking D-Bus client for the few systemd manager calls tent
//! makes: the wire format (little endian, protocol version 1) for the handful
//! of types they use, SASL EXTERNAL authentication, and one call at a time on
//! a Unix socket. No threads, no async runtime, nothing kept open between
//! operations, so a shim that never meets systemd pays nothing for it.
//!
//! It connects to systemd's private socket (`/run/systemd/private`, root
//! only, no bus daemon in between), else to the system bus.

use std::io::{Read, Write as _};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::error::{Error, Result};

const PRIVATE: &str = "/run/systemd/private";
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
pub const DEST: &str = "org.freedesktop.systemd1";
pub const PATH: &str = "/org/freedesktop/systemd1";
pub const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// Replies over 64 MiB are refused (systemd's are a few hundred bytes).
const MAX_MESSAGE: usize = 64 << 20;

/// A property value, as the `v` of an `(sv)` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Bool(bool),
    U64(u64),
    /// `au`
    U32s(Vec<u32>),
    /// `ay`
    Bytes(Vec<u8>),
    /// `a(ss)`
    StrPairs(Vec<(String, String)>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Str(_) => "s",
            Value::Bool(_) => "b",
            Value::U64(_) => "t",
            Value::U32s(_) => "au",
            Value::Bytes(_) => "ay",
            Value::StrPairs(_) => "a(ss)",
        }
    }
}

/// Builds a message body; offsets are relative to the body, which starts
/// 8-aligned in the message, so alignment holds in the message too.
#[derive(Default)]
pub struct Body {
    pub buf: Vec<u8>,
}

impl Body {
    fn pad(&mut self, align: usize) {
        // Alignments are powers of two.
        while self.buf.len() & (align - 1) != 0 {
            self.buf.push(0);
        }
    }
    pub fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.u32(u32::from(v));
    }
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements are aligned to `align`; `f` writes them.
    pub fn array(&mut self, align: usize, f: impl FnOnce(&mut Body)) {
        self.u32(0);
        let len_at = self.buf.len() - 4;
        self.pad(align);
        let start = self.buf.len();
        f(self);
        let n = (self.buf.len() - start) as u32;
        if let Some(len) = self.buf.get_mut(len_at..len_at + 4) {
            len.copy_from_slice(&n.to_le_bytes());
        }
    }
    /// Starts a struct (8-aligned).
    pub fn begin_struct(&mut self) {
        self.pad(8);
    }
    pub fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        match v {
            Value::Str(s) => self.str(s),
            Value::Bool(b) => self.bool(*b),
            Value::U64(n) => self.u64(*n),
            Value::U32s(list) => self.array(4, |b| list.iter().for_each(|n| b.u32(*n))),
            Value::Bytes(bytes) => self.array(1, |b| b.buf.extend_from_slice(bytes)),
            Value::StrPairs(pairs) => self.array(8, |b| {
                for (k, v) in pairs {
                    b.begin_struct();
                    b.str(k);
                    b.str(v);
                }
            }),
        }
    }
    /// `a(sv)`: unit properties.
    pub fn properties(&mut self, props: &[(&str, Value)]) {
        self.array(8, |b| {
            for (name, v) in props {
                b.begin_struct();
                b.str(name);
                b.variant(v);
            }
        });
    }
}

/// A reply: its body and signature, or the D-Bus error it carried.
#[derive(Debug)]
pub struct Reply {
    pub signature: String,
    pub body: Vec<u8>,
}

/// A D-Bus error reply (`org.freedesktop.systemd1.NoSuchUnit`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbusError {
    pub name: String,
    pub message: String,
}

/// Reads values out of a received message.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bad(what: &str) -> Error {
        Error::Protocol(format!("systemd D-Bus: malformed reply ({what})"))
    }
    fn align(&mut self, a: usize) {
        self.pos = self.pos.div_ceil(a) * a;
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| Self::bad("truncated"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| Self::bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| Self::bad("truncated"))
    }
    fn u8(&mut self) -> Result<u8> {
        let [b] = self.take_array::<1>()?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4);
        Ok(u32::from_le_bytes(self.take_array()?))
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| Self::bad("string is not UTF-8"))
    }
    fn sig(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| Self::bad("signature is not UTF-8"))
    }
    /// A basic value of signature `sig` as text (`s`, `o`, `g`, `u`, `b`, `t`).
    fn basic(&mut self, sig: &str) -> Result<String> {
        match sig {
            "s" | "o" => self.str(),
            "g" => self.sig(),
            "u" | "b" => Ok(self.u32()?.to_string()),
            "t" => {
                self.align(8);
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_le_bytes(a).to_string())
            }
            other => Err(Self::bad(&format!("unexpected type {other:?}"))),
        }
    }
}

impl Reply {
    /// The first value of the body, when it is a string or object path.
    pub fn first_str(&self) -> Result<String> {
        let mut c = Cursor {
            buf: &self.body,
            pos: 0,
        };
        match self.signature.chars().next() {
            Some('s' | 'o') => c.str(),
            _ => Err(Error::Protocol(format!(
                "systemd D-Bus: expected a string reply, got signature {:?}",
                self.signature
            ))),
        }
    }
    /// The body `v` of a Properties.Get reply, as text.
    pub fn variant_text(&self) -> Result<String> {
        let mut c = Cursor {
            buf: &self.body,
            pos: 0,
        };
        if self.signature != "v" {
            return Err(Error::Protocol(format!(
                "systemd D-Bus: expected a variant, got signature {:?}",
                self.signature
            )));
        }
        let sig = c.sig()?;
        c.basic(&sig)
    }
}

/// One connection; calls are made one at a time.
pub struct Conn {
    sock: UnixStream,
    serial: u32,
    /// Through the bus daemon (needs a destination), or straight to systemd.
    bus: bool,
}

fn io_err(step: &'static str, e: std::io::Error) -> Error {
    Error::io(step, "systemd D-Bus", e)
}

/// True for a read or write that timed out (the caller may reconnect and retry).
pub fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

impl Conn {
    /// Connects and authenticates; `timeout` bounds every read and write.
    pub fn connect(timeout: Duration) -> Result<Conn> {
        let (sock, bus) = match UnixStream::connect(PRIVATE) {
            Ok(s) => (s, false),
            Err(first) => match UnixStream::connect(SYSTEM_BUS) {
                Ok(s) => (s, true),
                Err(_) => {
                    return Err(Error::io("connect", PRIVATE, first));
                }
            },
        };
        Conn::start(sock, bus, timeout)
    }

    /// Connects to a bus daemon's socket at `path` (tests).
    #[cfg(test)]
    fn connect_bus(path: &str, timeout: Duration) -> Result<Conn> {
        let sock = UnixStream::connect(path).map_err(|e| Error::io("connect", path, e))?;
        Conn::start(sock, true, timeout)
    }

    fn start(sock: UnixStream, bus: bool, timeout: Duration) -> Result<Conn> {
        sock.set_read_timeout(Some(timeout))
            .and_then(|()| sock.set_write_timeout(Some(timeout)))
            .map_err(|e| io_err("set timeout", e))?;
        let mut c = Conn {
            sock,
            serial: 0,
            bus,
        };
        c.auth()?;
        if c.bus {
            c.call_raw(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                "",
                &[],
            )?
            .map_err(|e| Error::Precondition(format!("D-Bus Hello: {}: {}", e.name, e.message)))?;
        }
        Ok(c)
    }

    /// SASL EXTERNAL: the kernel tells the server our uid (SO_PEERCRED).
    /// AUTH and BEGIN go out in one write, before the server's OK, as
    /// sd-bus's own clients send them: then the first message always comes
    /// in a later read. sd-bus's server does not parse a message that came
    /// in the same read as BEGIN until the connection wakes up for another
    /// reason; with an idle systemd, such a call got no reply at all.
    fn auth(&mut self) -> Result<()> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())
            .map_err(|e| io_err("write auth", e))?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(Error::Precondition(format!(
                "systemd D-Bus: authentication refused: {line:?}"
            )));
        }
        Ok(())
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 4096 {
                return Err(Error::Protocol("systemd D-Bus: auth line too long".into()));
            }
            self.sock
                .read_exact(&mut b)
                .map_err(|e| io_err("read auth", e))?;
            line.push(b[0]);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Calls a method of systemd's manager (or `path`/`iface`).
    pub fn call(
        &mut self,
        path: &str,
        iface: &str,
        member: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<std::result::Result<Reply, DbusError>> {
        self.call_raw(DEST, path, iface, member, signature, body)
    }

    fn call_raw(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<std::result::Result<Reply, DbusError>> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let msg = encode_call(
            serial,
            if self.bus { Some(dest) } else { None },
            path,
            iface,
            member,
            signature,
            body,
        );
        self.sock
            .write_all(&msg)
            .map_err(|e| io_err("write call", e))?;
        loop {
            let (kind, reply_to, fields, body) = self.read_message()?;
            if reply_to != Some(serial) || !(kind == 2 || kind == 3) {
                continue; // a signal or someone else's reply
            }
            if kind == 3 {
                let mut message = String::new();
                if fields.signature.starts_with('s') {
                    let mut c = Cursor { buf: &body, pos: 0 };
                    message = c.str().unwrap_or_default();
                }
                return Ok(Err(DbusError {
                    name: fields.error_name,
                    message,
                }));
            }
            return Ok(Ok(Reply {
                signature: fields.signature,
                body,
            }));
        }
    }

    /// One message: (type, reply serial, header fields, body).
    fn read_message(&mut self) -> Result<(u8, Option<u32>, Fields, Vec<u8>)> {
        let mut fixed = [0u8; 16];
        self.sock
            .read_exact(&mut fixed)
            .map_err(|e| io_err("read reply", e))?;
        if fixed[0] != b'l' {
            return Err(Error::Protocol(
                "systemd D-Bus: big-endian reply (not supported)".into(),
            ));
        }
        let body_len = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
        let fields_len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
        let header_end = (16 + fields_len).div_ceil(8) * 8;
        if header_end + body_len > MAX_MESSAGE {
            return Err(Error::Protocol("systemd D-Bus: reply too large".into()));
        }
        let mut rest = vec![0u8; header_end - 16 + body_len];
        self.sock
            .read_exact(&mut rest)
            .map_err(|e| io_err("read reply", e))?;
        let mut whole = fixed.to_vec();
        whole.extend_from_slice(&rest);
        let header = whole
            .get(..16 + fields_len)
            .ok_or_else(|| Error::Protocol("systemd D-Bus: truncated header fields".into()))?;
        let (reply_to, fields) = parse_fields(header)?;
        let body = whole.split_off(header_end);
        Ok((fixed[1], reply_to, fields, body))
    }
}

#[derive(Debug, Default)]
struct Fields {
    error_name: String,
    signature: String,
}

/// The header fields array (the message's first bytes, up to its end).
fn parse_fields(header: &[u8]) -> Result<(Option<u32>, Fields)> {
    let mut c = Cursor {
        buf: header,
        pos: 12,
    };
    let len = c.u32()? as usize;
    let end = c.pos + len;
    let mut reply_to = None;
    let mut f = Fields::default();
    while c.pos < end {
        c.align(8);
        if c.pos >= end {
            break;
        }
        let code = c.u8()?;
        let sig = c.sig()?;
        let v = c.basic(&sig)?;
        match code {
            4 => f.error_name = v,
            5 => reply_to = v.parse().ok(),
            8 => f.signature = v,
            _ => {}
        }
    }
    Ok((reply_to, f))
}

/// A METHOD_CALL message.
fn encode_call(
    serial: u32,
    dest: Option<&str>,
    path: &str,
    iface: &str,
    member: &str,
    signature: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = Body::default();
    m.buf.extend_from_slice(&[b'l', 1, 0, 1]);
    m.u32(body.len() as u32);
    m.u32(serial);
    let field = |m: &mut Body, code: u8, sig: &str, v: &str| {
        m.begin_struct();
        m.buf.push(code);
        m.sig(sig);
        if sig == "g" {
            m.sig(v)
        } else {
            m.str(v)
        }
    };
    m.array(8, |m| {
        field(m, 1, "o", path);
        field(m, 2, "s", iface);
        field(m, 3, "s", member);
        if let Some(d) = dest {
            field(m, 6, "s", d);
        }
        if !signature.is_empty() {
            field(m, 8, "g", signature);
        }
    });
    m.pad(8);
    m.buf.extend_from_slice(body);
    m.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_encoding() {
        let mut b = Body::default();
        b.properties(&[
            ("Delegate", Value::Bool(true)),
            ("PIDs", Value::U32s(vec![7])),
        ]);
        // Array length + pad to 8; struct 1: "Delegate", sig "b", u32 1, pad to 8;
        // struct 2: "PIDs", sig "au", pad to 4, array length 4, element 7.
        let expect: Vec<u8> = [
            &[48u8, 0, 0, 0, 0, 0, 0, 0][..],
            &[8, 0, 0, 0],
            b"Delegate\0",
            &[1, b'b', 0],
            &[1, 0, 0, 0],
            &[0, 0, 0, 0],
            &[4, 0, 0, 0],
            b"PIDs\0",
            &[2, b'a', b'u', 0],
            &[0, 0, 0],
            &[4, 0, 0, 0, 7, 0, 0, 0],
        ]
        .concat();
        assert_eq!(b.buf, expect);
    }

    #[test]
    fn call_header_round_trip() {
        let msg = encode_call(9, Some(DEST), PATH, MANAGER, "StopUnit", "ss", &[1, 2]);
        assert_eq!(&msg[..4], &[b'l', 1, 0, 1]);
        assert_eq!(msg.len() % 8, 2);
        let flen = u32::from_le_bytes([msg[12], msg[13], msg[14], msg[15]]) as usize;
        let (reply_to, f) = parse_fields(&msg[..16 + flen]).expect("fields");
        assert_eq!(reply_to, None);
        assert_eq!(f.signature, "ss");
        assert_eq!(&msg[msg.len() - 2..], &[1, 2]);
    }

    /// Against a real bus daemon whose socket TENT_DBUS_TEST_SOCKET names
    /// (`dbus-daemon --session --nofork --address=unix:path=…`): a reply and an error reply.
    #[test]
    #[ignore = "needs a bus daemon: TENT_DBUS_TEST_SOCKET=<socket> cargo test -- --ignored"]
    fn replies_from_a_bus_daemon() {
        let path = std::env::var("TENT_DBUS_TEST_SOCKET").expect("TENT_DBUS_TEST_SOCKET");
        let mut c = Conn::connect_bus(&path, Duration::from_secs(5)).expect("connect");
        let mut b = Body::default();
        b.str("org.example.nobody");
        let r = c
            .call_raw(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetNameOwner",
                "s",
                &b.buf,
            )
            .expect("call");
        let e = r.expect_err("no owner");
        assert_eq!(e.name, "org.freedesktop.DBus.Error.NameHasNoOwner", "{e:?}");
        let r = c
            .call_raw(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetId",
                "",
                &[],
            )
            .expect("call")
            .expect("GetId");
        assert_eq!(r.first_str().expect("id").len(), 32);
    }

    #[test]
    fn truncated_reply_is_an_error() {
        let r = Reply {
            signature: "s".into(),
            body: vec![10, 0, 0, 0, b'a'],
        };
        assert!(r.first_str().is_err());
        let r = Reply {
            signature: "v".into(),
            body: [&[1u8, b's', 0, 0, 6, 0, 0, 0][..], b"active\0"].concat(),
        };
        assert_eq!(r.variant_text().ok().as_deref(), Some("active"));
    }
}
