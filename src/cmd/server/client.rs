//! CLIENT: ID, SETNAME, GETNAME, LIST, INFO, KILL, REPLY, NO-EVICT, NO-TOUCH, UNBLOCK, PAUSE,
//! UNPAUSE, SETINFO, TRACKING, CACHING, GETREDIR, TRACKINGINFO, HELP.
//!
//! The calling client is not in `srv.clients` while its command runs: every walk over the
//! clients adds it explicitly.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{help_reply, sub_lookup, sub_syntax_error, validate_client_name, Sub};
use crate::client::{Client, ClientId, ReplyMode};
use crate::cmd::err;
use crate::cmd::flags::*;
use crate::ctx::Ctx;
use crate::resp::{Reply, OK};

pub(super) const SUBS: &[Sub] = &[
    ("id", 2, NOSCRIPT | LOADING | STALE),
    ("info", 2, NOSCRIPT | LOADING | STALE),
    ("list", -2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("kill", -3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("getname", 2, NOSCRIPT | LOADING | STALE),
    ("setname", 3, NOSCRIPT | LOADING | STALE),
    ("reply", 3, NOSCRIPT | LOADING | STALE),
    ("no-evict", 3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("no-touch", 3, NOSCRIPT | LOADING | STALE),
    ("unblock", -3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("pause", -3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("unpause", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("setinfo", 4, NOSCRIPT | LOADING | STALE),
    ("tracking", -3, NOSCRIPT | LOADING | STALE),
    ("caching", 3, NOSCRIPT | LOADING | STALE),
    ("getredir", 2, NOSCRIPT | LOADING | STALE),
    ("trackinginfo", 2, NOSCRIPT | LOADING | STALE),
    ("help", 2, LOADING | STALE),
];

/// CLIENT HELP as Redis 7.0 prints it.
const HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
];

/// The reply of a blocked client unblocked with CLIENT UNBLOCK … ERROR.
const UNBLOCKED_ERROR: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";

/// Client types as CLIENT LIST/KILL TYPE name them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Master,
    PubSub,
}

fn parse_type(s: &[u8]) -> Result<ClientType, Reply> {
    match &s.to_ascii_lowercase()[..] {
        b"normal" => Ok(ClientType::Normal),
        b"slave" | b"replica" => Ok(ClientType::Replica),
        b"master" => Ok(ClientType::Master),
        b"pubsub" => Ok(ClientType::PubSub),
        _ => Err(Reply::Error(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(s)
        ))),
    }
}

fn client_type(c: &Client) -> ClientType {
    if c.is_replica {
        ClientType::Replica
    } else if c.sub_count() + c.ssubs.len() > 0 {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

pub(super) fn client(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("client", SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match sub {
        "id" => Reply::Int(ctx.client.id as i64),
        "info" => {
            let mut s = String::new();
            client_info(&mut s, ctx.client, ctx.now_ms, Some(("client|info", args)));
            s.push('\n');
            Reply::Verbatim(Bytes::from(s))
        }
        "list" => client_list(ctx, args),
        "kill" => client_kill(ctx, args),
        "getname" => match &ctx.client.name {
            Some(n) => Reply::Bulk(n.clone()),
            None => Reply::Nil,
        },
        "setname" => {
            if let Err(e) = validate_client_name(&args[2]) {
                return e;
            }
            // A copy: the argument shares the connection's read buffer, which it would pin.
            ctx.client.name = if args[2].is_empty() {
                None
            } else {
                Some(Bytes::copy_from_slice(&args[2]))
            };
            OK
        }
        "reply" => match &args[2].to_ascii_lowercase()[..] {
            b"on" => {
                ctx.client.reply_mode = ReplyMode::On;
                OK
            }
            b"off" => {
                ctx.client.reply_mode = ReplyMode::Off;
                OK
            }
            b"skip" => {
                // Only if replies are on: SKIP while OFF keeps them off (as Redis).
                if ctx.client.reply_mode != ReplyMode::Off {
                    ctx.client.reply_mode = ReplyMode::SkipNext;
                }
                OK
            }
            _ => Reply::err(err::SYNTAX),
        },
        "no-evict" => match on_off(&args[2]) {
            Some(v) => {
                ctx.client.no_evict = v;
                OK
            }
            None => Reply::err(err::SYNTAX),
        },
        "no-touch" => match on_off(&args[2]) {
            Some(v) => {
                ctx.client.no_touch = v;
                OK
            }
            None => Reply::err(err::SYNTAX),
        },
        "unblock" => client_unblock(ctx, args),
        "pause" => client_pause(ctx, args),
        "unpause" => {
            // The postponed clients run at the end of this round (`pause::check_end`), not
            // inside this command.
            ctx.srv.pause.stop();
            OK
        }
        "setinfo" => client_setinfo(ctx, args),
        "tracking" => client_tracking(ctx, args),
        "caching" => client_caching(ctx, args),
        "getredir" => Reply::Int(if ctx.client.tracking {
            ctx.client.trk.redirect as i64
        } else {
            -1
        }),
        "trackinginfo" => tracking_info(ctx.client),
        _ => help_reply("client", HELP),
    }
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP], with
/// Redis 7.0's checks in its order (options first, then their compatibility).
fn client_tracking(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut o = crate::tracking::Options::default();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"redirect") && more {
            j += 1;
            if o.redirect != 0 {
                return Reply::err("ERR A client can only redirect to a single other client");
            }
            let Some(id) = crate::util::parse_i64(&args[j]) else {
                return Reply::err(err::NOT_INT);
            };
            let exists = id > 0
                && (id as u64 == ctx.client.id || ctx.srv.clients.contains_key(&(id as u64)));
            if !exists {
                return Reply::err("ERR The client ID you want redirect to does not exist");
            }
            o.redirect = id as u64;
        } else if a.eq_ignore_ascii_case(b"bcast") {
            o.bcast = true;
        } else if a.eq_ignore_ascii_case(b"optin") {
            o.optin = true;
        } else if a.eq_ignore_ascii_case(b"optout") {
            o.optout = true;
        } else if a.eq_ignore_ascii_case(b"noloop") {
            o.noloop = true;
        } else if a.eq_ignore_ascii_case(b"prefix") && more {
            j += 1;
            o.prefixes.push(args[j].clone());
        } else {
            return Reply::err(err::SYNTAX);
        }
        j += 1;
    }
    let c = &*ctx.client;
    if args[2].eq_ignore_ascii_case(b"on") {
        if !o.bcast && !o.prefixes.is_empty() {
            return Reply::err("ERR PREFIX option requires BCAST mode to be enabled");
        }
        if c.tracking && c.trk.bcast != o.bcast {
            return Reply::err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if o.bcast && (o.optin || o.optout) {
            return Reply::err("ERR OPTIN and OPTOUT are not compatible with BCAST");
        }
        if o.optin && o.optout {
            return Reply::err("ERR You can't specify both OPTIN mode and OPTOUT mode");
        }
        if (o.optin && c.trk.optout) || (o.optout && c.trk.optin) {
            return Reply::err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
        }
        if o.bcast {
            if let Some(e) = crate::tracking::prefix_collision(c, &o.prefixes) {
                return Reply::Error(e);
            }
        }
        crate::tracking::enable(ctx.srv, ctx.client, o);
    } else if args[2].eq_ignore_ascii_case(b"off") {
        crate::tracking::disable(ctx.srv, ctx.client);
    } else {
        return Reply::err(err::SYNTAX);
    }
    OK
}

/// CLIENT CACHING YES|NO: the next command (or transaction) is tracked (OPTIN) or not (OPTOUT).
fn client_caching(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let c = &mut *ctx.client;
    if !c.tracking {
        return Reply::err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    }
    if args[2].eq_ignore_ascii_case(b"yes") {
        if !c.trk.optin {
            return Reply::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
        }
    } else if args[2].eq_ignore_ascii_case(b"no") {
        if !c.trk.optout {
            return Reply::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
        }
    } else {
        return Reply::err(err::SYNTAX);
    }
    c.trk.caching = true;
    // Kept through this command (a CLIENT command) to the next one.
    c.trk.after_client_cmd = true;
    OK
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis 7.0 lists them.
fn tracking_info(c: &Client) -> Reply {
    let t = &c.trk;
    let mut flags = vec![Reply::bulk_str(if c.tracking { "on" } else { "off" })];
    if c.tracking {
        if t.bcast {
            flags.push(Reply::bulk_str("bcast"));
        }
        if t.optin {
            flags.push(Reply::bulk_str("optin"));
            if t.caching {
                flags.push(Reply::bulk_str("caching-yes"));
            }
        }
        if t.optout {
            flags.push(Reply::bulk_str("optout"));
            if t.caching {
                flags.push(Reply::bulk_str("caching-no"));
            }
        }
        if t.noloop {
            flags.push(Reply::bulk_str("noloop"));
        }
        if t.broken_redirect {
            flags.push(Reply::bulk_str("broken_redirect"));
        }
    }
    let redirect = if c.tracking { t.redirect as i64 } else { -1 };
    Reply::Map(vec![
        (Reply::bulk_str("flags"), Reply::Set(flags)),
        (Reply::bulk_str("redirect"), Reply::Int(redirect)),
        (
            Reply::bulk_str("prefixes"),
            Reply::Array(t.prefixes.iter().cloned().map(Reply::Bulk).collect()),
        ),
    ])
}

fn on_off(a: &[u8]) -> Option<bool> {
    match &a.to_ascii_lowercase()[..] {
        b"on" => Some(true),
        b"off" => Some(false),
        _ => None,
    }
}

/// One CLIENT LIST line (without the trailing newline), in Redis 7.0's field order.
/// `current` is (full command name, argv) for the client running the command.
///
/// `fd` is not the socket's descriptor (connections live on other threads): it is a stable
/// per-connection number in the range Redis's client descriptors use.
pub(crate) fn client_info(
    out: &mut String,
    c: &Client,
    now_ms: i64,
    current: Option<(&str, &[Bytes])>,
) {
    let mut flags = String::new();
    if c.is_replica {
        flags.push('S');
    }
    if c.monitor {
        flags.push('O');
    }
    if c.sub_count() + c.ssubs.len() > 0 {
        flags.push('P');
    }
    if c.multi.is_some() {
        flags.push('x');
    }
    if c.blocked.is_some() {
        flags.push('b');
    }
    if c.tracking {
        flags.push('t');
    }
    if c.tracking && c.trk.broken_redirect {
        flags.push('R');
    }
    if c.tracking && c.trk.bcast {
        flags.push('B');
    }
    if c.dirty_cas {
        flags.push('d');
    }
    if c.close_after_reply {
        flags.push('c');
    }
    if c.closed {
        flags.push('A');
    }
    if c.unix_socket {
        flags.push('U');
    }
    if c.no_evict {
        flags.push('e');
    }
    if c.no_touch {
        flags.push('T');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let (multi, multi_mem) = match &c.multi {
        Some(m) => (m.queued.len() as i64, m.bytes),
        None => (-1, 0),
    };
    let (cmd, argv_mem, argv_tot) = match current {
        Some((name, argv)) => {
            let n: usize = argv.iter().map(|a| a.len()).sum();
            (
                name.to_string(),
                n,
                n + argv.len() * crate::cevict::ARG_OVERHEAD_BYTES,
            )
        }
        None => (c.last_cmd.to_string(), 0usize, c.mem_argv),
    };
    // Redis's query buffer still holds the command being executed (it is trimmed after):
    // the calling client's own line counts it, as its RESP request.
    let running: usize = current.map_or(0, |(_, argv)| {
        let digits = |n: usize| n.to_string().len();
        1 + digits(argv.len())
            + 2
            + argv
                .iter()
                .map(|a| 1 + digits(a.len()) + 2 + a.len() + 2)
                .sum::<usize>()
    });
    let qbuf = c.shared.qbuf_bytes.load(Ordering::Relaxed) + running;
    let omem = c.shared.out_bytes();
    // What `maxmemory-clients` counts (`cevict`).
    let tot = crate::cevict::client_mem(c, argv_tot);
    let name = c
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let events = if omem > 0 { "rw" } else { "r" };
    let _ = write!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs=1024 rbp=0 obl=0 oll=0 omem={} tot-mem={} events={} cmd={} user={} redir={} resp={}",
        c.id,
        c.addr,
        c.laddr,
        c.id + 7,
        name,
        (now_ms - c.created_ms).max(0) / 1000,
        (now_ms - c.last_interaction_ms).max(0) / 1000,
        flags,
        c.db,
        c.subs.len(),
        c.psubs.len(),
        c.ssubs.len(),
        multi,
        qbuf,
        0,
        argv_mem,
        multi_mem,
        omem,
        tot,
        events,
        cmd,
        String::from_utf8_lossy(&c.user.name),
        if c.tracking {
            c.trk.redirect as i64
        } else {
            -1
        },
        c.proto,
    );
}

/// All clients, the caller included, in connection order.
fn all_clients<'a>(ctx: &'a Ctx) -> Vec<&'a Client> {
    let mut v: Vec<&Client> = ctx.srv.clients.values().map(|c| &**c).collect();
    v.push(&*ctx.client);
    v.sort_by_key(|c| c.id);
    v
}

fn client_list(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut out = String::new();
    let me = ctx.client.id;
    let line = |out: &mut String, c: &Client| {
        let cur = (c.id == me).then_some(("client|list", args));
        client_info(out, c, ctx.now_ms, cur);
        out.push('\n');
    };
    if args.len() == 4 && args[2].eq_ignore_ascii_case(b"type") {
        let t = match parse_type(&args[3]) {
            Ok(t) => t,
            Err(e) => return e,
        };
        for c in all_clients(ctx) {
            if client_type(c) == t {
                line(&mut out, c);
            }
        }
    } else if args.len() > 3 && args[2].eq_ignore_ascii_case(b"id") {
        let mut ids: Vec<i64> = Vec::new();
        for a in &args[3..] {
            match crate::util::parse_i64(a) {
                Some(id) => ids.push(id),
                None => return Reply::err("ERR Invalid client ID"),
            }
        }
        for id in ids {
            let c = if id as ClientId == me {
                Some(&*ctx.client)
            } else {
                ctx.srv.clients.get(&(id as ClientId)).map(|c| &**c)
            };
            if let Some(c) = c {
                line(&mut out, c);
            }
        }
    } else if args.len() != 2 {
        return Reply::err(err::SYNTAX);
    } else {
        for c in all_clients(ctx) {
            line(&mut out, c);
        }
    }
    Reply::Verbatim(Bytes::from(out))
}

/// CLIENT KILL addr (old form) or CLIENT KILL <filter> <value> ... (new form).
fn client_kill(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut addr: Option<&[u8]> = None;
    let mut laddr: Option<&[u8]> = None;
    let mut id: Option<ClientId> = None;
    let mut ctype: Option<ClientType> = None;
    let mut user: Option<&[u8]> = None;
    let mut skipme = true;
    if args.len() == 3 {
        addr = Some(&args[2]);
        skipme = false;
    } else {
        let mut i = 2;
        while i < args.len() {
            let more = i + 1 < args.len();
            let opt = args[i].to_ascii_lowercase();
            if !more {
                return Reply::err(err::SYNTAX);
            }
            let v = &args[i + 1];
            match &opt[..] {
                b"id" => match crate::util::parse_i64(v) {
                    Some(n) if n >= 1 => id = Some(n as ClientId),
                    _ => return Reply::err("ERR client-id should be greater than 0"),
                },
                b"type" => match parse_type(v) {
                    Ok(t) => ctype = Some(t),
                    Err(e) => return e,
                },
                b"addr" => addr = Some(v),
                b"laddr" => laddr = Some(v),
                b"user" => {
                    if ctx.srv.acl.get(v).is_none() {
                        return Reply::Error(format!(
                            "ERR No such user '{}'",
                            String::from_utf8_lossy(v)
                        ));
                    }
                    user = Some(v);
                }
                b"skipme" => match &v.to_ascii_lowercase()[..] {
                    b"yes" => skipme = true,
                    b"no" => skipme = false,
                    _ => return Reply::err(err::SYNTAX),
                },
                _ => return Reply::err(err::SYNTAX),
            }
            i += 2;
        }
    }
    let matches = |c: &Client| {
        addr.is_none_or(|a| c.addr.as_bytes() == a)
            && laddr.is_none_or(|a| c.laddr.as_bytes() == a)
            && ctype.is_none_or(|t| client_type(c) == t)
            && id.is_none_or(|i| c.id == i)
            && user.is_none_or(|u| c.user.name == u)
    };
    let victims: Vec<ClientId> = ctx
        .srv
        .clients
        .values()
        .filter(|c| !c.closed && matches(c))
        .map(|c| c.id)
        .collect();
    let mut killed = 0;
    for id in victims {
        let Some(mut c) = ctx.srv.clients.remove(&id) else {
            continue;
        };
        // Gone at once, as Redis frees it: no longer blocked (a later push in this round must not
        // be served to it), subscribed, watching or monitoring. The executor closes the
        // connection at the end of the round.
        c.closed = true;
        ctx.srv.forget_client(&mut c);
        ctx.srv.clients.insert(id, c);
        killed += 1;
    }
    if !skipme && matches(ctx.client) {
        // Its own reply is sent first, then the connection closes.
        ctx.client.close_after_reply = true;
        killed += 1;
    }
    // A replica's link to its master (Redis's master client: type master, the master's
    // address): dropped, and resumed by the link task (a partial resync when it can).
    if laddr.is_none() && user.is_none() {
        let link = ctx.srv.replica.as_ref().and_then(|r| {
            let a = format!("{}:{}", r.host, r.port);
            let hit = addr.is_none_or(|x| x == a.as_bytes())
                && ctype.is_none_or(|t| t == ClientType::Master)
                && id.is_none_or(|i| i == r.master.id)
                && r.link_up();
            hit.then_some(r.gen)
        });
        if let Some(gen) = link {
            crate::replica::drop_link(ctx.srv, gen);
            killed += 1;
        }
    }
    if args.len() == 3 {
        if killed == 0 {
            Reply::err("ERR No such client")
        } else {
            OK
        }
    } else {
        Reply::Int(killed)
    }
}

fn client_unblock(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 4 {
        return sub_syntax_error("client", &args[1]);
    }
    let mut as_error = false;
    if args.len() == 4 {
        match &args[3].to_ascii_lowercase()[..] {
            b"timeout" => {}
            b"error" => as_error = true,
            _ => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
        }
    }
    let Some(id) = crate::util::parse_i64(&args[2]) else {
        return Reply::err(err::NOT_INT);
    };
    let id = id as ClientId;
    let blocked = ctx
        .srv
        .clients
        .get(&id)
        .is_some_and(|c| c.blocked.as_ref().is_some_and(|b| !b.postponed));
    // A client CLIENT PAUSE holds is not unblocked (Redis 7.2; 7.0 aborts on it).
    if !blocked {
        return Reply::Int(0);
    }
    let Some(mut target) = ctx.srv.clients.remove(&id) else {
        return Reply::Int(0);
    };
    let reply = as_error.then(|| Reply::err(UNBLOCKED_ERROR));
    crate::exec::unblock_with(ctx.srv, &mut target, reply);
    ctx.srv.clients.insert(id, target);
    Reply::Int(1)
}

/// Redis's `getTimeoutFromObjectOrReply` in milliseconds (integer only).
pub(super) fn parse_timeout_ms(a: &[u8]) -> Result<i64, Reply> {
    match crate::util::parse_i64(a) {
        None => Err(Reply::err("ERR timeout is not an integer or out of range")),
        Some(v) if v < 0 => Err(Reply::err("ERR timeout is negative")),
        Some(v) => Ok(v),
    }
}

/// CLIENT PAUSE timeout [WRITE|ALL]: postpone clients' commands until the timeout (`pause.rs`).
fn client_pause(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 4 {
        return sub_syntax_error("client", &args[1]);
    }
    // Redis checks the mode before the timeout.
    let kind = match args.get(3) {
        None => crate::pause::Kind::All,
        Some(m) if m.eq_ignore_ascii_case(b"all") => crate::pause::Kind::All,
        Some(m) if m.eq_ignore_ascii_case(b"write") => crate::pause::Kind::Write,
        Some(_) => return Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    let ms = match parse_timeout_ms(&args[2]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    ctx.srv.pause.start(ctx.now_ms.saturating_add(ms), kind);
    OK
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; client libraries send it on connect).
fn client_setinfo(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let attr = args[2].to_ascii_lowercase();
    let v = &args[3];
    let label = match &attr[..] {
        b"lib-name" => "lib-name",
        b"lib-ver" => "lib-ver",
        _ => {
            return Reply::Error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&args[2])
            ))
        }
    };
    if v.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Reply::Error(format!(
            "ERR {label} cannot contain spaces, newlines or special characters."
        ));
    }
    // A copy: the argument shares the connection's read buffer (16 KiB), which it would pin
    // for the connection's life.
    let val = if v.is_empty() {
        None
    } else {
        Some(Bytes::copy_from_slice(v))
    };
    if label == "lib-name" {
        ctx.client.lib_name = val;
    } else {
        ctx.client.lib_ver = val;
    }
    OK
}
