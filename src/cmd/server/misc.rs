//! SLOWLOG, MEMORY, LATENCY, MONITOR, LASTSAVE, ROLE, WAIT, DEBUG OBJECT and RELOAD.

use bytes::Bytes;

use super::{help_reply, sub_lookup, sub_syntax_error, Sub};
use crate::cmd::err;
use crate::cmd::flags::*;
use crate::ctx::Ctx;
use crate::resp::{Reply, OK};

/// Bytes MEMORY USAGE counts for every key besides what its key and value hold on the heap: the
/// 40-byte keyspace entry (inline key, value and object header) and its share of the index
/// (about 10 bytes per key; see docs/architecture.md, keyspace layout).
pub(super) const OBJECT_OVERHEAD_BYTES: usize = 50;

/// What one key costs (MEMORY USAGE, and the dataset estimate of INFO/MEMORY STATS).
pub(super) fn key_usage(
    k: &crate::types::compact::CompactBytes,
    o: &crate::keyspace::Object,
) -> usize {
    let value = match &o.value {
        // Short strings live inside the entry; longer ones own one allocation.
        crate::keyspace::Value::Str(s) => s.heap_size(),
        v => v.mem_usage(),
    };
    k.heap_size() + value + OBJECT_OVERHEAD_BYTES
}

/// SLOWLOG GET without a count.
const SLOWLOG_GET_DEFAULT: usize = 10;

/// MEMORY DOCTOR calls an instance this small "empty", as Redis does.
const DOCTOR_EMPTY_BYTES_MAX: u64 = 5 * 1024 * 1024;

pub(super) const SLOWLOG_SUBS: &[Sub] = &[
    ("get", -2, ADMIN | LOADING | STALE),
    ("len", 2, ADMIN | LOADING | STALE),
    ("reset", 2, ADMIN | LOADING | STALE),
    ("help", 2, LOADING | STALE),
];

pub(super) const MEMORY_SUBS: &[Sub] = &[
    ("doctor", 2, 0),
    ("malloc-stats", 2, 0),
    ("purge", 2, 0),
    ("stats", 2, 0),
    ("usage", -3, READONLY),
    ("help", 2, LOADING | STALE),
];

