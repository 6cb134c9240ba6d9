//! Config files as redis-server reads them: Debian's stock /etc/redis/redis.conf starts Strongbox
//! and CONFIG GET * then answers what real redis-server 7.0 answers with the same file;
//! `include` loads another file (and a missing one stops start-up with Redis's message);
//! `loadmodule` is refused naming the module; `rename-command` renames or removes commands.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{escape, parse_frame, RawConn, ServerKind, ServerProcess};

/// Debian's stock config, installed by the `redis-server` package (.ci/run installs it).
const STOCK_CONF: &str = "/etc/redis/redis.conf";

/// CONFIG GET * entries whose values legitimately differ between the two servers of the
/// comparison: each process is given its own port, data directory and pid file.
const PER_PROCESS: &[&str] = &["port", "dir", "pidfile"];

/// Options Strongbox has and Redis 7.0 does not: its own (`aof-segment-size`,
/// `appendfsync-delay-max-ms`) and Redis 7.2's set-listpack names (docs/configuration in
/// README).
const STRONGBOX_ONLY: &[&str] = &[
    "aof-segment-size",
    "appendfsync-delay-max-ms",
    "set-max-listpack-entries",
    "set-max-listpack-value",
];

/// Starts `kind` with config file `conf` (plus its own port, directory, pid file and captured
/// log: [`ServerProcess::start_with_conf`]) and `extra` arguments, once it answers PING.
fn start(kind: ServerKind, conf: &str, extra: &[&str]) -> ServerProcess {
    ServerProcess::start_with_conf(kind, conf, extra)
}

/// Runs `bin args...`, expecting it to exit with an error; returns what it printed.
fn start_fails(bin: &Path, args: &[&str]) -> String {
    let out = common::run_with_timeout(Command::new(bin).args(args), None, Duration::from_secs(20));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{} {args:?} should have refused to start:\n{text}",
        bin.display()
    );
    text
}

fn strongbox() -> PathBuf {
    common::server::strongbox_bin()
}

fn redis() -> PathBuf {
    PathBuf::from(common::server::REDIS_SERVER_BIN)
}

fn bulk(f: &common::Frame) -> String {
    assert_eq!(f.kind, b'$', "{}", escape(&f.raw));
    let start = f.raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    String::from_utf8_lossy(&f.raw[start..f.raw.len() - 2]).into_owned()
}

/// CONFIG GET <pattern> as a map.
fn config_get(c: &mut RawConn, pattern: &str) -> BTreeMap<String, String> {
    let raw = c.cmd(&["CONFIG", "GET", pattern]);
    let f = parse_frame(&raw).unwrap().unwrap();
    assert!(f.is_aggregate(), "{}", escape(&raw));
    f.children
        .chunks(2)
        .map(|kv| (bulk(&kv[0]), bulk(&kv[1])))
        .collect()
}

fn stock_conf() -> &'static str {
    assert!(
        Path::new(STOCK_CONF).is_file(),
        "{STOCK_CONF} is missing: install Debian's redis-server package (apt-get install redis-server), \
         which this test compares against"
    );
    STOCK_CONF
}

