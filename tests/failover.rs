//! FAILOVER (src/failover.rs): a coordinated switch of roles with a replica, in every pairing
//! with Debian's redis-server 7.0 (Strongbox → Strongbox, Strongbox → Redis, Redis →
//! Strongbox), the wait's timeout and ABORT with writes held meanwhile, and the errors,
//! byte-compared with redis-server's.

mod common;

use std::time::{Duration, Instant};

use common::replication::{con, info_field, wait_link_up, wait_same};
use common::{RawConn, ServerKind, ServerProcess};

fn info(port: u16, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(&mut con(port))
        .unwrap()
}

fn wait_for(secs: u64, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the master lists the replica on `replica_port` as online (a FAILOVER TO needs it).
fn wait_online(master: u16, replica_port: u16) {
    wait_for(30, "replica online at its master", || {
        info(master, "replication")
            .lines()
            .any(|l| l.contains(&format!("port={replica_port},state=online")))
    });
}

fn role(port: u16) -> String {
    let r: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con(port)).unwrap();
    match &r[0] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

fn set(port: u16, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut con(port))
        .unwrap();
}

fn get(port: u16, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut con(port)).unwrap()
}

/// FAILOVER on `old` (a master with the replica `new`): the roles swap, the data is the same
/// on both, the failover state is back to no-failover, and a write on the new master reaches
/// the old one.
fn failover_and_check(old: u16, new: u16, args: &[&str]) {
    let mut c = RawConn::connect(old);
    c.assert_cmd(args, b"+OK\r\n");
    wait_for(
        30,
        "the old master becomes a replica of the new one",
        || {
            role(old) == "slave"
                && info_field(old, "master_port").as_deref() == Some(&new.to_string())
                && info_field(old, "master_link_status").as_deref() == Some("up")
        },
    );
    assert_eq!(role(new), "master");
    assert_eq!(
        info_field(old, "master_failover_state").as_deref(),
        Some("no-failover")
    );
    wait_same(new, old, "after the failover");
    set(new, "after-failover", "yes");
    wait_for(10, "a write on the new master reaches the old one", || {
        get(old, "after-failover").as_deref() == Some("yes")
    });
}

/// A master of `master_kind` with a replica of `replica_kind` that has `keys` keys and is
/// online at its master.
fn pair(
    master_kind: ServerKind,
    replica_kind: ServerKind,
    args: &[&str],
    keys: usize,
) -> (ServerProcess, ServerProcess) {
    let m = ServerProcess::start(master_kind, args);
    let mport = m.port().to_string();
    let r = ServerProcess::start(
        replica_kind,
        &[args, &["--replicaof", "127.0.0.1", &mport]].concat(),
    );
    wait_link_up(r.port());
    for i in 0..keys {
        set(m.port(), &format!("k{i}"), &format!("v{i}"));
    }
    wait_online(m.port(), r.port());
    (m, r)
}

#[test]
fn failover_to_a_strongbox_replica() {
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    let (m, r) = pair(ServerKind::Strongbox, ServerKind::Strongbox, &always, 500);
    failover_and_check(m.port(), r.port(), &["FAILOVER"]);
    assert_eq!(get(m.port(), "k499").as_deref(), Some("v499"));
}

/// Redis's replica keeps our stream in its backlog: after it takes over, the old Strongbox
/// master continues from its own offset (+CONTINUE, no full sync).
#[test]
fn failover_from_strongbox_to_a_redis_replica_continues_the_stream() {
    let (m, r) = pair(ServerKind::Strongbox, ServerKind::Redis, &[], 200);
    let rport = r.port().to_string();
    failover_and_check(m.port(), r.port(), &["FAILOVER", "TO", "127.0.0.1", &rport]);
    let stats = info(r.port(), "stats");
    assert!(
        stats.contains("sync_partial_ok:1"),
        "the old master should have continued the stream:\n{stats}"
    );
}

#[test]
fn failover_from_redis_to_a_strongbox_replica() {
    let (m, r) = pair(ServerKind::Redis, ServerKind::Strongbox, &[], 200);
    let rport = r.port().to_string();
    failover_and_check(m.port(), r.port(), &["FAILOVER", "TO", "127.0.0.1", &rport]);
}

