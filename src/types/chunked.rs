//! Copy-on-write building blocks for the large encodings of hashes, sets and sorted sets.
//!
//! A fork-free compaction holds a second reference to a huge collection while it writes it out
//! (`keyspace::Shared`); the first write to it then clones the collection. These containers make
//! that clone O(number of chunks) — pointer copies — and every later write copy only the chunk
//! it touches while the snapshot still holds it (as the quicklist nodes of [`crate::types::list`]):
//!
//! - [`ChunkVec`]: a vector of `Arc`'d fixed-size chunks (positional access stays O(1));
//! - [`Arena`]: append-only byte storage in `Arc`'d chunks of up to [`ARENA_CHUNK`] bytes, with
//!   garbage counted per chunk so a chunk is evacuated on its own, never the whole arena;
//! - [`SegIndex`]: a hash index of `u32` positions split into segments by hash bits, extendible
//!   hashing style (a directory of segment numbers, each segment an `Arc`'d table of `u32`
//!   positions — [`Probe`], open addressing at 4 bytes a slot, or [`Tagged`], hashbrown's — of at
//!   most [`SegTable::SPLIT`] entries that splits in two when full), so neither a write nor the
//!   table's growth ever rebuilds more than one segment.
//!
//! A chunk copied because another reference holds it is counted in [`COW_COPIED_BYTES`] and its
//! time in `keyspace::COW_CLONE_NS` (snapshot work of the round).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashbrown::HashTable;

/// Bytes of chunks copied because a clone (a snapshot's) still shared them, since start.
pub static COW_COPIED_BYTES: AtomicU64 = AtomicU64::new(0);

/// `Arc::make_mut`, counting (and timing) the copy when the chunk is shared.
#[inline]
pub fn chunk_mut<T: Clone>(c: &mut Arc<T>, bytes: impl FnOnce(&T) -> usize) -> &mut T {
    if Arc::strong_count(c) > 1 {
        copy_out(c, bytes);
    }
    Arc::make_mut(c)
}

#[cold]
#[inline(never)]
fn copy_out<T: Clone>(c: &mut Arc<T>, bytes: impl FnOnce(&T) -> usize) {
    let t0 = std::time::Instant::now();
    let n = bytes(c);
    *c = Arc::new((**c).clone());
    COW_COPIED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
    crate::keyspace::COW_CLONE_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Heap bytes of one `Arc<Vec<_>>` chunk besides its elements (the `Arc` header and `Vec`).
const CHUNK_OVERHEAD: usize = 16 + 24 + 8;

/// (chunks, chunks that are the same allocation in `b`, position by position): how much a
/// copy-on-write clone still shares with its original.
fn count_shared<C>(a: &[Arc<C>], b: &[Arc<C>]) -> (usize, usize) {
    let shared = a.iter().zip(b).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
    (a.len(), shared)
}

/// A vector in chunks of `1 << SHIFT` elements, each behind an `Arc`. The first chunk grows like
/// a `Vec` (small collections stay small); later ones are allocated at their full size.
pub struct ChunkVec<T, const SHIFT: u32> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T, const SHIFT: u32> Clone for ChunkVec<T, SHIFT> {
    fn clone(&self) -> Self {
        ChunkVec {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T, const SHIFT: u32> Default for ChunkVec<T, SHIFT> {
    fn default() -> Self {
        ChunkVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T, const SHIFT: u32> std::ops::Index<usize> for ChunkVec<T, SHIFT> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> SHIFT][i & ((1 << SHIFT) - 1)]
    }
}

impl<T: Clone, const SHIFT: u32> ChunkVec<T, SHIFT> {
    const MASK: usize = (1 << SHIFT) - 1;

    /// An empty vector whose first chunk has room for `n` elements (at most one chunk's worth).
    pub fn with_capacity(n: usize) -> Self {
        let mut v = Self::default();
        if n > 0 {
            v.chunks
                .push(Arc::new(Vec::with_capacity(n.min(1 << SHIFT))));
        }
        v
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> SHIFT)?.get(i & Self::MASK)
    }

    /// Mutable access to element `i` (< len): copies its chunk if a clone shares it.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> &mut T {
        let c = chunk_mut(&mut self.chunks[i >> SHIFT], Self::chunk_bytes);
        &mut c[i & Self::MASK]
    }

    #[allow(clippy::ptr_arg)] // passed where a `&Vec<T>` is taken
    fn chunk_bytes(c: &Vec<T>) -> usize {
        c.len() * std::mem::size_of::<T>()
    }

    pub fn push(&mut self, v: T) {
        if self.len & Self::MASK == 0 && self.chunks.len() == self.len >> SHIFT {
            let cap = if self.len == 0 { 0 } else { 1 << SHIFT };
            self.chunks.push(Arc::new(Vec::with_capacity(cap)));
        }
        let last = self.chunks.last_mut().expect("a chunk");
        let c = chunk_mut(last, Self::chunk_bytes);
        if c.len() == c.capacity() {
            // The first chunk grows by doubling, but never past one chunk's worth.
            let grow = c.capacity().max(4).min((1 << SHIFT) - c.len());
            c.reserve_exact(grow);
        }
        c.push(v);
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let last = self.chunks.last_mut().expect("a chunk");
        let v = chunk_mut(last, Self::chunk_bytes).pop();
        self.len -= 1;
        if last.is_empty() && self.len > 0 {
            self.chunks.pop();
        }
        v
    }

    /// Remove element `i`, moving the last one into its place (as `Vec::swap_remove`).
    pub fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "swap_remove index {i} out of range");
        let last = self.pop().expect("not empty");
        if i == self.len {
            return last;
        }
        std::mem::replace(self.get_mut(i), last)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Bytes of heap this vector holds (chunks at their capacity, chunk headers, chunk table).
    pub fn mem_usage(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.capacity() * std::mem::size_of::<T>() + CHUNK_OVERHEAD)
            .sum::<usize>()
            + self.chunks.capacity() * 8
    }

    /// (chunks, chunks that are the same allocation in `other`, position by position).
    pub fn shared_chunks(&self, other: &Self) -> (usize, usize) {
        count_shared(&self.chunks, &other.chunks)
    }
}

