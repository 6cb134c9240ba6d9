//! Configuration: redis.conf names, parsed as redis-server does (file first, then `--name value`
//! overrides from argv), CONFIG GET/SET with glob patterns, and CONFIG REWRITE.
//!
//! Every option is declared once in [`OPTIONS`] with its kind, default, whether it can change at
//! runtime, and whether Strongbox implements it yet. Options accepted but not implemented log a
//! warning at start when set to a non-default value.
//!
//! The table holds every name Redis 7.0.15 accepts in a config file (its `static_configs[]`, with the
//! TLS options of a build with OpenSSL such as Debian's), with Redis's kind, bounds, default and
//! mutability, and Redis's aliases (`slave-*` for `replica-*`, `*-ziplist-*` for `*-listpack-*`,
//! `lua-time-limit` for `busy-reply-threshold`, …): an alias is the same option under a second
//! name. Hidden options (debugging knobs Redis leaves out of `CONFIG GET *`) answer only an exact
//! name. The directives Redis's config loader handles itself (`include`, `rename-command`,
//! `user`, `loadmodule`, `sentinel`) are in [`Config::load_text`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::glob_match;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Bool,
    /// Integer within bounds (no units, as Redis's INTEGER_CONFIG).
    Int(i64, i64),
    /// Memory size with units (1k, 1kb, 1m, 1mb, 1g, 1gb) within bounds, stored in bytes.
    Memory(i64, i64),
    /// A memory size, or a percentage (`10%`, stored as -10) of `maxmemory`.
    MemoryOrPercent(i64, i64),
    /// An integer written in octal (`unixsocketperm`).
    Octal(i64, i64),
    Enum(&'static [&'static str]),
    /// One or more names of an enum of flags (`shutdown-on-sigint save now`).
    Flags(&'static [&'static str]),
    Str,
    /// `save` rules, `bind` lists, and other space-separated values.
    List,
}

/// Options Redis can change at runtime but Strongbox only at start (the log writer would have to
/// reopen, the listeners rebind, the data move): CONFIG SET accepts their current value and
/// refuses a change with a clear message (`dir` only gets that far with
/// `enable-protected-configs`).
const RESTART_TO_CHANGE: &[&str] = &["dir"];

pub struct OptionSpec {
    pub name: &'static str,
    /// A second name for the same option (Redis's `alias`).
    pub alias: Option<&'static str>,
    pub kind: Kind,
    pub default: &'static str,
    pub mutable: bool,
    pub implemented: bool,
    /// Left out of glob matches in CONFIG GET (Redis's HIDDEN_CONFIG).
    pub hidden: bool,
}

const fn opt(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    mutable: bool,
    implemented: bool,
) -> OptionSpec {
    OptionSpec {
        name,
        alias: None,
        kind,
        default,
        mutable,
        implemented,
        hidden: false,
    }
}

impl OptionSpec {
    const fn alias(mut self, alias: &'static str) -> OptionSpec {
        self.alias = Some(alias);
        self
    }

    const fn hidden(mut self) -> OptionSpec {
        self.hidden = true;
        self
    }
}

const YES_NO: Kind = Kind::Bool;
const STR: Kind = Kind::Str;
const MUT: bool = true;
const IMMUTABLE: bool = false;
/// Strongbox does something with the option.
const DONE: bool = true;
/// Accepted (and shown by CONFIG GET) but without effect in Strongbox.
const INERT: bool = false;
const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const UINT_MAX: i64 = u32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;
const MB: i64 = 1 << 20;

