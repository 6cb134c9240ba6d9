//! Streaming RDB writer: header and AUX fields at creation, then one key at a time, then EOF and
//! the CRC-64. Encodings are chosen as Redis 7.0 chooses them (see `docs/design-rdb.md`); only
//! one value's encoded form is held in memory at a time.

use std::collections::HashSet;
use std::io::Write;

use bytes::Bytes;

use super::consts::*;
use super::crc64::{digest, Crc64Digest};
use super::error::WriteError;
use super::listpack::ListpackBuilder;
use super::num::{canonical_i64, format_g17};
use super::value::{sort_zset, Entry, Stream, Value};
use super::{intset, lzf};

/// Bytes buffered before they are handed to the inner writer.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Strings longer than this are LZF-compressed when compression is on (`rdbSaveRawString`).
pub const LZF_MIN_STRING_BYTES: usize = 21;
/// Strings of at most this many bytes are tried as integers (`rdbTryIntegerEncoding`).
pub const INT_ENCODING_STRING_BYTES_MAX: usize = 11;
/// A list element at least this long gets its own PLAIN quicklist node (`packed_threshold`,
/// 1 GiB by default).
pub const QUICKLIST_PACKED_THRESHOLD_BYTES: usize = 1 << 30;
/// With a positive `list-max-listpack-size`, a node still may not exceed this many bytes
/// (`SIZE_SAFETY_LIMIT`).
pub const QUICKLIST_SIZE_SAFETY_LIMIT_BYTES: usize = 8192;

/// The `*-max-listpack-*` / `set-max-intset-entries` / `stream-node-max-*` settings that decide
/// encodings, with Redis 7.0's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingThresholds {
    /// `hash-max-listpack-entries` (512).
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value` (64).
    pub hash_max_listpack_value: usize,
    /// `zset-max-listpack-entries` (128).
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value` (64).
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size` (-2: 8 KiB per node; -1..-5 = 4..64 KiB; positive = entries).
    pub list_max_listpack_size: i64,
    /// `list-compress-depth` (0). The writer does not use it (lists are written as plain
    /// listpacks, LZF-compressed with `rdbcompression`); readers that build in-memory lists do.
    pub list_compress_depth: usize,
    /// `set-max-intset-entries` (512).
    pub set_max_intset_entries: usize,
    /// `set-max-listpack-entries` (128; used only when writing RDB 11).
    pub set_max_listpack_entries: usize,
    /// `set-max-listpack-value` (64; used only when writing RDB 11).
    pub set_max_listpack_value: usize,
    /// `stream-node-max-bytes` (4096).
    pub stream_node_max_bytes: usize,
    /// `stream-node-max-entries` (100).
    pub stream_node_max_entries: usize,
}

impl Default for EncodingThresholds {
    fn default() -> Self {
        EncodingThresholds {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}

/// Replication info written as AUX fields when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplInfo {
    /// `repl-stream-db`.
    pub stream_db: i64,
    /// `repl-id` (40 hex chars).
    pub id: String,
    /// `repl-offset`.
    pub offset: i64,
}

/// The AUX fields, written in Redis 7.0's order: redis-ver, redis-bits, ctime, used-mem,
/// [repl-stream-db, repl-id, repl-offset], aof-base, then `extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxFields {
    /// `redis-ver`.
    pub redis_ver: String,
    /// `redis-bits`.
    pub redis_bits: u32,
    /// `ctime`, unix seconds.
    pub ctime: i64,
    /// `used-mem`, bytes.
    pub used_mem: u64,
    /// Replication fields.
    pub repl: Option<ReplInfo>,
    /// `aof-base`: 1 when the file is an AOF base.
    pub aof_base: bool,
    /// More fields, written after the standard ones.
    pub extra: Vec<(Bytes, Bytes)>,
}

impl Default for AuxFields {
    fn default() -> Self {
        AuxFields {
            redis_ver: "7.0.15".to_string(),
            redis_bits: 64,
            ctime: 0,
            used_mem: 0,
            repl: None,
            aof_base: false,
            extra: Vec::new(),
        }
    }
}

