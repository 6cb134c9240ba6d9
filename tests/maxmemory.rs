//! `maxmemory` and the eviction policies, the same scenarios against Debian's redis-server 7.0
//! and Strongbox (so the expectations are Redis's own), plus Strongbox's log: an evicted key
//! is logged as DEL and does not come back after a crash.
//!
//! Limits are set relative to each server's own `used_memory` at the start, so the two
//! servers' different per-key costs do not matter; only behaviour is compared.

mod common;

use common::{RedisServer, ServerProcess, StrongboxServer};
use redis::{Commands, Connection};

const OOM: &str = "command not allowed when used memory > 'maxmemory'.";
const LIMIT_ABOVE_BASE: i64 = 2_000_000;

fn conn(s: &ServerProcess) -> Connection {
    redis::Client::open(s.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn info_field(c: &mut Connection, section: &str, field: &str) -> i64 {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

fn config_set(c: &mut Connection, name: &str, value: impl redis::ToRedisArgs) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .unwrap();
}

/// Sets `policy` and a limit `LIMIT_ABOVE_BASE` over the current use; returns the limit.
fn limit(c: &mut Connection, policy: &str) -> i64 {
    config_set(c, "maxmemory-policy", policy);
    let max = info_field(c, "memory", "used_memory") + LIMIT_ABOVE_BASE;
    config_set(c, "maxmemory", max);
    max
}

fn value() -> String {
    "x".repeat(100)
}

fn noeviction_refuses_growth_but_serves_reads(s: &ServerProcess) {
    let mut c = conn(s);
    limit(&mut c, "noeviction");
    let mut stored = 0;
    let err = loop {
        match c.set::<_, _, ()>(format!("key:{stored}"), value()) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 200_000, "{}: never refused", s.describe());
    };
    assert!(stored > 1000, "{}: refused after {stored}", s.describe());
    assert_eq!(err.code(), Some("OOM"), "{err:?}");
    assert_eq!(err.detail(), Some(OOM), "{err:?}");
    // Reads, deletes and commands that cannot grow the dataset go on.
    let v: String = c.get("key:1").unwrap();
    assert_eq!(v, value());
    let n: i64 = c.strlen("key:2").unwrap();
    assert_eq!(n, 100);
    // A transaction holding a write is refused as a whole.
    let r: redis::RedisResult<()> = redis::pipe().atomic().set("a", 1).get("a").query(&mut c);
    let e = r.unwrap_err();
    assert!(e.to_string().contains(OOM), "{e}");
    // A script may not start writing.
    let r: redis::RedisResult<()> = redis::cmd("EVAL")
        .arg("return redis.call('set', 'zz', '1')")
        .arg(0)
        .query(&mut c);
    let e = r.unwrap_err();
    assert!(e.to_string().contains(OOM), "{e}");
    let exists: bool = c.exists("zz").unwrap();
    assert!(!exists);
    // Deleting frees memory: writes work again.
    let keys: Vec<String> = (0..stored / 2).map(|i| format!("key:{i}")).collect();
    let _: i64 = c.del(&keys).unwrap();
    let _: () = c.set("after", "ok").unwrap();
    assert_eq!(info_field(&mut c, "stats", "evicted_keys"), 0);
    config_set(&mut c, "maxmemory", 0);
}

fn allkeys_lru_keeps_memory_under_the_limit(s: &ServerProcess) {
    let mut c = conn(s);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    // The LRU clock counts seconds: let the first keys age before the limit bites.
    for i in 0..200 {
        let _: () = c.set(format!("old:{i}"), value()).unwrap();
    }
    for k in 0..10 {
        let _: () = c.set(format!("hot:{k}"), value()).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let max = limit(&mut c, "allkeys-lru");
    for i in 0..30_000 {
        let _: () = c.set(format!("key:{i}"), value()).unwrap();
        if i % 100 == 0 {
            // Read the hot keys all along: LRU keeps them.
            for k in 0..10 {
                let _: Option<String> = c.get(format!("hot:{k}")).unwrap();
            }
        }
    }
    let used = info_field(&mut c, "memory", "used_memory");
    assert!(
        used <= max + 200_000,
        "{}: used {used} over max {max}",
        s.describe()
    );
    let evicted = info_field(&mut c, "stats", "evicted_keys");
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(evicted > 10_000, "{}: evicted {evicted}", s.describe());
    assert_eq!(evicted + dbsize, 30_210);
    // The newest writes mostly stay. (Not each one: with a clock in seconds the last second's
    // keys tie with each other, and eviction goes on from the timer after the last write, so
    // even the very last key can be sampled and go: it did once in CI, under load.)
    let recent: i64 = c
        .exists(
            (29_900..30_000)
                .map(|k| format!("key:{k}"))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert!(
        recent >= 50,
        "{}: {recent} of the last 100 keys left",
        s.describe()
    );
    let hot: i64 = c
        .exists((0..10).map(|k| format!("hot:{k}")).collect::<Vec<_>>())
        .unwrap();
    let old: i64 = c
        .exists((0..200).map(|k| format!("old:{k}")).collect::<Vec<_>>())
        .unwrap();
    eprintln!("{:?}: hot {hot} of 10, old {old} of 200", s.kind());
    // Sampled LRU with a clock in seconds: keys read within the last second tie with the
    // newest writes (so `hot` is not asserted), but keys idle 2 s longer than any other go.
    assert!(old <= 20, "{}: {old} of 200 old keys left", s.describe());
    config_set(&mut c, "maxmemory", 0);
}

fn volatile_ttl_takes_the_soonest_expiring_and_never_persistent_keys(s: &ServerProcess) {
    let mut c = conn(s);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    limit(&mut c, "volatile-ttl");
    for i in 0..3000 {
        let _: () = c.set(format!("p:{i}"), value()).unwrap();
    }
    for i in 0..20_000u64 {
        let _: () = c.set_ex(format!("t:{i}"), value(), 1000 + i).unwrap();
    }
    let persistent: i64 = c
        .exists((0..3000).map(|i| format!("p:{i}")).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(persistent, 3000);
    let first: i64 = c.exists("t:0").unwrap();
    let last: i64 = c.exists("t:19999").unwrap();
    assert_eq!((first, last), (0, 1), "{}", s.describe());
}

fn allkeys_lfu_keeps_the_frequently_read(s: &ServerProcess) {
    let mut c = conn(s);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    limit(&mut c, "allkeys-lfu");
    for i in 0..50 {
        let _: () = c.set(format!("hot:{i}"), value()).unwrap();
    }
    for _ in 0..20 {
        for i in 0..50 {
            let _: Option<String> = c.get(format!("hot:{i}")).unwrap();
        }
    }
    let freq: i64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("hot:1")
        .query(&mut c)
        .unwrap();
    assert!(freq > 5, "{}: freq {freq}", s.describe());
    for i in 0..30_000 {
        let _: () = c.set(format!("cold:{i}"), value()).unwrap();
    }
    let hot: i64 = c
        .exists((0..50).map(|i| format!("hot:{i}")).collect::<Vec<_>>())
        .unwrap();
    assert!(hot >= 45, "{}: {hot} of 50 hot keys", s.describe());
    config_set(&mut c, "maxmemory", 0);
}

/// Functions under `noeviction` over the limit: `allow-oom` may write, `no-writes` may read,
/// any other is refused as a `denyoom` command (Redis derives FCALL's flags from the function).
fn function_flags_under_oom(s: &ServerProcess) {
    let mut c = conn(s);
    let lib = "#!lua name=oomlib\n\
        redis.register_function{function_name='w', callback=function(keys) return redis.call('SET', keys[1], 'v') end}\n\
        redis.register_function{function_name='big', flags={'allow-oom'}, callback=function(keys) return redis.call('SET', keys[1], 'v') end}\n\
        redis.register_function{function_name='r', flags={'no-writes'}, callback=function(keys) return redis.call('GET', keys[1]) end}";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    limit(&mut c, "noeviction");
    let mut i = 0;
    while c.set::<_, _, ()>(format!("fill:{i}"), value()).is_ok() {
        i += 1;
        assert!(i < 200_000, "{}: never refused", s.describe());
    }
    let e = redis::cmd("FCALL")
        .arg("w")
        .arg(1)
        .arg("x")
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(e.detail(), Some(OOM), "{}: {e:?}", s.describe());
    let ok: String = redis::cmd("FCALL")
        .arg("big")
        .arg(1)
        .arg("y")
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    let v: String = redis::cmd("FCALL")
        .arg("r")
        .arg(1)
        .arg("y")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "v");
    config_set(&mut c, "maxmemory", 0);
}

#[test]
fn maxmemory_function_flags_like_redis() {
    function_flags_under_oom(&RedisServer::start(&[]));
    function_flags_under_oom(&StrongboxServer::start(&[]));
}

#[test]
fn maxmemory_noeviction_like_redis() {
    noeviction_refuses_growth_but_serves_reads(&RedisServer::start(&[]));
    noeviction_refuses_growth_but_serves_reads(&StrongboxServer::start(&[]));
}

#[test]
fn maxmemory_allkeys_lru_like_redis() {
    allkeys_lru_keeps_memory_under_the_limit(&RedisServer::start(&[]));
    allkeys_lru_keeps_memory_under_the_limit(&StrongboxServer::start(&[]));
}

#[test]
fn maxmemory_volatile_ttl_like_redis() {
    volatile_ttl_takes_the_soonest_expiring_and_never_persistent_keys(&RedisServer::start(&[]));
    volatile_ttl_takes_the_soonest_expiring_and_never_persistent_keys(&StrongboxServer::start(&[]));
}

#[test]
fn maxmemory_allkeys_lfu_like_redis() {
    allkeys_lfu_keeps_the_frequently_read(&RedisServer::start(&[]));
    allkeys_lfu_keeps_the_frequently_read(&StrongboxServer::start(&[]));
}

/// Evictions are logged as DEL: after kill -9 under `always`, the keyspace is the one the
/// clients saw (no evicted key comes back, none of the acknowledged others is lost).
#[test]
fn evictions_are_logged_and_survive_a_crash() {
    let mut s = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = conn(&s);
    limit(&mut c, "allkeys-random");
    for i in 0..20_000 {
        let _: () = c.set(format!("key:{i}"), value()).unwrap();
    }
    // No more evictions from here (memory may stay near the limit): the keyspace the
    // clients see is then fixed.
    config_set(&mut c, "maxmemory", 0);
    let before: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    let evicted = info_field(&mut c, "stats", "evicted_keys");
    assert!(evicted > 5000, "evicted {evicted}");
    let mut present: Vec<String> = Vec::new();
    for i in 0..20_000 {
        let k = format!("key:{i}");
        if c.exists::<_, bool>(&k).unwrap() {
            present.push(k);
        }
    }
    assert_eq!(present.len() as i64, before);
    drop(c);
    s.kill9();
    s.restart();
    let mut c = conn(&s);
    let after: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(after, before);
    let n: i64 = c.exists(&present).unwrap();
    assert_eq!(n, before);
}

/// `used_memory` less what does not count against `maxmemory` (Strongbox's log, on in these
/// tests, holds a buffer and a table of recent changes; Redis leaves its AOF buffer out too).
fn counted_memory(c: &mut Connection) -> i64 {
    // Both from one INFO: the log's part changes from one command to the next.
    let info: String = redis::cmd("INFO").arg("memory").query(c).unwrap();
    let field = |name: &str| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .trim()
            .parse()
            .unwrap()
    };
    field("used_memory") - field("mem_not_counted_for_evict")
}

/// Sets `policy` and a limit 100 KiB over the current use, as Redis's own suite does
/// (unit/maxmemory); returns the limit.
fn tight_limit(c: &mut Connection, policy: &str) -> i64 {
    config_set(c, "maxmemory", 0);
    // What the first writes of a fresh server allocate once (the log's structures, command
    // statistics) is not the keys' memory: out of the 100 KiB.
    config_set(c, "latency-tracking", "no");
    let _: () = c.set_ex("warm-up", "x", 1000).unwrap();
    let _: () = c.set("warm-up:2", "x").unwrap();
    let _: i64 = c.del(&["warm-up", "warm-up:2"]).unwrap();
    let _: () = redis::cmd("FLUSHALL").query(c).unwrap();
    let max = counted_memory(c) + 100 * 1024;
    config_set(c, "maxmemory", max);
    config_set(c, "maxmemory-policy", policy);
    max
}

/// The suite's "policy volatile-* should only remove volatile keys" with keys of a few bytes:
/// half of them volatile, then as many new volatile keys again. Strongbox keeps such a key in a
/// slot of its keyspace tables with no heap allocation of its own, so evicting one frees no
/// allocator bytes: memory must be counted by the slots in use, or every volatile key goes (and
/// writes are then refused) while `used_memory` stays over the limit.
fn small_volatile_keys_are_evicted_only_as_needed(s: &ServerProcess, policy: &str) {
    let mut c = conn(s);
    let max = tight_limit(&mut c, policy);
    let mut n = 0;
    loop {
        if n % 2 == 1 {
            let _: () = c.set_ex(format!("key:{n}"), "x", 10_000).unwrap();
        } else {
            let _: () = c.set(format!("key:{n}"), "x").unwrap();
        }
        if counted_memory(&mut c) + 4096 > max {
            break;
        }
        n += 1;
        assert!(n < 100_000, "{}: the limit is never reached", s.describe());
    }
    assert!(n > 100, "{}: limit reached after {n} keys", s.describe());
    for j in 0..n {
        let r: redis::RedisResult<()> = c.set_ex(format!("foo:{j}"), "x", 10_000);
        assert!(
            r.is_ok(),
            "{} {policy}: foo:{j} of {n}: {r:?}",
            s.describe()
        );
    }
    let used = counted_memory(&mut c);
    assert!(
        used < max + 4096,
        "{:?} {policy}: used {used}, limit {max}\n{}",
        s.kind(),
        s.describe()
    );
    let persistent: Vec<String> = (0..=n).step_by(2).map(|j| format!("key:{j}")).collect();
    let kept: usize = c.exists(&persistent).unwrap();
    assert_eq!(kept, persistent.len(), "{} {policy}", s.describe());
    config_set(&mut c, "maxmemory", 0);
}

/// Under `allkeys-random` writes of small keys are never refused: evicting frees room for the
/// next key, and the keyspace keeps about as many keys as fit (not none).
fn allkeys_random_keeps_taking_small_keys(s: &ServerProcess) {
    let mut c = conn(s);
    let max = tight_limit(&mut c, "allkeys-random");
    for i in 0..20_000 {
        let r: redis::RedisResult<()> = c.set(format!("key:{i}"), "x");
        assert!(r.is_ok(), "{}: key:{i}: {r:?}", s.describe());
    }
    let used = counted_memory(&mut c);
    assert!(
        used < max + 4096,
        "{}: used {used}, limit {max}",
        s.describe()
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(dbsize > 100, "{}: {dbsize} keys left", s.describe());
    assert!(info_field(&mut c, "stats", "evicted_keys") > 10_000);
    config_set(&mut c, "maxmemory", 0);
}

#[test]
fn maxmemory_small_volatile_keys_like_redis() {
    let redis = RedisServer::start(&[]);
    let strongbox = StrongboxServer::start(&[]);
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        small_volatile_keys_are_evicted_only_as_needed(&redis, policy);
        small_volatile_keys_are_evicted_only_as_needed(&strongbox, policy);
    }
}

#[test]
fn maxmemory_allkeys_random_small_keys_like_redis() {
    allkeys_random_keeps_taking_small_keys(&RedisServer::start(&[]));
    allkeys_random_keeps_taking_small_keys(&StrongboxServer::start(&[]));
}

fn refcount(c: &mut Connection, key: &str) -> i64 {
    redis::cmd("OBJECT")
        .arg("REFCOUNT")
        .arg(key)
        .query(c)
        .unwrap()
}

/// OBJECT REFCOUNT of a small integer: Redis's shared integers, except under an LRU or LFU
/// policy with a `maxmemory` (each key then has its own object).
fn small_integers_are_shared_unless_lru_or_lfu(s: &ServerProcess) {
    let mut c = conn(s);
    config_set(&mut c, "maxmemory", 0);
    let _: () = c.set("a", 1).unwrap();
    assert_eq!(refcount(&mut c, "a"), i32::MAX as i64, "{}", s.describe());
    config_set(&mut c, "maxmemory", 1 << 30);
    config_set(&mut c, "maxmemory-policy", "allkeys-random");
    let _: () = c.set("a", 1).unwrap();
    assert_eq!(refcount(&mut c, "a"), i32::MAX as i64, "{}", s.describe());
    for policy in ["allkeys-lru", "volatile-lfu"] {
        config_set(&mut c, "maxmemory-policy", policy);
        let _: () = c.set("b", 1).unwrap();
        assert_eq!(refcount(&mut c, "b"), 1, "{} {policy}", s.describe());
    }
    let _: () = c.set("c", 10_000).unwrap();
    assert_eq!(refcount(&mut c, "c"), 1, "{}", s.describe());
    config_set(&mut c, "maxmemory", 0);
    config_set(&mut c, "maxmemory-policy", "noeviction");
}

#[test]
fn maxmemory_shared_integers_like_redis() {
    small_integers_are_shared_unless_lru_or_lfu(&RedisServer::start(&[]));
    small_integers_are_shared_unless_lru_or_lfu(&StrongboxServer::start(&[]));
}

/// The suite's "replica buffer don't induce eviction": with a replica stopped (SIGSTOP), the
/// stream it has not been sent grows the master's memory; that part is reported
/// (`mem_clients_slaves`, `mem_not_counted_for_evict`) and not counted against `maxmemory`
/// (Redis's `freeMemoryGetNotCountedMemory`), so the master evicts nothing for it.
fn a_stopped_replica_does_not_make_the_master_evict(
    master: &ServerProcess,
    replica: &mut ServerProcess,
) {
    let mut m = conn(master);
    // As the suite: no per-command memory that grows meanwhile.
    config_set(&mut m, "latency-tracking", "no");
    config_set(&mut m, "slowlog-log-slower-than", -1);
    let value = "v".repeat(100_000);
    for j in 0..100 {
        let _: () = m.set(format!("key:{j}"), &value).unwrap();
    }
    config_set(&mut m, "maxmemory-policy", "allkeys-random");
    config_set(&mut m, "repl-backlog-size", 10 * 1024);
    config_set(
        &mut m,
        "client-output-buffer-limit",
        "replica 100000000 100000000 300",
    );
    let mut r = conn(replica);
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port())
        .query(&mut r)
        .unwrap();
    common::replication::wait_link_up(replica.port());
    let counted = counted_memory(&mut m);
    config_set(&mut m, "maxmemory", counted + 32 * 1024);
    let pid = replica.pid().expect("replica pid") as i32;
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // ~5 MB of stream that does not grow the dataset.
    let a = "A".repeat(100);
    for _ in 0..50_000 {
        let _: i64 = redis::cmd("SETRANGE")
            .arg("key:0")
            .arg(0)
            .arg(&a)
            .query(&mut m)
            .unwrap();
    }
    let replicas = info_field(&mut m, "memory", "mem_clients_slaves");
    let not_counted = info_field(&mut m, "memory", "mem_not_counted_for_evict");
    let evicted = info_field(&mut m, "stats", "evicted_keys");
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut m).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(
        replicas > 2 << 20,
        "{}: mem_clients_slaves {replicas}",
        master.describe()
    );
    assert!(
        not_counted > 2 << 20,
        "{}: not counted {not_counted}",
        master.describe()
    );
    assert_eq!(
        (evicted, dbsize),
        (0, 100),
        "{}: mem_clients_slaves {replicas}, not counted {not_counted}",
        master.describe()
    );
    config_set(&mut m, "maxmemory", 0);
}

