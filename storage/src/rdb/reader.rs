//! Streaming RDB reader: one [`Item`] at a time from any [`Read`], holding at most one key's
//! value in memory. Wrap files in a `BufReader`: the reader issues small reads and never reads
//! past the CRC-64 trailer, so [`RdbReader::into_inner`] hands back a reader positioned right
//! after the RDB (an AOF with an RDB preamble continues there). An image already in memory reads
//! faster through [`RdbReader::from_slice`] (see [`Source`]): same items, errors and offsets.
//!
//! Every length read from the input is treated as a claim, not a fact: byte strings grow as their
//! bytes actually arrive (chunks of [`READ_CHUNK_BYTES`]), element vectors are pre-sized to at
//! most [`PREALLOC_ITEMS_MAX`], and an LZF string may not claim more than
//! [`LZF_EXPANSION_RATIO_MAX`] times its compressed size.

use std::collections::HashSet;
use std::io::Read;

use bytes::Bytes;

use super::consts::*;
use super::crc64::{digest, Crc64Digest};
use super::error::{BlobError, RdbError, Reason};
use super::listpack::{self, LpItem};
use super::lzf::{self, LZF_EXPANSION_RATIO_MAX};
use super::num::parse_score;
use super::value::{
    Consumer, ConsumerGroup, Entry, PendingEntry, Stream, StreamEntry, StreamId, Value,
};
use super::{intset, ziplist, zipmap};

/// Byte strings are read in chunks of this size so a lying length cannot allocate memory that
/// the input does not back.
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// Element vectors are pre-sized to at most this many elements, whatever the file claims.
pub const PREALLOC_ITEMS_MAX: usize = 1024;
/// Longest string accepted (Redis's own limit for a string value is 512 MiB; blobs such as a
/// quicklist node are smaller still).
pub const STRING_BYTES_MAX: u64 = 1 << 32;

/// Reader options.
#[derive(Debug, Clone, Copy)]
pub struct ReaderOptions {
    /// Verify the CRC-64 after EOF when it is not zero (Redis's `rdbchecksum yes`).
    pub verify_checksum: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            verify_checksum: true,
        }
    }
}

/// One item of an RDB file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An AUX field (`redis-ver`, `ctime`, ...). Unknown keys are for the caller to ignore.
    Aux {
        /// Field name.
        key: Bytes,
        /// Field value.
        value: Bytes,
    },
    /// SELECTDB: the following keys belong to this database.
    SelectDb(u32),
    /// RESIZEDB: sizing hints for the current database.
    ResizeDb {
        /// Keys in the database.
        db_size: u64,
        /// Keys with an expire.
        expires_size: u64,
    },
    /// A key with its value and metadata.
    Entry(Entry),
    /// A function library (FUNCTION2): the library source code, kept as bytes.
    Function(Bytes),
    /// Module auxiliary data, parsed generically and skipped (as redis-check-rdb does); the
    /// caller decides whether a missing module is fatal.
    ModuleAux {
        /// The module type name decoded from its id (9 characters).
        module: String,
        /// When the data was saved (`REDISMODULE_AUX_BEFORE_RDB` 1, `AFTER_RDB` 2).
        when: u64,
    },
    /// End of file; `checksum` is the stored CRC-64 (None before RDB 5, Some(0) = disabled).
    Eof {
        /// Stored checksum.
        checksum: Option<u64>,
    },
}

/// Counts of what was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Keys returned.
    pub keys: u64,
    /// Keys with an expire returned.
    pub expires: u64,
    /// Keys skipped because their collection was empty (Redis 7 skips them too).
    pub empty_keys_skipped: u64,
}

mod sealed {
    pub trait Sealed {}
}

/// Where an [`RdbReader`] takes its bytes from: any [`Read`] ([`IoSource`], built by
/// [`RdbReader::new`]) or a byte slice already in memory ([`SliceSource`], built by
/// [`RdbReader::from_slice`]: no intermediate copies, and the CRC-64 is computed over large
/// spans instead of once per small read). Both give the same items, errors and offsets.
pub trait Source: sealed::Sealed {
    /// Fill `buf` entirely or fail (`UnexpectedEof` when the input ends first).
    #[doc(hidden)]
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
    /// The next `len` bytes. On failure, also how many bytes were consumed before the failing
    /// read (byte strings are read in chunks of [`READ_CHUNK_BYTES`]).
    #[doc(hidden)]
    fn take(&mut self, len: usize) -> Result<Vec<u8>, (u64, std::io::Error)>;
    /// CRC-64 of every byte consumed so far.
    #[doc(hidden)]
    fn checksum(&mut self) -> u64;
}

/// A [`Source`] over any [`Read`]: small reads, the checksum updated as bytes arrive, never a
/// byte read past what was consumed.
pub struct IoSource<R> {
    inner: R,
    crc: Crc64Digest,
}

impl<R: Read> sealed::Sealed for IoSource<R> {}

impl<R: Read> Source for IoSource<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.crc.update(buf);
        Ok(())
    }

    fn take(&mut self, len: usize) -> Result<Vec<u8>, (u64, std::io::Error)> {
        let mut v = Vec::with_capacity(len.min(READ_CHUNK_BYTES));
        while v.len() < len {
            let start = v.len();
            let n = (len - start).min(READ_CHUNK_BYTES);
            v.resize(start + n, 0);
            if let Err(e) = self.read_exact(&mut v[start..]) {
                return Err((start as u64, e));
            }
        }
        Ok(v)
    }

    fn checksum(&mut self) -> u64 {
        self.crc.clone().finalize()
    }
}

