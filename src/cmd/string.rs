//! Commands: strings and bitmaps — GET, SET (EX/PX/EXAT/PXAT/KEEPTTL, NX/XX, GET), SETNX, SETEX,
//! PSETEX, GETSET, GETDEL, GETEX, MGET, MSET, MSETNX, INCR/DECR/INCRBY/DECRBY, INCRBYFLOAT, APPEND,
//! STRLEN, GETRANGE/SUBSTR, SETRANGE, LCS, SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO — arguments, replies, errors, notifications and propagation as Redis 7.0.
//!
//! Values are `Value::Str(CompactBytes)` (inline up to 15 bytes, a boxed `Bytes` above);
//! integers are stored as their decimal text. Values and keys are copied out of the request
//! buffers before they are stored, so a small value never pins a large read buffer. In-place edits (APPEND, SETRANGE, SETBIT, BITFIELD) reuse the allocation
//! when nobody else holds the value.
//!
//! Logged forms (what `exec::call` appends to the AOF):
//! - SET/SETEX/PSETEX with an expiry → `SET k v PXAT <abs ms>`; SET … GET → the command without GET.
//! - GETSET → `SET k v`; GETDEL → `DEL k`; INCRBYFLOAT → `SET k <result> KEEPTTL`.
//! - GETEX → `PEXPIREAT k <abs ms>` / `DEL k` (EXAT/PXAT in the past) / `PERSIST k`, or nothing.
//! - Everything else that changed the dataset is logged as received.

mod bits;
pub(crate) mod longdouble;

use bytes::{Bytes, BytesMut};

use crate::cmd::{arity_error, err, flags::*, CommandSpec, Handler, KeySpec, K1, KALL};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{CompactBytes, Object, Value};
use crate::limits::{PROTO_MAX_BULK_LEN_DEFAULT, STRING_BYTES_MAX};
use crate::resp::{IntBuf, Reply, OK};
use crate::util::parse_i64;

use bits::Overflow;

#[allow(clippy::too_many_arguments)]
const fn c(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        group,
        since,
        summary,
        handler,
        subcommands: &[],
    }
}

const KPAIRS: KeySpec = KeySpec::Range(1, -1, 2);

pub static COMMANDS: &[CommandSpec] = &[
    c(
        "get",
        2,
        READONLY | FAST,
        K1,
        "string",
        "1.0.0",
        "Get the value of a key",
        get,
    ),
    c(
        "set",
        -3,
        WRITE | DENYOOM,
        K1,
        "string",
        "1.0.0",
        "Set the string value of a key",
        set,
    ),
    c(
        "setnx",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "1.0.0",
        "Set the value of a key, only if the key does not exist",
        setnx,
    ),
    c(
        "setex",
        4,
        WRITE | DENYOOM,
        K1,
        "string",
        "2.0.0",
        "Set the value and expiration of a key",
        setex,
    ),
    c(
        "psetex",
        4,
        WRITE | DENYOOM,
        K1,
        "string",
        "2.6.0",
        "Set the value and expiration in milliseconds of a key",
        psetex,
    ),
    c(
        "getset",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "1.0.0",
        "Set the string value of a key and return its old value",
        getset,
    ),
    c(
        "getdel",
        2,
        WRITE | FAST,
        K1,
        "string",
        "6.2.0",
        "Get the value of a key and delete the key",
        getdel,
    ),
    c(
        "getex",
        -2,
        WRITE | FAST,
        K1,
        "string",
        "6.2.0",
        "Get the value of a key and optionally set its expiration",
        getex,
    ),
    c(
        "mget",
        -2,
        READONLY | FAST,
        KALL,
        "string",
        "1.0.0",
        "Get the values of all the given keys",
        mget,
    ),
    c(
        "mset",
        -3,
        WRITE | DENYOOM,
        KPAIRS,
        "string",
        "1.0.1",
        "Set multiple keys to multiple values",
        mset,
    ),
    c(
        "msetnx",
        -3,
        WRITE | DENYOOM,
        KPAIRS,
        "string",
        "1.0.1",
        "Set multiple keys to multiple values, only if none of the keys exist",
        msetnx,
    ),
    c(
        "incr",
        2,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "1.0.0",
        "Increment the integer value of a key by one",
        incr,
    ),
    c(
        "decr",
        2,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "1.0.0",
        "Decrement the integer value of a key by one",
        decr,
    ),
    c(
        "incrby",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "1.0.0",
        "Increment the integer value of a key by the given amount",
        incrby,
    ),
    c(
        "decrby",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "1.0.0",
        "Decrement the integer value of a key by the given number",
        decrby,
    ),
    c(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "2.6.0",
        "Increment the float value of a key by the given amount",
        incrbyfloat,
    ),
    c(
        "append",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        "2.0.0",
        "Append a value to a key",
        append,
    ),
    c(
        "strlen",
        2,
        READONLY | FAST,
        K1,
        "string",
        "2.2.0",
        "Get the length of the value stored in a key",
        strlen,
    ),
    c(
        "getrange",
        4,
        READONLY,
        K1,
        "string",
        "2.4.0",
        "Get a substring of the string stored at a key",
        getrange,
    ),
    c(
        "substr",
        4,
        READONLY,
        K1,
        "string",
        "1.0.0",
        "Get a substring of the string stored at a key",
        getrange,
    ),
    c(
        "setrange",
        4,
        WRITE | DENYOOM,
        K1,
        "string",
        "2.2.0",
        "Overwrite part of a string at key starting at the specified offset",
        setrange,
    ),
    c(
        "lcs",
        -3,
        READONLY,
        KeySpec::Range(1, 2, 1),
        "string",
        "7.0.0",
        "Find longest common substring",
        lcs,
    ),
    c(
        "setbit",
        4,
        WRITE | DENYOOM,
        K1,
        "bitmap",
        "2.2.0",
        "Sets or clears the bit at offset in the string value stored at key",
        setbit,
    ),
    c(
        "getbit",
        3,
        READONLY | FAST,
        K1,
        "bitmap",
        "2.2.0",
        "Returns the bit value at offset in the string value stored at key",
        getbit,
    ),
    c(
        "bitcount",
        -2,
        READONLY,
        K1,
        "bitmap",
        "2.6.0",
        "Count set bits in a string",
        bitcount,
    ),
    c(
        "bitpos",
        -3,
        READONLY,
        K1,
        "bitmap",
        "2.8.7",
        "Find first bit set or clear in a string",
        bitpos,
    ),
    c(
        "bitop",
        -4,
        WRITE | DENYOOM,
        KeySpec::Range(2, -1, 1),
        "bitmap",
        "2.6.0",
        "Perform bitwise operations between strings",
        bitop,
    ),
    c(
        "bitfield",
        -2,
        WRITE | DENYOOM,
        K1,
        "bitmap",
        "3.2.0",
        "Perform arbitrary bitfield integer operations on strings",
        bitfield,
    ),
    c(
        "bitfield_ro",
        -2,
        READONLY | FAST,
        K1,
        "bitmap",
        "6.0.0",
        "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
        bitfield_ro,
    ),
];