const FSYNC: &[&str] = &["everysec", "always", "no"];
const LOGLEVEL: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const SYSLOG_FACILITY: &[&str] = &[
    "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
const SUPERVISED: &[&str] = &["upstart", "systemd", "auto", "no"];
const DISKLESS_LOAD: &[&str] = &["disabled", "on-empty-db", "swapdb"];
const TLS_AUTH: &[&str] = &["no", "yes", "optional"];
/// `relative` is shown as `yes` (the same value in Redis).
const OOM_SCORE_ADJ: &[&str] = &["no", "yes", "relative", "absolute"];
const ACL_PUBSUB: &[&str] = &["allchannels", "resetchannels"];
const SANITIZE: &[&str] = &["no", "yes", "clients"];
const PROTECTED_ACTION: &[&str] = &["no", "yes", "local"];
const ENDPOINT_TYPE: &[&str] = &["ip", "hostname", "unknown-endpoint"];
const PROPAGATION_ERR: &[&str] = &["ignore", "panic", "panic-on-replicas"];
const SHUTDOWN_FLAGS: &[&str] = &["default", "save", "nosave", "now", "force"];

/// Every option Strongbox knows: Redis 7.0's, in the order of its table, then Strongbox's own.
pub static OPTIONS: &[OptionSpec] = &[
    // Yes/no options.
    opt("rdbchecksum", YES_NO, "yes", IMMUTABLE, DONE),
    opt("daemonize", YES_NO, "no", IMMUTABLE, DONE),
    opt("io-threads-do-reads", YES_NO, "no", IMMUTABLE, INERT),
    opt("always-show-logo", YES_NO, "no", IMMUTABLE, DONE),
    opt("protected-mode", YES_NO, "yes", MUT, DONE),
    opt("rdbcompression", YES_NO, "yes", MUT, DONE),
    opt("rdb-del-sync-files", YES_NO, "no", MUT, INERT),
    opt("activerehashing", YES_NO, "yes", MUT, DONE),
    opt("stop-writes-on-bgsave-error", YES_NO, "yes", MUT, DONE),
    opt("set-proc-title", YES_NO, "yes", IMMUTABLE, INERT),
    opt("dynamic-hz", YES_NO, "yes", MUT, INERT),
    opt("lazyfree-lazy-eviction", YES_NO, "no", MUT, INERT),
    opt("lazyfree-lazy-expire", YES_NO, "no", MUT, INERT),
    opt("lazyfree-lazy-server-del", YES_NO, "no", MUT, INERT),
    opt("lazyfree-lazy-user-del", YES_NO, "no", MUT, INERT),
    opt("lazyfree-lazy-user-flush", YES_NO, "no", MUT, INERT),
    opt("repl-disable-tcp-nodelay", YES_NO, "no", MUT, INERT),
    opt("repl-diskless-sync", YES_NO, "yes", MUT, DONE),
    opt("aof-rewrite-incremental-fsync", YES_NO, "yes", MUT, INERT),
    opt("no-appendfsync-on-rewrite", YES_NO, "no", MUT, INERT),
    opt("cluster-require-full-coverage", YES_NO, "yes", MUT, INERT),
    opt("rdb-save-incremental-fsync", YES_NO, "yes", MUT, INERT),
    opt("aof-load-truncated", YES_NO, "yes", MUT, DONE),
    opt("aof-use-rdb-preamble", YES_NO, "yes", MUT, DONE),
    opt("aof-timestamp-enabled", YES_NO, "no", MUT, DONE),
    opt("cluster-replica-no-failover", YES_NO, "no", MUT, INERT).alias("cluster-slave-no-failover"),
    opt("replica-lazy-flush", YES_NO, "no", MUT, INERT).alias("slave-lazy-flush"),
    opt("replica-serve-stale-data", YES_NO, "yes", MUT, DONE).alias("slave-serve-stale-data"),
    opt("replica-read-only", YES_NO, "yes", MUT, DONE).alias("slave-read-only"),
    opt("replica-ignore-maxmemory", YES_NO, "yes", MUT, INERT).alias("slave-ignore-maxmemory"),
    opt("jemalloc-bg-thread", YES_NO, "yes", MUT, INERT),
    opt("activedefrag", YES_NO, "no", MUT, INERT),
    opt("syslog-enabled", YES_NO, "no", IMMUTABLE, INERT),
    opt("cluster-enabled", YES_NO, "no", IMMUTABLE, INERT),
    // Strongbox always logs writes to its AOF (`no` = snapshots only, as Redis).
    opt("appendonly", YES_NO, "yes", MUT, DONE),
    opt("cluster-allow-reads-when-down", YES_NO, "no", MUT, INERT),
    opt(
        "cluster-allow-pubsubshard-when-down",
        YES_NO,
        "yes",
        MUT,
        INERT,
    ),
    opt("crash-log-enabled", YES_NO, "yes", MUT, INERT),
    opt("crash-memcheck-enabled", YES_NO, "yes", MUT, INERT),
    opt("use-exit-on-panic", YES_NO, "no", MUT, INERT).hidden(),
    opt("disable-thp", YES_NO, "yes", IMMUTABLE, DONE),
    opt("cluster-allow-replica-migration", YES_NO, "yes", MUT, INERT),
    opt("replica-announced", YES_NO, "yes", MUT, DONE),
    opt("latency-tracking", YES_NO, "yes", MUT, DONE),
    opt("aof-disable-auto-gc", YES_NO, "no", MUT, INERT),
    opt("replica-ignore-disk-write-errors", YES_NO, "no", MUT, INERT),
    // Strings.
    opt("aclfile", STR, "", IMMUTABLE, DONE),
    opt("unixsocket", STR, "", IMMUTABLE, DONE),
    opt("pidfile", STR, "", IMMUTABLE, DONE),
    opt("replica-announce-ip", STR, "", MUT, DONE).alias("slave-announce-ip"),
    opt("masteruser", STR, "", MUT, DONE),
    opt("cluster-announce-ip", STR, "", MUT, INERT),
    opt("cluster-config-file", STR, "nodes.conf", IMMUTABLE, INERT),
    opt("cluster-announce-hostname", STR, "", MUT, INERT),
    opt("syslog-ident", STR, "redis", IMMUTABLE, INERT),
    opt("dbfilename", STR, "dump.rdb", MUT, DONE),
    opt("appendfilename", STR, "appendonly.aof", IMMUTABLE, DONE),
    opt("appenddirname", STR, "appendonlydir", IMMUTABLE, DONE),
    opt("server_cpulist", STR, "", IMMUTABLE, INERT),
    opt("bio_cpulist", STR, "", IMMUTABLE, INERT),
    opt("aof_rewrite_cpulist", STR, "", IMMUTABLE, INERT),
    opt("bgsave_cpulist", STR, "", IMMUTABLE, INERT),
    opt("ignore-warnings", STR, "", MUT, INERT),
    opt(
        "proc-title-template",
        STR,
        "{title} {listen-addr} {server-mode}",
        MUT,
        INERT,
    ),
    opt("bind-source-addr", STR, "", MUT, DONE),
    opt("logfile", STR, "", IMMUTABLE, DONE),
    opt("masterauth", STR, "", MUT, DONE),
    opt("requirepass", STR, "", MUT, DONE),
    // Enums.
    opt("supervised", Kind::Enum(SUPERVISED), "no", IMMUTABLE, DONE),
    opt(
        "syslog-facility",
        Kind::Enum(SYSLOG_FACILITY),
        "local0",
        IMMUTABLE,
        INERT,
    ),
    opt(
        "repl-diskless-load",
        Kind::Enum(DISKLESS_LOAD),
        "disabled",
        MUT,
        INERT,
    ),
    opt("loglevel", Kind::Enum(LOGLEVEL), "notice", MUT, DONE),
    opt(
        "maxmemory-policy",
        Kind::Enum(POLICIES),
        "noeviction",
        MUT,
        DONE,
    ),
    opt("appendfsync", Kind::Enum(FSYNC), "everysec", MUT, DONE),
    opt("oom-score-adj", Kind::Enum(OOM_SCORE_ADJ), "no", MUT, DONE),
    opt(
        "acl-pubsub-default",
        Kind::Enum(ACL_PUBSUB),
        "resetchannels",
        MUT,
        DONE,
    ),
    opt(
        "sanitize-dump-payload",
        Kind::Enum(SANITIZE),
        "no",
        MUT,
        INERT,
    ),
    opt(
        "enable-protected-configs",
        Kind::Enum(PROTECTED_ACTION),
        "no",
        IMMUTABLE,
        DONE,
    ),
    opt(
        "enable-debug-command",
        Kind::Enum(PROTECTED_ACTION),
        "no",
        IMMUTABLE,
        DONE,
    ),
    opt(
        "enable-module-command",
        Kind::Enum(PROTECTED_ACTION),
        "no",
        IMMUTABLE,
        INERT,
    ),
    opt(
        "cluster-preferred-endpoint-type",
        Kind::Enum(ENDPOINT_TYPE),
        "ip",
        MUT,
        INERT,
    ),
    opt(
        "propagation-error-behavior",
        Kind::Enum(PROPAGATION_ERR),
        "ignore",
        MUT,
        INERT,
    ),
    opt(
        "shutdown-on-sigint",
        Kind::Flags(SHUTDOWN_FLAGS),
        "default",
        MUT,
        DONE,
    ),
    opt(
        "shutdown-on-sigterm",
        Kind::Flags(SHUTDOWN_FLAGS),
        "default",
        MUT,
        DONE,
    ),
    // Integers.
    opt("databases", Kind::Int(1, INT_MAX), "16", IMMUTABLE, DONE),
    opt("port", Kind::Int(0, 65535), "6379", MUT, DONE),
    opt("io-threads", Kind::Int(1, 128), "1", IMMUTABLE, DONE),
    opt(
        "auto-aof-rewrite-percentage",
        Kind::Int(0, INT_MAX),
        "100",
        MUT,
        DONE,
    ),
    opt(
        "cluster-replica-validity-factor",
        Kind::Int(0, INT_MAX),
        "10",
        MUT,
        INERT,
    )
    .alias("cluster-slave-validity-factor"),
    opt(
        "list-max-listpack-size",
        Kind::Int(INT_MIN, INT_MAX),
        "-2",
        MUT,
        DONE,
    )
    .alias("list-max-ziplist-size"),
    opt("tcp-keepalive", Kind::Int(0, INT_MAX), "300", MUT, DONE),
    opt(
        "cluster-migration-barrier",
        Kind::Int(0, INT_MAX),
        "1",
        MUT,
        INERT,
    ),
    opt("active-defrag-cycle-min", Kind::Int(1, 99), "1", MUT, INERT),
    opt(
        "active-defrag-cycle-max",
        Kind::Int(1, 99),
        "25",
        MUT,
        INERT,
    ),
    opt(
        "active-defrag-threshold-lower",
        Kind::Int(0, 1000),
        "10",
        MUT,
        INERT,
    ),
    opt(
        "active-defrag-threshold-upper",
        Kind::Int(0, 1000),
        "100",
        MUT,
        INERT,
    ),
    opt("lfu-log-factor", Kind::Int(0, INT_MAX), "10", MUT, DONE),
    opt("lfu-decay-time", Kind::Int(0, INT_MAX), "1", MUT, DONE),
    opt("replica-priority", Kind::Int(0, INT_MAX), "100", MUT, DONE).alias("slave-priority"),
    opt(
        "repl-diskless-sync-delay",
        Kind::Int(0, INT_MAX),
        "5",
        MUT,
        DONE,
    ),
    opt("maxmemory-samples", Kind::Int(1, INT_MAX), "5", MUT, DONE),
    opt(
        "maxmemory-eviction-tenacity",
        Kind::Int(0, 100),
        "10",
        MUT,
        DONE,
    ),
    opt("timeout", Kind::Int(0, INT_MAX), "0", MUT, DONE),
    opt("replica-announce-port", Kind::Int(0, 65535), "0", MUT, DONE).alias("slave-announce-port"),
    opt("tcp-backlog", Kind::Int(0, INT_MAX), "511", IMMUTABLE, DONE),
    opt("cluster-port", Kind::Int(0, 65535), "0", IMMUTABLE, INERT),
    opt(
        "cluster-announce-bus-port",
        Kind::Int(0, 65535),
        "0",
        MUT,
        INERT,
    ),
    opt(
        "cluster-announce-port",
        Kind::Int(0, 65535),
        "0",
        MUT,
        INERT,
    ),
    opt(
        "cluster-announce-tls-port",
        Kind::Int(0, 65535),
        "0",
        MUT,
        INERT,
    ),
    opt("repl-timeout", Kind::Int(1, INT_MAX), "60", MUT, DONE),
    opt(
        "repl-ping-replica-period",
        Kind::Int(1, INT_MAX),
        "10",
        MUT,
        DONE,
    )
    .alias("repl-ping-slave-period"),
    opt(
        "list-compress-depth",
        Kind::Int(0, INT_MAX),
        // Redis's default is 0 (no compression); Strongbox compresses the interior nodes of
        // lists by default (docs/design.md, "List compression").
        "1",
        MUT,
        DONE,
    ),
    opt(
        "rdb-key-save-delay",
        Kind::Int(INT_MIN, INT_MAX),
        "0",
        MUT,
        DONE,
    )
    .hidden(),
    opt(
        "key-load-delay",
        Kind::Int(INT_MIN, INT_MAX),
        "0",
        MUT,
        DONE,
    )
    .hidden(),
    opt("active-expire-effort", Kind::Int(1, 10), "1", MUT, DONE),
    // Redis clamps values outside 1..=500 (at load and on CONFIG SET) rather than refusing them.
    opt("hz", Kind::Int(0, INT_MAX), "10", MUT, DONE),
    opt(
        "min-replicas-to-write",
        Kind::Int(0, INT_MAX),
        "0",
        MUT,
        DONE,
    )
    .alias("min-slaves-to-write"),
    opt(
        "min-replicas-max-lag",
        Kind::Int(0, INT_MAX),
        "10",
        MUT,
        DONE,
    )
    .alias("min-slaves-max-lag"),
    opt("watchdog-period", Kind::Int(0, INT_MAX), "0", MUT, INERT).hidden(),
    opt("shutdown-timeout", Kind::Int(0, INT_MAX), "10", MUT, DONE),
    opt(
        "repl-diskless-sync-max-replicas",
        Kind::Int(0, INT_MAX),
        "0",
        MUT,
        DONE,
    ),
    opt("maxclients", Kind::Int(1, UINT_MAX), "10000", MUT, DONE),
    opt(
        "socket-mark-id",
        Kind::Int(0, UINT_MAX),
        "0",
        IMMUTABLE,
        INERT,
    ),
    opt(
        "unixsocketperm",
        Kind::Octal(0, 0o777),
        "0",
        IMMUTABLE,
        DONE,
    ),
    opt(
        "active-defrag-max-scan-fields",
        Kind::Int(1, LONG_MAX),
        "1000",
        MUT,
        INERT,
    ),
    opt("slowlog-max-len", Kind::Int(0, LONG_MAX), "128", MUT, DONE),
    opt("acllog-max-len", Kind::Int(0, LONG_MAX), "128", MUT, DONE),
    opt(
        "busy-reply-threshold",
        Kind::Int(0, LONG_MAX),
        "5000",
        MUT,
        INERT,
    )
    .alias("lua-time-limit"),
    opt(
        "cluster-node-timeout",
        Kind::Int(0, LONG_MAX),
        "15000",
        MUT,
        INERT,
    ),
    opt(
        "slowlog-log-slower-than",
        Kind::Int(-1, LONG_MAX),
        "10000",
        MUT,
        DONE,
    ),
    opt(
        "latency-monitor-threshold",
        Kind::Int(0, LONG_MAX),
        "0",
        MUT,
        DONE,
    ),
    opt(
        "proto-max-bulk-len",
        Kind::Memory(MB, LONG_MAX),
        "536870912",
        MUT,
        DONE,
    ),
    opt(
        "stream-node-max-entries",
        Kind::Int(0, LONG_MAX),
        "100",
        MUT,
        INERT,
    ),
    opt(
        "repl-backlog-size",
        Kind::Memory(1, LONG_MAX),
        "1048576",
        MUT,
        DONE,
    ),
    opt("maxmemory", Kind::Memory(0, LONG_MAX), "0", MUT, DONE),
    opt(
        "cluster-link-sendbuf-limit",
        Kind::Memory(0, LONG_MAX),
        "0",
        MUT,
        INERT,
    ),
    opt(
        "hash-max-listpack-entries",
        Kind::Int(0, LONG_MAX),
        "512",
        MUT,
        DONE,
    )
    .alias("hash-max-ziplist-entries"),
    opt(
        "set-max-intset-entries",
        Kind::Int(0, LONG_MAX),
        "512",
        MUT,
        DONE,
    ),
    opt(
        "zset-max-listpack-entries",
        Kind::Int(0, LONG_MAX),
        "128",
        MUT,
        DONE,
    )
    .alias("zset-max-ziplist-entries"),
    opt(
        "active-defrag-ignore-bytes",
        Kind::Memory(1, LONG_MAX),
        "104857600",
        MUT,
        INERT,
    ),
    opt(
        "hash-max-listpack-value",
        Kind::Memory(0, LONG_MAX),
        "64",
        MUT,
        DONE,
    )
    .alias("hash-max-ziplist-value"),
    opt(
        "stream-node-max-bytes",
        Kind::Memory(0, LONG_MAX),
        "4096",
        MUT,
        INERT,
    ),
    opt(
        "zset-max-listpack-value",
        Kind::Memory(0, LONG_MAX),
        "64",
        MUT,
        DONE,
    )
    .alias("zset-max-ziplist-value"),
    opt(
        "hll-sparse-max-bytes",
        Kind::Memory(0, LONG_MAX),
        "3000",
        MUT,
        DONE,
    ),
    opt(
        "tracking-table-max-keys",
        Kind::Int(0, LONG_MAX),
        "1000000",
        MUT,
        DONE,
    ),
    opt(
        "client-query-buffer-limit",
        Kind::Memory(MB, LONG_MAX),
        "1073741824",
        MUT,
        DONE,
    ),
    opt(
        "maxmemory-clients",
        Kind::MemoryOrPercent(-100, LONG_MAX),
        "0",
        MUT,
        DONE,
    ),
    opt(
        "repl-backlog-ttl",
        Kind::Int(0, LONG_MAX),
        "3600",
        MUT,
        DONE,
    ),
    opt(
        "auto-aof-rewrite-min-size",
        Kind::Memory(0, LONG_MAX),
        "67108864",
        MUT,
        DONE,
    ),
    opt(
        "loading-process-events-interval-bytes",
        Kind::Int(1024, INT_MAX),
        "2097152",
        MUT,
        DONE,
    )
    .hidden(),
    // TLS (Redis built with OpenSSL, as Debian's): Strongbox has no TLS listener.
    opt("tls-port", Kind::Int(0, 65535), "0", MUT, INERT),
    opt(
        "tls-session-cache-size",
        Kind::Int(0, INT_MAX),
        "20480",
        MUT,
        INERT,
    ),
    opt(
        "tls-session-cache-timeout",
        Kind::Int(0, INT_MAX),
        "300",
        MUT,
        INERT,
    ),
    opt("tls-cluster", YES_NO, "no", MUT, INERT),
    opt("tls-replication", YES_NO, "no", MUT, INERT),
    opt("tls-auth-clients", Kind::Enum(TLS_AUTH), "yes", MUT, INERT),
    opt("tls-prefer-server-ciphers", YES_NO, "no", MUT, INERT),
    opt("tls-session-caching", YES_NO, "yes", MUT, INERT),
    opt("tls-cert-file", STR, "", MUT, INERT),
    opt("tls-key-file", STR, "", MUT, INERT),
    opt("tls-key-file-pass", STR, "", MUT, INERT),
    opt("tls-client-cert-file", STR, "", MUT, INERT),
    opt("tls-client-key-file", STR, "", MUT, INERT),
    opt("tls-client-key-file-pass", STR, "", MUT, INERT),
    opt("tls-dh-params-file", STR, "", MUT, INERT),
    opt("tls-ca-cert-file", STR, "", MUT, INERT),
    opt("tls-ca-cert-dir", STR, "", MUT, INERT),
    opt("tls-protocols", STR, "", MUT, INERT),
    opt("tls-ciphers", STR, "", MUT, INERT),
    opt("tls-ciphersuites", STR, "", MUT, INERT),
    // Options with their own syntax.
    opt("dir", STR, "", MUT, DONE),
    opt("save", Kind::List, "3600 1 300 100 60 10000", MUT, DONE),
    opt(
        "client-output-buffer-limit",
        Kind::List,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        MUT,
        DONE,
    ),
    opt("oom-score-adj-values", Kind::List, "0 200 800", MUT, DONE),
    opt("notify-keyspace-events", STR, "", MUT, DONE),
    opt("bind", Kind::List, "* -::*", MUT, DONE),
    // Makes this server a replica at start (see `replica`).
    opt("replicaof", Kind::List, "", IMMUTABLE, DONE).alias("slaveof"),
    opt(
        "latency-tracking-info-percentiles",
        Kind::List,
        "50 99 99.9",
        MUT,
        DONE,
    ),
    // Redis 7.2 names (Strongbox keeps sets as intset or hash table, as Redis 7.0).
    opt(
        "set-max-listpack-entries",
        Kind::Int(0, LONG_MAX),
        "128",
        MUT,
        INERT,
    ),
    opt(
        "set-max-listpack-value",
        Kind::Memory(0, LONG_MAX),
        "64",
        MUT,
        INERT,
    ),
    // Strongbox's own (appendfsync-delay-max-ms is reserved: nothing reads it yet).
    opt(
        "aof-segment-size",
        Kind::Memory(0, LONG_MAX),
        "67108864",
        MUT,
        DONE,
    ),
    opt(
        "appendfsync-delay-max-ms",
        Kind::Int(0, 60_000),
        "2000",
        MUT,
        INERT,
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Bad directive or wrong number of arguments")]
    BadDirective,
    #[error("wrong number of arguments")]
    WrongArgs,
    #[error("argument must be 'yes' or 'no'")]
    NotYesNo,
    #[error("argument couldn't be parsed into an integer")]
    NotInt,
    #[error("argument must be a memory value")]
    NotMemory,
    #[error("argument must be a memory or percent value")]
    NotMemoryOrPercent,
    #[error("argument(s) must be one of the following: {0}")]
    NotEnum(String),
    #[error("argument must be between {0} and {1} inclusive")]
    OutOfRange(i64, i64),
    #[error("percentage argument must be less or equal to {0}")]
    PercentTooLarge(i64),
    #[error("Invalid save parameters")]
    BadSave,
    #[error("{0}")]
    Other(String),
}

/// Parse a memory value as redis.conf does: `1k`=1000, `1kb`=1024, `1m`, `1mb`, `1g`, `1gb`.
pub fn parse_memory(s: &str) -> Option<i64> {
    let l = s.to_ascii_lowercase();
    let (num, mul): (&str, i64) = if let Some(n) = l.strip_suffix("gb") {
        (n, 1 << 30)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = l.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = l.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = l.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1)
    } else {
        (&l[..], 1)
    };
    let v: i64 = num.parse().ok()?;
    v.checked_mul(mul)
}

/// An integer as Redis's `string2ll` reads it: optional `-`, digits, nothing else.
fn parse_int(s: &str) -> Option<i64> {
    if s.starts_with('+') {
        return None;
    }
    s.parse().ok()
}

/// The option `name` (or one of its aliases) names, case-insensitively.
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| {
        o.name.eq_ignore_ascii_case(name) || o.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

fn check_range(v: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    if v < lo || v > hi {
        Err(ConfigError::OutOfRange(lo, hi))
    } else {
        Ok(v)
    }
}

/// Validate and normalise a value for `spec` (CONFIG GET shows the normalised form). Options
/// whose new value depends on the old one (`save` lines in a file, `client-output-buffer-limit`
/// classes) are merged by [`Config`].
pub fn normalise(spec: &OptionSpec, value: &str) -> Result<String, ConfigError> {
    match spec.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err(ConfigError::NotYesNo),
        },
        Kind::Int(lo, hi) => {
            let v = parse_int(value).ok_or(ConfigError::NotInt)?;
            Ok(check_range(v, lo, hi)?.to_string())
        }
        Kind::Memory(lo, hi) => {
            let v = parse_memory(value).ok_or(ConfigError::NotMemory)?;
            if v < 0 {
                return Err(ConfigError::NotMemory);
            }
            Ok(check_range(v, lo, hi)?.to_string())
        }
        Kind::MemoryOrPercent(lo, hi) => {
            let v = match value.strip_suffix('%') {
                Some(p) => -parse_int(p)
                    .filter(|p| *p >= 0)
                    .ok_or(ConfigError::NotMemoryOrPercent)?,
                None => parse_memory(value)
                    .filter(|v| *v >= 0)
                    .ok_or(ConfigError::NotMemoryOrPercent)?,
            };
            // A percentage is kept negated: its own bound check and message, as Redis's.
            if v < 0 && v < lo {
                return Err(ConfigError::PercentTooLarge(-lo));
            }
            Ok(check_range(v, lo, hi)?.to_string())
        }
        Kind::Octal(lo, hi) => {
            let v = i64::from_str_radix(value, 8).map_err(|_| ConfigError::NotInt)?;
            Ok(format!("{:o}", check_range(v, lo, hi)?))
        }
        Kind::Enum(vals) => {
            let l = value.to_ascii_lowercase();
            if !vals.contains(&l.as_str()) {
                return Err(ConfigError::NotEnum(vals.join(", ")));
            }
            if spec.name == "oom-score-adj" && l == "relative" {
                return Ok("yes".into());
            }
            Ok(l)
        }
        Kind::Flags(vals) => {
            let mut set = vec![false; vals.len()];
            let words: Vec<&str> = value.split_whitespace().collect();
            if words.is_empty() {
                return Err(ConfigError::NotEnum(vals.join(", ")));
            }
            for w in words {
                let l = w.to_ascii_lowercase();
                let i = vals
                    .iter()
                    .position(|v| *v == l)
                    .ok_or_else(|| ConfigError::NotEnum(vals.join(", ")))?;
                set[i] = true;
            }
            // The first flag ("default") is the empty set: shown only when nothing else is.
            let shown: Vec<&str> = vals
                .iter()
                .zip(&set)
                .skip(1)
                .filter(|(_, on)| **on)
                .map(|(v, _)| *v)
                .collect();
            Ok(if shown.is_empty() {
                vals[0].to_string()
            } else {
                shown.join(" ")
            })
        }
        Kind::Str => normalise_str(spec.name, value),
        Kind::List => normalise_list(spec.name, value),
    }
}

