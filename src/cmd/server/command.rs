//! COMMAND, COMMAND COUNT/INFO/DOCS/LIST/GETKEYS/GETKEYSANDFLAGS/HELP, from the command table,
//! in Redis 7.0's reply shapes (flags and ACL categories as sets, key specs as maps).

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::{help_reply, sub_lookup, Sub};
use crate::cmd::flags::*;
use crate::cmd::keyfind::{self, Bs, CommandKeys, Fk};
use crate::cmd::{err, table, CommandSpec, KeySpec};
use crate::ctx::Ctx;
use crate::exec::FxBuild;
use crate::resp::Reply;
use crate::util::glob_match;

pub(super) const SUBS: &[Sub] = &[
    ("count", 2, LOADING | STALE),
    ("info", -2, LOADING | STALE),
    ("docs", -2, LOADING | STALE),
    ("list", -2, LOADING | STALE),
    ("getkeys", -4, LOADING | STALE),
    ("getkeysandflags", -4, LOADING | STALE),
    ("help", 2, LOADING | STALE),
];

const HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
];

/// Subcommands of containers whose family files do not list them (Redis 7.0's names, arities
/// and flags), so COMMAND shows them.
const KNOWN_SUBCOMMANDS: &[(&str, &[Sub])] = &[
    (
        "object",
        &[
            ("encoding", 3, READONLY),
            ("freq", 3, READONLY),
            ("idletime", 3, READONLY),
            ("refcount", 3, READONLY),
            ("help", 2, LOADING | STALE),
        ],
    ),
    (
        "pubsub",
        &[
            ("channels", -2, PUBSUB | LOADING | STALE),
            ("numpat", 2, PUBSUB | LOADING | STALE),
            ("numsub", -2, PUBSUB | LOADING | STALE),
            ("shardchannels", -2, PUBSUB | LOADING | STALE),
            ("shardnumsub", -2, PUBSUB | LOADING | STALE),
            ("help", 2, LOADING | STALE),
        ],
    ),
];

/// Redis 7.0's flag names in the order COMMAND prints them (hidden flags left out).
const FLAG_NAMES: &[(u32, &str)] = &[
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
    (NO_MULTI, "no_multi"),
];

/// ACL categories in the order Redis 7.0 prints them (one list, shared with the ACLs).
use crate::acl::CATEGORIES;

/// Categories Redis declares explicitly for some commands (and their subcommands), replacing
/// the one derived from the command's group.
const EXPLICIT_CATEGORIES: &[(&str, &[&str])] = &[
    ("command", &["connection"]),
    ("readonly", &["connection"]),
    ("readwrite", &["connection"]),
    ("asking", &["connection"]),
    ("wait", &["connection"]),
    ("info", &["dangerous"]),
    ("lastsave", &["admin", "dangerous"]),
    ("role", &["admin", "dangerous"]),
    ("time", &[]),
    ("dbsize", &["keyspace"]),
    ("flushdb", &["keyspace", "dangerous"]),
    ("flushall", &["keyspace", "dangerous"]),
    ("swapdb", &["keyspace", "dangerous"]),
    ("keys", &["keyspace", "dangerous"]),
    ("migrate", &["keyspace", "dangerous"]),
    ("restore", &["keyspace", "dangerous"]),
    ("restore-asking", &["keyspace", "dangerous"]),
    ("sort", &["set", "sortedset", "list", "dangerous"]),
    ("sort_ro", &["set", "sortedset", "list", "dangerous"]),
];

/// The commands a client can call (every command unless `rename-command` removed it), in
/// table order. A renamed command is listed under its original name, as Redis does.
fn reachable() -> impl Iterator<Item = &'static &'static CommandSpec> {
    table()
        .all
        .iter()
        .filter(|c| crate::exec::command_reachable(c.name))
}

/// A command by the name a client uses for it (after `rename-command`).
fn get_top(name: &[u8]) -> Option<&'static CommandSpec> {
    table().get(&crate::exec::resolve_renamed(name)?)
}

