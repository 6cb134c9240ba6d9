//! Replication tests' helpers (tests/replication.rs: Strongbox as a replica;
//! tests/replication_master.rs: Strongbox as a master): both servers' keyspaces compared
//! key by key, a dataset of every type in two databases, a stream of writes, INFO fields.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::keyspace::{key_value, scan_keys, Streams};

/// A key's type, value (collections canonically ordered) and absolute expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDump {
    pub kind: String,
    pub value: Vec<Vec<u8>>,
    pub expire_ms: i64,
}

pub type Keyspace = BTreeMap<(i64, Vec<u8>), KeyDump>;

pub const DBS: i64 = 2;

pub fn con(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Waits while the server answers -LOADING (a replica loading its master's payload, a server
/// loading its files at start): what a client of Redis sees too.
pub fn wait_loaded(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut c = con(port);
    loop {
        match redis::cmd("PING").query::<String>(&mut c) {
            Err(e) if e.kind() == redis::ErrorKind::BusyLoadingError => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still loading after 60 s"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

/// The whole keyspace of dbs 0..DBS, after any load under way. A replica just restarted may
/// start loading its master's payload in the middle (-LOADING, as Redis answers): the dump is
/// then taken again once that load is over.
pub fn dump_keyspace(port: u16) -> Keyspace {
    for _ in 0..20 {
        wait_loaded(port);
        match std::panic::catch_unwind(|| dump_keyspace_once(port)) {
            Ok(k) => return k,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if !msg.contains("loading the dataset") {
                    std::panic::resume_unwind(p);
                }
            }
        }
    }
    panic!("the server kept loading");
}

fn dump_keyspace_once(port: u16) -> Keyspace {
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

pub fn diff(a: &Keyspace, b: &Keyspace) -> Option<String> {
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
pub fn wait_same(master: u16, replica: u16, what: &str) -> Keyspace {
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

pub fn info_field(port: u16, field: &str) -> Option<String> {
    let mut c = con(port);
    let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
}

/// A counter of INFO stats (`sync_full`, `sync_partial_ok`, …).
pub fn info_stat(port: u16, field: &str) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut con(port))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO stats"))
}

pub fn wait_link_up(port: u16) {
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
pub fn fill(port: u16, n: usize) {
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
pub fn more_writes(port: u16) {
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
