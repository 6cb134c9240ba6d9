//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, SHUTDOWN, DEBUG, INFO, CONFIG,
//! CLIENT, COMMAND, SLOWLOG, MEMORY, MONITOR, LASTSAVE.

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec, KNONE};
use crate::ctx::Ctx;
use crate::exec::ShutdownMode;
use crate::resp::{Reply, OK};

pub(crate) mod client;
mod cluster;
pub(crate) mod command;
mod config;
mod debug;
mod info;
mod lolwut;
mod misc;

pub use command::stat_name;
pub(crate) use config::apply_oom_score_adj;

/// A subcommand of a container command: (name, Redis arity counting the parent, flags).
pub(crate) type Sub = (&'static str, i32, u32);

pub static COMMANDS: &[CommandSpec] = &[
    cmd("dbsize", 1, READONLY | FAST, KNONE, "server", dbsize),
    cmd("flushdb", -1, WRITE, KNONE, "server", flushdb),
    cmd("flushall", -1, WRITE, KNONE, "server", flushall),
    cmd("swapdb", 3, WRITE | FAST, KNONE, "server", swapdb),
    cmd("time", 1, LOADING | STALE | FAST, KNONE, "server", time),
    cmd("lolwut", -1, READONLY | FAST, KNONE, "server", lolwut::lolwut),
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
        ADMIN | NOSCRIPT | LOADING | STALE | PROTECTED,
        KNONE,
        "server",
        debug::debug,
    ),
    CommandSpec {
        summary: "Get information and statistics about the server",
        ..cmd("info", -1, LOADING | STALE, KNONE, "server", info::info)
    },
    CommandSpec {
        summary: "A container for server configuration commands",
        since: "2.0.0",
        subcommands: config::SUBS,
        ..cmd(
            "config",
            -2,
            ADMIN | NOSCRIPT | LOADING | STALE,
            KNONE,
            "server",
            config::config,
        )
    },
    CommandSpec {
        summary: "A container for client connection commands",
        since: "2.4.0",
        subcommands: client::SUBS,
        ..cmd(
            "client",
            -2,
            NOSCRIPT | LOADING | STALE,
            KNONE,
            "connection",
            client::client,
        )
    },
    CommandSpec {
        summary: "Get array of Redis command details",
        since: "2.8.13",
        subcommands: command::SUBS,
        ..cmd("command", -1, LOADING | STALE, KNONE, "server", command::command)
    },
    CommandSpec {
        summary: "A container for slow log commands",
        since: "2.2.12",
        subcommands: misc::SLOWLOG_SUBS,
        ..cmd("slowlog", -2, ADMIN | LOADING | STALE, KNONE, "server", misc::slowlog)
    },
    CommandSpec {
        summary: "A container for memory diagnostics commands",
        since: "4.0.0",
        subcommands: misc::MEMORY_SUBS,
        // The key of MEMORY USAGE (the other subcommands have no argument there): ACL key
        // patterns and COMMAND GETKEYS see it, as in Redis.
        ..cmd(
            "memory",
            -2,
            READONLY,
            KeySpec::Range(2, 2, 1),
            "server",
            misc::memory
        )
    },
    CommandSpec {
        summary: "A container for cluster commands",
        since: "3.0.0",
        subcommands: cluster::CLUSTER_SUBS,
        ..cmd("cluster", -2, 0, KNONE, "cluster", cluster::cluster)
    },
    CommandSpec {
        summary: "Enables read queries for a connection to a cluster replica node",
        since: "3.0.0",
        ..cmd("readonly", 1, FAST | LOADING | STALE, KNONE, "cluster", cluster::cluster_only)
    },
    CommandSpec {
        summary: "Disables read queries for a connection to a cluster replica node",
        since: "3.0.0",
        ..cmd("readwrite", 1, FAST | LOADING | STALE, KNONE, "cluster", cluster::cluster_only)
    },
    CommandSpec {
        summary: "Sent by cluster clients after an -ASK redirect",
        since: "3.0.0",
        ..cmd("asking", 1, FAST, KNONE, "cluster", cluster::cluster_only)
    },
    CommandSpec {
        summary: "A container for module commands",
        since: "4.0.0",
        subcommands: cluster::MODULE_SUBS,
        ..cmd("module", -2, 0, KNONE, "server", cluster::module)
    },
    CommandSpec {
        summary: "A container for latency diagnostics commands",
        since: "2.8.13",
        subcommands: misc::LATENCY_SUBS,
        ..cmd("latency", -2, ADMIN | NOSCRIPT | LOADING | STALE, KNONE, "server", misc::latency)
    },
    CommandSpec {
        summary: "Listen for all requests received by the server in real time",
        ..cmd("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, KNONE, "server", misc::monitor)
    },
    CommandSpec {
        summary: "Get the UNIX time stamp of the last successful save to disk",
        ..cmd("lastsave", 1, LOADING | STALE | FAST, KNONE, "server", misc::lastsave)
    },
    CommandSpec {
        summary: "Return the role of the instance in the context of replication",
        since: "2.8.12",
        ..cmd("role", 1, NOSCRIPT | LOADING | STALE | FAST, KNONE, "server", misc::role)
    },
    CommandSpec {
        summary: "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
        since: "3.0.0",
        ..cmd("wait", 3, NOSCRIPT, KNONE, "generic", misc::wait)
    },
    CommandSpec {
        summary: "Configure a server as replica of another, or promote it to a master",
        since: "5.0.0",
        ..cmd("replicaof", 3, ADMIN | NOSCRIPT | STALE, KNONE, "server", crate::replica::replicaof_command)
    },
    CommandSpec {
        summary: "Start a coordinated failover between this server and one of its replicas.",
        since: "6.2.0",
        ..cmd("failover", -1, ADMIN | NOSCRIPT | STALE, KNONE, "server", crate::failover::failover_command)
    },
    CommandSpec {
        summary: "An internal command used in replication",
        since: "2.8.0",
        ..cmd("psync", -3, ADMIN | NOSCRIPT, KNONE, "server", crate::master::sync_command)
    },
    CommandSpec {
        summary: "An internal command used in replication",
        since: "1.0.0",
        ..cmd("sync", 1, ADMIN | NOSCRIPT, KNONE, "server", crate::master::sync_command)
    },
    CommandSpec {
        summary: "An internal command for configuring the replication stream",
        since: "3.0.0",
        ..cmd("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, KNONE, "server", crate::master::replconf_command)
    },
    CommandSpec {
        summary: "Sets a Redis server as a replica of another, or promotes it to being a master",
        since: "1.0.0",
        ..cmd("slaveof", 3, ADMIN | NOSCRIPT | STALE, KNONE, "server", crate::replica::replicaof_command)
    },
];

/// Look up `args[1]` among `subs` and check its arity, with Redis's error texts
/// (`unknown subcommand '…'. Try CMD HELP.`, `wrong number of arguments for 'cmd|sub' command`).
pub(crate) fn sub_lookup(
    parent: &str,
    subs: &[Sub],
    args: &[Bytes],
) -> Result<&'static str, Reply> {
    let want = args[1].to_ascii_lowercase();
    let Some(&(name, arity, _)) = subs.iter().find(|s| s.0.as_bytes() == &want[..]) else {
        return Err(crate::cmd::unknown_subcommand(parent, &args[1]));
    };
    let argc = args.len() as i32;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return Err(crate::cmd::arity_error(&format!("{parent}|{name}")));
    }
    Ok(name)
}