pub(super) fn command(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() == 1 {
        return Reply::Array(reachable().map(|c| info_entry(c)).collect());
    }
    let sub = match sub_lookup("command", SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let _ = ctx;
    match sub {
        "count" => Reply::Int(reachable().count() as i64),
        "info" => {
            if args.len() == 2 {
                return Reply::Array(reachable().map(|c| info_entry(c)).collect());
            }
            Reply::Array(
                args[2..]
                    .iter()
                    .map(|n| match lookup(n) {
                        Some(Found::Top(c)) => info_entry(c),
                        Some(Found::Sub(p, s)) => sub_info_entry(p, s),
                        None => Reply::Nil,
                    })
                    .collect(),
            )
        }
        "docs" => command_docs(args),
        "list" => command_list(args),
        "getkeys" | "getkeysandflags" => getkeys(args, sub == "getkeysandflags"),
        _ => help_reply("command", HELP),
    }
}

enum Found {
    Top(&'static CommandSpec),
    Sub(&'static CommandSpec, Sub),
}

/// A command by name, or a subcommand by `parent|sub` (names as clients call them).
fn lookup(name: &[u8]) -> Option<Found> {
    if let Some(c) = get_top(name) {
        return Some(Found::Top(c));
    }
    let s = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    let (p, sub) = s.split_once('|')?;
    let parent = get_top(p.as_bytes())?;
    let found = subcommands(parent).iter().find(|x| x.0 == sub)?;
    Some(Found::Sub(parent, *found))
}

pub(crate) fn subcommands(c: &CommandSpec) -> &'static [Sub] {
    if !c.subcommands.is_empty() {
        return c.subcommands;
    }
    KNOWN_SUBCOMMANDS
        .iter()
        .find(|(n, _)| *n == c.name)
        .map(|(_, s)| *s)
        .unwrap_or(&[])
}

/// Full names ("config|set") of every subcommand, by parent name, built once (the names live as
/// long as the process, like the command table).
type FullNames = HashMap<&'static str, Vec<(&'static str, &'static str)>, FxBuild>;

fn full_names() -> &'static FullNames {
    static NAMES: OnceLock<FullNames> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut m = FullNames::default();
        for &c in &table().all {
            let subs = subcommands(c);
            if subs.is_empty() {
                continue;
            }
            let v = subs
                .iter()
                .map(|s| {
                    let full: &'static str = Box::leak(format!("{}|{}", c.name, s.0).into());
                    (s.0, full)
                })
                .collect();
            m.insert(c.name, v);
        }
        m
    })
}

/// The name a call is counted under in INFO commandstats/latencystats and shown as CLIENT
/// LIST's `cmd=`: the subcommand's full name for a container command ("xgroup|createconsumer"),
/// else the command's name.
pub fn stat_name(c: &'static CommandSpec, argv: &[Bytes]) -> &'static str {
    // Containers (CONFIG, CLIENT, XGROUP, …) all have arity -2: every other command is its
    // own name without a lookup (this runs for every command).
    if c.arity != -2 {
        return c.name;
    }
    let Some(subs) = full_names().get(c.name) else {
        return c.name;
    };
    let Some(sub) = argv.get(1) else {
        return c.name;
    };
    subs.iter()
        .find(|(s, _)| s.as_bytes().eq_ignore_ascii_case(sub))
        .map_or(c.name, |&(_, full)| full)
}

/// The ACL categories of a command, or of one of its subcommands, as COMMAND INFO reports them
/// (the ACL's only source of categories).
pub(crate) fn acl_categories(c: &CommandSpec, sub: Option<Sub>) -> Vec<&'static str> {
    match sub {
        None if is_container(c) => vec!["slow"],
        None => categories(c.name, Some(c.group), c.flags),
        Some(s) => categories(&format!("{}|{}", c.name, s.0), Some(c.group), s.2),
    }
}

/// A pure container (CONFIG, CLIENT…): Redis gives it no flags and only @slow.
fn is_container(c: &CommandSpec) -> bool {
    c.arity == -2 && !subcommands(c).is_empty()
}

