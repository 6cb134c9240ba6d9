//! Snapshots: conversion between the keyspace's values and the RDB codec's neutral values, and
//! loading/saving whole RDB files (SAVE, DEBUG RELOAD, dump.rdb at start, RDB bases).

use std::io::{Read, Write};

use bytes::Bytes;
use strongbox_storage::rdb::{
    self, AuxFields, EncodingThresholds, Item, RdbReader, RdbWriter, ReaderOptions, WriterOptions,
};

use crate::config::Config;
use crate::exec::Server;
use crate::keyspace::table::KeyHasher;
use crate::keyspace::{CompactBytes, Object, Value};
use crate::types::{
    hash::{Hash, HashLimits},
    list::List,
    set::{Set, SetLimits},
    zset::{ZSet, ZSetLimits},
};

/// Encoding thresholds from the live configuration.
pub fn thresholds(cfg: &Config) -> EncodingThresholds {
    let u = |n: &str| cfg.get_i64(n).max(0) as usize;
    EncodingThresholds {
        hash_max_listpack_entries: u("hash-max-listpack-entries"),
        hash_max_listpack_value: u("hash-max-listpack-value"),
        zset_max_listpack_entries: u("zset-max-listpack-entries"),
        zset_max_listpack_value: u("zset-max-listpack-value"),
        list_max_listpack_size: cfg.get_i64("list-max-listpack-size"),
        list_compress_depth: u("list-compress-depth"),
        set_max_intset_entries: u("set-max-intset-entries"),
        set_max_listpack_entries: u("set-max-listpack-entries"),
        set_max_listpack_value: u("set-max-listpack-value"),
        ..EncodingThresholds::default()
    }
}

fn b(x: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(x.as_ref())
}

/// Our value → the codec's value (copies element bytes).
pub fn to_rdb(v: &Value) -> rdb::Value {
    match v {
        Value::Str(s) => rdb::Value::String(s.to_bytes()),
        Value::List(l) => rdb::Value::List(l.iter().map(b).collect()),
        Value::Hash(h) => rdb::Value::Hash(h.iter().map(|(f, v)| (b(f), b(v))).collect()),
        Value::Set(s) => rdb::Value::Set(s.iter().map(b).collect()),
        Value::ZSet(z) => rdb::Value::ZSet(z.iter().map(|(m, s)| (b(m), s)).collect()),
        Value::Stream(s) => rdb::Value::Stream(s.to_rdb()),
    }
}

/// The codec's value → ours, with representations chosen by the thresholds.
pub fn from_rdb(v: rdb::Value, th: &EncodingThresholds) -> Value {
    match v {
        rdb::Value::String(s) => Value::Str(s.into()),
        rdb::Value::List(items) => {
            Value::List(crate::keyspace::Shared::new(List::from_items_with(
                items,
                th.list_max_listpack_size,
                th.list_compress_depth as i64,
            )))
        }
        rdb::Value::Hash(pairs) => Value::Hash(crate::keyspace::Shared::new(Hash::from_pairs(
            pairs,
            HashLimits {
                max_entries: th.hash_max_listpack_entries,
                max_value: th.hash_max_listpack_value,
            },
        ))),
        rdb::Value::Set(members) => Value::Set(crate::keyspace::Shared::new(Set::from_members(
            members,
            SetLimits {
                max_intset_entries: th.set_max_intset_entries,
            },
        ))),
        rdb::Value::ZSet(pairs) => Value::ZSet(crate::keyspace::Shared::new(ZSet::from_pairs(
            pairs,
            ZSetLimits {
                max_listpack_entries: th.zset_max_listpack_entries,
                max_listpack_value: th.zset_max_listpack_value,
            },
        ))),
        rdb::Value::Stream(s) => Value::Stream(crate::keyspace::Shared::new(
            crate::types::stream::Stream::from_rdb(s),
        )),
    }
}

/// Largest table pre-sizing taken from a RESIZEDB hint.
const RESERVE_KEYS_MAX: usize = 64 << 20;
/// Images smaller than this are decoded on the loading thread itself: a second thread would
/// cost more than it saves.
pub const PARALLEL_LOAD_BYTES_MIN: usize = 1 << 20;
/// Decoded entries handed from the decoding thread to the inserting thread at a time.
const LOAD_CHUNK_ENTRIES: usize = 512;
/// ... and at most about this many bytes of the image: clients served while loading
/// (`loading.rs`) are served between chunks, once per `loading-process-events-interval-bytes`
/// (2 MiB by default), which large entries would otherwise stretch.
const LOAD_CHUNK_BYTES_MAX: u64 = 1 << 20;
/// Chunks in flight between the two threads (bounds the decoded values held in memory).
const LOAD_CHUNKS_IN_FLIGHT: usize = 32;