impl AuxFields {
    /// The fields as (key, value) text pairs in write order.
    pub fn pairs(&self) -> Vec<(Bytes, Bytes)> {
        let mut v: Vec<(Bytes, Bytes)> = vec![
            (
                Bytes::from_static(b"redis-ver"),
                Bytes::from(self.redis_ver.clone()),
            ),
            (
                Bytes::from_static(b"redis-bits"),
                Bytes::from(self.redis_bits.to_string()),
            ),
            (
                Bytes::from_static(b"ctime"),
                Bytes::from(self.ctime.to_string()),
            ),
            (
                Bytes::from_static(b"used-mem"),
                Bytes::from(self.used_mem.to_string()),
            ),
        ];
        if let Some(r) = &self.repl {
            v.push((
                Bytes::from_static(b"repl-stream-db"),
                Bytes::from(r.stream_db.to_string()),
            ));
            v.push((Bytes::from_static(b"repl-id"), Bytes::from(r.id.clone())));
            v.push((
                Bytes::from_static(b"repl-offset"),
                Bytes::from(r.offset.to_string()),
            ));
        }
        v.push((
            Bytes::from_static(b"aof-base"),
            Bytes::from_static(if self.aof_base { b"1" } else { b"0" }),
        ));
        v.extend(self.extra.iter().cloned());
        v
    }
}

/// Writer options (`rdbcompression`, `rdbchecksum`, encodings, AUX values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// RDB version: 10 (Redis 7.0, default) or 11 (Redis 7.2 / Valkey 8: set listpacks, stream
    /// type 21).
    pub version: u32,
    /// `rdbcompression`: LZF for strings longer than 20 bytes.
    pub compression: bool,
    /// `rdbchecksum`: CRC-64 after EOF (zero when off).
    pub checksum: bool,
    /// Encoding thresholds.
    pub thresholds: EncodingThresholds,
    /// AUX fields.
    pub aux: AuxFields,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            version: RDB_VERSION_DEFAULT,
            compression: true,
            checksum: true,
            thresholds: EncodingThresholds::default(),
            aux: AuxFields::default(),
        }
    }
}

/// Encodes values into a byte buffer with Redis's string rules. Shared by the file writer and
/// DUMP.
pub(crate) struct Encoder {
    pub(crate) buf: Vec<u8>,
    pub(crate) compression: bool,
    pub(crate) version: u32,
    pub(crate) th: EncodingThresholds,
}

impl Encoder {
    pub(crate) fn new(opts: &WriterOptions) -> Self {
        Encoder {
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            compression: opts.compression,
            version: opts.version,
            th: opts.thresholds,
        }
    }

    fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// `rdbSaveLen`: the smallest form.
    pub(crate) fn len(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push((n & 0xff) as u8);
        } else if n <= u64::from(u32::MAX) {
            self.buf.push(RDB_32BITLEN);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(RDB_64BITLEN);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// `rdbSaveRawString`: integer encoding, else LZF when it saves 4+ bytes, else raw.
    pub(crate) fn string(&mut self, s: &[u8]) {
        if s.len() <= INT_ENCODING_STRING_BYTES_MAX {
            if let Some(v) = canonical_i64(s) {
                if let Ok(v) = i8::try_from(v) {
                    self.buf.push(0xC0 | RDB_ENC_INT8);
                    self.buf.push(v as u8);
                    return;
                }
                if let Ok(v) = i16::try_from(v) {
                    self.buf.push(0xC0 | RDB_ENC_INT16);
                    self.buf.extend_from_slice(&v.to_le_bytes());
                    return;
                }
                if let Ok(v) = i32::try_from(v) {
                    self.buf.push(0xC0 | RDB_ENC_INT32);
                    self.buf.extend_from_slice(&v.to_le_bytes());
                    return;
                }
            }
        }
        if self.compression && s.len() >= LZF_MIN_STRING_BYTES {
            if let Some(c) = lzf::compress(s, s.len() - 4) {
                self.buf.push(0xC0 | RDB_ENC_LZF);
                self.len(c.len() as u64);
                self.len(s.len() as u64);
                self.buf.extend_from_slice(&c);
                return;
            }
        }
        self.len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    /// Writes the type byte and the payload of `v`.
    pub(crate) fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => {
                self.u8(RDB_TYPE_STRING);
                self.string(s);
            }
            Value::List(items) => self.list(items),
            Value::Set(members) => self.set(members),
            Value::ZSet(pairs) => self.zset(pairs),
            Value::Hash(pairs) => self.hash(pairs),
            Value::Stream(s) => self.stream(s),
        }
    }

