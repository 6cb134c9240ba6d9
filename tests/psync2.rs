//! psync2 (docs/architecture.md §7): a Strongbox replica's replication stream is its master's
//! bytes, proxied, under the master's replication id and at its offsets. So a promoted replica
//! lets the old master and its siblings continue with a partial resync, and a replica of a
//! replica (Strongbox or redis-server) holds the same replication id and offsets as the top.

mod common;

use std::time::{Duration, Instant};

use common::replication::{
    con, fill, info_field, info_stat as stat, more_writes, wait_link_up, wait_same,
};
use common::{RedisServer, StrongboxServer};

fn start_strongbox(args: &[&str]) -> StrongboxServer {
    let mut all = vec!["--appendonly", "yes", "--appendfsync", "always"];
    all.extend_from_slice(args);
    StrongboxServer::start(&all)
}

/// (master_replid, master_repl_offset) as INFO replication shows them.
fn repl_position(port: u16) -> (String, i64) {
    let id = info_field(port, "master_replid").unwrap();
    let off = info_field(port, "master_repl_offset").unwrap();
    (id.trim().to_string(), off.trim().parse().unwrap())
}

/// Waits until every server shows the first one's replication id and offset.
fn wait_same_position(ports: &[u16], what: &str) -> (String, i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all: Vec<(String, i64)> = ports.iter().map(|&p| repl_position(p)).collect();
        if all.iter().all(|p| *p == all[0]) && all[0].1 > 0 {
            return all[0].clone();
        }
        assert!(Instant::now() < deadline, "{what}: {all:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn replicaof(port: u16, master: Option<u16>) {
    let mut c = con(port);
    let mut cmd = redis::cmd("REPLICAOF");
    match master {
        Some(m) => cmd.arg("127.0.0.1").arg(m),
        None => cmd.arg("NO").arg("ONE"),
    };
    let _: () = cmd.query(&mut c).unwrap();
}

#[test]
fn a_promoted_replica_lets_the_old_master_and_its_sibling_continue() {
    let a = start_strongbox(&[]);
    fill(a.port(), 2000);
    let ap = a.port().to_string();
    let b = start_strongbox(&["--replicaof", "127.0.0.1", &ap]);
    let c = start_strongbox(&["--replicaof", "127.0.0.1", &ap]);
    let (a, b, c) = (a.port(), b.port(), c.port());
    wait_link_up(b);
    wait_link_up(c);
    more_writes(a);
    wait_same(a, b, "B after the sync");
    wait_same(a, c, "C after the sync");
    // The replicas' stream is A's: same id, same offsets.
    let (a_id, off) = wait_same_position(&[a, b, c], "before the promotion");

    replicaof(b, None);
    let (b_id, _) = repl_position(b);
    assert_ne!(b_id, a_id, "a promotion starts a new replication id");
    assert_eq!(info_field(b, "master_replid2").as_deref(), Some(&*a_id));
    let second = (off + 1).to_string();
    assert_eq!(info_field(b, "second_repl_offset"), Some(second));
    let (full0, partial0) = (stat(b, "sync_full"), stat(b, "sync_partial_ok"));

    replicaof(a, Some(b));
    replicaof(c, Some(b));
    wait_link_up(a);
    wait_link_up(c);
    let deadline = Instant::now() + Duration::from_secs(15);
    while stat(b, "sync_partial_ok") < partial0 + 2 {
        assert!(Instant::now() < deadline, "A and C did not both continue");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stat(b, "sync_full"),
        full0,
        "a full sync after the promotion"
    );
    assert_eq!(stat(b, "sync_partial_ok"), partial0 + 2);

    // The stream goes on from B, in the database B's clients select.
    let mut w = con(b);
    redis::cmd("SELECT").arg(1).query::<()>(&mut w).unwrap();
    redis::cmd("SET")
        .arg("after:b")
        .arg("1")
        .query::<()>(&mut w)
        .unwrap();
    more_writes(b);
    wait_same(b, a, "A after B's writes");
    wait_same(b, c, "C after B's writes");
    let (id, _) = wait_same_position(&[b, a, c], "after the promotion");
    assert_eq!(id, b_id);
    assert_eq!(stat(b, "sync_full"), full0);
}

#[test]
fn a_redis_replica_of_a_strongbox_replica_gets_the_masters_stream() {
    let a = start_strongbox(&[]);
    fill(a.port(), 500);
    let ap = a.port().to_string();
    let b = start_strongbox(&["--replicaof", "127.0.0.1", &ap]);
    let (a, b) = (a.port(), b.port());
    // The master's stream is in database 1 when the Redis replica syncs from B, and goes on
    // there without a new SELECT: the payload tells the replica so (repl-stream-db).
    let mut w = con(a);
    redis::cmd("SELECT").arg(1).query::<()>(&mut w).unwrap();
    redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query::<()>(&mut w)
        .unwrap();
    wait_link_up(b);
    wait_same(a, b, "B after the sync");
    let bp = b.to_string();
    let r = RedisServer::start(&["--replicaof", "127.0.0.1", &bp]);
    let r = r.port();
    wait_link_up(r);
    redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query::<()>(&mut w)
        .unwrap();
    more_writes(a);
    wait_same(a, b, "B after the stream");
    wait_same(a, r, "the Redis replica of B");
    let (id, _) = wait_same_position(&[a, b, r], "the chain");
    assert_eq!(info_field(r, "master_replid").as_deref(), Some(&*id));
    // B served the Redis replica's one full sync.
    assert_eq!(stat(b, "sync_full"), 1);
}

/// A replica restarted from its RDB continues with a partial resync: the RDB names the
/// replication history it is the image of (`repl-id`, `repl-offset`) and the database the
/// stream had selected (`repl-stream-db`), as Redis's.
#[test]
fn a_replica_restarted_from_its_rdb_continues_with_a_partial_resync() {
    let a = start_strongbox(&[]);
    fill(a.port(), 300);
    let ap = a.port().to_string();
    let mut b = StrongboxServer::start(&["--appendonly", "no", "--replicaof", "127.0.0.1", &ap]);
    let a = a.port();
    wait_link_up(b.port());
    let mut w = con(a);
    redis::cmd("SELECT").arg(1).query::<()>(&mut w).unwrap();
    redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query::<()>(&mut w)
        .unwrap();
    wait_same(a, b.port(), "B after the sync");
    wait_same_position(&[a, b.port()], "before SAVE");
    redis::cmd("SAVE").query::<()>(&mut con(b.port())).unwrap();
    b.kill9();
    // Missed while B is down; db 1 is still selected in A's stream (no SELECT follows).
    redis::cmd("SET")
        .arg("while-down")
        .arg("2")
        .query::<()>(&mut w)
        .unwrap();
    let (full0, partial0) = (stat(a, "sync_full"), stat(a, "sync_partial_ok"));
    b.restart();
    wait_link_up(b.port());
    redis::cmd("SET")
        .arg("after")
        .arg("3")
        .query::<()>(&mut w)
        .unwrap();
    wait_same(a, b.port(), "B after its restart");
    wait_same_position(&[a, b.port()], "after the restart");
    assert_eq!(stat(a, "sync_full"), full0, "a full sync after the restart");
    assert_eq!(stat(a, "sync_partial_ok"), partial0 + 1);
}

/// A master restarted from its RDB keeps the history it names as its former id, with a
/// backlog at its offset: its replica continues with a partial resync, and the writes after
/// the restart reach it.
#[test]
fn a_master_restarted_from_its_rdb_lets_its_replica_continue() {
    let mut a = StrongboxServer::start(&["--appendonly", "no"]);
    fill(a.port(), 300);
    let ap = a.port().to_string();
    let b = start_strongbox(&["--replicaof", "127.0.0.1", &ap]);
    let b = b.port();
    wait_link_up(b);
    more_writes(a.port());
    wait_same(a.port(), b, "B after the sync");
    let (id, off) = wait_same_position(&[a.port(), b], "before SAVE");
    redis::cmd("SAVE").query::<()>(&mut con(a.port())).unwrap();
    a.kill9();
    a.restart();
    assert_eq!(a.port().to_string(), ap, "the master moved to another port");
    assert_eq!(
        info_field(a.port(), "master_replid2").as_deref(),
        Some(&*id)
    );
    assert_eq!(
        info_field(a.port(), "second_repl_offset"),
        Some((off + 1).to_string())
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while stat(a.port(), "sync_partial_ok") < 1 {
        assert!(Instant::now() < deadline, "B did not continue");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stat(a.port(), "sync_full"), 0);
    wait_link_up(b);
    redis::cmd("SET")
        .arg("after-restart")
        .arg("1")
        .query::<()>(&mut con(a.port()))
        .unwrap();
    wait_same(a.port(), b, "B after the master's restart");
    wait_same_position(&[a.port(), b], "after the restart");
}

/// A field of an INFO section, parsed as a number.
fn info_num(port: u16, section: &str, name: &str) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut con(port))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
        .trim()
        .parse()
        .unwrap()
}