#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    pub keys: u64,
    pub expired_skipped: u64,
    /// The keys left out as expired (database, name), in file order: a master restarted from
    /// its RDB feeds their DELs to its new backlog (`master::restore_history`).
    pub expired_keys: Vec<(u32, Bytes)>,
    /// The `repl-stream-db` AUX field: the database selected in the replication stream at
    /// the payload's offset (a replica's master link starts there, as Redis's).
    pub repl_stream_db: Option<u32>,
    /// The `repl-id` and `repl-offset` AUX fields: the replication history the dataset is the
    /// exact image of (a restarted replica continues from there).
    pub repl_id: Option<String>,
    pub repl_offset: Option<i64>,
}

/// How [`load_rdb_bytes`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Decode and insert on the calling thread.
    Sequential,
    /// One thread decodes (parsing, checks, CRC-64, building values) while the calling thread
    /// inserts; sequential for images under [`PARALLEL_LOAD_BYTES_MIN`].
    Parallel,
}

/// One decoded item, in file order, as the inserting side needs it.
enum Decoded {
    Entry {
        db: u32,
        /// The key as the keyspace stores it, and its hash there when `db` exists (both made on
        /// the decoding thread, so the inserting thread reads no key bytes out of line).
        key: CompactBytes,
        hash: Option<u64>,
        value: Value,
        expire_ms: Option<i64>,
        idle_secs: Option<u64>,
        freq: Option<u8>,
    },
    ModuleAux(String),
    /// The `repl-stream-db` AUX field.
    ReplStreamDb(u32),
    /// The `repl-id` AUX field.
    ReplId(String),
    /// The `repl-offset` AUX field.
    ReplOffset(i64),
    /// A function library (FUNCTION2): its code.
    Function(Bytes),
    SelectDb(u32),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
}

/// A reader [`decode_all`] can drain: both sources give [`rdb::ItemRef`]s (the in-memory one
/// lends plain string entries instead of copying them).
trait ItemSource {
    fn next_ref(&mut self) -> Result<Option<rdb::ItemRef<'_>>, rdb::RdbError>;
    /// Bytes of the image read so far.
    fn offset(&self) -> u64;
}

impl ItemSource for RdbReader<rdb::SliceSource<'_>> {
    #[inline]
    fn next_ref(&mut self) -> Result<Option<rdb::ItemRef<'_>>, rdb::RdbError> {
        self.next_item_ref()
    }
    fn offset(&self) -> u64 {
        RdbReader::offset(self)
    }
}

impl<R: Read> ItemSource for RdbReader<rdb::IoSource<R>> {
    fn next_ref(&mut self) -> Result<Option<rdb::ItemRef<'_>>, rdb::RdbError> {
        self.next_item_ref()
    }
    fn offset(&self) -> u64 {
        RdbReader::offset(self)
    }
}

/// Decodes items until EOF (Ok) or an error (Err with the reader's message), handing them to
/// `emit` in chunks, each with the image's offset after it. Stops early, with Ok, when `emit`
/// returns false (the receiving side has stopped).
fn decode_all<Rd: ItemSource>(
    reader: &mut Rd,
    th: &EncodingThresholds,
    hashers: &[KeyHasher],
    chunk: usize,
    mut emit: impl FnMut(Vec<Decoded>, u64) -> bool,
) -> Result<(), String> {
    let mut out = Vec::with_capacity(chunk);
    let mut chunk_start = reader.offset();
    loop {
        let item = match reader.next_ref() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                // Everything decoded before the damage is inserted first, as a sequential
                // load would have done.
                if !out.is_empty() {
                    emit(out, reader.offset());
                }
                return Err(e.to_string());
            }
        };
        let d = match item {
            // A string key with a string value, borrowed from the image: its bytes are copied
            // once, straight into the keyspace's representations.
            rdb::ItemRef::Str(e) => Decoded::Entry {
                db: e.db,
                hash: hashers.get(e.db as usize).map(|h| h.hash(e.key)),
                key: CompactBytes::key(e.key),
                value: Value::Str(CompactBytes::from_slice(e.value)),
                expire_ms: e.expire_ms,
                idle_secs: None,
                freq: None,
            },
            rdb::ItemRef::Item(item) => match item {
                Item::Entry(e) => Decoded::Entry {
                    db: e.db,
                    hash: hashers.get(e.db as usize).map(|h| h.hash(&e.key)),
                    key: CompactBytes::key(&e.key),
                    value: from_rdb(e.value, th),
                    expire_ms: e.expire_ms,
                    idle_secs: e.idle_secs,
                    freq: e.freq,
                },
                Item::ModuleAux { module, .. } => Decoded::ModuleAux(module),
                Item::Aux { key, value } => {
                    let text = std::str::from_utf8(&value).ok();
                    match &key[..] {
                        b"repl-stream-db" => match text.and_then(|v| v.parse().ok()) {
                            Some(db) => Decoded::ReplStreamDb(db),
                            None => continue,
                        },
                        b"repl-offset" => match text.and_then(|v| v.parse().ok()) {
                            Some(off) => Decoded::ReplOffset(off),
                            None => continue,
                        },
                        b"repl-id" => match text.filter(|v| is_replid(v)) {
                            Some(id) => Decoded::ReplId(id.to_string()),
                            None => continue,
                        },
                        _ => continue,
                    }
                }
                Item::Function(code) => Decoded::Function(code),
                Item::SelectDb(db) => Decoded::SelectDb(db),
                Item::ResizeDb {
                    db_size,
                    expires_size,
                } => Decoded::ResizeDb {
                    db_size,
                    expires_size,
                },
                Item::Eof { .. } => break,
            },
        };
        out.push(d);
        let offset = reader.offset();
        if out.len() >= chunk || offset - chunk_start >= LOAD_CHUNK_BYTES_MAX {
            chunk_start = offset;
            if !emit(
                std::mem::replace(&mut out, Vec::with_capacity(chunk)),
                offset,
            ) {
                return Ok(());
            }
        }
    }
    if !out.is_empty() {
        emit(out, reader.offset());
    }
    Ok(())
}