#[test]
fn maxmemory_replica_buffers_not_counted_like_redis() {
    let redis = RedisServer::start(&[]);
    let mut redis_replica = RedisServer::start(&[]);
    a_stopped_replica_does_not_make_the_master_evict(&redis, &mut redis_replica);
    let strongbox = StrongboxServer::start(&[]);
    let mut strongbox_replica = StrongboxServer::start(&[]);
    a_stopped_replica_does_not_make_the_master_evict(&strongbox, &mut strongbox_replica);
}

/// An eviction out of time (`maxmemory-eviction-tenacity 0`: 16 keys a call) goes on by itself
/// until memory is under the limit, without commands to drive it (Redis's `evictionTimeProc`,
/// a 0 ms timer; not the once-per-tick cron, 16 keys every 100 ms).
fn evictions_out_of_time_go_on_without_commands(s: &ServerProcess) {
    let mut c = conn(s);
    config_set(&mut c, "maxmemory", 0);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let mut p = redis::pipe();
    for i in 0..20_000 {
        p.set(format!("key:{i}"), value()).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    let before = counted_memory(&mut c);
    config_set(&mut c, "maxmemory-policy", "allkeys-random");
    config_set(&mut c, "maxmemory-eviction-tenacity", 0);
    let max = before - before / 4;
    config_set(&mut c, "maxmemory", max);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let evicted = info_field(&mut c, "stats", "evicted_keys");
    assert!(
        evicted > 2_000,
        "{:?}: {evicted} keys evicted in 1 s\n{}",
        s.kind(),
        s.describe()
    );
    config_set(&mut c, "maxmemory", 0);
    config_set(&mut c, "maxmemory-eviction-tenacity", 10);
}

#[test]
fn maxmemory_evictions_go_on_without_commands_like_redis() {
    evictions_out_of_time_go_on_without_commands(&RedisServer::start(&[]));
    evictions_out_of_time_go_on_without_commands(&StrongboxServer::start(&[]));
}

/// Over the limit with no key left the policy may take, the command is refused even if the
/// call evicted some (Redis's EVICT_FAIL): the write that evicts the last volatile keys without
/// getting under the limit gets -OOM, so memory stops one value past the limit, not two.
fn running_out_of_keys_refuses_the_command(s: &ServerProcess) {
    let mut c = conn(s);
    let max = tight_limit(&mut c, "volatile-lru");
    for i in 0..5 {
        let _: () = c.set_ex(format!("v:{i}"), "x", 10_000).unwrap();
    }
    const VALUE_BYTES: i64 = 50_000;
    let big = "p".repeat(VALUE_BYTES as usize);
    let mut i = 0;
    let err = loop {
        match c.set::<_, _, ()>(format!("p:{i}"), &big) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
        assert!(i < 100, "{:?}: never refused", s.kind());
    };
    assert_eq!(err.code(), Some("OOM"), "{err:?}");
    let volatile: i64 = c
        .exists((0..5).map(|i| format!("v:{i}")).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(volatile, 0, "{:?}", s.kind());
    let over = counted_memory(&mut c) - max;
    assert!(
        over < VALUE_BYTES * 3 / 2,
        "{:?}: {over} bytes over the limit at the first -OOM\n{}",
        s.kind(),
        s.describe()
    );
    config_set(&mut c, "maxmemory", 0);
}

#[test]
fn maxmemory_running_out_of_keys_refuses_like_redis() {
    running_out_of_keys_refuses_the_command(&RedisServer::start(&[]));
    running_out_of_keys_refuses_the_command(&StrongboxServer::start(&[]));
}
