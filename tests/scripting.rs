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
        // LRANGE's pre-encoded reply is a table in the script.
        (
            "redis.call('RPUSH', 'rl', 'a', 'b'); local r = redis.call('LRANGE', 'rl', 0, -1); return {type(r), #r, r[2]}",
            &["0"],
        ),
        // `#!lua` shebangs and their flags.
        ("#!lua\nreturn 1", &["0"]),
        ("#!lua flags=no-writes\nreturn redis.call('SET', 'k', 'v')", &["0"]),
        ("#!lua flags=no-writes,allow-oom\nreturn redis.call('GET', 'k')", &["0"]),
        ("#!lua flags=\nreturn 2", &["0"]),
        ("#!lua flags=no-writes,bogus\nreturn 1", &["0"]),
        ("#!other\nreturn 1", &["0"]),
        ("#!lua name=x\nreturn 1", &["0"]),
        ("#!lua", &["0"]),
        ("#!lua\nreturn nosuch", &["0"]),
        // The bit library (LuaBitOp).
        (
            "return {bit.tobit(2^32 + 5), bit.tohex(65535), bit.tohex(-1, -4), bit.tohex(255, 2), bit.band(0xff, 0x0f, 0x3c), bit.bor(1, 2, 4), bit.bxor(1, 3), bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.rol(1, 33), bit.ror(1, 1), bit.bswap(0x12345678), bit.bnot(0), bit.tobit(-0.5), bit.tobit(2.5), bit.tobit('7')}",
            &["0"],
        ),
        ("return bit.band()", &["0"]),
        ("bit.band = nil", &["0"]),
        // cjson's configuration functions and lua-cjson's encodings.
        ("return cjson.encode({1, nil, 3})", &["0"]),
        ("return cjson.encode({[1] = 1, [20] = 2})", &["0"]),
        (
            "return {cjson.encode_max_depth(), cjson.decode_max_depth(), cjson.encode_keep_buffer(false), cjson.encode_number_precision(), cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers()}",
            &["0"],
        ),
        (
            "local r = {cjson.encode_sparse_array()}; r[1] = tostring(r[1]); return r",
            &["0"],
        ),
        (
            "cjson.encode_invalid_numbers('null'); local a = cjson.encode({0/0, 1/0}); cjson.encode_invalid_numbers(true); local b = cjson.encode({1/0, -1/0}); cjson.encode_invalid_numbers(false); return {a, b}",
            &["0"],
        ),
        (
            "cjson.encode_max_depth(2); local ok = pcall(cjson.encode, {{{1}}}); cjson.encode_max_depth(1000); return tostring(ok)",
            &["0"],
        ),
        (
            "cjson.decode_max_depth(1); local ok = pcall(cjson.decode, '[[1]]'); cjson.decode_max_depth(1000); return tostring(ok)",
            &["0"],
        ),
        (
            "cjson.encode_number_precision(3); local s = cjson.encode(3.14159); cjson.encode_number_precision(14); return s",
            &["0"],
        ),
        ("return cjson.encode_max_depth(0)", &["0"]),
        // cmsgpack: lua-cmsgpack's encoding, byte for byte, and unpack_one / unpack_limit.
        (
            "local e = cmsgpack.pack({1, 2.5, 0.1, -1, -200, 70000, 2^40, -2^40, 'x', {a = 1}, {}, true, false}, string.rep('s', 40)); local h = ''; for i = 1, #e do h = h .. string.format('%02x', e:byte(i)) end; return h",
            &["0"],
        ),
        (
            "local a = {y = 5}; local b = {x = a}; a.x = b; local e = cmsgpack.pack(a); return #e",
            &["0"],
        ),
        (
            "local e = cmsgpack.pack(1, 'two', {3}); local o1, a = cmsgpack.unpack_one(e); local o2, b = cmsgpack.unpack_one(e, o1); local o3, c = cmsgpack.unpack_limit(e, 5, o2); return {o1, a, o2, b, o3, c[1]}",
            &["0"],
        ),
        ("return cmsgpack.unpack_limit(cmsgpack.pack(1), 1, 9)", &["0"]),
        ("return cmsgpack.unpack_one(cmsgpack.pack(1), -1)", &["0"]),
        ("return cmsgpack.pack()", &["0"]),
        // RESP3 inside scripts (redis.setresp) and the conversions both ways.
        (
            "redis.call('HSET', 'rh', 'f', 'v'); redis.setresp(3); return redis.call('HGETALL', 'rh')",
            &["0"],
        ),
        (
            "redis.setresp(3); local m = redis.call('HGETALL', 'rh'); return {type(m.map), m.map.f}",
            &["0"],
        ),
        (
            "redis.call('ZADD', 'rz', 1.5, 'm'); redis.setresp(3); local d = redis.call('ZSCORE', 'rz', 'm'); return tostring(d.double)",
            &["0"],
        ),
        (
            "redis.setresp(3); local r = redis.call('GET', 'nosuchkey'); return tostring(r == nil)",
            &["0"],
        ),
        ("redis.setresp(3); return true", &["0"]),
        ("redis.setresp(3); return false", &["0"]),
        ("return {double = 2.5}", &["0"]),
        ("return {big_number = '123\r\n456'}", &["0"]),
        ("return {map = {a = 1}}", &["0"]),
        ("return {set = {a = true}}", &["0"]),
        (
            "return {verbatim_string = {format = 'txt', string = 'hi'}}",
            &["0"],
        ),
        ("redis.setresp(4)", &["0"]),
        ("redis.setresp()", &["0"]),
        // set_repl, acl_check_cmd, sha1hex's arity.
        ("redis.set_repl(12345)", &["0"]),
        ("redis.set_repl()", &["0"]),
        (
            "redis.set_repl(redis.REPL_ALL); return redis.replicate_commands()",
            &["0"],
        ),
        ("return redis.acl_check_cmd('set', 'x', '1')", &["0"]),
        ("return redis.acl_check_cmd('nosuchcmd')", &["0"]),
        ("return redis.sha1hex()", &["0"]),
        // _G's metatable is read-only.
        ("setmetatable(_G, {})", &["0"]),
        ("local g = getmetatable(_G); g.__index = {}", &["0"]),
        // SORT BY a constant of a set is sorted for scripts.
        (
            "redis.call('SADD', 'ss', 'b', 'aa', 'c', 'a'); return redis.call('SORT', 'ss', 'BY', 'nosort')",
            &["0"],
        ),
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
        &["SCRIPT", "DEBUG", "MAYBE"],
        &["SCRIPT", "DEBUG", "NO"],
        &["SCRIPT", "DEBUG"],
        &["SCRIPT", "HELP"],
        &["FUNCTION", "KILL"],
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