/// The inserting side of a load.
struct Inserter {
    aof_base: bool,
    now: i64,
    lru: u32,
    cur_db: usize,
    stats: LoadStats,
    /// Per database: how its entries are inserted (decided at its first entry).
    bulk: Vec<BulkState>,
    /// A key or library that exists already is replaced (every load but DEBUG RELOAD
    /// NOFLUSH without MERGE, where it fails the load as Redis's without RDBFLAGS_ALLOW_DUP).
    replace: bool,
}

/// A database that was empty when the load reached it is filled in bulk: entries are appended
/// unindexed (the key table's vector grows front to back) and indexed once at the end, in the
/// index's bucket order ([`KeyTable::index_appended`]); one by one, each insert into an index
/// of millions of slots cost a cache miss or two, which was most of the inserting thread's time.
enum BulkState {
    Undecided,
    /// Not empty at its first entry: insert one by one (replacing keys that exist).
    Off,
    On(Bulk),
}

#[derive(Default)]
struct Bulk {
    /// Hash of every appended entry, in position order.
    hashes: Vec<u64>,
    /// (position, expiry) of appended entries with a TTL, applied once indexed.
    expires: Vec<(usize, i64)>,
}

impl Inserter {
    fn new(srv: &Server, aof_base: bool) -> Inserter {
        Inserter {
            aof_base,
            now: crate::util::now_ms(),
            lru: srv.lru_clock,
            cur_db: 0,
            stats: LoadStats::default(),
            bulk: (0..srv.dbs.len()).map(|_| BulkState::Undecided).collect(),
            replace: true,
        }
    }

    /// Index what was appended in bulk. Must run before the keyspace is used, whether the load
    /// succeeded or stopped at an error (entries before the damage stay loaded).
    fn finish(&mut self, srv: &mut Server) {
        for (db, state) in self.bulk.iter_mut().enumerate() {
            let BulkState::On(bulk) = std::mem::replace(state, BulkState::Undecided) else {
                continue;
            };
            let d = &mut srv.dbs[db];
            let lost = d.keys.index_appended(0, &bulk.hashes);
            drop(bulk.hashes);
            // A key that appeared twice keeps its later entry, TTL included (the earlier
            // entry's expiry, if any, is not applied; the later one's is).
            let kept: Vec<(CompactBytes, i64)> = bulk
                .expires
                .into_iter()
                .filter(|&(p, _)| !u32::try_from(p).is_ok_and(|p| lost.binary_search(&p).is_ok()))
                .filter_map(|(p, t)| d.keys.get_index(p).map(|(k, _)| (k.clone(), t)))
                .collect();
            d.expires.extend_in_bulk(kept.into_iter());
            d.keys.remove_unindexed(&lost);
        }
    }

    /// [`Inserter::apply`] while clients are served (`Server::loading`): `key-load-delay`
    /// per entry, then the serving hook, once per `loading-process-events-interval-bytes` of
    /// the image (`offset`: where the chunk holding `d` ends). Err when a shutdown stops the
    /// load.
    fn apply_loading(&mut self, srv: &mut Server, d: Decoded, offset: u64) -> Result<(), String> {
        let entry = matches!(d, Decoded::Entry { .. });
        self.apply(srv, d)?;
        if entry {
            crate::loading::key_delay(srv);
        }
        crate::loading::progress_in_image(srv, offset)
    }

