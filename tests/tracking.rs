//! Client-side caching (CLIENT TRACKING, src/tracking.rs): every scenario runs against Debian's
//! redis-server 7.0 and Strongbox with raw RESP connections, and the transcripts — every reply
//! and every invalidation push, in the order each connection received them — must be equal
//! byte for byte (client ids, which differ between the servers, are replaced by names). Key
//! expectations are also asserted outright, so a scenario fails even if both servers agreed on
//! something wrong.

mod common;

use std::time::Duration;

use common::{escape, RawConn, ReadError, RedisServer, ServerProcess, StrongboxServer};

/// How long a connection is watched for a message that must not come.
const QUIET: Duration = Duration::from_millis(150);

/// One connection's view: its replies and pushes in the order read.
struct Transcript {
    lines: Vec<(String, Vec<u8>)>,
    /// (client id as text, its name in the transcript).
    ids: Vec<(String, &'static str)>,
}

impl Transcript {
    fn new() -> Transcript {
        Transcript {
            lines: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Record `reply` under `what`, client ids replaced by their names.
    fn note(&mut self, what: &str, reply: Vec<u8>) -> Vec<u8> {
        let mut text = escape(&reply);
        for (id, name) in &self.ids {
            text = text.replace(&format!(":{id}\\r\\n"), &format!(":<{name}>\\r\\n"));
            text = text.replace(&format!("redir={id} "), &format!("redir=<{name}> "));
        }
        self.lines.push((what.to_string(), text.into_bytes()));
        reply
    }

    fn cmd(&mut self, c: &mut RawConn, args: &[&str]) -> Vec<u8> {
        let r = c.cmd(args);
        self.note(&args.join(" "), r)
    }

    fn read(&mut self, c: &mut RawConn, what: &str) -> Vec<u8> {
        let r = c.read_reply();
        self.note(&format!("read {what}"), r)
    }

    /// Nothing more arrives on `c` for a while.
    fn quiet(&mut self, c: &mut RawConn, what: &str) {
        let got = match c.read_reply_within(QUIET) {
            Err(ReadError::Timeout { partial }) if partial.is_empty() => b"(nothing)".to_vec(),
            Ok(r) => r,
            Err(e) => format!("{e}").into_bytes(),
        };
        self.note(&format!("quiet {what}"), got);
    }

    /// A connection's id, remembered under `name`.
    fn id(&mut self, c: &mut RawConn, name: &'static str) -> String {
        let r = c.cmd(&["CLIENT", "ID"]);
        let id = String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned();
        self.ids.push((id.clone(), name));
        id
    }
}

fn servers() -> (RedisServer, StrongboxServer) {
    (
        RedisServer::start(&["--enable-debug-command", "yes"]),
        StrongboxServer::start(&[]),
    )
}

/// Run `scenario` on both servers and require the same transcript.
fn same_on_both(scenario: fn(&ServerProcess, &mut Transcript)) {
    let (redis, sb) = servers();
    let mut a = Transcript::new();
    scenario(&redis, &mut a);
    let mut b = Transcript::new();
    scenario(&sb, &mut b);
    let mut diffs = Vec::new();
    for (i, ((wa, ra), (_, rb))) in a.lines.iter().zip(b.lines.iter()).enumerate() {
        if ra != rb {
            diffs.push(format!(
                "#{i} {wa}\n  redis:     {}\n  strongbox: {}",
                String::from_utf8_lossy(ra),
                String::from_utf8_lossy(rb)
            ));
        }
    }
    assert_eq!(a.lines.len(), b.lines.len(), "transcript lengths");
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}

fn hello3(c: &mut RawConn) {
    let r = c.cmd(&["HELLO", "3"]);
    assert!(r.starts_with(b"%"), "HELLO 3: {}", escape(&r));
}

const INV_K: &[u8] = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";

fn resp3_default_mode(s: &ServerProcess, t: &mut Transcript) {
    let p = s.port();
    let (mut a, mut w) = (RawConn::connect(p), RawConn::connect(p));
    hello3(&mut a);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on"]);
    t.cmd(&mut w, &["SET", "k", "1"]);
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut w, &["SET", "k", "2"]);
    let inv = t.read(&mut a, "invalidation of k");
    assert_eq!(escape(&inv), escape(INV_K));
    // Only once: the key left the table until read again.
    t.cmd(&mut w, &["SET", "k", "3"]);
    t.quiet(&mut a, "k not read again");
    // Keys written but never read are not tracked.
    t.cmd(&mut w, &["SET", "unread", "1"]);
    t.quiet(&mut a, "unread key");
    // Own writes: the reply first, then the invalidation.
    t.cmd(&mut a, &["HSET", "h", "f", "1"]);
    t.cmd(&mut a, &["HGET", "h", "f"]);
    let r = t.cmd(&mut a, &["HDEL", "h", "f"]);
    assert_eq!(r, b":1\r\n");
    t.read(&mut a, "own HDEL");
    // A transaction: its reply whole, then its invalidations.
    t.cmd(&mut a, &["MSET", "x", "1", "y", "2"]);
    t.cmd(&mut a, &["MGET", "x", "y"]);
    t.cmd(&mut a, &["MULTI"]);
    t.cmd(&mut a, &["INCR", "x"]);
    t.cmd(&mut a, &["GET", "y"]);
    t.cmd(&mut a, &["SET", "y", "3"]);
    let r = t.cmd(&mut a, &["EXEC"]);
    assert!(r.starts_with(b"*3\r\n"), "EXEC first: {}", escape(&r));
    t.read(&mut a, "x after EXEC");
    t.read(&mut a, "y after EXEC");
    // Another client's transaction.
    t.cmd(&mut a, &["MGET", "x", "y"]);
    t.cmd(&mut w, &["MULTI"]);
    t.cmd(&mut w, &["DEL", "x"]);
    t.cmd(&mut w, &["RENAME", "y", "z"]);
    t.cmd(&mut w, &["EXEC"]);
    t.read(&mut a, "x by other's EXEC");
    t.read(&mut a, "y by other's RENAME");
    // A script's writes: after the script's reply.
    t.cmd(&mut a, &["GET", "s"]);
    t.cmd(
        &mut a,
        &["EVAL", "redis.call('set', KEYS[1], 'v') return 7", "1", "s"],
    );
    t.read(&mut a, "script's write");
    // A script that calls a read-only command tracks its declared keys.
    t.cmd(
        &mut a,
        &["EVAL", "return redis.call('get', 'other')", "1", "decl"],
    );
    t.cmd(&mut w, &["MSET", "decl", "1", "other", "1"]);
    t.read(&mut a, "script's declared key");
    t.quiet(&mut a, "not the key the script read");
    // A script that runs no read-only command tracks nothing.
    t.cmd(&mut a, &["EVAL", "return redis.call('ping')", "1", "decl2"]);
    t.cmd(&mut w, &["SET", "decl2", "1"]);
    t.quiet(&mut a, "script without reads");
    // Several readers of one key.
    let mut b = RawConn::connect(p);
    hello3(&mut b);
    t.cmd(&mut b, &["CLIENT", "TRACKING", "on"]);
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut b, &["GET", "k"]);
    t.cmd(&mut w, &["APPEND", "k", "x"]);
    t.read(&mut a, "a: k");
    t.read(&mut b, "b: k");
    // NOLOOP: not for one's own writes, still for others'.
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "NOLOOP"]);
    t.cmd(&mut a, &["MGET", "k", "j"]);
    t.cmd(&mut a, &["SET", "k", "own"]);
    t.cmd(&mut w, &["SET", "j", "other"]);
    t.read(&mut a, "j by another client");
    t.quiet(&mut a, "own write under NOLOOP");
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    // Off: nothing more.
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "off"]);
    t.cmd(&mut w, &["SET", "k", "after off"]);
    t.quiet(&mut a, "after TRACKING off");
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut a, &["CLIENT", "GETREDIR"]);
}

