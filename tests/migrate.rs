//! MIGRATE between Strongbox and redis-server 7.0, both ways: the same script of MIGRATE calls
//! (one key, KEYS, COPY, REPLACE, a busy key on the target, AUTH right and wrong, a TTL, a
//! missing key, a dead target) gives byte-identical replies and leaves the same keys on both
//! sides whichever server is the source and which the target. And a migrated key is gone from
//! the source's log: it stays gone after a restart.

mod common;

use std::time::Duration;

use common::{escape, RawConn, RedisServer, ServerProcess, StrongboxServer};

/// Runs the script with `src` migrating into `dst`; returns what a client saw.
fn script(src: &ServerProcess, dst: &ServerProcess) -> Vec<String> {
    let mut s = src.conn();
    let mut d = dst.conn();
    let host = "127.0.0.1";
    let port = dst.port().to_string();
    let mut seen = Vec::new();
    let mut note = |what: &str, reply: Vec<u8>| seen.push(format!("{what}: {}", escape(&reply)));

    s.cmd(&["SET", "str", "value"]);
    s.cmd(&["RPUSH", "list", "a", "b", "c"]);
    s.cmd(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
    s.cmd(&["ZADD", "zset", "1", "x", "2.5", "y"]);
    s.cmd(&["SADD", "set", "m1", "m2"]);
    s.cmd(&["SET", "ttl", "v", "PX", "100000"]);
    let big = "x".repeat(200_000);
    s.cmd(&["SET", "big", &big]);
    s.cmd(&["MSET", "k1", "1", "k2", "2", "k3", "3"]);

    note("info before", info_field(&mut s, "migrate_cached_sockets"));
    note(
        "one key",
        s.cmd(&["MIGRATE", host, &port, "str", "0", "5000"]),
    );
    note("info after", info_field(&mut s, "migrate_cached_sockets"));
    note("gone from src", s.cmd(&["EXISTS", "str"]));
    note("on dst", d.cmd(&["GET", "str"]));
    note(
        "missing key",
        s.cmd(&["MIGRATE", host, &port, "nosuch", "0", "5000"]),
    );
    note(
        "copy",
        s.cmd(&["MIGRATE", host, &port, "list", "0", "5000", "COPY"]),
    );
    note("copy kept", s.cmd(&["LRANGE", "list", "0", "-1"]));
    note("copy on dst", d.cmd(&["LRANGE", "list", "0", "-1"]));
    note(
        "busy",
        s.cmd(&["MIGRATE", host, &port, "list", "0", "5000"]),
    );
    note("busy kept", s.cmd(&["EXISTS", "list"]));
    note(
        "replace",
        s.cmd(&["MIGRATE", host, &port, "list", "0", "5000", "REPLACE"]),
    );
    note("replace gone", s.cmd(&["EXISTS", "list"]));
    note("ttl", s.cmd(&["MIGRATE", host, &port, "ttl", "0", "5000"]));
    let pttl = String::from_utf8_lossy(&d.cmd(&["PTTL", "ttl"])).to_string();
    let pttl: i64 = pttl.trim().trim_start_matches(':').parse().unwrap_or(-9);
    note(
        "ttl kept",
        format!("{}", (90_000..=100_000).contains(&pttl)).into_bytes(),
    );
    note("big", s.cmd(&["MIGRATE", host, &port, "big", "0", "5000"]));
    note("big on dst", d.cmd(&["STRLEN", "big"]));
    note(
        "other db",
        s.cmd(&["MIGRATE", host, &port, "zset", "3", "5000"]),
    );
    d.cmd(&["SELECT", "3"]);
    note(
        "zset in db 3",
        d.cmd(&["ZRANGE", "zset", "0", "-1", "WITHSCORES"]),
    );
    d.cmd(&["SELECT", "0"]);
    d.cmd(&["SET", "k2", "busy"]);
    note(
        "keys with one busy",
        s.cmd(&[
            "MIGRATE", host, &port, "", "0", "5000", "KEYS", "k1", "k2", "k3", "nosuch",
        ]),
    );
    note("acked keys gone", s.cmd(&["EXISTS", "k1", "k2", "k3"]));
    note("busy not replaced", d.cmd(&["GET", "k2"]));
    note(
        "keys needs empty key",
        s.cmd(&["MIGRATE", host, &port, "k2", "0", "5000", "KEYS", "k2"]),
    );
    note(
        "syntax",
        s.cmd(&["MIGRATE", host, &port, "k2", "0", "5000", "FOO"]),
    );
    note(
        "auth syntax",
        s.cmd(&["MIGRATE", host, &port, "k2", "0", "5000", "AUTH"]),
    );
    note(
        "bad timeout",
        s.cmd(&["MIGRATE", host, &port, "k2", "0", "x"]),
    );
    note(
        "bad db",
        s.cmd(&["MIGRATE", host, &port, "k2", "x", "5000"]),
    );

    d.cmd(&["CONFIG", "SET", "requirepass", "secret"]);
    d.cmd(&["AUTH", "secret"]);
    note(
        "wrong password",
        s.cmd(&["MIGRATE", host, &port, "hash", "0", "5000", "AUTH", "nope"]),
    );
    note("kept after error", s.cmd(&["EXISTS", "hash"]));
    note(
        "auth2",
        s.cmd(&[
            "MIGRATE", host, &port, "hash", "0", "5000", "AUTH2", "default", "secret",
        ]),
    );
    note("hash on dst", d.cmd(&["HGET", "hash", "f2"]));
    note(
        "auth",
        s.cmd(&["MIGRATE", host, &port, "set", "0", "5000", "AUTH", "secret"]),
    );
    note("set on dst", d.cmd(&["SCARD", "set"]));
    d.cmd(&["CONFIG", "SET", "requirepass", ""]);
    note("dst dbsize", d.cmd(&["DBSIZE"]));
    note("src dbsize", s.cmd(&["DBSIZE"]));

    // Nobody listens on this port: the connection fails.
    let dead = common::pick_free_port().to_string();
    s.cmd(&["SET", "str", "again"]);
    note(
        "dead target",
        s.cmd(&["MIGRATE", host, &dead, "str", "0", "300"]),
    );
    note("kept after dead target", s.cmd(&["EXISTS", "str"]));
    let huge = i64::MAX.to_string();
    note(
        "huge timeout",
        s.cmd(&["MIGRATE", host, &port, "str", "0", &huge]),
    );
    seen
}

fn info_field(c: &mut RawConn, field: &str) -> Vec<u8> {
    let info = c.cmd(&["INFO", "stats"]);
    let text = String::from_utf8_lossy(&info);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("missing")
        .as_bytes()
        .to_vec()
}

#[test]
fn migrate_between_strongbox_and_redis_both_ways() {
    let reference = script(&RedisServer::start(&[]), &RedisServer::start(&[]));
    let check = |label: &str, got: Vec<String>| {
        for (want, got) in reference.iter().zip(&got) {
            assert_eq!(got, want, "{label}: differs from redis→redis");
        }
        assert_eq!(got.len(), reference.len(), "{label}");
    };
    let sbox = || StrongboxServer::start(&["--appendonly", "yes"]);
    check("strongbox→redis", script(&sbox(), &RedisServer::start(&[])));
    check("redis→strongbox", script(&RedisServer::start(&[]), &sbox()));
    check("strongbox→strongbox", script(&sbox(), &sbox()));
}

/// A migrated key's deletion is logged (as DEL): after a restart of the source it is still gone,
/// and a copied one is still there.
#[test]
fn migrated_keys_stay_deleted_after_restart() {
    let mut src = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let dst = RedisServer::start(&[]);
    let mut s = src.conn();
    let port = dst.port().to_string();
    s.cmd(&["MSET", "moved", "1", "copied", "2", "also", "3"]);
    s.assert_cmd(
        &[
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "KEYS",
            "moved",
            "also",
        ],
        b"+OK\r\n",
    );
    s.assert_cmd(
        &["MIGRATE", "127.0.0.1", &port, "copied", "0", "5000", "COPY"],
        b"+OK\r\n",
    );
    drop(s);
    src.kill9();
    src.restart();
    let mut s = src.conn();
    s.set_timeout(Duration::from_secs(10));
    s.assert_cmd(&["EXISTS", "moved", "also"], b":0\r\n");
    s.assert_cmd(&["GET", "copied"], b"$1\r\n2\r\n");
    let mut d = dst.conn();
    d.assert_cmd(
        &["MGET", "moved", "copied", "also"],
        b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n",
    );
}

/// COMMAND GETKEYS finds MIGRATE's keys (argument 3, or after KEYS) and SORT's keys (the last
/// STORE, skipping LIMIT/GET/BY arguments) as Redis's key-finding functions do.
#[test]
fn command_getkeys_of_migrate_and_sort_match_redis() {
    let redis = RedisServer::start(&[]);
    let sbox = StrongboxServer::start(&[]);
    let (mut r, mut s) = (redis.conn(), sbox.conn());
    for cmd in [
        "MIGRATE h 1 k 0 0",
        "MIGRATE h 1  0 0 COPY KEYS a b",
        "MIGRATE h 1  0 0 AUTH keys KEYS a b",
        "SORT abc STORE invalid STORE stillbad STORE def",
        "SORT abc BY store GET store LIMIT store store STORE d",
        "SORT abc STORE",
    ] {
        let mut args = vec!["COMMAND", "GETKEYS"];
        // Two spaces stand for an empty argument.
        args.extend(cmd.split(' '));
        assert_eq!(
            escape(&s.cmd(&args)),
            escape(&r.cmd(&args)),
            "COMMAND GETKEYS {cmd}"
        );
    }
}

/// MIGRATE, RESTORE, RESTORE-ASKING, SORT and SORT_RO are in @dangerous (and SORT in @set,
/// @sortedset, @list rather than @keyspace) as in Redis, so `-@dangerous` users cannot run them;
/// MIGRATE and SORT are `movablekeys`.
#[test]
fn acl_categories_of_migrate_restore_sort_match_redis() {
    let redis = RedisServer::start(&[]);
    let sbox = StrongboxServer::start(&[]);
    let (mut r, mut s) = (redis.conn(), sbox.conn());
    for name in [
        "migrate",
        "restore",
        "restore-asking",
        "sort",
        "sort_ro",
        "dump",
    ] {
        let cats = |c: &mut RawConn| {
            let info = c.cmd(&["COMMAND", "INFO", name]);
            let text = String::from_utf8_lossy(&info).to_string();
            text.split("\r\n")
                .filter(|l| l.starts_with("+@") || l.starts_with("@"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(cats(&mut s), cats(&mut r), "COMMAND INFO {name} categories");
        let movable = |c: &mut RawConn| {
            let info = c.cmd(&["COMMAND", "INFO", name]);
            String::from_utf8_lossy(&info).contains("+movablekeys")
        };
        assert_eq!(
            movable(&mut s),
            movable(&mut r),
            "COMMAND INFO {name} movablekeys"
        );
    }
    for c in [&mut r, &mut s] {
        c.assert_cmd(
            &[
                "ACL",
                "SETUSER",
                "u",
                "on",
                ">p",
                "~*",
                "+@all",
                "-@dangerous",
            ],
            b"+OK\r\n",
        );
        c.assert_cmd(&["AUTH", "u", "p"], b"+OK\r\n");
    }
    for cmd in [
        &["MIGRATE", "127.0.0.1", "1", "k", "0", "10"][..],
        &["RESTORE", "k", "0", "x"],
        &["SORT", "k"],
        &["SORT_RO", "k"],
    ] {
        assert_eq!(
            escape(&s.cmd(cmd)),
            escape(&r.cmd(cmd)),
            "{cmd:?} as a -@dangerous user"
        );
    }
}
