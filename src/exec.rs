//! The execution thread: it owns the keyspace and runs commands in arrival order, so every
//! command and every MULTI/EXEC is atomic. Connections (tokio tasks on other threads) parse RESP
//! and send batches of commands here; replies go back on each connection's channel tagged with the
//! log position they must wait for (see `durability`).
//!
//! One *round* = handle up to `EXECUTOR_ROUND_MESSAGES_MAX` messages, run timers (active expiry,
//! blocked-client timeouts, idle clients), then submit the round's log bytes to the log writer and
//! send the round's replies. The thread never waits for the disk.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexSet;

use crate::client::{Client, ClientId, ExecReceiver, Msg};
use crate::cmd::{self, arity_error, flags, CommandSpec};
use crate::config::Config;
use crate::ctx::{notify, Ctx};
use crate::durability::Durability;
use crate::keyspace::Db;
use crate::limits::{ACTIVE_EXPIRE_KEYS_PER_LOOP, EXECUTOR_ROUND_MESSAGES_MAX};
use crate::resp::Reply;
use crate::util::{glob_match, now_ms, now_us};

#[derive(Default)]
pub struct Stats {
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub total_commands: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    /// Clients closed by `maxmemory-clients` (`cevict`).
    pub evicted_clients: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub pubsub_messages: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub total_error_replies: u64,
    pub unexpected_error_replies: u64,
    /// Per command, or subcommand by its full name ("config|set"). Updated on every command:
    /// Fx-hashed.
    pub per_cmd: HashMap<&'static str, CmdStat, FxBuild>,
    pub error_counts: HashMap<String, u64>,
    pub expired_stale_perc: f64,
}

/// One command's line in INFO commandstats, and its latency histogram (INFO latencystats,
/// while `latency-tracking` is on).
#[derive(Default)]
pub struct CmdStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
    pub latency: Option<Box<crate::histogram::Histogram>>,
}

impl CmdStat {
    /// A completed call (served, failed, or unblocked) that ran for `usec`.
    fn add_call(&mut self, usec: u64, failed: bool, track_latency: bool) {
        self.calls += 1;
        self.usec += usec;
        if failed {
            self.failed += 1;
        }
        if track_latency {
            self.latency
                .get_or_insert_with(Default::default)
                .record_us(usec);
        }
    }
}

/// FxHash (rustc's): a multiply-rotate hash for short trusted keys such as command names. Only
/// for maps whose keys clients cannot choose freely (no HashDoS exposure).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// Command lookup on the per-command path: open addressing over the command table, keyed by the
/// ASCII-lowercased name, with FNV-1a folded in while lowercasing (no copy, no SipHash).
struct CommandIndex {
    slots: Vec<Option<&'static CommandSpec>>,
    mask: usize,
}

impl CommandIndex {
    fn build() -> CommandIndex {
        let all = &cmd::table().all;
        let size = (all.len() * 4).next_power_of_two().max(64);
        let mut slots = vec![None; size];
        let mask = size - 1;
        for &spec in all {
            let mut i = Self::hash(spec.name.as_bytes()) as usize & mask;
            while slots[i].is_some() {
                i = (i + 1) & mask;
            }
            slots[i] = Some(spec);
        }
        CommandIndex { slots, mask }
    }

    #[inline]
    fn hash(name: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &c in name {
            h = (h ^ c.to_ascii_lowercase() as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    #[inline]
    fn get(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        let mut i = Self::hash(name) as usize & self.mask;
        loop {
            let spec = self.slots[i]?;
            if spec.name.as_bytes().eq_ignore_ascii_case(name) {
                return Some(spec);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// The command a client's `argv[0]` names (same answers as `cmd::table().get`).
pub fn lookup_command(name: &[u8]) -> Option<&'static CommandSpec> {
    static INDEX: std::sync::OnceLock<CommandIndex> = std::sync::OnceLock::new();
    INDEX.get_or_init(CommandIndex::build).get(name)
}

/// `rename-command` directives, set once at start: lower-case name → the original command it now
/// names (Some) or nothing (None: a command renamed away or removed).
static RENAMED: std::sync::OnceLock<HashMap<Vec<u8>, Option<Bytes>>> = std::sync::OnceLock::new();

/// Install the config file's `rename-command` directives ((command, new name or "") in file
/// order; validated by the config loader). Clients then reach a renamed command only under its
/// new name; `argv[0]` is rewritten to the original name before dispatch, so MULTI queues, the
/// AOF and replay only ever see original names.
pub fn set_renamed_commands(list: &[(String, String)]) {
    if list.is_empty() {
        return;
    }
    let mut map = HashMap::new();
    for (from, to) in list {
        map.insert(from.to_ascii_lowercase().into_bytes(), None);
        if !to.is_empty() {
            map.insert(
                to.to_ascii_lowercase().into_bytes(),
                Some(Bytes::from(from.to_ascii_lowercase())),
            );
        }
    }
    let _ = RENAMED.set(map);
}

/// Apply `rename-command` to a client's argv; false if argv[0] names no command any more.
#[inline]
pub(crate) fn apply_renames(argv: &mut [Bytes]) -> bool {
    let (Some(map), Some(first)) = (RENAMED.get(), argv.first_mut()) else {
        return true;
    };
    match map.get(&first.to_ascii_lowercase()) {
        None => true,
        Some(None) => false,
        Some(Some(original)) => {
            *first = original.clone();
            true
        }
    }
}

/// The original command a client's `name` reaches under `rename-command` (as COMMAND INFO,
/// DOCS and GETKEYS resolve it): `Some(name)` itself when no directive touches it, the original
/// name for a new name, `None` for a name renamed away or removed.
pub fn resolve_renamed(name: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let Some(map) = RENAMED.get() else {
        return Some(std::borrow::Cow::Borrowed(name));
    };
    match map.get(&name.to_ascii_lowercase()) {
        None => Some(std::borrow::Cow::Borrowed(name)),
        Some(None) => None,
        Some(Some(original)) => Some(std::borrow::Cow::Owned(original.to_vec())),
    }
}

/// Whether the command originally called `name` (lower case) can still be called, under its
/// name or a new one; COMMAND, COMMAND COUNT and COMMAND LIST leave removed commands out.
pub fn command_reachable(name: &str) -> bool {
    let Some(map) = RENAMED.get() else {
        return true;
    };
    !matches!(map.get(name.as_bytes()), Some(None))
        || map.values().any(|o| o.as_deref() == Some(name.as_bytes()))
}

pub struct SlowEntry {
    pub id: u64,
    pub time_s: i64,
    pub duration_us: u64,
    pub argv: Vec<Bytes>,
    pub addr: String,
    pub name: Bytes,
}

#[derive(Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, IndexSet<ClientId>>,
    pub patterns: HashMap<Bytes, IndexSet<ClientId>>,
    pub shard_channels: HashMap<Bytes, IndexSet<ClientId>>,
}

/// Shutdown request from SHUTDOWN or a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    Default,
    Save,
    NoSave,
}

/// Config values read on the per-command path, parsed once from `cfg` (a `BTreeMap` lookup and a
/// parse per command cost more than a whole GET). `Server::config_changed` refreshes them; CONFIG
/// SET calls it after changing `cfg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotConfig {
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: i64,
    pub proto_max_bulk_len: i64,
    pub list_max_listpack_size: i64,
    pub list_compress_depth: i64,
    pub hash_max_listpack_entries: i64,
    pub hash_max_listpack_value: i64,
    pub set_max_intset_entries: i64,
    pub zset_max_listpack_entries: i64,
    pub zset_max_listpack_value: i64,
    pub maxclients: i64,
    pub requirepass_set: bool,
    /// `maxmemory` in bytes (0: no limit) and the eviction options (`evict.rs`).
    pub maxmemory: u64,
    pub maxmemory_policy: crate::evict::Policy,
    pub maxmemory_samples: i64,
    pub maxmemory_eviction_tenacity: i64,
    pub lfu_log_factor: i64,
    pub lfu_decay_time: i64,
    /// `latency-tracking`: per-command latency histograms for INFO latencystats.
    pub latency_tracking: bool,
    /// `latency-monitor-threshold` in ms (0: the latency monitor is off).
    pub latency_monitor_threshold_ms: i64,
    /// `client-output-buffer-limit` per class (`obuf.rs`).
    pub obuf: [crate::config::ObufLimit; 3],
    /// `maxmemory-clients` as stored (negative: a percentage of `maxmemory`), `cevict.rs`.
    pub maxmemory_clients: i64,
    /// `tracking-table-max-keys` (0: no limit), `tracking.rs`.
    pub tracking_table_max_keys: u64,
}

impl HotConfig {
    pub fn from_config(cfg: &Config) -> HotConfig {
        HotConfig {
            slowlog_log_slower_than: cfg.get_i64("slowlog-log-slower-than"),
            slowlog_max_len: cfg.get_i64("slowlog-max-len"),
            proto_max_bulk_len: cfg.get_i64("proto-max-bulk-len"),
            list_max_listpack_size: cfg.get_i64("list-max-listpack-size"),
            list_compress_depth: cfg.get_i64("list-compress-depth"),
            hash_max_listpack_entries: cfg.get_i64("hash-max-listpack-entries"),
            hash_max_listpack_value: cfg.get_i64("hash-max-listpack-value"),
            set_max_intset_entries: cfg.get_i64("set-max-intset-entries"),
            zset_max_listpack_entries: cfg.get_i64("zset-max-listpack-entries"),
            zset_max_listpack_value: cfg.get_i64("zset-max-listpack-value"),
            maxclients: cfg.get_i64("maxclients"),
            requirepass_set: !cfg.get("requirepass").is_empty(),
            maxmemory: cfg.get_i64("maxmemory").max(0) as u64,
            maxmemory_policy: crate::evict::Policy::parse(cfg.get("maxmemory-policy")),
            maxmemory_samples: cfg.get_i64("maxmemory-samples"),
            maxmemory_eviction_tenacity: cfg.get_i64("maxmemory-eviction-tenacity"),
            lfu_log_factor: cfg.get_i64("lfu-log-factor"),
            lfu_decay_time: cfg.get_i64("lfu-decay-time"),
            latency_tracking: cfg.get("latency-tracking") == "yes",
            latency_monitor_threshold_ms: cfg.get_i64("latency-monitor-threshold"),
            obuf: crate::config::obuf_limits(cfg),
            maxmemory_clients: cfg.get_i64("maxmemory-clients"),
            tracking_table_max_keys: cfg.get_i64("tracking-table-max-keys").max(0) as u64,
        }
    }

    /// The cached value of an integer option, if it is one of the cached ones.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        Some(match name {
            "slowlog-log-slower-than" => self.slowlog_log_slower_than,
            "slowlog-max-len" => self.slowlog_max_len,
            "proto-max-bulk-len" => self.proto_max_bulk_len,
            "list-max-listpack-size" => self.list_max_listpack_size,
            "list-compress-depth" => self.list_compress_depth,
            "hash-max-listpack-entries" => self.hash_max_listpack_entries,
            "hash-max-listpack-value" => self.hash_max_listpack_value,
            "set-max-intset-entries" => self.set_max_intset_entries,
            "zset-max-listpack-entries" => self.zset_max_listpack_entries,
            "zset-max-listpack-value" => self.zset_max_listpack_value,
            "maxclients" => self.maxclients,
            "latency-monitor-threshold" => self.latency_monitor_threshold_ms,
            "maxmemory-samples" => self.maxmemory_samples,
            "maxmemory-eviction-tenacity" => self.maxmemory_eviction_tenacity,
            "lfu-log-factor" => self.lfu_log_factor,
            "lfu-decay-time" => self.lfu_decay_time,
            _ => return None,
        })
    }
}

