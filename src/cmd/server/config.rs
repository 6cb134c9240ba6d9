//! CONFIG GET/SET/RESETSTAT/REWRITE/HELP over `crate::config::Config`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use std::sync::Mutex;

use bytes::Bytes;

use super::{help_reply, sub_lookup, Sub};
use crate::cmd::err;
use crate::cmd::flags::*;
use crate::ctx::{notify, Ctx};
use crate::exec::Stats;
use crate::resp::{Reply, OK};

pub(super) const SUBS: &[Sub] = &[
    ("get", -3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("set", -4, ADMIN | NOSCRIPT | LOADING | STALE),
    ("resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("rewrite", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("help", 2, LOADING | STALE),
];

/// Options CONFIG SET refuses unless `enable-protected-configs` (Redis 7.0's PROTECTED_CONFIG).
const PROTECTED: &[&str] = &["dir", "dbfilename"];

/// Redis's `hz` bounds: values outside are clamped, not refused.
const HZ_MIN: i64 = 1;
const HZ_MAX: i64 = 500;

const HELP: &[&str] = &[
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
];

pub(super) fn config(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("config", SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match sub {
        "get" => config_get(ctx, &args[2..]),
        "set" => config_set(ctx, args),
        "resetstat" => {
            reset_stats(ctx);
            OK
        }
        "rewrite" => config_rewrite(ctx),
        _ => help_reply("config", HELP),
    }
}

fn has_glob(p: &[u8]) -> bool {
    p.iter().any(|&c| c == b'*' || c == b'?' || c == b'[')
}

/// The value CONFIG GET shows for `name` (live values where the server keeps its own copy).
fn shown_value(ctx: &Ctx, name: &str, stored: String) -> String {
    match name {
        "notify-keyspace-events" => notify::format(ctx.srv.notify_flags),
        _ => stored,
    }
}

fn config_get(ctx: &mut Ctx, patterns: &[Bytes]) -> Reply {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for p in patterns {
        if !has_glob(p) {
            // An exact name is answered under the name as the client wrote it.
            let Ok(name) = std::str::from_utf8(p) else {
                continue;
            };
            let Some(spec) = crate::config::find(name) else {
                continue;
            };
            if !seen.insert(name.to_ascii_lowercase()) {
                continue;
            }
            let stored = ctx.srv.cfg.shown(spec.name);
            let v = shown_value(ctx, spec.name, stored);
            out.push((Reply::bulk_str(name), Reply::Bulk(Bytes::from(v))));
            continue;
        }
        for (name, stored) in ctx.srv.cfg.matching(p) {
            if !seen.insert(name.to_string()) {
                continue;
            }
            let canonical = crate::config::find(name).map_or(name, |o| o.name);
            let v = shown_value(ctx, canonical, stored);
            out.push((Reply::bulk_str(name), Reply::Bulk(Bytes::from(v))));
        }
    }
    Reply::Map(out)
}

/// `enable-protected-configs`: `yes` for every client, `local` for loopback connections only.
fn protected_allowed(ctx: &Ctx) -> bool {
    crate::exec::protected_action_allowed(ctx.srv, ctx.client, "enable-protected-configs")
}

fn set_failed(arg: &str, why: &str) -> Reply {
    Reply::Error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{arg}') - {why}"
    ))
}

/// CONFIG SET name value [name value ...]: all or nothing, with Redis 7.0's checks in its order
/// (unknown names, immutable/protected, duplicates first; then values).
fn config_set(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() % 2 == 1 {
        return Reply::err(err::SYNTAX);
    }
    let pairs: Vec<(String, String)> = args[2..]
        .chunks(2)
        .map(|p| {
            (
                String::from_utf8_lossy(&p[0]).into_owned(),
                String::from_utf8_lossy(&p[1]).into_owned(),
            )
        })
        .collect();
    // Phase 1: names.
    let mut specs: Vec<&'static crate::config::OptionSpec> = Vec::new();
    let mut first_error: Option<Reply> = None;
    for (i, (name, _)) in pairs.iter().enumerate() {
        let Some(spec) = crate::config::find(name) else {
            if first_error.is_none() {
                first_error = Some(Reply::Error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                )));
            }
            continue;
        };
        if first_error.is_some() {
            continue;
        }
        if !spec.mutable {
            first_error = Some(set_failed(name, "can't set immutable config"));
            continue;
        }
        if PROTECTED.contains(&spec.name) && !protected_allowed(ctx) {
            first_error = Some(set_failed(name, "can't set protected config"));
            continue;
        }
        // Redis's DENY_LOADING_CONFIG options, while the data set loads (`loading.rs`).
        if ctx.srv.loading.is_some()
            && matches!(spec.name, "dir" | "appendonly" | "repl-diskless-load")
        {
            first_error = Some(Reply::err(crate::loading::LOADING_ERR));
            continue;
        }
        // As Redis 7.0: a name given twice is refused, but an option and its alias
        // (`hash-max-ziplist-entries` and `hash-max-listpack-entries`) are two entries of
        // its table, so both are set, in order (the last wins).
        if pairs[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            first_error = Some(set_failed(name, "duplicate parameter"));
            continue;
        }
        specs.push(spec);
    }
    if let Some(e) = first_error {
        return e;
    }
    // Phase 2: values, on a copy so that a failure changes nothing.
    let mut cfg = ctx.srv.cfg.clone();
    let mut notify_flags = None;
    for (spec, (_, value)) in specs.iter().zip(&pairs) {
        let mut value = value.clone();
        match spec.name {
            "notify-keyspace-events" => match notify::parse(&value) {
                Some(f) => {
                    notify_flags = Some(f);
                    value = notify::format(f);
                }
                None => {
                    return set_failed(
                        spec.name,
                        "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
                    )
                }
            },
            "hz" => {
                if let Ok(v) = value.parse::<i64>() {
                    if v < 0 || v > i32::MAX as i64 {
                        return set_failed(
                            spec.name,
                            "argument must be between 0 and 2147483647 inclusive",
                        );
                    }
                    value = v.clamp(HZ_MIN, HZ_MAX).to_string();
                }
            }
            _ => {}
        }
        if let Err(e) = cfg.set(spec.name, &value) {
            return Reply::Error(format!("ERR {e}"));
        }
    }
    // As Redis: an option whose change cannot be applied fails the whole CONFIG SET, and
    // every option it named keeps its old value.
    let before = std::mem::replace(&mut ctx.srv.cfg, cfg);
    ctx.srv.config_changed();
    let mut failed = None;
    if ctx.srv.cfg.get("appendonly") != before.get("appendonly") {
        if let Err(e) = ctx.srv.with_persistence(|p, srv| p.appendonly_changed(srv)) {
            failed = Some(set_failed("appendonly", &e));
        }
    }
    if failed.is_none() && ctx.srv.cfg.get("appendfsync") != before.get("appendfsync") {
        if let Err(e) = ctx
            .srv
            .with_persistence(|p, srv| p.fsync_policy_changed(srv))
        {
            failed = Some(set_failed("appendfsync", &e));
        }
    }
    let oom_changed = ["oom-score-adj", "oom-score-adj-values"]
        .iter()
        .any(|n| ctx.srv.cfg.get(n) != before.get(n));
    if failed.is_none() && oom_changed && apply_oom_score_adj(&ctx.srv.cfg).is_err() {
        failed = Some(set_failed(
            "oom-score-adj",
            "Failed to set current oom_score_adj. Check server logs.",
        ));
    }
    let listen_changed = ["port", "bind"]
        .iter()
        .any(|n| ctx.srv.cfg.get(n) != before.get(n));
    if failed.is_none() && listen_changed {
        let (bind, port) = (ctx.srv.cfg.get("bind"), ctx.srv.cfg.get_i64("port") as u16);
        let backlog = ctx.srv.cfg.get_i64("tcp-backlog") as i32;
        if let Some(l) = ctx.srv.listeners.as_mut() {
            let previous = (before.get("bind"), before.get_i64("port") as u16);
            if l.rebind(bind, port, backlog, previous).is_err() {
                // Redis's texts: the port is named when it changed.
                failed = Some(if ctx.srv.cfg.get("port") != before.get("port") {
                    set_failed("port", "Unable to listen on this port. Check server logs.")
                } else {
                    set_failed("bind", "Failed to bind to specified addresses.")
                });
            }
        }
    }
    if let Some(reply) = failed {
        ctx.srv.cfg = before;
        ctx.srv.config_changed();
        if oom_changed {
            let _ = apply_oom_score_adj(&ctx.srv.cfg);
        }
        return reply;
    }
    // Runtime effects.
    if let Some(f) = notify_flags {
        ctx.srv.notify_flags = f;
    }
    // As Redis (updateGoodSlaves): a new min-replicas setting applies to the next write.
    if specs
        .iter()
        .any(|s| matches!(s.name, "min-replicas-to-write" | "min-replicas-max-lag"))
    {
        crate::master::refresh_good_slaves(ctx.srv, crate::util::now_ms());
    }
    if specs.iter().any(|s| s.name == "hz") {
        ctx.srv.hz = ctx.srv.cfg.get_i64("hz").clamp(HZ_MIN, HZ_MAX) as u64;
    }
    OK
}

