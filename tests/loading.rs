//! Serving clients while the data set loads (Redis's `loading` state): a client that connects
//! during a long load is answered at once — `-LOADING Redis is loading the dataset in memory`,
//! or the reply of a command Redis allows while loading — byte for byte as redis-server 7.0
//! answers during the same load; INFO shows `loading:1` with progress; a shutdown (SIGTERM,
//! SHUTDOWN) stops the load and exits cleanly, leaving the files as they were.
//!
//! The loads are slowed down with Redis's own test knobs (`key-load-delay`,
//! `loading-process-events-interval-bytes`), as Redis's suite does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{escape, RawConn, RedisServer, ServerProcess, StrongboxServer};

const LOADING: &[u8] = b"-LOADING Redis is loading the dataset in memory\r\n";

/// Keys (of 1000-byte values) in the image: with a delay of 100 µs per key the load takes
/// ~2–4 s, long enough for every check below to run while it lasts.
const KEYS: &str = "20000";
const SLOW_LOAD: [&str; 6] = [
    "--key-load-delay",
    "100",
    "--loading-process-events-interval-bytes",
    "1024",
    "--rdbcompression",
    "no",
];

fn info(c: &mut RawConn, section: &str) -> String {
    let r = c.cmd(&["INFO", section]);
    String::from_utf8_lossy(&r).into_owned()
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

fn loading(c: &mut RawConn) -> bool {
    field(&info(c, "persistence"), "loading") == Some("1")
}

/// Wait until PING answers +PONG (the load is over); panics after `limit`.
fn wait_loaded(s: &ServerProcess, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut c = s.conn();
        let r = c.cmd(&["PING"]);
        if r == b"+PONG\r\n" {
            return;
        }
        assert_eq!(r, LOADING, "PING while loading");
        assert!(
            Instant::now() < deadline,
            "still loading after {limit:?}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Commands sent while the load runs (each with one reply): what Redis refuses with -LOADING
/// and what it runs (the commands with the `loading` flag), in and out of MULTI and the
/// pub/sub context, the checks that come before the loading check (arity, unknown command),
/// and CONFIG SET of a DENY_LOADING_CONFIG option.
const DURING_LOAD: &[&[&str]] = &[
    &["PING"],
    &["GET", "key:1"],
    &["SET", "a", "b"],
    &["DBSIZE"],
    &["KEYS", "*"],
    &["TYPE", "key:1"],
    &["EVAL", "return 1", "0"],
    &["ECHO", "hi"],
    &["GET"],
    &["NOSUCHCOMMAND", "x"],
    &["SELECT", "1"],
    &["SELECT", "0"],
    &["MULTI"],
    &["SET", "a", "b"],
    &["EXEC"],
    &["MULTI"],
    &["ECHO", "x"],
    &["EXEC"],
    &["WATCH", "key:2"],
    &["UNWATCH"],
    &["CONFIG", "FOO"],
    &["CONFIG", "GET"],
    &["CLIENT", "NOSUCH"],
    &["XINFO", "NOSUCH"],
    &["MEMORY", "USAGE", "key:1"],
    &["CONFIG", "SET", "appendonly", "yes"],
    &["CONFIG", "SET", "foo", "bar", "appendonly", "yes"],
    &["CONFIG", "SET", "loglevel", "debug"],
    &["CONFIG", "GET", "loglevel"],
    &["CONFIG", "SET", "loglevel", "notice"],
    &["CLIENT", "SETNAME", "loader"],
    &["CLIENT", "GETNAME"],
    &["AUTH", "x"],
    &["PUBLISH", "ch", "x"],
    &["DEBUG", "LOG", "while loading"],
    &["SCRIPT", "EXISTS", "x"],
    &["OBJECT", "ENCODING", "key:1"],
    &["SUBSCRIBE", "c"],
    &["PING"],
    &["GET", "x"],
    &["UNSUBSCRIBE", "c"],
    &["RESET"],
];

fn run_during_load(port: u16) -> Vec<Vec<u8>> {
    let mut c = RawConn::connect(port);
    DURING_LOAD.iter().map(|cmd| c.cmd(cmd)).collect()
}

/// `loading_*` field names of INFO persistence, in order.
fn loading_fields(info: &str) -> Vec<&str> {
    info.lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("loading") || *k == "async_loading")
        .collect()
}

/// Start a server with the slow-load knobs in a fresh directory (nothing to load), put
/// `dump` there, restart it and return once it answers (while loading).
fn restart_on(s: &mut ServerProcess, dump: &Path) {
    s.stop();
    std::fs::copy(dump, s.dir().join("dump.rdb")).expect("copy dump.rdb");
    s.restart_until_answer();
}

#[test]
fn clients_are_answered_as_redis_answers_them_while_an_rdb_loads() {
    for io_threads in ["1", "2"] {
        // One image, made by redis-server, loaded by both.
        let mut args = vec![
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
            "--io-threads",
            io_threads,
        ];
        args.extend(SLOW_LOAD);
        // Slower still: the commands below run on both servers while both load.
        let delay = args.iter().position(|a| *a == "--key-load-delay");
        args[delay.expect("--key-load-delay") + 1] = "250";
        let mut r = RedisServer::start(&args);
        let mut rc = r.conn();
        assert_eq!(
            rc.cmd(&["DEBUG", "POPULATE", KEYS, "key", "1000"]),
            b"+OK\r\n"
        );
        assert_eq!(rc.cmd(&["SAVE"]), b"+OK\r\n");
        let digest = rc.cmd(&["DEBUG", "DIGEST"]);
        drop(rc);
        let image = tempfile::tempdir().expect("tempdir");
        let dump = image.path().join("dump.rdb");
        std::fs::copy(r.dir().join("dump.rdb"), &dump).expect("copy dump.rdb");
        let dump_len = std::fs::metadata(&dump).expect("dump size").len();
        let mut s = StrongboxServer::start(&args);

        restart_on(&mut s, &dump);
        restart_on(&mut r, &dump);
        let ours = run_during_load(s.port());
        let theirs = run_during_load(r.port());
        let (mut sc, mut rc) = (s.conn(), r.conn());
        let (s_info, r_info) = (info(&mut sc, "persistence"), info(&mut rc, "persistence"));
        let (s_loading, r_loading) = (loading(&mut sc), loading(&mut rc));
        assert!(
            s_loading && r_loading,
            "both servers must still be loading after the commands (strongbox: {s_loading}, \
             redis: {r_loading}; raise key-load-delay)\n{s_info}\n{}",
            s.log()
        );
        for (i, cmd) in DURING_LOAD.iter().enumerate() {
            assert_eq!(
                escape(&ours[i]),
                escape(&theirs[i]),
                "io-threads {io_threads}: {cmd:?} while loading"
            );
        }
        assert_eq!(ours[0], LOADING);
        assert_eq!(ours[1], LOADING);

        // INFO: loading:1 and Redis's loading_* fields, in Redis's order, with progress.
        assert_eq!(loading_fields(&s_info), loading_fields(&r_info), "{s_info}");
        assert_eq!(field(&s_info, "loading"), Some("1"));
        assert_eq!(
            field(&s_info, "loading_total_bytes"),
            Some(dump_len.to_string().as_str())
        );
        let loaded: u64 = field(&s_info, "loading_loaded_bytes")
            .and_then(|v| v.parse().ok())
            .expect("loading_loaded_bytes");
        assert!(
            loaded > 0 && loaded < dump_len,
            "loaded {loaded} of {dump_len}"
        );
        let perc: f64 = field(&s_info, "loading_loaded_perc")
            .and_then(|v| v.parse().ok())
            .expect("loading_loaded_perc");
        assert!(perc > 0.0 && perc < 100.0, "{perc}");
        assert!(field(&s_info, "loading_eta_seconds").is_some());

        // After the load: everything answers, all the data is there.
        wait_loaded(&s, Duration::from_secs(60));
        wait_loaded(&r, Duration::from_secs(60));
        let mut sc = s.conn();
        assert_eq!(sc.cmd(&["DBSIZE"]), format!(":{KEYS}\r\n").as_bytes());
        assert_eq!(sc.cmd(&["DEBUG", "DIGEST"]), digest);
        assert_eq!(sc.cmd(&["SET", "a", "b"]), b"+OK\r\n");
        let after = info(&mut sc, "persistence");
        assert_eq!(field(&after, "loading"), Some("0"));
        assert!(field(&after, "loading_total_bytes").is_none(), "{after}");
        assert!(s.log().contains("DEBUG LOG: while loading"));
    }
}

/// Every file of the AOF directory with its bytes.
fn aof_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("appendonlydir"))
        .expect("appendonlydir")
        .map(|e| {
            let e = e.expect("dir entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read AOF file"),
            )
        })
        .collect()
}

