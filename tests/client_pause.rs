//! CLIENT PAUSE / CLIENT UNPAUSE: the same scenarios against Debian's redis-server 7.0 and
//! Strongbox, so the expectations are Redis's own. A pause in a failover or migration must
//! really hold writes (the replicas' offsets stop moving), let reads through under WRITE,
//! freeze the dataset (no expiry), and run the held commands in order when it ends.
//!
//! No timing is asserted except lower bounds (a reply cannot come before the pause ends) and
//! "no reply while a 100 s pause is on", which hold on any machine however slow.

mod common;

use std::time::{Duration, Instant};

use common::{RawConn, ReadError, RedisServer, ServerProcess, StrongboxServer};

/// How long a held command is watched for a reply that must not come.
const HELD: Duration = Duration::from_millis(300);

fn servers() -> (RedisServer, StrongboxServer) {
    (RedisServer::start(&[]), StrongboxServer::start(&[]))
}

fn assert_held(c: &mut RawConn, what: &str) {
    match c.read_reply_within(HELD) {
        Err(ReadError::Timeout { .. }) => {}
        other => panic!("{what}: expected no reply during the pause, got {other:?}"),
    }
}

fn client_list_flags(c: &mut RawConn, name: &str) -> String {
    let list = String::from_utf8(c.cmd(&["CLIENT", "LIST"])).unwrap();
    list.lines()
        .find(|l| l.contains(&format!(" name={name} ")))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("flags=")))
        .unwrap_or_else(|| panic!("no client {name} in {list}"))
        .to_string()
}

fn write_pause_holds_writes_and_expiry(s: &ServerProcess) {
    let p = s.port();
    let mut a = RawConn::connect(p);
    let mut w = RawConn::connect(p);
    let mut r = RawConn::connect(p);
    let mut pubc = RawConn::connect(p);
    let mut tx = RawConn::connect(p);
    w.assert_cmd(&["CLIENT", "SETNAME", "writer"], b"+OK\r\n");
    a.assert_cmd(&["SET", "k", "v"], b"+OK\r\n");
    a.assert_cmd(&["SET", "e", "x", "PX", "150"], b"+OK\r\n");
    a.assert_cmd(&["CLIENT", "PAUSE", "100000", "WRITE"], b"+OK\r\n");

    // Writes, may-replicate commands and a transaction's writes wait.
    w.send_cmd(&["SET", "k", "w"]);
    w.send_cmd(&["GET", "k"]); // behind the held SET: answered after it
    assert_held(&mut w, "SET");
    pubc.send_cmd(&["PUBLISH", "ch", "m"]);
    assert_held(&mut pubc, "PUBLISH");
    tx.assert_cmd(&["MULTI"], b"+OK\r\n");
    tx.send_cmd(&["INCR", "n"]);
    assert_held(&mut tx, "INCR queued in MULTI");

    // Reads go on; a key whose TTL passes during the pause reads as gone but stays.
    std::thread::sleep(Duration::from_millis(200));
    r.assert_cmd(&["GET", "k"], b"$1\r\nv\r\n");
    r.assert_cmd(&["GET", "e"], b"$-1\r\n");
    r.assert_cmd(&["EXISTS", "e"], b":0\r\n");
    r.assert_cmd(&["DBSIZE"], b":2\r\n");
    r.assert_cmd(
        &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"],
        b"$1\r\nv\r\n",
    );
    assert!(
        client_list_flags(&mut r, "writer").contains('b'),
        "a held client shows the b flag"
    );
    let info = String::from_utf8(r.cmd(&["INFO", "clients"])).unwrap();
    assert!(info.contains("blocked_clients:3\r\n"), "{info}"); // SET, PUBLISH, INCR

    // The end: held commands run in order, then the dataset moves again.
    r.assert_cmd(&["CLIENT", "UNPAUSE"], b"+OK\r\n");
    assert_eq!(w.read_reply(), b"+OK\r\n");
    assert_eq!(w.read_reply(), b"$1\r\nw\r\n");
    assert_eq!(pubc.read_reply(), b":0\r\n");
    assert_eq!(tx.read_reply(), b"+QUEUED\r\n");
    tx.assert_cmd(&["EXEC"], b"*1\r\n:1\r\n");
    r.assert_cmd(&["GET", "e"], b"$-1\r\n");
    r.assert_cmd(&["DBSIZE"], b":2\r\n"); // k and n; e deleted by the read
}

