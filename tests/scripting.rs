//! Lua scripts and the log: a script's writes are logged as the commands it ran, wrapped in
//! MULTI/EXEC (Redis 7's effects replication), so recovery applies a script whole and replays
//! no Lua, and redis-server 7.0 loads the directory. Replies and errors are compared with
//! redis-server's byte for byte.

mod common;

use std::path::Path;

use common::{RawConn, RedisServer, StrongboxServer};

fn con(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn incr_files(dir: &Path) -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

const SCRIPT: &str = "
for i = 1, tonumber(ARGV[1]) do
  redis.call('RPUSH', KEYS[1], i)
end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 1000)
return redis.call('LLEN', KEYS[1])
";

#[test]
fn a_scripts_writes_are_logged_as_one_transaction_and_survive_kill9() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = con(sb.port());
    for round in 1..=3i64 {
        let n: i64 = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(2)
            .arg("list")
            .arg("runs")
            .arg(10)
            .query(&mut c)
            .unwrap();
        assert_eq!(n, round * 10);
    }
    // A script that fails half-way keeps the writes before the error (as Redis: no rollback),
    // and they are logged.
    redis::cmd("SET")
        .arg("s")
        .arg("text")
        .query::<()>(&mut c)
        .unwrap();
    let e = redis::cmd("EVAL")
        .arg("redis.call('SET', 'before-error', 1); redis.call('INCR', 's'); redis.call('SET', 'after-error', 1)")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("not an integer"), "{e}");
    // A read-only script logs nothing.
    let before_ro = incr_files(sb.dir()).len();
    let n: i64 = redis::cmd("EVAL_RO")
        .arg("return redis.call('LLEN', KEYS[1])")
        .arg(1)
        .arg("list")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 30);
    drop(c);

    let log = incr_files(sb.dir());
    assert_eq!(log.len(), before_ro, "a read-only script was logged");
    let text = String::from_utf8_lossy(&log);
    assert_eq!(
        text.matches("$4\r\nEVAL").count(),
        0,
        "EVAL itself was logged"
    );
    // One MULTI/EXEC per run of SCRIPT; the failed script wrote one command before its
    // error, which is logged bare (a unit of one command is not wrapped, as in Redis 7).
    assert_eq!(text.matches("$5\r\nMULTI\r\n").count(), 3, "{text}");
    assert_eq!(text.matches("$4\r\nEXEC\r\n").count(), 3);
    assert!(text.contains("before-error"), "{text}");
    // EXPIRE is logged as an absolute PEXPIREAT, as for any client.
    assert!(text.contains("PEXPIREAT"), "{text}");

    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    let len: i64 = redis::cmd("LLEN").arg("list").query(&mut c).unwrap();
    assert_eq!(len, 30);
    let runs: i64 = redis::cmd("GET").arg("runs").query(&mut c).unwrap();
    assert_eq!(runs, 3);
    let ttl: i64 = redis::cmd("TTL").arg("runs").query(&mut c).unwrap();
    assert!(ttl > 900, "{ttl}");
    let kept: Option<i64> = redis::cmd("GET").arg("before-error").query(&mut c).unwrap();
    let after: Option<i64> = redis::cmd("GET").arg("after-error").query(&mut c).unwrap();
    assert_eq!((kept, after), (Some(1), None));
    drop(c);
    sb.stop();

    // redis-server 7.0 loads the directory to the same values.
    let d2 = tempfile::tempdir().unwrap();
    let to = d2.path().join("appendonlydir");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(sb.dir().join("appendonlydir")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let rs = RedisServer::start_in(d2.path(), &["--appendonly", "yes"]);
    let mut rc = con(rs.port());
    let len: i64 = redis::cmd("LLEN").arg("list").query(&mut rc).unwrap();
    let runs: i64 = redis::cmd("GET").arg("runs").query(&mut rc).unwrap();
    assert_eq!((len, runs), (30, 3));
}