fn group_category(group: &str) -> Option<&'static str> {
    Some(match group {
        "generic" | "keys" => "keyspace",
        "string" => "string",
        "bitmap" => "bitmap",
        "list" => "list",
        "set" => "set",
        "sorted_set" | "sorted-set" | "zset" => "sortedset",
        "hash" => "hash",
        "pubsub" => "pubsub",
        "transactions" | "tx" => "transaction",
        "connection" => "connection",
        "scripting" => "scripting",
        "hyperloglog" => "hyperloglog",
        "geo" => "geo",
        "stream" => "stream",
        _ => return None,
    })
}

/// Redis's documentation group name.
fn doc_group(group: &str) -> &str {
    match group {
        "keys" => "generic",
        "sorted_set" | "zset" => "sorted-set",
        "tx" => "transactions",
        g => g,
    }
}

/// ACL categories: the command's group, then those implied by its flags (Redis's
/// `setImplicitACLCategories`), printed in Redis's order.
fn categories(name: &str, group: Option<&str>, flags: u32) -> Vec<&'static str> {
    let mut cats: Vec<&str> = Vec::new();
    let base = name.split('|').next().unwrap_or(name);
    if let Some((_, explicit)) = EXPLICIT_CATEGORIES.iter().find(|(n, _)| *n == base) {
        cats.extend_from_slice(explicit);
    } else if let Some(g) = group.and_then(group_category) {
        cats.push(g);
    }
    if flags & WRITE != 0 {
        cats.push("write");
    }
    if flags & READONLY != 0 && !cats.contains(&"scripting") {
        cats.push("read");
    }
    if flags & ADMIN != 0 {
        cats.push("admin");
        cats.push("dangerous");
    }
    if flags & PUBSUB != 0 {
        cats.push("pubsub");
    }
    if flags & FAST != 0 {
        cats.push("fast");
    }
    if flags & BLOCKING != 0 {
        cats.push("blocking");
    }
    if !cats.contains(&"fast") {
        cats.push("slow");
    }
    CATEGORIES
        .iter()
        .copied()
        .filter(|c| cats.contains(c))
        .collect()
}

/// Scripts (EVAL*, FCALL*): Redis 7.0 shows them as `no_mandatory_keys`, the `_RO` forms as
/// `readonly`, with a key spec noted "we assume the worst". Some(read-only form).
fn script_command(name: &str) -> Option<bool> {
    match name {
        "eval" | "evalsha" | "fcall" => Some(false),
        "eval_ro" | "evalsha_ro" | "fcall_ro" => Some(true),
        _ => None,
    }
}

fn flag_set(flags: u32, movable: bool) -> Reply {
    flag_set_named(flags, movable, None)
}

fn flag_set_named(flags: u32, movable: bool, name: Option<&str>) -> Reply {
    let script = name.and_then(script_command);
    // (shown only: READONLY on a command also narrows what its reply waits for)
    let flags = flags | if script == Some(true) { READONLY } else { 0 };
    let mut v: Vec<Reply> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| Reply::Status(n))
        .collect();
    if script.is_some() {
        v.push(Reply::Status("no_mandatory_keys"));
    }
    if movable {
        v.push(Reply::Status("movablekeys"));
    }
    if flags & ALLOW_BUSY != 0 {
        v.push(Reply::Status("allow_busy"));
    }
    Reply::Set(v)
}

fn cat_set(cats: &[&'static str]) -> Reply {
    Reply::Set(
        cats.iter()
            .map(|c| Reply::StatusOwned(format!("@{c}")))
            .collect(),
    )
}

fn kv(k: &str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(k), v)
}

/// The key spec flags as Redis prints them (a set of status strings, Redis's order).
fn key_flag_set(f: u16) -> Reply {
    Reply::Set(
        keyfind::flags::NAMES
            .iter()
            .filter(|(b, _)| f & b != 0)
            .map(|(_, n)| Reply::Status(n))
            .collect(),
    )
}

