//! Commands: sorted sets — ZADD, ZINCRBY, ZREM, ZSCORE, ZMSCORE, ZCARD, ZCOUNT, ZLEXCOUNT, the
//! ZRANGE family (ZRANGE with BYSCORE/BYLEX/REV/LIMIT/WITHSCORES, ZRANGEBYSCORE, ZREVRANGEBYSCORE,
//! ZRANGEBYLEX, ZREVRANGEBYLEX, ZREVRANGE, ZRANGESTORE), ZRANK, ZREVRANK, ZPOPMIN, ZPOPMAX, ZMPOP,
//! BZPOPMIN, BZPOPMAX, BZMPOP, ZREMRANGEBYSCORE/BYRANK/BYLEX, ZUNION, ZINTER, ZDIFF (+STORE),
//! ZINTERCARD, ZRANDMEMBER, ZSCAN — replies, errors, notifications and propagation as Redis 7.0.
//!
//! Reply shapes: scores are `Reply::Double` (RESP2 bulk `%.17g`, RESP3 `,`); WITHSCORES replies
//! are flat in RESP2 and `[member, score]` pairs in RESP3; ZMPOP/BZMPOP always nest pairs.
//!
//! Logged forms: ZMPOP/BZMPOP → `ZPOPMIN|ZPOPMAX key count`; BZPOPMIN/BZPOPMAX →
//! `ZPOPMIN|ZPOPMAX key`; everything else as received.

use bytes::Bytes;
use rand::Rng;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec, K1};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{Db, Value};
use crate::resp::{fmt_double, Reply};
use crate::types::set::Set;
use crate::types::zset::{ZSet, ZSetLimits};
use crate::util::{glob_match, parse_f64, parse_i64};

const KNUM1: KeySpec = KeySpec::NumKeys {
    numkeys_idx: 1,
    first: 2,
    step: 1,
};
const KNUM2: KeySpec = KeySpec::NumKeys {
    numkeys_idx: 2,
    first: 3,
    step: 1,
};
/// ZRANDMEMBER with a negative count returns at most this many members.
pub const ZRANDMEMBER_REPEAT_MAX: u64 = 1 << 26;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("zadd", -4, WRITE | DENYOOM | FAST, K1, "sorted-set", zadd),
    cmd(
        "zincrby",
        4,
        WRITE | DENYOOM | FAST,
        K1,
        "sorted-set",
        zincrby,
    ),
    cmd("zrem", -3, WRITE | FAST, K1, "sorted-set", zrem),
    cmd("zscore", 3, READONLY | FAST, K1, "sorted-set", zscore),
    cmd("zmscore", -3, READONLY | FAST, K1, "sorted-set", zmscore),
    cmd("zcard", 2, READONLY | FAST, K1, "sorted-set", zcard),
    cmd("zcount", 4, READONLY | FAST, K1, "sorted-set", zcount),
    cmd("zlexcount", 4, READONLY | FAST, K1, "sorted-set", zlexcount),
    cmd("zrange", -4, READONLY, K1, "sorted-set", zrange),
    cmd(
        "zrangebyscore",
        -4,
        READONLY,
        K1,
        "sorted-set",
        zrangebyscore,
    ),
    cmd(
        "zrevrangebyscore",
        -4,
        READONLY,
        K1,
        "sorted-set",
        zrevrangebyscore,
    ),
    cmd("zrangebylex", -4, READONLY, K1, "sorted-set", zrangebylex),
    cmd(
        "zrevrangebylex",
        -4,
        READONLY,
        K1,
        "sorted-set",
        zrevrangebylex,
    ),
    cmd("zrevrange", -4, READONLY, K1, "sorted-set", zrevrange),
    cmd(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        KeySpec::Range(1, 2, 1),
        "sorted-set",
        zrangestore,
    ),
    cmd("zrank", 3, READONLY | FAST, K1, "sorted-set", zrank),
    cmd("zrevrank", 3, READONLY | FAST, K1, "sorted-set", zrevrank),
    cmd("zpopmin", -2, WRITE | FAST, K1, "sorted-set", zpopmin),
    cmd("zpopmax", -2, WRITE | FAST, K1, "sorted-set", zpopmax),
    cmd("zmpop", -4, WRITE, KNUM1, "sorted-set", zmpop),
    cmd(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        KeySpec::Range(1, -2, 1),
        "sorted-set",
        bzpopmin,
    ),
    cmd(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        KeySpec::Range(1, -2, 1),
        "sorted-set",
        bzpopmax,
    ),
    cmd("bzmpop", -5, WRITE | BLOCKING, KNUM2, "sorted-set", bzmpop),
    cmd(
        "zremrangebyscore",
        4,
        WRITE,
        K1,
        "sorted-set",
        zremrangebyscore,
    ),
    cmd(
        "zremrangebyrank",
        4,
        WRITE,
        K1,
        "sorted-set",
        zremrangebyrank,
    ),
    cmd("zremrangebylex", 4, WRITE, K1, "sorted-set", zremrangebylex),
    cmd("zunion", -3, READONLY, KNUM1, "sorted-set", zunion),
    cmd("zinter", -3, READONLY, KNUM1, "sorted-set", zinter),
    cmd("zdiff", -3, READONLY, KNUM1, "sorted-set", zdiff),
    cmd(
        "zunionstore",
        -4,
        WRITE | DENYOOM,
        KNUM2,
        "sorted-set",
        zunionstore,
    ),
    cmd(
        "zinterstore",
        -4,
        WRITE | DENYOOM,
        KNUM2,
        "sorted-set",
        zinterstore,
    ),
    cmd(
        "zdiffstore",
        -4,
        WRITE | DENYOOM,
        KNUM2,
        "sorted-set",
        zdiffstore,
    ),
    cmd("zintercard", -3, READONLY, KNUM1, "sorted-set", zintercard),
    cmd("zrandmember", -2, READONLY, K1, "sorted-set", zrandmember),
    cmd("zscan", -3, READONLY, K1, "sorted-set", zscan),
];