    fn list(&mut self, items: &[Bytes]) {
        let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
        split_list_nodes(
            &self.th,
            &mut |f| items.iter().for_each(|it| f(it)),
            true,
            &mut |container, blob| nodes.push((container, blob)),
        );
        self.u8(RDB_TYPE_LIST_QUICKLIST_2);
        self.len(nodes.len() as u64);
        for (container, blob) in nodes {
            self.len(container);
            self.string(&blob);
        }
    }

    fn set(&mut self, members: &[Bytes]) {
        if members.len() <= self.th.set_max_intset_entries {
            let ints: Option<Vec<i64>> = members.iter().map(|m| canonical_i64(m)).collect();
            if let Some(mut ints) = ints {
                ints.sort_unstable();
                self.u8(RDB_TYPE_SET_INTSET);
                self.string(&intset::encode(&ints));
                return;
            }
        }
        if self.version >= 11
            && members.len() <= self.th.set_max_listpack_entries
            && members
                .iter()
                .all(|m| m.len() <= self.th.set_max_listpack_value)
        {
            let mut lp = ListpackBuilder::new();
            for m in members {
                lp.push_str(m);
            }
            self.u8(RDB_TYPE_SET_LISTPACK);
            self.string(&lp.finish());
            return;
        }
        self.u8(RDB_TYPE_SET);
        self.len(members.len() as u64);
        for m in members {
            self.string(m);
        }
    }

    fn zset(&mut self, pairs: &[(Bytes, f64)]) {
        let mut sorted: Vec<(Bytes, f64)> = pairs.to_vec();
        sort_zset(&mut sorted);
        if pairs.len() <= self.th.zset_max_listpack_entries
            && pairs
                .iter()
                .all(|p| p.0.len() <= self.th.zset_max_listpack_value)
        {
            let mut lp = ListpackBuilder::new();
            for (m, s) in &sorted {
                lp.push_str(m);
                lp.push_str(format_g17(*s).as_bytes());
            }
            self.u8(RDB_TYPE_ZSET_LISTPACK);
            self.string(&lp.finish());
            return;
        }
        // Redis writes skiplists from the tail: highest score first.
        self.u8(RDB_TYPE_ZSET_2);
        self.len(sorted.len() as u64);
        for (m, s) in sorted.iter().rev() {
            self.string(m);
            self.buf.extend_from_slice(&s.to_le_bytes());
        }
    }

    fn hash(&mut self, pairs: &[(Bytes, Bytes)]) {
        if pairs.len() <= self.th.hash_max_listpack_entries
            && pairs.iter().all(|(f, v)| {
                f.len() <= self.th.hash_max_listpack_value
                    && v.len() <= self.th.hash_max_listpack_value
            })
        {
            let mut lp = ListpackBuilder::new();
            for (f, v) in pairs {
                lp.push_str(f);
                lp.push_str(v);
            }
            self.u8(RDB_TYPE_HASH_LISTPACK);
            self.string(&lp.finish());
            return;
        }
        self.u8(RDB_TYPE_HASH);
        self.len(pairs.len() as u64);
        for (f, v) in pairs {
            self.string(f);
            self.string(v);
        }
    }