#[test]
fn a_shutdown_during_the_load_exits_at_once_and_leaves_the_files_as_they_were() {
    // SIGTERM with io-threads 1, SHUTDOWN (the command, which has the loading flag) with 2.
    for (io_threads, how) in [("1", "SIGTERM"), ("2", "SHUTDOWN")] {
        let mut args = vec![
            "--appendonly",
            "yes",
            "--enable-debug-command",
            "yes",
            "--io-threads",
            io_threads,
        ];
        args.extend(SLOW_LOAD);
        let mut s = StrongboxServer::start(&args);
        let mut c = s.conn();
        // A log of 20000 SETs and a few other commands, replayed at 100 µs each.
        set_keys_pipelined(&mut c, 20_000);
        assert_eq!(c.cmd(&["RPUSH", "list", "a", "b", "c"]), b":3\r\n");
        assert_eq!(c.cmd(&["INCRBY", "counter", "7"]), b":7\r\n");
        let digest = c.cmd(&["DEBUG", "DIGEST"]);
        drop(c);
        s.stop();
        let files = aof_files(s.dir());

        s.restart_until_answer();
        let mut c = s.conn();
        assert_eq!(c.cmd(&["GET", "counter"]), LOADING);
        assert!(loading(&mut c), "{}", s.log());
        let asked = Instant::now();
        let status = if how == "SIGTERM" {
            s.terminate()
        } else {
            c.send_cmd(&["SHUTDOWN"]);
            // Nothing is answered: the server exits (as Redis, without saving).
            assert!(c.is_closed_within(Duration::from_secs(5)), "{}", s.log());
            s.stop()
        };
        let took = asked.elapsed();
        assert!(
            status.is_some_and(|st| st.success()),
            "{how} while loading: exit {status:?}\n{}",
            s.log()
        );
        assert!(took < Duration::from_secs(2), "{how} took {took:?}");
        assert!(s.log().contains("ready to exit"), "{}", s.log());
        assert_eq!(
            aof_files(s.dir()),
            files,
            "{how} during the load changed the files"
        );

        // The next start loads the same data set.
        s.restart();
        let mut c = s.conn();
        assert_eq!(c.cmd(&["DEBUG", "DIGEST"]), digest);
        assert_eq!(c.cmd(&["DBSIZE"]), b":20002\r\n");
        assert_eq!(c.cmd(&["GET", "key:19999"]), b"$11\r\nvalue:19999\r\n");
    }
}

