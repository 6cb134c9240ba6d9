//! Client eviction (`maxmemory-clients`, CLIENT NO-EVICT), the same scenarios against Debian's
//! redis-server 7.0 and Strongbox: the option's syntax (bytes, units, a percentage of
//! `maxmemory`) and errors byte for byte; a client with a big query buffer or a big unread
//! output buffer closed under a small limit while a NO-EVICT one stays; the biggest clients go
//! first and only until the total is under the limit; INFO's `evicted_clients` and
//! `mem_clients_normal`, CLIENT LIST's `e` flag and `tot-mem`.

mod common;

use std::time::{Duration, Instant};

use common::{RawConn, RedisServer, ServerProcess, StrongboxServer};

fn text(r: Vec<u8>) -> String {
    String::from_utf8(r).unwrap()
}

/// The CLIENT LIST line of the client named `name`, if connected.
fn client_line(admin: &mut RawConn, name: &str) -> Option<String> {
    text(admin.cmd(&["CLIENT", "LIST"]))
        .lines()
        .find(|l| l.contains(&format!(" name={name} ")))
        .map(str::to_string)
}

fn field(line: &str, f: &str) -> String {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
        .unwrap_or_else(|| panic!("no {f} in {line}"))
        .to_string()
}

fn tot_mem(admin: &mut RawConn, name: &str) -> u64 {
    let line = client_line(admin, name).unwrap_or_else(|| panic!("{name} is not connected"));
    field(&line, "tot-mem").parse().unwrap()
}

