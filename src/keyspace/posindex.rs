//! A hash index of positions into a dense vector that grows without a pause.
//!
//! A `hashbrown` table that is full rehashes every record into a table twice its size in one
//! go. For the keyspace that is one command stalled for the whole rehash: every record's hash is
//! recomputed from its key, a cache miss each, ~180 ms at 900k keys on this machine and seconds
//! at 10M. Redis avoids it with incremental rehashing (two tables, a few buckets moved per
//! operation, plus 1 ms per cron tick under `activerehashing yes`), and so does [`PosIndex`]:
//!
//! - When the current table has no room left for an insert, it becomes the `old` table and an
//!   empty one of twice the live records is allocated (O(1): the allocation is not touched).
//! - New records go to the new table. Lookups probe the new table, then the old one.
//! - Records move from old to new by position: a cursor walks positions 0, 1, 2… of the dense
//!   vector; for each, the record is looked up in the old table by the entry's hash and, if it
//!   is there, moved. Invariant: **every position below the cursor is indexed in the new
//!   table**. A `swap_remove` that moves the last entry to a position below the cursor moves its
//!   record to the new table too ([`PosIndex::relocate`]). When the cursor reaches the vector's
//!   length, every live position is in the new table, so the old one is empty and is freed.
//! - Each insert moves [`STEP_ON_INSERT`] positions, so the old table is drained before the new
//!   one fills (it was sized for twice the records), and no insert ever rehashes a full table.
//!
//! The callers own the vector; they pass `hash_of(position)` (recomputing the hash from the
//! entry's key) wherever records may move.

use hashbrown::hash_table::Entry as Slot;
use hashbrown::HashTable;

/// Positions moved to the new table per insert while growing.
pub const STEP_ON_INSERT: usize = 16;

/// [`PosIndex::insert_appended`]: bins of home buckets (at most 2^this), and positions binned
/// per pass (16 bytes each: 16 MiB).
const BULK_BIN_BITS: u32 = 12;
const BULK_PASS_MAX: usize = if cfg!(test) { 1_000 } else { 1 << 20 };

/// Positions into a dense vector, hashed by the entries' keys (see the module documentation).
#[derive(Default)]
pub struct PosIndex {
    pub(super) cur: HashTable<u32>,
    pub(super) old: Option<Old>,
    /// Loading (nobody waits on a command): grow in one go, in bucket order, instead of
    /// incrementally (see [`PosIndex::set_grow_at_once`]).
    grow_at_once: bool,
}

pub(super) struct Old {
    pub(super) table: HashTable<u32>,
    /// Positions below this are all indexed in `cur`.
    cursor: usize,
}

/// Where a lookup for an insert ended.
pub enum Probe<'a> {
    /// The key is indexed at this position (mutable: callers may re-point it).
    Found(&'a mut u32),
    /// The key is absent; it was not inserted.
    Absent,
}

pub fn pos(i: usize) -> u32 {
    u32::try_from(i).expect("more than 2^32 entries in one table")
}

impl PosIndex {
    /// Whether records are still moving from an old table.
    pub fn is_growing(&self) -> bool {
        self.old.is_some()
    }

    /// Records both tables can hold without growing (memory accounting: a bucket per record
    /// of capacity, roughly, as `HashTable::capacity` is used elsewhere).
    pub fn capacity(&self) -> usize {
        self.cur.capacity() + self.old.as_ref().map_or(0, |o| o.table.capacity())
    }

    #[inline]
    pub fn find(&self, h: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        if let Some(&i) = self.cur.find(h, |&i| eq(i)) {
            return Some(i);
        }
        let old = self.old.as_ref()?;
        old.table.find(h, |&i| eq(i)).copied()
    }

