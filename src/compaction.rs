//! Fork-free point-in-time snapshots (BGSAVE) and log compaction (BGREWRITEAOF).
//!
//! A snapshot is taken *by the execution thread, a little at a time*, without copying the
//! dataset: Dragonfly's serialize-before-mutate scheme over our keyspace.
//!
//! - Starting a snapshot bumps an epoch. Every object carries the epoch in which it was last
//!   serialized (`Object::snap`); objects created while the snapshot runs are born with the
//!   current epoch (`keyspace::NEW_OBJECT_SNAP`) because they did not exist at the snapshot point.
//! - Each execution round, the *walk* copies keys for a time budget (`WALK_STEP_BUDGET`), visiting
//!   each database's
//!   indices from the top down (the SCAN order, which never misses a key present throughout, see
//!   `Db::scan_indices`), skipping objects already stamped with the epoch.
//! - Before any write touches a key (`before_write`, called by `exec::call` for every write
//!   command, using the command table's key positions; and by `Server::expire_key` before an
//!   expiration), an object not yet stamped is serialized first, with its pre-write value and TTL.
//!   FLUSHDB/FLUSHALL/SWAPDB serialize what is left of the affected databases first.
//! - Serialized entries (already copied out of the keyspace) go in chunks over a bounded channel
//!   to a serializer thread, which encodes RDB (LZF, CRC-64) and writes the file. When the
//!   channel is full the walk pauses; only pre-write copies can queue beyond it.
//!
//! - A collection of more than [`SHARED_VALUE_ELEMENTS_MIN`] elements is not copied: the chunk
//!   takes a second reference to it (`Value::share`, O(1)) and the serializer thread writes it
//!   element by element into the file ([`write_shared`]). While that reference exists the
//!   keyspace's value is copy-on-write (`keyspace::Shared`): the first write clones it (once per
//!   key and snapshot, timed and counted as snapshot work), so the snapshot keeps the value as of
//!   its point; deleting, renaming or moving the key only drops or moves the keyspace's reference.
//!   That clone is shallow: large lists, hashes, sets and zsets are made of `Arc`'d chunks (list
//!   nodes, `types::chunked`), so it copies chunk pointers and later writes copy the chunks they
//!   touch (also timed as snapshot work, and counted in `Stats::cow_copied_bytes`).
//!
//! So the file holds exactly the dataset as of the snapshot start, while commands keep executing.
//! Extra memory: the channel's chunks plus the pre-write copies of keys written during the
//! snapshot (not a copy of the dataset).
//!
//! For BGREWRITEAOF, the execution thread asks the log writer to seal the active incr file and
//! open a new one at the point of the log where the snapshot starts
//! (`LogWriter::request_rotate_for_rewrite`), without waiting: the new base plus the new incr file
//! hold the whole state, and replies of later writes wait (durability gate) for the writer, which
//! writes them only into the new, durably listed incr file. When the base is durable, the snapshot
//! thread renames it and does the one atomic manifest switch (`Installer::install_base`) that
//! replaces the old base and incr files, while the log writer goes on. A crash before the switch
//! leaves the old manifest (old base, old incr files, new incr file) which loads to the same
//! state; a leftover temp or unnamed base file is ignored.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strongbox_storage::aof::writer::{Installer, Pending, RewriteTicket};
use strongbox_storage::rdb::{self, RdbWriter, WriterOptions};

use crate::cmd::CommandSpec;
use crate::exec::Server;
use crate::keyspace::{Db, Value, NEW_OBJECT_SNAP};
use crate::resp::IntBuf;

/// Time the walk may take in one execution round: the walk stops at the first check past it
/// (checked every [`WALK_CHECK_KEYS`] keys), so a client's command waits at most about this
/// long behind it.
const WALK_STEP_BUDGET: Duration = Duration::from_micros(100);
/// Keys between two looks at the clock during the walk.
const WALK_CHECK_KEYS: usize = 32;
/// Approximate bytes per chunk (copied key and value bytes plus record overhead).
const CHUNK_BYTES_MAX: usize = 128 << 10;
/// Chunks in flight to the serializer thread.
const CHANNEL_CHUNKS_MAX: usize = 4;
/// How often the execution thread looks at a snapshot that waits for its thread.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Pause between two walk steps when no command arrives: the walk takes at most about half of
/// a core, leaving the rest to the serializer thread and to everything else on the machine.
/// Short steps and pauses (rather than 250 µs each, as before) cut a command's wait behind a
/// step: the compaction bench's probe p99 during rewrites went from 1.95–2.03 ms to
/// 1.69–1.87 ms (three runs each, 10 rewrites per run), the rewrite taking as long.
const WALK_PAUSE: Duration = Duration::from_micros(100);
/// The snapshot file is fdatasync'ed every this many bytes while it is written (Redis's
/// incremental fsync), so the final fsync is short and never holds the file system's journal
/// (and with it the log's own fsyncs) for long.
const FILE_SYNC_BYTES: usize = 4 << 20;
/// The snapshot thread runs this many nice levels below the server's other threads: on a
/// small machine its serializing (LZF, CRC-64, file writes) competes for a core with the
/// execution thread, the I/O threads and the log writer, whose delays clients see directly;
/// the snapshot only takes longer.
const SNAPSHOT_THREAD_NICE: i32 = 10;
/// The snapshot thread rests after this much work, for as long as it worked, so it takes at
/// most about half a core …
const SERIALIZER_WORK_SLICE: Duration = Duration::from_micros(200);
/// … checked every this many records.
const YIELD_CHECK_RECORDS: usize = 32;
/// A collection with more elements than this is not copied by the execution thread: the
/// snapshot takes a second reference to it (copy-on-write from then on, `keyspace::Shared`)
/// and the snapshot thread serializes it, streaming, while commands go on. Smaller ones are
/// copied (cheaper than a possible clone later, and bounded).
pub const SHARED_VALUE_ELEMENTS_MIN: usize = 1024;

/// What the snapshot is for, as INFO and the commands see it.
pub enum Purpose {
    /// BGSAVE.
    Dump {},
    /// BGREWRITEAOF.
    AofBase {},
}

/// Where the finished file goes: installed by the snapshot thread once the file is fsynced.
pub enum Target {
    /// BGSAVE: the file becomes `final_path` (dbfilename).
    Dump { final_path: PathBuf },
    /// No file: the RDB image goes to `out` as it is written (a diskless replica sync,
    /// `master.rs`). Counts as a BGSAVE.
    Stream { out: Box<dyn Write + Send> },
    /// BGREWRITEAOF: the file becomes the new AOF base, named after the rotation's ticket
    /// (which the log writer hands over when it has done the rotation).
    AofBase {
        ticket: Pending<RewriteTicket>,
        installer: Installer,
        aof_dir: PathBuf,
        filename: String,
        preamble: bool,
    },
    /// BGREWRITEAOF with `appendonly no` (no log to rotate): the file, written in `staging`,
    /// becomes base `base_seq` of a new AOF directory holding only it, which then takes the
    /// AOF directory's place (`aof::install_base_only`).
    AofBaseOnly {
        staging: PathBuf,
        aof_dir: PathBuf,
        filename: String,
        base_seq: u64,
        preamble: bool,
    },
}