    fn apply(&mut self, srv: &mut Server, d: Decoded) -> Result<(), String> {
        match d {
            Decoded::Entry {
                db,
                key,
                hash,
                value,
                expire_ms,
                idle_secs,
                freq,
            } => {
                let db = db as usize;
                if db >= srv.dbs.len() {
                    return Err(format!(
                        "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting",
                        srv.dbs.len()
                    ));
                }
                if !self.aof_base && expire_ms.is_some_and(|t| t < self.now) {
                    self.stats.expired_skipped += 1;
                    self.stats
                        .expired_keys
                        .push((db as u32, Bytes::copy_from_slice(&key[..])));
                    return Ok(());
                }
                let mut obj = Object::new(value, self.lru);
                if let Some(f) = freq {
                    obj.set_freq(f);
                }
                if let Some(idle) = idle_secs {
                    obj.set_lru(self.lru.wrapping_sub(idle as u32));
                }
                // Existing keys with the same name are replaced, TTL included.
                let d = &mut srv.dbs[db];
                if matches!(self.bulk[db], BulkState::Undecided) {
                    self.bulk[db] = if d.keys.is_empty() && d.expires.is_empty() {
                        BulkState::On(Bulk::default())
                    } else {
                        BulkState::Off
                    };
                }
                if let BulkState::On(bulk) = &mut self.bulk[db] {
                    let h = hash.unwrap_or_else(|| d.keys.hasher().hash(&key));
                    let p = d.keys.push_unindexed(key, obj);
                    bulk.hashes.push(h);
                    if let Some(t) = expire_ms {
                        bulk.expires.push((p, t));
                    }
                    self.stats.keys += 1;
                    return Ok(());
                }
                if !self.replace && d.keys.get(&key[..]).is_some() {
                    return Err(format!(
                        "RDB has duplicated key '{}' in DB {db}",
                        String::from_utf8_lossy(&key)
                    ));
                }
                let expire = expire_ms.map(|t| (key.clone(), t));
                match hash {
                    Some(h) => d.insert_hashed(h, key, obj),
                    None => d.insert(&key[..], obj),
                };
                if let Some((key, t)) = expire {
                    d.set_expire(&key, t);
                }
                self.stats.keys += 1;
            }
            Decoded::ModuleAux(module) => {
                return Err(format!(
                    "The RDB file contains AUX module data for the module '{module}', which Strongbox does not support"
                ));
            }
            Decoded::Function(code) => {
                crate::cmd::function::load_from_rdb(srv, &code, self.replace)?
            }
            Decoded::SelectDb(db) => self.cur_db = db as usize,
            Decoded::ReplStreamDb(db) => self.stats.repl_stream_db = Some(db),
            Decoded::ReplId(id) => self.stats.repl_id = Some(id),
            Decoded::ReplOffset(off) => self.stats.repl_offset = Some(off),
            Decoded::ResizeDb {
                db_size,
                expires_size,
            } => {
                // Size the tables once, as Redis does with RESIZEDB, instead of rehashing
                // while loading (capped: the hint comes from the file).
                if let Some(d) = srv.dbs.get_mut(self.cur_db) {
                    let want = (db_size as usize).min(RESERVE_KEYS_MAX);
                    d.keys.reserve(want.saturating_sub(d.keys.len()));
                    let want = (expires_size as usize).min(RESERVE_KEYS_MAX);
                    d.expires.reserve(want.saturating_sub(d.expires.len()));
                }
            }
        }
        Ok(())
    }
}

/// Each database's key hasher, for the decoding side.
fn key_hashers(srv: &Server) -> Vec<KeyHasher> {
    srv.dbs.iter().map(|d| d.keys.hasher()).collect()
}

/// Decode and insert on this thread.
fn load_sequential<Rd: ItemSource>(
    srv: &mut Server,
    reader: &mut Rd,
    aof_base: bool,
    replace: bool,
) -> Result<LoadStats, String> {
    let th = thresholds(&srv.cfg);
    let mut ins = Inserter::new(srv, aof_base);
    ins.replace = replace;
    let mut failed = None;
    let hashers = key_hashers(srv);
    let decoded = decode_all(reader, &th, &hashers, 1, |chunk, offset| {
        for d in chunk {
            if let Err(e) = ins.apply_loading(srv, d, offset) {
                failed = Some(e);
                return false;
            }
        }
        true
    });
    ins.finish(srv);
    if let Some(e) = failed {
        return Err(e);
    }
    decoded.map(|()| ins.stats)
}

