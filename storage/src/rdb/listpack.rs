//! Listpack (`src/listpack.c`): decoder with Redis's deep integrity checks, and an encoder that
//! makes the same choices as Redis (integers where `lpStringToInt64` accepts the text, smallest
//! encoding, backlen).
//!
//! ```text
//! <total_bytes u32 LE> <num_elements u16 LE, 65535 = unknown> <entry>* <0xFF>
//! entry = <encoding + data> <backlen: 1..5 bytes, size of encoding + data>
//! ```

use super::error::BlobError;
use super::num::canonical_i64;
use bytes::Bytes;

const WHAT: &str = "listpack";
/// Header: total bytes (4) + element count (2).
pub const LP_HDR_SIZE: usize = 6;
/// The count value meaning "count by scanning".
pub const LP_HDR_NUMELE_UNKNOWN: u16 = u16::MAX;
/// End-of-listpack byte.
pub const LP_EOF: u8 = 0xFF;

/// One listpack element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LpItem<'a> {
    /// An integer-encoded element.
    Int(i64),
    /// A string-encoded element.
    Str(&'a [u8]),
}

impl LpItem<'_> {
    /// The element as bytes (integers in decimal, as Redis returns them).
    pub fn to_bytes(self) -> Bytes {
        match self {
            LpItem::Int(v) => Bytes::from(v.to_string()),
            LpItem::Str(s) => Bytes::copy_from_slice(s),
        }
    }

    /// The element as an integer, when it is one (a string element is parsed strictly).
    pub fn as_int(self) -> Option<i64> {
        match self {
            LpItem::Int(v) => Some(v),
            LpItem::Str(s) => canonical_i64(s),
        }
    }
}

fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

fn encode_backlen(out: &mut Vec<u8>, l: usize) {
    let n = backlen_size(l);
    // Most significant 7-bit group first, without the high bit; the following groups carry it.
    for i in (0..n).rev() {
        let group = ((l >> (7 * i)) & 127) as u8;
        if i == n - 1 {
            out.push(group);
        } else {
            out.push(group | 128);
        }
    }
}

fn decode_backlen(b: &[u8]) -> usize {
    let mut v = 0usize;
    for (i, &byte) in b.iter().enumerate() {
        if i == 0 {
            v = (byte & 127) as usize;
        } else {
            v = (v << 7) | (byte & 127) as usize;
        }
    }
    v
}

/// Decodes and deeply validates a listpack: header size equals the blob size, every entry fits,
/// every backlen matches, the terminator is last, the count matches when known.
pub fn decode(blob: &[u8]) -> Result<Vec<LpItem<'_>>, BlobError> {
    if blob.len() < LP_HDR_SIZE + 1 {
        return Err(BlobError::new(WHAT, 0, "shorter than header + terminator"));
    }
    let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if total != blob.len() {
        return Err(BlobError::new(
            WHAT,
            0,
            format!("header says {total} bytes, blob has {}", blob.len()),
        ));
    }
    let count = u16::from_le_bytes([blob[4], blob[5]]);
    if blob[blob.len() - 1] != LP_EOF {
        return Err(BlobError::new(
            WHAT,
            blob.len() - 1,
            "missing 0xFF terminator",
        ));
    }
    let mut items = Vec::with_capacity((count as usize).min(blob.len() / 2));
    let mut p = LP_HDR_SIZE;
    let end = blob.len() - 1;
    while p < end {
        let (item, enc_len) = decode_entry(blob, p, end)?;
        let bl = backlen_size(enc_len);
        if p + enc_len + bl > end {
            return Err(BlobError::new(WHAT, p, "entry backlen runs past the end"));
        }
        let stored = decode_backlen(&blob[p + enc_len..p + enc_len + bl]);
        if stored != enc_len {
            return Err(BlobError::new(
                WHAT,
                p,
                format!("backlen {stored} does not match entry size {enc_len}"),
            ));
        }
        items.push(item);
        p += enc_len + bl;
    }
    if count != LP_HDR_NUMELE_UNKNOWN && count as usize != items.len() {
        return Err(BlobError::new(
            WHAT,
            4,
            format!("header count {count} but {} entries", items.len()),
        ));
    }
    Ok(items)
}