/// A [`Source`] over bytes in memory (a file read whole or mapped): reads are bounds checks and
/// one copy into the value's own buffer, and the checksum covers the consumed span in one call
/// when it is asked for.
pub struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
    crc: Crc64Digest,
    crc_pos: usize,
}

impl sealed::Sealed for SliceSource<'_> {}

impl Source for SliceSource<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let end = self.pos.checked_add(buf.len());
        match end.and_then(|e| self.data.get(self.pos..e)) {
            Some(src) => {
                buf.copy_from_slice(src);
                self.pos += buf.len();
                Ok(())
            }
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn take(&mut self, len: usize) -> Result<Vec<u8>, (u64, std::io::Error)> {
        let avail = self.data.len() - self.pos;
        if avail < len {
            // Report the failure where a chunked reader (IoSource) would have seen it.
            let consumed = avail / READ_CHUNK_BYTES * READ_CHUNK_BYTES;
            self.pos += consumed;
            return Err((consumed as u64, std::io::ErrorKind::UnexpectedEof.into()));
        }
        let v = self.data[self.pos..self.pos + len].to_vec();
        self.pos += len;
        Ok(v)
    }

    fn checksum(&mut self) -> u64 {
        self.crc.update(&self.data[self.crc_pos..self.pos]);
        self.crc_pos = self.pos;
        self.crc.clone().finalize()
    }
}

struct Src<S> {
    inner: S,
    offset: u64,
}

impl<S: Source> Src<S> {
    fn err(&self, reason: Reason) -> RdbError {
        RdbError::new(self.offset, None, reason)
    }

    fn io_err(&self, e: std::io::Error) -> RdbError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.err(Reason::Truncated)
        } else {
            self.err(Reason::Io(e))
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        if let Err(e) = self.inner.read_exact(buf) {
            return Err(self.io_err(e));
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut b = [0u8; N];
        self.read_exact(&mut b)?;
        Ok(b)
    }

    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, RdbError> {
        if len > STRING_BYTES_MAX {
            return Err(self.err(Reason::Corrupt(format!(
                "string length {len} exceeds the limit of {STRING_BYTES_MAX} bytes"
            ))));
        }
        match self.inner.take(len as usize) {
            Ok(v) => {
                self.offset += len;
                Ok(v)
            }
            Err((consumed, e)) => {
                self.offset += consumed;
                Err(self.io_err(e))
            }
        }
    }
}

/// A length, or a special string encoding (`11xxxxxx`).
enum Len {
    Len(u64),
    Enc(u8),
}

/// The streaming reader.
pub struct RdbReader<S> {
    src: Src<S>,
    version: u32,
    opts: ReaderOptions,
    db: u32,
    done: bool,
    key: Option<Bytes>,
    stats: ReadStats,
}

/// Explains a refused header version.
fn refused_version(v: u32) -> String {
    let who = match v {
        12 => "Redis 7.4 or 8.0–8.4",
        13 => "Redis 8.6",
        14 => "Redis 8.8",
        _ => "a newer or foreign Redis",
    };
    format!(
        "RDB version {v} (written by {who}); this reader accepts versions 1 to {RDB_VERSION_MAX} \
         (Redis up to 7.2, Valkey 7.2 to 8.x)"
    )
}

impl<R: Read> RdbReader<IoSource<R>> {
    /// Reads and checks the 9-byte header with default options.
    pub fn new(inner: R) -> Result<Self, RdbError> {
        Self::with_options(inner, ReaderOptions::default())
    }

    /// Reads and checks the 9-byte header.
    pub fn with_options(inner: R, opts: ReaderOptions) -> Result<Self, RdbError> {
        let r = Self::headerless(inner, 0, opts);
        r.header()
    }

    /// A reader positioned at a value (no header), for DUMP payloads.
    pub(crate) fn headerless(inner: R, version: u32, opts: ReaderOptions) -> Self {
        Self::over(
            IoSource {
                inner,
                crc: digest(),
            },
            version,
            opts,
        )
    }

    /// The inner reader, positioned after the last byte consumed (after EOF + CRC when done).
    pub fn into_inner(self) -> R {
        self.src.inner.inner
    }
}

impl<'a> RdbReader<SliceSource<'a>> {
    /// A reader over an RDB image in memory (reads and checks the 9-byte header). Same items,
    /// errors and offsets as [`RdbReader::with_options`] over the same bytes, with less work
    /// per item; [`RdbReader::offset`] tells where the image ended.
    pub fn from_slice(data: &'a [u8], opts: ReaderOptions) -> Result<Self, RdbError> {
        let r = Self::over(
            SliceSource {
                data,
                pos: 0,
                crc: digest(),
                crc_pos: 0,
            },
            0,
            opts,
        );
        r.header()
    }
}

/// A string key with a string value, its bytes borrowed from the image
/// ([`RdbReader::next_item_ref`]): the common case of a snapshot, read without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrEntryRef<'a> {
    /// Database number.
    pub db: u32,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
    /// Absolute expire time, unix ms.
    pub expire_ms: Option<i64>,
}

impl StrEntryRef<'_> {
    /// The same entry as [`RdbReader::next_item`] returns it (copies the bytes).
    pub fn to_entry(&self) -> Entry {
        Entry {
            db: self.db,
            key: Bytes::copy_from_slice(self.key),
            value: Value::String(Bytes::copy_from_slice(self.value)),
            expire_ms: self.expire_ms,
            idle_secs: None,
            freq: None,
        }
    }
}