fn normalise_str(name: &str, value: &str) -> Result<String, ConfigError> {
    let is_path = value.contains('/') || value.contains('\\');
    match name {
        "dbfilename" | "appendfilename" if is_path => Err(ConfigError::Other(format!(
            "{name} can't be a path, just a filename"
        ))),
        "appenddirname" if is_path => Err(ConfigError::Other(
            "appenddirname can't be a path, just a dirname".into(),
        )),
        "proc-title-template" if !valid_proc_title(value) => Err(ConfigError::Other(
            "template format is invalid or contains unknown variables".into(),
        )),
        "notify-keyspace-events" => match crate::ctx::notify::parse(value) {
            Some(f) => Ok(crate::ctx::notify::format(f)),
            None => Err(ConfigError::Other(
                "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into(),
            )),
        },
        _ => Ok(value.to_string()),
    }
}

/// Redis's proc-title template check: `{name}` variables it knows, `{{`/`}}` for braces, and
/// something left once the variables are expanded.
fn valid_proc_title(t: &str) -> bool {
    const VARS: &[&str] = &[
        "title",
        "listen-addr",
        "server-mode",
        "port",
        "tls-port",
        "unixsocket",
        "config-file",
    ];
    let b = t.as_bytes();
    let mut i = 0;
    let mut literal = false;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                literal = true;
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                literal = true;
                i += 2;
            }
            b'{' => {
                let Some(end) = t[i + 1..].find('}') else {
                    return false;
                };
                let var = &t[i + 1..i + 1 + end];
                if !VARS.contains(&var) {
                    return false;
                }
                // Every variable but {title} expands to something.
                literal |= var != "title";
                i += end + 2;
            }
            b'}' => return false,
            c => {
                literal |= c != b' ';
                i += 1;
            }
        }
    }
    literal
}

