//! The keyspace's tables.
//!
//! [`KeyTable`] is a dense vector of `(key, object)` entries of 40 bytes each (a 16-byte
//! [`CompactBytes`] key and a 24-byte [`Object`]) plus a [`PosIndex`] of `u32` positions into
//! it (4 bytes and a control byte per bucket; it grows incrementally, as Redis's dicts rehash,
//! instead of stalling one command for a full rehash). Hashes are not stored: they are
//! recomputed from the key when records move to a grown index and when `swap_remove` moves the
//! last entry. The dense
//! vector gives O(1) random access by position (RANDOMKEY, eviction and expiry sampling) and
//! SCAN's top-down cursor (see [`super::Db::scan_indices`]), exactly as the `IndexMap` it
//! replaces did, with the same `swap_remove` order.
//!
//! [`Expires`] maps keys with a TTL to their absolute expiry, with the same layout (a dense
//! vector and a [`PosIndex`]), so O(1) access by position and no pause when it grows either.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::posindex::{pos, PosIndex, Probe, STEP_ON_INSERT};
use super::Object;
use crate::types::compact::CompactBytes;

/// One key and its object: 40 bytes.
pub struct Entry {
    key: CompactBytes,
    obj: Object,
}

/// A key as `upsert` takes it: borrowed (copied when stored) or already owned.
trait StoredKey {
    fn bytes(&self) -> &[u8];
    fn into_stored(self) -> CompactBytes;
}

impl StoredKey for &[u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn into_stored(self) -> CompactBytes {
        CompactBytes::key(self)
    }
}

impl StoredKey for CompactBytes {
    fn bytes(&self) -> &[u8] {
        self.as_slice()
    }
    fn into_stored(self) -> CompactBytes {
        self
    }
}

/// A table's key hash, usable on another thread (see [`KeyTable::insert_hashed`]).
#[derive(Clone)]
pub struct KeyHasher(RandomState);

impl KeyHasher {
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.0.hash_one(key)
    }
}

/// Keys → objects, dense and indexable (see the module documentation).
#[derive(Default)]
pub struct KeyTable {
    entries: Vec<Entry>,
    index: PosIndex,
    /// foldhash seeded at random per table: DoS-resistant, and much cheaper than SipHash.
    hasher: RandomState,
}