/// Largest arena chunk (a pair longer than this gets a chunk of its own size).
pub const ARENA_CHUNK: usize = 32 << 10;

/// Append-only byte storage in chunks. An address is `chunk << 32 | offset`; a record never
/// straddles two chunks. Dead bytes are counted per chunk; a chunk that is at least half dead is
/// evacuated by its owner ([`Arena::take_evacuation`]), which moves its live records to the tail.
#[derive(Clone, Default)]
pub struct Arena {
    chunks: Vec<Arc<Vec<u8>>>,
    /// Dead bytes in each chunk.
    garbage: Vec<u32>,
    /// Chunk that appends go to.
    tail: u32,
    /// Emptied chunks, reused for new tails.
    free: Vec<u32>,
}

impl Arena {
    /// An arena whose first chunk has room for `n` bytes.
    pub fn with_capacity(n: usize) -> Arena {
        Arena {
            chunks: vec![Arc::new(Vec::with_capacity(n.min(ARENA_CHUNK)))],
            garbage: vec![0],
            tail: 0,
            free: Vec::new(),
        }
    }

    #[inline]
    pub fn chunk(&self, addr: u64) -> (&[u8], usize) {
        (&self.chunks[(addr >> 32) as usize], addr as u32 as usize)
    }

    /// Mutable bytes of the chunk holding `addr` (copied first if a clone shares it).
    #[inline]
    pub fn chunk_mut(&mut self, addr: u64) -> (&mut Vec<u8>, usize) {
        let c = chunk_mut(&mut self.chunks[(addr >> 32) as usize], Vec::len);
        (c, addr as u32 as usize)
    }

