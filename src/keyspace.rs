//! The keyspace: databases of keys → objects, with a separate expires table (as Redis), so the
//! active-expire cycle can sample keys with a TTL in O(1).
//!
//! Both tables are dense and indexable (see [`table`]): random access by index gives RANDOMKEY,
//! sampling for expiry and SPOP-like choices in O(1), and SCAN walks indices from the top down,
//! which keeps Redis's SCAN guarantee under `swap_remove` (see [`Db::scan_indices`]).
//!
//! Per key, a string of up to 15 bytes with a key of up to 15 bytes costs 40 bytes of entry
//! (16-byte inline key, 16-byte [`Value`], LRU/LFU and snapshot epoch) plus about 10 bytes of
//! index, with no heap allocation (docs/architecture.md, "Keyspace layout").

pub mod posindex;
pub mod table;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::types::compact::CompactBytes;
use crate::types::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};
pub use table::{Expires, KeyTable};

/// A collection behind a thin, copy-on-write pointer.
///
/// The keyspace is its only owner except while a fork-free snapshot (`compaction`) serializes
/// a large collection on its own thread: it then holds a second reference ([`Shared::share`])
/// to the value as of the snapshot point. Any mutable access goes through `Arc::make_mut`, so a
/// write to a value the snapshot still reads clones it first (copy-on-write) and the snapshot
/// keeps the old state; `compaction::pre_mutate` does that clone explicitly before a write
/// command so it is counted. Reads (`Deref`) never clone. For the large encodings the clone is
/// shallow (chunk pointers: list nodes, `types::chunked`), and writes then copy chunk by chunk.
pub struct Shared<T: Clone>(Arc<T>);

impl<T: Clone> Shared<T> {
    pub fn new(v: T) -> Self {
        Shared(Arc::new(v))
    }

    /// A second reference to the same value (the snapshot's; the keyspace's copy becomes
    /// copy-on-write).
    pub fn share(&self) -> Shared<T> {
        Shared(self.0.clone())
    }

    /// True while another reference (a running snapshot's) exists.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// The copy of copy-on-write: the keyspace gets its own clone, timed and counted in
    /// [`COW_CLONES`] / [`COW_CLONE_NS`] for the snapshot's figures.
    #[cold]
    #[inline(never)]
    fn clone_out(&mut self) {
        let t0 = std::time::Instant::now();
        self.0 = Arc::new((*self.0).clone());
        COW_CLONES.fetch_add(1, Ordering::Relaxed);
        COW_CLONE_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Copy-on-write clones of a collection a snapshot still held (see [`Shared`]), since start.
pub static COW_CLONES: AtomicU64 = AtomicU64::new(0);
/// Time those clones took, in ns (the running snapshot counts it as its own work).
pub static COW_CLONE_NS: AtomicU64 = AtomicU64::new(0);

impl<T: Clone + Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T: Clone> std::ops::Deref for Shared<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for Shared<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // Only the execution thread clones a keyspace value's `Arc`; the snapshot thread only
        // drops its reference, so a count of 1 seen here stays 1 (`make_mut` then does not
        // clone), and a stale 2 only costs a needless clone.
        if Arc::strong_count(&self.0) > 1 {
            self.clone_out();
        }
        Arc::make_mut(&mut self.0)
    }
}

/// A key's value: 16 bytes. Strings of up to 15 bytes are inline; collections are behind a
/// pointer so that the common case, a string, keeps every keyspace entry small.
pub enum Value {
    Str(CompactBytes),
    List(Shared<List>),
    Hash(Shared<Hash>),
    Set(Shared<Set>),
    ZSet(Shared<ZSet>),
    Stream(Shared<Stream>),
}

impl Value {
    /// The name TYPE answers with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The name OBJECT ENCODING answers with.
    pub fn encoding(&self) -> &'static str {
        match self {
            // Longer than 44 bytes, or edited in place: Redis's `raw`.
            Value::Str(s) if s.is_raw() => "raw",
            Value::Str(s) => string_encoding(s),
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    /// Approximate heap bytes, for MEMORY USAGE and INFO.
    pub fn mem_usage(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::List(l) => l.mem_usage(),
            Value::Hash(h) => h.mem_usage(),
            Value::Set(s) => s.mem_usage(),
            Value::ZSet(z) => z.mem_usage(),
            Value::Stream(s) => crate::types::stream::mem_usage(s),
        }
    }