fn normalise_list(name: &str, value: &str) -> Result<String, ConfigError> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    match name {
        "save"
            if !parts.len().is_multiple_of(2)
                || parts.iter().any(|p| p.parse::<u64>().is_err()) =>
        {
            return Err(ConfigError::BadSave);
        }
        "bind" if parts.len() > 16 => {
            return Err(ConfigError::Other(
                "Too many bind addresses specified.".into(),
            ));
        }
        "client-output-buffer-limit" => return merge_obuf_limits("", value),
        "oom-score-adj-values" => {
            if parts.len() != 3 {
                return Err(ConfigError::WrongArgs);
            }
            let mut out = Vec::new();
            for p in parts {
                match parse_int(p) {
                    Some(v) if (-2000..=2000).contains(&v) => out.push(v.to_string()),
                    _ => return Err(ConfigError::Other(
                        "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
                            .into(),
                    )),
                }
            }
            return Ok(out.join(" "));
        }
        "replicaof" => {
            if parts.len() != 2 {
                return Err(ConfigError::WrongArgs);
            }
            if parts[0].eq_ignore_ascii_case("no") && parts[1].eq_ignore_ascii_case("one") {
                return Ok(String::new());
            }
            match parse_int(parts[1]) {
                Some(p) if (0..=65535).contains(&p) => return Ok(format!("{} {p}", parts[0])),
                _ => return Err(ConfigError::Other("Invalid master port".into())),
            }
        }
        "latency-tracking-info-percentiles" => {
            let mut out = Vec::new();
            for p in parts {
                let v: f64 = p.parse().map_err(|_| {
                    ConfigError::Other(
                        "Invalid latency-tracking-info-percentiles parameters".into(),
                    )
                })?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(ConfigError::Other(
                        "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                            .into(),
                    ));
                }
                out.push(format_percentile(v));
            }
            return Ok(out.join(" "));
        }
        _ => {}
    }
    Ok(parts.join(" "))
}