/// The same scripts against both servers: replies and error texts byte for byte.
#[test]
fn script_replies_and_errors_match_redis() {
    let sb = StrongboxServer::start(&[]);
    let rs = RedisServer::start(&[]);
    let scripts: &[(&str, &[&str])] = &[
        ("return {1, 'two', {3, {4}}, nil, 5}", &["0"]),
        ("return 3.99", &["0"]),
        ("return -2.5", &["0"]),
        ("return true", &["0"]),
        ("return false", &["0"]),
        ("return nil", &["0"]),
        (
            "return {KEYS[1], KEYS[2], ARGV[1], #ARGV}",
            &["2", "a", "b", "c", "d"],
        ),
        ("return redis.status_reply('FINE')", &["0"]),
        ("return redis.error_reply('My Error')", &["0"]),
        ("return redis.error_reply('-CODE text')", &["0"]),
        ("return {err='plain'}", &["0"]),
        ("return {ok='fine'}", &["0"]),
        ("return redis.call('SET', 'k', 1.5)", &["0"]),
        ("return redis.call('GET', 'k')", &["0"]),
        ("return redis.call('GET', 'nokey')", &["0"]),
        ("return redis.call('INCR', 'k')", &["0"]),
        ("return redis.pcall('INCR', 'k')", &["0"]),
        ("return nosuch()", &["0"]),
        ("x = 1", &["0"]),
        ("error('boom')", &["0"]),
        ("return redis.call('nosuchcmd')", &["0"]),
        ("return redis.call('GET')", &["0"]),
        ("return redis.call()", &["0"]),
        ("return redis.call('GET', {})", &["0"]),
        ("return redis.call('EVAL', 'return 1', '0')", &["0"]),
        ("return redis.sha1hex('strongbox')", &["0"]),
        ("return (", &["0"]),
        ("return 1", &["-1"]),
        ("return 1", &["2", "a"]),
        ("return 1", &["x"]),
        (
            "redis.call('HSET', 'h', 'a', '1'); return redis.call('HGETALL', 'h')",
            &["0"],
        ),
        ("return redis.call('ZADD', 'z', 1, 'm')", &["0"]),
        ("return redis.call('ZSCORE', 'z', 'm')", &["0"]),
        ("return redis.call('PING')", &["0"]),
        // Blocking commands: BLPOP & co. are noscript; BLMPOP and XREAD run without blocking;
        // XREAD's BLOCK option is refused.
        ("return redis.pcall('BLPOP', 'nolist', 0)", &["0"]),
        (
            "return redis.call('BLMPOP', 0, 1, 'nolist', 'LEFT')",
            &["0"],
        ),
        (
            "redis.call('RPUSH', 'bl', 'a'); return redis.call('BLMPOP', 0, 1, 'bl', 'LEFT')",
            &["0"],
        ),
        (
            "return redis.pcall('xread', 'BLOCK', 0, 'STREAMS', 's', '$')",
            &["0"],
        ),
        (
            "return redis.call('XREAD', 'COUNT', 1, 'STREAMS', 's', '0')",
            &["0"],
        ),
        // Raised values, as Redis's error handler words them.
        ("error(redis.error_reply('CUSTOM thing'))", &["0"]),
        ("error({err='X'})", &["0"]),
        ("error('multi\nline')", &["0"]),
        ("local function f() error('deep') end f()", &["0"]),
        ("error(42)", &["0"]),
        ("local a = 1\nlocal b = nosuch", &["0"]),
        // The sandbox (Redis 7's read-only environment).
        ("redis.sha1hex = function() return 'p' end", &["0"]),
        ("string.rep = nil", &["0"]),
        ("return string.rep('a', 3)", &["0"]),
        ("return getmetatable('')", &["0"]),
        ("return type(newproxy)", &["0"]),
        ("return type(getfenv)", &["0"]),
        (
            "return tostring(loadstring(string.dump(function() return 1 end)))",
            &["0"],
        ),
        // Numbers as arguments: 17 significant digits, integers whole.
        ("return redis.call('SET', 'n', 1125899906842624)", &["0"]),
        ("return redis.call('GET', 'n')", &["0"]),
        (
            "redis.call('SET', 'f', 0.1); return redis.call('GET', 'f')",
            &["0"],
        ),
        (
            "redis.call('SET', 'f', -1e-7); return redis.call('GET', 'f')",
            &["0"],
        ),
        // Blocking commands and, in read-only scripts, PUBLISH are refused; numbers out of
        // the integer range answer as Redis's C cast does.
        ("return redis.call('BLPOP', 'nolist', 0)", &["0"]),
        ("return 1e20", &["0"]),
        ("return 0/0", &["0"]),
        // cjson and cmsgpack (BullMQ's scripts use both).
        ("return cjson.encode({1, 2, {a = 'x/y'}})", &["0"]),
        ("return cjson.encode({})", &["0"]),
        ("return cjson.encode({a = 1.5})", &["0"]),
        ("return cjson.encode(0.1)", &["0"]),
        ("return cjson.encode('a\"b\\n')", &["0"]),
        (
            "return cjson.decode('[1,2,{\"a\":null}]')[3].a == cjson.null and 1 or 0",
            &["0"],
        ),
        (
            "return cjson.decode('{\"k\":[true,false,\"s\"]}').k",
            &["0"],
        ),
        ("return cmsgpack.unpack(cmsgpack.pack({1, 2, 3}))", &["0"]),
        (
            "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {k = 'v'}))}",
            &["0"],
        ),
        (
            "local t = cmsgpack.unpack(cmsgpack.pack({k = 'v'})); return t.k",
            &["0"],
        ),
        ("cjson.encode = nil", &["0"]),
        // A status reply stays one line.
        ("return {ok='OK\r\n:666'}", &["0"]),
    ];
    let mut a = RawConn::connect(sb.port());
    let mut b = RawConn::connect(rs.port());
    for (script, rest) in scripts {
        let mut args = vec!["EVAL", script];
        args.extend_from_slice(rest);
        let ra = a.cmd(&args);
        let rb = b.cmd(&args);
        assert_eq!(
            String::from_utf8_lossy(&ra),
            String::from_utf8_lossy(&rb),
            "EVAL {script:?} {rest:?}"
        );
    }
    for args in [
        &["SCRIPT", "LOAD", "return 'cached'"][..],
        &["EVALSHA", "E4C4B8E5C8A6E6B5D6F6C3E1C9E1B8B5A4E7C0D1", "0"],
        &[
            "SCRIPT",
            "EXISTS",
            "d95f4b0ba7e3e4b5b8fa4bc2d1d4d5d6f7a8b9c0",
            "nope",
        ],
        &["SCRIPT", "KILL"],
        &["SCRIPT", "FLUSH", "SOMETIMES"],
        &["SCRIPT", "NOSUCH"],
        &["SCRIPT", "LOAD"],
        &["SCRIPT", "EXISTS"],
        &["SCRIPT", "FLUSH", "ASYNC", "X"],
        &["SCRIPT", "KILL", "X"],
        &["EVAL_RO", "return redis.call('DEL', 'k')", "0"],
        &["EVAL_RO", "return redis.call('PUBLISH', 'ch', 'm')", "0"],
    ] {
        assert_eq!(
            String::from_utf8_lossy(&a.cmd(args)),
            String::from_utf8_lossy(&b.cmd(args)),
            "{args:?}"
        );
    }
}

