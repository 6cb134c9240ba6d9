//! Sorted sets against Debian's redis-server 7.0, byte for byte: large (skiplist) encodings,
//! ranges over many elements, set/zset mixes in ZUNION/ZINTER, and blocking pops with several
//! connections (FIFO order, timeouts, MULTI/EXEC). Complements tests/diff/zsets.txt.

mod common;

use std::time::{Duration, Instant};

use common::{escape, parse_frame, RawConn, RedisServer, ServerProcess, StrongboxServer};

/// How a reply is compared.
#[derive(Clone, Copy)]
enum Norm {
    Exact,
    /// Top-level elements sorted (unspecified order).
    Sort,
    /// Only the reply's type and element count (random replies).
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

/// A tiny deterministic generator (xorshift) so both servers get the same script.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn large_zsets_match_redis() {
    use Norm::*;
    let mut s = vec![c("FLUSHALL", Exact)];
    let mut rng = Rng(0x5eed);
    // 600 members with many equal scores (ties ordered by member) and some updates.
    for chunk in 0..6 {
        let mut cmd = vec!["ZADD".to_string(), "big".to_string()];
        for i in 0..100 {
            let m = chunk * 100 + i;
            cmd.push(format!("{}", rng.below(50) as f64 / 4.0 - 3.0));
            cmd.push(format!("m{m:04}"));
        }
        s.push((cmd, Exact));
    }
    s.push(c("OBJECT ENCODING big", Exact));
    for _ in 0..60 {
        let m = rng.below(700);
        let sc = rng.below(80) as f64 / 8.0 - 4.0;
        s.push(c(&format!("ZADD big CH {sc} m{m:04}"), Exact));
        s.push(c(&format!("ZRANK big m{m:04}"), Exact));
        s.push(c(&format!("ZREVRANK big m{m:04}"), Exact));
        s.push(c(&format!("ZINCRBY big 0.5 m{:04}", rng.below(700)), Exact));
        s.push(c(
            &format!("ZREM big m{:04} m{:04}", rng.below(700), rng.below(700)),
            Exact,
        ));
    }
    for q in [
        "ZCARD big",
        "ZRANGE big 0 -1 WITHSCORES",
        "ZRANGE big 100 140",
        "ZRANGE big -50 -20 REV WITHSCORES",
        "ZREVRANGE big 0 30 WITHSCORES",
        "ZRANGEBYSCORE big -1 (2.5 WITHSCORES",
        "ZRANGEBYSCORE big (-1 2.5 LIMIT 10 25",
        "ZREVRANGEBYSCORE big +inf -inf LIMIT 3 40 WITHSCORES",
        "ZRANGE big (5 -inf BYSCORE REV LIMIT 0 7",
        "ZRANGE big -inf +inf BYSCORE LIMIT -1 5",
        "ZRANGE big -inf +inf BYSCORE LIMIT 590 -1",
        "ZCOUNT big -1 1",
        "ZCOUNT big (-1 (1",
        "ZCOUNT big -inf +inf",
        "ZRANGESTORE dst big 1 (3 BYSCORE",
        "OBJECT ENCODING dst",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZRANGESTORE dst big 0 9",
        "OBJECT ENCODING dst",
        "ZREMRANGEBYRANK big 0 9",
        "ZREMRANGEBYSCORE big 1 1.5",
        "ZCARD big",
        "ZPOPMIN big 3",
        "ZPOPMAX big 3",
        "ZMPOP 2 nosuch big MAX COUNT 4",
        "ZRANGE big 0 -1 WITHSCORES",
        "ZSCORE big m0100",
        "ZMSCORE big m0100 m0200 nosuch",
    ] {
        s.push(c(q, Exact));
    }
    // Lex ranges need equal scores.
    let mut cmd = vec!["ZADD".to_string(), "lex".to_string()];
    for i in 0..300 {
        cmd.push("0".into());
        cmd.push(format!("k{:03}", (i * 37) % 300));
    }
    s.push((cmd, Exact));
    for q in [
        "OBJECT ENCODING lex",
        "ZRANGEBYLEX lex [k100 (k120",
        "ZREVRANGEBYLEX lex + - LIMIT 5 10",
        "ZRANGE lex [k2 + BYLEX LIMIT 0 5",
        "ZLEXCOUNT lex - +",
        "ZLEXCOUNT lex (k050 [k150",
        "ZREMRANGEBYLEX lex [k000 (k100",
        "ZCARD lex",
        "ZRANGE lex 0 4",
    ] {
        s.push(c(q, Exact));
    }
    // Set algebra with a set input and weights, large and small.
    s.push(c("SADD plain m0200 m0201 m0300 k150 zzz", Exact));
    for q in [
        "ZUNION 3 big lex plain WITHSCORES",
        "ZINTER 2 big plain WEIGHTS 2 10 WITHSCORES",
        "ZINTER 2 big plain AGGREGATE MAX WITHSCORES",
        "ZDIFF 2 plain big WITHSCORES",
        "ZUNIONSTORE u 2 big lex WEIGHTS 1 -1 AGGREGATE MIN",
        "OBJECT ENCODING u",
        "ZRANGE u 0 -1 WITHSCORES",
        "ZINTERSTORE i 2 big plain",
        "OBJECT ENCODING i",
        "ZDIFFSTORE d 2 lex plain",
        "ZCARD d",
        "ZINTERCARD 2 big plain",
        "ZINTERCARD 2 big plain LIMIT 1",
        "ZUNIONSTORE u 1 nosuch",
        "EXISTS u",
    ] {
        s.push(c(q, Exact));
    }
    // Random and scan replies: compare shapes, and full scans sorted.
    for q in [
        "ZRANDMEMBER big 5",
        "ZRANDMEMBER big -700 WITHSCORES",
        "ZRANDMEMBER big 10000",
    ] {
        s.push(c(q, Shape));
    }
    s.push(c("ZSCAN lex 0 COUNT 100000", Sort));
    compare(&s);
}