#[test]
fn resp3_invalidations_default_mode_match_redis() {
    same_on_both(resp3_default_mode);
}

fn resp2_redirect(s: &ServerProcess, t: &mut Transcript) {
    let p = s.port();
    let (mut a, mut w, mut r) = (
        RawConn::connect(p),
        RawConn::connect(p),
        RawConn::connect(p),
    );
    let rid = t.id(&mut r, "redirect");
    t.cmd(&mut r, &["SUBSCRIBE", "__redis__:invalidate"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "REDIRECT", &rid]);
    t.cmd(&mut a, &["CLIENT", "GETREDIR"]);
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut a, &["MGET", "k", "l"]);
    t.cmd(&mut w, &["SET", "k", "1"]);
    let m = t.read(&mut r, "message for k");
    assert_eq!(
        escape(&m),
        escape(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n")
    );
    // The tracking client itself (RESP2) gets nothing; its own write goes to the redirect.
    t.cmd(&mut a, &["SET", "l", "1"]);
    t.quiet(&mut a, "RESP2 tracking client");
    t.read(&mut r, "message for l");
    // FLUSHDB / FLUSHALL: a null, in the tracking client's protocol (RESP2 here).
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut w, &["FLUSHDB"]);
    t.read(&mut r, "FLUSHDB null");
    t.cmd(&mut w, &["FLUSHALL"]);
    t.read(&mut r, "FLUSHALL null");
    hello3(&mut a);
    t.cmd(&mut w, &["FLUSHALL"]);
    t.read(&mut r, "FLUSHALL null of a RESP3 tracking client");
    // A RESP3 redirect client gets pushes.
    t.cmd(&mut r, &["UNSUBSCRIBE"]);
    hello3(&mut r);
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut w, &["SET", "k", "2"]);
    t.read(&mut r, "push to RESP3 redirect");
    // A RESP2 redirect client that is not subscribed gets nothing.
    t.cmd(&mut r, &["HELLO", "2"]);
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut w, &["SET", "k", "3"]);
    t.quiet(&mut r, "unsubscribed RESP2 redirect client");
    // The redirect client goes away: RESP3 tracking clients are told.
    t.cmd(&mut a, &["GET", "k"]);
    drop(r);
    std::thread::sleep(Duration::from_millis(100));
    t.cmd(&mut w, &["SET", "k", "4"]);
    let b = t.read(&mut a, "tracking-redir-broken");
    assert!(
        b.starts_with(b">2\r\n$21\r\ntracking-redir-broken\r\n:"),
        "{}",
        escape(&b)
    );
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut a, &["CLIENT", "GETREDIR"]);
    let list = a.cmd(&["CLIENT", "INFO"]);
    let flags = String::from_utf8_lossy(&list)
        .split(' ')
        .find_map(|f| f.strip_prefix("flags=").map(str::to_string))
        .unwrap_or_default();
    t.note("CLIENT INFO flags", flags.into_bytes());
    // Errors about the redirect.
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "REDIRECT", "0"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "REDIRECT", "-1"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "REDIRECT", "abc"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "REDIRECT", &rid]);
    let wid = t.id(&mut w, "writer");
    t.cmd(
        &mut a,
        &[
            "CLIENT", "TRACKING", "on", "REDIRECT", &wid, "REDIRECT", &wid,
        ],
    );
}

