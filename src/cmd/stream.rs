//! Stream commands: XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XSETID, XGROUP, XACK, XCLAIM,
//! XAUTOCLAIM, XPENDING, XREAD, XREADGROUP and XINFO — replies, error texts, events and logged
//! forms as Redis 7.0 `t_stream.c`.
//!
//! Logging follows Redis's propagation so that replaying the log rebuilds the same stream:
//! XADD is logged with the ID it generated and an approximate trim made exact
//! (`MAXLEN = <len>` / `MINID = <first id>`); XREADGROUP, XCLAIM and XAUTOCLAIM are logged as one
//! `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID id` per pending entry
//! they touched, plus `XGROUP SETID … ENTRIESREAD n` when only the group's last ID moved and
//! `XGROUP CREATECONSUMER` when NOACK created a consumer.
//!
//! Blocking XREAD/XREADGROUP register with `ctx.block_on` and are re-run when XADD (or XGROUP
//! DESTROY) makes the key ready. The re-run command is rewritten at block time: `$` becomes the
//! stream's last ID then, COUNT defaults to Redis's 1000 for blocked reads, and XREADGROUP's
//! `GROUP` word becomes [`BLOCKED_GROUP`] so the re-run can answer Redis's error for a group
//! destroyed meanwhile.

use bytes::Bytes;

use crate::cmd::{arity_error, cmd, err, flags::*, unknown_subcommand, CommandSpec, KeySpec, K1};
use crate::ctx::{notify, Ctx};
use crate::keyspace::Value;
use crate::resp::{Reply, OK};
use crate::types::stream::{
    decr_id, incr_id, Consumer, Fields, Group, Nack, NodeLimits, Stream, StreamId, TrimStrategy,
    INVALID_ENTRIES_READ, MAX_ID, MIN_ID,
};
use crate::util::parse_i64;

const K2: KeySpec = KeySpec::Range(2, 2, 1);

/// Redis's `XREAD_BLOCKED_DEFAULT_COUNT`: a blocked read without COUNT is served at most this
/// many entries per stream.
const BLOCKED_READ_COUNT_DEFAULT: i64 = 1000;
/// Redis's limit on an ID argument's length (`streamGenericParseIDOrReply`'s buffer).
const ID_ARG_MAX_BYTES: usize = 127;
/// Stand-in for `GROUP` in the argv of a blocked XREADGROUP (see the module docs).
const BLOCKED_GROUP: &[u8] = b"GROUP\0blocked";

const ERR_INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const ERR_XADD_SMALLER: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";

pub static COMMANDS: &[CommandSpec] = &[
    cmd("xadd", -5, WRITE | DENYOOM | FAST, K1, "stream", xadd),
    cmd("xrange", -4, READONLY, K1, "stream", xrange),
    cmd("xrevrange", -4, READONLY, K1, "stream", xrevrange),
    cmd("xlen", 2, READONLY | FAST, K1, "stream", xlen),
    cmd("xdel", -3, WRITE | FAST, K1, "stream", xdel),
    cmd("xtrim", -4, WRITE, K1, "stream", xtrim),
    cmd("xsetid", -3, WRITE | DENYOOM | FAST, K1, "stream", xsetid),
    CommandSpec {
        subcommands: &[
            ("create", -5, WRITE | DENYOOM),
            ("setid", -5, WRITE),
            ("destroy", 4, WRITE),
            ("createconsumer", 5, WRITE | DENYOOM),
            ("delconsumer", 5, WRITE),
            ("help", 2, LOADING | STALE),
        ],
        ..cmd("xgroup", -2, WRITE | DENYOOM, K2, "stream", xgroup)
    },
    cmd("xack", -4, WRITE | FAST, K1, "stream", xack),
    cmd("xclaim", -6, WRITE | FAST, K1, "stream", xclaim),
    cmd("xautoclaim", -6, WRITE | FAST, K1, "stream", xautoclaim),
    cmd("xpending", -3, READONLY, K1, "stream", xpending),
    cmd(
        "xread",
        -4,
        READONLY | BLOCKING,
        KeySpec::None,
        "stream",
        xread,
    ),
    cmd(
        "xreadgroup",
        -7,
        WRITE | BLOCKING,
        KeySpec::None,
        "stream",
        xreadgroup,
    ),
    CommandSpec {
        subcommands: &[
            ("consumers", 4, READONLY),
            ("groups", 3, READONLY),
            ("stream", -3, READONLY),
            ("help", 2, LOADING | STALE),
        ],
        ..cmd("xinfo", -2, READONLY, K2, "stream", xinfo)
    },
];

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Argument parsing
// ---------------------------------------------------------------------------------------------

/// C's `strtoull` over the whole string (leading spaces and a sign allowed, as Redis's
/// `string2ull` falls back to it).
fn strtoull(s: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if i >= s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Redis's `string2ull`.
fn string2ull(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(v) = parse_i64(s) {
        return (v >= 0).then_some(v as u64);
    }
    strtoull(s)
}

/// Redis's `streamGenericParseIDOrReply`. `seq_star`: accept `<ms>-*` (XADD); the bool is
/// "sequence given".
fn parse_id_generic(
    arg: &[u8],
    strict: bool,
    missing_seq: u64,
    seq_star: bool,
) -> Result<(StreamId, bool), Reply> {
    let invalid = || Reply::err(ERR_INVALID_ID);
    if arg.len() > ID_ARG_MAX_BYTES {
        return Err(invalid());
    }
    // The C code works on a NUL-terminated copy.
    let arg = match arg.iter().position(|&c| c == 0) {
        Some(p) => &arg[..p],
        None => arg,
    };
    if strict && (arg == b"-" || arg == b"+") {
        return Err(invalid());
    }
    if arg == b"-" {
        return Ok((MIN_ID, true));
    }
    if arg == b"+" {
        return Ok((MAX_ID, true));
    }
    let (ms_part, seq_part) = match arg.iter().position(|&c| c == b'-') {
        Some(p) => (&arg[..p], Some(&arg[p + 1..])),
        None => (arg, None),
    };
    let ms = string2ull(ms_part).ok_or_else(invalid)?;
    match seq_part {
        Some(b"*") if seq_star => Ok((StreamId::new(ms, 0), false)),
        Some(s) => Ok((StreamId::new(ms, string2ull(s).ok_or_else(invalid)?), true)),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

fn parse_strict_id(arg: &[u8]) -> Result<StreamId, Reply> {
    parse_id_generic(arg, true, 0, false).map(|(id, _)| id)
}

fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_generic(arg, false, missing_seq, false).map(|(id, _)| id)
}

/// Redis's `streamParseIntervalIDOrReply`: `(id` is exclusive. Returns (id, exclusive).
fn parse_interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    if arg.len() > 1 && arg[0] == b'(' {
        Ok((
            parse_id_generic(&arg[1..], true, missing_seq, false)?.0,
            true,
        ))
    } else {
        Ok((parse_id(arg, missing_seq)?, false))
    }
}

/// Start of a range: exclusive starts move to the next ID.
fn parse_range_start(arg: &[u8]) -> Result<StreamId, Reply> {
    let (id, ex) = parse_interval_id(arg, 0)?;
    if ex {
        incr_id(id).ok_or_else(|| Reply::err("ERR invalid start ID for the interval"))
    } else {
        Ok(id)
    }
}

fn parse_range_end(arg: &[u8]) -> Result<StreamId, Reply> {
    let (id, ex) = parse_interval_id(arg, u64::MAX)?;
    if ex {
        decr_id(id).ok_or_else(|| Reply::err("ERR invalid end ID for the interval"))
    } else {
        Ok(id)
    }
}

fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(err::NOT_INT))
}

