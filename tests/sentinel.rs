//! Sentinel: real Sentinels (Debian's redis-server in sentinel mode) watching Strongbox servers,
//! and redis-py's Sentinel client (tests/python/sentinel_client.py) in front of them.
//! Redis's own Sentinel suite runs too (scripts/sentinel-suite.sh, from scripts/test.sh); this
//! test adds what it does not check: writes acknowledged by a replica (WAIT 1) under
//! `appendfsync always` survive a kill -9 of the master and the failover, the client library
//! follows the new master, and the old master, restarted on its data directory, is turned into
//! a replica of the new one and converges to its data.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::replication::{con, info_field};
use common::server::REDIS_SERVER_BIN;
use common::{pick_free_port, run_with_timeout, StrongboxServer};

/// One sentinel process: Redis runs as a sentinel when its program name contains
/// "redis-sentinel", so it is started through a symlink of that name.
struct Sentinel {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Sentinel {
    fn start(root: &Path, i: usize, master_port: u16) -> Sentinel {
        let dir = root.join(format!("sentinel-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = root.join("redis-sentinel");
        if !bin.exists() {
            std::os::unix::fs::symlink(REDIS_SERVER_BIN, &bin).unwrap();
        }
        let port = pick_free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\ndir {}\nlogfile {}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 10000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.display(),
                dir.join("sentinel.log").display()
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a sentinel");
        let s = Sentinel { port, child, dir };
        s.wait(30, "sentinel up", |s| s.query(&["PING"]) == "PONG");
        s
    }

    /// A command's reply, flattened to space-separated text; "" when unreachable.
    fn query(&self, args: &[&str]) -> String {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)) else {
            return String::new();
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return String::new();
        };
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        match cmd.query::<redis::Value>(&mut c) {
            Ok(v) => flatten(&v),
            Err(e) => format!("error: {e}"),
        }
    }

    fn master_port(&self) -> String {
        let r = self.query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]);
        r.split_whitespace().nth(1).unwrap_or("").to_string()
    }

    fn wait(&self, secs: u64, what: &str, ok: impl Fn(&Sentinel) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: timed out; sentinel log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flatten(v: &redis::Value) -> String {
    match v {
        redis::Value::Array(items) => items.iter().map(flatten).collect::<Vec<_>>().join(" "),
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

fn client_phase(sentinels: &str, phase: &str, first: usize, count: usize) -> String {
    let dir = common::repo_root().join("tests").join("python");
    let out = run_with_timeout(
        Command::new("python3")
            .arg(dir.join("sentinel_client.py"))
            .args(["--sentinels", sentinels, "--phase", phase])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .current_dir(&dir),
        None,
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sentinel_client.py --phase {phase} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn sentinel_failover_keeps_replica_acknowledged_writes() {
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut master = StrongboxServer::start(&always);
    let mport = master.port().to_string();
    let replica_args = [&always[..], &["--replicaof", "127.0.0.1", &mport]].concat();
    let r1 = StrongboxServer::start(&replica_args);
    let r2 = StrongboxServer::start(&replica_args);
    common::replication::wait_link_up(r1.port());
    common::replication::wait_link_up(r2.port());

    let root = tempfile::tempdir().unwrap();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|i| Sentinel::start(root.path(), i, master.port()))
        .collect();
    let ports = sentinels
        .iter()
        .map(|s| s.port.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // Every sentinel must know both replicas and the other sentinels before a failover can
    // pick a replica and reach a quorum.
    for s in &sentinels {
        s.wait(60, "discovery", |s| {
            let m = s.query(&["SENTINEL", "MASTER", "mymaster"]);
            m.contains("num-slaves 2") && m.contains("num-other-sentinels 2")
        });
    }

    let out = client_phase(&ports, "write", 0, 200);
    assert!(out.contains(&format!("master {mport}")), "{out}");

    master.kill9();
    for s in &sentinels {
        s.wait(60, "failover", |s| {
            let p = s.master_port();
            !p.is_empty() && p != mport
        });
    }
    let new_port: u16 = sentinels[0].master_port().parse().unwrap();
    assert!(
        new_port == r1.port() || new_port == r2.port(),
        "the new master {new_port} is not one of the replicas"
    );
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con(new_port)).unwrap();
    assert_eq!(flatten(&role[0]), "master");

    // The client follows the new master: nothing acknowledged is lost, writes go on.
    client_phase(&ports, "check", 0, 200);
    client_phase(&ports, "write", 200, 100);

    // The old master comes back on its data directory (as a master with the old data); the
    // sentinels turn it into a replica of the new master and it converges to its data.
    master.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let port = info_field(master.port(), "master_port");
        let link = info_field(master.port(), "master_link_status");
        if port.as_deref() == Some(&new_port.to_string()) && link.as_deref() == Some("up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old master was not reconfigured as a replica of {new_port}; sentinel log:\n{}",
            sentinels[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    common::replication::wait_same(new_port, master.port(), "old master after failover");
    client_phase(&ports, "check", 0, 300);
}
