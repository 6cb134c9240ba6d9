//! Protocol abuse against the real binary: bad and huge declared lengths, garbage, a client that
//! never finishes its command, oversized inline lines, the query-buffer limit and maxclients.
//! Each gets Redis's error text or a closed connection — never a crash, a hang of other clients,
//! or memory taken from a declared length.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{RawConn, StrongboxServer};

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn assert_alive(sb: &StrongboxServer) {
    let mut c = RawConn::connect(sb.port());
    assert_eq!(
        c.cmd(&["PING"]),
        b"+PONG\r\n",
        "server must keep serving other clients"
    );
}

fn send_and_expect_error_then_close(sb: &StrongboxServer, bytes: &[u8], error: &[u8]) {
    let mut c = RawConn::connect(sb.port());
    c.send(bytes);
    assert_eq!(c.read_reply(), error);
    assert!(
        c.is_closed_within(Duration::from_secs(3)),
        "connection must be closed after a protocol error"
    );
}

#[test]
fn bad_lengths_answer_redis_errors_and_close() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    send_and_expect_error_then_close(
        &sb,
        b"*1\r\n$536870913\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    send_and_expect_error_then_close(
        &sb,
        b"*1\r\n$-3\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    send_and_expect_error_then_close(
        &sb,
        b"*3000000000\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    send_and_expect_error_then_close(
        &sb,
        b"*x\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    send_and_expect_error_then_close(
        &sb,
        b"*1\r\n:5\r\n",
        b"-ERR Protocol error: expected '$', got ':'\r\n",
    );
    send_and_expect_error_then_close(
        &sb,
        b"SET a \"unbalanced\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    // Commands before the bad one in the same pipeline are answered first.
    send_and_expect_error_then_close(&sb, b"PING\r\n*1\r\n$-3\r\n", b"+PONG\r\n");
    assert_alive(&sb);
}

#[test]
fn huge_declared_lengths_take_no_memory_and_do_not_block_others() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let pid = sb.pid().expect("pid");
    let before = rss_kb(pid);
    // 20 clients each declare a 500 MB argument (and a billion-argument command) and stall.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", sb.port())).unwrap();
        if i % 2 == 0 {
            s.write_all(b"*2\r\n$3\r\nSET\r\n$524288000\r\nabc")
                .unwrap();
        } else {
            s.write_all(b"*1000000000\r\n$4\r\nPING\r\n").unwrap();
        }
        stalled.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_alive(&sb);
    let after = rss_kb(pid);
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} kB to {after} kB for declared-but-unsent lengths"
    );
    drop(stalled);
    assert_alive(&sb);
}

#[test]
fn garbage_never_crashes_the_server() {
    use rand::{Rng, SeedableRng};
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for _ in 0..200 {
        let len = rng.gen_range(1..2000);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) {
            bytes[0] = b'*';
        }
        let mut s = TcpStream::connect(("127.0.0.1", sb.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = s.write_all(&bytes);
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
    }
    assert_alive(&sb);
}

#[test]
fn oversized_inline_line_and_query_buffer_limit_close_the_connection() {
    let sb = StrongboxServer::start(&["--appendonly", "no", "--client-query-buffer-limit", "1mb"]);
    let mut c = RawConn::connect(sb.port());
    c.send(&vec![b'a'; 70 * 1024]);
    assert_eq!(
        c.read_reply(),
        b"-ERR Protocol error: too big inline request\r\n"
    );
    assert!(c.is_closed_within(Duration::from_secs(3)));
    // A 2 MB argument is over the 1 MB query buffer limit: the connection is closed.
    let mut s = TcpStream::connect(("127.0.0.1", sb.port())).unwrap();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n")
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut closed = false;
    for _ in 0..32 {
        if s.write_all(&chunk).is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(
        closed,
        "a query buffer over the limit must close the connection"
    );
    assert_alive(&sb);
}

#[test]
fn maxclients_refuses_extra_connections_with_redis_error() {
    let sb = StrongboxServer::start(&["--appendonly", "no", "--maxclients", "3"]);
    let mut held: Vec<RawConn> = (0..3).map(|_| RawConn::connect(sb.port())).collect();
    for c in held.iter_mut() {
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    }
    let mut extra = RawConn::connect(sb.port());
    assert_eq!(
        extra.read_reply(),
        b"-ERR max number of clients reached\r\n"
    );
    assert!(extra.is_closed_within(Duration::from_secs(3)));
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_alive(&sb);
}

/// Redis's limits for clients that have not authenticated while a password is required: more
/// than 10 arguments or an argument over 16 KiB is a protocol error, before any byte of it is
/// buffered. Checked on both servers. An AUTH pipelined before a large command lifts the limit
/// for that command (Redis parses a command only after running the one before it), and clients
/// of a server without a password are never limited.
#[test]
fn unauthenticated_clients_are_limited_as_redis_limits_them() {
    use common::{ServerKind, ServerProcess};
    let big = "x".repeat(20_000);
    let set_big = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20000\r\n{big}\r\n");
    for kind in [ServerKind::Strongbox, ServerKind::Redis] {
        let srv = ServerProcess::start(kind, &["--appendonly", "no"]);
        let mut admin = RawConn::connect(srv.port());
        assert_eq!(
            admin.cmd(&["CONFIG", "SET", "requirepass", "pw"]),
            b"+OK\r\n"
        );
        let expect_close = |bytes: &[u8], error: &[u8]| {
            let mut c = RawConn::connect(srv.port());
            c.send(bytes);
            assert_eq!(c.read_reply(), error, "{kind:?}");
            assert!(c.is_closed_within(Duration::from_secs(3)), "{kind:?}");
        };
        expect_close(
            b"*100\r\n",
            b"-ERR Protocol error: unauthenticated multibulk length\r\n",
        );
        expect_close(
            b"*1\r\n$100000000\r\n",
            b"-ERR Protocol error: unauthenticated bulk length\r\n",
        );
        expect_close(
            set_big.as_bytes(),
            b"-ERR Protocol error: unauthenticated bulk length\r\n",
        );
        // Within the limits: NOAUTH, and the connection stays.
        let mut c = RawConn::connect(srv.port());
        let ten = ["RPUSH", "l", "1", "2", "3", "4", "5", "6", "7", "8"];
        assert!(c.cmd(&ten).starts_with(b"-NOAUTH"), "{kind:?}");
        // AUTH then the large command in one write: both run.
        let mut pipelined = b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n".to_vec();
        pipelined.extend_from_slice(set_big.as_bytes());
        pipelined.extend_from_slice(b"*2\r\n$6\r\nSTRLEN\r\n$1\r\nk\r\n");
        c.send(&pipelined);
        assert_eq!(c.read_reply(), b"+OK\r\n", "{kind:?}");
        assert_eq!(c.read_reply(), b"+OK\r\n", "{kind:?}");
        assert_eq!(c.read_reply(), b":20000\r\n", "{kind:?}");
        let eleven = ["RPUSH", "l", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        assert_eq!(c.cmd(&eleven), b":9\r\n", "{kind:?}");
    }
    // No password: no limits.
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut c = RawConn::connect(sb.port());
    c.send(set_big.as_bytes());
    assert_eq!(c.read_reply(), b"+OK\r\n");
}
