//! Hash commands against Debian's redis-server 7.0, byte for byte: HINCRBYFLOAT's long double
//! arithmetic on random inputs, listpack → hashtable conversions under small thresholds,
//! HRANDFIELD reply shapes in RESP2 and RESP3, and HSCAN's guarantee on a large hash under
//! concurrent writes. The plain command script lives in tests/diff/hashes.txt.

mod common;

use std::collections::BTreeSet;

use common::{escape, parse_frame, RawConn, RedisServer, StrongboxServer};
use rand::{Rng, SeedableRng};

fn servers() -> (RedisServer, StrongboxServer) {
    (
        RedisServer::start(&[]),
        StrongboxServer::start(&["--appendonly", "no"]),
    )
}

/// Sends `args` to both and asserts identical raw replies; returns the reply.
fn same(r: &mut RawConn, s: &mut RawConn, args: &[&str]) -> Vec<u8> {
    let want = r.cmd(args);
    let got = s.cmd(args);
    assert_eq!(escape(&got), escape(&want), "{args:?}");
    want
}

#[test]
fn hincrbyfloat_matches_redis_long_double_arithmetic() {
    let (redis, sb) = servers();
    let (mut r, mut s) = (redis.conn(), sb.conn());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for round in 0..300 {
        let field = format!("f{}", round % 7);
        let incr = match rng.gen_range(0..6) {
            0 => format!("{}", rng.gen_range(-1000..1000)),
            1 => format!("{:.3}", rng.gen_range(-100.0..100.0f64)),
            2 => format!("{}e{}", rng.gen_range(1..99), rng.gen_range(-5..5)),
            3 => format!("0.{}", rng.gen_range(1..99999)),
            4 => format!("-{}.{}", rng.gen_range(0..50), rng.gen_range(0..9)),
            _ => format!("{}", rng.gen_range(-1.0e6..1.0e6f64)),
        };
        same(&mut r, &mut s, &["HINCRBYFLOAT", "h", &field, &incr]);
    }
    same(&mut r, &mut s, &["HGETALL", "h"]);
    for bad in [
        "abc", "inf", "-inf", "nan", "1e5000", " 1", "1 ", "", "0x10", "1e",
    ] {
        same(&mut r, &mut s, &["HINCRBYFLOAT", "h", "f0", bad]);
    }
    same(
        &mut r,
        &mut s,
        &["HSET", "h", "s", "notanumber", "i", "inf"],
    );
    same(&mut r, &mut s, &["HINCRBYFLOAT", "h", "s", "1"]);
    same(&mut r, &mut s, &["HINCRBYFLOAT", "h", "i", "1"]);
    same(&mut r, &mut s, &["HSET", "h", "big", "1e4900"]);
    same(&mut r, &mut s, &["HINCRBYFLOAT", "h", "big", "1e4900"]);
    same(&mut r, &mut s, &["HINCRBYFLOAT", "h", "new", "1e-3"]);
}

#[test]
fn encodings_convert_like_redis() {
    let (redis, sb) = servers();
    let (mut r, mut s) = (redis.conn(), sb.conn());
    same(
        &mut r,
        &mut s,
        &["CONFIG", "SET", "hash-max-listpack-entries", "4"],
    );
    same(
        &mut r,
        &mut s,
        &["CONFIG", "SET", "hash-max-listpack-value", "8"],
    );
    for i in 0..6 {
        let f = format!("f{i}");
        same(&mut r, &mut s, &["HSET", "h", &f, "v"]);
        same(&mut r, &mut s, &["OBJECT", "ENCODING", "h"]);
        if i < 4 {
            // Listpack order is insertion order in both.
            same(&mut r, &mut s, &["HGETALL", "h"]);
        }
    }
    same(&mut r, &mut s, &["HSET", "long", "f", "123456789"]);
    same(&mut r, &mut s, &["OBJECT", "ENCODING", "long"]);
    same(&mut r, &mut s, &["HSET", "longf", "123456789", "v"]);
    same(&mut r, &mut s, &["OBJECT", "ENCODING", "longf"]);
    same(&mut r, &mut s, &["HSETNX", "nx", "f", "123456789"]);
    same(&mut r, &mut s, &["OBJECT", "ENCODING", "nx"]);
    same(&mut r, &mut s, &["HSET", "small", "a", "1", "b", "2"]);
    same(&mut r, &mut s, &["HDEL", "small", "a"]);
    same(&mut r, &mut s, &["HINCRBY", "small", "b", "12345678901"]);
    same(&mut r, &mut s, &["OBJECT", "ENCODING", "small"]);
    same(&mut r, &mut s, &["HGETALL", "small"]);
    // Deleting down to nothing removes the key; a table never converts back.
    same(&mut r, &mut s, &["HDEL", "h", "f0", "f1", "f2", "f3", "f4"]);
    same(&mut r, &mut s, &["OBJECT", "ENCODING", "h"]);
    same(&mut r, &mut s, &["HDEL", "h", "f5", "nope"]);
    same(&mut r, &mut s, &["EXISTS", "h"]);
}

fn sorted(reply: &[u8]) -> Vec<u8> {
    let f = parse_frame(reply)
        .expect("valid RESP")
        .expect("complete reply");
    f.sorted().raw
}

