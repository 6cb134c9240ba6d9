//! Configuration: redis.conf names, parsed as redis-server does (file first, then `--name value`
//! overrides from argv), CONFIG GET/SET with glob patterns, and CONFIG REWRITE.
//!
//! Every option is declared once in [`OPTIONS`] with its kind, default, whether it can change at
//! runtime, and whether Strongbox implements it yet. Options accepted but not implemented log a
//! warning at start when set to a non-default value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::util::glob_match;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Bool,
    /// Integer within bounds.
    Int(i64, i64),
    /// Memory size with units (1k, 1kb, 1m, 1mb, 1g, 1gb), stored in bytes.
    Memory,
    Enum(&'static [&'static str]),
    Str,
    /// `save` rules, `bind` lists, and other space-separated values.
    List,
}

/// Options Redis can change at runtime but Strongbox only at start (the log writer would have to
/// reopen): CONFIG SET accepts their current value and refuses a change with a clear message.
const RESTART_TO_CHANGE: &[&str] = &["appendonly", "appendfsync"];

pub struct OptionSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub mutable: bool,
    pub implemented: bool,
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
        kind,
        default,
        mutable,
        implemented,
    }
}

const YES_NO: Kind = Kind::Bool;
const FSYNC: &[&str] = &["always", "everysec", "no"];
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

