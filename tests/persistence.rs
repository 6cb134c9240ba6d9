//! Files both ways: Redis 7.0 / Valkey 8.0 files load into Strongbox; Strongbox's RDB and AOF
//! directories load into redis-server 7.0; migration of a dump.rdb into a new AOF directory;
//! compaction under concurrent writes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::keyspace::{key_value, scan_keys, Streams};
use common::{RedisServer, StrongboxServer};

fn fixtures() -> PathBuf {
    common::repo_root().join("../shared/fixtures")
}

/// A key's type and value as commands show them (collections canonically ordered).
#[derive(Debug, Clone, PartialEq)]
struct KeyDump {
    kind: String,
    value: Vec<Vec<u8>>,
    has_ttl: bool,
}

type Keyspace = BTreeMap<(i64, Vec<u8>), KeyDump>;

fn con(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn dump_keyspace(port: u16, dbs: i64, with_streams: bool) -> Keyspace {
    let mut c = con(port);
    let streams = if with_streams {
        Streams::Entries
    } else {
        Streams::Skip
    };
    let mut out = Keyspace::new();
    for db in 0..dbs {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        for k in scan_keys(&mut c) {
            let Some((kind, value)) = key_value(&mut c, &k, streams) else {
                continue;
            };
            let pttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
            out.insert(
                (db, k),
                KeyDump {
                    kind,
                    value,
                    has_ttl: pttl > 0,
                },
            );
        }
    }
    out
}

fn assert_same(a: &Keyspace, b: &Keyspace, what: &str) {
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    if ka != kb {
        let only_a: Vec<_> = a
            .keys()
            .filter(|k| !b.contains_key(*k))
            .map(|(d, k)| format!("{d}:{}", String::from_utf8_lossy(k)))
            .collect();
        let only_b: Vec<_> = b
            .keys()
            .filter(|k| !a.contains_key(*k))
            .map(|(d, k)| format!("{d}:{}", String::from_utf8_lossy(k)))
            .collect();
        panic!("{what}: key sets differ; only in first: {only_a:?}; only in second: {only_b:?}");
    }
    for (k, va) in a {
        let vb = &b[k];
        assert_eq!(
            va,
            vb,
            "{what}: key {}:{} differs",
            k.0,
            String::from_utf8_lossy(&k.1)
        );
    }
    assert!(!a.is_empty(), "{what}: empty keyspace compares trivially");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Copy `data_dir`'s appendonlydir to a fresh directory, start redis-server 7.0 on it with
/// appendonly yes, and check it loads to `expected` (databases 0..dbs).
fn assert_aof_dir_loads_in_redis(data_dir: &Path, dbs: i64, expected: &Keyspace, what: &str) {
    let d2 = tempfile::tempdir().unwrap();
    copy_dir(
        &data_dir.join("appendonlydir"),
        &d2.path().join("appendonlydir"),
    );
    let rs = RedisServer::start_in(d2.path(), &["--appendonly", "yes"]);
    assert_same(expected, &dump_keyspace(rs.port(), dbs, false), what);
}

fn data_dir_with(file: &Path, as_name: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(file, d.path().join(as_name)).unwrap();
    d
}

#[test]
fn redis_rdb_fixtures_load_like_in_redis() {
    for name in [
        "redis-7.0-all-types.rdb",
        "redis-7.0-all-types-uncompressed.rdb",
    ] {
        let f = fixtures().join(name);
        let d1 = data_dir_with(&f, "dump.rdb");
        let d2 = data_dir_with(&f, "dump.rdb");
        let sb = StrongboxServer::start_in(d1.path(), &["--appendonly", "no"]);
        let rs = RedisServer::start_in(d2.path(), &["--appendonly", "no"]);
        let a = dump_keyspace(sb.port(), 16, false);
        let b = dump_keyspace(rs.port(), 16, false);
        assert_same(&a, &b, name);
    }
}

#[test]
fn valkey_rdb11_fixture_loads_to_its_keyspace() {
    let f = fixtures().join("valkey-8.0-all-types.rdb");
    let d = data_dir_with(&f, "dump.rdb");
    let sb = StrongboxServer::start_in(d.path(), &["--appendonly", "no"]);
    let got = dump_keyspace(sb.port(), 16, false);
    let text =
        std::fs::read_to_string(fixtures().join("valkey-8.0-all-types.keyspace.jsonl")).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let full = v[0].as_str().unwrap();
        let (db, key) = full.split_once(':').unwrap();
        let key: Vec<u8> = key.chars().map(|c| c as u32 as u8).collect();
        let kind = v[1].as_str().unwrap();
        let has_ttl = v[3].as_bool().unwrap();
        let entry = got.get(&(db.parse().unwrap(), key.clone()));
        if has_ttl {
            // May have expired since the fixture was written.
            continue;
        }
        let entry = entry.unwrap_or_else(|| panic!("key {full} missing"));
        assert_eq!(entry.kind, kind, "type of {full}");
        if kind == "string" || kind == "list" || kind == "set" {
            let want: Vec<Vec<u8>> = match &v[2] {
                serde_json::Value::String(s) => vec![s.chars().map(|c| c as u32 as u8).collect()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .unwrap()
                            .chars()
                            .map(|c| c as u32 as u8)
                            .collect()
                    })
                    .collect(),
                _ => unreachable!(),
            };
            assert_eq!(entry.value, want, "value of {full}");
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} keys checked");
}

#[test]
fn redis_aof_directories_load_like_in_redis() {
    for name in ["redis-7.0-aof-plain", "redis-7.0-aof-rdb-base"] {
        let src = fixtures().join(name);
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        copy_dir(&src, &d1.path().join("appendonlydir"));
        copy_dir(&src, &d2.path().join("appendonlydir"));
        let sb = StrongboxServer::start_in(d1.path(), &["--appendonly", "yes"]);
        let rs = RedisServer::start_in(d2.path(), &["--appendonly", "yes"]);
        let a = dump_keyspace(sb.port(), 16, false);
        let b = dump_keyspace(rs.port(), 16, false);
        assert_same(&a, &b, name);
    }
}

/// A Redis 6 style AOF (one `appendonly.aof` in `dir`, with or without an RDB preamble) is
/// upgraded at start as redis-server 7.0 does it: moved into the AOF directory as the base
/// (`file appendonly.aof seq 1 type b`), the same data loaded; and an upgrade interrupted
/// between the manifest and the move is finished at the next start.
#[test]
fn redis6_single_file_aof_is_upgraded_like_redis7() {
    let resp = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$2\r\nk1\r\n$2\r\nv1\r\n*3\r\n$5\r\nrpush\r\n$1\r\nl\r\n$1\r\na\r\n".to_vec();
    let preamble = std::fs::read(fixtures().join("redis-7.0-all-types.rdb")).unwrap();
    for (what, bytes) in [("resp", resp), ("rdb preamble", preamble)] {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        std::fs::write(d1.path().join("appendonly.aof"), &bytes).unwrap();
        std::fs::write(d2.path().join("appendonly.aof"), &bytes).unwrap();
        let sb = StrongboxServer::start_in(d1.path(), &["--appendonly", "yes"]);
        let rs = RedisServer::start_in(d2.path(), &["--appendonly", "yes"]);
        let a = dump_keyspace(sb.port(), 16, false);
        let b = dump_keyspace(rs.port(), 16, false);
        assert!(!a.is_empty(), "{what}: nothing loaded");
        assert_same(&a, &b, what);
        for d in [d1.path(), d2.path()] {
            assert!(
                !d.join("appendonly.aof").exists(),
                "{what}: old file left in {d:?}"
            );
            assert!(d.join("appendonlydir/appendonly.aof").exists(), "{what}");
            let m =
                std::fs::read_to_string(d.join("appendonlydir/appendonly.aof.manifest")).unwrap();
            assert_eq!(
                m.lines().next(),
                Some("file appendonly.aof seq 1 type b"),
                "{what}: {m}"
            );
        }
        assert!(sb.log().contains(
            "Successfully migrated an old-style AOF into the AOF directory appendonlydir."
        ));
    }
    // Interrupted upgrade: the manifest names the base, the file is still in `dir`.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("appendonlydir")).unwrap();
    std::fs::write(
        d.path().join("appendonlydir/appendonly.aof.manifest"),
        "file appendonly.aof seq 1 type b\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("appendonly.aof"),
        b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n",
    )
    .unwrap();
    let sb = StrongboxServer::start_in(d.path(), &["--appendonly", "yes"]);
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut con(sb.port()))
        .unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    assert!(d.path().join("appendonlydir/appendonly.aof").exists());
}

