//! Fork-free point-in-time snapshots (BGSAVE) and log compaction (BGREWRITEAOF).
//!
//! A snapshot is taken *by the execution thread, a little at a time*, without copying the
//! dataset: Dragonfly's serialize-before-mutate scheme over our keyspace.
//!
//! - Starting a snapshot bumps an epoch. Every object carries the epoch in which it was last
//!   serialized (`Object::snap`); objects created while the snapshot runs are born with the
//!   current epoch (`keyspace::NEW_OBJECT_SNAP`) because they did not exist at the snapshot point.
//! - Each execution round, the *walk* serializes a budget of keys, visiting each database's
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
//! So the file holds exactly the dataset as of the snapshot start, while commands keep executing.
//! Extra memory: the channel's chunks plus the pre-write copies of keys written during the
//! snapshot (not a copy of the dataset).
//!
//! For BGREWRITEAOF, the log writer first seals the active incr file and opens a new one
//! (`LogWriter::rotate_for_rewrite`) at the same instant the snapshot starts: the new base plus the
//! new incr file hold the whole state. When the base is durable, one atomic manifest switch
//! (`LogWriter::install_base`) replaces the old base and incr files. A crash before the switch
//! leaves the old manifest (old base, old incr files, new incr file) which loads to the same
//! state; a leftover temp file is ignored.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use strongbox_storage::rdb::{self, RdbWriter, WriterOptions};

use crate::cmd::CommandSpec;
use crate::exec::Server;
use crate::keyspace::{Db, NEW_OBJECT_SNAP};

/// Keys the walk serializes per execution round at most.
const WALK_KEYS_PER_ROUND: usize = 512;
/// Entries per chunk sent to the serializer thread.
const CHUNK_ENTRIES_MAX: usize = 256;
/// Approximate bytes per chunk.
const CHUNK_BYTES_MAX: usize = 1 << 20;
/// Chunks in flight to the serializer thread.
const CHANNEL_CHUNKS_MAX: usize = 16;

/// What the snapshot is for.
pub enum Purpose {
    /// BGSAVE: the file becomes `dbfilename`.
    Dump { final_path: PathBuf },
    /// BGREWRITEAOF: the file becomes the new AOF base.
    AofBase {
        ticket: strongbox_storage::aof::writer::RewriteTicket,
        base_name: String,
        aof_dir: PathBuf,
    },
}

/// The file format of a snapshot.
pub enum Format {
    /// An RDB image (dump.rdb, or an AOF base with `aof-use-rdb-preamble yes`).
    Rdb(WriterOptions),
    /// RESP commands (an AOF base with `aof-use-rdb-preamble no`), as Redis's rewrite emits.
    Resp,
}

enum Chunk {
    Entries(Vec<rdb::Entry>),
    Finish,
}

pub struct Snapshot {
    pub epoch: u32,
    pub purpose: Purpose,
    db: usize,
    cursor: u64,
    walk_done: bool,
    chunk: Vec<rdb::Entry>,
    chunk_bytes: usize,
    backlog: VecDeque<Chunk>,
    tx: SyncSender<Chunk>,
    handle: Option<JoinHandle<Result<(), String>>>,
    pub temp_path: PathBuf,
    pub started: Instant,
    pub keys_done: u64,
    pub keys_total: u64,
    /// Largest number of chunks queued beyond the channel (memory high-water mark).
    pub backlog_max: usize,
}

impl Snapshot {
    /// Start a snapshot of `srv` now, written to `temp_path`.
    pub fn start(
        srv: &mut Server,
        purpose: Purpose,
        temp_path: PathBuf,
        file_format: Format,
    ) -> Result<(), String> {
        srv.snap_epoch = srv.snap_epoch.wrapping_add(1).max(1);
        let epoch = srv.snap_epoch;
        let file = std::fs::File::create(&temp_path)
            .map_err(|e| format!("Failed opening the temp file {}: {e}", temp_path.display()))?;
        let (tx, rx) = sync_channel::<Chunk>(CHANNEL_CHUNKS_MAX);
        // RESIZEDB hints for the loader: the sizes at the snapshot point.
        let sizes: Vec<(u64, u64)> = srv
            .dbs
            .iter()
            .map(|d| (d.keys.len() as u64, d.expires.len() as u64))
            .collect();
        let handle = std::thread::Builder::new()
            .name("strongbox-snapshot".into())
            .spawn(move || match file_format {
                Format::Rdb(opts) => serializer(rx, file, opts, sizes),
                Format::Resp => resp_serializer(rx, file),
            })
            .map_err(|e| e.to_string())?;
        NEW_OBJECT_SNAP.store(epoch, Ordering::Relaxed);
        let keys_total = srv.dbs.iter().map(|d| d.len() as u64).sum();
        srv.snapshot = Some(Snapshot {
            epoch,
            purpose,
            db: 0,
            cursor: 0,
            walk_done: false,
            chunk: Vec::new(),
            chunk_bytes: 0,
            backlog: VecDeque::new(),
            tx,
            handle: Some(handle),
            temp_path,
            started: Instant::now(),
            keys_done: 0,
            keys_total,
            backlog_max: 0,
        });
        Ok(())
    }

