//! Commands: HyperLogLog — PFADD, PFCOUNT, PFMERGE, PFDEBUG (GETREG, DECODE, ENCODING, TODENSE)
//! and PFSELFTEST, with Redis 7.0's replies, errors, notifications and propagation.
//!
//! A HyperLogLog is an ordinary string value whose bytes are exactly Redis's, so values move
//! between the two servers unchanged (RDB, AOF, DUMP/RESTORE, GET/SET). The layout, the hash,
//! the sparse opcodes and the estimator are in [`hll`]; this file only adds key handling.
//!
//! Logged forms: PFADD, PFMERGE and PFDEBUG GETREG/TODENSE (when they convert) as received;
//! PFCOUNT of one key is logged as received when it refreshed the cached cardinality (Redis
//! 7.0 counts it as a change and propagates it although the command is read-only).
//!
//! Known difference: when PFADD meets a corrupted sparse value part-way through its elements,
//! Redis keeps the registers already changed in memory without logging them; Strongbox leaves
//! the value as it was (the reply, `-INVALIDOBJ`, is the same).

use bytes::Bytes;

use crate::cmd::{cmd, flags::*, CommandSpec, Handler, KeySpec, KALL};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{CompactBytes, Value};
use crate::resp::{Reply, OK};

/// A command of the `hyperloglog` group, with its Redis version and summary (COMMAND DOCS).
#[allow(clippy::too_many_arguments)]
const fn c(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        since,
        summary,
        ..cmd(name, arity, flags, keys, "hyperloglog", handler)
    }
}

pub static COMMANDS: &[CommandSpec] = &[
    c(
        "pfadd",
        -2,
        WRITE | DENYOOM | FAST,
        KeySpec::Range(1, 1, 1),
        "2.8.9",
        "Adds the specified elements to the specified HyperLogLog.",
        pfadd,
    ),
    c(
        "pfcount",
        -2,
        READONLY | MAY_REPLICATE,
        KALL,
        "2.8.9",
        "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).",
        pfcount,
    ),
    c(
        "pfmerge",
        -2,
        WRITE | DENYOOM,
        KALL,
        "2.8.9",
        "Merge N different HyperLogLogs into a single one.",
        pfmerge,
    ),
    c(
        "pfdebug",
        3,
        WRITE | DENYOOM | ADMIN,
        KeySpec::Range(2, 2, 1),
        "2.8.9",
        "Internal commands for debugging HyperLogLog values",
        pfdebug,
    ),
    c(
        "pfselftest",
        1,
        ADMIN,
        KeySpec::None,
        "2.8.9",
        "An internal command for testing HyperLogLog values",
        pfselftest,
    ),
];

/// Redis's reply for a string that is not a HyperLogLog.
pub const WRONGTYPE_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
/// Redis's reply for a sparse HyperLogLog whose opcodes do not cover exactly 16384 registers.
pub const INVALIDOBJ: &str = "INVALIDOBJ Corrupted HLL object detected";

/// Pure HyperLogLog representation and math, byte-compatible with Redis's `hyperloglog.c`.
///
/// Layout: a 16-byte header — `HYLL`, the encoding (0 dense, 1 sparse), three unused bytes and
/// the cached cardinality (little endian, top bit of the last byte set = stale) — followed by
/// the registers: dense, 16384 six-bit registers packed from the low bits of each byte up
/// (12288 bytes); sparse, run-length opcodes `00xxxxxx` (1..64 zero registers), `01xxxxxx
/// yyyyyyyy` (1..16384 zero registers) and `1vvvvvxx` (1..4 registers of value 1..32).
pub mod hll {
    pub const HDR: usize = 16;
    pub const P: u32 = 14;
    pub const Q: usize = 64 - P as usize;
    pub const REGISTERS: usize = 1 << P;
    pub const DENSE_BYTES: usize = REGISTERS * 6 / 8;
    pub const DENSE_SIZE: usize = HDR + DENSE_BYTES;
    pub const DENSE: u8 = 0;
    pub const SPARSE: u8 = 1;
    pub const SPARSE_VAL_MAX: u8 = 32;
    const SEED: u64 = 0xadc8_3b19;
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

    /// A sparse value whose opcodes do not describe exactly the 16384 registers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Corrupt;

    /// Redis's `isHLLObjectOrReply` test: header, magic, known encoding, exact dense size.
    pub fn is_valid(b: &[u8]) -> bool {
        b.len() >= HDR
            && &b[..4] == b"HYLL"
            && b[4] <= SPARSE
            && (b[4] != DENSE || b.len() == DENSE_SIZE)
    }

    /// The value of an empty HyperLogLog as PFADD/PFMERGE create it: sparse, one XZERO of
    /// 16384, cached cardinality 0 (marked valid; the commands invalidate it).
    pub fn new_sparse() -> Vec<u8> {
        let mut v = vec![0u8; HDR + 2];
        v[..4].copy_from_slice(b"HYLL");
        v[4] = SPARSE;
        v[HDR] = 0x40 | ((REGISTERS - 1) >> 8) as u8;
        v[HDR + 1] = ((REGISTERS - 1) & 0xff) as u8;
        v
    }

