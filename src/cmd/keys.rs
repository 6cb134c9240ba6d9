//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, RENAME, RENAMENX, COPY, MOVE, KEYS, SCAN,
//! RANDOMKEY, TOUCH, the EXPIRE family, TTL/PTTL/EXPIRETIME/PEXPIRETIME, PERSIST, OBJECT.

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec, K1, KALL, KNONE};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{Db, Object};
use crate::resp::{Reply, OK};
use crate::util::{glob_match, parse_i64};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, KALL, "generic", del),
    cmd("unlink", -2, WRITE | FAST, KALL, "generic", del),
    cmd("exists", -2, READONLY | FAST, KALL, "generic", exists),
    cmd("type", 2, READONLY | FAST, K1, "generic", type_cmd),
    cmd(
        "rename",
        3,
        WRITE,
        KeySpec::Range(1, 2, 1),
        "generic",
        rename,
    ),
    cmd(
        "renamenx",
        3,
        WRITE | FAST,
        KeySpec::Range(1, 2, 1),
        "generic",
        renamenx,
    ),
    cmd(
        "copy",
        -3,
        WRITE | DENYOOM,
        KeySpec::Range(1, 2, 1),
        "generic",
        copy,
    ),
    cmd("move", 3, WRITE | FAST, K1, "generic", move_cmd),
    cmd("keys", 2, READONLY, KNONE, "generic", keys),
    cmd("scan", -2, READONLY, KNONE, "generic", scan),
    cmd("randomkey", 1, READONLY, KNONE, "generic", randomkey),
    cmd("touch", -2, READONLY | FAST, KALL, "generic", touch),
    cmd("expire", -3, WRITE | FAST, K1, "generic", expire),
    cmd("pexpire", -3, WRITE | FAST, K1, "generic", pexpire),
    cmd("expireat", -3, WRITE | FAST, K1, "generic", expireat),
    cmd("pexpireat", -3, WRITE | FAST, K1, "generic", pexpireat),
    cmd("ttl", 2, READONLY | FAST, K1, "generic", ttl),
    cmd("pttl", 2, READONLY | FAST, K1, "generic", pttl),
    cmd("expiretime", 2, READONLY | FAST, K1, "generic", expiretime),
    cmd(
        "pexpiretime",
        2,
        READONLY | FAST,
        K1,
        "generic",
        pexpiretime,
    ),
    cmd("persist", 2, WRITE | FAST, K1, "generic", persist),
    cmd(
        "object",
        -2,
        READONLY,
        KeySpec::Range(2, 2, 1),
        "generic",
        object,
    ),
];

fn del(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for k in &args[1..] {
        ctx.expire_if_needed(k);
        if ctx.delete(k) {
            ctx.notify(notify::GENERIC, "del", k);
            ctx.dirty(1);
            n += 1;
        }
    }
    Reply::Int(n)
}

fn exists(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.exists(k) {
            n += 1;
        }
    }
    Reply::Int(n)
}

fn type_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.lookup_no_touch(&args[1]) {
        Some(o) => Reply::Status(o.value.type_name()),
        None => Reply::Status("none"),
    }
}

fn do_rename(ctx: &mut Ctx, args: &[Bytes], nx: bool) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    if !ctx.exists(src) {
        return Reply::err(err::NO_KEY);
    }
    if src == dst {
        return if nx { Reply::Int(0) } else { OK };
    }
    ctx.expire_if_needed(dst);
    let db = ctx.client.db;
    if nx && ctx.srv.dbs[db].keys.contains_key(&dst[..]) {
        return Reply::Int(0);
    }
    let ttl = ctx.srv.dbs[db].expire_of(src);
    let Some(obj) = ctx.srv.dbs[db].remove(src) else {
        return Reply::err(err::NO_KEY);
    };
    let existed = ctx.srv.dbs[db].remove(dst).is_some();
    ctx.srv.dbs[db].insert(dst.clone(), obj);
    if let Some(t) = ttl {
        ctx.srv.dbs[db].set_expire(dst, t);
    }
    ctx.ready(dst);
    ctx.notify(notify::NEW, "new", dst);
    ctx.modified(src);
    ctx.modified(dst);
    let _ = existed;
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    ctx.dirty(1);
    if nx {
        Reply::Int(1)
    } else {
        OK
    }
}