impl KeyTable {
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position of `key`, if present.
    #[inline]
    pub fn get_index_of(&self, key: &[u8]) -> Option<usize> {
        let h = self.hash(key);
        let entries = &self.entries;
        self.index
            .find(h, |i| entries[i as usize].key.as_slice() == key)
            .map(|i| i as usize)
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Object> {
        let i = self.get_index_of(key)?;
        Some(&self.entries[i].obj)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Object> {
        let i = self.get_index_of(key)?;
        Some(&mut self.entries[i].obj)
    }

    #[inline]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get_index_of(key).is_some()
    }

    /// Position, stored key and object of `key`.
    pub fn get_full_mut(&mut self, key: &[u8]) -> Option<(usize, &CompactBytes, &mut Object)> {
        let i = self.get_index_of(key)?;
        let e = &mut self.entries[i];
        Some((i, &e.key, &mut e.obj))
    }

    pub fn get_index(&self, i: usize) -> Option<(&CompactBytes, &Object)> {
        self.entries.get(i).map(|e| (&e.key, &e.obj))
    }

    pub fn get_index_mut(&mut self, i: usize) -> Option<(&CompactBytes, &mut Object)> {
        self.entries.get_mut(i).map(|e| (&e.key, &mut e.obj))
    }

    /// Insert or overwrite. The key is always copied (a stored key never shares the caller's
    /// buffer, e.g. a connection's read buffer). Returns the old object.
    #[inline]
    pub fn insert(&mut self, key: impl AsRef<[u8]>, obj: Object) -> Option<Object> {
        let key = key.as_ref();
        self.upsert(self.hash(key), key, obj)
    }

    /// The hash `insert` would compute for `key` (a loader computes it on its decoding thread).
    pub fn hasher(&self) -> KeyHasher {
        KeyHasher(self.hasher.clone())
    }

    /// [`KeyTable::insert`] with the key already owned and hashed by [`KeyTable::hasher`]: the
    /// loader's inserting thread then only probes the index and appends.
    pub fn insert_hashed(&mut self, h: u64, key: CompactBytes, obj: Object) -> Option<Object> {
        debug_assert_eq!(h, self.hash(&key), "hash from another table's hasher");
        self.upsert(h, key, obj)
    }

    /// See [`PosIndex::set_grow_at_once`].
    pub fn set_grow_at_once(&mut self, on: bool) {
        self.index.set_grow_at_once(on);
    }

    /// Bulk loading: append an entry without indexing it. Until [`KeyTable::index_appended`]
    /// runs, lookups do not see it (the loader is the only user of the table meanwhile).
    pub fn push_unindexed(&mut self, key: CompactBytes, obj: Object) -> usize {
        self.entries.push(Entry { key, obj });
        self.entries.len() - 1
    }

    /// Index the entries appended by [`KeyTable::push_unindexed`] from position `from` on
    /// (`hashes` in position order). A key appended twice keeps its later entry, as
    /// [`KeyTable::insert`] would have; returns the earlier entries' positions, ascending,
    /// still in the vector: the caller reads what it needs of them (their keys are the
    /// winners' keys) and drops them with [`KeyTable::remove_unindexed`].
    pub fn index_appended(&mut self, from: usize, hashes: &[u64]) -> Vec<u32> {
        debug_assert_eq!(from + hashes.len(), self.entries.len());
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.index.insert_appended(
            from,
            hashes,
            |a, b| entries[a as usize].key == entries[b as usize].key,
            |i| hasher.hash_one(entries[i as usize].key.as_slice()),
        )
    }

    /// Drop the unindexed entries at `positions` (ascending, as
    /// [`KeyTable::index_appended`] returns them); every other entry must be indexed.
    pub fn remove_unindexed(&mut self, positions: &[u32]) {
        let hasher = &self.hasher;
        self.index
            .drop_unindexed(&mut self.entries, positions, |e| {
                hasher.hash_one(e.key.as_slice())
            });
    }

    /// Overwrite the object of `key` or append a new entry; the key is made owned (copied, if
    /// borrowed) only when it is new.
    #[inline]
    fn upsert<K: StoredKey>(&mut self, h: u64, key: K, obj: Object) -> Option<Object> {
        let entries = &mut self.entries;
        let hasher = &self.hasher;
        let len = entries.len();
        let probe = self.index.find_or_insert(
            h,
            |i| entries[i as usize].key.as_slice() == key.bytes(),
            pos(len),
            len,
            |i| hasher.hash_one(entries[i as usize].key.as_slice()),
        );
        match probe {
            Probe::Found(i) => Some(std::mem::replace(&mut entries[*i as usize].obj, obj)),
            Probe::Absent => {
                entries.push(Entry {
                    key: key.into_stored(),
                    obj,
                });
                None
            }
        }
    }

    /// Remove `key`, moving the last entry into its position (as `IndexMap::swap_remove`).
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<Object> {
        let h = self.hash(key);
        let entries = &self.entries;
        let hasher = &self.hasher;
        let i = self.index.swap_remove(
            h,
            |i| entries[i as usize].key.as_slice() == key,
            entries.len(),
            |j| hasher.hash_one(entries[j].key.as_slice()),
        )?;
        let obj = self.entries.swap_remove(i).obj;
        self.rehash_step(STEP_ON_INSERT);
        Some(obj)
    }

    /// Move up to `n` records of a growing index to its new table (cron: `activerehashing`).
    /// Returns true while some remain.
    pub fn rehash_step(&mut self, n: usize) -> bool {
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.index.step(n, entries.len(), &|j| {
            hasher.hash_one(entries[j as usize].key.as_slice())
        })
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.index.reserve(additional, entries.len(), |i| {
            hasher.hash_one(entries[i as usize].key.as_slice())
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CompactBytes, &Object)> + '_ {
        self.entries.iter().map(|e| (&e.key, &e.obj))
    }

    /// Every entry with its object mutable (keys stay fixed: the index depends on them).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&CompactBytes, &mut Object)> + '_ {
        self.entries.iter_mut().map(|e| (&e.key, &mut e.obj))
    }

    pub fn keys(&self) -> impl Iterator<Item = &CompactBytes> + '_ {
        self.entries.iter().map(|e| &e.key)
    }

