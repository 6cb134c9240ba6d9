//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, SHUTDOWN, DEBUG, INFO, CONFIG,
//! CLIENT, COMMAND, SLOWLOG, MEMORY, MONITOR, LASTSAVE.

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KNONE};
use crate::ctx::Ctx;
use crate::exec::ShutdownMode;
use crate::resp::{Reply, OK};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("dbsize", 1, READONLY | FAST, KNONE, "server", dbsize),
    cmd("flushdb", -1, WRITE, KNONE, "server", flushdb),
    cmd("flushall", -1, WRITE, KNONE, "server", flushall),
    cmd("swapdb", 3, WRITE | FAST, KNONE, "server", swapdb),
    cmd("time", 1, LOADING | STALE | FAST, KNONE, "server", time),
    cmd(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        KNONE,
        "server",
        shutdown,
    ),
    cmd(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        KNONE,
        "server",
        debug,
    ),
];

/// CLIENT SETNAME / HELLO SETNAME rule: no spaces, newlines or special characters.
pub fn validate_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Int(ctx.db().len() as i64)
}

fn parse_flush_mode(args: &[Bytes]) -> Result<(), Reply> {
    match args.len() {
        1 => Ok(()),
        2 if args[1].eq_ignore_ascii_case(b"async") || args[1].eq_ignore_ascii_case(b"sync") => {
            Ok(())
        }
        _ => Err(Reply::err(err::SYNTAX)),
    }
}

fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = parse_flush_mode(args) {
        return e;
    }
    let db = ctx.client.db;
    ctx.srv.touch_all_watched_in(Some(db), Some(ctx.client));
    let n = ctx.srv.dbs[db].len() as u64;
    ctx.srv.dbs[db].clear();
    // Always logged (even when empty), as Redis does.
    ctx.propagate(vec![Bytes::from_static(b"FLUSHDB")]);
    ctx.dirty(n.max(1));
    OK
}

fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = parse_flush_mode(args) {
        return e;
    }
    ctx.srv.touch_all_watched_in(None, Some(ctx.client));
    let mut n = 0;
    for d in ctx.srv.dbs.iter_mut() {
        n += d.len() as u64;
        d.clear();
    }
    ctx.propagate(vec![Bytes::from_static(b"FLUSHALL")]);
    ctx.dirty(n.max(1));
    OK
}

fn swapdb(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let parse = |a: &[u8]| {
        crate::util::parse_i64(a).filter(|v| *v >= i32::MIN as i64 && *v <= i32::MAX as i64)
    };
    let (Some(a), Some(b)) = (parse(&args[1]), parse(&args[2])) else {
        return Reply::err("ERR invalid first DB index");
    };
    let n = ctx.srv.dbs.len() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Reply::err(err::DB_INDEX);
    }
    let (a, b) = (a as usize, b as usize);
    if a != b {
        ctx.srv.touch_all_watched_in(Some(a), Some(ctx.client));
        ctx.srv.touch_all_watched_in(Some(b), Some(ctx.client));
        ctx.srv.dbs.swap(a, b);
        ctx.srv.touch_all_watched_in(Some(a), Some(ctx.client));
        ctx.srv.touch_all_watched_in(Some(b), Some(ctx.client));
        // Blocked clients on either db may now be servable.
        let keys: Vec<(usize, Bytes)> = ctx.srv.blocking.keys().cloned().collect();
        for (d, k) in keys {
            if d == a || d == b {
                ctx.srv.signal_ready(d, &k);
            }
        }
    }
    ctx.dirty(1);
    OK
}

fn time(_ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let us = crate::util::now_us();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from((us / 1_000_000).to_string())),
        Reply::Bulk(Bytes::from((us % 1_000_000).to_string())),
    ])
}

fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut mode = ShutdownMode::Default;
    for a in &args[1..] {
        match &a.to_ascii_lowercase()[..] {
            b"nosave" => mode = ShutdownMode::NoSave,
            b"save" => mode = ShutdownMode::Save,
            b"now" | b"force" | b"abort" => {}
            _ => return Reply::err(err::SYNTAX),
        }
    }
    ctx.srv.shutdown = Some(mode);
    // The connection is closed by the exit; nothing is answered on success.
    ctx.client.close_after_reply = true;
    Reply::Raw(Bytes::new())
}

fn debug(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"sleep" if args.len() == 3 => {
            let secs = crate::util::parse_f64(&args[2]).unwrap_or(0.0).max(0.0);
            std::thread::sleep(std::time::Duration::from_micros((secs * 1e6) as u64));
            OK
        }
        b"set-active-expire" if args.len() == 3 => OK,
        b"jmap" | b"quicklist-packed-threshold" => OK,
        _ => {
            let _ = ctx;
            Reply::Error(format!(
                "ERR unknown subcommand '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&args[1])
            ))
        }
    }
}
