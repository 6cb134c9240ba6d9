//! List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LINDEX, LSET, LRANGE, LTRIM,
//! LINSERT, LREM, LPOS, LMOVE, RPOPLPUSH, LMPOP and the blocking BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH, BLMPOP — replies, error texts, events and argument order as Redis 7.0 `t_list.c`.
//!
//! Blocking: a blocking command that finds nothing calls `ctx.block_on`; the executor re-runs it
//! when a key is made ready (every push calls `ctx.ready`), so the handlers simply serve when they
//! can. A served blocking pop is logged as the pop that happened (`LPOP k`, `LMOVE …`,
//! `RPOPLPUSH …`, `LPOP k count`), as Redis propagates it.

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec, K1};
use crate::ctx::{notify, Ctx};
use crate::keyspace::Value;
use crate::resp::{BulkArrayWriter, Reply, OK};
use crate::types::list::{enc::Elem, List};
use crate::util::parse_i64;

const K12: KeySpec = KeySpec::Range(1, 2, 1);
/// BLPOP/BRPOP: every argument but the last (the timeout) is a key.
const KBLOCK: KeySpec = KeySpec::Range(1, -2, 1);

pub static COMMANDS: &[CommandSpec] = &[
    cmd("lpush", -3, WRITE | DENYOOM | FAST, K1, "list", lpush),
    cmd("rpush", -3, WRITE | DENYOOM | FAST, K1, "list", rpush),
    cmd("lpushx", -3, WRITE | DENYOOM | FAST, K1, "list", lpushx),
    cmd("rpushx", -3, WRITE | DENYOOM | FAST, K1, "list", rpushx),
    cmd("lpop", -2, WRITE | FAST, K1, "list", lpop),
    cmd("rpop", -2, WRITE | FAST, K1, "list", rpop),
    cmd("llen", 2, READONLY | FAST, K1, "list", llen),
    cmd("lindex", 3, READONLY, K1, "list", lindex),
    cmd("lset", 4, WRITE | DENYOOM, K1, "list", lset),
    cmd("lrange", 4, READONLY, K1, "list", lrange),
    cmd("ltrim", 4, WRITE, K1, "list", ltrim),
    cmd("linsert", 5, WRITE | DENYOOM, K1, "list", linsert),
    cmd("lrem", 4, WRITE, K1, "list", lrem),
    cmd("lpos", -3, READONLY, K1, "list", lpos),
    cmd("lmove", 5, WRITE | DENYOOM, K12, "list", lmove),
    cmd("rpoplpush", 3, WRITE | DENYOOM, K12, "list", rpoplpush),
    cmd(
        "lmpop",
        -4,
        WRITE,
        KeySpec::NumKeys {
            numkeys_idx: 1,
            first: 2,
            step: 1,
        },
        "list",
        lmpop,
    ),
    cmd(
        "blpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        KBLOCK,
        "list",
        blpop,
    ),
    cmd(
        "brpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        KBLOCK,
        "list",
        brpop,
    ),
    cmd(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        K12,
        "list",
        blmove,
    ),
    cmd(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        K12,
        "list",
        brpoplpush,
    ),
    cmd(
        "blmpop",
        -5,
        WRITE | BLOCKING,
        KeySpec::NumKeys {
            numkeys_idx: 2,
            first: 3,
            step: 1,
        },
        "list",
        blmpop,
    ),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Left,
    Right,
}

impl End {
    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }
    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }
    fn pop_cmd(self) -> Bytes {
        Bytes::from_static(match self {
            End::Left => b"LPOP",
            End::Right => b"RPOP",
        })
    }
}

/// `LEFT` / `RIGHT` (any case), else `ERR syntax error`.
fn parse_end(arg: &[u8]) -> Result<End, Reply> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        Err(Reply::err(err::SYNTAX))
    }
}

fn fill(ctx: &Ctx) -> i64 {
    ctx.cfg_i64("list-max-listpack-size")
}

/// A new empty list with the node size and compression depth configured now (Redis fixes both
/// when a list is made).
fn new_list(ctx: &Ctx) -> List {
    List::with_options(fill(ctx), ctx.cfg_i64("list-compress-depth"))
}

/// The list at `key`: Ok(None) if missing, Err(WRONGTYPE) for another type.
fn list_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, Reply> {
    match ctx.lookup_mut(key) {
        None => Ok(None),
        Some(o) => match &mut o.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(Reply::err(err::WRONGTYPE)),
        },
    }
}

/// Redis's `getLongFromObjectOrReply` with the generic message.
fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(err::NOT_INT))
}

