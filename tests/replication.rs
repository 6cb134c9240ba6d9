//! Strongbox as a replica of redis-server 7.0 (REPLICAOF): full sync (disk and diskless),
//! the command stream, READONLY, REPLICAOF NO ONE, and durability across kill -9.

mod common;

use std::time::{Duration, Instant};

use common::replication::{
    con, diff, dump_keyspace, fill, info_field, info_stat as stat, more_writes, wait_link_up,
    wait_same,
};
use common::{RedisServer, StrongboxServer};

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
        // While the master's RDB loads, the replica answers -LOADING (as Redis): not yet.
        let loaded = info_field(replica.port(), "master_sync_in_progress").as_deref() == Some("1")
            && match redis::cmd("EXISTS").arg("before:0").query::<i64>(&mut c) {
                Ok(n) => n == 0,
                Err(e) if e.kind() == redis::ErrorKind::BusyLoadingError => false,
                Err(e) => panic!("EXISTS during the sync: {e}"),
            };
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

/// `replica-serve-stale-data no` on a replica whose master is unreachable: the same replies as
/// redis-server 7.0's (MASTERDOWN for anything not flagged `stale`, EXEC refused when it
/// queued one; INFO, CONFIG, REPLICAOF served), and served again with `yes`.
#[test]
fn a_stale_replica_answers_masterdown_like_redis() {
    let dead = common::pick_free_port().to_string();
    let args = ["--replicaof", "127.0.0.1", dead.as_str()];
    let ours = StrongboxServer::start(&args);
    let redis = RedisServer::start(&args);
    let script: &[&[&str]] = &[
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
        &["GET", "k"],
        &["PING"],
        &["DBSIZE"],
        &["CONFIG", "GET", "replica-serve-stale-data"],
        &["MULTI"],
        &["GET", "k"],
        &["EXEC"],
        &["MULTI"],
        &["CONFIG", "GET", "port"],
        &["DISCARD"],
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
        &["GET", "k"],
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
        &["SET", "k", "v"],
        &["REPLICAOF", "NO", "ONE"],
        &["GET", "k"],
    ];
    let mut a = ours.conn();
    let mut b = redis.conn();
    for cmd in script {
        let (x, y) = (a.cmd(cmd), b.cmd(cmd));
        if cmd[..] == ["CONFIG", "GET", "port"] {
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "{cmd:?}"
        );
    }
}

/// A dropped link is resumed with a partial resync (`PSYNC <replid> <offset+1>` → +CONTINUE)
/// from redis-server 7.0 and from a Strongbox master: the writes made meanwhile arrive, no
/// second full sync, and the replica's data and log are the master's.
#[test]
fn a_dropped_link_resumes_with_a_partial_resync() {
    for redis_master in [true, false] {
        let what = if redis_master {
            "redis-server"
        } else {
            "strongbox"
        };
        let (_redis, _ours, mp);
        if redis_master {
            let m = RedisServer::start(&["--save", ""]);
            mp = m.port();
            _redis = Some(m);
            _ours = None;
        } else {
            let m = StrongboxServer::start(&["--appendonly", "yes"]);
            mp = m.port();
            _ours = Some(m);
            _redis = None;
        }
        fill(mp, 500);
        let mut replica = start_replica();
        let rp = replica.port();
        let mut r = replica.conn();
        r.assert_cmd(&["REPLICAOF", "127.0.0.1", &mp.to_string()], b"+OK\r\n");
        wait_link_up(rp);
        wait_same(mp, rp, what);
        let stat = |name: &str| -> i64 {
            let mut c = con(mp);
            let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(-1)
        };
        assert_eq!(stat("sync_full"), 1, "{what}");
        for round in 0..3 {
            let mut m = con(mp);
            redis::pipe()
                .atomic()
                .cmd("INCR")
                .arg("n")
                .cmd("RPUSH")
                .arg("l")
                .arg(round)
                .query::<()>(&mut m)
                .unwrap();
            // Drop the link from the master's side, or from the replica's (its master link
            // is a client of type master, as in Redis), write while it is down.
            let killed: i64 = if round == 1 {
                redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("master")
                    .query(&mut con(rp))
                    .unwrap()
            } else {
                redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("replica")
                    .query(&mut m)
                    .unwrap()
            };
            assert_eq!(killed, 1, "{what}");
            more_writes(mp);
            wait_link_up(rp);
            wait_same(mp, rp, what);
            assert_eq!(stat("sync_partial_ok"), round + 1, "{what}: round {round}");
            assert_eq!(stat("sync_full"), 1, "{what}: round {round}");
        }
        assert!(
            replica
                .log()
                .contains("Successful partial resynchronization with master."),
            "{what}"
        );
        // What the replica acknowledged is in its own log.
        let expected = wait_same(mp, rp, what);
        replica.kill9();
        replica.restart();
        if let Some(d) = diff(&expected, &dump_keyspace(replica.port())) {
            panic!("{what}: the replica after kill -9: {d}");
        }
    }
}