pub struct Server {
    pub cfg: Config,
    /// Parsed copies of the options the per-command path reads (see `HotConfig`).
    pub hot: HotConfig,
    /// Clock read (unix µs) at the end of the last `call`, taken by the next command of the
    /// same batch as its start time; None outside a batch.
    pub call_end_us: Option<i64>,
    pub dbs: Vec<Db>,
    /// Fx-hashed: looked up twice per batch; ids are ours, sequential (no HashDoS exposure).
    pub clients: HashMap<ClientId, Box<Client>, FxBuild>,
    pub log: Durability,
    pub pubsub: PubSub,
    /// Client-side caching: CLIENT TRACKING's tables (`tracking.rs`).
    pub tracking: crate::tracking::Tracking,
    /// (db, key) → clients blocked on it, first come first served.
    pub blocking: HashMap<(usize, Bytes), VecDeque<ClientId>>,
    /// Keys that received elements during the current command.
    pub ready_keys: Vec<(usize, Bytes)>,
    /// (db, key) → WATCHing clients.
    pub watched: HashMap<(usize, Bytes), Vec<ClientId>>,
    pub stats: Stats,
    pub slowlog: VecDeque<SlowEntry>,
    pub slowlog_next_id: u64,
    pub monitors: Vec<ClientId>,
    /// The Lua engine and script cache (EVAL, EVALSHA, SCRIPT), created on first use.
    pub scripting: Option<Box<crate::cmd::scripting::Engine>>,
    /// LATENCY's event samples (`latency-monitor-threshold`).
    pub latency: crate::latency::LatencyMonitor,
    /// A script's command is running: MONITOR shows "lua" as its source, as Redis.
    pub monitor_in_script: bool,
    /// Function libraries (FUNCTION, FCALL): part of the dataset, see `cmd/function.rs`.
    pub functions: crate::cmd::function::Functions,
    pub start: Instant,
    pub start_ms: i64,
    pub lru_clock: u32,
    /// Changes since the last save (for `save` rules and INFO rdb_changes_since_last_save).
    pub dirty: u64,
    pub shutdown: Option<ShutdownMode>,
    /// The clients whose SHUTDOWN is pending: answered an error if the shutdown is refused
    /// or aborted (on success the exit closes their connections).
    pub shutdown_clients: Vec<ClientId>,
    /// SHUTDOWN FORCE: exit even when the initial AOF is still being written.
    pub shutdown_force: bool,
    /// SHUTDOWN NOW: do not wait for lagging replicas.
    pub shutdown_now: bool,
    /// While the shutdown waits for lagging replicas (`shutdown-timeout`): when it stops
    /// waiting (unix ms).
    pub shutdown_deadline_ms: Option<i64>,
    /// A SIGTERM (false) or SIGINT (true) received, its shutdown not started yet: the timer
    /// starts it, as Redis's serverCron does for `shutdown_asap`.
    pub shutdown_signal: Option<bool>,
    pub notify_flags: u32,
    pub next_client_id: Arc<std::sync::atomic::AtomicU64>,
    pub hz: u64,
    pub lastsave_s: i64,
    /// The last background save failed (Redis's `lastbgsave_status` C_ERR): with save points
    /// and `stop-writes-on-bgsave-error yes`, writes and PING are refused (`-MISCONF`, see
    /// [`crate::persist::disk_error`]) until a save succeeds.
    pub bgsave_failed: bool,
    /// A FAILOVER under way (failover.rs).
    pub failover: Option<crate::failover::Failover>,
    /// Hook the persistence layer installs (BGSAVE, BGREWRITEAOF, INFO persistence, …).
    pub persistence: Box<dyn crate::persist::Persistence>,
    /// Set while a command is running (for CLIENT LIST of the caller).
    pub current_client: ClientId,
    /// CLIENT PAUSE (`pause.rs`).
    pub pause: crate::pause::Pause,
    /// `maxmemory` eviction state (`evict.rs`).
    pub evictor: crate::evict::Evictor,
    /// Memory was over `maxmemory` with nothing to evict when the current command started:
    /// scripts refuse `denyoom` commands (Redis's `pre_command_oom_state`).
    pub pre_command_oom: bool,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call NOSCRIPT commands (tests only).
    pub script_disable_deny: bool,
    /// The script (EVAL or FCALL) running now, if any: SCRIPT KILL / FUNCTION KILL and the
    /// BUSY replies of other clients look at it (`cmd/scripting.rs`).
    pub script_run: Option<crate::cmd::scripting::ScriptRun>,
    /// The execution loop's receiver, kept here so that a script past `busy-reply-threshold`
    /// can serve the other clients from its hook (`serve_while_busy`); None while the loop
    /// waits on it, and in unit tests.
    pub exec_rx: Option<ExecReceiver>,
    /// Messages a busy script's hook could not handle (the script's own client's next
    /// commands, the master's stream, signals), handled first by the next round, in order.
    pub busy_deferred: VecDeque<Msg>,
    /// The data set is loading (`loading.rs`): clients are served from the loader's hook and
    /// answered `-LOADING` unless their command has the `loading` flag. None otherwise.
    pub loading: Option<Box<crate::loading::Loading>>,
    /// The running script called `redis.set_repl(redis.REPL_NONE)`: its commands are not
    /// logged (so neither written to the AOF nor sent to replicas) until it sets another mode.
    pub script_repl_none: bool,
    /// The time a running script started (unix ms): the commands it runs see this as now.
    pub script_time_ms: Option<i64>,
    /// The master's stream is being applied (`replica::handle`, with `replica` taken out).
    pub applying_master_stream: bool,
    /// The script that just ran ended with an error already counted in the error stats (a
    /// command's, passed on): its EVAL/FCALL reply is not counted again (`call`).
    pub script_error_counted: bool,
    /// Clients that asked SCRIPT DEBUG SYNC: their next EVAL runs in the debugger.
    pub ldb_sync: std::collections::HashSet<ClientId>,
    /// The debugging session of the script running now, if any.
    pub ldb: Option<crate::cmd::scripting::ldb::Session>,
    /// `io-threads 1`: a round that may run a script runs apart (`run_inline`).
    pub offload_scripts: bool,
    /// `io-threads 1` (`run_inline`): script durations are noted (`note_script_time`).
    pub offload_scripts_seen: bool,
    /// Scripts (by [`script_key`]) whose last run took under [`FAST_SCRIPT_US`]: with
    /// `io-threads 1` their rounds run on the event loop's thread, not handed to the script
    /// thread (`may_run_script`).
    pub fast_scripts: std::collections::HashSet<u64, FxBuild>,
    /// The running fork-free snapshot (BGSAVE / BGREWRITEAOF), if any.
    pub snapshot: Option<crate::compaction::Snapshot>,
    /// A BGREWRITEAOF waiting for the log's unsynced bytes to be fsynced before it rotates the
    /// log and starts its snapshot (`aof::Persist::start_rewrite`); polled every round.
    pub rewrite_presync: Option<crate::aof::Presync>,
    /// Epoch of the latest snapshot (see `compaction`).
    pub snap_epoch: u32,
    /// The TCP listeners (CONFIG SET port / bind replace them); None outside a running server.
    pub listeners: Option<crate::server::Listeners>,
    /// Network byte counters shared with the connection tasks (INFO stats).
    pub net_bytes: Option<(
        Arc<std::sync::atomic::AtomicU64>,
        Arc<std::sync::atomic::AtomicU64>,
    )>,
    /// Set while this server is a replica (REPLICAOF host port).
    pub replica: Option<crate::replica::Replica>,
    /// The replication link task's handles (None in unit tests and tools).
    pub repl_ctl: Option<crate::replica::Control>,
    /// The master side of replication: replicas of this server, the stream's backlog.
    pub master: crate::master::Master,
    /// ACL users and the ACL LOG.
    pub acl: crate::acl::Acl,
    /// DEBUG SET-ACTIVE-EXPIRE: whether the cron expires keys nobody reads.
    pub active_expire_enabled: bool,
    /// DEBUG PAUSE-CRON: the cron does nothing while set (Redis's `pause_cron`).
    pub cron_paused: bool,
    /// DEBUG SET-SKIP-CHECKSUM-VALIDATION: RESTORE accepts a payload whose CRC is wrong.
    pub skip_checksum_validation: bool,
    /// MIGRATE's cached connections to target servers.
    pub migrate: crate::cmd::migrate::SocketCache,
    /// Client eviction (`maxmemory-clients`).
    pub cevict: crate::cevict::ClientEviction,
}

impl Server {
    /// An integer option: from the parsed cache when it is a hot one, else parsed from `cfg`.
    pub fn cfg_i64(&self, name: &str) -> i64 {
        match self.hot.get_i64(name) {
            Some(v) => v,
            None => self.cfg.get_i64(name),
        }
    }

    /// Re-read the cached options after `cfg` changed (CONFIG SET).
    pub fn config_changed(&mut self) {
        self.hot = HotConfig::from_config(&self.cfg);
        crate::cmd::acl::requirepass_changed(self);
        crate::log::set_level(self.cfg.get("loglevel"));
        crate::master::refresh_good_slaves(self, now_ms());
        crate::aof::config_changed(self);
        crate::cevict::config_changed(self);
        crate::replica::config_changed(self);
    }

    pub fn new(cfg: Config) -> Server {
        let ndb = cfg.get_i64("databases").max(1) as usize;
        let notify_flags = notify::parse(cfg.get("notify-keyspace-events")).unwrap_or(0);
        let hz = cfg.get_i64("hz").clamp(1, 500) as u64;
        Server {
            hot: HotConfig::from_config(&cfg),
            call_end_us: None,
            dbs: (0..ndb).map(|_| Db::default()).collect(),
            clients: HashMap::default(),
            log: Durability::new(),
            pubsub: PubSub::default(),
            tracking: Default::default(),
            blocking: HashMap::new(),
            ready_keys: Vec::new(),
            watched: HashMap::new(),
            stats: Stats::default(),
            slowlog: VecDeque::new(),
            slowlog_next_id: 0,
            monitors: Vec::new(),
            scripting: None,
            monitor_in_script: false,
            latency: Default::default(),
            functions: Default::default(),
            start: Instant::now(),
            start_ms: now_ms(),
            lru_clock: lru_clock_now(),
            dirty: 0,
            shutdown: None,
            shutdown_force: false,
            shutdown_now: false,
            shutdown_deadline_ms: None,
            shutdown_signal: None,
            shutdown_clients: Vec::new(),
            notify_flags,
            next_client_id: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            hz,
            lastsave_s: now_ms() / 1000,
            bgsave_failed: false,
            failover: None,
            persistence: Box::new(crate::persist::NoPersistence),
            current_client: 0,
            pause: crate::pause::Pause::default(),
            evictor: crate::evict::Evictor::default(),
            pre_command_oom: false,
            script_disable_deny: false,
            script_run: None,
            exec_rx: None,
            busy_deferred: VecDeque::new(),
            loading: None,
            offload_scripts: false,
            offload_scripts_seen: false,
            fast_scripts: Default::default(),
            script_repl_none: false,
            script_time_ms: None,
            script_error_counted: false,
            applying_master_stream: false,
            ldb_sync: Default::default(),
            ldb: None,
            listeners: None,
            net_bytes: None,
            snapshot: None,
            rewrite_presync: None,
            snap_epoch: 0,
            replica: None,
            repl_ctl: None,
            master: crate::master::Master::default(),
            migrate: Default::default(),
            cevict: crate::cevict::ClientEviction::new(crate::cevict::effective_limit(
                cfg.get_i64("maxmemory-clients"),
                cfg.get_i64("maxmemory").max(0) as u64,
            )),
            acl: {
                let mut acl = crate::acl::Acl::default();
                acl.set_requirepass(cfg.get("requirepass"));
                acl
            },
            active_expire_enabled: true,
            cron_paused: false,
            skip_checksum_validation: false,
            cfg,
        }
    }

    /// WATCH invalidation for (db, key) (Redis's `touchWatchedKey`). `current` is the running
    /// client (not in `clients`). A watcher that saw the key already expired is not touched
    /// when the key is now gone (a stale key deleted is no logical change).
    pub fn touch_watched(&mut self, db: usize, key: &[u8], current: Option<&mut Client>) {
        if self.tracking.watching_changes() {
            crate::tracking::key_changed(self, key, current.as_deref());
        }
        if self.watched.is_empty() {
            return;
        }
        let Some(ids) = self.watched.get(&(db, Bytes::copy_from_slice(key))) else {
            return;
        };
        let gone = !self.dbs[db].keys.contains_key(key);
        let mut cur = current;
        for id in ids {
            let c = match self.clients.get_mut(id) {
                Some(c) => c,
                None => match cur.as_deref_mut() {
                    Some(c) if c.id == *id => c,
                    _ => continue,
                },
            };
            touch_watcher(c, db, key, gone);
        }
    }

