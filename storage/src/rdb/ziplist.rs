//! Ziplist (`src/ziplist.c`), load-only: Redis 7 converts ziplists to listpacks on load and
//! never writes them. Deeply validated like `ziplistValidateIntegrity`.
//!
//! ```text
//! <zlbytes u32 LE> <zltail u32 LE> <zllen u16 LE, 65535 = unknown> <entry>* <0xFF>
//! entry = <prevlen: 1 byte (< 254) | 0xFE + u32 LE> <encoding> <data>
//! ```

use super::error::BlobError;
use super::listpack::LpItem;

const WHAT: &str = "ziplist";
const ZL_HDR_SIZE: usize = 10;

/// Decodes and validates a ziplist; items borrow from the blob.
pub fn decode(blob: &[u8]) -> Result<Vec<LpItem<'_>>, BlobError> {
    if blob.len() < ZL_HDR_SIZE + 1 {
        return Err(BlobError::new(WHAT, 0, "shorter than header + terminator"));
    }
    let zlbytes = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let zltail = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    let zllen = u16::from_le_bytes([blob[8], blob[9]]);
    if zlbytes != blob.len() {
        return Err(BlobError::new(
            WHAT,
            0,
            format!("header says {zlbytes} bytes, blob has {}", blob.len()),
        ));
    }
    let end = blob.len() - 1;
    if blob[end] != 0xFF {
        return Err(BlobError::new(WHAT, end, "missing 0xFF terminator"));
    }
    let mut items = Vec::with_capacity((zllen as usize).min(blob.len() / 2));
    let mut p = ZL_HDR_SIZE;
    let mut prev_len = 0usize;
    let mut last_start = ZL_HDR_SIZE;
    while p < end {
        let start = p;
        let (prevlen, plen) = if blob[p] < 254 {
            (blob[p] as usize, 1)
        } else if blob[p] == 254 {
            let d = need(blob, p + 1, 4, end)?;
            (u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize, 5)
        } else {
            return Err(BlobError::new(WHAT, p, "0xFF where an entry should start"));
        };
        if prevlen != prev_len {
            return Err(BlobError::new(
                WHAT,
                p,
                format!("prevlen {prevlen}, previous entry is {prev_len} bytes"),
            ));
        }
        p += plen;
        let enc = *blob
            .get(p)
            .filter(|_| p < end)
            .ok_or_else(|| BlobError::new(WHAT, p, "entry runs past the end"))?;
        let item;
        if enc >> 6 == 0 {
            let len = (enc & 0x3f) as usize;
            item = LpItem::Str(need(blob, p + 1, len, end)?);
            p += 1 + len;
        } else if enc >> 6 == 1 {
            let b1 = need(blob, p + 1, 1, end)?[0];
            let len = (((enc & 0x3f) as usize) << 8) | b1 as usize;
            item = LpItem::Str(need(blob, p + 2, len, end)?);
            p += 2 + len;
        } else if enc >> 6 == 2 {
            let d = need(blob, p + 1, 4, end)?;
            let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
            item = LpItem::Str(need(blob, p + 5, len, end)?);
            p += 5 + len;
        } else {
            let (v, n) = match enc {
                0xC0 => {
                    let d = need(blob, p + 1, 2, end)?;
                    (i64::from(i16::from_le_bytes([d[0], d[1]])), 2)
                }
                0xD0 => {
                    let d = need(blob, p + 1, 4, end)?;
                    (i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])), 4)
                }
                0xE0 => {
                    let d = need(blob, p + 1, 8, end)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(d);
                    (i64::from_le_bytes(a), 8)
                }
                0xF0 => {
                    let d = need(blob, p + 1, 3, end)?;
                    (i64::from(i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8), 3)
                }
                0xFE => {
                    let d = need(blob, p + 1, 1, end)?;
                    (i64::from(d[0] as i8), 1)
                }
                0xF1..=0xFD => (i64::from(enc & 0x0f) - 1, 0),
                _ => {
                    return Err(BlobError::new(
                        WHAT,
                        p,
                        format!("invalid encoding byte 0x{enc:02x}"),
                    ))
                }
            };
            item = LpItem::Int(v);
            p += 1 + n;
        }
        items.push(item);
        prev_len = p - start;
        last_start = start;
    }
    if !items.is_empty() && zltail != last_start {
        return Err(BlobError::new(
            WHAT,
            4,
            format!("zltail {zltail}, last entry at {last_start}"),
        ));
    }
    if items.is_empty() && zltail != ZL_HDR_SIZE {
        return Err(BlobError::new(
            WHAT,
            4,
            format!("zltail {zltail} in an empty ziplist"),
        ));
    }
    if zllen != u16::MAX && zllen as usize != items.len() {
        return Err(BlobError::new(
            WHAT,
            8,
            format!("header count {zllen} but {} entries", items.len()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_example_from_ziplist_c() {
        // [0f 00 00 00] [0c 00 00 00] [02 00] [00 f3] [02 f6] [ff] is ["2", "5"].
        let zl = [
            0x0f, 0, 0, 0, 0x0c, 0, 0, 0, 2, 0, 0x00, 0xf3, 0x02, 0xf6, 0xff,
        ];
        assert_eq!(
            decode(&zl).expect("valid"),
            vec![LpItem::Int(2), LpItem::Int(5)]
        );
        let mut bad = zl;
        bad[12] = 3;
        assert!(decode(&bad).is_err());
        assert!(decode(&zl[..14]).is_err());
    }
}
