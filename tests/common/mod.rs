//! Shared helpers for Strongbox's integration tests (`mod common;` in a test file).
//!
//! - [`server`]: `StrongboxServer` / `RedisServer` processes on free ports with temp data dirs.
//! - [`port`]: `pick_free_port`, also used by the tools' and recovery's test harnesses.
//! - [`conn`]: `RawConn`, a byte-exact RESP client (send bytes, read exactly one reply).
//! - [`resp`]: pure RESP2/RESP3 framing (`reply_len`, `parse_frame`, `encode_command`, `escape`).
//! - [`keyspace`]: a server's keys and typed values through commands (`scan_keys`, `key_value`).
//! - [`replication`]: two servers' keyspaces compared, a dataset and a write stream to replicate.
//!
//! Every test binary compiles this module, and most use only part of it.
#![allow(dead_code, unused_imports)]

pub mod conn;
pub mod keyspace;
pub mod port;
pub mod replication;
pub mod resp;
pub mod server;

pub use conn::{RawConn, ReadError};
pub use resp::{encode_command, escape, parse_frame, reply_len, Frame};
pub use server::{pick_free_port, RedisServer, ServerKind, ServerProcess, StrongboxServer};

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root (where Cargo.toml of the `strongbox` package is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` to completion with `stdin` fed to it, capturing stdout and stderr; kills it and
/// panics (showing what it printed) if it runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{shown} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}