/// What [`RdbReader::next_item_ref`] returns: a borrowed plain string entry, or any other item
/// as [`RdbReader::next_item`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemRef<'a> {
    /// A string entry whose key and value are stored as plain (not integer-encoded, not LZF)
    /// strings, with at most an expire before it.
    Str(StrEntryRef<'a>),
    /// Everything else.
    Item(Item),
}

impl ItemRef<'_> {
    /// The owned item [`RdbReader::next_item`] would have returned.
    pub fn into_item(self) -> Item {
        match self {
            ItemRef::Str(e) => Item::Entry(e.to_entry()),
            ItemRef::Item(i) => i,
        }
    }
}

/// A plain length-prefixed string at `data[p..]`: (its bytes, the position after it). None for
/// anything else (integer and LZF encodings, 64-bit lengths, a string running past the end):
/// the general reader takes those.
#[inline]
fn plain_str_at(data: &[u8], p: usize) -> Option<(&[u8], usize)> {
    let b = *data.get(p)?;
    let (len, start) = match b >> 6 {
        0 => (usize::from(b & 0x3f), p + 1),
        1 => (
            (usize::from(b & 0x3f) << 8) | usize::from(*data.get(p + 1)?),
            p + 2,
        ),
        2 if b == RDB_32BITLEN => {
            let n: [u8; 4] = data.get(p + 1..p + 5)?.try_into().ok()?;
            (u32::from_be_bytes(n) as usize, p + 5)
        }
        _ => return None,
    };
    let end = start.checked_add(len)?;
    Some((data.get(start..end)?, end))
}

impl<'a> RdbReader<SliceSource<'a>> {
    /// The next item, with the most common one — a string key with a plain string value, with
    /// or without an expire — borrowed from the image instead of copied into new buffers.
    /// Same items (see [`ItemRef::into_item`]), errors, offsets and statistics as
    /// [`RdbReader::next_item`]: anything but such a well-formed entry goes through it.
    #[inline]
    pub fn next_item_ref(&mut self) -> Result<Option<ItemRef<'a>>, RdbError> {
        if !self.done {
            if let Some(e) = self.plain_string_entry() {
                return Ok(Some(ItemRef::Str(e)));
            }
        }
        Ok(self.next_item()?.map(ItemRef::Item))
    }

    /// Parses `[EXPIRETIME_MS <8 bytes>] STRING <plain key> <plain value>` in place, or
    /// consumes nothing and returns None.
    #[inline]
    fn plain_string_entry(&mut self) -> Option<StrEntryRef<'a>> {
        let data: &'a [u8] = self.src.inner.data;
        let at = self.src.inner.pos;
        let mut p = at;
        let mut expire_ms = None;
        if *data.get(p)? == RDB_OPCODE_EXPIRETIME_MS {
            let t: [u8; 8] = data.get(p + 1..p + 9)?.try_into().ok()?;
            expire_ms = Some(i64::from_le_bytes(t));
            p += 9;
        }
        if *data.get(p)? != RDB_TYPE_STRING {
            return None;
        }
        let (key, p) = plain_str_at(data, p + 1)?;
        let (value, p) = plain_str_at(data, p)?;
        self.src.inner.pos = p;
        self.src.offset += (p - at) as u64;
        self.key = None;
        self.stats.keys += 1;
        if expire_ms.is_some() {
            self.stats.expires += 1;
        }
        Some(StrEntryRef {
            db: self.db,
            key,
            value,
            expire_ms,
        })
    }
}

impl<R: Read> RdbReader<IoSource<R>> {
    /// [`RdbReader::next_item`] as an [`ItemRef`] (a streaming reader has nothing to lend), so
    /// callers can be written once for both sources.
    pub fn next_item_ref(&mut self) -> Result<Option<ItemRef<'static>>, RdbError> {
        Ok(self.next_item()?.map(ItemRef::Item))
    }
}

impl<S: Source> RdbReader<S> {
    fn over(src: S, version: u32, opts: ReaderOptions) -> Self {
        RdbReader {
            src: Src {
                inner: src,
                offset: 0,
            },
            version,
            opts,
            db: 0,
            done: false,
            key: None,
            stats: ReadStats::default(),
        }
    }