fn int_arg_msg(arg: &[u8], msg: &str) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(format!("ERR {msg}")))
}

fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn id_bytes(id: StreamId) -> Bytes {
    Bytes::from(id.to_string())
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id_bytes(id))
}

fn entry_reply(id: StreamId, fields: &Fields) -> Reply {
    let mut fv = Vec::with_capacity(fields.len() * 2);
    for (f, v) in fields {
        fv.push(Reply::Bulk(f.clone()));
        fv.push(Reply::Bulk(v.clone()));
    }
    Reply::Array(vec![id_reply(id), Reply::Array(fv)])
}

fn node_limits(ctx: &Ctx) -> NodeLimits {
    NodeLimits {
        max_bytes: ctx.cfg_i64("stream-node-max-bytes").max(0) as usize,
        max_entries: ctx.cfg_i64("stream-node-max-entries").max(0) as u64,
    }
}

/// The stream at `key` for reading: Ok(None) if missing, WRONGTYPE otherwise.
fn stream_ref<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Stream>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(o) => match &o.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(Reply::err(err::WRONGTYPE)),
        },
    }
}

fn stream_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Stream>, Reply> {
    match ctx.lookup_mut(key) {
        None => Ok(None),
        Some(o) => match &mut o.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(Reply::err(err::WRONGTYPE)),
        },
    }
}

fn lossy(b: &[u8]) -> String {
    // Redis formats these with %s: the bytes up to a NUL.
    let b = match b.iter().position(|&c| c == 0) {
        Some(p) => &b[..p],
        None => b,
    };
    String::from_utf8_lossy(b).into_owned()
}

fn subcommand_syntax_error(args: &[Bytes]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        lossy(&args[1]).chars().take(128).collect::<String>(),
        lossy(&args[0]).to_ascii_uppercase()
    ))
}

fn help_reply(args: &[Bytes], lines: &[&str]) -> Reply {
    let mut v = vec![Reply::StatusOwned(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        lossy(&args[0]).to_ascii_uppercase()
    ))];
    v.extend(lines.iter().map(|l| Reply::StatusOwned(l.to_string())));
    v.push(Reply::Status("HELP"));
    v.push(Reply::Status("    Prints this help."));
    Reply::Array(v)
}

// ---------------------------------------------------------------------------------------------
// XADD / XTRIM
// ---------------------------------------------------------------------------------------------

/// Parsed XADD/XTRIM options (Redis's `streamAddTrimArgs`).
struct AddTrimArgs {
    strategy: Option<TrimStrategy>,
    /// Index of the MAXLEN/MINID value argument.
    strategy_arg_idx: usize,
    approx: bool,
    limit: u64,
    id: StreamId,
    id_given: bool,
    seq_given: bool,
    no_mkstream: bool,
    /// Position of the ID (XADD) or the end of the options.
    idpos: usize,
}

fn parse_add_trim(
    args: &[Bytes],
    xadd: bool,
    obey: bool,
    node_max_entries: i64,
) -> Result<AddTrimArgs, Reply> {
    let mut a = AddTrimArgs {
        strategy: None,
        strategy_arg_idx: 0,
        approx: false,
        limit: 0,
        id: MIN_ID,
        id_given: false,
        seq_given: true,
        no_mkstream: false,
        idpos: 0,
    };
    let mut limit: Option<i64> = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i][..];
        if xadd && opt == b"*" {
            break;
        } else if (eq_ic(opt, "maxlen") || eq_ic(opt, "minid")) && more > 0 {
            if a.strategy.is_some() {
                return Err(Reply::err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible"));
            }
            let maxlen = eq_ic(opt, "maxlen");
            a.approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if maxlen {
                let v = int_arg(&args[i + 1])?;
                if v < 0 {
                    return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
                }
                a.strategy = Some(TrimStrategy::MaxLen(v as u64));
            } else {
                a.strategy = Some(TrimStrategy::MinId(parse_strict_id(&args[i + 1])?));
            }
            i += 1;
            a.strategy_arg_idx = i;
        } else if eq_ic(opt, "limit") && more > 0 {
            let v = int_arg(&args[i + 1])?;
            if v < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            limit = Some(v);
            i += 1;
        } else if xadd && eq_ic(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            let (id, seq_given) = parse_id_generic(opt, true, 0, true)?;
            a.id = id;
            a.seq_given = seq_given;
            a.id_given = true;
            break;
        } else {
            return Err(Reply::err(err::SYNTAX));
        }
        i += 1;
    }
    a.idpos = i;
    if limit.is_some_and(|l| l != 0) && a.strategy.is_none() {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.strategy.is_none() {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if obey {
        a.limit = 0;
    } else if let Some(l) = limit {
        if !a.approx {
            return Err(Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
        a.limit = l as u64;
    } else if a.approx {
        let l = 100i64.saturating_mul(node_max_entries);
        a.limit = if l <= 0 || l > 10000 { 10000 } else { l as u64 };
    }
    Ok(a)
}

/// The argument an approximate trim is logged with: the length reached, or the first ID left in
/// the first node (deleted or not).
fn trim_rewrite_arg(s: &Stream, strategy: TrimStrategy) -> Bytes {
    match strategy {
        TrimStrategy::MaxLen(_) => Bytes::from(s.len().to_string()),
        TrimStrategy::MinId(_) => id_bytes(s.first_id_with_tombstones()),
    }
}

fn xadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let obey = ctx.loading;
    let a = tri!(parse_add_trim(
        args,
        true,
        obey,
        ctx.cfg_i64("stream-node-max-entries")
    ));
    let field_pos = a.idpos + 1;
    if args.len() < field_pos + 2 || (args.len() - field_pos) % 2 == 1 {
        return arity_error("xadd");
    }
    if a.id_given && a.seq_given && a.id == MIN_ID {
        return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
    }
    let key = args[1].clone();
    let limits = node_limits(ctx);
    let now = ctx.now_ms;
    match stream_ref(ctx, &key) {
        Err(r) => return r,
        Ok(Some(_)) => {}
        Ok(None) => {
            if a.no_mkstream {
                return Reply::Nil;
            }
            ctx.set_key(key.clone(), Value::Stream(Default::default()));
        }
    }
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return Reply::err(err::WRONGTYPE);
    };
    if s.last_id == MAX_ID {
        return Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
    }
    let id = if !a.id_given {
        let ms = now.max(0) as u64;
        if ms > s.last_id.ms {
            StreamId::new(ms, 0)
        } else {
            incr_id(s.last_id).unwrap_or(MAX_ID)
        }
    } else if a.seq_given {
        a.id
    } else if s.last_id.ms == a.id.ms {
        if s.last_id.seq == u64::MAX {
            return Reply::err(ERR_XADD_SMALLER);
        }
        StreamId::new(a.id.ms, s.last_id.seq + 1)
    } else {
        a.id
    };
    let fields: Fields = args[field_pos..]
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    if s.append(id, fields, limits).is_err() {
        return Reply::err(ERR_XADD_SMALLER);
    }
    let mut trimmed = 0;
    let mut logged: Vec<Bytes> = args.to_vec();
    if let Some(strategy) = a.strategy {
        trimmed = s.trim(strategy, a.approx, a.limit);
        if a.approx {
            logged[a.strategy_arg_idx - 1] = Bytes::from_static(b"=");
            logged[a.strategy_arg_idx] = trim_rewrite_arg(s, strategy);
        }
    }
    if !a.id_given || !a.seq_given {
        logged[a.idpos] = id_bytes(id);
    }
    ctx.modified(&key);
    ctx.notify(notify::STREAM, "xadd", &key);
    ctx.dirty(1);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", &key);
    }
    ctx.propagate(logged);
    ctx.ready(&key);
    id_reply(id)
}