    fn stream(&mut self, s: &Stream) {
        let v3 = self.version >= 11;
        self.u8(if v3 {
            RDB_TYPE_STREAM_LISTPACKS_3
        } else {
            RDB_TYPE_STREAM_LISTPACKS_2
        });
        // Split into nodes, as streamAppendItem does: a new node when the current one reached
        // stream-node-max-entries or stream-node-max-bytes.
        let mut nodes: Vec<(super::value::StreamId, Vec<u8>)> = Vec::new();
        let mut i = 0usize;
        while i < s.entries.len() {
            let master = &s.entries[i];
            let master_fields: Vec<&Bytes> = master.fields.iter().map(|(f, _)| f).collect();
            let mut j = i;
            let mut body = ListpackBuilder::new();
            while j < s.entries.len()
                && (j - i) < self.th.stream_node_max_entries.max(1)
                && (j == i || body.bytes_len() < self.th.stream_node_max_bytes)
            {
                let e = &s.entries[j];
                let same = e.fields.len() == master_fields.len()
                    && e.fields
                        .iter()
                        .zip(&master_fields)
                        .all(|((f, _), mf)| f == *mf);
                let flags = if same { STREAM_ITEM_FLAG_SAMEFIELDS } else { 0 };
                body.push_int(flags);
                body.push_int(e.id.ms.wrapping_sub(master.id.ms) as i64);
                body.push_int(e.id.seq.wrapping_sub(master.id.seq) as i64);
                if same {
                    for (_, v) in &e.fields {
                        body.push_str(v);
                    }
                    body.push_int(e.fields.len() as i64 + 3);
                } else {
                    body.push_int(e.fields.len() as i64);
                    for (f, v) in &e.fields {
                        body.push_str(f);
                        body.push_str(v);
                    }
                    body.push_int(2 * e.fields.len() as i64 + 4);
                }
                j += 1;
            }
            // Master entry first, then the entries (rebuilt in order).
            let mut lp = ListpackBuilder::new();
            lp.push_int((j - i) as i64);
            lp.push_int(0);
            lp.push_int(master_fields.len() as i64);
            for f in &master_fields {
                lp.push_str(f);
            }
            lp.push_int(0);
            let blob = lp.append_raw(body);
            nodes.push((master.id, blob));
            i = j;
        }
        self.len(nodes.len() as u64);
        for (id, blob) in &nodes {
            self.string(&id.to_be_bytes());
            self.string(blob);
        }
        self.len(s.length);
        self.len(s.last_id.ms);
        self.len(s.last_id.seq);
        self.len(s.first_id.ms);
        self.len(s.first_id.seq);
        self.len(s.max_deleted_id.ms);
        self.len(s.max_deleted_id.seq);
        self.len(s.entries_added);
        self.len(s.groups.len() as u64);
        for g in &s.groups {
            self.string(&g.name);
            self.len(g.last_id.ms);
            self.len(g.last_id.seq);
            self.len(g.entries_read as u64);
            self.len(g.pel.len() as u64);
            for p in &g.pel {
                self.buf.extend_from_slice(&p.id.to_be_bytes());
                self.buf
                    .extend_from_slice(&p.delivery_time_ms.to_le_bytes());
                self.len(p.delivery_count);
            }
            self.len(g.consumers.len() as u64);
            for c in &g.consumers {
                self.string(&c.name);
                self.buf.extend_from_slice(&c.seen_time_ms.to_le_bytes());
                if v3 {
                    let active = c.active_time_ms.unwrap_or(c.seen_time_ms);
                    self.buf.extend_from_slice(&active.to_le_bytes());
                }
                self.len(c.pending.len() as u64);
                for id in &c.pending {
                    self.buf.extend_from_slice(&id.to_be_bytes());
                }
            }
        }
    }
}

/// Visits a list's elements: calls its argument once per element, in order.
pub type ListElements<'a> = dyn FnMut(&mut dyn FnMut(&[u8])) + 'a;