    fn header(mut self) -> Result<Self, RdbError> {
        let r = &mut self;
        let magic: [u8; 9] = r.src.array()?;
        if &magic[..6] == b"VALKEY" {
            let v = String::from_utf8_lossy(&magic[6..]).into_owned();
            return Err(RdbError::new(
                0,
                None,
                Reason::UnsupportedVersion(format!(
                    "'VALKEY{v}' header: RDB version {v} is written by Valkey 9.0 or newer; this \
                     reader accepts REDIS0001 to REDIS0011"
                )),
            ));
        }
        if &magic[..5] != b"REDIS" {
            return Err(RdbError::new(
                0,
                None,
                Reason::BadMagic(format!(
                    "expected 'REDIS', found {:?}",
                    String::from_utf8_lossy(&magic[..5])
                )),
            ));
        }
        let digits = &magic[5..];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(RdbError::new(
                5,
                None,
                Reason::BadMagic(format!(
                    "version field {:?} is not 4 digits",
                    String::from_utf8_lossy(digits)
                )),
            ));
        }
        let version = digits
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        if version == 0 || version > RDB_VERSION_MAX {
            let msg = if version == 0 {
                "RDB version 0 does not exist".to_string()
            } else {
                refused_version(version)
            };
            return Err(RdbError::new(5, None, Reason::UnsupportedVersion(msg)));
        }
        r.version = version;
        Ok(self)
    }

    /// The RDB version from the header.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.offset
    }

    /// Counts of what was read so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    fn corrupt(&self, msg: impl Into<String>) -> RdbError {
        RdbError::new(
            self.src.offset,
            self.key.clone(),
            Reason::Corrupt(msg.into()),
        )
    }

    fn blob_err(&self, at: u64, e: BlobError) -> RdbError {
        RdbError::new(
            at,
            self.key.clone(),
            Reason::Corrupt(format!("{e} (blob starts here)")),
        )
    }

    /// The next item; `Ok(None)` after EOF.
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbError> {
        if self.done {
            return Ok(None);
        }
        let res = self.next_inner();
        match res {
            Ok(item) => Ok(item),
            Err(mut e) => {
                self.done = true;
                if e.key.is_none() {
                    e.key = self.key.take();
                }
                Err(e)
            }
        }
    }

    fn next_inner(&mut self) -> Result<Option<Item>, RdbError> {
        let mut expire_ms: Option<i64> = None;
        let mut idle_secs: Option<u64> = None;
        let mut freq: Option<u8> = None;
        loop {
            self.key = None;
            let op_at = self.src.offset;
            let op = self.src.u8()?;
            match op {
                RDB_OPCODE_EOF => {
                    let computed = self.src.inner.checksum();
                    self.done = true;
                    if self.stats.empty_keys_skipped > 0 {
                        tracing::warn!(
                            "Done reading RDB, keys loaded: {}, empty keys skipped: {}.",
                            self.stats.keys,
                            self.stats.empty_keys_skipped
                        );
                    }
                    if self.version < 5 {
                        return Ok(Some(Item::Eof { checksum: None }));
                    }
                    let stored = u64::from_le_bytes(self.src.array()?);
                    if stored != 0 && self.opts.verify_checksum && stored != computed {
                        return Err(RdbError::new(
                            op_at + 1,
                            None,
                            Reason::ChecksumMismatch { stored, computed },
                        ));
                    }
                    return Ok(Some(Item::Eof {
                        checksum: Some(stored),
                    }));
                }
                RDB_OPCODE_SELECTDB => {
                    let db = self.plain_len()?;
                    let db = u32::try_from(db)
                        .map_err(|_| self.corrupt(format!("SELECTDB {db} out of range")))?;
                    self.db = db;
                    return Ok(Some(Item::SelectDb(db)));
                }
                RDB_OPCODE_RESIZEDB => {
                    let db_size = self.plain_len()?;
                    let expires_size = self.plain_len()?;
                    return Ok(Some(Item::ResizeDb {
                        db_size,
                        expires_size,
                    }));
                }
                RDB_OPCODE_AUX => {
                    let key = self.string()?;
                    let value = self.string()?;
                    return Ok(Some(Item::Aux { key, value }));
                }
                RDB_OPCODE_EXPIRETIME_MS => {
                    expire_ms = Some(i64::from_le_bytes(self.src.array()?));
                }
                RDB_OPCODE_EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.src.array()?);
                    expire_ms = Some(i64::from(secs) * 1000);
                }
                RDB_OPCODE_IDLE => idle_secs = Some(self.plain_len()?),
                RDB_OPCODE_FREQ => freq = Some(self.src.u8()?),
                RDB_OPCODE_FUNCTION2 => {
                    let code = self.string()?;
                    return Ok(Some(Item::Function(code)));
                }
                RDB_OPCODE_FUNCTION_PRE_GA => {
                    return Err(RdbError::new(
                        op_at,
                        None,
                        Reason::Unsupported(
                            "Pre-release function format not supported (opcode 246, Redis \
                             7.0 release candidates)"
                                .into(),
                        ),
                    ));
                }
                RDB_OPCODE_MODULE_AUX => {
                    let id = self.plain_len()?;
                    let when_op = self.plain_len()?;
                    if when_op != RDB_MODULE_OPCODE_UINT {
                        return Err(self.corrupt(format!(
                            "module aux 'when' opcode is {when_op}, expected {RDB_MODULE_OPCODE_UINT}"
                        )));
                    }
                    let when = self.plain_len()?;
                    self.skip_module_value()?;
                    return Ok(Some(Item::ModuleAux {
                        module: module_name(id),
                        when,
                    }));
                }
                RDB_OPCODE_SLOT_INFO => {
                    return Err(RdbError::new(
                        op_at,
                        None,
                        Reason::Unsupported(
                            "opcode 244 (SLOT_INFO) is written by Redis 7.4+ in cluster mode"
                                .into(),
                        ),
                    ));
                }
                t => {
                    // The key is kept in `self.key` while its value is read (errors name it),
                    // then taken back: no copy.
                    self.key = Some(self.string()?);
                    let value = self.value(t, op_at)?;
                    let Some(value) = value else {
                        // As Redis: the first ten are named in the log.
                        if self.stats.empty_keys_skipped < 10 {
                            let k = self.key.as_deref().unwrap_or_default();
                            tracing::warn!("skipping empty key: {}", String::from_utf8_lossy(k));
                        }
                        self.stats.empty_keys_skipped += 1;
                        expire_ms = None;
                        idle_secs = None;
                        freq = None;
                        continue;
                    };
                    let key = self.key.take().unwrap_or_default();
                    self.stats.keys += 1;
                    if expire_ms.is_some() {
                        self.stats.expires += 1;
                    }
                    return Ok(Some(Item::Entry(Entry {
                        db: self.db,
                        key,
                        value,
                        expire_ms,
                        idle_secs,
                        freq,
                    })));
                }
            }
        }
    }

    /// Reads a type byte and a value (DUMP payloads). `Ok(None)` for an empty collection.
    pub(crate) fn typed_value(&mut self) -> Result<Option<Value>, RdbError> {
        let at = self.src.offset;
        let t = self.src.u8()?;
        self.value(t, at)
    }

    fn len(&mut self) -> Result<Len, RdbError> {
        let b = self.src.u8()?;
        match b >> 6 {
            0 => Ok(Len::Len(u64::from(b & 0x3f))),
            1 => {
                let b2 = self.src.u8()?;
                Ok(Len::Len((u64::from(b & 0x3f) << 8) | u64::from(b2)))
            }
            2 => match b {
                RDB_32BITLEN => Ok(Len::Len(u64::from(u32::from_be_bytes(self.src.array()?)))),
                RDB_64BITLEN => Ok(Len::Len(u64::from_be_bytes(self.src.array()?))),
                _ => Err(self.corrupt(format!("unknown length encoding byte 0x{b:02x}"))),
            },
            _ => Ok(Len::Enc(b & 0x3f)),
        }
    }

    fn plain_len(&mut self) -> Result<u64, RdbError> {
        match self.len()? {
            Len::Len(n) => Ok(n),
            Len::Enc(e) => {
                Err(self.corrupt(format!("expected a length, found string encoding {e}")))
            }
        }
    }

    fn string(&mut self) -> Result<Bytes, RdbError> {
        self.string_vec().map(Bytes::from)
    }

    /// One record of a FUNCTION DUMP payload: its type byte and, for FUNCTION2, the library
    /// code.
    pub(crate) fn function_record(&mut self) -> Result<(u8, Option<Bytes>), RdbError> {
        let t = self.src.u8()?;
        if t == RDB_OPCODE_FUNCTION2 {
            return Ok((t, Some(self.string()?)));
        }
        Ok((t, None))
    }

    fn string_vec(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len()? {
            Len::Len(n) => self.src.bytes(n),
            Len::Enc(RDB_ENC_INT8) => Ok((self.src.u8()? as i8).to_string().into_bytes()),
            Len::Enc(RDB_ENC_INT16) => Ok(i16::from_le_bytes(self.src.array()?)
                .to_string()
                .into_bytes()),
            Len::Enc(RDB_ENC_INT32) => Ok(i32::from_le_bytes(self.src.array()?)
                .to_string()
                .into_bytes()),
            Len::Enc(RDB_ENC_LZF) => {
                let clen = self.plain_len()?;
                let ulen = self.plain_len()?;
                if ulen > STRING_BYTES_MAX || ulen > clen.saturating_mul(LZF_EXPANSION_RATIO_MAX) {
                    return Err(self.corrupt(format!(
                        "LZF string claims {ulen} bytes from {clen} compressed bytes"
                    )));
                }
                if ulen == 0 {
                    return Err(self.corrupt("LZF string with zero length"));
                }
                let at = self.src.offset;
                let c = self.src.bytes(clen)?;
                lzf::decompress(&c, ulen as usize).map_err(|e| {
                    RdbError::new(at, self.key.clone(), Reason::Corrupt(e.to_string()))
                })
            }
            Len::Enc(e) => Err(self.corrupt(format!("unknown string encoding {e}"))),
        }
    }

    fn f64_le(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.src.array()?))
    }

    fn text_double(&mut self) -> Result<f64, RdbError> {
        let n = self.src.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let b = self.src.bytes(u64::from(n))?;
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .ok_or_else(|| self.corrupt("text double does not parse"))
            }
        }
    }

    fn count(&mut self, what: &str) -> Result<u64, RdbError> {
        let n = self.plain_len()?;
        if n > u64::from(u32::MAX) * 16 {
            return Err(self.corrupt(format!("{what} count {n} is absurd")));
        }
        Ok(n)
    }

    /// Reads a value of type `t`; `Ok(None)` for an empty collection (skipped as Redis does).
    fn value(&mut self, t: u8, type_at: u64) -> Result<Option<Value>, RdbError> {
        let v = match t {
            RDB_TYPE_STRING => Value::String(self.string()?),
            RDB_TYPE_LIST => {
                let n = self.count("list")?;
                let mut items = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    items.push(self.string()?);
                }
                Value::List(items)
            }
            RDB_TYPE_SET => {
                let n = self.count("set")?;
                let mut items = Vec::with_capacity(cap(n));
                let mut seen = HashSet::with_capacity(cap(n));
                for _ in 0..n {
                    let m = self.string()?;
                    if !seen.insert(m.clone()) {
                        return Err(self.corrupt("duplicate set member"));
                    }
                    items.push(m);
                }
                Value::Set(items)
            }
            RDB_TYPE_ZSET | RDB_TYPE_ZSET_2 => {
                let n = self.count("zset")?;
                let mut items = Vec::with_capacity(cap(n));
                let mut seen = HashSet::with_capacity(cap(n));
                for _ in 0..n {
                    let m = self.string()?;
                    let s = if t == RDB_TYPE_ZSET {
                        self.text_double()?
                    } else {
                        self.f64_le()?
                    };
                    if s.is_nan() {
                        return Err(self.corrupt("zset score is NaN"));
                    }
                    if !seen.insert(m.clone()) {
                        return Err(self.corrupt("duplicate zset member"));
                    }
                    items.push((m, s));
                }
                Value::ZSet(items)
            }
            RDB_TYPE_HASH => {
                let n = self.count("hash")?;
                let mut items = Vec::with_capacity(cap(n));
                let mut seen = HashSet::with_capacity(cap(n));
                for _ in 0..n {
                    let f = self.string()?;
                    let v = self.string()?;
                    if !seen.insert(f.clone()) {
                        return Err(self.corrupt("duplicate hash field"));
                    }
                    items.push((f, v));
                }
                Value::Hash(items)
            }
            RDB_TYPE_MODULE_PRE_GA | RDB_TYPE_MODULE_2 => {
                let id = self.plain_len()?;
                return Err(RdbError::new(
                    type_at,
                    self.key.clone(),
                    Reason::Unsupported(format!(
                        "module value of type '{}' (RDB type {t}); module types are not supported",
                        module_name(id)
                    )),
                ));
            }
            RDB_TYPE_HASH_ZIPMAP => {
                let (at, blob) = self.blob()?;
                let pairs = zipmap::decode(&blob).map_err(|e| self.blob_err(at, e))?;
                let items = pairs
                    .into_iter()
                    .map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v)))
                    .collect::<Vec<_>>();
                check_unique(items.iter().map(|p| &p.0))
                    .map_err(|_| self.corrupt("duplicate hash field in zipmap"))?;
                Value::Hash(items)
            }
            RDB_TYPE_LIST_ZIPLIST => {
                let (at, blob) = self.blob()?;
                let items = ziplist::decode(&blob).map_err(|e| self.blob_err(at, e))?;
                Value::List(items.into_iter().map(LpItem::to_bytes).collect())
            }
            RDB_TYPE_SET_INTSET => {
                let (at, blob) = self.blob()?;
                let ints = intset::decode(&blob).map_err(|e| self.blob_err(at, e))?;
                Value::Set(
                    ints.into_iter()
                        .map(|v| Bytes::from(v.to_string()))
                        .collect(),
                )
            }
            RDB_TYPE_SET_LISTPACK => {
                let (at, blob) = self.blob()?;
                let items = listpack::decode(&blob).map_err(|e| self.blob_err(at, e))?;
                let items: Vec<Bytes> = items.into_iter().map(LpItem::to_bytes).collect();
                check_unique(items.iter())
                    .map_err(|_| self.corrupt("duplicate set member in listpack"))?;
                Value::Set(items)
            }
            RDB_TYPE_ZSET_ZIPLIST | RDB_TYPE_ZSET_LISTPACK => {
                let (at, blob) = self.blob()?;
                let items = if t == RDB_TYPE_ZSET_ZIPLIST {
                    ziplist::decode(&blob)
                } else {
                    listpack::decode(&blob)
                }
                .map_err(|e| self.blob_err(at, e))?;
                if items.len() % 2 != 0 {
                    return Err(self.corrupt("sorted set blob has an odd number of elements"));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                for ch in items.chunks_exact(2) {
                    let score = match ch[1] {
                        LpItem::Int(v) => v as f64,
                        LpItem::Str(s) => parse_score(s)
                            .ok_or_else(|| self.corrupt("sorted set score does not parse"))?,
                    };
                    pairs.push((ch[0].to_bytes(), score));
                }
                check_unique(pairs.iter().map(|p| &p.0))
                    .map_err(|_| self.corrupt("duplicate zset member"))?;
                Value::ZSet(pairs)
            }
            RDB_TYPE_HASH_ZIPLIST | RDB_TYPE_HASH_LISTPACK => {
                let (at, blob) = self.blob()?;
                let items = if t == RDB_TYPE_HASH_ZIPLIST {
                    ziplist::decode(&blob)
                } else {
                    listpack::decode(&blob)
                }
                .map_err(|e| self.blob_err(at, e))?;
                if items.len() % 2 != 0 {
                    return Err(self.corrupt("hash blob has an odd number of elements"));
                }
                let pairs: Vec<(Bytes, Bytes)> = items
                    .chunks_exact(2)
                    .map(|ch| (ch[0].to_bytes(), ch[1].to_bytes()))
                    .collect();
                check_unique(pairs.iter().map(|p| &p.0))
                    .map_err(|_| self.corrupt("duplicate hash field"))?;
                Value::Hash(pairs)
            }
            RDB_TYPE_LIST_QUICKLIST | RDB_TYPE_LIST_QUICKLIST_2 => {
                let n = self.count("quicklist node")?;
                let mut items = Vec::new();
                for _ in 0..n {
                    let container = if t == RDB_TYPE_LIST_QUICKLIST_2 {
                        self.plain_len()?
                    } else {
                        QUICKLIST_NODE_CONTAINER_PACKED
                    };
                    let (at, blob) = self.blob()?;
                    if blob.is_empty() {
                        // As Redis: a node (packed or plain) is never empty.
                        return Err(self.corrupt("quicklist node of length 0"));
                    }
                    match container {
                        QUICKLIST_NODE_CONTAINER_PLAIN => items.push(Bytes::from(blob)),
                        QUICKLIST_NODE_CONTAINER_PACKED => {
                            let dec = if t == RDB_TYPE_LIST_QUICKLIST {
                                ziplist::decode(&blob)
                            } else {
                                listpack::decode(&blob)
                            }
                            .map_err(|e| self.blob_err(at, e))?;
                            // Redis silently skips empty nodes.
                            items.extend(dec.into_iter().map(LpItem::to_bytes));
                        }
                        c => return Err(self.corrupt(format!("unknown quicklist container {c}"))),
                    }
                }
                Value::List(items)
            }
            RDB_TYPE_STREAM_LISTPACKS
            | RDB_TYPE_STREAM_LISTPACKS_2
            | RDB_TYPE_STREAM_LISTPACKS_3 => {
                return self.stream(t).map(|s| Some(Value::Stream(s)));
            }
            _ => {
                let hint = match t {
                    22..=25 => " (Redis 7.4+ hash with field expiration, or Valkey 9 hash)",
                    _ => "",
                };
                return Err(RdbError::new(
                    type_at,
                    self.key.clone(),
                    Reason::Corrupt(format!("invalid object type {t}{hint}")),
                ));
            }
        };
        let empty = match &v {
            Value::String(_) | Value::Stream(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            Value::Hash(h) => h.is_empty(),
        };
        Ok(if empty { None } else { Some(v) })
    }

    /// Reads a string holding a blob; returns its file offset too.
    fn blob(&mut self) -> Result<(u64, Vec<u8>), RdbError> {
        let at = self.src.offset;
        Ok((at, self.string_vec()?))
    }

    fn stream_id_lens(&mut self) -> Result<StreamId, RdbError> {
        let ms = self.plain_len()?;
        let seq = self.plain_len()?;
        Ok(StreamId { ms, seq })
    }

    fn stream(&mut self, t: u8) -> Result<Stream, RdbError> {
        let nodes = self.count("stream listpack")?;
        let mut entries: Vec<StreamEntry> = Vec::new();
        for _ in 0..nodes {
            let key_at = self.src.offset;
            let nodekey = self.string_vec()?;
            let master: [u8; 16] = nodekey.as_slice().try_into().map_err(|_| {
                RdbError::new(
                    key_at,
                    self.key.clone(),
                    Reason::Corrupt(format!(
                        "stream node key is {} bytes, expected 16",
                        nodekey.len()
                    )),
                )
            })?;
            let master = StreamId::from_be_bytes(master);
            let (at, blob) = self.blob()?;
            let items = listpack::decode(&blob).map_err(|e| {
                let e = BlobError {
                    what: "stream listpack",
                    ..e
                };
                self.blob_err(at, e)
            })?;
            if items.is_empty() {
                return Err(self.corrupt("empty listpack inside stream"));
            }
            parse_stream_node(&items, master, &mut entries).map_err(|reason| {
                self.blob_err(at, BlobError::new("stream listpack", 0, reason))
            })?;
        }
        for w in entries.windows(2) {
            if w[0].id >= w[1].id {
                return Err(self.corrupt(format!(
                    "stream IDs out of order: {} then {}",
                    w[0].id, w[1].id
                )));
            }
        }
        let length = self.plain_len()?;
        if length != entries.len() as u64 {
            return Err(self.corrupt(format!(
                "stream length {length} but {} live entries",
                entries.len()
            )));
        }
        let last_id = self.stream_id_lens()?;
        let (first_id, max_deleted_id, entries_added) = if t >= RDB_TYPE_STREAM_LISTPACKS_2 {
            let f = self.stream_id_lens()?;
            let m = self.stream_id_lens()?;
            let a = self.plain_len()?;
            (f, m, a)
        } else {
            (
                entries.first().map(|e| e.id).unwrap_or_default(),
                StreamId::default(),
                length,
            )
        };
        let ngroups = self.count("consumer group")?;
        let mut groups = Vec::with_capacity(cap(ngroups));
        let mut group_names = HashSet::new();
        for _ in 0..ngroups {
            let name = self.string()?;
            if !group_names.insert(name.clone()) {
                return Err(self.corrupt("duplicate consumer group name"));
            }
            let glast = self.stream_id_lens()?;
            let entries_read = if t >= RDB_TYPE_STREAM_LISTPACKS_2 {
                self.plain_len()? as i64
            } else {
                legacy_entries_read(glast, length, first_id, last_id)
            };
            let npel = self.count("PEL")?;
            let mut pel = Vec::with_capacity(cap(npel));
            let mut pel_ids = HashSet::with_capacity(cap(npel));
            for _ in 0..npel {
                let id = StreamId::from_be_bytes(self.src.array()?);
                let delivery_time_ms = i64::from_le_bytes(self.src.array()?);
                let delivery_count = self.plain_len()?;
                if !pel_ids.insert(id) {
                    return Err(self.corrupt(format!("duplicate global PEL entry {id}")));
                }
                pel.push(PendingEntry {
                    id,
                    delivery_time_ms,
                    delivery_count,
                });
            }
            let ncons = self.count("consumer")?;
            let mut consumers = Vec::with_capacity(cap(ncons));
            let mut cons_names = HashSet::new();
            let mut owned = HashSet::with_capacity(pel_ids.len());
            for _ in 0..ncons {
                let cname = self.string()?;
                if !cons_names.insert(cname.clone()) {
                    return Err(self.corrupt("Duplicate stream consumer detected"));
                }
                let seen_time_ms = i64::from_le_bytes(self.src.array()?);
                let active_time_ms = if t >= RDB_TYPE_STREAM_LISTPACKS_3 {
                    Some(i64::from_le_bytes(self.src.array()?))
                } else {
                    None
                };
                let np = self.count("consumer PEL")?;
                let mut pending = Vec::with_capacity(cap(np));
                for _ in 0..np {
                    let id = StreamId::from_be_bytes(self.src.array()?);
                    if !pel_ids.contains(&id) {
                        return Err(self.corrupt(format!(
                            "consumer PEL entry {id} not found in the group PEL"
                        )));
                    }
                    if !owned.insert(id) {
                        return Err(self.corrupt(format!("PEL entry {id} owned twice")));
                    }
                    pending.push(id);
                }
                consumers.push(Consumer {
                    name: cname,
                    seen_time_ms,
                    active_time_ms,
                    pending,
                });
            }
            if owned.len() != pel_ids.len() {
                return Err(self.corrupt("group PEL entry without consumer"));
            }
            groups.push(ConsumerGroup {
                name,
                last_id: glast,
                entries_read,
                pel,
                consumers,
            });
        }
        Ok(Stream {
            entries,
            length,
            last_id,
            first_id,
            max_deleted_id,
            entries_added,
            groups,
        })
    }

    fn skip_module_value(&mut self) -> Result<(), RdbError> {
        loop {
            let op = self.plain_len()?;
            match op {
                RDB_MODULE_OPCODE_EOF => return Ok(()),
                RDB_MODULE_OPCODE_SINT | RDB_MODULE_OPCODE_UINT => {
                    self.plain_len()?;
                }
                RDB_MODULE_OPCODE_FLOAT => {
                    self.src.array::<4>()?;
                }
                RDB_MODULE_OPCODE_DOUBLE => {
                    self.src.array::<8>()?;
                }
                RDB_MODULE_OPCODE_STRING => {
                    self.string_vec()?;
                }
                other => return Err(self.corrupt(format!("unknown module opcode {other}"))),
            }
        }
    }
}