const ERR_MINMAX_FLOAT: &str = "ERR min or max is not a float";
const ERR_MINMAX_LEX: &str = "ERR min or max not valid string range item";
const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";

fn wrongtype() -> Reply {
    Reply::err(err::WRONGTYPE)
}

pub fn zset_limits(ctx: &Ctx) -> ZSetLimits {
    ZSetLimits {
        max_listpack_entries: ctx.cfg_i64("zset-max-listpack-entries").max(0) as usize,
        max_listpack_value: ctx.cfg_i64("zset-max-listpack-value").max(0) as usize,
    }
}

fn read_zset<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a ZSet>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(o) => match &o.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(wrongtype()),
        },
    }
}

fn write_zset<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut ZSet>, Reply> {
    match ctx.lookup_mut(key) {
        None => Ok(None),
        Some(o) => match &mut o.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(wrongtype()),
        },
    }
}

fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    let empty = matches!(ctx.lookup_mut(key), Some(o) if matches!(&o.value, Value::ZSet(z) if z.is_empty()));
    if empty {
        ctx.delete(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
}

fn parse_score(a: &[u8]) -> Result<f64, Reply> {
    parse_f64(a).ok_or_else(|| Reply::err(err::NOT_FLOAT))
}

/// Reply for a list of (member, score): RESP2 flat / RESP3 pairs when `withscores`.
fn scored_reply(ctx: &Ctx, items: Vec<(Bytes, f64)>, withscores: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    if ctx.client.proto >= 3 {
        Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        )
    } else {
        let mut v = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            v.push(Reply::Bulk(m));
            v.push(Reply::Double(s));
        }
        Reply::Array(v)
    }
}

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<(Bytes, f64)> {
    it.map(|(m, s)| (Bytes::copy_from_slice(m), s)).collect()
}

// ---------------------------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM / lookups

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

enum AddOutcome {
    Added,
    Updated,
    Unchanged,
    Nop,
}

/// Redis's `zsetAdd`: returns the outcome and the member's resulting score, or the NaN error.
fn zset_add(
    z: &mut ZSet,
    m: &[u8],
    score: f64,
    f: &AddFlags,
    lim: ZSetLimits,
) -> Result<(AddOutcome, f64), Reply> {
    match z.score(m) {
        Some(cur) => {
            if f.nx {
                return Ok((AddOutcome::Nop, cur));
            }
            let new = if f.incr {
                let n = cur + score;
                if n.is_nan() {
                    return Err(Reply::err(ERR_NAN));
                }
                n
            } else {
                score
            };
            if (f.lt && new >= cur) || (f.gt && new <= cur) {
                return Ok((AddOutcome::Nop, cur));
            }
            if new != cur {
                z.insert(m, new, lim);
                Ok((AddOutcome::Updated, new))
            } else {
                Ok((AddOutcome::Unchanged, new))
            }
        }
        None => {
            if f.xx {
                return Ok((AddOutcome::Nop, score));
            }
            z.insert(m, score, lim);
            Ok((AddOutcome::Added, score))
        }
    }
}

