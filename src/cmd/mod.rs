//! The command table. One file per command family; every command is a [`CommandSpec`] with its
//! arity, flags and key positions, so the durability path, transactions, blocking and COMMAND
//! ask the table rather than hand-kept lists.
//!
//! A handler has the shape `fn(&mut Ctx, &[Bytes]) -> Reply` where `args[0]` is the command name.
//! Write commands call `ctx.dirty(n)` for each change; `exec::call` then appends the command (or
//! what the handler chose with `ctx.propagate`) to the log.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::ctx::Ctx;
use crate::resp::Reply;

pub mod acl;
pub mod connection;
pub mod function;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod keyfind;
pub mod keys;
#[rustfmt::skip]
pub mod keyspecs;
pub mod list;
pub mod migrate;
pub mod persistence;
pub mod pubsub;
pub mod redact;
pub mod scripting;
mod scripting_libs;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod tx;
pub mod zset;

pub type Handler = fn(&mut Ctx, &[Bytes]) -> Reply;

/// Command flags (Redis's names).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    pub const NO_AUTH: u32 = 1 << 10;
    /// Not queued by MULTI: runs immediately (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const NO_MULTI: u32 = 1 << 11;
    pub const ALLOW_BUSY: u32 = 1 << 12;
    pub const SKIP_MONITOR: u32 = 1 << 13;
    pub const SKIP_SLOWLOG: u32 = 1 << 14;
    /// Allowed in RESP2 subscribed context.
    pub const SUBSCRIBED_OK: u32 = 1 << 15;
    pub const MAY_REPLICATE: u32 = 1 << 16;
    /// Allowed by `enable-debug-command` only (Redis's CMD_PROTECTED, which COMMAND INFO
    /// does not show either).
    pub const PROTECTED: u32 = 1 << 17;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    None,
    /// first, last (negative = from the end), step
    Range(i32, i32, i32),
    /// Keys count given by the argument at `idx`, keys start after it (ZUNION, LMPOP, …).
    NumKeys {
        numkeys_idx: usize,
        first: usize,
        step: usize,
    },
}

pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: positive = exact, negative = at least |arity|.
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub handler: Handler,
    /// Subcommand names (for COMMAND output), "config|get" style without the parent.
    pub subcommands: &'static [(&'static str, i32, u32)],
}