    /// FLUSHDB/FLUSHALL (`replaced_with` None) and SWAPDB (`replaced_with` the database whose
    /// contents take `emptied`'s place): Redis's `touchAllWatchedKeysInDb`. Watchers of a key
    /// that exists in `emptied`, or will exist after the swap, are touched, except where the
    /// key was stale when watched and is gone or still stale after, and where a missing key
    /// is replaced with a stale one (the watcher then counts it as stale). Call before
    /// emptying or swapping.
    pub fn touch_all_watched_in(
        &mut self,
        emptied: usize,
        replaced_with: Option<usize>,
        now_ms: i64,
        current: Option<&mut Client>,
    ) {
        let mut cur = current;
        let keys: Vec<Bytes> = self
            .watched
            .keys()
            .filter(|(d, _)| *d == emptied)
            .map(|(_, k)| k.clone())
            .collect();
        for k in keys {
            let in_emptied = self.dbs[emptied].keys.contains_key(&k[..]);
            let in_new = replaced_with.is_some_and(|r| self.dbs[r].keys.contains_key(&k[..]));
            if !in_emptied && !in_new {
                continue;
            }
            let new_stale = replaced_with.is_some_and(|r| self.dbs[r].is_expired(&k, now_ms));
            let ids = self
                .watched
                .get(&(emptied, k.clone()))
                .cloned()
                .unwrap_or_default();
            for id in ids {
                let c = match self.clients.get_mut(&id) {
                    Some(c) => c,
                    None => match cur.as_deref_mut() {
                        Some(c) if c.id == id => c,
                        _ => continue,
                    },
                };
                let Some(w) = c.watched.iter_mut().find(|w| w.db == emptied && w.key == k) else {
                    continue;
                };
                if w.expired {
                    if !in_new {
                        w.expired = false;
                        continue;
                    } else if new_stale {
                        continue;
                    }
                } else if !in_emptied && new_stale {
                    w.expired = true;
                    continue;
                }
                c.dirty_cas = true;
            }
        }
    }

    /// Signal every key a client is blocked on in `db` (every db if None), after FLUSHDB,
    /// FLUSHALL or SWAPDB replaced the keys wholesale: XREADGROUP clients of a stream that
    /// is gone answer (Redis's `scanDatabaseForDeletedStreams`); the others are served if
    /// their key is there with their type, and otherwise stay blocked.
    pub fn signal_blocked_in(&mut self, db: Option<usize>) {
        let keys: Vec<(usize, Bytes)> = self
            .blocking
            .keys()
            .filter(|(d, _)| db.is_none_or(|x| x == *d))
            .cloned()
            .collect();
        for (d, k) in keys {
            self.signal_ready(d, &k);
        }
    }

    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.blocking.is_empty() {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        if self.blocking.contains_key(&k) && !self.ready_keys.contains(&k) {
            self.ready_keys.push(k);
        }
    }

    /// Evict `key` for `maxmemory` (`evict.rs`): delete it, log `DEL`, notify `evicted`, touch
    /// WATCHers and trackers.
    /// Returns the memory the deletion alone gave back (Redis's `delta` around dbSyncDelete
    /// in performEvictions): what its DEL, its notifications and its invalidation messages
    /// take is left out, or an eviction could never catch up with the memory it generates.
    pub fn evict_key(&mut self, db: usize, key: &[u8]) -> u64 {
        if self.snapshot.is_some() {
            crate::compaction::pre_mutate(self, db, key);
        }
        let k = Bytes::copy_from_slice(key);
        let used = |d: &crate::keyspace::Db| {
            (crate::alloc::allocated_bytes() as u64).saturating_sub(d.spare_bytes() as u64)
        };
        let before = used(&self.dbs[db]);
        drop(self.dbs[db].remove(key));
        let freed = before.saturating_sub(used(&self.dbs[db]));
        self.stats.evicted_keys += 1;
        self.log.append(db, &[Bytes::from_static(b"DEL"), k]);
        let before = crate::alloc::allocated_bytes() as u64;
        self.notify_keyspace_event(None, db, notify::EVICTED, "evicted", key);
        self.touch_watched(db, key, None);
        let sent = (crate::alloc::allocated_bytes() as u64).saturating_sub(before);
        if sent != 0 {
            self.evictor.note_sent(sent, now_ms() as u64);
        }
        freed
    }

    /// Expire `key` in `db` now: delete, log DEL, notify, touch watchers.
    pub fn expire_key(&mut self, db: usize, key: &[u8]) {
        if self.snapshot.is_some() {
            crate::compaction::pre_mutate(self, db, key);
        }
        let k = Bytes::copy_from_slice(key);
        self.dbs[db].remove(key);
        self.stats.expired_keys += 1;
        self.log
            .append(db, &[Bytes::from_static(b"DEL"), k.clone()]);
        self.notify_keyspace_event(None, db, notify::EXPIRED, "expired", key);
        self.touch_watched(db, key, None);
    }

    pub fn notify_keyspace_event(
        &mut self,
        current: Option<&mut Client>,
        db: usize,
        class: u32,
        event: &str,
        key: &[u8],
    ) {
        let f = self.notify_flags;
        if f & class == 0 {
            return;
        }
        let mut cur = current;
        if f & notify::KEYSPACE != 0 {
            let mut ch = format!("__keyspace@{db}__:").into_bytes();
            ch.extend_from_slice(key);
            self.publish(cur.as_deref_mut(), &ch, event.as_bytes());
        }
        if f & notify::KEYEVENT != 0 {
            let ch = format!("__keyevent@{db}__:{event}");
            self.publish(cur, ch.as_bytes(), key);
        }
    }

    /// PUBLISH: deliver to channel subscribers and pattern subscribers. Returns receivers.
    pub fn publish(&mut self, current: Option<&mut Client>, channel: &[u8], msg: &[u8]) -> usize {
        let mut n = 0;
        let chan = Bytes::copy_from_slice(channel);
        let msg = Bytes::copy_from_slice(msg);
        let mut cur = current;
        if let Some(ids) = self.pubsub.channels.get(&chan) {
            for id in ids.iter() {
                let r = Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::Bulk(chan.clone()),
                    Reply::Bulk(msg.clone()),
                ]);
                if deliver(&mut self.clients, cur.as_deref_mut(), *id, r) {
                    n += 1;
                }
            }
        }
        if !self.pubsub.patterns.is_empty() {
            for (pat, ids) in self.pubsub.patterns.iter() {
                if !glob_match(pat, channel, false) {
                    continue;
                }
                for id in ids.iter() {
                    let r = Reply::Push(vec![
                        Reply::bulk_str("pmessage"),
                        Reply::Bulk(pat.clone()),
                        Reply::Bulk(chan.clone()),
                        Reply::Bulk(msg.clone()),
                    ]);
                    if deliver(&mut self.clients, cur.as_deref_mut(), *id, r) {
                        n += 1;
                    }
                }
            }
        }
        self.stats.pubsub_messages += 1;
        n
    }

    pub fn spublish(&mut self, current: Option<&mut Client>, channel: &[u8], msg: &[u8]) -> usize {
        let mut n = 0;
        let chan = Bytes::copy_from_slice(channel);
        let msg = Bytes::copy_from_slice(msg);
        let mut cur = current;
        if let Some(ids) = self.pubsub.shard_channels.get(&chan) {
            for id in ids.iter() {
                let r = Reply::Push(vec![
                    Reply::bulk_str("smessage"),
                    Reply::Bulk(chan.clone()),
                    Reply::Bulk(msg.clone()),
                ]);
                if deliver(&mut self.clients, cur.as_deref_mut(), *id, r) {
                    n += 1;
                }
            }
        }
        n
    }

    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    /// Remove a client from every structure (disconnect or kill).
    pub fn forget_client(&mut self, c: &mut Client) {
        self.cevict.forget(c);
        self.ldb_sync.remove(&c.id);
        unwatch_all(self, c);
        if c.tracking {
            crate::tracking::disable(self, c);
        }
        for ch in c.subs.drain() {
            remove_sub(&mut self.pubsub.channels, &ch, c.id);
        }
        for ch in c.psubs.drain() {
            remove_sub(&mut self.pubsub.patterns, &ch, c.id);
        }
        for ch in c.ssubs.drain() {
            remove_sub(&mut self.pubsub.shard_channels, &ch, c.id);
        }
        if let Some(b) = c.blocked.take() {
            unregister_blocked(self, c.id, &b);
            if b.postponed {
                crate::pause::forget(self, c.id);
            }
        }
        self.monitors.retain(|&m| m != c.id);
        if c.is_replica {
            crate::master::forget(self, c.id);
        }
    }
}

fn remove_sub(map: &mut HashMap<Bytes, IndexSet<ClientId>>, ch: &Bytes, id: ClientId) {
    if let Some(set) = map.get_mut(ch) {
        set.shift_remove(&id);
        if set.is_empty() {
            map.remove(ch);
        }
    }
}

fn deliver(
    clients: &mut HashMap<ClientId, Box<Client>, FxBuild>,
    current: Option<&mut Client>,
    id: ClientId,
    r: Reply,
) -> bool {
    if let Some(c) = clients.get_mut(&id) {
        c.push(r);
        return true;
    }
    if let Some(c) = current {
        if c.id == id {
            c.push(r);
            return true;
        }
    }
    false
}

/// One watcher of (db, key) sees the key modified; `gone`: the key no longer exists.
fn touch_watcher(c: &mut Client, db: usize, key: &[u8], gone: bool) {
    if let Some(w) = c
        .watched
        .iter_mut()
        .find(|w| w.expired && w.db == db && w.key[..] == *key)
    {
        if gone {
            w.expired = false;
            return;
        }
    }
    c.dirty_cas = true;
}

pub fn unwatch_all(srv: &mut Server, c: &mut Client) {
    for w in c.watched.drain(..) {
        let k = (w.db, w.key);
        if let Some(v) = srv.watched.get_mut(&k) {
            v.retain(|&x| x != c.id);
            if v.is_empty() {
                srv.watched.remove(&k);
            }
        }
    }
    c.dirty_cas = false;
}

fn unregister_blocked(srv: &mut Server, id: ClientId, b: &crate::client::Blocked) {
    for k in &b.keys {
        let key = (b.db, k.clone());
        if let Some(q) = srv.blocking.get_mut(&key) {
            q.retain(|&x| x != id);
            if q.is_empty() {
                srv.blocking.remove(&key);
            }
        }
    }
}

pub fn lru_clock_now() -> u32 {
    ((now_ms() / 1000) & 0xFF_FFFF) as u32
}

/// Run one command for `client` (outside of MULTI queuing logic) and return its reply.
/// `in_exec` marks commands run by EXEC.
pub fn call(
    srv: &mut Server,
    client: &mut Client,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    in_exec: bool,
) -> Reply {
    call_at(srv, client, spec, argv, in_exec, now_us(), true)
}

/// `call` with the clock already read: `start` is unix µs, read just before. The clock read at
/// the end (for the duration) is left in `srv.call_end_us` so that the next command of the same
/// batch can start from it instead of reading the clock again.
fn call_at(
    srv: &mut Server,
    client: &mut Client,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    in_exec: bool,
    start: i64,
    feed: bool,
) -> Reply {
    // Inside a script the clock stands still (Redis's script time snapshot): a key does not
    // expire half-way through it.
    let now = srv.script_time_ms.unwrap_or(start / 1000);
    let db_before = client.db;
    // EVAL, FCALL…: their own line comes before the lines of the commands they run.
    if feed && spec.has(flags::SKIP_MONITOR) && runs_script(spec) {
        feed_monitors_as(srv, db_before, &client.addr, None, argv);
    }
    if spec.is_write() && srv.snapshot.as_ref().is_some_and(|s| s.intercepting()) {
        crate::compaction::before_write(srv, client.db, spec, argv);
    }
    // Set only by the script this command may run, at its very end (read below).
    srv.script_error_counted = false;
    let (reply, dirty, propagate, blocked) = {
        let mut ctx = Ctx::new(srv, client, now);
        ctx.in_exec = in_exec;
        let reply = (spec.handler)(&mut ctx, argv);
        (reply, ctx.dirty, ctx.propagate, ctx.blocked)
    };
    if client.tracking {
        crate::tracking::after_call(srv, client, spec, argv);
    }
    let end = now_us();
    srv.call_end_us = Some(end);
    let dur = (end - start).max(0) as u64;
    if srv.offload_scripts_seen && runs_script(spec) {
        note_script_time(srv, argv, dur);
    }
    // MONITOR sees a command once it ran (so EXEC after its commands), as Redis's call().
    if feed {
        let addr = if srv.monitor_in_script {
            "lua"
        } else {
            &client.addr
        };
        feed_monitors_as(srv, db_before, addr, Some(spec), argv);
    }
    if let Some(b) = blocked {
        block_client(srv, client, b);
        return Reply::Nil;
    }
    if dirty > 0 && !client.is_master && srv.replica.is_some() && spec.is_write() {
        crate::replica::remember_local_keys(srv, client.db, spec, argv);
    }
    // Propagation: the one place where a command's effect enters the log.
    if dirty > 0 || propagate.as_ref().is_some_and(|p| !p.is_empty()) {
        srv.dirty += dirty;
        // A script's `redis.set_repl(redis.REPL_NONE)`: the effect is not logged.
        let propagate = if srv.script_repl_none {
            Some(Vec::new())
        } else {
            propagate
        };
        match propagate {
            Some(cmds) => {
                for c in cmds {
                    srv.log.append(db_before, &c);
                }
            }
            None => {
                if spec.is_write() {
                    srv.log.append(db_before, argv);
                }
            }
        }
    }
    // Stats and slowlog.
    srv.stats.total_commands += 1;
    let name = crate::cmd::server::stat_name(spec, argv);
    let failed = match &reply {
        Reply::Error(msg) => {
            // A script's error that a command inside it produced was counted then.
            if !std::mem::take(&mut srv.script_error_counted) {
                count_error(&mut srv.stats, msg);
            }
            if client.is_master {
                // As Redis: an error in answer to the master's stream means the datasets diverge.
                let text = &msg[..msg.floor_char_boundary(4096)];
                tracing::warn!(
                    "== CRITICAL == This replica is sending an error to its master: '{text}' after processing the command '{}'",
                    spec.name
                );
            }
            true
        }
        _ => false,
    };
    let track = srv.hot.latency_tracking;
    srv.stats
        .per_cmd
        .entry(name)
        .or_default()
        .add_call(dur, failed, track);
    latency_sample(
        srv,
        if spec.has(flags::FAST) {
            "fast-command"
        } else {
            "command"
        },
        dur,
    );
    let threshold = srv.hot.slowlog_log_slower_than;
    if threshold >= 0 && dur as i64 >= threshold && !spec.has(flags::SKIP_SLOWLOG) {
        slowlog_push(srv, client, argv, dur);
    }
    client.last_cmd = name;
    reply
}