fn zadd_generic(ctx: &mut Ctx, key: &Bytes, f: AddFlags, pairs: &[Bytes]) -> Reply {
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Reply::err(err::SYNTAX);
    }
    if f.nx && f.xx {
        return Reply::err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    let n = pairs.len() / 2;
    if f.incr && n > 1 {
        return Reply::err("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(n);
    for i in 0..n {
        match parse_score(&pairs[i * 2]) {
            Ok(s) => scores.push(s),
            Err(e) => return e,
        }
    }
    let lim = zset_limits(ctx);
    let exists = match read_zset(ctx, key) {
        Err(e) => return e,
        Ok(z) => z.is_some(),
    };
    let nop_reply = || {
        if f.incr {
            Reply::Nil
        } else {
            Reply::Int(0)
        }
    };
    if !exists {
        if f.xx {
            return nop_reply();
        }
        ctx.set_key(key.clone(), Value::ZSet(Default::default()));
    }
    let Ok(Some(z)) = write_zset(ctx, key) else {
        return nop_reply();
    };
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last = 0.0;
    let mut error = None;
    for (i, &score) in scores.iter().enumerate() {
        match zset_add(z, &pairs[i * 2 + 1], score, &f, lim) {
            Err(e) => {
                error = Some(e);
                break;
            }
            Ok((o, s)) => {
                match o {
                    AddOutcome::Added => added += 1,
                    AddOutcome::Updated => updated += 1,
                    _ => {}
                }
                if !matches!(o, AddOutcome::Nop) {
                    processed += 1;
                }
                last = s;
            }
        }
    }
    if added + updated > 0 {
        ctx.modified(key);
        ctx.notify(notify::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
        ctx.dirty(added + updated);
        if added > 0 {
            ctx.ready(key);
        }
    }
    // A key created for nothing (only possible on errors) must not stay empty.
    delete_if_empty(ctx, key);
    if let Some(e) = error {
        return e;
    }
    if f.incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int(if f.ch { added + updated } else { added } as i64)
    }
}

fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        match &args[i].to_ascii_lowercase()[..] {
            b"nx" => f.nx = true,
            b"xx" => f.xx = true,
            b"gt" => f.gt = true,
            b"lt" => f.lt = true,
            b"ch" => f.ch = true,
            b"incr" => f.incr = true,
            _ => break,
        }
        i += 1;
    }
    zadd_generic(ctx, &args[1], f, &args[i..])
}

fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let f = AddFlags {
        incr: true,
        ..Default::default()
    };
    zadd_generic(ctx, &args[1], f, &args[2..])
}

fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let n = match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => args[2..].iter().filter(|m| z.remove(m).is_some()).count(),
    };
    if n > 0 {
        ctx.modified(key);
        ctx.notify(notify::ZSET, "zrem", key);
        delete_if_empty(ctx, key);
        ctx.dirty(n as u64);
    }
    Reply::Int(n as i64)
}

fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => z
            .and_then(|z| z.score(&args[2]))
            .map_or(Reply::Nil, Reply::Double),
    }
}

fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Reply::Array(
            args[2..]
                .iter()
                .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double))
                .collect(),
        ),
    }
}

fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Reply::Int(z.map_or(0, ZSet::len) as i64),
    }
}

fn rank_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Reply {
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => match z.and_then(|z| z.rank(&args[2]).map(|r| (r, z.len()))) {
            None => Reply::Nil,
            Some((r, n)) => Reply::Int(if rev { n - 1 - r } else { r } as i64),
        },
    }
}

fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    rank_generic(ctx, args, false)
}
fn zrevrank(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    rank_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------------
// Ranges

#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

fn parse_score_bound(a: &[u8]) -> Option<(f64, bool)> {
    if let Some(rest) = a.strip_prefix(b"(") {
        parse_f64(rest).map(|v| (v, true))
    } else {
        parse_f64(a).map(|v| (v, false))
    }
}

pub fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let (min, minex) = parse_score_bound(min)?;
    let (max, maxex) = parse_score_bound(max)?;
    Some(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

impl ScoreRange {
    /// Ascending rank range [lo, hi) of elements within the range.
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        if self.min > self.max || (self.min == self.max && (self.minex || self.maxex)) {
            return (0, 0);
        }
        let (min, minex, max, maxex) = (self.min, self.minex, self.max, self.maxex);
        let lo = z.partition_point(&|_, s| if minex { s <= min } else { s < min });
        let hi = z.partition_point(&|_, s| if maxex { s < max } else { s <= max });
        (lo, hi.max(lo))
    }
}

#[derive(Clone, Debug)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Bytes),
    Excl(Bytes),
}

fn parse_lex_bound(a: &Bytes) -> Option<LexBound> {
    match a.first() {
        Some(b'-') if a.len() == 1 => Some(LexBound::NegInf),
        Some(b'+') if a.len() == 1 => Some(LexBound::PosInf),
        Some(b'[') => Some(LexBound::Incl(a.slice(1..))),
        Some(b'(') => Some(LexBound::Excl(a.slice(1..))),
        _ => None,
    }
}

#[derive(Clone, Debug)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

pub fn parse_lex_range(min: &Bytes, max: &Bytes) -> Option<LexRange> {
    Some(LexRange {
        min: parse_lex_bound(min)?,
        max: parse_lex_bound(max)?,
    })
}

