//! Zipmap (`src/zipmap.c`, hashes in RDB type 9, Redis < 2.6), load-only.
//!
//! ```text
//! <zmlen: 1 byte, count if < 254> (<len> key <len> <free: 1 byte> value <free bytes>)* <0xFF>
//! len: 1 byte if < 254; 254 then u32 LE
//! ```

use super::error::BlobError;

const WHAT: &str = "zipmap";
/// A pair of the zipmap.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// Decodes and validates a zipmap.
pub fn decode(blob: &[u8]) -> Result<Vec<Pair<'_>>, BlobError> {
    if blob.len() < 2 {
        return Err(BlobError::new(WHAT, 0, "shorter than 2 bytes"));
    }
    let zmlen = blob[0];
    let end = blob.len() - 1;
    if blob[end] != 0xFF {
        return Err(BlobError::new(WHAT, end, "missing 0xFF terminator"));
    }
    let mut p = 1usize;
    let mut out = Vec::new();
    while p < end {
        let (klen, n) = read_len(blob, p, end)?;
        p += n;
        let key = take(blob, p, klen, end)?;
        p += klen;
        let (vlen, n) = read_len(blob, p, end)?;
        p += n;
        let free = *take(blob, p, 1, end)?.first().unwrap_or(&0) as usize;
        p += 1;
        let val = take(blob, p, vlen, end)?;
        p += vlen;
        take(blob, p, free, end)?;
        p += free;
        out.push((key, val));
    }
    if zmlen < 254 && zmlen as usize != out.len() {
        return Err(BlobError::new(
            WHAT,
            0,
            format!("header count {zmlen} but {} pairs", out.len()),
        ));
    }
    Ok(out)
}

fn read_len(blob: &[u8], p: usize, end: usize) -> Result<(usize, usize), BlobError> {
    let b = take(blob, p, 1, end)?[0];
    match b {
        0..=253 => Ok((b as usize, 1)),
        254 => {
            let d = take(blob, p + 1, 4, end)?;
            Ok((u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize, 5))
        }
        _ => Err(BlobError::new(WHAT, p, "0xFF where a length should be")),
    }
}

fn take(blob: &[u8], p: usize, n: usize, end: usize) -> Result<&[u8], BlobError> {
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
    fn decodes_pairs_with_free_space() {
        let zm = [
            2, 3, b'f', b'o', b'o', 3, 1, b'b', b'a', b'r', 0, 1, b'k', 1, 0, b'v', 0xff,
        ];
        let pairs = decode(&zm).expect("valid");
        assert_eq!(
            pairs,
            vec![(&b"foo"[..], &b"bar"[..]), (&b"k"[..], &b"v"[..])]
        );
        assert!(decode(&zm[..10]).is_err());
    }
}
