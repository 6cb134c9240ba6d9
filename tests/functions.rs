//! Redis 7.0 Functions end to end: libraries are part of the dataset. They survive kill -9
//! under `appendfsync always` (FUNCTION LOAD / DELETE / FLUSH are logged as themselves, an
//! FCALL's writes as one MULTI/EXEC), BGREWRITEAOF with and without the RDB preamble, DEBUG
//! RELOAD and FLUSHALL; dump.rdb files with libraries move both ways between redis-server 7.0
//! and Strongbox, and so do FUNCTION DUMP payloads; bad payloads answer errors.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{RedisServer, StrongboxServer};

fn con(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// One function per reply type, reads and writes of keys, and flags.
const LIB: &str = "#!lua name=mylib
local function bump(key, by)
  return redis.call('INCRBY', key, by)
end
redis.register_function('bump', function(keys, args) return bump(keys[1], args[1]) end)
redis.register_function('pushmany', function(keys, args)
  for i = 1, #args do redis.call('RPUSH', keys[1], args[i]) end
  redis.call('EXPIRE', keys[1], 1000)
  return redis.call('LLEN', keys[1])
end)
redis.register_function{function_name='kinds', flags={'no-writes'}, description='every reply type',
  callback=function(keys, args)
    return {1, 'two', {3, {args[1]}}, redis.status_reply('OK'), 2.9, true, false}
  end}
redis.register_function{function_name='readget', flags={'no-writes', 'allow-stale'},
  callback=function(keys, args) return redis.call('GET', keys[1]) end}
redis.register_function('status', function() return redis.status_reply('FINE') end)
redis.register_function('fail', function() return redis.error_reply('MYERR custom') end)
";

const LIB2: &str = "#!lua name=other
redis.register_function('twice', function(keys, args) return tonumber(args[1]) * 2 end)
";

fn library_names(c: &mut redis::Connection) -> Vec<String> {
    let v: redis::Value = redis::cmd("FUNCTION").arg("LIST").query(c).unwrap();
    let mut names = Vec::new();
    if let redis::Value::Array(libs) = v {
        for lib in libs {
            let items = match lib {
                redis::Value::Array(items) => items,
                redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => panic!("{other:?}"),
            };
            for pair in items.chunks(2) {
                if let [redis::Value::BulkString(k), redis::Value::BulkString(v)] = pair {
                    if k == b"library_name" {
                        names.push(String::from_utf8_lossy(v).into_owned());
                    }
                }
            }
        }
    }
    names.sort();
    names
}

/// FCALLs whose answers do not change the data, compared after every restart.
fn check_calls(c: &mut redis::Connection) {
    let kinds: redis::Value = redis::cmd("FCALL_RO")
        .arg("kinds")
        .arg(0)
        .arg("x")
        .query(c)
        .unwrap();
    assert_eq!(
        format!("{kinds:?}"),
        format!(
            "{:?}",
            redis::Value::Array(vec![
                redis::Value::Int(1),
                redis::Value::BulkString(b"two".to_vec()),
                redis::Value::Array(vec![
                    redis::Value::Int(3),
                    redis::Value::Array(vec![redis::Value::BulkString(b"x".to_vec())]),
                ]),
                redis::Value::Okay,
                redis::Value::Int(2),
                redis::Value::Int(1),
                redis::Value::Nil,
            ])
        )
    );
    let s: String = redis::cmd("FCALL").arg("status").arg(0).query(c).unwrap();
    assert_eq!(s, "FINE");
    let e = redis::cmd("FCALL")
        .arg("fail")
        .arg(0)
        .query::<()>(c)
        .unwrap_err();
    assert_eq!(e.code(), Some("MYERR"), "{e}");
    let e = redis::cmd("FCALL_RO")
        .arg("bump")
        .arg(1)
        .arg("n")
        .arg(1)
        .query::<()>(c)
        .unwrap_err();
    assert!(e.to_string().contains("write flag"), "{e}");
}

fn wait_rewrite_done(c: &mut redis::Connection, rewrites_before: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        if field("aof_rewrite_in_progress") == 0 && field("aof_rewrites") > rewrites_before {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no rewrite: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rewrites(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("aof_rewrites:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn incr_files(dir: &Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    names.sort();
    String::from_utf8_lossy(
        &names
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect::<Vec<u8>>(),
    )
    .into_owned()
}

fn base_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".base."))
        .expect("a base file")
}

#[test]
fn libraries_survive_kill9_rewrites_with_and_without_preamble_and_reload() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = con(sb.port());
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB)
        .query(&mut c)
        .unwrap();
    assert_eq!(name, "mylib");
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB2)
        .query(&mut c)
        .unwrap();
    // A library loaded then deleted, and one replaced: the log replays to the last state.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=gone\nredis.register_function('g', function() return 1 end)")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("gone")
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(LIB2.replace("* 2", "* 3"))
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("counter")
        .arg(5)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = redis::cmd("FCALL")
        .arg("pushmany")
        .arg(1)
        .arg("list")
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 3);
    check_calls(&mut c);
    // The effects are logged as one MULTI/EXEC per FCALL that wrote more than one command
    // (pushmany; bump's single INCRBY is logged bare, as Redis 7 propagates it), and FCALL
    // itself never.
    let log = incr_files(sb.dir());
    assert!(!log.contains("FCALL"), "FCALL was logged");
    assert_eq!(log.matches("$5\r\nMULTI\r\n").count(), 1, "{log}");
    assert!(log.contains("PEXPIREAT"));
    assert_eq!(log.matches("$8\r\nFUNCTION\r\n").count(), 5, "{log}");

    let expect = |c: &mut redis::Connection, counter: i64, twice: i64| {
        assert_eq!(library_names(c), ["mylib", "other"]);
        check_calls(c);
        let got: i64 = redis::cmd("FCALL_RO")
            .arg("readget")
            .arg(1)
            .arg("counter")
            .query(c)
            .unwrap();
        assert_eq!(got, counter);
        let t: i64 = redis::cmd("FCALL")
            .arg("twice")
            .arg(0)
            .arg(7)
            .query(c)
            .unwrap();
        assert_eq!(t, 7 * twice);
        let len: i64 = redis::cmd("LLEN").arg("list").query(c).unwrap();
        assert_eq!(len, 3);
        let ttl: i64 = redis::cmd("TTL").arg("list").query(c).unwrap();
        assert!(ttl > 900, "{ttl}");
    };

    // kill -9: the log replays the libraries.
    drop(c);
    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    expect(&mut c, 5, 3);

    // BGREWRITEAOF with an RDB base (FUNCTION2 records), then a clean restart.
    let before = rewrites(&mut c);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrite_done(&mut c, before);
    assert!(base_file(sb.dir()).to_string_lossy().ends_with(".rdb"));
    let n: i64 = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("counter")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 6);
    drop(c);
    sb.stop();
    sb.restart();
    let mut c = con(sb.port());
    expect(&mut c, 6, 3);

    // Without the preamble: the base starts with FUNCTION LOAD commands.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("aof-use-rdb-preamble")
        .arg("no")
        .query(&mut c)
        .unwrap();
    let before = rewrites(&mut c);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrite_done(&mut c, before);
    let base = std::fs::read(base_file(sb.dir())).unwrap();
    assert!(
        base.starts_with(b"*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"),
        "{}",
        String::from_utf8_lossy(&base)
    );
    drop(c);
    sb.stop();
    sb.restart();
    let mut c = con(sb.port());
    expect(&mut c, 6, 3);

    // FLUSHALL keeps the libraries, DEBUG RELOAD too (as Redis).
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(library_names(&mut c), ["mylib", "other"]);
    let _: () = redis::cmd("SET")
        .arg("counter")
        .arg(6)
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("FCALL")
        .arg("pushmany")
        .arg(1)
        .arg("list")
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut c)
        .unwrap();
    drop(c);
    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    expect(&mut c, 6, 3);

    // FUNCTION FLUSH is logged too, and FUNCTION RESTORE.
    let payload: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c).unwrap();
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query(&mut c).unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    drop(c);
    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    expect(&mut c, 6, 3);
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query(&mut c).unwrap();
    drop(c);
    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    assert!(library_names(&mut c).is_empty());
    let e = redis::cmd("FCALL")
        .arg("bump")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Function not found"), "{e}");
}