    /// True while writes must be intercepted.
    pub fn intercepting(&self) -> bool {
        !self.walk_done
    }

    fn emit(&mut self, db: usize, key: &Bytes, d: &Db) {
        let Some(o) = d.keys.get(&key[..]) else {
            return;
        };
        let value = crate::snapshot::to_rdb(&o.value);
        self.chunk_bytes += key.len() + approx_size(&value);
        self.chunk.push(rdb::Entry {
            db: db as u32,
            key: key.clone(),
            value,
            expire_ms: d.expire_of(key),
            idle_secs: None,
            freq: None,
        });
        self.keys_done += 1;
        if self.chunk.len() >= CHUNK_ENTRIES_MAX || self.chunk_bytes >= CHUNK_BYTES_MAX {
            self.flush_chunk();
        }
    }

    fn flush_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let c = Chunk::Entries(std::mem::take(&mut self.chunk));
        self.chunk_bytes = 0;
        self.backlog.push_back(c);
        self.drain_backlog();
    }

    /// Push queued chunks into the channel without blocking. Returns true if none is left.
    fn drain_backlog(&mut self) -> bool {
        while let Some(c) = self.backlog.pop_front() {
            match self.tx.try_send(c) {
                Ok(()) => {}
                Err(TrySendError::Full(c)) => {
                    self.backlog.push_front(c);
                    self.backlog_max = self.backlog_max.max(self.backlog.len());
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => {
                    // The serializer failed; its error is collected at join.
                    self.backlog.clear();
                    return true;
                }
            }
        }
        true
    }
}

fn approx_size(v: &rdb::Value) -> usize {
    match v {
        rdb::Value::String(s) => s.len(),
        rdb::Value::List(l) | rdb::Value::Set(l) => l.iter().map(|x| x.len() + 8).sum(),
        rdb::Value::Hash(h) => h.iter().map(|(a, b)| a.len() + b.len() + 16).sum(),
        rdb::Value::ZSet(z) => z.iter().map(|(a, _)| a.len() + 16).sum(),
        rdb::Value::Stream(s) => s.entries.len() * 64,
    }
}

