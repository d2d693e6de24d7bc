//! A client of containerd's CRI streaming server (the URLs `Exec`, `Attach` and `PortForward`
//! return), speaking its WebSocket protocol, which is what kubelet's streaming server (vendored
//! by containerd) accepts besides SPDY:
//!
//! - remotecommand (exec, attach), subprotocol `v4.channel.k8s.io`: every binary message starts
//!   with a channel byte, 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON `metav1.Status` at the
//!   end: `Success`, or `Failure` with reason `NonZeroExitCode` and the code in
//!   `details.causes[{reason: "ExitCode", message: "<n>"}]`), 4 resize (JSON
//!   `{"Width":..,"Height":..}`). The server first sends an empty message on the lowest
//!   writable channel, then closes the socket when the process is done.
//! - portforward, same subprotocol, `?port=N` in the URL: channels `2i` (data) and `2i+1`
//!   (error) for the i-th port, each opened by a 2-byte little-endian port number from the
//!   server.
//!
//! Plain `ws://` on 127.0.0.1 (the test daemons' streaming server), blocking, with a read
//! timeout: a test that waits for output that never comes fails instead of hanging.
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocket;
use tungstenite::{Error as WsError, Message};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// The subprotocol kubectl speaks over WebSocket (the v4 error channel carries a Status).
pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// One WebSocket connection to a streaming URL.
pub struct Stream {
    ws: WebSocket<TcpStream>,
    closed: bool,
}

/// What a finished remotecommand session delivered.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The error channel's bytes (a JSON Status with v4).
    pub error: Vec<u8>,
    /// The server closed the socket (the session ended rather than timed out).
    pub closed: bool,
}

impl Outcome {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The exit code the error channel reports: 0 for `Success`, the `ExitCode` cause for
    /// `NonZeroExitCode`; `None` when no status (or another failure) arrived.
    pub fn exit_code(&self) -> Option<i32> {
        let v: serde_json::Value = serde_json::from_slice(&self.error).ok()?;
        if v["status"] == "Success" {
            return Some(0);
        }
        if v["reason"] != "NonZeroExitCode" {
            return None;
        }
        v["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse().ok())
    }
}

impl Stream {
    /// Open `url` (the `http://…` containerd returned, plus `query` such as `?port=80`) as a
    /// WebSocket with [`PROTOCOL`].
    pub fn connect(url: &str, query: &str) -> Result<Stream, String> {
        let ws_url = format!(
            "{}{query}",
            url.replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1)
        );
        let mut req = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("request for {ws_url}: {e}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            PROTOCOL.parse().map_err(|e| format!("header: {e}"))?,
        );
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| format!("no host in {ws_url}"))?;
        let tcp = TcpStream::connect(&host).map_err(|e| format!("connect {host}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("timeout: {e}"))?;
        let (ws, resp) =
            tungstenite::client::client(req, tcp).map_err(|e| format!("upgrade {ws_url}: {e}"))?;
        let proto = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if proto != PROTOCOL {
            return Err(format!(
                "{ws_url}: server chose subprotocol {proto:?}, not {PROTOCOL}"
            ));
        }
        Ok(Stream { ws, closed: false })
    }

    /// Send `data` on `channel`.
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), String> {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        self.ws
            .send(Message::Binary(frame.into()))
            .map_err(|e| format!("send on channel {channel}: {e}"))
    }