impl<S: Source> Iterator for RdbReader<S> {
    type Item = Result<Item, RdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// A Redis <= 6.2 stream (RDB_TYPE_STREAM_LISTPACKS) has no group read counters: Redis 7
/// estimates each as `streamEstimateDistanceFromFirstEverEntry` does with `entries_added` =
/// length and no tombstones (-1, SCG_INVALID_ENTRIES_READ, when it cannot be known).
fn legacy_entries_read(id: StreamId, length: u64, first: StreamId, last: StreamId) -> i64 {
    if length == 0 {
        return 0;
    }
    if id == last {
        length as i64
    } else if id > last {
        -1
    } else if id < first {
        0
    } else if id == first {
        1
    } else {
        -1
    }
}

fn cap(n: u64) -> usize {
    n.min(PREALLOC_ITEMS_MAX as u64) as usize
}

fn check_unique<'a>(it: impl Iterator<Item = &'a Bytes>) -> Result<(), ()> {
    let mut seen = HashSet::new();
    for b in it {
        if !seen.insert(b) {
            return Err(());
        }
    }
    Ok(())
}

/// Decodes a module type id into its 9-character name (`moduleTypeEncodeId` in reverse).
pub fn module_name(id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(9);
    for j in 0..9u32 {
        let shift = 10 + 6 * (8 - j);
        s.push(CHARSET[((id >> shift) & 63) as usize] as char);
    }
    s
}