/// `%f` with trailing zeros (and a trailing point) removed, as Redis shows percentiles.
fn format_percentile(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The client classes of `client-output-buffer-limit`, in the order CONFIG GET shows them.
const OBUF_CLASSES: &[&str] = &["normal", "slave", "pubsub"];

/// One class's `client-output-buffer-limit`: bytes (0 = none) and seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObufLimit {
    pub hard: i64,
    pub soft: i64,
    pub soft_seconds: i64,
}

/// The `client-output-buffer-limit` classes: normal, replica, pubsub (the stored value is
/// always the canonical three groups, see [`merge_obuf_limits`]).
pub fn obuf_limits(cfg: &Config) -> [ObufLimit; 3] {
    let v = cfg.get("client-output-buffer-limit");
    let parts: Vec<&str> = v.split_whitespace().collect();
    let mut out = [ObufLimit::default(); 3];
    for g in parts.chunks(4) {
        let class = match g[0] {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => continue,
        };
        if let [_, hard, soft, secs] = g {
            out[class] = ObufLimit {
                hard: parse_memory(hard).unwrap_or(0),
                soft: parse_memory(soft).unwrap_or(0),
                soft_seconds: parse_int(secs).unwrap_or(0),
            };
        }
    }
    out
}

/// Apply `<class> <hard> <soft> <seconds>` groups in `value` to the limits in `prev` (all three
/// classes, as CONFIG GET shows them; empty = the defaults): classes not named keep their values.
fn merge_obuf_limits(prev: &str, value: &str) -> Result<String, ConfigError> {
    let default = find("client-output-buffer-limit").map_or("", |o| o.default);
    let base: Vec<&str> = if prev.is_empty() {
        default.split_whitespace().collect()
    } else {
        prev.split_whitespace().collect()
    };
    let mut limits: Vec<[String; 3]> = OBUF_CLASSES
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let g = base.get(i * 4 + 1..i * 4 + 4).unwrap_or(&["0", "0", "0"]);
            [g[0].to_string(), g[1].to_string(), g[2].to_string()]
        })
        .collect();
    let parts: Vec<&str> = value.split_whitespace().collect();
    if !parts.len().is_multiple_of(4) {
        return Err(ConfigError::Other(
            "Wrong number of arguments in buffer limit configuration.".into(),
        ));
    }
    let mut updates = Vec::new();
    for g in parts.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err(ConfigError::Other(
                    "Invalid client class specified in buffer limit configuration.".into(),
                ))
            }
        };
        let hard = parse_memory(g[1]).filter(|v| *v >= 0);
        let soft = parse_memory(g[2]).filter(|v| *v >= 0);
        let secs = parse_int(g[3]).filter(|v| *v >= 0);
        let (Some(hard), Some(soft), Some(secs)) = (hard, soft, secs) else {
            return Err(ConfigError::Other(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            ));
        };
        updates.push((
            class,
            [hard.to_string(), soft.to_string(), secs.to_string()],
        ));
    }
    for (class, l) in updates {
        limits[class] = l;
    }
    Ok(OBUF_CLASSES
        .iter()
        .zip(&limits)
        .map(|(c, l)| format!("{c} {} {} {}", l[0], l[1], l[2]))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Nested `include`s deeper than this are refused (a file including itself would never end).
const INCLUDE_DEPTH_MAX: usize = 16;

/// `strerror`-like text for an I/O error (without Rust's " (os error N)" suffix).
fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The live configuration: option name → normalised value.
#[derive(Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// The config file given at start, if any (for CONFIG REWRITE).
    pub file: Option<PathBuf>,
    /// Whether a `save` line of the config file has replaced the default rules yet (later lines
    /// add to them, as in Redis).
    save_from_file: bool,
    /// `rename-command` directives in file order: (command, new name; empty = removed).
    pub renamed_commands: Vec<(String, String)>,
    /// Directives accepted without effect, for start-up warnings.
    pub inert_directives: Vec<String>,
    /// `user <name> <rules...>` directives in file order (loaded by `cmd::acl::load_at_start`).
    pub users: Vec<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        let mut values = BTreeMap::new();
        for o in OPTIONS {
            values.insert(o.name, o.default.to_string());
        }
        Config {
            values,
            file: None,
            save_from_file: false,
            renamed_commands: Vec::new(),
            inert_directives: Vec::new(),
            users: Vec::new(),
        }
    }
}