impl LexRange {
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let n = z.len();
        let lo = match &self.min {
            LexBound::NegInf => 0,
            LexBound::PosInf => n,
            LexBound::Incl(x) => z.partition_point(&|m, _| m < &x[..]),
            LexBound::Excl(x) => z.partition_point(&|m, _| m <= &x[..]),
        };
        let hi = match &self.max {
            LexBound::NegInf => 0,
            LexBound::PosInf => n,
            LexBound::Incl(x) => z.partition_point(&|m, _| m <= &x[..]),
            LexBound::Excl(x) => z.partition_point(&|m, _| m < &x[..]),
        };
        (lo, hi.max(lo))
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// Select ascending rank window [lo, hi) walked in `rev` direction, with LIMIT offset/count.
fn apply_limit(lo: usize, hi: usize, offset: i64, limit: i64) -> Option<(usize, usize)> {
    if offset < 0 {
        return None;
    }
    let avail = hi - lo;
    let off = (offset as u64).min(avail as u64) as usize;
    let cnt = if limit < 0 {
        avail - off
    } else {
        (limit as u64).min((avail - off) as u64) as usize
    };
    Some((off, cnt))
}

/// Redis's `zrangeGenericCommand`. `argc_start` is the index of the source key.
fn zrange_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    argc_start: usize,
    store: Option<&Bytes>,
    mut rangetype: RangeType,
    mut direction: Direction,
) -> Reply {
    let key = &args[argc_start];
    let (mut minidx, mut maxidx) = (argc_start + 1, argc_start + 2);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut has_limit = false;
    let mut j = argc_start + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = args[j].to_ascii_lowercase();
        if store.is_none() && a == b"withscores" {
            withscores = true;
        } else if a == b"limit" && left >= 2 {
            match (parse_i64(&args[j + 1]), parse_i64(&args[j + 2])) {
                (Some(o), Some(l)) => {
                    offset = o;
                    limit = l;
                    has_limit = true;
                }
                _ => return Reply::err(err::NOT_INT),
            }
            j += 2;
        } else if direction == Direction::Auto && a == b"rev" {
            direction = Direction::Reverse;
        } else if rangetype == RangeType::Auto && a == b"bylex" {
            rangetype = RangeType::Lex;
        } else if rangetype == RangeType::Auto && a == b"byscore" {
            rangetype = RangeType::Score;
        } else {
            return Reply::err(err::SYNTAX);
        }
        j += 1;
    }
    if direction == Direction::Auto {
        direction = Direction::Forward;
    }
    if rangetype == RangeType::Auto {
        rangetype = RangeType::Rank;
    }
    if has_limit && rangetype == RangeType::Rank {
        return Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && rangetype == RangeType::Lex {
        return Reply::err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let rev = direction == Direction::Reverse;
    if rev && rangetype != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    enum R {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let range = match rangetype {
        RangeType::Score => match parse_score_range(&args[minidx], &args[maxidx]) {
            Some(r) => R::Score(r),
            None => return Reply::err(ERR_MINMAX_FLOAT),
        },
        RangeType::Lex => match parse_lex_range(&args[minidx], &args[maxidx]) {
            Some(r) => R::Lex(r),
            None => return Reply::err(ERR_MINMAX_LEX),
        },
        _ => match (parse_i64(&args[minidx]), parse_i64(&args[maxidx])) {
            (Some(a), Some(b)) => R::Rank(a, b),
            _ => return Reply::err(err::NOT_INT),
        },
    };
    let z = match read_zset(ctx, key) {
        Err(e) => return e,
        Ok(z) => z,
    };
    let items: Vec<(Bytes, f64)> = match z {
        None => vec![],
        Some(z) => {
            let n = z.len() as i64;
            match range {
                R::Rank(mut start, mut end) => {
                    if start < 0 {
                        start += n;
                    }
                    if end < 0 {
                        end += n;
                    }
                    if start < 0 {
                        start = 0;
                    }
                    if start > end || start >= n {
                        vec![]
                    } else {
                        if end >= n {
                            end = n - 1;
                        }
                        let (lo, hi) = if rev {
                            ((n - 1 - end) as usize, (n - start) as usize)
                        } else {
                            (start as usize, end as usize + 1)
                        };
                        owned(z.range(lo, hi, rev))
                    }
                }
                R::Score(_) | R::Lex(_) => {
                    let (lo, hi) = match &range {
                        R::Score(r) => r.ranks(z),
                        R::Lex(r) => r.ranks(z),
                        R::Rank(..) => (0, 0),
                    };
                    match apply_limit(lo, hi, offset, limit) {
                        None => vec![],
                        Some((off, cnt)) => {
                            if rev {
                                owned(z.range(hi - off - cnt, hi - off, true))
                            } else {
                                owned(z.range(lo + off, lo + off + cnt, false))
                            }
                        }
                    }
                }
            }
        }
    };
    match store {
        None => scored_reply(ctx, items, withscores),
        Some(dst) => store_result(ctx, dst, items, "zrangestore"),
    }
}

/// Store `items` as a zset at `dst` (or delete `dst` when empty); reply with the count.
fn store_result(ctx: &mut Ctx, dst: &Bytes, items: Vec<(Bytes, f64)>, event: &str) -> Reply {
    let n = items.len();
    if n == 0 {
        ctx.expire_if_needed(dst);
        if ctx.delete(dst) {
            ctx.notify(notify::GENERIC, "del", dst);
            ctx.dirty(1);
        }
        return Reply::Int(0);
    }
    let lim = zset_limits(ctx);
    let z = ZSet::from_pairs(items, lim);
    ctx.set_key(dst.clone(), Value::ZSet(crate::keyspace::Shared::new(z)));
    ctx.notify(notify::ZSET, event, dst);
    ctx.dirty(1);
    ctx.ready(dst);
    Reply::Int(n as i64)
}

fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, None, RangeType::Auto, Direction::Auto)
}
fn zrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, None, RangeType::Score, Direction::Forward)
}
fn zrevrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, None, RangeType::Score, Direction::Reverse)
}
fn zrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, None, RangeType::Lex, Direction::Forward)
}
fn zrevrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, None, RangeType::Lex, Direction::Reverse)
}
fn zrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrange_generic(ctx, args, 1, None, RangeType::Rank, Direction::Reverse)
}
fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let dst = args[1].clone();
    zrange_generic(ctx, args, 2, Some(&dst), RangeType::Auto, Direction::Auto)
}

fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(r) = parse_score_range(&args[2], &args[3]) else {
        return Reply::err(ERR_MINMAX_FLOAT);
    };
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(z)) => {
            let (lo, hi) = r.ranks(z);
            Reply::Int((hi - lo) as i64)
        }
    }
}

fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(r) = parse_lex_range(&args[2], &args[3]) else {
        return Reply::err(ERR_MINMAX_LEX);
    };
    match read_zset(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(z)) => {
            let (lo, hi) = r.ranks(z);
            Reply::Int((hi - lo) as i64)
        }
    }
}

#[derive(Clone, Copy)]
enum RemType {
    Rank,
    Score,
    Lex,
}

fn zremrange_generic(ctx: &mut Ctx, args: &[Bytes], t: RemType) -> Reply {
    let key = &args[1];
    enum R {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let r = match t {
        RemType::Rank => match (parse_i64(&args[2]), parse_i64(&args[3])) {
            (Some(a), Some(b)) => R::Rank(a, b),
            _ => return Reply::err(err::NOT_INT),
        },
        RemType::Score => match parse_score_range(&args[2], &args[3]) {
            Some(r) => R::Score(r),
            None => return Reply::err(ERR_MINMAX_FLOAT),
        },
        RemType::Lex => match parse_lex_range(&args[2], &args[3]) {
            Some(r) => R::Lex(r),
            None => return Reply::err(ERR_MINMAX_LEX),
        },
    };
    let removed = match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => {
            let n = z.len() as i64;
            let (lo, hi) = match r {
                R::Rank(mut start, mut end) => {
                    if start < 0 {
                        start += n;
                    }
                    if end < 0 {
                        end += n;
                    }
                    if start < 0 {
                        start = 0;
                    }
                    if start > end || start >= n {
                        (0, 0)
                    } else {
                        (start as usize, (end.min(n - 1) + 1) as usize)
                    }
                }
                R::Score(r) => r.ranks(z),
                R::Lex(r) => r.ranks(z),
            };
            if hi > lo {
                z.remove_range(lo, hi).len()
            } else {
                0
            }
        }
    };
    if removed > 0 {
        let event = match t {
            RemType::Rank => "zremrangebyrank",
            RemType::Score => "zremrangebyscore",
            RemType::Lex => "zremrangebylex",
        };
        ctx.modified(key);
        ctx.notify(notify::ZSET, event, key);
        delete_if_empty(ctx, key);
        ctx.dirty(removed as u64);
    }
    Reply::Int(removed as i64)
}

fn zremrangebyrank(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zremrange_generic(ctx, args, RemType::Rank)
}
fn zremrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zremrange_generic(ctx, args, RemType::Score)
}
fn zremrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zremrange_generic(ctx, args, RemType::Lex)
}

// ---------------------------------------------------------------------------------------------
// Pops

/// Pop up to `count` elements from the min (or max) end of the zset at `key`, which must exist
/// and be a zset. Notifies and deletes the key when emptied.
fn pop_from(ctx: &mut Ctx, key: &Bytes, max: bool, count: usize) -> Vec<(Bytes, f64)> {
    let popped = match write_zset(ctx, key) {
        Ok(Some(z)) => {
            let n = z.len();
            let k = count.min(n);
            let mut v = if max {
                z.remove_range(n - k, n)
            } else {
                z.remove_range(0, k)
            };
            if max {
                v.reverse();
            }
            v
        }
        _ => vec![],
    };
    if !popped.is_empty() {
        ctx.modified(key);
        ctx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        delete_if_empty(ctx, key);
        ctx.dirty(popped.len() as u64);
    }
    popped
}

