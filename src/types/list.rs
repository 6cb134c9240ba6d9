//! Lists: a deque of packed nodes, in the spirit of Redis's quicklist of listpacks.
//!
//! Every node is one contiguous byte buffer of encoded elements (see [`enc`]): small integers take
//! 1 byte, integers up to 24 bits 4, short strings 1 byte of header plus their bytes. Unlike a
//! listpack there is no back-length per entry; walking a node backwards decodes its offsets
//! forwards, which is cheap because a node holds at most [`NODE_ENTRIES_MAX`] entries.
//!
//! Node size follows `list-max-listpack-size` as Redis's quicklist does (negative = byte limit
//! 4/8/16/32/64 KB, positive = entry count with an 8 KB safety limit), fixed when the list is
//! created. Redis 7.0 reports `quicklist` for every list, so [`List::encoding`] does too.

use std::collections::VecDeque;

use bytes::Bytes;

/// Entries per node at most, whatever the fill: bounds the cost of backward walks in a node.
pub const NODE_ENTRIES_MAX: usize = 512;
/// Redis's `SIZE_SAFETY_LIMIT` for count-based fill, in bytes.
const NODE_SAFETY_BYTES: usize = 8192;
/// Byte limits for fill -1..-5.
const NODE_BYTES_BY_FILL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Redis's listpack header (6) + end byte (1), counted so nodes split where Redis's do.
const NODE_HEADER_BYTES: usize = 7;
/// Default `list-max-listpack-size`.
pub const DEFAULT_FILL: i64 = -2;

/// Element encoding shared by lists and hashes. Canonical: equal byte strings always encode to
/// equal bytes, so comparisons can work on the encoded form.
pub(crate) mod enc {
    use bytes::Bytes;

    /// Header 0x00..=0x7F: the unsigned integer itself.
    const UINT7_MAX: u8 = 0x7F;
    /// Header 0x80..=0xBF: a string of length 0..=63 follows.
    const STR6: u8 = 0x80;
    const STR6_LEN_MAX: usize = 63;
    /// Header 0xC0..=0xDF: 13-bit signed integer, low 8 bits in the next byte.
    const INT13: u8 = 0xC0;
    /// 0xE0..=0xE3: signed integer in 2, 3, 4, 8 bytes little endian.
    const INT16: u8 = 0xE0;
    const INT24: u8 = 0xE1;
    const INT32: u8 = 0xE2;
    const INT64: u8 = 0xE3;
    /// 0xF0: LEB128 length, then the string.
    const STRVAR: u8 = 0xF0;

    pub enum Elem<'a> {
        Int(i64),
        Str(&'a [u8]),
    }

