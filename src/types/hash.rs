//! Hashes. Small hashes are one packed byte buffer of alternating field/value entries (Redis's
//! `listpack` encoding, same conversion rules); large ones are a `hashtable`: the entries live
//! packed in one append-only arena, a dense slot vector gives O(1) random access (HRANDFIELD) and a
//! SCAN order, and a `hashbrown` table of `u32` slot numbers indexes them by field.
//!
//! Fields and values use the list element encoding ([`crate::types::list`]'s `enc`), which is
//! canonical, so a field is found by comparing encoded bytes.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use crate::types::chunked::{Arena, ChunkVec, SegIndex, Tagged};
use crate::types::list::enc;
use bytes::Bytes;

/// Conversion thresholds (`hash-max-listpack-entries`, `hash-max-listpack-value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Default for HashLimits {
    fn default() -> Self {
        HashLimits {
            max_entries: 512,
            max_value: 64,
        }
    }
}

fn hasher() -> &'static std::collections::hash_map::RandomState {
    static H: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    H.get_or_init(std::collections::hash_map::RandomState::new)
}

fn hash_of(encoded_field: &[u8]) -> u64 {
    hasher().hash_one(encoded_field)
}

/// Split an encoded entry at `off` into (encoded field range end, value range end).
#[inline]
fn pair_bounds(buf: &[u8], off: usize) -> (usize, usize) {
    let f_end = off + enc::entry_len(buf, off);
    let v_end = f_end + enc::entry_len(buf, f_end);
    (f_end, v_end)
}

#[derive(Clone, Default)]
struct Pack {
    buf: Vec<u8>,
    len: usize,
}

impl Pack {
    /// Offset of the pair whose encoded field is `ef`.
    fn find(&self, ef: &[u8]) -> Option<usize> {
        let mut off = 0;
        while off < self.buf.len() {
            let (f_end, v_end) = pair_bounds(&self.buf, off);
            if self.buf[off..f_end] == *ef {
                return Some(off);
            }
            off = v_end;
        }
        None
    }
}

/// Arena offsets of the pairs, by slot: 4,096 (32 KB) a chunk.
type Slots = ChunkVec<u64, 12>;

/// The `hashtable` encoding. Every part is copy-on-write in chunks (see [`crate::types::chunked`]):
/// a clone (a compaction's) copies chunk pointers, and a write then copies at most one arena
/// chunk, one slot chunk and one index segment (plus the records of an arena chunk it evacuates).
#[derive(Clone, Default)]
struct Table {
    arena: Arena,
    /// Arena address of each live pair; the slot number is the pair's index.
    slots: Slots,
    /// Tagged segments: a probe compares fields (through two chunk lookups) only on a tag match.
    index: SegIndex<Tagged>,
}

#[inline]
fn field_in(arena: &Arena, addr: u64) -> &[u8] {
    let (c, off) = arena.chunk(addr);
    &c[off..off + enc::entry_len(c, off)]
}

impl Table {
    fn field_at(&self, slot: usize) -> &[u8] {
        field_in(&self.arena, self.slots[slot])
    }

    fn find_slot(&self, ef: &[u8]) -> Option<usize> {
        self.find_slot_h(ef, hash_of(ef))
    }

    /// [`Table::find_slot`] with the field's hash already computed.
    fn find_slot_h(&self, ef: &[u8], h: u64) -> Option<usize> {
        self.index
            .find(h, |s| self.field_at(s as usize) == ef)
            .map(|s| s as usize)
    }

    fn pair_len(&self, slot: usize) -> usize {
        let (c, off) = self.arena.chunk(self.slots[slot]);
        pair_bounds(c, off).1 - off
    }

    /// Append a new pair (the field must not exist).
    fn insert_new(&mut self, ef: &[u8], ev: &[u8]) {
        self.insert_new_h(ef, ev, hash_of(ef))
    }