/// Splits list elements into quicklist nodes as Redis's quicklist does with
/// `list-max-listpack-size` (`th.list_max_listpack_size`): `node` gets each node's container
/// type and, when `build`, its listpack blob (else an empty vector: the counting pass of
/// [`RdbWriter::write_list_streamed`]). `each` calls its argument once per element, in order.
fn split_list_nodes(
    th: &EncodingThresholds,
    each: &mut ListElements<'_>,
    build: bool,
    node: &mut dyn FnMut(u64, Vec<u8>),
) {
    let fill = th.list_max_listpack_size;
    let max_bytes = if fill < 0 {
        4096usize << ((-fill).clamp(1, 5) - 1)
    } else {
        QUICKLIST_SIZE_SAFETY_LIMIT_BYTES
    };
    let max_count = if fill > 0 { fill as usize } else { usize::MAX };
    // The listpack being built (when `build`), and its size and count either way.
    let empty_bytes = ListpackBuilder::new().bytes_len();
    let mut cur = ListpackBuilder::new();
    let (mut cur_bytes, mut cur_len) = (empty_bytes, 0usize);
    let close = |cur: &mut ListpackBuilder, node: &mut dyn FnMut(u64, Vec<u8>)| {
        let blob = if build {
            std::mem::take(cur).finish()
        } else {
            Vec::new()
        };
        node(QUICKLIST_NODE_CONTAINER_PACKED, blob);
    };
    each(&mut |it: &[u8]| {
        if it.len() >= QUICKLIST_PACKED_THRESHOLD_BYTES {
            if cur_len > 0 {
                close(&mut cur, node);
                (cur_bytes, cur_len) = (empty_bytes, 0);
            }
            node(
                QUICKLIST_NODE_CONTAINER_PLAIN,
                if build { it.to_vec() } else { Vec::new() },
            );
            return;
        }
        let add = ListpackBuilder::entry_size(it);
        if cur_len > 0 && (cur_bytes + add > max_bytes || cur_len >= max_count) {
            close(&mut cur, node);
            (cur_bytes, cur_len) = (empty_bytes, 0);
        }
        if build {
            cur.push_str(it);
        }
        cur_bytes += add;
        cur_len += 1;
    });
    if cur_len > 0 {
        close(&mut cur, node);
    }
}

/// Checks that a value can be written as a valid RDB (Redis refuses duplicates and NaN scores
/// on load).
pub(crate) fn validate(key: &[u8], v: &Value) -> Result<(), WriteError> {
    let bad = |reason: &str| WriteError::InvalidValue {
        key: Bytes::copy_from_slice(key),
        reason: reason.to_string(),
    };
    match v {
        Value::String(_) | Value::List(_) => Ok(()),
        Value::Set(m) => unique(m.iter())
            .then_some(())
            .ok_or_else(|| bad("duplicate set member")),
        Value::Hash(p) => unique(p.iter().map(|x| &x.0))
            .then_some(())
            .ok_or_else(|| bad("duplicate hash field")),
        Value::ZSet(p) => {
            if p.iter().any(|x| x.1.is_nan()) {
                return Err(bad("NaN score"));
            }
            unique(p.iter().map(|x| &x.0))
                .then_some(())
                .ok_or_else(|| bad("duplicate zset member"))
        }
        Value::Stream(s) => {
            if s.length != s.entries.len() as u64 {
                return Err(bad("stream length differs from the number of entries"));
            }
            if s.entries.windows(2).any(|w| w[0].id >= w[1].id) {
                return Err(bad("stream entries not in ascending ID order"));
            }
            Ok(())
        }
    }
}

fn unique<'a>(it: impl Iterator<Item = &'a Bytes>) -> bool {
    let mut seen = HashSet::new();
    it.into_iter().all(|b| seen.insert(b))
}

/// The streaming writer.
pub struct RdbWriter<W: Write> {
    inner: W,
    enc: Encoder,
    crc: Crc64Digest,
    checksum: bool,
    db: Option<u32>,
    failed: bool,
}

