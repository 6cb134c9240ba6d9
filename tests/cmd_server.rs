//! Server/admin commands (INFO, CONFIG, CLIENT, COMMAND, SLOWLOG, MEMORY, LATENCY, MONITOR,
//! LASTSAVE, ROLE, WAIT, DEBUG) against the real binary, compared byte for byte with Debian's
//! redis-server 7.0 wherever the reply is deterministic, and driven by redis-cli,
//! redis-benchmark and redis-py.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{escape, parse_frame, run_with_timeout, Frame, RawConn, RedisServer, StrongboxServer};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a reply is compared with Redis's.
#[derive(Clone, Copy)]
enum Cmp {
    Exact,
    /// Top-level elements compared as a sorted set (CONFIG GET pairs, COMMAND LIST).
    Sorted,
    /// RESP2 flat [k, v, k, v] arrays compared as sorted pairs.
    Pairs,
}

fn frame(bytes: &[u8]) -> Frame {
    parse_frame(bytes)
        .unwrap_or_else(|e| panic!("bad RESP {}: {e}", escape(bytes)))
        .unwrap_or_else(|| panic!("incomplete RESP {}", escape(bytes)))
}

fn normalise(bytes: &[u8], how: Cmp) -> Vec<u8> {
    match how {
        Cmp::Exact => bytes.to_vec(),
        Cmp::Sorted => frame(bytes).sorted().raw,
        Cmp::Pairs => frame(bytes).sorted_pairs().raw,
    }
}