fn rename(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_rename(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_rename(ctx, args, true)
}

fn parse_db(ctx: &Ctx, arg: &[u8]) -> Result<usize, Reply> {
    let Some(v) = parse_i64(arg).filter(|v| *v >= i32::MIN as i64 && *v <= i32::MAX as i64) else {
        return Err(Reply::err(err::NOT_INT));
    };
    if v < 0 || v as usize >= ctx.srv.dbs.len() {
        return Err(Reply::err(err::DB_INDEX));
    }
    Ok(v as usize)
}

fn copy(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    let mut dst_db = ctx.client.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        if a == b"replace" {
            replace = true;
            i += 1;
        } else if a == b"db" && i + 1 < args.len() {
            match parse_db(ctx, &args[i + 1]) {
                Ok(d) => dst_db = d,
                Err(e) => return e,
            }
            i += 2;
        } else {
            return Reply::err(err::SYNTAX);
        }
    }
    let src_db = ctx.client.db;
    if src_db == dst_db && src == dst {
        return Reply::err("ERR source and destination objects are the same");
    }
    let now = ctx.now_ms;
    let loading = ctx.loading;
    let Some(o) = ctx.lookup(src) else {
        return Reply::Int(0);
    };
    let value = o.value.deep_clone();
    let ttl = ctx.srv.dbs[src_db].expire_of(src);
    crate::ctx::expire_if_needed(ctx.srv, dst_db, dst, now, loading);
    if ctx.srv.dbs[dst_db].keys.contains_key(&dst[..]) {
        if !replace {
            return Reply::Int(0);
        }
        ctx.srv.dbs[dst_db].remove(dst);
    }
    let lru = ctx.srv.lru_clock;
    ctx.srv.dbs[dst_db].insert(dst.clone(), Object::new(value, lru));
    if let Some(t) = ttl {
        ctx.srv.dbs[dst_db].set_expire(dst, t);
    }
    ctx.srv.signal_ready(dst_db, dst);
    ctx.notify_in(dst_db, notify::NEW, "new", dst);
    ctx.modified_in(dst_db, dst);
    ctx.notify_in(dst_db, notify::GENERIC, "copy_to", dst);
    ctx.dirty(1);
    Reply::Int(1)
}

fn move_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let dst_db = match parse_db(ctx, &args[2]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let src_db = ctx.client.db;
    if src_db == dst_db {
        return Reply::err("ERR source and destination objects are the same");
    }
    if !ctx.exists(key) {
        return Reply::Int(0);
    }
    let now = ctx.now_ms;
    let loading = ctx.loading;
    crate::ctx::expire_if_needed(ctx.srv, dst_db, key, now, loading);
    if ctx.srv.dbs[dst_db].keys.contains_key(&key[..]) {
        return Reply::Int(0);
    }
    let ttl = ctx.srv.dbs[src_db].expire_of(key);
    let Some(obj) = ctx.srv.dbs[src_db].remove(key) else {
        return Reply::Int(0);
    };
    ctx.srv.dbs[dst_db].insert(key.clone(), obj);
    if let Some(t) = ttl {
        ctx.srv.dbs[dst_db].set_expire(key, t);
    }
    ctx.srv.signal_ready(dst_db, key);
    ctx.notify_in(dst_db, notify::NEW, "new", key);
    ctx.modified(key);
    ctx.modified_in(dst_db, key);
    ctx.notify_in(src_db, notify::GENERIC, "move_from", key);
    ctx.notify_in(dst_db, notify::GENERIC, "move_to", key);
    ctx.dirty(1);
    Reply::Int(1)
}

fn keys(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let pat = &args[1];
    let all = pat.as_ref() == b"*";
    let db = ctx.client.db;
    let now = ctx.now_ms;
    let mut budget = crate::obuf::Budget::of(ctx);
    let d = &ctx.srv.dbs[db];
    let v: Vec<Reply> = d
        .keys
        .keys()
        .filter(|k| (all || glob_match(pat, k, false)) && !d.is_expired(k, now))
        .take_while(|k| budget.take(k.len()))
        .map(|k| Reply::Bulk(k.to_bytes()))
        .collect();
    if budget.close_if_spent(ctx.client) {
        return Reply::Nil;
    }
    Reply::Array(v)
}

/// Parsed SCAN-family options.
pub struct ScanOpts {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<String>,
    pub novalues: bool,
}