fn serializer(
    rx: Receiver<Chunk>,
    file: std::fs::File,
    opts: WriterOptions,
    sizes: Vec<(u64, u64)>,
) -> Result<(), String> {
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut w = RdbWriter::new(out, opts).map_err(|e| e.to_string())?;
    let mut cur_db: Option<u32> = None;
    while let Ok(c) = rx.recv() {
        match c {
            Chunk::Entries(entries) => {
                for e in entries {
                    if cur_db != Some(e.db) {
                        let (keys, expires) = sizes.get(e.db as usize).copied().unwrap_or((0, 0));
                        w.begin_db(e.db, keys, expires).map_err(|e| e.to_string())?;
                        cur_db = Some(e.db);
                    }
                    w.write_entry(&e).map_err(|e| e.to_string())?;
                }
            }
            Chunk::Finish => {
                let out = w.finish().map_err(|e| e.to_string())?;
                let mut f = out.into_inner().map_err(|e| e.to_string())?;
                f.flush().map_err(|e| e.to_string())?;
                f.sync_all().map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
    }
    Err("snapshot aborted".into())
}

/// Commands per collection batch in a RESP base (Redis's AOF_REWRITE_ITEMS_PER_CMD).
const RESP_ITEMS_PER_CMD: usize = 64;

fn resp_serializer(rx: Receiver<Chunk>, file: std::fs::File) -> Result<(), String> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut cur_db: Option<u32> = None;
    let mut buf = Vec::with_capacity(1 << 16);
    while let Ok(c) = rx.recv() {
        match c {
            Chunk::Entries(entries) => {
                for e in entries {
                    if cur_db != Some(e.db) {
                        cmd(&mut buf, &[b"SELECT".as_ref(), e.db.to_string().as_bytes()]);
                        cur_db = Some(e.db);
                    }
                    entry_as_commands(&mut buf, &e);
                    if buf.len() >= 1 << 16 {
                        out.write_all(&buf).map_err(|e| e.to_string())?;
                        buf.clear();
                    }
                }
            }
            Chunk::Finish => {
                out.write_all(&buf).map_err(|e| e.to_string())?;
                let f = out.into_inner().map_err(|e| e.to_string())?;
                f.sync_all().map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
    }
    Err("snapshot aborted".into())
}

/// A RESP command, encoded by the storage crate's one AOF command encoder.
fn cmd(out: &mut Vec<u8>, argv: &[&[u8]]) {
    strongbox_storage::resp::encode_command(out, argv);
}

/// One key as the commands that rebuild it (Redis's `rewriteAppendOnlyFileRio`).
fn entry_as_commands(out: &mut Vec<u8>, e: &rdb::Entry) {
    let k: &[u8] = &e.key;
    let batched = |out: &mut Vec<u8>, name: &[u8], items: Vec<Vec<u8>>, per: usize| {
        for chunk in items.chunks(RESP_ITEMS_PER_CMD * per) {
            let mut argv: Vec<&[u8]> = vec![name, k];
            argv.extend(chunk.iter().map(|x| x.as_slice()));
            cmd(out, &argv);
        }
    };
    match &e.value {
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
                // Create the key with a placeholder entry trimmed away at once, as Redis does.
                cmd(
                    out,
                    &[b"XADD", k, b"MAXLEN", b"0", &id(&s.last_id), b"x", b"y"],
                );
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
    if let Some(t) = e.expire_ms {
        cmd(out, &[b"PEXPIREAT", k, t.to_string().as_bytes()]);
    }
}

/// Serialize `key` of `db` now if the running snapshot has not yet (call before mutating it).
pub fn pre_mutate(srv: &mut Server, db: usize, key: &[u8]) {
    let Some(s) = srv.snapshot.as_mut() else {
        return;
    };
    if s.walk_done || db >= srv.dbs.len() {
        return;
    }
    let d = &mut srv.dbs[db];
    let Some((_, k, o)) = d.keys.get_full_mut(key) else {
        return;
    };
    if o.snap == s.epoch {
        return;
    }
    o.snap = s.epoch;
    let k = k.to_bytes();
    s.emit(db, &k, &srv.dbs[db]);
}

/// Serialize everything left of `db` (before FLUSHDB, FLUSHALL, SWAPDB).
pub fn drain_db(srv: &mut Server, db: usize) {
    let Some(s) = srv.snapshot.as_mut() else {
        return;
    };
    if s.walk_done {
        return;
    }
    let n = srv.dbs[db].keys.len();
    for i in 0..n {
        let d = &mut srv.dbs[db];
        let Some((k, o)) = d.keys.get_index_mut(i) else {
            break;
        };
        if o.snap == s.epoch {
            continue;
        }
        o.snap = s.epoch;
        let k = k.to_bytes();
        s.emit(db, &k, &srv.dbs[db]);
    }
}

/// The hook `exec::call` runs before every write command while a snapshot intercepts writes.
pub fn before_write(srv: &mut Server, db: usize, spec: &CommandSpec, argv: &[Bytes]) {
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
    let Some(s) = srv.snapshot.as_mut() else {
        return false;
    };
    if !s.drain_backlog() {
        return false;
    }
    if !s.walk_done {
        let mut budget = WALK_KEYS_PER_ROUND;
        while budget > 0 && s.db < srv.dbs.len() {
            let d = &mut srv.dbs[s.db];
            let (next, range) = Db::scan_indices(d.keys.len(), s.cursor, budget);
            budget = budget.saturating_sub(range.len().max(1));
            for i in range.rev() {
                let d = &mut srv.dbs[s.db];
                let Some((k, o)) = d.keys.get_index_mut(i) else {
                    continue;
                };
                if o.snap == s.epoch {
                    continue;
                }
                o.snap = s.epoch;
                let k = k.to_bytes();
                s.emit(s.db, &k, &srv.dbs[s.db]);
            }
            if next == 0 {
                s.db += 1;
                s.cursor = 0;
            } else {
                s.cursor = next;
            }
        }
        if s.db >= srv.dbs.len() {
            s.walk_done = true;
            NEW_OBJECT_SNAP.store(0, Ordering::Relaxed);
            s.flush_chunk();
            s.backlog.push_back(Chunk::Finish);
            s.drain_backlog();
        }
        return false;
    }
    s.handle.as_ref().is_some_and(|h| h.is_finished())
}

/// Join the serializer; the file at `temp_path` is complete and fsynced on Ok.
pub fn join(s: &mut Snapshot) -> Result<(), String> {
    match s.handle.take() {
        Some(h) => h
            .join()
            .map_err(|_| "the snapshot thread panicked".to_string())?,
        None => Err("snapshot already joined".into()),
    }
}

/// Abort a running snapshot (the file is removed).
pub fn abort(srv: &mut Server) {
    if let Some(mut s) = srv.snapshot.take() {
        NEW_OBJECT_SNAP.store(0, Ordering::Relaxed);
        drop(std::mem::replace(&mut s.tx, sync_channel(1).0));
        if let Some(h) = s.handle.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&s.temp_path);
    }
}