fn xtrim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let obey = ctx.loading;
    let a = tri!(parse_add_trim(
        args,
        false,
        obey,
        ctx.cfg_i64("stream-node-max-entries")
    ));
    if a.idpos < args.len() {
        // Unreachable: XTRIM's parser consumes every argument or fails.
        return Reply::err(err::SYNTAX);
    }
    let key = args[1].clone();
    let Some(strategy) = a.strategy else {
        return Reply::err(err::SYNTAX);
    };
    let s = match stream_mut(ctx, &key) {
        Err(r) => return r,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s,
    };
    let deleted = s.trim(strategy, a.approx, a.limit);
    if deleted > 0 {
        if a.approx {
            let mut logged = args.to_vec();
            logged[a.strategy_arg_idx - 1] = Bytes::from_static(b"=");
            logged[a.strategy_arg_idx] = trim_rewrite_arg(s, strategy);
            ctx.propagate(logged);
        }
        ctx.notify(notify::STREAM, "xtrim", &key);
        ctx.modified(&key);
        ctx.dirty(deleted);
    }
    Reply::Int(deleted as i64)
}

// ---------------------------------------------------------------------------------------------
// XRANGE / XREVRANGE / XLEN / XDEL / XSETID
// ---------------------------------------------------------------------------------------------

fn range_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Reply {
    let (start_arg, end_arg) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = tri!(parse_range_start(start_arg));
    let end = tri!(parse_range_end(end_arg));
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq_ic(&args[j], "count") && j + 1 < args.len() {
            count = tri!(int_arg(&args[j + 1])).max(0);
            j += 2;
        } else {
            return Reply::err(err::SYNTAX);
        }
    }
    let s = match stream_ref(ctx, &args[1]) {
        Err(r) => return r,
        Ok(None) => return Reply::Array(vec![]),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Reply::NilArray;
    }
    let take = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    Reply::Array(
        s.range(start, end, rev)
            .take(take)
            .map(|(id, f)| entry_reply(*id, f))
            .collect(),
    )
}

fn xrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_generic(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_generic(ctx, args, true)
}

fn xlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match stream_ref(ctx, &args[1]) {
        Err(r) => r,
        Ok(None) => Reply::Int(0),
        Ok(Some(s)) => Reply::Int(s.len() as i64),
    }
}

fn xdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = args[1].clone();
    match stream_ref(ctx, &key) {
        Err(r) => return r,
        Ok(None) => return Reply::Int(0),
        Ok(Some(_)) => {}
    }
    let mut ids = Vec::with_capacity(args.len() - 2);
    for a in &args[2..] {
        ids.push(tri!(parse_strict_id(a)));
    }
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return Reply::Int(0);
    };
    let mut deleted = 0u64;
    let mut first_entry = false;
    for id in ids {
        if s.delete(id) {
            if id == s.first_id {
                first_entry = true;
            }
            if id > s.max_deleted_id {
                s.max_deleted_id = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.is_empty() {
            s.first_id = MIN_ID;
        } else if first_entry {
            s.first_id = s.first_live_id().unwrap_or(MAX_ID);
        }
        ctx.modified(&key);
        ctx.notify(notify::STREAM, "xdel", &key);
        ctx.dirty(deleted);
    }
    Reply::Int(deleted as i64)
}

fn xsetid(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let id = tri!(parse_strict_id(&args[2]));
    let mut entries_added: i64 = -1;
    let mut max_xdel = MIN_ID;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ic(&args[i], "entriesadded") && more > 0 {
            entries_added = tri!(int_arg(&args[i + 1]));
            if entries_added < 0 {
                return Reply::err("ERR entries_added must be positive");
            }
            i += 2;
        } else if eq_ic(&args[i], "maxdeletedid") && more > 0 {
            max_xdel = tri!(parse_strict_id(&args[i + 1]));
            if id < max_xdel {
                return Reply::err(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
            }
            i += 2;
        } else {
            return Reply::err(err::SYNTAX);
        }
    }
    let key = args[1].clone();
    let s = match stream_mut(ctx, &key) {
        Err(r) => return r,
        Ok(None) => return Reply::err(err::NO_KEY),
        Ok(Some(s)) => s,
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added != -1 && s.len() as i64 > entries_added {
            return Reply::err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if max_xdel != MIN_ID {
        s.max_deleted_id = max_xdel;
    }
    ctx.modified(&key);
    ctx.notify(notify::STREAM, "xsetid", &key);
    ctx.dirty(1);
    OK
}

// ---------------------------------------------------------------------------------------------
// Consumer groups: XGROUP, XACK, XCLAIM, XAUTOCLAIM, XPENDING
// ---------------------------------------------------------------------------------------------

/// The logged form of a pending entry's state (Redis's `streamPropagateXCLAIM`).
fn xclaim_argv(key: &Bytes, group: &Bytes, g: &Group, id: StreamId, nack: &Nack) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        nack.consumer.clone(),
        Bytes::from_static(b"0"),
        id_bytes(id),
        Bytes::from_static(b"TIME"),
        Bytes::from(nack.delivery_time.to_string()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::from(nack.delivery_count.to_string()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        id_bytes(g.last_id),
    ]
}

/// Redis's `streamPropagateGroupID`.
fn setid_argv(key: &Bytes, group: &Bytes, g: &Group) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        id_bytes(g.last_id),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

fn createconsumer_argv(key: &Bytes, group: &Bytes, consumer: &Bytes) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"CREATECONSUMER"),
        key.clone(),
        group.clone(),
        consumer.clone(),
    ]
}