/// Redis's `addReplySubcommandSyntaxError`.
pub(crate) fn sub_syntax_error(parent: &str, sub: &[u8]) -> Reply {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    Reply::Error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        sub,
        parent.to_ascii_uppercase()
    ))
}

/// Redis's `addReplyHelp`: the header line, `lines`, then HELP.
pub(crate) fn help_reply(parent: &str, lines: &[&str]) -> Reply {
    let mut v = Vec::with_capacity(lines.len() + 3);
    v.push(Reply::StatusOwned(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        parent.to_ascii_uppercase()
    )));
    for l in lines {
        v.push(Reply::StatusOwned(l.to_string()));
    }
    v.push(Reply::Status("HELP"));
    v.push(Reply::Status("    Prints this help."));
    Reply::Array(v)
}

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
    let now = ctx.now_ms;
    ctx.srv
        .touch_all_watched_in(db, None, now, Some(ctx.client));
    let n = ctx.srv.dbs[db].len() as u64;
    ctx.srv.dbs[db].clear();
    crate::tracking::flushed(ctx.srv, Some(ctx.client));
    ctx.srv.signal_blocked_in(Some(db));
    // Always logged (even when empty), as Redis does.
    ctx.propagate(vec![Bytes::from_static(b"FLUSHDB")]);
    ctx.dirty(n.max(1));
    OK
}

fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = parse_flush_mode(args) {
        return e;
    }
    let now = ctx.now_ms;
    for db in 0..ctx.srv.dbs.len() {
        ctx.srv
            .touch_all_watched_in(db, None, now, Some(ctx.client));
    }
    let mut n = 0;
    for d in ctx.srv.dbs.iter_mut() {
        n += d.len() as u64;
        d.clear();
    }
    ctx.srv.with_persistence(|p, srv| p.flushall(srv));
    crate::tracking::flushed(ctx.srv, Some(ctx.client));
    ctx.srv.signal_blocked_in(None);
    ctx.propagate(vec![Bytes::from_static(b"FLUSHALL")]);
    // As Redis: with save points configured, the emptied dataset is saved at once (a restart
    // must not bring back the dump from before), which leaves no change unsaved. A BGSAVE was
    // abandoned above; a running AOF rewrite's snapshot is left to finish (as Redis), and the
    // save waits for the next point then.
    if !ctx.srv.cfg.get("save").trim().is_empty() && ctx.srv.snapshot.is_none() {
        match ctx.srv.with_persistence(|p, srv| p.save(srv)) {
            Ok(()) => return OK,
            Err(e) => tracing::warn!("FLUSHALL could not save the empty dataset: {e}"),
        }
    }
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
        let now = ctx.now_ms;
        ctx.srv
            .touch_all_watched_in(a, Some(b), now, Some(ctx.client));
        ctx.srv
            .touch_all_watched_in(b, Some(a), now, Some(ctx.client));
        ctx.srv.dbs.swap(a, b);
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

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: the shutdown itself runs at the end of the
/// round (`persist::shutdown_step`: it may wait for lagging replicas first).
fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut mode = ShutdownMode::Default;
    let (mut save, mut nosave, mut now, mut force, mut abort) = (false, false, false, false, false);
    for a in &args[1..] {
        match &a.to_ascii_lowercase()[..] {
            b"nosave" => nosave = true,
            b"save" => save = true,
            b"now" => now = true,
            b"force" => force = true,
            b"abort" => abort = true,
            _ => return Reply::err(err::SYNTAX),
        }
    }
    if (abort && (save || nosave || now || force)) || (save && nosave) {
        return Reply::err(err::SYNTAX);
    }
    if abort {
        return if crate::persist::abort_shutdown(ctx.srv) {
            OK
        } else {
            Reply::err("ERR No shutdown in progress.")
        };
    }
    // While a script is busy only SHUTDOWN NOSAVE stops the server (and the script).
    if crate::exec::script_busy(ctx.srv) && !nosave {
        return Reply::err(crate::cmd::scripting::busy_error(ctx.srv));
    }
    // The client blocks (as in Redis: its later commands wait): nothing is answered on
    // success (the exit closes the connection); a refused or aborted shutdown answers an error.
    ctx.blocked = Some(crate::client::Blocked {
        db: ctx.client.db,
        keys: Vec::new(),
        deadline_ms: None,
        argv: vec![Bytes::from_static(b"SHUTDOWN")],
        timeout_reply: Reply::err(crate::persist::SHUTDOWN_FAILED),
        postponed: false,
    });
    ctx.srv.shutdown_clients.push(ctx.client.id);
    if ctx.srv.shutdown.is_some() {
        // One is under way already: this client waits for it too.
        return Reply::Nil;
    }
    if save {
        mode = ShutdownMode::Save;
    } else if nosave {
        mode = ShutdownMode::NoSave;
    }
    ctx.srv.shutdown = Some(mode);
    ctx.srv.shutdown_force = force;
    ctx.srv.shutdown_now = now;
    Reply::Nil
}
