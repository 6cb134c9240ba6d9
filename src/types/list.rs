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

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

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

/// Plain nodes shorter than this are not worth compressing (Redis's `MIN_COMPRESS_BYTES`).
const MIN_COMPRESS_BYTES: usize = 48;
/// A compressed node must save at least this many bytes (Redis's `MIN_COMPRESS_IMPROVE`).
const MIN_COMPRESS_IMPROVE: usize = 8;
/// [`Node::zlen`] of a plain node.
const PLAIN: u32 = 0;
/// [`Node::zlen`] of a plain node whose compression was tried since its last change and did not
/// pay (so it is not tried again until the node changes).
const PLAIN_TRIED: u32 = u32::MAX;
/// zstd level for list nodes: the fastest standard level. On list-like data (runs of similar
/// short entries) it still compresses several times better than LZ4 or LZF, thanks to its
/// repeat offsets and entropy coding of literals.
const ZSTD_LEVEL: i32 = 1;

/// The codec of compressed nodes: zstd frames (Redis uses LZF). The format is internal only:
/// snapshots write elements, never these frames.
mod codec {
    use std::cell::RefCell;

    use zstd::bulk::{Compressor, Decompressor};

    struct Codec {
        c: Compressor<'static>,
        d: Decompressor<'static>,
        /// Compression output, copied out at its exact size.
        scratch: Vec<u8>,
    }

    thread_local! {
        static CODEC: RefCell<Option<Codec>> = const { RefCell::new(None) };
    }

    fn with<R>(f: impl FnOnce(&mut Codec) -> R) -> R {
        CODEC.with(|cell| {
            let mut cell = cell.borrow_mut();
            let codec = cell.get_or_insert_with(|| Codec {
                c: Compressor::new(super::ZSTD_LEVEL).expect("zstd compression context"),
                d: Decompressor::new().expect("zstd decompression context"),
                scratch: Vec::new(),
            });
            f(codec)
        })
    }

    /// `plain` compressed, if that takes at most `max` bytes; the result is allocated to size.
    pub fn compress(plain: &[u8], max: usize) -> Option<Vec<u8>> {
        with(|z| {
            z.scratch.clear();
            z.scratch.reserve(max);
            z.c.compress_to_buffer(plain, &mut z.scratch).ok()?;
            let out = (z.scratch.len() <= max).then(|| z.scratch.to_vec());
            // Keep the scratch buffer for node-sized data only.
            if z.scratch.capacity() > 1 << 17 {
                z.scratch = Vec::new();
            }
            out
        })
    }

    /// The `len` plain bytes of a frame made by [`compress`].
    pub fn decompress(frame: &[u8], len: usize) -> Vec<u8> {
        match with(|z| z.d.decompress(frame, len)) {
            Ok(v) if v.len() == len => v,
            // Frames are only ever made by `compress` from `len` bytes in this process.
            _ => panic!("list node: zstd frame does not decompress to {len} bytes"),
        }
    }
}

/// One node: encoded entries back to back, plain or compressed.
/// A node behind a copy-on-write pointer. Cloning a list copies pointers, not bytes: that is the
/// clone a running compaction forces on the first write to a list its snapshot still reads
/// (`keyspace::Shared`), so a job queue of millions of elements costs that write a copy of its
/// node pointers, and each later write copies only the nodes it touches while the snapshot
/// holds them. Mutable access (`DerefMut`) is `Arc::make_mut`: no copy when unshared.
#[derive(Clone, Default)]
struct NodeRef(Arc<Node>);

impl std::ops::Deref for NodeRef {
    type Target = Node;
    #[inline]
    fn deref(&self) -> &Node {
        &self.0
    }
}

impl std::ops::DerefMut for NodeRef {
    #[inline]
    fn deref_mut(&mut self) -> &mut Node {
        crate::types::chunked::chunk_mut(&mut self.0, |n| n.buf.len())
    }
}

impl From<Node> for NodeRef {
    fn from(n: Node) -> NodeRef {
        NodeRef(Arc::new(n))
    }
}

#[derive(Clone, Default)]
struct Node {
    /// The encoded entries, or their zstd frame when the node is compressed.
    buf: Vec<u8>,
    count: u32,
    /// [`PLAIN`], [`PLAIN_TRIED`], or (compressed) the length of the plain entries.
    zlen: u32,
}