#[test]
fn resp3_shapes_match_redis() {
    use Norm::*;
    let mut s = vec![c("FLUSHALL", Exact), c("HELLO 3", Shape)];
    let mut cmd = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..200 {
        cmd.push(format!("{}.5", i % 17));
        cmd.push(format!("e{i}"));
    }
    s.push((cmd, Exact));
    for q in [
        "ZRANGE z 0 5 WITHSCORES",
        "ZRANGEBYSCORE z 3 4 WITHSCORES LIMIT 0 3",
        "ZPOPMIN z",
        "ZPOPMIN z 2",
        "ZPOPMAX z 0",
        "ZMPOP 1 z MIN COUNT 2",
        "ZSCORE z e5",
        "ZINCRBY z 1 e5",
        "ZADD z INCR 1 e5",
        "ZADD z XX INCR 1 nosuch",
        "ZMSCORE z e5 nosuch",
        "ZUNION 1 z WITHSCORES",
        "ZRANDMEMBER z 3 WITHSCORES",
    ] {
        s.push(c(
            q,
            if q.starts_with("ZRANDMEMBER") {
                Shape
            } else {
                Exact
            },
        ));
    }
    compare(&s);
}

// ---------------------------------------------------------------------------------------------
// Blocking

fn blocking_transcript(srv: &ServerProcess) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |label: &str, r: Vec<u8>| out.push(format!("{label}: {}", escape(&r)));
    let mut a = srv.conn();
    let mut b = srv.conn();
    let mut c3 = srv.conn();
    let mut w = srv.conn();
    w.cmd(&["FLUSHALL"]);

    // FIFO: a blocks first, then b; one ZADD of two members serves both in order.
    a.send_cmd(&["BZPOPMIN", "q", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    b.send_cmd(&["BZPOPMIN", "other", "q", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    push("zadd", w.cmd(&["ZADD", "q", "2", "b", "1", "a"]));
    push("a", a.read_reply());
    push("b", b.read_reply());
    push("exists", w.cmd(&["EXISTS", "q"]));

    // BZPOPMAX woken by ZUNIONSTORE into the key.
    a.send_cmd(&["BZPOPMAX", "q2", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    w.cmd(&["ZADD", "src", "5", "x", "7", "y"]);
    push("zunionstore", w.cmd(&["ZUNIONSTORE", "q2", "1", "src"]));
    push("a", a.read_reply());

    // BZMPOP with COUNT, several keys, served by the key that gets elements.
    a.send_cmd(&["BZMPOP", "0", "2", "k1", "k2", "MAX", "COUNT", "2"]);
    std::thread::sleep(Duration::from_millis(50));
    push("zadd", w.cmd(&["ZADD", "k2", "1", "p", "2", "q", "3", "r"]));
    push("a", a.read_reply());
    push("rest", w.cmd(&["ZRANGE", "k2", "0", "-1", "WITHSCORES"]));

    // Timeout (sub-second) answers a null array.
    let t0 = Instant::now();
    push("timeout", c3.cmd(&["BZPOPMIN", "never", "0.2"]));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "timed out too early: {waited:?}"
    );
    push(
        "bzmpop-timeout",
        c3.cmd(&["BZMPOP", "0.1", "1", "never", "MIN"]),
    );

    // Inside MULTI a blocking pop does not block.
    w.cmd(&["MULTI"]);
    w.cmd(&["BZPOPMIN", "never", "0"]);
    w.cmd(&["BZMPOP", "0", "1", "never", "MIN"]);
    push("exec", w.cmd(&["EXEC"]));

    // A MULTI/EXEC that fills the key wakes the blocked client after EXEC.
    a.send_cmd(&["BZPOPMIN", "m", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    w.cmd(&["MULTI"]);
    w.cmd(&["ZADD", "m", "1", "one"]);
    w.cmd(&["ZADD", "m", "2", "two"]);
    push("exec", w.cmd(&["EXEC"]));
    push("a", a.read_reply());
    push("left", w.cmd(&["ZRANGE", "m", "0", "-1"]));

    // Wrong type while blocked: the waiter keeps waiting; then the key becomes a zset.
    a.send_cmd(&["BZPOPMIN", "t", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    w.cmd(&["SET", "t", "str"]);
    w.cmd(&["DEL", "t"]);
    w.cmd(&["ZADD", "t", "3", "z"]);
    push("a", a.read_reply());

    // Errors.
    push("neg", w.cmd(&["BZPOPMIN", "q", "-1"]));
    push("nan", w.cmd(&["BZPOPMIN", "q", "abc"]));
    w.cmd(&["SET", "s", "v"]);
    push("wrongtype", w.cmd(&["BZPOPMIN", "s", "0"]));
    out
}

#[test]
fn blocking_pops_match_redis() {
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let want = blocking_transcript(&redis);
    let got = blocking_transcript(&sb);
    assert_eq!(want, got);
}

#[test]
fn blocked_client_that_disconnects_is_forgotten() {
    let sb = StrongboxServer::start(&[]);
    let mut a = sb.conn();
    let mut b = sb.conn();
    let mut w = sb.conn();
    a.send_cmd(&["BZPOPMIN", "q", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    b.send_cmd(&["BZPOPMIN", "q", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    drop(a);
    std::thread::sleep(Duration::from_millis(50));
    w.cmd(&["ZADD", "q", "1", "x"]);
    assert_eq!(b.read_reply(), b"*3\r\n$1\r\nq\r\n$1\r\nx\r\n$1\r\n1\r\n");
    assert_eq!(w.cmd(&["EXISTS", "q"]), b":0\r\n");
}
