//! Strongbox as a replica of redis-server 7.0 (REPLICAOF): full sync (disk and diskless),
//! the command stream, READONLY, REPLICAOF NO ONE, and durability across kill -9.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::keyspace::{key_value, scan_keys, Streams};
use common::{RedisServer, StrongboxServer};

/// A key's type, value (collections canonically ordered) and absolute expiry.
#[derive(Debug, Clone, PartialEq)]
struct KeyDump {
    kind: String,
    value: Vec<Vec<u8>>,
    expire_ms: i64,
}

type Keyspace = BTreeMap<(i64, Vec<u8>), KeyDump>;

const DBS: i64 = 2;

fn con(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn dump_keyspace(port: u16) -> Keyspace {
    let mut c = con(port);
    let mut out = Keyspace::new();
    for db in 0..DBS {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        for k in scan_keys(&mut c) {
            let Some((kind, value)) = key_value(&mut c, &k, Streams::EntriesAndGroups) else {
                continue;
            };
            let expire_ms: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut c).unwrap();
            out.insert(
                (db, k),
                KeyDump {
                    kind,
                    value,
                    expire_ms,
                },
            );
        }
    }
    out
}

fn diff(a: &Keyspace, b: &Keyspace) -> Option<String> {
    if a == b {
        return None;
    }
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
    let differ: Vec<_> = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
        .map(|(k, v)| (k, v, b.get(k)))
        .take(3)
        .collect();
    Some(format!(
        "{} vs {} keys; only in master: {only_a:?}; only in replica: {only_b:?}; differ: {differ:?}",
        a.len(),
        b.len()
    ))
}

