//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis 7 semantics).

use bytes::Bytes;

use crate::client::{MultiState, WatchedKey};
use crate::cmd::{self, cmd, flags::*, CommandSpec, KALL, KNONE};
use crate::ctx::Ctx;
use crate::resp::{Reply, OK};

pub static COMMANDS: &[CommandSpec] = &[
    cmd(
        "multi",
        1,
        NO_MULTI | NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        KNONE,
        "transactions",
        multi,
    ),
    cmd(
        "exec",
        1,
        NO_MULTI | NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        KNONE,
        "transactions",
        exec,
    ),
    cmd(
        "discard",
        1,
        NO_MULTI | NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        KNONE,
        "transactions",
        discard,
    ),
    cmd(
        "watch",
        -2,
        NO_MULTI | NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        KALL,
        "transactions",
        watch,
    ),
    cmd(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        KNONE,
        "transactions",
        unwatch,
    ),
];

fn multi(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(MultiState {
        queued: Vec::new(),
        bytes: 0,
        failed: false,
    });
    OK
}

fn discard(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.take().is_none() {
        return Reply::err("ERR DISCARD without MULTI");
    }
    crate::exec::unwatch_all(ctx.srv, ctx.client);
    OK
}

fn exec(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let Some(m) = ctx.client.multi.take() else {
        return Reply::err("ERR EXEC without MULTI");
    };
    // Watched keys that expired since WATCH count as modified (Redis 7: isWatchedKeyExpired);
    // keys already stale at WATCH do not.
    let now = ctx.now_ms;
    let expired_watch = ctx
        .client
        .watched
        .iter()
        .any(|w| !w.expired && ctx.srv.dbs[w.db].is_expired(&w.key, now));
    if m.failed {
        crate::exec::unwatch_all(ctx.srv, ctx.client);
        return Reply::err("EXECABORT Transaction discarded because of previous errors.");
    }
    if ctx.client.dirty_cas || expired_watch {
        crate::exec::unwatch_all(ctx.srv, ctx.client);
        return Reply::NilArray;
    }
    crate::exec::unwatch_all(ctx.srv, ctx.client);
    let mut replies = Vec::with_capacity(m.queued.len());
    ctx.srv.log.begin_unit();
    for argv in m.queued {
        let Some(spec) = cmd::table().get(&argv[0]) else {
            replies.push(crate::exec::unknown_command_error(&argv));
            continue;
        };
        // Permissions may have changed since the command was queued (Redis 7.0's EXEC).
        if !ctx.client.user.superuser {
            if let Err(d) = ctx.client.user.check(spec, &argv) {
                crate::cmd::acl::log_denied(
                    ctx.srv,
                    ctx.client,
                    spec,
                    &argv,
                    d,
                    crate::acl::CTX_MULTI,
                );
                replies.push(crate::cmd::acl::exec_denied_error(spec, d));
                continue;
            }
        }
        if spec.is_write() {
            if let Some(e) = crate::persist::disk_error(ctx.srv) {
                replies.push(Reply::Error(e.command_error()));
                continue;
            }
        }
        let r = crate::exec::call(ctx.srv, ctx.client, spec, &argv, true);
        replies.push(r);
    }
    ctx.srv.log.end_unit();
    // Effects were logged command by command inside the unit; EXEC itself adds nothing.
    ctx.propagate_nothing();
    Reply::Array(replies)
}

fn watch(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR WATCH inside MULTI is not allowed");
    }
    let db = ctx.client.db;
    let now = ctx.now_ms;
    for k in &args[1..] {
        if ctx.client.watched.iter().any(|w| w.db == db && w.key == *k) {
            continue;
        }
        ctx.client.watched.push(WatchedKey {
            db,
            key: k.clone(),
            expired: ctx.srv.dbs[db].is_expired(k, now),
        });
        ctx.srv
            .watched
            .entry((db, k.clone()))
            .or_default()
            .push(ctx.client.id);
    }
    OK
}

fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    crate::exec::unwatch_all(ctx.srv, ctx.client);
    OK
}