/// Sends every command to both servers (each on one connection) and collects mismatches.
fn diff(script: &[(Cmp, &[&str])]) {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut r = redis.conn();
    let mut s = sb.conn();
    let mut bad = Vec::new();
    for (how, args) in script {
        let want = normalise(&r.cmd(args), *how);
        let got = normalise(&s.cmd(args), *how);
        if want != got {
            bad.push(format!(
                "{args:?}\n  redis:     {}\n  strongbox: {}",
                escape(&want),
                escape(&got)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

use Cmp::*;

#[test]
fn config_replies_match_redis() {
    diff(&[
        (Exact, &["CONFIG", "GET", "maxmemory"]),
        (Exact, &["CONFIG", "GET", "HZ"]),
        (Exact, &["CONFIG", "GET", "Maxmemory-Policy"]),
        (Exact, &["CONFIG", "GET", "nosuch"]),
        (Exact, &["CONFIG", "GET", "nosuch*"]),
        (Exact, &["CONFIG", "GET", "slowlog-max-len"]),
        (Exact, &["CONFIG", "GET", "save"]),
        (Exact, &["CONFIG", "GET", "timeout"]),
        (Pairs, &["CONFIG", "GET", "maxmemory", "timeout", "hz"]),
        (Pairs, &["CONFIG", "GET", "hz", "h?", "HZ"]),
        (Pairs, &["CONFIG", "GET", "slowlog*"]),
        (Exact, &["CONFIG", "GET"]),
        (Exact, &["CONFIG", "SET", "foo", "bar"]),
        (Exact, &["CONFIG", "SET", "maxmemory", "1", "hz"]),
        (Exact, &["CONFIG", "SET", "hz", "5", "hz", "6"]),
        (Exact, &["CONFIG", "SET", "hz", "5", "hz", "6", "foo", "1"]),
        (Exact, &["CONFIG", "SET", "hz", "abc"]),
        (Exact, &["CONFIG", "SET", "HZ", "abc"]),
        (Exact, &["CONFIG", "SET", "hz", "abc", "foo", "bar"]),
        (Exact, &["CONFIG", "SET", "hz", "-1"]),
        (Exact, &["CONFIG", "SET", "daemonize", "yes"]),
        (Exact, &["CONFIG", "SET", "Daemonize", "yes"]),
        (Exact, &["CONFIG", "SET", "dir", "/tmp"]),
        (Exact, &["CONFIG", "SET", "dbfilename", "x.rdb"]),
        (Exact, &["CONFIG", "SET", "maxmemory", "abc"]),
        (Exact, &["CONFIG", "SET", "appendonly", "maybe"]),
        (Exact, &["CONFIG", "SET", "maxmemory-policy", "foo"]),
        (Exact, &["CONFIG", "SET", "save", "100 x"]),
        (Exact, &["CONFIG", "SET", "notify-keyspace-events", "Q"]),
        (Exact, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        (Exact, &["CONFIG", "GET", "notify-keyspace-events"]),
        (Exact, &["CONFIG", "SET", "notify-keyspace-events", "Elg"]),
        (Exact, &["CONFIG", "GET", "notify-keyspace-events"]),
        (Exact, &["CONFIG", "SET", "notify-keyspace-events", ""]),
        (Exact, &["CONFIG", "GET", "notify-keyspace-events"]),
        (Exact, &["CONFIG", "SET", "hz", "1000"]),
        (Exact, &["CONFIG", "GET", "hz"]),
        (Exact, &["CONFIG", "SET", "hz", "10"]),
        // Atomic: the second pair fails, the first is not applied.
        (Exact, &["CONFIG", "SET", "maxmemory", "1mb", "hz", "abc"]),
        (Exact, &["CONFIG", "GET", "maxmemory"]),
        (
            Exact,
            &[
                "CONFIG",
                "SET",
                "maxmemory",
                "10mb",
                "maxmemory-policy",
                "allkeys-lru",
            ],
        ),
        (Pairs, &["CONFIG", "GET", "maxmemory", "maxmemory-policy"]),
        (
            Exact,
            &[
                "CONFIG",
                "SET",
                "maxmemory",
                "0",
                "maxmemory-policy",
                "noeviction",
            ],
        ),
        (Exact, &["CONFIG", "FOO"]),
        (Exact, &["CONFIG"]),
        (Exact, &["CONFIG", "RESETSTAT", "x"]),
        (Exact, &["CONFIG", "RESETSTAT"]),
        (Exact, &["CONFIG", "HELP"]),
        (Exact, &["CONFIG", "HELP", "x"]),
        (Exact, &["CONFIG", "REWRITE"]),
    ]);
}

#[test]
fn client_replies_match_redis() {
    diff(&[
        (Exact, &["CLIENT", "SETNAME", "foo"]),
        (Exact, &["CLIENT", "GETNAME"]),
        (Exact, &["CLIENT", "SETNAME", "a b"]),
        (Exact, &["CLIENT", "SETNAME", "a\nb"]),
        (Exact, &["CLIENT", "SETNAME", ""]),
        (Exact, &["CLIENT", "GETNAME"]),
        (Exact, &["CLIENT", "GETNAME", "x"]),
        (Exact, &["CLIENT", "SETNAME"]),
        (Exact, &["CLIENT", "LIST", "TYPE", "foo"]),
        (Exact, &["CLIENT", "LIST", "TYPE", "pubsub"]),
        (Exact, &["CLIENT", "LIST", "TYPE", "MASTER"]),
        (Exact, &["CLIENT", "LIST", "ID", "1", "abc"]),
        (Exact, &["CLIENT", "LIST", "ID"]),
        (Exact, &["CLIENT", "LIST", "ID", "999999"]),
        (Exact, &["CLIENT", "LIST", "foo"]),
        (Exact, &["CLIENT", "KILL", "1.2.3.4:5"]),
        (Exact, &["CLIENT", "KILL", "ID", "999999"]),
        (Exact, &["CLIENT", "KILL", "ID", "abc"]),
        (Exact, &["CLIENT", "KILL", "ID", "0"]),
        (Exact, &["CLIENT", "KILL", "ID", "-3"]),
        (Exact, &["CLIENT", "KILL", "foo", "bar"]),
        (Exact, &["CLIENT", "KILL", "TYPE", "foo"]),
        (Exact, &["CLIENT", "KILL", "TYPE", "pubsub"]),
        (Exact, &["CLIENT", "KILL", "SKIPME", "maybe"]),
        (Exact, &["CLIENT", "KILL", "USER", "foo"]),
        (
            Exact,
            &["CLIENT", "KILL", "USER", "default", "SKIPME", "yes"],
        ),
        (Exact, &["CLIENT", "KILL", "ID", "1", "SKIPME"]),
        (Exact, &["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "ID", "1"]),
        (Exact, &["CLIENT", "KILL"]),
        (Exact, &["CLIENT", "REPLY", "maybe"]),
        (Exact, &["CLIENT", "REPLY", "on"]),
        (Exact, &["CLIENT", "NO-EVICT", "maybe"]),
        (Exact, &["CLIENT", "NO-EVICT", "on"]),
        (Exact, &["CLIENT", "NO-EVICT", "off"]),
        (Exact, &["CLIENT", "UNBLOCK", "999999"]),
        (Exact, &["CLIENT", "UNBLOCK", "abc"]),
        (Exact, &["CLIENT", "UNBLOCK", "1", "foo"]),
        (Exact, &["CLIENT", "UNBLOCK", "1", "timeout", "x"]),
        (Exact, &["CLIENT", "UNBLOCK", "999999", "ERROR"]),
        (Exact, &["CLIENT", "FOO"]),
        (Exact, &["CLIENT"]),
        (Exact, &["CLIENT", "HELP"]),
        (Exact, &["CLIENT", "TRACKING", "off"]),
        (Exact, &["CLIENT", "TRACKING", "maybe"]),
        (Exact, &["CLIENT", "PAUSE", "abc"]),
        (Exact, &["CLIENT", "PAUSE", "-1"]),
        (Exact, &["CLIENT", "PAUSE", "10", "foo"]),
        (Exact, &["CLIENT", "PAUSE", "1", "WRITE", "x"]),
        (Exact, &["CLIENT", "PAUSE", "1", "WRITE"]),
        (Exact, &["CLIENT", "UNPAUSE"]),
        (Exact, &["CLIENT", "GETREDIR"]),
        (Exact, &["CLIENT", "TRACKINGINFO"]),
        (Exact, &["CLIENT", "CACHING", "yes"]),
    ]);
}

/// A server without cluster mode, and without modules: what Redis 7.0 answers.
#[test]
fn cluster_and_module_commands_match_redis() {
    diff(&[
        (Exact, &["CLUSTER", "INFO"]),
        (Exact, &["CLUSTER", "SLOTS"]),
        (Exact, &["CLUSTER", "HELP"]),
        (Exact, &["CLUSTER", "KEYSLOT", "foo"]),
        (Exact, &["CLUSTER", "NOSUCH"]),
        (Exact, &["CLUSTER", "INFO", "x"]),
        (Exact, &["CLUSTER"]),
        (Exact, &["READONLY"]),
        (Exact, &["READWRITE"]),
        (Exact, &["ASKING"]),
        (Exact, &["READONLY", "x"]),
        (Exact, &["MODULE", "LIST"]),
        (Exact, &["MODULE", "HELP"]),
        (Exact, &["MODULE", "LOAD", "/nonexistent.so"]),
        (Exact, &["MODULE", "UNLOAD", "foo"]),
        (Exact, &["MODULE", "NOSUCH"]),
        (Exact, &["MODULE", "LIST", "x"]),
        (
            Exact,
            &[
                "COMMAND",
                "INFO",
                "readonly",
                "asking",
                "cluster|info",
                "module|list",
            ],
        ),
        (
            Exact,
            &["EVAL", "return redis.call('cluster', 'reset')", "0"],
        ),
        (
            Exact,
            &["EVAL", "return redis.pcall('cluster', 'info')", "0"],
        ),
        (
            Sorted,
            &["COMMAND", "LIST", "FILTERBY", "PATTERN", "cluster|*"],
        ),
        (
            Sorted,
            &["COMMAND", "LIST", "FILTERBY", "PATTERN", "module*"],
        ),
    ]);
}

#[test]
fn command_slowlog_memory_latency_misc_replies_match_redis() {
    diff(&[
        (Exact, &["COMMAND", "COUNT", "x"]),
        (Exact, &["COMMAND", "GETKEYS", "foo", "a"]),
        (Exact, &["COMMAND", "GETKEYS", "get"]),
        (Exact, &["COMMAND", "GETKEYS", "ping", "a"]),
        (Exact, &["COMMAND", "GETKEYS"]),
        (Exact, &["COMMAND", "GETKEYS", "del", "a", "b"]),
        (
            Exact,
            &["COMMAND", "GETKEYS", "expire", "a", "1", "2", "3", "4"],
        ),
        (Exact, &["COMMAND", "GETKEYSANDFLAGS", "foo", "a"]),
        (Exact, &["COMMAND", "LIST", "x"]),
        (Exact, &["COMMAND", "LIST", "FILTERBY"]),
        (Exact, &["COMMAND", "LIST", "FILTERBY", "foo", "x"]),
        (Exact, &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]),
        (Exact, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"]),
        (Exact, &["COMMAND", "LIST", "FILTERBY", "pattern", "x", "y"]),
        (Sorted, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "conf*"]),
        (
            Sorted,
            &["COMMAND", "LIST", "FILTERBY", "PATTERN", "slowlog*"],
        ),
        (Exact, &["COMMAND", "HELP"]),
        (Exact, &["COMMAND", "FOO"]),
        (Exact, &["COMMAND", "DOCS", "nosuch"]),
        (Exact, &["COMMAND", "INFO", "nosuch"]),
        (Exact, &["COMMAND", "INFO", "CONFIG|GET"]),
        (Exact, &["COMMAND", "INFO", "config|nosuch"]),
        (Exact, &["SLOWLOG", "GET", "-2"]),
        (Exact, &["SLOWLOG", "GET", "abc"]),
        (Exact, &["SLOWLOG", "GET", "1", "2"]),
        (Exact, &["SLOWLOG", "GET", "0"]),
        (Exact, &["SLOWLOG", "HELP"]),
        (Exact, &["SLOWLOG", "RESET"]),
        (Exact, &["SLOWLOG", "LEN"]),
        (Exact, &["SLOWLOG", "LEN", "x"]),
        (Exact, &["SLOWLOG", "FOO"]),
        (Exact, &["SLOWLOG"]),
        (Exact, &["MEMORY", "HELP"]),
        (Exact, &["MEMORY", "USAGE", "nokey"]),
        (Exact, &["MEMORY", "USAGE", "k", "SAMPLES", "abc"]),
        (Exact, &["MEMORY", "USAGE", "k", "foo"]),
        (Exact, &["MEMORY", "USAGE", "k", "SAMPLES", "-1"]),
        (Exact, &["MEMORY", "USAGE", "k", "SAMPLES", "5", "x"]),
        (Exact, &["MEMORY", "USAGE", "nokey", "SAMPLES", "0"]),
        (Exact, &["MEMORY", "USAGE"]),
        (Exact, &["MEMORY", "FOO"]),
        (Exact, &["MEMORY", "DOCTOR"]),
        (Exact, &["MEMORY", "PURGE"]),
        (Exact, &["LATENCY", "HELP"]),
        (Exact, &["LATENCY", "LATEST"]),
        (Exact, &["LATENCY", "RESET"]),
        (Exact, &["LATENCY", "RESET", "a", "b"]),
        (Exact, &["LATENCY", "HISTORY", "command"]),
        (Exact, &["LATENCY", "DOCTOR"]),
        (Exact, &["LATENCY", "GRAPH", "x"]),
        (Exact, &["LATENCY", "FOO"]),
        (Exact, &["ROLE"]),
        (Exact, &["ROLE", "x"]),
        (Exact, &["WAIT", "0", "0"]),
        (Exact, &["WAIT", "a", "0"]),
        (Exact, &["WAIT", "0", "-1"]),
        (Exact, &["WAIT", "0", "1.5"]),
        (Exact, &["WAIT", "1", "abc"]),
        (Exact, &["WAIT", "0"]),
        (Exact, &["MONITOR", "x"]),
        (Exact, &["LASTSAVE", "x"]),
        (Exact, &["INFO", "nosuch"]),
        (Exact, &["INFO", "a", "b"]),
    ]);
}

/// Parses INFO text into (section → (field → value)), checking every line's shape.
fn parse_info(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    assert!(text.ends_with("\r\n"), "INFO text must end with CRLF");
    for line in text.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix("# ") {
            section = name.to_string();
            out.entry(section.clone()).or_default();
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("INFO line without ':' {line:?}"));
        assert!(!section.is_empty(), "field {k} outside any section");
        assert!(
            !k.is_empty() && !k.contains(' '),
            "bad field name in {line:?}"
        );
        out.entry(section.clone())
            .or_default()
            .insert(k.to_string(), v.to_string());
    }
    out
}

fn bulk_text(reply: &[u8]) -> String {
    let f = frame(reply);
    assert!(
        f.kind == b'$' || f.kind == b'=',
        "not a bulk/verbatim string: {}",
        escape(reply)
    );
    let start = f.raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let body = &f.raw[start..f.raw.len() - 2];
    let body = if f.kind == b'=' { &body[4..] } else { body };
    String::from_utf8_lossy(body).into_owned()
}

fn sections_of(conn: &mut RawConn, args: &[&str]) -> Vec<String> {
    let text = bulk_text(&conn.cmd(args));
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("# ").map(str::to_string))
        .collect()
}

#[test]
fn info_sections_and_fields() {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut r = redis.conn();
    let mut s = sb.conn();
    s.cmd(&["SET", "k", "v"]);
    s.cmd(&["SET", "t", "v", "EX", "100"]);
    r.cmd(&["SET", "k", "v"]);
    // The same sections, in the same order, for every selector.
    for args in [
        &["INFO"][..],
        &["INFO", "default"],
        &["INFO", "all"],
        &["INFO", "everything"],
        &["INFO", "server"],
        &["INFO", "CPU", "keyspace"],
        &["INFO", "keyspace", "cpu"],
        &["INFO", "modules"],
        &["INFO", "commandstats"],
        &["INFO", "errorstats"],
        &["INFO", "latencystats"],
        &["INFO", "cluster"],
        &["INFO", "default", "commandstats"],
    ] {
        assert_eq!(
            sections_of(&mut s, args),
            sections_of(&mut r, args),
            "{args:?}"
        );
    }
    // Every field Redis prints in these sections exists here too (exporters and clients read them).
    let redis_info = parse_info(&bulk_text(&r.cmd(&["INFO", "everything"])));
    let info = parse_info(&bulk_text(&s.cmd(&["INFO", "everything"])));
    for section in [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
    ] {
        let mine = &info[section];
        for k in redis_info[section].keys() {
            assert!(mine.contains_key(k), "INFO {section} lacks {k}");
        }
    }
    let f = |sec: &str, k: &str| info[sec][k].clone();
    assert_eq!(f("Server", "redis_version"), "7.0.15");
    assert!(!f("Server", "strongbox_version").is_empty());
    assert_eq!(f("Server", "tcp_port"), sb.port().to_string());
    assert_eq!(f("Server", "redis_mode"), "standalone");
    assert_eq!(f("Server", "run_id").len(), 40);
    assert_eq!(f("Clients", "connected_clients"), "1");
    assert_eq!(f("Clients", "maxclients"), "10000");
    assert!(f("Memory", "used_memory").parse::<u64>().unwrap() > 0);
    assert_eq!(f("Memory", "maxmemory"), "0");
    assert_eq!(f("Memory", "maxmemory_human"), "0B");
    assert_eq!(f("Memory", "maxmemory_policy"), "noeviction");
    assert_eq!(f("Persistence", "loading"), "0");
    assert_eq!(f("Replication", "role"), "master");
    assert!(
        f("Stats", "total_commands_processed")
            .parse::<u64>()
            .unwrap()
            >= 2
    );
    assert!(f("Stats", "total_net_input_bytes").parse::<u64>().unwrap() > 0);
    assert!(f("CPU", "used_cpu_user").contains('.'));
    let db0 = f("Keyspace", "db0");
    assert!(db0.starts_with("keys=2,expires=1,avg_ttl="), "{db0}");
    let ttl: i64 = db0.rsplit('=').next().unwrap().parse().unwrap();
    assert!(ttl > 90_000 && ttl <= 100_000, "{db0}");
    assert!(info["Commandstats"]
        .get("cmdstat_set")
        .is_some_and(|v| v.starts_with("calls=2,usec=")));
    // Errors are counted by code.
    s.cmd(&["CONFIG", "SET", "nosuch", "1"]);
    let info = parse_info(&bulk_text(&s.cmd(&["INFO", "errorstats", "stats"])));
    assert_eq!(info["Errorstats"]["errorstat_ERR"], "count=1");
    assert_eq!(info["Stats"]["total_error_replies"], "1");
    // CONFIG RESETSTAT clears them.
    s.assert_cmd(&["CONFIG", "RESETSTAT"], b"+OK\r\n");
    let info = parse_info(&bulk_text(&s.cmd(&["INFO", "errorstats", "stats"])));
    assert!(info["Errorstats"].is_empty());
    assert_eq!(info["Stats"]["total_error_replies"], "0");
    // RESP3: a verbatim string.
    s.cmd(&["HELLO", "3"]);
    let reply = s.cmd(&["INFO", "server"]);
    assert!(reply.starts_with(b"="), "{}", escape(&reply));
    assert!(bulk_text(&reply).starts_with("# Server\r\nredis_version:7.0.15\r\n"));
}

/// Field names of the first line (a client that just disconnected, such as the harness's
/// readiness probe, may still be listed for a moment).
fn client_list_field_names(list: &str) -> Vec<String> {
    list.lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .split(' ')
        .map(|kv| kv.split('=').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn client_list_and_info_have_redis_fields_in_order() {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut r = redis.conn();
    let mut s = sb.conn();
    let want = client_list_field_names(&bulk_text(&r.cmd(&["CLIENT", "LIST"])));
    let list = bulk_text(&s.cmd(&["CLIENT", "LIST"]));
    assert!(list.ends_with('\n'));
    assert_eq!(client_list_field_names(&list), want);
    let info = bulk_text(&s.cmd(&["CLIENT", "INFO"]));
    assert_eq!(client_list_field_names(&info), want);
    assert!(info.contains(" cmd=client|info "), "{info}");
    assert!(info.contains(" flags=N "), "{info}");
    assert!(info.contains(" resp=2"), "{info}");

    // Two more clients, one named and one subscribed.
    let mut a = sb.conn();
    a.assert_cmd(&["CLIENT", "SETNAME", "alpha"], b"+OK\r\n");
    let a_id = String::from_utf8(a.cmd(&["CLIENT", "ID"])).unwrap();
    let a_id = a_id.trim_start_matches(':').trim_end().to_string();
    let mut p = sb.conn();
    p.cmd(&["SUBSCRIBE", "ch"]);
    let list = bulk_text(&s.cmd(&["CLIENT", "LIST"]));
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains(" name=alpha "), "{list}");
    let ids: Vec<u64> = list
        .lines()
        .map(|l| l[3..l.find(' ').unwrap()].parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by id: {list}");
    let pubsub = bulk_text(&s.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]));
    assert_eq!(pubsub.lines().count(), 1, "{pubsub}");
    assert!(
        pubsub.contains(" flags=P ") && pubsub.contains(" sub=1 "),
        "{pubsub}"
    );
    assert_eq!(
        bulk_text(&s.cmd(&["CLIENT", "LIST", "TYPE", "normal"]))
            .lines()
            .count(),
        2
    );
    let by_id = bulk_text(&s.cmd(&["CLIENT", "LIST", "ID", &a_id, "999999"]));
    assert_eq!(by_id.lines().count(), 1);
    assert!(by_id.starts_with(&format!("id={a_id} ")), "{by_id}");

    // KILL by id: the other connection is closed, the caller is not.
    s.assert_cmd(&["CLIENT", "KILL", "ID", &a_id], b":1\r\n");
    assert!(a.is_closed_within(Duration::from_secs(2)));
    // KILL TYPE pubsub: the subscription is gone at once.
    s.assert_cmd(&["CLIENT", "KILL", "TYPE", "pubsub"], b":1\r\n");
    s.assert_cmd(&["PUBLISH", "ch", "x"], b":0\r\n");
    assert!(p.is_closed_within(Duration::from_secs(2)));
    s.assert_cmd(&["PING"], b"+PONG\r\n");
    // Old form by address.
    let mut b = sb.conn();
    let b_info = bulk_text(&b.cmd(&["CLIENT", "INFO"]));
    let b_addr = b_info
        .split(' ')
        .find_map(|kv| kv.strip_prefix("addr="))
        .unwrap()
        .to_string();
    s.assert_cmd(&["CLIENT", "KILL", &b_addr], b"+OK\r\n");
    assert!(b.is_closed_within(Duration::from_secs(2)));
    // SKIPME no: the caller gets its reply, then is closed.
    s.assert_cmd(
        &["CLIENT", "KILL", "USER", "default", "SKIPME", "no"],
        b":1\r\n",
    );
    assert!(s.is_closed_within(Duration::from_secs(2)));
}

/// CLIENT REPLY OFF/ON/SKIP: the same bytes as Redis for the same pipeline.
#[test]
fn client_reply_modes_match_redis() {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let run = |port: u16| -> Vec<u8> {
        let mut c = RawConn::connect(port);
        for args in [
            &["CLIENT", "REPLY", "OFF"][..],
            &["PING", "a"],
            &["CLIENT", "REPLY", "SKIP"],
            &["PING", "b"],
            &["CLIENT", "REPLY", "ON"],
            &["PING", "c"],
            &["CLIENT", "REPLY", "SKIP"],
            &["PING", "d"],
            &["PING", "e"],
        ] {
            c.send_cmd(args);
        }
        let mut got = Vec::new();
        while let Ok(r) = c.read_reply_within(Duration::from_millis(500)) {
            got.extend_from_slice(&r);
        }
        got
    };
    let want = run(redis.port());
    assert_eq!(escape(&want), escape(b"+OK\r\n$1\r\nc\r\n$1\r\ne\r\n"));
    assert_eq!(escape(&run(sb.port())), escape(&want));
}

#[test]
fn client_unblock_wakes_a_blocked_client() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut s = sb.conn();
    if s.cmd(&["COMMAND", "INFO", "blpop"])
        .starts_with(b"*1\r\n$-1")
    {
        eprintln!("BLPOP not implemented yet: CLIENT UNBLOCK on a blocked client not tested");
        return;
    }
    let mut b = sb.conn();
    let id = String::from_utf8(b.cmd(&["CLIENT", "ID"])).unwrap();
    let id = id.trim_start_matches(':').trim_end().to_string();
    b.send_cmd(&["BLPOP", "nolist", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    let info = parse_info(&bulk_text(&s.cmd(&["INFO", "clients"])));
    assert_eq!(info["Clients"]["blocked_clients"], "1");
    let line = bulk_text(&s.cmd(&["CLIENT", "LIST", "ID", &id]));
    assert!(line.contains(" flags=b "), "{line}");
    s.assert_cmd(&["CLIENT", "UNBLOCK", &id], b":1\r\n");
    assert_eq!(escape(&b.read_reply()), escape(b"*-1\r\n"));
    b.send_cmd(&["BLPOP", "nolist", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    s.assert_cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"], b":1\r\n");
    assert_eq!(
        escape(&b.read_reply()),
        escape(b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")
    );
    s.assert_cmd(&["CLIENT", "UNBLOCK", &id], b":0\r\n");
    b.assert_cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn config_set_has_runtime_effects_and_is_atomic() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut s = sb.conn();
    let mut sub = sb.conn();
    sub.cmd(&["SUBSCRIBE", "__keyevent@0__:set"]);
    s.cmd(&["SET", "a", "1"]);
    assert!(sub.read_reply_within(Duration::from_millis(300)).is_err());
    s.assert_cmd(
        &["CONFIG", "SET", "notify-keyspace-events", "E$"],
        b"+OK\r\n",
    );
    s.assert_cmd(
        &["CONFIG", "GET", "notify-keyspace-events"],
        b"*2\r\n$22\r\nnotify-keyspace-events\r\n$2\r\n$E\r\n",
    );
    s.cmd(&["SET", "a", "2"]);
    assert_eq!(
        escape(&sub.read_reply()),
        escape(b"*3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:set\r\n$1\r\na\r\n")
    );
    // hz: clamped, and INFO shows the live value.
    s.assert_cmd(&["CONFIG", "SET", "hz", "100"], b"+OK\r\n");
    let info = parse_info(&bulk_text(&s.cmd(&["INFO", "server"])));
    assert_eq!(info["Server"]["hz"], "100");
    // All or nothing.
    s.assert_cmd(
        &["CONFIG", "SET", "slowlog-max-len", "5", "maxmemory", "x"],
        b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n",
    );
    s.assert_cmd(
        &["CONFIG", "GET", "slowlog-max-len"],
        b"*2\r\n$15\r\nslowlog-max-len\r\n$3\r\n128\r\n",
    );
}

#[test]
fn config_rewrite_writes_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("strongbox.conf");
    std::fs::write(&conf, "# my config\nmaxmemory 0\n").unwrap();
    let conf_s = conf.to_str().unwrap().to_string();
    // The config file must come first on the command line: start the binary directly.
    let port = common::pick_free_port();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut child = Command::new(common::server::strongbox_bin())
        .args([
            &conf_s,
            "--port",
            &port.to_string(),
            "--dir",
            data.to_str().unwrap(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut c = None;
    for _ in 0..100 {
        if let Ok(conn) = RawConn::try_connect(port) {
            c = Some(conn);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = c.expect("server did not start");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.assert_cmd(&["CONFIG", "SET", "maxmemory", "2mb"], b"+OK\r\n");
        c.assert_cmd(&["CONFIG", "REWRITE"], b"+OK\r\n");
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.contains("# my config"), "{text}");
        assert!(text.contains("maxmemory 2097152"), "{text}");
        let info = parse_info(&bulk_text(&c.cmd(&["INFO", "server"])));
        assert!(info["Server"]["config_file"].ends_with("strongbox.conf"));
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn command_info_docs_list_shapes() {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut r = redis.conn();
    let mut s = sb.conn();
    let count = String::from_utf8(s.cmd(&["COMMAND", "COUNT"])).unwrap();
    let count: usize = count.trim_start_matches(':').trim_end().parse().unwrap();
    assert!(count > 20);
    let all = frame(&s.cmd(&["COMMAND"]));
    assert_eq!(all.children.len(), count);
    for e in &all.children {
        assert_eq!(e.kind, b'*');
        assert_eq!(e.children.len(), 10, "{}", escape(&e.raw));
        assert_eq!(e.children[0].kind, b'$');
        assert_eq!(e.children[1].kind, b':');
        assert_eq!(e.children[3].kind, b':');
    }
    // The same shape (kinds at every depth) as Redis for commands in both tables.
    fn kinds(f: &Frame) -> String {
        let mut s = String::from(f.kind as char);
        if !f.children.is_empty() {
            s.push('[');
            for c in &f.children {
                s.push_str(&kinds(c));
            }
            s.push(']');
        }
        s
    }
    for name in ["config|get", "info", "dbsize", "del", "lastsave"] {
        let want = frame(&r.cmd(&["COMMAND", "INFO", name]));
        let got = frame(&s.cmd(&["COMMAND", "INFO", name]));
        // Tips and documentation differ; the frame kinds of name/arity/flags/keys agree.
        let head = |f: &Frame| {
            f.children[0].children[..6]
                .iter()
                .map(kinds)
                .collect::<Vec<_>>()
        };
        assert_eq!(head(&got), head(&want), "COMMAND INFO {name}");
        assert_eq!(
            got.children[0].children[1].raw, want.children[0].children[1].raw,
            "arity of {name}"
        );
    }
    // Flags and ACL categories of the server/admin commands are Redis's.
    for name in [
        "config|get",
        "config|help",
        "client|kill",
        "client|id",
        "client|setname",
        "command|info",
        "slowlog|get",
        "latency|latest",
        "memory|usage",
        "info",
        "lastsave",
        "role",
        "monitor",
        "debug",
        "shutdown",
        "dbsize",
        "flushdb",
        "swapdb",
        "time",
        "wait",
    ] {
        let want = frame(&r.cmd(&["COMMAND", "INFO", name]));
        let got = frame(&s.cmd(&["COMMAND", "INFO", name]));
        for (i, what) in [(1, "arity"), (2, "flags"), (6, "ACL categories")] {
            assert_eq!(
                escape(&got.children[0].children[i].raw),
                escape(&want.children[0].children[i].raw),
                "{what} of {name}"
            );
        }
    }
    // RESP3: flags are sets, DOCS is a map of maps.
    s.cmd(&["HELLO", "3"]);
    let info = frame(&s.cmd(&["COMMAND", "INFO", "config"]));
    assert_eq!(info.children[0].children[2].kind, b'~');
    let subs: BTreeSet<String> = info.children[0].children[9]
        .children
        .iter()
        .map(|e| String::from_utf8_lossy(&e.children[0].raw).into_owned())
        .collect();
    assert!(subs.iter().any(|n| n.contains("config|get")), "{subs:?}");
    let docs = frame(&s.cmd(&["COMMAND", "DOCS", "config", "info"]));
    assert_eq!(docs.kind, b'%');
    assert_eq!(docs.children.len(), 4);
    assert_eq!(docs.children[1].kind, b'%');
    let list = frame(&s.cmd(&["COMMAND", "LIST"]));
    assert!(list.children.len() > count);
    let admin = frame(&s.cmd(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "admin"]));
    let names: Vec<String> = admin
        .children
        .iter()
        .map(|f| String::from_utf8_lossy(&f.raw).into_owned())
        .collect();
    assert!(names.iter().any(|n| n.contains("config|set")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("config|help")),
        "{names:?}"
    );
}

#[test]
fn slowlog_monitor_memory_debug_lastsave() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut s = sb.conn();
    // SLOWLOG records everything with a 0 threshold.
    s.assert_cmd(
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
        b"+OK\r\n",
    );
    s.cmd(&["CLIENT", "SETNAME", "slowpoke"]);
    s.cmd(&["PING", "hello"]);
    let got = frame(&s.cmd(&["SLOWLOG", "GET", "1"]));
    assert_eq!(got.children.len(), 1);
    let e = &got.children[0];
    assert_eq!(e.children.len(), 6);
    assert_eq!(
        escape(&e.children[3].raw),
        escape(b"*2\r\n$4\r\nPING\r\n$5\r\nhello\r\n")
    );
    assert_eq!(escape(&e.children[5].raw), escape(b"$8\r\nslowpoke\r\n"));
    let all = frame(&s.cmd(&["SLOWLOG", "GET", "-1"]));
    assert!(all.children.len() >= 3);
    s.assert_cmd(&["SLOWLOG", "RESET"], b"+OK\r\n");
    s.assert_cmd(
        &["CONFIG", "SET", "slowlog-log-slower-than", "10000"],
        b"+OK\r\n",
    );
    let len = s.cmd(&["SLOWLOG", "LEN"]);
    assert!(len == b":0\r\n" || len == b":1\r\n", "{}", escape(&len));

    // MONITOR sees other clients' commands.
    let mut m = sb.conn();
    m.assert_cmd(&["MONITOR"], b"+OK\r\n");
    s.cmd(&["SET", "mk", "mv"]);
    let line = m.read_reply();
    let line = String::from_utf8_lossy(&line);
    assert!(line.starts_with('+'), "{line}");
    assert!(line.contains("[0 127.0.0.1:"), "{line}");
    assert!(line.ends_with("\"SET\" \"mk\" \"mv\"\r\n"), "{line}");
    let list = bulk_text(&s.cmd(&["CLIENT", "LIST"]));
    assert!(list.contains(" flags=O "), "{list}");

    // MEMORY USAGE of an existing key; DEBUG OBJECT; DEBUG SLEEP.
    let usage = String::from_utf8(s.cmd(&["MEMORY", "USAGE", "mk"])).unwrap();
    assert!(usage.starts_with(':'), "{usage}");
    let small = usage[1..].trim_end().parse::<u64>().unwrap();
    assert!(small >= 40, "{usage}");
    // A value past the inline size costs its bytes on top.
    s.assert_cmd(&["SET", "mk2", &"v".repeat(300)], b"+OK\r\n");
    let usage2 = String::from_utf8(s.cmd(&["MEMORY", "USAGE", "mk2"])).unwrap();
    let big = usage2[1..].trim_end().parse::<u64>().unwrap();
    assert!(big >= small + 300, "{usage} {usage2}");
    let stats = frame(&s.cmd(&["MEMORY", "STATS"]));
    assert_eq!(stats.kind, b'*');
    assert!(stats.children.len().is_multiple_of(2) && stats.children.len() > 20);
    let obj = String::from_utf8(s.cmd(&["DEBUG", "OBJECT", "mk"])).unwrap();
    assert!(
        obj.starts_with("+Value at:") && obj.contains(" encoding:embstr "),
        "{obj}"
    );
    s.assert_cmd(&["DEBUG", "OBJECT", "nokey"], b"-ERR no such key\r\n");
    s.assert_cmd(&["DEBUG", "SLEEP", "0"], b"+OK\r\n");
    let lastsave = String::from_utf8(s.cmd(&["LASTSAVE"])).unwrap();
    let lastsave: i64 = lastsave[1..].trim_end().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - lastsave).abs() < 3600, "{lastsave} vs {now}");
    s.assert_cmd(&["WAIT", "1", "100"], b":0\r\n");
}

fn run_tool(cmd: &mut Command, stdin: Option<Vec<u8>>) -> (String, String) {
    let shown = format!("{cmd:?}");
    let out = run_with_timeout(cmd, stdin, CLIENT_TIMEOUT);
    assert!(
        out.status.success(),
        "{shown} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn redis_cli_interactive_session() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let p = sb.port().to_string();
    let input = b"PING\nCLIENT SETNAME cli\nCLIENT GETNAME\nCONFIG GET maxmemory\nINFO server\nCOMMAND COUNT\nQUIT\n".to_vec();
    // Through a pseudo-terminal redis-cli runs its interactive mode (help integration via
    // COMMAND, hints, the prompt); `script` provides the terminal.
    let (out, _) = run_tool(
        Command::new("script")
            .args(["-qec", &format!("redis-cli -p {p}"), "/dev/null"])
            .env("TERM", "dumb"),
        Some(input.clone()),
    );
    assert!(out.contains("PONG"), "{out}");
    assert!(out.contains("\"cli\""), "{out}");
    assert!(out.contains("redis_version:7.0.15"), "{out}");
    assert!(!out.contains("(error)"), "{out}");
    // Piped stdin (non-interactive).
    let (out, err) = run_tool(Command::new("redis-cli").args(["-p", &p]), Some(input));
    assert!(out.starts_with("PONG\nOK\ncli\nmaxmemory\n0\n"), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn redis_benchmark_ping_runs() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let p = sb.port().to_string();
    let (out, err) = run_tool(
        Command::new("redis-benchmark").args(["-p", &p, "-q", "-n", "1000", "-t", "ping"]),
        None,
    );
    assert!(
        out.contains("PING_INLINE") && out.contains("PING_MBULK"),
        "{out}"
    );
    assert!(!err.contains("ERR") && !out.contains("ERR"), "{out}\n{err}");
}

#[test]
fn redis_py_admin_helpers() {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("python3 with the redis package is not installed: skipped");
        return;
    }
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let script = format!(
        r#"
import redis
r = redis.Redis(port={port})
info = r.info()
assert info["redis_version"] == "7.0.15", info["redis_version"]
assert info["role"] == "master"
assert isinstance(info["used_memory"], int)
assert "used_cpu_sys" in r.info("cpu")
assert r.info("all")["cluster_enabled"] == 0
r.set("k", "v")
assert r.info("keyspace")["db0"]["keys"] == 1
assert r.config_get("maxmemory") == {{"maxmemory": "0"}}
assert r.config_set("maxmemory-policy", "allkeys-lru")
assert r.config_get("maxmemory-*")["maxmemory-policy"] == "allkeys-lru"
r.client_setname("py")
assert r.client_getname() in ("py", b"py")
cl = r.client_list()
assert any(c["name"] == "py" for c in cl), cl
assert r.client_info()["name"] == "py"
assert r.client_id() > 0
assert r.command_count() > 20
assert r.slowlog_len() >= 0
assert isinstance(r.slowlog_get(), list)
assert r.memory_usage("k") > 0
assert r.lastsave() is not None
assert r.config_resetstat()
r3 = redis.Redis(port={port}, protocol=3)
assert r3.info()["redis_version"] == "7.0.15"
assert r3.config_get("hz") == {{"hz": "10"}}
print("ok")
"#,
        port = sb.port()
    );
    let (out, _) = run_tool(Command::new("python3").args(["-c", &script]), None);
    assert_eq!(out.trim(), "ok");
}

/// LOLWUT as redis-server 7.0 draws it: the default (the version line), Schotter with one or
/// two rows of squares (no randomness: byte for byte), argument errors and limits, VERSION
/// read as an unsigned int, and RESP3's verbatim string; the random drawings by their shape.
#[test]
fn lolwut_matches_redis() {
    diff(&[
        (Exact, &["LOLWUT"]),
        (Exact, &["LOLWUT", "1", "2", "3"]),
        (Exact, &["LOLWUT", "VERSION"]),
        (Exact, &["LOLWUT", "VERSION", "x"]),
        (Exact, &["LOLWUT", "VERSION", "9"]),
        (Exact, &["LOLWUT", "VERSION", "-1"]),
        (Exact, &["LOLWUT", "version", "5", "66", "8", "2"]),
        (Exact, &["LOLWUT", "VERSION", "5", "1", "1", "1"]),
        (Exact, &["LOLWUT", "VERSION", "5", "2", "1", "2"]),
        (Exact, &["LOLWUT", "VERSION", "5", "3", "7", "1"]),
        (Exact, &["LOLWUT", "VERSION", "5", "0", "0", "0"]),
        (Exact, &["LOLWUT", "VERSION", "5", "5000", "300", "1"]),
        (Exact, &["LOLWUT", "VERSION", "5", "123", "5", "2", "extra"]),
        (Exact, &["LOLWUT", "VERSION", "4294967301", "20", "3", "2"]),
        (Exact, &["LOLWUT", "VERSION", "5", "x"]),
        (Exact, &["LOLWUT", "VERSION", "5", "10", "x"]),
        (Exact, &["LOLWUT", "VERSION", "6", "10", "x"]),
        (Exact, &["COMMAND", "INFO", "lolwut"]),
    ]);
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let (mut r, mut s) = (redis.conn(), sb.conn());
    r.cmd(&["HELLO", "3"]);
    s.cmd(&["HELLO", "3"]);
    for args in [&["LOLWUT"][..], &["LOLWUT", "VERSION", "5", "40", "4", "2"]] {
        assert_eq!(escape(&s.cmd(args)), escape(&r.cmd(args)), "{args:?}");
    }
    // Random drawings: the same size and trailer, each line of cells in Redis's four grays.
    let shape = |reply: &[u8]| -> (Vec<usize>, String) {
        let text = String::from_utf8(reply.to_vec()).unwrap();
        let body = &text[text.find("txt:").unwrap() + 4..];
        let (art, trailer) =
            body.split_at(body.find("\nDedicated").or(body.find("\nGeorg")).unwrap());
        const GRAYS: [&str; 4] = [
            "\x1b[0;30;40m \x1b[0m",
            "\x1b[0;90;100m \x1b[0m",
            "\x1b[0;37;47m \x1b[0m",
            "\x1b[0;97;107m \x1b[0m",
        ];
        let widths = art
            .split('\n')
            .map(|line| {
                let (mut rest, mut cells) = (line, 0);
                while !rest.is_empty() {
                    let Some(r) = GRAYS.iter().find_map(|g| rest.strip_prefix(g)) else {
                        panic!("not a cell of the four grays: {rest:?}");
                    };
                    rest = r;
                    cells += 1;
                }
                cells
            })
            .collect::<Vec<_>>();
        (widths, trailer.to_string())
    };
    for args in [
        &["LOLWUT", "VERSION", "6"][..],
        &["LOLWUT", "VERSION", "6", "33", "7"],
        &["LOLWUT", "VERSION", "6", "1", "1"],
    ] {
        let (a, b) = (r.cmd(args), s.cmd(args));
        assert_eq!(shape(&b), shape(&a), "{args:?}");
    }
    // Schotter with random rows: the same number of lines of the same width, same trailer.
    let lines = |reply: &[u8]| -> Vec<usize> {
        let text = String::from_utf8(reply.to_vec()).unwrap();
        text.split('\n').map(|l| l.chars().count()).collect()
    };
    let args = &["LOLWUT", "VERSION", "5", "50", "6", "9"];
    assert_eq!(lines(&s.cmd(args)), lines(&r.cmd(args)));
}