/// Look a consumer up, refreshing its seen time, or create it. Returns true if created.
fn touch_consumer(g: &mut Group, name: &Bytes, now: i64) -> bool {
    match g.consumers.get_mut(name) {
        Some(c) => {
            c.seen_time = now;
            false
        }
        None => {
            g.consumers.insert(
                name.clone(),
                Consumer {
                    seen_time: now,
                    pel: Default::default(),
                },
            );
            true
        }
    }
}

fn nogroup_key_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::Error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(key),
        lossy(group)
    ))
}

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

fn xgroup(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    let arity: i32 = match &sub[..] {
        b"help" => 2,
        b"create" | b"setid" => -5,
        b"destroy" => 4,
        b"createconsumer" | b"delconsumer" => 5,
        _ => return unknown_subcommand("xgroup", &args[1]),
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        return arity_error(&format!("xgroup|{}", String::from_utf8_lossy(&sub)));
    }
    if sub == b"help" {
        return help_reply(args, XGROUP_HELP);
    }
    let create = sub == b"create";
    let setid = sub == b"setid";
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    if create || setid {
        let mut i = 5;
        while i < args.len() {
            if create && eq_ic(&args[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if eq_ic(&args[i], "entriesread") && i + 1 < args.len() {
                entries_read = tri!(int_arg(&args[i + 1]));
                if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                    return Reply::err("ERR value for ENTRIESREAD must be positive or -1");
                }
                i += 2;
            } else {
                return subcommand_syntax_error(args);
            }
        }
    }
    let key = args[2].clone();
    let gname = args[3].clone();
    let exists = match stream_ref(ctx, &key) {
        Err(r) => return r,
        Ok(s) => s.map(|s| s.groups.contains_key(&gname)),
    };
    if !mkstream {
        let Some(has_group) = exists else {
            return Reply::err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        };
        if !has_group && (setid || sub == b"createconsumer" || sub == b"delconsumer") {
            return Reply::Error(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                lossy(&gname),
                lossy(&key)
            ));
        }
    }
    let now = ctx.now_ms;
    if create {
        if args.len() > 8 {
            return subcommand_syntax_error(args);
        }
        let id = if &args[4][..] == b"$" {
            match stream_ref(ctx, &key) {
                Ok(Some(s)) => s.last_id,
                _ => MIN_ID,
            }
        } else {
            tri!(parse_strict_id(&args[4]))
        };
        if exists.is_none() {
            ctx.set_key(key.clone(), Value::Stream(Default::default()));
        }
        let Ok(Some(s)) = stream_mut(ctx, &key) else {
            return Reply::err(err::WRONGTYPE);
        };
        if s.groups.contains_key(&gname) {
            return Reply::err("BUSYGROUP Consumer Group name already exists");
        }
        s.groups.insert(gname, Group::new(id, entries_read));
        ctx.dirty(1);
        ctx.notify(notify::STREAM, "xgroup-create", &key);
        return OK;
    }
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return Reply::err(err::WRONGTYPE);
    };
    match &sub[..] {
        b"setid" => {
            if args.len() != 5 && args.len() != 7 {
                return subcommand_syntax_error(args);
            }
            let id = if &args[4][..] == b"$" {
                s.last_id
            } else {
                tri!(parse_id(&args[4], 0))
            };
            if let Some(g) = s.groups.get_mut(&gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            ctx.dirty(1);
            ctx.notify(notify::STREAM, "xgroup-setid", &key);
            OK
        }
        b"destroy" => {
            if s.groups.remove(&gname).is_some() {
                ctx.dirty(1);
                ctx.notify(notify::STREAM, "xgroup-destroy", &key);
                ctx.ready(&key);
                Reply::Int(1)
            } else {
                Reply::Int(0)
            }
        }
        b"createconsumer" => {
            let created = match s.groups.get_mut(&gname) {
                Some(g) if !g.consumers.contains_key(&args[4]) => {
                    touch_consumer(g, &args[4], now);
                    true
                }
                _ => false,
            };
            if created {
                ctx.dirty(1);
                ctx.notify(notify::STREAM, "xgroup-createconsumer", &key);
            }
            Reply::Int(created as i64)
        }
        _ => {
            let pending = s
                .groups
                .get_mut(&gname)
                .and_then(|g| g.delete_consumer(&args[4]));
            if let Some(p) = pending {
                ctx.dirty(1);
                ctx.notify(notify::STREAM, "xgroup-delconsumer", &key);
                Reply::Int(p as i64)
            } else {
                Reply::Int(0)
            }
        }
    }
}

fn xack(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let has = match stream_ref(ctx, key) {
        Err(r) => return r,
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(&args[2])),
    };
    if !has {
        return Reply::Int(0);
    }
    let mut ids = Vec::with_capacity(args.len() - 3);
    for a in &args[3..] {
        ids.push(tri!(parse_strict_id(a)));
    }
    let Ok(Some(s)) = stream_mut(ctx, key) else {
        return Reply::Int(0);
    };
    let Some(g) = s.groups.get_mut(&args[2]) else {
        return Reply::Int(0);
    };
    let mut acked = 0;
    for id in ids {
        if g.remove_nack(id).is_some() {
            acked += 1;
        }
    }
    ctx.dirty(acked);
    Reply::Int(acked as i64)
}