/// FLUSHALL abandons a BGSAVE in progress (Redis's killRDBChild): the save does not finish
/// and the change counter is not reset; the next BGSAVE starts at once.
#[test]
fn flushall_abandons_a_bgsave_in_progress() {
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut c = con(sb.port());
    for i in 0..200 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query::<()>(&mut c)
            .unwrap();
    }
    config_set(&mut c, "rdb-key-save-delay", "100000");
    let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(r, "Background saving started");
    redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("rdb_bgsave_in_progress:0"), "{info}");
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    let changes: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(changes >= 200, "{info}");
    assert!(!sb.dir().join("dump.rdb").exists());
    config_set(&mut c, "rdb-key-save-delay", "0");
    let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(r, "Background saving started");
}

/// CONFIG SET aof-timestamp-enabled applies to the running log: `#TS:` annotations start
/// (and stop) without a restart.
#[test]
fn config_set_aof_timestamp_enabled_applies_at_once() {
    let sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = con(sb.port());
    let count = |dir: &Path| {
        let bytes = std::fs::read(last_incr_file(&dir.join("appendonlydir"))).unwrap();
        String::from_utf8_lossy(&bytes).matches("#TS:").count()
    };
    redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(count(sb.dir()), 0);
    config_set(&mut c, "aof-timestamp-enabled", "yes");
    redis::cmd("SET")
        .arg("b")
        .arg("2")
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(count(sb.dir()), 1);
    config_set(&mut c, "aof-timestamp-enabled", "no");
    std::thread::sleep(Duration::from_millis(1100));
    redis::cmd("SET")
        .arg("c")
        .arg("3")
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(count(sb.dir()), 1);
}

fn write_workload(port: u16, n: usize) {
    let mut c = con(port);
    for i in 0..n {
        let db = (i % 3) as i64;
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        redis::cmd("SET")
            .arg(format!("s{i}"))
            .arg(format!("v{i}"))
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("INCRBY")
            .arg("counter")
            .arg(i)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("RPUSH")
            .arg(format!("l{}", i % 7))
            .arg(i)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("HSET")
            .arg(format!("h{}", i % 5))
            .arg(format!("f{i}"))
            .arg(i)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("SADD")
            .arg(format!("set{}", i % 4))
            .arg(i % 50)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("ZADD")
            .arg("z")
            .arg(i as f64 / 3.0)
            .arg(format!("m{i}"))
            .query::<i64>(&mut c)
            .unwrap();
        if i % 10 == 0 {
            redis::cmd("DEL")
                .arg(format!("s{}", i / 2))
                .query::<i64>(&mut c)
                .unwrap();
            redis::cmd("EXPIRE")
                .arg(format!("s{i}"))
                .arg(100_000)
                .query::<i64>(&mut c)
                .unwrap();
            redis::cmd("INCRBYFLOAT")
                .arg("f")
                .arg("1.5")
                .query::<String>(&mut c)
                .unwrap();
        }
    }
}

/// BGREWRITEAOF with `appendonly no`, as redis-server 7.0: the AOF directory becomes one base
/// (seq one past the old base) and a manifest naming only it, the old files gone; it loads in
/// redis-server, DEBUG LOADAOF loads it, and `appendonly yes` later starts a log from it.
#[test]
fn bgrewriteaof_with_appendonly_no_writes_a_base_only_directory() {
    for preamble in ["yes", "no"] {
        let sb =
            StrongboxServer::start(&["--appendonly", "no", "--aof-use-rdb-preamble", preamble]);
        let what = format!("preamble {preamble}");
        write_workload(sb.port(), 60);
        let mut c = con(sb.port());
        let suffix = if preamble == "yes" { "rdb" } else { "aof" };
        for seq in 1..=2 {
            let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
            assert_eq!(r, "Background append only file rewriting started");
            wait_rewrite(&mut c);
            let dir = sb.dir().join("appendonlydir");
            let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
            assert_eq!(
                manifest,
                format!("file appendonly.aof.{seq}.base.{suffix} seq {seq} type b\n"),
                "{what}"
            );
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(
                names,
                [
                    format!("appendonly.aof.{seq}.base.{suffix}"),
                    "appendonly.aof.manifest".to_string()
                ],
                "{what}"
            );
        }
        let expected = dump_keyspace(sb.port(), 3, false);
        assert_aof_dir_loads_in_redis(sb.dir(), 3, &expected, &what);
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
        redis::cmd("DEBUG")
            .arg("LOADAOF")
            .query::<()>(&mut c)
            .unwrap();
        assert_same(&expected, &dump_keyspace(sb.port(), 3, false), &what);
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg("yes")
            .query::<()>(&mut c)
            .unwrap();
        wait_rewrite(&mut c);
        redis::cmd("SET")
            .arg("after")
            .arg("1")
            .query::<()>(&mut c)
            .unwrap();
        let now = dump_keyspace(sb.port(), 3, false);
        assert_eq!(now.len(), expected.len() + 1, "{what}");
        assert_aof_dir_loads_in_redis(sb.dir(), 3, &now, &what);
    }
}