/// DBSIZE of database `db` (on a replica it counts keys past their TTL that its master has
/// not deleted yet, as Redis's).
fn dbsize(port: u16, db: i64) -> i64 {
    let mut c = con(port);
    redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
    redis::cmd("DBSIZE").query(&mut c).unwrap()
}

/// Master A (`appendonly no`, active expiry off) with replica B: `per_db` keys with a short
/// TTL in each of dbs 0..3 plus one key without TTL in db 0, all on B too; the TTLs pass while
/// A is still up (nothing expires them), A saves, is killed and restarts from its RDB. Returns
/// (A, B, A's offset at the save).
fn master_restarted_after_its_keys_expired(
    per_db: usize,
    args: &[&str],
) -> (StrongboxServer, StrongboxServer, i64) {
    let mut all = vec!["--appendonly", "no"];
    all.extend_from_slice(args);
    let mut a = StrongboxServer::start(&all);
    let ap = a.port().to_string();
    let replica = start_strongbox(&["--replicaof", "127.0.0.1", &ap]);
    let b = replica.port();
    wait_link_up(b);
    let mut w = con(a.port());
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut w)
        .unwrap();
    redis::cmd("SET")
        .arg("keep")
        .arg("1")
        .query::<()>(&mut w)
        .unwrap();
    for db in 0..3 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut w).unwrap();
        let mut p = redis::pipe();
        for i in 0..per_db {
            p.cmd("SET")
                .arg(format!("short:{i}"))
                .arg("v")
                .arg("PX")
                .arg(300)
                .ignore();
        }
        p.query::<()>(&mut w).unwrap();
    }
    let (_, off) = wait_same_position(&[a.port(), b], "before the TTLs pass");
    assert_eq!(dbsize(b, 1), per_db as i64, "B holds the keys with a TTL");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        dbsize(a.port(), 1),
        per_db as i64,
        "A expired keys (active expiry is off)"
    );
    redis::cmd("SAVE").query::<()>(&mut w).unwrap();
    a.kill9();
    a.restart();
    assert_eq!(a.port().to_string(), ap, "the master moved to another port");
    assert_eq!(
        info_num(a.port(), "persistence", "rdb_last_load_keys_expired"),
        3 * per_db as i64
    );
    assert_eq!(
        info_num(a.port(), "replication", "second_repl_offset"),
        off + 1
    );
    (a, replica, off)
}

