//! Real clients against strongbox-server: redis-cli (plain, --pipe, -3), redis-benchmark,
//! redis-py (tests/python/*.py) and the `redis` Rust crate (async, tokio).
//!
//! `STRONGBOX_SERVER_BIN=/usr/bin/redis-server` runs the same checks against real Redis.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{run_with_timeout, StrongboxServer};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = run_with_timeout(
        Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args),
        None,
        CLIENT_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_plain_commands() {
    let server = StrongboxServer::start(&[]);
    let p = server.port();
    assert_eq!(redis_cli(p, &["SET", "a", "b"]), "OK\n");
    assert_eq!(redis_cli(p, &["GET", "a"]), "b\n");
    assert_eq!(redis_cli(p, &["--no-raw", "GET", "nosuch"]), "(nil)\n");
    assert_eq!(redis_cli(p, &["INCR", "n"]), "1\n");
    assert_eq!(redis_cli(p, &["RPUSH", "l", "x", "y"]), "2\n");
    assert_eq!(redis_cli(p, &["LRANGE", "l", "0", "-1"]), "x\ny\n");
    assert_eq!(
        redis_cli(p, &["--no-raw", "LPUSH", "a", "x"]),
        "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n"
    );
    assert_eq!(redis_cli(p, &["-n", "3", "SET", "indb3", "v"]), "OK\n");
    assert_eq!(redis_cli(p, &["-n", "3", "DBSIZE"]), "1\n");
    assert_eq!(redis_cli(p, &["DBSIZE"]), "3\n");
}

#[test]
fn redis_cli_pipe_mode_bulk_load() {
    const COMMANDS: usize = 5_000;
    let server = StrongboxServer::start(&[]);
    let mut input = Vec::new();
    for i in 0..COMMANDS {
        let (k, v) = (format!("key:{i}"), format!("value-{i}"));
        input.extend(common::encode_command(&["SET", &k, &v]));
    }
    let out = run_with_timeout(
        Command::new("redis-cli").args(["-p", &server.port().to_string(), "--pipe"]),
        Some(input),
        CLIENT_TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-cli --pipe failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("errors: 0, replies: {COMMANDS}")),
        "unexpected --pipe summary: {stdout}"
    );
    let mut conn = server.conn();
    conn.assert_cmd(&["DBSIZE"], format!(":{COMMANDS}\r\n").as_bytes());
    conn.assert_cmd(&["GET", "key:4999"], b"$10\r\nvalue-4999\r\n");
}

#[test]
fn redis_cli_resp3_mode() {
    let server = StrongboxServer::start(&[]);
    let p = server.port();
    assert_eq!(redis_cli(p, &["HSET", "h", "f", "v"]), "1\n");
    // A RESP3 map prints as `1# "f" => "v"`; under RESP2 it would be `1) "f"\n2) "v"`.
    assert_eq!(
        redis_cli(p, &["-3", "--no-raw", "HGETALL", "h"]),
        "1# \"f\" => \"v\"\n"
    );
    assert_eq!(
        redis_cli(p, &["-3", "--no-raw", "GET", "nosuch"]),
        "(nil)\n"
    );
    assert_eq!(redis_cli(p, &["ZADD", "z", "1.5", "m"]), "1\n");
    assert_eq!(
        redis_cli(p, &["-3", "--no-raw", "ZSCORE", "z", "m"]),
        "(double) 1.5\n"
    );
}

#[test]
fn redis_benchmark_smoke_has_no_errors() {
    benchmark_smoke(&[]);
}

/// The same with a separate execution thread and two I/O workers (the default runs execution on
/// the event-loop thread).
#[test]
fn redis_benchmark_smoke_with_io_threads_has_no_errors() {
    benchmark_smoke(&["--io-threads", "2"]);
}

fn benchmark_smoke(args: &[&str]) {
    let server = StrongboxServer::start(args);
    let out = run_with_timeout(
        Command::new("redis-benchmark").args([
            "-p",
            &server.port().to_string(),
            "-q",
            "-n",
            "2000",
            "-t",
            "ping,set,get,incr,lpush,mset",
            "-c",
            "10",
        ]),
        None,
        Duration::from_secs(120),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "redis-benchmark failed ({}):\n{text}",
        out.status
    );
    for line in text.lines() {
        assert!(
            !line.contains("rror"),
            "redis-benchmark reported an error: {line}\n{text}"
        );
    }
    for test in [
        "PING_INLINE:",
        "PING_MBULK:",
        "SET:",
        "GET:",
        "INCR:",
        "LPUSH:",
        "MSET (10 keys):",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(test) && l.contains("requests per second")),
            "no result line for {test}:\n{text}"
        );
    }
    let mut conn = server.conn();
    let incr = conn.cmd(&["GET", "counter:__rand_int__"]);
    assert_eq!(
        incr, b"$4\r\n2000\r\n",
        "INCR test should have counted 2000"
    );
}

