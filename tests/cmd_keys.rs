//! Keyspace commands and DEBUG against the real binary: DEBUG DIGEST / DIGEST-VALUE equal to
//! redis-server 7.0's for the same data, KEYS patterns matched as Redis matches them, and a
//! pattern that made the old recursive glob matcher run for minutes.

mod common;

use std::time::{Duration, Instant};

use common::{escape, RawConn, RedisServer, StrongboxServer};

fn digest(port: u16) -> Vec<u8> {
    RawConn::connect(port).cmd(&["DEBUG", "DIGEST"])
}

#[test]
fn debug_digest_matches_redis_for_the_same_commands() {
    let sb = StrongboxServer::start(&[]);
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    let script: &[&[&str]] = &[
        &["SET", "s", "hello"],
        &["SET", "n", "12345"],
        &["RPUSH", "l", "a", "b", "1", "c"],
        &["SADD", "set", "x", "y", "3"],
        &["SADD", "iset", "1", "2", "3"],
        &["ZADD", "z", "1.5", "a", "-2", "b", "inf", "c"],
        &["HSET", "h", "f1", "v1", "f2", "2"],
        &["XADD", "x", "1-1", "a", "1", "b", "2"],
        &["XADD", "x", "2-0", "c", "3"],
        &["EXPIRE", "s", "1000"],
        &["SELECT", "3"],
        &["SET", "s", "hello"],
    ];
    let mut r = redis.conn();
    let mut s = sb.conn();
    assert_eq!(digest(sb.port()), digest(redis.port()), "empty dataset");
    for args in script {
        assert_eq!(escape(&s.cmd(args)), escape(&r.cmd(args)), "{args:?}");
    }
    assert_eq!(escape(&digest(sb.port())), escape(&digest(redis.port())));
    let dv = [
        "DEBUG",
        "DIGEST-VALUE",
        "s",
        "l",
        "set",
        "z",
        "h",
        "x",
        "missing",
    ];
    let (mut r0, mut s0) = (redis.conn(), sb.conn());
    assert_eq!(escape(&s0.cmd(&dv)), escape(&r0.cmd(&dv)));
}

#[test]
fn keys_with_many_stars_answers_at_once() {
    let sb = StrongboxServer::start(&[]);
    let mut c = sb.conn();
    c.assert_cmd(&["SET", &"a".repeat(40), "1"], b"+OK\r\n");
    let t = Instant::now();
    c.assert_cmd(
        &["KEYS", "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"],
        b"*0\r\n",
    );
    let long = format!("{}b", "*a".repeat(500));
    c.assert_cmd(&["KEYS", &long], b"*0\r\n");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn glob_patterns_match_like_redis() {
    let sb = StrongboxServer::start(&[]);
    let redis = RedisServer::start(&[]);
    let keys = [
        "", "hello", "hallo", "hxllo", "hllo", "heeeello", "h]llo", "a*b", "a\\b", "ab", "A1", "[x",
    ];
    let patterns = [
        "h?llo",
        "h*llo",
        "h[ae]llo",
        "h[^e]llo",
        "h[a-b]llo",
        "h[b-a]llo",
        "*",
        "**",
        "a\\*b",
        "a\\",
        "h[\\]]llo",
        "[x",
        "\\[x",
        "*[0-9]",
        "[a-z]?",
        "a[",
        "*\\",
        "h*l*o",
        "*e*e*e*o",
    ];
    let (mut s, mut r) = (sb.conn(), redis.conn());
    for k in keys {
        s.cmd(&["SET", k, "1"]);
        r.cmd(&["SET", k, "1"]);
    }
    for p in patterns {
        let sorted = |reply: Vec<u8>| {
            let mut lines: Vec<String> = escape(&reply).split("\\r\\n").map(String::from).collect();
            lines.sort();
            lines
        };
        assert_eq!(
            sorted(s.cmd(&["KEYS", p])),
            sorted(r.cmd(&["KEYS", p])),
            "KEYS {p}"
        );
    }
}

/// The same comparison on random patterns and keys over the glob's special characters (a seeded
/// generator: a failure names the pattern), with redis-server as the oracle for every corner:
/// unterminated classes, escapes at the end, ranges, negation, runs of stars.
#[test]
fn random_glob_patterns_match_like_redis() {
    let sb = StrongboxServer::start(&[]);
    let redis = RedisServer::start(&[]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut word = |alphabet: &[u8], max: u64| -> String {
        let len = 1 + next(max);
        (0..len)
            .map(|_| alphabet[next(alphabet.len() as u64) as usize] as char)
            .collect()
    };
    let keys: Vec<String> = (0..80).map(|_| word(b"ab[]*-^\\", 6)).collect();
    let patterns: Vec<String> = (0..400).map(|_| word(b"ab*?[]^-\\", 8)).collect();
    let (mut s, mut r) = (sb.conn(), redis.conn());
    for k in &keys {
        s.cmd(&["SET", k, "1"]);
        r.cmd(&["SET", k, "1"]);
    }
    let sorted = |reply: Vec<u8>| {
        let mut lines: Vec<String> = escape(&reply).split("\\r\\n").map(String::from).collect();
        lines.sort();
        lines
    };
    for p in &patterns {
        assert_eq!(
            sorted(s.cmd(&["KEYS", p])),
            sorted(r.cmd(&["KEYS", p])),
            "KEYS {p:?}"
        );
    }
}

/// RESTORE is logged as received with its relative TTL made absolute (ABSTTL appended, as
/// Redis): after a restart the keys are back with the same expiry, REPLACE included.
#[test]
fn restored_keys_survive_a_restart_with_their_expiry() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = sb.conn();
    c.assert_cmd(&["RPUSH", "src", "a", "b", "c"], b":3\r\n");
    let dump = c.cmd(&["DUMP", "src"]);
    assert!(dump.starts_with(b"$"), "DUMP reply {}", escape(&dump));
    // The payload: the bulk string's bytes.
    let start = dump.iter().position(|&b| b == b'\n').expect("bulk header") + 1;
    let payload = &dump[start..dump.len() - 2];
    c.assert_cmd(&["SET", "dst", "old"], b"+OK\r\n");
    let restore = |c: &mut RawConn, args: &[&[u8]]| c.cmd_bytes(args);
    assert_eq!(
        restore(
            &mut c,
            &[b"RESTORE", b"dst", b"100000", payload, b"REPLACE"]
        ),
        b"+OK\r\n"
    );
    assert_eq!(
        restore(&mut c, &[b"RESTORE", b"plain", b"0", payload]),
        b"+OK\r\n"
    );
    let expiry = c.cmd(&["PEXPIRETIME", "dst"]);
    sb.restart();
    let mut c = sb.conn();
    c.assert_cmd(
        &["LRANGE", "dst", "0", "-1"],
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    );
    assert_eq!(escape(&c.cmd(&["PEXPIRETIME", "dst"])), escape(&expiry));
    c.assert_cmd(&["TTL", "plain"], b":-1\r\n");
    c.assert_cmd(&["LLEN", "plain"], b":3\r\n");
}