#[test]
fn hrandfield_reply_shapes_match_redis_in_resp2_and_resp3() {
    let (redis, sb) = servers();
    for proto in ["2", "3"] {
        let (mut r, mut s) = (redis.conn(), sb.conn());
        // Connection ids differ: switch protocols without comparing the HELLO replies.
        r.cmd(&["HELLO", proto]);
        s.cmd(&["HELLO", proto]);
        same(&mut r, &mut s, &["DEL", "h", "big"]);
        same(&mut r, &mut s, &["HSET", "h", "a", "1", "b", "2", "c", "3"]);
        // Deterministic cases: whole hash (listpack order), zero, missing key, errors.
        for args in [
            &["HRANDFIELD", "h", "3"][..],
            &["HRANDFIELD", "h", "10", "WITHVALUES"][..],
            &["HRANDFIELD", "h", "0"][..],
            &["HRANDFIELD", "h", "0", "WITHVALUES"][..],
            &["HRANDFIELD", "nokey"][..],
            &["HRANDFIELD", "nokey", "5"][..],
            &["HRANDFIELD", "nokey", "-5", "WITHVALUES"][..],
            &["HRANDFIELD", "h", "x"][..],
            &["HRANDFIELD", "h", "1", "WITHSCORES"][..],
            &["HRANDFIELD", "h", "1", "WITHVALUES", "x"][..],
            &["HRANDFIELD", "h", "-9223372036854775808"][..],
            &["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"][..],
        ] {
            same(&mut r, &mut s, args);
        }
        // Random cases: same shape and length; elements belong to the hash.
        for args in [
            &["HRANDFIELD", "h", "-5"][..],
            &["HRANDFIELD", "h", "-5", "WITHVALUES"][..],
            &["HRANDFIELD", "h", "2", "WITHVALUES"][..],
            &["HRANDFIELD", "h", "1", "WITHVALUES"][..],
        ] {
            let want = r.cmd(args);
            let got = s.cmd(args);
            let (w, g) = (
                parse_frame(&want).unwrap().unwrap(),
                parse_frame(&got).unwrap().unwrap(),
            );
            assert_eq!(w.kind, g.kind, "{args:?}");
            assert_eq!(w.children.len(), g.children.len(), "{args:?}");
            for (wc, gc) in w.children.iter().zip(&g.children) {
                assert_eq!(wc.kind, gc.kind, "{args:?}");
                assert_eq!(wc.children.len(), gc.children.len(), "{args:?}");
            }
        }
        let single = s.cmd(&["HRANDFIELD", "h"]);
        assert!(
            [&b"$1\r\na\r\n"[..], b"$1\r\nb\r\n", b"$1\r\nc\r\n"].contains(&&single[..]),
            "{}",
            escape(&single)
        );
        // A hashtable: the whole hash, compared sorted.
        for i in 0..600 {
            let f = format!("field:{i}");
            r.cmd(&["HSET", "big", &f, "v"]);
            s.cmd(&["HSET", "big", &f, "v"]);
        }
        same(&mut r, &mut s, &["OBJECT", "ENCODING", "big"]);
        let args = ["HRANDFIELD", "big", "1000", "WITHVALUES"];
        assert_eq!(sorted(&s.cmd(&args)), sorted(&r.cmd(&args)));
        let got = s.cmd(&["HRANDFIELD", "big", "100"]);
        let f = parse_frame(&got).unwrap().unwrap();
        let distinct: BTreeSet<Vec<u8>> = f.children.iter().map(|c| c.raw.clone()).collect();
        assert_eq!(
            distinct.len(),
            100,
            "positive count returns distinct fields"
        );
    }
}

/// Full HSCAN of a hashtable while fields are added and removed: every field present for the
/// whole scan is returned (Redis's SCAN guarantee).
#[test]
fn hscan_returns_every_field_present_for_the_whole_scan() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut c = sb.conn();
    for i in 0..3000 {
        c.cmd(&["HSET", "h", &format!("f{i}"), &format!("{i}")]);
    }
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "h"]), b"$9\r\nhashtable\r\n");
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut step = 0;
    loop {
        let reply = c.cmd(&["HSCAN", "h", &cursor, "COUNT", "50"]);
        let f = parse_frame(&reply).unwrap().unwrap();
        let next = &f.children[0].raw;
        cursor = String::from_utf8_lossy(
            &next[next.iter().position(|&b| b == b'\n').unwrap() + 1..next.len() - 2],
        )
        .to_string();
        for pair in f.children[1].children.chunks(2) {
            seen.insert(pair[0].raw.clone());
        }
        // Churn: delete odd fields, add new ones.
        c.cmd(&["HDEL", "h", &format!("f{}", 2 * step + 1)]);
        c.cmd(&["HSET", "h", &format!("new{step}"), "x"]);
        step += 1;
        if cursor == "0" {
            break;
        }
        assert!(step < 10_000, "scan does not terminate");
    }
    for i in (0..3000).step_by(2) {
        let f = format!("f{i}");
        let raw = format!("${}\r\n{}\r\n", f.len(), f).into_bytes();
        assert!(seen.contains(&raw), "{f} missed by HSCAN");
    }
    // MATCH filters; a packed hash comes back whole with cursor 0, in insertion order.
    c.cmd(&["HSET", "small", "b", "1", "a", "2", "ab", "3"]);
    assert_eq!(
        c.cmd(&["HSCAN", "small", "0", "MATCH", "a*"]),
        b"*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n2\r\n$2\r\nab\r\n$1\r\n3\r\n"
    );
}