fn info_field(admin: &mut RawConn, f: &str) -> u64 {
    let info = text(admin.cmd(&["INFO", "everything"]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{f}:")))
        .unwrap_or_else(|| panic!("no {f} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls until `name` is gone (true) or `limit` passes (false).
fn gone_within(admin: &mut RawConn, name: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if client_line(admin, name).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn named(s: &ServerProcess, name: &str) -> RawConn {
    let mut c = RawConn::connect(s.port());
    c.assert_cmd(&["CLIENT", "SETNAME", name], b"+OK\r\n");
    c
}

/// The admin connection of a scenario: never evicted itself.
fn admin(s: &ServerProcess) -> RawConn {
    let mut a = named(s, "admin");
    a.assert_cmd(&["CLIENT", "NO-EVICT", "ON"], b"+OK\r\n");
    a
}

/// Starts a command whose one argument declares `declared` bytes, of which `sent` are sent.
fn big_query(s: &ServerProcess, name: &str, declared: usize, sent: usize) -> RawConn {
    let mut c = named(s, name);
    let mut bytes = format!("*1\r\n${declared}\r\n").into_bytes();
    bytes.resize(bytes.len() + sent, b'v');
    // The server may close the connection while this is sent.
    let _ = c.try_send(&bytes);
    c
}

/// Waits until `name`'s CLIENT LIST `qbuf` reaches `n`.
fn wait_qbuf(admin: &mut RawConn, name: &str, n: u64) {
    let start = Instant::now();
    loop {
        let q = client_line(admin, name).map(|l| field(&l, "qbuf").parse::<u64>().unwrap());
        if q.is_some_and(|q| q >= n) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name}: qbuf {q:?} < {n}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// CONFIG SET/GET of the option, and CLIENT NO-EVICT's errors: the replies of both servers.
fn config_replies(s: &ServerProcess) -> Vec<Vec<u8>> {
    let mut c = s.conn();
    let mut out = vec![];
    for args in [
        &["CONFIG", "GET", "maxmemory-clients"][..],
        &["CONFIG", "SET", "maxmemory-clients", "1mb"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CONFIG", "SET", "maxmemory-clients", "3000000"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CONFIG", "SET", "maxmemory-clients", "10%"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CONFIG", "SET", "maxmemory-clients", "100%"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CONFIG", "SET", "maxmemory-clients", "101%"],
        &["CONFIG", "SET", "maxmemory-clients", "-1"],
        &["CONFIG", "SET", "maxmemory-clients", "-1%"],
        &["CONFIG", "SET", "maxmemory-clients", "abc"],
        &["CONFIG", "SET", "maxmemory-clients", "1gb"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CONFIG", "SET", "maxmemory-clients", "0"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "NO-EVICT"],
        &["CLIENT", "NO-EVICT", "on", "off"],
        &["CLIENT", "NO-EVICT", "On"],
        &["CLIENT", "NO-EVICT", "OFF"],
    ] {
        out.push(c.cmd(args));
    }
    out
}

#[test]
fn maxmemory_clients_config_and_no_evict_replies_like_redis() {
    let redis = config_replies(&RedisServer::start(&[]));
    let ours = config_replies(&StrongboxServer::start(&[]));
    for (i, (r, o)) in redis.iter().zip(&ours).enumerate() {
        assert_eq!(
            common::escape(o),
            common::escape(r),
            "reply {i} differs (strongbox, redis)"
        );
    }
}

/// A client receiving a big argument is closed once its query buffer (the argument's declared
/// length, as Redis allocates it) passes the limit; a NO-EVICT one with the same is not.
fn big_query_buffer_is_evicted(s: &ServerProcess) {
    let mut admin = admin(s);
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "1mb"], b"+OK\r\n");
    let before = info_field(&mut admin, "evicted_clients");

    // Under the limit: stays, and its tot-mem counts the argument.
    let small = big_query(s, "small", 300_000, 300_000);
    wait_qbuf(&mut admin, "small", 300_000);
    let m = tot_mem(&mut admin, "small");
    assert!((300_000..1 << 20).contains(&m), "{}: {m}", s.describe());
    assert!(
        info_field(&mut admin, "mem_clients_normal") >= m,
        "{}",
        s.describe()
    );

    // Protected: stays over the limit, flag `e`.
    let mut kept = named(s, "kept");
    kept.assert_cmd(&["CLIENT", "NO-EVICT", "ON"], b"+OK\r\n");
    let mut bytes = b"*1\r\n$2000000\r\n".to_vec();
    bytes.resize(bytes.len() + 1_500_000, b'v');
    kept.send(&bytes);
    wait_qbuf(&mut admin, "kept", 1_500_000);
    let line = client_line(&mut admin, "kept").unwrap();
    assert!(field(&line, "flags").contains('e'), "{line}");
    assert!(field(&line, "tot-mem").parse::<u64>().unwrap() > 1 << 20);
    // The others over the limit now are evicted (Redis evicts every evictable client while the
    // total stays over): `small` goes too.
    assert!(
        gone_within(&mut admin, "small", Duration::from_secs(5)),
        "{}: small stays though the total is over",
        s.describe()
    );
    drop(small);
    assert!(
        client_line(&mut admin, "kept").is_some(),
        "{}",
        s.describe()
    );
    drop(kept);
    assert!(gone_within(&mut admin, "kept", Duration::from_secs(5)));

    // Over the limit alone: closed.
    let mut big = big_query(s, "big", 2_000_000, 1_200_000);
    assert!(
        gone_within(&mut admin, "big", Duration::from_secs(5)),
        "{}: a 2 MB query buffer stays under a 1 MB limit",
        s.describe()
    );
    assert!(
        big.is_closed_within(Duration::from_secs(5)),
        "{}",
        s.describe()
    );
    assert!(info_field(&mut admin, "evicted_clients") >= before + 2);

    // Off: nobody is evicted.
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "0"], b"+OK\r\n");
    let _big = big_query(s, "big2", 2_000_000, 1_500_000);
    wait_qbuf(&mut admin, "big2", 1_500_000);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        client_line(&mut admin, "big2").is_some(),
        "{}",
        s.describe()
    );
    // Turned on below it: evicted then.
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "1mb"], b"+OK\r\n");
    assert!(
        gone_within(&mut admin, "big2", Duration::from_secs(5)),
        "{}",
        s.describe()
    );
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "0"], b"+OK\r\n");
}

#[test]
fn a_big_query_buffer_is_evicted_like_redis() {
    big_query_buffer_is_evicted(&RedisServer::start(&[]));
    big_query_buffer_is_evicted(&StrongboxServer::start(&[]));
}

