//! Pub/Sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB, SSUBSCRIBE,
//! SUNSUBSCRIBE, SPUBLISH. Subscription confirmations are pushes (RESP3 `>`; arrays in RESP2).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexSet;

use crate::client::ClientId;
use crate::cmd::{cmd, flags::*, CommandSpec, KeySpec, KNONE};
use crate::ctx::Ctx;
use crate::resp::Reply;
use crate::util::glob_match;

pub static COMMANDS: &[CommandSpec] = &[
    cmd(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        KNONE,
        "pubsub",
        subscribe,
    ),
    cmd(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        KNONE,
        "pubsub",
        unsubscribe,
    ),
    cmd(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        KNONE,
        "pubsub",
        psubscribe,
    ),
    cmd(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        KNONE,
        "pubsub",
        punsubscribe,
    ),
    cmd(
        "ssubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        KeySpec::Range(1, -1, 1),
        "pubsub",
        ssubscribe,
    ),
    cmd(
        "sunsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        KeySpec::Range(1, -1, 1),
        "pubsub",
        sunsubscribe,
    ),
    cmd(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        KNONE,
        "pubsub",
        publish,
    ),
    cmd(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        KeySpec::Range(1, 1, 1),
        "pubsub",
        spublish,
    ),
    cmd(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        KNONE,
        "pubsub",
        pubsub,
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

fn parts<'a>(
    ctx: &'a mut Ctx,
    kind: Kind,
) -> (
    &'a mut HashSet<Bytes>,
    &'a mut HashMap<Bytes, IndexSet<ClientId>>,
) {
    match kind {
        Kind::Channel => (&mut ctx.client.subs, &mut ctx.srv.pubsub.channels),
        Kind::Pattern => (&mut ctx.client.psubs, &mut ctx.srv.pubsub.patterns),
        Kind::Shard => (&mut ctx.client.ssubs, &mut ctx.srv.pubsub.shard_channels),
    }
}

fn count(ctx: &Ctx, kind: Kind) -> i64 {
    match kind {
        Kind::Shard => ctx.client.ssubs.len() as i64,
        _ => ctx.client.sub_count() as i64,
    }
}

fn do_subscribe(ctx: &mut Ctx, args: &[Bytes], kind: Kind) -> Reply {
    let id = ctx.client.id;
    for ch in &args[1..] {
        let (mine, map) = parts(ctx, kind);
        if mine.insert(ch.clone()) {
            map.entry(ch.clone()).or_default().insert(id);
        }
        let n = count(ctx, kind);
        ctx.client.push(Reply::Push(vec![
            Reply::bulk_str(kind.words().0),
            Reply::Bulk(ch.clone()),
            Reply::Int(n),
        ]));
    }
    ctx.propagate_nothing();
    Reply::Raw(Bytes::new())
}

fn do_unsubscribe(ctx: &mut Ctx, args: &[Bytes], kind: Kind) -> Reply {
    let id = ctx.client.id;
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        let (mine, _) = parts(ctx, kind);
        let mut v: Vec<Bytes> = mine.iter().cloned().collect();
        v.sort();
        v
    };
    if targets.is_empty() {
        let n = count(ctx, kind);
        ctx.client.push(Reply::Push(vec![
            Reply::bulk_str(kind.words().1),
            Reply::Nil,
            Reply::Int(n),
        ]));
    }
    for ch in targets {
        let (mine, map) = parts(ctx, kind);
        if mine.remove(&ch) {
            if let Some(s) = map.get_mut(&ch) {
                s.shift_remove(&id);
                if s.is_empty() {
                    map.remove(&ch);
                }
            }
        }
        let n = count(ctx, kind);
        ctx.client.push(Reply::Push(vec![
            Reply::bulk_str(kind.words().1),
            Reply::Bulk(ch),
            Reply::Int(n),
        ]));
    }
    Reply::Raw(Bytes::new())
}

fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_subscribe(ctx, args, Kind::Channel)
}
fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_unsubscribe(ctx, args, Kind::Channel)
}
fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_subscribe(ctx, args, Kind::Pattern)
}
fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_unsubscribe(ctx, args, Kind::Pattern)
}
fn ssubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_subscribe(ctx, args, Kind::Shard)
}
fn sunsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    do_unsubscribe(ctx, args, Kind::Shard)
}

/// PUBLISH and SPUBLISH reach replicas (their subscribers get the message too), not the log.
fn publish(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let n = ctx.srv.publish(Some(ctx.client), &args[1], &args[2]);
    ctx.srv.log.append_repl_only(ctx.client.db, args);
    Reply::Int(n as i64)
}

fn spublish(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let n = ctx.srv.spublish(Some(ctx.client), &args[1], &args[2]);
    ctx.srv.log.append_repl_only(ctx.client.db, args);
    Reply::Int(n as i64)
}

fn pubsub(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    let wrong = || crate::cmd::arity_error(&format!("pubsub|{}", String::from_utf8_lossy(&sub)));
    match &sub[..] {
        b"channels" | b"shardchannels" => {
            if args.len() > 3 {
                return wrong();
            }
            let map = if sub == b"channels" {
                &ctx.srv.pubsub.channels
            } else {
                &ctx.srv.pubsub.shard_channels
            };
            let pat = args.get(2);
            let mut v: Vec<Bytes> = map
                .keys()
                .filter(|c| pat.is_none_or(|p| glob_match(p, c, false)))
                .cloned()
                .collect();
            v.sort();
            Reply::Array(v.into_iter().map(Reply::Bulk).collect())
        }
        b"numsub" | b"shardnumsub" => {
            let map = if sub == b"numsub" {
                &ctx.srv.pubsub.channels
            } else {
                &ctx.srv.pubsub.shard_channels
            };
            let mut v = Vec::new();
            for c in &args[2..] {
                v.push(Reply::Bulk(c.clone()));
                v.push(Reply::Int(map.get(c).map_or(0, |s| s.len()) as i64));
            }
            Reply::Array(v)
        }
        b"numpat" => {
            if args.len() != 2 {
                return wrong();
            }
            Reply::Int(ctx.srv.pubsub.patterns.len() as i64)
        }
        b"help" => Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::StatusOwned(s.to_string()))
            .collect(),
        ),
        _ => crate::cmd::unknown_subcommand("pubsub", &args[1]),
    }
}