/// A dump.rdb written by redis-server 7.0 with a library loads into Strongbox (as dump.rdb,
/// and as the base of a new AOF directory) with the functions callable; Strongbox's dump.rdb
/// and AOF directory with libraries load into redis-server 7.0.
#[test]
fn rdb_files_with_libraries_move_both_ways_with_redis() {
    let rs = RedisServer::start(&[]);
    let mut rc = con(rs.port());
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB)
        .query(&mut rc)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("counter")
        .arg(41)
        .query(&mut rc)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut rc).unwrap();
    let dump = std::fs::read(rs.dir().join("dump.rdb")).unwrap();
    drop(rc);
    drop(rs);

    for appendonly in ["no", "yes"] {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("dump.rdb"), &dump).unwrap();
        let sb = StrongboxServer::start_in(d.path(), &["--appendonly", appendonly]);
        let mut c = con(sb.port());
        assert_eq!(library_names(&mut c), ["mylib"], "appendonly {appendonly}");
        let n: i64 = redis::cmd("FCALL")
            .arg("bump")
            .arg(1)
            .arg("counter")
            .arg(1)
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 42);
        check_calls(&mut c);
    }

    // Strongbox → redis-server: dump.rdb, then an AOF directory (RDB base + logged FUNCTION
    // LOAD).
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = con(sb.port());
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("counter")
        .arg(9)
        .query(&mut c)
        .unwrap();
    // BGSAVE (the fork-free snapshot) writes the libraries too.
    let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        if info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_last_bgsave_status:ok") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no BGSAVE: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = rewrites(&mut c);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrite_done(&mut c, before);
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB2)
        .query(&mut c)
        .unwrap();
    drop(c);
    sb.stop();

    let d = tempfile::tempdir().unwrap();
    std::fs::copy(sb.dir().join("dump.rdb"), d.path().join("dump.rdb")).unwrap();
    let rs = RedisServer::start_in(d.path(), &[]);
    let mut rc = con(rs.port());
    assert_eq!(library_names(&mut rc), ["mylib"]);
    let n: i64 = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("counter")
        .arg(1)
        .query(&mut rc)
        .unwrap();
    assert_eq!(n, 10);
    drop(rc);
    drop(rs);

    let d = tempfile::tempdir().unwrap();
    let to = d.path().join("appendonlydir");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(sb.dir().join("appendonlydir")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let rs = RedisServer::start_in(d.path(), &["--appendonly", "yes"]);
    let mut rc = con(rs.port());
    assert_eq!(library_names(&mut rc), ["mylib", "other"]);
    let t: i64 = redis::cmd("FCALL")
        .arg("twice")
        .arg(0)
        .arg(4)
        .query(&mut rc)
        .unwrap();
    assert_eq!(t, 8);
}