/// CONFIG RESETSTAT: the counters INFO stats/commandstats/errorstats report.
fn reset_stats(ctx: &mut Ctx) {
    ctx.srv.stats = Stats::default();
    // Redis's resetServerStats: the replication counters of INFO stats too.
    let m = &mut ctx.srv.master;
    m.sync_full = 0;
    m.sync_partial_ok = 0;
    m.sync_partial_err = 0;
    if let Some((i, o)) = &ctx.srv.net_bytes {
        i.store(0, Ordering::Relaxed);
        o.store(0, Ordering::Relaxed);
    }
}

fn config_rewrite(ctx: &mut Ctx) -> Reply {
    if ctx.srv.cfg.file.is_none() {
        return Reply::err("ERR The server is running without a config file");
    }
    // Users are written as `user` lines unless they live in an aclfile (as Redis).
    let users = ctx
        .srv
        .cfg
        .get("aclfile")
        .is_empty()
        .then(|| crate::cmd::acl::config_user_lines(ctx.srv));
    match ctx.srv.cfg.rewrite_with_users(users) {
        Ok(()) => OK,
        Err(e) => Reply::Error(format!("ERR Rewriting config file: {e}")),
    }
}

/// The process's own `oom_score_adj` before Strongbox changed it (None: not changed), restored
/// when `oom-score-adj` goes back to `no`.
static OOM_SCORE_ADJ_BASE: Mutex<Option<i64>> = Mutex::new(None);
const OOM_SCORE_ADJ_PATH: &str = "/proc/self/oom_score_adj";
const OOM_SCORE_ADJ_MAX: i64 = 1000;

