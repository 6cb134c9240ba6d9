//! LZF (liblzf 3.x format, as Redis's `lzf_c.c`/`lzf_d.c`) compression and decompression.
//!
//! Stream format: a control byte `c`.
//! - `c < 32`: a literal run of `c + 1` bytes follows.
//! - otherwise a back reference: `len = c >> 5` (when 7, add the next byte), offset high bits
//!   `c & 0x1f`, then one byte of offset low bits; copy `len + 2` bytes from
//!   `out_pos - offset - 1` (the regions may overlap).

/// Largest output a single input byte can produce: a 3-byte back reference expands to at most
/// 7 + 255 + 2 = 264 bytes, i.e. 88 bytes per input byte. Used to refuse absurd declared
/// lengths before allocating.
pub const LZF_EXPANSION_RATIO_MAX: u64 = 88;

const HLOG: u32 = 14;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 32;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Why decompression failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LzfError {
    /// The compressed data ended inside a literal run or a back reference.
    #[error("LZF data truncated at input byte {0}")]
    Truncated(usize),
    /// A back reference points before the start of the output.
    #[error("LZF back reference before start of output at input byte {0}")]
    BadReference(usize),
    /// The output would exceed the declared length.
    #[error("LZF output exceeds declared length {0}")]
    TooLong(usize),
    /// The output is shorter than the declared length.
    #[error("LZF output is {got} bytes, declared {declared}")]
    TooShort {
        /// Bytes produced.
        got: usize,
        /// Bytes declared.
        declared: usize,
    },
}

/// Decompresses `input` to exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() {
                return Err(LzfError::Truncated(ip));
            }
            if out.len() + run > out_len {
                return Err(LzfError::TooLong(out_len));
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&b) = input.get(ip) else {
                    return Err(LzfError::Truncated(ip));
                };
                len += b as usize;
                ip += 1;
            }
            let Some(&lo) = input.get(ip) else {
                return Err(LzfError::Truncated(ip));
            };
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + lo as usize + 1;
            if back > out.len() {
                return Err(LzfError::BadReference(ip));
            }
            let n = len + 2;
            if out.len() + n > out_len {
                return Err(LzfError::TooLong(out_len));
            }
            let start = out.len() - back;
            for i in 0..n {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err(LzfError::TooShort {
            got: out.len(),
            declared: out_len,
        });
    }
    Ok(out)
}

fn hash3(p: &[u8]) -> usize {
    let v = (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2]);
    (v.wrapping_mul(2654435761) >> (32 - HLOG)) as usize
}

/// Compresses `input`. Returns `None` when the result would not fit in `out_max` bytes (Redis
/// calls `lzf_compress` with `len - 4` and stores the string raw when it fails). Deterministic.
pub fn compress(input: &[u8], out_max: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(out_max.min(n + n / 32 + 1));
    let mut htab = vec![usize::MAX; HSIZE];
    // Start of the pending literal run in `input`, and its length.
    let mut lit_start = 0usize;
    let mut ip = 0usize;

    fn flush_literals(out: &mut Vec<u8>, lit: &[u8]) {
        for chunk in lit.chunks(MAX_LIT) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
    }

    while ip + 2 < n {
        let h = hash3(&input[ip..]);
        let cand = htab[h];
        htab[h] = ip;
        if cand != usize::MAX && ip - cand <= MAX_OFF && input[cand..cand + 3] == input[ip..ip + 3]
        {
            // Extend the match.
            let max_len = (n - ip).min(MAX_REF);
            let mut len = 3;
            while len < max_len && input[cand + len] == input[ip + len] {
                len += 1;
            }
            flush_literals(&mut out, &input[lit_start..ip]);
            let off = ip - cand - 1;
            let l = len - 2;
            if l < 7 {
                out.push(((l << 5) | (off >> 8)) as u8);
            } else {
                out.push(((7 << 5) | (off >> 8)) as u8);
                out.push((l - 7) as u8);
            }
            out.push((off & 0xff) as u8);
            if out.len() > out_max {
                return None;
            }
            // Index the positions inside the match (cheaply: the last two).
            let end = ip + len;
            for p in (end.saturating_sub(2))..end {
                if p + 2 < n && p > ip {
                    htab[hash3(&input[p..])] = p;
                }
            }
            ip = end;
            lit_start = ip;
        } else {
            ip += 1;
        }
        if out.len() + (ip - lit_start) > out_max + MAX_LIT {
            return None;
        }
    }
    flush_literals(&mut out, &input[lit_start..n]);
    if out.len() > out_max {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compressible_and_random_data() {
        let a: Vec<u8> = b"abcabcabcabcabcabcabcabcabcabcabcabc hello hello hello".repeat(50);
        let c = compress(&a, a.len()).expect("compressible");
        assert!(c.len() < a.len() / 4);
        assert_eq!(decompress(&c, a.len()).expect("valid"), a);

        let mut x: u64 = 0x1234_5678;
        let r: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x & 0xff) as u8
            })
            .collect();
        assert!(compress(&r, r.len() - 4).is_none());
        let c = compress(&r, r.len() * 2).expect("fits with room");
        assert_eq!(decompress(&c, r.len()).expect("valid"), r);
        let z = vec![0u8; 100_000];
        let c = compress(&z, z.len()).expect("zeros");
        assert_eq!(decompress(&c, z.len()).expect("valid"), z);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert_eq!(decompress(&[5, b'a'], 6), Err(LzfError::Truncated(1)));
        assert_eq!(
            decompress(&[0, b'a', 0x20, 5], 10),
            Err(LzfError::BadReference(4))
        );
        assert!(matches!(
            decompress(&[0, b'a'], 3),
            Err(LzfError::TooShort { .. })
        ));
        assert!(matches!(
            decompress(&[1, b'a', b'b'], 1),
            Err(LzfError::TooLong(1))
        ));
    }
}
