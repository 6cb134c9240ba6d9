//! Sets, with Redis 7.0's two encodings:
//!
//! - `intset`: a sorted `Vec<i64>` while every member is a canonical integer (Redis's `string2ll`)
//!   and there are at most `set-max-intset-entries` members. SMEMBERS/SSCAN return it sorted.
//! - `hashtable`: [`DenseTable`] — members stored densely in a `Vec<CBytes>` (24 bytes each,
//!   members up to 22 bytes inline, no allocation) plus an open-addressing index of `u32` slots
//!   (linear probing, backward-shift deletion, load ≤ 3/4). Random access by position gives
//!   SPOP/SRANDMEMBER in O(1) and the SCAN guarantee (walk positions from the top down, see
//!   `Db::scan_indices`); deletion is `swap_remove`.
//!
//! Memory per member of a large set is ~24 bytes (entry) + 4–8 bytes (index slots), plus the heap
//! allocation of members longer than 22 bytes. Redis 7.0 needs a dictEntry (24), a bucket pointer
//! (8) and an sds (≥16) per member, ~48–64 bytes.
//!
//! Conversion intset → hashtable happens when a non-integer member is added or the intset would
//! exceed `set-max-intset-entries`; like Redis, a set never converts back (except when a whole new
//! set is built with [`Set::from_members`]).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use bytes::Bytes;

/// Bytes stored inline in a [`CBytes`] without a heap allocation.
pub const CBYTES_INLINE_MAX: usize = 22;

/// A compact immutable byte string: up to [`CBYTES_INLINE_MAX`] bytes inline, longer ones in a
/// boxed slice. 24 bytes (vs 32 for `Bytes`, which can also pin a whole read buffer).
#[derive(Clone)]
pub enum CBytes {
    Inline {
        len: u8,
        buf: [u8; CBYTES_INLINE_MAX],
    },
    Heap(Box<[u8]>),
}

impl CBytes {
    pub fn new(b: &[u8]) -> CBytes {
        if b.len() <= CBYTES_INLINE_MAX {
            let mut buf = [0u8; CBYTES_INLINE_MAX];
            buf[..b.len()].copy_from_slice(b);
            CBytes::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            CBytes::Heap(b.into())
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            CBytes::Inline { len, buf } => &buf[..*len as usize],
            CBytes::Heap(b) => b,
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_slice())
    }

    /// Heap bytes owned beyond the 24-byte value itself.
    pub fn heap_size(&self) -> usize {
        match self {
            CBytes::Inline { .. } => 0,
            CBytes::Heap(b) => b.len().next_multiple_of(16).max(32),
        }
    }
}

impl std::fmt::Debug for CBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

static HASHER: OnceLock<RandomState> = OnceLock::new();

/// The keyed (per-process random) hash of a member.
#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    HASHER.get_or_init(RandomState::new).hash_one(b)
}

const EMPTY: u32 = u32::MAX;
/// Smallest index table.
const TABLE_SLOTS_MIN: usize = 8;

/// An open-addressing index from a key to a position (`u32`) in a dense entries vector owned by
/// the caller. The table never stores keys: `eq`/`hash_of` closures look them up by position.
#[derive(Clone, Default)]
pub struct IdTable {
    slots: Vec<u32>,
}

