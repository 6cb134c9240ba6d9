//! INCRBYFLOAT arithmetic exactly as Redis 7.0 does it on x86-64: the stored value and the
//! increment are parsed with `strtold` into an x87 80-bit `long double` (64-bit significand),
//! added with round-to-nearest-even, and printed with `%.17Lf` with trailing zeros removed.
//!
//! Rust has no 80-bit float, so this module emulates one with exact big-integer arithmetic:
//! every step computes the exact rational result and rounds it once, as the hardware (and
//! glibc's correctly rounded `strtold`/`printf`) do. Values are `m * 2^e` with `m < 2^64`.

use std::cmp::Ordering;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: a string this long or longer is not a valid float.
pub const LONG_DOUBLE_CHARS_MAX: usize = 5 * 1024;
/// Significand bits of the x87 extended format.
const MANT_BITS: i64 = 64;
/// Binary exponent of the least significant significand bit of the smallest subnormal.
const EXP_LSB_MIN: i64 = -16445;
/// Binary exponent of the least significant significand bit of the largest finite value.
const EXP_LSB_MAX: i64 = 16320;
/// Decimal exponent bounds outside which a decimal literal certainly overflows / underflows
/// (largest finite ~1.19e4932, smallest subnormal ~3.6e-4951).
const DEC_EXP_OVERFLOW: i64 = 4933;
const DEC_EXP_UNDERFLOW: i64 = -4952;
/// Exponents in literals are saturated to this magnitude (glibc saturates too).
const LITERAL_EXP_SATURATE: i64 = 1_000_000;

/// An x87 extended-precision value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ld {
    Zero {
        neg: bool,
    },
    Inf {
        neg: bool,
    },
    /// `(-1)^neg * m * 2^e`, `m != 0`.
    Finite {
        neg: bool,
        m: u64,
        e: i64,
    },
}