#[test]
fn debian_stock_redis_conf_starts_and_config_get_matches_redis() {
    let conf = stock_conf();
    let sb = start(ServerKind::Strongbox, conf, &[]);
    let rd = start(ServerKind::Redis, conf, &[]);
    let (mut s, mut r) = (sb.conn(), rd.conn());
    assert_eq!(s.cmd(&["PING"]), b"+PONG\r\n");
    let ours = config_get(&mut s, "*");
    let theirs = config_get(&mut r, "*");
    let mut diffs = Vec::new();
    for (k, v) in &theirs {
        if PER_PROCESS.contains(&k.as_str()) {
            continue;
        }
        match ours.get(k) {
            None => diffs.push(format!("{k}: missing in Strongbox (Redis: {v:?})")),
            Some(o) if o != v => diffs.push(format!("{k}: Strongbox {o:?}, Redis {v:?}")),
            _ => {}
        }
    }
    for k in ours.keys() {
        if !theirs.contains_key(k) && !STRONGBOX_ONLY.contains(&k.as_str()) {
            diffs.push(format!("{k}: only in Strongbox"));
        }
    }
    assert!(
        diffs.is_empty(),
        "CONFIG GET * differs from redis-server with {conf} ({} differences):\n{}\n--- Strongbox log ---\n{}",
        diffs.len(),
        diffs.join("\n"),
        sb.log()
    );
    // Hidden options answer an exact name only; aliases answer under the name asked.
    for name in [
        "watchdog-period",
        "key-load-delay",
        "slave-read-only",
        "hash-max-ziplist-entries",
        "lua-time-limit",
        "list-max-ziplist-size",
    ] {
        assert_eq!(
            config_get(&mut s, name),
            config_get(&mut r, name),
            "CONFIG GET {name}"
        );
    }
    // CONFIG SET: immutable options, bad values and special syntaxes answer as Redis.
    let sets: &[&[&str]] = &[
        &["daemonize", "yes"],
        &["unixsocketperm", "700"],
        &["replicaof", "no one"],
        &["slaveof", "127.0.0.1 1"],
        &["socket-mark-id", "1"],
        &["cluster-enabled", "yes"],
        &["enable-debug-command", "yes"],
        &["maxmemory-samples", "1k"],
        &["proto-max-bulk-len", "1000"],
        &["proc-title-template", "{foo}"],
        &["proc-title-template", "{title}"],
        &["latency-tracking-info-percentiles", "101"],
        &["latency-tracking-info-percentiles", "abc"],
        &["latency-tracking-info-percentiles", "50 99.99"],
        &["oom-score-adj", "relative"],
        &["oom-score-adj", "foo"],
        &["maxmemory-clients", "10%"],
        &["shutdown-on-sigint", "now save"],
        &["propagation-error-behavior", "foo"],
        &["slave-priority", "5"],
        &["hash-max-ziplist-value", "1k"],
        &["client-output-buffer-limit", "pubsub 1mb 2mb 3"],
        &["client-output-buffer-limit", "master 1 2 3"],
        &["client-output-buffer-limit", "normal 1 2"],
        &["tls-auth-clients", "optional"],
        // An option and its alias in one call are both set (the last wins); one name twice,
        // in any case, is a duplicate.
        &[
            "hash-max-ziplist-entries",
            "5",
            "hash-max-listpack-entries",
            "6",
        ],
        &["slave-read-only", "yes", "replica-read-only", "no"],
        &["maxmemory-samples", "5", "MAXMEMORY-SAMPLES", "6"],
    ];
    for kv in sets {
        let argv: Vec<&str> = ["CONFIG", "SET"].iter().chain(kv.iter()).copied().collect();
        assert_eq!(
            escape(&s.cmd(&argv)),
            escape(&r.cmd(&argv)),
            "CONFIG SET {kv:?}"
        );
    }
    let ours = config_get(&mut s, "*");
    let theirs = config_get(&mut r, "*");
    for (k, v) in &theirs {
        if !PER_PROCESS.contains(&k.as_str()) {
            assert_eq!(ours.get(k), Some(v), "{k} after the CONFIG SETs");
        }
    }
}