/// A command's `key_specs` (Redis 7), exactly as Redis 7.0 declares them.
fn key_specs(keys: Option<&CommandKeys>) -> Reply {
    let Some(keys) = keys else {
        return Reply::Set(vec![]);
    };
    let typed = |t: &str, spec: Vec<(Reply, Reply)>| {
        Reply::Map(vec![
            kv("type", Reply::bulk_str(t)),
            kv("spec", Reply::Map(spec)),
        ])
    };
    let int = |n: i32| Reply::Int(i64::from(n));
    Reply::Set(
        keys.specs
            .iter()
            .map(|s| {
                let mut m = Vec::with_capacity(4);
                if !s.notes.is_empty() {
                    m.push(kv("notes", Reply::bulk_str(s.notes)));
                }
                m.push(kv("flags", key_flag_set(s.flags)));
                let bs = match s.bs {
                    Bs::Index(pos) => typed("index", vec![kv("index", int(pos))]),
                    Bs::Keyword(word, startfrom) => typed(
                        "keyword",
                        vec![
                            kv("keyword", Reply::bulk_str(word)),
                            kv("startfrom", int(startfrom)),
                        ],
                    ),
                    Bs::Unknown => typed("unknown", vec![]),
                };
                m.push(kv("begin_search", bs));
                let fk = match s.fk {
                    Fk::Range {
                        lastkey,
                        step,
                        limit,
                    } => typed(
                        "range",
                        vec![
                            kv("lastkey", int(lastkey)),
                            kv("keystep", int(step)),
                            kv("limit", int(limit)),
                        ],
                    ),
                    Fk::Keynum {
                        keynumidx,
                        firstkey,
                        step,
                    } => typed(
                        "keynum",
                        vec![
                            kv("keynumidx", int(keynumidx)),
                            kv("firstkey", int(firstkey)),
                            kv("keystep", int(step)),
                        ],
                    ),
                    Fk::Unknown => typed("unknown", vec![]),
                };
                m.push(kv("find_keys", fk));
                Reply::Map(m)
            })
            .collect(),
    )
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step, ACL categories, tips,
/// key specs, subcommands.
fn info_entry(c: &CommandSpec) -> Reply {
    let subs: Vec<Reply> = subcommands(c)
        .iter()
        .map(|s| sub_info_entry(c, *s))
        .collect();
    if is_container(c) {
        return Reply::Array(vec![
            Reply::bulk_str(c.name),
            Reply::Int(c.arity as i64),
            Reply::Set(vec![]),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(0),
            cat_set(&["slow"]),
            Reply::Set(vec![]),
            Reply::Set(vec![]),
            Reply::Array(subs),
        ]);
    }
    let keys = keyfind::lookup(c.name);
    let (first, last, step, movable) = match keys {
        Some(k) => k.legacy_range(),
        // A command Redis does not have: from the table's key positions.
        None => match c.keys {
            KeySpec::Range(f, l, s) if f > 0 => (f.into(), l.into(), s.into(), false),
            KeySpec::Range(..) | KeySpec::None => (0, 0, 0, false),
            KeySpec::NumKeys { .. } => (0, 0, 0, true),
        },
    };
    Reply::Array(vec![
        Reply::bulk_str(c.name),
        Reply::Int(c.arity as i64),
        flag_set_named(c.flags, movable, Some(c.name)),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        cat_set(&categories(c.name, Some(c.group), c.flags)),
        Reply::Set(vec![]),
        key_specs(keys),
        subcommand_list(subs),
    ])
}

/// Redis 7.0's command tips, for the subcommands that have them here (FUNCTION's, CLUSTER's,
/// MODULE's).
fn sub_tips(full: &str) -> Reply {
    let tips: &[&str] = match full {
        "cluster|bumpepoch"
        | "cluster|count-failure-reports"
        | "cluster|getkeysinslot"
        | "cluster|info"
        | "cluster|links"
        | "cluster|nodes"
        | "cluster|replicas"
        | "cluster|shards"
        | "cluster|slaves"
        | "cluster|slots" => &["nondeterministic_output"],
        "module|list" => &["nondeterministic_output_order"],
        "function|stats" => &[
            "nondeterministic_output",
            "request_policy:all_shards",
            "response_policy:special",
        ],
        "function|kill" => &["request_policy:all_shards", "response_policy:one_succeeded"],
        "function|delete" | "function|restore" | "function|load" | "function|flush" => {
            &["request_policy:all_shards", "response_policy:all_succeeded"]
        }
        "function|list" => &["nondeterministic_output_order"],
        _ => &[],
    };
    Reply::Set(tips.iter().map(|t| Reply::bulk_str(t)).collect())
}

/// Redis 7.0 answers a command's tips and key specs as sets (RESP3 `~`), and its subcommands
/// as an array, or an empty set when it has none.
fn subcommand_list(subs: Vec<Reply>) -> Reply {
    if subs.is_empty() {
        Reply::Set(subs)
    } else {
        Reply::Array(subs)
    }
}

fn sub_info_entry(parent: &CommandSpec, s: Sub) -> Reply {
    let full = format!("{}|{}", parent.name, s.0);
    let keys = keyfind::lookup(&full);
    let (first, last, step, movable) = keys.map_or((0, 0, 0, false), |k| k.legacy_range());
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(full.clone())),
        Reply::Int(s.1 as i64),
        flag_set(s.2, movable),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        cat_set(&categories(&full, Some(parent.group), s.2)),
        sub_tips(&full),
        key_specs(keys),
        Reply::Set(vec![]),
    ])
}