/// Every option Strongbox knows.
pub static OPTIONS: &[OptionSpec] = &[
    opt("port", Kind::Int(0, 65535), "6379", false, true),
    opt("bind", Kind::List, "127.0.0.1 -::1", false, true),
    opt("timeout", Kind::Int(0, i32::MAX as i64), "0", true, true),
    opt(
        "tcp-keepalive",
        Kind::Int(0, i32::MAX as i64),
        "300",
        true,
        true,
    ),
    opt(
        "tcp-backlog",
        Kind::Int(0, i32::MAX as i64),
        "511",
        false,
        true,
    ),
    opt("protected-mode", YES_NO, "yes", true, false),
    opt("daemonize", YES_NO, "no", false, false),
    opt(
        "supervised",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        false,
        false,
    ),
    opt("pidfile", Kind::Str, "", false, true),
    opt("loglevel", Kind::Enum(LOGLEVEL), "notice", true, true),
    opt("logfile", Kind::Str, "", false, true),
    opt(
        "databases",
        Kind::Int(1, i32::MAX as i64),
        "16",
        false,
        true,
    ),
    opt("always-show-logo", YES_NO, "no", false, false),
    opt("set-proc-title", YES_NO, "yes", false, false),
    opt("save", Kind::List, "3600 1 300 100 60 10000", true, true),
    opt("stop-writes-on-bgsave-error", YES_NO, "yes", true, false),
    opt("rdbcompression", YES_NO, "yes", true, true),
    opt("rdbchecksum", YES_NO, "yes", true, true),
    opt("dbfilename", Kind::Str, "dump.rdb", true, true),
    opt("dir", Kind::Str, "", true, true),
    opt("requirepass", Kind::Str, "", true, true),
    opt(
        "maxclients",
        Kind::Int(1, i32::MAX as i64),
        "10000",
        true,
        true,
    ),
    opt("maxmemory", Kind::Memory, "0", true, false),
    opt(
        "maxmemory-policy",
        Kind::Enum(POLICIES),
        "noeviction",
        true,
        false,
    ),
    opt("maxmemory-samples", Kind::Int(1, 64), "5", true, false),
    opt("appendonly", YES_NO, "yes", true, true),
    opt("appendfilename", Kind::Str, "appendonly.aof", false, true),
    opt("appenddirname", Kind::Str, "appendonlydir", false, true),
    opt("appendfsync", Kind::Enum(FSYNC), "everysec", true, true),
    opt("no-appendfsync-on-rewrite", YES_NO, "no", true, false),
    opt(
        "auto-aof-rewrite-percentage",
        Kind::Int(0, i32::MAX as i64),
        "100",
        true,
        false,
    ),
    opt(
        "auto-aof-rewrite-min-size",
        Kind::Memory,
        "67108864",
        true,
        false,
    ),
    opt("aof-load-truncated", YES_NO, "yes", true, true),
    opt("aof-use-rdb-preamble", YES_NO, "yes", true, true),
    opt("aof-timestamp-enabled", YES_NO, "no", true, true),
    opt("aof-segment-size", Kind::Memory, "67108864", true, true),
    opt("aof-rewrite-incremental-fsync", YES_NO, "yes", true, false),
    opt("rdb-save-incremental-fsync", YES_NO, "yes", true, false),
    opt(
        "lua-time-limit",
        Kind::Int(0, i64::MAX),
        "5000",
        true,
        false,
    ),
    opt(
        "busy-reply-threshold",
        Kind::Int(0, i64::MAX),
        "5000",
        true,
        false,
    ),
    opt(
        "slowlog-log-slower-than",
        Kind::Int(-1, i64::MAX),
        "10000",
        true,
        true,
    ),
    opt("slowlog-max-len", Kind::Int(0, i64::MAX), "128", true, true),
    opt(
        "latency-monitor-threshold",
        Kind::Int(0, i64::MAX),
        "0",
        true,
        false,
    ),
    opt("notify-keyspace-events", Kind::Str, "", true, true),
    opt(
        "hash-max-listpack-entries",
        Kind::Int(0, i64::MAX),
        "128",
        true,
        true,
    ),
    opt(
        "hash-max-listpack-value",
        Kind::Int(0, i64::MAX),
        "64",
        true,
        true,
    ),
    opt(
        "hash-max-ziplist-entries",
        Kind::Int(0, i64::MAX),
        "128",
        true,
        true,
    ),
    opt(
        "hash-max-ziplist-value",
        Kind::Int(0, i64::MAX),
        "64",
        true,
        true,
    ),
    opt(
        "list-max-listpack-size",
        Kind::Int(i32::MIN as i64, i32::MAX as i64),
        "-2",
        true,
        true,
    ),
    opt(
        "list-max-ziplist-size",
        Kind::Int(i32::MIN as i64, i32::MAX as i64),
        "-2",
        true,
        true,
    ),
    opt(
        "list-compress-depth",
        Kind::Int(0, i32::MAX as i64),
        // Redis's default is 0 (no compression); Strongbox compresses the interior nodes of
        // lists by default (docs/design.md, "List compression").
        "1",
        true,
        true,
    ),
    opt(
        "set-max-intset-entries",
        Kind::Int(0, i64::MAX),
        "512",
        true,
        true,
    ),
    opt(
        "set-max-listpack-entries",
        Kind::Int(0, i64::MAX),
        "128",
        true,
        true,
    ),
    opt(
        "set-max-listpack-value",
        Kind::Int(0, i64::MAX),
        "64",
        true,
        true,
    ),
    opt(
        "zset-max-listpack-entries",
        Kind::Int(0, i64::MAX),
        "128",
        true,
        true,
    ),
    opt(
        "zset-max-listpack-value",
        Kind::Int(0, i64::MAX),
        "64",
        true,
        true,
    ),
    opt(
        "zset-max-ziplist-entries",
        Kind::Int(0, i64::MAX),
        "128",
        true,
        true,
    ),
    opt(
        "zset-max-ziplist-value",
        Kind::Int(0, i64::MAX),
        "64",
        true,
        true,
    ),
    opt("hll-sparse-max-bytes", Kind::Memory, "3000", true, false),
    opt("stream-node-max-bytes", Kind::Memory, "4096", true, false),
    opt(
        "stream-node-max-entries",
        Kind::Int(0, i64::MAX),
        "100",
        true,
        false,
    ),
    opt("activerehashing", YES_NO, "yes", true, true),
    opt(
        "client-output-buffer-limit",
        Kind::List,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
        true,
    ),
    opt(
        "client-query-buffer-limit",
        Kind::Memory,
        "1073741824",
        true,
        true,
    ),
    opt("proto-max-bulk-len", Kind::Memory, "536870912", true, true),
    opt("hz", Kind::Int(1, 500), "10", true, true),
    opt("dynamic-hz", YES_NO, "yes", true, false),
    opt("io-threads", Kind::Int(1, 128), "1", false, true),
    opt("io-threads-do-reads", YES_NO, "no", false, false),
    opt("lazyfree-lazy-eviction", YES_NO, "no", true, false),
    opt("lazyfree-lazy-expire", YES_NO, "no", true, false),
    opt("lazyfree-lazy-server-del", YES_NO, "no", true, false),
    opt("lazyfree-lazy-user-del", YES_NO, "no", true, false),
    opt("lazyfree-lazy-user-flush", YES_NO, "no", true, false),
    opt("replica-lazy-flush", YES_NO, "no", true, false),
    opt("active-expire-effort", Kind::Int(1, 10), "1", true, true),
    opt(
        "lfu-log-factor",
        Kind::Int(0, i32::MAX as i64),
        "10",
        true,
        false,
    ),
    opt(
        "lfu-decay-time",
        Kind::Int(0, i32::MAX as i64),
        "1",
        true,
        false,
    ),
    opt("cluster-enabled", YES_NO, "no", false, false),
    opt(
        "appendfsync-delay-max-ms",
        Kind::Int(0, 60_000),
        "2000",
        true,
        true,
    ),
    opt(
        "enable-debug-command",
        Kind::Enum(&["yes", "no", "local"]),
        "no",
        false,
        false,
    ),
    opt("unixsocket", Kind::Str, "", false, false),
    opt("replicaof", Kind::List, "", true, false),
    opt("masterauth", Kind::Str, "", true, false),
    opt(
        "min-replicas-to-write",
        Kind::Int(0, i32::MAX as i64),
        "0",
        true,
        false,
    ),
    opt("repl-diskless-sync", YES_NO, "yes", true, false),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Bad directive or wrong number of arguments")]
    BadDirective,
    #[error("argument must be 'yes' or 'no'")]
    NotYesNo,
    #[error("argument couldn't be parsed into an integer")]
    NotInt,
    #[error("argument must be a memory value")]
    NotMemory,
    #[error("argument(s) must be one of the following: {0}")]
    NotEnum(String),
    #[error("argument must be between {0} and {1} inclusive")]
    OutOfRange(i64, i64),
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

pub fn find(name: &str) -> Option<&'static OptionSpec> {
    let n = canonical(name);
    OPTIONS.iter().find(|o| o.name == n)
}

