//! Stream consumer groups over replication, differential: one redis-server 7.0 master, a
//! redis-server replica and a Strongbox replica side by side. The master propagates
//! XREADGROUP, XACK, XCLAIM, XAUTOCLAIM, XGROUP … as Redis 7.0 does (some only as their
//! effect: `XCLAIM … LASTID`, `XGROUP SETID`), so a replica's groups can differ from the
//! master's (Redis 7.0 does not propagate a group's `entries-read` for every read) — what
//! matters is that Strongbox's replica ends with exactly what Redis's replica has: same
//! entries, groups, last-delivered ids, entries-read, lag, pending entries and consumers.

mod common;

use std::time::{Duration, Instant};

use common::replication::wait_link_up;
use common::{RawConn, RedisServer, StrongboxServer};

/// XINFO STREAM FULL as text, without the fields that are times (each server's own clock of
/// when it applied a command).
fn stream_full(c: &mut RawConn, key: &str) -> String {
    let raw = String::from_utf8_lossy(&c.cmd(&["XINFO", "STREAM", key, "FULL"])).to_string();
    let mut out = Vec::new();
    let mut skip_next = 0;
    for line in raw.split("\r\n") {
        if skip_next > 0 {
            skip_next -= 1;
            continue;
        }
        if matches!(line, "seen-time" | "active-time" | "delivery-time") {
            // The name's value follows as `:<ms>`; the name's own `$len` line is already out.
            out.pop();
            skip_next = 1;
            continue;
        }
        out.push(line.to_string());
    }
    out.join("\n")
}

#[test]
fn consumer_groups_replicate_as_to_a_redis_replica() {
    let master = RedisServer::start(&["--save", ""]);
    let mport = master.port().to_string();
    let args = ["--replicaof", "127.0.0.1", mport.as_str()];
    let theirs = RedisServer::start(&args);
    let ours = StrongboxServer::start(&args);
    wait_link_up(theirs.port());
    wait_link_up(ours.port());
    let mut m = master.conn();
    let script: &[&[&str]] = &[
        &["XADD", "s", "1-1", "a", "1"],
        &["XADD", "s", "2-1", "b", "2"],
        &["XADD", "s", "3-1", "c", "3"],
        &["XGROUP", "CREATE", "s", "g", "0"],
        &["XGROUP", "CREATE", "s", "h", "$", "ENTRIESREAD", "3"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "NOACK",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
        &["XACK", "s", "g", "1-1"],
        &["XADD", "s", "4-1", "d", "4"],
        &["XREADGROUP", "GROUP", "g", "carol", "STREAMS", "s", ">"],
        &["XREADGROUP", "GROUP", "h", "carol", "STREAMS", "s", ">"],
        &["XCLAIM", "s", "g", "dave", "0", "4-1"],
        &["XAUTOCLAIM", "s", "g", "erin", "0", "0-0", "COUNT", "1"],
        &["XCLAIM", "s", "h", "dave", "0", "4-1", "JUSTID"],
        &["XDEL", "s", "2-1"],
        &["XGROUP", "CREATECONSUMER", "s", "g", "frank"],
        &["XGROUP", "DELCONSUMER", "s", "h", "carol"],
        &["XADD", "s", "5-1", "e", "5"],
        &["XGROUP", "SETID", "s", "h", "3-1", "ENTRIESREAD", "2"],
        &[
            "XREADGROUP",
            "GROUP",
            "h",
            "gina",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
        &["XTRIM", "s", "MAXLEN", "3"],
        &["XADD", "t", "MAXLEN", "2", "*", "f", "v"],
        &["XGROUP", "CREATE", "t", "g2", "0", "MKSTREAM"],
        &["XGROUP", "CREATE", "u", "g3", "$", "MKSTREAM"],
        &["XGROUP", "DESTROY", "t", "g2"],
    ];
    for cmd in script {
        let r = m.cmd(cmd);
        assert!(
            !r.starts_with(b"-"),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&r)
        );
    }
    // Both replicas at the master's offset.
    let offset = String::from_utf8_lossy(&m.cmd(&["INFO", "replication"]))
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:").map(str::to_string))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in [theirs.port(), ours.port()] {
        let mut c = RawConn::connect(port);
        loop {
            let info = String::from_utf8_lossy(&c.cmd(&["INFO", "replication"])).to_string();
            if info.contains(&format!("slave_repl_offset:{offset}")) {
                break;
            }
            assert!(Instant::now() < deadline, "replica {port} behind: {info}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (mut a, mut b) = (theirs.conn(), ours.conn());
    for key in ["s", "t", "u"] {
        assert_eq!(stream_full(&mut b, key), stream_full(&mut a, key), "{key}");
    }
    // (XPENDING's extended form shows idle times: the PEL is compared in XINFO STREAM FULL.)
    for cmd in [
        &["XINFO", "GROUPS", "s"][..],
        &["XPENDING", "s", "g"],
        &["XPENDING", "s", "h"],
        &["XINFO", "GROUPS", "u"],
        &["XLEN", "t"],
    ] {
        let (x, y) = (a.cmd(cmd), b.cmd(cmd));
        assert_eq!(
            String::from_utf8_lossy(&y),
            String::from_utf8_lossy(&x),
            "{cmd:?}"
        );
    }
}