fn xclaim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = args[1].clone();
    let gname = args[2].clone();
    let cname = args[3].clone();
    let has = match stream_ref(ctx, &key) {
        Err(r) => return r,
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(&gname)),
    };
    if !has {
        return nogroup_key_group(&key, &gname);
    }
    let minidle = tri!(int_arg_msg(
        &args[4],
        "Invalid min-idle-time argument for XCLAIM"
    ))
    .max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_strict_id(&args[j]) {
            Ok(id) => ids.push((id, args[j].clone())),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let mut force = false;
    let mut justid = false;
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = MIN_ID;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if eq_ic(opt, "force") {
            force = true;
        } else if eq_ic(opt, "justid") {
            justid = true;
        } else if eq_ic(opt, "idle") && more > 0 {
            j += 1;
            let v = tri!(int_arg_msg(
                &args[j],
                "Invalid IDLE option argument for XCLAIM"
            ));
            deliverytime = now.wrapping_sub(v);
        } else if eq_ic(opt, "time") && more > 0 {
            j += 1;
            deliverytime = tri!(int_arg_msg(
                &args[j],
                "Invalid TIME option argument for XCLAIM"
            ));
        } else if eq_ic(opt, "retrycount") && more > 0 {
            j += 1;
            retrycount = tri!(int_arg_msg(
                &args[j],
                "Invalid RETRYCOUNT option argument for XCLAIM"
            ));
        } else if eq_ic(opt, "lastid") && more > 0 {
            j += 1;
            last_id = tri!(parse_strict_id(&args[j]));
        } else {
            return Reply::Error(format!("ERR Unrecognized XCLAIM option '{}'", lossy(opt)));
        }
        j += 1;
    }
    if deliverytime != -1 {
        if deliverytime < 0 || deliverytime > now {
            deliverytime = now;
        }
    } else {
        deliverytime = now;
    }
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return Reply::err(err::WRONGTYPE);
    };
    let Some(mut g) = s.groups.remove(&gname) else {
        return nogroup_key_group(&key, &gname);
    };
    let mut propagate_last_id = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last_id = true;
    }
    let mut out = Vec::new();
    let mut logged = Vec::new();
    let mut dirty = 0;
    let mut consumer_ready = false;
    let mut created = false;
    for (id, _) in ids {
        if s.get(&id).is_none() {
            if let Some(nack) = g.pel.get(&id).cloned() {
                logged.push(xclaim_argv(&key, &gname, &g, id, &nack));
                propagate_last_id = false;
                dirty += 1;
                g.remove_nack(id);
            }
            continue;
        }
        // A FORCE-created pending entry has no owner yet (Redis's NULL consumer).
        let forced = force && !g.pel.contains_key(&id);
        if forced {
            g.pel.insert(
                id,
                Nack {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: cname.clone(),
                },
            );
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if !forced && minidle > 0 && now - nack.delivery_time < minidle {
            continue;
        }
        let old_owner = nack.consumer.clone();
        if !consumer_ready {
            created = touch_consumer(&mut g, &cname, now);
            consumer_ready = true;
        }
        if !forced && old_owner != cname {
            if let Some(c) = g.consumers.get_mut(&old_owner) {
                c.pel.remove(&id);
            }
        }
        let Some(nack) = g.pel.get_mut(&id) else {
            continue;
        };
        nack.delivery_time = deliverytime;
        if retrycount >= 0 {
            nack.delivery_count = retrycount as u64;
        } else if !justid {
            nack.delivery_count += 1;
        }
        nack.consumer = cname.clone();
        if let Some(c) = g.consumers.get_mut(&cname) {
            c.pel.insert(id);
        }
        if justid {
            out.push(id_reply(id));
        } else if let Some(f) = s.get(&id) {
            out.push(entry_reply(id, f));
        }
        let nack = g.pel[&id].clone();
        logged.push(xclaim_argv(&key, &gname, &g, id, &nack));
        propagate_last_id = false;
        dirty += 1;
    }
    if propagate_last_id {
        logged.push(setid_argv(&key, &gname, &g));
        dirty += 1;
    }
    s.groups.insert(gname, g);
    if created {
        dirty += 1;
        ctx.notify(notify::STREAM, "xgroup-createconsumer", &key);
    }
    ctx.propagate_nothing();
    for l in logged {
        ctx.propagate(l);
    }
    ctx.dirty(dirty);
    Reply::Array(out)
}

fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = args[1].clone();
    let gname = args[2].clone();
    let cname = args[3].clone();
    let minidle = tri!(int_arg_msg(
        &args[4],
        "Invalid min-idle-time argument for XAUTOCLAIM"
    ))
    .max(0);
    let start = tri!(parse_range_start(&args[5]));
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    const ATTEMPTS_FACTOR: i64 = 10;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ic(&args[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = match parse_i64(&args[j + 1]) {
                Some(v) if (1..=max).contains(&v) => v,
                _ => return Reply::err("ERR COUNT must be > 0"),
            };
            j += 1;
        } else if eq_ic(&args[j], "justid") {
            justid = true;
        } else {
            return Reply::err(err::SYNTAX);
        }
        j += 1;
    }
    let has = match stream_ref(ctx, &key) {
        Err(r) => return r,
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(&gname)),
    };
    if !has {
        return nogroup_key_group(&key, &gname);
    }
    let now = ctx.now_ms;
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return Reply::err(err::WRONGTYPE);
    };
    let Some(mut g) = s.groups.remove(&gname) else {
        return nogroup_key_group(&key, &gname);
    };
    let mut attempts = count * ATTEMPTS_FACTOR;
    let pending: Vec<StreamId> = g.pel.range(start..).map(|(k, _)| *k).collect();
    let mut idx = 0;
    let mut out = Vec::new();
    let mut deleted_ids = Vec::new();
    let mut logged = Vec::new();
    let mut dirty = 0;
    let mut consumer_ready = false;
    let mut created = false;
    loop {
        // while (attempts-- && count && raxNext(&ri))
        let a = attempts;
        attempts -= 1;
        if a == 0 || count == 0 || idx >= pending.len() {
            break;
        }
        let id = pending[idx];
        idx += 1;
        if s.get(&id).is_none() {
            if let Some(nack) = g.pel.get(&id).cloned() {
                logged.push(xclaim_argv(&key, &gname, &g, id, &nack));
                dirty += 1;
                g.remove_nack(id);
                deleted_ids.push(id_reply(id));
            }
            count -= 1;
            continue;
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if minidle > 0 && now - nack.delivery_time < minidle {
            continue;
        }
        if !consumer_ready {
            created = touch_consumer(&mut g, &cname, now);
            consumer_ready = true;
        }
        let old = g.pel[&id].consumer.clone();
        if old != cname {
            if let Some(c) = g.consumers.get_mut(&old) {
                c.pel.remove(&id);
            }
        }
        if let Some(nack) = g.pel.get_mut(&id) {
            nack.delivery_time = now;
            if !justid {
                nack.delivery_count += 1;
            }
            nack.consumer = cname.clone();
        }
        if let Some(c) = g.consumers.get_mut(&cname) {
            c.pel.insert(id);
        }
        if justid {
            out.push(id_reply(id));
        } else if let Some(f) = s.get(&id) {
            out.push(entry_reply(id, f));
        }
        count -= 1;
        let nack = g.pel[&id].clone();
        logged.push(xclaim_argv(&key, &gname, &g, id, &nack));
        dirty += 1;
    }
    // The cursor: the next pending entry after the last one looked at.
    let cursor = pending.get(idx).copied().unwrap_or(MIN_ID);
    s.groups.insert(gname, g);
    if created {
        dirty += 1;
        ctx.notify(notify::STREAM, "xgroup-createconsumer", &key);
    }
    ctx.propagate_nothing();
    for l in logged {
        ctx.propagate(l);
    }
    ctx.dirty(dirty);
    Reply::Array(vec![
        id_reply(cursor),
        Reply::Array(out),
        Reply::Array(deleted_ids),
    ])
}