/// Apply `oom-score-adj` and `oom-score-adj-values` to this process, as Redis 7.0: `yes`
/// (`relative`) adds the class's value to the score the process had, `absolute` sets it, `no`
/// restores the score it had. The class is master's, or replica's under `replicaof`. Linux
/// only (elsewhere nothing is done); a failure is logged and reported.
pub(crate) fn apply_oom_score_adj(cfg: &crate::config::Config) -> Result<(), ()> {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let mut base = OOM_SCORE_ADJ_BASE.lock().unwrap_or_else(|e| e.into_inner());
    let mode = cfg.get("oom-score-adj");
    let value = if mode == "no" {
        match base.take() {
            Some(b) => b,
            None => return Ok(()),
        }
    } else {
        let b = match *base {
            Some(b) => b,
            None => {
                let read = std::fs::read_to_string(OOM_SCORE_ADJ_PATH)
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.trim().parse::<i64>().map_err(|e| e.to_string()));
                match read {
                    Ok(b) => *base.insert(b),
                    Err(e) => {
                        tracing::warn!("Unable to read oom_score_adj: {e}");
                        return Err(());
                    }
                }
            }
        };
        let class = usize::from(!cfg.get("replicaof").is_empty());
        let v: i64 = cfg
            .get("oom-score-adj-values")
            .split_whitespace()
            .nth(class)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let v = if mode == "absolute" { v } else { v + b };
        v.clamp(-OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MAX)
    };
    std::fs::write(OOM_SCORE_ADJ_PATH, value.to_string()).map_err(|e| {
        tracing::warn!("Unable to write oom_score_adj: {e}");
    })
}