fn zpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Reply {
    if args.len() > 3 {
        return Reply::err(err::SYNTAX);
    }
    let count = if args.len() == 3 {
        match parse_i64(&args[2]) {
            Some(c) if c >= 0 => Some(c as usize),
            _ => return Reply::err(err::POSITIVE),
        }
    } else {
        None
    };
    let key = &args[1];
    match read_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(vec![]),
        Ok(Some(_)) => {}
    }
    if count == Some(0) {
        return Reply::Array(vec![]);
    }
    let items = pop_from(ctx, key, max, count.unwrap_or(1));
    if count.is_none() || ctx.client.proto < 3 {
        let mut v = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            v.push(Reply::Bulk(m));
            v.push(Reply::Double(s));
        }
        Reply::Array(v)
    } else {
        scored_reply(ctx, items, true)
    }
}

fn zpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zpop_generic(ctx, args, false)
}
fn zpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zpop_generic(ctx, args, true)
}

fn pop_name(max: bool) -> Bytes {
    Bytes::from_static(if max { b"ZPOPMAX" } else { b"ZPOPMIN" })
}

/// The first existing key among `keys` holding a non-empty zset (WRONGTYPE on the way out).
fn first_nonempty(ctx: &mut Ctx, keys: &[Bytes]) -> Result<Option<Bytes>, Reply> {
    for k in keys {
        if let Some(z) = read_zset(ctx, k)? {
            if !z.is_empty() {
                return Ok(Some(k.clone()));
            }
        }
    }
    Ok(None)
}

fn bzpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Reply {
    let deadline = match ctx.parse_timeout(&args[args.len() - 1]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let keys = &args[1..args.len() - 1];
    match first_nonempty(ctx, keys) {
        Err(e) => e,
        Ok(Some(k)) => {
            let items = pop_from(ctx, &k, max, 1);
            ctx.propagate(vec![pop_name(max), k.clone()]);
            match items.into_iter().next() {
                Some((m, s)) => {
                    Reply::Array(vec![Reply::Bulk(k), Reply::Bulk(m), Reply::Double(s)])
                }
                None => Reply::NilArray,
            }
        }
        Ok(None) => ctx.block_on(keys.to_vec(), deadline, args, Reply::NilArray),
    }
}

fn bzpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bzpop_generic(ctx, args, false)
}
fn bzpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bzpop_generic(ctx, args, true)
}

/// Parse `numkeys key… MIN|MAX [COUNT n]` starting at `args[at]`.
fn parse_mpop(args: &[Bytes], at: usize) -> Result<(Vec<Bytes>, bool, usize), Reply> {
    let numkeys = match parse_i64(&args[at]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    if numkeys > args.len() - at - 1 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let keys = args[at + 1..at + 1 + numkeys].to_vec();
    let mut i = at + 1 + numkeys;
    let max = match args.get(i).map(|a| a.to_ascii_lowercase()) {
        Some(a) if a == b"min" => false,
        Some(a) if a == b"max" => true,
        _ => return Err(Reply::err(err::SYNTAX)),
    };
    i += 1;
    let mut count = None;
    while i < args.len() {
        if count.is_none() && args[i].eq_ignore_ascii_case(b"count") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(c) if c > 0 => count = Some(c as usize),
                _ => return Err(Reply::err("ERR count should be greater than 0")),
            }
            i += 2;
        } else {
            return Err(Reply::err(err::SYNTAX));
        }
    }
    Ok((keys, max, count.unwrap_or(1)))
}

fn mpop_serve(ctx: &mut Ctx, key: Bytes, max: bool, count: usize) -> Reply {
    let items = pop_from(ctx, &key, max, count);
    ctx.propagate(vec![
        pop_name(max),
        key.clone(),
        Bytes::from(items.len().to_string()),
    ]);
    let pairs = items
        .into_iter()
        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
        .collect();
    Reply::Array(vec![Reply::Bulk(key), Reply::Array(pairs)])
}

fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (keys, max, count) = match parse_mpop(args, 1) {
        Ok(x) => x,
        Err(e) => return e,
    };
    match first_nonempty(ctx, &keys) {
        Err(e) => e,
        Ok(None) => Reply::NilArray,
        Ok(Some(k)) => mpop_serve(ctx, k, max, count),
    }
}

fn bzmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let deadline = match ctx.parse_timeout(&args[1]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let (keys, max, count) = match parse_mpop(args, 2) {
        Ok(x) => x,
        Err(e) => return e,
    };
    match first_nonempty(ctx, &keys) {
        Err(e) => e,
        Ok(Some(k)) => mpop_serve(ctx, k, max, count),
        Ok(None) => ctx.block_on(keys, deadline, args, Reply::NilArray),
    }
}

// ---------------------------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF

#[derive(Clone, Copy, PartialEq)]
enum ZOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

enum Src<'a> {
    None,
    Z(&'a ZSet),
    S(&'a Set),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::None => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
        }
    }
    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::None => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
        }
    }
    fn items(&self) -> Vec<(Bytes, f64)> {
        match self {
            Src::None => vec![],
            Src::Z(z) => z.iter().collect(),
            Src::S(s) => s.iter().map(|m| (m, 1.0)).collect(),
        }
    }
}

