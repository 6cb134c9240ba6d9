//! `client-output-buffer-limit` for pub/sub and normal clients, the same scenarios against
//! Debian's redis-server 7.0 and Strongbox: a client that stops reading is disconnected once
//! its pending output passes the limit, instead of growing the server's memory without bound.

mod common;

use std::time::{Duration, Instant};

use common::{RawConn, RedisServer, ServerProcess, StrongboxServer};

/// Whether `id` is still among the server's clients.
fn connected(admin: &mut RawConn, id: &str) -> bool {
    let list = String::from_utf8(admin.cmd(&["CLIENT", "LIST"])).unwrap();
    list.lines().any(|l| l.starts_with(&format!("id={id} ")))
}

fn client_id(c: &mut RawConn) -> String {
    let r = String::from_utf8(c.cmd(&["CLIENT", "ID"])).unwrap();
    r.trim_start_matches(':').trim().to_string()
}

/// Polls until `id` is gone (true) or `limit` passes (false).
fn gone_within(admin: &mut RawConn, id: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !connected(admin, id) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn a_subscriber_that_stops_reading_is_disconnected(s: &ServerProcess) {
    let p = s.port();
    let mut admin = RawConn::connect(p);
    admin.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ],
        b"+OK\r\n",
    );
    let mut sub = RawConn::connect(p);
    let id = client_id(&mut sub);
    sub.send_cmd(&["SUBSCRIBE", "ch"]);
    let _ = sub.read_reply();
    let msg = "x".repeat(100_000);
    let mut publisher = RawConn::connect(p);
    // 60 MB, far beyond the socket buffers and the 1 MB limit; the subscriber reads nothing.
    for _ in 0..600 {
        publisher.send_cmd(&["PUBLISH", "ch", &msg]);
        let r = publisher.read_reply();
        if r == b":0\r\n" {
            break; // already disconnected
        }
    }
    assert!(
        gone_within(&mut admin, &id, Duration::from_secs(10)),
        "{}: the subscriber is still connected",
        s.describe()
    );
    // Others are unaffected.
    publisher.assert_cmd(&["PING"], b"+PONG\r\n");
}

fn a_normal_client_over_its_limit_is_disconnected(s: &ServerProcess) {
    let p = s.port();
    let mut admin = RawConn::connect(p);
    admin.assert_cmd(&["SET", "big", &"v".repeat(100_000)], b"+OK\r\n");
    // The default (no limit for normal clients) keeps a slow reader connected.
    let mut slow = RawConn::connect(p);
    let id = client_id(&mut slow);
    for _ in 0..100 {
        slow.send_cmd(&["GET", "big"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(connected(&mut admin, &id), "{}", s.describe());
    for _ in 0..100 {
        let _ = slow.read_reply();
    }
    // With a limit, a client that pipelines big replies without reading is closed.
    admin.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 2mb 0 0",
        ],
        b"+OK\r\n",
    );
    let mut greedy = RawConn::connect(p);
    let id = client_id(&mut greedy);
    for _ in 0..600 {
        if greedy
            .try_send(&common::encode_command(&["GET", "big"]))
            .is_err()
        {
            break;
        }
    }
    assert!(
        gone_within(&mut admin, &id, Duration::from_secs(10)),
        "{}: the client is still connected",
        s.describe()
    );
    admin.assert_cmd(&["PING"], b"+PONG\r\n");
}

/// A reply bigger than the hard limit is never sent: the client is closed with nothing to
/// read (Strongbox used to write the whole reply, handed to the socket before the check).
fn a_reply_over_the_hard_limit_is_not_sent(s: &ServerProcess) {
    let p = s.port();
    let mut admin = RawConn::connect(p);
    admin.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 100000 0 0",
        ],
        b"+OK\r\n",
    );
    let item = "x".repeat(1000);
    for _ in 0..150 {
        let _ = admin.cmd(&["RPUSH", "mylist", &item]);
    }
    let mut c = RawConn::connect(p);
    let id = client_id(&mut c);
    c.send_cmd(&["LRANGE", "mylist", "0", "-1"]);
    match c.read_reply_within(Duration::from_secs(5)) {
        Err(common::ReadError::Closed { partial }) => {
            assert!(
                partial.is_empty(),
                "{}: {} bytes read",
                s.describe(),
                partial.len()
            )
        }
        other => panic!("{}: {other:?}", s.describe()),
    }
    assert!(!connected(&mut admin, &id), "{}", s.describe());
}

/// A client over its soft limit that is sent nothing more is still closed once the soft
/// seconds have passed.
fn a_quiet_client_over_its_soft_limit_is_closed_in_time(s: &ServerProcess) {
    let p = s.port();
    let mut admin = RawConn::connect(p);
    admin.assert_cmd(&["SET", "big", &"v".repeat(100_000)], b"+OK\r\n");
    admin.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 0 1mb 1",
        ],
        b"+OK\r\n",
    );
    let mut quiet = RawConn::connect(p);
    let id = client_id(&mut quiet);
    // Enough unread replies to fill the socket buffers and stay over 1 MB queued.
    for _ in 0..200 {
        if quiet
            .try_send(&common::encode_command(&["GET", "big"]))
            .is_err()
        {
            break;
        }
    }
    assert!(
        gone_within(&mut admin, &id, Duration::from_secs(5)),
        "{}: still connected after the soft seconds",
        s.describe()
    );
}

