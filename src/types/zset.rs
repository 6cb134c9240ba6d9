//! Sorted sets, with Redis 7.0's two encodings:
//!
//! - `listpack`: a `Vec<(member, score)>` kept sorted by (score, member), while the set has at
//!   most `zset-max-listpack-entries` members of at most `zset-max-listpack-value` bytes.
//! - `skiplist`: [`Large`] — entries stored densely (chunks of `Entry`: a 24-byte [`CBytes`]
//!   member + its f64 score), a member → position hash index in segments (`chunked::SegIndex`),
//!   and an order-statistics index over the entries: sorted blocks of at most [`BLOCK_MAX`]
//!   12-byte `(score key, position)` slots with a Fenwick tree of block lengths. Rank ↔ element in
//!   O(log n), insert/remove in O(log n + BLOCK_MAX) (a memmove inside one block).
//!
//! Memory per member of a large zset: 32 (entry) + ~16 (order slot at ~75% block fill) + 4–8
//! (index) ≈ 52–56 bytes, plus the heap allocation of members longer than 22 bytes. Redis 7.0
//! needs a dictEntry (24) + bucket (8) + sds (≥16) + a skiplist node (≥48 with its levels).
//!
//! Scores compare as Redis compares them: numerically (so `-0` == `0`, ties broken by member
//! bytes); NaN never enters a zset.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::types::chunked::{chunk_mut, ChunkVec, SegIndex};
use crate::types::set::{hash_bytes, CBytes};

/// An f64 with a total order (scores are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Score {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        score_key(self.0).cmp(&score_key(o.0))
    }
}

/// Largest number of slots in one order block before it is split.
pub const BLOCK_MAX: usize = 512;
/// Blocks built in bulk are filled to this many slots.
const BLOCK_BUILD: usize = 384;
/// A block shorter than this is merged with its successor when they fit in one block.
const BLOCK_MIN: usize = 64;

