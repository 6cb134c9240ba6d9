//! Sets (and SORT over them) against Debian's redis-server 7.0, byte for byte: intset →
//! hashtable conversion, algebra over large sets (orders that Redis leaves unspecified are
//! compared sorted), STORE destinations and their encodings, random replies by shape, and a full
//! SSCAN iteration. Complements tests/diff/sets.txt and tests/diff/sort.txt.

mod common;

use std::collections::BTreeSet;

use common::{escape, parse_frame, RawConn, RedisServer, StrongboxServer};

#[derive(Clone, Copy)]
enum Norm {
    Exact,
    Sort,
    Shape,
}

fn normalize(raw: &[u8], n: Norm) -> Vec<u8> {
    match n {
        Norm::Exact => raw.to_vec(),
        Norm::Sort => match parse_frame(raw) {
            Ok(Some(f)) => f.sorted_deep().raw,
            _ => raw.to_vec(),
        },
        Norm::Shape => match parse_frame(raw) {
            Ok(Some(f)) => format!("{}{}", f.kind as char, f.children.len()).into_bytes(),
            _ => raw.to_vec(),
        },
    }
}

fn run(conn: &mut RawConn, script: &[(Vec<String>, Norm)]) -> Vec<Vec<u8>> {
    script
        .iter()
        .map(|(args, n)| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            normalize(&conn.cmd(&a), *n)
        })
        .collect()
}

fn compare(script: &[(Vec<String>, Norm)]) {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let want = run(&mut redis.conn(), script);
    let got = run(&mut sb.conn(), script);
    let mut bad = Vec::new();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        if w != g {
            bad.push(format!(
                "{:?}\n  redis:     {}\n  strongbox: {}",
                script[i].0,
                escape(&w[..w.len().min(600)]),
                escape(&g[..g.len().min(600)])
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

fn c(s: &str, n: Norm) -> (Vec<String>, Norm) {
    (s.split_whitespace().map(String::from).collect(), n)
}

fn sadd(key: &str, members: impl Iterator<Item = String>) -> (Vec<String>, Norm) {
    let mut v = vec!["SADD".to_string(), key.to_string()];
    v.extend(members);
    (v, Norm::Exact)
}

#[test]
fn large_sets_match_redis() {
    use Norm::*;
    let mut s = vec![c("FLUSHALL", Exact)];
    // Exactly at the intset limit, then one more.
    s.push(sadd("ints", (0..512).map(|i| (i * 7 - 1000).to_string())));
    s.push(c("OBJECT ENCODING ints", Exact));
    s.push(c("SMEMBERS ints", Exact));
    s.push(c("SSCAN ints 0 MATCH *5", Exact));
    s.push(c("SADD ints 100000", Exact));
    s.push(c("OBJECT ENCODING ints", Exact));
    s.push(c("SADD mixed 1 2 x", Exact));
    s.push(c("OBJECT ENCODING mixed", Exact));
    s.push(c("SREM mixed x", Exact));
    s.push(c("OBJECT ENCODING mixed", Exact));
    // Large string sets.
    s.push(sadd("a", (0..3000).map(|i| format!("member:{i}"))));
    s.push(sadd(
        "b",
        (0..3000).step_by(3).map(|i| format!("member:{i}")),
    ));
    s.push(sadd(
        "c",
        (0..3000)
            .step_by(5)
            .map(|i| format!("member:{i}:with-a-longer-suffix")),
    ));
    s.push(sadd(
        "c",
        (0..3000).step_by(10).map(|i| format!("member:{i}")),
    ));
    for q in [
        "SCARD a",
        "SCARD c",
        "SISMEMBER a member:2999",
        "SISMEMBER a member:3000",
        "SMISMEMBER c member:10 member:11 member:15:with-a-longer-suffix",
        "SREM a member:0 member:1 nosuch",
        "SCARD a",
    ] {
        s.push(c(q, Exact));
    }
    for q in [
        "SINTER a b c",
        "SUNION b c",
        "SDIFF a b c",
        "SDIFF c a",
        "SMEMBERS b",
    ] {
        s.push(c(q, Sort));
    }
    for q in [
        "SINTERCARD 3 a b c",
        "SINTERCARD 2 a b LIMIT 10",
        "SINTERSTORE d1 a b",
        "OBJECT ENCODING d1",
        "SUNIONSTORE d2 ints mixed",
        "OBJECT ENCODING d2",
        "SDIFFSTORE d3 ints mixed",
        "SCARD d3",
        "SINTERSTORE d1 a nosuch",
        "EXISTS d1",
        "SMOVE a b member:4",
        "SMOVE a b member:4",
        "SMOVE b newset member:4",
        "OBJECT ENCODING newset",
        "SMOVE ints newset2 7",
        "OBJECT ENCODING newset2",
    ] {
        s.push(c(q, Exact));
    }
    // Random replies.
    for q in [
        "SRANDMEMBER a 10",
        "SRANDMEMBER a -5000",
        "SRANDMEMBER a 100000",
        "SPOP b 10",
        "SCARD b",
        "SPOP b 100000",
        "EXISTS b",
    ] {
        s.push(c(q, Shape));
    }
    // SORT over large sets and lists, with BY/GET patterns.
    s.push(c("SORT ints LIMIT 0 20", Exact));
    s.push(c("SORT ints DESC LIMIT 10 20", Exact));
    s.push(c("SORT c ALPHA LIMIT 100 20", Exact));
    s.push(c("SORT c BY nosort STORE sorted", Exact));
    s.push(c("LRANGE sorted 0 20", Exact));
    s.push(c("MSET w_1 30 w_2 10 w_3 20 v_1 one v_2 two", Exact));
    s.push(c("HSET h_1 f x", Exact));
    s.push(c("RPUSH l 3 1 2", Exact));
    s.push(c("SORT l BY w_* GET # GET v_* GET h_*->f", Exact));
    s.push(c("SORT l BY w_* DESC STORE out", Exact));
    s.push(c("LRANGE out 0 -1", Exact));
    s.push(c("SORT_RO l BY nosort DESC LIMIT 1 5", Exact));
    compare(&s);
}

#[test]
fn sscan_returns_every_member_of_a_large_set() {
    let sb = StrongboxServer::start(&[]);
    let mut conn = sb.conn();
    let mut want = BTreeSet::new();
    for chunk in 0..5 {
        let mut args = vec!["SADD".to_string(), "s".to_string()];
        for i in 0..1000 {
            let m = format!("m{}", chunk * 1000 + i);
            want.insert(m.clone());
            args.push(m);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        conn.cmd(&a);
    }
    let mut got = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let raw = conn.cmd(&["SSCAN", "s", &cursor, "COUNT", "97"]);
        let f = parse_frame(&raw).unwrap().unwrap();
        cursor = bulk_text(&f.children[0].raw);
        for m in &f.children[1].children {
            got.insert(bulk_text(&m.raw));
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(got, want);
}

/// The text of a RESP bulk string `$n\r\n...\r\n`.
fn bulk_text(raw: &[u8]) -> String {
    let start = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    String::from_utf8_lossy(&raw[start..raw.len().saturating_sub(2).max(start)]).into()
}