    /// Bytes in use (live and dead records).
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append the concatenation of `parts` as one record; its address.
    pub fn append(&mut self, parts: &[&[u8]]) -> u64 {
        let need: usize = parts.iter().map(|p| p.len()).sum();
        let fits = self
            .chunks
            .get(self.tail as usize)
            .is_some_and(|c| c.is_empty() || c.len() + need <= ARENA_CHUNK);
        if !fits {
            // The first chunk grows like a Vec (a hash just converted stays small).
            let cap = if self.chunks.is_empty() {
                need
            } else {
                need.max(ARENA_CHUNK)
            };
            let fresh = Arc::new(Vec::with_capacity(cap));
            self.tail = match self.free.pop() {
                Some(i) => {
                    self.chunks[i as usize] = fresh;
                    i
                }
                None => {
                    self.chunks.push(fresh);
                    self.garbage.push(0);
                    (self.chunks.len() - 1) as u32
                }
            };
        }
        let t = self.tail as usize;
        let c = chunk_mut(&mut self.chunks[t], Vec::len);
        if c.capacity() < c.len() + need {
            let want = (c.capacity() * 2).min(ARENA_CHUNK).max(c.len() + need);
            c.reserve_exact(want - c.len());
        }
        let off = c.len();
        for p in parts {
            c.extend_from_slice(p);
        }
        ((t as u64) << 32) | off as u64
    }

    /// Count `n` bytes at `addr` as dead. Returns a chunk that should now be evacuated.
    pub fn add_garbage(&mut self, addr: u64, n: usize) -> Option<u32> {
        let ci = (addr >> 32) as usize;
        self.garbage[ci] += n as u32;
        let len = self.chunks[ci].len();
        (ci as u32 != self.tail && self.garbage[ci] as usize * 2 >= len).then_some(ci as u32)
    }

    /// Start evacuating chunk `ci`: a reference to its bytes (records at offsets from 0 to the
    /// end), to walk while the owner re-appends the live ones; then [`Arena::release`] it.
    pub fn take_evacuation(&self, ci: u32) -> Arc<Vec<u8>> {
        self.chunks[ci as usize].clone()
    }

    /// Free chunk `ci` after its live records were moved.
    pub fn release(&mut self, ci: u32) {
        self.chunks[ci as usize] = Arc::new(Vec::new());
        self.garbage[ci as usize] = 0;
        self.free.push(ci);
    }

    pub fn mem_usage(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.capacity() + CHUNK_OVERHEAD)
            .sum::<usize>()
            + self.chunks.capacity() * 8
            + self.garbage.capacity() * 4
            + self.free.capacity() * 4
    }

    /// (chunks, chunks that are the same allocation in `other`).
    pub fn shared_chunks(&self, other: &Arena) -> (usize, usize) {
        count_shared(&self.chunks, &other.chunks)
    }
}

/// Hash bits below the ones that pick a segment (a segment's slot is picked by the low bits).
const DIR_SHIFT: u32 = 32;
/// Largest directory: 2^20 segments.
const DIR_DEPTH_MAX: u8 = 20;
const EMPTY: u32 = u32::MAX;
/// Smallest [`Probe`] table.
const SEG_SLOTS_MIN: usize = 8;