impl IdTable {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Slot holding a position for which `eq` is true.
    pub fn find(&self, hash: u64, eq: impl Fn(u32) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
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

    pub fn get(&self, slot: usize) -> u32 {
        self.slots[slot]
    }

    pub fn set(&mut self, slot: usize, id: u32) {
        self.slots[slot] = id;
    }

    /// Insert position `id` (not present) for a key hashing to `hash`. `len` is the number of
    /// positions after the insertion; `hash_of` rehashes existing positions when growing.
    pub fn insert(&mut self, hash: u64, id: u32, len: usize, hash_of: impl Fn(u32) -> u64) {
        if self.slots.is_empty() || len * 4 > self.slots.len() * 3 {
            let want = (len * 2).next_power_of_two().max(TABLE_SLOTS_MIN);
            self.rebuild(want, hash_of);
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = id;
    }

    /// Remove the position in `slot` (backward-shift deletion keeps probe chains intact).
    pub fn remove_slot(&mut self, slot: usize, hash_of: impl Fn(u32) -> u64) {
        let mask = self.mask();
        let mut hole = slot;
        let mut i = (slot + 1) & mask;
        loop {
            let id = self.slots[i];
            if id == EMPTY {
                break;
            }
            let home = hash_of(id) as usize & mask;
            // Move `id` into the hole if its home is not cyclically in (hole, i].
            let dist_i = i.wrapping_sub(home) & mask;
            let dist_hole = i.wrapping_sub(hole) & mask;
            if dist_i >= dist_hole {
                self.slots[hole] = id;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = EMPTY;
    }

    /// Shrink when the table is mostly empty (`len` positions remain).
    pub fn maybe_shrink(&mut self, len: usize, hash_of: impl Fn(u32) -> u64) {
        if self.slots.len() > TABLE_SLOTS_MIN && len * 8 < self.slots.len() {
            let want = (len * 2).next_power_of_two().max(TABLE_SLOTS_MIN);
            self.rebuild(want, hash_of);
        }
    }

    fn rebuild(&mut self, n: usize, hash_of: impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        let mask = n - 1;
        for id in old.into_iter().filter(|&x| x != EMPTY) {
            let mut i = hash_of(id) as usize & mask;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = id;
        }
    }

    pub fn mem_usage(&self) -> usize {
        self.slots.capacity() * 4
    }
}

/// A hash set of byte strings with O(1) positional access (Redis's `hashtable` set encoding).
#[derive(Clone, Default)]
pub struct DenseTable {
    entries: Vec<CBytes>,
    table: IdTable,
}

impl DenseTable {
    fn with_capacity(n: usize) -> DenseTable {
        DenseTable {
            entries: Vec::with_capacity(n),
            table: IdTable::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn slot_of(&self, m: &[u8]) -> Option<usize> {
        let e = &self.entries;
        self.table
            .find(hash_bytes(m), |id| e[id as usize].as_slice() == m)
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.slot_of(m).is_some()
    }

    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.contains(m) {
            return false;
        }
        self.insert_new(m);
        true
    }

    /// Insert a member known to be absent.
    fn insert_new(&mut self, m: &[u8]) {
        let id = self.entries.len() as u32;
        self.entries.push(CBytes::new(m));
        let e = &self.entries;
        self.table.insert(hash_bytes(m), id, e.len(), |i| {
            hash_bytes(e[i as usize].as_slice())
        });
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.slot_of(m) {
            Some(slot) => {
                let id = self.table.get(slot);
                self.remove_at(slot, id);
                true
            }
            None => false,
        }
    }

    /// Remove the member at position `pos`, returning it.
    pub fn remove_index(&mut self, pos: usize) -> CBytes {
        let m = self.entries[pos].clone();
        let slot = self
            .table
            .find(hash_bytes(m.as_slice()), |id| id as usize == pos);
        if let Some(slot) = slot {
            self.remove_at(slot, pos as u32);
        }
        m
    }

    fn remove_at(&mut self, slot: usize, id: u32) {
        let e = &self.entries;
        self.table
            .remove_slot(slot, |i| hash_bytes(e[i as usize].as_slice()));
        let last = (self.entries.len() - 1) as u32;
        self.entries.swap_remove(id as usize);
        if id != last {
            let moved = self.entries[id as usize].as_slice();
            if let Some(s) = self.table.find(hash_bytes(moved), |i| i == last) {
                self.table.set(s, id);
            }
        }
        let e = &self.entries;
        self.table
            .maybe_shrink(e.len(), |i| hash_bytes(e[i as usize].as_slice()));
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    pub fn get_index(&self, pos: usize) -> Option<&[u8]> {
        self.entries.get(pos).map(CBytes::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries.iter().map(CBytes::as_slice)
    }

    fn mem_usage(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<CBytes>()
            + self.entries.iter().map(CBytes::heap_size).sum::<usize>()
            + self.table.mem_usage()
    }
}

/// Thresholds that decide a set's encoding (from the config).
#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    /// `set-max-intset-entries`.
    pub max_intset_entries: usize,
}

impl Default for SetLimits {
    fn default() -> Self {
        SetLimits {
            max_intset_entries: 512,
        }
    }
}

#[derive(Clone)]
enum Repr {
    Ints(Vec<i64>),
    Table(DenseTable),
}

/// A member borrowed from a set: integers of an intset are not stored as strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Member<'_> {
    pub fn to_bytes(self) -> Bytes {
        match self {
            Member::Int(i) => Bytes::from(i.to_string()),
            Member::Str(s) => Bytes::copy_from_slice(s),
        }
    }
}

#[derive(Clone)]
pub struct Set {
    repr: Repr,
}

impl Default for Set {
    fn default() -> Self {
        Set::new()
    }
}

/// Redis's `string2ll` (canonical decimal integers only).
pub fn as_int(m: &[u8]) -> Option<i64> {
    crate::resp::parse_i64(m)
}

impl Set {
    /// An empty set (intset encoding, as Redis's `createIntsetObject`).
    pub fn new() -> Self {
        Set {
            repr: Repr::Ints(Vec::new()),
        }
    }

    /// An empty set with the encoding Redis's `setTypeCreate(first)` picks for its first member.
    pub fn for_first_member(first: &[u8]) -> Self {
        if as_int(first).is_some() {
            Set::new()
        } else {
            Set {
                repr: Repr::Table(DenseTable::default()),
            }
        }
    }

    /// Build a set from members (duplicates ignored) with the encoding Redis would end up with
    /// after adding them to an empty set one by one.
    pub fn from_members(members: Vec<Bytes>, limits: SetLimits) -> Set {
        let ints: Option<Vec<i64>> = if members.len() <= limits.max_intset_entries * 2 + 16 {
            members.iter().map(|m| as_int(m)).collect()
        } else {
            None
        };
        if let Some(mut v) = ints {
            v.sort_unstable();
            v.dedup();
            if v.len() <= limits.max_intset_entries {
                return Set {
                    repr: Repr::Ints(v),
                };
            }
        }
        let mut t = DenseTable::with_capacity(members.len());
        for m in &members {
            t.insert(m);
        }
        Set {
            repr: Repr::Table(t),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.capacity() * 8,
            Repr::Table(t) => t.mem_usage(),
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => as_int(m).is_some_and(|i| v.binary_search(&i).is_ok()),
            Repr::Table(t) => t.contains(m),
        }
    }

    pub fn contains_member(&self, m: Member) -> bool {
        match (m, &self.repr) {
            (Member::Int(i), Repr::Ints(v)) => v.binary_search(&i).is_ok(),
            (Member::Str(s), _) => self.contains(s),
            (Member::Int(i), Repr::Table(t)) => t.contains(i.to_string().as_bytes()),
        }
    }

    fn convert_to_table(&mut self, extra: usize) {
        if let Repr::Ints(v) = &self.repr {
            let mut t = DenseTable::with_capacity(v.len() + extra);
            for i in v {
                t.insert_new(i.to_string().as_bytes());
            }
            self.repr = Repr::Table(t);
        }
    }

    /// Add `m`; true if it was not there.
    pub fn insert(&mut self, m: &[u8], limits: SetLimits) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            match as_int(m) {
                Some(i) => match v.binary_search(&i) {
                    Ok(_) => return false,
                    Err(pos) => {
                        if v.len() < limits.max_intset_entries {
                            v.insert(pos, i);
                            return true;
                        }
                        self.convert_to_table(1);
                    }
                },
                None => self.convert_to_table(1),
            }
        }
        match &mut self.repr {
            Repr::Table(t) => t.insert(m),
            Repr::Ints(_) => false,
        }
    }

    /// Remove `m`; true if it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match as_int(m).map(|i| v.binary_search(&i)) {
                Some(Ok(pos)) => {
                    v.remove(pos);
                    true
                }
                _ => false,
            },
            Repr::Table(t) => t.remove(m),
        }
    }