fn aggregate(agg: Aggregate, acc: f64, v: f64) -> f64 {
    match agg {
        Aggregate::Sum => {
            let r = acc + v;
            if r.is_nan() {
                0.0
            } else {
                r
            }
        }
        Aggregate::Min => acc.min(v),
        Aggregate::Max => acc.max(v),
    }
}

fn weighted(w: f64, s: f64) -> f64 {
    let r = w * s;
    if r.is_nan() {
        0.0
    } else {
        r
    }
}

/// Redis's `zunionInterDiffGenericCommand`. `numkeys_idx` indexes numkeys; `dst` for *STORE.
fn zsetop_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    numkeys_idx: usize,
    dst: Option<&Bytes>,
    op: ZOp,
    card_only: bool,
) -> Reply {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let setnum = match parse_i64(&args[numkeys_idx]) {
        None => return Reply::err(err::NOT_INT),
        Some(n) => n,
    };
    if setnum < 1 {
        return Reply::Error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
    }
    let setnum = setnum as usize;
    if setnum > args.len() - numkeys_idx - 1 {
        return Reply::err(err::SYNTAX);
    }
    let keys = &args[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    for k in keys {
        ctx.lookup(k);
    }
    // Type check before options, as Redis.
    {
        let db = ctx.client.db;
        let d: &Db = &ctx.srv.dbs[db];
        for k in keys {
            if let Some(o) = d.keys.get(&k[..]) {
                if !matches!(o.value, Value::ZSet(_) | Value::Set(_)) {
                    return wrongtype();
                }
            }
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = numkeys_idx + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = args[j].to_ascii_lowercase();
        if card_only {
            if a == b"limit" && remaining >= 2 {
                // A non-integer gets the same LIMIT error, as in Redis.
                match parse_i64(&args[j + 1]) {
                    Some(l) if l >= 0 => limit = l as usize,
                    _ => return Reply::err("ERR LIMIT can't be negative"),
                }
                j += 2;
                continue;
            }
            return Reply::err(err::SYNTAX);
        }
        if op != ZOp::Diff && remaining > setnum && a == b"weights" {
            j += 1;
            for w in weights.iter_mut() {
                match parse_f64(&args[j]) {
                    Some(v) => *w = v,
                    None => return Reply::err("ERR weight value is not a float"),
                }
                j += 1;
            }
        } else if op != ZOp::Diff && remaining >= 2 && a == b"aggregate" {
            agg = match &args[j + 1].to_ascii_lowercase()[..] {
                b"sum" => Aggregate::Sum,
                b"min" => Aggregate::Min,
                b"max" => Aggregate::Max,
                _ => return Reply::err(err::SYNTAX),
            };
            j += 2;
        } else if dst.is_none() && a == b"withscores" {
            withscores = true;
            j += 1;
        } else {
            return Reply::err(err::SYNTAX);
        }
    }
    let result: Vec<(Bytes, f64)> = {
        let db = ctx.client.db;
        let d: &Db = &ctx.srv.dbs[db];
        let srcs: Vec<Src> = keys
            .iter()
            .map(|k| match d.keys.get(&k[..]).map(|o| &o.value) {
                Some(Value::ZSet(z)) => Src::Z(z),
                Some(Value::Set(s)) => Src::S(s),
                _ => Src::None,
            })
            .collect();
        match op {
            ZOp::Inter => {
                if srcs.iter().any(|s| s.len() == 0) {
                    vec![]
                } else {
                    let mut order: Vec<usize> = (0..setnum).collect();
                    order.sort_by_key(|&i| srcs[i].len());
                    let first = order[0];
                    let mut out = Vec::new();
                    'outer: for (m, s) in srcs[first].items() {
                        let mut acc = weighted(weights[first], s);
                        for &i in &order[1..] {
                            match srcs[i].score(&m) {
                                None => continue 'outer,
                                Some(v) => acc = aggregate(agg, acc, weighted(weights[i], v)),
                            }
                        }
                        out.push((m, acc));
                        if card_only && limit != 0 && out.len() >= limit {
                            break;
                        }
                    }
                    out
                }
            }
            ZOp::Union => {
                let mut acc: indexmap::IndexMap<Bytes, f64> = indexmap::IndexMap::new();
                for (i, src) in srcs.iter().enumerate() {
                    for (m, s) in src.items() {
                        let v = weighted(weights[i], s);
                        match acc.get_mut(&m) {
                            Some(a) => *a = aggregate(agg, *a, v),
                            None => {
                                acc.insert(m, v);
                            }
                        }
                    }
                }
                acc.into_iter().collect()
            }
            ZOp::Diff => {
                let mut out = Vec::new();
                for (m, s) in srcs[0].items() {
                    if !srcs[1..].iter().any(|x| x.score(&m).is_some()) {
                        out.push((m, s));
                    }
                }
                out
            }
        }
    };
    if card_only {
        return Reply::Int(result.len() as i64);
    }
    if let Some(dst) = dst {
        let event = match op {
            ZOp::Union => "zunionstore",
            ZOp::Inter => "zinterstore",
            ZOp::Diff => "zdiffstore",
        };
        return store_result(ctx, dst, result, event);
    }
    // Sort as a zset would order them.
    let lim = ZSetLimits {
        max_listpack_entries: usize::MAX,
        max_listpack_value: usize::MAX,
    };
    let items: Vec<(Bytes, f64)> = if result.len() <= 128 {
        ZSet::from_pairs(result, lim).iter().collect()
    } else {
        ZSet::from_pairs(result, ZSetLimits::default())
            .iter()
            .collect()
    };
    scored_reply(ctx, items, withscores)
}

fn zunion(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zsetop_generic(ctx, args, 1, None, ZOp::Union, false)
}
fn zinter(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zsetop_generic(ctx, args, 1, None, ZOp::Inter, false)
}
fn zdiff(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zsetop_generic(ctx, args, 1, None, ZOp::Diff, false)
}
fn zunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let dst = args[1].clone();
    zsetop_generic(ctx, args, 2, Some(&dst), ZOp::Union, false)
}
fn zinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let dst = args[1].clone();
    zsetop_generic(ctx, args, 2, Some(&dst), ZOp::Inter, false)
}
fn zdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let dst = args[1].clone();
    zsetop_generic(ctx, args, 2, Some(&dst), ZOp::Diff, false)
}
fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zsetop_generic(ctx, args, 1, None, ZOp::Inter, true)
}

