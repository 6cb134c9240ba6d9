//! INFO [section ...]: the sections and fields of Redis 7.0 (`# Server\r\nredis_version:…`), plus
//! `strongbox_version`. Process figures (RSS, CPU) come from /proc on Linux and read as 0
//! elsewhere.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;

use crate::ctx::Ctx;
use crate::exec::Server;
use crate::resp::Reply;

/// Sections `INFO` (no argument) and `INFO default` print.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "module_list",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Keys sampled per database to estimate `avg_ttl` (Redis estimates it too).
const AVG_TTL_SAMPLE_KEYS_MAX: usize = 1000;
/// Minimum interval between two samples of `instantaneous_ops_per_sec`.
const OPS_SAMPLE_INTERVAL_MS: u128 = 100;

/// Which sections a request asked for.
pub(super) struct Selection {
    all: bool,
    names: Vec<String>,
}

impl Selection {
    pub(super) fn parse(args: &[Bytes]) -> Selection {
        let mut sel = Selection {
            all: false,
            names: Vec::new(),
        };
        if args.is_empty() {
            sel.names = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
            return sel;
        }
        for a in args {
            let a = String::from_utf8_lossy(a).to_ascii_lowercase();
            match a.as_str() {
                "all" | "everything" => sel.all = true,
                "default" => sel
                    .names
                    .extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
                _ => sel.names.push(a),
            }
        }
        sel
    }

    fn wants(&self, name: &str) -> bool {
        self.all || self.names.iter().any(|n| n == name)
    }
}

pub(super) fn info(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sel = Selection::parse(&args[1..]);
    let text = gen_info(ctx, &sel);
    Reply::Verbatim(Bytes::from(text))
}

/// Redis's `bytesToHuman`.
pub(super) fn bytes_to_human(n: u64) -> String {
    let d = n as f64;
    const K: f64 = 1024.0;
    if n < 1024 {
        format!("{n}B")
    } else if d < K * K {
        format!("{:.2}K", d / K)
    } else if d < K * K * K {
        format!("{:.2}M", d / (K * K))
    } else if d < K * K * K * K {
        format!("{:.2}G", d / (K * K * K))
    } else if d < K * K * K * K * K {
        format!("{:.2}T", d / (K * K * K * K))
    } else {
        format!("{:.2}P", d / (K * K * K * K * K))
    }
}

/// Resident set size of this process in bytes (0 if unknown), from `VmRSS` in
/// /proc/self/status (in kB, so independent of the page size, unlike /proc/self/statm).
pub(super) fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn total_system_memory() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// (user, system, children user, children system) CPU seconds from a /proc stat file.
fn cpu_times(path: &str) -> (f64, f64, f64, f64) {
    let Ok(s) = std::fs::read_to_string(path) else {
        return (0.0, 0.0, 0.0, 0.0);
    };
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = match s.rfind(')') {
        Some(p) => &s[p + 1..],
        None => return (0.0, 0.0, 0.0, 0.0),
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is f[0]; utime is field 14 → f[11].
    let tick = |i: usize| -> f64 {
        f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / CLOCK_TICKS_PER_SECOND
    };
    (tick(11), tick(12), tick(13), tick(14))
}

/// USER_HZ on Linux is 100 on every architecture the kernel exports to user space.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn random_hex40() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// The run id (random per process, as Redis).
pub(super) fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(random_hex40)
}

fn os_string() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let sys = read("/proc/sys/kernel/ostype");
    let rel = read("/proc/sys/kernel/osrelease");
    let sys = if sys.is_empty() {
        std::env::consts::OS.to_string()
    } else {
        sys
    };
    format!("{} {} {}", sys, rel, std::env::consts::ARCH)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `instantaneous_ops_per_sec`: commands per second since the previous sample.
fn instantaneous_ops(total: u64) -> u64 {
    static SAMPLE: Mutex<Option<(Instant, u64, u64)>> = Mutex::new(None);
    let mut g = SAMPLE.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    match *g {
        None => {
            *g = Some((now, total, 0));
            0
        }
        Some((t, prev, last_rate)) => {
            let ms = now.duration_since(t).as_millis();
            if ms < OPS_SAMPLE_INTERVAL_MS {
                return last_rate;
            }
            let rate = (total.saturating_sub(prev) as u128 * 1000 / ms.max(1)) as u64;
            *g = Some((now, total, rate));
            rate
        }
    }
}