/// Aliases Redis accepts.
fn canonical(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "slaveof" => "replicaof".into(),
        _ => n,
    }
}

/// Validate and normalise a value for `spec` (CONFIG GET shows the normalised form).
pub fn normalise(spec: &OptionSpec, value: &str) -> Result<String, ConfigError> {
    match spec.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err(ConfigError::NotYesNo),
        },
        Kind::Int(lo, hi) => {
            let v: i64 = if spec.name == "maxclients" || value.parse::<i64>().is_ok() {
                value.parse().map_err(|_| ConfigError::NotInt)?
            } else {
                parse_memory(value).ok_or(ConfigError::NotInt)?
            };
            if v < lo || v > hi {
                return Err(ConfigError::OutOfRange(lo, hi));
            }
            Ok(v.to_string())
        }
        Kind::Memory => {
            let v = parse_memory(value).ok_or(ConfigError::NotMemory)?;
            if v < 0 {
                return Err(ConfigError::NotMemory);
            }
            Ok(v.to_string())
        }
        Kind::Enum(vals) => {
            let l = value.to_ascii_lowercase();
            if vals.contains(&l.as_str()) {
                Ok(l)
            } else {
                Err(ConfigError::NotEnum(vals.join(", ")))
            }
        }
        Kind::Str => Ok(value.to_string()),
        Kind::List => {
            if spec.name == "save" {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if !parts.len().is_multiple_of(2) || parts.iter().any(|p| p.parse::<u64>().is_err())
                {
                    return Err(ConfigError::BadSave);
                }
                Ok(parts.join(" "))
            } else {
                Ok(value.split_whitespace().collect::<Vec<_>>().join(" "))
            }
        }
    }
}