/// A script that never ends is stopped at `busy-reply-threshold` (no other client is served
/// while it runs, so it cannot be killed from outside); its writes so far are kept, as after
/// any script error, and the server answers again. A reply table that contains itself is cut
/// with Redis's "reached lua stack limit" instead of recursing forever.
#[test]
fn a_runaway_script_is_stopped_and_the_server_answers() {
    let sb = StrongboxServer::start(&["--busy-reply-threshold", "200"]);
    let mut c = con(sb.port());
    let started = std::time::Instant::now();
    let e = redis::cmd("EVAL")
        .arg("redis.call('SET', 'x', 1); while true do end")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("busy-reply-threshold"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let x: i64 = redis::cmd("GET").arg("x").query(&mut c).unwrap();
    assert_eq!(x, 1);
    // (read as bytes: the reply nests deeper than the test harness's RESP reader allows)
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sb.port())).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let script = "local t = {}; t[1] = t; return t";
    s.write_all(
        format!(
            "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n",
            script.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !got.ends_with(b"+PONG\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.ends_with("*1\r\n-ERR reached lua stack limit\r\n+PONG\r\n"),
        "{}",
        &text[text.len().saturating_sub(100)..]
    );
}

/// What Strongbox keeps from scripts that Redis would too, where it differs in how: globals do
/// not outlive a script, `rename-command` applies inside scripts, a RESP3 caller's script
/// still sees RESP2 replies, and a script that catches the time limit's error still ends.
#[test]
fn scripts_are_isolated_and_bounded() {
    let sb = StrongboxServer::start(&[
        "--busy-reply-threshold",
        "200",
        "--rename-command",
        "FLUSHALL",
        "",
    ]);
    let mut a = RawConn::connect(sb.port());
    // rawset on the script's own environment does not reach the next script.
    a.cmd(&["EVAL", "rawset(_G, 'leak', 1); return 1", "0"]);
    let r = a.cmd(&["EVAL", "return leak", "0"]);
    assert!(
        String::from_utf8_lossy(&r).contains("nonexistent global variable 'leak'"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let r = a.cmd(&["EVAL", "return redis.call('FLUSHALL')", "0"]);
    assert!(
        String::from_utf8_lossy(&r).starts_with("-ERR Unknown Redis command called from script"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    a.cmd(&["ZADD", "z", "1", "m"]);
    a.cmd(&["HELLO", "3"]);
    let r = a.cmd(&[
        "EVAL",
        "local r = redis.call('ZRANGE', 'z', 0, -1, 'WITHSCORES'); return {#r, type(r[1])}",
        "0",
    ]);
    assert_eq!(
        r,
        b"*2\r\n:2\r\n$6\r\nstring\r\n",
        "{}",
        String::from_utf8_lossy(&r)
    );
    let started = std::time::Instant::now();
    let r = a.cmd(&[
        "EVAL",
        "while true do pcall(function() while true do end end) end",
        "0",
    ]);
    assert!(
        String::from_utf8_lossy(&r).contains("busy-reply-threshold"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let r = a.cmd(&["EVAL", "return type(coroutine)", "0"]);
    assert!(String::from_utf8_lossy(&r).contains("nonexistent global variable"));
    assert_eq!(a.cmd(&["PING"]), b"+PONG\r\n");
}