/// Poll `cond` every 50 ms for up to `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_replica_serves_clients_while_it_loads_the_masters_rdb() {
    let mut master = RedisServer::start(&[
        "--enable-debug-command",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let mut mc = master.conn();
    assert_eq!(
        mc.cmd(&["DEBUG", "POPULATE", KEYS, "key", "1000"]),
        b"+OK\r\n"
    );
    let digest = mc.cmd(&["DEBUG", "DIGEST"]);
    let master_port = master.port().to_string();
    // One replica loads to the end, one is stopped by SIGTERM while it loads.
    for (io_threads, sigterm) in [("1", false), ("2", true)] {
        let mut args = vec!["--io-threads", io_threads];
        args.extend(SLOW_LOAD);
        let mut s = StrongboxServer::start(&args);
        let mut c = s.conn();
        assert_eq!(c.cmd(&["SET", "mine", "1"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["REPLICAOF", "127.0.0.1", &master_port]), b"+OK\r\n");
        wait_for(Duration::from_secs(30), "the replica's load", || {
            loading(&mut c)
        });
        assert_eq!(c.cmd(&["PING"]), LOADING);
        assert_eq!(c.cmd(&["GET", "key:1"]), LOADING);
        // A write is refused as by a read-only replica first (Redis's order).
        assert_eq!(
            c.cmd(&["SET", "a", "b"]),
            b"-READONLY You can't write against a read only replica.\r\n"
        );
        let repl = info(&mut c, "replication");
        assert_eq!(field(&repl, "role"), Some("slave"), "{repl}");
        assert_eq!(field(&repl, "master_link_status"), Some("down"), "{repl}");
        assert_eq!(field(&repl, "master_sync_in_progress"), Some("1"), "{repl}");
        let persistence = info(&mut c, "persistence");
        assert!(field(&persistence, "loading_loaded_bytes").is_some());
        if sigterm {
            let asked = Instant::now();
            let status = s.terminate();
            assert!(
                status.is_some_and(|st| st.success()),
                "SIGTERM while loading: exit {status:?}\n{}",
                s.log()
            );
            assert!(asked.elapsed() < Duration::from_secs(2), "{}", s.log());
            // The files still hold the data set from before the sync (the log stopped before
            // the flush), not a half-loaded one.
            s.restart();
            let mut c = s.conn();
            assert_eq!(c.cmd(&["DBSIZE"]), b":1\r\n");
            assert_eq!(c.cmd(&["GET", "mine"]), b"$1\r\n1\r\n");
            continue;
        }
        wait_for(Duration::from_secs(60), "the link up", || {
            field(&info(&mut c, "replication"), "master_link_status") == Some("up")
        });
        assert_eq!(c.cmd(&["DBSIZE"]), format!(":{KEYS}\r\n").as_bytes());
        assert_eq!(c.cmd(&["DEBUG", "DIGEST"]), digest);
        assert_eq!(field(&info(&mut c, "persistence"), "loading"), Some("0"));
    }
    drop(mc);
    master.stop();
}

#[test]
fn debug_reload_and_loadaof_serve_the_other_clients_while_they_load() {
    for (io_threads, appendonly, sub) in [("1", "no", "RELOAD"), ("2", "yes", "LOADAOF")] {
        let mut args = vec![
            "--appendonly",
            appendonly,
            "--enable-debug-command",
            "yes",
            "--io-threads",
            io_threads,
        ];
        args.extend(SLOW_LOAD);
        let s = StrongboxServer::start(&args);
        let mut c = s.conn();
        if appendonly == "no" {
            assert_eq!(
                c.cmd(&["DEBUG", "POPULATE", KEYS, "key", "1000"]),
                b"+OK\r\n"
            );
        } else {
            // DEBUG POPULATE is not logged: SETs are.
            set_keys_pipelined(&mut c, 20_000);
        }
        let digest = c.cmd(&["DEBUG", "DIGEST"]);
        let mut reloading = s.conn();
        reloading.send_cmd(&["DEBUG", sub]);
        wait_for(Duration::from_secs(30), "DEBUG's load", || {
            c.cmd(&["PING"]) == LOADING
        });
        assert!(loading(&mut c), "{sub}: INFO loading:1 while it loads");
        assert_eq!(c.cmd(&["GET", "key:1"]), LOADING);
        assert_eq!(c.cmd(&["ECHO", "x"]), b"$1\r\nx\r\n");
        reloading.set_timeout(Duration::from_secs(60));
        assert_eq!(
            reloading.read_reply(),
            b"+OK\r\n",
            "DEBUG {sub}\n{}",
            s.log()
        );
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
        assert_eq!(c.cmd(&["DEBUG", "DIGEST"]), digest);
        assert_eq!(field(&info(&mut c, "persistence"), "loading"), Some("0"));
    }
}

/// `SET key:<i> value:<i>` for i in 0..n, in one pipeline (they are logged, as the loads
/// above replay them).
fn set_keys_pipelined(c: &mut common::RawConn, n: usize) {
    let mut pipeline = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        pipeline.extend(common::encode_command(&["SET", k.as_str(), v.as_str()]));
    }
    c.send(&pipeline);
    for _ in 0..n {
        assert_eq!(c.read_reply(), b"+OK\r\n");
    }
}