fn doc_map(summary: &str, since: &str, group: &str, subs: Option<Reply>) -> Reply {
    let mut m = vec![
        kv("summary", Reply::bulk_str(summary)),
        kv("since", Reply::bulk_str(since)),
        kv("group", Reply::bulk_str(group)),
    ];
    if let Some(s) = subs {
        m.push(kv("subcommands", s));
    }
    Reply::Map(m)
}

fn docs_entry(c: &CommandSpec) -> Reply {
    let subs = subcommands(c);
    let group = doc_group(c.group);
    let sub_docs = (!subs.is_empty()).then(|| {
        Reply::Map(
            subs.iter()
                .map(|s| {
                    (
                        Reply::Bulk(Bytes::from(format!("{}|{}", c.name, s.0))),
                        doc_map("", c.since, group, None),
                    )
                })
                .collect(),
        )
    });
    doc_map(c.summary, c.since, group, sub_docs)
}

fn command_docs(args: &[Bytes]) -> Reply {
    let mut out = Vec::new();
    if args.len() == 2 {
        for c in reachable() {
            out.push((Reply::bulk_str(c.name), docs_entry(c)));
        }
    } else {
        for n in &args[2..] {
            if let Some(c) = get_top(n) {
                out.push((Reply::bulk_str(c.name), docs_entry(c)));
            }
        }
    }
    Reply::Map(out)
}