pub(super) const LATENCY_SUBS: &[Sub] = &[
    ("doctor", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("graph", 3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("histogram", -2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("history", 3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("latest", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("reset", -2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("help", 2, LOADING | STALE),
];

const SLOWLOG_HELP: &[&str] = &[
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
];

const MEMORY_HELP: &[&str] = &[
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
];

const LATENCY_HELP: &[&str] = &[
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
];

pub(super) fn slowlog(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("slowlog", SLOWLOG_SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match sub {
        "get" => {
            if args.len() > 3 {
                return sub_syntax_error("slowlog", &args[1]);
            }
            let count = match args.get(2) {
                None => SLOWLOG_GET_DEFAULT,
                Some(a) => match crate::util::parse_i64(a) {
                    Some(-1) => usize::MAX,
                    Some(n) if n >= 0 => n as usize,
                    _ => return Reply::err("ERR count should be greater than or equal to -1"),
                },
            };
            Reply::Array(
                ctx.srv
                    .slowlog
                    .iter()
                    .take(count)
                    .map(|e| {
                        Reply::Array(vec![
                            Reply::Int(e.id as i64),
                            Reply::Int(e.time_s),
                            Reply::Int(e.duration_us as i64),
                            Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                            Reply::bulk_str(&e.addr),
                            Reply::Bulk(e.name.clone()),
                        ])
                    })
                    .collect(),
            )
        }
        "len" => Reply::Int(ctx.srv.slowlog.len() as i64),
        "reset" => {
            ctx.srv.slowlog.clear();
            OK
        }
        _ => help_reply("slowlog", SLOWLOG_HELP),
    }
}

pub(super) fn memory(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("memory", MEMORY_SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match sub {
        "usage" => memory_usage(ctx, args),
        "doctor" => {
            let text = if super::info::dataset_bytes(ctx.srv) < DOCTOR_EMPTY_BYTES_MAX {
                "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
            } else {
                "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
            };
            Reply::Verbatim(Bytes::from_static(text.as_bytes()))
        }
        "malloc-stats" => Reply::Verbatim(Bytes::from_static(
            b"Stats not supported for the current allocator",
        )),
        "purge" => OK,
        "stats" => memory_stats(ctx),
        _ => help_reply("memory", MEMORY_HELP),
    }
}

fn memory_usage(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut j = 3;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"samples") && j + 1 < args.len() {
            match crate::util::parse_i64(&args[j + 1]) {
                None => return Reply::err(err::NOT_INT),
                Some(n) if n < 0 => return Reply::err(err::SYNTAX),
                Some(_) => {}
            }
            j += 2;
        } else {
            return Reply::err(err::SYNTAX);
        }
    }
    let key = &args[2];
    ctx.expire_if_needed(key);
    let db = ctx.client.db;
    let keys = &ctx.srv.dbs[db].keys;
    match keys.get_index_of(&key[..]).and_then(|i| keys.get_index(i)) {
        None => Reply::Nil,
        Some((k, o)) => Reply::Int(key_usage(k, o) as i64),
    }
}

fn memory_stats(ctx: &mut Ctx) -> Reply {
    let srv = &*ctx.srv;
    let rss = super::info::rss_bytes();
    let dataset = super::info::dataset_bytes(srv);
    let keys: usize = srv.dbs.iter().map(|d| d.len()).sum();
    let overhead = rss.saturating_sub(dataset);
    let int = |k: &str, v: u64| (Reply::bulk_str(k), Reply::Int(v as i64));
    let dbl = |k: &str, v: f64| (Reply::bulk_str(k), Reply::Double(v));
    let mut m = vec![
        int("peak.allocated", rss),
        int("total.allocated", rss),
        int("startup.allocated", 0),
        int("replication.backlog", 0),
        int("clients.slaves", 0),
        int(
            "clients.normal",
            srv.clients
                .values()
                .map(|c| c.shared.out_bytes() as u64)
                .sum(),
        ),
        int("cluster.links", 0),
        int("aof.buffer", 0),
        int("lua.caches", 0),
        int("functions.caches", 0),
    ];
    for (i, d) in srv.dbs.iter().enumerate() {
        if d.is_empty() {
            continue;
        }
        m.push((
            Reply::Bulk(Bytes::from(format!("db.{i}"))),
            Reply::Map(vec![
                int(
                    "overhead.hashtable.main",
                    (d.len() * OBJECT_OVERHEAD_BYTES) as u64,
                ),
                int("overhead.hashtable.expires", (d.expires.len() * 16) as u64),
            ]),
        ));
    }
    m.extend([
        int("overhead.total", overhead),
        int("keys.count", keys as u64),
        int(
            "keys.bytes-per-key",
            if keys == 0 { 0 } else { rss / keys as u64 },
        ),
        int("dataset.bytes", dataset),
        dbl(
            "dataset.percentage",
            dataset as f64 * 100.0 / rss.max(1) as f64,
        ),
        dbl("peak.percentage", 100.0),
        int("allocator.allocated", rss),
        int("allocator.active", rss),
        int("allocator.resident", rss),
        dbl("allocator-fragmentation.ratio", 1.0),
        int("allocator-fragmentation.bytes", 0),
        dbl("allocator.rss-ratio", 1.0),
        int("allocator.rss-bytes", 0),
        dbl("rss-overhead.ratio", 1.0),
        int("rss-overhead.bytes", 0),
        dbl("fragmentation", 1.0),
        int("fragmentation.bytes", 0),
    ]);
    Reply::Map(m)
}

/// LATENCY HISTOGRAM [command ...]: each command's (or subcommand's) calls and cumulative
/// latency distribution, from INFO latencystats' histograms. A container command names its
/// subcommands; unknown names are skipped.
fn latency_histogram(ctx: &mut Ctx, names: &[Bytes]) -> Reply {
    let per_cmd = &ctx.srv.stats.per_cmd;
    let mut wanted: Vec<&'static str> = if names.is_empty() {
        per_cmd.keys().copied().collect()
    } else {
        let mut v = Vec::new();
        for n in names {
            let n = String::from_utf8_lossy(n).to_ascii_lowercase();
            if n.contains('|') {
                v.extend(per_cmd.get_key_value(n.as_str()).map(|(k, _)| *k));
                continue;
            }
            let Some(spec) = crate::exec::lookup_command(n.as_bytes()) else {
                continue;
            };
            v.extend(per_cmd.keys().copied().filter(|k| {
                *k == spec.name
                    || k.strip_prefix(spec.name)
                        .is_some_and(|rest| rest.starts_with('|'))
            }));
        }
        v
    };
    if names.is_empty() {
        wanted.sort_unstable();
    }
    let entries = wanted
        .into_iter()
        .filter_map(|name| {
            let h = per_cmd.get(name)?.latency.as_deref()?;
            let cdf = h
                .cdf_usec()
                .into_iter()
                .map(|(us, n)| (Reply::Int(us as i64), Reply::Int(n as i64)))
                .collect();
            Some((
                Reply::bulk_str(name),
                Reply::Map(vec![
                    (Reply::bulk_str("calls"), Reply::Int(h.total() as i64)),
                    (Reply::bulk_str("histogram_usec"), Reply::Map(cdf)),
                ]),
            ))
        })
        .collect();
    Reply::Map(entries)
}

pub(super) fn latency(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("latency", LATENCY_SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let lat = &mut ctx.srv.latency;
    let sample = |t: i64, ms: u64| Reply::Array(vec![Reply::Int(t), Reply::Int(ms as i64)]);
    match sub {
        "latest" => Reply::Array(
            lat.names()
                .into_iter()
                .filter_map(|name| {
                    let s = &lat.events[name];
                    let last = s.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::bulk_str(name),
                        Reply::Int(last.time_s),
                        Reply::Int(last.latency_ms as i64),
                        Reply::Int(s.max_ms as i64),
                    ]))
                })
                .collect(),
        ),
        "history" => {
            let name = String::from_utf8_lossy(&args[2]);
            let series = lat.events.iter().find(|(k, _)| **k == name).map(|(_, s)| s);
            Reply::Array(series.map_or_else(Vec::new, |s| {
                s.samples
                    .iter()
                    .map(|x| sample(x.time_s, x.latency_ms))
                    .collect()
            }))
        }
        "reset" => {
            let names: Vec<String> = args[2..]
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Reply::Int(lat.reset(&names) as i64)
        }
        "histogram" => latency_histogram(ctx, &args[2..]),
        "graph" => {
            let name = String::from_utf8_lossy(&args[2]);
            match lat.events.iter().find(|(k, _)| **k == name) {
                Some((_, s)) if !s.samples.is_empty() => {
                    let high = s.samples.iter().map(|x| x.latency_ms).max().unwrap_or(0);
                    let low = s.samples.iter().map(|x| x.latency_ms).min().unwrap_or(0);
                    // Redis's header line; the ASCII chart under it is not drawn.
                    Reply::Verbatim(Bytes::from(format!(
                        "{name} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n",
                        s.max_ms,
                        "-".repeat(80)
                    )))
                }
                _ => Reply::Error(format!("ERR No samples available for event '{name}'")),
            }
        }
        "doctor" => Reply::Verbatim(Bytes::from(latency_doctor(ctx))),
        _ => help_reply("latency", LATENCY_HELP),
    }
}

/// LATENCY DOCTOR: Redis's opening sentences and, per event, its statistics line (without
/// Redis's advice section).
fn latency_doctor(ctx: &Ctx) -> String {
    if ctx.srv.hot.latency_monitor_threshold_ms == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    let lat = &ctx.srv.latency;
    if lat.events.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep tonight.\n".into();
    }
    let mut out = String::from(
        "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
    );
    for (i, name) in lat.names().into_iter().enumerate() {
        let s = &lat.events[name];
        let n = s.samples.len() as u64;
        if n == 0 {
            continue;
        }
        let sum: u64 = s.samples.iter().map(|x| x.latency_ms).sum();
        let avg = sum / n;
        let mad = s
            .samples
            .iter()
            .map(|x| x.latency_ms.abs_diff(avg))
            .sum::<u64>()
            / n;
        let first = s.samples.front().map_or(0, |x| x.time_s);
        let last = s.samples.back().map_or(0, |x| x.time_s);
        let period = if n > 1 {
            (last - first) as f64 / (n - 1) as f64
        } else {
            0.0
        };
        out.push_str(&format!(
            "{}. {name}: {n} latency spikes (average {avg}ms, mean deviation {mad}ms, period {period:.2} sec). Worst all time event {}ms.\n",
            i + 1,
            s.max_ms
        ));
    }
    out
}

/// MONITOR: from now on the client receives every command the server runs.
pub(super) fn monitor(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.in_exec {
        return Reply::err("ERR MONITOR isn't allowed for DENY BLOCKING client");
    }
    if ctx.client.monitor {
        // Already monitoring: Redis answers nothing.
        return Reply::Raw(Bytes::new());
    }
    ctx.client.monitor = true;
    let id = ctx.client.id;
    if !ctx.srv.monitors.contains(&id) {
        ctx.srv.monitors.push(id);
    }
    OK
}

pub(super) fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Int(ctx.srv.lastsave_s)
}

pub(super) fn role(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if let Some(r) = crate::replica::role_reply(ctx.srv) {
        return r;
    }
    crate::master::role_reply(ctx.srv)
}

/// WAIT numreplicas timeout: how many replicas acknowledged everything written so far,
/// waiting up to `timeout` ms for `numreplicas` of them (`master::wait`).
pub(super) fn wait(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(numreplicas) = crate::util::parse_i64(&args[1]) else {
        return Reply::err(err::NOT_INT);
    };
    let timeout = match super::client::parse_timeout_ms(&args[2]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    crate::master::wait(ctx, numreplicas, timeout)
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save the dataset to `dbfilename` (unless NOSAVE),
/// empty the databases (unless NOFLUSH), load the file back (as Redis does; the log is not
/// involved — the dataset is unchanged). Our loader always lets a loaded key replace an
/// existing one, which is MERGE; Redis without MERGE stops on such a key.
pub(super) fn debug_reload(ctx: &mut Ctx, opts: &[Bytes]) -> Reply {
    let (mut flush, mut save, mut merge) = (true, true, false);
    for o in opts {
        if o.eq_ignore_ascii_case(b"merge") {
            merge = true;
        } else if o.eq_ignore_ascii_case(b"noflush") {
            flush = false;
        } else if o.eq_ignore_ascii_case(b"nosave") {
            save = false;
        } else {
            return Reply::err(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            );
        }
    }
    if ctx.srv.snapshot.is_some() {
        return Reply::err("ERR Background save already in progress");
    }
    if save {
        if let Err(e) = crate::snapshot::save_to_dbfilename(ctx.srv) {
            return Reply::Error(format!("ERR Error trying to save the DB: {e}"));
        }
        // A save that succeeds clears a failed BGSAVE's status (Redis's rdbSave).
        ctx.srv.bgsave_failed = false;
    }
    let path = ctx.srv.cfg.dir().join(ctx.srv.cfg.get("dbfilename"));
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return Reply::Error(format!("ERR Error trying to load the RDB dump: {e}")),
    };
    if flush {
        for d in ctx.srv.dbs.iter_mut() {
            d.clear();
        }
        // Redis's emptyData: the libraries go too (the file has them), and tracking clients
        // are told every key is invalid.
        crate::cmd::function::clear(ctx.srv);
        crate::tracking::flushed(ctx.srv, Some(ctx.client));
    }
    // Clients are served meanwhile (-LOADING, or what Redis allows while loading).
    let size = file.metadata().map_or(0, |m| m.len());
    let loaded = crate::loading::while_serving(ctx.srv, size, |srv| {
        let input = std::io::BufReader::new(file);
        if flush {
            crate::snapshot::load_rdb(srv, input, true)
        } else {
            crate::snapshot::load_rdb_over(srv, input, merge)
        }
    });
    match loaded {
        Ok(_) => {
            ctx.srv.dirty = 0;
            ctx.srv.lastsave_s = crate::util::now_ms() / 1000;
            tracing::warn!("DB reloaded by DEBUG RELOAD");
            OK
        }
        Err(e) => {
            // Redis's reply; the cause goes to the log, as Redis's loader logs it.
            tracing::warn!("DEBUG RELOAD: {e}");
            Reply::err("ERR Error trying to load the RDB dump")
        }
    }
}

pub(super) fn debug_object(ctx: &mut Ctx, key: &[u8]) -> Reply {
    // As Redis (a plain dictionary lookup): a key past its TTL not yet deleted is shown.
    let db = ctx.client.db;
    let lru_clock = ctx.srv.lru_clock;
    let Some(o) = ctx.srv.dbs[db].keys.get(key) else {
        return Reply::err(err::NO_KEY);
    };
    let addr = o as *const _ as usize;
    let idle = lru_clock.wrapping_sub(o.lru()) & 0xFF_FFFF;
    // Redis adds the quicklist's shape for lists.
    let extra = match &o.value {
        crate::keyspace::Value::List(l) => format!(
            " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:{} ql_uncompressed_size:{}",
            l.node_count(),
            l.len() as f64 / l.node_count().max(1) as f64,
            l.fill(),
            u8::from(l.compress_depth() != 0),
            l.uncompressed_size()
        ),
        _ => String::new(),
    };
    Reply::StatusOwned(format!(
        "Value at:{:#x} refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}{}",
        addr,
        o.value.encoding(),
        o.value.mem_usage(),
        o.lru(),
        idle,
        extra
    ))
}