/// What the snapshot thread leaves when it is done.
pub enum Finished {
    /// dump.rdb is in place.
    Dump,
    /// The base is installed: durable under `base_name` and named by the manifest.
    AofBase { base_name: String },
}

/// The file format of a snapshot. (One per snapshot: the size of the options does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Format {
    /// An RDB image (dump.rdb, or an AOF base with `aof-use-rdb-preamble yes`).
    Rdb(WriterOptions),
    /// RESP commands (an AOF base with `aof-use-rdb-preamble no`), as Redis's rewrite emits.
    Resp,
}

/// One key copied out of the keyspace. Strings (the common case) are copied as bytes into the
/// chunk's arena: no per-key allocation, and no clone of the keyspace's `Bytes` (a first clone
/// of a `Bytes` allocates a shared header that then stays with the key for good).
struct Rec {
    db: u32,
    expire_ms: Option<i64>,
    key: (u32, u32),
    value: RecValue,
}

enum RecValue {
    /// A string: its bytes in the arena.
    Str(u32, u32),
    /// A collection, already converted (element bytes copied). Boxed: `rdb::Value` is 112
    /// bytes, and every record, strings included, would carry that size (a record is 56 bytes
    /// with the box, 144 without; copying records was 36 % of the walk's profile over 1M
    /// small strings).
    Value(Box<rdb::Value>),
    /// A large collection as of the snapshot point, by reference (`Value::share`): the
    /// keyspace's copy is copy-on-write while this exists; serialized by the snapshot thread.
    Shared(Value),
}

#[derive(Default)]
struct Batch {
    arena: Vec<u8>,
    recs: Vec<Rec>,
}

impl Batch {
    fn put(&mut self, b: &[u8]) -> (u32, u32) {
        let start = self.arena.len();
        self.arena.extend_from_slice(b);
        (start as u32, self.arena.len() as u32)
    }
}

enum Chunk {
    Entries(Batch),
    Finish,
}

/// Figures of one snapshot, measured by the server itself (INFO persistence
/// `strongbox_compaction_*`): wall-clock figures of short intervals on the execution thread,
/// so they do not depend on a client's view of a busy machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Longest time the execution thread spent on the snapshot within one round (walk step,
    /// pre-write copies, start, hand-over of the install), in µs.
    pub max_stall_us: u64,
    /// Longest execution round (all work of the round, commands included) while it ran, µs.
    pub max_round_us: u64,
    /// Execution rounds while it ran.
    pub rounds: u64,
    /// Rounds whose snapshot work took more than 1 ms.
    pub stalls_over_1ms: u64,
    /// Most bytes copied out of the keyspace and not yet taken by the serializer thread.
    pub peak_buffered_bytes: u64,
    /// Keys copied before a write (serialize-before-mutate).
    pub pre_write_copies: u64,
    /// Large collections handed to the snapshot thread by reference (not copied).
    pub shared_values: u64,
    /// Copy-on-write clones: a write to a large collection the snapshot thread had not yet
    /// serialized cloned it (its time is counted as snapshot work of the round).
    pub cow_clones: u64,
    /// Most bytes the execution thread copied out of the keyspace within one round (walk step
    /// plus pre-write copies): bounded by the step budget, whatever the sizes of the keys.
    pub max_round_copied_bytes: u64,
    /// The execution thread's work by phase, µs: starting the snapshot (temp file, thread,
    /// rotation request), the longest walk step, the longest pre-write hook of one write
    /// command, and the end (joining the snapshot thread, bookkeeping).
    pub start_us: u64,
    pub max_step_us: u64,
    pub max_pre_write_us: u64,
    pub finish_us: u64,
    /// The log writer while the snapshot ran (BGREWRITEAOF; filled in by the persistence
    /// layer): the longest wait of submitted bytes until `written` (what replies wait for), the
    /// longest postponement behind an fsync, the longest batch `write`, and the rotation at
    /// the snapshot point (writes after it wait for it) and the base installation, µs.
    pub log_max_wait_us: u64,
    pub log_max_postpone_us: u64,
    pub log_max_write_us: u64,
    pub log_rotate_us: u64,
    pub log_install_us: u64,
    /// BGREWRITEAOF under everysec: how long the rewrite waited for the fsync of the log's
    /// tail before its rotation (commands and replies went on meanwhile), µs, and how many
    /// unsynced bytes the rotation's seal still had to fsync (replies wait for that).
    pub presync_us: u64,
    pub log_seal_bytes: u64,
    /// Bytes of chunks (list nodes; hash, set and zset chunks and index segments) that writes
    /// copied because the snapshot still shared them, in all and at most within one round.
    pub cow_copied_bytes: u64,
    pub max_round_cow_copied_bytes: u64,
}