    /// Look `h`/`eq` up and, if absent, insert `new_pos` for it; the common case is a single
    /// probe of one table. Returns the existing position if the key was present (mutable).
    #[inline]
    pub fn find_or_insert(
        &mut self,
        h: u64,
        eq: impl Fn(u32) -> bool,
        new_pos: u32,
        len: usize,
        hash_of: impl Fn(u32) -> u64,
    ) -> Probe<'_> {
        if self.old.is_none() && self.cur.len() < self.cur.capacity() {
            // Room for one more without a rehash: one probe does both.
            return match self.cur.entry(h, |&i| eq(i), |&i| hash_of(i)) {
                Slot::Occupied(o) => Probe::Found(o.into_mut()),
                Slot::Vacant(v) => {
                    v.insert(new_pos);
                    Probe::Absent
                }
            };
        }
        self.find_or_insert_slow(h, eq, new_pos, len, hash_of)
    }

    #[cold]
    fn find_or_insert_slow(
        &mut self,
        h: u64,
        eq: impl Fn(u32) -> bool,
        new_pos: u32,
        len: usize,
        hash_of: impl Fn(u32) -> u64,
    ) -> Probe<'_> {
        if self.find(h, &eq).is_some() {
            return match self.find_mut(h, eq) {
                Some(p) => Probe::Found(p),
                None => unreachable!("found a moment ago"),
            };
        }
        self.step(STEP_ON_INSERT, len, &hash_of);
        if self.cur.len() == self.cur.capacity() {
            if self.grow_at_once {
                self.regrow_at_once(len, &hash_of);
            } else {
                self.grow(len, &hash_of);
            }
        }
        self.cur.insert_unique(h, new_pos, |&i| hash_of(i));
        Probe::Absent
    }

    pub fn find_mut(&mut self, h: u64, eq: impl Fn(u32) -> bool) -> Option<&mut u32> {
        if self.cur.find(h, |&i| eq(i)).is_some() {
            return self.cur.find_mut(h, |&i| eq(i));
        }
        self.old.as_mut()?.table.find_mut(h, |&i| eq(i))
    }

    /// Remove the record `h`/`eq` finds; returns its position.
    fn remove(&mut self, h: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        if let Ok(e) = self.cur.find_entry(h, |&i| eq(i)) {
            return Some(e.remove().0);
        }
        let old = self.old.as_mut()?;
        let e = old.table.find_entry(h, |&i| eq(i)).ok()?;
        Some(e.remove().0)
    }

    /// Remove the record `h`/`eq` finds from the index of a vector of `len` entries, as the
    /// first half of the vector's `swap_remove`: the last entry's record is re-pointed to the
    /// freed position. `hash_at(i)` hashes the entry at position `i` of the vector as it is
    /// (before the caller's `swap_remove`). Returns the position to `swap_remove`.
    pub fn swap_remove(
        &mut self,
        h: u64,
        eq: impl Fn(u32) -> bool,
        len: usize,
        hash_at: impl Fn(usize) -> u64,
    ) -> Option<usize> {
        let i = self.remove(h, eq)? as usize;
        let last = len - 1;
        if i != last {
            // Once moved, the last entry is at i: `relocate` may rehash records that way.
            self.relocate(hash_at(last), last, i, |j| {
                hash_at(if j as usize == i { last } else { j as usize })
            });
        }
        Some(i)
    }

    /// The entry at position `from` (hash `h`) now lives at `to` (a `swap_remove` moved it).
    fn relocate(&mut self, h: u64, from: usize, to: usize, hash_of: impl Fn(u32) -> u64) {
        if let Some(p) = self.cur.find_mut(h, |&i| i as usize == from) {
            *p = pos(to);
            return;
        }
        let old = self
            .old
            .as_mut()
            .expect("every entry is indexed (relocate)");
        let e = old
            .table
            .find_entry(h, |&i| i as usize == from)
            .unwrap_or_else(|_| panic!("every entry is indexed (relocate {from})"));
        if to < old.cursor {
            // Below the cursor every position must be in the new table.
            e.remove();
            self.cur.insert_unique(h, pos(to), |&i| hash_of(i));
        } else {
            *e.into_mut() = pos(to);
        }
    }

    /// The capacity a full `cur` grows to: twice its buckets, or as many if at most half of
    /// it is live records (the rest tombstones), as `hashbrown`'s own resize chooses.
    fn grown_capacity(&self) -> usize {
        let cap = self.cur.capacity();
        // `with_capacity(cap)` gives the same number of buckets, `cap + 1` twice as many (the
        // usable capacity is 7/8 of a power of two). Asking for "twice the records" instead
        // would round up to four times the buckets (+10 MiB at 1M keys).
        if self.cur.len() < cap / 2 {
            cap
        } else {
            cap + 1
        }
    }

    /// Drop the unindexed positions `lost` (ascending, as [`PosIndex::insert_appended`]
    /// returns them) from the vector `v`, every other position of which is indexed: each is
    /// `swap_remove`d, from the top down (so the last entry is never one still to drop), and
    /// the record of the entry moved into its place re-pointed. `hash_of(entry)` is the key
    /// hash of an entry.
    pub fn drop_unindexed<T>(&mut self, v: &mut Vec<T>, lost: &[u32], hash_of: impl Fn(&T) -> u64) {
        for &p in lost.iter().rev() {
            let p = p as usize;
            let last = v.len() - 1;
            v.swap_remove(p);
            if p != last {
                let v = &*v;
                self.relocate(hash_of(&v[p]), last, p, |j| hash_of(&v[j as usize]));
            }
        }
    }

    /// Start growing: the full table becomes the old one and a new one is allocated with twice
    /// its buckets, or as many if at most half of it is live records (the rest tombstones),
    /// as `hashbrown`'s own resize chooses. Either way the new table holds at least twice the
    /// records the old one has to hand over.
    fn grow(&mut self, len: usize, hash_of: &impl Fn(u32) -> u64) {
        if self.old.is_some() {
            // Not reached when the step rate keeps up (module docs); if it ever is, finish the
            // move first rather than nest migrations.
            self.step(usize::MAX, len, hash_of);
        }
        let grown = HashTable::with_capacity(self.grown_capacity());
        let full = std::mem::replace(&mut self.cur, grown);
        if !full.is_empty() {
            self.old = Some(Old {
                table: full,
                cursor: 0,
            });
        }
    }

    /// While loading (the AOF replayed at start: no client waits on a command), grow in one go
    /// instead of incrementally: every record is re-inserted at once in bucket order
    /// ([`PosIndex::insert_appended`]) and the full table dropped, rather than each record
    /// being looked up in the old table and inserted into the new one at random (two cache
    /// misses a record). Replaying 1M `SET`s, growth took about a third of the applying
    /// thread's time the incremental way.
    pub fn set_grow_at_once(&mut self, on: bool) {
        self.grow_at_once = on;
    }

    fn regrow_at_once(&mut self, len: usize, hash_of: &impl Fn(u32) -> u64) {
        // A growth started before the mode was switched on finishes first.
        self.step(usize::MAX, len, hash_of);
        let hashes: Vec<u64> = (0..len).map(|p| hash_of(pos(p))).collect();
        self.cur = HashTable::with_capacity(self.grown_capacity());
        // The records' keys are distinct (they were indexed): no key comparison is needed.
        let lost = self.insert_appended(0, &hashes, |_, _| false, hash_of);
        debug_assert!(lost.is_empty());
    }

    /// Move up to `n` positions' records from the old table; `len` is the vector's length.
    /// Returns true while records remain to move.
    pub fn step(&mut self, n: usize, len: usize, hash_of: &impl Fn(u32) -> u64) -> bool {
        let Some(old) = self.old.as_mut() else {
            return false;
        };
        let end = old.cursor.saturating_add(n).min(len);
        for p in old.cursor..end {
            let h = hash_of(pos(p));
            if let Ok(e) = old.table.find_entry(h, |&i| i as usize == p) {
                e.remove();
                self.cur.insert_unique(h, pos(p), |&i| hash_of(i));
            }
        }
        old.cursor = end;
        if old.cursor >= len {
            debug_assert!(old.table.is_empty(), "records left behind the cursor");
            self.old = None;
            return false;
        }
        true
    }

    /// Make room for `additional` more records at once (loading: RESIZEDB). Finishes a growth
    /// in progress first; may rehash everything (a pause, acceptable before serving).
    pub fn reserve(&mut self, additional: usize, len: usize, hash_of: impl Fn(u32) -> u64) {
        self.step(usize::MAX, len, &hash_of);
        self.cur.reserve(additional, |&i| hash_of(i));
    }

    /// Index positions `from .. from + hashes.len()` of the vector at once (`hashes[k]` is
    /// position `from + k`'s hash; none of them indexed yet, every position below `from`
    /// indexed): bulk loading. Returns, ascending, the positions that lost to a later position
    /// holding the same key (`same_key(a, b)`): the later one is indexed, the earlier one is
    /// left in the vector unindexed for the caller to remove.
    ///
    /// Inserting a million random hashes one by one into a table of 8+ MiB costs a cache miss
    /// or two each (the control group, then the slot); here they are visited in the order of
    /// their home buckets (`hash & mask`, as `hashbrown` places them: this only decides the
    /// speed, not the result), so the table is written front to back. Measured on this
    /// machine (scratch benchmark, 1M keys): 95 ms one by one, 28 ms in bucket order plus
    /// 35 ms to bin them. The bins are filled in passes of at most [`BULK_PASS_MAX`]
    /// positions, so the extra memory is bounded whatever the count.
    pub fn insert_appended(
        &mut self,
        from: usize,
        hashes: &[u64],
        same_key: impl Fn(u32, u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Vec<u32> {
        let mut lost = Vec::new();
        if hashes.is_empty() {
            return lost;
        }
        self.reserve(hashes.len(), from, &hash_of);
        let buckets = self.cur.num_buckets().max(1);
        let mask = (buckets - 1) as u64;
        let bucket_bits = buckets.trailing_zeros();
        let bin_bits = bucket_bits.min(BULK_BIN_BITS);
        let shift = bucket_bits - bin_bits;
        let bin_of = |h: u64| ((h & mask) >> shift) as usize;
        let mut counts = vec![0usize; 1 << bin_bits];
        for &h in hashes {
            counts[bin_of(h)] += 1;
        }
        let mut pairs: Vec<(u64, u32)> = Vec::new();
        let mut starts = vec![0usize; counts.len()];
        let mut bin = 0;
        while bin < counts.len() {
            // This pass: bins [bin, end), at most BULK_PASS_MAX positions (or one bin).
            let mut end = bin;
            let mut total = 0;
            while end < counts.len() && (end == bin || total + counts[end] <= BULK_PASS_MAX) {
                starts[end] = total;
                total += counts[end];
                end += 1;
            }
            pairs.clear();
            pairs.resize(total, (0, 0));
            for (k, &h) in hashes.iter().enumerate() {
                let b = bin_of(h);
                if (bin..end).contains(&b) {
                    pairs[starts[b]] = (h, pos(from + k));
                    starts[b] += 1;
                }
            }
            for &(h, p) in &pairs {
                match self.cur.entry(h, |&q| same_key(q, p), |&q| hash_of(q)) {
                    Slot::Vacant(v) => {
                        v.insert(p);
                    }
                    Slot::Occupied(mut o) => {
                        let q = *o.get();
                        if p > q {
                            *o.get_mut() = p;
                            lost.push(q);
                        } else {
                            lost.push(p);
                        }
                    }
                }
            }
            bin = end;
        }
        lost.sort_unstable();
        lost
    }

    /// Every position indexed, each once (tests).
    #[cfg(test)]
    pub fn positions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.cur.iter().copied().collect();
        if let Some(o) = &self.old {
            v.extend(o.table.iter().copied());
        }
        v.sort_unstable();
        v
    }
}