    /// Bytes of the entry vector's unused slots: allocated, holding no key (see
    /// [`super::Db::spare_bytes`]).
    pub fn spare_bytes(&self) -> usize {
        (self.entries.capacity() - self.entries.len()) * std::mem::size_of::<Entry>()
    }

    /// Bytes held by the table itself (entries and index, allocated capacity).
    pub fn table_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

/// Keys with a TTL → absolute expiry in unix milliseconds.
#[derive(Default)]
pub struct Expires {
    entries: Vec<(CompactBytes, i64)>,
    index: PosIndex,
    hasher: RandomState,
}

impl Expires {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    fn position(&self, key: &[u8]) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let entries = &self.entries;
        self.index
            .find(self.hasher.hash_one(key), |i| {
                entries[i as usize].0.as_slice() == key
            })
            .map(|i| i as usize)
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&i64> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub fn get_index(&self, i: usize) -> Option<(&CompactBytes, &i64)> {
        self.entries.get(i).map(|(k, t)| (k, t))
    }

    /// Set the expiry of `key` (copied). Returns the old one.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, at_ms: i64) -> Option<i64> {
        let key = key.as_ref();
        let entries = &mut self.entries;
        let hasher = &self.hasher;
        let len = entries.len();
        let probe = self.index.find_or_insert(
            hasher.hash_one(key),
            |i| entries[i as usize].0.as_slice() == key,
            pos(len),
            len,
            |i| hasher.hash_one(entries[i as usize].0.as_slice()),
        );
        match probe {
            Probe::Found(i) => Some(std::mem::replace(&mut entries[*i as usize].1, at_ms)),
            Probe::Absent => {
                entries.push((CompactBytes::key(key), at_ms));
                None
            }
        }
    }

    #[inline]
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<i64> {
        if self.entries.is_empty() {
            return None;
        }
        let entries = &self.entries;
        let hasher = &self.hasher;
        let i = self.index.swap_remove(
            hasher.hash_one(key),
            |i| entries[i as usize].0.as_slice() == key,
            entries.len(),
            |j| hasher.hash_one(entries[j].0.as_slice()),
        )?;
        let at = self.entries.swap_remove(i).1;
        self.rehash_step(STEP_ON_INSERT);
        Some(at)
    }

    /// See [`KeyTable::rehash_step`].
    pub fn rehash_step(&mut self, n: usize) -> bool {
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.index.step(n, entries.len(), &|j| {
            hasher.hash_one(entries[j as usize].0.as_slice())
        })
    }

    /// See [`PosIndex::set_grow_at_once`].
    pub fn set_grow_at_once(&mut self, on: bool) {
        self.index.set_grow_at_once(on);
    }