#[test]
fn include_loads_another_file_and_a_missing_one_stops_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let inc = tmp.path().join("extra.conf");
    std::fs::write(&inc, "maxmemory 2mb\nslave-read-only no\nhz 1000\n").unwrap();
    let conf = tmp.path().join("main.conf");
    std::fs::write(
        &conf,
        format!(
            "maxmemory 1mb\ninclude {}\nlua-time-limit 77\n# later lines win\n",
            inc.display()
        ),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let sb = start(ServerKind::Strongbox, conf_s, &[]);
    let rd = start(ServerKind::Redis, conf_s, &[]);
    for pattern in [
        "maxmemory",
        "replica-read-only",
        "busy-reply-threshold",
        "hz",
    ] {
        assert_eq!(
            config_get(&mut sb.conn(), pattern),
            config_get(&mut rd.conn(), pattern),
            "{pattern}"
        );
    }
    assert_eq!(
        config_get(&mut sb.conn(), "maxmemory")["maxmemory"],
        "2097152"
    );

    // A missing file: Redis's message, and no start.
    let missing = tmp.path().join("nope.conf");
    let bad = tmp.path().join("bad.conf");
    std::fs::write(&bad, format!("include {}\n", missing.display())).unwrap();
    let bad_s = bad.to_str().unwrap();
    let expected = format!(
        "Fatal error, can't open config file '{}': No such file or directory",
        missing.display()
    );
    for bin in [strongbox(), redis()] {
        let out = start_fails(&bin, &[bad_s, "--port", "0"]);
        assert!(out.contains(&expected), "{}: {out}", bin.display());
    }
    // A file that includes itself is refused rather than recursing forever.
    let selfinc = tmp.path().join("self.conf");
    std::fs::write(&selfinc, format!("include {}\n", selfinc.display())).unwrap();
    let out = start_fails(&strongbox(), &[selfinc.to_str().unwrap()]);
    assert!(out.contains("include nested"), "{out}");
}

#[test]
fn loadmodule_and_sentinel_are_refused_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("m.conf");
    std::fs::write(
        &conf,
        "port 0\nloadmodule /usr/lib/redis/modules/redisearch.so ARG\n",
    )
    .unwrap();
    let out = start_fails(&strongbox(), &[conf.to_str().unwrap()]);
    assert!(
        out.contains("FATAL CONFIG FILE ERROR")
            && out.contains("at line 2")
            && out.contains("cannot load Redis modules")
            && out.contains("/usr/lib/redis/modules/redisearch.so"),
        "{out}"
    );
    std::fs::write(&conf, "sentinel monitor mymaster 127.0.0.1 6379 2\n").unwrap();
    let out = start_fails(&strongbox(), &[conf.to_str().unwrap()]);
    assert!(out.contains("not Redis Sentinel"), "{out}");
}

#[test]
fn command_introspection_after_rename_command_answers_as_redis() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("r.conf");
    std::fs::write(
        &conf,
        "rename-command get myget\nrename-command flushall \"\"\nrename-command config cfg\n",
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let sb = start(ServerKind::Strongbox, conf_s, &[]);
    let rd = start(ServerKind::Redis, conf_s, &[]);
    let (mut s, mut r) = (sb.conn(), rd.conn());
    // A renamed command is found under its new name and shown under its original one; the
    // old name and a removed command are gone (INFO/DOCS/GETKEYS/LIST).
    let cmds: &[&[&str]] = &[
        &["COMMAND", "INFO", "myget", "get", "flushall", "MYGET"],
        &["COMMAND", "GETKEYS", "myget", "a"],
        &["COMMAND", "GETKEYS", "get", "a"],
        &["COMMAND", "INFO", "cfg|get", "config|get"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "get"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "myget"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "flushall"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "cfg*"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "config|get"],
    ];
    for c in cmds {
        assert_eq!(escape(&s.cmd(c)), escape(&r.cmd(c)), "{c:?}");
    }
    // COMMAND DOCS: one entry, named `get` (Strongbox's docs lack Redis's argument lists, so
    // only the names are compared).
    let docs = ["COMMAND", "DOCS", "myget", "get", "flushall"];
    for reply in [s.cmd(&docs), r.cmd(&docs)] {
        assert!(
            reply.starts_with(b"*2\r\n$3\r\nget\r\n*"),
            "{}",
            escape(&reply)
        );
    }
    // COMMAND COUNT and the full listings leave the removed command out (the totals differ
    // between the servers: Strongbox has fewer commands, so compare with and without it).
    let plain = start(ServerKind::Strongbox, stock_conf_or_empty(&tmp), &[]);
    let mut p = plain.conn();
    let count = |c: &mut RawConn| {
        String::from_utf8_lossy(&c.cmd(&["COMMAND", "COUNT"]))
            .trim_start_matches(':')
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    assert_eq!(count(&mut s), count(&mut p) - 1);
    let listed = String::from_utf8_lossy(&s.cmd(&["COMMAND", "LIST"])).to_string();
    assert!(listed.contains("\r\nget\r\n") && !listed.contains("\r\nflushall\r\n"));
}

/// An empty config file (start-up with defaults and no directive).
fn stock_conf_or_empty(tmp: &tempfile::TempDir) -> &'static str {
    let path = tmp.path().join("empty.conf");
    std::fs::write(&path, "").unwrap();
    Box::leak(path.display().to_string().into_boxed_str())
}