/// `getRangeLongFromObjectOrReply(min, max, msg)`: `msg` for both parse and range errors.
fn ranged(arg: &[u8], min: i64, msg: &str) -> Result<i64, Reply> {
    match parse_i64(arg) {
        Some(v) if v >= min => Ok(v),
        _ => Err(Reply::err(msg)),
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// Push `elems` at `end` of `key`, creating the list; the caller has checked the type.
fn push_into(ctx: &mut Ctx, key: &Bytes, elems: &[Bytes], end: End) -> usize {
    let new = new_list(ctx);
    let len = match list_mut(ctx, key) {
        Ok(Some(l)) => {
            for e in elems {
                match end {
                    End::Left => l.push_front(e),
                    End::Right => l.push_back(e),
                }
            }
            l.len()
        }
        _ => {
            let mut l = new;
            for e in elems {
                match end {
                    End::Left => l.push_front(e),
                    End::Right => l.push_back(e),
                }
            }
            let n = l.len();
            ctx.set_key(key.clone(), Value::List(crate::keyspace::Shared::new(l)));
            n
        }
    };
    ctx.modified(key);
    ctx.notify(notify::LIST, end.push_event(), key);
    ctx.ready(key);
    ctx.dirty(elems.len() as u64);
    len
}

fn push_generic(ctx: &mut Ctx, args: &[Bytes], end: End, only_existing: bool) -> Reply {
    let key = &args[1];
    match list_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) if only_existing => return Reply::Int(0),
        _ => {}
    }
    Reply::Int(push_into(ctx, key, &args[2..], end) as i64)
}

fn lpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Left, false)
}
fn rpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Right, false)
}
fn lpushx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Left, true)
}
fn rpushx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Right, true)
}

/// Pop up to `count` elements from `key` (which holds a non-empty list), with the events, the
/// deletion of an emptied key and the dirty count.
fn pop_n(ctx: &mut Ctx, key: &Bytes, end: End, count: usize) -> Vec<Bytes> {
    let (out, empty) = match list_mut(ctx, key) {
        Ok(Some(l)) => {
            let n = count.min(l.len());
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let v = match end {
                    End::Left => l.pop_front(),
                    End::Right => l.pop_back(),
                };
                match v {
                    Some(v) => out.push(v),
                    None => break,
                }
            }
            (out, l.is_empty())
        }
        _ => return vec![],
    };
    if out.is_empty() {
        return out;
    }
    ctx.notify(notify::LIST, end.pop_event(), key);
    if empty {
        ctx.delete(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.modified(key);
    ctx.dirty(out.len() as u64);
    out
}

fn pop_generic(ctx: &mut Ctx, args: &[Bytes], end: End) -> Reply {
    if args.len() > 3 {
        return crate::cmd::arity_error(&String::from_utf8_lossy(&args[0]));
    }
    let count = if args.len() == 3 {
        Some(tri!(ranged(
            &args[2],
            0,
            "ERR value is out of range, must be positive"
        )) as usize)
    } else {
        None
    };
    let key = &args[1];
    match list_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::NilArray
            } else {
                Reply::Nil
            }
        }
        Ok(Some(_)) => {}
    }
    match count {
        Some(0) => Reply::Array(vec![]),
        Some(n) => Reply::Array(
            pop_n(ctx, key, end, n)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ),
        None => match pop_n(ctx, key, end, 1).pop() {
            Some(v) => Reply::Bulk(v),
            None => Reply::Nil,
        },
    }
}

fn lpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop_generic(ctx, args, End::Left)
}
fn rpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop_generic(ctx, args, End::Right)
}

fn llen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match list_mut(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(l)) => Reply::Int(l.len() as i64),
    }
}

/// Normalize a possibly negative index against `len`; None if out of range.
fn index_of(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { idx + len as i64 } else { idx };
    (i >= 0 && (i as u64) < len as u64).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let l = match list_mut(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(l)) => l,
    };
    let idx = tri!(int_arg(&args[2]));
    match index_of(idx, l.len()).and_then(|i| l.get(i)) {
        Some(v) => Reply::Bulk(v),
        None => Reply::Nil,
    }
}

fn lset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let l = match list_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::err(err::NO_KEY),
        Ok(Some(l)) => l,
    };
    let idx = tri!(int_arg(&args[2]));
    match index_of(idx, l.len()) {
        Some(i) => {
            l.set(i, &args[3]);
        }
        None => return Reply::err(err::OUT_OF_RANGE),
    }
    ctx.modified(key);
    ctx.notify(notify::LIST, "lset", key);
    ctx.dirty(1);
    OK
}

/// Redis's LRANGE/LTRIM normalization: Some((start, end)) inclusive, None when empty.
fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let start = tri!(int_arg(&args[2]));
    let end = tri!(int_arg(&args[3]));
    let l = match list_mut(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(vec![]),
        Ok(Some(l)) => l,
    };
    match norm_range(start, end, l.len()) {
        None => Reply::Array(vec![]),
        Some((s, e)) => {
            let n = e.min(l.len() - 1) + 1 - s;
            let mut w = BulkArrayWriter::new(n, 0);
            l.for_each_in_range(s, e, |el| match el {
                Elem::Int(i) => w.bulk_int(i),
                Elem::Str(b) => w.bulk(b),
            });
            w.finish()
        }
    }
}

fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let start = tri!(int_arg(&args[2]));
    let end = tri!(int_arg(&args[3]));
    let key = &args[1];
    let l = match list_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) => return OK,
        Ok(Some(l)) => l,
    };
    let before = l.len();
    match norm_range(start, end, l.len()) {
        None => l.trim(1, 0),
        Some((s, e)) => l.trim(s, e),
    }
    let removed = before - l.len();
    let empty = l.is_empty();
    ctx.notify(notify::LIST, "ltrim", key);
    if empty {
        ctx.delete(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.modified(key);
    ctx.dirty(removed as u64);
    OK
}

fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let after = if args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Reply::err(err::SYNTAX);
    };
    let key = &args[1];
    let l = match list_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => l,
    };
    if !l.insert(&args[3], &args[4], after) {
        return Reply::Int(-1);
    }
    let n = l.len();
    ctx.modified(key);
    ctx.notify(notify::LIST, "linsert", key);
    ctx.dirty(1);
    Reply::Int(n as i64)
}

fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let count = tri!(int_arg(&args[2]));
    let key = &args[1];
    let l = match list_mut(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => l,
    };
    let removed = l.remove(&args[3], count);
    let empty = l.is_empty();
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", key);
        if empty {
            ctx.delete(key);
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.modified(key);
        ctx.dirty(removed as u64);
    }
    Reply::Int(removed as i64)
}

fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let more = i + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"rank") && more {
            // getLongFromObjectOrReply (7.0 has no range check here)
            rank = match parse_i64(&args[i + 1]) {
                None => return Reply::err(err::NOT_INT),
                // Redis 7.0 negates LLONG_MIN into itself, which then matches like -1.
                Some(i64::MIN) => -1,
                Some(r) => r,
            };
            if rank == 0 {
                return Reply::err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
            }
        } else if opt.eq_ignore_ascii_case(b"count") && more {
            count = Some(tri!(ranged(&args[i + 1], 0, "ERR COUNT can't be negative")) as usize);
        } else if opt.eq_ignore_ascii_case(b"maxlen") && more {
            maxlen = tri!(ranged(&args[i + 1], 0, "ERR MAXLEN can't be negative")) as usize;
        } else {
            return Reply::err(err::SYNTAX);
        }
        i += 2;
    }
    let l = match list_mut(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::Array(vec![])
            } else {
                Reply::Nil
            }
        }
        Ok(Some(l)) => l,
    };
    let found = l.positions(&args[2], rank, count.unwrap_or(1), maxlen);
    match count {
        Some(_) => Reply::Array(found.into_iter().map(|p| Reply::Int(p as i64)).collect()),
        None => match found.first() {
            Some(&p) => Reply::Int(p as i64),
            None => Reply::Nil,
        },
    }
}

/// LMOVE core once the source is known to be a non-empty list: checks the destination's type,
/// pops, pushes, replies with the element.
fn do_move(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Reply {
    if let Err(e) = list_mut(ctx, dst) {
        return e;
    }
    let Some(v) = pop_one_raw(ctx, src, from) else {
        return Reply::Nil;
    };
    // Push first (the destination may be the source), then settle the source.
    let new = new_list(ctx);
    match list_mut(ctx, dst) {
        Ok(Some(l)) => match to {
            End::Left => l.push_front(&v),
            End::Right => l.push_back(&v),
        },
        _ => {
            let mut l = new;
            l.push_back(&v);
            ctx.set_key(dst.clone(), Value::List(crate::keyspace::Shared::new(l)));
        }
    }
    ctx.modified(dst);
    ctx.notify(notify::LIST, to.push_event(), dst);
    ctx.ready(dst);
    ctx.notify(notify::LIST, from.pop_event(), src);
    let empty = matches!(list_mut(ctx, src), Ok(Some(l)) if l.is_empty());
    if empty {
        ctx.delete(src);
        ctx.notify(notify::GENERIC, "del", src);
    }
    ctx.modified(src);
    ctx.dirty(1);
    Reply::Bulk(v)
}

/// Pop one element without events (the caller sends them in Redis's order).
fn pop_one_raw(ctx: &mut Ctx, key: &[u8], end: End) -> Option<Bytes> {
    match list_mut(ctx, key) {
        Ok(Some(l)) => match end {
            End::Left => l.pop_front(),
            End::Right => l.pop_back(),
        },
        _ => None,
    }
}

fn lmove_generic(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Reply {
    match list_mut(ctx, src) {
        Err(e) => e,
        Ok(None) => Reply::Nil,
        Ok(Some(l)) if l.is_empty() => Reply::Nil,
        Ok(Some(_)) => do_move(ctx, src, dst, from, to),
    }
}

fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let from = tri!(parse_end(&args[3]));
    let to = tri!(parse_end(&args[4]));
    lmove_generic(ctx, &args[1], &args[2], from, to)
}

fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    lmove_generic(ctx, &args[1], &args[2], End::Right, End::Left)
}

