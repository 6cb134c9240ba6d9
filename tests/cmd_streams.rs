//! Streams against Debian's redis-server 7.0, byte for byte: every stream command and error text,
//! listpack node boundaries (approximate trims, XINFO's radix tree counters) over generated data,
//! RESP3 shapes, blocking XREAD/XREADGROUP with several connections, the logged forms (a
//! strongbox AOF replays to the same streams in strongbox and in redis-server), and the Redis
//! 7.0 AOF fixture with stream commands.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{escape, parse_frame, Frame, RawConn, RedisServer, StrongboxServer};

/// Split a line with redis-cli-like quoting (only `"..."` without escapes is needed here).
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Replace integers that look like unix-ms timestamps (seen/delivery times) by 0, at any depth.
fn mask_times(f: &Frame) -> Vec<u8> {
    if f.kind == b':' {
        let v: i64 = std::str::from_utf8(&f.raw[1..f.raw.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if v > 1_000_000_000_000 {
            return b":0\r\n".to_vec();
        }
        return f.raw.clone();
    }
    if f.children.is_empty() {
        return f.raw.clone();
    }
    let mut out = f.raw[..f.header_len].to_vec();
    for c in &f.children {
        out.extend(mask_times(c));
    }
    out
}

/// How one line of a script is compared.
fn compare_mode(line: &str) -> (&str, char) {
    match line.split_once(' ') {
        Some(("~", rest)) => (rest, '~'), // type and element count only (idle times)
        Some(("@", rest)) => (rest, '@'), // timestamps masked
        _ => (line, '='),
    }
}

fn shape(raw: &[u8]) -> Vec<u8> {
    match parse_frame(raw) {
        Ok(Some(f)) => format!("{}{}", f.kind as char, f.children.len()).into_bytes(),
        _ => raw.to_vec(),
    }
}

fn masked(raw: &[u8]) -> Vec<u8> {
    match parse_frame(raw) {
        Ok(Some(f)) => mask_times(&f),
        _ => raw.to_vec(),
    }
}

/// Run `script` (one command a line; `~ ` / `@ ` prefixes choose the comparison) on both
/// servers and fail listing every mismatch.
fn diff_script(name: &str, script: &str) {
    let sb = StrongboxServer::start(&[]);
    let rs = RedisServer::start(&[]);
    let mut a = sb.conn();
    let mut b = rs.conn();
    let mut bad = Vec::new();
    for (n, line) in script.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, mode) = compare_mode(line);
        let args = split(cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ra = a.cmd(&args);
        let rb = b.cmd(&args);
        let (na, nb) = match mode {
            '~' => (shape(&ra), shape(&rb)),
            '@' => (masked(&ra), masked(&rb)),
            _ => (ra.clone(), rb.clone()),
        };
        if na != nb {
            bad.push(format!(
                "{name}:{} {cmd}\n  redis:     {}\n  strongbox: {}",
                n + 1,
                escape(&rb),
                escape(&ra)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

const BASIC: &str = r#"
FLUSHALL
XADD s 1-1 f v
XADD s 1-1 f v
XADD s 0-0 f v
XADD s 0 f v
XADD s 1-* a b
XADD s 5-* a b c d
XADD s abc f v
XADD s 2
XADD s 3-1 f
XADD s NOMKSTREAM 4-1 f v
XADD nos NOMKSTREAM 4-1 f v
EXISTS nos
XADD s LIMIT 5 6-1 f v
XADD s LIMIT 0 6-2 f v
XADD s MAXLEN 5 LIMIT 5 6-3 f v
XADD s MAXLEN ~ 5 LIMIT 5 6-4 f v
XADD s MAXLEN -1 6-5 f v
XADD s MAXLEN 5 MINID 1 6-5 f v
XADD s LIMIT -1 MAXLEN 1 6-6 f v
XADD s MINID bad 6-6 f v
XADD s MAXLEN x 6-6 f v
XADD s 18446744073709551615-18446744073709551615 f v
XADD s 18446744073709551615-* f v
XADD s * f v
DEL s
XADD s 1-1 a 1
XADD s 2-1 b 2
XADD s 3-1 c 3 d 4
XADD s 5-* e 5
XADD s 5-* e 5
XRANGE s - +
XRANGE s - + COUNT 2
XRANGE s - + COUNT 0
XRANGE s - + COUNT -1
XRANGE s (1-1 +
XRANGE s - (5-1
XRANGE s (- +
XRANGE s - (0-0
XRANGE s (18446744073709551615-18446744073709551615 +
XRANGE s 1 1
XRANGE s 5 +
XRANGE s 5-1 2
XRANGE s - + FOO
XRANGE s - + COUNT
XRANGE s - + COUNT x
XRANGE s x +
XRANGE s - x
XREVRANGE s + -
XREVRANGE s + - COUNT 1
XREVRANGE s (5-2 -
XREVRANGE s x -
XREVRANGE nokey + -
XRANGE nokey - +
XLEN s
XLEN nokey
SET str x
XLEN str
XADD str * f v
XRANGE str - +
XDEL str 1-1
XTRIM str MAXLEN 1
XSETID str 1-1
XINFO STREAM str
XGROUP CREATE str g $
XREAD STREAMS str 0
XDEL s 1-1 5-1 9-9
XDEL s bad
XDEL s 2-1 bad
XDEL nokey 1-1
XLEN s
XINFO STREAM s
XTRIM s MAXLEN 2
XTRIM s
XTRIM s LIMIT 1 MAXLEN 1
XTRIM s MAXLEN 1 LIMIT 1
XTRIM s FOO 1
XTRIM s MAXLEN = 1
XTRIM nokey MAXLEN 1
XINFO STREAM s
XSETID s 1-0
XSETID s 100-0
XSETID s 100-0 ENTRIESADDED 0
XSETID s 100-0 ENTRIESADDED -1
XSETID s 100-0 MAXDELETEDID 200-0
XSETID s 100-0 ENTRIESADDED 50 MAXDELETEDID 50-0
XSETID s 100-0 FOO
XSETID s 100-0 ENTRIESADDED
XSETID s bad
XSETID nokey 1-1
XSETID s 49-0
XINFO STREAM s
XINFO STREAM s FULL
XADD e 1-1 a b
XDEL e 1-1
XINFO STREAM e
XADD t 1-1 a b
XADD t 2-1 a b
XTRIM t MAXLEN 0
XINFO STREAM t
XADD t 3-1 a b
XTRIM t MINID 10
XINFO STREAM t
XADD t 11-1 a b
XADD t 12-1 a b
XTRIM t MINID 12
XRANGE t - +
"#;

const GROUPS: &str = r#"
FLUSHALL
XGROUP HELP
XGROUP help
XGROUP HELP x
XGROUP FOO
XGROUP CREATE s
XGROUP DESTROY s
XGROUP CREATE s g $
XGROUP CREATE s g $ MKSTREAM
XGROUP CREATE s g $ MKSTREAM
XGROUP CREATE s g2 0 ENTRIESREAD 5
XGROUP CREATE s g3 0 ENTRIESREAD -2
XGROUP CREATE s g3 0 ENTRIESREAD x
XGROUP CREATE s g3 0 FOO
XGROUP CREATE s g3 bad
XGROUP CREATE s g3 -
XGROUP CREATE s g3 0 MKSTREAM MKSTREAM MKSTREAM MKSTREAM
XINFO GROUPS s
XADD s 1-1 a 1
XADD s 2-1 b 2
XADD s 3-1 c 3
XINFO GROUPS s
XGROUP SETID s g 0
XGROUP SETID s nog 0
XGROUP SETID s g 0 ENTRIESREAD 1
XGROUP SETID s g 0 ENTRIESREAD
XGROUP SETID s g 0 FOO 1
XGROUP SETID s g -
XGROUP SETID s g +
XGROUP SETID s g $
XINFO GROUPS s
XGROUP SETID s g 0
XINFO GROUPS s
XGROUP CREATECONSUMER s g alice
XGROUP CREATECONSUMER s g alice
XGROUP CREATECONSUMER s nog alice
XGROUP CREATECONSUMER s g
XGROUP DELCONSUMER s g bob
XGROUP DESTROY s g3
XGROUP DESTROY s g2
XGROUP DESTROY nokey g2
XGROUP SETID nokey g 0
XREADGROUP GROUP g bob COUNT 1 STREAMS s >
XREADGROUP GROUP g bob STREAMS s >
XREADGROUP GROUP g bob STREAMS s >
XREADGROUP GROUP g bob STREAMS s 0
XREADGROUP GROUP g bob COUNT 1 STREAMS s (1-1
XREADGROUP GROUP g nobody STREAMS s 0
XREADGROUP GROUP g bob STREAMS s $
XREADGROUP GROUP nog bob STREAMS s >
XREADGROUP GROUP g bob STREAMS nokey >
XREADGROUP STREAMS s >
XREADGROUP GROUP g bob STREAMS s
XREADGROUP GROUP g bob STREAMS s > x
XREAD GROUP g bob STREAMS s >
XREAD NOACK STREAMS s 0
XREAD STREAMS s >
XREAD STREAMS s 0
XREAD COUNT 1 STREAMS s 0
XREAD COUNT 1 STREAMS s nokey 0 0
XREAD STREAMS s $
XREAD STREAMS s 3-1
XREAD STREAMS s bad
XREAD BLOCK -1 STREAMS s 0
XREAD BLOCK x STREAMS s 0
XREAD FOO STREAMS s 0
XREAD COUNT 2
XPENDING s g
~ XPENDING s g - + 10
~ XPENDING s g - + 10 bob
XPENDING s g - + 10 nobody
XPENDING s g IDLE 100000000 - + 10
XPENDING s g IDLE 100000000 - +
XPENDING s g IDLE x - + 10
XPENDING s g - + x
XPENDING s g ( + 10
XPENDING s g - (0-0 10
XPENDING s nog
XPENDING nokey g
XPENDING str g
XPENDING s g - +
~ XPENDING s g - + 10 bob x y
~ XPENDING s g (1-1 + 10
@ XINFO GROUPS s
@ XINFO STREAM s FULL
XACK s g 1-1 9-9
XACK s g bad
XACK s nog 1-1
XACK nokey g bad
XPENDING s g
XCLAIM s g alice 0 2-1
XCLAIM s g alice 0 2-1 JUSTID
XCLAIM s g alice 0 2-1 RETRYCOUNT 7 JUSTID
XCLAIM s g alice 100000000 2-1 JUSTID
XCLAIM s g alice 0 1-1 FORCE JUSTID
XCLAIM s g alice 0 9-9 FORCE JUSTID
XCLAIM s g alice 0 2-1 FOO
XCLAIM s g alice x 2-1
XCLAIM s g alice 0 2-1 IDLE x
XCLAIM s g alice 0 2-1 TIME x
XCLAIM s g alice 0 2-1 RETRYCOUNT x
XCLAIM s g alice 0 2-1 LASTID x
XCLAIM s nog alice 0 2-1
XCLAIM nokey g alice 0 2-1
XCLAIM s g alice 0 2-1 LASTID 10-0 JUSTID
XCLAIM s g bob 0 2-1 IDLE 5000 RETRYCOUNT 3
@ XINFO GROUPS s
XPENDING s g
~ XPENDING s g IDLE 4000 - + 10
XDEL s 2-1
XCLAIM s g alice 0 2-1 JUSTID
XPENDING s g
XADD s 4-1 d 4
XADD s 5-1 e 5
XGROUP SETID s g 3-1
XREADGROUP GROUP g carol STREAMS s >
XDEL s 4-1
XREADGROUP GROUP g carol STREAMS s 0
XAUTOCLAIM s g dave 0 0
XAUTOCLAIM s g dave 0 0 JUSTID
XAUTOCLAIM s g dave 0 0 COUNT 1
XAUTOCLAIM s g dave 0 0 COUNT 0
XAUTOCLAIM s g dave 0 0 FOO
XAUTOCLAIM s g dave x 0
XAUTOCLAIM s g dave 0 x
XAUTOCLAIM s g dave 0 (0 COUNT 1 JUSTID
XAUTOCLAIM s nog dave 0 0
XAUTOCLAIM nokey g dave 0 0
XAUTOCLAIM s g dave 100000000 0
XPENDING s g
@ XINFO GROUPS s
XREADGROUP GROUP g eve NOACK STREAMS s >
XADD s 6-1 f 6
XREADGROUP GROUP g eve NOACK STREAMS s >
@ XINFO GROUPS s
XPENDING s g
XGROUP DELCONSUMER s g dave
XPENDING s g
XINFO HELP
XINFO help
XINFO HELP x
XINFO FOO
XINFO STREAM
XINFO GROUPS
XINFO CONSUMERS s
XINFO STREAM nokey
XINFO STREAM str
@ XINFO STREAM s FULL COUNT 1
@ XINFO STREAM s FULL COUNT 0
@ XINFO STREAM s FULL COUNT -5
XINFO STREAM s FULL COUNT x
XINFO STREAM s FULL FOO 1
XINFO STREAM s FOO
XINFO STREAM s FULL 1 2 3
XINFO GROUPS nokey
XINFO CONSUMERS s nog
~ XINFO CONSUMERS s g
XGROUP DESTROY s g
XINFO GROUPS s
XADD lag 1-1 a 1
XADD lag 2-1 a 1
XADD lag 3-1 a 1
XGROUP CREATE lag g1 0
XGROUP CREATE lag g2 $
XGROUP CREATE lag g3 1-1
XGROUP CREATE lag g4 2-1 ENTRIESREAD 2
XINFO GROUPS lag
XDEL lag 2-1
XINFO GROUPS lag
XREADGROUP GROUP g1 c COUNT 1 STREAMS lag >
XINFO GROUPS lag
XDEL lag 1-1
XINFO GROUPS lag
XADD lag 4-1 a 1
XREADGROUP GROUP g3 c STREAMS lag >
XINFO GROUPS lag
~ HELLO 3
XREAD STREAMS lag 0
XREAD STREAMS lag nokey 0 0
XREAD STREAMS lag 9-9
XINFO STREAM lag
XGROUP CREATE lag r3 0
XREADGROUP GROUP r3 c STREAMS lag >
XREADGROUP GROUP r3 c STREAMS lag 0
XINFO GROUPS lag
@ XINFO STREAM lag FULL
XPENDING lag r3
XRANGE lag - + COUNT 0
XAUTOCLAIM lag r3 d 0 0 JUSTID
XPENDING lag nog
XINFO STREAM nokey
"#;

#[test]
fn commands_match_redis() {
    diff_script("basic", BASIC);
}

#[test]
fn consumer_groups_match_redis() {
    diff_script("groups", GROUPS);
}

/// A small deterministic generator (no crate needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// Entries of many shapes and sizes: node boundaries (bytes and entry count), approximate and
/// exact trims, deletions and XINFO's radix tree counters must all agree with Redis.
#[test]
fn node_boundaries_and_trims_match_redis() {
    let mut r = Lcg(7);
    let mut s = String::from("FLUSHALL\n");
    let mut ms: u64 = 1;
    for k in 0..3 {
        let key = format!("n{k}");
        for i in 0..600 {
            ms += [0, 1, 1, 2, 50, 300, 70000][(r.next() % 7) as usize];
            let seq = r.next() % 4;
            let nf = [1, 1, 2, 3][(r.next() % 4) as usize];
            let mut fields = Vec::new();
            for _ in 0..nf {
                let f = r.pick(&["a", "b", "field", "12", "-5"]);
                let len = if k == 2 {
                    [1, 3, 10, 60, 70, 200, 5000][(r.next() % 7) as usize]
                } else {
                    [1, 3, 10][(r.next() % 3) as usize]
                };
                let v = match r.next() % 3 {
                    0 => "x".repeat(len),
                    1 => format!("{}", r.next() as i64 - (1 << 30)),
                    _ => "007".to_string(),
                };
                fields.push(format!("{f} {v}"));
            }
            s.push_str(&format!("XADD {key} {ms}-{seq} {}\n", fields.join(" ")));
            ms += 1;
            if i % 97 == 0 {
                s.push_str(&format!("XINFO STREAM {key}\n"));
            }
            if i % 13 == 0 {
                let back = 1 + r.next() % 400;
                s.push_str(&format!(
                    "XDEL {key} {}-{}\n",
                    ms.saturating_sub(back),
                    r.next() % 4
                ));
            }
        }
        for c in [
            format!("XINFO STREAM {key}"),
            format!("XTRIM {key} MAXLEN ~ 450"),
            format!("XINFO STREAM {key}"),
            format!("XTRIM {key} MAXLEN ~ 10 LIMIT 150"),
            format!("XINFO STREAM {key}"),
            format!("XTRIM {key} MINID ~ {}", ms - 20000),
            format!("XINFO STREAM {key}"),
            format!("XTRIM {key} MAXLEN 300"),
            format!("XINFO STREAM {key}"),
            format!("XADD {key} MAXLEN ~ 200 {} a b", ms + 1_000_000),
            format!("XLEN {key}"),
            format!("XTRIM {key} MINID {}", ms - 5000),
            format!("XINFO STREAM {key}"),
            format!("XRANGE {key} - + COUNT 5"),
            format!("XREVRANGE {key} + - COUNT 5"),
        ] {
            s.push_str(&c);
            s.push('\n');
        }
    }
    diff_script("nodes", &s);
}

fn read_within(c: &mut RawConn, ms: u64) -> Vec<u8> {
    c.read_reply_within(Duration::from_millis(ms))
        .unwrap_or_else(|e| format!("no reply: {e}").into_bytes())
}

/// One step of a multi-connection script.
enum Step {
    /// Send on connection i and read the reply.
    Cmd(usize, &'static str),
    /// Send on connection i without reading (the client blocks).
    Send(usize, &'static str),
    /// Read a reply on connection i.
    Read(usize),
    Sleep(u64),
}

fn run_steps(port: u16, steps: &[Step]) -> Vec<String> {
    let mut conns: Vec<RawConn> = (0..6).map(|_| RawConn::connect(port)).collect();
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Cmd(i, c) => {
                let a = split(c);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                out.push(format!("{c} => {}", escape(&conns[*i].cmd(&a))));
            }
            Step::Send(i, c) => {
                let a = split(c);
                conns[*i].send_cmd(&a);
            }
            Step::Read(i) => out.push(format!(
                "read {i} => {}",
                escape(&read_within(&mut conns[*i], 2000))
            )),
            Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
    out
}

#[test]
fn blocking_reads_match_redis() {
    use Step::*;
    let steps = [
        Cmd(0, "FLUSHALL"),
        Cmd(0, "XADD s 1-1 a 1"),
        Cmd(0, "XGROUP CREATE s g $"),
        Send(1, "XREAD BLOCK 0 STREAMS s $"),
        Sleep(20),
        Send(2, "XREADGROUP GROUP g bob BLOCK 0 STREAMS s >"),
        Sleep(20),
        Send(3, "XREAD BLOCK 0 STREAMS s nokey $ 0"),
        Sleep(20),
        Send(4, "XREAD BLOCK 100 STREAMS s $"),
        Sleep(50),
        Cmd(0, "XADD s 2-1 b 2"),
        Read(1),
        Read(2),
        Read(3),
        Sleep(150),
        Read(4),
        Cmd(0, "XPENDING s g"),
        Cmd(0, "XRANGE s - +"),
        // FIFO: two readers of the group, one entry each.
        Send(1, "XREADGROUP GROUP g c1 COUNT 1 BLOCK 0 STREAMS s >"),
        Sleep(30),
        Send(2, "XREADGROUP GROUP g c2 COUNT 1 BLOCK 0 STREAMS s >"),
        Sleep(50),
        Cmd(0, "XADD s 3-1 c 3"),
        Read(1),
        Cmd(0, "XADD s 4-1 d 4"),
        Read(2),
        // A destroyed group answers the blocked reader with NOGROUP.
        Send(2, "XREADGROUP GROUP g bob BLOCK 0 STREAMS s >"),
        Sleep(50),
        Cmd(0, "XGROUP DESTROY s g"),
        Read(2),
        // Blocked XREAD with a timeout and NOACK readers.
        Cmd(0, "XGROUP CREATE s g2 $"),
        Send(3, "XREADGROUP GROUP g2 n NOACK BLOCK 0 STREAMS s >"),
        Sleep(50),
        Cmd(0, "XADD s 5-1 e 5"),
        Read(3),
        Cmd(0, "XPENDING s g2"),
        Cmd(0, "XINFO GROUPS s"),
        Cmd(0, "XREAD BLOCK 50 STREAMS s $"),
        Cmd(0, "XREADGROUP GROUP g2 n BLOCK 50 STREAMS s >"),
        // No blocking inside MULTI.
        Cmd(0, "MULTI"),
        Cmd(0, "XREAD BLOCK 0 STREAMS s $"),
        Cmd(0, "XREADGROUP GROUP g2 n BLOCK 0 STREAMS s >"),
        Cmd(0, "EXEC"),
        // RESP3 blocked reply is a map.
        Cmd(5, "HELLO 3"),
        Send(5, "XREAD BLOCK 0 STREAMS s $"),
        Sleep(50),
        Cmd(0, "XADD s 6-1 f 6"),
        Read(5),
    ];
    let sb = StrongboxServer::start(&[]);
    let rs = RedisServer::start(&[]);
    let a = run_steps(sb.port(), &steps);
    let b = run_steps(rs.port(), &steps);
    let mut bad = Vec::new();
    for (x, y) in a.iter().zip(b.iter()) {
        // HELLO's reply names the client id, which differs.
        if x != y && !x.starts_with("HELLO") {
            bad.push(format!("  redis:     {y}\n  strongbox: {x}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn fixtures() -> PathBuf {
    common::repo_root().join("../shared/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The Redis 7.0 AOF fixture (XADD with explicit IDs, XGROUP CREATE, XCLAIM … FORCE JUSTID
/// LASTID, XDEL) loads, and its streams read back as in redis-server loading the same files.
#[test]
fn redis_aof_fixture_streams_load_like_in_redis() {
    let src = fixtures().join("redis-7.0-aof-plain");
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    copy_dir(&src, &d1.path().join("appendonlydir"));
    copy_dir(&src, &d2.path().join("appendonlydir"));
    let sb = StrongboxServer::start_in(d1.path(), &["--appendonly", "yes"]);
    let rs = RedisServer::start_in(d2.path(), &["--appendonly", "yes"]);
    let mut a = sb.conn();
    let mut b = rs.conn();
    let r = a.cmd(&["XRANGE", "stream:s1", "-", "+"]);
    assert!(r.starts_with(b"*3\r\n"), "{}", escape(&r));
    for cmd in [
        &["XRANGE", "stream:s1", "-", "+"][..],
        &["XRANGE", "stream:empty", "-", "+"],
        &["XINFO", "STREAM", "stream:s1"],
        &["XINFO", "STREAM", "stream:empty"],
        &["XINFO", "GROUPS", "stream:s1"],
        &["XPENDING", "stream:s1", "workers"],
        &["XINFO", "STREAM", "stream:s1", "FULL"],
    ] {
        let (x, y) = (masked(&a.cmd(cmd)), masked(&b.cmd(cmd)));
        assert_eq!(escape(&x), escape(&y), "{cmd:?}");
    }
}

/// What strongbox logs replays to the same streams, in strongbox after a restart and in
/// redis-server 7.0 loading strongbox's AOF directory (consumer seen-times aside, which both
/// servers set at load time).
#[test]
fn logged_forms_replay_identically() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes"]);
    let mut c = sb.conn();
    for i in 0..300 {
        c.cmd(&["XADD", "big", "*", "f", &format!("v{i}")]);
    }
    for l in [
        "XADD s * a 1",
        "XADD s * b 2",
        "XADD s MAXLEN ~ 1 * c 3",
        "XGROUP CREATE s g 0",
        "XREADGROUP GROUP g alice COUNT 2 STREAMS s >",
        "XREADGROUP GROUP g bob NOACK STREAMS s >",
        "XADD s * d 4",
        "XADD s * e 5",
        "XREADGROUP GROUP g carol STREAMS s >",
        "XCLAIM s g dave 0 0-1 FORCE",
        "XAUTOCLAIM s g erin 0 0 COUNT 2",
        "XCLAIM s g frank 0 1-1 LASTID 99999999999999-0",
        "XGROUP CREATECONSUMER s g zed",
        "XGROUP DELCONSUMER s g bob",
        "XTRIM s MINID ~ 0",
        "XGROUP CREATE s g2 $",
        "XGROUP SETID s g2 0 ENTRIESREAD 0",
        "XREADGROUP GROUP g2 x NOACK COUNT 1 STREAMS s >",
        "XSETID s 99999999999999-5 ENTRIESADDED 50 MAXDELETEDID 10-0",
        "XADD big MAXLEN ~ 50 * f v",
        "XADD big MINID ~ 0-1 * f v",
        "XTRIM big MAXLEN ~ 20",
        "XADD big MAXLEN 150 * f v",
        "XDEL big 0-1",
    ] {
        let a = split(l);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let r = c.cmd(&a);
        assert!(!r.starts_with(b"-"), "{l}: {}", escape(&r));
    }
    let probe = |c: &mut RawConn| -> Vec<String> {
        ["s", "big"]
            .iter()
            .map(|k| {
                let r = c.cmd(&["XINFO", "STREAM", k, "FULL", "COUNT", "0"]);
                // seen-time is set when the log is replayed.
                escape(&masked(&r))
            })
            .collect()
    };
    let before = probe(&mut c);
    drop(c);
    sb.stop();
    let dir = sb.dir().to_path_buf();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(
        &dir.join("appendonlydir"),
        &copy.path().join("appendonlydir"),
    );
    sb.restart();
    let after = probe(&mut sb.conn());
    assert_eq!(before, after, "strongbox after restart");
    let rs = RedisServer::start_in(copy.path(), &["--appendonly", "yes"]);
    let in_redis = probe(&mut rs.conn());
    assert_eq!(before, in_redis, "redis-server loading strongbox's AOF");
}
