//! `RawConn`: a blocking TCP connection that sends bytes and reads exactly one RESP reply at a
//! time, byte for byte, so tests can compare what a server really wrote.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::resp::{encode_command, escape, reply_len, ProtocolError};

/// How long `read_reply` waits for a complete reply before giving up.
pub const REPLY_TIMEOUT_MS_DEFAULT: u64 = 5_000;
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a reply could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection; `partial` holds bytes of an unfinished reply.
    Closed {
        partial: Vec<u8>,
    },
    /// No complete reply within the timeout; `partial` holds what did arrive.
    Timeout {
        partial: Vec<u8>,
    },
    /// The bytes are not RESP.
    Protocol {
        error: ProtocolError,
        buffered: Vec<u8>,
    },
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed { partial } => {
                write!(
                    f,
                    "connection closed by server (partial reply: \"{}\")",
                    escape(partial)
                )
            }
            ReadError::Timeout { partial } => {
                write!(
                    f,
                    "timed out waiting for a reply (partial reply: \"{}\")",
                    escape(partial)
                )
            }
            ReadError::Protocol { error, buffered } => {
                write!(f, "{error} (buffered: \"{}\")", escape(buffered))
            }
            ReadError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// A raw RESP connection to `127.0.0.1:port`.
pub struct RawConn {
    stream: TcpStream,
    port: u16,
    buf: Vec<u8>,
    timeout: Duration,
}

impl RawConn {
    /// Connects or panics with the reason.
    pub fn connect(port: u16) -> RawConn {
        Self::try_connect(port).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
    }

    pub fn try_connect(port: u16) -> io::Result<RawConn> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            port,
            buf: Vec::new(),
            timeout: Duration::from_millis(REPLY_TIMEOUT_MS_DEFAULT),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets how long `read_reply`/`cmd` wait for one reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Writes `bytes` as is (panics on a write error).
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("write to 127.0.0.1:{}: {e}", self.port));
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends a command as a RESP multibulk without reading the reply.
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.send(&encode_command(args));
    }

    /// Reads exactly one complete reply (panics with a clear message on timeout/close/garbage).
    pub fn read_reply(&mut self) -> Vec<u8> {
        let timeout = self.timeout;
        self.read_reply_within(timeout)
            .unwrap_or_else(|e| panic!("reading a reply from 127.0.0.1:{}: {e}", self.port))
    }

    /// Reads exactly one complete reply or says why not.
    pub fn try_read_reply(&mut self) -> Result<Vec<u8>, ReadError> {
        let timeout = self.timeout;
        self.read_reply_within(timeout)
    }

    /// Reads exactly one complete reply, waiting at most `timeout`. Bytes after the reply stay
    /// buffered for the next call.
    pub fn read_reply_within(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        loop {
            match reply_len(&self.buf) {
                Ok(Some(n)) => return Ok(self.buf.drain(..n).collect()),
                Ok(None) => {}
                Err(error) => {
                    return Err(ReadError::Protocol {
                        error,
                        buffered: std::mem::take(&mut self.buf),
                    })
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::Timeout {
                    partial: self.buf.clone(),
                });
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(ReadError::Io)?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(ReadError::Closed {
                        partial: std::mem::take(&mut self.buf),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ReadError::Timeout {
                        partial: self.buf.clone(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ReadError::Closed {
                        partial: std::mem::take(&mut self.buf),
                    })
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Sends one command and returns its raw reply.
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        self.send_cmd(args);
        self.read_reply()
    }

    /// Like [`RawConn::cmd`] with binary arguments.
    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send_cmd(args);
        self.read_reply()
    }

    /// Sends a command and asserts its exact reply.
    #[track_caller]
    pub fn assert_cmd(&mut self, args: &[&str], expected: &[u8]) {
        let got = self.cmd(args);
        assert_eq!(
            escape(&got),
            escape(expected),
            "reply to {args:?} on port {}",
            self.port
        );
    }

    /// Bytes received but not yet returned as a reply.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Waits up to `wait` and returns true if the server closed the connection (any bytes that
    /// arrive first are discarded).
    pub fn is_closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if self.stream.set_read_timeout(Some(deadline - now)).is_err() {
                return true;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Half-closes the write side (the server sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