pub fn count_error(stats: &mut Stats, msg: &str) {
    stats.total_error_replies += 1;
    let code = msg.split(' ').next().unwrap_or("ERR").to_string();
    *stats.error_counts.entry(code).or_default() += 1;
}

fn slowlog_push(srv: &mut Server, client: &Client, argv: &[Bytes], dur: u64) {
    let max = srv.hot.slowlog_max_len.max(0) as usize;
    let redacted = crate::cmd::redact::redacted(argv);
    let argv = redacted.as_deref().unwrap_or(argv);
    let mut args: Vec<Bytes> = argv.iter().take(32).cloned().collect();
    if argv.len() > 32 {
        args[31] = Bytes::from(format!("... ({} more arguments)", argv.len() - 31));
    }
    for a in args.iter_mut() {
        if a.len() > 128 {
            let mut v = a[..128].to_vec();
            v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
            *a = Bytes::from(v);
        }
    }
    srv.slowlog.push_front(SlowEntry {
        id: srv.slowlog_next_id,
        time_s: now_ms() / 1000,
        duration_us: dur,
        argv: args,
        addr: client.addr.clone(),
        name: client.name.clone().unwrap_or_default(),
    });
    srv.slowlog_next_id += 1;
    while srv.slowlog.len() > max {
        srv.slowlog.pop_back();
    }
}

fn block_client(srv: &mut Server, client: &mut Client, b: crate::client::Blocked) {
    for k in &b.keys {
        let q = srv.blocking.entry((b.db, k.clone())).or_default();
        if !q.contains(&client.id) {
            q.push_back(client.id);
        }
    }
    client.blocked = Some(b);
}