// ---------------------------------------------------------------------------------------------
// Shared helpers

const ERR_EXCEEDS: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const ERR_BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const ERR_BIT_VALUE: &str = "ERR bit is not an integer or out of range";
const ERR_BITFIELD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const ERR_NAN: &str = "ERR increment would produce NaN or Infinity";

fn str_value(b: Bytes) -> Value {
    Value::Str(CompactBytes::from_bytes(b))
}

/// A string value holding a copy of `s` (inline when short: no allocation).
fn str_value_of(s: &[u8]) -> Value {
    Value::Str(CompactBytes::from_slice(s))
}

/// `proto-max-bulk-len`, the largest string a command may build.
fn max_string_len(ctx: &Ctx) -> u64 {
    match ctx.cfg_i64("proto-max-bulk-len") {
        v if v > 0 => v as u64,
        _ => PROTO_MAX_BULK_LEN_DEFAULT,
    }
}

/// The string size limit a command must respect. Redis lifts it for the clients it must obey
/// (the log being loaded); we keep a bound there too — the larger of the configured limit and
/// 512 MiB — so a corrupt log cannot ask for an absurd allocation.
fn size_limit(ctx: &Ctx) -> u64 {
    let configured = max_string_len(ctx);
    if ctx.loading {
        configured.max(STRING_BYTES_MAX as u64)
    } else {
        configured
    }
}

/// Redis's `checkStringLength`: `size + append` must not exceed proto-max-bulk-len.
fn check_string_length(ctx: &Ctx, size: u64, append: u64) -> Result<(), Reply> {
    match size.checked_add(append) {
        Some(t) if t <= size_limit(ctx) => Ok(()),
        _ => Err(Reply::err(ERR_EXCEEDS)),
    }
}

/// Apply `f` to the string value of an existing object, reusing its buffer when unshared.
fn edit_str<R>(obj: &mut Object, f: impl FnOnce(&mut BytesMut) -> R) -> R {
    let Value::Str(b) = &mut obj.value else {
        unreachable!("edit_str on a non-string value")
    };
    let mut m = std::mem::take(b).into_bytes_mut();
    let r = f(&mut m);
    // Redis's dbUnshareStringValue: a string edited in place is `raw` from then on.
    *b = CompactBytes::raw(m.freeze());
    r
}

/// Look up a string for a write: Ok(None) if missing, WRONGTYPE if another type.
fn string_exists_for_write(ctx: &mut Ctx, key: &[u8]) -> Result<Option<usize>, Reply> {
    match ctx.lookup_mut(key) {
        None => Ok(None),
        Some(o) => match &o.value {
            Value::Str(s) => Ok(Some(s.len())),
            _ => Err(Reply::err(err::WRONGTYPE)),
        },
    }
}

fn int_arg(a: &[u8]) -> Result<i64, Reply> {
    parse_i64(a).ok_or_else(|| Reply::err(err::NOT_INT))
}

fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// GET / SET family

fn get_reply(ctx: &mut Ctx, key: &[u8]) -> Result<Reply, Reply> {
    ctx.get_string_reply(key)
}

fn get(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    get_reply(ctx, &args[1]).unwrap_or_else(|e| e)
}

const OBJ_SET_NX: u32 = 1 << 0;
const OBJ_SET_XX: u32 = 1 << 1;
const OBJ_EX: u32 = 1 << 2;
const OBJ_PX: u32 = 1 << 3;
const OBJ_KEEPTTL: u32 = 1 << 4;
const OBJ_SET_GET: u32 = 1 << 5;
const OBJ_EXAT: u32 = 1 << 6;
const OBJ_PXAT: u32 = 1 << 7;
const OBJ_PERSIST: u32 = 1 << 8;
const ANY_EXPIRE: u32 = OBJ_EX | OBJ_PX | OBJ_EXAT | OBJ_PXAT;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExtKind {
    Get,
    Set,
}

/// Redis's `parseExtendedStringArgumentsOrReply`: the flags and the index of the expire
/// argument, if any. Conflicting or unknown options are a syntax error.
fn parse_extended(args: &[Bytes], kind: ExtKind) -> Result<(u32, Option<usize>), Reply> {
    let mut flags = 0u32;
    let mut expire = None;
    let mut j = if kind == ExtKind::Get { 2 } else { 3 };
    let set = kind == ExtKind::Set;
    while j < args.len() {
        let opt = &args[j][..];
        let has_next = j + 1 < args.len();
        let ok_expire =
            |f: u32, own: u32| f & (OBJ_KEEPTTL | OBJ_PERSIST | (ANY_EXPIRE & !own)) == 0;
        if eq_ic(opt, "nx") && flags & OBJ_SET_XX == 0 && set {
            flags |= OBJ_SET_NX;
        } else if eq_ic(opt, "xx") && flags & OBJ_SET_NX == 0 && set {
            flags |= OBJ_SET_XX;
        } else if eq_ic(opt, "get") && set {
            flags |= OBJ_SET_GET;
        } else if eq_ic(opt, "keepttl") && flags & (OBJ_PERSIST | ANY_EXPIRE) == 0 && set {
            flags |= OBJ_KEEPTTL;
        } else if eq_ic(opt, "persist") && !set && flags & (ANY_EXPIRE | OBJ_KEEPTTL) == 0 {
            flags |= OBJ_PERSIST;
        } else if has_next
            && (eq_ic(opt, "ex") || eq_ic(opt, "px") || eq_ic(opt, "exat") || eq_ic(opt, "pxat"))
        {
            let own = match opt.len() {
                2 if opt[0].eq_ignore_ascii_case(&b'e') => OBJ_EX,
                2 => OBJ_PX,
                _ if opt[0].eq_ignore_ascii_case(&b'e') => OBJ_EXAT,
                _ => OBJ_PXAT,
            };
            if !ok_expire(flags, own) {
                return Err(Reply::err(err::SYNTAX));
            }
            flags |= own;
            expire = Some(j + 1);
            j += 1;
        } else {
            return Err(Reply::err(err::SYNTAX));
        }
        j += 1;
    }
    Ok((flags, expire))
}