#[test]
fn resp2_redirect_pubsub_and_broken_redirect_match_redis() {
    same_on_both(resp2_redirect);
}

fn bcast(s: &ServerProcess, t: &mut Transcript) {
    let p = s.port();
    let (mut a, mut w) = (RawConn::connect(p), RawConn::connect(p));
    hello3(&mut a);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "BCAST"]);
    t.cmd(&mut w, &["MSET", "b", "1", "a", "2", "c", "3"]);
    let m = t.read(&mut a, "every key, sorted");
    assert_eq!(
        escape(&m),
        escape(b">2\r\n$10\r\ninvalidate\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
    );
    t.cmd(&mut a, &["CLIENT", "TRACKING", "off"]);
    t.cmd(
        &mut a,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:", "PREFIX", "b:",
        ],
    );
    t.cmd(&mut w, &["MULTI"]);
    for k in ["a:1", "a:2", "b:1", "c:1"] {
        t.cmd(&mut w, &["INCR", k]);
    }
    t.cmd(&mut w, &["EXEC"]);
    t.read(&mut a, "prefix a:");
    t.read(&mut a, "prefix b:");
    t.quiet(&mut a, "c: is not registered");
    // Adding a prefix; overlapping ones refused.
    t.cmd(
        &mut a,
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "c:"],
    );
    t.cmd(
        &mut a,
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a"],
    );
    t.cmd(
        &mut a,
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:b"],
    );
    t.cmd(
        &mut a,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "d", "PREFIX", "dd",
        ],
    );
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut w, &["SET", "c:9", "1"]);
    t.read(&mut a, "added prefix");
    let info = String::from_utf8(w.cmd(&["INFO", "stats"])).unwrap();
    let prefixes = info
        .lines()
        .find(|l| l.starts_with("tracking_total_prefixes:"))
        .unwrap_or("")
        .to_string();
    t.note("INFO tracking_total_prefixes", prefixes.into_bytes());
    // NOLOOP: keys this client changed last are left out.
    t.cmd(&mut a, &["CLIENT", "TRACKING", "off"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"]);
    t.cmd(&mut a, &["SET", "mine", "1"]);
    t.quiet(&mut a, "own key under NOLOOP");
    t.cmd(&mut w, &["SET", "theirs", "1"]);
    t.read(&mut a, "another client's key");
    // Expired keys are broadcast too (active expiry: no client changed them).
    t.cmd(&mut a, &["SET", "soon", "1", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    t.read(&mut a, "expired key");
    let list = String::from_utf8(a.cmd(&["CLIENT", "INFO"])).unwrap();
    let flags = list
        .split(' ')
        .find_map(|f| f.strip_prefix("flags="))
        .unwrap_or("")
        .to_string();
    t.note("CLIENT INFO flags", flags.into_bytes());
    // Switching modes needs OFF first.
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "off"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "PREFIX", "x"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "BCAST", "OPTOUT"]);
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
}

#[test]
fn bcast_prefixes_noloop_and_expiry_match_redis() {
    same_on_both(bcast);
}

fn optin_optout(s: &ServerProcess, t: &mut Transcript) {
    let p = s.port();
    let (mut a, mut w) = (RawConn::connect(p), RawConn::connect(p));
    hello3(&mut a);
    t.cmd(&mut a, &["CLIENT", "CACHING", "yes"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "OPTIN"]);
    t.cmd(&mut a, &["CLIENT", "CACHING", "no"]);
    t.cmd(&mut a, &["CLIENT", "CACHING", "maybe"]);
    t.cmd(&mut a, &["GET", "untracked"]);
    t.cmd(&mut a, &["CLIENT", "CACHING", "yes"]);
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut a, &["GET", "tracked"]);
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut a, &["GET", "after"]);
    // CACHING yes lasts a whole transaction.
    t.cmd(&mut a, &["CLIENT", "CACHING", "yes"]);
    t.cmd(&mut a, &["MULTI"]);
    t.cmd(&mut a, &["GET", "intx1"]);
    t.cmd(&mut a, &["GET", "intx2"]);
    t.cmd(&mut a, &["EXEC"]);
    t.cmd(
        &mut w,
        &[
            "MSET",
            "untracked",
            "1",
            "tracked",
            "1",
            "after",
            "1",
            "intx1",
            "1",
            "intx2",
            "1",
        ],
    );
    let m = t.read(&mut a, "tracked");
    assert!(m.ends_with(b"$7\r\ntracked\r\n"), "{}", escape(&m));
    t.read(&mut a, "intx1");
    t.read(&mut a, "intx2");
    t.quiet(&mut a, "untracked keys");
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "OPTOUT"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "off"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "OPTOUT"]);
    t.cmd(&mut a, &["CLIENT", "CACHING", "yes"]);
    t.cmd(&mut a, &["CLIENT", "CACHING", "no"]);
    t.cmd(&mut a, &["CLIENT", "TRACKINGINFO"]);
    t.cmd(&mut a, &["GET", "skipped"]);
    t.cmd(&mut a, &["GET", "kept"]);
    t.cmd(&mut w, &["MSET", "skipped", "2", "kept", "2"]);
    t.read(&mut a, "kept");
    t.quiet(&mut a, "skipped");
}