    /// MurmurHash64A as Redis uses it (little-endian reads on every architecture).
    pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
        const M: u64 = 0xc6a4_a793_5bd1_e995;
        const R: u32 = 47;
        let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
        let mut chunks = data.chunks_exact(8);
        for ch in &mut chunks {
            let mut k =
                u64::from_le_bytes([ch[0], ch[1], ch[2], ch[3], ch[4], ch[5], ch[6], ch[7]]);
            k = k.wrapping_mul(M);
            k ^= k >> R;
            k = k.wrapping_mul(M);
            h ^= k;
            h = h.wrapping_mul(M);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            for (i, &b) in rest.iter().enumerate() {
                h ^= (b as u64) << (8 * i);
            }
            h = h.wrapping_mul(M);
        }
        h ^= h >> R;
        h = h.wrapping_mul(M);
        h ^= h >> R;
        h
    }

    /// The register an element goes to and the length of its `0…01` pattern (1..=Q+1).
    pub fn pattern(ele: &[u8]) -> (usize, u8) {
        let hash = murmur64a(ele, SEED);
        let index = (hash & (REGISTERS as u64 - 1)) as usize;
        let rest = (hash >> P) | (1u64 << Q);
        (index, (rest.trailing_zeros() + 1) as u8)
    }

    // ---- cached cardinality -------------------------------------------------------------

    pub fn cache_valid(b: &[u8]) -> bool {
        b[15] & 0x80 == 0
    }

    pub fn cached(b: &[u8]) -> Option<u64> {
        cache_valid(b).then(|| u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")))
    }

    pub fn set_cache(b: &mut [u8], card: u64) {
        b[8..16].copy_from_slice(&card.to_le_bytes());
    }

    pub fn invalidate_cache(b: &mut [u8]) {
        b[15] |= 0x80;
    }

    // ---- dense registers ----------------------------------------------------------------

    /// Register `i` of packed registers `r`; a byte past the end reads as 0 (Redis reads the
    /// string's terminating NUL there).
    pub fn dense_get(r: &[u8], i: usize) -> u8 {
        let byte = i * 6 / 8;
        let fb = (i * 6) & 7;
        let b0 = r[byte] as u32;
        let b1 = r.get(byte + 1).copied().unwrap_or(0) as u32;
        (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
    }

    pub fn dense_put(r: &mut [u8], i: usize, val: u8) {
        let byte = i * 6 / 8;
        let fb = (i * 6) & 7;
        let v = val as u32;
        r[byte] &= !((63u32 << fb) as u8);
        r[byte] |= (v << fb) as u8;
        if let Some(b1) = r.get_mut(byte + 1) {
            *b1 &= !((63u32 >> (8 - fb)) as u8);
            *b1 |= (v >> (8 - fb)) as u8;
        }
    }

    /// Raise register `i` to `count`; true if it changed.
    pub fn dense_set(r: &mut [u8], i: usize, count: u8) -> bool {
        if count > dense_get(r, i) {
            dense_put(r, i, count);
            true
        } else {
            false
        }
    }

    /// Calls `f(register index, value)` for every register of a dense body, in order.
    fn dense_each(r: &[u8], mut f: impl FnMut(usize, u8)) {
        for (g, ch) in r.chunks_exact(3).enumerate() {
            let (b0, b1, b2) = (ch[0], ch[1], ch[2]);
            f(4 * g, b0 & 63);
            f(4 * g + 1, ((b0 >> 6) | (b1 << 2)) & 63);
            f(4 * g + 2, ((b1 >> 4) | (b2 << 4)) & 63);
            f(4 * g + 3, b2 >> 2);
        }
    }

    // ---- sparse opcodes -----------------------------------------------------------------

    fn is_zero(b: u8) -> bool {
        b & 0xc0 == 0
    }
    fn is_xzero(b: u8) -> bool {
        b & 0xc0 == 0x40
    }
    fn is_val(b: u8) -> bool {
        b & 0x80 != 0
    }
    fn zero_len(b: u8) -> usize {
        (b & 0x3f) as usize + 1
    }
    fn xzero_len(b0: u8, b1: u8) -> usize {
        ((((b0 & 0x3f) as usize) << 8) | b1 as usize) + 1
    }
    fn val_value(b: u8) -> u8 {
        ((b >> 2) & 0x1f) + 1
    }
    fn val_len(b: u8) -> usize {
        (b & 3) as usize + 1
    }
    fn val_op(val: u8, len: usize) -> u8 {
        0x80 | ((val - 1) << 2) | (len as u8 - 1)
    }
    fn push_zeros(seq: &mut Vec<u8>, len: usize) {
        if len > 64 {
            seq.push(0x40 | ((len - 1) >> 8) as u8);
            seq.push(((len - 1) & 0xff) as u8);
        } else {
            seq.push((len - 1) as u8);
        }
    }

    /// One decoded opcode of a sparse body: (registers covered, value, bytes used).
    /// The second byte of an XZERO that is cut off reads as 0 (Redis reads the NUL there).
    fn opcode(body: &[u8], p: usize) -> (usize, u8, usize) {
        let b = body[p];
        if is_zero(b) {
            (zero_len(b), 0, 1)
        } else if is_xzero(b) {
            (xzero_len(b, body.get(p + 1).copied().unwrap_or(0)), 0, 2)
        } else {
            (val_len(b), val_value(b), 1)
        }
    }

    /// Calls `f(first register, run length, value)` for each non-zero run of a sparse body
    /// as long as the runs stay within the 16384 registers; Err if they do not cover them
    /// exactly.
    fn sparse_runs(body: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), Corrupt> {
        let mut idx = 0usize;
        let mut p = 0;
        while p < body.len() {
            let (run, val, used) = opcode(body, p);
            if idx + run > REGISTERS {
                return Err(Corrupt);
            }
            if val != 0 {
                f(idx, run, val);
            }
            idx += run;
            p += used;
        }
        if idx == REGISTERS {
            Ok(())
        } else {
            Err(Corrupt)
        }
    }

    /// The dense form of a valid sparse value (header copied, encoding changed).
    pub fn sparse_to_dense(v: &[u8]) -> Result<Vec<u8>, Corrupt> {
        let mut d = vec![0u8; DENSE_SIZE];
        d[..HDR].copy_from_slice(&v[..HDR]);
        d[4] = DENSE;
        let regs = &mut d[HDR..];
        sparse_runs(&v[HDR..], |first, run, val| {
            for i in first..first + run {
                dense_put(regs, i, val);
            }
        })?;
        Ok(d)
    }

    /// Redis's `hllSparseSet`: raise register `index` to `count` in the sparse value `v`,
    /// promoting it to dense when `count` does not fit a VAL opcode or the value would grow
    /// past `max_bytes`. Ok(true) if the register changed (the cache is then invalidated only
    /// when the value stayed sparse, as in Redis).
    pub fn sparse_set(
        v: &mut Vec<u8>,
        index: usize,
        count: u8,
        max_bytes: u64,
    ) -> Result<bool, Corrupt> {
        if count <= SPARSE_VAL_MAX {
            let len = v.len();
            // Room for the NUL Redis keeps after the string plus the 3 bytes it reserves.
            v.resize(len + 4, 0);
            let step = sparse_set_in_place(v, len, index, count, max_bytes);
            match step {
                Step::Unchanged => {
                    v.truncate(len);
                    return Ok(false);
                }
                Step::Updated(newlen) => {
                    v.truncate(newlen);
                    invalidate_cache(v);
                    return Ok(true);
                }
                Step::Corrupt => {
                    v.truncate(len);
                    return Err(Corrupt);
                }
                Step::Promote => v.truncate(len),
            }
        }
        let mut d = sparse_to_dense(v)?;
        dense_set(&mut d[HDR..], index, count);
        *v = d;
        Ok(true)
    }

    enum Step {
        Unchanged,
        Updated(usize),
        Corrupt,
        Promote,
    }

    /// The body of `sparse_set` on `v[..len]`, where `v` has at least 4 zero bytes of room
    /// after `len` (`v[len]` plays the part of the string's NUL).
    fn sparse_set_in_place(
        v: &mut [u8],
        mut len: usize,
        index: usize,
        count: u8,
        max_bytes: u64,
    ) -> Step {
        // Step 1: find the opcode covering `index`.
        let mut p = HDR;
        let mut end = len;
        let mut first = 0usize;
        let mut span = 0usize;
        let mut prev: Option<usize> = None;
        while p < end {
            let b = v[p];
            let mut oplen = 1;
            span = if is_zero(b) {
                zero_len(b)
            } else if is_val(b) {
                val_len(b)
            } else {
                oplen = 2;
                xzero_len(b, v[p + 1])
            };
            if index < first + span {
                break;
            }
            prev = Some(p);
            p += oplen;
            first += span;
        }
        if span == 0 || p >= end {
            return Step::Corrupt;
        }
        let op = v[p];
        let (xzero, zero) = (is_xzero(op), is_zero(op));
        let next = if xzero { p + 2 } else { p + 1 };
        let next = (next < end).then_some(next);
        let runlen = if zero {
            zero_len(op)
        } else if xzero {
            xzero_len(op, v[p + 1])
        } else {
            val_len(op)
        };

        // Step 2: the trivial in-place updates.
        let mut in_place = false;
        if !zero && !xzero {
            let old = val_value(op);
            if old >= count {
                return Step::Unchanged;
            }
            if runlen == 1 {
                v[p] = val_op(count, 1);
                in_place = true;
            }
        }
        if zero && runlen == 1 {
            v[p] = val_op(count, 1);
            in_place = true;
        }

        if !in_place {
            // The general case: split the opcode into up to three.
            let last = first + span - 1;
            let mut seq: Vec<u8> = Vec::with_capacity(5);
            if zero || xzero {
                if index != first {
                    push_zeros(&mut seq, index - first);
                }
                seq.push(val_op(count, 1));
                if index != last {
                    push_zeros(&mut seq, last - index);
                }
            } else {
                let cur = val_value(op);
                if index != first {
                    seq.push(val_op(cur, index - first));
                }
                seq.push(val_op(count, 1));
                if index != last {
                    seq.push(val_op(cur, last - index));
                }
            }
            // Step 3: put the new sequence in place of the old opcode.
            let oldlen: isize = if xzero { 2 } else { 1 };
            let delta = seq.len() as isize - oldlen;
            if delta > 0 && (len as u64).saturating_add(delta as u64) > max_bytes {
                return Step::Promote;
            }
            if delta != 0 {
                if let Some(nx) = next {
                    v.copy_within(nx..end, (nx as isize + delta) as usize);
                }
            }
            len = (len as isize + delta) as usize;
            v[len] = 0;
            v[p..p + seq.len()].copy_from_slice(&seq);
            end = (end as isize + delta) as usize;
        }

        // Step 4: merge adjacent VAL opcodes of the same value around the change.
        let mut p = prev.unwrap_or(HDR);
        let mut scan = 5;
        while p < end {
            if scan == 0 {
                break;
            }
            scan -= 1;
            let b = v[p];
            if is_xzero(b) {
                p += 2;
                continue;
            }
            if is_zero(b) {
                p += 1;
                continue;
            }
            if p + 1 < end && is_val(v[p + 1]) {
                let v1 = val_value(b);
                let v2 = val_value(v[p + 1]);
                if v1 == v2 {
                    let l = val_len(b) + val_len(v[p + 1]);
                    if l <= 4 {
                        v[p + 1] = val_op(v1, l);
                        v.copy_within(p + 1..end + 1, p);
                        len -= 1;
                        v[len] = 0;
                        end -= 1;
                        continue;
                    }
                }
            }
            p += 1;
        }
        Step::Updated(len)
    }

    /// Add one element (Redis's `hllAdd`); Ok(true) if a register changed.
    pub fn add(v: &mut Vec<u8>, ele: &[u8], max_bytes: u64) -> Result<bool, Corrupt> {
        let (index, count) = pattern(ele);
        if v[4] == DENSE {
            Ok(dense_set(&mut v[HDR..], index, count))
        } else {
            sparse_set(v, index, count, max_bytes)
        }
    }

    /// Register value histogram of a valid value (Err for a corrupted sparse one).
    pub fn histogram(v: &[u8]) -> Result<[u32; 64], Corrupt> {
        let mut h = [0u32; 64];
        if v[4] == DENSE {
            dense_each(&v[HDR..], |_, r| h[r as usize] += 1);
        } else {
            let mut nonzero = 0u32;
            sparse_runs(&v[HDR..], |_, run, val| {
                h[val as usize] += run as u32;
                nonzero += run as u32;
            })?;
            h[0] = REGISTERS as u32 - nonzero;
        }
        Ok(h)
    }

    /// Histogram of plain one-byte-per-register values (PFCOUNT of several keys).
    pub fn raw_histogram(regs: &[u8]) -> [u32; 64] {
        let mut h = [0u32; 64];
        for &r in regs {
            h[(r & 63) as usize] += 1;
        }
        h
    }

    fn sigma(mut x: f64) -> f64 {
        if x == 1.0 {
            return f64::INFINITY;
        }
        let mut y = 1.0;
        let mut z = x;
        loop {
            x *= x;
            let zp = z;
            z += x * y;
            y += y;
            if zp == z {
                return z;
            }
        }
    }

    fn tau(mut x: f64) -> f64 {
        if x == 0.0 || x == 1.0 {
            return 0.0;
        }
        let mut y = 1.0;
        let mut z = 1.0 - x;
        loop {
            x = x.sqrt();
            let zp = z;
            y *= 0.5;
            let d = 1.0 - x;
            z -= d * d * y;
            if zp == z {
                return z / 3.0;
            }
        }
    }

    /// Ertl's improved estimator, as Redis 7 computes it (result of `llroundl`, which gives
    /// LLONG_MIN for an infinite estimate, reinterpreted as unsigned).
    pub fn estimate(h: &[u32; 64]) -> u64 {
        let m = REGISTERS as f64;
        let mut z = m * tau((m - h[Q + 1] as f64) / m);
        for j in (1..=Q).rev() {
            z += h[j] as f64;
            z *= 0.5;
        }
        z += m * sigma(h[0] as f64 / m);
        let e = ALPHA_INF * m * m / z;
        if e.is_finite() && e.abs() < i64::MAX as f64 {
            e.round() as i64 as u64
        } else {
            i64::MIN as u64
        }
    }

    /// Cardinality of a valid value, ignoring the cache.
    pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
        Ok(estimate(&histogram(v)?))
    }

    /// `max[i] = max(max[i], register i of v)` (Redis's `hllMerge`).
    pub fn merge_into(max: &mut [u8], v: &[u8]) -> Result<(), Corrupt> {
        if v[4] == DENSE {
            dense_each(&v[HDR..], |i, r| {
                if r > max[i] {
                    max[i] = r;
                }
            });
            Ok(())
        } else {
            sparse_runs(&v[HDR..], |first, run, val| {
                for m in &mut max[first..first + run] {
                    if val > *m {
                        *m = val;
                    }
                }
            })
        }
    }

    /// PFDEBUG DECODE's text for a sparse body (no validation, as Redis).
    pub fn decode(v: &[u8]) -> String {
        use std::fmt::Write;
        let body = &v[HDR..];
        let mut s = String::new();
        let mut p = 0;
        while p < body.len() {
            let b = body[p];
            let (run, val, used) = opcode(body, p);
            if is_zero(b) {
                let _ = write!(s, "z:{run} ");
            } else if is_xzero(b) {
                let _ = write!(s, "Z:{run} ");
            } else {
                let _ = write!(s, "v:{val},{run} ");
            }
            p += used;
        }
        s.trim_matches(' ').to_string()
    }

    /// PFSELFTEST: register packing, sparse/dense agreement and estimator error bounds.
    pub fn selftest() -> Result<(), String> {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Register packing.
        let mut regs = vec![0u8; DENSE_BYTES];
        let mut want = vec![0u8; REGISTERS];
        for _ in 0..100 {
            for (i, w) in want.iter_mut().enumerate() {
                *w = (rnd() & 63) as u8;
                dense_put(&mut regs, i, *w);
            }
            for (i, &w) in want.iter().enumerate() {
                if dense_get(&regs, i) != w {
                    return Err(format!("TESTFAILED Register error at {i}"));
                }
            }
        }
        // Estimates against the true cardinality, sparse and dense side by side.
        let mut sparse = new_sparse();
        let mut dense = sparse_to_dense(&sparse).map_err(|_| "TESTFAILED sparse to dense")?;
        let relerr = 1.04 / (REGISTERS as f64).sqrt();
        let mut checkpoint = 1u64;
        for j in 1..=100_000u64 {
            let ele = rnd().to_le_bytes();
            let a = add(&mut sparse, &ele, 3000).map_err(|_| "TESTFAILED sparse add")?;
            let b = add(&mut dense, &ele, 3000).map_err(|_| "TESTFAILED dense add")?;
            if a != b {
                return Err(format!("TESTFAILED sparse and dense disagree at {j}"));
            }
            if j == checkpoint {
                let cs = count(&sparse).map_err(|_| "TESTFAILED corrupted sparse")?;
                let cd = count(&dense).map_err(|_| "TESTFAILED corrupted dense")?;
                if cs != cd {
                    return Err(format!(
                        "TESTFAILED sparse {cs} and dense {cd} counts differ"
                    ));
                }
                let maxerr = (relerr * 6.0 * checkpoint as f64).max(1.0);
                let abserr = (checkpoint as f64 - cd as f64).abs();
                if abserr > maxerr {
                    return Err(format!(
                        "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
                    ));
                }
                checkpoint *= 10;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Key access

/// The value at `key` if it is a HyperLogLog: Ok(None) if missing, Redis's WRONGTYPE errors
/// for another type or a string that is not a HyperLogLog.
fn lookup_hll(ctx: &mut Ctx, key: &[u8], write: bool) -> Result<Option<Bytes>, Reply> {
    let o = if write {
        ctx.lookup_mut(key).map(|o| &*o)
    } else {
        ctx.lookup(key)
    };
    let Some(o) = o else {
        return Ok(None);
    };
    let Value::Str(s) = &o.value else {
        return Err(Reply::err(crate::cmd::err::WRONGTYPE));
    };
    let b = s.to_bytes();
    if hll::is_valid(&b) {
        Ok(Some(b))
    } else {
        Err(Reply::err(WRONGTYPE_HLL))
    }
}

/// Replace the bytes of the existing string at `key`, keeping its TTL.
fn store(ctx: &mut Ctx, key: &[u8], v: Vec<u8>) {
    if let Some(o) = ctx.lookup_mut(key) {
        o.value = Value::Str(CompactBytes::from_bytes(Bytes::from(v)));
    }
}

fn sparse_max_bytes(ctx: &Ctx) -> u64 {
    ctx.cfg_i64("hll-sparse-max-bytes").max(0) as u64
}

// ---------------------------------------------------------------------------------------------
// Commands

fn pfadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let (mut v, created) = match lookup_hll(ctx, key, true) {
        Err(e) => return e,
        Ok(None) => (hll::new_sparse(), true),
        Ok(Some(b)) => (b.to_vec(), false),
    };
    let max_bytes = sparse_max_bytes(ctx);
    let mut updated = created as u64;
    for ele in &args[2..] {
        match hll::add(&mut v, ele, max_bytes) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(hll::Corrupt) => return Reply::err(INVALIDOBJ),
        }
    }
    if updated > 0 {
        hll::invalidate_cache(&mut v);
        if created {
            ctx.set_key(key, Value::Str(CompactBytes::from_bytes(Bytes::from(v))));
        } else {
            store(ctx, key, v);
            ctx.modified(key);
        }
        ctx.notify(notify::STRING, "pfadd", key);
        ctx.dirty(updated);
    }
    Reply::Int((updated > 0) as i64)
}

fn pfcount(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        // The union of several keys, computed on a temporary: the keys are not changed.
        let mut max = vec![0u8; hll::REGISTERS];
        for key in &args[1..] {
            match lookup_hll(ctx, key, false) {
                Err(e) => return e,
                Ok(None) => {}
                Ok(Some(b)) => {
                    if hll::merge_into(&mut max, &b).is_err() {
                        return Reply::err(INVALIDOBJ);
                    }
                }
            }
        }
        return Reply::Int(hll::estimate(&hll::raw_histogram(&max)) as i64);
    }
    let key = &args[1];
    let b = match lookup_hll(ctx, key, false) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(b)) => b,
    };
    if let Some(card) = hll::cached(&b) {
        return Reply::Int(card as i64);
    }
    let Ok(card) = hll::count(&b) else {
        return Reply::err(INVALIDOBJ);
    };
    let mut v = b.to_vec();
    drop(b);
    hll::set_cache(&mut v, card);
    // The cache lives in the value: a change to the dataset, logged as the command itself
    // (Redis 7.0 propagates PFCOUNT in this case).
    if ctx.srv.snapshot.as_ref().is_some_and(|s| s.intercepting()) {
        let db = ctx.db_index();
        crate::compaction::before_write(ctx.srv, db, &COMMANDS[1], args);
    }
    store(ctx, key, v);
    ctx.modified(key);
    ctx.dirty(1);
    ctx.propagate(args.to_vec());
    Reply::Int(card as i64)
}