    /// Elements of a collection (None for a string): O(1).
    pub fn elements(&self) -> Option<usize> {
        match self {
            Value::Str(_) => None,
            Value::List(l) => Some(l.len()),
            Value::Hash(h) => Some(h.len()),
            Value::Set(s) => Some(s.len()),
            Value::ZSet(z) => Some(z.len()),
            Value::Stream(s) => Some(s.len()),
        }
    }

    /// A second reference to a collection (copy-on-write from now on, see [`Shared`]); None for
    /// a string.
    pub fn share(&self) -> Option<Value> {
        Some(match self {
            Value::Str(_) => return None,
            Value::List(l) => Value::List(l.share()),
            Value::Hash(h) => Value::Hash(h.share()),
            Value::Set(s) => Value::Set(s.share()),
            Value::ZSet(z) => Value::ZSet(z.share()),
            Value::Stream(s) => Value::Stream(s.share()),
        })
    }

    pub fn deep_clone(&self) -> Value {
        match self {
            Value::Str(s) => Value::Str(s.clone()),
            Value::List(l) => Value::List(Shared::new((**l).clone())),
            Value::Hash(h) => Value::Hash(Shared::new((**h).clone())),
            Value::Set(s) => Value::Set(Shared::new((**s).clone())),
            Value::ZSet(z) => Value::ZSet(Shared::new((**z).clone())),
            Value::Stream(s) => Value::Stream(Shared::new((**s).clone())),
        }
    }
}

/// Redis's string encodings: `int` for canonical integers, `embstr` up to 44 bytes, `raw` above.
pub fn string_encoding(s: &[u8]) -> &'static str {
    if s.len() <= 20 && crate::resp::parse_i64(s).is_some() {
        "int"
    } else if s.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

pub struct Object {
    pub value: Value,
    /// Bits 0..24: LRU clock (seconds) of the last access; bits 24..32: LFU counter.
    meta: u32,
    /// The snapshot epoch in which this object was serialized (see `compaction`): an object
    /// whose `snap` equals the running snapshot's epoch is already in it, or was born after it.
    pub snap: u32,
}

/// Epoch stamped on objects created now: while a snapshot runs, new objects are born "already
/// handled" (they did not exist at the snapshot point). Only the execution thread writes it.
pub static NEW_OBJECT_SNAP: AtomicU32 = AtomicU32::new(0);

/// A new object's LFU counter (Redis's `LFU_INIT_VAL`).
pub const LFU_INIT_VAL: u32 = 5;

impl Object {
    pub fn new(value: Value, lru: u32) -> Object {
        Object {
            value,
            meta: (lru & 0xFF_FFFF) | (LFU_INIT_VAL << 24),
            snap: NEW_OBJECT_SNAP.load(Ordering::Relaxed),
        }
    }

    pub fn lru(&self) -> u32 {
        self.meta & 0xFF_FFFF
    }

    pub fn set_lru(&mut self, lru: u32) {
        self.meta = (self.meta & 0xFF00_0000) | (lru & 0xFF_FFFF);
    }

    pub fn freq(&self) -> u8 {
        (self.meta >> 24) as u8
    }

    pub fn set_freq(&mut self, f: u8) {
        self.meta = (self.meta & 0xFF_FFFF) | ((f as u32) << 24);
    }
}

#[derive(Default)]
pub struct Db {
    pub keys: KeyTable,
    /// Absolute expiry time in unix milliseconds.
    pub expires: Expires,
    /// Keys that had a TTL set and expired (counted for INFO keyspace `avg_ttl` bookkeeping).
    pub avg_ttl_ms: i64,
}

impl Db {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Loading mode on or off: while on, the tables grow in one go rather than incrementally
    /// (faster; only a loader that serves nobody meanwhile may switch it on).
    pub fn set_loading(&mut self, on: bool) {
        self.keys.set_grow_at_once(on);
        self.expires.set_grow_at_once(on);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes of the unused slots of both tables' entry vectors. A key and its object live in a
    /// slot of a dense vector, where Redis allocates each key's dictEntry, key and object apart:
    /// the unused slots are to these tables what free regions of its allocator's slabs are to
    /// Redis, reserved and holding nothing, and not part of `used_memory` (Redis's zmalloc
    /// counts live allocations only). Deleting a key frees its slot here (and its heap bytes,
    /// if any), so deleting or evicting keys lowers `used_memory` as in Redis.
    pub fn spare_bytes(&self) -> usize {
        self.keys.spare_bytes() + self.expires.spare_bytes()
    }

    /// The expiry of `key`, if it has one (does not check whether it has passed).
    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        self.expires.get(key).copied()
    }

