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
        ctx.set_key(key.clone(), Value::Hash(Default::default()));
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
    // The same 80-bit long double arithmetic as INCRBYFLOAT (Redis uses `long double`).
    use crate::cmd::string::longdouble::{add, format_human, parse, Ld};
    let incr = match parse(&args[3]) {
        Some(Ld::Inf { .. }) => return Reply::err("ERR value is NaN or Infinity"),
        Some(v) => v,
        None => return Reply::err(err::NOT_FLOAT),
    };
    let lim = limits(ctx);
    let key = &args[1];
    let h = tri!(hash_or_create(ctx, key));
    let old = match h.get(&args[2]) {
        None => Some(Ld::Zero { neg: false }),
        Some(v) => match parse(&v) {
            Some(Ld::Inf { .. }) => None,
            Some(n) => Some(n),
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
        let mut budget = crate::obuf::Budget::of(ctx);
        let h = match hash_mut(ctx, &args[1]) {
            Err(e) => return e,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(h)) => h,
        };
        let r = randfield_count(h, l, withvalues, resp3, &mut budget);
        if budget.close_if_spent(ctx.client) {
            return Reply::Nil;
        }
        return r;
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

fn randfield_count(
    h: &Hash,
    l: i64,
    withvalues: bool,
    resp3: bool,
    budget: &mut crate::obuf::Budget,
) -> Reply {
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
                if !budget.take(f.len() + if withvalues { v.len() + 16 } else { 0 }) {
                    break;
                }
                push_pair(&mut out, f, v, withvalues, resp3);
            }
        } else {
            for _ in 0..count {
                if let Some((f, v)) = h.get_index(rng.gen_range(0..size)) {
                    if !budget.take(f.len() + if withvalues { v.len() + 16 } else { 0 }) {
                        break;
                    }
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