/// Run the client program `tests/<lang_dir>/<script>` with `interpreter` against a fresh
/// server; it must exit 0.
fn run_client(interpreter: &str, lang_dir: &str, script: &str) {
    let server = StrongboxServer::start(&[]);
    let dir = common::repo_root().join("tests").join(lang_dir);
    let out = run_with_timeout(
        Command::new(interpreter)
            .arg(dir.join(script))
            .args(["--port", &server.port().to_string()])
            .current_dir(&dir),
        None,
        CLIENT_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "tests/{lang_dir}/{script} failed ({}; scripts/test.sh installs what it needs):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_python(script: &str) {
    run_client("python3", "python", script);
}

#[test]
fn redis_py_basic_commands() {
    run_python("basic.py");
}

#[test]
fn redis_py_pipeline() {
    run_python("pipeline.py");
}

#[test]
fn redis_py_transactions_with_watch() {
    run_python("transactions.py");
}

#[test]
fn redis_py_pubsub() {
    run_python("pubsub.py");
}

#[test]
fn redis_py_scripting() {
    run_python("scripting.py");
}

/// Celery (kombu's Redis transport runs Lua scripts) and RQ (with its scheduler's lock scripts)
/// run real tasks through the server.
#[test]
fn job_queue_libraries_celery_and_rq() {
    run_python("job_queues.py");
}

/// Runs one phase of a job-queue durability script (`interpreter tests/<lang_dir>/<script>
/// --port P <args>`) and returns the job ids it printed (lines starting `job-`), sorted.
fn job_phase(
    interpreter: &str,
    lang_dir: &str,
    script: &str,
    port: u16,
    args: &[&str],
) -> Vec<String> {
    let dir = common::repo_root().join("tests").join(lang_dir);
    let out = run_with_timeout(
        Command::new(interpreter)
            .arg(dir.join(script))
            .args(["--port", &port.to_string()])
            .args(args)
            .current_dir(&dir),
        None,
        CLIENT_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "tests/{lang_dir}/{script} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("job-"))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// Jobs a queue library enqueued under `appendfsync always` survive kill -9: 200 enqueued
/// (`--phase enqueue`, each enqueue acknowledged), the server killed and restarted, then a real
/// worker of the library runs every one of them (`--phase work`).
fn jobs_survive_kill9(interpreter: &str, lang_dir: &str, script: &str) {
    let mut server = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let enqueued = job_phase(
        interpreter,
        lang_dir,
        script,
        server.port(),
        &["--phase", "enqueue", "--n", "200"],
    );
    assert_eq!(enqueued.len(), 200);
    server.kill9();
    server.restart();
    let finished = job_phase(
        interpreter,
        lang_dir,
        script,
        server.port(),
        &["--phase", "work", "--n", "200"],
    );
    assert_eq!(
        finished, enqueued,
        "acknowledged jobs lost or not run after kill -9"
    );
}

/// RQ: a burst worker finishes every job enqueued before the kill, with its result.
#[test]
fn rq_jobs_survive_kill9() {
    jobs_survive_kill9("python3", "python", "rq_durability.py");
}

/// Celery: a worker process runs every task sent before the kill and stores its result.
#[test]
fn celery_tasks_survive_kill9() {
    jobs_survive_kill9("python3", "python", "celery_durability.py");
}

/// Sidekiq (Debian's ruby-sidekiq 6.4): jobs pushed one by one and in bulk, a scheduled job
/// and a retried one (the scheduler's Lua script, BRPOP fetch, heartbeats, the stats API).
#[test]
fn job_queue_library_sidekiq() {
    run_client("ruby", "ruby", "sidekiq.rb");
}

/// Sidekiq: a `sidekiq` worker process runs every job pushed before the kill.
#[test]
fn sidekiq_jobs_survive_kill9() {
    jobs_survive_kill9("ruby", "ruby", "sidekiq.rb");
}

/// BullMQ (npm, on ioredis): jobs, a delayed job and a retried one through BullMQ's Lua
/// scripts (cmsgpack, cjson).
#[test]
fn job_queue_library_bullmq() {
    run_client("node", "node", "bullmq.js");
}

/// BullMQ: jobs added through its Lua scripts (logged as MULTI/EXEC units) before the kill
/// all complete after the restart.
#[test]
fn bullmq_jobs_survive_kill9() {
    jobs_survive_kill9("node", "node", "bullmq_durability.js");
}

#[test]
fn redis_py_resp3_protocol() {
    run_python("resp3.py");
}

#[test]
fn redis_py_client_side_caching() {
    run_python("client_side_caching.py");
}

#[tokio::test]
async fn redis_crate_async_set_get_pipeline() {
    use redis::AsyncCommands;

    let server = StrongboxServer::start(&[]);
    let client = redis::Client::open(server.url()).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect with the redis crate");

    let () = con.set("k", "v").await.expect("SET");
    let v: String = con.get("k").await.expect("GET");
    assert_eq!(v, "v");
    let missing: Option<String> = con.get("nosuch").await.expect("GET missing");
    assert_eq!(missing, None);
    let n: i64 = con.incr("n", 5).await.expect("INCRBY");
    assert_eq!(n, 5);

    let (a, b, c): (i64, i64, Vec<String>) = redis::pipe()
        .incr("p", 1)
        .incr("p", 2)
        .rpush("l", &["x", "y"])
        .ignore()
        .lrange("l", 0, -1)
        .query_async(&mut con)
        .await
        .expect("pipeline");
    assert_eq!((a, b, c), (1, 3, vec!["x".to_string(), "y".to_string()]));

    let (set, got): (String, String) = redis::pipe()
        .atomic()
        .set("t", "in-multi")
        .get("t")
        .query_async(&mut con)
        .await
        .expect("MULTI/EXEC pipeline");
    assert_eq!((set.as_str(), got.as_str()), ("OK", "in-multi"));

    let err = redis::cmd("LPUSH")
        .arg("k")
        .arg("x")
        .query_async::<i64>(&mut con)
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
}