/// Every command name followed by its subcommands' full names.
/// (full name, command, subcommand) for every command and subcommand.
type NameEntry = (String, &'static CommandSpec, Option<Sub>);

fn all_names() -> Vec<NameEntry> {
    let mut v = Vec::new();
    for c in reachable() {
        v.push((c.name.to_string(), *c, None));
        for s in subcommands(c) {
            v.push((format!("{}|{}", c.name, s.0), *c, Some(*s)));
        }
    }
    v
}

fn command_list(args: &[Bytes]) -> Reply {
    let names = all_names();
    let keep: Box<dyn Fn(&NameEntry) -> bool> = match args.len() {
        2 => Box::new(|_| true),
        5 if args[2].eq_ignore_ascii_case(b"filterby") => {
            let what = args[3].to_ascii_lowercase();
            let val = args[4].clone();
            match &what[..] {
                b"module" => Box::new(|_| false),
                b"aclcat" => {
                    let cat = String::from_utf8_lossy(&val).to_ascii_lowercase();
                    Box::new(move |(name, c, s)| {
                        let cats = match s {
                            Some(s) => categories(name, Some(c.group), s.2),
                            None if is_container(c) => vec!["slow"],
                            None => categories(name, Some(c.group), c.flags),
                        };
                        cats.iter().any(|x| *x == cat)
                    })
                }
                b"pattern" => Box::new(move |(name, _, _)| glob_match(&val, name.as_bytes(), true)),
                _ => return Reply::err(err::SYNTAX),
            }
        }
        _ => return Reply::err(err::SYNTAX),
    };
    Reply::Array(
        names
            .iter()
            .filter(|n| keep(n))
            .map(|(n, _, _)| Reply::Bulk(Bytes::from(n.clone())))
            .collect(),
    )
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS: the keys of a full command line as Redis finds them
/// (its key specs, or its key-finding procedure), with the flags of each.
fn getkeys(args: &[Bytes], with_flags: bool) -> Reply {
    let argv = &args[2..];
    let Some(c) = get_top(&argv[0]) else {
        return Reply::err("ERR Invalid command specified");
    };
    // Redis's lookupCommand: a container with arguments means one of its subcommands.
    let subs = subcommands(c);
    let (full, arity) = if subs.is_empty() || argv.len() < 2 {
        (c.name.to_string(), c.arity)
    } else {
        let Some(s) = subs
            .iter()
            .find(|s| s.0.as_bytes().eq_ignore_ascii_case(&argv[1]))
        else {
            return Reply::err("ERR Invalid command specified");
        };
        (format!("{}|{}", c.name, s.0), s.1)
    };
    let keys = keyfind::lookup(&full).filter(|k| k.has_keys());
    let Some(keys) = keys else {
        return Reply::err("ERR The command has no key arguments");
    };
    let n = argv.len() as i32;
    if (arity > 0 && n != arity) || n < -arity {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    let mut found = Vec::new();
    keys.keys(argv, &mut found);
    if found.is_empty() {
        if script_command(c.name).is_some() {
            // no_mandatory_keys: no keys is an answer.
            return Reply::Array(vec![]);
        }
        return Reply::err("ERR Invalid arguments specified for command");
    }
    Reply::Array(
        found
            .into_iter()
            .map(|k| {
                let key = Reply::Bulk(argv[k.pos].clone());
                if with_flags {
                    Reply::Array(vec![key, key_flag_set(k.flags)])
                } else {
                    key
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_redis_order_and_rules() {
        assert_eq!(
            categories("get", Some("string"), READONLY | FAST),
            vec!["read", "string", "fast"]
        );
        assert_eq!(
            categories(
                "config|get",
                Some("server"),
                ADMIN | NOSCRIPT | LOADING | STALE
            ),
            vec!["admin", "slow", "dangerous"]
        );
        assert_eq!(
            categories("client|kill", Some("connection"), ADMIN | NOSCRIPT),
            vec!["admin", "slow", "dangerous", "connection"]
        );
        assert_eq!(
            categories("command|info", Some("server"), LOADING | STALE),
            vec!["slow", "connection"]
        );
        assert_eq!(
            categories("lastsave", Some("server"), LOADING | STALE | FAST),
            vec!["admin", "fast", "dangerous"]
        );
        assert_eq!(
            categories("flushdb", Some("server"), WRITE),
            vec!["keyspace", "write", "slow", "dangerous"]
        );
    }

    #[test]
    fn every_command_has_a_well_formed_entry() {
        for c in &table().all {
            let Reply::Array(v) = info_entry(c) else {
                panic!("{} entry is not an array", c.name)
            };
            assert_eq!(v.len(), 10, "{}", c.name);
            assert_eq!(v[0], Reply::bulk_str(c.name));
        }
        assert!(matches!(
            lookup(b"CONFIG|GET"),
            Some(Found::Sub(_, ("get", -3, _)))
        ));
        assert!(lookup(b"config|nosuch").is_none());
    }
}