/// Redis's `getExpireMillisecondsOrReply`: the absolute expiry in unix ms.
fn expire_at_ms(ctx: &Ctx, arg: &[u8], flags: u32, cmd: &str) -> Result<i64, Reply> {
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{cmd}' command"));
    let mut ms = int_arg(arg)?;
    let seconds = flags & (OBJ_EX | OBJ_EXAT) != 0;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid());
    }
    if seconds {
        ms *= 1000;
    }
    if flags & (OBJ_EX | OBJ_PX) != 0 {
        ms = ms.checked_add(ctx.now_ms).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms)
}

/// Redis's `setGenericCommand`.
#[allow(clippy::too_many_arguments)]
fn set_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    cmd: &str,
    flags: u32,
    key: &Bytes,
    val: &Bytes,
    expire: Option<&Bytes>,
    ok_reply: Reply,
    abort_reply: Reply,
) -> Reply {
    let when = match expire {
        Some(e) => match expire_at_ms(ctx, e, flags, cmd) {
            Ok(ms) => Some(ms),
            Err(r) => return r,
        },
        None => None,
    };
    let mut get_result = None;
    if flags & OBJ_SET_GET != 0 {
        match get_reply(ctx, key) {
            Ok(r) => get_result = Some(r),
            Err(e) => return e,
        }
    }
    let found = ctx.exists(key);
    if (flags & OBJ_SET_NX != 0 && found) || (flags & OBJ_SET_XX != 0 && !found) {
        return get_result.unwrap_or(abort_reply);
    }
    let value = str_value_of(val);
    if flags & OBJ_KEEPTTL != 0 {
        ctx.set_key_keep_ttl(key, value);
    } else {
        ctx.set_key(key, value);
    }
    ctx.dirty(1);
    ctx.notify(notify::STRING, "set", key);
    if let Some(ms) = when {
        ctx.db().set_expire(key, ms);
        ctx.propagate(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            val.clone(),
            Bytes::from_static(b"PXAT"),
            Bytes::from(ms.to_string()),
        ]);
        ctx.notify(notify::GENERIC, "expire", key);
    } else if flags & OBJ_SET_GET != 0 {
        let argv: Vec<Bytes> = args
            .iter()
            .enumerate()
            .filter(|(j, a)| *j < 3 || !eq_ic(a, "get"))
            .map(|(_, a)| a.clone())
            .collect();
        ctx.propagate(argv);
    }
    get_result.unwrap_or(ok_reply)
}

fn set(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (flags, expire) = match parse_extended(args, ExtKind::Set) {
        Ok(v) => v,
        Err(e) => return e,
    };
    set_generic(
        ctx,
        args,
        "set",
        flags,
        &args[1],
        &args[2],
        expire.map(|i| &args[i]),
        OK,
        Reply::Nil,
    )
}

fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_generic(
        ctx,
        args,
        "setnx",
        OBJ_SET_NX,
        &args[1],
        &args[2],
        None,
        Reply::Int(1),
        Reply::Int(0),
    )
}

fn setex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_generic(
        ctx,
        args,
        "setex",
        OBJ_EX,
        &args[1],
        &args[3],
        Some(&args[2]),
        OK,
        Reply::Nil,
    )
}

fn psetex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_generic(
        ctx,
        args,
        "psetex",
        OBJ_PX,
        &args[1],
        &args[3],
        Some(&args[2]),
        OK,
        Reply::Nil,
    )
}

fn getset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let reply = match get_reply(ctx, key) {
        Ok(r) => r,
        Err(e) => return e,
    };
    ctx.set_key(key, str_value_of(&args[2]));
    ctx.notify(notify::STRING, "set", key);
    ctx.dirty(1);
    ctx.propagate(vec![
        Bytes::from_static(b"SET"),
        key.clone(),
        args[2].clone(),
    ]);
    reply
}

fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let reply = match get_reply(ctx, key) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if ctx.delete(key) {
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.dirty(1);
    }
    reply
}

fn getex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (flags, expire) = match parse_extended(args, ExtKind::Get) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let key = &args[1];
    let reply = match get_reply(ctx, key) {
        Ok(Reply::Nil) => return Reply::Nil,
        Ok(r) => r,
        Err(e) => return e,
    };
    let when = match expire {
        Some(i) => match expire_at_ms(ctx, &args[i], flags, "getex") {
            Ok(ms) => Some(ms),
            Err(e) => return e,
        },
        None => None,
    };
    match when {
        Some(ms) if flags & (OBJ_EXAT | OBJ_PXAT) != 0 && ms <= ctx.now_ms && !ctx.loading => {
            ctx.delete(key);
            ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(notify::GENERIC, "del", key);
            ctx.dirty(1);
        }
        Some(ms) => {
            ctx.db().set_expire(key, ms);
            ctx.propagate(vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                Bytes::from(ms.to_string()),
            ]);
            ctx.modified(key);
            ctx.notify(notify::GENERIC, "expire", key);
            ctx.dirty(1);
        }
        None if flags & OBJ_PERSIST != 0 && ctx.db().persist(key) => {
            ctx.modified(key);
            ctx.propagate(vec![Bytes::from_static(b"PERSIST"), key.clone()]);
            ctx.notify(notify::GENERIC, "persist", key);
            ctx.dirty(1);
        }
        None => {}
    }
    reply
}

fn mget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut out = Vec::with_capacity(args.len() - 1);
    for k in &args[1..] {
        out.push(match ctx.lookup(k) {
            Some(Object {
                value: Value::Str(s),
                ..
            }) => Reply::bulk_of(s),
            _ => Reply::Nil,
        });
    }
    Reply::Array(out)
}

fn mset_generic(ctx: &mut Ctx, args: &[Bytes], nx: bool) -> Reply {
    if args.len() & 1 == 0 {
        return arity_error(if nx { "msetnx" } else { "mset" });
    }
    if nx && args[1..].chunks(2).any(|kv| ctx.exists(&kv[0])) {
        return Reply::Int(0);
    }
    for kv in args[1..].chunks(2) {
        ctx.expire_if_needed(&kv[0]);
        ctx.set_key(&kv[0], str_value_of(&kv[1]));
        ctx.notify(notify::STRING, "set", &kv[0]);
    }
    ctx.dirty((args.len() as u64 - 1) / 2);
    if nx {
        Reply::Int(1)
    } else {
        OK
    }
}