/// Parsed `numkeys key… LEFT|RIGHT [COUNT n]` starting at `args[numkeys_idx]`.
fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<(Vec<Bytes>, End, usize), Reply> {
    let numkeys = ranged(
        &args[numkeys_idx],
        1,
        "ERR numkeys should be greater than 0",
    )? as u64;
    let where_idx = (numkeys_idx as u64 + 1).saturating_add(numkeys);
    if where_idx >= args.len() as u64 {
        return Err(Reply::err(err::SYNTAX));
    }
    let where_idx = where_idx as usize;
    let end = parse_end(&args[where_idx])?;
    let mut count: Option<i64> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        let more = j + 1 < args.len();
        if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && more {
            count = Some(ranged(
                &args[j + 1],
                1,
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(Reply::err(err::SYNTAX));
        }
    }
    let keys = args[numkeys_idx + 1..where_idx].to_vec();
    Ok((keys, end, count.unwrap_or(1) as usize))
}

/// Serve an [B]LMPOP from the first non-empty key: Some(reply) if served (or WRONGTYPE).
fn mpop_serve(ctx: &mut Ctx, keys: &[Bytes], end: End, count: usize) -> Option<Reply> {
    for key in keys {
        let len = match list_mut(ctx, key) {
            Err(e) => return Some(e),
            Ok(None) => continue,
            Ok(Some(l)) => l.len(),
        };
        if len == 0 {
            continue;
        }
        let popped = pop_n(ctx, key, end, count);
        ctx.propagate(vec![
            end.pop_cmd(),
            key.clone(),
            Bytes::from(popped.len().to_string()),
        ]);
        return Some(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
        ]));
    }
    None
}

fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (keys, end, count) = tri!(parse_mpop(args, 1));
    mpop_serve(ctx, &keys, end, count).unwrap_or(Reply::NilArray)
}

fn blmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (keys, end, count) = tri!(parse_mpop(args, 2));
    let deadline = tri!(ctx.parse_timeout(&args[1]));
    if let Some(r) = mpop_serve(ctx, &keys, end, count) {
        return r;
    }
    ctx.block_on(keys, deadline, args, Reply::NilArray)
}

fn bpop_generic(ctx: &mut Ctx, args: &[Bytes], end: End) -> Reply {
    let deadline = tri!(ctx.parse_timeout(&args[args.len() - 1]));
    let keys = &args[1..args.len() - 1];
    for key in keys {
        match list_mut(ctx, key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(_)) => {}
        }
        let Some(v) = pop_n(ctx, key, end, 1).pop() else {
            continue;
        };
        ctx.propagate(vec![end.pop_cmd(), key.clone()]);
        return Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]);
    }
    ctx.block_on(keys.to_vec(), deadline, args, Reply::NilArray)
}

fn blpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bpop_generic(ctx, args, End::Left)
}
fn brpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bpop_generic(ctx, args, End::Right)
}

/// BLMOVE / BRPOPLPUSH. Redis 7.0 answers a timeout with a null *array* (as every list block),
/// but a null bulk when it cannot block (inside MULTI).
fn blmove_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    from: End,
    to: End,
    timeout_arg: &[u8],
    log: Vec<Bytes>,
) -> Reply {
    let deadline = tri!(ctx.parse_timeout(timeout_arg));
    let (src, dst) = (&args[1], &args[2]);
    match list_mut(ctx, src) {
        Err(e) => e,
        Ok(Some(l)) if !l.is_empty() => {
            let r = do_move(ctx, src, dst, from, to);
            if !r.is_error() {
                ctx.propagate(log);
            }
            r
        }
        _ => {
            if ctx.in_exec || ctx.loading {
                return Reply::Nil;
            }
            ctx.block_on(vec![src.clone()], deadline, args, Reply::NilArray)
        }
    }
}

fn blmove(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let from = tri!(parse_end(&args[3]));
    let to = tri!(parse_end(&args[4]));
    let log = vec![
        Bytes::from_static(b"LMOVE"),
        args[1].clone(),
        args[2].clone(),
        args[3].clone(),
        args[4].clone(),
    ];
    blmove_generic(ctx, args, from, to, &args[5], log)
}

fn brpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let log = vec![
        Bytes::from_static(b"RPOPLPUSH"),
        args[1].clone(),
        args[2].clone(),
    ];
    blmove_generic(ctx, args, End::Right, End::Left, &args[3], log)
}