fn xpending(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let n = args.len();
    let justinfo = n == 3;
    if n != 3 && !(6..=9).contains(&n) {
        return Reply::err(err::SYNTAX);
    }
    let mut minidle = 0i64;
    let mut count = 0i64;
    let mut start = MIN_ID;
    let mut end = MAX_ID;
    let mut consumer: Option<Bytes> = None;
    if n >= 6 {
        let mut startidx = 3;
        if eq_ic(&args[3], "idle") {
            minidle = tri!(int_arg(&args[4]));
            if n < 8 {
                return Reply::err(err::SYNTAX);
            }
            startidx += 2;
        }
        count = tri!(int_arg(&args[startidx + 2])).max(0);
        start = tri!(parse_range_start(&args[startidx]));
        end = tri!(parse_range_end(&args[startidx + 1]));
        if startidx + 3 < n {
            consumer = Some(args[startidx + 3].clone());
        }
    }
    let now = ctx.now_ms;
    let s = match stream_ref(ctx, &args[1]) {
        Err(r) => return r,
        Ok(s) => s,
    };
    let Some(g) = s.and_then(|s| s.groups.get(&args[2])) else {
        return nogroup_key_group(&args[1], &args[2]);
    };
    if justinfo {
        if g.pel.is_empty() {
            return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
        }
        let first = *g.pel.keys().next().unwrap_or(&MIN_ID);
        let last = *g.pel.keys().next_back().unwrap_or(&MIN_ID);
        let consumers = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::Bulk(name.clone()),
                    Reply::Bulk(Bytes::from(c.pel.len().to_string())),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(consumers),
        ]);
    }
    let ids: Box<dyn Iterator<Item = StreamId>> = match &consumer {
        Some(c) => match g.consumers.get(c) {
            None => return Reply::Array(vec![]),
            Some(c) => Box::new(c.pel.range(start..).copied()),
        },
        None => Box::new(g.pel.range(start..).map(|(k, _)| *k)),
    };
    let mut out = Vec::new();
    for id in ids {
        if count == 0 || id > end {
            break;
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if minidle != 0 && now - nack.delivery_time < minidle {
            continue;
        }
        count -= 1;
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(nack.consumer.clone()),
            Reply::Int((now - nack.delivery_time).max(0)),
            Reply::Int(nack.delivery_count as i64),
        ]));
    }
    Reply::Array(out)
}

// ---------------------------------------------------------------------------------------------
// XREAD / XREADGROUP
// ---------------------------------------------------------------------------------------------

fn xread(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    read_generic(ctx, args, false)
}

fn xreadgroup(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    read_generic(ctx, args, true)
}

/// A stream's ID argument in XREAD/XREADGROUP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    After(StreamId),
    /// `>`: entries never delivered to the group.
    New,
}

