//! Helpers for the tools' tests: running the binaries, copying and damaging fixtures, writing
//! our own checksummed incr files, and reading a live server's keyspace in the fixtures' jsonl
//! form.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use strongbox_storage::aof::batch::{encode_batch, timestamp_line, Chain};
use strongbox_storage::resp::encode_command;

pub const AOF_CHECK: &str = env!("CARGO_BIN_EXE_aof-check");
pub const RDB_CHECK: &str = env!("CARGO_BIN_EXE_rdb-check");
pub const RECOVER: &str = env!("CARGO_BIN_EXE_strongbox-recover");

/// /work/shared/fixtures, relative to this crate.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The workspace's strongbox-server, if built.
pub fn strongbox_server() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/strongbox-server");
    p.is_file().then_some(p)
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Run a binary with arguments and stdin.
pub fn run(bin: &str, args: &[&dyn AsRef<std::ffi::OsStr>], stdin: &[u8]) -> Out {
    let mut child = Command::new(bin)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tool");
    {
        let mut i = child.stdin.take().expect("stdin");
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait tool");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copy a directory's files (not recursive) into `dst` (created), writable.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            let to = dst.join(e.file_name());
            std::fs::copy(e.path(), &to).expect("copy");
            let mut perm = std::fs::metadata(&to).expect("meta").permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&to, perm).expect("chmod");
        }
    }
}

/// Every file under `dir` with its bytes (to prove the input was not modified).
pub fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).expect("read"));
            }
        }
    }
    out
}

/// Offsets of the commands of a plain RESP file (Redis-written), in order.
pub fn command_offsets(data: &[u8]) -> Vec<u64> {
    let mut r = strongbox_storage::aof::BatchReader::new(data, 0);
    let mut out = Vec::new();
    while let Some(u) = r.next() {
        if let strongbox_storage::aof::Unit::Command { offset, .. } = u.expect("valid file") {
            out.push(offset);
        }
    }
    out
}

/// Builds an incr file the way Strongbox writes it: `#SB` batches, optional `#TS:`.
#[derive(Default)]
pub struct IncrBuilder {
    pub bytes: Vec<u8>,
    chain: Chain,
    /// Offset of each batch.
    pub batch_offsets: Vec<u64>,
}

impl IncrBuilder {
    pub fn batch(&mut self, ts: Option<i64>, cmds: &[&[&str]]) -> &mut Self {
        let mut p = Vec::new();
        if let Some(ts) = ts {
            p.extend_from_slice(timestamp_line(ts).as_bytes());
        }
        for c in cmds {
            encode_command(&mut p, c);
        }
        self.batch_offsets.push(self.bytes.len() as u64);
        encode_batch(&mut self.bytes, &mut self.chain, &p);
        self
    }
}

/// Plain RESP commands, as Redis writes an incr file.
pub fn plain(cmds: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        encode_command(&mut out, c);
    }
    out
}

pub const MANIFEST: &str = "appendonly.aof.manifest";
pub const BASE: &str = "appendonly.aof.1.base.rdb";
pub const INCR1: &str = "appendonly.aof.1.incr.aof";
pub const INCR2: &str = "appendonly.aof.2.incr.aof";

/// A data directory `<root>/appendonlydir` with an RDB base (a fixture RDB) and incr files.
pub fn make_data_dir(root: &Path, base_rdb: Option<&str>, incrs: &[(&str, &[u8])]) -> PathBuf {
    let aof = root.join("appendonlydir");
    std::fs::create_dir_all(&aof).expect("mkdir");
    let mut manifest = String::new();
    if let Some(b) = base_rdb {
        std::fs::copy(fixture(b), aof.join(BASE)).expect("copy base");
        let mut perm = std::fs::metadata(aof.join(BASE)).expect("m").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(aof.join(BASE), perm).expect("chmod");
        manifest.push_str(&format!("file {BASE} seq 1 type b\n"));
    }
    for (i, (name, bytes)) in incrs.iter().enumerate() {
        std::fs::write(aof.join(name), bytes).expect("write incr");
        manifest.push_str(&format!("file {name} seq {} type i\n", i + 1));
    }
    std::fs::write(aof.join(MANIFEST), manifest).expect("write manifest");
    aof
}