/// Parse `cursor [MATCH p] [COUNT n] [TYPE t]` starting at `args[cursor_idx]`.
pub fn parse_scan(args: &[Bytes], cursor_idx: usize, allow_type: bool) -> Result<ScanOpts, Reply> {
    let cursor = std::str::from_utf8(&args[cursor_idx])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let mut o = ScanOpts {
        cursor,
        pattern: None,
        count: 10,
        type_name: None,
        novalues: false,
    };
    let mut i = cursor_idx + 1;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        let has_val = i + 1 < args.len();
        if a == b"count" && has_val {
            let Some(c) = parse_i64(&args[i + 1]) else {
                return Err(Reply::err(err::NOT_INT));
            };
            if c < 1 {
                return Err(Reply::err(err::SYNTAX));
            }
            o.count = c.min(1 << 20) as usize;
            i += 2;
        } else if a == b"match" && has_val {
            let p = args[i + 1].clone();
            o.pattern = if p.as_ref() == b"*" { None } else { Some(p) };
            i += 2;
        } else if a == b"type" && has_val && allow_type {
            o.type_name = Some(String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase());
            i += 2;
        } else {
            return Err(Reply::err(err::SYNTAX));
        }
    }
    Ok(o)
}

fn scan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let o = match parse_scan(args, 1, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let db = ctx.client.db;
    let now = ctx.now_ms;
    let d = &ctx.srv.dbs[db];
    let (next, range) = Db::scan_indices(d.keys.len(), o.cursor, o.count);
    let mut found: Vec<Bytes> = Vec::new();
    let mut expired: Vec<Bytes> = Vec::new();
    for i in range.rev() {
        let Some((k, obj)) = d.keys.get_index(i) else {
            continue;
        };
        if d.is_expired(k, now) {
            expired.push(k.to_bytes());
            continue;
        }
        if let Some(p) = &o.pattern {
            if !glob_match(p, k, false) {
                continue;
            }
        }
        if let Some(t) = &o.type_name {
            if obj.value.type_name() != t {
                continue;
            }
        }
        found.push(k.to_bytes());
    }
    for k in expired {
        ctx.expire_if_needed(&k);
    }
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(found.into_iter().map(Reply::Bulk).collect()),
    ])
}

fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    use rand::Rng;
    let db = ctx.client.db;
    let mut rng = rand::thread_rng();
    for _ in 0..100 {
        let n = ctx.srv.dbs[db].keys.len();
        if n == 0 {
            return Reply::Nil;
        }
        let i = rng.gen_range(0..n);
        let k = ctx.srv.dbs[db].keys.get_index(i).map(|(k, _)| k.to_bytes());
        let Some(k) = k else { return Reply::Nil };
        if ctx.expire_if_needed(&k) {
            continue;
        }
        return Reply::Bulk(k);
    }
    // All sampled keys were volatile and expired; return one anyway as Redis does.
    match ctx.srv.dbs[db].keys.get_index(0) {
        Some((k, _)) => Reply::Bulk(k.to_bytes()),
        None => Reply::Nil,
    }
}

fn touch(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.lookup(k).is_some() {
            n += 1;
        }
    }
    Reply::Int(n)
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Sec,
    Ms,
}

fn expire_generic(ctx: &mut Ctx, args: &[Bytes], unit: Unit, absolute: bool) -> Reply {
    let key = &args[1];
    let Some(when) = parse_i64(&args[2]) else {
        return Reply::err(err::NOT_INT);
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        match &a.to_ascii_lowercase()[..] {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Reply::Error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(a)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::err("ERR GT and LT options at the same time are not compatible");
    }
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{name}' command"));
    let mut when_ms = when;
    if unit == Unit::Sec {
        match when.checked_mul(1000) {
            Some(v) => when_ms = v,
            None => return invalid(),
        }
    }
    if !absolute {
        match when_ms.checked_add(ctx.now_ms) {
            Some(v) => when_ms = v,
            None => return invalid(),
        }
    }
    if ctx.lookup(key).is_none() {
        return Reply::Int(0);
    }
    let db = ctx.client.db;
    let cur = ctx.srv.dbs[db].expire_of(key);
    if nx && cur.is_some() || xx && cur.is_none() {
        return Reply::Int(0);
    }
    if gt {
        // A key without TTL has an infinite TTL: GT never applies.
        match cur {
            None => return Reply::Int(0),
            Some(c) if when_ms <= c => return Reply::Int(0),
            _ => {}
        }
    }
    if lt {
        if let Some(c) = cur {
            if when_ms >= c {
                return Reply::Int(0);
            }
        }
    }
    if when_ms <= ctx.now_ms && !ctx.loading {
        // Already expired: delete now, log DEL.
        ctx.delete(key);
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.dirty(1);
        return Reply::Int(1);
    }
    ctx.srv.dbs[db].set_expire(key, when_ms);
    ctx.modified(key);
    ctx.propagate(vec![
        Bytes::from_static(b"PEXPIREAT"),
        key.clone(),
        Bytes::from(when_ms.to_string()),
    ]);
    ctx.notify(notify::GENERIC, "expire", key);
    ctx.dirty(1);
    Reply::Int(1)
}

fn expire(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, Unit::Sec, false)
}
fn pexpire(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, Unit::Ms, false)
}
fn expireat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, Unit::Sec, true)
}
fn pexpireat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, Unit::Ms, true)
}