    /// True if `key` exists and its TTL has passed.
    pub fn is_expired(&self, key: &[u8], now_ms: i64) -> bool {
        matches!(self.expires.get(key), Some(&t) if t <= now_ms)
    }

    /// Remove a key and its expiry. Returns the object if it was there.
    pub fn remove(&mut self, key: &[u8]) -> Option<Object> {
        let o = self.keys.swap_remove(key)?;
        self.expires.swap_remove(key);
        Some(o)
    }

    /// Insert or overwrite `key` (the keyspace stores its own copy), clearing any TTL (as SET
    /// does). Returns the old object.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, obj: Object) -> Option<Object> {
        let key = key.as_ref();
        self.expires.swap_remove(key);
        self.keys.insert(key, obj)
    }

    /// [`Db::insert`] of a key already owned and hashed with `self.keys.hasher()` (loading).
    pub fn insert_hashed(&mut self, h: u64, key: CompactBytes, obj: Object) -> Option<Object> {
        self.expires.swap_remove(&key);
        self.keys.insert_hashed(h, key, obj)
    }

    /// Overwrite the value of `key` keeping its TTL (as SET KEEPTTL and most write commands do).
    pub fn insert_keep_ttl(&mut self, key: impl AsRef<[u8]>, obj: Object) -> Option<Object> {
        self.keys.insert(key, obj)
    }

    /// Set the absolute expiry of an existing key.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64) {
        if !self.keys.contains_key(key) {
            debug_assert!(false, "set_expire on a missing key");
            return;
        }
        self.expires.insert(key, at_ms);
    }

    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.expires.swap_remove(key).is_some()
    }

    pub fn clear(&mut self) {
        self.keys = KeyTable::default();
        self.expires = Expires::default();
    }

    /// One SCAN step. The cursor counts down from the top index: `swap_remove` only moves the
    /// last element (already visited, or inside the unvisited prefix) into a lower slot, so
    /// a key present for the whole scan is always returned (possibly twice), as Redis promises.
    /// Returns the next cursor (0 when done) and the visited indices.
    pub fn scan_indices(len: usize, cursor: u64, count: usize) -> (u64, std::ops::Range<usize>) {
        if len == 0 {
            return (0, 0..0);
        }
        // cursor 0 = start at the top; otherwise cursor-1 is the next index to visit.
        let top = if cursor == 0 {
            len
        } else {
            ((cursor - 1) as usize + 1).min(len)
        };
        let bottom = top.saturating_sub(count.max(1));
        let next = if bottom == 0 { 0 } else { bottom as u64 };
        (next, bottom..top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_returns_every_key_present_for_the_whole_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let key = |i: u32| format!("k{i}").into_bytes();
        let obj = || Object::new(Value::Str(CompactBytes::new()), 0);
        for _ in 0..50 {
            let mut m = KeyTable::default();
            for i in 0..200 {
                m.insert(key(i), obj());
            }
            let stable: Vec<u32> = (0..200).filter(|i| i % 3 == 0).collect();
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0u64;
            let mut next_new = 1000;
            loop {
                let (next, range) = Db::scan_indices(m.len(), cursor, 7);
                for i in range {
                    seen.insert(m.get_index(i).unwrap().0.to_vec());
                }
                // mutate: delete some non-stable keys, insert new ones
                for _ in 0..5 {
                    let k = rng.gen_range(0..200u32);
                    if k % 3 != 0 {
                        m.swap_remove(&key(k));
                    }
                    m.insert(key(next_new), obj());
                    next_new += 1;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            for k in &stable {
                assert!(seen.contains(&key(*k)), "key {k} missed");
            }
        }
    }
}

#[cfg(test)]
mod size_probe {
    /// Every key pays for an `Object` in the keyspace table: keep it small (collections are
    /// boxed so a string key does not pay for the largest collection header, and short strings
    /// are inline). The per-key budget in docs/architecture.md depends on these sizes.
    #[test]
    fn objects_stay_small() {
        assert_eq!(std::mem::size_of::<super::CompactBytes>(), 16);
        assert_eq!(std::mem::size_of::<super::Value>(), 16);
        assert_eq!(std::mem::size_of::<super::Object>(), 24);
        assert_eq!(std::mem::size_of::<super::table::Entry>(), 40);
    }
}
