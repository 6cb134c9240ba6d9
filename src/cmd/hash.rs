//! Hash commands: HSET, HSETNX, HMSET, HGET, HMGET, HGETALL, HKEYS, HVALS, HDEL, HEXISTS, HLEN,
//! HSTRLEN, HINCRBY, HINCRBYFLOAT, HRANDFIELD, HSCAN — replies, error texts and events as Redis
//! 7.0 `t_hash.c`. HINCRBYFLOAT is logged as `HSET key field <result>`.

use bytes::Bytes;
use rand::Rng;

use crate::cmd::keys::parse_scan;
use crate::cmd::{cmd, err, flags::*, CommandSpec, K1};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{Db, Value};
use crate::resp::{Reply, OK};
use crate::types::hash::{Hash, HashLimits};
use crate::util::{glob_match, parse_i64};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("hset", -4, WRITE | DENYOOM | FAST, K1, "hash", hset),
    cmd("hsetnx", 4, WRITE | DENYOOM | FAST, K1, "hash", hsetnx),
    cmd("hmset", -4, WRITE | DENYOOM | FAST, K1, "hash", hmset),
    cmd("hget", 3, READONLY | FAST, K1, "hash", hget),
    cmd("hmget", -3, READONLY | FAST, K1, "hash", hmget),
    cmd("hgetall", 2, READONLY, K1, "hash", hgetall),
    cmd("hkeys", 2, READONLY, K1, "hash", hkeys),
    cmd("hvals", 2, READONLY, K1, "hash", hvals),
    cmd("hdel", -3, WRITE | FAST, K1, "hash", hdel),
    cmd("hexists", 3, READONLY | FAST, K1, "hash", hexists),
    cmd("hlen", 2, READONLY | FAST, K1, "hash", hlen),
    cmd("hstrlen", 3, READONLY | FAST, K1, "hash", hstrlen),
    cmd("hincrby", 4, WRITE | DENYOOM | FAST, K1, "hash", hincrby),
    cmd(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        K1,
        "hash",
        hincrbyfloat,
    ),
    cmd("hrandfield", -2, READONLY, K1, "hash", hrandfield),
    cmd("hscan", -3, READONLY, K1, "hash", hscan),
];

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// The thresholds from the live config.
pub fn limits(ctx: &Ctx) -> HashLimits {
    HashLimits {
        max_entries: ctx.cfg_i64("hash-max-listpack-entries").max(0) as usize,
        max_value: ctx.cfg_i64("hash-max-listpack-value").max(0) as usize,
    }
}

/// The hash at `key`: Ok(None) if missing, Err(WRONGTYPE) for another type.
fn hash_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Hash>, Reply> {
    match ctx.lookup_mut(key) {
        None => Ok(None),
        Some(o) => match &mut o.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(Reply::err(err::WRONGTYPE)),
        },
    }
}

/// Redis's `hashTypeLookupWriteOrCreate`: the hash at `key`, created empty if missing.
fn hash_or_create<'a>(ctx: &'a mut Ctx, key: &Bytes) -> Result<&'a mut Hash, Reply> {
    if hash_mut(ctx, key)?.is_none() {
        ctx.set_key(key.clone(), Value::Hash(Box::default()));
    }
    match hash_mut(ctx, key)? {
        Some(h) => Ok(h),
        None => Err(Reply::err(err::NO_KEY)),
    }
}

fn set_pairs(ctx: &mut Ctx, args: &[Bytes]) -> Result<i64, Reply> {
    if args.len() % 2 == 1 {
        return Err(crate::cmd::arity_error(&String::from_utf8_lossy(&args[0])));
    }
    let lim = limits(ctx);
    let key = &args[1];
    let h = hash_or_create(ctx, key)?;
    // Redis converts before inserting when any argument is too long for a listpack.
    if h.is_packed() && args[2..].iter().any(|a| a.len() > lim.max_value) {
        h.convert();
    }
    let mut created = 0;
    for pair in args[2..].chunks(2) {
        if h.set(&pair[0], &pair[1], lim) {
            created += 1;
        }
    }
    ctx.modified(key);
    ctx.notify(notify::HASH, "hset", key);
    ctx.dirty(((args.len() - 2) / 2) as u64);
    Ok(created)
}