    /// The member at position `pos` (0..len): sorted order for an intset, storage order for a
    /// hashtable.
    pub fn get_index(&self, pos: usize) -> Option<Member<'_>> {
        match &self.repr {
            Repr::Ints(v) => v.get(pos).map(|&i| Member::Int(i)),
            Repr::Table(t) => t.get_index(pos).map(Member::Str),
        }
    }

    /// Remove and return the member at position `pos`.
    pub fn remove_index(&mut self, pos: usize) -> Option<Bytes> {
        if pos >= self.len() {
            return None;
        }
        Some(match &mut self.repr {
            Repr::Ints(v) => Bytes::from(v.remove(pos).to_string()),
            Repr::Table(t) => t.remove_index(pos).to_bytes(),
        })
    }

    /// Members in storage order (sorted for an intset).
    pub fn members(&self) -> Box<dyn Iterator<Item = Member<'_>> + '_> {
        match &self.repr {
            Repr::Ints(v) => Box::new(v.iter().map(|&i| Member::Int(i))),
            Repr::Table(t) => Box::new(t.iter().map(Member::Str)),
        }
    }

    /// Members as owned byte strings, in storage order (sorted for an intset).
    pub fn iter(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.members().map(Member::to_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, Arbitrary, Gen};
    use std::collections::BTreeSet;

    #[test]
    fn cbytes_is_small() {
        assert_eq!(std::mem::size_of::<CBytes>(), 24);
        let long = vec![7u8; 100];
        assert_eq!(CBytes::new(&long).as_slice(), &long[..]);
        assert_eq!(CBytes::new(b"").as_slice(), b"");
        assert_eq!(CBytes::new(&[1; 22]).as_slice(), &[1; 22]);
    }

    #[test]
    fn encodings_follow_limits() {
        let lim = SetLimits {
            max_intset_entries: 3,
        };
        let mut s = Set::new();
        for m in ["3", "1", "2"] {
            assert!(s.insert(m.as_bytes(), lim));
        }
        assert_eq!(s.encoding(), "intset");
        let v: Vec<Bytes> = s.iter().collect();
        assert_eq!(v, vec!["1", "2", "3"]);
        assert!(!s.insert(b"2", lim));
        assert!(s.insert(b"4", lim));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"4") && s.contains(b"1"));
        assert!(s.remove(b"1") && s.remove(b"2") && s.remove(b"3"));
        assert_eq!(s.encoding(), "hashtable");
        let mut s = Set::new();
        s.insert(b"01", lim);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(
            Set::from_members(vec!["1".into(), "-5".into()], lim).encoding(),
            "intset"
        );
        assert_eq!(
            Set::from_members(vec!["1".into(), "x".into()], lim).encoding(),
            "hashtable"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u16),
        AddStr(u8),
        Rem(u16),
        RemStr(u8),
        PopAt(u16),
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 5 {
                0 => Op::Add(u16::arbitrary(g) % 300),
                1 => Op::AddStr(u8::arbitrary(g) % 64),
                2 => Op::Rem(u16::arbitrary(g) % 300),
                3 => Op::RemStr(u8::arbitrary(g) % 64),
                _ => Op::PopAt(u16::arbitrary(g)),
            }
        }
    }

    fn key_str(i: u8) -> Vec<u8> {
        // Mix inline and heap members.
        let mut v = format!("m{i}").into_bytes();
        if i.is_multiple_of(3) {
            v.extend_from_slice(&[b'x'; 30]);
        }
        v
    }

    quickcheck! {
        fn model(ops: Vec<Op>, lim: u8) -> bool {
            let lim = SetLimits { max_intset_entries: lim as usize % 40 };
            let mut s = Set::new();
            let mut m: BTreeSet<Vec<u8>> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Add(i) => {
                        let k = i.to_string().into_bytes();
                        if s.insert(&k, lim) != m.insert(k) { return false; }
                    }
                    Op::AddStr(i) => {
                        let k = key_str(i);
                        if s.insert(&k, lim) != m.insert(k) { return false; }
                    }
                    Op::Rem(i) => {
                        let k = i.to_string().into_bytes();
                        if s.remove(&k) != m.remove(&k) { return false; }
                    }
                    Op::RemStr(i) => {
                        let k = key_str(i);
                        if s.remove(&k) != m.remove(&k) { return false; }
                    }
                    Op::PopAt(i) => {
                        if !m.is_empty() {
                            let pos = i as usize % s.len();
                            let Some(b) = s.remove_index(pos) else { return false };
                            if !m.remove(&b[..]) { return false; }
                        }
                    }
                }
                if s.len() != m.len() { return false; }
            }
            for k in &m {
                if !s.contains(k) { return false; }
            }
            let got: BTreeSet<Vec<u8>> = s.iter().map(|b| b.to_vec()).collect();
            got == m
        }
    }
}