/// A command whose reply has no bound but its arguments — HRANDFIELD, SRANDMEMBER and
/// ZRANDMEMBER with a huge negative count, KEYS over a big keyspace — stops once its client is
/// over the hard limit, and the client is closed, as Redis's loops check CLIENT_CLOSE_ASAP.
/// Strongbox used to build the whole reply first: `HRANDFIELD h -999999999` held the execution
/// thread for minutes and took gigabytes before the limit was looked at.
fn a_huge_reply_stops_mid_run(s: &ServerProcess) {
    let p = s.port();
    let mut admin = RawConn::connect(p);
    admin.assert_cmd(&["HSET", "h", "a", "b"], b":1\r\n");
    admin.assert_cmd(&["SADD", "s", "a"], b":1\r\n");
    admin.assert_cmd(&["ZADD", "z", "1", "a"], b":1\r\n");
    admin.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 1000000 0 0",
        ],
        b"+OK\r\n",
    );
    let huge: &[&[&str]] = &[
        &["HRANDFIELD", "h", "-999999999"],
        &["HRANDFIELD", "h", "-999999999", "WITHVALUES"],
        &["SRANDMEMBER", "s", "-999999999"],
        &["ZRANDMEMBER", "z", "-999999999"],
        &["ZRANDMEMBER", "z", "-999999999", "WITHSCORES"],
    ];
    for cmd in huge {
        let mut c = RawConn::connect(p);
        c.send_cmd(cmd);
        // Within seconds (the release build of either server takes well under one): the
        // connection is closed, whatever part of the reply was written before.
        match c.read_reply_within(Duration::from_secs(20)) {
            Err(common::ReadError::Closed { .. }) => {}
            other => panic!("{} {cmd:?}: {other:?}", s.describe()),
        }
    }
    // A small count is answered as usual.
    let r = admin.cmd(&["HRANDFIELD", "h", "-3"]);
    assert_eq!(
        r,
        b"*3\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n",
        "{}",
        s.describe()
    );
    // KEYS: 1,000 keys of 100 bytes against a 100 kB limit.
    let prefix = "k".repeat(100);
    for chunk in 0..10 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..100 {
            args.push(format!("{prefix}{}", chunk * 100 + i));
            args.push("v".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        admin.assert_cmd(&args, b"+OK\r\n");
    }
    admin.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 100000 0 0",
        ],
        b"+OK\r\n",
    );
    let mut c = RawConn::connect(p);
    c.send_cmd(&["KEYS", "*"]);
    match c.read_reply_within(Duration::from_secs(20)) {
        Err(common::ReadError::Closed { .. }) => {}
        other => panic!("{} KEYS: {other:?}", s.describe()),
    }
    admin.assert_cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn a_huge_reply_stops_mid_run_like_redis() {
    a_huge_reply_stops_mid_run(&RedisServer::start(&[]));
    a_huge_reply_stops_mid_run(&StrongboxServer::start(&[]));
}

#[test]
fn a_reply_over_the_hard_limit_is_not_sent_like_redis() {
    a_reply_over_the_hard_limit_is_not_sent(&RedisServer::start(&[]));
    a_reply_over_the_hard_limit_is_not_sent(&StrongboxServer::start(&[]));
}

#[test]
fn a_quiet_client_over_its_soft_limit_is_closed_like_redis() {
    a_quiet_client_over_its_soft_limit_is_closed_in_time(&RedisServer::start(&[]));
    a_quiet_client_over_its_soft_limit_is_closed_in_time(&StrongboxServer::start(&[]));
}

#[test]
fn pubsub_output_limit_disconnects_a_subscriber_that_stops_reading_like_redis() {
    a_subscriber_that_stops_reading_is_disconnected(&RedisServer::start(&[]));
    a_subscriber_that_stops_reading_is_disconnected(&StrongboxServer::start(&[]));
}

#[test]
fn normal_output_limit_disconnects_a_client_that_stops_reading_like_redis() {
    a_normal_client_over_its_limit_is_disconnected(&RedisServer::start(&[]));
    a_normal_client_over_its_limit_is_disconnected(&StrongboxServer::start(&[]));
}

/// A client that sends a whole big pipeline before it reads any reply (as redis-py's
/// `pipeline().execute()` does) is read on while its replies pile up, as Redis reads it: its
/// output buffer grows (no limit for normal clients by default) until it reads. A server that
/// stopped reading it until its replies were written would wait on the client's full receive
/// buffer while the client waits on the server's: both stuck for good.
fn a_pipeline_sent_whole_before_reading_is_answered(s: &ServerProcess) {
    use std::io::{Read, Write};
    let mut c = RawConn::connect(s.port());
    let value = "v".repeat(100);
    c.assert_cmd(&["SET", "k", &value], b"+OK\r\n");
    const COMMANDS: usize = 1_000_000;
    let one = common::encode_command(&["GET", "k"]);
    let reply = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    // A small receive buffer (no autotuning): the replies fill the sockets early.
    let rcvbuf: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on our own connected socket with a valid int option value.
    let r = unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &rcvbuf as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let pipeline = one.repeat(COMMANDS);
    // 22 MB of commands for 107 MB of replies: more than the sockets hold either way.
    let sent = stream.write_all(&pipeline);
    assert!(sent.is_ok(), "{}: sending stalled: {sent:?}", s.describe());
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = vec![0u8; reply.len() * COMMANDS];
    stream.read_exact(&mut got).unwrap();
    assert!(got.chunks(reply.len()).all(|r| r == reply.as_slice()));
}

#[test]
fn a_pipeline_sent_whole_before_reading_is_answered_like_redis() {
    a_pipeline_sent_whole_before_reading_is_answered(&RedisServer::start(&[]));
    a_pipeline_sent_whole_before_reading_is_answered(&StrongboxServer::start(&[]));
}