fn hset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match set_pairs(ctx, args) {
        Ok(n) => Reply::Int(n),
        Err(e) => e,
    }
}

fn hmset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match set_pairs(ctx, args) {
        Ok(_) => OK,
        Err(e) => e,
    }
}

fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let lim = limits(ctx);
    let key = &args[1];
    let h = tri!(hash_or_create(ctx, key));
    if h.is_packed() && (args[2].len() > lim.max_value || args[3].len() > lim.max_value) {
        h.convert();
    }
    if h.contains(&args[2]) {
        return Reply::Int(0);
    }
    h.set(&args[2], &args[3], lim);
    ctx.modified(key);
    ctx.notify(notify::HASH, "hset", key);
    ctx.dirty(1);
    Reply::Int(1)
}

fn hget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Nil,
        Ok(Some(h)) => h.get(&args[2]).map_or(Reply::Nil, Reply::Bulk),
    }
}

fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let h = tri!(hash_mut(ctx, &args[1]));
    Reply::Array(
        args[2..]
            .iter()
            .map(|f| {
                h.as_ref()
                    .and_then(|h| h.get(f))
                    .map_or(Reply::Nil, Reply::Bulk)
            })
            .collect(),
    )
}

fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Map(vec![]),
        Ok(Some(h)) => Reply::Map(
            h.iter()
                .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                .collect(),
        ),
    }
}

fn hkeys(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Array(vec![]),
        Ok(Some(h)) => Reply::Array(h.iter().map(|(f, _)| Reply::Bulk(f)).collect()),
    }
}

fn hvals(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Array(vec![]),
        Ok(Some(h)) => Reply::Array(h.iter().map(|(_, v)| Reply::Bulk(v)).collect()),
    }
}

fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let h = match hash_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(h)) => h,
    };
    let mut deleted = 0;
    for f in &args[2..] {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let empty = h.is_empty();
    if deleted > 0 {
        ctx.modified(key);
        ctx.notify(notify::HASH, "hdel", key);
        if empty {
            ctx.delete(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.dirty(deleted);
    }
    Reply::Int(deleted as i64)
}

fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(h)) => Reply::Int(h.contains(&args[2]) as i64),
    }
}

fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(h)) => Reply::Int(h.len() as i64),
    }
}

fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match hash_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(h)) => Reply::Int(h.value_len(&args[2]).unwrap_or(0) as i64),
    }
}

fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(incr) = parse_i64(&args[3]) else {
        return Reply::err(err::NOT_INT);
    };
    let lim = limits(ctx);
    let key = &args[1];
    let h = tri!(hash_or_create(ctx, key));
    let old = match h.get(&args[2]) {
        None => 0,
        Some(v) => match parse_i64(&v) {
            Some(n) => n,
            None => return Reply::err("ERR hash value is not an integer"),
        },
    };
    let Some(new) = old.checked_add(incr) else {
        return Reply::err(err::OVERFLOW);
    };
    h.set(&args[2], new.to_string().as_bytes(), lim);
    ctx.modified(key);
    ctx.notify(notify::HASH, "hincrby", key);
    ctx.dirty(1);
    Reply::Int(new)
}

fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    use long_double::{add, format_human, parse};
    let is_inf = |s: &[u8]| {
        let l = s.to_ascii_lowercase();
        let l = l
            .strip_prefix(b"-")
            .or_else(|| l.strip_prefix(b"+"))
            .unwrap_or(&l);
        l == b"inf" || l == b"infinity"
    };
    let incr = match parse(&args[3]) {
        Some(v) => v,
        None if is_inf(&args[3]) => return Reply::err("ERR value is NaN or Infinity"),
        None => return Reply::err(err::NOT_FLOAT),
    };
    let lim = limits(ctx);
    let key = &args[1];
    let h = tri!(hash_or_create(ctx, key));
    let old = match h.get(&args[2]) {
        None => parse(b"0"),
        Some(v) => match parse(&v) {
            Some(n) => Some(n),
            None if is_inf(&v) => None,
            None => return Reply::err("ERR hash value is not a float"),
        },
    };
    let Some(new) = old.and_then(|o| add(o, incr)) else {
        return Reply::err("ERR increment would produce NaN or Infinity");
    };
    let s = Bytes::from(format_human(new));
    h.set(&args[2], &s, lim);
    ctx.modified(key);
    ctx.notify(notify::HASH, "hincrbyfloat", key);
    ctx.dirty(1);
    ctx.propagate(vec![
        Bytes::from_static(b"HSET"),
        key.clone(),
        args[2].clone(),
        s.clone(),
    ]);
    Reply::Bulk(s)
}

/// HRANDFIELD reply element(s) for one pair: RESP3 nests [field, value] pairs, RESP2 is flat.
fn push_pair(out: &mut Vec<Reply>, f: Bytes, v: Bytes, withvalues: bool, resp3: bool) {
    if !withvalues {
        out.push(Reply::Bulk(f));
    } else if resp3 {
        out.push(Reply::Array(vec![Reply::Bulk(f), Reply::Bulk(v)]));
    } else {
        out.push(Reply::Bulk(f));
        out.push(Reply::Bulk(v));
    }
}

fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let resp3 = ctx.client.proto >= 3;
    if args.len() >= 3 {
        let l = match parse_i64(&args[2]) {
            None => return Reply::err(err::NOT_INT),
            Some(i64::MIN) => return Reply::err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ),
            Some(l) => l,
        };
        let withvalues = if args.len() > 4
            || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withvalues"))
        {
            return Reply::err(err::SYNTAX);
        } else if args.len() == 4 {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return Reply::err("ERR value is out of range");
            }
            true
        } else {
            false
        };
        let h = match hash_mut(ctx, &args[1]) {
            Err(e) => return e,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(h)) => h,
        };
        return randfield_count(h, l, withvalues, resp3);
    }
    let h = match hash_mut(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(h)) => h,
    };
    let i = rand::thread_rng().gen_range(0..h.len().max(1));
    match h.get_index(i) {
        Some((f, _)) => Reply::Bulk(f),
        None => Reply::Nil,
    }
}

fn randfield_count(h: &Hash, l: i64, withvalues: bool, resp3: bool) -> Reply {
    let size = h.len();
    let uniq = l >= 0;
    let count = l.unsigned_abs() as usize;
    if count == 0 || size == 0 {
        return Reply::Array(vec![]);
    }
    let mut rng = rand::thread_rng();
    let mut out = Vec::new();
    // Case 1: repetitions allowed (negative count) or a single element.
    if !uniq || count == 1 {
        if h.is_packed() {
            let pairs: Vec<(Bytes, Bytes)> = h.iter().collect();
            for _ in 0..count {
                let (f, v) = pairs[rng.gen_range(0..pairs.len())].clone();
                push_pair(&mut out, f, v, withvalues, resp3);
            }
        } else {
            for _ in 0..count {
                if let Some((f, v)) = h.get_index(rng.gen_range(0..size)) {
                    push_pair(&mut out, f, v, withvalues, resp3);
                }
            }
        }
        return Reply::Array(out);
    }
    // Case 2: the whole hash, in its own order.
    if count >= size {
        for (f, v) in h.iter() {
            push_pair(&mut out, f, v, withvalues, resp3);
        }
        return Reply::Array(out);
    }
    // Case 3: distinct random positions (partial Fisher-Yates over indices).
    let mut idx: Vec<usize> = (0..size).collect();
    for k in 0..count {
        let j = rng.gen_range(k..size);
        idx.swap(k, j);
    }
    if h.is_packed() {
        let pairs: Vec<(Bytes, Bytes)> = h.iter().collect();
        for &i in &idx[..count] {
            let (f, v) = pairs[i].clone();
            push_pair(&mut out, f, v, withvalues, resp3);
        }
    } else {
        for &i in &idx[..count] {
            if let Some((f, v)) = h.get_index(i) {
                push_pair(&mut out, f, v, withvalues, resp3);
            }
        }
    }
    Reply::Array(out)
}

fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    // The cursor is checked before the key, the options after (as Redis).
    if let Err(e) = parse_scan(&args[..3], 2, false) {
        return e;
    }
    let h = match hash_mut(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"0")),
                Reply::Array(vec![]),
            ])
        }
        Ok(Some(h)) => h,
    };
    let o = tri!(parse_scan(args, 2, false));
    let (next, pairs) = if h.is_packed() {
        (0, h.iter().collect::<Vec<_>>())
    } else {
        let (next, range) = Db::scan_indices(h.len(), o.cursor, o.count);
        let mut pairs = h.pairs_in(range);
        pairs.reverse();
        (next, pairs)
    };
    let mut out = Vec::with_capacity(pairs.len() * 2);
    for (f, v) in pairs {
        if let Some(p) = &o.pattern {
            if !glob_match(p, &f, false) {
                continue;
            }
        }
        out.push(Reply::Bulk(f));
        out.push(Reply::Bulk(v));
    }
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ])
}

/// Redis computes HINCRBYFLOAT (and INCRBYFLOAT) in x87 80-bit `long double` and prints the
/// result with `%.17Lf` minus trailing zeros, so `5.6 + 5000` answers `5005.60000000000000009`.
/// This is a software model of exactly that: correctly rounded decimal → 64-bit-mantissa parse
/// (`strtold`), one correctly rounded addition, exact decimal printing. Subnormal long doubles
/// are not modelled (such values are refused as out of range).
pub mod long_double {
    use std::cmp::Ordering;

    /// Redis's `MAX_LONG_DOUBLE_CHARS`: longer inputs are not floats.
    const INPUT_CHARS_MAX: usize = 5 * 1024;
    /// Exponent range of a normal x87 long double, as `mant * 2^exp` with a 64-bit mantissa.
    const EXP_MIN: i64 = -16382 - 63;
    const EXP_MAX: i64 = 16383 - 63;

    /// Little-endian base-2^32 natural number.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Big(Vec<u32>);