#[test]
fn rename_command_renames_and_removes_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("r.conf");
    std::fs::write(
        &conf,
        "rename-command FLUSHALL \"\"\nrename-command set myset\nuser alice on >pw ~* +@all\n",
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let sb = start(ServerKind::Strongbox, conf_s, &["--appendonly", "yes"]);
    let mut s = sb.conn();
    assert!(String::from_utf8_lossy(&s.cmd(&["FLUSHALL"]))
        .starts_with("-ERR unknown command 'FLUSHALL'"),);
    assert!(String::from_utf8_lossy(&s.cmd(&["SET", "k", "v"])).starts_with("-ERR unknown command"));
    assert_eq!(s.cmd(&["MYSET", "k", "v"]), b"+OK\r\n");
    assert_eq!(s.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(s.cmd(&["myset", "k2", "v2"]), b"+QUEUED\r\n");
    assert_eq!(s.cmd(&["EXEC"]), b"*1\r\n+OK\r\n");
    assert_eq!(s.cmd(&["GET", "k2"]), b"$2\r\nv2\r\n");
    // The `user` line defines an ACL user (tests/acl.rs has the details).
    assert_eq!(sb.conn().cmd(&["AUTH", "alice", "pw"]), b"+OK\r\n");
    // The AOF holds the original name (it replays with or without the directive).
    let mut aof = Vec::new();
    for e in std::fs::read_dir(sb.dir().join("appendonlydir"))
        .unwrap()
        .flatten()
    {
        aof.extend(std::fs::read(e.path()).unwrap());
    }
    let aof = String::from_utf8_lossy(&aof).to_ascii_lowercase();
    assert!(aof.contains("k2") && !aof.contains("myset"), "{aof}");
    // Unknown commands and taken names stop start-up with Redis's messages.
    for (text, msg) in [
        (
            "rename-command nosuchcmd x\n",
            "No such command in rename-command",
        ),
        (
            "rename-command set get\n",
            "Target command name already exists",
        ),
    ] {
        std::fs::write(&conf, text).unwrap();
        let out = start_fails(&strongbox(), &[conf_s]);
        assert!(out.contains(msg), "{out}");
        let out = start_fails(&redis(), &[conf_s, "--port", "0"]);
        assert!(out.contains(msg), "redis: {out}");
    }
}

/// Log lines have redis-server's shape (`pid:role dd Mon yyyy hh:mm:ss.mmm <mark> message`), for
/// both servers, at each `loglevel`; CONFIG SET loglevel applies at once; the start-up banner
/// carries ` PID: <pid>` when `always-show-logo yes` (what Redis's test suite waits for).
#[test]
fn log_lines_have_redis_server_shape_and_loglevel_applies_at_run_time() {
    fn shaped(line: &str) -> bool {
        // 12345:M 27 Nov 2026 17:44:48.078 * message
        let Some((pid, rest)) = line.split_once(':') else {
            return false;
        };
        let b = rest.as_bytes();
        !pid.is_empty()
            && pid.bytes().all(|c| c.is_ascii_digit())
            && b.len() > 28
            && matches!(b[0], b'M' | b'S' | b'C')
            && b[1] == b' '
            && rest[2..4].bytes().all(|c| c.is_ascii_digit())
            && b[4] == b' '
            && rest[5..8].bytes().all(|c| c.is_ascii_alphabetic())
            && b[8] == b' '
            && rest[9..13].bytes().all(|c| c.is_ascii_digit())
            && b[13] == b' '
            && b[16] == b':'
            && b[19] == b':'
            && b[22] == b'.'
            && b[26] == b' '
            && matches!(b[27], b'.' | b'-' | b'*' | b'#')
            && b[28] == b' '
    }
    for kind in [ServerKind::Strongbox, ServerKind::Redis] {
        let srv =
            ServerProcess::start(kind, &["--loglevel", "notice", "--always-show-logo", "yes"]);
        let pid = srv.pid().expect("pid");
        let mut c = srv.conn();
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
        let log = srv.log();
        assert!(
            log.contains(&format!(" PID: {pid}")),
            "{kind:?} banner:\n{log}"
        );
        let ready = log
            .lines()
            .find(|l| l.contains("Ready to accept connections"))
            .unwrap_or_else(|| panic!("{kind:?}: no ready line:\n{log}"));
        assert!(shaped(ready), "{kind:?}: {ready:?}");
        assert!(ready.starts_with(&format!("{pid}:M ")), "{ready:?}");
        assert_eq!(
            &ready.as_bytes()[ready.find(' ').unwrap() + 25..][..3],
            b" * "
        );
        // verbose lines (`-`) appear only once loglevel says so: a client connecting is one.
        let marks = |log: &str| -> usize {
            log.lines()
                .filter(|l| shaped(l) && l.contains(" - Accepted "))
                .count()
        };
        assert_eq!(marks(&srv.log()), 0, "{kind:?}:\n{}", srv.log());
        assert_eq!(c.cmd(&["CONFIG", "SET", "loglevel", "verbose"]), b"+OK\r\n");
        drop(srv.conn());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while marks(&srv.log()) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(marks(&srv.log()) > 0, "{kind:?}:\n{}", srv.log());
    }
}

/// A relative `dir` (as Redis's test suite writes: `dir ./tests/tmp/server.1`) is taken from the
/// directory the server started in, once: both servers write their files there, and CONFIG GET
/// dir answers the absolute path. (Strongbox used to change into `dir` and then open `dir`
/// relative to it again, and refused to start.)
#[test]
fn a_relative_dir_is_resolved_once_from_the_start_directory() {
    for kind in [ServerKind::Strongbox, ServerKind::Redis] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("rel/sub")).unwrap();
        let bin = match kind {
            ServerKind::Strongbox => strongbox(),
            ServerKind::Redis => redis(),
        };
        let port = common::pick_free_port();
        let mut child = Command::new(bin)
            .current_dir(tmp.path())
            .args(["--port", &port.to_string(), "--dir", "./rel/sub"])
            .args(["--appendonly", "yes", "--save", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut c = None;
        for _ in 0..200 {
            if let Ok(conn) = RawConn::try_connect(port) {
                c = Some(conn);
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let mut c = c.unwrap_or_else(|| panic!("{kind:?} did not start"));
        assert_eq!(c.cmd(&["SET", "k", "v"]), b"+OK\r\n");
        let dir = config_get(&mut c, "dir");
        let want = tmp.path().join("rel/sub").canonicalize().unwrap();
        assert_eq!(
            PathBuf::from(&dir["dir"]).canonicalize().unwrap(),
            want,
            "{kind:?}"
        );
        assert!(Path::new(&dir["dir"]).is_absolute(), "{kind:?}: {dir:?}");
        assert!(
            want.join("appendonlydir").is_dir(),
            "{kind:?}: no appendonlydir in {}",
            want.display()
        );
        c.send_cmd(&["SHUTDOWN", "NOSAVE"]);
        let _ = child.wait();
    }
}