fn pfmerge(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut use_dense = false;
    for key in &args[1..] {
        match lookup_hll(ctx, key, false) {
            Err(e) => return e,
            Ok(None) => {}
            Ok(Some(b)) => {
                if b[4] == hll::DENSE {
                    use_dense = true;
                }
                if hll::merge_into(&mut max, &b).is_err() {
                    return Reply::err(INVALIDOBJ);
                }
            }
        }
    }
    let dest = &args[1];
    let (mut v, created) = match lookup_hll(ctx, dest, true) {
        Err(e) => return e,
        Ok(None) => (hll::new_sparse(), true),
        Ok(Some(b)) => (b.to_vec(), false),
    };
    if use_dense && v[4] == hll::SPARSE {
        match hll::sparse_to_dense(&v) {
            Ok(d) => v = d,
            Err(hll::Corrupt) => return Reply::err(INVALIDOBJ),
        }
    }
    let max_bytes = sparse_max_bytes(ctx);
    for (i, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if v[4] == hll::DENSE {
            hll::dense_set(&mut v[hll::HDR..], i, m);
        } else {
            // As Redis, a failure here (impossible: the destination was checked as a source)
            // is ignored.
            let _ = hll::sparse_set(&mut v, i, m, max_bytes);
        }
    }
    hll::invalidate_cache(&mut v);
    if created {
        ctx.set_key(dest, Value::Str(CompactBytes::from_bytes(Bytes::from(v))));
    } else {
        store(ctx, dest, v);
        ctx.modified(dest);
    }
    ctx.notify(notify::STRING, "pfadd", dest);
    ctx.dirty(1);
    OK
}