impl Config {
    /// Build from `strongbox-server [conf] [--name value ...]`, as redis-server does.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut cfg = Config::default();
        let mut rest = args;
        if let Some(first) = rest.first() {
            if !first.starts_with("--") {
                if first == "-" {
                    return Err("reading the config from stdin is not supported".into());
                }
                cfg.load_file(Path::new(first), 0)?;
                // Absolute, as Redis's: the server changes directory to `dir` later, and
                // CONFIG REWRITE must still find the file.
                let path = PathBuf::from(first);
                cfg.file = Some(std::path::absolute(&path).unwrap_or(path));
                rest = &rest[1..];
            }
        }
        // Turn "--name v1 v2 --other x" into config lines, as redis-server 7.0 does: an
        // argument starting with "--" begins an option unless it is the first value of an
        // option given alone ("--port --x": "--x" is port's value); "--name value" in one
        // argument is a whole option; other arguments are values of the option before them.
        let mut text = String::new();
        let mut value_given = true;
        for (j, a) in rest.iter().enumerate() {
            let Some(name) = a.strip_prefix("--").filter(|_| value_given) else {
                text.push_str(&repr(a));
                text.push(' ');
                value_given = true;
                continue;
            };
            if name == "version" || name == "help" {
                return Err(format!("--{name}"));
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(name);
            text.push(' ');
            let words = crate::resp::split_args(a.as_bytes()).map_or(1, |w| w.len());
            value_given = words != 1;
            // `--save` with nothing after it means `save ""` (Redis 7.0.1's compatibility).
            let next_is_option = rest.get(j + 1).is_some_and(|n| n.starts_with("--"));
            if words == 1
                && name.eq_ignore_ascii_case("save")
                && (next_is_option || j + 1 == rest.len())
            {
                text.push_str("\"\"");
                value_given = true;
            }
        }
        cfg.load_text(&text)?;
        Ok(cfg)
    }