fn ttl_generic(ctx: &mut Ctx, key: &[u8], ms: bool, absolute: bool) -> Reply {
    if !ctx.exists(key) {
        return Reply::Int(-2);
    }
    let db = ctx.client.db;
    let Some(at) = ctx.srv.dbs[db].expire_of(key) else {
        return Reply::Int(-1);
    };
    if absolute {
        return Reply::Int(if ms { at } else { at / 1000 });
    }
    let left = (at - ctx.now_ms).max(0);
    Reply::Int(if ms { left } else { (left + 500) / 1000 })
}

fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], false, false)
}
fn pttl(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], true, false)
}
fn expiretime(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], false, true)
}
fn pexpiretime(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], true, true)
}

fn persist(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    if ctx.lookup(key).is_none() {
        return Reply::Int(0);
    }
    if ctx.db().persist(key) {
        ctx.modified(key);
        ctx.notify(notify::GENERIC, "persist", key);
        ctx.dirty(1);
        Reply::Int(1)
    } else {
        Reply::Int(0)
    }
}

fn object(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    if sub == b"help" {
        return Reply::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::StatusOwned(s.to_string()))
            .collect(),
        );
    }
    if !matches!(&sub[..], b"encoding" | b"freq" | b"idletime" | b"refcount") {
        return crate::cmd::unknown_subcommand("object", &args[1]);
    }
    if args.len() != 3 {
        return crate::cmd::arity_error(&format!("object|{}", String::from_utf8_lossy(&sub)));
    }
    let lru_now = ctx.srv.lru_clock;
    let lfu = ctx.srv.hot.maxmemory_policy.is_lfu();
    let decay = ctx.srv.hot.lfu_decay_time;
    let shares_integers =
        ctx.srv.hot.maxmemory == 0 || ctx.srv.hot.maxmemory_policy.shares_integers();
    // OBJECT does not touch the key.
    let saved = ctx.client.no_touch;
    ctx.client.no_touch = true;
    let o = ctx.lookup(&args[2]);
    let r = match o {
        None => Reply::Nil,
        Some(o) => match &sub[..] {
            b"encoding" => Reply::bulk_str(o.value.encoding()),
            // Redis shares the objects of the integers 0..10000 (refcount INT_MAX) unless an
            // LRU or LFU policy is in force with a `maxmemory`, where each key needs its own
            // access time (`MAXMEMORY_FLAG_NO_SHARED_INTEGERS`). Strongbox shares nothing (every
            // key has its own); the answer follows the configuration now, where Redis's
            // follows it as it was when the value was stored.
            b"refcount" => Reply::Int(match &o.value {
                crate::keyspace::Value::Str(s)
                    if s.len() <= 4
                        && parse_i64(s).is_some_and(|v| (0..10000).contains(&v))
                        && shares_integers =>
                {
                    i32::MAX as i64
                }
                _ => 1,
            }),
            b"idletime" => {
                if lfu {
                    Reply::err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
                } else {
                    Reply::Int((lru_now.wrapping_sub(o.lru()) & 0xFF_FFFF) as i64)
                }
            }
            _ => {
                if !lfu {
                    Reply::err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
                } else {
                    Reply::Int(crate::evict::lfu_decayed(o, lru_now, decay) as i64)
                }
            }
        },
    };
    ctx.client.no_touch = saved;
    r
}