/// Load an RDB stream into the server's databases (existing keys with the same name are
/// replaced). `aof_base`: keys already expired are kept (the log that follows decides), as Redis
/// does for an AOF preamble; otherwise they are skipped.
pub fn load_rdb<R: Read>(srv: &mut Server, input: R, aof_base: bool) -> Result<LoadStats, String> {
    load_rdb_counted(srv, input, aof_base).map(|(s, _)| s)
}

/// [`load_rdb`] of a dump.rdb into a dataset that is kept (DEBUG RELOAD NOFLUSH): a key or a
/// library that exists already fails the load, unless `merge` (then it is replaced).
pub fn load_rdb_over<R: Read>(
    srv: &mut Server,
    input: R,
    merge: bool,
) -> Result<LoadStats, String> {
    let mut reader = RdbReader::with_options(
        input,
        ReaderOptions {
            verify_checksum: true,
        },
    )
    .map_err(|e| e.to_string())?;
    load_sequential(srv, &mut reader, true, merge)
}

/// [`load_rdb`], also returning how many bytes the RDB image took (through its checksum): an
/// AOF base may continue with RESP commands after it.
pub fn load_rdb_counted<R: Read>(
    srv: &mut Server,
    input: R,
    aof_base: bool,
) -> Result<(LoadStats, u64), String> {
    let mut reader = RdbReader::with_options(
        input,
        ReaderOptions {
            verify_checksum: true,
        },
    )
    .map_err(|e| e.to_string())?;
    let stats = load_sequential(srv, &mut reader, aof_base, true)?;
    Ok((stats, reader.offset()))
}

/// [`load_rdb_counted`] for an image in memory (a dump.rdb or an AOF base read whole): the
/// reader works on the slice directly, and with [`LoadMode::Parallel`] a second thread decodes
/// while this one inserts. Same keyspace, same errors, as the sequential load: entries decoded
/// before a damaged one are inserted before the error is returned.
pub fn load_rdb_bytes(
    srv: &mut Server,
    data: &[u8],
    aof_base: bool,
    mode: LoadMode,
) -> Result<(LoadStats, u64), String> {
    let opts = ReaderOptions {
        verify_checksum: true,
    };
    let mut reader = RdbReader::from_slice(data, opts).map_err(|e| e.to_string())?;
    if mode == LoadMode::Sequential || data.len() < PARALLEL_LOAD_BYTES_MIN {
        let stats = load_sequential(srv, &mut reader, aof_base, true)?;
        return Ok((stats, reader.offset()));
    }
    let th = thresholds(&srv.cfg);
    let hashers = key_hashers(srv);
    let mut ins = Inserter::new(srv, aof_base);
    // With `key-load-delay` (tests' slow loads) one entry per chunk, so that clients are
    // served at Redis's cadence (once per `loading-process-events-interval-bytes`).
    let chunk = if srv.loading.as_ref().is_some_and(|l| l.key_delay_us != 0) {
        1
    } else {
        LOAD_CHUNK_ENTRIES
    };
    // Ok(true): loaded; Ok(false): no second thread could be started, nothing was read yet.
    let loaded = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Decoded>, u64)>(LOAD_CHUNKS_IN_FLIGHT);
        let reader = &mut reader;
        let decoder = std::thread::Builder::new()
            .name("strongbox-load".into())
            .spawn_scoped(scope, move || {
                decode_all(reader, &th, &hashers, chunk, |chunk, offset| {
                    tx.send((chunk, offset)).is_ok()
                })
            });
        let decoder = match decoder {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!("no loading thread ({e}); loading sequentially");
                return Ok(false);
            }
        };
        let mut failed = None;
        'recv: for (chunk, offset) in rx.iter() {
            if srv.loading.is_some() {
                // Serving clients while loading: the delay per key, the hook per chunk.
                let delay = srv.loading.as_ref().is_some_and(|l| l.key_delay_us != 0);
                for d in chunk {
                    let entry = matches!(d, Decoded::Entry { .. });
                    if let Err(e) = ins.apply(srv, d) {
                        failed = Some(e);
                        break 'recv;
                    }
                    if delay && entry {
                        crate::loading::key_delay(srv);
                    }
                }
                if let Err(e) = crate::loading::progress_in_image(srv, offset) {
                    failed = Some(e);
                    break 'recv;
                }
                continue;
            }
            for d in chunk {
                if let Err(e) = ins.apply(srv, d) {
                    failed = Some(e);
                    break 'recv;
                }
            }
        }
        // Stops the decoder if it is still running (its next send fails).
        drop(rx);
        let decoded = decoder
            .join()
            .unwrap_or_else(|_| Err("the RDB decoding thread panicked".to_string()));
        ins.finish(srv);
        match failed {
            Some(e) => Err(e),
            None => decoded.map(|()| true),
        }
    })?;
    let stats = if loaded {
        ins.stats
    } else {
        load_sequential(srv, &mut reader, aof_base, true)?
    };
    Ok((stats, reader.offset()))
}