fn pfdebug(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[2];
    let b = match lookup_hll(ctx, key, true) {
        Err(e) => return e,
        Ok(None) => return Reply::err("ERR The specified key does not exist"),
        Ok(Some(b)) => b,
    };
    // Redis compares and prints the subcommand as a C string.
    let sub = &args[1][..args[1]
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(args[1].len())];
    let sparse = b[4] == hll::SPARSE;
    if sub.eq_ignore_ascii_case(b"getreg") {
        let dense = if sparse {
            let Ok(d) = hll::sparse_to_dense(&b) else {
                return Reply::err(INVALIDOBJ);
            };
            drop(b);
            store(ctx, key, d.clone());
            ctx.dirty(1);
            d
        } else {
            b.to_vec()
        };
        let regs = &dense[hll::HDR..];
        Reply::Array(
            (0..hll::REGISTERS)
                .map(|i| Reply::Int(hll::dense_get(regs, i) as i64))
                .collect(),
        )
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if !sparse {
            return Reply::err("ERR HLL encoding is not sparse");
        }
        Reply::Bulk(Bytes::from(hll::decode(&b)))
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        Reply::Status(if sparse { "sparse" } else { "dense" })
    } else if sub.eq_ignore_ascii_case(b"todense") {
        if !sparse {
            return Reply::Int(0);
        }
        let Ok(d) = hll::sparse_to_dense(&b) else {
            return Reply::err(INVALIDOBJ);
        };
        drop(b);
        store(ctx, key, d);
        ctx.dirty(1);
        Reply::Int(1)
    } else {
        let name: String = String::from_utf8_lossy(sub)
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        Reply::Error(format!("ERR Unknown PFDEBUG subcommand '{name}'"))
    }
}

