//! Pure bit-level helpers for SETBIT/GETBIT/BITCOUNT/BITPOS/BITOP/BITFIELD, ported from the
//! semantics of Redis 7.0's bitops.c (including its overflow arithmetic, which BITFIELD's
//! replies expose bit for bit).

/// Number of set bits.
pub fn popcount(p: &[u8]) -> i64 {
    let mut n = 0i64;
    let mut chunks = p.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as i64;
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as i64)
        .sum::<i64>()
}

/// Redis's `redisBitpos`: position of the first bit equal to `bit` (MSB first). Not found:
/// -1 when looking for 1, `p.len() * 8` when looking for 0 (the string is zero padded).
pub fn bitpos(p: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    for (i, &b) in p.iter().enumerate() {
        if b != skip {
            let v = if bit { b } else { !b };
            return i as i64 * 8 + v.leading_zeros() as i64;
        }
    }
    if bit {
        -1
    } else {
        p.len() as i64 * 8
    }
}

/// Read `bits` bits at bit `offset` as an unsigned integer. The caller guarantees the range
/// is inside `p`.
pub fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let bit = (p[(o >> 3) as usize] >> (7 - (o & 7))) & 1;
        v = (v << 1) | bit as u64;
    }
    v
}

/// Read a two's complement signed field.
pub fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(p, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

/// Write the low `bits` bits of `value` at bit `offset`.
pub fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let bitval = (value >> (bits as u64 - 1 - j)) & 1;
        let o = offset + j;
        let byte = (o >> 3) as usize;
        let shift = 7 - (o & 7);
        p[byte] = (p[byte] & !(1 << shift)) | ((bitval as u8) << shift);
    }
}

/// BITFIELD overflow behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// Redis's `checkSignedBitfieldOverflow` with its exact (wrapping) arithmetic: returns
/// `Some(limit)` on overflow — the wrapped or saturated value (meaningless for Fail) — and
/// `None` when `value + incr` fits in a signed `bits`-bit field.
pub fn check_signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let msb = 1u64 << (bits - 1);
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & msb != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => min,
        })
    } else {
        None
    }
}

/// Redis's `checkUnsignedBitfieldOverflow` (bits <= 63).
pub fn check_unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max: u64 = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || {
        let mask = if bits >= 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if incr < 0 && incr < minincr {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => 0,
        })
    } else {
        None
    }
}

/// Edge masks of a BIT-unit range, as bitops.c computes them: bits of the first/last byte that
/// lie outside `[start_bit, end_bit]`.
pub fn edge_masks(start_bit: i64, end_bit: i64) -> (u8, u8) {
    let first = !((1u32 << (8 - (start_bit & 7))) - 1) as u8;
    let last = ((1u32 << (7 - (end_bit & 7))) - 1) as u8;
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popcount_and_bitpos() {
        assert_eq!(popcount(b"foobar"), 26);
        assert_eq!(popcount(&[0xff; 17]), 136);
        assert_eq!(bitpos(&[0xff, 0xf0, 0x00], false), 12);
        assert_eq!(bitpos(&[0x00, 0x00, 0x01], true), 23);
        assert_eq!(bitpos(&[0x00], true), -1);
        assert_eq!(bitpos(&[0xff, 0xff], false), 16);
        assert_eq!(bitpos(&[], false), 0);
    }

    #[test]
    fn fields_round_trip() {
        let mut p = vec![0u8; 16];
        for (off, bits, v) in [
            (0u64, 8u32, 200u64),
            (3, 5, 17),
            (13, 63, (1 << 62) + 5),
            (70, 1, 1),
        ] {
            set_unsigned(&mut p, off, bits, v);
            assert_eq!(get_unsigned(&p, off, bits), v);
        }
        set_unsigned(&mut p, 0, 8, (-56i64) as u64);
        assert_eq!(get_signed(&p, 0, 8), -56);
        set_unsigned(&mut p, 5, 64, i64::MIN as u64);
        assert_eq!(get_signed(&p, 5, 64), i64::MIN);
    }

    #[test]
    fn overflow_matches_redis() {
        // Values observed on redis-server 7.0.
        assert_eq!(check_signed_overflow(127, 1, 8, Overflow::Wrap), Some(-128));
        assert_eq!(check_signed_overflow(127, 1, 8, Overflow::Sat), Some(127));
        assert_eq!(check_signed_overflow(5, 0, 8, Overflow::Sat), None);
        // The SET path with i64::MIN into an i8 saturates to the *max* in Redis.
        assert_eq!(
            check_signed_overflow(i64::MIN, 0, 8, Overflow::Sat),
            Some(127)
        );
        assert_eq!(check_signed_overflow(200, 0, 8, Overflow::Wrap), Some(-56));
        assert_eq!(
            check_signed_overflow(i64::MIN, -1, 64, Overflow::Sat),
            Some(i64::MIN)
        );
        assert_eq!(
            check_signed_overflow(i64::MIN, -1, 64, Overflow::Wrap),
            Some(i64::MAX)
        );
        assert_eq!(check_signed_overflow(-4, -100, 3, Overflow::Sat), Some(-4));
        assert_eq!(check_unsigned_overflow(3, 1, 2, Overflow::Wrap), Some(0));
        assert_eq!(check_unsigned_overflow(3, 5, 2, Overflow::Sat), Some(3));
        assert_eq!(check_unsigned_overflow(1, -5, 2, Overflow::Sat), Some(0));
        assert_eq!(
            check_unsigned_overflow(u64::MAX, 0, 8, Overflow::Wrap),
            Some(255)
        );
        assert_eq!(check_unsigned_overflow(2, 1, 2, Overflow::Fail), None);
    }

    #[test]
    fn masks() {
        assert_eq!(edge_masks(0, 7), (0, 0));
        assert_eq!(edge_masks(3, 12), (0b1110_0000, 0b0000_0111));
    }
}