fn all_pause_holds_reads_until_it_ends(s: &ServerProcess) {
    let p = s.port();
    let mut a = RawConn::connect(p);
    let mut r = RawConn::connect(p);
    a.assert_cmd(&["SET", "k", "v"], b"+OK\r\n");
    let start = Instant::now();
    a.assert_cmd(&["CLIENT", "PAUSE", "700"], b"+OK\r\n");
    r.assert_cmd(&["GET", "k"], b"$1\r\nv\r\n");
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "GET answered {:?} into a 700 ms pause of ALL",
        start.elapsed()
    );
    // A second pause only widens the first: the later end and the stricter kind.
    let start = Instant::now();
    a.assert_cmd(&["CLIENT", "PAUSE", "800", "ALL"], b"+OK\r\n");
    a.assert_cmd(&["CLIENT", "PAUSE", "10", "WRITE"], b"+OK\r\n"); // held by ALL itself
    r.assert_cmd(&["GET", "k"], b"$1\r\nv\r\n");
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "GET answered {:?} into an 800 ms pause that a shorter WRITE pause must not shorten",
        start.elapsed()
    );
}

fn errors_and_a_held_client_that_leaves(s: &ServerProcess) {
    let p = s.port();
    let mut a = RawConn::connect(p);
    a.assert_cmd(
        &["CLIENT", "PAUSE", "abc", "foo"],
        b"-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n",
    );
    a.assert_cmd(
        &["CLIENT", "PAUSE", "abc"],
        b"-ERR timeout is not an integer or out of range\r\n",
    );
    a.assert_cmd(&["CLIENT", "PAUSE", "-1"], b"-ERR timeout is negative\r\n");
    a.assert_cmd(&["SET", "k", "before"], b"+OK\r\n");
    a.assert_cmd(&["CLIENT", "PAUSE", "100000", "WRITE"], b"+OK\r\n");
    {
        let mut gone = RawConn::connect(p);
        gone.send_cmd(&["SET", "k", "lost"]);
        assert_held(&mut gone, "SET");
        let id = String::from_utf8(a.cmd(&["CLIENT", "LIST"])).unwrap();
        assert!(id.lines().count() >= 2);
        // CLIENT UNBLOCK does not release a paused client.
        let mut held = RawConn::connect(p);
        held.send_cmd(&["CLIENT", "ID"]);
        assert!(held.read_reply().starts_with(b":"));
        held.send_cmd(&["SET", "k", "held"]);
        assert_held(&mut held, "SET");
    } // both disconnect while held
    std::thread::sleep(Duration::from_millis(100));
    a.assert_cmd(&["CLIENT", "UNPAUSE"], b"+OK\r\n");
    a.assert_cmd(&["GET", "k"], b"$6\r\nbefore\r\n");
    a.assert_cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn client_pause_write_holds_writes_and_expiry_like_redis() {
    let (r, s) = servers();
    write_pause_holds_writes_and_expiry(&r);
    write_pause_holds_writes_and_expiry(&s);
}

#[test]
fn client_pause_all_holds_reads_until_it_ends_like_redis() {
    let (r, s) = servers();
    all_pause_holds_reads_until_it_ends(&r);
    all_pause_holds_reads_until_it_ends(&s);
}

#[test]
fn client_pause_errors_and_held_clients_that_disconnect_like_redis() {
    let (r, s) = servers();
    errors_and_a_held_client_that_leaves(&r);
    errors_and_a_held_client_that_leaves(&s);
}

/// A write held by the pause is logged when it runs: under `appendfsync always` its reply
/// comes only once it is durable, and a kill -9 right after keeps it.
#[test]
fn a_write_held_by_client_pause_is_durable_when_answered() {
    let mut s = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let p = s.port();
    let mut a = RawConn::connect(p);
    let mut w = RawConn::connect(p);
    a.assert_cmd(&["CLIENT", "PAUSE", "100000", "WRITE"], b"+OK\r\n");
    for i in 0..20 {
        w.send_cmd(&["RPUSH", "q", &format!("job{i}")]);
    }
    assert_held(&mut w, "RPUSH");
    a.assert_cmd(&["CLIENT", "UNPAUSE"], b"+OK\r\n");
    for i in 0..20 {
        assert_eq!(w.read_reply(), format!(":{}\r\n", i + 1).into_bytes());
    }
    s.kill9();
    s.restart();
    let mut c = s.conn();
    c.assert_cmd(&["LLEN", "q"], b":20\r\n");
    c.assert_cmd(&["LINDEX", "q", "19"], b"$5\r\njob19\r\n");
}