    /// Load a config file (`include` of an `include`d file counts `depth`). A wildcard in the
    /// file name (`include /etc/strongbox/conf.d/*.conf`) loads every match in name order, and
    /// none is not an error, as in Redis.
    fn load_file(&mut self, path: &Path, depth: usize) -> Result<(), String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.contains(['*', '?', '[']) {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut matches: Vec<PathBuf> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .flatten()
                    .filter(|e| {
                        glob_match(name.as_bytes(), e.file_name().as_encoded_bytes(), false)
                    })
                    .map(|e| dir.join(e.file_name()))
                    .collect(),
                Err(_) => Vec::new(),
            };
            matches.sort();
            for m in matches {
                self.load_one_file(&m, depth)?;
            }
            return Ok(());
        }
        self.load_one_file(path, depth)
    }

    fn load_one_file(&mut self, path: &Path, depth: usize) -> Result<(), String> {
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "Fatal error, can't open config file '{}': {}",
                path.display(),
                os_error(&e)
            )
        })?;
        self.load_source(&String::from_utf8_lossy(&text), Some(path), depth)
    }

    /// Load config-file text. Errors name the line and the problem like redis-server.
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        self.load_source(text, None, 0)?;
        // As Redis: hz outside 1..=500 is clamped rather than refused.
        let hz = self.get_i64("hz").clamp(1, 500);
        self.values.insert("hz", hz.to_string());
        Ok(())
    }

    fn load_source(&mut self, text: &str, file: Option<&Path>, depth: usize) -> Result<(), String> {
        for (lineno, raw) in text.lines().enumerate() {
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |msg: &str| {
                let at = match file {
                    Some(f) if depth > 0 => format!("'{}', at line {}", f.display(), lineno + 1),
                    _ => format!("at line {}", lineno + 1),
                };
                format!(
                    "\n*** FATAL CONFIG FILE ERROR (Strongbox {}) ***\nReading the configuration file, {at}\n>>> '{line}'\n{msg}",
                    env!("CARGO_PKG_VERSION")
                )
            };
            let Some(args) = crate::resp::split_args(line.as_bytes()) else {
                return Err(fail("Unbalanced quotes in configuration line"));
            };
            let args: Vec<String> = args
                .into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect();
            let Some((name, vals)) = args.split_first() else {
                continue;
            };
            if let Some(spec) = find(name) {
                let multi = matches!(spec.kind, Kind::List | Kind::Flags(_));
                if !multi && vals.len() != 1 {
                    return Err(fail("wrong number of arguments"));
                }
                self.assign(spec, &vals.join(" "), true)
                    .map_err(|e| fail(&e.to_string()))?;
                continue;
            }
            let lname = name.to_ascii_lowercase();
            match (lname.as_str(), vals.len()) {
                // Redis ignores these removed options.
                (
                    "list-max-ziplist-entries"
                    | "list-max-ziplist-value"
                    | "lua-replicate-commands",
                    1,
                ) => {}
                ("include", 1) => {
                    if depth >= INCLUDE_DEPTH_MAX {
                        return Err(fail(&format!(
                            "include nested more than {INCLUDE_DEPTH_MAX} deep (does a file include itself?)"
                        )));
                    }
                    self.load_file(Path::new(&vals[0]), depth + 1)?;
                }
                ("rename-command", 2) => {
                    let known = crate::cmd::table().get(vals[0].as_bytes()).is_some()
                        && !self
                            .renamed_commands
                            .iter()
                            .any(|(from, _)| from.eq_ignore_ascii_case(&vals[0]));
                    let renamed_here = self
                        .renamed_commands
                        .iter()
                        .any(|(_, to)| !to.is_empty() && to.eq_ignore_ascii_case(&vals[0]));
                    if !known || renamed_here {
                        return Err(fail("No such command in rename-command"));
                    }
                    let taken = !vals[1].is_empty()
                        && (self
                            .renamed_commands
                            .iter()
                            .any(|(_, to)| to.eq_ignore_ascii_case(&vals[1]))
                            || (crate::cmd::table().get(vals[1].as_bytes()).is_some()
                                && !self
                                    .renamed_commands
                                    .iter()
                                    .any(|(from, _)| from.eq_ignore_ascii_case(&vals[1]))));
                    if taken {
                        return Err(fail("Target command name already exists"));
                    }
                    self.renamed_commands
                        .push((vals[0].to_ascii_lowercase(), vals[1].to_ascii_lowercase()));
                }
                ("user", n) if n >= 1 => {
                    // The rules are applied once the server starts (`cmd::acl::load_at_start`).
                    if self.users.iter().any(|x| x[0] == vals[0]) {
                        return Err(fail(&format!(
                            "Error in user declaration '{}': Duplicate user found. A user can only be defined once in config files",
                            vals[0]
                        )));
                    }
                    self.users.push(vals.to_vec());
                }
                ("loadmodule", n) if n >= 1 => {
                    return Err(fail(&format!(
                        "Strongbox cannot load Redis modules: remove 'loadmodule {}' (the module's commands and types are not available in Strongbox)",
                        vals[0]
                    )));
                }
                ("sentinel", _) => {
                    return Err(fail(
                        "Strongbox is not Redis Sentinel: 'sentinel' directives are not supported (run redis-sentinel)",
                    ));
                }
                _ if lname.contains('.') => {
                    return Err(fail(
                        "Module configuration without a module: Strongbox cannot load Redis modules",
                    ));
                }
                _ => return Err(fail("Bad directive or wrong number of arguments")),
            }
        }
        Ok(())
    }

    /// Store a new value for `spec`. From a config file, `save` lines add to the rules of earlier
    /// lines (the first replaces the defaults; `save ""` clears them).
    fn assign(
        &mut self,
        spec: &'static OptionSpec,
        value: &str,
        from_file: bool,
    ) -> Result<(), ConfigError> {
        let norm = match spec.name {
            "save" if from_file && !value.trim().is_empty() => {
                let rules = normalise(spec, value)?;
                let prev = self.get("save");
                if !self.save_from_file || prev.is_empty() {
                    rules
                } else {
                    format!("{prev} {rules}")
                }
            }
            "client-output-buffer-limit" => merge_obuf_limits(self.get(spec.name), value)?,
            _ => normalise(spec, value)?,
        };
        if spec.name == "save" && from_file {
            self.save_from_file = true;
        }
        self.values.insert(spec.name, norm);
        Ok(())
    }

    /// The value of an option (by its name or an alias); "" for an unknown name.
    pub fn get(&self, name: &str) -> &str {
        if let Some(v) = self.values.get(name) {
            return v;
        }
        find(name)
            .and_then(|o| self.values.get(o.name))
            .map_or("", |s| s.as_str())
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// CONFIG SET semantics: validate, refuse immutable options.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let Some(spec) = find(name) else {
            return Err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        if !spec.mutable {
            return Err(format!("CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"));
        }
        let before = self.get(spec.name).to_string();
        let mut next = self.clone();
        next.assign(spec, value, false).map_err(|e| {
            format!("CONFIG SET failed (possibly related to argument '{name}') - {e}")
        })?;
        if RESTART_TO_CHANGE.contains(&spec.name) && next.get(spec.name) != before {
            return Err(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - changing it at runtime is not supported by Strongbox yet; set it in the config file and restart"
            ));
        }
        let v = next.get(spec.name).to_string();
        self.values.insert(spec.name, v);
        Ok(())
    }

    /// Set an option from start-up code (immutable ones too), with the same value checks.
    pub fn set_startup(&mut self, name: &str, value: &str) -> Result<(), String> {
        let spec = find(name).ok_or_else(|| format!("unknown option '{name}'"))?;
        let mut next = self.clone();
        next.assign(spec, value, false).map_err(|e| e.to_string())?;
        *self = next;
        Ok(())
    }

    /// CONFIG GET with glob patterns: (name, value) pairs in option order, aliases after their
    /// option, hidden options left out (as Redis, they answer only an exact name).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for o in OPTIONS.iter().filter(|o| !o.hidden) {
            for n in std::iter::once(o.name).chain(o.alias) {
                if glob_match(pattern, n.as_bytes(), true) {
                    out.push((n, self.shown(o.name)));
                }
            }
        }
        out
    }

    /// The value CONFIG GET shows for an option.
    pub fn shown(&self, name: &str) -> String {
        let v = self.get(name);
        match find(name).map(|o| o.name) {
            Some("dir") if v.is_empty() => std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Some("maxmemory-clients") if v.starts_with('-') => format!("{}%", &v[1..]),
            _ => v.to_string(),
        }
    }

    /// Options set away from their defaults that Strongbox does not implement yet.
    pub fn unimplemented_in_use(&self) -> Vec<&'static str> {
        OPTIONS
            .iter()
            .filter(|o| !o.implemented && self.get(o.name) != o.default)
            .map(|o| o.name)
            .collect()
    }

    /// The data directory.
    pub fn dir(&self) -> PathBuf {
        let d = self.get("dir");
        if d.is_empty() {
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
        } else {
            PathBuf::from(d)
        }
    }

    /// CONFIG REWRITE: rewrite the config file with the current non-default values.
    pub fn rewrite(&self) -> Result<(), String> {
        self.rewrite_with_users(None)
    }

    /// CONFIG REWRITE; with `users`, the file's `user` lines are replaced by them.
    pub fn rewrite_with_users(&self, users: Option<Vec<String>>) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Err("The server is running without a config file".into());
        };
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let mut out = String::new();
        let mut written = std::collections::HashSet::new();
        for raw in old.lines() {
            let t = raw.trim();
            let name = t.split_whitespace().next().unwrap_or("");
            if t.is_empty() || t.starts_with('#') {
                out.push_str(raw);
                out.push('\n');
                continue;
            }
            if users.is_some() && name.eq_ignore_ascii_case("user") {
                continue;
            }
            if let Some(spec) = find(name) {
                // As Redis (rewriteConfigReplicaOfOption): a master has no `replicaof` line;
                // `replicaof ""` would not even load.
                if spec.name == "replicaof" && self.get("replicaof").is_empty() {
                    continue;
                }
                if written.insert(spec.name) {
                    out.push_str(&format!(
                        "{} {}\n",
                        spec.name,
                        quote(&self.shown(spec.name))
                    ));
                }
            } else {
                out.push_str(raw);
                out.push('\n');
            }
        }
        for o in OPTIONS {
            if !written.contains(o.name) && self.get(o.name) != o.default {
                out.push_str(&format!("{} {}\n", o.name, quote(&self.shown(o.name))));
            }
        }
        for u in users.into_iter().flatten() {
            out.push_str(&u);
            out.push('\n');
        }
        // Durable replacement through the storage crate's one helper (temp, fsync, rename,
        // fsync dir).
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("bad config file path {}", path.display()))?;
        strongbox_storage::fs::write_file_atomic(
            &strongbox_storage::fs::RealFs,
            &dir,
            &name,
            out.as_bytes(),
        )
        .map_err(|e| e.to_string())
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && !s
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c == b'"' || c == b'\'')
    {
        s.to_string()
    } else {
        repr(s)
    }
}