/// While a script runs past `busy-reply-threshold`, other clients are answered BUSY (except
/// for what Redis allows then), SCRIPT KILL stops a script that has not written (FUNCTION KILL
/// refuses an EVAL), a script that wrote cannot be killed and SHUTDOWN NOSAVE stops the server
/// anyway — every reply byte for byte as redis-server 7.0's, with the execution loop inline
/// (`io-threads 1`) and on its own thread (`io-threads 2`).
#[test]
fn a_busy_script_answers_others_busy_and_can_be_killed() {
    let rs = RedisServer::start(&["--busy-reply-threshold", "100"]);
    let expected = busy_script_session(rs.port());
    for io_threads in ["1", "2"] {
        let sb =
            StrongboxServer::start(&["--busy-reply-threshold", "100", "--io-threads", io_threads]);
        let got = busy_script_session(sb.port());
        assert_eq!(got, expected, "io-threads {io_threads}");
    }
}

/// The replies a busy-script session gets, in order (the server is shut down at the end).
fn busy_script_session(port: u16) -> Vec<String> {
    let text = |r: Vec<u8>| String::from_utf8_lossy(&r).into_owned();
    let mut out = Vec::new();
    let mut runner = RawConn::connect(port);
    let mut other = RawConn::connect(port);
    let busy = |other: &mut RawConn| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = other.cmd(&["PING"]);
            if r.starts_with(b"-BUSY") || std::time::Instant::now() > deadline {
                return text(r);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // A read-only script: killed by SCRIPT KILL, whatever it catches.
    runner.send_cmd(&[
        "EVAL",
        "local f = function() while true do redis.call('PING') end end while true do pcall(f) end",
        "0",
    ]);
    out.push(busy(&mut other));
    for args in [
        &["FUNCTION", "KILL"][..],
        &["SHUTDOWN"],
        &["GET", "x"],
        &["MULTI"],
        &["SET", "x", "1"],
        &["DISCARD"],
        &["SCRIPT", "KILL"],
    ] {
        out.push(text(other.cmd(args)));
    }
    runner.set_timeout(std::time::Duration::from_secs(10));
    out.push(text(runner.read_reply()));
    out.push(text(other.cmd(&["PING"])));
    out.push(text(runner.cmd(&["SCRIPT", "KILL"])));
    // A script that wrote: not killable; SHUTDOWN NOSAVE ends it and the server.
    runner.send_cmd(&[
        "EVAL",
        "redis.call('SET', 'x', 'y'); while true do end",
        "0",
    ]);
    out.push(busy(&mut other));
    out.push(text(other.cmd(&["SCRIPT", "KILL"])));
    out.push(text(other.cmd(&["PING"])));
    other.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    out.push(format!(
        "closed: {}",
        other.is_closed_within(std::time::Duration::from_secs(10))
    ));
    out
}

/// A reply table that contains itself is cut with Redis's "reached lua stack limit" instead of
/// recursing forever.
#[test]
fn a_self_containing_reply_is_cut_at_the_stack_limit() {
    let sb = StrongboxServer::start(&[]);
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

/// SCRIPT DEBUG SYNC: a debugging session (stop at the first line, list, eval, redis, step,
/// unknown commands, the end mark, then the connection closed; abort) answers as
/// redis-server 7.0's debugger, byte for byte.
#[test]
fn script_debug_sync_sessions_match_redis() {
    let rs = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let session = |port: u16| -> Vec<String> {
        let text = |r: Vec<u8>| String::from_utf8_lossy(&r).into_owned();
        let mut out = Vec::new();
        let mut c = RawConn::connect(port);
        let script = "local x = redis.call('set','k','v')\nreturn redis.call('get','k')";
        for args in [
            &["SCRIPT", "DEBUG", "SYNC"][..],
            &["EVAL", script, "0"],
            &["hello\0world"],
            &["eval", "1", "+", "1"],
            &["eval", "{1, 'a', {b=2}}"],
            &["eval", "return ("],
            &["list"],
            &["whole"],
            &["list", "2", "0"],
            &["redis", "nosuch", "a"],
            &["redis", "get", "k"],
            &["step"],
        ] {
            out.push(text(c.cmd(args)));
        }
        // The last step ends the script: the end mark, then the script's reply, then close.
        c.send_cmd(&["s"]);
        out.push(text(c.read_reply()));
        out.push(text(c.read_reply()));
        out.push(format!(
            "closed: {}",
            c.is_closed_within(std::time::Duration::from_secs(5))
        ));
        let mut c = RawConn::connect(port);
        out.push(text(c.cmd(&["SCRIPT", "DEBUG", "SYNC"])));
        out.push(text(c.cmd(&["EVAL", "return 1", "0"])));
        c.send_cmd(&["abort"]);
        out.push(text(c.read_reply()));
        out.push(text(c.read_reply()));
        let mut c = RawConn::connect(port);
        out.push(text(c.cmd(&["PING"])));
        out
    };
    assert_eq!(session(sb.port()), session(rs.port()));
}

/// `redis.setresp(3)` for a RESP3 caller: maps, sets, doubles, booleans, big numbers and
/// verbatim strings reach it as RESP3, as redis-server 7.0 sends them.
#[test]
fn resp3_replies_from_scripts_match_redis() {
    let rs = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let mut a = RawConn::connect(sb.port());
    let mut b = RawConn::connect(rs.port());
    a.cmd(&["HELLO", "3"]);
    b.cmd(&["HELLO", "3"]);
    for script in [
        "redis.call('HSET', 'h', 'f', 'v'); redis.setresp(3); return redis.call('HGETALL', 'h')",
        "redis.setresp(2); return redis.call('HGETALL', 'h')",
        "return redis.call('HGETALL', 'h')",
        "redis.call('SADD', 's', 'm'); redis.setresp(3); return redis.call('SMEMBERS', 's')",
        "redis.call('ZADD', 'z', 2.5, 'm'); redis.setresp(3); return redis.call('ZSCORE', 'z', 'm')",
        "redis.setresp(3); return redis.call('GET', 'nosuch')",
        "return redis.call('GET', 'nosuch')",
        "redis.setresp(3); return true",
        "redis.setresp(3); return false",
        "return false",
        "return {double = 2.5}",
        "return {big_number = '1234567999999999999999999999999999999'}",
        "return {big_number = '123\r\n123'}",
        "return {map = {a = 1}}",
        "return {set = {a = true}}",
        "return {verbatim_string = {format = 'txt', string = 'hi'}}",
        "return {verbatim_string = {format = 'mkd', string = 'x'}}",
    ] {
        let ra = a.cmd(&["EVAL", script, "0"]);
        let rb = b.cmd(&["EVAL", script, "0"]);
        assert_eq!(
            String::from_utf8_lossy(&ra),
            String::from_utf8_lossy(&rb),
            "EVAL {script:?}"
        );
    }
}

/// `#!lua` flags are checked before the script runs as Redis derives them: a script that may
/// write is a write (refused by a replica, aborting a MULTI that queued it), one with
/// `no-writes` runs on the replica; `allow-oom` lets a script write over `maxmemory`.
#[test]
fn shebang_flags_are_checked_as_redis_does() {
    let rs = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let session = |port: u16| -> Vec<String> {
        let text = |r: Vec<u8>| String::from_utf8_lossy(&r).into_owned();
        let mut c = RawConn::connect(port);
        let mut out = Vec::new();
        for args in [
            &["SET", "x", "1"][..],
            &["CONFIG", "SET", "maxmemory", "1"],
            &["EVAL", "redis.call('SET', 'x', 2); return 1", "0"],
            &["EVAL", "#!lua\nreturn 1", "0"],
            &[
                "EVAL",
                "#!lua flags=allow-oom\nredis.call('SET', 'x', 3); return 1",
                "0",
            ],
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn redis.call('GET', 'x')",
                "0",
            ],
            &["EVAL_RO", "#!lua\nreturn 1", "0"],
            &["CONFIG", "SET", "maxmemory", "0"],
            &["MULTI"],
            &["EVAL", "#!lua\nreturn 1", "0"],
            &["EXEC"],
            // A replica of a master that is not there: scripts that may write are refused
            // before they run; no-writes ones run.
            &["REPLICAOF", "127.0.0.1", "1"],
            &["EVAL", "#!lua\nreturn 1", "0"],
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn redis.call('GET', 'x')",
                "0",
            ],
            &["MULTI"],
            &["EVAL", "#!lua\nreturn 1", "0"],
            &["EXEC"],
            &["REPLICAOF", "NO", "ONE"],
        ] {
            out.push(text(c.cmd(args)));
        }
        out
    };
    assert_eq!(session(sb.port()), session(rs.port()));
}

/// What Strongbox keeps from scripts that Redis would too, where it differs in how: globals do
/// not outlive a script, `rename-command` applies inside scripts, a RESP3 caller's script
/// still sees RESP2 replies, and a script that catches SCRIPT KILL's error still ends.
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
    // A script that catches the kill's error still ends (the hook raises it on every line).
    a.send_cmd(&[
        "EVAL",
        "while true do pcall(function() while true do end end) end",
        "0",
    ]);
    let mut b = RawConn::connect(sb.port());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.cmd(&["SCRIPT", "KILL"]) != b"+OK\r\n" {
        assert!(std::time::Instant::now() < deadline, "never killable");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = a.read_reply();
    assert!(
        String::from_utf8_lossy(&r).contains("Script killed by user with SCRIPT KILL"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let r = a.cmd(&["EVAL", "return type(coroutine)", "0"]);
    assert!(String::from_utf8_lossy(&r).contains("nonexistent global variable"));
    assert_eq!(a.cmd(&["PING"]), b"+PONG\r\n");
}