fn wait_rewrite(c: &mut redis::Connection) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
        let busy =
            info.contains("aof_rewrite_in_progress:1") || info.contains("aof_rewrite_scheduled:1");
        if !busy {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "rewrite never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn strongbox_aof_directory_loads_in_redis() {
    aof_directory_loads_in_redis("yes", ".base.rdb");
}

#[test]
fn strongbox_aof_directory_with_resp_base_loads_in_redis() {
    aof_directory_loads_in_redis("no", ".base.aof");
}

fn aof_directory_loads_in_redis(preamble: &str, base_suffix: &str) {
    let mut sb = StrongboxServer::start(&[
        "--appendonly",
        "yes",
        "--aof-segment-size",
        "4kb",
        "--aof-timestamp-enabled",
        "yes",
        "--aof-use-rdb-preamble",
        preamble,
    ]);
    write_workload(sb.port(), 300);
    let mut c = con(sb.port());
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(r.contains("rewriting"), "{r}");
    write_workload(sb.port(), 200);
    wait_first_rewrite(&mut c, 10);
    write_workload(sb.port(), 100);
    let before = dump_keyspace(sb.port(), 3, false);
    sb.stop();
    let files: Vec<String> = std::fs::read_dir(sb.dir().join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(base_suffix)), "{files:?}");
    assert!(
        files.iter().filter(|f| f.ends_with(".incr.aof")).count() >= 2,
        "several segments expected: {files:?}"
    );
    // Redis 7.0 loads the directory to the same keyspace.
    assert_aof_dir_loads_in_redis(sb.dir(), 3, &before, "strongbox AOF dir in redis");
    // And Strongbox restarts to it too.
    sb.restart();
    let again = dump_keyspace(sb.port(), 3, false);
    assert_same(&before, &again, "strongbox restart");
}