// ---------------------------------------------------------------------------------------------
// ZRANDMEMBER / ZSCAN

fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut count = None;
    let mut withscores = false;
    if args.len() >= 3 {
        match parse_i64(&args[2]) {
            None => return Reply::err(err::NOT_INT),
            Some(i64::MIN) => return Reply::err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ),
            Some(c) => count = Some(c),
        }
        if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withscores")) {
            return Reply::err(err::SYNTAX);
        }
        if args.len() == 4 {
            withscores = true;
            let c = count.unwrap_or(0);
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c) {
                return Reply::err("ERR value is out of range");
            }
        }
    }
    let mut budget = crate::obuf::Budget::of(ctx);
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::Array(vec![])
            } else {
                Reply::Nil
            }
        }
        Ok(Some(z)) => z,
    };
    let n = z.len();
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        return z
            .get(rng.gen_range(0..n))
            .map_or(Reply::Nil, |(m, _)| Reply::bulk(Bytes::copy_from_slice(m)));
    };
    let items: Vec<(Bytes, f64)> = if count == 0 {
        vec![]
    } else if count < 0 {
        let k = count.unsigned_abs().min(ZRANDMEMBER_REPEAT_MAX);
        (0..k)
            .filter_map(|_| z.get(rng.gen_range(0..n)))
            .take_while(|(m, _)| budget.take(m.len() + if withscores { 40 } else { 0 }))
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect()
    } else if count as u64 >= n as u64 {
        z.iter().collect()
    } else {
        let count = count as usize;
        let mut idx: Vec<usize> = if count * 3 > n {
            let mut idx: Vec<usize> = (0..n).collect();
            for i in 0..count {
                let j = rng.gen_range(i..n);
                idx.swap(i, j);
            }
            idx.truncate(count);
            idx
        } else {
            let mut seen = std::collections::HashSet::with_capacity(count);
            let mut v = Vec::with_capacity(count);
            while v.len() < count {
                let p = rng.gen_range(0..n);
                if seen.insert(p) {
                    v.push(p);
                }
            }
            v
        };
        idx.shrink_to_fit();
        idx.into_iter()
            .filter_map(|p| z.get(p))
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect()
    };
    if budget.close_if_spent(ctx.client) {
        return Reply::Nil;
    }
    if budget.close_if_spent(ctx.client) {
        return Reply::Nil;
    }
    scored_reply(ctx, items, withscores)
}

fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = crate::cmd::set::scan_cursor_ok(args) {
        return e;
    }
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return crate::cmd::set::empty_scan(),
        Ok(Some(z)) => z,
    };
    let o = match crate::cmd::keys::parse_scan(args, 2, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let keep = |m: &[u8]| o.pattern.as_ref().is_none_or(|p| glob_match(p, m, false));
    let mut out = Vec::new();
    let mut push = |m: &[u8], s: f64| {
        if keep(m) {
            out.push(Reply::Bulk(Bytes::copy_from_slice(m)));
            out.push(Reply::Bulk(Bytes::from(fmt_double(s))));
        }
    };
    let next = if z.is_listpack() {
        for (m, s) in z.range(0, z.len(), false) {
            push(m, s);
        }
        0
    } else {
        let (next, range) = Db::scan_indices(z.scan_positions(), o.cursor, o.count);
        for i in range.rev() {
            if let Some((m, s)) = z.at_position(i) {
                push(m, s);
            }
        }
        next
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ])
}