/// Walks one stream listpack (validated like `streamValidateListpackIntegrity`, deep) and
/// appends its live entries.
fn parse_stream_node(
    items: &[LpItem<'_>],
    master: StreamId,
    out: &mut Vec<StreamEntry>,
) -> Result<(), String> {
    let mut i = 0usize;
    let int = |i: &mut usize, what: &str| -> Result<i64, String> {
        let it = items.get(*i).ok_or_else(|| format!("ends before {what}"))?;
        *i += 1;
        it.as_int()
            .ok_or_else(|| format!("{what} is not an integer"))
    };
    let count = int(&mut i, "entry count")?;
    let deleted = int(&mut i, "deleted count")?;
    let master_fields = int(&mut i, "master field count")?;
    if count < 0 || deleted < 0 || master_fields < 0 {
        return Err("negative count in master entry".into());
    }
    let mf = master_fields as usize;
    if i + mf > items.len() {
        return Err("master fields run past the end".into());
    }
    let fields: Vec<Bytes> = items[i..i + mf].iter().map(|x| x.to_bytes()).collect();
    i += mf;
    if int(&mut i, "master terminator")? != 0 {
        return Err("master entry terminator is not 0".into());
    }
    let total = count.checked_add(deleted).ok_or("entry count overflows")?;
    let mut live = 0i64;
    for _ in 0..total {
        let flags = int(&mut i, "flags")?;
        let ms_diff = int(&mut i, "ms-diff")?;
        let seq_diff = int(&mut i, "seq-diff")?;
        let id = StreamId {
            ms: master.ms.wrapping_add(ms_diff as u64),
            seq: master.seq.wrapping_add(seq_diff as u64),
        };
        let samefields = flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0;
        let (pairs, expect_lp_count) = if samefields {
            if i + mf > items.len() {
                return Err("entry values run past the end".into());
            }
            let pairs: Vec<(Bytes, Bytes)> = fields
                .iter()
                .cloned()
                .zip(items[i..i + mf].iter().map(|x| x.to_bytes()))
                .collect();
            i += mf;
            (pairs, mf as i64 + 3)
        } else {
            let nf = int(&mut i, "field count")?;
            if nf < 0 {
                return Err("negative field count".into());
            }
            let nf = nf as usize;
            if nf
                .checked_mul(2)
                .and_then(|n| n.checked_add(i))
                .is_none_or(|e| e > items.len())
            {
                return Err("entry fields run past the end".into());
            }
            let pairs: Vec<(Bytes, Bytes)> = items[i..i + 2 * nf]
                .chunks_exact(2)
                .map(|c| (c[0].to_bytes(), c[1].to_bytes()))
                .collect();
            i += 2 * nf;
            (pairs, 2 * nf as i64 + 4)
        };
        let lp_count = int(&mut i, "lp-count")?;
        if lp_count != expect_lp_count {
            return Err(format!("lp-count {lp_count}, expected {expect_lp_count}"));
        }
        if flags & STREAM_ITEM_FLAG_DELETED == 0 {
            live += 1;
            out.push(StreamEntry { id, fields: pairs });
        }
    }
    if i != items.len() {
        return Err(format!("{} trailing elements", items.len() - i));
    }
    if live != count {
        return Err(format!("master says {count} live entries, found {live}"));
    }
    Ok(())
}
