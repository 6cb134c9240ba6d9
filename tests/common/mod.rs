//! Shared helpers for Strongbox's integration tests (`mod common;` in a test file).
//!
//! - [`server`]: `StrongboxServer` / `RedisServer` processes on free ports with temp data dirs.
//! - [`conn`]: `RawConn`, a byte-exact RESP client (send bytes, read exactly one reply).
//! - [`resp`]: pure RESP2/RESP3 framing (`reply_len`, `parse_frame`, `encode_command`, `escape`).
//!
//! Every test binary compiles this module, and most use only part of it.
#![allow(dead_code, unused_imports)]

pub mod conn;
pub mod resp;
pub mod server;

pub use conn::{RawConn, ReadError};
pub use resp::{encode_command, escape, parse_frame, reply_len, Frame};
pub use server::{pick_free_port, RedisServer, ServerKind, ServerProcess, StrongboxServer};

use std::path::PathBuf;

/// The repository root (where Cargo.toml of the `strongbox` package is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