impl CommandSpec {
    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Key positions the key spec alone does not give: the destination of ZUNIONSTORE,
    /// ZINTERSTORE and ZDIFFSTORE (before their `numkeys` keys), and SORT's STORE destination
    /// (Redis finds both with a key-finding function). Every position is checked to be in range.
    fn extra_key_positions(&self, argv: &[Bytes], mut f: impl FnMut(usize)) {
        match self.name {
            "zunionstore" | "zinterstore" | "zdiffstore" if argv.len() > 1 => f(1),
            "sort" => {
                // Redis's sortGetKeys: the argument after the last STORE token, skipping the
                // arguments of LIMIT (2), GET and BY (1) — SORT itself stores into the last one.
                let mut store = None;
                let mut i = 2;
                while i < argv.len() {
                    let a = &argv[i];
                    if a.eq_ignore_ascii_case(b"limit") {
                        i += 2;
                    } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
                        i += 1;
                    } else if a.eq_ignore_ascii_case(b"store") && i + 1 < argv.len() {
                        store = Some(i + 1);
                    }
                    i += 1;
                }
                if let Some(p) = store {
                    f(p);
                }
            }
            // GEORADIUS[BYMEMBER] … STORE|STOREDIST key (Redis: keyword key specs); every
            // such token among the options counts, as the last one wins when it runs.
            "georadius" | "georadiusbymember" => {
                let first = if self.name == "georadius" { 6 } else { 5 };
                let last = argv.len().saturating_sub(1);
                for (i, a) in argv.iter().enumerate().take(last).skip(first) {
                    // As the command's parser reads them: up to a NUL byte, any case.
                    if geo::is(a, "store") || geo::is(a, "storedist") {
                        f(i + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// Call `f` with every key argument of `argv`, as [`Self::key_positions`] finds them.
    pub fn for_each_key<'a>(&self, argv: &'a [Bytes], mut f: impl FnMut(&'a [u8])) {
        if self.name == "migrate" {
            // Argument 3, or the keys after its KEYS option.
            return migrate::key_positions(argv, |p| f(&argv[p]));
        }
        self.extra_key_positions(argv, |p| f(&argv[p]));
        match self.keys {
            KeySpec::None => {}
            KeySpec::Range(first, last, step) => {
                if first <= 0 {
                    return;
                }
                let last = if last < 0 {
                    argv.len() as i32 + last
                } else {
                    last
                };
                let mut i = first;
                while i <= last && (i as usize) < argv.len() {
                    f(&argv[i as usize]);
                    i += step.max(1);
                }
            }
            KeySpec::NumKeys { .. } => {
                for p in self.spec_key_positions(argv) {
                    f(&argv[p]);
                }
            }
        }
    }

    /// Positions of key arguments in `argv`.
    pub fn key_positions(&self, argv: &[Bytes]) -> Vec<usize> {
        if self.name == "migrate" {
            let mut v = Vec::new();
            migrate::key_positions(argv, |p| v.push(p));
            return v;
        }
        let mut extra = Vec::new();
        self.extra_key_positions(argv, |p| extra.push(p));
        let mut v = self.spec_key_positions(argv);
        if !extra.is_empty() {
            // In argument order, as Redis's key-finding functions give them.
            v.append(&mut extra);
            v.sort_unstable();
            v.dedup();
        }
        v
    }

    /// Positions of key arguments in `argv` by the key spec alone.
    fn spec_key_positions(&self, argv: &[Bytes]) -> Vec<usize> {
        match self.keys {
            KeySpec::None => vec![],
            KeySpec::Range(first, last, step) => {
                if first <= 0 {
                    return vec![];
                }
                let last = if last < 0 {
                    argv.len() as i32 + last
                } else {
                    last
                };
                let mut v = vec![];
                let mut i = first;
                while i <= last && (i as usize) < argv.len() {
                    v.push(i as usize);
                    i += step.max(1);
                }
                v
            }
            KeySpec::NumKeys {
                numkeys_idx,
                first,
                step,
            } => {
                let n = argv
                    .get(numkeys_idx)
                    .and_then(|a| crate::util::parse_i64(a))
                    .unwrap_or(0)
                    .max(0) as usize;
                (0..n)
                    .map(|i| first + i * step.max(1))
                    .filter(|&p| p < argv.len())
                    .collect()
            }
        }
    }
}

/// Convenience constructor used by the family files.
#[allow(clippy::too_many_arguments)]
pub const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    group: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        group,
        since: "1.0.0",
        summary: "",
        handler,
        subcommands: &[],
    }
}

/// Key spec helpers.
pub const K1: KeySpec = KeySpec::Range(1, 1, 1);
pub const KALL: KeySpec = KeySpec::Range(1, -1, 1);
pub const KNONE: KeySpec = KeySpec::None;

pub struct CommandTable {
    map: HashMap<&'static str, &'static CommandSpec>,
    pub all: Vec<&'static CommandSpec>,
}

impl CommandTable {
    pub fn get(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        if name.len() > 32 {
            return None;
        }
        let mut buf = [0u8; 32];
        for (i, c) in name.iter().enumerate() {
            buf[i] = c.to_ascii_lowercase();
        }
        let s = std::str::from_utf8(&buf[..name.len()]).ok()?;
        self.map.get(s).copied()
    }
}

static TABLE: OnceLock<CommandTable> = OnceLock::new();

pub fn table() -> &'static CommandTable {
    TABLE.get_or_init(|| {
        let families: &[&'static [CommandSpec]] = &[
            connection::COMMANDS,
            server::COMMANDS,
            keys::COMMANDS,
            string::COMMANDS,
            tx::COMMANDS,
            scripting::COMMANDS,
            function::COMMANDS,
            pubsub::COMMANDS,
            list::COMMANDS,
            hash::COMMANDS,
            set::COMMANDS,
            zset::COMMANDS,
            geo::COMMANDS,
            sort::COMMANDS,
            stream::COMMANDS,
            persistence::COMMANDS,
            hyperloglog::COMMANDS,
            acl::COMMANDS,
            migrate::COMMANDS,
        ];
        let mut map = HashMap::new();
        let mut all = Vec::new();
        for fam in families {
            for c in fam.iter() {
                let prev = map.insert(c.name, c);
                assert!(prev.is_none(), "command {} registered twice", c.name);
                all.push(c);
            }
        }
        CommandTable { map, all }
    })
}

/// Error texts shared by many commands (exactly Redis's).
pub mod err {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NO_KEY: &str = "ERR no such key";
    pub const OUT_OF_RANGE: &str = "ERR index out of range";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const POSITIVE: &str = "ERR value is out of range, must be positive";
}

/// `ERR wrong number of arguments for '<name>' command`.
pub fn arity_error(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> Reply {
    let sub = String::from_utf8_lossy(sub);
    let sub: String = sub.chars().take(128).collect();
    Reply::Error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        sub,
        cmd.to_ascii_uppercase()
    ))
}