/// Writer options from the live configuration.
/// A replication id as Redis writes it: 40 hex digits.
fn is_replid(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn writer_options(srv: &Server, aof_base: bool) -> WriterOptions {
    // A replica's snapshot (not an AOF base, as Redis) names the replication history it is
    // the exact image of, so that after a restart it continues from there (psync2).
    // A master's too, once it has a backlog (Redis's `rdbPopulateSaveInfo`): restarted, it
    // lets its replicas continue (`master::restore_history`).
    let repl = match &srv.replica {
        Some(r) => r
            .psync
            .as_ref()
            .map(|(id, off)| (id.clone(), *off, r.master.db as i64)),
        None => srv.master.backlog.as_ref().and_then(|_| {
            let off = srv.log.repl_offset()?;
            Some((
                srv.master.replid.clone(),
                off,
                i64::from(srv.log.stream_db()),
            ))
        }),
    }
    .filter(|_| !aof_base)
    .map(|(id, offset, stream_db)| rdb::writer::ReplInfo {
        stream_db,
        id,
        offset,
    });
    WriterOptions {
        compression: srv.cfg.get_bool("rdbcompression"),
        checksum: srv.cfg.get_bool("rdbchecksum"),
        thresholds: thresholds(&srv.cfg),
        aux: AuxFields {
            redis_ver: crate::REDIS_COMPAT_VERSION.to_string(),
            ctime: crate::util::now_ms() / 1000,
            used_mem: crate::util::rss_bytes(),
            aof_base,
            repl,
            ..AuxFields::default()
        },
        ..WriterOptions::default()
    }
}

/// Write the whole dataset as RDB (synchronous: SAVE, DEBUG RELOAD, SHUTDOWN SAVE).
pub fn write_rdb<W: Write>(srv: &Server, out: W, aof_base: bool) -> Result<W, String> {
    let mut w = RdbWriter::new(out, writer_options(srv, aof_base)).map_err(|e| e.to_string())?;
    let delay = srv.cfg.get_i64("rdb-key-save-delay");
    let mut nkeys = 0u64;
    // Function libraries first, as Redis writes them.
    for code in crate::cmd::function::library_codes(srv) {
        w.write_function(&code).map_err(|e| e.to_string())?;
    }
    for (i, db) in srv.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        w.begin_db(i as u32, db.keys.len() as u64, db.expires.len() as u64)
            .map_err(|e| e.to_string())?;
        for (k, o) in db.keys.iter() {
            write_entry(&mut w, i, k, o, db.expire_of(k), srv.lru_clock)?;
            key_save_delay(delay, &mut nkeys);
        }
    }
    w.finish().map_err(|e| e.to_string())
}

/// `rdb-key-save-delay` (a testing knob, as in Redis) in a synchronous save: this many
/// microseconds after each key; a negative -N, 1 µs after one key in N.
fn key_save_delay(delay: i64, nkeys: &mut u64) {
    *nkeys += 1;
    let us = match delay {
        0 => return,
        n if n > 0 => n as u64,
        n if (*nkeys).is_multiple_of(n.unsigned_abs()) => 1,
        _ => return,
    };
    std::thread::sleep(std::time::Duration::from_micros(us));
}

pub fn write_entry<W: Write>(
    w: &mut RdbWriter<W>,
    db: usize,
    key: &[u8],
    o: &Object,
    expire_ms: Option<i64>,
    _lru_now: u32,
) -> Result<(), String> {
    let entry = rdb::Entry {
        db: db as u32,
        key: Bytes::copy_from_slice(key),
        value: to_rdb(&o.value),
        expire_ms,
        idle_secs: None,
        freq: None,
    };
    w.write_entry(&entry).map_err(|e| e.to_string())
}

