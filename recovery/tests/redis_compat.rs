//! Real redis-server 7.0 loads a directory our writer produced (several incr files, `#SB` and
//! `#TS:` annotations, MULTI blocks, several databases); redis-check-aof accepts it; and after
//! Redis appended to it, we load the result.

mod common;

use common::Model;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strongbox_recovery::{recover, Options};
use strongbox_storage::aof::{AofOptions, FsyncPolicy, LogWriter};
use strongbox_storage::fs::RealFs;
use strongbox_storage::resp::encode_command;

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[path = "../../tests/common/port.rs"]
#[allow(dead_code)]
mod port;

/// A free loopback port, picked as the server package's tests pick theirs.
fn free_port() -> u16 {
    port::pick_free_port()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Send one command, read one reply (simple/bulk/integer/error), as text.
fn call(conn: &mut BufReader<TcpStream>, argv: &[&str]) -> String {
    let mut out = Vec::new();
    encode_command(&mut out, argv);
    conn.get_mut().write_all(&out).expect("send");
    let mut line = String::new();
    conn.read_line(&mut line).expect("reply");
    let line = line.trim_end().to_string();
    if let Some(n) = line.strip_prefix('$') {
        let n: i64 = n.parse().expect("bulk len");
        if n < 0 {
            return "(nil)".to_string();
        }
        let mut buf = vec![0u8; n as usize + 2];
        conn.read_exact(&mut buf).expect("bulk");
        buf.truncate(n as usize);
        return String::from_utf8_lossy(&buf).into_owned();
    }
    line
}

fn connect(port: u16, server: &mut Server) -> BufReader<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("redis-server exited early: {status}");
        }
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut c = BufReader::new(s);
            // While loading, Redis answers -LOADING.
            let r = call(&mut c, &["PING"]);
            if r == "+PONG" {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "redis-server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_7_0_loads_a_directory_written_by_our_log_writer() {
    if !have("redis-server") {
        eprintln!("redis-server not installed; skipping");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let aof_dir = tmp.path().join("appendonlydir");
    let opts = AofOptions {
        dir: aof_dir.clone(),
        filename: "appendonly.aof".to_string(),
        fsync: FsyncPolicy::Always,
        segment_bytes_max: 400,
        timestamp_enabled: true,
    };
    let mut empty = Model::default();
    let out = recover(
        &RealFs,
        &aof_dir,
        "appendonly.aof",
        &Options::default(),
        &mut empty,
    )
    .expect("empty");
    let w = LogWriter::open(Arc::new(RealFs), opts, out.resume, Box::new(|_| {})).expect("open");
    let mut db = 0u32;
    for i in 0..60u32 {
        let mut bytes = Vec::new();
        let start = db;
        let target = i % 3;
        if target != db {
            encode_command(&mut bytes, &["SELECT", &target.to_string()]);
            db = target;
        }
        if i % 7 == 0 {
            encode_command(&mut bytes, &["MULTI"]);
            encode_command(&mut bytes, &["SET", &format!("tx{i}a"), "x"]);
            encode_command(&mut bytes, &["RPUSH", "list", &i.to_string()]);
            encode_command(&mut bytes, &["EXEC"]);
        } else {
            encode_command(&mut bytes, &["SET", &format!("k{i}"), &format!("v{i}")]);
        }
        let _g = w.hold(); // one batch per unit: many batches, several files
        w.submit(&bytes, start);
    }
    w.shutdown().expect("shutdown");
    let incr_files = std::fs::read_dir(&aof_dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".incr.aof"))
        })
        .count();
    assert!(incr_files >= 3, "{incr_files} incr files");

    // redis-check-aof accepts the manifest and every file.
    if have("redis-check-aof") {
        let o = Command::new("redis-check-aof")
            .arg(aof_dir.join("appendonly.aof.manifest"))
            .output()
            .expect("run redis-check-aof");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "redis-check-aof: {text}");
    }

    let port = free_port();
    let mut server = Server(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appenddirname", "appendonlydir"])
            .arg("--dir")
            .arg(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server"),
    );
    let mut c = connect(port, &mut server);
    let mut expect = |db: u32, key: &str, want: &str| {
        call(&mut c, &["SELECT", &db.to_string()]);
        assert_eq!(call(&mut c, &["GET", key]), want, "db {db} key {key}");
    };
    for i in 0..60u32 {
        if i % 7 == 0 {
            expect(i % 3, &format!("tx{i}a"), "x");
        } else {
            expect(i % 3, &format!("k{i}"), &format!("v{i}"));
        }
    }
    call(&mut c, &["SELECT", "0"]);
    assert_eq!(
        call(&mut c, &["LLEN", "list"]),
        ":3",
        "RPUSH in db 0 transactions (i = 0, 21, 42)"
    );
    // Redis appends its own (plain) commands; then we load the directory again.
    call(&mut c, &["SELECT", "2"]);
    assert_eq!(call(&mut c, &["SET", "from-redis", "yes"]), "+OK");
    drop(c);
    drop(server);

    let mut model = Model::default();
    let out = recover(
        &RealFs,
        &aof_dir,
        "appendonly.aof",
        &Options {
            read_only: true,
            ..Options::default()
        },
        &mut model,
    )
    .expect("we load what Redis appended");
    assert!(out.report.skipped.is_empty());
    let db2 = model.dbs.get(&2).expect("db 2");
    assert_eq!(
        db2.get(&b"from-redis"[..]),
        Some(&common::Val::Str(b"yes".to_vec()))
    );
    assert_eq!(
        db2.get(&b"k59"[..]),
        Some(&common::Val::Str(b"v59".to_vec()))
    );
}