fn last_incr_file(dir: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let name = manifest
        .lines()
        .rfind(|l| l.contains("type i"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .to_string();
    dir.join(name)
}

/// `appendfsync always` writes batches over preallocated padding (`#\n` lines). A kill -9
/// leaves the padding in the last incr file: Redis 7.0 loads that directory (it skips the
/// lines as annotations) and appends after the padding; Strongbox loads Redis's result,
/// including what Redis appended, and cuts the padding off its own directory at start.
#[test]
fn a_padded_log_left_by_kill9_loads_in_redis_and_back() {
    let mut sb = StrongboxServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-segment-size",
        "64kb",
    ]);
    write_workload(sb.port(), 400);
    let before = dump_keyspace(sb.port(), 3, false);
    sb.kill9();
    let aofdir = sb.dir().join("appendonlydir");
    let last = last_incr_file(&aofdir);
    let bytes = std::fs::read(&last).unwrap();
    assert!(
        bytes.ends_with(b"#\n#\n#\n#\n") && bytes.len() % 4096 == 2,
        "{} ({} bytes) should end in padding",
        last.display(),
        bytes.len()
    );
    let sealed: Vec<PathBuf> = std::fs::read_dir(&aofdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof") && *p != last)
        .collect();
    assert!(!sealed.is_empty(), "several segments expected");
    for p in &sealed {
        let b = std::fs::read(p).unwrap();
        assert!(!b.ends_with(b"#\n"), "{} keeps its padding", p.display());
    }

    // Redis 7.0 loads the padded directory, then appends after the padding.
    let d2 = tempfile::tempdir().unwrap();
    copy_dir(&aofdir, &d2.path().join("appendonlydir"));
    let mut rs = RedisServer::start_in(
        d2.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let in_redis = dump_keyspace(rs.port(), 3, false);
    assert_same(&before, &in_redis, "padded strongbox AOF dir in redis");
    let mut rc = con(rs.port());
    redis::cmd("SELECT").arg(1).query::<()>(&mut rc).unwrap();
    redis::cmd("SET")
        .arg("written-by")
        .arg("redis")
        .query::<()>(&mut rc)
        .unwrap();
    redis::cmd("RPUSH")
        .arg("l1")
        .arg("from-redis")
        .query::<i64>(&mut rc)
        .unwrap();
    let after_redis = dump_keyspace(rs.port(), 3, false);
    drop(rc);
    rs.stop();
    let redis_last = last_incr_file(&d2.path().join("appendonlydir"));
    assert!(std::fs::metadata(&redis_last).unwrap().len() > bytes.len() as u64);

    // Strongbox loads what Redis appended after the padding.
    let sb2 = StrongboxServer::start_in(d2.path(), &["--appendonly", "yes"]);
    let back = dump_keyspace(sb2.port(), 3, false);
    assert_same(&after_redis, &back, "redis's appends after the padding");

    // And Strongbox restarts on its own padded directory, cutting the padding off.
    sb.restart();
    let again = dump_keyspace(sb.port(), 3, false);
    assert_same(&before, &again, "strongbox restart after kill -9");
    let len = std::fs::metadata(&last).unwrap().len();
    assert!(
        len < bytes.len() as u64,
        "padding still there after restart"
    );
}

#[test]
fn save_writes_an_rdb_that_redis_check_rdb_and_redis_accept() {
    let f = fixtures().join("redis-7.0-all-types.rdb");
    let d = data_dir_with(&f, "dump.rdb");
    let mut sb = StrongboxServer::start_in(d.path(), &["--appendonly", "no"]);
    let before = dump_keyspace(sb.port(), 16, false);
    let mut c = con(sb.port());
    let r: String = redis::cmd("SAVE").query(&mut c).unwrap();
    assert_eq!(r, "OK");
    // BGSAVE produces an equivalent file.
    let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(r, "Background saving started");
    for _ in 0..200 {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        if info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_saves:2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.stop();
    let dump = d.path().join("dump.rdb");
    let out = std::process::Command::new("redis-check-rdb")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-check-rdb: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let d2 = data_dir_with(&dump, "dump.rdb");
    let rs = RedisServer::start_in(d2.path(), &["--appendonly", "no"]);
    let in_redis = dump_keyspace(rs.port(), 16, false);
    assert_same(&before, &in_redis, "strongbox dump.rdb in redis");
}

#[test]
fn dump_rdb_is_imported_as_the_base_of_a_new_aof_directory() {
    let f = fixtures().join("redis-7.0-all-types.rdb");
    let d = data_dir_with(&f, "dump.rdb");
    let mut sb = StrongboxServer::start_in(d.path(), &["--appendonly", "yes"]);
    let before = dump_keyspace(sb.port(), 16, false);
    assert!(before.len() > 10);
    let mut c = con(sb.port());
    redis::cmd("SET")
        .arg("after-import")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap();
    sb.restart();
    let after = dump_keyspace(sb.port(), 16, false);
    let mut expected = before.clone();
    expected.insert(
        (0, b"after-import".to_vec()),
        KeyDump {
            kind: "string".into(),
            value: vec![b"1".to_vec()],
            has_ttl: false,
        },
    );
    assert_same(&expected, &after, "after import + restart");
    let manifest =
        std::fs::read_to_string(d.path().join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(manifest.contains("type b"), "{manifest}");
}

#[test]
fn compaction_under_concurrent_writes_keeps_the_state() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes"]);
    // Enough keys that the snapshot walk spans many rounds.
    let mut c = con(sb.port());
    set_keys(&mut c, 20_000);
    let port = sb.port();
    let writer = std::thread::spawn(move || {
        let mut c = con(port);
        for i in 0..3000 {
            // Overwrites, deletes, new keys and collection growth during the snapshot.
            redis::cmd("SET")
                .arg(format!("k{}", i * 7 % 20_000))
                .arg(format!("w{i}"))
                .query::<()>(&mut c)
                .unwrap();
            redis::cmd("DEL")
                .arg(format!("k{}", i * 13 % 20_000))
                .query::<i64>(&mut c)
                .unwrap();
            redis::cmd("SET")
                .arg(format!("new{i}"))
                .arg(i)
                .query::<()>(&mut c)
                .unwrap();
            redis::cmd("RPUSH")
                .arg("list")
                .arg(i)
                .query::<i64>(&mut c)
                .unwrap();
            redis::cmd("INCR").arg("ctr").query::<i64>(&mut c).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(r.contains("rewriting"), "{r}");
    writer.join().unwrap();
    wait_first_rewrite(&mut c, 20);
    let before = dump_keyspace(sb.port(), 1, false);
    sb.restart();
    let after = dump_keyspace(sb.port(), 1, false);
    assert_same(&before, &after, "restart after compaction");
}

/// A client that writes until told to stop: INCR `ctr` (checking it counts every reply) and
/// RPUSH the count to `list`; joins to the number of acknowledged INCRs.
fn spawn_counting_writer(
    port: u16,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<i64>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut c = con(port);
        let mut acked = 0i64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let n: i64 = redis::cmd("INCR").arg("ctr").query(&mut c).unwrap();
            acked += 1;
            assert_eq!(n, acked);
            redis::cmd("RPUSH")
                .arg("list")
                .arg(acked)
                .query::<i64>(&mut c)
                .unwrap();
        }
        acked
    });
    (stop, writer)
}

fn persistence_info(c: &mut redis::Connection) -> String {
    redis::cmd("INFO").arg("persistence").query(c).unwrap()
}

/// `CONFIG SET appendfsync` at runtime, as Redis allows: the log continues in the same file
/// under the new policy (visible in how batches are written: `always` fsyncs each batch on
/// the log writer, everysec/no write on the execution thread when the writer is idle), while
/// a client writes the whole time and a rewrite runs across one of the switches. After
/// kill -9 every acknowledged write is there, and redis-server 7.0 loads the directory.
#[test]
fn config_set_appendfsync_switches_the_log_under_load() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let port = sb.port();
    let mut c = con(port);
    set_keys(&mut c, 5_000);
    let (stop, writer) = spawn_counting_writer(port);
    let set = |c: &mut redis::Connection, policy: &str| {
        let before = persistence_info(c);
        let r: String = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg(policy)
            .query(c)
            .unwrap();
        assert_eq!(r, "OK");
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query(c)
            .unwrap();
        assert_eq!(got, ["appendfsync", policy]);
        // Positions and totals go on across the switch.
        let after = persistence_info(c);
        for f in [
            "strongbox_aof_written",
            "strongbox_aof_batches",
            "strongbox_aof_fsyncs",
        ] {
            assert!(
                info_field(&after, f) >= info_field(&before, f),
                "{f} went back switching to {policy}"
            );
        }
    };
    // How the log wrote batches over a stretch of the writer's load under `policy`:
    // (batches, of which written on the execution thread, fsyncs).
    let observe = |c: &mut redis::Connection| {
        let a = persistence_info(c);
        std::thread::sleep(Duration::from_millis(300));
        let b = persistence_info(c);
        let d = |f: &str| info_field(&b, f) - info_field(&a, f);
        (
            d("strongbox_aof_batches"),
            d("strongbox_aof_inline_batches"),
            d("strongbox_aof_fsyncs"),
        )
    };
    std::thread::sleep(Duration::from_millis(100));
    for round in 0..2 {
        set(&mut c, "always");
        let (batches, inline, fsyncs) = observe(&mut c);
        assert!(batches > 10, "round {round}: the writer stalled? {batches}");
        assert_eq!(
            inline, 0,
            "round {round}: always wrote on the execution thread"
        );
        // (a batch counted before its fsync ends can fall between the two samples)
        assert!(
            fsyncs + 1 >= batches,
            "round {round}: {fsyncs} fsyncs, {batches} batches"
        );
        // (how many batches are written inline depends on the machine's load: some are)
        set(&mut c, "no");
        let (batches, inline, fsyncs) = observe(&mut c);
        assert!(
            batches > 10 && inline > 0,
            "round {round}: no: {inline} of {batches} inline"
        );
        assert_eq!(fsyncs, 0, "round {round}: `no` fsynced");
        set(&mut c, "everysec");
        let (batches, inline, fsyncs) = observe(&mut c);
        assert!(
            batches > 10 && inline > 0,
            "round {round}: everysec: {inline} of {batches} inline"
        );
        assert!(
            fsyncs <= 2,
            "round {round}: everysec: {fsyncs} fsyncs in 300 ms"
        );
    }
    // A switch asked for while a rewrite runs (slowed down to last) takes effect at once; the
    // rewrite starts again and completes.
    config_set(&mut c, "rdb-key-save-delay", "100");
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(r.contains("rewriting"), "{r}");
    std::thread::sleep(Duration::from_millis(50));
    set(&mut c, "always");
    let info = persistence_info(&mut c);
    assert_eq!(
        info_field(&info, "aof_rewrite_in_progress") + info_field(&info, "aof_rewrite_scheduled"),
        1,
        "{info}"
    );
    config_set(&mut c, "rdb-key-save-delay", "0");
    let (_, inline, fsyncs) = observe(&mut c);
    assert!(
        inline == 0 && fsyncs > 0,
        "during the rewrite: {inline} inline, {fsyncs} fsyncs"
    );
    wait_first_rewrite(&mut c, 30);
    let r = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("sometimes")
        .query::<String>(&mut c);
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("must be one of the following"),
        "bad value accepted"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.join().unwrap();
    let before = dump_keyspace(port, 1, false);
    drop(c);
    sb.kill9();
    sb.restart();
    let mut c = con(sb.port());
    let ctr: i64 = redis::cmd("GET").arg("ctr").query(&mut c).unwrap();
    assert_eq!(ctr, acked, "acknowledged INCRs lost");
    let after = dump_keyspace(sb.port(), 1, false);
    assert_same(&before, &after, "restart after kill -9");
    drop(c);
    sb.stop();
    assert_aof_dir_loads_in_redis(sb.dir(), 1, &before, "the directory in redis-server");
}

fn config_set(c: &mut redis::Connection, name: &str, value: &str) {
    let r: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .unwrap();
    assert_eq!(r, "OK", "CONFIG SET {name} {value}");
}

/// Wait until `aof_rewrites` reaches `n` with no rewrite in progress (at most 30 s).
fn wait_rewrites(c: &mut redis::Connection, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info = persistence_info(c);
        if info_field(&info, "aof_rewrite_in_progress") == 0
            && info_field(&info, "aof_rewrites") >= n
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no rewrite: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `CONFIG SET appendonly yes|no` at runtime, as Redis 7 does it (the documented way to move a
/// running server from RDB snapshots to the AOF): `yes` logs every write from then on and a
/// rewrite writes the dataset as the base (here while a BGSAVE runs: it waits for it); `no`
/// fsyncs and stops the log. A client writes throughout. kill -9 after `yes`: everything is
/// there, from before the switch and after it; redis-server 7.0 loads the directory. kill -9
/// after `no`: the log holds the state at the switch.
#[test]
fn config_set_appendonly_starts_and_stops_the_log_under_load() {
    let mut sb = StrongboxServer::start(&["--appendonly", "no", "--save", ""]);
    let port = sb.port();
    let dir = sb.dir().to_path_buf();
    let mut c = con(port);
    set_keys(&mut c, 5_000);
    let (stop, writer) = spawn_counting_writer(port);
    // A BGSAVE slowed to about a second is running: the log starts once it ends.
    config_set(&mut c, "rdb-key-save-delay", "200");
    let r: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert!(r.contains("saving"), "{r}");
    config_set(&mut c, "appendonly", "yes");
    let info = persistence_info(&mut c);
    assert_eq!(info_field(&info, "rdb_bgsave_in_progress"), 1, "{info}");
    assert_eq!(info_field(&info, "aof_rewrites"), 0, "{info}");
    assert_eq!(info_field(&info, "aof_rewrite_scheduled"), 1, "{info}");
    config_set(&mut c, "rdb-key-save-delay", "0");
    wait_rewrites(&mut c, 1);
    let info = persistence_info(&mut c);
    assert_eq!(info_field(&info, "aof_enabled"), 1, "{info}");
    std::thread::sleep(Duration::from_millis(200));
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left: {leftovers:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.join().unwrap();
    let before = dump_keyspace(port, 1, false);
    drop(c);
    sb.kill9();
    let mut sb2 = StrongboxServer::start_in(&dir, &["--appendonly", "yes"]);
    let after = dump_keyspace(sb2.port(), 1, false);
    assert_same(&before, &after, "kill -9 after appendonly yes");
    let mut c = con(sb2.port());
    let ctr: i64 = redis::cmd("GET").arg("ctr").query(&mut c).unwrap();
    assert_eq!(ctr, acked, "acknowledged INCRs lost");

    // Redis 7.0 loads the directory the switch made.
    assert_aof_dir_loads_in_redis(&dir, 1, &before, "in redis-server");

    // `no`, inside a transaction: the log stops after its EXEC (the transaction is logged
    // whole); later writes are not in it.
    let ((), (), ()): ((), (), ()) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("in-unit-1")
        .arg(1)
        .cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .cmd("SET")
        .arg("in-unit-2")
        .arg(2)
        .query(&mut c)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while info_field(&persistence_info(&mut c), "aof_enabled") != 0 {
        assert!(std::time::Instant::now() < deadline, "the log did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = dump_keyspace(sb2.port(), 1, false);
    assert!(before.contains_key(&(0, b"in-unit-2".to_vec())));
    redis::cmd("SET")
        .arg("after-stop")
        .arg(1)
        .query::<()>(&mut c)
        .unwrap();
    drop(c);
    sb2.kill9();
    // What a crash during `appendonly yes` leaves: its staging directory (removed at start;
    // a name that is not exactly one is left alone).
    let crashed = dir.join("temp-appendonlydir-4242");
    std::fs::create_dir(&crashed).unwrap();
    std::fs::write(
        crashed.join("appendonly.aof.1.incr.aof"),
        b"*1\r\n$4\r\nPING\r\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("temp-appendonlydir-mine")).unwrap();
    let sb3 = StrongboxServer::start_in(&dir, &["--appendonly", "yes"]);
    let again = dump_keyspace(sb3.port(), 1, false);
    assert_same(&before, &again, "kill -9 after appendonly no");
    assert!(!crashed.exists(), "a crashed staging directory was kept");
    assert!(dir.join("temp-appendonlydir-mine").exists());
}

/// As Redis 7: while `appendonly yes` set at runtime is still writing the log's first base,
/// SHUTDOWN (and SIGTERM) is refused ("Writing initial AOF, can't exit."), because the AOF
/// directory does not hold the dataset yet; SHUTDOWN FORCE exits anyway; once the base is
/// written, SHUTDOWN exits and the log restarts to the same keyspace.
#[test]
fn shutdown_waits_for_the_initial_aof_like_redis() {
    let mut sb = StrongboxServer::start(&["--appendonly", "no", "--save", ""]);
    let port = sb.port();
    let dir = sb.dir().to_path_buf();
    let mut c = con(port);
    set_keys(&mut c, 2_000);
    // The base's snapshot takes about a second.
    config_set(&mut c, "rdb-key-save-delay", "500");
    config_set(&mut c, "appendonly", "yes");
    assert_eq!(
        info_field(&persistence_info(&mut c), "aof_rewrite_in_progress"),
        1
    );
    // Nor does WAITAOF count the log yet (Redis: its AOF is not on until then).
    let e = redis::cmd("WAITAOF")
        .arg(1)
        .arg(0)
        .arg(0)
        .query::<Vec<i64>>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("appendonly is disabled"), "{e}");
    assert!(redis::cmd("SHUTDOWN").query::<()>(&mut c).is_err());
    std::thread::sleep(Duration::from_millis(200));
    assert!(sb.is_running(), "exited before the initial AOF was written");
    let mut c = con(port);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &sb.pid().unwrap().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        sb.is_running(),
        "SIGTERM: exited before the initial AOF was written"
    );
    config_set(&mut c, "rdb-key-save-delay", "0");
    wait_rewrites(&mut c, 1);
    let before = dump_keyspace(port, 1, false);
    drop(c);
    assert!(
        sb.stop().is_some_and(|s| s.success()),
        "SHUTDOWN after the base"
    );
    let sb2 = StrongboxServer::start_in(&dir, &["--appendonly", "yes"]);
    assert_same(&before, &dump_keyspace(sb2.port(), 1, false), "restart");
    drop(sb2);

    // SHUTDOWN FORCE does not wait.
    let mut sb = StrongboxServer::start(&["--appendonly", "no", "--save", ""]);
    let mut c = con(sb.port());
    set_keys(&mut c, 2_000);
    config_set(&mut c, "rdb-key-save-delay", "500");
    config_set(&mut c, "appendonly", "yes");
    assert!(redis::cmd("SHUTDOWN")
        .arg("FORCE")
        .query::<()>(&mut c)
        .is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sb.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "SHUTDOWN FORCE did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn debug_reload_keeps_the_dataset() {
    let f = fixtures().join("redis-7.0-all-types.rdb");
    let d = data_dir_with(&f, "dump.rdb");
    let sb = StrongboxServer::start_in(d.path(), &["--appendonly", "no"]);
    let before = dump_keyspace(sb.port(), 16, false);
    let mut c = con(sb.port());
    let r: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(r, "OK");
    let after = dump_keyspace(sb.port(), 16, false);
    assert_same(&before, &after, "DEBUG RELOAD");
}

#[test]
fn dump_restore_round_trips_between_redis_and_strongbox() {
    let f = fixtures().join("redis-7.0-all-types.rdb");
    let d = data_dir_with(&f, "dump.rdb");
    let rs = RedisServer::start_in(d.path(), &["--appendonly", "no"]);
    let sb = StrongboxServer::start(&["--appendonly", "no"]);
    let mut r = con(rs.port());
    let mut s = con(sb.port());
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut r).unwrap();
    assert!(keys.len() > 10);
    let mut checked = 0;
    for k in keys {
        let payload: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query(&mut r).unwrap();
        let Some(payload) = payload else { continue };
        let ok: String = redis::cmd("RESTORE")
            .arg(&k)
            .arg(0)
            .arg(&payload)
            .arg("REPLACE")
            .query(&mut s)
            .unwrap();
        assert_eq!(ok, "OK");
        let back: Vec<u8> = redis::cmd("DUMP").arg(&k).query(&mut s).unwrap();
        let mut copy = b"copy:".to_vec();
        copy.extend_from_slice(&k);
        let ok: String = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(0)
            .arg(&back)
            .query(&mut r)
            .unwrap();
        assert_eq!(ok, "OK");
        checked += 1;
    }
    let all = dump_keyspace(rs.port(), 1, true);
    for ((db, k), v) in &all {
        if k.starts_with(b"copy:") {
            continue;
        }
        let mut copy = b"copy:".to_vec();
        copy.extend_from_slice(k);
        let Some(c) = all.get(&(*db, copy)) else {
            continue;
        };
        assert_eq!(c.kind, v.kind, "{}", String::from_utf8_lossy(k));
        assert_eq!(c.value, v.value, "{}", String::from_utf8_lossy(k));
    }
    assert!(checked > 10);
    // A corrupt payload answers Redis's error.
    let e: redis::RedisResult<String> = redis::cmd("RESTORE")
        .arg("x")
        .arg(0)
        .arg("garbage")
        .query(&mut s);
    let msg = e.unwrap_err().to_string();
    assert!(
        msg.contains("DUMP payload version or checksum are wrong"),
        "{msg}"
    );
}

/// The INFO persistence field `name` as a number.
/// `SET k<i> <i>` for i in 0..n, pipelined.
fn set_keys(c: &mut redis::Connection, n: usize) {
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    p.query::<()>(c).unwrap();
}

/// Poll INFO persistence until the server's first rewrite has finished (at most `secs`
/// seconds); fails if it has not. Returns the last INFO persistence.
fn wait_first_rewrite(c: &mut redis::Connection, secs: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1") {
            return info;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rewrite did not finish: {info}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing from INFO: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Fill `key` (in the connection's database) with `n` elements of `kind`, pipelined.
fn fill_collection(c: &mut redis::Connection, kind: &str, key: &str, n: usize) {
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let mut cmd = redis::cmd(match kind {
            "list" => "RPUSH",
            "hash" => "HSET",
            "set" => "SADD",
            _ => "ZADD",
        });
        cmd.arg(key);
        for i in start..end {
            match kind {
                "list" => cmd.arg(format!("e{i}")),
                "set" => cmd.arg(i),
                "hash" => cmd.arg(format!("field:{i}")).arg(format!("v{i}")),
                _ => cmd.arg(i as f64 / 4.0).arg(format!("member:{i}")),
            };
        }
        cmd.query::<i64>(c).unwrap();
    }
}

#[test]
fn compaction_of_huge_keys_mutated_during_serialization_is_point_in_time() {
    huge_keys_compaction("yes");
}

#[test]
fn compaction_of_huge_keys_with_resp_base_is_point_in_time() {
    huge_keys_compaction("no");
}

/// Huge collections are shared with the snapshot thread and serialized piecewise there: writes
/// to them (and DEL, RENAME, MOVE, overwrite, expiry, SWAPDB, FLUSHDB) right after the
/// rewrite starts must leave the base holding the state as of the start — checked by loading
/// the base alone in redis-server 7.0 — and base + new incr file the state after; the
/// execution thread's copies and the buffered bytes stay bounded whatever the key sizes.
fn huge_keys_compaction(preamble: &str) {
    // `always`: the snapshot point is the BGREWRITEAOF itself (under everysec the rewrite
    // first waits for an fsync of the log's tail, so the mutations below could come first).
    let mut sb = StrongboxServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-use-rdb-preamble",
        preamble,
    ]);
    let mut c = con(sb.port());
    fill_collection(&mut c, "list", "biglist", 1_000_000);
    for (kind, key) in [
        ("hash", "bighash"),
        ("set", "bigset"),
        ("zset", "bigzset"),
        ("hash", "delme"),
        ("list", "unlinkme"),
        ("set", "renameme"),
        ("zset", "moveme"),
        ("list", "overwriteme"),
        ("hash", "expireme"),
        ("list", "ttlkey"),
        ("set", "intset"),
    ] {
        fill_collection(&mut c, kind, key, 20_000);
    }
    redis::cmd("EXPIRE")
        .arg("ttlkey")
        .arg(100_000)
        .query::<i64>(&mut c)
        .unwrap();
    for i in 0..2000 {
        redis::cmd("SET")
            .arg(format!("s{i}"))
            .arg(i)
            .query::<()>(&mut c)
            .unwrap();
    }
    for (db, kind, key) in [(2, "hash", "swapme"), (3, "list", "flushme")] {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        fill_collection(&mut c, kind, key, 20_000);
    }
    redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
    let before = dump_keyspace(sb.port(), 5, false);

    let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(r.contains("rewriting"), "{r}");
    // Mutations right after the snapshot point, while the huge keys are being serialized.
    let cmds: &[&[&str]] = &[
        &["RPUSH", "biglist", "x", "y"],
        &["LPOP", "biglist"],
        &["LSET", "biglist", "5", "changed"],
        &["HSET", "bighash", "newfield", "v", "field:3", "changed"],
        &["HDEL", "bighash", "field:1"],
        &["SADD", "bigset", "newmember"],
        &["SREM", "bigset", "7"],
        &["ZADD", "bigzset", "5", "newmember"],
        &["ZINCRBY", "bigzset", "10", "member:3"],
        &["ZREM", "bigzset", "member:4"],
        &["DEL", "delme"],
        &["UNLINK", "unlinkme"],
        &["RENAME", "renameme", "renamed"],
        &["SADD", "renamed", "extra"],
        &["MOVE", "moveme", "1"],
        &["SET", "overwriteme", "now a string"],
        &["PEXPIRE", "expireme", "1"],
        &["SADD", "intset", "not-an-int"],
        &["SET", "s5", "changed"],
        &["DEL", "s6"],
        &["SWAPDB", "2", "4"],
        &["SELECT", "4"],
        &["HSET", "swapme", "f", "after swap"],
        &["SELECT", "3"],
        &["FLUSHDB"],
        &["SELECT", "0"],
    ];
    for argv in cmds {
        let mut cmd = redis::cmd(argv[0]);
        for a in &argv[1..] {
            cmd.arg(*a);
        }
        cmd.query::<redis::Value>(&mut c).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    // Lazy expiry of the key with a 1 ms TTL.
    let n: i64 = redis::cmd("EXISTS").arg("expireme").query(&mut c).unwrap();
    assert_eq!(n, 0);
    let info = wait_first_rewrite(&mut c, 60);
    // The execution thread never copied a huge key: the buffered bytes and the bytes copied in
    // any one round stay far below one 1M-element key (~50 MB when copied whole).
    let shared = info_field(&info, "strongbox_compaction_shared_values");
    assert!(shared >= 12, "shared values: {shared}\n{info}");
    assert!(
        info_field(&info, "strongbox_compaction_cow_clones") >= 1,
        "{info}"
    );
    let peak = info_field(&info, "strongbox_compaction_peak_buffered_bytes");
    assert!(peak < 4 << 20, "peak buffered bytes {peak}\n{info}");
    let copied = info_field(&info, "strongbox_compaction_max_round_copied_bytes");
    assert!(
        copied < 4 << 20,
        "bytes copied in one round {copied}\n{info}"
    );
    let after = dump_keyspace(sb.port(), 5, false);
    assert_ne!(before, after);

    // The base alone, loaded by redis-server 7.0, is the state at the snapshot point.
    let aof_dir = sb.dir().join("appendonlydir");
    let manifest = std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).unwrap();
    let base = manifest
        .lines()
        .find(|l| l.ends_with("type b"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no base in {manifest}"))
        .to_string();
    let d2 = tempfile::tempdir().unwrap();
    let rs = if preamble == "yes" {
        std::fs::copy(aof_dir.join(&base), d2.path().join("dump.rdb")).unwrap();
        RedisServer::start_in(d2.path(), &["--appendonly", "no"])
    } else {
        let dir = d2.path().join("appendonlydir");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(aof_dir.join(&base), dir.join(&base)).unwrap();
        std::fs::write(
            dir.join("appendonly.aof.manifest"),
            format!("file {base} seq 1 type b\n"),
        )
        .unwrap();
        RedisServer::start_in(d2.path(), &["--appendonly", "yes"])
    };
    let base_state = dump_keyspace(rs.port(), 5, false);
    assert_same(
        &before,
        &base_state,
        "base alone in redis = state at the snapshot point",
    );
    drop(rs);

    // Base + the new incr file = the state after the writes.
    sb.restart();
    let again = dump_keyspace(sb.port(), 5, false);
    assert_same(&after, &again, "restart after compaction");
}

/// Names of the files under `dir` (recursively) that start with `temp-`.
fn temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(temp_files(&p));
        } else if e.file_name().to_string_lossy().starts_with("temp-") {
            out.push(p.display().to_string());
        }
    }
    out
}

/// SHUTDOWN NOSAVE while a rewrite, then a BGSAVE, is running (slowed down by
/// `rdb-key-save-delay`, as Redis's tests do): it stops the snapshot at once, leaves no temp
/// file behind (as Redis removes its child's), installs nothing half-written, and the next
/// start loads what was there before.
#[test]
fn shutdown_during_a_background_snapshot_stops_it_and_removes_its_temp_file() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--rdb-key-save-delay", "2000"]);
    let mut c = con(sb.port());
    set_keys(&mut c, 3000);
    let before = dump_keyspace(sb.port(), 1, false);
    for (cmd, flag) in [
        ("BGREWRITEAOF", "aof_rewrite_in_progress:1"),
        ("BGSAVE", "rdb_bgsave_in_progress:1"),
    ] {
        let mut c = con(sb.port());
        let _: String = redis::cmd(cmd).query(&mut c).unwrap();
        // 3000 keys at 2 ms each: the snapshot runs for ~6 s unless stopped.
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        assert!(info.contains(flag), "{cmd} not running: {info}");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !temp_files(sb.dir()).is_empty(),
            "{cmd}: no temp file to check"
        );
        let t = std::time::Instant::now();
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
        while sb.is_running() {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "{cmd}: shutdown waited for the snapshot"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            temp_files(sb.dir()),
            Vec::<String>::new(),
            "{cmd}: temp file left"
        );
        assert!(
            !sb.dir().join("dump.rdb").exists(),
            "{cmd}: a dump was installed"
        );
        let log = sb.log();
        assert!(log.contains("Killing it!"), "{cmd}: {log}");
        sb.restart();
        assert_same(&before, &dump_keyspace(sb.port(), 1, false), cmd);
    }
}

/// Under everysec, BGREWRITEAOF first has the log's unsynced tail fsynced while commands go on,
/// and rotates the log only then: the rotation's seal fsync, which the replies of later writes
/// wait for, has nothing left to cover when no write came in between (without the early fsync
/// it would cover everything written since the last once-a-second fsync).
#[test]
fn a_rewrite_fsyncs_the_log_tail_before_it_rotates() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut c = con(sb.port());
    set_keys(&mut c, 2000);
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert_eq!(r, "Background append only file rewriting started");
    let info = wait_first_rewrite(&mut c, 5);
    assert!(
        info.contains("aof_last_bgrewrite_status:ok"),
        "rewrite failed: {info}"
    );
    assert_eq!(
        info_field(&info, "strongbox_compaction_log_seal_bytes"),
        0,
        "the seal fsynced bytes the early fsync should have: {info}"
    );
    assert!(
        info_field(&info, "strongbox_compaction_presync_us") > 0,
        "{info}"
    );
    let before = dump_keyspace(sb.port(), 1, false);
    sb.restart();
    assert_same(&before, &dump_keyspace(sb.port(), 1, false), "restart");
}

/// `stop-writes-on-bgsave-error` (Redis 7.0's writeCommandsDeniedByDiskError): after a failed
/// BGSAVE, with save points set, writes, PING (how Sentinel notices a master that cannot
/// persist), writable scripts and functions are refused with Redis's MISCONF texts, reads go
/// on; `no` or `save ""` lifts it; a successful save clears it. Every reply byte-compared
/// with redis-server driven the same way (the dump's name is an existing directory, so the
/// save's final rename fails in both).
#[test]
fn a_failed_bgsave_stops_writes_as_in_redis() {
    fn wait_bgsave(c: &mut common::RawConn) -> String {
        for _ in 0..200 {
            let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
            if info.contains("rdb_bgsave_in_progress:0") {
                return info;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("BGSAVE did not end");
    }
    let script = "#!lua\nreturn redis.call('set', KEYS[1], 'x')";
    let ro_script = "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])";
    let lib = "#!lua name=lib\nredis.register_function('w', function(k) return redis.call('set', k[1], 'y') end)";
    let steps: &[&[&str]] = &[
        &["CONFIG", "SET", "dbfilename", "blocked"],
        &["SET", "k", "v"],
        &["FUNCTION", "LOAD", lib],
        &["BGSAVE"],
        &["__wait_bgsave"],
        &["SET", "k", "v2"],
        &["PING"],
        &["GET", "k"],
        &["EVAL", script, "1", "k"],
        &["EVAL", ro_script, "1", "k"],
        &["EVAL", "return redis.call('set', KEYS[1], 'z')", "1", "k"],
        &["FCALL", "w", "1", "k"],
        &["MULTI"],
        &["SET", "k", "v3"],
        &["EXEC"],
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"],
        &["SET", "k", "v4"],
        &["PING"],
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"],
        &["INCR", "n"],
        &["CONFIG", "SET", "save", ""],
        &["INCR", "n"],
        &["CONFIG", "SET", "save", "3600 1"],
        &["INCR", "n"],
        &["CONFIG", "SET", "dbfilename", "dump.rdb"],
        &["BGSAVE"],
        &["__wait_bgsave"],
        &["INCR", "n"],
        &["PING"],
        &["GET", "k"],
    ];
    let mut replies: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    for redis in [true, false] {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("blocked")).unwrap();
        let args = [
            "--appendonly",
            "no",
            "--save",
            "3600 1",
            "--enable-protected-configs",
            "yes",
        ];
        let (srv_r, srv_s);
        let port = if redis {
            srv_r = RedisServer::start_in(d.path(), &args);
            srv_r.port()
        } else {
            srv_s = StrongboxServer::start_in(d.path(), &args);
            srv_s.port()
        };
        let mut c = common::RawConn::connect(port);
        let mut got = Vec::new();
        for step in steps {
            if step[0] == "__wait_bgsave" {
                let info = wait_bgsave(&mut c);
                let status = info
                    .lines()
                    .find(|l| l.starts_with("rdb_last_bgsave_status:"))
                    .unwrap_or("")
                    .to_string();
                got.push(("INFO".into(), status.into_bytes()));
                continue;
            }
            got.push((step.join(" "), c.cmd(step)));
        }
        replies.push(got);
    }
    let (r, s) = (&replies[0], &replies[1]);
    for ((cmd, a), (_, b)) in r.iter().zip(s.iter()) {
        assert_eq!(
            common::escape(a),
            common::escape(b),
            "{cmd}: redis-server vs strongbox"
        );
    }
    // The test means something only if the save failed, then succeeded.
    let misconf = r.iter().filter(|(_, b)| b.starts_with(b"-MISCONF")).count();
    let shown: Vec<String> = r
        .iter()
        .map(|(c, b)| format!("{c} -> {}", common::escape(b)))
        .collect();
    assert!(misconf >= 6, "expected MISCONF replies: {shown:#?}");
}

/// Empty streams survive a rewrite in the RESP format (`aof-use-rdb-preamble no`): one made by
/// XGROUP CREATE … MKSTREAM (last ID 0-0, which XADD refuses: the rewrite's placeholder entry
/// must be 0-1, as Redis writes it) and one emptied by XDEL (last ID kept). Checked after a
/// restart of Strongbox and in redis-server loading the same directory. The first was lost,
/// with its consumer group, at the restart after a rewrite.
#[test]
fn empty_streams_survive_a_resp_rewrite() {
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut c = con(sb.port());
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "fresh", "workers", "$", "MKSTREAM"])
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&["emptied", "5-1", "f", "v"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "emptied", "g", "0"])
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("XDEL")
        .arg(&["emptied", "5-1"])
        .query(&mut c)
        .unwrap();
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert_eq!(r, "Background append only file rewriting started");
    wait_first_rewrite(&mut c, 10);
    let show = |port: u16| -> Vec<String> {
        let mut c = con(port);
        let mut out = Vec::new();
        for k in ["fresh", "emptied"] {
            for what in [&["XINFO", "STREAM", k][..], &["XINFO", "GROUPS", k][..]] {
                let v: redis::Value = redis::cmd(what[0])
                    .arg(&what[1..])
                    .query(&mut c)
                    .unwrap_or(redis::Value::SimpleString("missing".into()));
                out.push(format!("{what:?}: {v:?}"));
            }
        }
        out
    };
    let before = show(sb.port());
    assert!(before.iter().all(|l| !l.contains("missing")), "{before:#?}");
    sb.restart();
    assert_eq!(show(sb.port()), before, "after a restart");
    let d2 = tempfile::tempdir().unwrap();
    copy_dir(
        &sb.dir().join("appendonlydir"),
        &d2.path().join("appendonlydir"),
    );
    let rs = RedisServer::start_in(d2.path(), &["--appendonly", "yes"]);
    assert_eq!(
        show(rs.port()),
        before,
        "redis-server loading our directory"
    );
}
