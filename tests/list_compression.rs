//! `list-compress-depth` end to end: the same list workload on Strongbox and Debian's
//! redis-server 7.0 with compression switched on at run time (CONFIG SET), compared byte for
//! byte, then DEBUG RELOAD, SAVE (checked by redis-check-rdb and loaded by redis-server) and a
//! restart, each compared again. As in Redis the depth is fixed when a list is made: a list made
//! before the CONFIG SET stays uncompressed until it is reloaded.

mod common;

use common::{escape, RawConn, RedisServer, StrongboxServer};

fn cmd(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    c.cmd(args)
}

/// The `name:value` field of a DEBUG OBJECT status line.
fn debug_field(c: &mut RawConn, key: &str, name: &str) -> String {
    let r = String::from_utf8_lossy(&cmd(c, &["DEBUG", "OBJECT", key])).into_owned();
    r.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in {r:?}"))
}

fn memory_usage(c: &mut RawConn, key: &str) -> i64 {
    let r = cmd(c, &["MEMORY", "USAGE", key, "SAMPLES", "0"]);
    let s = String::from_utf8_lossy(&r);
    s.trim()
        .strip_prefix(':')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("MEMORY USAGE: {s:?}"))
}

/// The workload: `plain` made before compression is on, `big` and `small` after. Returns the
/// replies of every step.
fn workload(c: &mut RawConn) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    out.push(cmd(c, &["CONFIG", "SET", "list-compress-depth", "0"]));
    let batches: Vec<Vec<String>> = (0..20)
        .map(|b| {
            (0..1000)
                .map(|i| format!("elem:{:07}", b * 1000 + i))
                .collect()
        })
        .collect();
    for b in &batches {
        let mut a = vec!["RPUSH", "plain"];
        a.extend(b.iter().map(String::as_str));
        out.push(cmd(c, &a));
    }
    out.push(cmd(c, &["CONFIG", "SET", "list-compress-depth", "1"]));
    for (k, b) in batches.iter().enumerate() {
        let mut a = vec![if k % 3 == 0 { "LPUSH" } else { "RPUSH" }, "big"];
        a.extend(b.iter().map(String::as_str));
        out.push(cmd(c, &a));
        // Integers and a long element between the strings.
        out.push(cmd(
            c,
            &["RPUSH", "big", &k.to_string(), &"x".repeat(300 + k)],
        ));
    }
    out.push(cmd(c, &["RPUSH", "small", "a", "b", "c"]));
    // Reads and writes in the compressed interior.
    for i in [5000, 10_000, 12_345, -7000] {
        out.push(cmd(c, &["LINDEX", "big", &i.to_string()]));
    }
    out.push(cmd(c, &["LRANGE", "big", "9990", "10010"]));
    out.push(cmd(c, &["LSET", "big", "8000", "changed-in-the-middle"]));
    out.push(cmd(
        c,
        &["LINSERT", "big", "BEFORE", "elem:0011000", "inserted"],
    ));
    out.push(cmd(
        c,
        &["LINSERT", "big", "AFTER", "elem:0015555", "inserted2"],
    ));
    out.push(cmd(c, &["LREM", "big", "0", "elem:0013000"]));
    out.push(cmd(c, &["LREM", "big", "-2", "7"]));
    out.push(cmd(c, &["LPOS", "big", "inserted2"]));
    out.push(cmd(c, &["LPOS", "big", "elem:0004444", "RANK", "-1"]));
    for _ in 0..700 {
        cmd(c, &["LPOP", "big"]);
        cmd(c, &["RPOP", "big"]);
    }
    out.push(cmd(c, &["LTRIM", "big", "100", "-100"]));
    out.push(cmd(c, &["LMOVE", "big", "small", "RIGHT", "LEFT"]));
    out.push(cmd(c, &["LLEN", "big"]));
    out.push(cmd(c, &["LRANGE", "big", "0", "-1"]));
    out.push(cmd(c, &["LRANGE", "plain", "0", "-1"]));
    out.push(cmd(c, &["LRANGE", "small", "0", "-1"]));
    out
}

fn contents(c: &mut RawConn) -> Vec<Vec<u8>> {
    ["big", "plain", "small"]
        .iter()
        .map(|k| cmd(c, &["LRANGE", k, "0", "-1"]))
        .collect()
}

fn assert_same(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let (g, w) = (escape(g), escape(w));
            panic!(
                "{what}: step {i} differs: strongbox {} / redis {}",
                &g[..g.len().min(300)],
                &w[..w.len().min(300)]
            );
        }
    }
}

#[test]
fn compressed_lists_match_redis_through_reload_save_and_restart() {
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    // Depth 0 at start, as Redis's default (Strongbox's own default is 1).
    let mut sb = StrongboxServer::start(&["--appendonly", "no", "--list-compress-depth", "0"]);
    let mut r = redis.conn();
    let mut s = sb.conn();
    let want = workload(&mut r);
    let got = workload(&mut s);
    assert_same(&got, &want, "workload");

    // The depth is the one in force when the list was made, in both servers.
    for c in [&mut r, &mut s] {
        assert_eq!(debug_field(c, "plain", "ql_compressed"), "0");
        assert_eq!(debug_field(c, "big", "ql_compressed"), "1");
    }
    // Compressed nodes are what MEMORY USAGE counts: `big` holds more than `plain` yet takes
    // much less.
    let (big, plain) = (memory_usage(&mut s, "big"), memory_usage(&mut s, "plain"));
    assert!(big * 2 < plain, "MEMORY USAGE big {big} plain {plain}");
    let before = contents(&mut s);
    assert_same(&before, &contents(&mut r), "contents");

    // DEBUG RELOAD rebuilds every list with the depth now in force (1).
    assert_eq!(cmd(&mut s, &["DEBUG", "RELOAD"]), b"+OK\r\n");
    assert_same(&contents(&mut s), &before, "after DEBUG RELOAD");
    assert_eq!(debug_field(&mut s, "plain", "ql_compressed"), "1");
    let plain_after = memory_usage(&mut s, "plain");
    assert!(plain_after * 2 < plain, "plain {plain} -> {plain_after}");

    // The RDB written from compressed lists passes redis-check-rdb and loads in redis-server.
    assert_eq!(cmd(&mut s, &["SAVE"]), b"+OK\r\n");
    let dump = sb.dir().join("dump.rdb");
    let check = std::process::Command::new("redis-check-rdb")
        .arg(&dump)
        .output()
        .expect("redis-check-rdb runs");
    assert!(
        check.status.success(),
        "redis-check-rdb: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(&dump, d.path().join("dump.rdb")).unwrap();
    let loaded = RedisServer::start_in(d.path(), &["--list-compress-depth", "2"]);
    assert_same(
        &contents(&mut loaded.conn()),
        &before,
        "strongbox dump.rdb in redis",
    );

    // A restart on the same directory (loading dump.rdb, depth back to 0 from the command line).
    drop(s);
    sb.restart();
    let mut s = sb.conn();
    assert_same(&contents(&mut s), &before, "after restart");
    assert_eq!(debug_field(&mut s, "big", "ql_compressed"), "0");
    assert_eq!(memory_usage(&mut s, "plain"), plain);
}