    impl Big {
        fn from_u64(v: u64) -> Big {
            let mut b = Big(vec![v as u32, (v >> 32) as u32]);
            b.trim();
            b
        }
        fn trim(&mut self) {
            while self.0.last() == Some(&0) {
                self.0.pop();
            }
        }
        fn is_zero(&self) -> bool {
            self.0.is_empty()
        }
        fn bits(&self) -> u64 {
            match self.0.last() {
                None => 0,
                Some(&top) => (self.0.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64),
            }
        }
        fn bit(&self, i: u64) -> bool {
            let (w, b) = ((i / 32) as usize, i % 32);
            self.0.get(w).is_some_and(|x| x >> b & 1 == 1)
        }
        /// True if any bit below `i` is set.
        fn any_below(&self, i: u64) -> bool {
            let (w, b) = ((i / 32) as usize, i % 32);
            self.0.iter().take(w).any(|&x| x != 0)
                || (b > 0 && self.0.get(w).is_some_and(|&x| x & ((1u32 << b) - 1) != 0))
        }
        fn mul_small(&mut self, m: u32) {
            let mut carry = 0u64;
            for x in self.0.iter_mut() {
                let v = *x as u64 * m as u64 + carry;
                *x = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                self.0.push(carry as u32);
            }
        }
        fn add_small(&mut self, a: u32) {
            let mut carry = a as u64;
            for x in self.0.iter_mut() {
                if carry == 0 {
                    return;
                }
                let v = *x as u64 + carry;
                *x = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                self.0.push(carry as u32);
            }
        }
        fn div_small(&mut self, d: u32) -> u32 {
            let mut rem = 0u64;
            for x in self.0.iter_mut().rev() {
                let v = (rem << 32) | *x as u64;
                *x = (v / d as u64) as u32;
                rem = v % d as u64;
            }
            self.trim();
            rem as u32
        }
        fn shl(&self, n: u64) -> Big {
            let (w, b) = ((n / 32) as usize, n % 32);
            let mut v = vec![0u32; w];
            let mut carry = 0u32;
            for &x in &self.0 {
                if b == 0 {
                    v.push(x);
                } else {
                    v.push((x << b) | carry);
                    carry = x >> (32 - b);
                }
            }
            if carry > 0 {
                v.push(carry);
            }
            let mut r = Big(v);
            r.trim();
            r
        }
        fn shr(&self, n: u64) -> Big {
            let (w, b) = ((n / 32) as usize, n % 32);
            if w >= self.0.len() {
                return Big(vec![]);
            }
            let src = &self.0[w..];
            let mut v = Vec::with_capacity(src.len());
            for i in 0..src.len() {
                let lo = src[i] >> b;
                let hi = if b > 0 {
                    src.get(i + 1).map_or(0, |&x| x << (32 - b))
                } else {
                    0
                };
                v.push(lo | hi);
            }
            let mut r = Big(v);
            r.trim();
            r
        }
        fn low_u64(&self) -> u64 {
            self.0.first().copied().unwrap_or(0) as u64
                | (self.0.get(1).copied().unwrap_or(0) as u64) << 32
        }
        fn cmp(&self, o: &Big) -> Ordering {
            self.0
                .len()
                .cmp(&o.0.len())
                .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
        }
        fn add(&self, o: &Big) -> Big {
            let mut v = Vec::with_capacity(self.0.len().max(o.0.len()) + 1);
            let mut carry = 0u64;
            for i in 0..self.0.len().max(o.0.len()) {
                let s =
                    *self.0.get(i).unwrap_or(&0) as u64 + *o.0.get(i).unwrap_or(&0) as u64 + carry;
                v.push(s as u32);
                carry = s >> 32;
            }
            if carry > 0 {
                v.push(carry as u32);
            }
            Big(v)
        }
        /// self - o, requires self >= o.
        fn sub(&self, o: &Big) -> Big {
            let mut v = Vec::with_capacity(self.0.len());
            let mut borrow = 0i64;
            for i in 0..self.0.len() {
                let mut d = self.0[i] as i64 - *o.0.get(i).unwrap_or(&0) as i64 - borrow;
                borrow = 0;
                if d < 0 {
                    d += 1 << 32;
                    borrow = 1;
                }
                v.push(d as u32);
            }
            let mut r = Big(v);
            r.trim();
            r
        }
        /// (floor(self / d), self % d != 0), by shift-and-subtract.
        fn div(&self, d: &Big) -> (Big, bool) {
            let mut q = Big(vec![]);
            let mut r = Big(vec![]);
            for i in (0..self.bits()).rev() {
                r = r.shl(1);
                if self.bit(i) {
                    r.add_small(1);
                }
                q = q.shl(1);
                if r.cmp(d) != Ordering::Less {
                    r = r.sub(d);
                    q.add_small(1);
                }
            }
            (q, !r.is_zero())
        }
        fn pow10(k: u64) -> Big {
            let mut b = Big::from_u64(1);
            for _ in 0..k {
                b.mul_small(10);
            }
            b
        }
        fn to_decimal(&self) -> String {
            if self.is_zero() {
                return "0".into();
            }
            let mut t = self.clone();
            let mut parts = vec![];
            while !t.is_zero() {
                parts.push(t.div_small(1_000_000_000));
            }
            let mut s = format!("{}", parts.pop().unwrap_or(0));
            for p in parts.iter().rev() {
                s.push_str(&format!("{p:09}"));
            }
            s
        }
    }