/// Waits until A has served a sync of either kind and B's link is up with A's id and offset,
/// and checks that the keys expired at A's load are gone from B too.
fn wait_replica_caught_up(a: u16, b: u16, per_db: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while stat(a, "sync_partial_ok") + stat(a, "sync_full") < 1 {
        assert!(Instant::now() < deadline, "B did not reconnect");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_link_up(b);
    redis::cmd("SET")
        .arg("after-restart")
        .arg("1")
        .query::<()>(&mut con(a))
        .unwrap();
    wait_same_position(&[a, b], "after the restart");
    for (db, want) in [(0, 2), (1, 0), (2, 0)] {
        assert_eq!(dbsize(a, db), want, "A's db {db}");
        assert_eq!(
            dbsize(b, db),
            want,
            "B's db {db} (of {per_db} keys with a TTL)"
        );
    }
}

/// Keys that expired while the master was down are deleted at its load and their DELs start
/// its new backlog (Redis 7's RDBFLAGS_FEED_REPL): master_repl_offset moves past the RDB's
/// offset by exactly those bytes, and the replica continues with a partial resync and gets
/// them.
#[test]
fn a_master_restarted_after_keys_expired_feeds_their_dels_to_its_replica() {
    let per_db = 200;
    let (a, b, off) = master_restarted_after_its_keys_expired(per_db, &[]);
    let (a, b) = (a.port(), b.port());
    let end = info_num(a, "replication", "master_repl_offset");
    assert!(end > off, "no DELs in the stream: {end} <= {off}");
    assert_eq!(
        info_num(a, "replication", "repl_backlog_histlen"),
        end - off
    );
    assert_eq!(
        info_num(a, "replication", "repl_backlog_first_byte_offset"),
        off + 1
    );
    wait_replica_caught_up(a, b, per_db);
    assert_eq!(stat(a, "sync_full"), 0, "a full sync");
    assert_eq!(stat(a, "sync_partial_ok"), 1);
}

/// More DELs than `repl-backlog-size` holds: the backlog no longer reaches back to the RDB's
/// offset, so the replica syncs in full (and still ends without the expired keys).
#[test]
fn a_master_restarted_after_more_keys_expired_than_its_backlog_holds_resyncs_in_full() {
    let per_db = 1000;
    let (a, b, off) =
        master_restarted_after_its_keys_expired(per_db, &["--repl-backlog-size", "16384"]);
    let (a, b) = (a.port(), b.port());
    assert!(info_num(a, "replication", "repl_backlog_first_byte_offset") > off + 1);
    wait_replica_caught_up(a, b, per_db);
    assert_eq!(stat(a, "sync_partial_ok"), 0, "a partial resync");
    assert_eq!(stat(a, "sync_full"), 1);
}

/// A replica restarted from its RDB keeps the keys already past their TTL (Redis's rdbLoad
/// leaves them out only on a master): they are its master's to delete, and the DELs come in
/// the stream it continues.
#[test]
fn a_replica_restarted_from_its_rdb_keeps_expired_keys_for_its_masters_dels() {
    let a = start_strongbox(&[]);
    let a = a.port();
    let ap = a.to_string();
    let mut b = StrongboxServer::start(&["--appendonly", "no", "--replicaof", "127.0.0.1", &ap]);
    wait_link_up(b.port());
    let mut w = con(a);
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut w)
        .unwrap();
    redis::cmd("SET")
        .arg("keep")
        .arg("1")
        .query::<()>(&mut w)
        .unwrap();
    for i in 0..20 {
        redis::cmd("SET")
            .arg(format!("short:{i}"))
            .arg("v")
            .arg("PX")
            .arg(300)
            .query::<()>(&mut w)
            .unwrap();
    }
    wait_same_position(&[a, b.port()], "before SAVE");
    redis::cmd("SAVE").query::<()>(&mut con(b.port())).unwrap();
    b.kill9();
    std::thread::sleep(Duration::from_millis(500));
    b.restart();
    assert_eq!(
        info_num(b.port(), "persistence", "rdb_last_load_keys_expired"),
        0
    );
    assert_eq!(
        dbsize(b.port(), 0),
        21,
        "the replica left keys out at its load"
    );
    wait_link_up(b.port());
    assert_eq!(stat(a, "sync_full"), 1, "a full sync after the restart");
    // The master deletes them now, and the replica gets the DELs.
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query::<()>(&mut w)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while dbsize(b.port(), 0) != 1 {
        assert!(
            Instant::now() < deadline,
            "the DELs did not reach the replica"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(dbsize(a, 0), 1);
}