/// `replica-announce-ip` / `replica-announce-port` (NAT, containers): the master, and Sentinel
/// through its INFO, sees the announced address (REPLCONF ip-address / listening-port), with a
/// redis-server master and a Strongbox one.
#[test]
fn replica_announces_the_configured_address() {
    let redis_master = RedisServer::start(&[]);
    let sb_master = StrongboxServer::start(&[]);
    for mport in [redis_master.port(), sb_master.port()] {
        let mp = mport.to_string();
        let replica = StrongboxServer::start(&[
            "--replicaof",
            "127.0.0.1",
            &mp,
            "--replica-announce-ip",
            "10.1.2.3",
            "--replica-announce-port",
            "6390",
        ]);
        wait_link_up(replica.port());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut con(mport))
                .unwrap();
            if info.contains("slave0:ip=10.1.2.3,port=6390,") {
                break;
            }
            assert!(Instant::now() < deadline, "{info}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A client blocked while its server is a master is answered Redis's `-UNBLOCKED` error and
/// disconnected when the server becomes a replica (Redis's disconnectAllBlockedClients): left
/// blocked, the master's RPUSH arriving over the link would serve it — a pop on a replica,
/// the replica's list diverging from its master's (Redis's "BLPOP followed by role change,
/// issue #2473"). Side by side with redis-server as the demoted server.
#[test]
fn becoming_a_replica_unblocks_blocked_clients_as_redis() {
    let master = RedisServer::start(&["--save", ""]);
    let mport = master.port().to_string();
    let ours = StrongboxServer::start(&[]);
    let redis = RedisServer::start(&["--save", ""]);
    let mut seen = Vec::new();
    for server in [&*ours, &*redis] {
        let mut blocked = server.conn();
        // The PING behind the BLPOP must not run: the connection closes after the error.
        blocked.send(b"*3\r\n$5\r\nBLPOP\r\n$3\r\nfoo\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n");
        let mut waiting = server.conn();
        waiting.send_cmd(&["WAIT", "1", "0"]);
        let mut c = server.conn();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&c.cmd(&["INFO", "clients"])).contains("blocked_clients:2") {
            assert!(Instant::now() < deadline, "clients never blocked");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(c.cmd(&["REPLICAOF", "127.0.0.1", &mport]), b"+OK\r\n");
        let b = blocked.read_reply();
        let w = waiting.read_reply();
        let closed = (
            blocked.is_closed_within(Duration::from_secs(5)),
            waiting.is_closed_within(Duration::from_secs(5)),
        );
        seen.push((b, w, closed));
        wait_link_up(server.port());
    }
    let expected = b"-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n";
    assert_eq!(
        String::from_utf8_lossy(&seen[0].0),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(seen[0], seen[1], "strongbox vs redis");
    assert_eq!(seen[0].2, (true, true));
    // The master's push reaches both replicas whole: nobody popped from it on a replica.
    let mut m = master.conn();
    assert_eq!(m.cmd(&["RPUSH", "foo", "a", "b", "c"]), b":3\r\n");
    for server in [&*ours, &*redis] {
        wait_same(master.port(), server.port(), "after the push");
    }
}

fn offset(port: u16, field: &str) -> i64 {
    info_field(port, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO replication"))
}

/// CLIENT PAUSE WRITE on a replica holds its master's stream back, as on a Redis replica: the
/// stream is read on (`slave_read_repl_offset` reaches the master's) but not applied
/// (`slave_repl_offset` stays, so the master's view of this replica does not move — what a
/// failover's pause relies on), reads answer from the dataset as it was, and a link dropped
/// meanwhile continues with a partial resync behind what is held. CLIENT UNPAUSE applies it
/// all, in order.
#[test]
fn a_paused_replica_holds_its_masters_stream_back() {
    let master = RedisServer::start(&["--save", ""]);
    let mport = master.port().to_string();
    let replica =
        StrongboxServer::start(&["--appendonly", "yes", "--replicaof", "127.0.0.1", &mport]);
    let (mp, rp) = (master.port(), replica.port());
    wait_link_up(rp);
    let mut m = con(mp);
    let mut r = con(rp);
    redis::cmd("SET")
        .arg("k0")
        .arg("v0")
        .query::<()>(&mut m)
        .unwrap();
    wait_same(mp, rp, "before the pause");
    let wait_read_offset = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if offset(rp, "slave_read_repl_offset") == offset(mp, "master_repl_offset") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the stream was not read on"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_read_offset("before the pause");
    let applied = offset(rp, "slave_repl_offset");
    assert_eq!(applied, offset(mp, "master_repl_offset"));

    redis::cmd("CLIENT")
        .arg(&["PAUSE", "100000", "WRITE"])
        .query::<()>(&mut r)
        .unwrap();
    redis::cmd("SET")
        .arg("k1")
        .arg("v1")
        .query::<()>(&mut m)
        .unwrap();
    redis::cmd("RPUSH")
        .arg("l")
        .arg(&["a", "b"])
        .query::<()>(&mut m)
        .unwrap();
    wait_read_offset("paused");
    assert_eq!(offset(rp, "slave_repl_offset"), applied);
    let k1: Option<String> = redis::cmd("GET").arg("k1").query(&mut r).unwrap();
    assert_eq!(k1, None, "a write of the master applied during the pause");

    // The link drops and comes back while paused: a partial resync, held behind the rest.
    let partial = stat(mp, "sync_partial_ok");
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "master"])
        .query(&mut r)
        .unwrap();
    assert_eq!(killed, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stat(mp, "sync_partial_ok") == partial {
        assert!(
            Instant::now() < deadline,
            "no partial resync: {}",
            replica.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    redis::cmd("SET")
        .arg("k2")
        .arg("v2")
        .query::<()>(&mut m)
        .unwrap();
    wait_read_offset("paused, after the reconnection");
    assert_eq!(offset(rp, "slave_repl_offset"), applied);
    assert_eq!(stat(mp, "sync_full"), 1, "{}", replica.log());

    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut r)
        .unwrap();
    wait_same(mp, rp, "after the unpause");
    wait_link_up(rp);
    let deadline = Instant::now() + Duration::from_secs(20);
    while offset(rp, "slave_repl_offset") != offset(mp, "master_repl_offset") {
        assert!(Instant::now() < deadline, "the offset did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stat(mp, "sync_full"), 1, "{}", replica.log());
    let l: Vec<String> = redis::cmd("LRANGE")
        .arg("l")
        .arg(0)
        .arg(-1)
        .query(&mut r)
        .unwrap();
    assert_eq!(l, ["a", "b"]);
}

/// A replica that points at another master and comes back continues its stream with a
/// partial resync in the database the stream last selected (the master sends no new SELECT):
/// Strongbox started the continued stream in database 0, so the master's later writes to
/// database 1 landed in database 0 (found by Redis's integration/replication-buffer).
#[test]
fn switching_masters_and_back_keeps_the_streams_database() {
    let master = RedisServer::start(&["--repl-diskless-sync-delay", "0"]);
    let mport = master.port().to_string();
    let replica = StrongboxServer::start(&["--replicaof", "127.0.0.1", &mport]);
    let (mp, rp) = (master.port(), replica.port());
    wait_link_up(rp);
    let mut m = con(mp);
    redis::cmd("SELECT").arg(1).query::<()>(&mut m).unwrap();
    redis::cmd("SET")
        .arg("a")
        .arg(1)
        .query::<()>(&mut m)
        .unwrap();
    wait_same(mp, rp, "db 1 selected");
    let mut r = con(rp);
    let dead = common::pick_free_port().to_string();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&dead)
        .query::<()>(&mut r)
        .unwrap();
    // Written while the replica is away: no SELECT in the stream, it is still database 1.
    for i in 0..20 {
        redis::cmd("SET")
            .arg(format!("b{i}"))
            .arg(i)
            .query::<()>(&mut m)
            .unwrap();
    }
    let partial = stat(mp, "sync_partial_ok");
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&mport)
        .query::<()>(&mut r)
        .unwrap();
    wait_link_up(rp);
    redis::cmd("SET")
        .arg("c")
        .arg(1)
        .query::<()>(&mut m)
        .unwrap();
    wait_same(mp, rp, "after the partial resync");
    assert_eq!(
        stat(mp, "sync_partial_ok"),
        partial + 1,
        "{}",
        replica.log()
    );
}

/// A master that accepts the link but never answers: the replica gives up after
/// `repl-timeout` with Redis's words, and tries again.
#[test]
fn a_silent_master_times_out_the_handshake_as_redis_says() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // Holds every connection open without a byte back (for the test's life).
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().flatten() {
            conns.push(c);
        }
    });
    let replica = StrongboxServer::start(&["--repl-timeout", "1"]);
    let mut r = con(replica.port());
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&port)
        .query::<()>(&mut r)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replica
        .log()
        .contains("Timeout connecting to the MASTER...")
    {
        assert!(Instant::now() < deadline, "{}", replica.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}