    /// Ask for a terminal size (resize channel).
    pub fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        let j = format!("{{\"Width\":{width},\"Height\":{height}}}");
        self.send(RESIZE, j.as_bytes())
    }

    /// The next data message: `Ok(Some((channel, bytes)))`, `Ok(None)` once the server closed
    /// the connection, `Err` on a time-out (`deadline`) or a protocol error.
    pub fn recv(&mut self, deadline: Instant) -> Result<Option<(u8, Vec<u8>)>, String> {
        loop {
            if self.closed {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for the streaming server".into());
            }
            let _ = self.ws.get_mut().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Binary(b)) => {
                    let Some((&ch, rest)) = b.split_first() else {
                        continue;
                    };
                    return Ok(Some((ch, rest.to_vec())));
                }
                Ok(Message::Text(t)) => return Err(format!("unexpected text message {t:?}")),
                Ok(Message::Close(_)) => {
                    self.closed = true;
                }
                Ok(_) => {}
                Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                    self.closed = true;
                }
                Err(WsError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timed out waiting for the streaming server".into());
                }
                // The server dropping the TCP connection after its last message also ends
                // the session (x/net/websocket does not always send a close frame).
                Err(WsError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    self.closed = true;
                }
                Err(WsError::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => {
                    self.closed = true;
                }
                Err(e) => return Err(format!("websocket read: {e}")),
            }
        }
    }

    /// Collect remotecommand output into `out` until `done(out)` holds (`Ok(true)`), the
    /// server closes (`Ok(false)`), or `timeout` passes (`Err`, with what arrived so far).
    pub fn read_until(
        &mut self,
        out: &mut Outcome,
        timeout: Duration,
        mut done: impl FnMut(&Outcome) -> bool,
    ) -> Result<bool, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(out) {
                return Ok(true);
            }
            match self.recv(deadline) {
                Ok(Some((ch, data))) => match ch {
                    STDOUT => out.stdout.extend_from_slice(&data),
                    STDERR => out.stderr.extend_from_slice(&data),
                    ERROR => out.error.extend_from_slice(&data),
                    other => return Err(format!("message on unexpected channel {other}")),
                },
                Ok(None) => {
                    out.closed = true;
                    return Ok(false);
                }
                Err(e) => {
                    return Err(format!(
                        "{e}; so far stdout {:?} stderr {:?} error {:?}",
                        out.stdout_str(),
                        out.stderr_str(),
                        String::from_utf8_lossy(&out.error)
                    ))
                }
            }
        }
    }

    /// Collect output for up to `d`: `Ok(true)` once the server closed the session, `Ok(false)`
    /// if it is still open after `d`.
    pub fn read_for(&mut self, out: &mut Outcome, d: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + d;
        loop {
            match self.recv(deadline) {
                Ok(Some((STDOUT, data))) => out.stdout.extend_from_slice(&data),
                Ok(Some((STDERR, data))) => out.stderr.extend_from_slice(&data),
                Ok(Some((ERROR, data))) => out.error.extend_from_slice(&data),
                Ok(Some((ch, _))) => return Err(format!("message on unexpected channel {ch}")),
                Ok(None) => {
                    out.closed = true;
                    return Ok(true);
                }
                Err(_) if Instant::now() >= deadline => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Read until the server closes the session.
    pub fn finish(&mut self, out: &mut Outcome, timeout: Duration) -> Result<(), String> {
        self.read_until(out, timeout, |_| false).map(|_| ())
    }

    /// Close our side (a client detaching).
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.closed {
            if !matches!(self.recv(deadline), Ok(Some(_))) {
                break;
            }
        }
    }
}

/// A port-forward connection to one port: [`PortStream::send`] / [`PortStream::read_exact`]
/// move the TCP bytes on the data channel.
pub struct PortStream {
    s: Stream,
    buf: Vec<u8>,
}

impl PortStream {
    /// Open a PortForward URL for `port` and read the two port-number preambles.
    pub fn connect(url: &str, port: u16) -> Result<PortStream, String> {
        let mut s = Stream::connect(url, &format!("?port={port}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = [false; 2];
        while !(seen[0] && seen[1]) {
            match s.recv(deadline)? {
                Some((ch @ (0 | 1), data)) => {
                    if data != port.to_le_bytes() {
                        return Err(format!(
                            "channel {ch} opened with {data:?}, not port {port} little-endian"
                        ));
                    }
                    seen[ch as usize] = true;
                }
                Some((ch, data)) => {
                    return Err(format!("preamble on channel {ch}: {data:?}"));
                }
                None => return Err("streaming server closed during the preamble".into()),
            }
        }
        Ok(PortStream { s, buf: Vec::new() })
    }

    pub fn send(&mut self, data: &[u8]) -> Result<(), String> {
        self.s.send(0, data)
    }

    /// Read exactly `n` bytes of the forwarded connection (an error-channel message fails).
    pub fn read_exact(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            match self.s.recv(deadline)? {
                Some((0, d)) => self.buf.extend_from_slice(&d),
                Some((1, d)) => {
                    return Err(format!(
                        "port-forward error: {}",
                        String::from_utf8_lossy(&d)
                    ))
                }
                Some((ch, _)) => return Err(format!("message on unexpected channel {ch}")),
                None => {
                    return Err(format!(
                        "closed after {} of {n} bytes: {:?}",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    pub fn close(self) {
        self.s.close();
    }
}
