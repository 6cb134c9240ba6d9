//! Commands: sets — SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER,
//! SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE, SMOVE, SSCAN —
//! arguments, replies (RESP3 sets where Redis 7.0 sends `~`), errors, notifications and
//! propagation as Redis 7.0.
//!
//! Logged forms: SPOP → `SREM key member…` (batches of [`SPOP_PROPAGATE_BATCH`]) or `DEL key`
//! when the whole set was popped; everything else as received.

use bytes::Bytes;
use rand::Rng;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec, K1, KALL};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{Db, Value};
use crate::resp::Reply;
use crate::types::set::{Member, Set, SetLimits};
use crate::util::{glob_match, parse_i64};

/// Members per logged `SREM` when SPOP pops many.
pub const SPOP_PROPAGATE_BATCH: usize = 1024;
/// SRANDMEMBER with a negative count returns at most this many members (Redis would try to
/// build any size and run out of memory).
pub const SRANDMEMBER_REPEAT_MAX: u64 = 1 << 26;

const KNUM1: KeySpec = KeySpec::NumKeys {
    numkeys_idx: 1,
    first: 2,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("sadd", -3, WRITE | DENYOOM | FAST, K1, "set", sadd),
    cmd("srem", -3, WRITE | FAST, K1, "set", srem),
    cmd("smembers", 2, READONLY, K1, "set", smembers),
    cmd("sismember", 3, READONLY | FAST, K1, "set", sismember),
    cmd("smismember", -3, READONLY | FAST, K1, "set", smismember),
    cmd("scard", 2, READONLY | FAST, K1, "set", scard),
    cmd("spop", -2, WRITE | FAST, K1, "set", spop),
    cmd("srandmember", -2, READONLY, K1, "set", srandmember),
    cmd("sinter", -2, READONLY, KALL, "set", sinter),
    cmd("sintercard", -3, READONLY, KNUM1, "set", sintercard),
    cmd("sinterstore", -3, WRITE | DENYOOM, KALL, "set", sinterstore),
    cmd("sunion", -2, READONLY, KALL, "set", sunion),
    cmd("sunionstore", -3, WRITE | DENYOOM, KALL, "set", sunionstore),
    cmd("sdiff", -2, READONLY, KALL, "set", sdiff),
    cmd("sdiffstore", -3, WRITE | DENYOOM, KALL, "set", sdiffstore),
    cmd(
        "smove",
        4,
        WRITE | FAST,
        KeySpec::Range(1, 2, 1),
        "set",
        smove,
    ),
    cmd("sscan", -3, READONLY, K1, "set", sscan),
];

fn wrongtype() -> Reply {
    Reply::err(err::WRONGTYPE)
}

pub fn set_limits(ctx: &Ctx) -> SetLimits {
    SetLimits {
        max_intset_entries: ctx.cfg_i64("set-max-intset-entries").max(0) as usize,
    }
}

/// The set at `key` (None if missing), WRONGTYPE for another type.
fn read_set<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Set>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(o) => match &o.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(wrongtype()),
        },
    }
}

fn write_set<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Set>, Reply> {
    match ctx.lookup_mut(key) {
        None => Ok(None),
        Some(o) => match &mut o.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(wrongtype()),
        },
    }
}

/// Several sets at once (expired keys removed and LRU touched first).
fn read_sets<'a>(ctx: &'a mut Ctx, keys: &[Bytes]) -> Result<Vec<Option<&'a Set>>, Reply> {
    for k in keys {
        ctx.lookup(k);
    }
    let db = ctx.client.db;
    let d: &Db = &ctx.srv.dbs[db];
    keys.iter()
        .map(|k| match d.keys.get(&k[..]) {
            None => Ok(None),
            Some(o) => match &o.value {
                Value::Set(s) => Ok(Some(&**s)),
                _ => Err(wrongtype()),
            },
        })
        .collect()
}

fn bulks(v: Vec<Bytes>) -> Vec<Reply> {
    v.into_iter().map(Reply::Bulk).collect()
}