/// A minimal unsigned big integer (little-endian 32-bit limbs, no trailing zero limbs).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut v: u128) -> Big {
        let mut l = Vec::new();
        while v != 0 {
            l.push(v as u32);
            v >>= 32;
        }
        Big(l)
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// Number of significant bits.
    fn bits(&self) -> i64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as i64 - 1) * 32 + (32 - top.leading_zeros() as i64),
        }
    }

    fn bit(&self, i: i64) -> bool {
        if i < 0 {
            return false;
        }
        let (limb, b) = ((i / 32) as usize, i % 32);
        self.0.get(limb).is_some_and(|&l| (l >> b) & 1 == 1)
    }

    /// True if any bit below position `i` (exclusive) is set.
    fn any_below(&self, i: i64) -> bool {
        if i <= 0 {
            return false;
        }
        let full = (i / 32) as usize;
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let rem = i % 32;
        rem > 0
            && self
                .0
                .get(full)
                .is_some_and(|&l| l & ((1u32 << rem) - 1) != 0)
    }

    /// Bits `[lo, lo + 128)` as an integer.
    fn extract(&self, lo: i64) -> u128 {
        let mut v = 0u128;
        for k in 0..128 {
            if self.bit(lo + k) {
                v |= 1u128 << k;
            }
        }
        v
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in self.0.iter_mut() {
            let t = *l as u64 * m as u64 + carry;
            *l = t as u32;
            carry = t >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = a as u64;
        for l in self.0.iter_mut() {
            if carry == 0 {
                break;
            }
            let t = *l as u64 + carry;
            *l = t as u32;
            carry = t >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// Divide in place by `d`, returning the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for l in self.0.iter_mut().rev() {
            let cur = (rem << 32) | *l as u64;
            *l = (cur / d as u64) as u32;
            rem = cur % d as u64;
        }
        self.trim();
        rem as u32
    }

    fn shl(&self, n: i64) -> Big {
        if self.is_zero() {
            return Big(Vec::new());
        }
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        let mut v = vec![0u32; limbs];
        if bits == 0 {
            v.extend_from_slice(&self.0);
        } else {
            let mut carry = 0u32;
            for &l in &self.0 {
                v.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
            v.push(carry);
        }
        let mut b = Big(v);
        b.trim();
        b
    }

    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut v = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let t = *self.0.get(i).unwrap_or(&0) as u64 + *o.0.get(i).unwrap_or(&0) as u64 + carry;
            v.push(t as u32);
            carry = t >> 32;
        }
        if carry != 0 {
            v.push(carry as u32);
        }
        Big(v)
    }

    /// `self - o`, requires `self >= o`.
    fn sub(&self, o: &Big) -> Big {
        let mut v = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut t = self.0[i] as i64 - *o.0.get(i).unwrap_or(&0) as i64 - borrow;
            borrow = 0;
            if t < 0 {
                t += 1 << 32;
                borrow = 1;
            }
            v.push(t as u32);
        }
        let mut b = Big(v);
        b.trim();
        b
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn pow10(k: i64) -> Big {
        let mut b = Big::from_u128(1);
        let mut k = k;
        while k >= 9 {
            b.mul_small(1_000_000_000);
            k -= 9;
        }
        while k > 0 {
            b.mul_small(10);
            k -= 1;
        }
        b
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut s = chunks.pop().map(|c| c.to_string()).unwrap_or_default();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// Round `(n + ε) * 2^e` (ε in (0,1) when `sticky`, else 0) to the extended format with
/// round-to-nearest-even. Overflow gives `Inf`, underflow `Zero`.
fn round(neg: bool, n: &Big, e: i64, sticky: bool) -> Ld {
    if n.is_zero() {
        return Ld::Zero { neg };
    }
    let b = n.bits();
    let e_res = (e + b - MANT_BITS).max(EXP_LSB_MIN);
    let shift = e_res - e;
    let (mut m, mut e_res) = if shift <= 0 {
        // Exact: fits in 64 bits after shifting left.
        ((n.extract(0) << (-shift) as u32) as u64, e_res)
    } else {
        let mut m = n.extract(shift) as u64;
        let guard = n.bit(shift - 1);
        let rest = sticky || n.any_below(shift - 1);
        let mut e_res = e_res;
        if guard && (rest || m & 1 == 1) {
            let (v, carry) = m.overflowing_add(1);
            m = v;
            if carry {
                m = 1 << 63;
                e_res += 1;
            }
        }
        (m, e_res)
    };
    if m == 0 {
        return Ld::Zero { neg };
    }
    if e_res > EXP_LSB_MAX {
        return Ld::Inf { neg };
    }
    // Normalise subnormal-range values that have room (keeps representation canonical).
    while m & (1 << 63) == 0 && e_res > EXP_LSB_MIN {
        m <<= 1;
        e_res -= 1;
    }
    Ld::Finite { neg, m, e: e_res }
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parse as Redis's `string2ld`: `strtold` must consume every byte (so no NUL, no trailing
/// garbage); no leading space; out-of-range (overflow, or underflow to zero) and NaN refused.
pub fn parse(s: &[u8]) -> Option<Ld> {
    if s.is_empty() || s.len() >= LONG_DOUBLE_CHARS_MAX || is_c_space(s[0]) {
        return None;
    }
    // strtold stops at a NUL; Redis then sees that not all `slen` bytes were consumed.
    if s.contains(&0) {
        return None;
    }
    let (neg, r) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = |t: &[u8]| t.to_ascii_lowercase();
    if r.len() >= 3 && lower(&r[..3]) == b"inf" {
        return if r.len() == 3 || lower(r) == b"infinity" {
            Some(Ld::Inf { neg })
        } else {
            None
        };
    }
    let v = if r.len() >= 2 && r[0] == b'0' && (r[1] == b'x' || r[1] == b'X') {
        parse_hex(neg, &r[2..])?
    } else {
        parse_dec(neg, r)?
    };
    match v {
        Ld::Inf { .. } => None, // ERANGE overflow
        _ => Some(v),
    }
}

/// Digits, optional fraction; returns (digits, fraction digit count, rest).
fn split_mantissa(r: &[u8], radix: u32) -> (Vec<u8>, i64, &[u8]) {
    let mut digits = Vec::new();
    let mut frac = 0i64;
    let mut i = 0;
    while i < r.len() && (r[i] as char).is_digit(radix) {
        digits.push(r[i]);
        i += 1;
    }
    if i < r.len() && r[i] == b'.' {
        i += 1;
        while i < r.len() && (r[i] as char).is_digit(radix) {
            digits.push(r[i]);
            frac += 1;
            i += 1;
        }
    }
    (digits, frac, &r[i..])
}

/// Parse `[eE|pP][+-]digits` taking all of `r`; `None` if `r` is anything else.
fn parse_exponent(r: &[u8], marker: u8) -> Option<i64> {
    if r.is_empty() {
        return Some(0);
    }
    if r[0].to_ascii_lowercase() != marker {
        return None;
    }
    let (neg, d) = match r.get(1) {
        Some(b'-') => (true, &r[2..]),
        Some(b'+') => (false, &r[2..]),
        _ => (false, &r[1..]),
    };
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = 0i64;
    for &c in d {
        v = (v * 10 + (c - b'0') as i64).min(LITERAL_EXP_SATURATE);
    }
    Some(if neg { -v } else { v })
}

fn parse_dec(neg: bool, r: &[u8]) -> Option<Ld> {
    let (digits, frac, rest) = split_mantissa(r, 10);
    if digits.is_empty() {
        return None;
    }
    let exp = parse_exponent(rest, b'e')?;
    let first = digits.iter().position(|&c| c != b'0');
    let Some(first) = first else {
        return Some(Ld::Zero { neg });
    };
    let last = digits.iter().rposition(|&c| c != b'0').unwrap_or(first);
    let sig = &digits[first..=last];
    let nd = sig.len() as i64;
    // value = sig * 10^eff
    let eff = exp - frac + (digits.len() - 1 - last) as i64;
    if nd - 1 + eff > DEC_EXP_OVERFLOW {
        return Some(Ld::Inf { neg });
    }
    if nd + eff < DEC_EXP_UNDERFLOW {
        return None; // underflow to zero: ERANGE
    }
    let mut d = Big(Vec::new());
    for &c in sig {
        d.mul_small(10);
        d.add_small((c - b'0') as u32);
    }
    let v = if eff >= 0 {
        let mut n = d;
        let mut k = eff;
        while k >= 9 {
            n.mul_small(1_000_000_000);
            k -= 9;
        }
        while k > 0 {
            n.mul_small(10);
            k -= 1;
        }
        round(neg, &n, 0, false)
    } else {
        let den = Big::pow10(-eff);
        let s = (den.bits() - d.bits() + MANT_BITS + 2).max(0);
        let num = d.shl(s);
        let (q, rem_nonzero) = long_div(&num, &den);
        round(neg, &Big::from_u128(q), -s, rem_nonzero)
    };
    match v {
        Ld::Zero { .. } => None, // nonzero literal rounded to zero: ERANGE
        v => Some(v),
    }
}

/// `num / den` where the quotient is known to fit in 127 bits; returns (quotient, rem != 0).
fn long_div(num: &Big, den: &Big) -> (u128, bool) {
    let qbits = (num.bits() - den.bits() + 1).clamp(0, 127);
    let mut r = num.clone();
    let mut q = 0u128;
    for i in (0..qbits).rev() {
        let t = den.shl(i);
        if r.cmp(&t) != Ordering::Less {
            r = r.sub(&t);
            q |= 1u128 << i;
        }
    }
    (q, !r.is_zero())
}

fn parse_hex(neg: bool, r: &[u8]) -> Option<Ld> {
    let (digits, frac, rest) = split_mantissa(r, 16);
    if digits.is_empty() {
        return None; // "0x" with no digits: strtold stops after the 0
    }
    let exp = parse_exponent(rest, b'p')?;
    let mut n = Big(Vec::new());
    for &c in &digits {
        n.mul_small(16);
        n.add_small((c as char).to_digit(16).unwrap_or(0));
    }
    if n.is_zero() {
        return Some(Ld::Zero { neg });
    }
    let e = exp - 4 * frac;
    if n.bits() + e > EXP_LSB_MAX + MANT_BITS + 1 {
        return Some(Ld::Inf { neg });
    }
    if n.bits() + e < EXP_LSB_MIN - 2 {
        return None;
    }
    match round(neg, &n, e, false) {
        Ld::Zero { .. } => None,
        v => Some(v),
    }
}

/// `a + b` rounded to the extended format; `None` if the result is NaN or infinite.
pub fn add(a: Ld, b: Ld) -> Option<Ld> {
    match (a, b) {
        (Ld::Inf { .. }, _) | (_, Ld::Inf { .. }) => None,
        (Ld::Zero { neg: na }, Ld::Zero { neg: nb }) => Some(Ld::Zero { neg: na && nb }),
        (Ld::Zero { .. }, x) | (x, Ld::Zero { .. }) => Some(x),
        (
            Ld::Finite {
                neg: na,
                m: ma,
                e: ea,
            },
            Ld::Finite {
                neg: nb,
                m: mb,
                e: eb,
            },
        ) => {
            let e = ea.min(eb);
            let x = Big::from_u128(ma as u128).shl(ea - e);
            let y = Big::from_u128(mb as u128).shl(eb - e);
            let (neg, n) = if na == nb {
                (na, x.add(&y))
            } else {
                match x.cmp(&y) {
                    Ordering::Equal => return Some(Ld::Zero { neg: false }),
                    Ordering::Greater => (na, x.sub(&y)),
                    Ordering::Less => (nb, y.sub(&x)),
                }
            };
            match round(neg, &n, e, false) {
                Ld::Inf { .. } => None,
                v => Some(v),
            }
        }
    }
}

/// Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, trailing zeros (and a trailing dot)
/// removed, `-0` printed as `0`.
pub fn format_human(v: Ld) -> String {
    const DECIMALS: usize = 17;
    let (neg, r) = match v {
        Ld::Zero { .. } => return "0".into(),
        Ld::Inf { neg } => return if neg { "-inf".into() } else { "inf".into() },
        Ld::Finite { neg, m, e } => {
            let mut n = Big::from_u128(m as u128);
            if e >= 0 {
                n = n.shl(e);
                let mut k = DECIMALS;
                while k > 0 {
                    n.mul_small(10);
                    k -= 1;
                }
                (neg, n)
            } else {
                let mut k = DECIMALS;
                while k > 0 {
                    n.mul_small(10);
                    k -= 1;
                }
                let sh = -e;
                let q_bits = (n.bits() - sh).max(0);
                // q = n >> sh, with round-half-even on the dropped bits.
                let mut q = Big(Vec::new());
                if q_bits > 0 {
                    let mut limbs = Vec::new();
                    let mut pos = sh;
                    while pos < n.bits() {
                        let mut l = 0u32;
                        for k in 0..32 {
                            if n.bit(pos + k) {
                                l |= 1 << k;
                            }
                        }
                        limbs.push(l);
                        pos += 32;
                    }
                    q = Big(limbs);
                    q.trim();
                }
                let guard = n.bit(sh - 1);
                let rest = n.any_below(sh - 1);
                if guard && (rest || q.bit(0)) {
                    q.add_small(1);
                }
                (neg, q)
            }
        }
    };
    let mut digits = r.to_decimal();
    if digits.len() <= DECIMALS {
        digits = format!("{}{}", "0".repeat(DECIMALS + 1 - digits.len()), digits);
    }
    let (int_part, frac_part) = digits.split_at(digits.len() - DECIMALS);
    let frac_part = frac_part.trim_end_matches('0');
    let mut s = String::with_capacity(digits.len() + 2);
    if neg {
        s.push('-');
    }
    s.push_str(int_part);
    if !frac_part.is_empty() {
        s.push('.');
        s.push_str(frac_part);
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> Option<String> {
        let x = parse(a.as_bytes())?;
        let y = parse(b.as_bytes())?;
        add(x, y).map(format_human)
    }

    #[test]
    fn matches_redis_long_double_results() {
        // Reference outputs from redis-server 7.0 on x86-64.
        assert_eq!(incr("10.5", "0.1").as_deref(), Some("10.6"));
        assert_eq!(incr("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(incr("1", "0x10").as_deref(), Some("17"));
        assert_eq!(incr("17", "0x1p3").as_deref(), Some("25"));
        assert_eq!(incr("25", ".5").as_deref(), Some("25.5"));
        assert_eq!(incr("25.5", "5.").as_deref(), Some("30.5"));
        assert_eq!(incr("30.5", "+1").as_deref(), Some("31.5"));
        assert_eq!(incr("31.5", "1e-4940").as_deref(), Some("31.5"));
        let big = incr("0", "1e300").unwrap();
        assert!(big.starts_with(
            "1000000000000000000008997324079559193870523944273290747938260082321265646596180935755849152083750497"
        ));
        assert_eq!(incr("5", "-5").as_deref(), Some("0"));
        assert_eq!(incr("-0.0", "0").as_deref(), Some("0"));
        assert_eq!(incr("3.0e3", "2.0e2").as_deref(), Some("3200"));
        assert_eq!(incr("0", "1e-30").as_deref(), Some("0"));
        assert_eq!(incr("0", "-1e-30").as_deref(), Some("0"));
    }

    #[test]
    fn refuses_what_strtold_refuses() {
        for bad in [
            "", " 1", "1 ", "1e", "1e+", "0x", "0x.p1", "nan", "-nan", "infx", "abc", ".", "-",
            "1e5000", "1e-5000", "1..2", "0x1p", "--1", "1,5",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(b"inf"), Some(Ld::Inf { neg: false }));
        assert_eq!(parse(b"-Infinity"), Some(Ld::Inf { neg: true }));
        assert_eq!(parse(b"\x00abc"), None);
        assert_eq!(parse(b"1\x00abc"), None);
        assert_eq!(parse(b"1\x00"), None);
        assert!(add(parse(b"inf").unwrap(), parse(b"1").unwrap()).is_none());
        assert!(add(parse(b"1e4932").unwrap(), parse(b"1e4932").unwrap()).is_none());
    }

    #[test]
    fn integers_are_exact() {
        for v in [
            0i64,
            1,
            -1,
            42,
            i64::MAX,
            i64::MIN,
            1 << 62,
            123456789012345678,
        ] {
            let s = v.to_string();
            let p = parse(s.as_bytes()).unwrap();
            assert_eq!(format_human(p), s);
        }
    }

    #[test]
    fn ties_round_to_even_when_printing() {
        // 2^-18 = 0.000003814697265625: the 18th decimal is an exact tie on an even digit.
        assert_eq!(
            format_human(parse(b"0x1p-18").unwrap()),
            "0.00000381469726562"
        );
        // 3 * 2^-18 = 0.000011444091796875: tie on an odd digit rounds up.
        assert_eq!(
            format_human(parse(b"0x3p-18").unwrap()),
            "0.00001144409179688"
        );
    }

    #[test]
    fn rounding_matches_f64_where_formats_agree() {
        // For values exactly representable in f64, parse must be exact.
        for s in ["0.5", "0.25", "1024.125", "-7.75", "0x1.8p1"] {
            let v = parse(s.as_bytes()).unwrap();
            let Ld::Finite { m, e, neg } = v else {
                panic!()
            };
            let f = (m as f64) * 2f64.powi(e as i32) * if neg { -1.0 } else { 1.0 };
            let expect = if s.starts_with("0x") {
                3.0
            } else {
                s.parse::<f64>().unwrap()
            };
            assert_eq!(f, expect, "{s}");
        }
    }
}