/// FUNCTION DUMP payloads restore in the other server; RESTORE policies; payloads of random
/// or damaged bytes and huge library code answer errors and the server keeps serving.
#[test]
fn dump_payloads_move_both_ways_and_bad_payloads_answer_errors() {
    let rs = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let mut rc = con(rs.port());
    let mut c = con(sb.port());
    for conn in [&mut rc, &mut c] {
        let _: String = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(LIB)
            .query(conn)
            .unwrap();
    }
    let from_redis: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut rc).unwrap();
    let from_sb: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c).unwrap();
    // APPEND (the default) refuses a library that exists; REPLACE and FLUSH take it.
    let e = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&from_redis)
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "An error was signalled by the server - ResponseError: Library mylib already exists"
    );
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&from_redis)
        .arg("REPLACE")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&from_sb)
        .arg("FLUSH")
        .query(&mut rc)
        .unwrap();
    assert_eq!(library_names(&mut rc), ["mylib"]);
    check_calls(&mut rc);
    check_calls(&mut c);

    // Damaged payloads: every truncation and some bit flips of a real one, and random bytes.
    let mut bad: Vec<Vec<u8>> = (0..from_sb.len()).map(|n| from_sb[..n].to_vec()).collect();
    for i in (0..from_sb.len()).step_by(7) {
        let mut p = from_sb.clone();
        p[i] ^= 0x5a;
        bad.push(p);
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for n in 0..200 {
        let p: Vec<u8> = (0..(n * 3))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        bad.push(p);
    }
    for p in &bad {
        let r = redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg(p)
            .arg("FLUSH")
            .query::<()>(&mut c);
        assert!(r.is_err(), "a damaged payload was accepted");
    }
    assert_eq!(library_names(&mut c), ["mylib"]);

    // A payload whose record is a library that does not compile.
    let bad_lib = "#!lua name=bad\nthis is not lua";
    let mut p = vec![
        0xf5u8,
        0x40 | (bad_lib.len() >> 8) as u8,
        bad_lib.len() as u8,
    ];
    p.extend_from_slice(bad_lib.as_bytes());
    p.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc64_jones(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    for conn in [&mut rc, &mut c] {
        let e = redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg(&p)
            .query::<()>(conn)
            .unwrap_err();
        assert!(e.to_string().contains("Error compiling function"), "{e}");
    }

    // Huge library code: 8 MB of comment around one function.
    let huge = format!(
        "#!lua name=huge\n--{}\nredis.register_function('h', function() return 'big' end)",
        "x".repeat(8 << 20)
    );
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(&huge)
        .query(&mut c)
        .unwrap();
    assert_eq!(name, "huge");
    let dump: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c).unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&dump)
        .arg("FLUSH")
        .query(&mut c)
        .unwrap();
    let s: String = redis::cmd("FCALL").arg("h").arg(0).query(&mut c).unwrap();
    assert_eq!(s, "big");
    // A library that loops forever is stopped at load.
    let e = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=spin\nwhile true do end")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("FUNCTION LOAD timeout"), "{e}");
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