    /// A finite x87 long double: (-1)^neg · mant · 2^exp (mant = 0 for zero).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Ld {
        neg: bool,
        mant: u64,
        exp: i64,
    }

    /// Round `n · 2^exp` (plus a sticky "something below" flag) to 64 bits, half to even.
    fn round(neg: bool, n: &Big, exp: i64, sticky: bool) -> Option<Ld> {
        if n.is_zero() {
            return Some(Ld {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        let bits = n.bits();
        let (mant, exp) = if bits <= 64 {
            let m = n.low_u64();
            (m << (64 - bits), exp - (64 - bits) as i64)
        } else {
            let drop = bits - 64;
            let m = n.shr(drop).low_u64();
            let half = n.bit(drop - 1);
            let rest = n.any_below(drop - 1) || sticky;
            let mut m = m;
            let mut e = exp + drop as i64;
            if half && (rest || m & 1 == 1) {
                m = m.wrapping_add(1);
                if m == 0 {
                    m = 1 << 63;
                    e += 1;
                }
            }
            (m, e)
        };
        if !(EXP_MIN..=EXP_MAX).contains(&exp) {
            return None;
        }
        Some(Ld { neg, mant, exp })
    }

    /// `strtold` as Redis's `string2ld` uses it: None for anything that is not a finite,
    /// in-range decimal float (`inf`, `nan`, spaces, overflow and underflow included).
    pub fn parse(s: &[u8]) -> Option<Ld> {
        if s.is_empty() || s.len() >= INPUT_CHARS_MAX {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.len() > 2 && body[0] == b'0' && (body[1] == b'x' || body[1] == b'X') {
            return parse_hex(neg, &body[2..]);
        }
        let mut digits = Big(vec![]);
        let mut nd = 0usize;
        let mut scale: i64 = 0;
        let mut i = 0;
        let mut seen_dot = false;
        while i < body.len() {
            match body[i] {
                c @ b'0'..=b'9' => {
                    digits.mul_small(10);
                    digits.add_small((c - b'0') as u32);
                    nd += 1;
                    if seen_dot {
                        scale -= 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            i += 1;
        }
        if nd == 0 {
            return None;
        }
        if i < body.len() {
            if body[i] != b'e' && body[i] != b'E' {
                return None;
            }
            let e = std::str::from_utf8(&body[i + 1..]).ok()?;
            if e.is_empty() || e.starts_with(' ') {
                return None;
            }
            let ev: i64 = e.parse::<i64>().ok().or_else(|| {
                // Absurdly long exponents: saturate.
                let d = e.trim_start_matches(['+', '-']);
                d.bytes().all(|c| c.is_ascii_digit()).then(|| {
                    if e.starts_with('-') {
                        -100_000
                    } else {
                        100_000
                    }
                })
            })?;
            scale += ev.clamp(-100_000, 100_000);
        }
        if digits.is_zero() {
            return Some(Ld {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        let magnitude = nd as i64 + scale;
        if magnitude > 4933 + 1 {
            return None;
        }
        if magnitude < -4951 - 1 {
            return None;
        }
        if scale >= 0 {
            let n = {
                let mut n = digits;
                let p = Big::pow10(scale as u64);
                // n * 10^scale
                let mut acc = Big(vec![]);
                for (i, &limb) in p.0.iter().enumerate() {
                    let mut part = n.clone();
                    part.mul_small(limb);
                    acc = acc.add(&part.shl(32 * i as u64));
                }
                n = acc;
                n
            };
            round(neg, &n, 0, false)
        } else {
            let den = Big::pow10((-scale) as u64);
            // Scale the numerator so the quotient has at least 66 bits.
            let shift = (den.bits() as i64 - digits.bits() as i64 + 66).max(0) as u64;
            let (q, inexact) = digits.shl(shift).div(&den);
            round(neg, &q, -(shift as i64), inexact)
        }
    }

    /// The hexadecimal float forms `strtold` takes after `0x`: `10`, `1.8`, `1.8p3`, `Ap-2`.
    fn parse_hex(neg: bool, body: &[u8]) -> Option<Ld> {
        let mut n = Big(vec![]);
        let mut nd = 0usize;
        let mut frac_digits: i64 = 0;
        let mut seen_dot = false;
        let mut i = 0;
        while i < body.len() {
            let c = body[i];
            if c == b'.' && !seen_dot {
                seen_dot = true;
            } else if let Some(d) = (c as char).to_digit(16) {
                n.mul_small(16);
                n.add_small(d);
                nd += 1;
                if seen_dot {
                    frac_digits += 1;
                }
            } else {
                break;
            }
            i += 1;
        }
        if nd == 0 {
            return None;
        }
        let mut exp: i64 = 0;
        if i < body.len() {
            if body[i] != b'p' && body[i] != b'P' {
                return None;
            }
            let e = std::str::from_utf8(&body[i + 1..]).ok()?;
            if e.is_empty() || e.starts_with(' ') {
                return None;
            }
            exp = e.parse::<i64>().ok()?.clamp(-100_000, 100_000);
        }
        round(neg, &n, exp - 4 * frac_digits, false)
    }

    /// a + b rounded to a long double; None on overflow.
    pub fn add(a: Ld, b: Ld) -> Option<Ld> {
        if a.mant == 0 {
            return Some(b);
        }
        if b.mant == 0 {
            return Some(a);
        }
        let e = a.exp.min(b.exp);
        let x = Big::from_u64(a.mant).shl((a.exp - e) as u64);
        let y = Big::from_u64(b.mant).shl((b.exp - e) as u64);
        if a.neg == b.neg {
            round(a.neg, &x.add(&y), e, false)
        } else {
            match x.cmp(&y) {
                Ordering::Equal => Some(Ld {
                    neg: false,
                    mant: 0,
                    exp: 0,
                }),
                Ordering::Greater => round(a.neg, &x.sub(&y), e, false),
                Ordering::Less => round(b.neg, &y.sub(&x), e, false),
            }
        }
    }

    /// `%.17Lf` with trailing zeros (and a trailing '.') removed, "-0" printed as "0": Redis's
    /// `ld2string(…, LD_STR_HUMAN)`.
    pub fn format_human(v: Ld) -> String {
        const FRAC_DIGITS: u64 = 17;
        let scaled = {
            let mut n = Big::from_u64(v.mant);
            for _ in 0..FRAC_DIGITS {
                n.mul_small(10);
            }
            n
        };
        let q = if v.exp >= 0 {
            scaled.shl(v.exp as u64)
        } else {
            let sh = (-v.exp) as u64;
            let mut q = scaled.shr(sh);
            let half = scaled.bit(sh - 1);
            let rest = scaled.any_below(sh - 1);
            if half && (rest || q.bit(0)) {
                q.add_small(1);
            }
            q
        };
        let mut d = q.to_decimal();
        while d.len() < FRAC_DIGITS as usize + 1 {
            d.insert(0, '0');
        }
        let (int, frac) = d.split_at(d.len() - FRAC_DIGITS as usize);
        let frac = frac.trim_end_matches('0');
        let mut s = String::new();
        if v.neg {
            s.push('-');
        }
        s.push_str(int);
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
        if s == "-0" {
            s = "0".into();
        }
        s
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn incr(a: &str, b: &str) -> String {
            let x = parse(a.as_bytes()).expect("a");
            let y = parse(b.as_bytes()).expect("b");
            format_human(add(x, y).expect("finite"))
        }

        #[test]
        fn matches_redis_long_double_results() {
            // Values answered by redis-server 7.0 on x86-64.
            assert_eq!(incr("5.6", "5.0e3"), "5005.60000000000000009");
            assert_eq!(incr("10.5", "0.1"), "10.6");
            assert_eq!(incr("0", "3.0e3"), "3000");
            assert_eq!(incr("0", "-1.5"), "-1.5");
            assert_eq!(incr("1", "-1"), "0");
            assert_eq!(incr("0", "0.1"), "0.1");
            assert_eq!(incr("0", "1e-20"), "0");
            assert!(parse(b"inf").is_none());
            assert!(parse(b" 1").is_none());
            assert!(parse(b"1 ").is_none());
            assert!(parse(b"nan").is_none());
            assert!(parse(b"1e5000").is_none());
            assert!(parse(b"").is_none());
            assert!(parse(b".").is_none());
            assert_eq!(
                format_human(parse(b"1e20").expect("1e20")),
                "100000000000000000000"
            );
        }
    }
}