    /// [`Table::insert_new`] with the field's hash `h` already computed.
    fn insert_new_h(&mut self, ef: &[u8], ev: &[u8], h: u64) {
        let addr = self.arena.append(&[ef, ev]);
        let slot = self.slots.len() as u32;
        self.slots.push(addr);
        let (arena, slots) = (&self.arena, &self.slots);
        self.index
            .insert(h, slot, |s| hash_of(field_in(arena, slots[s as usize])));
    }

    /// Replace the value of the pair in `slot`, whose encoded field is `ef`.
    fn replace(&mut self, slot: usize, ef: &[u8], ev: &[u8]) {
        let addr = self.slots[slot];
        let (c, off) = self.arena.chunk(addr);
        let (f_end, v_end) = pair_bounds(c, off);
        if v_end - f_end == ev.len() {
            let (c, _) = self.arena.chunk_mut(addr);
            c[f_end..v_end].copy_from_slice(ev);
            return;
        }
        let new = self.arena.append(&[ef, ev]);
        *self.slots.get_mut(slot) = new;
        self.note_garbage(addr, v_end - off);
    }

    /// Remove the pair in `slot`, whose encoded field hashes to `h`.
    fn remove_slot(&mut self, slot: usize, h: u64) {
        let addr = self.slots[slot];
        let len = self.pair_len(slot);
        let (arena, slots) = (&self.arena, &self.slots);
        self.index.remove(
            h,
            |s| s as usize == slot,
            |s| hash_of(field_in(arena, slots[s as usize])),
        );
        let last = self.slots.len() - 1;
        if slot != last {
            // The last slot moves into the hole: repoint its index entry.
            let lh = hash_of(self.field_at(last));
            if let Some(s) = self.index.find_mut(lh, |s| s as usize == last) {
                *s = slot as u32;
            }
        }
        self.slots.swap_remove(slot);
        self.note_garbage(addr, len);
    }

    /// Count the dead record at `addr`; evacuate its chunk once it is half dead (one chunk of at
    /// most `ARENA_CHUNK` bytes, never the whole arena).
    fn note_garbage(&mut self, addr: u64, len: usize) {
        if let Some(ci) = self.arena.add_garbage(addr, len) {
            self.evacuate(ci);
        }
    }

    /// Move the live records of arena chunk `ci` to the tail and free it. A record is live when
    /// the slot its field maps to points at it.
    fn evacuate(&mut self, ci: u32) {
        let chunk = self.arena.take_evacuation(ci);
        let mut off = 0;
        while off < chunk.len() {
            let (f_end, v_end) = pair_bounds(&chunk, off);
            let addr = ((ci as u64) << 32) | off as u64;
            if let Some(s) = self.find_slot(&chunk[off..f_end]) {
                if self.slots[s] == addr {
                    let new = self.arena.append(&[&chunk[off..v_end]]);
                    *self.slots.get_mut(s) = new;
                }
            }
            off = v_end;
        }
        self.arena.release(ci);
    }

    fn pair(&self, slot: usize) -> (Bytes, Bytes) {
        let (c, off) = self.arena.chunk(self.slots[slot]);
        let (f, next) = enc::decode_bytes(c, off);
        let (v, _) = enc::decode_bytes(c, next);
        (f, v)
    }
}

#[derive(Clone)]
enum Repr {
    Pack(Pack),
    Table(Table),
}

#[derive(Clone)]
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash {
            repr: Repr::Pack(Pack::default()),
        }
    }
}

/// Iterator over (field, value) pairs.
pub struct Iter<'a> {
    hash: &'a Hash,
    pos: usize,
}

impl Iterator for Iter<'_> {
    type Item = (Bytes, Bytes);
    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        match &self.hash.repr {
            Repr::Pack(p) => {
                if self.pos >= p.buf.len() {
                    return None;
                }
                let (f, next) = enc::decode_bytes(&p.buf, self.pos);
                let (v, next) = enc::decode_bytes(&p.buf, next);
                self.pos = next;
                Some((f, v))
            }
            Repr::Table(t) => {
                if self.pos >= t.slots.len() {
                    return None;
                }
                self.pos += 1;
                Some(t.pair(self.pos - 1))
            }
        }
    }
}