/// A client that pipelines big replies without reading is closed under the limit before its
/// output buffer passes it.
fn unread_output_is_evicted(s: &ServerProcess) {
    let mut admin = admin(s);
    admin.assert_cmd(&["SETRANGE", "k", "200000", "v"], b":200001\r\n");
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "2mb"], b"+OK\r\n");
    let mut greedy = named(s, "greedy");
    let get = common::encode_command(&["GET", "k"]);
    let start = Instant::now();
    while let Some(line) = client_line(&mut admin, "greedy") {
        let m: u64 = field(&line, "tot-mem").parse().unwrap();
        assert!(m < 2 << 20, "{}: tot-mem {m} over the limit", s.describe());
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}: never evicted",
            s.describe()
        );
        if greedy.try_send(&get).is_err() {
            assert!(gone_within(&mut admin, "greedy", Duration::from_secs(5)));
            break;
        }
    }
    admin.assert_cmd(&["PING"], b"+PONG\r\n");
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "0"], b"+OK\r\n");
}

#[test]
fn unread_output_is_evicted_like_redis() {
    unread_output_is_evicted(&RedisServer::start(&[]));
    unread_output_is_evicted(&StrongboxServer::start(&[]));
}

/// Lowering the limit closes the biggest clients first, and only until the total is under it.
fn biggest_first_until_under(s: &ServerProcess) {
    let mut admin = admin(s);
    // Each size at least twice the one before (Redis sorts clients into power-of-two buckets).
    let sizes = [(0, 100_000usize), (1, 300_000), (2, 900_000)];
    let mut conns = vec![];
    for &(i, size) in &sizes {
        for j in 0..2 {
            let name = format!("c{i}-{j}");
            conns.push(big_query(s, &name, size, size));
            wait_qbuf(&mut admin, &name, size as u64);
        }
    }
    let mem = |admin: &mut RawConn, i: usize| tot_mem(admin, &format!("c{i}-0"));
    let m: Vec<u64> = (0..3).map(|i| mem(&mut admin, i)).collect();
    let admin_mem = tot_mem(&mut admin, "admin");
    // Room for the small and middle clients: the two big ones go.
    let limit = 2 * (m[0] + m[1]) + admin_mem + 1000;
    admin.assert_cmd(
        &["CONFIG", "SET", "maxmemory-clients", &limit.to_string()],
        b"+OK\r\n",
    );
    let start = Instant::now();
    while client_line(&mut admin, "c2-0").is_some() || client_line(&mut admin, "c2-1").is_some() {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", s.describe());
        std::thread::sleep(Duration::from_millis(20));
    }
    for name in ["c0-0", "c0-1", "c1-0", "c1-1"] {
        assert!(
            client_line(&mut admin, name).is_some(),
            "{}: {name} evicted though the total was under the limit",
            s.describe()
        );
    }
    // One middle client too many: exactly one of them goes.
    let limit = 2 * m[0] + m[1] + admin_mem + 1000;
    admin.assert_cmd(
        &["CONFIG", "SET", "maxmemory-clients", &limit.to_string()],
        b"+OK\r\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    let left = ["c1-0", "c1-1"]
        .iter()
        .filter(|n| client_line(&mut admin, n).is_some())
        .count();
    assert_eq!(left, 1, "{}", s.describe());
    for name in ["c0-0", "c0-1"] {
        assert!(client_line(&mut admin, name).is_some(), "{}", s.describe());
    }
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "0"], b"+OK\r\n");
    drop(conns);
}

#[test]
fn the_biggest_clients_are_evicted_first_like_redis() {
    biggest_first_until_under(&RedisServer::start(&[]));
    biggest_first_until_under(&StrongboxServer::start(&[]));
}

/// A percentage is of `maxmemory`; without `maxmemory` it means no limit.
fn percentage_of_maxmemory(s: &ServerProcess) {
    let mut admin = admin(s);
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "10%"], b"+OK\r\n");
    let _c = big_query(s, "pct", 2_000_000, 1_500_000);
    wait_qbuf(&mut admin, "pct", 1_500_000);
    std::thread::sleep(Duration::from_millis(200));
    assert!(client_line(&mut admin, "pct").is_some(), "{}", s.describe());
    // 10% of 10 MB: 1 MB.
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory", "10mb"], b"+OK\r\n");
    assert!(
        gone_within(&mut admin, "pct", Duration::from_secs(5)),
        "{}",
        s.describe()
    );
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory", "0"], b"+OK\r\n");
    admin.assert_cmd(&["CONFIG", "SET", "maxmemory-clients", "0"], b"+OK\r\n");
}

#[test]
fn a_percentage_of_maxmemory_like_redis() {
    percentage_of_maxmemory(&RedisServer::start(&[]));
    percentage_of_maxmemory(&StrongboxServer::start(&[]));
}