/// Waits until the replica's keyspace equals the master's.
fn wait_same(master: u16, replica: u16, what: &str) -> Keyspace {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = dump_keyspace(master);
        let b = dump_keyspace(replica);
        match diff(&a, &b) {
            None => return a,
            Some(d) if Instant::now() > deadline => panic!("{what}: {d}"),
            Some(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn info_field(port: u16, field: &str) -> Option<String> {
    let mut c = con(port);
    let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
}

fn wait_link_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if info_field(port, "master_link_status").as_deref() == Some("up") {
            return;
        }
        assert!(Instant::now() < deadline, "replica link never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A few thousand keys of every type in dbs 0 and 1, some with TTLs.
fn fill(port: u16, n: usize) {
    let mut c = con(port);
    let mut p = redis::pipe();
    for i in 0..n {
        let k = format!("k:{i}");
        match i % 6 {
            0 => {
                p.cmd("SET").arg(&k).arg(format!("value-{i}")).ignore();
                if i % 12 == 0 {
                    p.cmd("EXPIRE").arg(&k).arg(100_000 + i).ignore();
                }
            }
            1 => {
                p.cmd("RPUSH")
                    .arg(&k)
                    .arg(
                        (0..(i % 40 + 1))
                            .map(|j| format!("e{j}"))
                            .collect::<Vec<_>>(),
                    )
                    .ignore();
            }
            2 => {
                let fields: Vec<(String, String)> = (0..(i % 30 + 1))
                    .map(|j| (format!("f{j}"), format!("v{j}-{i}")))
                    .collect();
                p.cmd("HSET").arg(&k).arg(fields).ignore();
            }
            3 => {
                p.cmd("SADD")
                    .arg(&k)
                    .arg((0..(i % 25 + 1)).map(|j| j * 7).collect::<Vec<_>>())
                    .ignore();
                p.cmd("SADD").arg(&k).arg(format!("m{i}")).ignore();
            }
            4 => {
                for j in 0..(i % 20 + 1) {
                    p.cmd("ZADD")
                        .arg(&k)
                        .arg(j as f64 * 1.5)
                        .arg(format!("z{j}"))
                        .ignore();
                }
                p.cmd("PEXPIRE").arg(&k).arg(500_000).ignore();
            }
            _ => {
                p.cmd("SET").arg(&k).arg(i).ignore();
                p.cmd("INCRBY").arg(&k).arg(3).ignore();
            }
        }
        if i % 500 == 499 {
            p.query::<()>(&mut c).unwrap();
            p = redis::pipe();
        }
    }
    p.query::<()>(&mut c).unwrap();
    for j in 0..300 {
        redis::cmd("XADD")
            .arg("stream")
            .arg("*")
            .arg("n")
            .arg(j)
            .arg("sq")
            .arg(j * j)
            .query::<String>(&mut c)
            .unwrap();
    }
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("stream")
        .arg("g1")
        .arg("0")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g1")
        .arg("c1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg("stream")
        .arg(">")
        .query::<redis::Value>(&mut c)
        .unwrap();
    redis::cmd("PFADD")
        .arg("hll")
        .arg((0..100).collect::<Vec<_>>())
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap();
    for i in 0..200 {
        redis::cmd("HSET")
            .arg(format!("db1:{i}"))
            .arg("a")
            .arg(i)
            .query::<()>(&mut c)
            .unwrap();
    }
}

/// Writes on the master after the sync: transactions, expiry, deletes, a script.
fn more_writes(port: u16) {
    let mut c = con(port);
    redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap();
    redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx:counter")
        .cmd("LPUSH")
        .arg("tx:list")
        .arg("a")
        .arg("b")
        .cmd("HSET")
        .arg("tx:hash")
        .arg("f")
        .arg("v")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("EXPIRE")
        .arg("k:6")
        .arg(5000)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("DEL")
        .arg("k:1")
        .arg("k:2")
        .arg("k:3")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], ARGV[1]); redis.call('ZADD', KEYS[2], 1, ARGV[1]); return redis.call('INCRBY', KEYS[3], 10)")
        .arg(3)
        .arg("lua:s")
        .arg("lua:z")
        .arg("lua:n")
        .arg("x")
        .query::<i64>(&mut c)
        .unwrap();
    redis::cmd("XADD")
        .arg("stream")
        .arg("*")
        .arg("late")
        .arg("1")
        .query::<String>(&mut c)
        .unwrap();
    redis::cmd("XACK")
        .arg("stream")
        .arg("g1")
        .arg("0-1")
        .query::<i64>(&mut c)
        .unwrap();
    // A key the master expires itself: its DEL reaches the replica.
    redis::cmd("SET")
        .arg("short")
        .arg("gone soon")
        .arg("PX")
        .arg(100)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap();
    redis::cmd("SADD")
        .arg("db1:set")
        .arg("x")
        .arg("y")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("DEL").arg("db1:0").query::<()>(&mut c).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Touch it so the master expires it now (lazy expiry), whatever its active cycle did.
    redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("short").query(&mut c).unwrap();
    assert_eq!(v, None);
}

fn start_replica() -> StrongboxServer {
    StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"])
}

#[test]
fn replica_of_redis_full_sync_stream_promotion_and_kill9() {
    // A disk-based sync: the RDB comes as `$<len>` (Redis 7.0's default is diskless).
    let master = RedisServer::start(&["--save", "", "--repl-diskless-sync", "no"]);
    fill(master.port(), 3000);
    let mut replica = start_replica();
    let mut raw = replica.conn();
    // Errors as Redis 7.0.
    raw.assert_cmd(
        &["REPLICAOF", "127.0.0.1"],
        b"-ERR wrong number of arguments for 'replicaof' command\r\n",
    );
    raw.assert_cmd(
        &["REPLICAOF", "127.0.0.1", "notaport"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    let mport = master.port().to_string();
    raw.assert_cmd(&["REPLICAOF", "127.0.0.1", &mport], b"+OK\r\n");
    raw.assert_cmd(
        &["SLAVEOF", "127.0.0.1", &mport],
        b"+OK Already connected to specified master\r\n",
    );
    wait_link_up(replica.port());
    let synced = wait_same(master.port(), replica.port(), "after the full sync");
    assert!(
        master
            .log()
            .contains("Starting BGSAVE for SYNC with target: disk"),
        "{}",
        master.log()
    );
    assert!(synced.len() > 3000, "{} keys", synced.len());

    // INFO replication and ROLE as on a Redis replica.
    let rp = replica.port();
    assert_eq!(info_field(rp, "role").as_deref(), Some("slave"));
    assert_eq!(info_field(rp, "master_host").as_deref(), Some("127.0.0.1"));
    assert_eq!(info_field(rp, "master_port"), Some(mport.clone()));
    assert_eq!(
        info_field(rp, "master_sync_in_progress").as_deref(),
        Some("0")
    );
    assert_eq!(info_field(rp, "slave_read_only").as_deref(), Some("1"));
    assert_eq!(info_field(rp, "connected_slaves").as_deref(), Some("0"));
    let mut mc = con(master.port());
    let minfo: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut mc)
        .unwrap();
    let master_replid = minfo
        .lines()
        .find_map(|l| l.strip_prefix("master_replid:"))
        .unwrap()
        .to_string();
    assert_eq!(info_field(rp, "master_replid"), Some(master_replid));
    assert!(minfo.contains("connected_slaves:1"), "{minfo}");
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con(rp)).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(role[3], redis::Value::BulkString(b"connected".to_vec()));

    // The stream: transactions, expiry, deletes, a script, another db.
    more_writes(master.port());
    let after = wait_same(master.port(), rp, "after the master's writes");
    assert!(after.contains_key(&(0, b"lua:s".to_vec())));
    assert!(!after.contains_key(&(0, b"short".to_vec())));
    assert!(!after.contains_key(&(0, b"k:1".to_vec())));

    // The offsets follow the master's (ACKs every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let moff: i64 = {
            let s: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut mc)
                .unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix("master_repl_offset:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let roff: i64 = info_field(rp, "slave_repl_offset")
            .unwrap()
            .parse()
            .unwrap();
        let s: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut mc)
            .unwrap();
        let acked = s
            .lines()
            .any(|l| l.starts_with("slave0:") && l.contains(&format!("offset={moff},")));
        if roff == moff && acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offsets: master {moff}, replica {roff}; {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Clients cannot write to a replica; they can read.
    raw.assert_cmd(
        &["SET", "x", "y"],
        b"-READONLY You can't write against a read only replica.\r\n",
    );
    raw.assert_cmd(&["GET", "after"], b"$1\r\n1\r\n");
    raw.assert_cmd(&["MULTI"], b"+OK\r\n");
    raw.assert_cmd(
        &["INCR", "x"],
        b"-READONLY You can't write against a read only replica.\r\n",
    );
    raw.assert_cmd(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );

    // Promotion: the data stays, writes are accepted, the master's writes no longer arrive.
    raw.assert_cmd(&["REPLICAOF", "NO", "ONE"], b"+OK\r\n");
    assert_eq!(info_field(rp, "role").as_deref(), Some("master"));
    raw.assert_cmd(&["SET", "promoted", "yes"], b"+OK\r\n");
    raw.assert_cmd(&["HSET", "k:2", "new", "field"], b":1\r\n");
    raw.assert_cmd(&["DEL", "k:0"], b":1\r\n");
    redis::cmd("SET")
        .arg("master-only")
        .arg("1")
        .query::<()>(&mut mc)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    raw.assert_cmd(&["EXISTS", "master-only"], b":0\r\n");
    let expected = dump_keyspace(rp);
    assert!(expected.contains_key(&(0, b"promoted".to_vec())));
    assert!(!expected.contains_key(&(0, b"k:0".to_vec())));

    // kill -9 and restart on the same directory: everything is there.
    drop(raw);
    replica.kill9();
    replica.restart();
    let recovered = dump_keyspace(replica.port());
    if let Some(d) = diff(&expected, &recovered) {
        panic!("after kill -9: {d}");
    }
    assert_eq!(
        info_field(replica.port(), "role").as_deref(),
        Some("master")
    );
}

#[test]
fn replica_of_diskless_master_and_kill9_while_replica() {
    let master = RedisServer::start(&[
        "--save",
        "",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    fill(master.port(), 2000);
    let mut replica = start_replica();
    let mport = master.port().to_string();
    let mut raw = replica.conn();
    raw.assert_cmd(&["REPLICAOF", "localhost", &mport], b"+OK\r\n");
    wait_link_up(replica.port());
    wait_same(master.port(), replica.port(), "after the diskless sync");
    let log = master.log();
    assert!(
        log.contains("Starting BGSAVE for SYNC with target: replicas sockets"),
        "the master did not sync diskless: {log}"
    );
    more_writes(master.port());
    let expected = wait_same(master.port(), replica.port(), "after the master's writes");
    // Still a replica: a kill -9 keeps the synced dataset and the stream applied so far.
    drop(raw);
    replica.kill9();
    replica.restart();
    let recovered = dump_keyspace(replica.port());
    if let Some(d) = diff(&expected, &recovered) {
        panic!("after kill -9 of the replica: {d}");
    }
}

#[test]
fn replica_reconnects_after_the_master_restarts() {
    let mut master = RedisServer::start(&["--save", "", "--repl-diskless-sync", "no"]);
    fill(master.port(), 300);
    let replica = start_replica();
    let mport = master.port().to_string();
    let mut raw = replica.conn();
    raw.assert_cmd(&["REPLICAOF", "127.0.0.1", &mport], b"+OK\r\n");
    wait_link_up(replica.port());
    wait_same(master.port(), replica.port(), "first sync");
    // The master restarts empty (no persistence), then gets new data: a new full sync.
    master.kill9();
    master.restart();
    let mut mc = con(master.port());
    redis::cmd("SET")
        .arg("fresh")
        .arg("1")
        .query::<()>(&mut mc)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = dump_keyspace(master.port());
        let b = dump_keyspace(replica.port());
        if a == b && info_field(replica.port(), "master_link_status").as_deref() == Some("up") {
            break;
        }
        assert!(Instant::now() < deadline, "no resync: {:?}", diff(&a, &b));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn replicaof_option_at_start_up() {
    let master = RedisServer::start(&["--save", "", "--repl-diskless-sync", "no"]);
    fill(master.port(), 200);
    let mport = master.port().to_string();
    let replica =
        StrongboxServer::start(&["--appendonly", "yes", "--replicaof", "127.0.0.1", &mport]);
    wait_link_up(replica.port());
    wait_same(master.port(), replica.port(), "replicaof at start-up");
    assert!(
        !replica.log().contains("no replication"),
        "{}",
        replica.log()
    );
}

/// A crash while a full sync's dataset is being written to the log (the sync's log slowed down
/// with `rdb-key-save-delay`, so the link is still `sync`): the restart recovers the replica's
/// dataset from before the sync, whole — never the flush without the load, nor the master's
/// keys without their log base. Then a sync that completes replaces it.
#[test]
fn kill9_during_the_syncs_log_write_recovers_the_dataset_from_before() {
    let master = RedisServer::start(&["--save", "", "--repl-diskless-sync", "no"]);
    fill(master.port(), 2000);
    let mut replica = StrongboxServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--rdb-key-save-delay",
        "5000",
    ]);
    let mut c = con(replica.port());
    for i in 0..50 {
        redis::cmd("SET")
            .arg(format!("before:{i}"))
            .arg(i)
            .query::<()>(&mut c)
            .unwrap();
    }
    let before = dump_keyspace(replica.port());
    let mport = master.port().to_string();
    let mut raw = replica.conn();
    raw.assert_cmd(&["REPLICAOF", "localhost", &mport], b"+OK\r\n");
    // Loaded (the master's keys are there) but its log is still being written.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let loaded = info_field(replica.port(), "master_sync_in_progress").as_deref() == Some("1")
            && redis::cmd("EXISTS")
                .arg("before:0")
                .query::<i64>(&mut c)
                .unwrap()
                == 0;
        if loaded {
            break;
        }
        assert!(Instant::now() < deadline, "the sync never loaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        info_field(replica.port(), "master_link_status").as_deref(),
        Some("down")
    );
    drop(raw);
    replica.kill9();
    replica.restart();
    let recovered = dump_keyspace(replica.port());
    if let Some(d) = diff(&before, &recovered) {
        panic!("kill -9 during the sync's log write: not the dataset from before: {d}");
    }
    // Without the delay the next sync completes and its dataset survives a kill -9.
    let mut raw = replica.conn();
    raw.assert_cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"], b"+OK\r\n");
    raw.assert_cmd(&["REPLICAOF", "localhost", &mport], b"+OK\r\n");
    wait_link_up(replica.port());
    let expected = wait_same(master.port(), replica.port(), "after the second sync");
    drop(raw);
    replica.kill9();
    replica.restart();
    if let Some(d) = diff(&expected, &dump_keyspace(replica.port())) {
        panic!("after the completed sync and kill -9: {d}");
    }
}