impl Hash {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hash of `pairs` (later duplicates win), encoded as Redis would after loading it: packed
    /// when within `limits`, a table otherwise.
    pub fn from_pairs(pairs: Vec<(Bytes, Bytes)>, limits: HashLimits) -> Self {
        let mut h = Hash::new();
        let big = pairs.len() > limits.max_entries
            || pairs
                .iter()
                .any(|(f, v)| f.len() > limits.max_value || v.len() > limits.max_value);
        if big {
            h.convert();
        }
        for (f, v) in pairs {
            h.set(&f, &v, limits);
        }
        h
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len,
            Repr::Table(t) => t.slots.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn mem_usage(&self) -> usize {
        std::mem::size_of::<Hash>()
            + match &self.repr {
                Repr::Pack(p) => p.buf.capacity(),
                Repr::Table(t) => t.arena.mem_usage() + t.slots.mem_usage() + t.index.mem_usage(),
            }
    }

    /// (field, value) pairs: insertion order for a packed hash, slot order for a table.
    pub fn iter(&self) -> Iter<'_> {
        Iter { hash: self, pos: 0 }
    }

    /// Visits every (field, value) pair in [`Hash::iter`]'s order, without copying them.
    pub fn for_each(&self, mut f: impl FnMut(enc::Elem<'_>, enc::Elem<'_>)) {
        let mut pair = |buf: &[u8], off: usize| {
            let (field, next) = enc::decode(buf, off);
            let (value, next) = enc::decode(buf, next);
            f(field, value);
            next
        };
        match &self.repr {
            Repr::Pack(p) => {
                let mut off = 0;
                while off < p.buf.len() {
                    off = pair(&p.buf, off);
                }
            }
            Repr::Table(t) => {
                for &addr in t.slots.iter() {
                    let (c, off) = t.arena.chunk(addr);
                    pair(c, off);
                }
            }
        }
    }

    /// Switch to the table representation (one way, as Redis).
    pub fn convert(&mut self) {
        let Repr::Pack(p) = &self.repr else {
            return;
        };
        let mut t = Table {
            arena: Arena::with_capacity(p.buf.len()),
            slots: Slots::with_capacity(p.len),
            index: SegIndex::<Tagged>::with_capacity(p.len),
        };
        let mut off = 0;
        while off < p.buf.len() {
            let (f_end, v_end) = pair_bounds(&p.buf, off);
            t.insert_new(&p.buf[off..f_end], &p.buf[f_end..v_end]);
            off = v_end;
        }
        self.repr = Repr::Table(t);
    }

    /// Value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<Bytes> {
        let ef = enc::encode(field);
        match &self.repr {
            Repr::Pack(p) => {
                let off = p.find(&ef)?;
                Some(enc::decode_bytes(&p.buf, off + ef.len()).0)
            }
            Repr::Table(t) => {
                let s = t.find_slot(&ef)?;
                let (c, off) = t.arena.chunk(t.slots[s]);
                Some(enc::decode_bytes(c, off + ef.len()).0)
            }
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        let ef = enc::encode(field);
        match &self.repr {
            Repr::Pack(p) => p.find(&ef).is_some(),
            Repr::Table(t) => t.find_slot(&ef).is_some(),
        }
    }

    /// Length of the value of `field` (HSTRLEN), without materializing it.
    pub fn value_len(&self, field: &[u8]) -> Option<usize> {
        let ef = enc::encode(field);
        let (buf, off) = match &self.repr {
            Repr::Pack(p) => (&p.buf[..], p.find(&ef)?),
            Repr::Table(t) => t.arena.chunk(t.slots[t.find_slot(&ef)?]),
        };
        Some(enc::decode(buf, off + ef.len()).0.byte_len())
    }