fn read_generic(ctx: &mut Ctx, args: &[Bytes], xreadgroup: bool) -> Reply {
    let mut timeout: Option<i64> = None;
    let mut count: i64 = 0;
    let mut streams_arg = 0;
    let mut noack = false;
    let mut group: Option<(Bytes, Bytes)> = None;
    let mut rerun_after_block = false;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = &args[i][..];
        if eq_ic(o, "block") && more > 0 {
            i += 1;
            let t = match parse_i64(&args[i]) {
                Some(t) => t,
                None => return Reply::err("ERR timeout is not an integer or out of range"),
            };
            if t < 0 {
                return Reply::err("ERR timeout is negative");
            }
            if t > 0 && t > i64::MAX - ctx.now_ms {
                return Reply::err("ERR timeout is out of range");
            }
            timeout = Some(t);
        } else if eq_ic(o, "count") && more > 0 {
            i += 1;
            count = tri!(int_arg(&args[i])).max(0);
        } else if eq_ic(o, "streams") && more > 0 {
            streams_arg = i + 1;
            if !(args.len() - streams_arg).is_multiple_of(2) {
                return Reply::err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.");
            }
            break;
        } else if (eq_ic(o, "group") || (xreadgroup && o == BLOCKED_GROUP)) && more >= 2 {
            if !xreadgroup {
                return Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                );
            }
            rerun_after_block = o == BLOCKED_GROUP;
            group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if eq_ic(o, "noack") {
            if !xreadgroup {
                return Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                );
            }
            noack = true;
        } else {
            return Reply::err(err::SYNTAX);
        }
        i += 1;
    }
    if streams_arg == 0 {
        return Reply::err(err::SYNTAX);
    }
    if xreadgroup && group.is_none() {
        return Reply::err("ERR Missing GROUP option for XREADGROUP");
    }
    let nstreams = (args.len() - streams_arg) / 2;
    let keys: Vec<Bytes> = args[streams_arg..streams_arg + nstreams].to_vec();
    let mut from: Vec<ReadFrom> = Vec::with_capacity(nstreams);
    for (k, key) in keys.iter().enumerate() {
        let idarg = &args[streams_arg + nstreams + k];
        let s = match stream_ref(ctx, key) {
            Ok(Some(s)) => Some(s),
            _ if rerun_after_block => {
                return Reply::err("UNBLOCKED the stream key no longer exists");
            }
            Ok(None) => None,
            Err(r) => return r,
        };
        if let Some((gname, _)) = &group {
            if !s.is_some_and(|s| s.groups.contains_key(gname)) {
                if rerun_after_block {
                    return Reply::err(
                        "NOGROUP the consumer group this client was blocked on no longer exists",
                    );
                }
                return Reply::Error(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    lossy(key),
                    lossy(gname)
                ));
            }
        }
        if &idarg[..] == b"$" {
            if xreadgroup {
                return Reply::err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            }
            from.push(ReadFrom::After(s.map(|s| s.last_id).unwrap_or(MIN_ID)));
        } else if &idarg[..] == b">" {
            if !xreadgroup {
                return Reply::err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            }
            from.push(ReadFrom::New);
        } else {
            from.push(ReadFrom::After(tri!(parse_strict_id(idarg))));
        }
    }

    let now = ctx.now_ms;
    let resp3 = ctx.client.proto >= 3;
    let mut served: Vec<(Reply, Reply)> = Vec::new();
    let mut logged: Vec<Vec<Bytes>> = Vec::new();
    let mut dirty = 0u64;
    let mut notify_created: Vec<Bytes> = Vec::new();
    let take = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    for (k, key) in keys.iter().enumerate() {
        let Ok(Some(s)) = stream_mut(ctx, key) else {
            continue;
        };
        match &group {
            None => {
                let ReadFrom::After(gt) = from[k] else {
                    continue;
                };
                if s.is_empty() || s.last_valid_id() <= gt {
                    continue;
                }
                let start = incr_id(gt).unwrap_or(MIN_ID);
                let entries: Vec<Reply> = s
                    .range(start, MAX_ID, false)
                    .take(take)
                    .map(|(id, f)| entry_reply(*id, f))
                    .collect();
                served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
            }
            Some((gname, cname)) => {
                let Some(mut g) = s.groups.remove(gname) else {
                    continue;
                };
                let history = match from[k] {
                    ReadFrom::After(id) => Some(id),
                    ReadFrom::New => None,
                };
                if history.is_none() && (s.is_empty() || s.last_valid_id() <= g.last_id) {
                    s.groups.insert(gname.clone(), g);
                    continue;
                }
                if touch_consumer(&mut g, cname, now) {
                    dirty += 1;
                    notify_created.push(key.clone());
                    if noack {
                        logged.push(createconsumer_argv(key, gname, cname));
                    }
                }
                let mut entries = Vec::new();
                if let Some(gt) = history {
                    let start = incr_id(gt).unwrap_or(MIN_ID);
                    let ids: Vec<StreamId> = g.consumers[cname]
                        .pel
                        .range(start..)
                        .copied()
                        .take(take)
                        .collect();
                    for id in ids {
                        match s.get(&id) {
                            Some(f) => {
                                entries.push(entry_reply(id, f));
                                if let Some(n) = g.pel.get_mut(&id) {
                                    n.delivery_time = now;
                                    n.delivery_count += 1;
                                }
                            }
                            None => entries.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
                        }
                    }
                } else {
                    let start = incr_id(g.last_id).unwrap_or(MIN_ID);
                    let batch: Vec<(StreamId, Reply)> = s
                        .range(start, MAX_ID, false)
                        .take(take)
                        .map(|(id, f)| (*id, entry_reply(*id, f)))
                        .collect();
                    let mut propagate_last_id = false;
                    for (id, r) in batch {
                        if s.group_delivered(&mut g, id) && noack {
                            propagate_last_id = true;
                        }
                        entries.push(r);
                        if noack {
                            continue;
                        }
                        if let Some(old) = g.pel.get(&id).map(|n| n.consumer.clone()) {
                            if let Some(c) = g.consumers.get_mut(&old) {
                                c.pel.remove(&id);
                            }
                        }
                        let nack = Nack {
                            delivery_time: now,
                            delivery_count: 1,
                            consumer: cname.clone(),
                        };
                        g.pel.insert(id, nack.clone());
                        if let Some(c) = g.consumers.get_mut(cname) {
                            c.pel.insert(id);
                        }
                        logged.push(xclaim_argv(key, gname, &g, id, &nack));
                    }
                    if propagate_last_id {
                        logged.push(setid_argv(key, gname, &g));
                    }
                }
                s.groups.insert(gname.clone(), g);
                dirty += 1;
                served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
            }
        }
    }
    for key in notify_created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", &key);
    }
    if xreadgroup {
        ctx.propagate_nothing();
        for l in logged {
            ctx.propagate(l);
        }
        ctx.dirty(dirty);
    }
    if !served.is_empty() {
        return if resp3 {
            Reply::Map(served)
        } else {
            Reply::Array(
                served
                    .into_iter()
                    .map(|(k, v)| Reply::Array(vec![k, v]))
                    .collect(),
            )
        };
    }
    let Some(ms) = timeout else {
        return Reply::NilArray;
    };
    // Block: re-run later with `$` resolved and Redis's default count for blocked reads.
    let deadline = if ms == 0 { None } else { Some(now + ms) };
    let mut argv: Vec<Bytes> = vec![args[0].clone()];
    if let Some((gname, cname)) = &group {
        argv.push(Bytes::from_static(BLOCKED_GROUP));
        argv.push(gname.clone());
        argv.push(cname.clone());
    }
    let c = if count == 0 {
        BLOCKED_READ_COUNT_DEFAULT
    } else {
        count
    };
    argv.push(Bytes::from_static(b"COUNT"));
    argv.push(Bytes::from(c.to_string()));
    argv.push(Bytes::from_static(b"BLOCK"));
    argv.push(Bytes::from(ms.to_string()));
    if noack {
        argv.push(Bytes::from_static(b"NOACK"));
    }
    argv.push(Bytes::from_static(b"STREAMS"));
    argv.extend(keys.iter().cloned());
    for f in &from {
        argv.push(match f {
            ReadFrom::After(id) => id_bytes(*id),
            ReadFrom::New => Bytes::from_static(b">"),
        });
    }
    ctx.block_on(keys, deadline, &argv, Reply::NilArray)
}

// ---------------------------------------------------------------------------------------------
// XINFO
// ---------------------------------------------------------------------------------------------

const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

