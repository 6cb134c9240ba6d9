//! The neutral value model: what an RDB file holds, independent of the server's own types.
//!
//! Element order: lists keep their order. Sets, hashes and sorted sets keep the order in which
//! the file stored them (the reader does not sort); [`Value::canonical`] sorts them so two
//! values can be compared. The writer accepts any order and sorts where the format needs it
//! (listpack sorted sets are in rank order).

use bytes::Bytes;

/// One value of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (any bytes).
    String(Bytes),
    /// A list, head first.
    List(Vec<Bytes>),
    /// A set: members, no duplicates.
    Set(Vec<Bytes>),
    /// A sorted set: (member, score) pairs, no duplicate members, no NaN scores.
    ZSet(Vec<(Bytes, f64)>),
    /// A hash: (field, value) pairs, no duplicate fields.
    Hash(Vec<(Bytes, Bytes)>),
    /// A stream with its metadata and consumer groups.
    Stream(Stream),
}

impl Value {
    /// Redis's name for the type (`TYPE` reply).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Hash(_) => "hash",
            Value::Stream(_) => "stream",
        }
    }

    /// A copy with unordered collections sorted: sets by member, hashes by field, sorted sets in
    /// rank order (score, then member bytes). Used to compare values.
    pub fn canonical(&self) -> Value {
        match self {
            Value::Set(m) => {
                let mut m = m.clone();
                m.sort();
                Value::Set(m)
            }
            Value::Hash(p) => {
                let mut p = p.clone();
                p.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Hash(p)
            }
            Value::ZSet(p) => {
                let mut p = p.clone();
                sort_zset(&mut p);
                Value::ZSet(p)
            }
            other => other.clone(),
        }
    }
}

/// Sorts (member, score) pairs in Redis rank order: by score, ties by member bytes.
pub fn sort_zset(pairs: &mut [(Bytes, f64)]) {
    pairs.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
}

/// A stream entry ID `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// Builds an ID.
    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The 16-byte big-endian form used as rax key and in PELs.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Parses the 16-byte big-endian form.
    pub fn from_be_bytes(b: [u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One live stream entry (deleted entries are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry's ID.
    pub id: StreamId,
    /// Field/value pairs in insertion order (fields may repeat, as XADD allows).
    pub fields: Vec<(Bytes, Bytes)>,
}

/// A stream with the metadata RDB stores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// Live entries in ID order.
    pub entries: Vec<StreamEntry>,
    /// Number of live entries (XLEN); equals `entries.len()` in a valid file.
    pub length: u64,
    /// The last ID ever generated (XADD's lower bound for the next one).
    pub last_id: StreamId,
    /// The first live entry's ID (0-0 when empty). Not stored before RDB type 19; computed.
    pub first_id: StreamId,
    /// Greatest ID deleted so far (0-0 if none). Not stored before type 19: 0-0.
    pub max_deleted_id: StreamId,
    /// Entries ever added. Not stored before type 19: equals `length`.
    pub entries_added: u64,
    /// Consumer groups in stored order.
    pub groups: Vec<ConsumerGroup>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// Group name.
    pub name: Bytes,
    /// Last delivered ID.
    pub last_id: StreamId,
    /// Entries read counter (`entries-read`); -1 (Redis's SCG_INVALID_ENTRIES_READ) when
    /// unknown, which is also what files before type 19 load to.
    pub entries_read: i64,
    /// The group's pending entries list, in ID order.
    pub pel: Vec<PendingEntry>,
    /// Consumers in stored order.
    pub consumers: Vec<Consumer>,
}

/// An entry of a group's PEL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingEntry {
    /// The pending entry's ID.
    pub id: StreamId,
    /// Last delivery time, unix ms.
    pub delivery_time_ms: i64,
    /// Number of deliveries.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Consumer name.
    pub name: Bytes,
    /// Last time the consumer was seen, unix ms.
    pub seen_time_ms: i64,
    /// Last time the consumer was active (RDB type 21, Redis 7.2 / Valkey 8); `None` when the
    /// file did not store it.
    pub active_time_ms: Option<i64>,
    /// IDs of the group PEL entries this consumer owns, in ID order.
    pub pending: Vec<StreamId>,
}

/// One key as loaded from (or written to) an RDB file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Database number.
    pub db: u32,
    /// Key bytes.
    pub key: Bytes,
    /// The value.
    pub value: Value,
    /// Absolute expire time, unix ms.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (opcode IDLE).
    pub idle_secs: Option<u64>,
    /// LFU counter (opcode FREQ).
    pub freq: Option<u8>,
}