#[path = "../../../tests/common/port.rs"]
#[allow(dead_code)]
mod port;

/// A free loopback port, picked as the server package's tests pick theirs.
pub fn free_port() -> u16 {
    port::pick_free_port()
}

/// A server process killed on drop.
pub struct ServerProc {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `redis-server` (or strongbox-server) on `dir` with the AOF on, and wait until it has
/// loaded. Panics with the server's log if it does not come up.
pub fn start_server(program: &Path, dir: &Path) -> ServerProc {
    let port = free_port();
    let log = dir.with_extension("server.log");
    let logf = std::fs::File::create(&log).expect("log file");
    let child = Command::new(program)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.display().to_string(),
            "--appendonly",
            "yes",
            "--save",
            "",
        ])
        .stdout(Stdio::from(logf.try_clone().expect("clone")))
        .stderr(Stdio::from(logf))
        .spawn()
        .expect("spawn server");
    let mut proc = ServerProc { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!(
                "{} exited with {status} on {}:\n{}",
                program.display(),
                dir.display(),
                std::fs::read_to_string(&proc.log).unwrap_or_default()
            );
        }
        if let Ok(mut c) = Client::connect(port) {
            if let Ok(Json::String(info)) = c.try_cmd(&["INFO", "persistence"]) {
                if info.contains("\r\nloading:0") {
                    return proc;
                }
            }
        }
        if Instant::now() > deadline {
            let _ = proc.child.kill();
            panic!(
                "{} did not finish loading:\n{}",
                program.display(),
                std::fs::read_to_string(&proc.log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal RESP2 client; replies as JSON (bulk strings as latin-1 text, like the jsonl).
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

pub fn from_latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Json, String> {
        let mut b = Vec::new();
        encode_command(&mut b, args);
        self.w.write_all(&b).map_err(|e| e.to_string())?;
        self.reply()
    }

    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Json {
        self.try_cmd(args).expect("reply")
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut l = Vec::new();
        self.r
            .read_until(b'\n', &mut l)
            .map_err(|e| e.to_string())?;
        if l.len() < 2 {
            return Err("connection closed".into());
        }
        l.truncate(l.len() - 2);
        Ok(l)
    }

    fn reply(&mut self) -> Result<Json, String> {
        let l = self.line()?;
        let rest = latin1(&l[1..]);
        match l[0] {
            b'+' => Ok(Json::String(rest)),
            b'-' => Err(rest),
            b':' => Ok(json!(rest.parse::<i64>().map_err(|e| e.to_string())?)),
            b'$' => {
                let n: i64 = rest.parse().map_err(|_| "bad bulk len")?;
                if n < 0 {
                    return Ok(Json::Null);
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
                Ok(Json::String(latin1(&buf[..n as usize])))
            }
            b'*' => {
                let n: i64 = rest.parse().map_err(|_| "bad array len")?;
                if n < 0 {
                    return Ok(Json::Null);
                }
                (0..n)
                    .map(|_| self.reply())
                    .collect::<Result<Vec<_>, _>>()
                    .map(Json::Array)
            }
            other => Err(format!("unexpected reply byte {other}")),
        }
    }
}

/// jsonl line → ("db:key", [type, value, has_ttl]).
pub type Keyspace = BTreeMap<String, (String, Json, bool)>;

pub fn load_jsonl(name: &str) -> Keyspace {
    let text = std::fs::read_to_string(fixture(name)).expect("keyspace fixture");
    text.lines()
        .map(|l| {
            let v: Json = serde_json::from_str(l).expect("json");
            (
                v[0].as_str().expect("key").to_string(),
                (
                    v[1].as_str().expect("type").to_string(),
                    v[2].clone(),
                    v[3].as_bool().expect("ttl"),
                ),
            )
        })
        .collect()
}

/// Read a live server's whole keyspace (databases 0..16) in the jsonl form.
pub fn read_keyspace(port: u16) -> Keyspace {
    let mut c = Client::connect(port).expect("connect");
    let mut out = Keyspace::new();
    for db in 0..16 {
        c.cmd(&["SELECT", &db.to_string()]);
        let Json::Array(keys) = c.cmd(&["KEYS", "*"]) else {
            panic!("KEYS")
        };
        for k in keys {
            let key = from_latin1(k.as_str().expect("key"));
            let t = c.cmd(&[b"TYPE".as_slice(), &key]);
            let t = t.as_str().expect("type").to_string();
            let v = match t.as_str() {
                "string" => c.cmd(&[b"GET".as_slice(), &key]),
                "list" => c.cmd(&[b"LRANGE".as_slice(), &key, b"0", b"-1"]),
                "set" => {
                    let mut m = c.cmd(&[b"SMEMBERS".as_slice(), &key]);
                    if let Json::Array(a) = &mut m {
                        a.sort_by(|x, y| {
                            from_latin1(x.as_str().unwrap_or(""))
                                .cmp(&from_latin1(y.as_str().unwrap_or("")))
                        });
                    }
                    m
                }
                "hash" => {
                    let Json::Array(flat) = c.cmd(&[b"HGETALL".as_slice(), &key]) else {
                        panic!("HGETALL")
                    };
                    let mut pairs: Vec<Json> =
                        flat.chunks(2).map(|p| json!([p[0], p[1]])).collect();
                    pairs.sort_by(|x, y| {
                        from_latin1(x[0].as_str().unwrap_or(""))
                            .cmp(&from_latin1(y[0].as_str().unwrap_or("")))
                    });
                    Json::Array(pairs)
                }
                "zset" => c.cmd(&[b"ZRANGE".as_slice(), &key, b"0", b"-1", b"WITHSCORES"]),
                "stream" => c.cmd(&[b"XRANGE".as_slice(), &key, b"-", b"+"]),
                other => panic!("unexpected type {other}"),
            };
            let ttl = c.cmd(&[b"PTTL".as_slice(), &key]).as_i64().unwrap_or(-1) >= 0;
            out.insert(format!("{db}:{}", latin1(&key)), (t, v, ttl));
        }
    }
    out
}

/// Compare a live keyspace with the jsonl: same keys and values, except that keys with a TTL
/// may have expired since the fixture was made, and keys in `tolerate_missing` may be absent.
pub fn assert_keyspace(
    got: &Keyspace,
    want: &Keyspace,
    tolerate_missing: &dyn Fn(&str, &str) -> bool,
) {
    for (k, (t, v, ttl)) in want {
        match got.get(k) {
            None if *ttl || tolerate_missing(k, t) => {}
            None => panic!("key {k} ({t}) missing"),
            Some((gt, gv, gttl)) => {
                assert_eq!(gt, t, "type of {k}");
                if t == "zset" {
                    // Scores as numbers: Valkey 8 prints 17 significant digits, Redis 7.0 the
                    // shortest form that reads back.
                    assert_eq!(zset_numeric(gv), zset_numeric(v), "value of {k}");
                } else {
                    assert_eq!(gv, v, "value of {k}");
                }
                assert_eq!(gttl, ttl, "ttl of {k}");
            }
        }
    }
    for k in got.keys() {
        assert!(want.contains_key(k), "unexpected key {k}");
    }
}

fn zset_numeric(v: &Json) -> Vec<(String, f64)> {
    v.as_array()
        .expect("zset")
        .chunks(2)
        .map(|p| {
            let score = match &p[1] {
                Json::String(s) => s.parse().expect("score"),
                other => other.as_f64().expect("score"),
            };
            (p[0].as_str().expect("member").to_string(), score)
        })
        .collect()
}