/// `s` in double quotes, escaped (how redis-server writes a command-line value into the
/// config lines it parses, and so shows it in errors).
fn repr(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_overrides_and_empty_save() {
        let c = Config::from_args(&args(&[
            "--port",
            "7000",
            "--save",
            "",
            "--appendfsync",
            "always",
        ]))
        .unwrap();
        assert_eq!(c.get("port"), "7000");
        assert_eq!(c.get("save"), "");
        assert_eq!(c.get("appendfsync"), "always");
        assert_eq!(c.get("appendonly"), "yes");
    }

    #[test]
    fn unknown_and_bad_values_stop_startup_naming_the_option() {
        let e = Config::from_args(&args(&["--no-such-option", "1"]))
            .err()
            .unwrap();
        assert!(
            e.contains("no-such-option") && e.contains("Bad directive"),
            "{e}"
        );
        let e = Config::from_args(&args(&["--appendfsync", "sometimes"]))
            .err()
            .unwrap();
        assert!(
            e.contains("appendfsync") && e.contains("one of the following"),
            "{e}"
        );
        let e = Config::from_args(&args(&["--port", "99999"]))
            .err()
            .unwrap();
        assert!(e.contains("between 0 and 65535"), "{e}");
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("64mb"), Some(64 << 20));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        let c = Config::from_args(&args(&["--aof-segment-size", "256kb"])).unwrap();
        assert_eq!(c.get("aof-segment-size"), "262144");
    }

    #[test]
    fn config_file_save_lines_accumulate() {
        let mut c = Config::default();
        c.load_text("save 900 1\nsave 300 10\n# comment\nport 1234\n")
            .unwrap();
        assert_eq!(c.get("save"), "900 1 300 10");
        assert_eq!(c.get("port"), "1234");
    }

    #[test]
    fn aliases_name_the_same_option() {
        let mut c = Config::default();
        c.load_text("slave-read-only no\nhash-max-ziplist-entries 7\nLUA-TIME-LIMIT 9\nslaveof 10.0.0.1 6380\n")
            .unwrap();
        assert_eq!(c.get("replica-read-only"), "no");
        assert_eq!(c.get("slave-read-only"), "no");
        assert_eq!(c.get("hash-max-listpack-entries"), "7");
        assert_eq!(c.get("busy-reply-threshold"), "9");
        assert_eq!(c.get("replicaof"), "10.0.0.1 6380");
        c.set("slave-read-only", "yes").unwrap();
        assert_eq!(c.get("replica-read-only"), "yes");
        let e = c.set("slaveof", "no one").unwrap_err();
        assert!(e.contains("'slaveof'") && e.contains("immutable"), "{e}");
        // Glob matches list aliases too; hidden options only answer exact names.
        let names: Vec<&str> = c.matching(b"*").into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"slave-read-only") && names.contains(&"replica-read-only"));
        assert!(!names.contains(&"watchdog-period"));
        assert_eq!(c.matching(b"watchdog-period").len(), 0);
        assert_eq!(c.shown("watchdog-period"), "0");
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            assert!(seen.insert(o.name), "{} twice", o.name);
            if let Some(a) = o.alias {
                assert!(seen.insert(a), "{a} twice");
            }
            // Every default is a valid value (but "no replica" has no syntax of its own).
            if o.name != "replicaof" {
                let n = normalise(o, o.default).unwrap_or_else(|e| panic!("{}: {e}", o.name));
                assert_eq!(n, o.default, "{} is not in its normal form", o.name);
            }
        }
    }

    #[test]
    fn a_rewrite_of_a_master_drops_replicaof_as_redis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.conf");
        std::fs::write(&path, "port 7000\nreplicaof 10.0.0.1 6380\n").unwrap();
        let mut c = Config::default();
        c.load_text(&std::fs::read_to_string(&path).unwrap())
            .unwrap();
        c.file = Some(path.clone());
        // REPLICAOF NO ONE (replica.rs) leaves no master behind.
        c.set_startup("replicaof", "no one").unwrap();
        c.rewrite().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("replicaof"), "{text}");
        assert!(text.contains("port 7000"), "{text}");
        // And the file loads again.
        Config::default().load_text(&text).unwrap();
    }

    #[test]
    fn special_values_normalise_as_redis() {
        let mut c = Config::default();
        c.load_text(
            "client-output-buffer-limit normal 0 0 0\nclient-output-buffer-limit replica 1mb 2mb 3\nclient-output-buffer-limit pubsub 1k 2k 4\n",
        )
        .unwrap();
        assert_eq!(
            c.get("client-output-buffer-limit"),
            "normal 0 0 0 slave 1048576 2097152 3 pubsub 1000 2000 4"
        );
        c.set("client-output-buffer-limit", "normal 1 2 3").unwrap();
        assert!(c
            .get("client-output-buffer-limit")
            .starts_with("normal 1 2 3 slave 1048576"));
        assert!(c.set("client-output-buffer-limit", "master 1 2 3").is_err());
        c.set("maxmemory-clients", "10%").unwrap();
        assert_eq!(c.shown("maxmemory-clients"), "10%");
        let e = c.set("maxmemory-clients", "200%").unwrap_err();
        assert!(
            e.ends_with("- percentage argument must be less or equal to 100"),
            "{e}"
        );
        c.set("shutdown-on-sigint", "now save").unwrap();
        assert_eq!(c.get("shutdown-on-sigint"), "save now");
        c.set("latency-tracking-info-percentiles", "50 99.990 100")
            .unwrap();
        assert_eq!(c.get("latency-tracking-info-percentiles"), "50 99.99 100");
        c.set("oom-score-adj", "relative").unwrap();
        assert_eq!(c.get("oom-score-adj"), "yes");
        assert!(c.set("maxmemory-samples", "1k").is_err());
        assert!(c.set("proto-max-bulk-len", "1000").is_err());
        assert!(c.set("dbfilename", "../x.rdb").is_err());
        assert!(c.set("proc-title-template", "{title}").is_err());
        c.set("proc-title-template", "{title} {port}").unwrap();
        let e = c.load_text("unixsocketperm 800").unwrap_err();
        assert!(e.contains("couldn't be parsed"), "{e}");
        c.load_text("unixsocketperm 0700\nhz 1000\n").unwrap();
        assert_eq!(c.get("unixsocketperm"), "700");
        assert_eq!(c.get("hz"), "500");
        let e = c.load_text("port 1 2").unwrap_err();
        assert!(e.contains("wrong number of arguments"), "{e}");
        c.load_text("list-max-ziplist-entries 512\nlua-replicate-commands yes\n")
            .unwrap();
    }

    #[test]
    fn include_loads_in_place_and_refuses_loops() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.conf");
        let b = dir.path().join("b.conf");
        std::fs::write(&b, "maxmemory 5\nsave 10 1\n").unwrap();
        std::fs::write(
            &a,
            format!("save 20 2\ninclude {}\nport 1234\n", b.display()),
        )
        .unwrap();
        let c = Config::from_args(&args(&[a.to_str().unwrap(), "--maxmemory", "6"])).unwrap();
        assert_eq!(c.get("maxmemory"), "6");
        assert_eq!(c.get("save"), "20 2 10 1");
        assert_eq!(c.get("port"), "1234");
        std::fs::write(&b, format!("include {}\n", a.display())).unwrap();
        let e = Config::from_args(&args(&[a.to_str().unwrap()]))
            .err()
            .unwrap();
        assert!(e.contains("include nested"), "{e}");
        let mut c = Config::default();
        let e = c.load_text("include /nonexistent/x.conf").unwrap_err();
        assert_eq!(
            e,
            "Fatal error, can't open config file '/nonexistent/x.conf': No such file or directory"
        );
        // A wildcard matching nothing is not an error.
        c.load_text(&format!("include {}/*.none", dir.path().display()))
            .unwrap();
    }
}