/// Format the "unknown command" error as Redis 7.0.
pub fn unknown_command_error(argv: &[Bytes]) -> Reply {
    let name: String = String::from_utf8_lossy(&argv[0])
        .chars()
        .take(128)
        .collect();
    let mut args = String::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let s = String::from_utf8_lossy(a);
        let s: String = s.chars().take(room).collect();
        args.push_str(&format!("'{s}' "));
    }
    Reply::Error(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

/// Everything that happens to one command a client sent: lookup, checks, MULTI queuing, call,
/// and the reply. Blocked clients' later commands wait in `pending`.
pub fn process_command(srv: &mut Server, client: &mut Client, argv: Vec<Bytes>) {
    process_command_at(srv, client, argv, None)
}

/// `process_command` with, optionally, a clock read (unix µs) taken just before by the caller.
fn process_command_at(srv: &mut Server, client: &mut Client, argv: Vec<Bytes>, now: Option<i64>) {
    if client.blocked.is_some() {
        client.pending.push_back(argv);
        return;
    }
    let now_us = now.unwrap_or_else(now_us);
    client.last_interaction_ms = now_us / 1000;
    srv.current_client = client.id;
    if srv.tracking.clients != 0 {
        // CLIENT CACHING's one-command lifetime, and the table's size limit, whose
        // invalidations come before this command's reply (Redis's processCommand).
        crate::tracking::before_command(client, &argv[0]);
        crate::tracking::enforce_limit(srv, Some(client));
        if srv.tracking.has_pending() {
            crate::tracking::flush_pending(srv, client);
        }
    }
    let mut argv = argv;
    // The name as sent, kept for a command CLIENT PAUSE postpones (it is looked up again).
    let sent_name = RENAMED.get().map(|_| argv[0].clone());
    let renamed_ok = apply_renames(&mut argv);
    let Some(spec) = lookup_command(&argv[0]).filter(|_| renamed_ok) else {
        let r = unknown_command_error(&argv);
        if let Some(m) = client.multi.as_mut() {
            m.failed = true;
        }
        srv.stats.unexpected_error_replies += 0;
        if let Reply::Error(m) = &r {
            count_error(&mut srv.stats, m);
        }
        client.reply(r);
        return;
    };
    let reject = |srv: &mut Server, client: &mut Client, r: Reply| {
        let r = reject_reply(srv, client, spec, &argv, r);
        client.reply(r);
    };
    let n = argv.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        reject(srv, client, arity_error(spec.name));
        return;
    }
    if spec.has(flags::PROTECTED) && !protected_action_allowed(srv, client, "enable-debug-command")
    {
        reject(srv, client, Reply::err(DEBUG_NOT_ALLOWED));
        return;
    }
    if !client.authenticated && !spec.has(flags::NO_AUTH) {
        reject(srv, client, Reply::err("NOAUTH Authentication required."));
        return;
    }
    // Redis 7.0's CMD_NO_MULTI commands (our NO_MULTI flag also marks MULTI, EXEC, WATCH …,
    // which run at once inside MULTI instead of being queued).
    if client.multi.is_some() && matches!(spec.name, "save" | "shutdown" | "sync" | "psync") {
        reject(
            srv,
            client,
            Reply::err("ERR Command not allowed inside a transaction"),
        );
        return;
    }
    // ACLs: one load and branch for a user with every permission (the default user).
    if !client.user.superuser {
        if let Err(d) = client.user.check(spec, &argv) {
            let context = if client.multi.is_some() {
                crate::acl::CTX_MULTI
            } else {
                crate::acl::CTX_TOPLEVEL
            };
            crate::cmd::acl::log_denied(srv, client, spec, &argv, d, context);
            reject(srv, client, crate::cmd::acl::noperm_error(spec, &argv, d));
            return;
        }
    }
    // A script past `busy-reply-threshold` runs (this is its hook serving the other clients):
    // only what Redis allows while busy runs, and nothing is evicted meanwhile.
    let busy = script_busy(srv);
    if busy && effective_flags(spec, &argv) & flags::ALLOW_BUSY == 0 {
        reject(
            srv,
            client,
            Reply::err(crate::cmd::scripting::busy_error(srv)),
        );
        return;
    }
    if srv.hot.maxmemory != 0 && !busy {
        let oom = oom_rejects(srv, client, spec, &argv);
        // Evicted keys' invalidations precede the reply (they concern the old values).
        if srv.tracking.has_pending() {
            crate::tracking::flush_pending(srv, client);
        }
        if oom {
            reject(srv, client, Reply::err(crate::evict::OOM_ERR));
            return;
        }
    }
    if client.in_pubsub_context() && !spec.has(flags::SUBSCRIBED_OK) {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        reject(
            srv,
            client,
            Reply::Error(format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")),
        );
        return;
    }
    // EXEC of a transaction holding a write is checked as a write (Redis 7.0's
    // processCommand), so a state change since queuing aborts it whole.
    let is_write = command_flags(srv, spec, &argv) & flags::WRITE != 0
        || exec_queues_any(client, spec, |s, a| {
            command_flags(srv, s, a) & flags::WRITE != 0
        });
    // Redis 7.0 refuses PING too while the disk fails: that is how Sentinel sees it.
    if is_write || spec.name == "ping" {
        if let Some(e) = crate::persist::disk_error(srv) {
            reject(srv, client, Reply::Error(e.command_error()));
            return;
        }
    }
    if is_write && crate::replica::refuse_write(srv, client) {
        reject(srv, client, Reply::err(crate::replica::READONLY_ERR));
        return;
    }
    if is_write && crate::master::refuse_write(srv, client) {
        reject(srv, client, Reply::err(crate::master::NOREPLICAS_ERR));
        return;
    }
    // A stale replica (`replica-serve-stale-data no`): only `stale` commands, a script only
    // if it declares `allow-stale`, EXEC only if every queued command is one (Redis 7.0).
    if srv.replica.is_some() && crate::replica::stale_only(srv, client) {
        let stale = |s: &CommandSpec, a: &[Bytes]| command_flags(srv, s, a) & flags::STALE != 0;
        let refused = !stale(spec, &argv) || exec_queues_any(client, spec, |s, a| !stale(s, a));
        if refused {
            reject(srv, client, Reply::err(crate::replica::MASTERDOWN_ERR));
            return;
        }
    }
    let may_replicate = |s: &CommandSpec, a: &[Bytes]| {
        command_flags(srv, s, a) & (flags::WRITE | flags::MAY_REPLICATE) != 0
    };
    if srv.pause.pending()
        && srv.pause.holds(
            may_replicate(spec, &argv) || exec_queues_any(client, spec, may_replicate),
            client,
            now_us / 1000,
        )
    {
        if let Some(name) = sent_name {
            argv[0] = name;
        }
        crate::pause::postpone(srv, client, argv);
        return;
    }
    if client.multi.is_some() && !spec.has(flags::NO_MULTI) {
        if let Some(m) = client.multi.as_mut() {
            m.bytes += argv.iter().map(|a| a.len()).sum::<usize>();
            m.queued.push(argv);
        }
        client.reply(Reply::Status("QUEUED"));
        return;
    }
    srv.current_client = client.id;
    let db = client.db;
    let reply = call_at(srv, client, spec, &argv, false, now_us, true);
    if client.blocked.is_some() {
        return;
    }
    // The log position this reply must wait for (durability): a read of named keys waits for
    // their last logged change only; anything else for everything logged so far.
    let need = if busy {
        // Served from a busy script's hook: nothing it answers reveals data, and the log
        // holds the script's unfinished writes, which are not released before it ends.
        0
    } else if reads_named_keys_only(spec) {
        srv.log.read_pos(db, spec, &argv)
    } else {
        srv.log.pos()
    };
    client.need = client.need.max(need);
    client.reply(reply);
    // The running client's own invalidations follow its reply (Redis's afterCommand).
    if srv.tracking.has_pending() {
        crate::tracking::flush_pending(srv, client);
    }
    // Not while a busy script's hook runs this: the script's writes are not over.
    if !srv.ready_keys.is_empty() && !busy {
        serve_blocked(srv, Some(client));
        if srv.tracking.has_pending() {
            crate::tracking::flush_pending(srv, client);
        }
    }
}

/// The reply to a command refused before it ran (Redis's rejectCommand): a transaction is
/// flagged, a refused EXEC discards it (execCommandAbort), the error and the rejection counted.
#[cold]
#[inline(never)]
pub(crate) fn reject_reply(
    srv: &mut Server,
    client: &mut Client,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    r: Reply,
) -> Reply {
    if let Some(m) = client.multi.as_mut() {
        m.failed = true;
    }
    // A rejected EXEC discards the transaction (Redis's execCommandAbort).
    let r = match r {
        Reply::Error(msg) if spec.name == "exec" => {
            client.multi = None;
            unwatch_all(srv, client);
            let msg = msg.strip_prefix("ERR ").unwrap_or(&msg).to_string();
            Reply::Error(format!("EXECABORT Transaction discarded because of: {msg}"))
        }
        r => r,
    };
    if let Reply::Error(m) = &r {
        count_error(&mut srv.stats, m);
    }
    let name = crate::cmd::server::stat_name(spec, argv);
    srv.stats.per_cmd.entry(name).or_default().rejected += 1;
    r
}

/// `maxmemory`: evict as needed (`evict.rs`), then whether `spec` must be refused because
/// memory stays over the limit — a command that may grow the dataset, EXEC of a transaction
/// holding one, or anything queued in MULTI (except what ends it), as in Redis 7.0.
fn oom_rejects(srv: &mut Server, client: &Client, spec: &CommandSpec, argv: &[Bytes]) -> bool {
    let oom = crate::evict::perform_evictions(srv) == crate::evict::Outcome::Fail;
    srv.pre_command_oom = oom;
    if !oom {
        return false;
    }
    let in_multi = client.multi.as_ref();
    command_flags(srv, spec, argv) & flags::DENYOOM != 0
        || (in_multi.is_some() && !matches!(spec.name, "exec" | "discard" | "quit" | "reset"))
        || exec_queues_any(client, spec, |s, a| {
            command_flags(srv, s, a) & flags::DENYOOM != 0
        })
}

/// Whether `spec` is the EXEC of a transaction that queued a command for which `f` holds
/// (Redis 7.0's processCommand checks EXEC with the flags of what it will run).
pub(crate) fn exec_queues_any(
    client: &Client,
    spec: &CommandSpec,
    f: impl Fn(&CommandSpec, &[Bytes]) -> bool,
) -> bool {
    spec.name == "exec"
        && client.multi.as_ref().is_some_and(|m| {
            m.queued
                .iter()
                .any(|a| lookup_command(&a[0]).is_some_and(|s| f(s, a)))
        })
}

/// Whether a pause in force holds a batch of our master's stream: any command under `ALL`, a
/// write or `may_replicate` one (by its flags as for a client, `process_command`) under `WRITE`.
pub(crate) fn pause_holds_master(srv: &Server, cmds: &[Vec<Bytes>]) -> bool {
    use crate::pause::Kind;
    match srv.pause.kind_at(now_ms()) {
        Kind::Off => false,
        Kind::All => !cmds.is_empty(),
        Kind::Write => cmds.iter().any(|a| {
            lookup_command(&a[0]).is_some_and(|s| {
                command_flags(srv, s, a) & (flags::WRITE | flags::MAY_REPLICATE) != 0
            })
        }),
    }
}

/// `effective_flags`, and for a script with declared flags (an EVAL with a `#!lua` shebang, an
/// FCALL) the flags Redis derives from them (`scriptFlagsToCmdFlags`: a write and `denyoom`
/// unless `no-writes` / `allow-oom`), so the checks before it runs treat it as what it may do.
fn command_flags(srv: &Server, spec: &CommandSpec, argv: &[Bytes]) -> u32 {
    let f = effective_flags(spec, argv);
    if !runs_script(spec) {
        return f;
    }
    crate::cmd::scripting::declared_command_flags(srv, spec.name, argv, f)
}

/// The flags of the command `argv` runs: its subcommand's (FUNCTION LOAD is a write that may
/// grow memory, FUNCTION LIST is not), else the command's.
pub(crate) fn effective_flags(spec: &CommandSpec, argv: &[Bytes]) -> u32 {
    if spec.subcommands.is_empty() || argv.len() < 2 {
        return spec.flags;
    }
    spec.subcommands
        .iter()
        .find(|(name, _, _)| name.as_bytes().eq_ignore_ascii_case(&argv[1]))
        .map_or(spec.flags, |&(_, _, f)| f)
}

/// Whether a reply of `spec` depends only on the keys its key spec names (and on nothing any
/// other write changed): read-only, not blocking, one key spec for the whole command (no
/// subcommands), and no key patterns (SORT_RO's BY and GET read other keys).
fn reads_named_keys_only(spec: &CommandSpec) -> bool {
    spec.has(flags::READONLY)
        && !spec.is_write()
        && !spec.has(flags::BLOCKING)
        && !matches!(spec.keys, crate::cmd::KeySpec::None)
        && spec.subcommands.is_empty()
        && spec.name != "sort_ro"
}

/// The commands that run a script (flagged SKIP_MONITOR: MONITOR shows them before the script's
/// commands, not after).
fn runs_script(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// One MONITOR line, unless `spec` is hidden from MONITOR (ADMIN or SKIP_MONITOR commands);
/// `None` feeds unconditionally.
fn feed_monitors_as(
    srv: &mut Server,
    db: usize,
    addr: &str,
    spec: Option<&CommandSpec>,
    argv: &[Bytes],
) {
    if srv.monitors.is_empty()
        || spec.is_some_and(|s| s.has(flags::SKIP_MONITOR) || s.has(flags::ADMIN))
    {
        return;
    }
    let t = now_us();
    let mut line = format!("{}.{:06} [{} {}]", t / 1_000_000, t % 1_000_000, db, addr);
    let redacted = crate::cmd::redact::redacted(argv);
    for a in redacted.as_deref().unwrap_or(argv) {
        line.push_str(" \"");
        for &c in a.iter() {
            match c {
                b'\\' => line.push_str("\\\\"),
                b'"' => line.push_str("\\\""),
                b'\n' => line.push_str("\\n"),
                b'\r' => line.push_str("\\r"),
                b'\t' => line.push_str("\\t"),
                7 => line.push_str("\\a"),
                8 => line.push_str("\\b"),
                c if c.is_ascii_graphic() || c == b' ' => line.push(c as char),
                c => line.push_str(&format!("\\x{c:02x}")),
            }
        }
        line.push('"');
    }
    for id in srv.monitors.clone() {
        if let Some(m) = srv.clients.get_mut(&id) {
            m.push(Reply::StatusOwned(line.clone()));
        }
    }
}

/// The type of key a blocking command waits for (Redis's `btype`): a ready key of another type,
/// or a missing one, leaves its clients blocked, as `serveClientsBlockedOnKeys` serves only
/// the clients blocked for the type the key now has. `None`: no type check (XREADGROUP, which
/// must answer when its stream is deleted or replaced, and postponed commands).
fn blocked_type(argv0: &[u8]) -> Option<&'static str> {
    let name = argv0.to_ascii_lowercase();
    match &name[..] {
        b"blpop" | b"brpop" | b"brpoplpush" | b"blmove" | b"blmpop" => Some("list"),
        b"bzpopmin" | b"bzpopmax" | b"bzmpop" => Some("zset"),
        b"xread" => Some("stream"),
        _ => None,
    }
}

/// Serve clients blocked on keys that became ready, first come first served, until no key is
/// ready. `current` is the client whose command made keys ready (not in `srv.clients`).
pub fn serve_blocked(srv: &mut Server, current: Option<&mut Client>) {
    let current_id = current.map(|c| c.id);
    let outer = std::mem::replace(&mut srv.tracking.outer_client, current_id.unwrap_or(0));
    serve_blocked_keys(srv, current_id);
    srv.tracking.outer_client = outer;
}

fn serve_blocked_keys(srv: &mut Server, current_id: Option<ClientId>) {
    let mut rounds = 0;
    while !srv.ready_keys.is_empty() {
        rounds += 1;
        if rounds > 100_000 {
            break;
        }
        let ready = std::mem::take(&mut srv.ready_keys);
        for key in ready {
            // The clients blocked on the key when it became ready, in order; those served
            // leave the queue, those left blocked keep their place.
            let queue: Vec<ClientId> = match srv.blocking.get(&key) {
                Some(q) => q.iter().copied().collect(),
                None => continue,
            };
            for id in queue {
                if !srv.blocking.get(&key).is_some_and(|q| q.contains(&id)) {
                    continue;
                }
                let Some(mut c) = srv.clients.remove(&id) else {
                    // Not in the map: the current client cannot be blocked; drop a stale id.
                    if current_id != Some(id) {
                        if let Some(q) = srv.blocking.get_mut(&key) {
                            q.retain(|&x| x != id);
                        }
                    }
                    continue;
                };
                let Some(b) = c.blocked.take() else {
                    srv.clients.insert(id, c);
                    if let Some(q) = srv.blocking.get_mut(&key) {
                        q.retain(|&x| x != id);
                    }
                    continue;
                };
                if let Some(want) = blocked_type(&b.argv[0]) {
                    let has = srv.dbs[key.0].keys.get(&key.1).map(|o| o.value.type_name());
                    if has != Some(want) {
                        // Gone, or another type took the key's place: not for this client.
                        c.blocked = Some(b);
                        srv.clients.insert(id, c);
                        continue;
                    }
                }
                // Try to serve: run the command again.
                let spec = match lookup_command(&b.argv[0]) {
                    Some(s) => s,
                    None => {
                        c.blocked = Some(b);
                        srv.clients.insert(id, c);
                        break;
                    }
                };
                let saved_db = c.db;
                c.db = b.db;
                // Run again, not a new command: MONITOR saw it when it blocked.
                let running = std::mem::replace(&mut srv.current_client, id);
                let reply = call_at(srv, &mut c, spec, &b.argv, false, now_us(), false);
                srv.current_client = running;
                if c.blocked.is_some() {
                    // Still nothing to serve (key emptied by someone earlier): keep waiting,
                    // keeping its place; the new registration is a duplicate — restore.
                    let nb = c.blocked.take();
                    c.blocked = nb.map(|mut nb| {
                        nb.deadline_ms = b.deadline_ms;
                        nb
                    });
                    c.db = saved_db;
                    srv.clients.insert(id, c);
                    break;
                }
                c.db = saved_db;
                unregister_blocked(srv, id, &b);
                c.reply(reply);
                if srv.tracking.has_pending() {
                    srv.current_client = id;
                    crate::tracking::flush_pending(srv, &mut c);
                    srv.current_client = running;
                }
                let pos = srv.log.pos();
                c.flush(pos, false);
                run_pending(srv, &mut c);
                srv.clients.insert(id, c);
            }
        }
    }
}

/// Run commands that queued up while the client was blocked.
pub fn run_pending(srv: &mut Server, c: &mut Client) {
    while c.blocked.is_none() {
        let Some(argv) = c.pending.pop_front() else {
            break;
        };
        process_command(srv, c, argv);
    }
    let pos = srv.log.pos();
    c.flush(pos, false);
}

/// Redis's `disconnectAllBlockedClients`, when this server becomes a replica: every client
/// blocked in a command (BLPOP and the other blocking pops, XREAD BLOCK, WAIT, WAITAOF) is
/// answered with Redis's `-UNBLOCKED` error and closed after it. Left blocked, a pop would be
/// served by the master's stream — a write on a replica, the replica diverging from it.
/// Clients CLIENT PAUSE holds are not blocked in a command (their command has not started)
/// and stay.
pub fn disconnect_all_blocked(srv: &mut Server) {
    let ids: Vec<ClientId> = srv
        .clients
        .values()
        .filter(|c| c.blocked.as_ref().is_some_and(|b| !b.postponed))
        .map(|c| c.id)
        .collect();
    for id in ids {
        let Some(mut c) = srv.clients.remove(&id) else {
            continue;
        };
        // Closed after this reply: what it sent behind the blocked command is not run.
        c.pending.clear();
        c.close_after_reply = true;
        unblock_with(srv, &mut c, Some(Reply::err(UNBLOCKED_ROLE_CHANGE)));
        srv.clients.insert(id, c);
    }
}

/// Redis's text for [`disconnect_all_blocked`].
pub const UNBLOCKED_ROLE_CHANGE: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";

/// Unblock `c` with its timeout reply (timeout or CLIENT UNBLOCK TIMEOUT) or `reply`.
pub fn unblock_with(srv: &mut Server, c: &mut Client, reply: Option<Reply>) {
    if let Some(b) = c.blocked.take() {
        unregister_blocked(srv, c.id, &b);
        let reply = reply.unwrap_or(b.timeout_reply);
        if !b.postponed {
            // The blocked command completes here: it counts as a call (and an error reply
            // as a failed one), as Redis's updateStatsOnUnblock.
            if let Some(spec) = lookup_command(&b.argv[0]) {
                let failed = match &reply {
                    Reply::Error(msg) => {
                        count_error(&mut srv.stats, msg);
                        true
                    }
                    _ => false,
                };
                let name = crate::cmd::server::stat_name(spec, &b.argv);
                let track = srv.hot.latency_tracking;
                srv.stats
                    .per_cmd
                    .entry(name)
                    .or_default()
                    .add_call(0, failed, track);
            }
        }
        c.reply(reply);
        let pos = srv.log.pos();
        c.flush(pos, false);
        run_pending(srv, c);
    }
}

/// The execution thread's main loop.
pub fn run(mut srv: Server, rx: ExecReceiver) {
    let tick = Duration::from_millis(1000 / srv.hz.max(1));
    let mut next_cron = Instant::now() + tick;
    srv.exec_rx = Some(rx);
    loop {
        let first = match srv.busy_deferred.pop_front() {
            Some(m) => Some(m),
            None => {
                let now = Instant::now();
                let wait = round_wait(&srv, next_cron, now);
                let Some(rx) = srv.exec_rx.take() else { break };
                let r = rx.recv_timeout(wait);
                srv.exec_rx = Some(rx);
                match r {
                    Ok(m) => m,
                    Err(crate::client::Disconnected) => break,
                }
            }
        };
        if !round(&mut srv, first, &mut next_cron, tick) {
            break;
        }
    }
}

/// The execution loop as a task of the single-threaded runtime (`io-threads 1`): as in Redis's
/// event loop, the connections read and parse, then one round executes every queued batch, then
/// the writers answer; nothing crosses a thread except the log.
///
/// Except for scripts: a round that starts with a batch that may run one not known to be fast
/// (EVAL, FCALL, EXEC of a transaction holding one; see `may_run_script`) runs on the
/// `strongbox-script` thread while this thread goes on serving the connections, so that a
/// script past `busy-reply-threshold` can answer the other clients BUSY and take SCRIPT KILL
/// from its hook (`serve_while_busy`), as Redis's `processEventsWhileBlocked` does. A round on
/// the event loop's thread stops before such a batch (`Server::offload_scripts`), which starts
/// the next round, on the script thread; that round takes every kind of message. Cost: two
/// thread hand-offs per such round, which is why scripts known to be fast stay here.
pub async fn run_inline(mut srv: Server, rx: ExecReceiver) {
    let tick = Duration::from_millis(1000 / srv.hz.max(1));
    let mut next_cron = Instant::now() + tick;
    srv.exec_rx = Some(rx);
    srv.offload_scripts = true;
    srv.offload_scripts_seen = true;
    let mut script_thread = None;
    loop {
        let first = match srv.busy_deferred.pop_front() {
            Some(m) => Some(m),
            None => {
                let now = Instant::now();
                let wait = round_wait(&srv, next_cron, now);
                let Some(rx) = srv.exec_rx.take() else { break };
                let r = rx.recv_async(wait).await;
                srv.exec_rx = Some(rx);
                match r {
                    Ok(m) => m,
                    Err(crate::client::Disconnected) => break,
                }
            }
        };
        if first.as_ref().is_some_and(|m| may_run_script(&srv, m)) {
            let jobs = match &script_thread {
                Some(j) => j,
                None => match spawn_script_thread() {
                    Ok(j) => script_thread.insert(j),
                    Err(e) => {
                        tracing::error!("Can't start the script thread: {e}");
                        break;
                    }
                },
            };
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let job: ScriptJob = Box::new(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    // Here the round may take further script batches: the event loop reads on.
                    srv.offload_scripts = false;
                    let go_on = round(&mut srv, first, &mut next_cron, tick);
                    srv.offload_scripts = true;
                    (srv, go_on, next_cron)
                }));
                let _ = done_tx.send(r);
            });
            if jobs.send(job).is_err() {
                tracing::error!("The script thread is gone");
                break;
            }
            match done_rx.await {
                Ok(Ok((s, go_on, n))) => {
                    srv = s;
                    next_cron = n;
                    if !go_on {
                        break;
                    }
                }
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => panic!("the script thread dropped a round"),
            }
            continue;
        }
        if !round(&mut srv, first, &mut next_cron, tick) {
            break;
        }
    }
}