/// An order-preserving u64 image of a score; `-0` maps like `0`.
#[inline]
pub fn score_key(s: f64) -> u64 {
    let b = if s == 0.0 { 0u64 } else { s.to_bits() };
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Thresholds that decide a zset's encoding (from the config).
#[derive(Clone, Copy, Debug)]
pub struct ZSetLimits {
    /// `zset-max-listpack-entries`.
    pub max_listpack_entries: usize,
    /// `zset-max-listpack-value`.
    pub max_listpack_value: usize,
}

impl Default for ZSetLimits {
    fn default() -> Self {
        ZSetLimits {
            max_listpack_entries: 128,
            max_listpack_value: 64,
        }
    }
}

#[derive(Clone)]
struct Entry {
    m: CBytes,
    s: f64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    hi: u32,
    lo: u32,
    id: u32,
}

impl Slot {
    fn new(key: u64, id: u32) -> Slot {
        Slot {
            hi: (key >> 32) as u32,
            lo: key as u32,
            id,
        }
    }
    #[inline]
    fn key(&self) -> u64 {
        ((self.hi as u64) << 32) | self.lo as u64
    }
}

/// Entries by position: 1,024 (32 KB) a chunk.
type Entries = ChunkVec<Entry, 10>;

/// An order block, copy-on-write (a clone shares it until a write touches it).
type Block = Arc<Vec<Slot>>;

#[allow(clippy::ptr_arg)] // passed where a `&Vec<Slot>` is taken
fn block_bytes(b: &Vec<Slot>) -> usize {
    b.len() * std::mem::size_of::<Slot>()
}

/// The `skiplist` encoding. Entries, index and order blocks are copy-on-write in chunks
/// ([`crate::types::chunked`]): a clone (a compaction's) copies chunk pointers and the Fenwick
/// tree (one word per block), and a write copies at most an entry chunk or two, one index
/// segment and the order blocks it touches.
#[derive(Clone, Default)]
pub struct Large {
    entries: Entries,
    table: SegIndex,
    blocks: Vec<Block>,
    /// Fenwick tree (1-based) over block lengths.
    fen: Vec<usize>,
}

impl Large {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn find_id(&self, m: &[u8]) -> Option<u32> {
        self.find_id_h(m, hash_bytes(m))
    }

    /// [`Large::find_id`] with the member's hash `h` already computed.
    fn find_id_h(&self, m: &[u8], h: u64) -> Option<u32> {
        let e = &self.entries;
        self.table.find(h, |id| e[id as usize].m.as_slice() == m)
    }

    fn block_mut(&mut self, b: usize) -> &mut Vec<Slot> {
        chunk_mut(&mut self.blocks[b], block_bytes)
    }

    #[inline]
    fn cmp_slot(&self, sl: &Slot, key: u64, m: &[u8]) -> Ordering {
        sl.key()
            .cmp(&key)
            .then_with(|| self.entries[sl.id as usize].m.as_slice().cmp(m))
    }

    fn rebuild_fen(&mut self) {
        let n = self.blocks.len();
        let mut fen = vec![0usize; n + 1];
        for i in 1..=n {
            fen[i] += self.blocks[i - 1].len();
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                fen[j] += fen[i];
            }
        }
        self.fen = fen;
    }

    fn fen_add(&mut self, block: usize, inc: bool) {
        let mut i = block + 1;
        while i < self.fen.len() {
            if inc {
                self.fen[i] += 1;
            } else {
                self.fen[i] -= 1;
            }
            i += i & i.wrapping_neg();
        }
    }

    /// Number of slots in blocks `[0, block)`.
    fn prefix(&self, block: usize) -> usize {
        let mut i = block;
        let mut s = 0;
        while i > 0 {
            s += self.fen[i];
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// (block, offset) of the slot with rank `rank` (< len).
    fn find_rank(&self, rank: usize) -> (usize, usize) {
        let n = self.blocks.len();
        let mut pos = 0;
        let mut rem = rank;
        let mut step = n.next_power_of_two();
        while step > 0 {
            if pos + step <= n && self.fen[pos + step] <= rem {
                pos += step;
                rem -= self.fen[pos];
            }
            step >>= 1;
        }
        (pos, rem)
    }

    /// Lower bound of (key, m): the (block, offset) where it is or would be inserted.
    fn locate(&self, key: u64, m: &[u8]) -> (usize, usize) {
        let nb = self.blocks.len();
        let b = self.blocks.partition_point(|blk| {
            blk.last()
                .is_some_and(|last| self.cmp_slot(last, key, m) == Ordering::Less)
        });
        if b == nb {
            let last = nb.saturating_sub(1);
            return (last, self.blocks.get(last).map_or(0, |b| b.len()));
        }
        let p = self.blocks[b].partition_point(|sl| self.cmp_slot(sl, key, m) == Ordering::Less);
        (b, p)
    }

    fn order_insert(&mut self, id: u32) {
        let e = &self.entries[id as usize];
        let key = score_key(e.s);
        let slot = Slot::new(key, id);
        if self.blocks.is_empty() {
            self.blocks.push(Arc::new(vec![slot]));
            self.rebuild_fen();
            return;
        }
        let (b, p) = self.locate(key, e.m.as_slice());
        let blk = self.block_mut(b);
        blk.insert(p, slot);
        if blk.len() > BLOCK_MAX {
            let half = blk.len() / 2;
            let tail = blk.split_off(half);
            self.blocks.insert(b + 1, Arc::new(tail));
            self.rebuild_fen();
        } else {
            self.fen_add(b, true);
        }
    }

    fn order_remove(&mut self, id: u32) {
        let e = &self.entries[id as usize];
        let (b, p) = self.locate(score_key(e.s), e.m.as_slice());
        debug_assert_eq!(self.blocks[b][p].id, id);
        self.block_mut(b).remove(p);
        let len = self.blocks[b].len();
        if len == 0 {
            self.blocks.remove(b);
            self.rebuild_fen();
        } else if len < BLOCK_MIN
            && b + 1 < self.blocks.len()
            && len + self.blocks[b + 1].len() <= BLOCK_MAX
        {
            let next = self.blocks.remove(b + 1);
            self.block_mut(b).extend_from_slice(&next);
            self.rebuild_fen();
        } else {
            self.fen_add(b, false);
        }
    }

    /// Set the position stored for entry currently at `old` to `new` (after a swap_remove).
    fn order_reid(&mut self, old: u32, new: u32) {
        let e = &self.entries[old as usize];
        let (b, p) = self.locate(score_key(e.s), e.m.as_slice());
        if b < self.blocks.len() && p < self.blocks[b].len() {
            let sl = &mut self.block_mut(b)[p];
            debug_assert_eq!(sl.id, old);
            sl.id = new;
        }
    }

    /// Insert a member known to be absent, whose hash is `h`.
    fn insert_new(&mut self, m: &[u8], s: f64, h: u64) {
        let id = self.entries.len() as u32;
        self.entries.push(Entry {
            m: CBytes::new(m),
            s,
        });
        let e = &self.entries;
        self.table
            .insert(h, id, |i| hash_bytes(e[i as usize].m.as_slice()));
        self.order_insert(id);
    }

    fn update(&mut self, id: u32, s: f64) {
        let cur = self.entries[id as usize].s;
        if score_key(cur) == score_key(s) {
            // Same position in the order; keep the exact value (e.g. -0 vs 0).
            self.entries.get_mut(id as usize).s = s;
            return;
        }
        self.order_remove(id);
        self.entries.get_mut(id as usize).s = s;
        self.order_insert(id);
    }

    fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let h = hash_bytes(m);
        let id = self.find_id_h(m, h)?;
        let score = self.entries[id as usize].s;
        self.order_remove(id);
        let e = &self.entries;
        self.table
            .remove(h, |i| i == id, |i| hash_bytes(e[i as usize].m.as_slice()));
        let last = (self.entries.len() - 1) as u32;
        if id != last {
            // Re-point the last entry's index and order slot at `id` before it moves there
            // (comparisons during the lookup read entries, so all positions must be valid).
            let moved = hash_bytes(self.entries[last as usize].m.as_slice());
            if let Some(s) = self.table.find_mut(moved, |i| i == last) {
                *s = id;
            }
            self.order_reid(last, id);
        }
        self.entries.swap_remove(id as usize);
        Some(score)
    }

    fn rank_of(&self, m: &[u8]) -> Option<usize> {
        let id = self.find_id(m)?;
        let e = &self.entries[id as usize];
        let (b, p) = self.locate(score_key(e.s), e.m.as_slice());
        Some(self.prefix(b) + p)
    }

    fn entry_at_rank(&self, rank: usize) -> Option<&Entry> {
        if rank >= self.len() {
            return None;
        }
        let (b, off) = self.find_rank(rank);
        let id = self.blocks.get(b)?.get(off)?.id;
        self.entries.get(id as usize)
    }

    fn partition_point(&self, pred: &dyn Fn(&[u8], f64) -> bool) -> usize {
        let test = |sl: &Slot| {
            let e = &self.entries[sl.id as usize];
            pred(e.m.as_slice(), e.s)
        };
        let b = self
            .blocks
            .partition_point(|blk| blk.last().is_some_and(test));
        if b == self.blocks.len() {
            return self.len();
        }
        self.prefix(b) + self.blocks[b].partition_point(test)
    }

    /// Build from pairs with distinct members.
    fn from_distinct(pairs: Vec<(CBytes, f64)>) -> Large {
        let mut l = Large {
            entries: Entries::with_capacity(pairs.len()),
            table: SegIndex::with_capacity(pairs.len()),
            ..Default::default()
        };
        for (m, s) in pairs {
            let id = l.entries.len() as u32;
            let h = hash_bytes(m.as_slice());
            l.entries.push(Entry { m, s });
            let e = &l.entries;
            l.table
                .insert(h, id, |i| hash_bytes(e[i as usize].m.as_slice()));
        }
        l.build_order();
        l
    }

    fn build_order(&mut self) {
        let mut slots: Vec<Slot> = (0..self.entries.len() as u32)
            .map(|id| Slot::new(score_key(self.entries[id as usize].s), id))
            .collect();
        let e = &self.entries;
        slots.sort_unstable_by(|a, b| {
            a.key().cmp(&b.key()).then_with(|| {
                e[a.id as usize]
                    .m
                    .as_slice()
                    .cmp(e[b.id as usize].m.as_slice())
            })
        });
        self.blocks = slots
            .chunks(BLOCK_BUILD)
            .map(|c| Arc::new(c.to_vec()))
            .collect();
        self.rebuild_fen();
    }

    fn mem_usage(&self) -> usize {
        self.entries.mem_usage()
            + self.entries.iter().map(|e| e.m.heap_size()).sum::<usize>()
            + self.table.mem_usage()
            + self
                .blocks
                .iter()
                .map(|b| b.capacity() * std::mem::size_of::<Slot>() + 40)
                .sum::<usize>()
            + self.fen.capacity() * 8
    }
}

#[derive(Clone)]
enum Repr {
    Small(Vec<(CBytes, f64)>),
    Large(Box<Large>),
}

#[derive(Clone)]
pub struct ZSet {
    repr: Repr,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

fn cmp_pair(a_m: &[u8], a_s: f64, b_m: &[u8], b_s: f64) -> Ordering {
    score_key(a_s)
        .cmp(&score_key(b_s))
        .then_with(|| a_m.cmp(b_m))
}

impl ZSet {
    /// An empty zset in the `listpack` encoding.
    pub fn new() -> Self {
        ZSet {
            repr: Repr::Small(Vec::new()),
        }
    }

    /// An empty zset with the encoding Redis's `zsetTypeCreate(size_hint, val_len_hint)` picks.
    pub fn with_hint(size_hint: usize, max_member_len: usize, limits: ZSetLimits) -> Self {
        if size_hint <= limits.max_listpack_entries
            && max_member_len <= limits.max_listpack_value
            && limits.max_listpack_entries > 0
        {
            ZSet::new()
        } else {
            ZSet {
                repr: Repr::Large(Box::default()),
            }
        }
    }

    /// Build a zset from pairs (a later duplicate member overrides an earlier one), choosing
    /// the encoding by the final size and longest member.
    pub fn from_pairs(pairs: Vec<(Bytes, f64)>, limits: ZSetLimits) -> ZSet {
        let mut z = ZSet::with_hint(
            pairs.len(),
            pairs.iter().map(|(m, _)| m.len()).max().unwrap_or(0),
            limits,
        );
        if let Repr::Large(_) = z.repr {
            // Dedup through a temporary index, then bulk-build.
            let mut seen = Large::default();
            let mut distinct: Vec<(CBytes, f64)> = Vec::with_capacity(pairs.len());
            for (m, s) in pairs {
                match seen.find_id(&m) {
                    Some(id) => distinct[id as usize].1 = s,
                    None => {
                        let id = seen.entries.len() as u32;
                        seen.entries.push(Entry {
                            m: CBytes::new(&m),
                            s: 0.0,
                        });
                        let e = &seen.entries;
                        seen.table.insert(hash_bytes(&m), id, |i| {
                            hash_bytes(e[i as usize].m.as_slice())
                        });
                        distinct.push((CBytes::new(&m), s));
                    }
                }
            }
            drop(seen);
            let large = if distinct.len() <= limits.max_listpack_entries
                && distinct
                    .iter()
                    .all(|(m, _)| m.as_slice().len() <= limits.max_listpack_value)
                && limits.max_listpack_entries > 0
            {
                let mut v = distinct;
                for p in v.iter_mut() {
                    if p.1 == 0.0 {
                        p.1 = 0.0;
                    }
                }
                v.sort_by(|a, b| cmp_pair(a.0.as_slice(), a.1, b.0.as_slice(), b.1));
                return ZSet {
                    repr: Repr::Small(v),
                };
            } else {
                Large::from_distinct(distinct)
            };
            z.repr = Repr::Large(Box::new(large));
            return z;
        }
        for (m, s) in pairs {
            z.insert(&m, s, limits);
        }
        z
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => v.len(),
            Repr::Large(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Small(_) => "listpack",
            Repr::Large(_) => "skiplist",
        }
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Small(_))
    }

    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => {
                v.capacity() * 32 + v.iter().map(|(m, _)| m.heap_size()).sum::<usize>()
            }
            Repr::Large(l) => l.mem_usage(),
        }
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Small(v) => v.iter().find(|(x, _)| x.as_slice() == m).map(|(_, s)| *s),
            Repr::Large(l) => l.find_id(m).map(|id| l.entries[id as usize].s),
        }
    }

    fn convert_to_large(&mut self) {
        if let Repr::Small(v) = &mut self.repr {
            let v = std::mem::take(v);
            self.repr = Repr::Large(Box::new(Large::from_distinct(v)));
        }
    }

    /// Set the score of `m` (adding it if new). Returns the previous score.
    pub fn insert(&mut self, m: &[u8], s: f64, limits: ZSetLimits) -> Option<f64> {
        if let Repr::Small(v) = &mut self.repr {
            // A listpack stores `-0` as the integer 0 (Redis 7.0 answers `0` afterwards).
            let s = if s == 0.0 { 0.0 } else { s };
            let pos = v.iter().position(|(x, _)| x.as_slice() == m);
            match pos {
                Some(i) => {
                    let old = v[i].1;
                    if score_key(old) != score_key(s) {
                        let (mm, _) = v.remove(i);
                        let at = v.partition_point(|(x, xs)| {
                            cmp_pair(x.as_slice(), *xs, m, s) == Ordering::Less
                        });
                        v.insert(at, (mm, s));
                    } else {
                        v[i].1 = s;
                    }
                    return Some(old);
                }
                None => {
                    if v.len() < limits.max_listpack_entries && m.len() <= limits.max_listpack_value
                    {
                        let at = v.partition_point(|(x, xs)| {
                            cmp_pair(x.as_slice(), *xs, m, s) == Ordering::Less
                        });
                        v.insert(at, (CBytes::new(m), s));
                        return None;
                    }
                    self.convert_to_large();
                }
            }
        }
        match &mut self.repr {
            Repr::Large(l) => {
                let h = hash_bytes(m);
                match l.find_id_h(m, h) {
                    Some(id) => {
                        let old = l.entries[id as usize].s;
                        l.update(id, s);
                        Some(old)
                    }
                    None => {
                        l.insert_new(m, s, h);
                        None
                    }
                }
            }
            Repr::Small(_) => None,
        }
    }

    /// Remove `m`, returning its score.
    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Small(v) => {
                let i = v.iter().position(|(x, _)| x.as_slice() == m)?;
                Some(v.remove(i).1)
            }
            Repr::Large(l) => l.remove(m),
        }
    }

    /// 0-based rank of `m` in ascending order.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Small(v) => v.iter().position(|(x, _)| x.as_slice() == m),
            Repr::Large(l) => l.rank_of(m),
        }
    }

    /// The element with ascending rank `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Small(v) => v.get(rank).map(|(m, s)| (m.as_slice(), *s)),
            Repr::Large(l) => l.entry_at_rank(rank).map(|e| (e.m.as_slice(), e.s)),
        }
    }

    /// The first rank whose element does not satisfy `pred` (which must be true for a prefix of
    /// the order and false after it).
    pub fn partition_point(&self, pred: &dyn Fn(&[u8], f64) -> bool) -> usize {
        match &self.repr {
            Repr::Small(v) => v.partition_point(|(m, s)| pred(m.as_slice(), *s)),
            Repr::Large(l) => l.partition_point(pred),
        }
    }

    /// Elements with ranks in `[start, end)`, ascending, or descending from `end - 1` if `rev`.
    pub fn range(
        &self,
        start: usize,
        end: usize,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        let end = end.min(self.len());
        if start >= end {
            return Box::new(std::iter::empty());
        }
        let n = end - start;
        match &self.repr {
            Repr::Small(v) => {
                let it = v[start..end].iter().map(|(m, s)| (m.as_slice(), *s));
                if rev {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
            Repr::Large(l) => {
                let ent = |sl: &Slot| {
                    let e = &l.entries[sl.id as usize];
                    (e.m.as_slice(), e.s)
                };
                if rev {
                    let (b, off) = l.find_rank(end - 1);
                    let it = l.blocks[b][..=off]
                        .iter()
                        .rev()
                        .chain(l.blocks[..b].iter().rev().flat_map(|x| x.iter().rev()))
                        .take(n)
                        .map(ent);
                    Box::new(it)
                } else {
                    let (b, off) = l.find_rank(start);
                    let it = l.blocks[b][off..]
                        .iter()
                        .chain(l.blocks[b + 1..].iter().flat_map(|x| x.iter()))
                        .take(n)
                        .map(ent);
                    Box::new(it)
                }
            }
        }
    }

    /// All elements in rank order, as owned pairs (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (Bytes, f64)> + '_ {
        self.range(0, self.len(), false)
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
    }

    /// Number of storage positions SCAN walks (0 for `listpack`, which is scanned in one call).
    pub fn scan_positions(&self) -> usize {
        match &self.repr {
            Repr::Small(_) => 0,
            Repr::Large(l) => l.entries.len(),
        }
    }

    /// The element at storage position `pos` (`skiplist` only).
    pub fn at_position(&self, pos: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Small(_) => None,
            Repr::Large(l) => l.entries.get(pos).map(|e| (e.m.as_slice(), e.s)),
        }
    }

    /// Remove the elements with ranks in `[start, end)`; returns them in ascending order.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let out: Vec<(Bytes, f64)> = self
            .range(start, end, false)
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        match &mut self.repr {
            Repr::Small(v) => {
                v.drain(start..start + out.len());
            }
            Repr::Large(l) => {
                for (m, _) in &out {
                    l.remove(m);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, Arbitrary, Gen};
    use std::collections::BTreeMap;

    #[test]
    fn slot_and_key_sizes() {
        assert_eq!(std::mem::size_of::<Slot>(), 12);
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        assert!(score_key(-1.0) < score_key(-0.5));
        assert!(score_key(-0.5) < score_key(0.0));
        assert_eq!(score_key(-0.0), score_key(0.0));
        assert!(score_key(0.0) < score_key(1e-300));
        assert!(score_key(f64::NEG_INFINITY) < score_key(-1e308));
        assert!(score_key(1e308) < score_key(f64::INFINITY));
    }

    #[test]
    fn encoding_conversion() {
        let lim = ZSetLimits {
            max_listpack_entries: 2,
            max_listpack_value: 4,
        };
        let mut z = ZSet::new();
        z.insert(b"a", 1.0, lim);
        z.insert(b"b", 2.0, lim);
        assert_eq!(z.encoding(), "listpack");
        z.insert(b"c", 0.5, lim);
        assert_eq!(z.encoding(), "skiplist");
        let v: Vec<_> = z.iter().collect();
        assert_eq!(v[0].0, "c");
        let mut z = ZSet::new();
        z.insert(b"toolong", 1.0, lim);
        assert_eq!(z.encoding(), "skiplist");
        let z = ZSet::from_pairs(vec![("x".into(), 1.0), ("x".into(), 2.0)], lim);
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(z.score(b"x"), Some(2.0));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u16, i8),
        Rem(u16),
        RemRange(u16, u8),
        /// Take a snapshot (a clone) that must keep its state while the zset changes.
        Clone,
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 61 {
                0..=29 => Op::Add(u16::arbitrary(g) % 2000, i8::arbitrary(g) % 20),
                30..=49 => Op::Rem(u16::arbitrary(g) % 2000),
                50..=59 => Op::RemRange(u16::arbitrary(g), u8::arbitrary(g) % 8),
                _ => Op::Clone,
            }
        }
    }

    fn member(i: u16) -> Vec<u8> {
        let mut v = format!("m{i}").into_bytes();
        if i.is_multiple_of(5) {
            v.extend_from_slice(&[b'y'; 25]);
        }
        v
    }

    fn check(z: &ZSet, model: &BTreeMap<Vec<u8>, f64>) -> bool {
        let mut want: Vec<(Vec<u8>, f64)> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
        want.sort_by(|a, b| cmp_pair(&a.0, a.1, &b.0, b.1));
        let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        if got != want || z.len() != want.len() {
            return false;
        }
        for (r, (m, s)) in want.iter().enumerate() {
            if z.rank(m) != Some(r) || z.score(m) != Some(*s) {
                return false;
            }
            if z.get(r).map(|(a, b)| (a.to_vec(), b)) != Some((m.clone(), *s)) {
                return false;
            }
        }
        // Reverse ranges and partition points.
        let rev: Vec<(Vec<u8>, f64)> = z
            .range(0, z.len(), true)
            .map(|(m, s)| (m.to_vec(), s))
            .collect();
        let mut w2 = want.clone();
        w2.reverse();
        if rev != w2 {
            return false;
        }
        for t in [-5.0, 0.0, 3.0, 100.0] {
            let pp = z.partition_point(&|_, s| s < t);
            if pp != want.iter().filter(|(_, s)| *s < t).count() {
                return false;
            }
        }
        true
    }

    fn run_model(ops: Vec<Op>, lim: ZSetLimits) -> bool {
        let mut z = ZSet::new();
        let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
        let mut snaps: Vec<(ZSet, BTreeMap<Vec<u8>, f64>)> = Vec::new();
        for op in ops {
            match op {
                Op::Clone => {
                    if snaps.len() == 3 {
                        snaps.remove(0);
                    }
                    snaps.push((z.clone(), model.clone()));
                }
                Op::Add(i, s) => {
                    let m = member(i);
                    let s = s as f64 / 2.0;
                    if z.insert(&m, s, lim) != model.insert(m, s) {
                        return false;
                    }
                }
                Op::Rem(i) => {
                    let m = member(i);
                    if z.remove(&m) != model.remove(&m) {
                        return false;
                    }
                }
                Op::RemRange(start, n) => {
                    if !z.is_empty() {
                        let start = start as usize % z.len();
                        let gone = z.remove_range(start, start + n as usize);
                        for (m, _) in gone {
                            model.remove(&m[..]);
                        }
                    }
                }
            }
            if z.len() != model.len() {
                return false;
            }
        }
        check(&z, &model) && snaps.iter().all(|(sz, sm)| check(sz, sm))
    }

    #[test]
    fn a_clone_shares_chunks_and_a_write_copies_only_what_it_touches() {
        let lim = ZSetLimits::default();
        let mut live = ZSet::new();
        for i in 0..200_000u32 {
            live.insert(format!("member:{i}").as_bytes(), (i % 1000) as f64, lim);
        }
        let snapshot = live.clone();
        let shared = |a: &ZSet, b: &ZSet| {
            let (Repr::Large(x), Repr::Large(y)) = (&a.repr, &b.repr) else {
                panic!("not large")
            };
            let blocks = x
                .blocks
                .iter()
                .zip(&y.blocks)
                .filter(|(p, q)| Arc::ptr_eq(p, q))
                .count();
            [
                x.entries.shared_chunks(&y.entries),
                x.table.shared_segments(&y.table),
                (x.blocks.len(), blocks),
            ]
        };
        let all = shared(&live, &snapshot);
        for (total, sh) in all {
            assert!(total > 10, "{all:?}");
            assert_eq!(sh, total);
        }
        live.insert(b"member:10", 0.5, lim);
        live.insert(b"new member", 2.5, lim);
        assert_eq!(live.remove(b"member:20"), Some(20.0));
        let after = shared(&live, &snapshot);
        // Entries: member:10's, member:20's and the last chunk; index: a segment per member;
        // blocks: the ones member:10 leaves and enters, new member's, member:20's and the
        // last entry's (re-pointed), or ones shifted by a split or merge.
        assert!(after[0].1 >= all[0].0 - 3, "{after:?}");
        assert!(after[1].1 >= all[1].0 - 4, "{after:?}");
        let unshifted = after[2].0 == all[2].0;
        assert!(!unshifted || after[2].1 >= all[2].0 - 5, "{after:?}");
        assert_eq!(snapshot.len(), 200_000);
        assert_eq!(snapshot.score(b"member:10"), Some(10.0));
        assert_eq!(snapshot.score(b"member:20"), Some(20.0));
        assert_eq!(snapshot.score(b"new member"), None);
        assert_eq!(live.score(b"member:10"), Some(0.5));
        assert_eq!(live.rank(b"member:10"), Some(200));
        assert_eq!(live.len(), 200_000);
    }

    quickcheck! {
        fn model_small_limits(ops: Vec<Op>) -> bool {
            run_model(ops, ZSetLimits { max_listpack_entries: 16, max_listpack_value: 64 })
        }
    }

    #[test]
    fn model_many_blocks() {
        // Enough operations to split and merge blocks repeatedly.
        let mut g = Gen::new(100);
        for _ in 0..4 {
            let ops: Vec<Op> = (0..6000).map(|_| Op::arbitrary(&mut g)).collect();
            assert!(run_model(ops, ZSetLimits::default()));
        }
        // Larger, with clones (many entry chunks and index segments).
        let mut g = Gen::new(5000);
        let ops: Vec<Op> = (0..40_000)
            .map(|_| match Op::arbitrary(&mut g) {
                Op::Add(i, s) => Op::Add(i.wrapping_mul(7) % 60_000, s),
                Op::Rem(i) => Op::Rem(i.wrapping_mul(7) % 60_000),
                op => op,
            })
            .collect();
        assert!(run_model(ops, ZSetLimits::default()));
        let lim = ZSetLimits::default();
        let mut z = ZSet::new();
        for i in 0..5000u32 {
            z.insert(format!("k{i}").as_bytes(), (i % 97) as f64, lim);
        }
        let pairs: Vec<(Bytes, f64)> = z.iter().collect();
        let z2 = ZSet::from_pairs(pairs.clone(), lim);
        assert_eq!(z2.iter().collect::<Vec<_>>(), pairs);
        for i in 0..5000u32 {
            if i % 3 != 0 {
                z.remove(format!("k{i}").as_bytes());
            }
        }
        assert_eq!(z.len(), 1667);
        let mut prev: Option<(Vec<u8>, f64)> = None;
        for (r, (m, s)) in z.range(0, z.len(), false).enumerate() {
            assert_eq!(z.rank(m), Some(r));
            if let Some((pm, ps)) = &prev {
                assert_eq!(cmp_pair(pm, *ps, m, s), Ordering::Less);
            }
            prev = Some((m.to_vec(), s));
        }
    }
}