impl Stats {
    /// The `strongbox_compaction_*` INFO fields.
    pub fn info_fields(&self) -> [(&'static str, u64); 22] {
        [
            ("strongbox_compaction_max_stall_us", self.max_stall_us),
            ("strongbox_compaction_max_round_us", self.max_round_us),
            ("strongbox_compaction_rounds", self.rounds),
            ("strongbox_compaction_stalls_over_1ms", self.stalls_over_1ms),
            (
                "strongbox_compaction_peak_buffered_bytes",
                self.peak_buffered_bytes,
            ),
            (
                "strongbox_compaction_pre_write_copies",
                self.pre_write_copies,
            ),
            ("strongbox_compaction_shared_values", self.shared_values),
            ("strongbox_compaction_cow_clones", self.cow_clones),
            (
                "strongbox_compaction_max_round_copied_bytes",
                self.max_round_copied_bytes,
            ),
            (
                "strongbox_compaction_cow_copied_bytes",
                self.cow_copied_bytes,
            ),
            (
                "strongbox_compaction_max_round_cow_copied_bytes",
                self.max_round_cow_copied_bytes,
            ),
            ("strongbox_compaction_start_us", self.start_us),
            ("strongbox_compaction_max_step_us", self.max_step_us),
            (
                "strongbox_compaction_max_pre_write_us",
                self.max_pre_write_us,
            ),
            ("strongbox_compaction_finish_us", self.finish_us),
            ("strongbox_compaction_log_max_wait_us", self.log_max_wait_us),
            (
                "strongbox_compaction_log_max_postpone_us",
                self.log_max_postpone_us,
            ),
            (
                "strongbox_compaction_log_max_write_us",
                self.log_max_write_us,
            ),
            ("strongbox_compaction_log_rotate_us", self.log_rotate_us),
            ("strongbox_compaction_log_install_us", self.log_install_us),
            ("strongbox_compaction_presync_us", self.presync_us),
            ("strongbox_compaction_log_seal_bytes", self.log_seal_bytes),
        ]
    }
}

pub struct Snapshot {
    pub epoch: u32,
    pub purpose: Purpose,
    db: usize,
    cursor: u64,
    walk_done: bool,
    chunk: Batch,
    chunk_bytes: usize,
    backlog: VecDeque<(Chunk, usize)>,
    backlog_bytes: usize,
    tx: SyncSender<Chunk>,
    /// Bytes handed to the channel and not yet taken by the serializer (it subtracts).
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: Option<JoinHandle<Result<Finished, String>>>,
    /// Set by [`abort`]: the serializer stops at its next key.
    aborted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub temp_path: PathBuf,
    pub started: Instant,
    pub keys_done: u64,
    pub keys_total: u64,
    /// Largest number of chunks queued beyond the channel (memory high-water mark).
    pub backlog_max: usize,
    pub stats: Stats,
    /// Snapshot work of the current round so far.
    round_work: Duration,
    /// Bytes copied out of the keyspace in the current round so far.
    round_copied: usize,
}

impl Snapshot {
    /// Start a snapshot of `srv` now, written to `temp_path` and installed per `target`.
    pub fn start(
        srv: &mut Server,
        target: Target,
        temp_path: PathBuf,
        file_format: Format,
    ) -> Result<(), String> {
        // A file (installed per `target` when complete), or a stream (nothing to install).
        let (out, target) = match target {
            Target::Stream { out } => (Output::Stream(out), None),
            target => {
                let file = crate::util::create_fresh_file(&temp_path).map_err(|e| {
                    format!("Failed opening the temp file {}: {e}", temp_path.display())
                })?;
                (Output::File(file), Some(target))
            }
        };
        srv.snap_epoch = srv.snap_epoch.wrapping_add(1).max(1);
        let epoch = srv.snap_epoch;
        let (tx, rx) = sync_channel::<Chunk>(CHANNEL_CHUNKS_MAX);
        // RESIZEDB hints for the loader: the sizes at the snapshot point.
        let sizes: Vec<(u64, u64)> = srv
            .dbs
            .iter()
            .map(|d| (d.keys.len() as u64, d.expires.len() as u64))
            .collect();
        let purpose = match target {
            Some(Target::AofBase { .. } | Target::AofBaseOnly { .. }) => Purpose::AofBase {},
            _ => Purpose::Dump {},
        };
        let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = in_flight.clone();
        let temp = temp_path.clone();
        let aborted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let per_key = PerKey {
            aborted: aborted.clone(),
            delay: srv.cfg.get_i64("rdb-key-save-delay"),
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        // Function libraries at the snapshot point, written first (cmd/function.rs).
        let libs = crate::cmd::function::library_codes(srv);
        let handle = std::thread::Builder::new()
            .name("strongbox-snapshot".into())
            .spawn(move || {
                crate::util::lower_thread_priority(SNAPSHOT_THREAD_NICE);
                match (file_format, out) {
                    (Format::Rdb(opts), Output::File(file)) => {
                        let out =
                            std::io::BufWriter::with_capacity(256 << 10, SyncEvery::new(file));
                        serializer(
                            rx,
                            out,
                            RdbHead {
                                opts,
                                sizes,
                                libs: &libs,
                            },
                            &counter,
                            per_key,
                            |out| {
                                let mut f = out.into_inner().map_err(|e| e.to_string())?;
                                f.flush().map_err(|e| e.to_string())?;
                                f.file.sync_all().map_err(|e| e.to_string())
                            },
                        )
                    }
                    (Format::Rdb(opts), Output::Stream(stream)) => {
                        let out = std::io::BufWriter::with_capacity(256 << 10, stream);
                        serializer(
                            rx,
                            out,
                            RdbHead {
                                opts,
                                sizes,
                                libs: &libs,
                            },
                            &counter,
                            per_key,
                            |out| {
                                let mut w = out.into_inner().map_err(|e| e.to_string())?;
                                w.flush().map_err(|e| e.to_string())
                            },
                        )
                    }
                    (Format::Resp, Output::File(file)) => {
                        resp_serializer(rx, file, &libs, &counter, per_key)
                    }
                    (Format::Resp, Output::Stream(_)) => {
                        Err("a RESP snapshot needs a file".to_string())
                    }
                }?;
                match target {
                    Some(target) => install(&temp, target),
                    None => Ok(Finished::Dump),
                }
            })
            .map_err(|e| e.to_string())?;
        NEW_OBJECT_SNAP.store(epoch, Ordering::Relaxed);
        crate::keyspace::COW_CLONES.store(0, Ordering::Relaxed);
        crate::keyspace::COW_CLONE_NS.store(0, Ordering::Relaxed);
        crate::types::chunked::COW_COPIED_BYTES.store(0, Ordering::Relaxed);
        let keys_total = srv.dbs.iter().map(|d| d.len() as u64).sum();
        srv.snapshot = Some(Snapshot {
            epoch,
            purpose,
            db: 0,
            cursor: 0,
            walk_done: false,
            chunk: Batch::default(),
            chunk_bytes: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            tx,
            in_flight,
            handle: Some(handle),
            aborted,
            temp_path,
            started: Instant::now(),
            keys_done: 0,
            keys_total,
            backlog_max: 0,
            stats: Stats::default(),
            round_work: Duration::ZERO,
            round_copied: 0,
        });
        Ok(())
    }

    /// The execution thread's time to start this snapshot (`started_at`: when the command
    /// that starts it began its work): counted as snapshot work of the round.
    pub fn note_start(&mut self, started_at: Instant) {
        let d = started_at.elapsed();
        self.stats.start_us = d.as_micros() as u64;
        self.add_work(d);
    }

    /// True while writes must be intercepted.
    pub fn intercepting(&self) -> bool {
        !self.walk_done
    }

    /// Count `d` as snapshot work of the current round.
    pub fn add_work(&mut self, d: Duration) {
        self.round_work += d;
    }

    /// End of an execution round that took `round` in all.
    pub fn note_round(&mut self, round: Duration) {
        // Copy-on-write clones done by this round's commands are the snapshot's doing.
        // So are the chunk copies of collections whose clone the snapshot still reads.
        let clones = crate::keyspace::COW_CLONES.swap(0, Ordering::Relaxed);
        self.stats.cow_clones += clones;
        let ns = crate::keyspace::COW_CLONE_NS.swap(0, Ordering::Relaxed);
        self.round_work += Duration::from_nanos(ns);
        let copied = crate::types::chunked::COW_COPIED_BYTES.swap(0, Ordering::Relaxed);
        self.stats.cow_copied_bytes += copied;
        self.stats.max_round_cow_copied_bytes = self.stats.max_round_cow_copied_bytes.max(copied);
        let st = &mut self.stats;
        st.max_round_copied_bytes = st.max_round_copied_bytes.max(self.round_copied as u64);
        self.round_copied = 0;
        st.rounds += 1;
        st.max_round_us = st.max_round_us.max(round.as_micros() as u64);
        let work = self.round_work.as_micros() as u64;
        st.max_stall_us = st.max_stall_us.max(work);
        if work > 1000 {
            st.stalls_over_1ms += 1;
        }
        self.round_work = Duration::ZERO;
    }

    /// How long the execution thread may sleep before the snapshot wants a step.
    pub fn next_step_in(&self) -> Duration {
        if !self.walk_done && self.backlog.is_empty() {
            WALK_PAUSE
        } else {
            POLL_INTERVAL
        }
    }

    fn emit(&mut self, db: usize, key: &[u8], value: &Value, expire_ms: Option<i64>) {
        let c = &mut self.chunk;
        let before = c.arena.len();
        let key = c.put(key);
        let mut shared = false;
        let value = match value {
            Value::Str(s) => {
                let (a, b) = c.put(s);
                RecValue::Str(a, b)
            }
            other if other.elements().unwrap_or(0) > SHARED_VALUE_ELEMENTS_MIN => {
                shared = true;
                self.stats.shared_values += 1;
                RecValue::Shared(other.share().expect("a collection"))
            }
            other => {
                let v = crate::snapshot::to_rdb(other);
                let n = approx_size(&v);
                self.chunk_bytes += n;
                self.round_copied += n;
                RecValue::Value(Box::new(v))
            }
        };
        c.recs.push(Rec {
            db: db as u32,
            expire_ms,
            key,
            value,
        });
        self.chunk_bytes += c.arena.len() - before + std::mem::size_of::<Rec>();
        self.round_copied += c.arena.len() - before;
        self.keys_done += 1;
        // Arena offsets are u32: a chunk is flushed long before 4 GiB (one huge string aside,
        // which then travels alone). A shared collection ends its chunk, so the channel's
        // bound also bounds how many of them wait for the snapshot thread (each one the walk
        // hands over may be cloned by a write before it is serialized: that clone is the extra
        // memory of copy-on-write).
        if shared || self.chunk_bytes >= CHUNK_BYTES_MAX {
            self.flush_chunk();
        }
    }

    fn flush_chunk(&mut self) {
        if self.chunk.recs.is_empty() {
            return;
        }
        // The next chunk starts with the capacities this one ended with, so the walk does not
        // grow its vectors by doubling (each growth copies what is there) in every chunk.
        // Capped: a huge string travels alone in its chunk and must not size the next one.
        let next = Batch {
            arena: Vec::with_capacity(self.chunk.arena.len().min(CHUNK_BYTES_MAX)),
            recs: Vec::with_capacity(
                self.chunk
                    .recs
                    .len()
                    .min(CHUNK_BYTES_MAX / std::mem::size_of::<Rec>()),
            ),
        };
        let c = Chunk::Entries(std::mem::replace(&mut self.chunk, next));
        let bytes = std::mem::take(&mut self.chunk_bytes);
        self.backlog.push_back((c, bytes));
        self.backlog_bytes += bytes;
        self.drain_backlog();
    }

    /// Push queued chunks into the channel without blocking. Returns true if none is left.
    fn drain_backlog(&mut self) -> bool {
        let buffered = self.in_flight.load(Ordering::Relaxed) + self.backlog_bytes;
        self.stats.peak_buffered_bytes = self.stats.peak_buffered_bytes.max(buffered as u64);
        while let Some((c, bytes)) = self.backlog.pop_front() {
            self.in_flight.fetch_add(bytes, Ordering::Relaxed);
            match self.tx.try_send(c) {
                Ok(()) => {
                    self.backlog_bytes -= bytes;
                }
                Err(TrySendError::Full(c)) => {
                    self.in_flight.fetch_sub(bytes, Ordering::Relaxed);
                    self.backlog.push_front((c, bytes));
                    self.backlog_max = self.backlog_max.max(self.backlog.len());
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => {
                    // The serializer failed; its error is collected at join.
                    self.backlog.clear();
                    self.backlog_bytes = 0;
                    return true;
                }
            }
        }
        true
    }
}

/// Where a snapshot's bytes go: its temp file, or a stream (`Target::Stream`).
enum Output {
    File(std::fs::File),
    Stream(Box<dyn Write + Send>),
}

/// Move the finished, fsynced temp file into place (on the snapshot thread).
fn install(temp: &std::path::Path, target: Target) -> Result<Finished, String> {
    match target {
        Target::Stream { .. } => Ok(Finished::Dump),
        Target::Dump { final_path } => {
            crate::aof::install_file(temp, &final_path)?;
            Ok(Finished::Dump)
        }
        Target::AofBase {
            ticket,
            installer,
            aof_dir,
            filename,
            preamble,
        } => {
            // The rotation was requested when the snapshot started; the log writer has long
            // done it by now, or does it now.
            let ticket = ticket.wait().map_err(|e| e.to_string())?;
            let base_name =
                strongbox_storage::aof::base_file_name(&filename, ticket.base_seq, preamble);
            // A new name, not in the manifest: a crash before the manifest switch leaves a
            // file that nothing names.
            crate::aof::install_file(temp, &aof_dir.join(&base_name))?;
            // The manifest switch, here: the log writer goes on appending meanwhile.
            installer
                .install_base(&base_name, ticket)
                .map_err(|e| e.to_string())?;
            Ok(Finished::AofBase { base_name })
        }
        Target::AofBaseOnly {
            staging,
            aof_dir,
            filename,
            base_seq,
            preamble,
        } => {
            let base_name = strongbox_storage::aof::base_file_name(&filename, base_seq, preamble);
            crate::aof::install_base_only(
                temp, &staging, &aof_dir, &filename, &base_name, base_seq,
            )?;
            Ok(Finished::AofBase { base_name })
        }
    }
}

fn approx_size(v: &rdb::Value) -> usize {
    match v {
        rdb::Value::String(s) => s.len(),
        rdb::Value::List(l) | rdb::Value::Set(l) => l.iter().map(|x| x.len() + 40).sum(),
        rdb::Value::Hash(h) => h.iter().map(|(a, b)| a.len() + b.len() + 80).sum(),
        rdb::Value::ZSet(z) => z.iter().map(|(a, _)| a.len() + 48).sum(),
        rdb::Value::Stream(s) => s.entries.len() * 64,
    }
}

/// The snapshot file, fdatasync'ed every [`FILE_SYNC_BYTES`].
struct SyncEvery {
    file: std::fs::File,
    unsynced: usize,
}

impl SyncEvery {
    fn new(file: std::fs::File) -> SyncEvery {
        SyncEvery { file, unsynced: 0 }
    }
}

impl Write for SyncEvery {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n;
        if self.unsynced >= FILE_SYNC_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn taken(counter: &std::sync::atomic::AtomicUsize, bytes: usize) {
    counter.fetch_sub(
        bytes.min(counter.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
}

/// Receives the snapshot's chunks and hands each record, with the arena its byte ranges point
/// into, to `rec`, in order. Ok at `Chunk::Finish`; an error if the snapshot was dropped first.
fn for_each_record(
    rx: &Receiver<Chunk>,
    counter: &std::sync::atomic::AtomicUsize,
    mut per_key: PerKey,
    mut rec: impl FnMut(Rec, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut last_rest = Instant::now();
    while let Ok(c) = rx.recv() {
        match c {
            Chunk::Entries(batch) => {
                let bytes = batch_bytes(&batch);
                let Batch { arena, recs } = batch;
                for (i, r) in recs.into_iter().enumerate() {
                    rec(r, &arena)?;
                    per_key.after_key()?;
                    if i % YIELD_CHECK_RECORDS == YIELD_CHECK_RECORDS - 1 {
                        let worked = last_rest.elapsed();
                        if worked >= SERIALIZER_WORK_SLICE {
                            // Nice alone does not stop the scheduler from letting this thread
                            // finish its slice (milliseconds) while the execution thread,
                            // woken by a client, waits for the core: perf sched showed 4 ms
                            // waits. Yielding at once was not enough either on two cores:
                            // this thread was runnable all the time beside the execution
                            // thread, the log writer and the clients. Resting as long as it
                            // worked leaves one core to them: the compaction bench's probe
                            // p99 during rewrites went from 1.83–1.85 ms to 1.61–1.66 ms, the
                            // rewrite of 1M keys from 0.13 s to 0.21–0.24 s (redis: 0.6 s).
                            std::thread::sleep(worked);
                            last_rest = Instant::now();
                        }
                    }
                }
                taken(counter, bytes);
            }
            Chunk::Finish => return Ok(()),
        }
    }
    Err("snapshot aborted".into())
}

/// What the serializer does after each key: stop if the snapshot was aborted (SHUTDOWN
/// during a rewrite: records already queued are not worth writing), and `rdb-key-save-delay`
/// (a testing knob, as in Redis): sleep this many microseconds; a negative value -N sleeps
/// 1 µs after one key in N on average.
#[derive(Clone)]
struct PerKey {
    aborted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    delay: i64,
    rng: u64,
}

impl PerKey {
    fn after_key(&mut self) -> Result<(), String> {
        if self.aborted.load(Ordering::Relaxed) {
            return Err("snapshot aborted".into());
        }
        let us = match self.delay {
            0 => return Ok(()),
            n if n > 0 => n as u64,
            n => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                u64::from(self.rng.is_multiple_of(n.unsigned_abs()))
            }
        };
        // In slices, so that an abort (SHUTDOWN during a long test delay) is seen promptly.
        let until = std::time::Instant::now() + Duration::from_micros(us);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
            if self.aborted.load(Ordering::Relaxed) {
                return Err("snapshot aborted".into());
            }
        }
    }
}

/// The bytes of an arena range.
fn span(arena: &[u8], r: (u32, u32)) -> &[u8] {
    &arena[r.0 as usize..r.1 as usize]
}

/// What an RDB image starts with: the writer's options, the RESIZEDB hints per database and
/// the function libraries (written before the first database).
struct RdbHead<'a> {
    opts: WriterOptions,
    sizes: Vec<(u64, u64)>,
    libs: &'a [Bytes],
}

/// Writes the RDB image to `out`; `done` finishes `out` (flush, fsync) after the last byte.
fn serializer<W: Write>(
    rx: Receiver<Chunk>,
    out: W,
    head: RdbHead<'_>,
    counter: &std::sync::atomic::AtomicUsize,
    per_key: PerKey,
    done: impl FnOnce(W) -> Result<(), String>,
) -> Result<(), String> {
    let RdbHead { opts, sizes, libs } = head;
    let (th, version) = (opts.thresholds, opts.version);
    let mut w = RdbWriter::new(out, opts).map_err(|e| e.to_string())?;
    for code in libs {
        w.write_function(code).map_err(|e| e.to_string())?;
    }
    let mut cur_db: Option<u32> = None;
    for_each_record(&rx, counter, per_key, |r, arena| {
        if cur_db != Some(r.db) {
            let (keys, expires) = sizes.get(r.db as usize).copied().unwrap_or((0, 0));
            w.begin_db(r.db, keys, expires).map_err(|e| e.to_string())?;
            cur_db = Some(r.db);
        }
        match r.value {
            RecValue::Str(a, b) => {
                w.write_string(r.db, span(arena, r.key), span(arena, (a, b)), r.expire_ms)
            }
            RecValue::Value(value) => {
                write_converted(&mut w, r.db, span(arena, r.key), *value, r.expire_ms)
            }
            RecValue::Shared(value) => write_shared(
                &mut w,
                &th,
                version,
                r.db,
                span(arena, r.key),
                &value,
                r.expire_ms,
            ),
        }
        .map_err(|e| e.to_string())
    })?;
    let out = w.finish().map_err(|e| e.to_string())?;
    done(out)
}

fn write_converted<W: Write>(
    w: &mut RdbWriter<W>,
    db: u32,
    key: &[u8],
    value: rdb::Value,
    expire_ms: Option<i64>,
) -> Result<(), rdb::WriteError> {
    w.write_entry(&rdb::Entry {
        db,
        key: bytes::Bytes::copy_from_slice(key),
        value,
        expire_ms,
        idle_secs: None,
        freq: None,
    })
}

/// A list element's bytes (integers are stored encoded).
fn with_elem(e: crate::types::list::enc::Elem<'_>, f: &mut dyn FnMut(&[u8])) {
    use crate::types::list::enc::Elem;
    match e {
        Elem::Str(s) => f(s),
        Elem::Int(v) => f(IntBuf::new(v).as_bytes()),
    }
}

/// Serialize a large collection the snapshot holds by reference, element by element into the
/// file (nothing of it is built in memory), in the encoding the RDB writer would choose for it
/// whole (`Encoder::value`): a quicklist for a list; for a set, hash or zset too large for an
/// intset or listpack, `RDB_TYPE_SET` / `RDB_TYPE_HASH` / `RDB_TYPE_ZSET_2` (highest score
/// first, as Redis writes a skiplist). A value that could still be packed (a raised
/// `*-max-listpack-entries`) and a stream are converted whole here, on the snapshot thread.
fn write_shared<W: Write>(
    w: &mut RdbWriter<W>,
    th: &rdb::EncodingThresholds,
    version: u32,
    db: u32,
    key: &[u8],
    value: &Value,
    expire_ms: Option<i64>,
) -> Result<(), rdb::WriteError> {
    use strongbox_storage::rdb::consts::{RDB_TYPE_HASH, RDB_TYPE_SET, RDB_TYPE_ZSET_2};
    match value {
        Value::List(l) => w.write_list_streamed(db, key, expire_ms, &mut |f| {
            if !l.is_empty() {
                l.for_each_in_range(0, l.len() - 1, |e| with_elem(e, f));
            }
        }),
        Value::Set(s)
            if s.len() > th.set_max_intset_entries
                && (version < 11 || s.len() > th.set_max_listpack_entries) =>
        {
            w.begin_value(db, key, expire_ms, RDB_TYPE_SET)?;
            w.put_len(s.len() as u64)?;
            for m in s.members() {
                match m {
                    crate::types::set::Member::Str(b) => w.put_string(b)?,
                    crate::types::set::Member::Int(v) => w.put_string(IntBuf::new(v).as_bytes())?,
                }
            }
            Ok(())
        }
        Value::Hash(h) if h.len() > th.hash_max_listpack_entries => {
            w.begin_value(db, key, expire_ms, RDB_TYPE_HASH)?;
            w.put_len(h.len() as u64)?;
            let mut r = Ok(());
            h.for_each(|f, v| {
                if r.is_ok() {
                    r = with_two(f, v, &mut |f, v| {
                        w.put_string(f)?;
                        w.put_string(v)
                    });
                }
            });
            r
        }
        Value::ZSet(z) if z.len() > th.zset_max_listpack_entries => {
            w.begin_value(db, key, expire_ms, RDB_TYPE_ZSET_2)?;
            w.put_len(z.len() as u64)?;
            for rank in (0..z.len()).rev() {
                let Some((m, sc)) = z.get(rank) else { break };
                w.put_string(m)?;
                w.put_double(sc)?;
            }
            Ok(())
        }
        other => write_converted(w, db, key, crate::snapshot::to_rdb(other), expire_ms),
    }
}

/// Two list-encoded elements as bytes.
fn with_two<R>(
    a: crate::types::list::enc::Elem<'_>,
    b: crate::types::list::enc::Elem<'_>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> R,
) -> R {
    use crate::types::list::enc::Elem;
    let (ta, tb);
    let a: &[u8] = match a {
        Elem::Str(s) => s,
        Elem::Int(v) => {
            ta = IntBuf::new(v);
            ta.as_bytes()
        }
    };
    let b: &[u8] = match b {
        Elem::Str(s) => s,
        Elem::Int(v) => {
            tb = IntBuf::new(v);
            tb.as_bytes()
        }
    };
    f(a, b)
}

/// The bytes a batch was counted for when queued (same formula as `emit`).
fn batch_bytes(b: &Batch) -> usize {
    b.arena.len()
        + b.recs.len() * std::mem::size_of::<Rec>()
        + b.recs
            .iter()
            .map(|r| match &r.value {
                RecValue::Value(v) => approx_size(v),
                RecValue::Str(..) | RecValue::Shared(_) => 0,
            })
            .sum::<usize>()
}

/// Commands per collection batch in a RESP base (Redis's AOF_REWRITE_ITEMS_PER_CMD).
const RESP_ITEMS_PER_CMD: usize = 64;

fn resp_serializer(
    rx: Receiver<Chunk>,
    file: std::fs::File,
    libs: &[Bytes],
    counter: &std::sync::atomic::AtomicUsize,
    per_key: PerKey,
) -> Result<(), String> {
    let mut out = std::io::BufWriter::with_capacity(256 << 10, SyncEvery::new(file));
    let mut cur_db: Option<u32> = None;
    let mut buf = Vec::with_capacity(1 << 16);
    // As Redis's rewrite (`rewriteFunctions`): FUNCTION LOAD per library, before the keys.
    for code in libs {
        cmd(&mut buf, &[b"FUNCTION".as_ref(), b"LOAD", code]);
    }
    for_each_record(&rx, counter, per_key, |r, arena| {
        if cur_db != Some(r.db) {
            cmd(&mut buf, &[b"SELECT".as_ref(), r.db.to_string().as_bytes()]);
            cur_db = Some(r.db);
        }
        let key = span(arena, r.key);
        match r.value {
            RecValue::Str(a, b) => cmd(&mut buf, &[b"SET", key, span(arena, (a, b))]),
            RecValue::Value(value) => value_as_commands(&mut buf, key, &value),
            RecValue::Shared(value) => {
                shared_as_commands(&mut buf, key, &value, &mut |buf: &mut Vec<u8>| {
                    if buf.len() >= 1 << 16 {
                        out.write_all(buf).map_err(|e| e.to_string())?;
                        buf.clear();
                    }
                    Ok(())
                })?
            }
        }
        if let Some(t) = r.expire_ms {
            cmd(&mut buf, &[b"PEXPIREAT", key, t.to_string().as_bytes()]);
        }
        if buf.len() >= 1 << 16 {
            out.write_all(&buf).map_err(|e| e.to_string())?;
            buf.clear();
        }
        Ok(())
    })?;
    out.write_all(&buf).map_err(|e| e.to_string())?;
    let f = out.into_inner().map_err(|e| e.to_string())?;
    f.file.sync_all().map_err(|e| e.to_string())
}

/// A large collection as RPUSH/SADD/HMSET/ZADD commands of [`RESP_ITEMS_PER_CMD`] elements
/// (what [`value_as_commands`] emits for it), built a command at a time: `drain` is called after
/// each command to write out what is buffered. A stream is converted whole.
fn shared_as_commands(
    buf: &mut Vec<u8>,
    k: &[u8],
    value: &Value,
    drain: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let (name, per): (&[u8], usize) = match value {
        Value::List(_) => (b"RPUSH", 1),
        Value::Set(_) => (b"SADD", 1),
        Value::Hash(_) => (b"HMSET", 2),
        Value::ZSet(_) => (b"ZADD", 2),
        Value::Str(_) | Value::Stream(_) => {
            value_as_commands(buf, k, &crate::snapshot::to_rdb(value));
            return drain(buf);
        }
    };
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(RESP_ITEMS_PER_CMD * per);
    let mut result = Ok(());
    let mut push = |buf: &mut Vec<u8>, items: &[&[u8]], last: bool| {
        if result.is_err() {
            return;
        }
        args.extend(items.iter().map(|x| x.to_vec()));
        if args.len() >= RESP_ITEMS_PER_CMD * per || (last && !args.is_empty()) {
            let mut argv: Vec<&[u8]> = vec![name, k];
            argv.extend(args.iter().map(|x| x.as_slice()));
            cmd(buf, &argv);
            args.clear();
            result = drain(buf);
        }
    };
    match value {
        Value::List(l) => {
            if !l.is_empty() {
                l.for_each_in_range(0, l.len() - 1, |e| {
                    with_elem(e, &mut |x| push(buf, &[x], false))
                });
            }
        }
        Value::Set(s) => {
            for m in s.members() {
                match m {
                    crate::types::set::Member::Str(b) => push(buf, &[b], false),
                    crate::types::set::Member::Int(v) => {
                        push(buf, &[IntBuf::new(v).as_bytes()], false)
                    }
                }
            }
        }
        Value::Hash(h) => h.for_each(|f, v| with_two(f, v, &mut |f, v| push(buf, &[f, v], false))),
        Value::ZSet(z) => {
            for rank in 0..z.len() {
                let Some((m, sc)) = z.get(rank) else { break };
                push(buf, &[crate::resp::fmt_double(sc).as_bytes(), m], false);
            }
        }
        Value::Str(_) | Value::Stream(_) => {}
    }
    push(buf, &[], true);
    result
}

/// A RESP command, encoded by the storage crate's one AOF command encoder.
fn cmd(out: &mut Vec<u8>, argv: &[&[u8]]) {
    strongbox_storage::resp::encode_command(out, argv);
}

/// One key as the commands that rebuild it (Redis's `rewriteAppendOnlyFileRio`); the caller
/// adds its PEXPIREAT.
fn value_as_commands(out: &mut Vec<u8>, k: &[u8], value: &rdb::Value) {
    let batched = |out: &mut Vec<u8>, name: &[u8], items: Vec<Vec<u8>>, per: usize| {
        for chunk in items.chunks(RESP_ITEMS_PER_CMD * per) {
            let mut argv: Vec<&[u8]> = vec![name, k];
            argv.extend(chunk.iter().map(|x| x.as_slice()));
            cmd(out, &argv);
        }
    };
    match value {
        rdb::Value::String(v) => cmd(out, &[b"SET", k, v]),
        rdb::Value::List(items) => {
            batched(out, b"RPUSH", items.iter().map(|x| x.to_vec()).collect(), 1)
        }
        rdb::Value::Set(items) => {
            batched(out, b"SADD", items.iter().map(|x| x.to_vec()).collect(), 1)
        }
        rdb::Value::Hash(pairs) => batched(
            out,
            b"HMSET",
            pairs
                .iter()
                .flat_map(|(f, v)| [f.to_vec(), v.to_vec()])
                .collect(),
            2,
        ),
        rdb::Value::ZSet(pairs) => batched(
            out,
            b"ZADD",
            pairs
                .iter()
                .flat_map(|(m, sc)| [crate::resp::fmt_double(*sc).into_bytes(), m.to_vec()])
                .collect(),
            2,
        ),
        rdb::Value::Stream(s) => {
            let id = |i: &rdb::StreamId| format!("{}-{}", i.ms, i.seq).into_bytes();
            if s.entries.is_empty() {
                // Create the key with a placeholder entry trimmed away at once, as Redis does:
                // ID 0-1 (the XSETID below sets the real last ID; XADD refuses 0-0, and a
                // stream made by XGROUP CREATE MKSTREAM has that last ID).
                cmd(out, &[b"XADD", k, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
            }
            for en in &s.entries {
                let eid = id(&en.id);
                let mut argv: Vec<&[u8]> = vec![b"XADD", k, &eid];
                for (f, v) in &en.fields {
                    argv.push(f);
                    argv.push(v);
                }
                cmd(out, &argv);
            }
            let last = id(&s.last_id);
            let added = s.entries_added.to_string().into_bytes();
            let maxdel = id(&s.max_deleted_id);
            cmd(
                out,
                &[
                    b"XSETID",
                    k,
                    &last,
                    b"ENTRIESADDED",
                    &added,
                    b"MAXDELETEDID",
                    &maxdel,
                ],
            );
            for g in &s.groups {
                let gid = id(&g.last_id);
                let read = g.entries_read.to_string().into_bytes();
                cmd(
                    out,
                    &[
                        b"XGROUP",
                        b"CREATE",
                        k,
                        &g.name,
                        &gid,
                        b"ENTRIESREAD",
                        &read,
                    ],
                );
                for c in &g.consumers {
                    if c.pending.is_empty() {
                        cmd(out, &[b"XGROUP", b"CREATECONSUMER", k, &g.name, &c.name]);
                    }
                    for pid in &c.pending {
                        let Some(p) = g.pel.iter().find(|p| p.id == *pid) else {
                            continue;
                        };
                        let pidb = id(pid);
                        let t = p.delivery_time_ms.to_string().into_bytes();
                        let n = p.delivery_count.to_string().into_bytes();
                        cmd(
                            out,
                            &[
                                b"XCLAIM",
                                k,
                                &g.name,
                                &c.name,
                                b"0",
                                &pidb,
                                b"TIME",
                                &t,
                                b"RETRYCOUNT",
                                &n,
                                b"JUSTID",
                                b"FORCE",
                            ],
                        );
                    }
                }
            }
        }
    }
}

/// Serialize `key` of `db` now if the running snapshot has not yet (call before mutating it).
pub fn pre_mutate(srv: &mut Server, db: usize, key: &[u8]) {
    let Server { snapshot, dbs, .. } = srv;
    let Some(s) = snapshot.as_mut() else {
        return;
    };
    if s.walk_done {
        return;
    }
    let Some(Db { keys, expires, .. }) = dbs.get_mut(db) else {
        return;
    };
    let Some(o) = keys.get_mut(key) else {
        return;
    };
    if o.snap == s.epoch {
        return;
    }
    o.snap = s.epoch;
    let expire = expires.get(key).copied();
    s.emit(db, key, &o.value, expire);
    s.stats.pre_write_copies += 1;
}

/// Serialize everything left of `db` (before FLUSHDB, FLUSHALL, SWAPDB).
pub fn drain_db(srv: &mut Server, db: usize) {
    let Server { snapshot, dbs, .. } = srv;
    let Some(s) = snapshot.as_mut() else {
        return;
    };
    if s.walk_done {
        return;
    }
    let Some(Db { keys, expires, .. }) = dbs.get_mut(db) else {
        return;
    };
    for (k, o) in keys.iter_mut() {
        if o.snap == s.epoch {
            continue;
        }
        o.snap = s.epoch;
        let expire = expires.get(&k[..]).copied();
        s.emit(db, k, &o.value, expire);
    }
}

/// The hook `exec::call` runs before every write command while a snapshot intercepts writes.
pub fn before_write(srv: &mut Server, db: usize, spec: &CommandSpec, argv: &[Bytes]) {
    let t0 = Instant::now();
    before_write_inner(srv, db, spec, argv);
    if let Some(s) = srv.snapshot.as_mut() {
        let d = t0.elapsed();
        s.stats.max_pre_write_us = s.stats.max_pre_write_us.max(d.as_micros() as u64);
        s.add_work(d);
    }
}

fn before_write_inner(srv: &mut Server, db: usize, spec: &CommandSpec, argv: &[Bytes]) {
    match spec.name {
        "flushdb" => return drain_db(srv, db),
        "flushall" => {
            for d in 0..srv.dbs.len() {
                drain_db(srv, d);
            }
            return;
        }
        "swapdb" => {
            for a in &argv[1..3] {
                if let Some(d) =
                    crate::util::parse_i64(a).filter(|&d| d >= 0 && (d as usize) < srv.dbs.len())
                {
                    drain_db(srv, d as usize);
                }
            }
            return;
        }
        _ => {}
    }
    for p in spec.key_positions(argv) {
        pre_mutate(srv, db, &argv[p]);
    }
    // Keys written outside the key positions of the table.
    let lower = |i: usize| argv.get(i).map(|a| a.to_ascii_lowercase());
    match spec.name {
        "move" => {
            if let Some(d) = argv.get(2).and_then(|a| crate::util::parse_i64(a)) {
                pre_mutate(srv, d.max(0) as usize, &argv[1]);
            }
        }
        "copy" => {
            for i in 3..argv.len() {
                if lower(i).as_deref() == Some(b"db".as_ref()) {
                    if let Some(d) = argv.get(i + 1).and_then(|a| crate::util::parse_i64(a)) {
                        pre_mutate(srv, d.max(0) as usize, &argv[2]);
                    }
                }
            }
        }
        "xreadgroup" => {
            // XREADGROUP … STREAMS k1 … kn id1 … idn: the keys are the first half.
            if let Some(i) =
                (1..argv.len()).find(|&i| lower(i).as_deref() == Some(b"streams".as_ref()))
            {
                let rest = &argv[i + 1..];
                for k in &rest[..rest.len() / 2] {
                    pre_mutate(srv, db, k);
                }
            }
        }
        "sort" => {
            for i in 2..argv.len() {
                if lower(i).as_deref() == Some(b"store".as_ref()) {
                    if let Some(dst) = argv.get(i + 1) {
                        pre_mutate(srv, db, dst);
                    }
                }
            }
        }
        _ => {}
    }
}

/// One walk step per execution round; returns true when the snapshot file is complete (the
/// caller then finishes it with [`finish`]).
pub fn step(srv: &mut Server) -> bool {
    let t0 = Instant::now();
    let Server { snapshot, dbs, .. } = srv;
    let Some(s) = snapshot.as_mut() else {
        return false;
    };
    if !s.drain_backlog() {
        return false;
    }
    if !s.walk_done {
        // Visit keys until the time budget is spent or the channel is full; each database's
        // indices from the top down (see `Db::scan_indices`).
        'walk: while s.db < dbs.len() {
            let Db { keys, expires, .. } = &mut dbs[s.db];
            let (next, range) = Db::scan_indices(keys.len(), s.cursor, WALK_CHECK_KEYS);
            for i in range.rev() {
                let Some((k, o)) = keys.get_index_mut(i) else {
                    continue;
                };
                if o.snap == s.epoch {
                    continue;
                }
                o.snap = s.epoch;
                let expire = if expires.is_empty() {
                    None
                } else {
                    expires.get(&k[..]).copied()
                };
                s.emit(s.db, k, &o.value, expire);
            }
            if next == 0 {
                s.db += 1;
                s.cursor = 0;
            } else {
                s.cursor = next;
            }
            if !s.backlog.is_empty() || t0.elapsed() >= WALK_STEP_BUDGET {
                break 'walk;
            }
        }
        if s.db >= dbs.len() {
            s.walk_done = true;
            NEW_OBJECT_SNAP.store(0, Ordering::Relaxed);
            s.flush_chunk();
            s.backlog.push_back((Chunk::Finish, 0));
            s.drain_backlog();
        }
        let d = t0.elapsed();
        s.stats.max_step_us = s.stats.max_step_us.max(d.as_micros() as u64);
        s.add_work(d);
        return false;
    }
    s.handle.as_ref().is_some_and(|h| h.is_finished())
}

/// How long the execution thread may sleep before the running snapshot wants a step (None:
/// no snapshot).
pub fn next_step_in(srv: &Server) -> Option<Duration> {
    srv.snapshot.as_ref().map(|s| s.next_step_in())
}

/// Join the snapshot thread; on Ok the file is complete, fsynced and in place (for an AOF
/// base: installed in the manifest).
pub fn join(s: &mut Snapshot) -> Result<Finished, String> {
    match s.handle.take() {
        Some(h) => h
            .join()
            .map_err(|_| "the snapshot thread panicked".to_string())?,
        None => Err("snapshot already joined".into()),
    }
}

/// Abort a running snapshot (the temp file is removed).
pub fn abort(srv: &mut Server) {
    if let Some(mut s) = srv.snapshot.take() {
        NEW_OBJECT_SNAP.store(0, Ordering::Relaxed);
        s.aborted.store(true, Ordering::Relaxed);
        drop(std::mem::replace(&mut s.tx, sync_channel(1).0));
        if let Some(h) = s.handle.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&s.temp_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strongbox_storage::rdb::EncodingThresholds;

    /// Mixed elements: small and large integers, short strings, strings LZF compresses.
    fn elem(i: usize) -> Bytes {
        match i % 5 {
            0 => Bytes::from(i.to_string()),
            1 => Bytes::from(format!("-{}", i * 1_000_003)),
            2 => Bytes::from(format!("e{i}")),
            3 => Bytes::from(format!("{i}-{}", "x".repeat(40))),
            _ => Bytes::from(format!("{}{i}", "long element ".repeat(8))),
        }
    }

    fn values(n: usize) -> Vec<rdb::Value> {
        vec![
            rdb::Value::List((0..n).map(elem).collect()),
            rdb::Value::Hash((0..n).map(|i| (elem(i), elem(i * 7))).collect()),
            rdb::Value::Set((0..n).map(elem).collect()),
            rdb::Value::Set((0..n).map(|i| Bytes::from(i.to_string())).collect()),
            rdb::Value::ZSet(
                (0..n)
                    .map(|i| (elem(i), ((i * 37) % 101) as f64 / 3.0 - 10.0))
                    .collect(),
            ),
        ]
    }

    fn file(opts: &WriterOptions, f: impl FnOnce(&mut RdbWriter<Vec<u8>>)) -> Vec<u8> {
        let mut w = RdbWriter::new(Vec::new(), opts.clone()).unwrap();
        f(&mut w);
        w.finish().unwrap()
    }

    /// The streamed serialization of a shared collection is byte for byte what the writer
    /// produces from the whole converted value, for every type, RDB version, list fill and
    /// compression setting — including values small enough for a listpack or an intset (the
    /// fallback path) when the thresholds are raised.
    #[test]
    fn shared_values_serialize_like_whole_values() {
        for n in [1, 5, 1500] {
            for version in [10, 11] {
                for fill in [-2, -1, 7] {
                    for compression in [true, false] {
                        for th_entries in [128usize, 4096] {
                            let th = EncodingThresholds {
                                list_max_listpack_size: fill,
                                hash_max_listpack_entries: th_entries,
                                hash_max_listpack_value: 4096,
                                zset_max_listpack_entries: th_entries,
                                zset_max_listpack_value: 4096,
                                set_max_intset_entries: th_entries,
                                set_max_listpack_entries: th_entries,
                                set_max_listpack_value: 4096,
                                ..EncodingThresholds::default()
                            };
                            let opts = WriterOptions {
                                version,
                                compression,
                                thresholds: th,
                                ..WriterOptions::default()
                            };
                            for v in values(n) {
                                let ours = crate::snapshot::from_rdb(v, &th);
                                let whole = file(&opts, |w| {
                                    write_converted(
                                        w,
                                        3,
                                        b"key",
                                        crate::snapshot::to_rdb(&ours),
                                        Some(1234),
                                    )
                                    .unwrap()
                                });
                                let streamed = file(&opts, |w| {
                                    write_shared(w, &th, version, 3, b"key", &ours, Some(1234))
                                        .unwrap()
                                });
                                assert!(
                                    whole == streamed,
                                    "{} n={n} v{version} fill={fill} lzf={compression} \
                                     th={th_entries}",
                                    ours.type_name()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// In a RESP base, a shared collection becomes the same commands as the whole value.
    #[test]
    fn shared_values_as_commands_like_whole_values() {
        let th = EncodingThresholds::default();
        for v in values(1500) {
            let ours = crate::snapshot::from_rdb(v, &th);
            let mut whole = Vec::new();
            value_as_commands(&mut whole, b"k", &crate::snapshot::to_rdb(&ours));
            let mut streamed = Vec::new();
            let mut out = Vec::new();
            shared_as_commands(&mut streamed, b"k", &ours, &mut |b: &mut Vec<u8>| {
                out.append(b);
                Ok(())
            })
            .unwrap();
            out.append(&mut streamed);
            assert!(whole == out, "{}", ours.type_name());
        }
    }

    /// A value shared with a snapshot is copied on the first write: the snapshot keeps the old
    /// state, the keyspace gets the new one, and the clone is counted.
    #[test]
    fn a_shared_value_is_cloned_on_write() {
        let th = EncodingThresholds::default();
        let mut v = crate::snapshot::from_rdb(rdb::Value::List((0..2000).map(elem).collect()), &th);
        let before = crate::keyspace::COW_CLONES.load(Ordering::Relaxed);
        let snap = v.share().unwrap();
        if let Value::List(l) = &v {
            // Reads do not clone.
            assert_eq!(l.len(), 2000);
        }
        if let Value::List(l) = &mut v {
            l.push_back(b"new");
            l.push_back(b"newer");
        }
        assert!(crate::keyspace::COW_CLONES.load(Ordering::Relaxed) > before);
        assert_eq!(v.elements(), Some(2002));
        assert_eq!(snap.elements(), Some(2000));
        drop(snap);
        if let Value::List(l) = &v {
            assert!(!l.is_shared());
        }
    }
}