    /// Set `field` to `value`, converting to a table first if the pair is longer than
    /// `limits.max_value`, and after if the hash grows past `limits.max_entries`.
    /// Returns true if the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if matches!(self.repr, Repr::Pack(_))
            && (field.len() > limits.max_value || value.len() > limits.max_value)
        {
            self.convert();
        }
        let ef = enc::encode(field);
        let ev = enc::encode(value);
        let new = match &mut self.repr {
            Repr::Pack(p) => match p.find(&ef) {
                Some(off) => {
                    let (f_end, v_end) = pair_bounds(&p.buf, off);
                    p.buf.splice(f_end..v_end, ev);
                    false
                }
                None => {
                    p.buf.extend_from_slice(&ef);
                    p.buf.extend_from_slice(&ev);
                    p.len += 1;
                    true
                }
            },
            Repr::Table(t) => {
                let h = hash_of(&ef);
                match t.find_slot_h(&ef, h) {
                    Some(s) => {
                        t.replace(s, &ef, &ev);
                        false
                    }
                    None => {
                        t.insert_new_h(&ef, &ev, h);
                        true
                    }
                }
            }
        };
        if new && matches!(self.repr, Repr::Pack(_)) && self.len() > limits.max_entries {
            self.convert();
        }
        new
    }

    /// Delete `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let ef = enc::encode(field);
        match &mut self.repr {
            Repr::Pack(p) => match p.find(&ef) {
                Some(off) => {
                    let (_, v_end) = pair_bounds(&p.buf, off);
                    p.buf.drain(off..v_end);
                    p.len -= 1;
                    if p.buf.capacity() > 64 && p.buf.capacity() > p.buf.len() * 2 {
                        p.buf.shrink_to_fit();
                    }
                    true
                }
                None => false,
            },
            Repr::Table(t) => {
                let h = hash_of(&ef);
                match t.find_slot_h(&ef, h) {
                    Some(s) => {
                        t.remove_slot(s, h);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// The pair at position `i` (< len): O(1) for a table, a scan of the buffer when packed.
    pub fn get_index(&self, i: usize) -> Option<(Bytes, Bytes)> {
        match &self.repr {
            Repr::Pack(_) => self.iter().nth(i),
            Repr::Table(t) => (i < t.slots.len()).then(|| t.pair(i)),
        }
    }

    /// True while the hash is packed (HSCAN then returns everything at once, as Redis).
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    /// Pairs in slot order from `range` (HSCAN over a table; see `Db::scan_indices`).
    pub fn pairs_in(&self, range: std::ops::Range<usize>) -> Vec<(Bytes, Bytes)> {
        match &self.repr {
            Repr::Pack(_) => self.iter().skip(range.start).take(range.len()).collect(),
            Repr::Table(t) => range
                .filter(|&i| i < t.slots.len())
                .map(|i| t.pair(i))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Set(Vec<u8>, Vec<u8>),
        Del(Vec<u8>),
        Get(Vec<u8>),
        Len(Vec<u8>),
        Index(usize),
        /// Take a snapshot (a clone) that must keep its state while the hash changes.
        Clone,
    }

    fn bytes(g: &mut Gen) -> Vec<u8> {
        match u8::arbitrary(g) % 5 {
            0 => (i64::arbitrary(g) % 40).to_string().into_bytes(),
            1 => i64::arbitrary(g).to_string().into_bytes(),
            2 => format!("f{}", u8::arbitrary(g) % 50).into_bytes(),
            3 => vec![b'v'; usize::arbitrary(g) % 100],
            _ => Vec::<u8>::arbitrary(g),
        }
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 17 {
                0..=7 => Op::Set(bytes(g), bytes(g)),
                8 | 9 => Op::Del(bytes(g)),
                10 | 11 => Op::Get(bytes(g)),
                12 | 13 => Op::Len(bytes(g)),
                14 | 15 => Op::Index(usize::arbitrary(g) % 64),
                _ => Op::Clone,
            }
        }
    }

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    /// True if `h` holds exactly `m`.
    fn same(h: &Hash, m: &BTreeMap<Vec<u8>, Vec<u8>>) -> bool {
        let all: BTreeMap<Vec<u8>, Vec<u8>> =
            h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        all == *m
            && h.len() == m.len()
            && m.iter().all(|(f, v)| h.get(f).as_deref() == Some(&v[..]))
    }

    fn run_model(ops: Vec<Op>, limits: HashLimits) -> bool {
        let mut h = Hash::new();
        let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut converted = false;
        let mut snaps: Vec<(Hash, Model)> = Vec::new();
        for op in ops {
            let ok = match op {
                Op::Clone => {
                    if snaps.len() == 3 {
                        snaps.remove(0);
                    }
                    snaps.push((h.clone(), m.clone()));
                    true
                }
                Op::Set(f, v) => {
                    let longer = f.len() > limits.max_value || v.len() > limits.max_value;
                    let new = m.insert(f.clone(), v.clone()).is_none();
                    let ok = h.set(&f, &v, limits) == new;
                    converted |= longer || m.len() > limits.max_entries;
                    ok
                }
                Op::Del(f) => h.remove(&f) == m.remove(&f).is_some(),
                Op::Get(f) => {
                    h.get(&f).map(|b| b.to_vec()) == m.get(&f).cloned()
                        && h.contains(&f) == m.contains_key(&f)
                }
                Op::Len(f) => h.value_len(&f) == m.get(&f).map(|v| v.len()),
                Op::Index(i) => match h.get_index(i) {
                    Some((f, v)) => i < m.len() && m.get(&f[..]) == Some(&v.to_vec()),
                    None => i >= m.len(),
                },
            };
            let enc_ok = h.encoding() == if converted { "hashtable" } else { "listpack" };
            if !ok || !enc_ok || h.len() != m.len() {
                return false;
            }
        }
        let all: BTreeMap<Vec<u8>, Vec<u8>> =
            h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        let scanned: BTreeMap<Vec<u8>, Vec<u8>> = h
            .pairs_in(0..h.len())
            .into_iter()
            .map(|(f, v)| (f.to_vec(), v.to_vec()))
            .collect();
        let rebuilt = Hash::from_pairs(h.iter().collect(), limits);
        all == m
            && scanned == m
            && rebuilt.len() == m.len()
            && snaps.iter().all(|(sh, sm)| same(sh, sm))
    }

    /// Many operations on a hash of thousands of fields (many arena chunks, slot chunks and
    /// index segments, values changing length so chunks are evacuated), with clones taken along
    /// the way: every clone keeps the state it was taken at while the original changes.
    #[test]
    fn model_large_with_clones() {
        let limits = HashLimits::default();
        let mut g = Gen::new(100);
        let mut h = Hash::new();
        let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut snaps = Vec::new();
        for step in 0..60_000u32 {
            let f = format!("field:{}", u32::arbitrary(&mut g) % 12_000).into_bytes();
            match u8::arbitrary(&mut g) % 10 {
                0..=5 => {
                    let v = vec![b'a' + (step % 26) as u8; usize::arbitrary(&mut g) % 40];
                    assert_eq!(h.set(&f, &v, limits), m.insert(f, v).is_none());
                }
                6 | 7 => assert_eq!(h.remove(&f), m.remove(&f).is_some()),
                _ => assert_eq!(h.get(&f).map(|b| b.to_vec()), m.get(&f).cloned()),
            }
            if step % 7_000 == 0 {
                snaps.push((h.clone(), m.clone()));
            }
        }
        assert!(same(&h, &m));
        for (sh, sm) in &snaps {
            assert!(same(sh, sm));
        }
        for i in 0..h.len() {
            let (f, v) = h.get_index(i).unwrap();
            assert_eq!(m.get(&f[..]), Some(&v.to_vec()));
        }
    }

    /// Chunks of `a` shared with `b`: (arena, slots, index) as (total, shared).
    fn shared(a: &Hash, b: &Hash) -> [(usize, usize); 3] {
        let (Repr::Table(x), Repr::Table(y)) = (&a.repr, &b.repr) else {
            panic!("not tables")
        };
        [
            x.arena.shared_chunks(&y.arena),
            x.slots.shared_chunks(&y.slots),
            x.index.shared_segments(&y.index),
        ]
    }

    #[test]
    fn a_clone_shares_chunks_and_a_write_copies_only_what_it_touches() {
        let limits = HashLimits::default();
        let mut live = Hash::new();
        for i in 0..200_000 {
            live.set(
                format!("field:{i}").as_bytes(),
                format!("value:{i}").as_bytes(),
                limits,
            );
        }
        let snapshot = live.clone();
        let all = shared(&live, &snapshot);
        for (total, sh) in all {
            assert!(total > 10, "{all:?}");
            assert_eq!(sh, total);
        }
        // An overwrite in place, a longer value, a new field, a deletion.
        live.set(b"field:100", b"value:999", limits);
        live.set(b"field:150000", b"a longer value than before", limits);
        live.set(b"new field", b"new value", limits);
        assert!(live.remove(b"field:7"));
        let after = shared(&live, &snapshot);
        // Arena: field:100's chunk and the tail; slots: field:100's, field:150000's, field:7's
        // (which the last slot moves into) and the last chunk; index: a segment per field.
        assert!(after[0].1 >= all[0].0 - 2, "{after:?}");
        assert!(after[1].1 >= all[1].0 - 4, "{after:?}");
        assert!(after[2].1 >= all[2].0 - 5, "{after:?}");
        assert_eq!(snapshot.len(), 200_000);
        assert_eq!(
            snapshot.get(b"field:100").as_deref(),
            Some(&b"value:100"[..])
        );
        assert_eq!(snapshot.get(b"field:7").as_deref(), Some(&b"value:7"[..]));
        assert_eq!(snapshot.get(b"new field"), None);
        assert_eq!(live.get(b"field:100").as_deref(), Some(&b"value:999"[..]));
        assert_eq!(live.get(b"field:7"), None);
        assert_eq!(live.len(), 200_000);
    }

    #[test]
    fn model_default_limits() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, HashLimits::default())
        }
        QuickCheck::new()
            .tests(300)
            .rng(Gen::new(300))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_small_limits() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(
                ops,
                HashLimits {
                    max_entries: 4,
                    max_value: 8,
                },
            )
        }
        QuickCheck::new()
            .tests(500)
            .rng(Gen::new(300))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn table_compacts_its_arena_and_keeps_entries() {
        let limits = HashLimits {
            max_entries: 0,
            max_value: 0,
        };
        let mut h = Hash::new();
        for i in 0..5000 {
            h.set(format!("field:{i}").as_bytes(), b"v", limits);
        }
        for round in 0..20 {
            for i in 0..5000 {
                h.set(
                    format!("field:{i}").as_bytes(),
                    format!("value-{round}-{i}").as_bytes(),
                    limits,
                );
            }
        }
        for i in (0..5000).step_by(2) {
            assert!(h.remove(format!("field:{i}").as_bytes()));
        }
        assert_eq!(h.len(), 2500);
        let Repr::Table(t) = &h.repr else {
            panic!("not a table")
        };
        assert!(t.arena.len() <= 4 * 2500 * 32, "arena {}", t.arena.len());
        for i in (1..5000).step_by(2) {
            assert_eq!(
                h.get(format!("field:{i}").as_bytes()).as_deref(),
                Some(format!("value-19-{i}").as_bytes())
            );
        }
    }

    #[test]
    fn from_pairs_picks_encoding_like_redis_loading() {
        let l = HashLimits::default();
        let small = vec![(Bytes::from("a"), Bytes::from("1"))];
        assert_eq!(Hash::from_pairs(small, l).encoding(), "listpack");
        let long = vec![(Bytes::from("a"), Bytes::from(vec![b'x'; 65]))];
        assert_eq!(Hash::from_pairs(long, l).encoding(), "hashtable");
        let many: Vec<(Bytes, Bytes)> = (0..513)
            .map(|i| (Bytes::from(i.to_string()), Bytes::from("v")))
            .collect();
        assert_eq!(Hash::from_pairs(many, l).encoding(), "hashtable");
    }
}