/// Average remaining TTL (ms) over a sample of keys with an expiry, as Redis's estimate.
fn avg_ttl(srv: &Server, db: usize, now_ms: i64) -> i64 {
    let exp = &srv.dbs[db].expires;
    if exp.is_empty() {
        return 0;
    }
    let mut sum: i128 = 0;
    let mut n: i128 = 0;
    for (_, &at) in exp.iter().take(AVG_TTL_SAMPLE_KEYS_MAX) {
        let ttl = at - now_ms;
        if ttl > 0 {
            sum += ttl as i128;
            n += 1;
        }
    }
    if n == 0 {
        0
    } else {
        (sum / n) as i64
    }
}

/// Lines of one section.
struct Section {
    out: String,
}

impl Section {
    fn kv(&mut self, k: &str, v: impl std::fmt::Display) {
        let _ = write!(self.out, "{k}:{v}\r\n");
    }
}

fn gen_info(ctx: &mut Ctx, sel: &Selection) -> String {
    let mut out = String::new();
    let mut sections = 0;
    let mut begin = |out: &mut String, title: &str| {
        if sections > 0 {
            out.push_str("\r\n");
        }
        sections += 1;
        out.push_str("# ");
        out.push_str(title);
        out.push_str("\r\n");
    };
    let now_ms = ctx.now_ms;
    let srv = &*ctx.srv;
    let caller = &*ctx.client;
    let uptime_s = srv.start.elapsed().as_secs();

    if sel.wants("server") {
        begin(&mut out, "Server");
        let mut s = Section { out: String::new() };
        s.kv("redis_version", crate::REDIS_COMPAT_VERSION);
        s.kv("strongbox_version", crate::STRONGBOX_VERSION);
        s.kv("redis_git_sha1", "00000000");
        s.kv("redis_git_dirty", 0);
        s.kv("redis_build_id", "0");
        s.kv("redis_mode", "standalone");
        s.kv("os", os_string());
        s.kv("arch_bits", usize::BITS);
        s.kv("monotonic_clock", "POSIX clock_gettime");
        s.kv("multiplexing_api", "epoll");
        s.kv("atomicvar_api", "c11-builtin");
        s.kv("gcc_version", "0.0.0");
        s.kv("process_id", std::process::id());
        s.kv("process_supervised", "no");
        s.kv("run_id", run_id());
        s.kv("tcp_port", srv.cfg.get("port"));
        s.kv("server_time_usec", crate::util::now_us());
        s.kv("uptime_in_seconds", uptime_s);
        s.kv("uptime_in_days", uptime_s / 86400);
        s.kv("hz", srv.hz);
        s.kv("configured_hz", srv.cfg.get("hz"));
        s.kv("lru_clock", srv.lru_clock);
        s.kv(
            "executable",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        s.kv(
            "config_file",
            srv.cfg
                .file
                .as_ref()
                .map(|p| {
                    std::fs::canonicalize(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                })
                .unwrap_or_default(),
        );
        s.kv("io_threads_active", 0);
        if let Some(deadline) = srv.shutdown_deadline_ms {
            s.kv("shutdown_in_milliseconds", deadline - crate::util::now_ms());
        }
        out.push_str(&s.out);
    }

    if sel.wants("clients") {
        begin(&mut out, "Clients");
        let mut s = Section { out: String::new() };
        let others = || srv.clients.values();
        // As Redis: replicas are not counted (they have their own section).
        let connected = srv.clients.len() + 1 - others().filter(|c| c.is_replica).count();
        let blocked = others().filter(|c| c.blocked.is_some()).count()
            + usize::from(caller.blocked.is_some());
        let pubsub = others()
            .filter(|c| c.sub_count() + c.ssubs.len() > 0)
            .count()
            + usize::from(caller.sub_count() + caller.ssubs.len() > 0);
        let watching = others().filter(|c| !c.watched.is_empty()).count()
            + usize::from(!caller.watched.is_empty());
        let in_timeout = others()
            .filter(|c| c.blocked.as_ref().is_some_and(|b| b.deadline_ms.is_some()))
            .count();
        let max_in = others()
            .map(|c| c.shared.qbuf_bytes.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let max_out = others().map(|c| c.shared.out_bytes()).max().unwrap_or(0);
        s.kv("connected_clients", connected);
        s.kv("cluster_connections", 0);
        s.kv("maxclients", srv.cfg.get("maxclients"));
        s.kv("client_recent_max_input_buffer", max_in);
        s.kv("client_recent_max_output_buffer", max_out);
        s.kv("blocked_clients", blocked);
        s.kv("tracking_clients", srv.tracking.clients);
        s.kv("pubsub_clients", pubsub);
        s.kv("watching_clients", watching);
        s.kv("clients_in_timeout_table", in_timeout);
        s.kv("total_watched_keys", srv.watched.len());
        s.kv("total_blocking_keys", srv.blocking.len());
        out.push_str(&s.out);
    }

    if sel.wants("memory") {
        begin(&mut out, "Memory");
        let mut s = Section { out: String::new() };
        let rss = rss_bytes();
        // The allocator's count (Redis's zmalloc count); RSS where it is not counted (the
        // library without the server's allocator, in unit tests).
        // `used_memory` leaves out the unused slots of the keyspace's tables (as Redis's
        // zmalloc count leaves out its allocator's free slab regions): they are in
        // `allocator_active` (everything allocated) and its fragmentation figures.
        let allocated = crate::alloc::allocated_bytes() as u64;
        let used = match allocated {
            0 => rss,
            _ => crate::evict::used_memory(srv),
        };
        let active = allocated.max(used);
        let peak = peak_memory(used);
        let dataset: u64 = dataset_bytes(srv);
        let maxmem = srv.cfg.get_i64("maxmemory").max(0) as u64;
        let sysmem = total_system_memory();
        s.kv("used_memory", used);
        s.kv("used_memory_human", bytes_to_human(used));
        s.kv("used_memory_rss", rss);
        s.kv("used_memory_rss_human", bytes_to_human(rss));
        s.kv("used_memory_peak", peak);
        s.kv("used_memory_peak_human", bytes_to_human(peak));
        s.kv(
            "used_memory_peak_perc",
            format!("{:.2}%", used as f64 * 100.0 / peak.max(1) as f64),
        );
        let overhead = used.saturating_sub(dataset);
        s.kv("used_memory_overhead", overhead);
        s.kv("used_memory_startup", startup_memory(used));
        s.kv("used_memory_dataset", dataset);
        s.kv(
            "used_memory_dataset_perc",
            format!("{:.2}%", dataset as f64 * 100.0 / used.max(1) as f64),
        );
        s.kv("allocator_allocated", used);
        s.kv("allocator_active", active);
        s.kv("allocator_resident", rss);
        s.kv("total_system_memory", sysmem);
        s.kv("total_system_memory_human", bytes_to_human(sysmem));
        let lua = crate::cmd::scripting::lua_memory(srv);
        let scripts = crate::cmd::scripting::cached_bytes(srv);
        s.kv("used_memory_lua", lua);
        s.kv("used_memory_vm_eval", lua);
        s.kv("used_memory_lua_human", bytes_to_human(lua as u64));
        s.kv("used_memory_scripts_eval", scripts);
        s.kv(
            "number_of_cached_scripts",
            crate::cmd::scripting::cached_scripts(srv),
        );
        let (libs, funcs) = crate::cmd::function::counts(srv);
        let (fn_vm, fn_code) = crate::cmd::function::memory(srv);
        s.kv("number_of_functions", funcs);
        s.kv("number_of_libraries", libs);
        s.kv("used_memory_vm_functions", fn_vm);
        s.kv("used_memory_vm_total", lua + fn_vm);
        s.kv(
            "used_memory_vm_total_human",
            bytes_to_human((lua + fn_vm) as u64),
        );
        s.kv("used_memory_functions", fn_code);
        s.kv("used_memory_scripts", scripts);
        s.kv("used_memory_scripts_human", bytes_to_human(scripts as u64));
        s.kv("maxmemory", maxmem);
        s.kv("maxmemory_human", bytes_to_human(maxmem));
        s.kv("maxmemory_policy", srv.cfg.get("maxmemory-policy"));
        s.kv(
            "allocator_frag_ratio",
            format!("{:.2}", active as f64 / used.max(1) as f64),
        );
        s.kv("allocator_frag_bytes", active - used);
        s.kv("allocator_rss_ratio", "1.00");
        s.kv("allocator_rss_bytes", 0);
        s.kv("rss_overhead_ratio", "1.00");
        s.kv("rss_overhead_bytes", 0);
        s.kv("mem_fragmentation_ratio", "1.00");
        s.kv("mem_fragmentation_bytes", 0);
        s.kv(
            "mem_not_counted_for_evict",
            crate::evict::not_counted_for_evict(srv),
        );
        let repl = crate::master::repl_memory(srv);
        s.kv("mem_replication_backlog", repl.backlog);
        s.kv("mem_total_replication_buffers", repl.total);
        s.kv("mem_clients_slaves", repl.replicas);
        // Normal and pub/sub clients (this one too), as `maxmemory-clients` counts them
        // (`cevict`).
        let clients_mem: usize = srv
            .clients
            .values()
            .map(|c| &**c)
            .chain(std::iter::once(caller))
            .filter(|c| !c.is_replica && !c.is_master)
            .map(|c| crate::cevict::client_mem(c, c.mem_argv))
            .sum();
        s.kv("mem_clients_normal", clients_mem);
        s.kv("mem_cluster_links", 0);
        let aof_buffer = match srv.log.sink() {
            Some(_) => srv.log.memory_bytes(),
            None => 0,
        };
        s.kv("mem_aof_buffer", aof_buffer);
        s.kv("mem_allocator", "libc");
        s.kv("active_defrag_running", 0);
        s.kv("lazyfree_pending_objects", 0);
        s.kv("lazyfreed_objects", 0);
        out.push_str(&s.out);
    }

    if sel.wants("persistence") {
        begin(&mut out, "Persistence");
        let mut s = Section { out: String::new() };
        let mut fields = srv.persistence.info(srv);
        if let Some(l) = &srv.loading {
            // Redis's loading_* come last; before our own strongbox_* fields.
            let at = fields
                .iter()
                .position(|(k, _)| k.starts_with("strongbox_"))
                .unwrap_or(fields.len());
            fields.splice(at..at, l.info_fields());
        }
        for (k, v) in fields {
            s.kv(&k, v);
        }
        out.push_str(&s.out);
    }

    if sel.wants("stats") {
        begin(&mut out, "Stats");
        let mut s = Section { out: String::new() };
        let st = &srv.stats;
        let (net_in, net_out) = match &srv.net_bytes {
            Some((i, o)) => (i.load(Ordering::Relaxed), o.load(Ordering::Relaxed)),
            None => (st.net_input_bytes, st.net_output_bytes),
        };
        s.kv("total_connections_received", st.total_connections);
        s.kv("total_commands_processed", st.total_commands);
        s.kv(
            "instantaneous_ops_per_sec",
            instantaneous_ops(st.total_commands),
        );
        s.kv("total_net_input_bytes", net_in);
        s.kv("total_net_output_bytes", net_out);
        s.kv("total_net_repl_input_bytes", 0);
        s.kv("total_net_repl_output_bytes", 0);
        s.kv("instantaneous_input_kbps", "0.00");
        s.kv("instantaneous_output_kbps", "0.00");
        s.kv("instantaneous_input_repl_kbps", "0.00");
        s.kv("instantaneous_output_repl_kbps", "0.00");
        s.kv("rejected_connections", st.rejected_connections);
        s.kv("sync_full", srv.master.sync_full);
        s.kv("sync_partial_ok", srv.master.sync_partial_ok);
        s.kv("sync_partial_err", srv.master.sync_partial_err);
        s.kv("expired_keys", st.expired_keys);
        s.kv(
            "expired_stale_perc",
            format!("{:.2}", st.expired_stale_perc * 100.0),
        );
        s.kv("expired_time_cap_reached_count", 0);
        s.kv("expire_cycle_cpu_milliseconds", 0);
        s.kv("evicted_keys", st.evicted_keys);
        s.kv("evicted_clients", st.evicted_clients);
        s.kv("total_eviction_exceeded_time", 0);
        s.kv("current_eviction_exceeded_time", 0);
        s.kv("keyspace_hits", st.keyspace_hits);
        s.kv("keyspace_misses", st.keyspace_misses);
        s.kv("pubsub_channels", srv.pubsub.channels.len());
        s.kv("pubsub_patterns", srv.pubsub.patterns.len());
        s.kv("pubsubshard_channels", srv.pubsub.shard_channels.len());
        s.kv("latest_fork_usec", 0);
        s.kv("total_forks", 0);
        s.kv("migrate_cached_sockets", srv.migrate.len());
        s.kv("slave_expires_tracked_keys", 0);
        s.kv("active_defrag_hits", 0);
        s.kv("active_defrag_misses", 0);
        s.kv("active_defrag_key_hits", 0);
        s.kv("active_defrag_key_misses", 0);
        s.kv("total_active_defrag_time", 0);
        s.kv("current_active_defrag_time", 0);
        s.kv("tracking_total_keys", srv.tracking.total_keys());
        s.kv("tracking_total_items", srv.tracking.total_items());
        s.kv("tracking_total_prefixes", srv.tracking.total_prefixes());
        s.kv("unexpected_error_replies", st.unexpected_error_replies);
        s.kv("total_error_replies", st.total_error_replies);
        s.kv("dump_payload_sanitizations", 0);
        s.kv("total_reads_processed", st.total_commands);
        s.kv("total_writes_processed", st.total_commands);
        s.kv("io_threaded_reads_processed", 0);
        s.kv("io_threaded_writes_processed", 0);
        s.kv("reply_buffer_shrinks", 0);
        s.kv("reply_buffer_expands", 0);
        out.push_str(&s.out);
    }

    if sel.wants("replication") {
        begin(&mut out, "Replication");
        let mut s = Section { out: String::new() };
        let mut upstream = None;
        match crate::replica::info_fields(srv) {
            Some(fields) => {
                for (k, v) in fields {
                    s.kv(&k, v);
                }
                // With a backlog, ours are the master's (proxied stream): shown as they are.
                if let Some(r) = srv
                    .replica
                    .as_ref()
                    .filter(|_| srv.master.backlog.is_none())
                {
                    let replid = if r.master_replid.is_empty() {
                        srv.master.replid.clone()
                    } else {
                        r.master_replid.clone()
                    };
                    upstream = Some((replid, r.offset.max(0)));
                }
            }
            None => s.kv("role", "master"),
        }
        for (k, v) in crate::master::info_fields(srv, upstream) {
            s.kv(&k, v);
        }
        out.push_str(&s.out);
    }

    if sel.wants("cpu") {
        begin(&mut out, "CPU");
        let mut s = Section { out: String::new() };
        let (u, sy, cu, cs) = cpu_times("/proc/self/stat");
        // INFO runs on the execution thread, Strongbox's "main thread".
        let (tu, ts, _, _) = cpu_times("/proc/thread-self/stat");
        s.kv("used_cpu_sys", format!("{sy:.6}"));
        s.kv("used_cpu_user", format!("{u:.6}"));
        s.kv("used_cpu_sys_children", format!("{cs:.6}"));
        s.kv("used_cpu_user_children", format!("{cu:.6}"));
        s.kv("used_cpu_sys_main_thread", format!("{ts:.6}"));
        s.kv("used_cpu_user_main_thread", format!("{tu:.6}"));
        out.push_str(&s.out);
    }

    if sel.wants("module_list") || sel.wants("modules") {
        begin(&mut out, "Modules");
    }

    if sel.wants("commandstats") {
        begin(&mut out, "Commandstats");
        let mut s = Section { out: String::new() };
        let mut names: Vec<_> = srv.stats.per_cmd.iter().collect();
        names.sort_by_key(|(n, _)| **n);
        for (name, st) in names {
            let (calls, usec, rejected, failed) = (st.calls, st.usec, st.rejected, st.failed);
            if calls == 0 && rejected == 0 && failed == 0 {
                continue;
            }
            let per = if calls == 0 {
                0.0
            } else {
                usec as f64 / calls as f64
            };
            s.kv(
                &format!("cmdstat_{name}"),
                format!(
                    "calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}"
                ),
            );
        }
        out.push_str(&s.out);
    }

    if sel.wants("errorstats") {
        begin(&mut out, "Errorstats");
        let mut s = Section { out: String::new() };
        let mut errs: Vec<(&String, &u64)> = srv.stats.error_counts.iter().collect();
        errs.sort();
        for (code, n) in errs {
            s.kv(&format!("errorstat_{code}"), format!("count={n}"));
        }
        out.push_str(&s.out);
    }

    if sel.wants("latencystats") {
        begin(&mut out, "Latencystats");
        let percentiles: Vec<(&str, f64)> = srv
            .cfg
            .get("latency-tracking-info-percentiles")
            .split_whitespace()
            .filter_map(|p| Some((p, p.parse().ok()?)))
            .collect();
        let mut names: Vec<_> = srv
            .stats
            .per_cmd
            .iter()
            .filter_map(|(n, st)| Some((*n, st.latency.as_deref()?)))
            .collect();
        names.sort_by_key(|(n, _)| *n);
        for (name, h) in names {
            let _ = write!(out, "latency_percentiles_usec_{name}:");
            for (i, (text, p)) in percentiles.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = h.value_at_percentile_ns(*p) as f64 / 1000.0;
                let _ = write!(out, "p{text}={v:.3}");
            }
            out.push_str("\r\n");
        }
    }

    if sel.wants("cluster") {
        begin(&mut out, "Cluster");
        out.push_str("cluster_enabled:0\r\n");
    }

    if sel.wants("keyspace") {
        begin(&mut out, "Keyspace");
        let mut s = Section { out: String::new() };
        for (i, db) in srv.dbs.iter().enumerate() {
            if db.is_empty() {
                continue;
            }
            s.kv(
                &format!("db{i}"),
                format!(
                    "keys={},expires={},avg_ttl={}",
                    db.len(),
                    db.expires.len(),
                    avg_ttl(srv, i, now_ms)
                ),
            );
        }
        out.push_str(&s.out);
    }
    out
}

/// Approximate bytes held by keys and values (the dataset part of `used_memory`).
pub(super) fn dataset_bytes(srv: &Server) -> u64 {
    // Walking every value would make INFO O(dataset): estimate from the key count and a sample.
    const SAMPLE_KEYS_MAX: usize = 64;
    let mut total: u64 = 0;
    for db in &srv.dbs {
        let n = db.len();
        if n == 0 {
            continue;
        }
        let take = n.min(SAMPLE_KEYS_MAX);
        let sampled: u64 = db
            .keys
            .iter()
            .take(take)
            .map(|(k, o)| super::misc::key_usage(k, o) as u64)
            .sum();
        total += sampled * n as u64 / take as u64;
    }
    total
}

fn peak_memory(now: u64) -> u64 {
    static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    PEAK.fetch_max(now, Ordering::Relaxed).max(now)
}

fn startup_memory(now: u64) -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| now)
}