/// Save the dataset to `<dir>/<dbfilename>` atomically (temp file, fsync, rename, fsync dir).
pub fn save_to_dbfilename(srv: &Server) -> Result<(), String> {
    let dir = srv.cfg.dir();
    let name = srv.cfg.get("dbfilename").to_string();
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let f = crate::util::create_fresh_file(&tmp).map_err(|e| {
        format!(
            "Failed opening the temp RDB file {} (in server root dir {}) for saving: {e}",
            tmp.display(),
            dir.display()
        )
    })?;
    let w = std::io::BufWriter::with_capacity(1 << 20, f);
    let w = write_rdb(srv, w, false)?;
    let f = w.into_inner().map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    drop(f);
    let tmp_name = tmp
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    strongbox_storage::fs::install_file(&strongbox_storage::fs::RealFs, &dir, &tmp_name, &name)
        .map_err(|e| format!("Error moving temp DB file on the final destination: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server::new(Config::from_args(&[]).expect("default config"))
    }

    /// The keyspace as comparable data (order-free: keys sorted).
    fn keyspace(srv: &Server) -> Vec<(usize, Vec<u8>, rdb::Value, Option<i64>)> {
        let mut out = Vec::new();
        for (i, db) in srv.dbs.iter().enumerate() {
            for (k, o) in db.keys.iter() {
                out.push((i, k.to_vec(), to_rdb(&o.value).canonical(), db.expire_of(k)));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }

    fn load_both(data: &[u8], aof_base: bool) -> (String, String) {
        let mut a = server();
        let ra = load_rdb_bytes(&mut a, data, aof_base, LoadMode::Sequential)
            .map(|(s, n)| (s.keys, s.expired_skipped, n));
        let mut b = server();
        let rb = load_rdb_bytes(&mut b, data, aof_base, LoadMode::Parallel)
            .map(|(s, n)| (s.keys, s.expired_skipped, n));
        // The streaming reader over `Read` (DEBUG RELOAD, tools) agrees too.
        let mut c = server();
        let rc =
            load_rdb_counted(&mut c, data, aof_base).map(|(s, n)| (s.keys, s.expired_skipped, n));
        let ka = keyspace(&a);
        assert!(ka == keyspace(&b), "parallel load gave another keyspace");
        assert!(ka == keyspace(&c), "streaming load gave another keyspace");
        assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
        assert_eq!(format!("{ra:?}"), format!("{rc:?}"));
        (format!("{ra:?}"), format!("{}", ka.len()))
    }

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    #[test]
    fn parallel_rdb_load_gives_the_sequential_keyspace_on_fixtures() {
        for name in [
            "redis-7.0-all-types.rdb",
            "redis-7.0-all-types-uncompressed.rdb",
            "valkey-8.0-all-types.rdb",
        ] {
            let data = fixture(name);
            assert!(
                data.len() >= PARALLEL_LOAD_BYTES_MIN,
                "{name} too small to test"
            );
            for aof_base in [false, true] {
                let (r, n) = load_both(&data, aof_base);
                assert!(r.starts_with("Ok("), "{name}: {r}");
                assert!(n != "0", "{name}: nothing loaded");
            }
        }
    }

    /// Many string keys (the entries the decoding thread borrows from the image): every length
    /// encoding, integer-like values, expires past and future, two databases, a list between.
    fn string_heavy_image() -> Vec<u8> {
        let mut srv = server();
        let now = crate::util::now_ms();
        for db in [0usize, 5] {
            for i in 0..40_000usize {
                let key = format!("key:{db}:{i:07}");
                // Incompressible bytes, so that long values stay plain strings (not LZF).
                let mut x = i as u64 * 2 + db as u64 + 1;
                let mut noise = |n: usize| -> Vec<u8> {
                    (0..n)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect()
                };
                let value = match i % 5 {
                    0 => i.to_string().into_bytes(),
                    1 => format!("val:{i:07}").into_bytes(),
                    2 => noise(i % 100),
                    3 if i % 1000 == 3 => noise(16_380 + i % 8),
                    3 => noise(64 + i % 300),
                    _ => Vec::new(),
                };
                let obj = Object::new(Value::Str(CompactBytes::from_slice(&value)), 0);
                srv.dbs[db].insert(key.as_bytes(), obj);
                match i % 7 {
                    0 => srv.dbs[db].set_expire(key.as_bytes(), now - 60_000),
                    1 => srv.dbs[db].set_expire(key.as_bytes(), now + 3_600_000),
                    _ => {}
                }
            }
            let list = Value::List(crate::keyspace::Shared::new(List::from_items(vec![
                b("a"),
                b("b"),
            ])));
            srv.dbs[db].insert(b"list", Object::new(list, 0));
        }
        write_rdb(&srv, Vec::new(), false).expect("write")
    }

    #[test]
    fn borrowed_string_entries_load_like_the_streaming_reader() {
        let data = string_heavy_image();
        assert!(data.len() >= PARALLEL_LOAD_BYTES_MIN);
        // 5,715 keys of each database expired (i % 7 == 0) are skipped unless it is a base.
        let (r, n) = load_both(&data, false);
        assert!(r.starts_with("Ok((68572, 11430,"), "{r}");
        assert_eq!(n, "68572");
        let (r, n) = load_both(&data, true);
        assert!(r.starts_with("Ok((80002, 0,"), "{r}");
        assert_eq!(n, "80002");
        for cut in [data.len() / 3, data.len() - 9] {
            let (r, _) = load_both(&data[..cut], true);
            assert!(r.starts_with("Err("), "cut at {cut}: {r}");
        }
    }

    /// An image naming keys more than once (Redis refuses it; Strongbox keeps the later entry,
    /// TTL included, as inserting one by one does): loading it into an empty server (bulk
    /// path) gives what loading it into a server whose databases already hold other keys
    /// (one-by-one path) gives, minus those keys.
    #[test]
    fn a_key_repeated_in_an_image_keeps_its_last_entry_in_bulk_and_one_by_one() {
        let srv = server();
        let now = crate::util::now_ms();
        let mut w = RdbWriter::new(Vec::new(), writer_options(&srv, false)).expect("writer");
        let s = |v: &str| Object::new(Value::Str(CompactBytes::from_slice(v.as_bytes())), 0);
        let later = now + 3_600_000;
        for db in [0usize, 3] {
            w.begin_db(db as u32, 10, 4).expect("db");
            let entries: [(&str, &str, Option<i64>); 10] = [
                ("a", "a1", Some(later)),
                ("b", "b1", None),
                ("c", "c1", None),
                ("a", "a2", None),
                ("b", "b2", Some(later + 1)),
                ("long-key-of-more-than-sixteen-bytes", "l1", None),
                ("c", "c2", Some(later + 2)),
                ("c", "c3", None),
                ("long-key-of-more-than-sixteen-bytes", "l2", Some(later + 3)),
                ("d", "d1", Some(later + 4)),
            ];
            for (k, v, t) in entries {
                write_entry(&mut w, db, k.as_bytes(), &s(v), t, 0).expect("entry");
            }
        }
        let data = w.finish().expect("finish");
        let want = |db: usize| {
            vec![
                (db, b"a".to_vec(), Some("a2"), None),
                (db, b"b".to_vec(), Some("b2"), Some(later + 1)),
                (db, b"c".to_vec(), Some("c3"), None),
                (db, b"d".to_vec(), Some("d1"), Some(later + 4)),
                (
                    db,
                    b"long-key-of-more-than-sixteen-bytes".to_vec(),
                    Some("l2"),
                    Some(later + 3),
                ),
            ]
        };
        let strings = |srv: &Server, skip: &[u8]| {
            let mut v: Vec<_> = keyspace(srv)
                .into_iter()
                .filter(|(_, k, _, _)| k != skip)
                .map(|(db, k, v, t)| {
                    let s = match v {
                        rdb::Value::String(b) => b,
                        other => panic!("{other:?}"),
                    };
                    (db, k, s, t)
                })
                .collect();
            v.sort();
            v
        };
        let expect: Vec<_> = want(0)
            .into_iter()
            .chain(want(3))
            .map(|(db, k, v, t)| (db, k, Bytes::from(v.unwrap().as_bytes().to_vec()), t))
            .collect();
        for mode in [LoadMode::Sequential, LoadMode::Parallel] {
            let mut empty = server();
            load_rdb_bytes(&mut empty, &data, false, mode).expect("load");
            assert_eq!(strings(&empty, b""), expect, "bulk, {mode:?}");
            assert_eq!(empty.dbs[0].keys.len(), 5);
            assert_eq!(empty.dbs[3].expires.len(), 3);
            let mut seeded = server();
            for db in [0, 3] {
                seeded.dbs[db].insert(b"zz-other", s("o"));
            }
            load_rdb_bytes(&mut seeded, &data, false, mode).expect("load");
            assert_eq!(
                strings(&seeded, b"zz-other"),
                expect,
                "one by one, {mode:?}"
            );
        }
    }

    #[test]
    fn parallel_rdb_load_fails_like_the_sequential_one_and_keeps_the_same_prefix() {
        let data = fixture("redis-7.0-all-types.rdb");
        for cut in [
            data.len() / 3,
            data.len() / 2,
            data.len() - 9,
            data.len() - 1,
        ] {
            let (r, _) = load_both(&data[..cut], false);
            assert!(r.starts_with("Err("), "cut at {cut}: {r}");
        }
        for at in [data.len() / 4, data.len() / 2, data.len() - 5] {
            let mut d = data.clone();
            d[at] ^= 0x5a;
            let (r, _) = load_both(&d, true);
            assert!(r.starts_with("Err("), "byte {at}: {r}");
        }
    }
}