fn pfselftest(_ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    match hll::selftest() {
        Ok(()) => OK,
        Err(e) => Reply::Error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::hll::*;
    use super::*;
    use quickcheck::{QuickCheck, TestResult};

    fn dense_empty() -> Vec<u8> {
        sparse_to_dense(&new_sparse()).unwrap()
    }

    #[test]
    fn hll_murmur_reads_unaligned_input_little_endian() {
        assert_eq!(murmur64a(b"", 0), 0);
        let data = b"xhello world, unaligned";
        let copy = data[1..].to_vec();
        assert_eq!(
            murmur64a(&data[1..], 0xadc8_3b19),
            murmur64a(&copy, 0xadc8_3b19)
        );
        // Every tail length (len % 8) takes its own branch.
        let hashes: std::collections::HashSet<u64> = (0..17)
            .map(|n| murmur64a(&data[..n], 0xadc8_3b19))
            .collect();
        assert_eq!(hashes.len(), 17);
    }

    #[test]
    fn hll_redis_bytes_for_three_elements() {
        // Taken from redis-server 7.0: PFADD a x y z; PFMERGE d a; GET d.
        let mut v = new_sparse();
        for e in [b"x", b"y", b"z"] {
            assert_eq!(add(&mut v, e, 3000), Ok(true));
        }
        invalidate_cache(&mut v);
        let mut want = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
        want.extend_from_slice(b"a\x84\x80X\xcd\x88E\xa0\x84\x08");
        assert_eq!(v, want);
        assert_eq!(decode(&v), "Z:8581 v:1,1 Z:6350 v:3,1 Z:1441 v:2,1 z:9");
        assert_eq!(count(&v), Ok(3));
    }

    #[test]
    fn hll_dense_registers_round_trip() {
        let mut r = vec![0u8; DENSE_BYTES];
        for i in 0..REGISTERS {
            dense_put(&mut r, i, (i * 7 % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&r, i), (i * 7 % 64) as u8);
        }
    }

    #[test]
    fn hll_sparse_and_dense_agree_and_promote() {
        let mut s = new_sparse();
        let mut d = dense_empty();
        for i in 0..5000u32 {
            let e = i.to_le_bytes();
            assert_eq!(
                add(&mut s, &e, 3000).unwrap(),
                add(&mut d, &e, 3000).unwrap()
            );
            if s[4] == SPARSE {
                assert!(s.len() <= 3000);
                assert_eq!(sparse_to_dense(&s).unwrap()[HDR..], d[HDR..]);
            }
        }
        assert_eq!(s[4], DENSE);
        assert_eq!(s[HDR..], d[HDR..]);
        let c = count(&d).unwrap();
        assert!((4900..5100).contains(&c), "{c}");
        assert!(selftest().is_ok());
    }

    #[test]
    fn hll_estimate_edges() {
        assert_eq!(count(&new_sparse()), Ok(0));
        let mut d = dense_empty();
        for b in &mut d[HDR..] {
            *b = 0xff;
        }
        assert_eq!(count(&d), Ok(i64::MIN as u64));
    }

    #[test]
    fn hll_corrupt_sparse_detected() {
        let mut v = new_sparse();
        v.truncate(HDR);
        assert_eq!(count(&v), Err(Corrupt));
        assert_eq!(add(&mut v, b"a", 3000), Err(Corrupt));
        assert_eq!(v.len(), HDR);
        let mut v = new_sparse();
        v.extend_from_slice(b"\x7f\xff");
        assert_eq!(count(&v), Err(Corrupt));
        assert_eq!(add(&mut v, b"a", 3000), Ok(true));
    }

    /// Arbitrary bytes behind a valid-looking header never make any operation panic, and the
    /// results stay within Redis's bounds.
    fn ops_never_panic(body: Vec<u8>, dense: bool, elems: Vec<Vec<u8>>, max: u16) -> TestResult {
        let mut v = b"HYLL".to_vec();
        v.push(if dense { DENSE } else { SPARSE });
        v.extend_from_slice(&[0; 11]);
        if dense {
            let mut b = body.clone();
            b.resize(DENSE_BYTES, 0);
            v.extend_from_slice(&b);
        } else {
            v.extend_from_slice(&body);
        }
        assert!(is_valid(&v));
        let _ = count(&v);
        let mut max_regs = vec![0u8; REGISTERS];
        let merged = merge_into(&mut max_regs, &v);
        assert_eq!(merged.is_ok(), count(&v).is_ok());
        if !dense {
            let _ = decode(&v);
            let _ = sparse_to_dense(&v);
        }
        let before = v.clone();
        for e in &elems {
            let len = v.len();
            match add(&mut v, e, max as u64) {
                Ok(_) => {
                    assert!(v.len() <= (len + 3).max(DENSE_SIZE));
                    assert!(is_valid(&v));
                }
                Err(Corrupt) => break,
            }
        }
        for i in (0..REGISTERS).step_by(997) {
            let mut w = before.clone();
            let _ = sparse_set_or_dense(&mut w, i, (i % 64) as u8, max as u64);
        }
        TestResult::passed()
    }

    fn sparse_set_or_dense(v: &mut Vec<u8>, i: usize, c: u8, max: u64) -> Result<bool, Corrupt> {
        if v[4] == DENSE {
            Ok(dense_set(&mut v[HDR..], i, c))
        } else {
            sparse_set(v, i, c.max(1), max)
        }
    }

    #[test]
    fn hll_quickcheck_arbitrary_values() {
        QuickCheck::new()
            .tests(300)
            .quickcheck(ops_never_panic as fn(Vec<u8>, bool, Vec<Vec<u8>>, u16) -> TestResult);
    }

    /// Arbitrary whole values (any header) through the command handlers.
    fn handlers_never_panic(value: Vec<u8>, hdr: bool, sparse: bool, elems: Vec<Vec<u8>>) -> bool {
        let mut v = value;
        if hdr {
            let mut h = b"HYLL".to_vec();
            h.push(if sparse { SPARSE } else { DENSE });
            h.extend_from_slice(&[0; 11]);
            h.extend_from_slice(&v);
            v = h;
        }
        let (mut srv, mut c) = server_and_client();
        run(&mut srv, &mut c, &[b"SET", b"h", &v]);
        run(&mut srv, &mut c, &[b"PFADD", b"ok", b"a", b"b"]);
        let valid = is_valid(&v);
        let check = |r: &Reply| match r {
            Reply::Error(e) => {
                assert!(
                    e == WRONGTYPE_HLL || e == INVALIDOBJ || e == "ERR HLL encoding is not sparse",
                    "{e}"
                );
                if e == WRONGTYPE_HLL {
                    assert!(!valid);
                }
            }
            _ => assert!(valid),
        };
        let mut cmds: Vec<Vec<&[u8]>> = vec![
            vec![b"PFCOUNT", b"h"],
            vec![b"PFCOUNT", b"h", b"ok"],
            vec![b"PFDEBUG", b"DECODE", b"h"],
            vec![b"PFDEBUG", b"ENCODING", b"h"],
            vec![b"PFMERGE", b"ok", b"h"],
            vec![b"PFMERGE", b"h", b"ok"],
            vec![b"PFDEBUG", b"TODENSE", b"h"],
            vec![b"PFDEBUG", b"GETREG", b"h"],
        ];
        let mut add: Vec<&[u8]> = vec![b"PFADD", b"h"];
        add.extend(elems.iter().map(|e| e.as_slice()));
        cmds.insert(0, add);
        for cmd in &cmds {
            let r = run(&mut srv, &mut c, cmd);
            check(&r);
        }
        true
    }

    fn server_and_client() -> (crate::exec::Server, crate::client::Client) {
        use std::sync::Arc;
        let cfg = crate::config::Config::from_args(&[]).expect("default config");
        let srv = crate::exec::Server::new(cfg);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(crate::client::ConnShared::default());
        let c = crate::client::Client::new(1, tx, shared, "test".into(), "test".into(), 0, false);
        (srv, c)
    }

    fn run(srv: &mut crate::exec::Server, c: &mut crate::client::Client, args: &[&[u8]]) -> Reply {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let spec = crate::cmd::table().get(&argv[0]).expect("command");
        crate::exec::call(srv, c, spec, &argv, false)
    }

    #[test]
    fn hll_quickcheck_handlers() {
        QuickCheck::new()
            .tests(150)
            .quickcheck(handlers_never_panic as fn(Vec<u8>, bool, bool, Vec<Vec<u8>>) -> bool);
    }

    #[test]
    fn hll_pfcount_caches_and_propagates() {
        let (mut srv, mut c) = server_and_client();
        assert!(matches!(
            run(&mut srv, &mut c, &[b"PFADD", b"k", b"a", b"b", b"c"]),
            Reply::Int(1)
        ));
        assert!(matches!(
            run(&mut srv, &mut c, &[b"PFCOUNT", b"k"]),
            Reply::Int(3)
        ));
        let Reply::Bulk(v) = run(&mut srv, &mut c, &[b"GET", b"k"]) else {
            panic!("GET")
        };
        assert_eq!(cached(&v), Some(3));
    }
}