fn need(blob: &[u8], p: usize, n: usize, end: usize) -> Result<&[u8], BlobError> {
    if p.checked_add(n).is_none_or(|e| e > end) {
        Err(BlobError::new(WHAT, p, "entry runs past the end"))
    } else {
        Ok(&blob[p..p + n])
    }
}

/// Decodes one entry at `p` (not past `end`); returns the item and the size of encoding + data.
fn decode_entry(blob: &[u8], p: usize, end: usize) -> Result<(LpItem<'_>, usize), BlobError> {
    let b0 = blob[p];
    if b0 & 0x80 == 0 {
        return Ok((LpItem::Int(i64::from(b0 & 0x7f)), 1));
    }
    if b0 & 0xC0 == 0x80 {
        let len = (b0 & 0x3f) as usize;
        let s = need(blob, p + 1, len, end)?;
        return Ok((LpItem::Str(s), 1 + len));
    }
    if b0 & 0xE0 == 0xC0 {
        let b1 = need(blob, p + 1, 1, end)?[0];
        let uv = (((b0 & 0x1f) as u16) << 8) | b1 as u16;
        let v = if uv >= 1 << 12 {
            i64::from(uv) - (1 << 13)
        } else {
            i64::from(uv)
        };
        return Ok((LpItem::Int(v), 2));
    }
    if b0 & 0xF0 == 0xE0 {
        let b1 = need(blob, p + 1, 1, end)?[0];
        let len = (((b0 & 0x0f) as usize) << 8) | b1 as usize;
        let s = need(blob, p + 2, len, end)?;
        return Ok((LpItem::Str(s), 2 + len));
    }
    match b0 {
        0xF0 => {
            let l = need(blob, p + 1, 4, end)?;
            let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            let s = need(blob, p + 5, len, end)?;
            Ok((LpItem::Str(s), 5 + len))
        }
        0xF1 => {
            let d = need(blob, p + 1, 2, end)?;
            Ok((LpItem::Int(i64::from(i16::from_le_bytes([d[0], d[1]]))), 3))
        }
        0xF2 => {
            let d = need(blob, p + 1, 3, end)?;
            let v = i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8;
            Ok((LpItem::Int(i64::from(v)), 4))
        }
        0xF3 => {
            let d = need(blob, p + 1, 4, end)?;
            Ok((
                LpItem::Int(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
                5,
            ))
        }
        0xF4 => {
            let d = need(blob, p + 1, 8, end)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(d);
            Ok((LpItem::Int(i64::from_le_bytes(a)), 9))
        }
        _ => Err(BlobError::new(
            WHAT,
            p,
            format!("invalid encoding byte 0x{b0:02x}"),
        )),
    }
}

/// Builds a listpack incrementally.
#[derive(Debug, Clone)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    /// An empty listpack.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0u8; LP_HDR_SIZE]);
        ListpackBuilder { buf, count: 0 }
    }

    /// Bytes the listpack will have when finished (header + entries + terminator).
    pub fn bytes_len(&self) -> usize {
        self.buf.len() + 1
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a string element; stored as an integer when Redis would (`lpStringToInt64`).
    pub fn push_str(&mut self, s: &[u8]) {
        match canonical_i64(s) {
            Some(v) => self.push_int(v),
            None => {
                let start = self.buf.len();
                let len = s.len();
                if len < 64 {
                    self.buf.push(0x80 | len as u8);
                } else if len < 4096 {
                    self.buf.push(0xE0 | (len >> 8) as u8);
                    self.buf.push((len & 0xff) as u8);
                } else {
                    self.buf.push(0xF0);
                    self.buf.extend_from_slice(&(len as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(s);
                let enc_len = self.buf.len() - start;
                encode_backlen(&mut self.buf, enc_len);
                self.count += 1;
            }
        }
    }

    /// Appends an integer element with the smallest encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let uv = (v as u16) & 0x1fff;
            self.buf.push(0xC0 | (uv >> 8) as u8);
            self.buf.push((uv & 0xff) as u8);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        let enc_len = self.buf.len() - start;
        encode_backlen(&mut self.buf, enc_len);
        self.count += 1;
    }

    /// Size in bytes that appending `s` would add (used to split quicklist nodes).
    pub fn entry_size(s: &[u8]) -> usize {
        let enc = match canonical_i64(s) {
            Some(v) if (0..=127).contains(&v) => 1,
            Some(v) if (-4096..=4095).contains(&v) => 2,
            Some(v) if (-32768..=32767).contains(&v) => 3,
            Some(v) if (-8388608..=8388607).contains(&v) => 4,
            Some(v) if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) => 5,
            Some(_) => 9,
            None if s.len() < 64 => 1 + s.len(),
            None if s.len() < 4096 => 2 + s.len(),
            None => 5 + s.len(),
        };
        enc + backlen_size(enc)
    }

    /// Appends all entries of `other` after this builder's, then finishes.
    pub fn append_raw(mut self, other: ListpackBuilder) -> Vec<u8> {
        self.buf.extend_from_slice(&other.buf[LP_HDR_SIZE..]);
        self.count += other.count;
        self.finish()
    }

    /// Finishes: writes the header and the terminator.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < LP_HDR_NUMELE_UNKNOWN as usize {
            self.count as u16
        } else {
            LP_HDR_NUMELE_UNKNOWN
        };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_every_encoding() {
        let mut b = ListpackBuilder::new();
        let ints = [
            0i64,
            127,
            -1,
            128,
            -4096,
            4095,
            4096,
            -32768,
            32767,
            32768,
            -8388608,
            8388607,
            8388608,
            2147483647,
            -2147483648,
            2147483648,
            i64::MAX,
            i64::MIN,
        ];
        for v in ints {
            b.push_int(v);
        }
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        for s in [
            &b"hello"[..],
            &b"-0"[..],
            &b"007"[..],
            &mid[..],
            &long[..],
            &b""[..],
        ] {
            b.push_str(s);
        }
        let blob = b.finish();
        let items = decode(&blob).expect("valid listpack");
        assert_eq!(items.len(), ints.len() + 6);
        for (i, v) in ints.iter().enumerate() {
            assert_eq!(items[i], LpItem::Int(*v));
        }
        assert_eq!(items[ints.len()], LpItem::Str(b"hello"));
        assert_eq!(items[ints.len() + 1], LpItem::Str(b"-0"));
        assert_eq!(items[ints.len() + 3], LpItem::Str(&mid));
        assert_eq!(items[ints.len() + 4], LpItem::Str(&long));
    }

    #[test]
    fn entry_size_matches_the_encoder() {
        for s in [
            &b"1"[..],
            b"-100",
            b"70000",
            b"9999999999",
            b"abc",
            &[b'z'; 200][..],
        ] {
            let mut b = ListpackBuilder::new();
            let before = b.bytes_len();
            b.push_str(s);
            assert_eq!(b.bytes_len() - before, ListpackBuilder::entry_size(s));
        }
    }

    #[test]
    fn corrupt_listpacks_are_errors() {
        let mut b = ListpackBuilder::new();
        b.push_str(b"hello");
        let blob = b.finish();
        let mut bad = blob.clone();
        bad[0] = 99;
        assert!(decode(&bad).is_err());
        let mut bad = blob.clone();
        let n = bad.len();
        bad[n - 2] = 3; // backlen
        assert!(decode(&bad).is_err());
        let mut bad = blob.clone();
        bad[4] = 2; // count
        assert!(decode(&bad).is_err());
        let mut bad = blob;
        bad[6] = 0xF7; // invalid encoding
        assert!(decode(&bad).is_err());
    }
}
