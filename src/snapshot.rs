//! Snapshots: conversion between the keyspace's values and the RDB codec's neutral values, and
//! loading/saving whole RDB files (SAVE, DEBUG RELOAD, dump.rdb at start, RDB bases).

use std::io::{Read, Write};

use bytes::Bytes;
use strongbox_storage::rdb::{
    self, AuxFields, EncodingThresholds, Item, RdbReader, RdbWriter, ReaderOptions, WriterOptions,
};

use crate::config::Config;
use crate::exec::Server;
use crate::keyspace::{Object, Value};
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
        rdb::Value::List(items) => Value::List(Box::new(List::from_items(items))),
        rdb::Value::Hash(pairs) => Value::Hash(Box::new(Hash::from_pairs(
            pairs,
            HashLimits {
                max_entries: th.hash_max_listpack_entries,
                max_value: th.hash_max_listpack_value,
            },
        ))),
        rdb::Value::Set(members) => Value::Set(Box::new(Set::from_members(
            members,
            SetLimits {
                max_intset_entries: th.set_max_intset_entries,
            },
        ))),
        rdb::Value::ZSet(pairs) => Value::ZSet(Box::new(ZSet::from_pairs(
            pairs,
            ZSetLimits {
                max_listpack_entries: th.zset_max_listpack_entries,
                max_listpack_value: th.zset_max_listpack_value,
            },
        ))),
        rdb::Value::Stream(s) => Value::Stream(Box::new(crate::types::stream::Stream::from_rdb(s))),
    }
}

/// Largest table pre-sizing taken from a RESIZEDB hint.
const RESERVE_KEYS_MAX: usize = 64 << 20;

#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    pub keys: u64,
    pub expired_skipped: u64,
}

/// Load an RDB stream into the server's databases (existing keys with the same name are
/// replaced). `aof_base`: keys already expired are kept (the log that follows decides), as Redis
/// does for an AOF preamble; otherwise they are skipped.
pub fn load_rdb<R: Read>(srv: &mut Server, input: R, aof_base: bool) -> Result<LoadStats, String> {
    load_rdb_counted(srv, input, aof_base).map(|(s, _)| s)
}

/// [`load_rdb`], also returning how many bytes the RDB image took (through its checksum): an
/// AOF base may continue with RESP commands after it.
pub fn load_rdb_counted<R: Read>(
    srv: &mut Server,
    input: R,
    aof_base: bool,
) -> Result<(LoadStats, u64), String> {
    let th = thresholds(&srv.cfg);
    let mut reader = RdbReader::with_options(
        input,
        ReaderOptions {
            verify_checksum: true,
        },
    )
    .map_err(|e| e.to_string())?;
    let now = crate::util::now_ms();
    let lru = srv.lru_clock;
    let mut stats = LoadStats::default();
    let mut cur_db = 0usize;
    while let Some(item) = reader.next_item().map_err(|e| e.to_string())? {
        match item {
            Item::Entry(e) => {
                let db = e.db as usize;
                if db >= srv.dbs.len() {
                    return Err(format!(
                        "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting",
                        srv.dbs.len()
                    ));
                }
                if !aof_base && e.expire_ms.is_some_and(|t| t < now) {
                    stats.expired_skipped += 1;
                    continue;
                }
                let key = e.key.clone();
                let mut obj = Object::new(from_rdb(e.value, &th), lru);
                if let Some(f) = e.freq {
                    obj.set_freq(f);
                }
                if let Some(idle) = e.idle_secs {
                    obj.set_lru(lru.wrapping_sub(idle as u32));
                }
                // The reader's keys are already owned: no copy needed.
                let d = &mut srv.dbs[db];
                d.expires.swap_remove(&key[..]);
                d.keys.insert(key.clone(), obj);
                if let Some(t) = e.expire_ms {
                    d.expires.insert(key, t);
                }
                stats.keys += 1;
            }
            Item::ModuleAux { module, .. } => {
                return Err(format!(
                    "The RDB file contains AUX module data for the module '{module}', which Strongbox does not support"
                ));
            }
            Item::SelectDb(db) => cur_db = db as usize,
            Item::ResizeDb {
                db_size,
                expires_size,
            } => {
                // Size the tables once, as Redis does with RESIZEDB, instead of rehashing
                // while loading (capped: the hint comes from the file).
                if let Some(d) = srv.dbs.get_mut(cur_db) {
                    let want = (db_size as usize).min(RESERVE_KEYS_MAX);
                    d.keys.reserve(want.saturating_sub(d.keys.len()));
                    let want = (expires_size as usize).min(RESERVE_KEYS_MAX);
                    d.expires.reserve(want.saturating_sub(d.expires.len()));
                }
            }
            Item::Eof { .. } => break,
            _ => {}
        }
    }
    Ok((stats, reader.offset()))
}

/// Writer options from the live configuration.
pub fn writer_options(srv: &Server, aof_base: bool) -> WriterOptions {
    WriterOptions {
        compression: srv.cfg.get_bool("rdbcompression"),
        checksum: srv.cfg.get_bool("rdbchecksum"),
        thresholds: thresholds(&srv.cfg),
        aux: AuxFields {
            redis_ver: crate::REDIS_COMPAT_VERSION.to_string(),
            ctime: crate::util::now_ms() / 1000,
            used_mem: crate::util::rss_bytes(),
            aof_base,
            ..AuxFields::default()
        },
        ..WriterOptions::default()
    }
}

/// Write the whole dataset as RDB (synchronous: SAVE, DEBUG RELOAD, SHUTDOWN SAVE).
pub fn write_rdb<W: Write>(srv: &Server, out: W, aof_base: bool) -> Result<W, String> {
    let mut w = RdbWriter::new(out, writer_options(srv, aof_base)).map_err(|e| e.to_string())?;
    for (i, db) in srv.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        w.begin_db(i as u32, db.keys.len() as u64, db.expires.len() as u64)
            .map_err(|e| e.to_string())?;
        for (k, o) in db.keys.iter() {
            write_entry(&mut w, i, k, o, db.expire_of(k), srv.lru_clock)?;
        }
    }
    w.finish().map_err(|e| e.to_string())
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
    let f = std::fs::File::create(&tmp).map_err(|e| {
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