    /// Bulk loading: set the expiry of each of `keys`, indexing them at once as
    /// [`KeyTable::index_appended`] does. A key already here, or given twice, ends with its
    /// last expiry, as [`Expires::insert`] one by one would leave it.
    pub fn extend_in_bulk(&mut self, keys: impl ExactSizeIterator<Item = (CompactBytes, i64)>) {
        let from = self.entries.len();
        self.entries.reserve(keys.len());
        let mut hashes = Vec::with_capacity(keys.len());
        for (k, t) in keys {
            hashes.push(self.hasher.hash_one(k.as_slice()));
            self.entries.push((k, t));
        }
        let entries = &self.entries;
        let hasher = &self.hasher;
        let lost = self.index.insert_appended(
            from,
            &hashes,
            |a, b| entries[a as usize].0 == entries[b as usize].0,
            |i| hasher.hash_one(entries[i as usize].0.as_slice()),
        );
        let hasher = &self.hasher;
        self.index.drop_unindexed(&mut self.entries, &lost, |e| {
            hasher.hash_one(e.0.as_slice())
        });
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.index.reserve(additional, entries.len(), |i| {
            hasher.hash_one(entries[i as usize].0.as_slice())
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CompactBytes, &i64)> + '_ {
        self.entries.iter().map(|(k, t)| (k, t))
    }

    /// Bytes of the entry vector's unused slots (see [`KeyTable::spare_bytes`]).
    pub fn spare_bytes(&self) -> usize {
        (self.entries.capacity() - self.entries.len()) * std::mem::size_of::<(CompactBytes, i64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Value;

    fn obj(v: &[u8]) -> Object {
        Object::new(Value::Str(CompactBytes::from_slice(v)), 0)
    }

    #[test]
    fn insert_hashed_is_insert_with_the_hash_done_elsewhere() {
        let mut t = KeyTable::default();
        let h = t.hasher();
        for i in 0..1000u32 {
            let k = format!("key:{i}");
            let kb = CompactBytes::key(k.as_bytes());
            assert!(t
                .insert_hashed(h.hash(k.as_bytes()), kb, obj(b"a"))
                .is_none());
        }
        // The same key again replaces, found through the ordinary lookup path too.
        let old = t.insert_hashed(h.hash(b"key:7"), CompactBytes::key(b"key:7"), obj(b"b"));
        assert_eq!(old.map(|o| val(&o)), Some(b"a".to_vec()));
        assert_eq!(t.len(), 1000);
        assert_eq!(t.get(b"key:7").map(val), Some(b"b".to_vec()));
        assert!(t.insert(b"key:8", obj(b"c")).is_some());
        assert_eq!(
            t.swap_remove(b"key:999").map(|o| val(&o)),
            Some(b"a".to_vec())
        );
        assert_eq!(t.len(), 999);
    }

    fn val(o: &Object) -> Vec<u8> {
        match &o.value {
            Value::Str(s) => s.to_vec(),
            _ => unreachable!(),
        }
    }

    /// Random inserts, overwrites and removals against a `std` model, checking every key's
    /// position lookup after each step.
    #[test]
    fn matches_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut t = KeyTable::default();
        let mut model = std::collections::HashMap::new();
        for step in 0..20_000u32 {
            let k = format!("key:{}", rng.gen_range(0..500u32)).repeat(rng.gen_range(1..4));
            match rng.gen_range(0..3) {
                0 | 1 => {
                    let v = step.to_string();
                    let old = t.insert(k.as_bytes(), obj(v.as_bytes()));
                    let mold = model.insert(k.clone(), v);
                    assert_eq!(old.map(|o| val(&o)), mold.map(String::into_bytes));
                }
                _ => {
                    let old = t.swap_remove(k.as_bytes());
                    let mold = model.remove(&k);
                    assert_eq!(old.map(|o| val(&o)), mold.map(String::into_bytes));
                }
            }
            assert_eq!(t.len(), model.len());
            if step % 1000 == 0 {
                for (i, (k, o)) in t.iter().enumerate() {
                    assert_eq!(t.get_index_of(k), Some(i));
                    assert_eq!(&val(o), model[std::str::from_utf8(k).unwrap()].as_bytes());
                }
            }
        }
        for (k, v) in &model {
            assert_eq!(val(t.get(k.as_bytes()).unwrap()), v.as_bytes());
        }
    }

    /// Bulk loading (append unindexed, index once, drop the superseded) ends where inserting
    /// the same sequence one by one ends: same keys, later values win, every position
    /// indexed once — with duplicates, a table that already held keys, a grow in progress,
    /// and more positions than one binning pass takes.
    #[test]
    fn bulk_append_then_index_matches_inserting_one_by_one() {
        use rand::{Rng, SeedableRng};
        for (seed, prefilled, n) in [(1u64, 0usize, 5_000usize), (2, 0, 300), (3, 900, 9_000)] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut bulk = KeyTable::default();
            let mut model = KeyTable::default();
            for i in 0..prefilled {
                // Enough to leave `bulk` mid-growth (incremental rehash) when the bulk starts.
                let k = format!("pre:{i}");
                bulk.insert(k.as_bytes(), obj(b"p"));
                model.insert(k.as_bytes(), obj(b"p"));
            }
            assert_eq!(bulk.index.is_growing(), prefilled == 900);
            let from = bulk.len();
            let h = bulk.hasher();
            let mut hashes = Vec::new();
            for step in 0..n {
                // About one key in six appears more than once; some keys are long (heap).
                let k =
                    format!("key:{}", rng.gen_range(0..(n * 5 / 6))).repeat(rng.gen_range(1..3));
                let v = step.to_string();
                hashes.push(h.hash(k.as_bytes()));
                bulk.push_unindexed(CompactBytes::key(k.as_bytes()), obj(v.as_bytes()));
                model.insert(k.as_bytes(), obj(v.as_bytes()));
            }
            let lost = bulk.index_appended(from, &hashes);
            assert!(lost.windows(2).all(|w| w[0] < w[1]), "ascending, once each");
            // Each lost position holds a key some later position holds too.
            for &p in &lost {
                let (k, _) = bulk.get_index(p as usize).unwrap();
                let live = bulk.get_index_of(k).unwrap();
                assert!(live > p as usize, "the later entry wins");
            }
            bulk.remove_unindexed(&lost);
            assert_eq!(bulk.len(), model.len(), "seed {seed}");
            assert_eq!(n - lost.len() + prefilled, bulk.len());
            assert_eq!(
                bulk.index.positions(),
                (0..bulk.len() as u32).collect::<Vec<_>>(),
                "every position indexed once"
            );
            for (i, (k, o)) in bulk.iter().enumerate() {
                assert_eq!(bulk.get_index_of(k), Some(i));
                assert_eq!(val(o), val(model.get(k).unwrap()));
            }
            // The table works as usual afterwards.
            assert!(bulk.insert(b"after", obj(b"x")).is_none());
            assert!(bulk.swap_remove(b"pre:0").is_some() || prefilled == 0);
        }
    }

    #[test]
    fn expires_extended_in_bulk_are_found_and_indexed_once() {
        let mut e = Expires::default();
        e.extend_in_bulk((0..5_000u32).map(|i| {
            (
                CompactBytes::key(format!("k{i}").as_bytes()),
                i64::from(i) * 3,
            )
        }));
        assert_eq!(e.len(), 5_000);
        assert_eq!(
            e.index.positions(),
            (0..5_000u32).collect::<Vec<_>>(),
            "every position indexed once"
        );
        for i in 0..5_000i64 {
            assert_eq!(e.get(format!("k{i}").as_bytes()), Some(&(i * 3)));
        }
        assert_eq!(e.swap_remove(b"k0"), Some(0));
        assert_eq!(e.insert(b"k1", 7), Some(3));
        assert_eq!(e.get(b"k4999"), Some(&(4999 * 3)));
        // A second bulk over keys already here, one of them given twice: the last expiry wins.
        let again = [("k10", 1i64), ("new", 2), ("k4999", 3), ("new", 4)];
        e.extend_in_bulk(
            again
                .iter()
                .map(|&(k, t)| (CompactBytes::key(k.as_bytes()), t)),
        );
        assert_eq!(e.len(), 5_000, "4,999 after the removal, plus `new`");
        assert_eq!(
            e.index.positions(),
            (0..5_000u32).collect::<Vec<_>>(),
            "every position indexed once"
        );
        assert_eq!(e.get(b"k10"), Some(&1));
        assert_eq!(e.get(b"k4999"), Some(&3));
        assert_eq!(e.get(b"new"), Some(&4));
        assert_eq!(e.get(b"k1"), Some(&7));
    }

    /// Growth through many doublings with removals, overwrites and cron steps interleaved:
    /// after every operation each live position is indexed exactly once (in one of the two
    /// tables) and every key is found at its position, for both tables.
    #[test]
    fn incremental_growth_matches_a_model() {
        growth_matches_a_model(false);
    }

    /// The same with the loading mode (grow in one go) switched on part way, possibly while
    /// an incremental growth is in progress, and off again later.
    #[test]
    fn growth_at_once_matches_a_model() {
        growth_matches_a_model(true);
    }

    fn growth_matches_a_model(at_once: bool) {
        use rand::{Rng, SeedableRng};
        for seed in 0..3u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut t = KeyTable::default();
            let mut e = Expires::default();
            let mut model = std::collections::HashMap::new();
            let mut grew = 0;
            let mut grew_at_once = 0;
            for step in 0..30_000u32 {
                let loading = at_once && (5_000 + seed as u32 * 777..25_000).contains(&step);
                t.set_grow_at_once(loading);
                e.set_grow_at_once(loading);
                let cap = t.index.capacity();
                // The key range widens over time so the tables keep growing.
                let k = format!("k{}", rng.gen_range(0..(step / 3 + 10)));
                match rng.gen_range(0..10) {
                    0..=5 => {
                        let old = t.insert(k.as_bytes(), obj(&step.to_le_bytes()));
                        let eold = e.insert(k.as_bytes(), step as i64);
                        let mold = model.insert(k.clone(), step);
                        assert_eq!(old.map(|o| val(&o)), mold.map(|v| v.to_le_bytes().to_vec()));
                        assert_eq!(eold, mold.map(i64::from));
                    }
                    6..=8 => {
                        let old = t.swap_remove(k.as_bytes());
                        let eold = e.swap_remove(k.as_bytes());
                        let mold = model.remove(&k);
                        assert_eq!(old.map(|o| val(&o)), mold.map(|v| v.to_le_bytes().to_vec()));
                        assert_eq!(eold, mold.map(i64::from));
                    }
                    _ => {
                        t.rehash_step(rng.gen_range(1..50));
                        e.rehash_step(rng.gen_range(1..50));
                    }
                }
                grew += usize::from(t.index.is_growing());
                if loading && t.index.capacity() > cap {
                    grew_at_once += 1;
                    assert!(!t.index.is_growing(), "grown in one go");
                }
                assert_eq!(t.len(), model.len());
                assert_eq!(e.len(), model.len());
                if step % 23 == 0 {
                    let all: Vec<u32> = (0..pos(t.len())).collect();
                    assert_eq!(t.index.positions(), all, "step {step}");
                    assert_eq!(e.index.positions(), all, "step {step}");
                }
                if step % 500 == 0 {
                    for (i, (k, _)) in t.iter().enumerate() {
                        assert_eq!(t.get_index_of(k), Some(i));
                    }
                    for (i, (k, _)) in e.iter().enumerate() {
                        assert_eq!(e.position(k), Some(i));
                    }
                }
            }
            assert!(
                grew > 100,
                "the workload never caught a growth in progress ({grew})"
            );
            assert_eq!(
                at_once,
                grew_at_once > 0,
                "grew at once {grew_at_once} times"
            );
            for (k, v) in &model {
                assert_eq!(val(t.get(k.as_bytes()).unwrap()), v.to_le_bytes());
                assert_eq!(e.get(k.as_bytes()), Some(&i64::from(*v)));
            }
        }
    }

