//! Sets, with Redis 7.0's two encodings:
//!
//! - `intset`: a sorted `Vec<i64>` while every member is a canonical integer (Redis's `string2ll`)
//!   and there are at most `set-max-intset-entries` members. SMEMBERS/SSCAN return it sorted.
//! - `hashtable`: [`DenseTable`] — members stored densely in chunks of [`CBytes`] (24 bytes each,
//!   members up to 22 bytes inline, no allocation) plus a hash index of `u32` positions in
//!   segments (`chunked::SegIndex`), all copy-on-write per chunk. Random access by position gives
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

use crate::types::chunked::{ChunkVec, SegIndex};

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

/// Members by position: 1,024 (24 KB) a chunk.
type Entries = ChunkVec<CBytes, 10>;

/// A hash set of byte strings with O(1) positional access (Redis's `hashtable` set encoding).
/// Both parts are copy-on-write in chunks ([`crate::types::chunked`]): a clone (a compaction's)
/// copies chunk pointers, and a write then copies at most one entry chunk or two and one index
/// segment.
#[derive(Clone, Default)]
pub struct DenseTable {
    entries: Entries,
    table: SegIndex,
}

impl DenseTable {
    fn with_capacity(n: usize) -> DenseTable {
        DenseTable {
            entries: Entries::with_capacity(n),
            table: SegIndex::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn id_of(&self, m: &[u8]) -> Option<u32> {
        let e = &self.entries;
        self.table
            .find(hash_bytes(m), |id| e[id as usize].as_slice() == m)
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.id_of(m).is_some()
    }

    pub fn insert(&mut self, m: &[u8]) -> bool {
        let h = hash_bytes(m);
        let e = &self.entries;
        if self
            .table
            .find(h, |id| e[id as usize].as_slice() == m)
            .is_some()
        {
            return false;
        }
        self.insert_new_h(m, h);
        true
    }

    /// Insert a member known to be absent.
    fn insert_new(&mut self, m: &[u8]) {
        self.insert_new_h(m, hash_bytes(m))
    }

    /// [`DenseTable::insert_new`] with the member's hash `h` already computed.
    fn insert_new_h(&mut self, m: &[u8], h: u64) {
        let id = self.entries.len() as u32;
        self.entries.push(CBytes::new(m));
        let e = &self.entries;
        self.table
            .insert(h, id, |i| hash_bytes(e[i as usize].as_slice()));
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        let e = &self.entries;
        let removed = self.table.remove(
            hash_bytes(m),
            |id| e[id as usize].as_slice() == m,
            |i| hash_bytes(e[i as usize].as_slice()),
        );
        match removed {
            Some(id) => {
                self.remove_entry(id);
                true
            }
            None => false,
        }
    }

    /// Remove the member at position `pos`, returning it.
    pub fn remove_index(&mut self, pos: usize) -> CBytes {
        let m = self.entries[pos].clone();
        let e = &self.entries;
        if let Some(id) = self.table.remove(
            hash_bytes(m.as_slice()),
            |id| id as usize == pos,
            |i| hash_bytes(e[i as usize].as_slice()),
        ) {
            self.remove_entry(id);
        }
        m
    }

    /// Drop entry `id` (already out of the index): the last entry moves into its place.
    fn remove_entry(&mut self, id: u32) {
        let last = (self.entries.len() - 1) as u32;
        if id != last {
            let moved = hash_bytes(self.entries[last as usize].as_slice());
            if let Some(s) = self.table.find_mut(moved, |i| i == last) {
                *s = id;
            }
        }
        self.entries.swap_remove(id as usize);
    }

    pub fn get_index(&self, pos: usize) -> Option<&[u8]> {
        self.entries.get(pos).map(CBytes::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries.iter().map(CBytes::as_slice)
    }

    fn mem_usage(&self) -> usize {
        self.entries.mem_usage()
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
        /// Take a snapshot (a clone) that must keep its state while the set changes.
        Clone,
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 11 {
                0 | 1 => Op::Add(u16::arbitrary(g) % 300),
                2 | 3 => Op::AddStr(u8::arbitrary(g) % 64),
                4 | 5 => Op::Rem(u16::arbitrary(g) % 300),
                6 | 7 => Op::RemStr(u8::arbitrary(g) % 64),
                8 | 9 => Op::PopAt(u16::arbitrary(g)),
                _ => Op::Clone,
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
            let mut snaps: Vec<(Set, BTreeSet<Vec<u8>>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Clone => {
                        if snaps.len() == 3 {
                            snaps.remove(0);
                        }
                        snaps.push((s.clone(), m.clone()));
                    }
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
            got == m && snaps.iter().all(|(ss, sm)| same(ss, sm))
        }
    }

    /// True if `s` holds exactly `m`.
    fn same(s: &Set, m: &BTreeSet<Vec<u8>>) -> bool {
        let got: BTreeSet<Vec<u8>> = s.iter().map(|b| b.to_vec()).collect();
        got == *m && s.len() == m.len() && m.iter().all(|k| s.contains(k))
    }

    /// Many operations on a set of thousands of members (many entry chunks and index segments),
    /// with clones taken along the way: every clone keeps the state it was taken at.
    #[test]
    fn model_large_with_clones() {
        let lim = SetLimits::default();
        let mut g = Gen::new(100);
        let mut s = Set::new();
        let mut m: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut snaps = Vec::new();
        for step in 0..60_000u32 {
            let k = key_str((u16::arbitrary(&mut g) % 250) as u8);
            let k = [k, (u32::arbitrary(&mut g) % 50).to_string().into_bytes()].concat();
            match u8::arbitrary(&mut g) % 10 {
                0..=5 => assert_eq!(s.insert(&k, lim), m.insert(k)),
                6 | 7 => assert_eq!(s.remove(&k), m.remove(&k)),
                8 => {
                    if !m.is_empty() {
                        let pos = u32::arbitrary(&mut g) as usize % s.len();
                        let b = s.remove_index(pos).unwrap();
                        assert!(m.remove(&b[..]));
                    }
                }
                _ => assert_eq!(s.contains(&k), m.contains(&k)),
            }
            if step % 7_000 == 0 {
                snaps.push((s.clone(), m.clone()));
            }
        }
        assert!(same(&s, &m));
        for (ss, sm) in &snaps {
            assert!(same(ss, sm));
        }
    }

    #[test]
    fn a_clone_shares_chunks_and_a_write_copies_only_what_it_touches() {
        let lim = SetLimits::default();
        let mut live = Set::new();
        for i in 0..200_000 {
            live.insert(format!("member:{i}").as_bytes(), lim);
        }
        let snapshot = live.clone();
        let shared = |a: &Set, b: &Set| {
            let (Repr::Table(x), Repr::Table(y)) = (&a.repr, &b.repr) else {
                panic!("not tables")
            };
            [
                x.entries.shared_chunks(&y.entries),
                x.table.shared_segments(&y.table),
            ]
        };
        let all = shared(&live, &snapshot);
        for (total, sh) in all {
            assert!(total > 10, "{all:?}");
            assert_eq!(sh, total);
        }
        assert!(live.insert(b"new member", lim));
        assert!(live.remove(b"member:5"));
        assert!(live.remove_index(100_000).is_some());
        let after = shared(&live, &snapshot);
        // Entries: the last chunk, member:5's and position 100,000's; index: a segment per
        // member added, removed or moved.
        assert!(after[0].1 >= all[0].0 - 3, "{after:?}");
        assert!(after[1].1 >= all[1].0 - 5, "{after:?}");
        assert_eq!(snapshot.len(), 200_000);
        assert!(snapshot.contains(b"member:5") && !snapshot.contains(b"new member"));
        assert!(!live.contains(b"member:5") && live.contains(b"new member"));
        assert_eq!(live.len(), 199_999);
    }
}