impl<W: Write> RdbWriter<W> {
    /// Writes the header and the AUX fields.
    pub fn new(inner: W, opts: WriterOptions) -> Result<Self, WriteError> {
        if !(10..=RDB_VERSION_MAX).contains(&opts.version) {
            return Err(WriteError::InvalidOption(format!(
                "RDB version {} (the writer emits 10 or 11)",
                opts.version
            )));
        }
        let mut w = RdbWriter {
            inner,
            enc: Encoder::new(&opts),
            crc: digest(),
            checksum: opts.checksum,
            db: None,
            failed: false,
        };
        w.enc
            .buf
            .extend_from_slice(format!("REDIS{:04}", opts.version).as_bytes());
        for (k, v) in opts.aux.pairs() {
            w.enc.u8(RDB_OPCODE_AUX);
            w.enc.string(&k);
            w.enc.string(&v);
        }
        w.maybe_flush()?;
        Ok(w)
    }

    fn flush_buf(&mut self) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Io(std::io::Error::other(
                "an earlier write failed",
            )));
        }
        self.crc.update(&self.enc.buf);
        let r = self.inner.write_all(&self.enc.buf);
        self.enc.buf.clear();
        if let Err(e) = r {
            self.failed = true;
            return Err(e.into());
        }
        Ok(())
    }

    fn maybe_flush(&mut self) -> Result<(), WriteError> {
        if self.enc.buf.len() >= WRITE_BUFFER_BYTES {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Starts a database: SELECTDB, then RESIZEDB with the sizing hints.
    pub fn begin_db(&mut self, db: u32, db_size: u64, expires_size: u64) -> Result<(), WriteError> {
        self.enc.u8(RDB_OPCODE_SELECTDB);
        self.enc.len(u64::from(db));
        self.enc.u8(RDB_OPCODE_RESIZEDB);
        self.enc.len(db_size);
        self.enc.len(expires_size);
        self.db = Some(db);
        self.maybe_flush()
    }

    /// Writes a function library (FUNCTION2) — before the first database, as Redis does.
    pub fn write_function(&mut self, code: &[u8]) -> Result<(), WriteError> {
        self.enc.u8(RDB_OPCODE_FUNCTION2);
        self.enc.string(code);
        self.maybe_flush()
    }

    /// Writes one key. When `entry.db` is not the current database, a SELECTDB (without
    /// RESIZEDB) is written first; call [`Self::begin_db`] to write the sizing hints too.
    pub fn write_entry(&mut self, entry: &Entry) -> Result<(), WriteError> {
        validate(&entry.key, &entry.value)?;
        if self.db != Some(entry.db) {
            self.enc.u8(RDB_OPCODE_SELECTDB);
            self.enc.len(u64::from(entry.db));
            self.db = Some(entry.db);
        }
        if let Some(ms) = entry.expire_ms {
            self.enc.u8(RDB_OPCODE_EXPIRETIME_MS);
            self.enc.buf.extend_from_slice(&ms.to_le_bytes());
        }
        if let Some(idle) = entry.idle_secs {
            self.enc.u8(RDB_OPCODE_IDLE);
            self.enc.len(idle);
        }
        if let Some(f) = entry.freq {
            self.enc.u8(RDB_OPCODE_FREQ);
            self.enc.u8(f);
        }
        // Type byte, then key, then payload: encode the value into a side buffer first.
        let mut side = Encoder {
            buf: Vec::new(),
            compression: self.enc.compression,
            version: self.enc.version,
            th: self.enc.th,
        };
        side.value(&entry.value);
        let (ty, payload) = side
            .buf
            .split_first()
            .map(|(t, p)| (*t, p))
            .unwrap_or((0, &[]));
        self.enc.u8(ty);
        self.enc.string(&entry.key);
        self.enc.buf.extend_from_slice(payload);
        self.maybe_flush()
    }

    /// Writes one string key from borrowed bytes: the same bytes as [`Self::write_entry`] with a
    /// [`Value::String`] and no IDLE/FREQ, without building an [`Entry`] or a side buffer (the
    /// fork-free snapshot writes millions of these).
    pub fn write_string(
        &mut self,
        db: u32,
        key: &[u8],
        value: &[u8],
        expire_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        self.key_header(db, key, expire_ms, RDB_TYPE_STRING);
        self.enc.string(value);
        self.maybe_flush()
    }

    /// SELECTDB when `db` is not the current database, the expiry, the type byte and the key.
    #[inline]
    fn key_header(&mut self, db: u32, key: &[u8], expire_ms: Option<i64>, rdb_type: u8) {
        if self.db != Some(db) {
            self.enc.u8(RDB_OPCODE_SELECTDB);
            self.enc.len(u64::from(db));
            self.db = Some(db);
        }
        if let Some(ms) = expire_ms {
            self.enc.u8(RDB_OPCODE_EXPIRETIME_MS);
            self.enc.buf.extend_from_slice(&ms.to_le_bytes());
        }
        self.enc.u8(rdb_type);
        self.enc.string(key);
    }

    /// Starts one key whose value is then written in pieces (a large collection, serialized
    /// without building it in memory): SELECTDB when `db` is not the current database, the
    /// expiry, `rdb_type`, and the key. The caller then writes the payload with
    /// [`Self::put_len`], [`Self::put_string`] and [`Self::put_double`] exactly as the type
    /// requires (`RDB_TYPE_SET`: length then members; `RDB_TYPE_HASH`: length then field,
    /// value pairs; `RDB_TYPE_ZSET_2`: length then member, binary score — highest score first,
    /// as Redis writes a skiplist); nothing is validated.
    pub fn begin_value(
        &mut self,
        db: u32,
        key: &[u8],
        expire_ms: Option<i64>,
        rdb_type: u8,
    ) -> Result<(), WriteError> {
        self.key_header(db, key, expire_ms, rdb_type);
        self.maybe_flush()
    }

    /// A length (`rdbSaveLen`) of a value started with [`Self::begin_value`].
    pub fn put_len(&mut self, n: u64) -> Result<(), WriteError> {
        self.enc.len(n);
        self.maybe_flush()
    }

    /// A string (`rdbSaveRawString`: integer, LZF or raw) of a value started with
    /// [`Self::begin_value`].
    pub fn put_string(&mut self, s: &[u8]) -> Result<(), WriteError> {
        self.enc.string(s);
        self.maybe_flush()
    }

    /// A binary double (`rdbSaveBinaryDoubleValue`, a ZSET_2 score).
    pub fn put_double(&mut self, v: f64) -> Result<(), WriteError> {
        self.enc.buf.extend_from_slice(&v.to_le_bytes());
        self.maybe_flush()
    }

    /// Writes a list key (QUICKLIST_2, the same bytes as [`Self::write_entry`] with a
    /// [`Value::List`]) whose elements `each` visits in order, without holding them in memory:
    /// a first pass counts the nodes (the count comes first in the format), a second builds and
    /// writes one node at a time. `each` must visit the same elements both times.
    pub fn write_list_streamed(
        &mut self,
        db: u32,
        key: &[u8],
        expire_ms: Option<i64>,
        each: &mut ListElements<'_>,
    ) -> Result<(), WriteError> {
        let th = self.enc.th;
        let mut nodes = 0u64;
        split_list_nodes(&th, each, false, &mut |_, _| nodes += 1);
        self.begin_value(db, key, expire_ms, RDB_TYPE_LIST_QUICKLIST_2)?;
        self.enc.len(nodes);
        let mut result = Ok(());
        split_list_nodes(&th, each, true, &mut |container, blob| {
            if result.is_ok() {
                self.enc.len(container);
                self.enc.string(&blob);
                result = self.maybe_flush();
            }
        });
        result
    }

    /// Writes EOF and the CRC-64 (zero when checksums are off), flushes, returns the writer.
    pub fn finish(mut self) -> Result<W, WriteError> {
        self.enc.u8(RDB_OPCODE_EOF);
        self.flush_buf()?;
        let crc = if self.checksum {
            self.crc.clone().finalize()
        } else {
            0
        };
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}