/// Delete `key` if the set there became empty (notifying `del`).
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    let empty =
        matches!(ctx.lookup_mut(key), Some(o) if matches!(&o.value, Value::Set(s) if s.is_empty()));
    if empty {
        ctx.delete(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
}

fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let lim = set_limits(ctx);
    let added = match write_set(ctx, key) {
        Err(e) => return e,
        Ok(Some(s)) => args[2..].iter().filter(|m| s.insert(m, lim)).count(),
        Ok(None) => {
            let mut s = Set::for_first_member(&args[2]);
            let n = args[2..].iter().filter(|m| s.insert(m, lim)).count();
            ctx.set_key(key.clone(), Value::Set(crate::keyspace::Shared::new(s)));
            n
        }
    };
    if added > 0 {
        ctx.modified(key);
        ctx.notify(notify::SET, "sadd", key);
        ctx.dirty(added as u64);
    }
    Reply::Int(added as i64)
}

fn srem(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let removed = match write_set(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => {
            let mut n = 0;
            for m in &args[2..] {
                if s.remove(m) {
                    n += 1;
                    if s.is_empty() {
                        break;
                    }
                }
            }
            n
        }
    };
    if removed > 0 {
        ctx.modified(key);
        ctx.notify(notify::SET, "srem", key);
        delete_if_empty(ctx, key);
        ctx.dirty(removed as u64);
    }
    Reply::Int(removed as i64)
}

fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_set(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Set(vec![]),
        Ok(Some(s)) => Reply::Set(s.iter().map(Reply::Bulk).collect()),
    }
}

fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_set(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.is_some_and(|s| s.contains(&args[2])) as i64),
    }
}

fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_set(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Reply::Array(
            args[2..]
                .iter()
                .map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64))
                .collect(),
        ),
    }
}

fn scard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match read_set(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.map_or(0, Set::len) as i64),
    }
}

fn spop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::err(err::SYNTAX);
    }
    let key = &args[1];
    if args.len() == 3 {
        let count = match parse_i64(&args[2]) {
            Some(c) if c >= 0 => c as u64,
            _ => return Reply::err(err::POSITIVE),
        };
        return spop_count(ctx, key, count);
    }
    let popped = match write_set(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(s)) => {
            let pos = rand::thread_rng().gen_range(0..s.len());
            s.remove_index(pos)
        }
    };
    let Some(m) = popped else { return Reply::Nil };
    ctx.modified(key);
    ctx.notify(notify::SET, "spop", key);
    ctx.propagate(vec![Bytes::from_static(b"SREM"), key.clone(), m.clone()]);
    delete_if_empty(ctx, key);
    ctx.dirty(1);
    Reply::Bulk(m)
}

fn spop_count(ctx: &mut Ctx, key: &Bytes, count: u64) -> Reply {
    let s = match write_set(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Set(vec![]),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Reply::Set(vec![]);
    }
    let size = s.len() as u64;
    if count >= size {
        let all: Vec<Bytes> = s.iter().collect();
        ctx.notify(notify::SET, "spop", key);
        ctx.delete(key);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.dirty(size);
        return Reply::Set(bulks(all));
    }
    let mut rng = rand::thread_rng();
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let pos = rng.gen_range(0..s.len());
        if let Some(m) = s.remove_index(pos) {
            out.push(m);
        }
    }
    ctx.modified(key);
    ctx.notify(notify::SET, "spop", key);
    for chunk in out.chunks(SPOP_PROPAGATE_BATCH) {
        let mut argv = Vec::with_capacity(chunk.len() + 2);
        argv.push(Bytes::from_static(b"SREM"));
        argv.push(key.clone());
        argv.extend(chunk.iter().cloned());
        ctx.propagate(argv);
    }
    ctx.dirty(count);
    Reply::Set(bulks(out))
}

fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::err(err::SYNTAX);
    }
    let count = if args.len() == 3 {
        match parse_i64(&args[2]) {
            None => return Reply::err(err::NOT_INT),
            Some(i64::MIN) => {
                return Reply::err(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                )
            }
            Some(c) => Some(c),
        }
    } else {
        None
    };
    let mut budget = crate::obuf::Budget::of(ctx);
    let s = match read_set(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::Array(vec![])
            } else {
                Reply::Nil
            }
        }
        Ok(Some(s)) => s,
    };
    let mut rng = rand::thread_rng();
    let n = s.len();
    let pick = |rng: &mut rand::rngs::ThreadRng| {
        s.get_index(rng.gen_range(0..n))
            .map_or(Reply::Nil, |m| Reply::Bulk(m.to_bytes()))
    };
    let Some(count) = count else {
        return pick(&mut rng);
    };
    if count == 0 {
        return Reply::Array(vec![]);
    }
    if count < 0 {
        let k = count.unsigned_abs().min(SRANDMEMBER_REPEAT_MAX);
        let mut out = Vec::new();
        for _ in 0..k {
            let m = pick(&mut rng);
            if !budget.take(m.approx_size()) {
                break;
            }
            out.push(m);
        }
        if budget.close_if_spent(ctx.client) {
            return Reply::Nil;
        }
        return Reply::Array(out);
    }
    let count = count as u64;
    if count >= n as u64 {
        return Reply::Array(s.iter().map(Reply::Bulk).collect());
    }
    // Distinct positions: partial Fisher–Yates over an index vector when count is a large share
    // of the set, rejection sampling otherwise.
    let count = count as usize;
    let positions: Vec<usize> = if count * 3 > n {
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
    Reply::Array(
        positions
            .into_iter()
            .filter_map(|p| s.get_index(p).map(|m| Reply::Bulk(m.to_bytes())))
            .collect(),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Compute the members of the set operation, or the WRONGTYPE error.
fn compute(ctx: &mut Ctx, keys: &[Bytes], op: SetOp, limit: usize) -> Result<Vec<Bytes>, Reply> {
    let sets = read_sets(ctx, keys)?;
    Ok(match op {
        SetOp::Inter => {
            if sets.iter().any(Option::is_none) {
                return Ok(vec![]);
            }
            let mut sets: Vec<&Set> = sets.into_iter().flatten().collect();
            sets.sort_by_key(|s| s.len());
            let mut out = Vec::new();
            for m in sets[0].members() {
                if sets[1..].iter().all(|s| s.contains_member(m)) {
                    out.push(m.to_bytes());
                    if limit != 0 && out.len() >= limit {
                        break;
                    }
                }
            }
            out
        }
        SetOp::Union => {
            let sets: Vec<&Set> = sets.into_iter().flatten().collect();
            if sets.len() == 1 {
                return Ok(sets[0].iter().collect());
            }
            let mut seen = Set::new();
            let lim = SetLimits {
                max_intset_entries: 0,
            };
            let mut out = Vec::new();
            for s in sets {
                for m in s.members() {
                    let b = m.to_bytes();
                    if seen.insert(&b, lim) {
                        out.push(b);
                    }
                }
            }
            out
        }
        SetOp::Diff => {
            let Some(first) = sets[0] else {
                return Ok(vec![]);
            };
            let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
            first
                .members()
                .filter(|m| !others.iter().any(|s| s.contains_member(*m)))
                .map(Member::to_bytes)
                .collect()
        }
    })
}

fn set_op(ctx: &mut Ctx, args: &[Bytes], op: SetOp) -> Reply {
    match compute(ctx, &args[1..], op, 0) {
        Err(e) => e,
        Ok(v) => Reply::Set(bulks(v)),
    }
}

fn set_op_store(ctx: &mut Ctx, args: &[Bytes], op: SetOp, event: &str) -> Reply {
    let dst = &args[1];
    let members = match compute(ctx, &args[2..], op, 0) {
        Err(e) => return e,
        Ok(v) => v,
    };
    let n = members.len();
    if n == 0 {
        ctx.expire_if_needed(dst);
        if ctx.delete(dst) {
            ctx.notify(notify::GENERIC, "del", dst);
            ctx.dirty(1);
        }
        return Reply::Int(0);
    }
    let lim = set_limits(ctx);
    let s = Set::from_members(members, lim);
    ctx.set_key(dst.clone(), Value::Set(crate::keyspace::Shared::new(s)));
    ctx.notify(notify::SET, event, dst);
    ctx.dirty(1);
    Reply::Int(n as i64)
}

fn sinter(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op(ctx, args, SetOp::Inter)
}
fn sunion(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op(ctx, args, SetOp::Union)
}
fn sdiff(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op(ctx, args, SetOp::Diff)
}
fn sinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, SetOp::Inter, "sinterstore")
}
fn sunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, SetOp::Union, "sunionstore")
}
fn sdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, SetOp::Diff, "sdiffstore")
}

fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return Reply::err("ERR numkeys should be greater than 0"),
    };
    if numkeys > args.len() - 2 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"limit") && i + 1 < args.len() {
            // A non-integer gets the same LIMIT error, as in Redis.
            match parse_i64(&args[i + 1]) {
                Some(l) if l >= 0 => limit = l as usize,
                _ => return Reply::err("ERR LIMIT can't be negative"),
            }
            i += 2;
        } else {
            return Reply::err(err::SYNTAX);
        }
    }
    match compute(ctx, &args[2..2 + numkeys], SetOp::Inter, limit) {
        Err(e) => e,
        Ok(v) => Reply::Int(v.len() as i64),
    }
}

fn smove(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (src, dst, m) = (&args[1], &args[2], &args[3]);
    let has_member = match read_set(ctx, src) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s.contains(m),
    };
    if let Err(e) = read_set(ctx, dst) {
        return e;
    }
    if src == dst {
        return Reply::Int(has_member as i64);
    }
    if !has_member {
        return Reply::Int(0);
    }
    if let Ok(Some(s)) = write_set(ctx, src) {
        s.remove(m);
    }
    ctx.modified(src);
    ctx.notify(notify::SET, "srem", src);
    delete_if_empty(ctx, src);
    ctx.dirty(1);
    let lim = set_limits(ctx);
    let added = match write_set(ctx, dst) {
        Ok(Some(s)) => s.insert(m, lim),
        _ => {
            let mut s = Set::for_first_member(m);
            s.insert(m, lim);
            ctx.set_key(dst.clone(), Value::Set(crate::keyspace::Shared::new(s)));
            true
        }
    };
    // Only a successful addition modifies dst (WATCH, notifications), as in Redis.
    if added {
        ctx.modified(dst);
        ctx.dirty(1);
        ctx.notify(notify::SET, "sadd", dst);
    }
    Reply::Int(1)
}

/// SSCAN / ZSCAN helper: the cursor alone is parsed before the key is looked up (as Redis does);
/// the options after.
pub fn scan_cursor_ok(args: &[Bytes]) -> Result<(), Reply> {
    crate::cmd::keys::parse_scan(&args[..3], 2, false).map(|_| ())
}

pub fn empty_scan() -> Reply {
    Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(vec![])])
}

fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = scan_cursor_ok(args) {
        return e;
    }
    let s = match read_set(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return empty_scan(),
        Ok(Some(s)) => s,
    };
    let o = match crate::cmd::keys::parse_scan(args, 2, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let keep = |b: &Bytes| o.pattern.as_ref().is_none_or(|p| glob_match(p, b, false));
    let (next, found): (u64, Vec<Bytes>) = if s.is_intset() {
        (0, s.iter().filter(keep).collect())
    } else {
        let (next, range) = Db::scan_indices(s.len(), o.cursor, o.count);
        let v = range
            .rev()
            .filter_map(|i| s.get_index(i).map(Member::to_bytes))
            .filter(keep)
            .collect();
        (next, v)
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(bulks(found)),
    ])
}