fn bs(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn lag_reply(s: &Stream, g: &Group) -> Reply {
    match s.group_lag(g) {
        Some(l) => Reply::Int(l),
        None => Reply::Nil,
    }
}

fn entries_read_reply(g: &Group) -> Reply {
    if g.entries_read != INVALID_ENTRIES_READ {
        Reply::Int(g.entries_read)
    } else {
        Reply::Nil
    }
}

fn xinfo(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    let arity: i32 = match &sub[..] {
        b"help" => 2,
        b"consumers" => 4,
        b"groups" => 3,
        b"stream" => -3,
        _ => return unknown_subcommand("xinfo", &args[1]),
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        return arity_error(&format!("xinfo|{}", String::from_utf8_lossy(&sub)));
    }
    if sub == b"help" {
        return help_reply(args, XINFO_HELP);
    }
    let now = ctx.now_ms;
    let key = args[2].clone();
    let s = match stream_ref(ctx, &key) {
        Err(r) => return r,
        Ok(None) => return Reply::err(err::NO_KEY),
        Ok(Some(s)) => s,
    };
    match &sub[..] {
        b"consumers" => {
            let Some(g) = s.groups.get(&args[3]) else {
                return Reply::Error(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    lossy(&args[3]),
                    lossy(&key)
                ));
            };
            Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        Reply::Map(vec![
                            (bs("name"), Reply::Bulk(name.clone())),
                            (bs("pending"), Reply::Int(c.pel.len() as i64)),
                            (bs("idle"), Reply::Int((now - c.seen_time).max(0))),
                        ])
                    })
                    .collect(),
            )
        }
        b"groups" => Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        (bs("name"), Reply::Bulk(name.clone())),
                        (bs("consumers"), Reply::Int(g.consumers.len() as i64)),
                        (bs("pending"), Reply::Int(g.pel.len() as i64)),
                        (bs("last-delivered-id"), id_reply(g.last_id)),
                        (bs("entries-read"), entries_read_reply(g)),
                        (bs("lag"), lag_reply(s, g)),
                    ])
                })
                .collect(),
        ),
        _ => xinfo_stream(s, args),
    }
}

fn xinfo_stream(s: &Stream, args: &[Bytes]) -> Reply {
    let mut full = false;
    let mut count: i64 = 10;
    if args.len() > 3 {
        if args.len() != 4 && args.len() != 6 {
            return subcommand_syntax_error(args);
        }
        if !eq_ic(&args[3], "full") {
            return subcommand_syntax_error(args);
        }
        full = true;
        if args.len() == 6 {
            if !eq_ic(&args[4], "count") {
                return subcommand_syntax_error(args);
            }
            count = tri!(int_arg(&args[5]));
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut m = vec![
        (bs("length"), Reply::Int(s.len() as i64)),
        (bs("radix-tree-keys"), Reply::Int(s.node_count() as i64)),
        (
            bs("radix-tree-nodes"),
            Reply::Int(s.rax_node_count() as i64),
        ),
        (bs("last-generated-id"), id_reply(s.last_id)),
        (bs("max-deleted-entry-id"), id_reply(s.max_deleted_id)),
        (bs("entries-added"), Reply::Int(s.entries_added as i64)),
        (bs("recorded-first-entry-id"), id_reply(s.first_id)),
    ];
    if !full {
        m.push((bs("groups"), Reply::Int(s.groups.len() as i64)));
        let first = s
            .range(MIN_ID, MAX_ID, false)
            .next()
            .map(|(id, f)| entry_reply(*id, f))
            .unwrap_or(Reply::Nil);
        let last = s
            .range(MIN_ID, MAX_ID, true)
            .next()
            .map(|(id, f)| entry_reply(*id, f))
            .unwrap_or(Reply::Nil);
        m.push((bs("first-entry"), first));
        m.push((bs("last-entry"), last));
        return Reply::Map(m);
    }
    let take = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    m.push((
        bs("entries"),
        Reply::Array(
            s.range(MIN_ID, MAX_ID, false)
                .take(take)
                .map(|(id, f)| entry_reply(*id, f))
                .collect(),
        ),
    ));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pel = g
                .pel
                .iter()
                .take(take)
                .map(|(id, n)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(n.consumer.clone()),
                        Reply::Int(n.delivery_time),
                        Reply::Int(n.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let cpel = c
                        .pel
                        .iter()
                        .take(take)
                        .map(|id| {
                            let (t, n) = g
                                .pel
                                .get(id)
                                .map(|n| (n.delivery_time, n.delivery_count))
                                .unwrap_or((0, 0));
                            Reply::Array(vec![id_reply(*id), Reply::Int(t), Reply::Int(n as i64)])
                        })
                        .collect();
                    Reply::Map(vec![
                        (bs("name"), Reply::Bulk(cname.clone())),
                        (bs("seen-time"), Reply::Int(c.seen_time)),
                        (bs("pel-count"), Reply::Int(c.pel.len() as i64)),
                        (bs("pending"), Reply::Array(cpel)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (bs("name"), Reply::Bulk(name.clone())),
                (bs("last-delivered-id"), id_reply(g.last_id)),
                (bs("entries-read"), entries_read_reply(g)),
                (bs("lag"), lag_reply(s, g)),
                (bs("pel-count"), Reply::Int(g.pel.len() as i64)),
                (bs("pending"), Reply::Array(pel)),
                (bs("consumers"), Reply::Array(consumers)),
            ])
        })
        .collect();
    m.push((bs("groups"), Reply::Array(groups)));
    Reply::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_parsing_follows_redis() {
        let p = |s: &str| parse_id_generic(s.as_bytes(), true, 0, true).ok();
        assert_eq!(p("5"), Some((StreamId::new(5, 0), true)));
        assert_eq!(p("5-3"), Some((StreamId::new(5, 3), true)));
        assert_eq!(p("5-*"), Some((StreamId::new(5, 0), false)));
        assert_eq!(p("-"), None);
        assert_eq!(p("-5"), None);
        assert_eq!(p("5-"), None);
        assert_eq!(p("a-1"), None);
        assert_eq!(
            p("18446744073709551615-18446744073709551615"),
            Some((MAX_ID, true))
        );
        assert_eq!(p("18446744073709551616"), None);
        assert_eq!(
            parse_id_generic(b"+", false, 0, false).ok(),
            Some((MAX_ID, true))
        );
        assert_eq!(
            parse_id(b"7", u64::MAX).ok(),
            Some(StreamId::new(7, u64::MAX))
        );
    }

    #[test]
    fn interval_bounds() {
        assert_eq!(parse_range_start(b"(5-1").ok(), Some(StreamId::new(5, 2)));
        assert_eq!(
            parse_range_end(b"(5-0").ok(),
            Some(StreamId::new(4, u64::MAX))
        );
        assert!(parse_range_end(b"(0-0").is_err());
        assert!(parse_range_start(b"(-").is_err());
    }
}