/// While the replica has not caught up, writes are held (not refused); TIMEOUT aborts the
/// failover and lets them run; ABORT does the same at once.
#[test]
fn failover_holds_writes_until_it_times_out_or_is_aborted() {
    let (m, r) = pair(ServerKind::Strongbox, ServerKind::Strongbox, &[], 0);
    for (how, abort) in [("TIMEOUT", false), ("ABORT", true)] {
        // The replica sleeps, so it cannot acknowledge the write below.
        let rp = r.port();
        let sleeper = std::thread::spawn(move || {
            let _: () = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg("1.5")
                .query(&mut con(rp))
                .unwrap();
        });
        std::thread::sleep(Duration::from_millis(200));
        set(m.port(), "moved", how);
        let mut c = RawConn::connect(m.port());
        if abort {
            c.assert_cmd(&["FAILOVER"], b"+OK\r\n");
        } else {
            c.assert_cmd(&["FAILOVER", "TIMEOUT", "500"], b"+OK\r\n");
        }
        assert_eq!(
            info_field(m.port(), "master_failover_state").as_deref(),
            Some("waiting-for-sync")
        );
        let mut w = RawConn::connect(m.port());
        w.send_cmd(&["SET", "held", how]);
        assert!(
            w.read_reply_within(Duration::from_millis(200)).is_err(),
            "{how}: a write was not held during the failover"
        );
        if abort {
            c.assert_cmd(&["FAILOVER", "ABORT"], b"+OK\r\n");
        }
        // Then the write runs, on a master still.
        assert_eq!(
            w.read_reply_within(Duration::from_secs(5)).unwrap(),
            b"+OK\r\n"
        );
        assert_eq!(role(m.port()), "master");
        assert_eq!(
            info_field(m.port(), "master_failover_state").as_deref(),
            Some("no-failover")
        );
        c.assert_cmd(&["FAILOVER", "ABORT"], b"-ERR No failover in progress.\r\n");
        sleeper.join().unwrap();
    }
    let log = m.log();
    assert!(
        log.contains("FAILOVER to any replica aborted: Replica never caught up before timeout"),
        "{log}"
    );
    assert!(
        log.contains("FAILOVER to any replica aborted: Failover manually aborted"),
        "{log}"
    );
}

/// Every refusal, byte for byte as redis-server's, on a master without replicas, a master
/// with one, and a replica.
#[test]
fn failover_errors_are_redis_errors() {
    let cases_alone: &[&[&str]] = &[
        &["FAILOVER"],
        &["FAILOVER", "ABORT"],
        &["FAILOVER", "TIMEOUT", "0"],
        &["FAILOVER", "TIMEOUT", "-5"],
        &["FAILOVER", "TIMEOUT", "x"],
        &["FAILOVER", "TO", "127.0.0.1", "x"],
        &["FAILOVER", "TO", "127.0.0.1"],
        &["FAILOVER", "FORCE", "FORCE"],
        &["FAILOVER", "TIMEOUT", "10", "TIMEOUT", "10"],
        &["FAILOVER", "BOGUS"],
        &["PSYNC", "abc", "1", "FAILOVER"],
    ];
    let with_replica = |port: u16| -> Vec<Vec<String>> {
        vec![
            vec![
                "FAILOVER".into(),
                "TO".into(),
                "127.0.0.1".into(),
                "1".into(),
            ],
            vec![
                "FAILOVER".into(),
                "FORCE".into(),
                "TIMEOUT".into(),
                "10".into(),
            ],
            vec![
                "FAILOVER".into(),
                "TO".into(),
                "127.0.0.1".into(),
                port.to_string(),
                "FORCE".into(),
            ],
        ]
    };
    let on_replica: &[&[&str]] = &[
        &["FAILOVER"],
        &[
            "PSYNC",
            "0123456789012345678901234567890123456789",
            "1",
            "FAILOVER",
        ],
    ];
    let run = |kind: ServerKind| -> Vec<String> {
        let m = ServerProcess::start(kind, &[]);
        let mp = m.port().to_string();
        let r = ServerProcess::start(kind, &["--replicaof", "127.0.0.1", &mp]);
        let lone = ServerProcess::start(kind, &[]);
        let mut out = Vec::new();
        let mut c = lone.conn();
        for args in cases_alone {
            out.push(format!("{args:?} -> {}", common::escape(&c.cmd(args))));
        }
        wait_link_up(r.port());
        wait_online(m.port(), r.port());
        let mut c = m.conn();
        for args in with_replica(r.port()) {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let reply = common::escape(&c.cmd(&a));
            let shown = args
                .join(" ")
                .replace(&r.port().to_string(), "<replica port>");
            out.push(format!("{shown} -> {reply}"));
        }
        let mut c = r.conn();
        for args in on_replica {
            out.push(format!("{args:?} -> {}", common::escape(&c.cmd(args))));
        }
        out
    };
    let expected = run(ServerKind::Redis);
    let got = run(ServerKind::Strongbox);
    for (e, g) in expected.iter().zip(got.iter()) {
        assert_eq!(e, g, "redis-server vs strongbox");
    }
    assert_eq!(expected.len(), got.len());
}