/// The table of one index segment: `u32` positions, keys compared and hashed by the caller's
/// closures (the table never stores keys).
pub trait SegTable: Clone + Default {
    /// A segment splits in two instead of growing past this many entries.
    const SPLIT: usize;
    fn with_room(n: usize) -> Self;
    /// Positions held.
    fn count(&self) -> usize;
    /// Heap bytes.
    fn bytes(&self) -> usize;
    fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32>;
    fn find_mut(&mut self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<&mut u32>;
    fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64);
    fn remove(
        &mut self,
        hash: u64,
        eq: impl FnMut(u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32>;
    fn ids(&self) -> Vec<u32>;
}

/// Open addressing (linear probing, backward-shift deletion, load ≤ 3/4): 4 bytes a slot. For
/// keys that compare cheaply (set and zset members: 24 bytes at a position).
#[derive(Clone, Default)]
pub struct Probe {
    len: u32,
    /// A power of two of slots (or none).
    slots: Vec<u32>,
}

impl Probe {
    #[inline]
    fn slot_of(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let id = self.slots[i];
            if id == EMPTY {
                return None;
            }
            if eq(id) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert without growing (there is room).
    fn put(&mut self, hash: u64, id: u32) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = id;
        self.len += 1;
    }

    /// Empty `slot` (backward-shift deletion keeps probe chains intact).
    fn remove_slot(&mut self, slot: usize, hash_of: impl Fn(u32) -> u64) {
        let mask = self.slots.len() - 1;
        let mut hole = slot;
        let mut i = (slot + 1) & mask;
        loop {
            let id = self.slots[i];
            if id == EMPTY {
                break;
            }
            let home = hash_of(id) as usize & mask;
            // Move `id` into the hole if its home is not cyclically in (hole, i].
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = id;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let len = self.len as usize;
        if self.slots.len() > SEG_SLOTS_MIN && len * 8 < self.slots.len() {
            self.rebuild((len * 2).next_power_of_two().max(SEG_SLOTS_MIN), hash_of);
        }
    }

    fn rebuild(&mut self, n: usize, hash_of: impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        self.len = 0;
        for id in old.into_iter().filter(|&x| x != EMPTY) {
            self.put(hash_of(id), id);
        }
    }
}

impl SegTable for Probe {
    const SPLIT: usize = 3072;

    fn with_room(n: usize) -> Probe {
        let slots = if n == 0 {
            Vec::new()
        } else {
            vec![EMPTY; (n * 4 / 3 + 1).next_power_of_two().max(SEG_SLOTS_MIN)]
        };
        Probe { len: 0, slots }
    }

    fn count(&self) -> usize {
        self.len as usize
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * 4
    }

    #[inline]
    fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.slot_of(hash, eq).map(|i| self.slots[i])
    }

    fn find_mut(&mut self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<&mut u32> {
        let i = self.slot_of(hash, eq)?;
        Some(&mut self.slots[i])
    }

    fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        let len = self.len as usize + 1;
        if self.slots.is_empty() || len * 4 > self.slots.len() * 3 {
            self.rebuild((len * 2).next_power_of_two().max(SEG_SLOTS_MIN), hash_of);
        }
        self.put(hash, id);
    }

    fn remove(
        &mut self,
        hash: u64,
        eq: impl FnMut(u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32> {
        let i = self.slot_of(hash, eq)?;
        let id = self.slots[i];
        self.remove_slot(i, hash_of);
        Some(id)
    }

    fn ids(&self) -> Vec<u32> {
        self.slots.iter().copied().filter(|&x| x != EMPTY).collect()
    }
}

/// `hashbrown`'s table (SIMD groups of 7-bit tags): 5 bytes a bucket at load ≤ 7/8, but a probe
/// compares a key only when its tag matches. For keys that are costly to compare (hash fields,
/// read through the slot and arena chunks).
#[derive(Clone, Default)]
pub struct Tagged(HashTable<u32>);

impl SegTable for Tagged {
    const SPLIT: usize = 3584;

    fn with_room(n: usize) -> Tagged {
        Tagged(HashTable::with_capacity(n))
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    fn bytes(&self) -> usize {
        self.0.capacity() * 5
    }

    #[inline]
    fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.0.find(hash, |&id| eq(id)).copied()
    }

    fn find_mut(&mut self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<&mut u32> {
        self.0.find_mut(hash, |&id| eq(id))
    }

    fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        self.0.insert_unique(hash, id, |&x| hash_of(x));
    }

    fn remove(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32> {
        let (id, _) = self.0.find_entry(hash, |&id| eq(id)).ok()?.remove();
        let t = &mut self.0;
        if t.capacity() > 64 && t.len() * 4 < t.capacity() {
            t.shrink_to(t.len() * 2, |&x| hash_of(x));
        }
        Some(id)
    }

    fn ids(&self) -> Vec<u32> {
        self.0.iter().copied().collect()
    }
}

#[derive(Clone, Default)]
struct Seg<S> {
    /// Hash bits (from `DIR_SHIFT` up) shared by every entry of the segment.
    depth: u8,
    t: S,
}

/// A hash index of `u32` positions into storage owned by the caller (which supplies the hashes
/// and the equality), in copy-on-write segments of table type `S`.
#[derive(Clone)]
pub struct SegIndex<S: SegTable = Probe> {
    /// Segment of each value of the hash's `depth` directory bits.
    dir: Vec<u32>,
    segs: Vec<Arc<Seg<S>>>,
}

impl<S: SegTable> Default for SegIndex<S> {
    fn default() -> Self {
        SegIndex {
            dir: vec![0],
            segs: vec![Arc::new(Seg::default())],
        }
    }
}

fn seg_bytes<S: SegTable>(s: &Seg<S>) -> usize {
    s.t.bytes()
}

impl<S: SegTable> SegIndex<S> {
    /// An index with room for `n` positions: one segment while that is small, else as many
    /// segments as `n` needs at about 60% of their split size (a bulk load then splits none).
    pub fn with_capacity(n: usize) -> Self {
        let mut depth = 0u8;
        while (n >> depth) > S::SPLIT * 3 / 5 && depth < DIR_DEPTH_MAX {
            depth += 1;
        }
        let per = n >> depth;
        SegIndex {
            dir: (0..1u32 << depth).collect(),
            segs: (0..1usize << depth)
                .map(|_| {
                    Arc::new(Seg {
                        depth,
                        t: S::with_room(per + per / 4),
                    })
                })
                .collect(),
        }
    }

    #[inline]
    fn seg_of(&self, hash: u64) -> usize {
        self.dir[(hash >> DIR_SHIFT) as usize & (self.dir.len() - 1)] as usize
    }

    /// The position for which `eq` is true.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.segs[self.seg_of(hash)].t.find(hash, eq)
    }

    /// Mutable access to the position for which `eq` is true (its segment is copied first if a
    /// clone shares it and the position is there).
    pub fn find_mut(&mut self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<&mut u32> {
        let si = self.seg_of(hash);
        if Arc::strong_count(&self.segs[si]) > 1 {
            self.segs[si].t.find(hash, &mut eq)?;
        }
        chunk_mut(&mut self.segs[si], seg_bytes)
            .t
            .find_mut(hash, eq)
    }

    /// Insert position `id` (absent) for a key hashing to `hash`; `hash_of` rehashes positions
    /// when a segment grows or splits.
    pub fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        let mut si = self.seg_of(hash);
        let s = &self.segs[si];
        if s.t.count() >= S::SPLIT && s.depth < DIR_DEPTH_MAX {
            self.split(si, &hash_of);
            si = self.seg_of(hash);
        }
        chunk_mut(&mut self.segs[si], seg_bytes)
            .t
            .insert(hash, id, hash_of);
    }

    /// Remove the position for which `eq` is true, returning it.
    pub fn remove(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32> {
        let si = self.seg_of(hash);
        if Arc::strong_count(&self.segs[si]) > 1 {
            // Copy the segment only if there is something to remove.
            self.segs[si].t.find(hash, &mut eq)?;
        }
        chunk_mut(&mut self.segs[si], seg_bytes)
            .t
            .remove(hash, eq, hash_of)
    }

    /// Split segment `si` on its next hash bit (doubling the directory if needed).
    #[cold]
    fn split(&mut self, si: usize, hash_of: &impl Fn(u32) -> u64) {
        let d = self.segs[si].depth;
        if self.dir.len() == 1 << d {
            self.dir.extend_from_within(..);
        }
        let bit = 1u64 << (DIR_SHIFT + d as u32);
        let old = &self.segs[si].t;
        let half = old.count() / 2;
        let mut lo = S::with_room(half + half / 4);
        let mut hi = S::with_room(half + half / 4);
        for id in old.ids() {
            let h = hash_of(id);
            let t = if h & bit == 0 { &mut lo } else { &mut hi };
            t.insert(h, id, hash_of);
        }
        let new = self.segs.len() as u32;
        self.segs[si] = Arc::new(Seg {
            depth: d + 1,
            t: lo,
        });
        self.segs.push(Arc::new(Seg {
            depth: d + 1,
            t: hi,
        }));
        for (i, s) in self.dir.iter_mut().enumerate() {
            if *s as usize == si && (i >> d) & 1 == 1 {
                *s = new;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.segs.iter().map(|s| s.t.count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn mem_usage(&self) -> usize {
        self.dir.capacity() * 4
            + self.segs.capacity() * 8
            + self
                .segs
                .iter()
                .map(|s| seg_bytes(s) + 16 + std::mem::size_of::<Seg<S>>())
                .sum::<usize>()
    }

    /// (segments, segments that are the same allocation in `other`).
    pub fn shared_segments(&self, other: &Self) -> (usize, usize) {
        let shared = self
            .segs
            .iter()
            .zip(&other.segs)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        (self.segs.len(), shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(i: u32) -> u64 {
        crate::types::set::hash_bytes(&i.to_le_bytes())
    }

    #[test]
    fn chunk_vec_is_a_vec() {
        let mut v: ChunkVec<u32, 3> = ChunkVec::default();
        let mut m: Vec<u32> = Vec::new();
        for i in 0..100 {
            v.push(i);
            m.push(i);
        }
        for i in [5usize, 0, 40, 96, 95] {
            assert_eq!(v.swap_remove(i), m.swap_remove(i));
        }
        while m.len() > 30 {
            assert_eq!(v.pop(), m.pop());
        }
        *v.get_mut(7) = 1000;
        m[7] = 1000;
        assert_eq!(v.len(), m.len());
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), m);
        assert_eq!(v.get(m.len()), None);
        while v.pop().is_some() {}
        assert!(v.is_empty());
        v.push(1);
        assert_eq!(v.get(0), Some(&1));
    }

    #[test]
    fn a_clone_shares_chunks_until_written() {
        let mut v: ChunkVec<u64, 10> = ChunkVec::default();
        for i in 0..100_000 {
            v.push(i);
        }
        let snap = v.clone();
        let n = v.shared_chunks(&snap).0;
        assert_eq!(v.shared_chunks(&snap), (n, n));
        let before = COW_COPIED_BYTES.load(Ordering::Relaxed);
        *v.get_mut(50_000) = 7;
        v.push(1);
        v.swap_remove(3);
        // The touched chunks: 50,000's, the last one, 3's.
        assert_eq!(v.shared_chunks(&snap).1, n - 3);
        assert!(COW_COPIED_BYTES.load(Ordering::Relaxed) - before >= 2 * 1024 * 8);
        assert_eq!(
            snap.iter().copied().collect::<Vec<_>>(),
            (0..100_000).collect::<Vec<_>>()
        );
    }

    fn seg_index_splits_and_finds<S: SegTable>() {
        let mut ix: SegIndex<S> = SegIndex::default();
        let mut keys: HashMap<u32, u32> = HashMap::new();
        for i in 0..50_000u32 {
            // Position i holds key i * 3.
            keys.insert(i, i * 3);
            let k = i * 3;
            ix.insert(h(k), i, |p| h(p * 3));
        }
        assert!(ix.segs.len() > 8, "{}", ix.segs.len());
        assert!(ix.segs.iter().all(|s| s.t.count() <= S::SPLIT));
        assert_eq!(ix.len(), 50_000);
        let snap = ix.clone();
        for i in (0..50_000u32).step_by(2) {
            assert_eq!(ix.remove(h(i * 3), |p| p == i, |p| h(p * 3)), Some(i));
        }
        assert_eq!(ix.remove(h(3), |p| p == 1_000_000, |p| h(p * 3)), None);
        for i in 0..50_000u32 {
            assert_eq!(ix.find(h(i * 3), |p| p == i).is_some(), i % 2 == 1);
            assert_eq!(snap.find(h(i * 3), |p| p == i), Some(i));
        }
        // One write after a clone copies one segment.
        let mut live = snap.clone();
        let n = snap.segs.len();
        *live.find_mut(h(30), |p| p == 10).unwrap() = 99;
        assert_eq!(live.shared_segments(&snap), (n, n - 1));
        assert_eq!(snap.find(h(30), |p| p == 10), Some(10));
        assert_eq!(live.find(h(30), |p| p == 99), Some(99));
    }
    #[test]
    fn seg_index_probe() {
        seg_index_splits_and_finds::<Probe>();
    }

    #[test]
    fn seg_index_tagged() {
        seg_index_splits_and_finds::<Tagged>();
    }
}