/// Byte offset of every entry of plain node bytes.
fn offsets(buf: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        v.push(off);
        off += enc::entry_len(buf, off);
    }
    v
}

/// Byte offset of entry `i` (or the end when `i` is the count).
fn offset_of(buf: &[u8], i: usize) -> usize {
    let mut off = 0;
    for _ in 0..i {
        off += enc::entry_len(buf, off);
    }
    off
}

fn last_offset(buf: &[u8]) -> usize {
    let mut off = 0;
    let mut last = 0;
    while off < buf.len() {
        last = off;
        off += enc::entry_len(buf, off);
    }
    last
}

impl Node {
    fn is_compressed(&self) -> bool {
        self.zlen != PLAIN && self.zlen != PLAIN_TRIED
    }

    /// Length of the plain entries.
    fn plain_len(&self) -> usize {
        if self.is_compressed() {
            self.zlen as usize
        } else {
            self.buf.len()
        }
    }

    /// The plain entries, decompressed into a new buffer if the node is compressed (the node
    /// itself stays as it is).
    fn plain(&self) -> Cow<'_, [u8]> {
        if self.is_compressed() {
            Cow::Owned(codec::decompress(&self.buf, self.zlen as usize))
        } else {
            Cow::Borrowed(&self.buf)
        }
    }

    /// The plain entries, to be changed: a compressed node is decompressed, and the node counts
    /// as changed (compression is tried again when it is next in the interior).
    fn plain_mut(&mut self) -> &mut Vec<u8> {
        if self.is_compressed() {
            self.buf = codec::decompress(&self.buf, self.zlen as usize);
        }
        self.zlen = PLAIN;
        &mut self.buf
    }

    /// Compress a plain node unless it was tried already, is small, or would not shrink by
    /// [`MIN_COMPRESS_IMPROVE`] bytes.
    fn compress(&mut self) {
        if self.zlen != PLAIN {
            return;
        }
        let n = self.buf.len();
        self.zlen = PLAIN_TRIED;
        if n < MIN_COMPRESS_BYTES || n >= PLAIN_TRIED as usize {
            return;
        }
        if let Some(c) = codec::compress(&self.buf, n - MIN_COMPRESS_IMPROVE) {
            self.buf = c;
            self.zlen = n as u32;
        }
    }

    fn from_encoded(entries: &[&[u8]]) -> Node {
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.len()).sum());
        for e in entries {
            buf.extend_from_slice(e);
        }
        Node {
            buf,
            count: entries.len() as u32,
            zlen: PLAIN,
        }
    }
}

/// Iterator over a list's elements, front to back.
pub struct Iter<'a> {
    list: &'a List,
    node: usize,
    off: usize,
    /// The plain bytes of node `node`.
    cur: Cow<'a, [u8]>,
}

impl<'a> Iter<'a> {
    fn at(list: &'a List, node: usize, entry: usize) -> Iter<'a> {
        let cur = match list.nodes.get(node) {
            Some(n) => n.plain(),
            None => Cow::Borrowed(&[][..]),
        };
        let off = offset_of(&cur, entry);
        Iter {
            list,
            node,
            off,
            cur,
        }
    }

    /// The next entry, still encoded.
    fn next_elem(&mut self) -> Option<enc::Elem<'_>> {
        while self.off >= self.cur.len() {
            self.node += 1;
            self.cur = self.list.nodes.get(self.node)?.plain();
            self.off = 0;
        }
        let (e, next) = enc::decode(&self.cur, self.off);
        self.off = next;
        Some(e)
    }
}

impl Iterator for Iter<'_> {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        self.next_elem().map(|e| e.to_bytes())
    }
}

#[derive(Clone)]
pub struct List {
    nodes: VecDeque<NodeRef>,
    len: usize,
    fill: i64,
    /// `list-compress-depth` when the list was made: nodes more than this many from either end
    /// are kept compressed (0 = none).
    depth: u32,
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

    /// An empty list whose nodes follow `list-max-listpack-size = fill`, uncompressed.
    pub fn with_fill(fill: i64) -> Self {
        List::with_options(fill, 0)
    }

    /// An empty list whose nodes follow `list-max-listpack-size = fill` and
    /// `list-compress-depth = depth` (as Redis, both are fixed when the list is made).
    pub fn with_options(fill: i64, depth: i64) -> Self {
        List {
            nodes: VecDeque::new(),
            len: 0,
            fill,
            depth: depth.clamp(0, u32::MAX as i64) as u32,
        }
    }