/// A dump.rdb whose library does not compile stops Strongbox at start, as it stops Redis.
#[test]
fn an_rdb_with_a_library_that_does_not_compile_is_refused() {
    let bad_lib = "#!lua name=bad\nthis is not lua";
    let mut rdb = b"REDIS0010".to_vec();
    rdb.push(0xf5);
    rdb.push(bad_lib.len() as u8);
    rdb.extend_from_slice(bad_lib.as_bytes());
    rdb.push(0xff);
    let crc = crc64_jones(&rdb);
    rdb.extend_from_slice(&crc.to_le_bytes());
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("dump.rdb"), &rdb).unwrap();
    let mut cmd = std::process::Command::new(common::server::strongbox_bin());
    // No TCP port (port 0): a Unix socket to listen on.
    cmd.args(["--port", "0", "--appendonly", "no", "--dir"])
        .arg(d.path())
        .arg("--unixsocket")
        .arg(d.path().join("s.sock"));
    let out = common::run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Error compiling function"), "{text}");
}

/// Redis's CRC-64 (Jones polynomial, reflected), for the payloads built by hand.
fn crc64_jones(data: &[u8]) -> u64 {
    let mut crc: u64 = 0;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Strongbox as a replica of redis-server 7.0 (the migration path): the master's libraries
/// come with the full sync (replacing the replica's own), FUNCTION LOAD / DELETE from the
/// master's stream follow, and a kill -9 of the replica after REPLICAOF NO ONE keeps them.
#[test]
fn a_replica_of_redis_gets_the_masters_libraries() {
    let rs = RedisServer::start(&[]);
    let mut rc = con(rs.port());
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB)
        .query(&mut rc)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("counter")
        .arg(1)
        .query(&mut rc)
        .unwrap();
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = con(sb.port());
    // A library of the replica's own is replaced by the master's set.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=mine\nredis.register_function('mine', function() return 1 end)")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(rs.port())
        .query(&mut c)
        .unwrap();
    let up = |c: &mut redis::Connection| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let info: String = redis::cmd("INFO").arg("replication").query(c).unwrap();
            if info.contains("master_link_status:up") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "link never up: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    up(&mut c);
    assert_eq!(library_names(&mut c), ["mylib"]);
    let got: i64 = redis::cmd("FCALL_RO")
        .arg("readget")
        .arg(1)
        .arg("counter")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, 1);
    // A write function is refused on the read-only replica, as Redis refuses it.
    let e = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("counter")
        .arg(1)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("read only replica"), "{e}");
    // The master's stream.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB2)
        .query(&mut rc)
        .unwrap();
    let _: i64 = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("counter")
        .arg(10)
        .query(&mut rc)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while library_names(&mut c) != ["mylib", "other"] {
        assert!(
            std::time::Instant::now() < deadline,
            "FUNCTION LOAD not replicated"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _: () = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut rc)
        .unwrap_or(());
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut c)
        .unwrap();
    let got: i64 = redis::cmd("FCALL_RO")
        .arg("readget")
        .arg(1)
        .arg("counter")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, 11);
    drop(c);
    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    assert_eq!(library_names(&mut c), ["mylib", "other"]);
    let n: i64 = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("counter")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 12);
}

/// A function that kept the loader's table cannot register functions after FUNCTION LOAD:
/// the call fails with Redis's text (it used to leak mlua's "destructed callback").
#[test]
fn register_function_outside_function_load_is_refused() {
    let sb = StrongboxServer::start(&[]);
    let mut c = con(sb.port());
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(
            "#!lua name=trap\nlocal lib = redis\n\
             redis.register_function('trap', function() lib.register_function('x', function() end) end)",
        )
        .query(&mut c)
        .unwrap();
    let e = redis::cmd("FCALL")
        .arg("trap")
        .arg(0)
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("redis.register_function can only be called on FUNCTION LOAD command"),
        "{e}"
    );
}