/// The live configuration: option name → normalised value.
#[derive(Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// The config file given at start, if any (for CONFIG REWRITE).
    pub file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        let mut values = BTreeMap::new();
        for o in OPTIONS {
            values.insert(o.name, o.default.to_string());
        }
        Config { values, file: None }
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
                let text = std::fs::read_to_string(first)
                    .map_err(|e| format!("Fatal error, can't open config file '{first}': {e}"))?;
                cfg.load_text(&text)?;
                cfg.file = Some(PathBuf::from(first));
                rest = &rest[1..];
            }
        }
        // Turn "--name v1 v2 --other x" into config lines, as redis-server does.
        let mut text = String::new();
        let mut i = 0;
        while i < rest.len() {
            let a = &rest[i];
            if let Some(name) = a.strip_prefix("--") {
                if name == "version" || name == "help" {
                    return Err(format!("--{name}"));
                }
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(name);
                i += 1;
                let mut nvals = 0;
                while i < rest.len() && !rest[i].starts_with("--") {
                    text.push(' ');
                    text.push_str(&quote(&rest[i]));
                    nvals += 1;
                    i += 1;
                }
                if nvals == 0 {
                    text.push_str(" \"\"");
                }
            } else {
                return Err(format!(
                    "Invalid argument '{a}': options are given as --name value"
                ));
            }
        }
        cfg.load_text(&text)?;
        Ok(cfg)
    }

    /// Load config-file text. Errors name the line and the problem like redis-server.
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        for (lineno, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let args = crate::resp::split_args(line.as_bytes()).ok_or_else(|| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR ***\nline {}\n>>> '{}'\nUnbalanced quotes in configuration line",
                    lineno + 1,
                    line
                )
            })?;
            let args: Vec<String> = args
                .into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect();
            let Some((name, vals)) = args.split_first() else {
                continue;
            };
            let fail = |msg: String| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR ***\nline {}\n>>> '{}'\n{}",
                    lineno + 1,
                    line,
                    msg
                )
            };
            if name.eq_ignore_ascii_case("include") || name.eq_ignore_ascii_case("rename-command") {
                return Err(fail(format!("'{name}' is not supported")));
            }
            let Some(spec) = find(name) else {
                return Err(fail("Bad directive or wrong number of arguments".into()));
            };
            let value = vals.join(" ");
            // "save" accumulates across lines in config files; "save ''" resets.
            let value = if spec.name == "save" && !value.is_empty() {
                let prev = self.get(spec.name);
                if prev.is_empty() || prev == spec.default && !self.save_touched() {
                    value
                } else {
                    format!("{prev} {value}")
                }
            } else {
                value
            };
            let norm = normalise(spec, &value).map_err(|e| fail(e.to_string()))?;
            if spec.name == "save" {
                self.values.insert("__save_touched", String::new());
            }
            self.values.insert(spec.name, norm);
        }
        Ok(())
    }

    fn save_touched(&self) -> bool {
        self.values.contains_key("__save_touched")
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(|s| s.as_str()).unwrap_or("")
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
            return Err(format!("CONFIG SET failed (possibly related to argument '{}') - can't set immutable config", spec.name));
        }
        let norm = normalise(spec, value).map_err(|e| {
            format!(
                "CONFIG SET failed (possibly related to argument '{}') - {}",
                spec.name, e
            )
        })?;
        if RESTART_TO_CHANGE.contains(&spec.name) && norm != self.get(spec.name) {
            return Err(format!(
                "CONFIG SET failed (possibly related to argument '{}') - changing it at runtime is not supported by Strongbox yet; set it in the config file and restart",
                spec.name
            ));
        }
        self.values.insert(spec.name, norm);
        Ok(())
    }

    /// CONFIG GET with glob patterns: (name, value) pairs in option order.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        OPTIONS
            .iter()
            .filter(|o| glob_match(pattern, o.name.as_bytes(), true))
            .map(|o| (o.name, self.display_value(o.name)))
            .collect()
    }

    fn display_value(&self, name: &str) -> String {
        let v = self.get(name);
        if name == "dir" && v.is_empty() {
            return std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
        }
        v.to_string()
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
            if let Some(spec) = find(name) {
                if written.insert(spec.name) {
                    out.push_str(&format!(
                        "{} {}\n",
                        spec.name,
                        quote(&self.display_value(spec.name))
                    ));
                }
            } else {
                out.push_str(raw);
                out.push('\n');
            }
        }
        for o in OPTIONS {
            if !written.contains(o.name) && self.get(o.name) != o.default {
                out.push_str(&format!("{} {}\n", o.name, quote(self.get(o.name))));
            }
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
}