/// Stack of the threads that run commands (the execution thread, the script thread): deep
/// Lua values (cjson's 1000 levels) recurse in Rust, and a debug build's frames are large.
pub const EXEC_STACK_BYTES: usize = 64 << 20;

type ScriptJob = Box<dyn FnOnce() + Send>;

/// The thread `run_inline` hands rounds that may run a script to.
fn spawn_script_thread() -> std::io::Result<std::sync::mpsc::Sender<ScriptJob>> {
    let (tx, rx) = std::sync::mpsc::channel::<ScriptJob>();
    std::thread::Builder::new()
        .name("strongbox-script".into())
        .stack_size(EXEC_STACK_BYTES)
        .spawn(move || {
            crate::util::prefer_short_slices();
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
    Ok(tx)
}

/// A script run that took less than this (µs) marks it fast: its next rounds stay on the
/// event loop's thread with `io-threads 1` (`may_run_script`).
const FAST_SCRIPT_US: u64 = 20_000;
/// Bound of `Server::fast_scripts` (cleared when reached: scripts are then handed off again
/// once, and marked again).
const FAST_SCRIPTS_MAX: usize = 4096;

/// A script's identity for `Server::fast_scripts`: the command (EVAL, EVALSHA, FCALL, their
/// _RO forms) and its body, SHA1 or function name.
fn script_key(argv: &[Bytes]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = FxHasher::default();
    if let Some(n) = argv.first() {
        n.len().hash(&mut h);
        n.iter().for_each(|b| (b | 0x20).hash(&mut h));
    }
    if let Some(a) = argv.get(1) {
        a.hash(&mut h);
    }
    h.finish()
}

/// After a script command ran (with `io-threads 1`): whether it counts as fast next time.
fn note_script_time(srv: &mut Server, argv: &[Bytes], dur_us: u64) {
    let key = script_key(argv);
    if dur_us < FAST_SCRIPT_US {
        if srv.fast_scripts.len() >= FAST_SCRIPTS_MAX {
            srv.fast_scripts.clear();
        }
        srv.fast_scripts.insert(key);
    } else {
        srv.fast_scripts.remove(&key);
    }
}

/// Whether handling `m` may run a Lua script that is not known to be fast (for `run_inline`'s
/// hand-off). A script that ran under `FAST_SCRIPT_US` last time runs on the event loop's
/// thread: the hand-off costs two thread switches per round (a third of EVAL's throughput
/// with `redis-benchmark -c 50 -P 1`), which job queues calling the same short scripts all the
/// time would pay for nothing. The price: such a script, if it ever runs long, cannot be
/// answered BUSY or killed until it ends (it is handed off again from its next run on).
fn may_run_script(srv: &Server, m: &Msg) -> bool {
    let Msg::Commands { id, cmds } = m else {
        // A replica's full-sync load serves the clients while it runs (`loading.rs`): the
        // event loop must go on reading them meanwhile.
        return matches!(m, Msg::Replica(crate::replica::ReplMsg::Sync { .. }));
    };
    let is_script = |argv: &Vec<Bytes>| {
        // (every command of an inline round passes here: one byte decides for most)
        let Some(n) = argv.first() else {
            return false;
        };
        match n.first().map(|b| b | 0x20) {
            Some(b'e' | b'f') => {
                [
                    &b"eval"[..],
                    b"evalsha",
                    b"eval_ro",
                    b"evalsha_ro",
                    b"fcall",
                    b"fcall_ro",
                ]
                .iter()
                .any(|s| n.eq_ignore_ascii_case(s))
                    && !srv.fast_scripts.contains(&script_key(argv))
            }
            // DEBUG RELOAD and LOADAOF serve the clients while they load (`loading.rs`).
            Some(b'd') => {
                n.eq_ignore_ascii_case(b"debug")
                    && argv.get(1).is_some_and(|s| {
                        s.eq_ignore_ascii_case(b"reload") || s.eq_ignore_ascii_case(b"loadaof")
                    })
            }
            _ => false,
        }
    };
    let has_exec = || {
        cmds.iter()
            .any(|a| a.first().is_some_and(|n| n.eq_ignore_ascii_case(b"exec")))
    };
    cmds.iter().any(is_script)
        || (has_exec()
            && srv
                .clients
                .get(id)
                .and_then(|c| c.multi.as_ref())
                .is_some_and(|m| m.queued.iter().any(is_script)))
}

/// The next message of a round: one a busy script deferred, else a queued one.
fn next_msg(srv: &mut Server) -> Option<Msg> {
    if let Some(m) = srv.busy_deferred.pop_front() {
        return Some(m);
    }
    srv.exec_rx.as_ref()?.try_recv().ok()
}

/// Called from the hook of a script running past `busy-reply-threshold`: handles the messages
/// queued meanwhile, as Redis's `processEventsWhileBlocked`. Other clients' commands are
/// answered `-BUSY` by `process_command_at`, except those Redis allows while busy (SCRIPT KILL,
/// FUNCTION KILL, SHUTDOWN NOSAVE, AUTH, HELLO, MULTI …); the script's own client's next
/// commands, the master's stream and signals wait for the script's end (`busy_deferred`). False
/// when no message can be received here (unit tests; nothing would ever answer).
pub fn serve_while_busy(srv: &mut Server) -> bool {
    if srv.loading.is_some() {
        // A script replayed from the log: -LOADING comes first, as in Redis (a shutdown asked
        // for meanwhile stops the load at its next progress call).
        let _ = crate::loading::serve(srv);
        return srv.exec_rx.is_some();
    }
    let Some(rx) = srv.exec_rx.take() else {
        return false;
    };
    let current = srv.current_client;
    let call_end = srv.call_end_us.take();
    let mut touched = Vec::new();
    for _ in 0..EXECUTOR_ROUND_MESSAGES_MAX {
        let Ok(m) = rx.try_recv() else { break };
        let defer = match &m {
            Msg::Commands { id, .. } | Msg::ProtocolError { id, .. } | Msg::Disconnect { id } => {
                !srv.clients.contains_key(id)
            }
            Msg::Connect { .. } | Msg::QueryBufGrew { .. } => false,
            Msg::Replica(_) | Msg::Signal { .. } => true,
        };
        if defer {
            srv.busy_deferred.push_back(m);
        } else {
            handle_msg(srv, m, &mut touched);
        }
    }
    srv.exec_rx = Some(rx);
    srv.current_client = current;
    srv.call_end_us = call_end;
    true
}

/// A script past `busy-reply-threshold` is running (other clients are answered `-BUSY`).
pub fn script_busy(srv: &Server) -> bool {
    srv.script_run.as_ref().is_some_and(|r| r.timed_out)
}

/// How long the loop may wait for a message: until the next cron tick, or the next snapshot
/// step while a snapshot runs (it advances every round, not only when commands arrive).
fn round_wait(srv: &Server, next_cron: Instant, now: Instant) -> Duration {
    if srv.evictor.running {
        // Evictions left over by a command's time budget go on at once (`evict::eviction_proc`).
        return Duration::ZERO;
    }
    let mut wait = next_cron.saturating_duration_since(now);
    // Wake up when CLIENT PAUSE ends, to run the postponed clients, and when a shutdown
    // stops waiting for its replicas.
    for end in [srv.pause.end_ms(), srv.shutdown_deadline_ms]
        .into_iter()
        .flatten()
    {
        let left = end.saturating_sub(now_ms()).max(0) as u64;
        wait = wait.min(Duration::from_millis(left));
    }
    if !srv.busy_deferred.is_empty() {
        return Duration::ZERO;
    }
    if srv.rewrite_presync.is_some() {
        return wait.min(crate::aof::PRESYNC_POLL_INTERVAL);
    }
    match crate::compaction::next_step_in(srv) {
        Some(w) => wait.min(w),
        None => wait,
    }
}

/// One round of the execution loop: the queued messages, timers, a snapshot step, the log
/// hand-off and the replies. False when the server shuts down.
fn round(srv: &mut Server, first: Option<Msg>, next_cron: &mut Instant, tick: Duration) -> bool {
    let round_start = Instant::now();
    let mut touched: Vec<ClientId> = Vec::new();
    if let Some(m) = first {
        handle_msg(srv, m, &mut touched);
        let mut n = 1;
        while n < EXECUTOR_ROUND_MESSAGES_MAX {
            let Some(m) = next_msg(srv) else { break };
            if srv.offload_scripts && may_run_script(srv, &m) {
                // Its own round, on a thread of its own (`run_inline`).
                srv.busy_deferred.push_front(m);
                break;
            }
            handle_msg(srv, m, &mut touched);
            n += 1;
        }
    }
    if srv.pause.pending() {
        crate::pause::check_end(srv, now_ms());
    }
    crate::evict::eviction_proc(srv);
    if Instant::now() >= *next_cron {
        cron(srv);
        *next_cron = Instant::now() + tick;
    }
    if srv.snapshot.is_some() {
        srv.snapshot_step();
    } else if srv.rewrite_presync.is_some() {
        srv.persistence_poll();
    }
    crate::tracking::broadcast(srv);
    srv.log.submit();
    crate::master::after_round(srv);
    flush_all(srv);
    crate::cevict::end_of_round(srv);
    if let Some(s) = srv.snapshot.as_mut() {
        s.note_round(round_start.elapsed());
    }
    if srv.shutdown.is_some() && crate::persist::shutdown_step(srv) {
        return false;
    }
    true
}

fn flush_all(srv: &mut Server) {
    let pos = srv.log.pos();
    let mut dead = vec![];
    let limits = srv.hot.obuf;
    let now = now_ms();
    let cevict = srv.cevict.limit != 0;
    for c in srv.clients.values_mut() {
        if !c.out.is_empty() {
            c.flush(pos, false);
            crate::obuf::check(c, &limits, now);
            if cevict {
                srv.cevict.remeasure(c);
            }
        }
        if c.closed {
            dead.push(c.id);
        }
    }
    for id in dead {
        if let Some(mut c) = srv.clients.remove(&id) {
            srv.forget_client(&mut c);
            c.shared.kill.notify_one();
        }
    }
}

/// Redis's refusal of DEBUG under `enable-debug-command no` (or `local`, from afar).
const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command \
option is set to \"local\", you can run it from a local connection, otherwise you need to set \
this option in the configuration file, and then restart the server.";

/// Whether an option of Redis's protected kind (`enable-debug-command`,
/// `enable-protected-configs`: no / yes / local) lets `client` go on.
pub(crate) fn protected_action_allowed(srv: &Server, client: &Client, option: &str) -> bool {
    match srv.cfg.get(option) {
        "yes" => true,
        "local" => client.local,
        _ => false,
    }
}

/// Redis 7.0's refusal of a non-loopback client in protected mode (its text, word for word).
const PROTECTED_MODE_DENIED: &str = "DENIED Redis is running in protected mode because \
protected mode is enabled and no password is set for the default user. In this mode \
connections are only accepted from the loopback interface. If you want to connect from \
external computers to Redis you may adopt one of the following solutions: 1) Just disable \
protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface \
by connecting to Redis from the same host the server is running, however MAKE SURE Redis is \
not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change \
permanent. 2) Alternatively you can just disable the protected mode by editing the Redis \
configuration file, and setting the protected mode option to 'no', and then restarting the \
server. 3) If you started the server manually just for testing, restart it with the \
'--protected-mode no' option. 4) Setup a an authentication password for the default user. \
NOTE: You only need to do one of the above things in order for the server to start accepting \
connections from the outside.";

pub(crate) fn handle_msg(srv: &mut Server, m: Msg, _touched: &mut Vec<ClientId>) {
    match m {
        Msg::Connect {
            id,
            tx,
            addr,
            laddr,
            transport,
            shared,
        } => {
            srv.stats.total_connections += 1;
            let user = srv.acl.default_user();
            let needs_auth = !user.logs_in_without_password();
            let mut c = Client::new(id, tx, shared, addr, laddr, now_ms(), needs_auth);
            c.user = user;
            c.unix_socket = transport == crate::server::Transport::Unix;
            c.local = transport != crate::server::Transport::Tcp;
            if transport == crate::server::Transport::Tcp
                && !needs_auth
                && srv.cfg.get_bool("protected-mode")
            {
                // As Redis: no password on the default user, so only the loopback interface
                // and the Unix socket are served.
                srv.stats.rejected_connections += 1;
                c.close_after_reply = true;
                c.reply(Reply::err(PROTECTED_MODE_DENIED));
                c.flush(0, false);
                return;
            }
            let max = srv.hot.maxclients.max(1) as usize;
            if srv.clients.len() >= max {
                srv.stats.rejected_connections += 1;
                c.close_after_reply = true;
                c.reply(Reply::err("ERR max number of clients reached"));
                c.flush(0, false);
                return;
            }
            // Counted from the start: its base memory is part of the total.
            if srv.cevict.limit != 0 && crate::cevict::before_batch(srv, &mut c, 0) {
                srv.forget_client(&mut c);
                return;
            }
            srv.clients.insert(id, Box::new(c));
        }
        Msg::QueryBufGrew { id } => crate::cevict::query_grew(srv, id),
        Msg::Commands { id, cmds } => {
            let Some(mut c) = srv.clients.remove(&id) else {
                return;
            };
            // Redis's evictClients before a command: the batch's arguments count now.
            if srv.cevict.limit != 0
                && crate::cevict::before_batch(srv, &mut c, crate::cevict::argv_bytes(&cmds))
            {
                srv.forget_client(&mut c);
                return;
            }
            // One clock read per command: a command starts at the time the previous one's
            // duration was measured (nothing waits in between).
            srv.call_end_us = None;
            // One reply per command in the common case: one allocation for the batch's replies.
            c.out.reserve(cmds.len());
            for argv in cmds {
                if c.closed || c.close_after_reply {
                    break;
                }
                let now = srv.call_end_us.take();
                process_command_at(srv, &mut c, argv, now);
            }
            srv.call_end_us = None;
            // No command of this client runs any more (tracking tells a running client from
            // one that is gone by this).
            srv.current_client = 0;
            // Each reply's position is in `c.need` (`process_command_at`); replies that are
            // not a command's (errors before it runs, QUEUED) reveal no data.
            c.flush(0, true);
            crate::obuf::check(&mut c, &srv.hot.obuf, now_ms());
            // The output buffer limit goes first: a client it closed is not counted.
            if !c.closed && srv.cevict.limit != 0 {
                crate::cevict::after_batch(srv, &mut c);
            }
            if c.closed {
                srv.forget_client(&mut c);
            } else {
                srv.clients.insert(id, c);
            }
        }
        Msg::ProtocolError { id, msg } => {
            if let Some(mut c) = srv.clients.remove(&id) {
                c.reply(Reply::Error(msg));
                c.close_after_reply = true;
                let pos = srv.log.pos();
                c.flush(pos, true);
                srv.forget_client(&mut c);
            }
        }
        Msg::Disconnect { id } => {
            if let Some(mut c) = srv.clients.remove(&id) {
                srv.forget_client(&mut c);
            }
        }
        Msg::Replica(m) => crate::replica::handle(srv, m),
        Msg::Signal { sigint } => crate::persist::signal_shutdown(srv, sigint),
    }
}

/// Timers: LRU clock, blocked-client timeouts, idle-client timeout, active expiry,
/// persistence (save rules, automatic rewrite).
fn cron(srv: &mut Server) {
    if srv.cron_paused {
        return;
    }
    if let Some(sigint) = srv.shutdown_signal.take() {
        crate::persist::start_signal_shutdown(srv, sigint);
    }
    srv.lru_clock = lru_clock_now();
    let now = now_ms();
    // Blocked clients whose deadline passed.
    let expired: Vec<ClientId> = srv
        .clients
        .values()
        .filter(|c| {
            c.blocked
                .as_ref()
                .is_some_and(|b| b.deadline_ms.is_some_and(|d| d <= now))
        })
        .map(|c| c.id)
        .collect();
    for id in expired {
        if let Some(mut c) = srv.clients.remove(&id) {
            unblock_with(srv, &mut c, None);
            srv.clients.insert(id, c);
        }
    }
    // Idle clients.
    let timeout_s = srv.cfg.get_i64("timeout");
    if timeout_s > 0 {
        for c in srv.clients.values_mut() {
            if c.blocked.is_none()
                && c.sub_count() == 0
                && c.ssubs.is_empty()
                && !c.monitor
                && !c.is_replica
                && now - c.last_interaction_ms > timeout_s * 1000
            {
                c.closed = true;
            }
        }
    }
    // Output buffer limits, also without new replies (Redis's clientsCron): a client over its
    // soft limit that is sent nothing more is still closed once the soft seconds have passed.
    let limits = srv.hot.obuf;
    for c in srv.clients.values_mut() {
        if c.shared.out_bytes() > 0 {
            crate::obuf::check(c, &limits, now);
        }
    }
    // A replica does not expire keys itself: the master sends the DELs; nor does a server
    // whose writes are paused.
    if srv.active_expire_enabled && !srv.expiry_held(now) {
        let t = now_us();
        active_expire(srv, now);
        latency_sample(srv, "expire-cycle", (now_us() - t).max(0) as u64);
    } else if srv.active_expire_enabled && !srv.pause.holds_writes(now) {
        // A writable replica's own keys with a TTL are its to expire.
        crate::replica::expire_local_keys(srv, now);
    }
    // Client memory measured again (output buffers drained meanwhile), clients evicted.
    crate::cevict::cron(srv);
    // Evictions left over by a command's time budget, or a lowered `maxmemory`.
    if srv.hot.maxmemory != 0 {
        crate::evict::perform_evictions(srv);
    }
    // A lowered `tracking-table-max-keys` applies without commands too.
    if srv.tracking.clients != 0 {
        crate::tracking::enforce_limit(srv, None);
    }
    crate::replica::cron(srv);
    crate::master::cron(srv);
    crate::failover::cron(srv);
    crate::cmd::migrate::cron(srv);
    if srv.cfg.get_bool("activerehashing") {
        active_rehash(srv);
    }
    srv.persistence_cron();
}

/// Redis's `activerehashing`: up to 1 ms per cron tick moving records of growing key and
/// expires indexes to their new tables (commands move a few each too; this finishes the move
/// when the server is idle, freeing the old table).
fn active_rehash(srv: &mut Server) {
    const BATCH: usize = 1000;
    let start = now_us();
    for db in srv.dbs.iter_mut() {
        while db.keys.rehash_step(BATCH) || db.expires.rehash_step(BATCH) {
            if now_us().saturating_sub(start) >= 1000 {
                return;
            }
        }
    }
}

impl Server {
    /// A replica: linked to a master (`replica` set, or taken out while the master's
    /// commands run).
    pub fn is_replica(&self) -> bool {
        self.replica.is_some() || self.applying_master_stream
    }

    /// Whether keys past their TTL are left in place (a replica: its master's DELs remove them;
    /// CLIENT PAUSE: the dataset is frozen); reads then answer as if they were gone.
    pub fn expiry_held(&self, now_ms: i64) -> bool {
        self.is_replica() || self.pause.holds_writes(now_ms)
    }

    /// Run `f` with the persistence layer, taken out of the server for the call (it gets the
    /// server mutably too).
    pub fn with_persistence<T>(
        &mut self,
        f: impl FnOnce(&mut dyn crate::persist::Persistence, &mut Server) -> T,
    ) -> T {
        let mut p = std::mem::replace(
            &mut self.persistence,
            Box::new(crate::persist::NoPersistence),
        );
        let r = f(p.as_mut(), self);
        self.persistence = p;
        r
    }

    /// Advance the running snapshot; when its file is complete, let the persistence layer
    /// install it.
    fn snapshot_step(&mut self) {
        if crate::compaction::step(self) {
            if crate::master::owns_snapshot(self) {
                crate::master::snapshot_done(self);
            } else {
                self.with_persistence(|p, srv| p.snapshot_done(srv));
            }
        }
    }

    fn persistence_poll(&mut self) {
        self.with_persistence(|p, srv| p.poll(srv));
    }

    fn persistence_cron(&mut self) {
        self.with_persistence(|p, srv| p.cron(srv));
    }
}

/// A latency monitor sample for `event` if it took `latency-monitor-threshold` or more.
pub fn latency_sample(srv: &mut Server, event: &'static str, dur_us: u64) {
    let threshold = srv.hot.latency_monitor_threshold_ms;
    let ms = dur_us / 1000;
    if threshold > 0 && ms as i64 >= threshold {
        srv.latency.add(event, ms, now_ms() / 1000);
    }
}

/// Redis's adaptive active expiry: per db, sample keys with a TTL, delete the expired ones, and
/// repeat while more than 10% of the sample was expired, within a time budget.
fn active_expire(srv: &mut Server, now: i64) {
    let budget_us = (1_000_000 / srv.hz.max(1)) * crate::limits::ACTIVE_EXPIRE_CYCLE_PERCENT / 100;
    let start = now_us();
    let effort = srv.cfg.get_i64("active-expire-effort").clamp(1, 10) as usize;
    let per_loop = ACTIVE_EXPIRE_KEYS_PER_LOOP + ACTIVE_EXPIRE_KEYS_PER_LOOP / 4 * (effort - 1);
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for db in 0..srv.dbs.len() {
        loop {
            let n = srv.dbs[db].expires.len();
            if n == 0 {
                break;
            }
            let sample = per_loop.min(n);
            let mut expired = 0;
            for _ in 0..sample {
                let n = srv.dbs[db].expires.len();
                if n == 0 {
                    break;
                }
                let i = rng.gen_range(0..n);
                let Some((k, &t)) = srv.dbs[db].expires.get_index(i) else {
                    break;
                };
                if t <= now {
                    let k = k.clone();
                    srv.expire_key(db, &k);
                    expired += 1;
                }
            }
            if (now_us() - start) as u64 > budget_us {
                return;
            }
            if expired * 10 <= sample {
                break;
            }
        }
    }
}

/// Run `argv` on the server as a loading client (log replay at start): no log append, no
/// replies, no expiry.
pub fn replay_command(srv: &mut Server, client: &mut Client, argv: &[Bytes]) -> Result<(), String> {
    let Some(spec) = lookup_command(&argv[0]) else {
        return Err(format!(
            "Unknown command '{}' reading the append only file",
            String::from_utf8_lossy(&argv[0])
        ));
    };
    let n = argv.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(format!("wrong number of arguments for '{}'", spec.name));
    }
    let now = now_ms();
    let mut ctx = Ctx::new(srv, client, now);
    ctx.loading = true;
    let r = (spec.handler)(&mut ctx, argv);
    let dirty = ctx.dirty;
    srv.dirty += dirty;
    if let Reply::Error(e) = r {
        // Redis ignores errors of replayed commands (they happened at run time too).
        tracing::debug!("replayed command returned an error: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ConnShared;

    fn words(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn slowlog_redacts_passwords() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["AUTH", "pw"], &["AUTH", "(redacted)"]),
            (&["auth", "u", "pw"], &["auth", "(redacted)", "(redacted)"]),
            (
                &["HELLO", "3", "AUTH", "u", "pw", "SETNAME", "n"],
                &[
                    "HELLO",
                    "3",
                    "AUTH",
                    "(redacted)",
                    "(redacted)",
                    "SETNAME",
                    "n",
                ],
            ),
            (
                &["acl", "SETUSER", "bob", ">pw"],
                &["acl", "SETUSER", "(redacted)", "(redacted)"],
            ),
            (
                &["config", "set", "maxmemory", "1", "REQUIREPASS", "pw"],
                &[
                    "config",
                    "set",
                    "maxmemory",
                    "1",
                    "REQUIREPASS",
                    "(redacted)",
                ],
            ),
            (&["set", "auth", "x"], &["set", "auth", "x"]),
        ];
        for (argv, want) in cases {
            let argv = words(argv);
            let got = crate::cmd::redact::redacted(&argv).unwrap_or_else(|| argv.clone());
            assert_eq!(got, words(want), "{argv:?}");
        }
    }

    fn server_and_client() -> (Server, Client) {
        let cfg = Config::from_args(&[]).expect("default config");
        let srv = Server::new(cfg);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(ConnShared::default());
        let c = Client::new(1, tx, shared, "test".into(), "test".into(), 0, false);
        (srv, c)
    }

    fn run(srv: &mut Server, c: &mut Client, args: &[&str]) -> Reply {
        let argv: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        process_command(srv, c, argv);
        c.out.pop().expect("a reply")
    }

    const HOT_INTS: &[&str] = &[
        "slowlog-log-slower-than",
        "slowlog-max-len",
        "proto-max-bulk-len",
        "list-max-listpack-size",
        "list-compress-depth",
        "hash-max-listpack-entries",
        "hash-max-listpack-value",
        "set-max-intset-entries",
        "zset-max-listpack-entries",
        "zset-max-listpack-value",
        "maxclients",
    ];

    #[test]
    fn hot_config_matches_config_and_follows_config_set() {
        let (mut srv, mut c) = server_and_client();
        for name in HOT_INTS {
            assert_eq!(srv.hot.get_i64(name), Some(srv.cfg.get_i64(name)), "{name}");
        }
        assert_eq!(srv.hot.get_i64("hz"), None);
        assert_eq!(srv.cfg_i64("hz"), srv.cfg.get_i64("hz"));
        let r = run(
            &mut srv,
            &mut c,
            &[
                "CONFIG",
                "SET",
                "slowlog-log-slower-than",
                "0",
                "hash-max-listpack-entries",
                "7",
                "requirepass",
                "x",
            ],
        );
        assert_eq!(r, crate::resp::OK);
        assert_eq!(srv.hot.slowlog_log_slower_than, 0);
        assert_eq!(srv.cfg_i64("hash-max-listpack-entries"), 7);
        assert!(srv.hot.requirepass_set);
        assert_eq!(srv.hot, HotConfig::from_config(&srv.cfg));
        // The new threshold applies at once: every command is now slow enough.
        let before = srv.slowlog.len();
        run(&mut srv, &mut c, &["PING"]);
        assert_eq!(srv.slowlog.len(), before + 1);
    }

    #[test]
    fn command_index_answers_as_the_table() {
        for spec in &cmd::table().all {
            let name = spec.name.as_bytes();
            let upper = name.to_ascii_uppercase();
            assert!(std::ptr::eq(lookup_command(name).unwrap(), *spec));
            assert!(std::ptr::eq(lookup_command(&upper).unwrap(), *spec));
        }
        for bad in [
            &b""[..],
            b"nosuchcommand",
            b"se",
            b"sett",
            b"\xffset",
            &[b'a'; 40][..],
        ] {
            assert!(lookup_command(bad).is_none());
            assert!(cmd::table().get(bad).is_none());
        }
    }

    #[test]
    fn commandstats_count_through_the_fx_map() {
        let (mut srv, mut c) = server_and_client();
        run(&mut srv, &mut c, &["SET", "k", "v"]);
        run(&mut srv, &mut c, &["set", "k", "v"]);
        run(&mut srv, &mut c, &["GET", "k", "extra"]);
        assert_eq!(srv.stats.per_cmd.get("set").map(|e| e.calls), Some(2));
        assert_eq!(srv.stats.per_cmd.get("get").map(|e| e.rejected), Some(1));
        assert!(c.last_interaction_ms > 0);
    }
}

/// Which log position each reply waits for (`durability`): writes and anything that is not a
/// read of named keys wait for the log end; reads of named keys for their last change.
#[cfg(test)]
mod read_wait_tests {
    use super::*;
    use crate::client::{ConnShared, Outgoing};
    use crate::durability::Gate;
    use tokio::sync::mpsc::UnboundedReceiver;

    fn argv(args: &[&str]) -> Vec<Bytes> {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    struct Fixture {
        srv: Server,
        clients: Vec<(Client, UnboundedReceiver<Outgoing>)>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let cfg = Config::from_args(&[]).expect("default config");
            let mut srv = Server::new(cfg);
            srv.log
                .set_sink(Some(crate::durability::RecordingSink::new().0), 0);
            let clients = (0..2)
                .map(|i| {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let shared = Arc::new(ConnShared::default());
                    let c = Client::new(i + 1, tx, shared, "t".into(), "t".into(), 0, false);
                    (c, rx)
                })
                .collect();
            Fixture { srv, clients }
        }

        /// One batch of commands from client `i`, as `handle_msg` runs it, then the end of the
        /// round; returns the position its replies wait for.
        fn batch(&mut self, i: usize, cmds: &[&[&str]]) -> u64 {
            let (c, rx) = &mut self.clients[i];
            for args in cmds {
                process_command(&mut self.srv, c, argv(args));
            }
            c.flush(0, true);
            self.srv.log.submit();
            let o = rx.try_recv().expect("replies");
            o.wait_pos
        }

        fn one(&mut self, i: usize, args: &[&str]) -> u64 {
            self.batch(i, &[args])
        }

        /// The log writer reports everything so far written and fsynced.
        fn release_all(&mut self) {
            let end = self.srv.log.pos();
            self.srv.log.gate_tx.send_replace(Gate {
                written: end,
                synced: end,
                always: true,
                failed: false,
            });
        }
    }

    #[test]
    fn a_read_waits_only_for_the_last_change_to_its_keys() {
        let mut f = Fixture::new();
        let set_k = f.one(0, &["SET", "k", "v"]);
        assert_eq!(set_k, f.srv.log.pos(), "a write waits for the log end");
        let set_j = f.one(0, &["SET", "j", "v"]);
        assert!(set_j > set_k);
        // Another client: keys nobody changed are at rest; changed ones wait for their bytes.
        assert_eq!(f.one(1, &["GET", "other"]), 0);
        assert_eq!(f.one(1, &["GET", "k"]), set_k);
        assert_eq!(f.one(1, &["MGET", "other", "k"]), set_k);
        assert_eq!(f.one(1, &["EXISTS", "j", "k"]), set_j);
        assert_eq!(f.one(1, &["STRLEN", "j"]), set_j);
        // A batch waits for the most any of its replies needs.
        assert_eq!(f.batch(1, &[&["GET", "j"], &["GET", "other"]]), set_j);
        // The same key in another database is another key.
        f.one(1, &["SELECT", "1"]);
        assert_eq!(f.one(1, &["GET", "k"]), 0);
        f.one(1, &["SELECT", "0"]);
        // Not a read of named keys: the log end.
        let end = f.srv.log.pos();
        assert_eq!(f.one(1, &["DBSIZE"]), end);
        assert_eq!(f.one(1, &["SCAN", "0"]), end);
        assert_eq!(f.one(1, &["SORT_RO", "k", "BY", "nosort"]), end);
        // A write that changes nothing still waits for the log end (its reply reveals state).
        assert_eq!(f.one(1, &["DEL", "absent"]), end);
        // Once released, nothing is remembered.
        f.release_all();
        f.srv.log.submit();
        assert_eq!(f.one(1, &["GET", "k"]), 0);
    }

    #[test]
    fn destinations_outside_the_key_spec_are_changes_too() {
        let mut f = Fixture::new();
        f.batch(
            0,
            &[&["ZADD", "z", "1", "a"], &["RPUSH", "l", "3", "1", "2"]],
        );
        f.release_all();
        f.srv.log.submit();
        let union = f.one(0, &["ZUNIONSTORE", "zdst", "1", "z"]);
        assert_eq!(f.one(1, &["ZRANGE", "zdst", "0", "-1"]), union);
        let sorted = f.one(0, &["SORT", "l", "STORE", "ldst"]);
        assert_eq!(f.one(1, &["LRANGE", "ldst", "0", "-1"]), sorted);
        // As COMMAND GETKEYS reports them (Redis's order).
        let spec = crate::cmd::table().get(b"zunionstore").expect("spec");
        let args = argv(&["ZUNIONSTORE", "d", "2", "a", "b"]);
        assert_eq!(spec.key_positions(&args), vec![1, 3, 4]);
        let spec = crate::cmd::table().get(b"sort").expect("spec");
        let args = argv(&["SORT", "k", "LIMIT", "0", "1", "STORE", "d"]);
        assert_eq!(spec.key_positions(&args), vec![1, 6]);
    }

    #[test]
    fn changes_to_unnamed_keys_make_every_read_wait() {
        let mut f = Fixture::new();
        f.one(0, &["SET", "k", "v"]);
        for cmd in [
            &["FLUSHALL"][..],
            &["SWAPDB", "0", "1"],
            &["MOVE", "k", "2"],
            &["FLUSHDB"],
        ] {
            f.one(0, &["SET", "k", "v"]);
            f.release_all();
            let end = f.one(0, cmd);
            assert_eq!(f.one(1, &["GET", "unrelated"]), end, "{cmd:?}");
        }
    }

    #[test]
    fn a_transactions_changes_are_visible_once_its_exec_is_released() {
        let mut f = Fixture::new();
        f.batch(
            0,
            &[&["MULTI"], &["SET", "a", "1"], &["INCR", "n"], &["EXEC"]],
        );
        let end = f.srv.log.pos();
        // Not the end of the SET: a crash could keep it but not the EXEC, and recovery drops
        // an unfinished transaction.
        assert_eq!(f.one(1, &["GET", "a"]), end);
        assert_eq!(f.one(1, &["GET", "n"]), end);
        assert_eq!(f.one(1, &["GET", "b"]), 0);
    }

    #[test]
    fn an_expiration_a_read_performs_is_waited_for() {
        let mut f = Fixture::new();
        f.one(0, &["SET", "k", "v", "PX", "1"]);
        f.release_all();
        f.srv.log.submit();
        std::thread::sleep(std::time::Duration::from_millis(5));
        // The read finds it expired and logs its DEL: the nil waits for the DEL.
        let before = f.srv.log.pos();
        let w = f.one(1, &["GET", "k"]);
        assert!(w > before, "waits for the logged DEL");
        assert_eq!(w, f.srv.log.pos());
    }

    #[test]
    fn a_proto_switch_mid_batch_keeps_earlier_replies_waiting() {
        let mut f = Fixture::new();
        let (c, rx) = &mut f.clients[0];
        for args in [&["SET", "k", "v"][..], &["HELLO", "3"]] {
            process_command(&mut f.srv, c, argv(args));
        }
        c.flush(0, true);
        let set = rx
            .try_recv()
            .expect("the SET's reply, sent before the switch");
        assert_eq!(set.proto, 2);
        assert!(set.wait_pos > 0, "the SET's reply waits for its bytes");
    }
}
