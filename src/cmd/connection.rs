//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT.

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KNONE};
use crate::ctx::Ctx;
use crate::resp::{Reply, OK};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("ping", -1, FAST | SUBSCRIBED_OK, KNONE, "connection", ping),
    cmd("echo", 2, LOADING | STALE | FAST, KNONE, "connection", echo),
    cmd(
        "quit",
        -1,
        NO_AUTH | NO_MULTI | SUBSCRIBED_OK | FAST | STALE | LOADING | ALLOW_BUSY,
        KNONE,
        "connection",
        quit,
    ),
    cmd(
        "reset",
        1,
        NO_AUTH | NO_MULTI | SUBSCRIBED_OK | FAST | STALE | LOADING | ALLOW_BUSY | NOSCRIPT,
        KNONE,
        "connection",
        reset,
    ),
    cmd(
        "hello",
        -1,
        NO_AUTH | FAST | STALE | LOADING | ALLOW_BUSY | NOSCRIPT,
        KNONE,
        "connection",
        hello,
    ),
    cmd(
        "auth",
        -2,
        NO_AUTH | FAST | STALE | LOADING | ALLOW_BUSY | NOSCRIPT,
        KNONE,
        "connection",
        auth,
    ),
    cmd(
        "select",
        2,
        FAST | LOADING | STALE,
        KNONE,
        "connection",
        select,
    ),
];

fn ping(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return crate::cmd::arity_error("ping");
    }
    // RESP2 subscribed clients get ["pong", msg]
    if ctx.client.in_pubsub_context() {
        let msg = args.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![Reply::bulk_str("pong"), Reply::Bulk(msg)]);
    }
    match args.get(1) {
        Some(m) => Reply::Bulk(m.clone()),
        None => Reply::Status("PONG"),
    }
}

fn echo(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

fn quit(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.close_after_reply = true;
    OK
}

fn reset(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let srv = &mut *ctx.srv;
    let c = &mut *ctx.client;
    c.multi = None;
    crate::exec::unwatch_all(srv, c);
    for ch in std::mem::take(&mut c.subs) {
        unsub(&mut srv.pubsub.channels, &ch, c.id);
    }
    for ch in std::mem::take(&mut c.psubs) {
        unsub(&mut srv.pubsub.patterns, &ch, c.id);
    }
    for ch in std::mem::take(&mut c.ssubs) {
        unsub(&mut srv.pubsub.shard_channels, &ch, c.id);
    }
    srv.monitors.retain(|&m| m != c.id);
    c.monitor = false;
    crate::tracking::disable(srv, c);
    c.db = 0;
    c.proto = 2;
    c.name = None;
    c.reply_mode = crate::client::ReplyMode::On;
    c.no_evict = false;
    c.no_touch = false;
    c.user = srv.acl.default_user();
    let open = c.user.logs_in_without_password();
    c.set_authenticated(open);
    Reply::Status("RESET")
}

fn unsub(map: &mut std::collections::HashMap<Bytes, indexmap::IndexSet<u64>>, ch: &Bytes, id: u64) {
    if let Some(s) = map.get_mut(ch) {
        s.shift_remove(&id);
        if s.is_empty() {
            map.remove(ch);
        }
    }
}

fn auth(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (user, pass): (&[u8], &[u8]) = match args.len() {
        2 => (b"default", &args[1]),
        3 => (&args[1], &args[2]),
        _ => return Reply::err(err::SYNTAX),
    };
    if args.len() == 2 && ctx.srv.acl.default_user().nopass {
        return Reply::err(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    let spec = ctx_spec("auth");
    match crate::cmd::acl::authenticate(ctx.srv, ctx.client, spec, args, user, pass) {
        Ok(()) => OK,
        Err(e) => e,
    }
}

fn hello(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut proto = ctx.client.proto;
    let mut i = 1;
    if args.len() >= 2 {
        match crate::util::parse_i64(&args[1]) {
            Some(v) if v == 2 || v == 3 => proto = v as u8,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut setname: Option<Bytes> = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = args[i].to_ascii_lowercase();
        if opt == b"auth" && more >= 2 {
            let spec = ctx_spec("hello");
            if let Err(e) = crate::cmd::acl::authenticate(
                ctx.srv,
                ctx.client,
                spec,
                args,
                &args[i + 1],
                &args[i + 2],
            ) {
                return e;
            }
            i += 3;
        } else if opt == b"setname" && more >= 1 {
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Reply::Error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    if !ctx.client.authenticated {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(n) = setname {
        if let Err(e) = super::server::validate_client_name(&n) {
            return e;
        }
        // A copy: the argument shares the connection's read buffer, which it would pin.
        ctx.client.name = if n.is_empty() {
            None
        } else {
            Some(Bytes::copy_from_slice(&n))
        };
    }
    ctx.client.proto = proto;
    Reply::Map(vec![
        (Reply::bulk_str("server"), Reply::bulk_str("redis")),
        (
            Reply::bulk_str("version"),
            Reply::bulk_str(crate::REDIS_COMPAT_VERSION),
        ),
        (Reply::bulk_str("proto"), Reply::Int(proto as i64)),
        (Reply::bulk_str("id"), Reply::Int(ctx.client.id as i64)),
        (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
        (Reply::bulk_str("role"), Reply::bulk_str("master")),
        (Reply::bulk_str("modules"), Reply::Array(vec![])),
    ])
}

fn select(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(idx) = crate::util::parse_i64(&args[1]) else {
        return Reply::err(err::NOT_INT);
    };
    if idx < 0 || idx as usize >= ctx.srv.dbs.len() {
        return Reply::err(err::DB_INDEX);
    }
    ctx.client.db = idx as usize;
    OK
}

/// This file's table entry for `name` (for the ACL LOG's client info).
fn ctx_spec(name: &str) -> &'static CommandSpec {
    COMMANDS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or(&COMMANDS[0])
}