    impl Elem<'_> {
        pub fn to_bytes(&self) -> Bytes {
            match self {
                Elem::Int(v) => Bytes::from(v.to_string()),
                Elem::Str(s) => Bytes::copy_from_slice(s),
            }
        }
        pub fn byte_len(&self) -> usize {
            match self {
                Elem::Int(v) => int_digits(*v),
                Elem::Str(s) => s.len(),
            }
        }
    }

    fn int_digits(v: i64) -> usize {
        let mut n = if v < 0 { 2 } else { 1 };
        let mut u = v.unsigned_abs();
        while u >= 10 {
            u /= 10;
            n += 1;
        }
        n
    }

    /// The integer a string stands for, if it is an integer's canonical decimal form.
    fn as_int(s: &[u8]) -> Option<i64> {
        if s.is_empty() || s.len() > 20 {
            return None;
        }
        crate::resp::parse_i64(s)
    }

    /// Append the encoding of `s` to `out`.
    pub fn encode_into(s: &[u8], out: &mut Vec<u8>) {
        if let Some(v) = as_int(s) {
            if (0..=UINT7_MAX as i64).contains(&v) {
                out.push(v as u8);
            } else if (-4096..4096).contains(&v) {
                let u = (v as u16) & 0x1FFF;
                out.push(INT13 | (u >> 8) as u8);
                out.push(u as u8);
            } else if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
                out.push(INT16);
                out.extend_from_slice(&(v as i16).to_le_bytes());
            } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                out.push(INT24);
                out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
                out.push(INT32);
                out.extend_from_slice(&(v as i32).to_le_bytes());
            } else {
                out.push(INT64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            return;
        }
        if s.len() <= STR6_LEN_MAX {
            out.push(STR6 | s.len() as u8);
        } else {
            out.push(STRVAR);
            let mut n = s.len();
            loop {
                let b = (n & 0x7F) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        out.extend_from_slice(s);
    }

    pub fn encode(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(s.len() + 2);
        encode_into(s, &mut v);
        v
    }

    /// Size in bytes of the entry starting at `buf[off]` (buffers are only ever produced by
    /// `encode_into`, so they are well formed).
    #[inline]
    pub fn entry_len(buf: &[u8], off: usize) -> usize {
        let h = buf[off];
        match h {
            0..=UINT7_MAX => 1,
            0x80..=0xBF => 1 + (h - STR6) as usize,
            0xC0..=0xDF => 2,
            INT16 => 3,
            INT24 => 4,
            INT32 => 5,
            INT64 => 9,
            _ => {
                let (n, used) = varint(&buf[off + 1..]);
                1 + used + n
            }
        }
    }

    fn varint(b: &[u8]) -> (usize, usize) {
        let mut n = 0usize;
        let mut shift = 0;
        for (i, &c) in b.iter().enumerate() {
            n |= ((c & 0x7F) as usize) << shift;
            if c & 0x80 == 0 {
                return (n, i + 1);
            }
            shift += 7;
        }
        (n, b.len())
    }

    /// Decode the entry at `buf[off]`; returns it and the offset of the next entry.
    #[inline]
    pub fn decode(buf: &[u8], off: usize) -> (Elem<'_>, usize) {
        let h = buf[off];
        match h {
            0..=UINT7_MAX => (Elem::Int(h as i64), off + 1),
            0x80..=0xBF => {
                let n = (h - STR6) as usize;
                (Elem::Str(&buf[off + 1..off + 1 + n]), off + 1 + n)
            }
            0xC0..=0xDF => {
                let u = (((h & 0x1F) as u16) << 8) | buf[off + 1] as u16;
                // sign-extend 13 bits
                let v = ((u << 3) as i16) >> 3;
                (Elem::Int(v as i64), off + 2)
            }
            INT16 => {
                let v = i16::from_le_bytes([buf[off + 1], buf[off + 2]]);
                (Elem::Int(v as i64), off + 3)
            }
            INT24 => {
                let v = i32::from_le_bytes([0, buf[off + 1], buf[off + 2], buf[off + 3]]) >> 8;
                (Elem::Int(v as i64), off + 4)
            }
            INT32 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(&buf[off + 1..off + 5]);
                (Elem::Int(i32::from_le_bytes(a) as i64), off + 5)
            }
            INT64 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&buf[off + 1..off + 9]);
                (Elem::Int(i64::from_le_bytes(a)), off + 9)
            }
            _ => {
                let (n, used) = varint(&buf[off + 1..]);
                let start = off + 1 + used;
                (Elem::Str(&buf[start..start + n]), start + n)
            }
        }
    }

    pub fn decode_bytes(buf: &[u8], off: usize) -> (Bytes, usize) {
        let (e, next) = decode(buf, off);
        (e.to_bytes(), next)
    }
}

#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

impl Node {
    fn offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.count as usize + 1);
        let mut off = 0;
        while off < self.buf.len() {
            v.push(off);
            off += enc::entry_len(&self.buf, off);
        }
        v
    }

    /// Byte offset of entry `i` (or the end when `i == count`).
    fn offset_of(&self, i: usize) -> usize {
        let mut off = 0;
        for _ in 0..i {
            off += enc::entry_len(&self.buf, off);
        }
        off
    }

    fn last_offset(&self) -> usize {
        let mut off = 0;
        let mut last = 0;
        while off < self.buf.len() {
            last = off;
            off += enc::entry_len(&self.buf, off);
        }
        last
    }

    fn from_encoded(entries: &[&[u8]]) -> Node {
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.len()).sum());
        for e in entries {
            buf.extend_from_slice(e);
        }
        Node {
            buf,
            count: entries.len() as u32,
        }
    }
}

/// Iterator over a list's elements, front to back.
pub struct Iter<'a> {
    list: &'a List,
    node: usize,
    off: usize,
}

impl Iterator for Iter<'_> {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        loop {
            let n = self.list.nodes.get(self.node)?;
            if self.off < n.buf.len() {
                let (b, next) = enc::decode_bytes(&n.buf, self.off);
                self.off = next;
                return Some(b);
            }
            self.node += 1;
            self.off = 0;
        }
    }
}