fn mset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    mset_generic(ctx, args, false)
}

fn msetnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    mset_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------------
// Counters

/// Store a computed string value, keeping the key's TTL if it exists.
fn store_keep_ttl(ctx: &mut Ctx, key: &Bytes, existed: bool, v: Bytes) {
    if existed {
        if let Some(o) = ctx.lookup_mut(key) {
            o.value = Value::Str(CompactBytes::from_bytes(v));
        }
        ctx.modified(key);
    } else {
        ctx.set_key(key, Value::Str(CompactBytes::from_bytes(v)));
    }
}

fn incr_decr(ctx: &mut Ctx, key: &Bytes, incr: i64) -> Reply {
    // One lookup, and the new number formatted on the stack straight into the value (no
    // String or Bytes allocation): INCR is as hot as SET in job queues (counters, ids).
    let updated = match ctx.lookup_mut(key) {
        None => None,
        Some(o) => {
            let Value::Str(s) = &mut o.value else {
                return Reply::err(err::WRONGTYPE);
            };
            let Some(old) = parse_i64(s) else {
                return Reply::err(err::NOT_INT);
            };
            let Some(new) = old.checked_add(incr) else {
                return Reply::err(err::OVERFLOW);
            };
            *s = CompactBytes::from_slice(IntBuf::new(new).as_bytes());
            Some(new)
        }
    };
    let new = match updated {
        Some(new) => {
            ctx.modified(key);
            new
        }
        None => {
            let v = CompactBytes::from_slice(IntBuf::new(incr).as_bytes());
            ctx.set_key(key, Value::Str(v));
            incr
        }
    };
    ctx.notify(notify::STRING, "incrby", key);
    ctx.dirty(1);
    Reply::Int(new)
}

fn incr(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    incr_decr(ctx, &args[1], 1)
}

fn decr(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    incr_decr(ctx, &args[1], -1)
}

fn incrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(n) => incr_decr(ctx, &args[1], n),
        Err(e) => e,
    }
}

fn decrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(i64::MIN) => Reply::err("ERR decrement would overflow"),
        Ok(n) => incr_decr(ctx, &args[1], -n),
        Err(e) => e,
    }
}

fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let (old, existed) = match ctx.lookup_mut(key) {
        None => (Some(longdouble::Ld::Zero { neg: false }), false),
        Some(o) => match &o.value {
            Value::Str(s) => (longdouble::parse(s), true),
            _ => return Reply::err(err::WRONGTYPE),
        },
    };
    let (Some(old), Some(incr)) = (old, longdouble::parse(&args[2])) else {
        return Reply::err(err::NOT_FLOAT);
    };
    let Some(sum) = longdouble::add(old, incr) else {
        return Reply::err(ERR_NAN);
    };
    let text = Bytes::from(longdouble::format_human(sum));
    store_keep_ttl(ctx, key, existed, text.clone());
    ctx.notify(notify::STRING, "incrbyfloat", key);
    ctx.dirty(1);
    ctx.propagate(vec![
        Bytes::from_static(b"SET"),
        key.clone(),
        text.clone(),
        Bytes::from_static(b"KEEPTTL"),
    ]);
    Reply::Bulk(text)
}

// ---------------------------------------------------------------------------------------------
// APPEND, STRLEN, GETRANGE, SETRANGE

fn append(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let total = match string_exists_for_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => {
            ctx.set_key(key, str_value_of(&args[2]));
            args[2].len()
        }
        Ok(Some(len)) => {
            if let Err(e) = check_string_length(ctx, len as u64, args[2].len() as u64) {
                return e;
            }
            let Some(o) = ctx.lookup_mut(key) else {
                return Reply::err(err::WRONGTYPE);
            };
            let n = edit_str(o, |m| {
                m.extend_from_slice(&args[2]);
                m.len()
            });
            ctx.modified(key);
            n
        }
    };
    ctx.notify(notify::STRING, "append", key);
    ctx.dirty(1);
    Reply::Int(total as i64)
}

fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.get_string(&args[1]) {
        Ok(Some(s)) => Reply::Int(s.len() as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (mut start, mut end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let s = match ctx.get_string(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Bulk(Bytes::new()),
        Err(e) => return e,
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::Bulk(Bytes::new());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Reply::Bulk(Bytes::new());
    }
    Reply::Bulk(s.slice(start as usize..=end as usize))
}

fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let value = &args[3];
    let offset = match int_arg(&args[2]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if offset < 0 {
        return Reply::err("ERR offset is out of range");
    }
    let offset = offset as u64;
    match string_exists_for_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => {
            if value.is_empty() {
                return Reply::Int(0);
            }
            if let Err(e) = check_string_length(ctx, offset, value.len() as u64) {
                return e;
            }
            let mut v = BytesMut::zeroed(offset as usize + value.len());
            v[offset as usize..].copy_from_slice(value);
            ctx.set_key(key, Value::Str(CompactBytes::raw(v.freeze())));
        }
        Ok(Some(olen)) => {
            if value.is_empty() {
                return Reply::Int(olen as i64);
            }
            if let Err(e) = check_string_length(ctx, offset, value.len() as u64) {
                return e;
            }
            let Some(o) = ctx.lookup_mut(key) else {
                return Reply::err(err::WRONGTYPE);
            };
            edit_str(o, |m| {
                let end = offset as usize + value.len();
                if m.len() < end {
                    m.resize(end, 0);
                }
                m[offset as usize..end].copy_from_slice(value);
            });
            ctx.modified(key);
        }
    }
    ctx.notify(notify::STRING, "setrange", key);
    ctx.dirty(1);
    let len = match ctx.get_string(key) {
        Ok(Some(s)) => s.len(),
        _ => 0,
    };
    Reply::Int(len as i64)
}

// ---------------------------------------------------------------------------------------------
// LCS

fn lcs(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let a = ctx.lookup(&args[1]).map(|o| match &o.value {
        Value::Str(s) => Some(s.to_bytes()),
        _ => None,
    });
    let b = ctx.lookup(&args[2]).map(|o| match &o.value {
        Value::Str(s) => Some(s.to_bytes()),
        _ => None,
    });
    let (a, b) = match (a, b) {
        (Some(None), _) | (_, Some(None)) => {
            return Reply::err("ERR The specified keys must contain string values")
        }
        (a, b) => (
            a.flatten().unwrap_or_default(),
            b.flatten().unwrap_or_default(),
        ),
    };
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j][..];
        let more = j + 1 < args.len();
        if eq_ic(opt, "idx") {
            getidx = true;
        } else if eq_ic(opt, "len") {
            getlen = true;
        } else if eq_ic(opt, "withmatchlen") {
            withmatchlen = true;
        } else if eq_ic(opt, "minmatchlen") && more {
            minmatchlen = match int_arg(&args[j + 1]) {
                Ok(v) => v.max(0),
                Err(e) => return e,
            };
            j += 1;
        } else {
            return Reply::err(err::SYNTAX);
        }
        j += 1;
    }
    if getlen && getidx {
        return Reply::err("ERR If you want both the length and indexes, please just use IDX.");
    }
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Reply::err("ERR String too long for LCS");
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells.saturating_mul(4) > max_string_len(ctx) {
        return Reply::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for jj in 1..=blen {
            t[i * w + jj] = if a[i - 1] == b[jj - 1] {
                t[(i - 1) * w + jj - 1] + 1
            } else {
                t[(i - 1) * w + jj].max(t[i * w + jj - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    let computelcs = getidx || !getlen;
    let mut result = vec![0u8; if computelcs { total as usize } else { 0 }];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let (mut i, mut jj) = (alen, blen);
    // `arange_start == alen` means "no range in progress" (as in Redis).
    let (mut arange_start, mut arange_end, mut brange_start, mut brange_end) = (alen, 0, 0, 0);
    while computelcs && i > 0 && jj > 0 {
        let mut emit = false;
        if a[i - 1] == b[jj - 1] {
            result[idx - 1] = a[i - 1];
            if arange_start == alen {
                arange_start = i - 1;
                arange_end = i - 1;
                brange_start = jj - 1;
                brange_end = jj - 1;
            } else if arange_start == i && brange_start == jj {
                arange_start -= 1;
                brange_start -= 1;
            } else {
                emit = true;
            }
            if arange_start == 0 || brange_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            jj -= 1;
        } else {
            let l1 = t[(i - 1) * w + jj];
            let l2 = t[i * w + jj - 1];
            if l1 > l2 {
                i -= 1;
            } else {
                jj -= 1;
            }
            if arange_start != alen {
                emit = true;
            }
        }
        let match_len = arange_end as i64 - arange_start as i64 + 1;
        if emit {
            if (minmatchlen == 0 || match_len >= minmatchlen) && getidx {
                let mut m = vec![
                    Reply::Array(vec![
                        Reply::Int(arange_start as i64),
                        Reply::Int(arange_end as i64),
                    ]),
                    Reply::Array(vec![
                        Reply::Int(brange_start as i64),
                        Reply::Int(brange_end as i64),
                    ]),
                ];
                if withmatchlen {
                    m.push(Reply::Int(match_len));
                }
                matches.push(Reply::Array(m));
            }
            arange_start = alen;
        }
    }
    if getidx {
        Reply::Map(vec![
            (Reply::bulk_str("matches"), Reply::Array(matches)),
            (Reply::bulk_str("len"), Reply::Int(total as i64)),
        ])
    } else if getlen {
        Reply::Int(total as i64)
    } else {
        Reply::Bulk(Bytes::from(result))
    }
}

// ---------------------------------------------------------------------------------------------
// Bitmaps

/// Redis's `getBitOffsetFromArgument`: a bit offset, or with `hash_bits > 0` also the
/// `#<n>` form meaning `n * hash_bits` (multiplied with C's wrapping arithmetic).
fn bit_offset(ctx: &Ctx, arg: &[u8], hash_bits: u32) -> Result<u64, Reply> {
    let bad = || Reply::err(ERR_BIT_OFFSET);
    let usehash = hash_bits > 0 && arg.first() == Some(&b'#');
    let digits = if usehash { &arg[1..] } else { arg };
    let mut v = parse_i64(digits).ok_or_else(bad)?;
    if usehash {
        v = v.wrapping_mul(hash_bits as i64);
    }
    if v < 0 || (v as u64 >> 3) >= size_limit(ctx) {
        return Err(bad());
    }
    Ok(v as u64)
}

/// Redis's `lookupStringForBitCommand`: the string at `key` grown (zero padded) so that bit
/// `maxbit` exists, created if missing. Returns whether the value was created or grew.
fn string_for_bit_write(ctx: &mut Ctx, key: &Bytes, maxbit: u64) -> Result<bool, Reply> {
    let need = (maxbit >> 3) as usize + 1;
    match string_exists_for_write(ctx, key)? {
        None => {
            ctx.set_key(
                key,
                Value::Str(CompactBytes::raw(BytesMut::zeroed(need).freeze())),
            );
            Ok(true)
        }
        // Grown, or at least made `raw` (Redis unshares it whether or not a bit changes).
        Some(len) => {
            if let Some(o) = ctx.lookup_mut(key) {
                edit_str(o, |m| {
                    if m.len() < need {
                        m.resize(need, 0);
                    }
                });
            }
            Ok(len < need)
        }
    }
}

fn setbit(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let offset = match bit_offset(ctx, &args[2], 0) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let on = match parse_i64(&args[3]) {
        Some(v @ (0 | 1)) => v == 1,
        _ => return Reply::err(ERR_BIT_VALUE),
    };
    let grew = match string_for_bit_write(ctx, key, offset) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let byte = (offset >> 3) as usize;
    let shift = 7 - (offset & 7) as u32;
    let Some(o) = ctx.lookup_mut(key) else {
        return Reply::Int(0);
    };
    let old = match &o.value {
        Value::Str(s) => (s[byte] >> shift) & 1 == 1,
        _ => return Reply::err(err::WRONGTYPE),
    };
    if grew || old != on {
        edit_str(o, |m| {
            m[byte] = (m[byte] & !(1 << shift)) | ((on as u8) << shift);
        });
        ctx.modified(key);
        ctx.notify(notify::STRING, "setbit", key);
        ctx.dirty(1);
    }
    Reply::Int(old as i64)
}

fn getbit(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let offset = match bit_offset(ctx, &args[2], 0) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let s = match ctx.get_string(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let byte = (offset >> 3) as usize;
    let bit = match s.get(byte) {
        Some(b) => (b >> (7 - (offset & 7))) & 1,
        None => 0,
    };
    Reply::Int(bit as i64)
}

/// Parse `BIT|BYTE`; true for BIT.
fn bit_unit(arg: &[u8]) -> Result<bool, Reply> {
    if eq_ic(arg, "bit") {
        Ok(true)
    } else if eq_ic(arg, "byte") {
        Ok(false)
    } else {
        Err(Reply::err(err::SYNTAX))
    }
}

/// Clamp a `[start, end]` range (negative = from the end) to `[0, totlen-1]` like bitops.c.
fn clamp_range(mut start: i64, mut end: i64, totlen: i64) -> (i64, i64) {
    if start < 0 {
        start += totlen;
    }
    if end < 0 {
        end += totlen;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= totlen {
        end = totlen - 1;
    }
    (start, end)
}

fn bitcount(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let s = match ctx.get_string(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let p = &s[..];
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    let (start, end) = match args.len() {
        4 | 5 => {
            let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
                (Ok(s), Ok(e)) => (s, e),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            if start < 0 && end < 0 && start > end {
                return Reply::Int(0);
            }
            let isbit = if args.len() == 5 {
                match bit_unit(&args[4]) {
                    Ok(b) => b,
                    Err(e) => return e,
                }
            } else {
                false
            };
            let totlen = if isbit {
                p.len() as i64 * 8
            } else {
                p.len() as i64
            };
            let (mut start, mut end) = clamp_range(start, end, totlen);
            if isbit && start <= end {
                (first_mask, last_mask) = bits::edge_masks(start, end);
                start >>= 3;
                end >>= 3;
            }
            (start, end)
        }
        2 => (0, p.len() as i64 - 1),
        _ => return Reply::err(err::SYNTAX),
    };
    if start > end {
        return Reply::Int(0);
    }
    let (su, eu) = (start as usize, end as usize);
    let mut count = bits::popcount(&p[su..=eu]);
    if first_mask != 0 || last_mask != 0 {
        let fl = [p[su] & first_mask, p[eu] & last_mask];
        count -= bits::popcount(&fl);
    }
    Reply::Int(count)
}

fn bitpos(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let bit = match int_arg(&args[2]) {
        Ok(b) => b,
        Err(e) => return e,
    };
    if bit != 0 && bit != 1 {
        return Reply::err("ERR The bit argument must be 1 or 0.");
    }
    let bit = bit == 1;
    let s = match ctx.get_string(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(if bit { -1 } else { 0 }),
        Err(e) => return e,
    };
    let p = &s[..];
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    let mut end_given = false;
    let (start, end) = match args.len() {
        4..=6 => {
            let start = match int_arg(&args[3]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let isbit = if args.len() == 6 {
                match bit_unit(&args[5]) {
                    Ok(b) => b,
                    Err(e) => return e,
                }
            } else {
                false
            };
            let totlen = p.len() as i64;
            let end = if args.len() >= 5 {
                end_given = true;
                match int_arg(&args[4]) {
                    Ok(v) => v,
                    Err(e) => return e,
                }
            } else if isbit {
                (totlen << 3) + 7
            } else {
                totlen - 1
            };
            let totlen = if isbit { totlen << 3 } else { totlen };
            let (mut start, mut end) = clamp_range(start, end, totlen);
            if isbit && start <= end {
                (first_mask, last_mask) = bits::edge_masks(start, end);
                start >>= 3;
                end >>= 3;
            }
            (start, end)
        }
        3 => (0, p.len() as i64 - 1),
        _ => return Reply::err(err::SYNTAX),
    };
    if start > end {
        return Reply::Int(-1);
    }
    // A transcription of bitops.c's edge handling, so every corner answers as Redis does.
    let mut start = start;
    let end = end as usize;
    let mut bytes = end as i64 - start + 1;
    let mut pos: i64;
    'result: {
        if first_mask != 0 {
            let mut tmp = if bit {
                p[start as usize] & !first_mask
            } else {
                p[start as usize] | first_mask
            };
            if last_mask != 0 && bytes == 1 {
                tmp = if bit {
                    tmp & !last_mask
                } else {
                    tmp | last_mask
                };
            }
            pos = bits::bitpos(&[tmp], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'result;
            }
            start += 1;
            bytes -= 1;
        }
        let curbytes = bytes - if last_mask != 0 { 1 } else { 0 };
        if curbytes > 0 {
            let s0 = start as usize;
            pos = bits::bitpos(&p[s0..s0 + curbytes as usize], bit);
            if bytes == curbytes || (pos != -1 && pos != curbytes << 3) {
                break 'result;
            }
            start += curbytes;
            bytes -= curbytes;
        }
        let tmp = if bit {
            p[end] & !last_mask
        } else {
            p[end] | last_mask
        };
        pos = bits::bitpos(&[tmp], bit);
    }
    if end_given && !bit && pos == bytes << 3 {
        return Reply::Int(-1);
    }
    if pos != -1 {
        pos += start << 3;
    }
    Reply::Int(pos)
}

fn bitop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    #[derive(PartialEq, Clone, Copy)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match &args[1].to_ascii_lowercase()[..] {
        b"and" => Op::And,
        b"or" => Op::Or,
        b"xor" => Op::Xor,
        b"not" => Op::Not,
        _ => return Reply::err(err::SYNTAX),
    };
    if op == Op::Not && args.len() != 4 {
        return Reply::err("ERR BITOP NOT must be called with a single source key.");
    }
    let target = &args[2];
    let mut srcs: Vec<Bytes> = Vec::with_capacity(args.len() - 3);
    for k in &args[3..] {
        match ctx.get_string(k) {
            Ok(v) => srcs.push(v.unwrap_or_default()),
            Err(e) => return e,
        }
    }
    let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    if maxlen > 0 {
        let mut res = vec![0u8; maxlen];
        let byte = |s: &Bytes, j: usize| s.get(j).copied().unwrap_or(0);
        for (j, out) in res.iter_mut().enumerate() {
            let mut v = byte(&srcs[0], j);
            match op {
                Op::Not => v = !v,
                Op::And => srcs[1..].iter().for_each(|s| v &= byte(s, j)),
                Op::Or => srcs[1..].iter().for_each(|s| v |= byte(s, j)),
                Op::Xor => srcs[1..].iter().for_each(|s| v ^= byte(s, j)),
            }
            *out = v;
        }
        ctx.expire_if_needed(target);
        ctx.set_key(target, str_value(Bytes::from(res)));
        ctx.notify(notify::STRING, "set", target);
        ctx.dirty(1);
    } else if ctx.delete(target) {
        // Like Redis's dbDelete: a logically expired target is deleted (and reported) too.
        ctx.notify(notify::GENERIC, "del", target);
        ctx.dirty(1);
    }
    Reply::Int(maxlen as i64)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

struct BitfieldOp {
    offset: u64,
    value: i64,
    op: FieldOp,
    overflow: Overflow,
    bits: u32,
    signed: bool,
}

/// Redis's `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63`.
fn bitfield_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let bad = || Reply::err(ERR_BITFIELD_TYPE);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(bad()),
    };
    let bits = parse_i64(&arg[1..]).ok_or_else(bad)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(bad());
    }
    Ok((signed, bits as u32))
}

/// BITFIELD GET: read through a zero-padded copy of up to 9 bytes, so fields past the end of
/// the string read as zeros.
fn field_get(s: &[u8], op: &BitfieldOp) -> Reply {
    let byte = op.offset >> 3;
    let mut buf = [0u8; 9];
    for (i, b) in buf.iter_mut().enumerate() {
        match usize::try_from(byte + i as u64)
            .ok()
            .and_then(|at| s.get(at))
        {
            Some(&v) => *b = v,
            None => break,
        }
    }
    let off = op.offset - byte * 8;
    if op.signed {
        Reply::Int(bits::get_signed(&buf, off, op.bits))
    } else {
        Reply::Int(bits::get_unsigned(&buf, off, op.bits) as i64)
    }
}

fn bitfield(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bitfield_generic(ctx, args, true)
}

fn bitfield_generic(ctx: &mut Ctx, args: &[Bytes], ro: bool) -> Reply {
    let key = &args[1];
    let mut ops: Vec<BitfieldOp> = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest_write: u64 = 0;
    let mut j = 2;
    while j < args.len() {
        let remargs = args.len() - j - 1;
        let sub = &args[j][..];
        let op = if eq_ic(sub, "get") && remargs >= 2 {
            FieldOp::Get
        } else if eq_ic(sub, "set") && remargs >= 3 {
            FieldOp::Set
        } else if eq_ic(sub, "incrby") && remargs >= 3 {
            FieldOp::IncrBy
        } else if eq_ic(sub, "overflow") && remargs >= 1 {
            let t = &args[j + 1][..];
            overflow = if eq_ic(t, "wrap") {
                Overflow::Wrap
            } else if eq_ic(t, "sat") {
                Overflow::Sat
            } else if eq_ic(t, "fail") {
                Overflow::Fail
            } else {
                return Reply::err("ERR Invalid OVERFLOW type specified");
            };
            j += 2;
            continue;
        } else {
            return Reply::err(err::SYNTAX);
        };
        let (signed, bits) = match bitfield_type(&args[j + 1]) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let offset = match bit_offset(ctx, &args[j + 2], bits) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let mut value = 0;
        if op != FieldOp::Get {
            readonly = false;
            highest_write = highest_write.max(offset + bits as u64 - 1);
            value = match int_arg(&args[j + 3]) {
                Ok(v) => v,
                Err(e) => return e,
            };
        }
        ops.push(BitfieldOp {
            offset,
            value,
            op,
            overflow,
            bits,
            signed,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }

    if readonly {
        let s = match ctx.get_string(key) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => return e,
        };
        let replies = ops.iter().map(|op| field_get(&s, op)).collect();
        return Reply::Array(replies);
    }
    if ro {
        return Reply::err("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let grew = match string_for_bit_write(ctx, key, highest_write) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let Some(o) = ctx.lookup_mut(key) else {
        return Reply::Array(vec![]);
    };
    let mut changes = 0u64;
    let replies = edit_str(o, |m| {
        let p = &mut m[..];
        ops.iter()
            .map(|op| match op.op {
                FieldOp::Get => field_get(p, op),
                FieldOp::Set | FieldOp::IncrBy if op.signed => {
                    let old = bits::get_signed(p, op.offset, op.bits);
                    let (new, ovf, ret) = if op.op == FieldOp::IncrBy {
                        let o = bits::check_signed_overflow(old, op.value, op.bits, op.overflow);
                        let new = o.unwrap_or_else(|| old.wrapping_add(op.value));
                        (new, o.is_some(), new)
                    } else {
                        let o = bits::check_signed_overflow(op.value, 0, op.bits, op.overflow);
                        (o.unwrap_or(op.value), o.is_some(), old)
                    };
                    if ovf && op.overflow == Overflow::Fail {
                        Reply::Nil
                    } else {
                        bits::set_unsigned(p, op.offset, op.bits, new as u64);
                        if grew || old != new {
                            changes += 1;
                        }
                        Reply::Int(ret)
                    }
                }
                FieldOp::Set | FieldOp::IncrBy => {
                    let old = bits::get_unsigned(p, op.offset, op.bits);
                    let (new, ovf, ret) = if op.op == FieldOp::IncrBy {
                        let o = bits::check_unsigned_overflow(old, op.value, op.bits, op.overflow);
                        let new = o.unwrap_or_else(|| old.wrapping_add(op.value as u64));
                        (new, o.is_some(), new)
                    } else {
                        let v = op.value as u64;
                        let o = bits::check_unsigned_overflow(v, 0, op.bits, op.overflow);
                        (o.unwrap_or(v), o.is_some(), old)
                    };
                    if ovf && op.overflow == Overflow::Fail {
                        Reply::Nil
                    } else {
                        bits::set_unsigned(p, op.offset, op.bits, new);
                        if grew || old != new {
                            changes += 1;
                        }
                        Reply::Int(ret as i64)
                    }
                }
            })
            .collect::<Vec<_>>()
    });
    if changes > 0 {
        ctx.modified(key);
        ctx.notify(notify::STRING, "setbit", key);
        ctx.dirty(changes);
    } else if grew {
        // Redis 7.0 creates or pads the string here without counting a change (every write
        // failed under OVERFLOW FAIL), so it would not propagate it. Log it anyway so the log
        // replays to the same keyspace clients saw.
        ctx.propagate(args.to_vec());
    }
    Reply::Array(replies)
}

/// The logged form of each command, checked through the real `exec::call` path with a sink that
/// records what the durability layer hands to the log writer.
#[cfg(test)]
mod propagation_tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::client::{Client, ConnShared};
    use crate::config::Config;
    use crate::exec::{call, Server};
    use crate::resp::Reply;

    /// Parse the RESP multibulk commands in `b`, leaving out SELECT.
    fn commands(b: &[u8]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut i = 0;
        let line = |i: &mut usize| -> String {
            let end = *i + b[*i..].windows(2).position(|w| w == b"\r\n").expect("crlf");
            let s = String::from_utf8_lossy(&b[*i + 1..end]).into_owned();
            *i = end + 2;
            s
        };
        while i < b.len() {
            let n: usize = line(&mut i).parse().expect("count");
            let mut cmd = Vec::new();
            for _ in 0..n {
                let len: usize = line(&mut i).parse().expect("len");
                cmd.push(String::from_utf8_lossy(&b[i..i + len]).into_owned());
                i += len + 2;
            }
            if !cmd[0].eq_ignore_ascii_case("select") {
                out.push(cmd);
            }
        }
        out
    }

    /// Run `cmds` on a fresh server; returns each reply and what was logged for each command.
    fn run(cmds: &[&[&str]]) -> Vec<(Reply, Vec<Vec<String>>)> {
        let cfg = Config::from_args(&[]).expect("default config");
        let mut srv = Server::new(cfg);
        let (sink, bytes) = crate::durability::RecordingSink::new();
        srv.log.set_sink(Some(sink), 0);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(ConnShared::default());
        let mut client = Client::new(1, tx, shared, "test".into(), "test".into(), 0, false);
        let mut out = Vec::new();
        for c in cmds {
            let argv: Vec<Bytes> = c
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let spec = crate::cmd::table().get(&argv[0]).expect("known command");
            let reply = call(&mut srv, &mut client, spec, &argv, false);
            srv.log.submit();
            let logged = {
                let mut b = bytes.lock().unwrap_or_else(|p| p.into_inner());
                let v = commands(&b);
                b.clear();
                v
            };
            out.push((reply, logged));
        }
        out
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn logged_forms_are_deterministic() {
        let before = crate::util::now_ms();
        let r = run(&[
            &["SET", "k", "v", "EX", "100"],
            &["SET", "k", "v", "PX", "5000", "NX"],
            &["SET", "k", "w", "GET"],
            &["SET", "k", "x", "get", "KEEPTTL", "GET"],
            &["SET", "k", "y", "XX", "GET", "EXAT", "4000000000"],
            &["SETEX", "s", "10", "v"],
            &["PSETEX", "s", "10", "v"],
            &["GETSET", "s", "n"],
            &["INCRBYFLOAT", "f", "10.5"],
            &["INCRBYFLOAT", "f", "0.1"],
            &["GETEX", "s", "EX", "100"],
            &["GETEX", "s", "PXAT", "4000000000000"],
            &["GETEX", "s", "PERSIST"],
            &["GETEX", "s", "PERSIST"],
            &["GETEX", "s"],
            &["GETEX", "s", "EXAT", "1"],
            &["GETDEL", "k"],
            &["GETDEL", "k"],
            &["SETNX", "n", "1"],
            &["SETNX", "n", "1"],
            &["INCR", "n"],
            &["GET", "n"],
            &["SETBIT", "b", "1", "0"],
            &["SETBIT", "b", "1", "0"],
            &[
                "BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "300",
            ],
            &[
                "BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "300",
            ],
            &["BITOP", "AND", "d", "nosuch"],
            &["APPEND", "a", "x"],
        ]);
        let after = crate::util::now_ms();
        let pxat = |logged: &Vec<Vec<String>>, rel: i64| {
            assert_eq!(logged.len(), 1, "{logged:?}");
            let ms: i64 = logged[0][4].parse().expect("ms");
            assert!(ms >= before + rel && ms <= after + rel, "{logged:?}");
            assert_eq!(
                logged[0][..4],
                strs(&["SET", &logged[0][1], &logged[0][2], "PXAT"])
            );
        };
        pxat(&r[0].1, 100_000);
        assert!(r[1].1.is_empty(), "NX that did not set logs nothing");
        assert_eq!(r[2].1, vec![strs(&["SET", "k", "w"])]);
        assert_eq!(r[3].1, vec![strs(&["SET", "k", "x", "KEEPTTL"])]);
        assert_eq!(
            r[4].1,
            vec![strs(&["SET", "k", "y", "PXAT", "4000000000000"])]
        );
        pxat(&r[5].1, 10_000);
        pxat(&r[6].1, 10);
        assert_eq!(r[7].1, vec![strs(&["SET", "s", "n"])]);
        assert_eq!(r[8].1, vec![strs(&["SET", "f", "10.5", "KEEPTTL"])]);
        assert_eq!(r[9].1, vec![strs(&["SET", "f", "10.6", "KEEPTTL"])]);
        assert_eq!(r[10].1.len(), 1);
        assert_eq!(r[10].1[0][..2], strs(&["PEXPIREAT", "s"]));
        let ms: i64 = r[10].1[0][2].parse().expect("ms");
        assert!(ms >= before + 100_000 && ms <= after + 100_000);
        assert_eq!(r[11].1, vec![strs(&["PEXPIREAT", "s", "4000000000000"])]);
        assert_eq!(r[12].1, vec![strs(&["PERSIST", "s"])]);
        assert!(r[13].1.is_empty(), "PERSIST without a TTL logs nothing");
        assert!(r[14].1.is_empty(), "plain GETEX logs nothing");
        assert_eq!(r[15].1, vec![strs(&["DEL", "s"])]);
        assert_eq!(r[16].1, vec![strs(&["DEL", "k"])]);
        assert!(r[17].1.is_empty());
        assert_eq!(r[18].1, vec![strs(&["SETNX", "n", "1"])]);
        assert!(r[19].1.is_empty());
        assert_eq!(r[20].1, vec![strs(&["INCR", "n"])]);
        assert!(r[21].1.is_empty());
        assert_eq!(r[22].1, vec![strs(&["SETBIT", "b", "1", "0"])]);
        assert!(
            r[23].1.is_empty(),
            "SETBIT to the same value changes nothing"
        );
        // The key is created although every write failed: logged so replay matches.
        assert_eq!(r[24].1.len(), 1);
        assert_eq!(r[24].0, Reply::Array(vec![Reply::Nil]));
        assert!(r[25].1.is_empty());
        assert!(r[26].1.is_empty(), "BITOP deleting nothing logs nothing");
        assert_eq!(r[27].1, vec![strs(&["APPEND", "a", "x"])]);
    }
}
