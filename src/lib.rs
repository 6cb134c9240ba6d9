//! # strongbox — a persistence-first, Redis-compatible key-value server
//!
//! Reading order (the request path, see docs/architecture.md):
//! - [`server`]: accept loop and connection tasks (RESP parsing, reply encoding, reply gating).
//! - [`resp`]: the request parser and reply encoder.
//! - [`exec`]: the execution loop that owns the keyspace (a task on the event-loop thread, or its
//!   own thread with `io-threads` ≥ 2); `process_command` → `call`.
//! - [`cmd`]: the command table, one file per family; handlers see a [`ctx::Ctx`].
//! - [`keyspace`] and [`types`]: databases, objects and the collection representations.
//! - [`tracking`]: client-side caching (CLIENT TRACKING), its tables and invalidation pushes.
//! - [`durability`]: where effects become log bytes and replies learn what to wait for.
//! - [`aof`]: the log writer and recovery at start, over `strongbox-storage` and
//!   `strongbox-recovery`.
//! - [`loading`]: serving clients while the data set loads (`-LOADING`, INFO `loading_*`).
//! - [`obuf`] and [`cevict`]: output buffer limits and client eviction (`maxmemory-clients`).
//! - [`config`], [`limits`], [`util`].

pub mod acl;
pub mod alloc;
pub mod aof;
pub mod cevict;
pub mod client;
pub mod cmd;
pub mod compaction;
pub mod config;
pub mod ctx;
pub mod durability;
pub mod evict;
pub mod exec;
pub mod failover;
pub mod histogram;
pub mod keyspace;
pub mod latency;
pub mod limits;
pub mod load;
pub mod loading;
pub mod log;
pub mod master;
pub mod obuf;
pub mod pause;
pub mod persist;
pub mod replica;
pub mod resp;
pub mod server;
pub mod snapshot;
pub mod startup;
pub mod supervise;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tracking;
pub mod types;
pub mod util;

/// The Redis version we answer as (`redis_version`): client libraries check it.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";
/// Strongbox's own version.
pub const STRONGBOX_VERSION: &str = env!("CARGO_PKG_VERSION");