/// Field names of `text` (lines `name:value`), for tests.
#[cfg(test)]
fn fields(text: &str) -> Vec<&str> {
    text.split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_on_linux() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(rss_bytes() > 0);
            assert!(total_system_memory() > rss_bytes());
        }
    }

    #[test]
    fn human_sizes_as_redis() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(916384), "894.91K");
        assert_eq!(bytes_to_human(12193792), "11.63M");
        assert_eq!(bytes_to_human(25276063744), "23.54G");
    }

    #[test]
    fn selection_rules() {
        let s = Selection::parse(&[]);
        assert!(s.wants("server") && s.wants("keyspace") && !s.wants("commandstats"));
        let s = Selection::parse(&[Bytes::from_static(b"CPU")]);
        assert!(s.wants("cpu") && !s.wants("server"));
        let s = Selection::parse(&[Bytes::from_static(b"all")]);
        assert!(s.wants("commandstats") && s.wants("latencystats"));
        let s = Selection::parse(&[
            Bytes::from_static(b"default"),
            Bytes::from_static(b"commandstats"),
        ]);
        assert!(s.wants("commandstats") && s.wants("memory") && !s.wants("latencystats"));
    }

    #[test]
    fn cpu_times_parse_names_with_spaces() {
        let dir = std::env::temp_dir().join(format!("sb-info-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("stat");
        std::fs::write(
            &p,
            "123 (a b) R 1 1 1 0 -1 0 0 0 0 0 250 150 20 10 20 0 1 0 0 0 0\n",
        )
        .unwrap();
        let (u, s, cu, cs) = cpu_times(p.to_str().unwrap());
        assert_eq!((u, s, cu, cs), (2.5, 1.5, 0.2, 0.1));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(fields("# A\r\na:1\r\nb:x:y\r\n\r\n# B\r\n"), vec!["a", "b"]);
    }
}