    /// The insert that finds the index full does not rehash it: the old table keeps nearly all
    /// records and hands them over a few per insert (and per cron step) until it is freed.
    #[test]
    fn a_full_index_is_not_rehashed_by_one_insert() {
        let mut t = KeyTable::default();
        let mut i = 0u32;
        while !t.index.is_growing() || t.len() < 1000 {
            t.insert(format!("key:{i}").as_bytes(), obj(b"v"));
            i += 1;
            if t.index.is_growing() && t.len() < 1000 {
                while t.rehash_step(1000) {}
            }
        }
        let n = t.len();
        // The new table has twice the old one's capacity, not more (memory).
        let old_cap = t.index.old.as_ref().map(|o| o.table.capacity()).unwrap();
        assert_eq!(t.index.cur.capacity(), 2 * old_cap, "grown from {old_cap}");
        let moved_by_the_insert = t.index.cur.len();
        assert!(
            moved_by_the_insert <= 1 + STEP_ON_INSERT,
            "the growing insert moved {moved_by_the_insert} of {n} records"
        );
        // Each later insert moves a bounded number.
        t.insert(b"one-more", obj(b"v"));
        assert!(t.index.cur.len() <= moved_by_the_insert + 1 + STEP_ON_INSERT);
        // The cron finishes the move; the old table is freed.
        while t.rehash_step(100) {}
        assert!(!t.index.is_growing());
        assert_eq!(t.index.positions(), (0..pos(t.len())).collect::<Vec<_>>());
        assert_eq!(t.get_index_of(b"key:0"), Some(0));
    }

    #[test]
    fn entries_are_forty_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }
}
