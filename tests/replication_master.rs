//! Strongbox as a replication master (src/master.rs): redis-server 7.0 replicating from it
//! (full sync in both payload forms, the write stream, offsets, WAIT, partial resync after a
//! dropped link), `redis-cli --rdb` and `--replica`, a Strongbox replica of Strongbox, the first
//! PING a ping period after the first replica, and the replica output buffer limit.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::replication::{
    con, diff, dump_keyspace, fill, info_field, more_writes, wait_link_up, wait_same,
};
use common::{RedisServer, StrongboxServer};

fn info(port: u16, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(&mut con(port))
        .unwrap()
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Waits until the replica has acknowledged the master's whole stream, and returns the offset:
/// the master's `master_repl_offset`, the replica's own offset and the master's view of the
/// replica's acknowledged offset (`slave0:...offset=`) agree.
fn wait_offsets_converge(master: u16, replica: u16, replica_field: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = info(master, "replication");
        let moff: i64 = field(&m, "master_repl_offset").unwrap().parse().unwrap();
        let roff: i64 = info_field(replica, replica_field).unwrap().parse().unwrap();
        let acked = m
            .lines()
            .any(|l| l.starts_with("slave0:") && l.contains(&format!("offset={moff},")));
        if moff > 0 && roff == moff && acked {
            return moff;
        }
        assert!(
            Instant::now() < deadline,
            "offsets: master {moff}, replica {roff}\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_log(log: impl Fn() -> String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log().contains(needle) {
        assert!(Instant::now() < deadline, "no '{needle}' in:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_replica_full_sync_stream_wait_and_partial_resync() {
    // The payload as `$<len>` (disk form).
    let master = StrongboxServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--repl-diskless-sync",
        "no",
    ]);
    let mp = master.port();
    let mut raw = master.conn();
    // Bad input gets Redis's errors.
    raw.assert_cmd(&["REPLCONF", "capa"], b"-ERR syntax error\r\n");
    raw.assert_cmd(
        &["REPLCONF", "listening-port", "x"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.assert_cmd(
        &["REPLCONF", "nope", "1"],
        b"-ERR Unrecognized REPLCONF option: nope\r\n",
    );
    raw.assert_cmd(&["REPLCONF", "capa", "eof", "capa", "whatever"], b"+OK\r\n");
    raw.assert_cmd(
        &["PSYNC", "?", "notanumber"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.assert_cmd(
        &["PSYNC", "?"],
        b"-ERR wrong number of arguments for 'psync' command\r\n",
    );
    raw.assert_cmd(&["MULTI"], b"+OK\r\n");
    // As redis-server 7.0 (SYNC is no-multi): refused when queued, and the transaction aborts.
    raw.assert_cmd(
        &["SYNC"],
        b"-ERR Command not allowed inside a transaction\r\n",
    );
    raw.assert_cmd(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    // No replica: WAIT 0 answers at once, WAIT 1 after its timeout, with 0.
    raw.assert_cmd(&["WAIT", "0", "0"], b":0\r\n");
    let t0 = Instant::now();
    raw.assert_cmd(&["WAIT", "1", "200"], b":0\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        field(&info(mp, "replication"), "connected_slaves").as_deref(),
        Some("0")
    );

    fill(mp, 3000);
    let mport = mp.to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    let rp = replica.port();
    wait_link_up(rp);
    let synced = wait_same(mp, rp, "after the full sync");
    assert!(synced.len() > 3000, "{} keys", synced.len());
    assert!(
        replica.log().contains("bytes from master to disk"),
        "not the $<len> form: {}",
        replica.log()
    );
    assert!(master
        .log()
        .contains("Starting BGSAVE for SYNC with target: disk"));

    // Extreme numbers: a full sync for an offset we never had, a WAIT that never ends.
    let mut odd = master.conn();
    let replid = field(&info(mp, "replication"), "master_replid").unwrap();
    odd.send_cmd(&["PSYNC", &replid, "-9223372036854775808"]);
    let head = odd.read_reply();
    assert!(head.starts_with(b"+FULLRESYNC "), "{head:?}");
    let mut waiting = master.conn();
    waiting.send_cmd(&["WAIT", "5", "9223372036854775807"]);
    raw.assert_cmd(&["PING"], b"+PONG\r\n");
    drop(odd);
    drop(waiting);
    let deadline = Instant::now() + Duration::from_secs(5);
    while field(&info(mp, "replication"), "connected_slaves").as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "the odd replica stays");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The stream: MULTI/EXEC, EXPIRE, DEL, EVAL, streams, another db, an expiration.
    more_writes(mp);
    let after = wait_same(mp, rp, "after the stream");
    assert!(after.contains_key(&(0, b"lua:s".to_vec())));
    assert!(!after.contains_key(&(0, b"k:1".to_vec())));
    assert!(!after.contains_key(&(0, b"short".to_vec())));
    let off = wait_offsets_converge(mp, rp, "master_repl_offset");
    assert_eq!(
        info_field(rp, "master_replid"),
        field(&info(mp, "replication"), "master_replid")
    );

    // WAIT counts the replica once it acknowledged the write; WAIT 2 times out with 1.
    raw.assert_cmd(&["SET", "waited", "1"], b"+OK\r\n");
    raw.assert_cmd(&["WAIT", "1", "5000"], b":1\r\n");
    let t0 = Instant::now();
    raw.assert_cmd(&["WAIT", "2", "300"], b":1\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    let v: Option<String> = redis::cmd("GET").arg("waited").query(&mut con(rp)).unwrap();
    assert_eq!(v.as_deref(), Some("1"));

    // INFO, ROLE, CLIENT LIST as a Redis master's (once the replica acknowledged WAIT's
    // GETACK too: its answer to it is the offset before it, the next ACK the one after).
    let moff = wait_offsets_converge(mp, rp, "master_repl_offset");
    assert!(moff > off);
    let m = info(mp, "replication");
    assert_eq!(field(&m, "role").as_deref(), Some("master"));
    assert_eq!(field(&m, "connected_slaves").as_deref(), Some("1"));
    let slave0 = field(&m, "slave0").unwrap();
    assert!(
        slave0.starts_with(&format!("ip=127.0.0.1,port={rp},state=online,offset=")),
        "{slave0}"
    );
    assert_eq!(field(&m, "repl_backlog_active").as_deref(), Some("1"));
    assert_eq!(
        field(&m, "repl_backlog_histlen"),
        field(&m, "master_repl_offset")
    );
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con(mp)).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    let redis::Value::Array(replicas) = &role[2] else {
        panic!("{role:?}")
    };
    // (Unless the 10-second PING went out in between.)
    if role[1] == redis::Value::Int(moff) {
        assert_eq!(
            replicas[0],
            redis::Value::Array(vec![
                redis::Value::BulkString(b"127.0.0.1".to_vec()),
                redis::Value::BulkString(rp.to_string().into_bytes()),
                redis::Value::BulkString(moff.to_string().into_bytes()),
            ])
        );
    }
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("replica")
        .query(&mut con(mp))
        .unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    let line = list
        .lines()
        .find(|l| l.contains(" flags=S "))
        .unwrap_or_else(|| panic!("no replica in CLIENT LIST: {list}"));
    let id = line
        .split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .unwrap()
        .to_string();

    // min-replicas-to-write: writes need that many replicas that acknowledged lately; a new
    // threshold applies to the very next write (as Redis, CONFIG SET recounts the replicas).
    raw.assert_cmd(&["CONFIG", "SET", "min-replicas-to-write", "2"], b"+OK\r\n");
    raw.assert_cmd(
        &["SET", "guarded", "1"],
        b"-NOREPLICAS Not enough good replicas to write.\r\n",
    );
    assert_eq!(
        field(&info(mp, "replication"), "min_slaves_good_slaves").as_deref(),
        Some("1")
    );
    raw.assert_cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"], b"+OK\r\n");
    raw.assert_cmd(&["SET", "guarded", "1"], b"+OK\r\n");
    raw.assert_cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"], b"+OK\r\n");

    // The link drops; writes go on meanwhile; the replica continues from the backlog.
    raw.assert_cmd(&["CLIENT", "KILL", "ID", &id], b":1\r\n");
    for i in 0..50 {
        raw.assert_cmd(&["SET", &format!("while-down:{i}"), "x"], b"+OK\r\n");
    }
    wait_log(
        || replica.log(),
        "Successful partial resynchronization with master",
    );
    let m = info(mp, "stats");
    assert_eq!(field(&m, "sync_partial_ok").as_deref(), Some("1"), "{m}");
    // The replica's and the odd PSYNC's; the odd one also asked for an offset we lack.
    assert_eq!(field(&m, "sync_full").as_deref(), Some("2"), "{m}");
    assert_eq!(field(&m, "sync_partial_err").as_deref(), Some("1"), "{m}");
    // CONFIG RESETSTAT zeroes them, as Redis's resetServerStats.
    raw.assert_cmd(&["CONFIG", "RESETSTAT"], b"+OK\r\n");
    let m = info(mp, "stats");
    for name in ["sync_full", "sync_partial_ok", "sync_partial_err"] {
        assert_eq!(field(&m, name).as_deref(), Some("0"), "{name}: {m}");
    }
    wait_same(mp, rp, "after the partial resync");
    wait_offsets_converge(mp, rp, "master_repl_offset");
}

/// Redis 7.0's default: the `$EOF:<mark>` form to a replica that declared `capa eof`; and
/// redis-cli's dump (`--rdb`) and stream (`--replica`) clients.
#[test]
fn eof_form_redis_cli_rdb_and_replica() {
    let master = StrongboxServer::start(&["--appendonly", "yes"]);
    let mp = master.port();
    fill(mp, 800);
    let expected = dump_keyspace(mp);

    // redis-cli --rdb: a file redis-check-rdb accepts and redis-server loads to the same keys.
    let dir = tempfile::tempdir().unwrap();
    let rdb = dir.path().join("dump.rdb");
    let out = Command::new("redis-cli")
        .args(["-p", &mp.to_string(), "--rdb"])
        .arg(&rdb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let check = Command::new("redis-check-rdb").arg(&rdb).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("RDB looks OK"),
        "{check:?}"
    );
    let loaded = RedisServer::start_in(dir.path(), &[]);
    if let Some(d) = diff(&expected, &dump_keyspace(loaded.port())) {
        panic!("redis-cli --rdb file: {d}");
    }
    drop(loaded);

    // A Redis replica gets the EOF form.
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &mp.to_string()]);
    wait_link_up(replica.port());
    wait_same(mp, replica.port(), "after the EOF-form sync");
    assert!(
        replica
            .log()
            .contains("receiving streamed RDB from master with EOF"),
        "{}",
        replica.log()
    );
    // Diskless: written to the replica's socket, no file on the master's side.
    assert!(
        master
            .log()
            .contains("Starting BGSAVE for SYNC with target: replicas sockets"),
        "{}",
        master.log()
    );
    let files: Vec<_> = std::fs::read_dir(master.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("temp-"))
        .collect();
    assert!(files.is_empty(), "{files:?}");

    // redis-cli --replica prints the stream it gets.
    let mut child = Command::new("redis-cli")
        .args(["-p", &mp.to_string(), "--replica"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while field(&info(mp, "replication"), "connected_slaves").as_deref() != Some("2") {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("redis-cli --replica did not attach");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut c = con(mp);
    redis::cmd("SET")
        .arg("seen-by-cli")
        .arg("42")
        .query::<()>(&mut c)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut printed = Vec::new();
    let seen = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.eq_ignore_ascii_case("\"set\",\"seen-by-cli\",\"42\"") => break true,
            Ok(l) => printed.push(l),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "redis-cli --replica printed: {printed:?}");
    wait_same(mp, replica.port(), "after the write");
}

/// A Strongbox replica of a Strongbox master (this master side, the existing replica side).
#[test]
fn strongbox_replica_of_strongbox() {
    let master = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mp = master.port();
    fill(mp, 1000);
    let mport = mp.to_string();
    let mut replica =
        StrongboxServer::start(&["--appendonly", "yes", "--replicaof", "127.0.0.1", &mport]);
    let rp = replica.port();
    wait_link_up(rp);
    wait_same(mp, rp, "after the full sync");
    more_writes(mp);
    wait_same(mp, rp, "after the stream");
    wait_offsets_converge(mp, rp, "slave_repl_offset");
    let mut raw = master.conn();
    raw.assert_cmd(&["INCR", "counter"], b":1\r\n");
    raw.assert_cmd(&["WAIT", "1", "5000"], b":1\r\n");
    // The replica's own log holds what it replicated.
    let expected = wait_same(mp, rp, "after WAIT");
    replica.kill9();
    replica.restart();
    if let Some(d) = diff(&expected, &dump_keyspace(replica.port())) {
        panic!("the replica after kill -9: {d}");
    }
}

/// A replica that does not read is disconnected once its pending stream passes
/// `client-output-buffer-limit replica`'s hard limit.
#[test]
fn a_replica_over_its_output_limit_is_disconnected() {
    let master = StrongboxServer::start(&[]);
    let mp = master.port();
    let mut raw = master.conn();
    raw.assert_cmd(
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "replica 1mb 512kb 60",
        ],
        b"+OK\r\n",
    );
    let mut replica = master.conn();
    replica.assert_cmd(&["REPLCONF", "listening-port", "1"], b"+OK\r\n");
    replica.send_cmd(&["PSYNC", "?", "-1"]);
    let head = replica.read_reply();
    assert!(head.starts_with(b"+FULLRESYNC "), "{head:?}");
    assert_eq!(
        field(&info(mp, "replication"), "connected_slaves").as_deref(),
        Some("1")
    );
    // 16 MB written, never read by the replica: far past 1 MB and any socket buffer.
    let value = "v".repeat(1 << 20);
    for i in 0..16 {
        raw.assert_cmd(&["SET", &format!("big:{i}"), &value], b"+OK\r\n");
    }
    assert!(replica.is_closed_within(Duration::from_secs(10)));
    wait_log(|| master.log(), "overcoming of output buffer limits");
    let m = info(mp, "replication");
    assert_eq!(field(&m, "connected_slaves").as_deref(), Some("0"));
    // Without replicas the backlog goes after `repl-backlog-ttl`; the offset stays.
    let offset = field(&m, "master_repl_offset").unwrap();
    assert!(offset.parse::<i64>().unwrap() > 16 << 20, "{m}");
    raw.assert_cmd(&["CONFIG", "SET", "repl-backlog-ttl", "1"], b"+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = info(mp, "replication");
        if field(&m, "repl_backlog_active").as_deref() == Some("0") {
            assert_eq!(field(&m, "master_repl_offset"), Some(offset));
            break;
        }
        assert!(Instant::now() < deadline, "the backlog stayed: {m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A diskless replica that stops reading does not hold the snapshot (and so BGSAVE and
/// BGREWRITEAOF) up: after `repl-timeout` it is dropped and the snapshot ends.
#[test]
fn a_stuck_diskless_replica_is_dropped_after_repl_timeout() {
    let master = StrongboxServer::start(&["--repl-timeout", "1", "--rdbcompression", "no"]);
    let mut raw = master.conn();
    let value = "v".repeat(1 << 20);
    for i in 0..24 {
        raw.assert_cmd(&["SET", &format!("big:{i}"), &value], b"+OK\r\n");
    }
    let mut replica = master.conn();
    replica.assert_cmd(&["REPLCONF", "capa", "eof"], b"+OK\r\n");
    replica.send_cmd(&["PSYNC", "?", "-1"]);
    let head = replica.read_reply();
    assert!(head.starts_with(b"+FULLRESYNC "), "{head:?}");
    wait_log(|| master.log(), "Background saving for replica sync failed");
    assert!(replica.is_closed_within(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = raw.cmd(&["BGSAVE"]);
        if r == b"+Background saving started\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", String::from_utf8_lossy(&r));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SHUTDOWN does not wait for a diskless replica that stopped reading (the snapshot it holds
/// up is abandoned at once).
#[test]
fn shutdown_does_not_wait_for_a_stuck_diskless_replica() {
    // The replica has acknowledged nothing: the shutdown waits `shutdown-timeout` for it (as
    // Redis), then goes on without it.
    let mut master = StrongboxServer::start(&["--rdbcompression", "no", "--shutdown-timeout", "1"]);
    let mp = master.port();
    let mut raw = master.conn();
    let value = "w".repeat(1 << 20);
    for i in 0..24 {
        raw.assert_cmd(&["SET", &format!("big:{i}"), &value], b"+OK\r\n");
    }
    let mut replica = master.conn();
    replica.assert_cmd(&["REPLCONF", "capa", "eof"], b"+OK\r\n");
    replica.send_cmd(&["PSYNC", "?", "-1"]);
    let head = replica.read_reply();
    assert!(head.starts_with(b"+FULLRESYNC "), "{head:?}");
    // The transfer is stuck: the snapshot still runs a while later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        field(&info(mp, "persistence"), "rdb_bgsave_in_progress").as_deref(),
        Some("1")
    );
    raw.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    let t0 = Instant::now();
    while master.is_running() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "SHUTDOWN waits for the stuck replica"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first PING to the replicas comes a `repl-ping-replica-period` after the first replica
/// attached, not at the next timer tick (Redis's suite reads a SYNC stream right after
/// attaching and expects only the commands it sends).
#[test]
fn the_first_ping_waits_a_ping_period() {
    let master = StrongboxServer::start(&[]);
    let mp = master.port();
    let mut replica = master.conn();
    replica.send_cmd(&["PSYNC", "?", "-1"]);
    let head = replica.read_reply();
    assert!(head.starts_with(b"+FULLRESYNC "), "{head:?}");
    let offset = || {
        field(&info(mp, "replication"), "master_repl_offset")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap()
    };
    let start = offset();
    // Several timer ticks, well under the default period of 10 s.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(offset(), start, "a PING went out at once");
    let mut raw = master.conn();
    raw.assert_cmd(
        &["CONFIG", "SET", "repl-ping-replica-period", "1"],
        b"+OK\r\n",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    // A PING is `*1\r\n$4\r\nPING\r\n`, 14 bytes of stream.
    while offset() < start + 14 {
        assert!(Instant::now() < deadline, "no PING within the period");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PUBLISH and SPUBLISH reach the replicas' subscribers (as Redis propagates them to
/// replicas), in the database and order of the stream, inside MULTI too, and never reach the
/// log: a redis-server 7.0 replica and a Strongbox replica both deliver them, and their data
/// stays the master's.
#[test]
fn publish_reaches_the_subscribers_of_replicas_not_the_log() {
    let master = StrongboxServer::start(&["--appendonly", "yes"]);
    let mp = master.port();
    let mport = mp.to_string();
    let redis = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    let ours = StrongboxServer::start(&["--replicaof", "127.0.0.1", &mport]);
    let mut subs = Vec::new();
    for port in [redis.port(), ours.port()] {
        wait_link_up(port);
        let mut sub = common::RawConn::connect(port);
        sub.cmd(&["SUBSCRIBE", "news"]);
        sub.cmd(&["SSUBSCRIBE", "shard"]);
        subs.push(sub);
    }
    let mut m = master.conn();
    m.assert_cmd(&["SELECT", "3"], b"+OK\r\n");
    m.assert_cmd(&["PUBLISH", "news", "one"], b":0\r\n");
    m.assert_cmd(&["SELECT", "0"], b"+OK\r\n");
    // The PUBLISH's SELECT 3 must not leave the replicas in db 3 for the next write.
    m.assert_cmd(&["SET", "k", "v"], b"+OK\r\n");
    m.assert_cmd(&["MULTI"], b"+OK\r\n");
    m.assert_cmd(&["INCR", "n"], b"+QUEUED\r\n");
    m.assert_cmd(&["PUBLISH", "news", "two"], b"+QUEUED\r\n");
    m.assert_cmd(&["EXEC"], b"*2\r\n:1\r\n:0\r\n");
    m.assert_cmd(&["SPUBLISH", "shard", "three"], b":0\r\n");
    for (sub, who) in subs.iter_mut().zip(["redis-server", "strongbox"]) {
        sub.set_timeout(Duration::from_secs(10));
        let got: Vec<Vec<u8>> = (0..3).map(|_| sub.read_reply()).collect();
        assert_eq!(
            got,
            vec![
                b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\none\r\n".to_vec(),
                b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\ntwo\r\n".to_vec(),
                b"*3\r\n$8\r\nsmessage\r\n$5\r\nshard\r\n$5\r\nthree\r\n".to_vec(),
            ],
            "{who}: {:?}",
            got.iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect::<Vec<_>>()
        );
    }
    wait_same(mp, redis.port(), "redis-server replica");
    wait_same(mp, ours.port(), "strongbox replica");
    let mut aof = Vec::new();
    for e in std::fs::read_dir(master.dir().join("appendonlydir")).expect("aof dir") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().ends_with(".incr.aof") {
            aof.extend(std::fs::read(p).expect("read"));
        }
    }
    let text = String::from_utf8_lossy(&aof).to_ascii_uppercase();
    assert!(text.contains("INCR"), "the log holds the writes");
    assert!(!text.contains("PUBLISH"), "PUBLISH reached the log: {text}");
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn wait_exit(server: &mut StrongboxServer, within: Duration, what: &str) {
    let t0 = Instant::now();
    while server.is_running() {
        assert!(t0.elapsed() < within, "{what}: still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Redis 7's shutdown with lagging replicas, with a redis-server 7.0 replica: SHUTDOWN (and
/// SIGTERM) hold writes and wait for the replica to acknowledge the whole stream, reads go on,
/// SHUTDOWN ABORT lifts it (the waiting clients get Redis's error); `shutdown-on-sigterm now`
/// does not wait.
#[test]
fn shutdown_waits_for_a_lagging_replica_and_can_be_aborted() {
    let mut master = StrongboxServer::start(&["--shutdown-timeout", "60"]);
    let mp = master.port();
    let mport = mp.to_string();
    let mut replica = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    let rpid = replica.pid().expect("replica pid");
    wait_link_up(replica.port());
    let mut m = master.conn();
    m.assert_cmd(&["SET", "k", "1"], b"+OK\r\n");
    wait_same(mp, replica.port(), "before");
    signal(rpid, "STOP");
    m.assert_cmd(&["INCR", "k"], b":2\r\n");

    // Abort: both waiting clients are answered, writes flow again.
    let mut a = master.conn();
    let mut b = master.conn();
    a.send_cmd(&["SHUTDOWN"]);
    b.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    let t0 = Instant::now();
    while field(&info(mp, "server"), "shutdown_in_milliseconds").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no shutdown under way"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        field(&info(mp, "clients"), "blocked_clients").as_deref(),
        Some("2")
    );
    let mut w = master.conn();
    w.send_cmd(&["SET", "held", "1"]);
    assert!(
        w.read_reply_within(Duration::from_millis(300)).is_err(),
        "a write ran during the shutdown"
    );
    m.assert_cmd(&["GET", "k"], b"$1\r\n2\r\n");
    m.assert_cmd(&["SHUTDOWN", "ABORT"], b"+OK\r\n");
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.read_reply(),
            b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n".to_vec()
        );
    }
    assert_eq!(w.read_reply(), b"+OK\r\n".to_vec());
    m.assert_cmd(&["SHUTDOWN", "ABORT"], b"-ERR No shutdown in progress.\r\n");
    assert!(master.log().contains("Shutdown manually aborted."));

    // SIGTERM waits too; the replica resumes, acknowledges, and the master exits.
    signal(master.pid().expect("pid"), "TERM");
    let t0 = Instant::now();
    while field(&info(mp, "server"), "shutdown_in_milliseconds").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "SIGTERM did not wait"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(rpid, "CONT");
    wait_exit(
        &mut master,
        Duration::from_secs(20),
        "after the replica caught up",
    );
    let log = master.log();
    assert!(
        log.contains("1 of 1 replicas are in sync when shutting down."),
        "{log}"
    );
    assert!(!log.contains("Lagging replica"), "{log}");
    let v: String = redis::cmd("GET")
        .arg("held")
        .query(&mut con(replica.port()))
        .unwrap();
    assert_eq!(
        v, "1",
        "the write acknowledged before the shutdown reached the replica"
    );

    // `shutdown-on-sigterm now`: no waiting for the stopped replica.
    master.restart();
    let mp = master.port();
    let mut m = master.conn();
    m.assert_cmd(&["CONFIG", "SET", "shutdown-on-sigterm", "now"], b"+OK\r\n");
    replica.stop();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &mp.to_string()]);
    wait_link_up(replica.port());
    let rpid = replica.pid().expect("replica pid");
    signal(rpid, "STOP");
    m.assert_cmd(&["INCR", "k"], b":3\r\n");
    signal(master.pid().expect("pid"), "TERM");
    wait_exit(
        &mut master,
        Duration::from_secs(5),
        "shutdown-on-sigterm now",
    );
    signal(rpid, "CONT");
    drop(replica);
}

/// WAITAOF numreplicas (Redis 7.2): a Strongbox replica reports its fsynced offset
/// (`REPLCONF ACK <off> FACK <aofoff>`), so `WAITAOF 1 1` returns `[1, 1]` once the write is
/// fsynced here and there; a replica without a log, or a Redis 7.0 one (no FACK), never counts
/// and the call answers at its timeout; on a replica it is refused with Redis's text.
#[test]
fn waitaof_counts_replicas_that_fsynced() {
    let master = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mp = master.port();
    let mport = mp.to_string();
    let logged = StrongboxServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--replicaof",
        "127.0.0.1",
        &mport,
    ]);
    wait_link_up(logged.port());
    let mut m = master.conn();
    for i in 0..3 {
        m.assert_cmd(&["SET", "k", &i.to_string()], b"+OK\r\n");
        let t0 = Instant::now();
        m.assert_cmd(&["WAITAOF", "1", "1", "10000"], b"*2\r\n:1\r\n:1\r\n");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }
    let mut r = logged.conn();
    r.assert_cmd(
        &["WAITAOF", "0", "0", "0"],
        b"-ERR WAITAOF cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated.\r\n",
    );
    // Replicas that do not fsync a log of their own do not count.
    let unlogged =
        StrongboxServer::start(&["--appendonly", "no", "--replicaof", "127.0.0.1", &mport]);
    let redis = RedisServer::start(&["--appendonly", "yes", "--replicaof", "127.0.0.1", &mport]);
    wait_link_up(unlogged.port());
    wait_link_up(redis.port());
    m.assert_cmd(&["SET", "k", "x"], b"+OK\r\n");
    m.assert_cmd(&["WAITAOF", "1", "1", "5000"], b"*2\r\n:1\r\n:1\r\n");
    let t0 = Instant::now();
    m.assert_cmd(&["WAITAOF", "0", "2", "300"], b"*2\r\n:1\r\n:1\r\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "answered before its timeout"
    );
    m.assert_cmd(&["WAIT", "3", "5000"], b":3\r\n");
}

/// `redis-cli --functions-rdb` (REPLCONF rdb-filter-only functions): the file holds the
/// function libraries and no keys; redis-server loads it so. (`--rdb` keeps everything.)
#[test]
fn redis_cli_functions_rdb_holds_the_libraries_only() {
    let sb = StrongboxServer::start(&[]);
    let mut c = con(sb.port());
    let lib = "#!lua name=lib1\nredis.register_function('func1', function() return 1 end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("dump.rdb");
    let out = Command::new("redis-cli")
        .args(["-p", &sb.port().to_string(), "--functions-rdb"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rs = RedisServer::start_in(d.path(), &["--appendonly", "no"]);
    let mut r = con(rs.port());
    let n: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    assert_eq!(n, 0, "no keys in a functions-only dump");
    let v: redis::Value = redis::cmd("FUNCTION").arg("LIST").query(&mut r).unwrap();
    assert!(format!("{v:?}").contains("func1"), "{v:?}");
}

/// The master's commands on a Strongbox replica see the replica's keys as the master does:
/// a key past its TTL on the replica (the master has not expired it yet: its DEL follows) is
/// still there for them, so INCR applies to it and keeps its TTL, and nothing of the replica's
/// own is logged — as Redis's replica. The replica used to delete it first (a DEL in its own
/// log) and apply INCR to a new key without the TTL: a key the master expires stayed forever
/// in the replica's AOF. Likewise a replica with `maxmemory` (and `replica-ignore-maxmemory
/// yes`, the default) never evicts while it applies the stream. Both sides side by side with
/// redis-server as the replica.
#[test]
fn the_masters_commands_see_the_replicas_keys_as_the_master_does() {
    let master = StrongboxServer::start(&[]);
    let mport = master.port().to_string();
    let args = [
        "--replicaof",
        "127.0.0.1",
        mport.as_str(),
        "--maxmemory",
        "2mb",
        "--maxmemory-policy",
        "allkeys-random",
    ];
    let ours = StrongboxServer::start(&args);
    let theirs = RedisServer::start(&args);
    wait_link_up(ours.port());
    wait_link_up(theirs.port());
    let mut m = master.conn();
    m.assert_cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"], b"+OK\r\n");
    let set_at = Instant::now();
    m.assert_cmd(&["SET", "j", "1", "PX", "1500"], b"+OK\r\n");
    wait_offsets_converge(master.port(), ours.port(), "slave_repl_offset");
    wait_offsets_converge(master.port(), theirs.port(), "slave_repl_offset");
    // Both replicas stopped while the master increments; they apply it after the TTL.
    let pids = [ours.pid().unwrap(), theirs.pid().unwrap()];
    for pid in pids {
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    }
    m.assert_cmd(&["INCR", "j"], b":2\r\n");
    std::thread::sleep(Duration::from_millis(1700).saturating_sub(set_at.elapsed()));
    for pid in pids {
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    // And 3 MB of values: over the replicas' maxmemory, which they ignore.
    let v = "x".repeat(1000);
    for i in 0..3000 {
        m.assert_cmd(&["SET", &format!("big:{i}"), &v], b"+OK\r\n");
    }
    wait_offsets_converge(master.port(), ours.port(), "slave_repl_offset");
    wait_offsets_converge(master.port(), theirs.port(), "slave_repl_offset");
    let mut seen = vec![];
    for s in [&*ours, &*theirs] {
        let mut c = s.conn();
        seen.push((
            c.cmd(&["EXISTS", "j"]),
            c.cmd(&["PTTL", "j"]),
            c.cmd(&["DBSIZE"]),
            String::from_utf8_lossy(&c.cmd(&["INFO", "stats"]))
                .lines()
                .find(|l| l.starts_with("evicted_keys:"))
                .map(str::to_string),
        ));
    }
    assert_eq!(seen[0], seen[1], "strongbox vs redis replica");
    assert_eq!(seen[0].0, b":0\r\n");
    assert_eq!(seen[0].2, b":3001\r\n");
    assert_eq!(seen[0].3.as_deref(), Some("evicted_keys:0"));
}

/// `repl-diskless-sync-delay` as Redis: replicas that ask for a full sync within the delay
/// share one diskless transfer, which starts only once the first has waited the delay; with
/// `repl-diskless-sync-max-replicas` reached it starts at once. Redis 7.0 replicas, and the
/// master's log and INFO, tell.
#[test]
fn diskless_sync_waits_for_more_replicas_and_shares_one_transfer() {
    let master = StrongboxServer::start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "3",
    ]);
    let mp = master.port();
    fill(mp, 200);
    let mport = mp.to_string();
    let asked = Instant::now();
    let r1 = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    wait_log(|| master.log(), "Delay next BGSAVE for diskless SYNC");
    std::thread::sleep(Duration::from_millis(1000));
    let r2 = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    wait_link_up(r1.port());
    wait_link_up(r2.port());
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "the sync did not wait: {:?}\n{}",
        asked.elapsed(),
        master.log()
    );
    let log = master.log();
    assert_eq!(
        log.matches("Starting BGSAVE for SYNC").count(),
        1,
        "one transfer for both replicas:\n{log}"
    );
    assert_eq!(field(&info(mp, "stats"), "sync_full").as_deref(), Some("2"));
    wait_same(mp, r1.port(), "first replica");
    wait_same(mp, r2.port(), "second replica");

    // With max-replicas 2 the second replica starts the transfer, long before the delay.
    let master = StrongboxServer::start(&[
        "--repl-diskless-sync-delay",
        "60",
        "--repl-diskless-sync-max-replicas",
        "2",
    ]);
    let mp = master.port();
    fill(mp, 100);
    let mport = mp.to_string();
    let asked = Instant::now();
    let r1 = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    let r2 = RedisServer::start(&["--replicaof", "127.0.0.1", &mport]);
    wait_link_up(r1.port());
    wait_link_up(r2.port());
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "{}",
        master.log()
    );
    assert_eq!(master.log().matches("Starting BGSAVE for SYNC").count(), 1);
    wait_same(mp, r2.port(), "max-replicas");
}