#[derive(Clone)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
    fill: i64,
}

impl Default for List {
    fn default() -> Self {
        List::with_fill(DEFAULT_FILL)
    }
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list whose nodes follow `list-max-listpack-size = fill`.
    pub fn with_fill(fill: i64) -> Self {
        List {
            nodes: VecDeque::new(),
            len: 0,
            fill,
        }
    }

    /// A list of `items` in order (snapshot loading), default node size.
    pub fn from_items(items: Vec<Bytes>) -> Self {
        let mut l = List::new();
        for i in items {
            l.push_back(&i);
        }
        l
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Redis 7.0 answers `quicklist` for every list (the `listpack` list encoding is 7.2's).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn mem_usage(&self) -> usize {
        std::mem::size_of::<List>()
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }

    /// Elements front to back.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            node: 0,
            off: 0,
        }
    }

    /// Number of internal nodes (tests and introspection).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn fits(&self, bytes: usize, count: usize, add: usize) -> bool {
        if count == 0 {
            return true;
        }
        if count >= NODE_ENTRIES_MAX {
            return false;
        }
        let total = bytes + add + NODE_HEADER_BYTES;
        if self.fill < 0 {
            let i = (self.fill.unsigned_abs() as usize).min(NODE_BYTES_BY_FILL.len()) - 1;
            total <= NODE_BYTES_BY_FILL[i]
        } else {
            (count as i64) < self.fill.max(1) && total <= NODE_SAFETY_BYTES
        }
    }

    pub fn push_back(&mut self, v: &[u8]) {
        let e = enc::encode(v);
        let need_new = match self.nodes.back() {
            Some(n) => !self.fits(n.buf.len(), n.count as usize, e.len()),
            None => true,
        };
        if need_new {
            if let Some(n) = self.nodes.back_mut() {
                n.buf.shrink_to_fit();
            }
            self.nodes.push_back(Node::default());
        }
        if let Some(n) = self.nodes.back_mut() {
            n.buf.extend_from_slice(&e);
            n.count += 1;
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, v: &[u8]) {
        let e = enc::encode(v);
        let need_new = match self.nodes.front() {
            Some(n) => !self.fits(n.buf.len(), n.count as usize, e.len()),
            None => true,
        };
        if need_new {
            if let Some(n) = self.nodes.front_mut() {
                n.buf.shrink_to_fit();
            }
            self.nodes.push_front(Node::default());
        }
        if let Some(n) = self.nodes.front_mut() {
            n.buf.splice(0..0, e);
            n.count += 1;
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        let n = self.nodes.front_mut()?;
        let (b, next) = enc::decode_bytes(&n.buf, 0);
        n.buf.drain(..next);
        n.count -= 1;
        if n.count == 0 {
            self.nodes.pop_front();
        }
        self.len -= 1;
        Some(b)
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        let n = self.nodes.back_mut()?;
        let last = n.last_offset();
        let (b, _) = enc::decode_bytes(&n.buf, last);
        n.buf.truncate(last);
        n.count -= 1;
        if n.count == 0 {
            self.nodes.pop_back();
        }
        self.len -= 1;
        Some(b)
    }

    /// Node index and index inside the node of element `i` (< len).
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut rem = i;
            for (ni, n) in self.nodes.iter().enumerate() {
                if rem < n.count as usize {
                    return (ni, rem);
                }
                rem -= n.count as usize;
            }
        } else {
            let mut rem = self.len - 1 - i; // distance from the end
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if rem < n.count as usize {
                    return (ni, n.count as usize - 1 - rem);
                }
                rem -= n.count as usize;
            }
        }
        (self.nodes.len().saturating_sub(1), 0)
    }

    /// Element at index `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<Bytes> {
        if i >= self.len {
            return None;
        }
        let (ni, ei) = self.locate(i);
        let n = &self.nodes[ni];
        Some(enc::decode_bytes(&n.buf, n.offset_of(ei)).0)
    }

    /// Replace element `i`; false if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len {
            return false;
        }
        let (ni, ei) = self.locate(i);
        let e = enc::encode(v);
        let n = &mut self.nodes[ni];
        let off = n.offset_of(ei);
        let end = off + enc::entry_len(&n.buf, off);
        n.buf.splice(off..end, e);
        self.split_if_needed(ni);
        true
    }

    /// Split node `ni` until every part fits.
    fn split_if_needed(&mut self, ni: usize) {
        let n = &self.nodes[ni];
        if n.count <= 1 || self.fits(n.buf.len(), n.count as usize - 1, 0) {
            return;
        }
        let offs = n.offsets();
        let mut parts: Vec<Node> = Vec::new();
        let mut cur: Vec<&[u8]> = Vec::new();
        let mut cur_bytes = 0;
        for (k, &o) in offs.iter().enumerate() {
            let end = offs.get(k + 1).copied().unwrap_or(n.buf.len());
            let e = &n.buf[o..end];
            if !self.fits(cur_bytes, cur.len(), e.len()) {
                parts.push(Node::from_encoded(&cur));
                cur.clear();
                cur_bytes = 0;
            }
            cur_bytes += e.len();
            cur.push(e);
        }
        if !cur.is_empty() {
            parts.push(Node::from_encoded(&cur));
        }
        self.nodes.remove(ni);
        for (k, p) in parts.into_iter().enumerate() {
            self.nodes.insert(ni + k, p);
        }
    }

    /// Merge adjacent nodes that fit together, drop empty ones (after bulk removals).
    fn compact_nodes(&mut self) {
        self.nodes.retain(|n| n.count > 0);
        let mut i = 0;
        while i + 1 < self.nodes.len() {
            let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
            let merged_count = a.count as usize + b.count as usize;
            let ok = merged_count <= NODE_ENTRIES_MAX
                && self.fits(a.buf.len(), merged_count - 1, b.buf.len());
            if ok {
                if let Some(b) = self.nodes.remove(i + 1) {
                    let a = &mut self.nodes[i];
                    a.buf.extend_from_slice(&b.buf);
                    a.count += b.count;
                }
            } else {
                i += 1;
            }
        }
        for n in self.nodes.iter_mut() {
            if n.buf.capacity() > n.buf.len() + n.buf.len() / 4 + 16 {
                n.buf.shrink_to_fit();
            }
        }
    }

    /// Elements `start..=end` (`end` is clamped to the last index).
    pub fn range(&self, start: usize, end: usize) -> Vec<Bytes> {
        if start > end || start >= self.len {
            return vec![];
        }
        let end = end.min(self.len - 1);
        let mut out = Vec::with_capacity(end - start + 1);
        let (ni, ei) = self.locate(start);
        let mut it = Iter {
            list: self,
            node: ni,
            off: self.nodes[ni].offset_of(ei),
        };
        for _ in start..=end {
            match it.next() {
                Some(b) => out.push(b),
                None => break,
            }
        }
        out
    }

    /// Visit elements `start..=end` (`end` clamped to the last index) without copying them.
    pub fn for_each_in_range(&self, start: usize, end: usize, mut f: impl FnMut(enc::Elem<'_>)) {
        if start > end || start >= self.len {
            return;
        }
        let end = end.min(self.len - 1);
        let (mut ni, ei) = self.locate(start);
        let mut off = self.nodes[ni].offset_of(ei);
        let mut left = end - start + 1;
        while left > 0 {
            let Some(n) = self.nodes.get(ni) else { return };
            if off >= n.buf.len() {
                ni += 1;
                off = 0;
                continue;
            }
            let (e, next) = enc::decode(&n.buf, off);
            f(e);
            off = next;
            left -= 1;
        }
    }

    /// Insert `v` before/after the first element equal to `pivot`; returns false if none.
    pub fn insert(&mut self, pivot: &[u8], v: &[u8], after: bool) -> bool {
        let p = enc::encode(pivot);
        for ni in 0..self.nodes.len() {
            let n = &self.nodes[ni];
            let mut off = 0;
            while off < n.buf.len() {
                let l = enc::entry_len(&n.buf, off);
                if n.buf[off..off + l] == p[..] {
                    let at = if after { off + l } else { off };
                    let e = enc::encode(v);
                    let n = &mut self.nodes[ni];
                    n.buf.splice(at..at, e);
                    n.count += 1;
                    self.len += 1;
                    self.split_if_needed(ni);
                    return true;
                }
                off += l;
            }
        }
        false
    }

    /// LREM: remove up to `count` elements equal to `v` (0 = all, negative = from the tail).
    /// Returns how many were removed.
    pub fn remove(&mut self, v: &[u8], count: i64) -> usize {
        let p = enc::encode(v);
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs().min(usize::MAX as u64) as usize
        };
        let from_tail = count < 0;
        let mut removed = 0;
        let order: Vec<usize> = if from_tail {
            (0..self.nodes.len()).rev().collect()
        } else {
            (0..self.nodes.len()).collect()
        };
        for ni in order {
            if removed >= limit {
                break;
            }
            let n = &self.nodes[ni];
            let offs = n.offsets();
            let mut hits: Vec<(usize, usize)> = Vec::new();
            let ks: Vec<usize> = if from_tail {
                (0..offs.len()).rev().collect()
            } else {
                (0..offs.len()).collect()
            };
            for k in ks {
                if removed + hits.len() >= limit {
                    break;
                }
                let o = offs[k];
                let end = offs.get(k + 1).copied().unwrap_or(n.buf.len());
                if n.buf[o..end] == p[..] {
                    hits.push((o, end));
                }
            }
            if hits.is_empty() {
                continue;
            }
            hits.sort_unstable();
            let n = &mut self.nodes[ni];
            let mut nb = Vec::with_capacity(n.buf.len());
            let mut last = 0;
            for &(o, e) in &hits {
                nb.extend_from_slice(&n.buf[last..o]);
                last = e;
            }
            nb.extend_from_slice(&n.buf[last..]);
            n.buf = nb;
            n.count -= hits.len() as u32;
            removed += hits.len();
        }
        if removed > 0 {
            self.len -= removed;
            self.compact_nodes();
        }
        removed
    }

    /// LTRIM: keep only elements `start..=end` (`end` clamped; start > end empties the list).
    pub fn trim(&mut self, start: usize, end: usize) {
        if start > end || start >= self.len {
            self.nodes.clear();
            self.len = 0;
            return;
        }
        let end = end.min(self.len - 1);
        let mut ltrim = start;
        let mut rtrim = self.len - 1 - end;
        while ltrim > 0 {
            let Some(n) = self.nodes.front_mut() else {
                break;
            };
            if n.count as usize <= ltrim {
                ltrim -= n.count as usize;
                self.len -= n.count as usize;
                self.nodes.pop_front();
            } else {
                let off = n.offset_of(ltrim);
                n.buf.drain(..off);
                n.count -= ltrim as u32;
                self.len -= ltrim;
                ltrim = 0;
            }
        }
        while rtrim > 0 {
            let Some(n) = self.nodes.back_mut() else {
                break;
            };
            if n.count as usize <= rtrim {
                rtrim -= n.count as usize;
                self.len -= n.count as usize;
                self.nodes.pop_back();
            } else {
                let keep = n.count as usize - rtrim;
                let off = n.offset_of(keep);
                n.buf.truncate(off);
                n.count = keep as u32;
                self.len -= rtrim;
                rtrim = 0;
            }
        }
        self.compact_nodes();
    }

    /// LPOS: indices of elements equal to `v`. `rank` ≠ 0 (negative = search from the tail),
    /// skipping |rank|-1 matches; `count` 0 = all; `maxlen` 0 = compare with every element.
    pub fn positions(&self, v: &[u8], rank: i64, count: usize, maxlen: usize) -> Vec<usize> {
        let p = enc::encode(v);
        let mut out = Vec::new();
        let mut skip = rank.unsigned_abs().saturating_sub(1);
        let want = if count == 0 { usize::MAX } else { count };
        let maxlen = if maxlen == 0 { usize::MAX } else { maxlen };
        let mut compared = 0usize;
        if rank > 0 {
            let mut base = 0;
            for n in &self.nodes {
                let mut off = 0;
                let mut k = 0;
                while off < n.buf.len() {
                    if compared >= maxlen || out.len() >= want {
                        return out;
                    }
                    compared += 1;
                    let l = enc::entry_len(&n.buf, off);
                    if n.buf[off..off + l] == p[..] {
                        if skip > 0 {
                            skip -= 1;
                        } else {
                            out.push(base + k);
                        }
                    }
                    off += l;
                    k += 1;
                }
                base += n.count as usize;
            }
        } else {
            let mut base = self.len;
            for n in self.nodes.iter().rev() {
                base -= n.count as usize;
                let offs = n.offsets();
                for k in (0..offs.len()).rev() {
                    if compared >= maxlen || out.len() >= want {
                        return out;
                    }
                    compared += 1;
                    let o = offs[k];
                    let end = offs.get(k + 1).copied().unwrap_or(n.buf.len());
                    if n.buf[o..end] == p[..] {
                        if skip > 0 {
                            skip -= 1;
                        } else {
                            out.push(base + k);
                        }
                    }
                }
            }
        }
        out
    }

    /// Check internal invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut total = 0;
        for n in &self.nodes {
            assert!(n.count > 0, "empty node");
            assert_eq!(n.offsets().len(), n.count as usize);
            total += n.count as usize;
        }
        assert_eq!(total, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use std::collections::VecDeque;

    #[test]
    fn encoding_round_trips() {
        let mut cases: Vec<Vec<u8>> = [
            "",
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-4097",
            "32767",
            "-32768",
            "8388607",
            "-8388608",
            "8388608",
            "2147483647",
            "-2147483649",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "007",
            "-0",
            "+1",
            " 1",
            "1 ",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        cases.push(vec![b'x'; 63]);
        cases.push(vec![b'x'; 64]);
        cases.push(vec![b'y'; 200]);
        cases.push(vec![b'z'; 20000]);
        for c in cases {
            let e = enc::encode(&c);
            assert_eq!(enc::entry_len(&e, 0), e.len());
            let (el, next) = enc::decode(&e, 0);
            assert_eq!(el.byte_len(), c.len());
            assert_eq!(next, e.len());
            assert_eq!(
                &el.to_bytes()[..],
                &c[..],
                "{:?}",
                String::from_utf8_lossy(&c)
            );
        }
        assert_eq!(enc::encode(b"5").len(), 1);
        assert_eq!(enc::encode(b"123456").len(), 4);
        assert_eq!(enc::encode(b"xxx").len(), 4);
    }

    #[test]
    fn nodes_split_by_bytes_and_count() {
        let mut l = List::new();
        for i in 0..10_000 {
            l.push_back(format!("element-{i}").as_bytes());
        }
        l.check();
        assert!(l.node_count() > 10);
        for n in &l.nodes {
            assert!(n.buf.len() + NODE_HEADER_BYTES <= 8192);
        }
        let mut l = List::with_fill(4);
        for i in 0..10 {
            l.push_front(format!("{i}").as_bytes());
        }
        assert_eq!(l.node_count(), 3);
        l.check();
        // An element bigger than a node gets a node of its own.
        let mut l = List::new();
        l.push_back(b"a");
        l.push_back(&vec![b'b'; 10_000]);
        l.push_back(b"c");
        assert_eq!(l.node_count(), 3);
        assert_eq!(l.get(1).map(|b| b.len()), Some(10_000));
        let all: Vec<Bytes> = l.iter().collect();
        assert_eq!(List::from_items(all).len(), 3);
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushFront(Vec<u8>),
        PushBack(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(Vec<u8>, Vec<u8>, bool),
        Remove(Vec<u8>, i64),
        Trim(usize, usize),
        Get(usize),
        Range(usize, usize),
        Positions(Vec<u8>, i64, usize, usize),
    }

    fn elem(g: &mut Gen) -> Vec<u8> {
        match u8::arbitrary(g) % 6 {
            0 => (i64::arbitrary(g) % 200).to_string().into_bytes(),
            1 => i64::arbitrary(g).to_string().into_bytes(),
            2 => vec![b'a' + u8::arbitrary(g) % 3],
            3 => vec![b'q'; usize::arbitrary(g) % 300],
            4 => (i32::arbitrary(g) as i64 * 3).to_string().into_bytes(),
            _ => Vec::<u8>::arbitrary(g),
        }
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            let i = usize::arbitrary(g) % 60;
            let j = usize::arbitrary(g) % 60;
            match u8::arbitrary(g) % 14 {
                0..=2 => Op::PushBack(elem(g)),
                3 | 4 => Op::PushFront(elem(g)),
                5 => Op::PopFront,
                6 => Op::PopBack,
                7 => Op::Set(i, elem(g)),
                8 => Op::Insert(elem(g), elem(g), bool::arbitrary(g)),
                9 => Op::Remove(elem(g), i64::arbitrary(g) % 4),
                10 => Op::Trim(i, j + 30),
                11 => Op::Get(i),
                12 => Op::Range(i, j),
                _ => {
                    let r = i64::arbitrary(g) % 3;
                    Op::Positions(
                        elem(g),
                        if r == 0 { 1 } else { r },
                        usize::arbitrary(g) % 4,
                        usize::arbitrary(g) % 20,
                    )
                }
            }
        }
    }

    fn model_remove(m: &mut VecDeque<Vec<u8>>, v: &[u8], count: i64) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut n = 0;
        if count >= 0 {
            let mut i = 0;
            while i < m.len() {
                if n < limit && m[i] == v {
                    m.remove(i);
                    n += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            let mut i = m.len();
            while i > 0 {
                i -= 1;
                if n < limit && m[i] == v {
                    m.remove(i);
                    n += 1;
                }
            }
        }
        n
    }

    fn model_positions(
        m: &VecDeque<Vec<u8>>,
        v: &[u8],
        rank: i64,
        count: usize,
        maxlen: usize,
    ) -> Vec<usize> {
        let idx: Vec<usize> = if rank > 0 {
            (0..m.len()).collect()
        } else {
            (0..m.len()).rev().collect()
        };
        let lim = if maxlen == 0 { usize::MAX } else { maxlen };
        let mut want = vec![];
        let mut skip = rank.unsigned_abs() - 1;
        for &i in idx.iter().take(lim) {
            if m[i] == v {
                if skip > 0 {
                    skip -= 1;
                } else {
                    want.push(i);
                    if count != 0 && want.len() >= count {
                        break;
                    }
                }
            }
        }
        want
    }

    fn slice(m: &VecDeque<Vec<u8>>, s: usize, e: usize) -> VecDeque<Vec<u8>> {
        if s > e || s >= m.len() {
            VecDeque::new()
        } else {
            let e = e.min(m.len() - 1);
            m.iter().skip(s).take(e - s + 1).cloned().collect()
        }
    }

    fn run_model(ops: Vec<Op>, fill: i64) -> bool {
        let mut l = List::with_fill(fill);
        let mut m: VecDeque<Vec<u8>> = VecDeque::new();
        for op in ops {
            let ok = match op {
                Op::PushFront(v) => {
                    l.push_front(&v);
                    m.push_front(v);
                    true
                }
                Op::PushBack(v) => {
                    l.push_back(&v);
                    m.push_back(v);
                    true
                }
                Op::PopFront => l.pop_front().map(|b| b.to_vec()) == m.pop_front(),
                Op::PopBack => l.pop_back().map(|b| b.to_vec()) == m.pop_back(),
                Op::Set(i, v) => {
                    let ok = l.set(i, &v);
                    let exp = i < m.len();
                    if exp {
                        m[i] = v;
                    }
                    ok == exp
                }
                Op::Insert(p, v, after) => {
                    let pos = m.iter().position(|x| *x == p);
                    if let Some(i) = pos {
                        m.insert(if after { i + 1 } else { i }, v.clone());
                    }
                    l.insert(&p, &v, after) == pos.is_some()
                }
                Op::Remove(v, count) => l.remove(&v, count) == model_remove(&mut m, &v, count),
                Op::Trim(s, e) => {
                    l.trim(s, e);
                    m = slice(&m, s, e);
                    true
                }
                Op::Get(i) => l.get(i).map(|b| b.to_vec()) == m.get(i).cloned(),
                Op::Range(s, e) => {
                    let got: VecDeque<Vec<u8>> =
                        l.range(s, e).into_iter().map(|b| b.to_vec()).collect();
                    got == slice(&m, s, e)
                }
                Op::Positions(v, rank, count, maxlen) => {
                    l.positions(&v, rank, count, maxlen)
                        == model_positions(&m, &v, rank, count, maxlen)
                }
            };
            if !ok || l.len() != m.len() {
                return false;
            }
            l.check();
        }
        let all: Vec<Vec<u8>> = l.iter().map(|b| b.to_vec()).collect();
        all == m.into_iter().collect::<Vec<_>>()
    }

    #[test]
    fn model_default_fill() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, -2)
        }
        QuickCheck::new()
            .tests(300)
            .rng(Gen::new(400))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_small_count_nodes() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, 3)
        }
        QuickCheck::new()
            .tests(300)
            .rng(Gen::new(200))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_small_byte_nodes() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, -1)
        }
        QuickCheck::new()
            .tests(200)
            .rng(Gen::new(300))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }
}
