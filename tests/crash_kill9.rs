//! kill -9 of the real server under concurrent load: after restart, every acknowledged write is
//! present and no transaction is half applied. Several rounds on the same data directory, for
//! `appendfsync always` and `everysec` (a process crash must not lose acknowledged writes under
//! either policy: replies wait at least for write(2)). A reader client meanwhile reads the
//! writers' counters and lists: nothing it saw may be missing after the restart either (a read
//! of another client's change waits for that change's bytes).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerKind, ServerProcess};

const CLIENTS: usize = 4;
const ROUNDS: usize = 4;

#[derive(Default, Clone)]
struct Acked {
    /// (key, value) of acknowledged SETs.
    sets: Vec<(String, String)>,
    /// Highest acknowledged INCR result per counter key.
    counters: Vec<(String, i64)>,
    /// Acknowledged RPUSH: (list key, number of elements acknowledged).
    lists: Vec<(String, usize)>,
    /// Acknowledged transactions: pairs of keys set together.
    txs: Vec<(String, String)>,
    /// Transactions sent whose reply was not seen (may or may not be applied).
    tx_attempts: Vec<(String, String)>,
    /// Counter values and list lengths a reader saw (values another client wrote).
    seen_counters: Vec<(String, i64)>,
    seen_lists: Vec<(String, usize)>,
}

/// Reads the writers' counters and lists (and keys nobody writes) until stopped.
fn reader_loop(port: u16, round: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        for t in 0..CLIENTS {
            let counter = format!("c:{round}:{t}");
            let list = format!("l:{round}:{t}");
            let r: redis::RedisResult<(Option<i64>, usize, Option<String>)> = redis::pipe()
                .cmd("GET")
                .arg(&counter)
                .cmd("LLEN")
                .arg(&list)
                .cmd("GET")
                .arg("never-written")
                .query(&mut con);
            let Ok((n, len, _)) = r else {
                return;
            };
            let mut a = acked.lock().unwrap();
            if let Some(n) = n {
                a.seen_counters.push((counter, n));
            }
            a.seen_lists.push((list, len));
        }
    }
}

fn client_loop(port: u16, round: usize, t: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    let counter = format!("c:{round}:{t}");
    let list = format!("l:{round}:{t}");
    let mut pushed = 0usize;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let k = format!("s:{round}:{t}:{i}");
        let v = format!("v{i}");
        let r: redis::RedisResult<()> = redis::cmd("SET").arg(&k).arg(&v).query(&mut con);
        if r.is_err() {
            return;
        }
        acked.lock().unwrap().sets.push((k, v));

        let r: redis::RedisResult<i64> = redis::cmd("INCR").arg(&counter).query(&mut con);
        match r {
            Ok(n) => acked.lock().unwrap().counters.push((counter.clone(), n)),
            Err(_) => return,
        }

        let r: redis::RedisResult<i64> = redis::cmd("RPUSH")
            .arg(&list)
            .arg(pushed.to_string())
            .query(&mut con);
        match r {
            Ok(n) => {
                pushed += 1;
                assert_eq!(n as usize, pushed, "RPUSH length");
                acked.lock().unwrap().lists.push((list.clone(), pushed));
            }
            Err(_) => return,
        }

        let a = format!("ta:{round}:{t}:{i}");
        let b = format!("tb:{round}:{t}:{i}");
        acked
            .lock()
            .unwrap()
            .tx_attempts
            .push((a.clone(), b.clone()));
        let r: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&a)
            .arg("1")
            .cmd("SET")
            .arg(&b)
            .arg("1")
            .query(&mut con);
        if r.is_err() {
            return;
        }
        acked.lock().unwrap().txs.push((a, b));
        i += 1;
    }
}

fn verify(port: u16, acked: &Acked) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    for (k, v) in &acked.sets {
        let got: Option<String> = redis::cmd("GET").arg(k).query(&mut con).unwrap();
        assert_eq!(
            got.as_deref(),
            Some(v.as_str()),
            "acknowledged SET {k} lost"
        );
    }
    for (k, n) in &acked.counters {
        let got: Option<i64> = redis::cmd("GET").arg(k).query(&mut con).unwrap();
        assert!(
            got.unwrap_or(0) >= *n,
            "counter {k}: {got:?} < acknowledged {n}"
        );
    }
    for (k, n) in &acked.lists {
        let got: Vec<String> = redis::cmd("LRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        assert!(
            got.len() >= *n,
            "list {k}: {} elements < acknowledged {n}",
            got.len()
        );
        for (i, e) in got.iter().enumerate() {
            assert_eq!(e, &i.to_string(), "list {k} out of order");
        }
    }
    for (a, b) in &acked.txs {
        let n: i64 = redis::cmd("EXISTS").arg(a).arg(b).query(&mut con).unwrap();
        assert_eq!(n, 2, "acknowledged transaction {a}/{b} lost");
    }
    for (a, b) in &acked.tx_attempts {
        let n: i64 = redis::cmd("EXISTS").arg(a).arg(b).query(&mut con).unwrap();
        assert!(n == 0 || n == 2, "half-applied transaction {a}/{b}");
    }
    for (k, n) in &acked.seen_counters {
        let got: Option<i64> = redis::cmd("GET").arg(k).query(&mut con).unwrap();
        assert!(
            got.unwrap_or(0) >= *n,
            "counter {k}: {got:?} < {n}, which a reader saw"
        );
    }
    for (k, n) in &acked.seen_lists {
        let got: usize = redis::cmd("LLEN").arg(k).query(&mut con).unwrap();
        assert!(
            got >= *n,
            "list {k}: {got} elements < {n}, which a reader saw"
        );
    }
}

fn kill9_rounds(policy: &str) {
    let mut server = ServerProcess::start(
        ServerKind::Strongbox,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            policy,
            "--aof-segment-size",
            "64kb",
        ],
    );
    let mut all = Acked::default();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let port = server.port();
        let mut handles: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (stop, acked) = (stop.clone(), acked.clone());
                std::thread::spawn(move || client_loop(port, round, t, stop, acked))
            })
            .collect();
        handles.push({
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || reader_loop(port, round, stop, acked))
        });
        std::thread::sleep(Duration::from_millis(250));
        if round > 0 {
            // Crash while a compaction may be running (snapshot walk, base install, cleanup).
            if let Ok(c) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) {
                if let Ok(mut con) = c.get_connection() {
                    let _: redis::RedisResult<String> = redis::cmd("BGREWRITEAOF").query(&mut con);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100 + 150 * round as u64));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().expect("client thread panicked");
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            !acked.sets.is_empty(),
            "no write was acknowledged in round {round}"
        );
        all.sets.extend(acked.sets);
        all.counters.extend(acked.counters);
        all.lists.extend(acked.lists);
        all.txs.extend(acked.txs);
        all.tx_attempts.extend(acked.tx_attempts);
        assert!(
            !acked.seen_counters.is_empty(),
            "the reader saw no counter in round {round}"
        );
        all.seen_counters.extend(acked.seen_counters);
        all.seen_lists.extend(acked.seen_lists);
        server.restart();
        verify(server.port(), &all);
    }
}

#[test]
fn kill9_always_loses_no_acknowledged_write() {
    kill9_rounds("always");
}

#[test]
fn kill9_everysec_loses_no_acknowledged_write() {
    kill9_rounds("everysec");
}
