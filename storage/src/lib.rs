//! # strongbox-storage
//!
//! On-disk formats and durable I/O. This crate knows bytes and values, not commands or sockets.
//!
//! Map of the crate:
//! - [`fs`]: the file-system layer (`Vfs` trait) with the real backend and a fault-injecting
//!   simulated backend that keeps written-but-unsynced bytes apart from synced ones; the one
//!   helper that durably creates/replaces files (temp → fsync → rename → fsync dir); the
//!   data-directory lock.
//! - [`aof`]: the Redis 7 multi-part AOF: manifest, incr segments with checksummed batch
//!   annotations, the log writer thread (fsync policies, group commit), and the readers used by
//!   recovery and the offline tools.
//! - [`rdb`]: the RDB codec (reader for versions ≤ 11, writer for version 10), CRC-64, LZF,
//!   listpack/ziplist/intset, and the neutral value model [`rdb::Value`].
//! - [`resp`]: the minimal RESP command reader/writer shared by the AOF code (multibulk
//!   commands only).

pub mod aof;
pub mod fs;
pub mod rdb;
pub mod resp;
pub mod sched;