    /// A list of `items` in order (snapshot loading), default node size, uncompressed.
    pub fn from_items(items: Vec<Bytes>) -> Self {
        List::from_items_with(items, DEFAULT_FILL, 0)
    }

    /// A list of `items` in order with the given `list-max-listpack-size` and
    /// `list-compress-depth`.
    pub fn from_items_with(items: Vec<Bytes>, fill: i64, depth: i64) -> Self {
        let mut l = List::with_options(fill, depth);
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
        Iter::at(self, 0, 0)
    }

    /// Number of internal nodes (tests and introspection).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of nodes stored compressed (DEBUG OBJECT, tests).
    pub fn compressed_node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_compressed()).count()
    }

    /// Bytes of all nodes as plain listpacks (DEBUG OBJECT's `ql_uncompressed_size`).
    pub fn uncompressed_size(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.plain_len() + NODE_HEADER_BYTES)
            .sum()
    }

    /// `list-max-listpack-size` the list was made with.
    pub fn fill(&self) -> i64 {
        self.fill
    }

    /// `list-compress-depth` the list was made with.
    pub fn compress_depth(&self) -> i64 {
        self.depth as i64
    }

    /// Whether node `i` is in the compressed interior: more than `depth` from either end.
    fn interior(&self, i: usize) -> bool {
        let d = self.depth as usize;
        d > 0 && i >= d && i < self.nodes.len().saturating_sub(d)
    }

    /// Give node `i` (if any) the form its position asks for.
    fn settle_node(&mut self, i: usize) {
        let interior = self.interior(i);
        // Look before taking the node mutably: that copies it if a snapshot shares it.
        let in_form = match self.nodes.get(i) {
            None => return,
            Some(n) if interior => n.zlen != PLAIN,
            Some(n) => !n.is_compressed(),
        };
        if in_form {
            return;
        }
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        if interior {
            n.compress();
        } else if n.is_compressed() {
            n.plain_mut();
        }
    }

    /// After one node was added or removed at either end, only the nodes at the borders of the
    /// two plain end zones can change form.
    fn settle_edges(&mut self) {
        let d = self.depth as usize;
        if d == 0 {
            return;
        }
        let n = self.nodes.len();
        for i in [d - 1, d, n.wrapping_sub(d + 1), n.wrapping_sub(d)] {
            self.settle_node(i);
        }
    }

    /// After changes anywhere: every node gets the form its position asks for (nodes already in
    /// form, or tried, cost a comparison).
    fn settle_all(&mut self) {
        if self.depth == 0 {
            return;
        }
        for i in 0..self.nodes.len() {
            self.settle_node(i);
        }
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
            total <= self.node_byte_limit()
        } else {
            (count as i64) < self.fill.max(1) && total <= NODE_SAFETY_BYTES
        }
    }

    /// Byte limit of a node with a size-based fill.
    fn node_byte_limit(&self) -> usize {
        let i = (self.fill.unsigned_abs() as usize).clamp(1, NODE_BYTES_BY_FILL.len()) - 1;
        NODE_BYTES_BY_FILL[i]
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
            self.nodes.push_back(NodeRef::default());
            self.settle_edges();
        }
        if let Some(n) = self.nodes.back_mut() {
            n.plain_mut().extend_from_slice(&e);
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
            self.nodes.push_front(NodeRef::default());
            self.settle_edges();
        }
        if let Some(n) = self.nodes.front_mut() {
            n.plain_mut().splice(0..0, e);
            n.count += 1;
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        let n = self.nodes.front_mut()?;
        let buf = n.plain_mut();
        let (b, next) = enc::decode_bytes(buf, 0);
        buf.drain(..next);
        n.count -= 1;
        if n.count == 0 {
            self.nodes.pop_front();
            self.settle_edges();
        }
        self.len -= 1;
        Some(b)
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        let n = self.nodes.back_mut()?;
        let buf = n.plain_mut();
        let last = last_offset(buf);
        let (b, _) = enc::decode_bytes(buf, last);
        buf.truncate(last);
        n.count -= 1;
        if n.count == 0 {
            self.nodes.pop_back();
            self.settle_edges();
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
        let p = self.nodes[ni].plain();
        Some(enc::decode_bytes(&p, offset_of(&p, ei)).0)
    }

    /// Replace element `i`; false if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len {
            return false;
        }
        let (ni, ei) = self.locate(i);
        let e = enc::encode(v);
        let buf = self.nodes[ni].plain_mut();
        let off = offset_of(buf, ei);
        let end = off + enc::entry_len(buf, off);
        buf.splice(off..end, e);
        self.split_if_needed(ni);
        self.settle_all();
        true
    }

    /// Split node `ni` (plain) until every part fits.
    fn split_if_needed(&mut self, ni: usize) {
        let n = &self.nodes[ni];
        if n.count <= 1 || self.fits(n.buf.len(), n.count as usize - 1, 0) {
            return;
        }
        let offs = offsets(&n.buf);
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
            self.nodes.insert(ni + k, p.into());
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
                && self.fits(a.plain_len(), merged_count - 1, b.plain_len());
            if ok {
                if let Some(b) = self.nodes.remove(i + 1) {
                    let a = &mut self.nodes[i];
                    a.plain_mut().extend_from_slice(&b.plain());
                    a.count += b.count;
                }
            } else {
                i += 1;
            }
        }
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.buf.capacity() > n.buf.len() + n.buf.len() / 4 + 16 {
                self.nodes[i].buf.shrink_to_fit();
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
        let mut it = Iter::at(self, ni, ei);
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
        let (ni, ei) = self.locate(start);
        let mut it = Iter::at(self, ni, ei);
        for _ in start..=end {
            match it.next_elem() {
                Some(e) => f(e),
                None => return,
            }
        }
    }

    /// Insert `v` before/after the first element equal to `pivot`; returns false if none.
    pub fn insert(&mut self, pivot: &[u8], v: &[u8], after: bool) -> bool {
        let p = enc::encode(pivot);
        for ni in 0..self.nodes.len() {
            let found = {
                let buf = self.nodes[ni].plain();
                let mut off = 0;
                let mut found = None;
                while off < buf.len() {
                    let l = enc::entry_len(&buf, off);
                    if buf[off..off + l] == p[..] {
                        found = Some(if after { off + l } else { off });
                        break;
                    }
                    off += l;
                }
                found
            };
            if let Some(at) = found {
                let e = enc::encode(v);
                let n = &mut self.nodes[ni];
                n.plain_mut().splice(at..at, e);
                n.count += 1;
                self.len += 1;
                self.split_if_needed(ni);
                self.settle_all();
                return true;
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
            let buf = self.nodes[ni].plain();
            let offs = offsets(&buf);
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
                let end = offs.get(k + 1).copied().unwrap_or(buf.len());
                if buf[o..end] == p[..] {
                    hits.push((o, end));
                }
            }
            if hits.is_empty() {
                continue;
            }
            hits.sort_unstable();
            let mut nb = Vec::with_capacity(buf.len());
            let mut last = 0;
            for &(o, e) in &hits {
                nb.extend_from_slice(&buf[last..o]);
                last = e;
            }
            nb.extend_from_slice(&buf[last..]);
            drop(buf);
            let n = &mut self.nodes[ni];
            *n.plain_mut() = nb;
            n.count -= hits.len() as u32;
            removed += hits.len();
        }
        if removed > 0 {
            self.len -= removed;
            self.compact_nodes();
            self.settle_all();
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
                let buf = n.plain_mut();
                let off = offset_of(buf, ltrim);
                buf.drain(..off);
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
                let buf = n.plain_mut();
                let off = offset_of(buf, keep);
                buf.truncate(off);
                n.count = keep as u32;
                self.len -= rtrim;
                rtrim = 0;
            }
        }
        self.compact_nodes();
        self.settle_all();
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
                let buf = n.plain();
                let mut off = 0;
                let mut k = 0;
                while off < buf.len() {
                    if compared >= maxlen || out.len() >= want {
                        return out;
                    }
                    compared += 1;
                    let l = enc::entry_len(&buf, off);
                    if buf[off..off + l] == p[..] {
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
                let buf = n.plain();
                let offs = offsets(&buf);
                for k in (0..offs.len()).rev() {
                    if compared >= maxlen || out.len() >= want {
                        return out;
                    }
                    compared += 1;
                    let o = offs[k];
                    let end = offs.get(k + 1).copied().unwrap_or(buf.len());
                    if buf[o..end] == p[..] {
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
        for (i, n) in self.nodes.iter().enumerate() {
            assert!(n.count > 0, "empty node");
            assert_eq!(offsets(&n.plain()).len(), n.count as usize);
            assert_eq!(n.plain().len(), n.plain_len());
            if self.interior(i) {
                assert_ne!(
                    n.zlen,
                    PLAIN,
                    "interior node {i} of {} not compressed",
                    self.nodes.len()
                );
            } else {
                assert!(
                    !n.is_compressed(),
                    "end node {i} of {} compressed",
                    self.nodes.len()
                );
            }
            total += n.count as usize;
        }
        assert_eq!(total, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes of `a` and `b` that are the same allocation.
    fn shared_nodes(a: &List, b: &List) -> usize {
        a.nodes
            .iter()
            .filter(|n| b.nodes.iter().any(|m| Arc::ptr_eq(&n.0, &m.0)))
            .count()
    }

    #[test]
    fn a_clone_shares_nodes_and_a_write_copies_only_the_nodes_it_touches() {
        for depth in [0, 1] {
            let items: Vec<Bytes> = (0..20_000)
                .map(|i| Bytes::from(format!("elem:{i:07}")))
                .collect();
            let snapshot = List::from_items_with(items.clone(), DEFAULT_FILL, depth);
            let nodes = snapshot.node_count();
            assert!(nodes > 20, "{nodes}");
            let mut live = snapshot.clone();
            assert_eq!(shared_nodes(&snapshot, &live), nodes);
            // A queue's writes: push at the head, pop at the tail, set in the middle.
            live.push_front(b"new");
            assert_eq!(live.pop_back().as_deref(), Some(&b"elem:0019999"[..]));
            assert!(live.set(10_000, b"changed"));
            assert!(shared_nodes(&snapshot, &live) >= nodes - 4);
            // The snapshot still reads the state at the clone.
            let seen: Vec<Bytes> = snapshot.iter().collect();
            assert_eq!(seen, items, "depth {depth}");
            let mut want: VecDeque<Bytes> = items.iter().cloned().collect();
            want.push_front(Bytes::from_static(b"new"));
            want.pop_back();
            want[10_000] = Bytes::from_static(b"changed");
            let now: Vec<Bytes> = live.iter().collect();
            assert_eq!(now, Vec::from(want), "depth {depth}");
        }
    }
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
        /// Many elements at once (lists of many nodes).
        PushMany(Vec<u8>, u16, bool),
        /// Rebuild the list from its elements with another `list-compress-depth` (what DEBUG
        /// RELOAD or a restart does after CONFIG SET).
        Reload(u8),
        /// LREM / LINSERT / LPOS of the element at (index modulo the length): values that exist.
        RemoveExisting(usize, i64),
        InsertExisting(usize, Vec<u8>, bool),
        PositionsExisting(usize, i64),
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
            let big = usize::arbitrary(g);
            match u8::arbitrary(g) % 21 {
                17 | 18 => Op::RemoveExisting(big, i64::arbitrary(g) % 3),
                19 => Op::InsertExisting(big, elem(g), bool::arbitrary(g)),
                20 => Op::PositionsExisting(big, if bool::arbitrary(g) { 1 } else { -1 }),
                14 | 15 => Op::PushMany(elem(g), u16::arbitrary(g) % 200, bool::arbitrary(g)),
                16 => Op::Reload(u8::arbitrary(g) % 4),
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
                13 => {
                    let r = i64::arbitrary(g) % 3;
                    Op::Positions(
                        elem(g),
                        if r == 0 { 1 } else { r },
                        usize::arbitrary(g) % 4,
                        usize::arbitrary(g) % 20,
                    )
                }
                _ => unreachable!(),
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

    fn run_model(ops: Vec<Op>, fill: i64, depth: i64) -> bool {
        let mut l = List::with_options(fill, depth);
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
                Op::PushMany(v, n, front) => {
                    for k in 0..n {
                        // Elements that differ (so nodes compress, but not to nothing).
                        let mut e = v.clone();
                        e.extend_from_slice(format!(":{k}").as_bytes());
                        if front {
                            l.push_front(&e);
                            m.push_front(e);
                        } else {
                            l.push_back(&e);
                            m.push_back(e);
                        }
                    }
                    true
                }
                Op::Reload(d) => {
                    l = List::from_items_with(l.iter().collect(), fill, d as i64);
                    true
                }
                Op::RemoveExisting(i, count) => match m.get(i % m.len().max(1)).cloned() {
                    Some(v) => l.remove(&v, count) == model_remove(&mut m, &v, count),
                    None => true,
                },
                Op::InsertExisting(i, v, after) => match m.get(i % m.len().max(1)).cloned() {
                    Some(p) => {
                        let pos = m.iter().position(|x| *x == p).unwrap_or(0);
                        m.insert(if after { pos + 1 } else { pos }, v.clone());
                        l.insert(&p, &v, after)
                    }
                    None => true,
                },
                Op::PositionsExisting(i, rank) => match m.get(i % m.len().max(1)).cloned() {
                    Some(v) => l.positions(&v, rank, 0, 0) == model_positions(&m, &v, rank, 0, 0),
                    None => true,
                },
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
            run_model(ops, -2, 0)
        }
        QuickCheck::new()
            .tests(150)
            .rng(Gen::new(400))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_small_count_nodes() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, 3, 0)
        }
        QuickCheck::new()
            .tests(150)
            .rng(Gen::new(200))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_small_byte_nodes() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, -1, 0)
        }
        QuickCheck::new()
            .tests(200)
            .rng(Gen::new(300))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_compressed_depth_1() {
        fn prop(ops: Vec<Op>) -> bool {
            run_model(ops, -1, 1)
        }
        QuickCheck::new()
            .tests(200)
            .rng(Gen::new(300))
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn model_compressed_random_depth_and_fill() {
        fn prop(ops: Vec<Op>, fill: u8, depth: u8) -> bool {
            let fill = [-1, -2, 3, 7, 20][fill as usize % 5];
            run_model(ops, fill, (depth % 4) as i64)
        }
        QuickCheck::new()
            .tests(200)
            .rng(Gen::new(300))
            .quickcheck(prop as fn(Vec<Op>, u8, u8) -> bool);
    }

    #[test]
    fn interior_nodes_compress_and_ends_stay_plain() {
        let mut plain = List::with_options(-2, 0);
        let mut l = List::with_options(-2, 1);
        for i in 0..100_000 {
            let e = format!("elem:{i:07}");
            plain.push_back(e.as_bytes());
            l.push_back(e.as_bytes());
        }
        l.check();
        let n = l.node_count();
        assert!(n > 100);
        assert_eq!(l.compressed_node_count(), n - 2);
        assert!(!l.nodes[0].is_compressed() && !l.nodes[n - 1].is_compressed());
        assert_eq!(plain.compressed_node_count(), 0);
        // The interior shrinks to well under the plain size, and memory usage says so.
        assert!(
            l.mem_usage() * 2 < plain.mem_usage(),
            "{} vs {}",
            l.mem_usage(),
            plain.mem_usage()
        );
        assert_eq!(l.uncompressed_size(), plain.uncompressed_size());
        // Reads in the middle do not change the stored form.
        assert_eq!(l.get(50_000).as_deref(), Some(&b"elem:0050000"[..]));
        assert_eq!(l.range(49_999, 50_001), plain.range(49_999, 50_001));
        assert_eq!(l.positions(b"elem:0070000", 1, 1, 0), vec![70_000]);
        assert_eq!(l.compressed_node_count(), n - 2);
        // A write in the middle leaves the node compressed again.
        assert!(l.set(50_000, b"changed"));
        assert!(l.insert(b"elem:0060000", b"new", true));
        l.check();
        // (a split can leave a node too small to be worth compressing)
        assert!(l.compressed_node_count() + 3 >= l.node_count());
        // Depth 2 keeps two plain nodes at each end; popping nodes away moves the zone inward.
        let mut l = List::from_items_with(plain.iter().collect(), -2, 2);
        assert_eq!(l.compressed_node_count(), l.node_count() - 4);
        for _ in 0..30_000 {
            l.pop_front();
            l.pop_back();
        }
        l.check();
        assert_eq!(l.compressed_node_count(), l.node_count() - 4);
        let all: Vec<Bytes> = l.iter().collect();
        assert_eq!(all, plain.range(30_000, 69_999));
        // Incompressible or small nodes stay plain (and are not retried until changed).
        let mut l = List::with_options(3, 1);
        for i in 0..30 {
            l.push_back(format!("{i}").as_bytes());
        }
        l.check();
        assert_eq!(l.compressed_node_count(), 0);
        assert!(l
            .nodes
            .iter()
            .skip(1)
            .take(8)
            .all(|n| n.zlen == PLAIN_TRIED));
    }
}