#[test]
fn optin_optout_and_client_caching_match_redis() {
    same_on_both(optin_optout);
}

fn flush_expiry_blocking(s: &ServerProcess, t: &mut Transcript) {
    let p = s.port();
    let (mut a, mut w) = (RawConn::connect(p), RawConn::connect(p));
    hello3(&mut a);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on"]);
    // FLUSHALL by another client: a null.
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut w, &["FLUSHALL"]);
    let n = t.read(&mut a, "FLUSHALL null");
    assert_eq!(escape(&n), escape(b">2\r\n$10\r\ninvalidate\r\n_\r\n"));
    // Its own FLUSHDB inside a transaction: after the EXEC reply.
    t.cmd(&mut a, &["SET", "k", "1"]);
    t.cmd(&mut a, &["GET", "k"]);
    t.cmd(&mut a, &["MULTI"]);
    t.cmd(&mut a, &["FLUSHDB"]);
    t.cmd(&mut a, &["EXEC"]);
    t.read(&mut a, "own FLUSHDB null");
    // Lazy expiry during its own read: the reply, then the invalidation.
    t.cmd(&mut a, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    t.cmd(&mut a, &["SET", "x", "1"]);
    t.cmd(&mut a, &["SET", "y", "2", "PX", "50"]);
    t.cmd(&mut a, &["MGET", "x", "y"]);
    std::thread::sleep(Duration::from_millis(100));
    let r = t.cmd(&mut a, &["MGET", "x", "y"]);
    assert!(r.starts_with(b"*2\r\n"), "{}", escape(&r));
    t.read(&mut a, "y expired lazily");
    t.cmd(&mut a, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    // Active expiry of a key another client read.
    t.cmd(&mut w, &["SET", "e", "1", "PX", "50"]);
    t.cmd(&mut a, &["GET", "e"]);
    std::thread::sleep(Duration::from_millis(400));
    t.read(&mut a, "e expired");
    // A blocked BLMOVE served later: its reply, then the invalidation of its destination.
    t.cmd(&mut a, &["RPUSH", "dst", "a"]);
    t.cmd(&mut a, &["LRANGE", "dst", "0", "-1"]);
    a.send_cmd(&["BLMOVE", "src", "dst", "LEFT", "LEFT", "0"]);
    std::thread::sleep(Duration::from_millis(100));
    t.cmd(&mut w, &["RPUSH", "src", "foo"]);
    t.read(&mut a, "BLMOVE reply");
    t.read(&mut a, "dst invalidated");
    // The tracked key is deleted, renamed over, copied over, expired by EXPIRE 0, moved, changed.
    for (setup, change) in [
        (vec!["SET", "t1", "1"], vec!["GETDEL", "t1"]),
        (
            vec!["MSET", "t2", "1", "t2src", "x"],
            vec!["RENAME", "t2src", "t2"],
        ),
        (
            vec!["MSET", "t6", "1", "t6src", "x"],
            vec!["COPY", "t6src", "t6", "REPLACE"],
        ),
        (vec!["SET", "t3", "1"], vec!["EXPIRE", "t3", "0"]),
        (vec!["SET", "t4", "1"], vec!["MOVE", "t4", "1"]),
        (vec!["SET", "t5", "1"], vec!["SETRANGE", "t5", "0", "z"]),
    ] {
        t.cmd(&mut w, &setup);
        t.cmd(&mut a, &["GET", setup[1]]);
        t.cmd(&mut w, &change);
        t.read(&mut a, &change.join(" "));
    }
}

#[test]
fn flush_expiry_and_served_blocking_commands_match_redis() {
    same_on_both(flush_expiry_blocking);
}

fn table_limit(s: &ServerProcess, t: &mut Transcript) {
    let p = s.port();
    let (mut a, mut w, mut r) = (
        RawConn::connect(p),
        RawConn::connect(p),
        RawConn::connect(p),
    );
    let rid = t.id(&mut r, "redirect");
    t.cmd(&mut r, &["SUBSCRIBE", "__redis__:invalidate"]);
    t.cmd(&mut a, &["CLIENT", "TRACKING", "on", "REDIRECT", &rid]);
    for i in 0..150 {
        a.cmd(&["GET", &format!("key{i}")]);
    }
    let info = |w: &mut RawConn| {
        let s = String::from_utf8(w.cmd(&["INFO", "stats"])).unwrap();
        s.lines()
            .filter(|l| l.starts_with("tracking_total_"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let i = info(&mut w);
    t.note("INFO before", i.into_bytes());
    t.cmd(&mut w, &["CONFIG", "SET", "tracking-table-max-keys", "1"]);
    // 149 keys leave the table (100 on the first pass, the rest on the next), each with its
    // invalidation.
    let mut n = 0;
    while n < 149 {
        let m = r.read_reply();
        assert!(m.starts_with(b"*3\r\n$7\r\nmessage\r\n"), "{}", escape(&m));
        n += 1;
    }
    t.note("evicted", format!("{n}").into_bytes());
    t.quiet(&mut r, "one key left");
    let i = info(&mut w);
    t.note("INFO after", i.into_bytes());
    t.cmd(
        &mut w,
        &["CONFIG", "SET", "tracking-table-max-keys", "1000000"],
    );
    t.cmd(&mut w, &["CONFIG", "GET", "tracking-table-max-keys"]);
    let c = String::from_utf8(w.cmd(&["INFO", "clients"])).unwrap();
    let line = c
        .lines()
        .find(|l| l.starts_with("tracking_clients:"))
        .unwrap_or("")
        .to_string();
    t.note("INFO tracking_clients", line.into_bytes());
}

#[test]
fn tracking_table_max_keys_evicts_with_invalidations_like_redis() {
    same_on_both(table_limit);
}

/// Under `appendfsync always` a reply waits for the fsync of what it shows; the invalidation
/// of a key rides the same per-connection queue as replies, so a tracking client that is told
/// a key changed and reads it again sees the new value, and never sees the new value before
/// the invalidation.
#[test]
fn invalidation_precedes_the_new_value_under_appendfsync_always() {
    let sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let p = sb.port();
    let mut a = RawConn::connect(p);
    let mut w = RawConn::connect(p);
    hello3(&mut a);
    a.assert_cmd(&["CLIENT", "TRACKING", "on"], b"+OK\r\n");
    for i in 0..200 {
        let v = i.to_string();
        a.cmd(&["GET", "k"]);
        // Pipelined: the write and, right behind it, the tracking client's read.
        w.send_cmd(&["SET", "k", &v]);
        a.send_cmd(&["GET", "k"]);
        assert_eq!(w.read_reply(), b"+OK\r\n");
        // Either the read ran first (old value, then the invalidation) or after (the
        // invalidation first, then the new value); never the new value un-announced.
        let first = a.read_reply();
        if first.starts_with(b">") {
            assert_eq!(escape(&first), escape(INV_K));
            let got = a.read_reply();
            assert_eq!(
                escape(&got),
                escape(format!("${}\r\n{v}\r\n", v.len()).as_bytes())
            );
        } else {
            assert_ne!(
                escape(&first),
                escape(format!("${}\r\n{v}\r\n", v.len()).as_bytes()),
                "round {i}: the new value arrived before its invalidation"
            );
            assert_eq!(escape(&a.read_reply()), escape(INV_K));
        }
    }
}

/// RESET and a disconnection take a client out of tracking (INFO tracking_clients).
#[test]
fn reset_and_disconnect_stop_tracking() {
    let sb = StrongboxServer::start(&[]);
    let p = sb.port();
    let count = |c: &mut RawConn| {
        let s = String::from_utf8(c.cmd(&["INFO", "clients"])).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("tracking_clients:").map(str::to_string))
            .unwrap_or_default()
    };
    let mut w = RawConn::connect(p);
    let mut a = RawConn::connect(p);
    let mut b = RawConn::connect(p);
    hello3(&mut a);
    a.assert_cmd(
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p"],
        b"+OK\r\n",
    );
    b.assert_cmd(&["CLIENT", "TRACKING", "on"], b"+OK\r\n");
    assert_eq!(count(&mut w), "2");
    a.assert_cmd(&["RESET"], b"+RESET\r\n");
    assert_eq!(count(&mut w), "1");
    w.assert_cmd(&["SET", "p1", "x"], b"+OK\r\n");
    assert!(matches!(
        a.read_reply_within(QUIET),
        Err(ReadError::Timeout { .. })
    ));
    drop(b);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count(&mut w), "0");
    let s = String::from_utf8(w.cmd(&["INFO", "stats"])).unwrap();
    assert!(s.contains("tracking_total_prefixes:0\r\n"), "{s}");
}
