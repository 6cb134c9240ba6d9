//! Test helpers: the fixtures' keyspace format, reading an RDB into it, and a real redis-server
//! with a tiny RESP2 client to read a served keyspace into the same format.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};

use crate::rdb::{Entry, Item, RdbReader, Value};

/// One keyspace: "db:key" → the whole jsonl line.
pub type Keyspace = BTreeMap<String, J>;

/// `../shared/fixtures` next to the project root.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// Bytes as latin-1 text (the fixtures' convention).
pub fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// How the producer prints scores: Redis 7.0 `%.17g`, Valkey 8 / Redis 7.2+ shortest.
pub type ScoreFmt = fn(f64) -> String;

/// Current unix time in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A value in the fixtures' JSON form.
pub fn value_json(v: &Value, score: ScoreFmt) -> J {
    match v.canonical() {
        Value::String(s) => J::String(latin1(&s)),
        Value::List(l) => J::Array(l.iter().map(|x| J::String(latin1(x))).collect()),
        Value::Set(s) => J::Array(s.iter().map(|x| J::String(latin1(x))).collect()),
        Value::Hash(h) => J::Array(
            h.iter()
                .map(|(f, v)| json!([latin1(f), latin1(v)]))
                .collect(),
        ),
        Value::ZSet(z) => J::Array(
            z.iter()
                .flat_map(|(m, s)| [J::String(latin1(m)), J::String(score(*s))])
                .collect(),
        ),
        Value::Stream(s) => J::Array(
            s.entries
                .iter()
                .map(|e| {
                    let fv: Vec<J> = e
                        .fields
                        .iter()
                        .flat_map(|(f, v)| [J::String(latin1(f)), J::String(latin1(v))])
                        .collect();
                    json!([e.id.to_string(), fv])
                })
                .collect(),
        ),
    }
}

/// Reads a `.keyspace.jsonl`.
pub fn load_jsonl(path: &Path) -> Keyspace {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Keyspace::new();
    for line in BufReader::new(f).lines() {
        let line = line.expect("read line");
        if line.trim().is_empty() {
            continue;
        }
        let v: J = serde_json::from_str(&line).expect("json line");
        let k = v[0].as_str().expect("key").to_string();
        out.insert(k, v);
    }
    out
}

/// Every entry of an RDB file, and its `ctime` AUX field in ms (0 when absent).
pub fn read_entries(path: &Path) -> (i64, Vec<Entry>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = RdbReader::new(BufReader::new(f)).expect("header");
    let mut ctime_ms = 0;
    let mut out = Vec::new();
    while let Some(item) = r
        .next_item()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        match item {
            Item::Entry(e) => out.push(e),
            Item::Aux { key, value } if &key[..] == b"ctime" => {
                ctime_ms = latin1(&value).parse::<i64>().expect("ctime") * 1000;
            }
            _ => {}
        }
    }
    (ctime_ms, out)
}

/// The fixtures were recorded shortly after the snapshot: keys are compared as of this long
/// after the file's `ctime` (keys that expired earlier are gone, as a loading master drops them).
pub const SNAPSHOT_VIEW_DELAY_MS: i64 = 1000;

/// Entries in the keyspace form, without those expired at `now_ms`.
pub fn keyspace_of_entries(entries: &[Entry], score: ScoreFmt, now_ms: i64) -> Keyspace {
    let mut out = Keyspace::new();
    for e in entries {
        if e.expire_ms.is_some_and(|t| t < now_ms) {
            continue;
        }
        let k = format!("{}:{}", e.db, latin1(&e.key));
        let line = json!([
            k,
            e.value.type_name(),
            value_json(&e.value, score),
            e.expire_ms.is_some()
        ]);
        out.insert(k, line);
    }
    out
}

/// An RDB file in the keyspace form, as of [`SNAPSHOT_VIEW_DELAY_MS`] after its `ctime`.
pub fn keyspace_of_rdb(path: &Path, score: ScoreFmt) -> Keyspace {
    let (ctime_ms, entries) = read_entries(path);
    keyspace_of_entries(&entries, score, ctime_ms + SNAPSHOT_VIEW_DELAY_MS)
}

/// Human-readable differences (at most 10).
pub fn diff(expected: &Keyspace, got: &Keyspace) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in expected {
        match got.get(k) {
            None => d.push(format!("missing {k}")),
            Some(g) if g != v => {
                let a = v.to_string();
                let b = g.to_string();
                d.push(format!(
                    "differs {k}:\n  want {:.300}\n  got  {:.300}",
                    a, b
                ));
            }
            _ => {}
        }
    }
    for k in got.keys() {
        if !expected.contains_key(k) {
            d.push(format!("unexpected {k}"));
        }
    }
    d.truncate(10);
    d
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            Reply::Simple(s) => s.as_bytes().to_vec(),
            Reply::Int(i) => i.to_string().into_bytes(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    pub fn array(&self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(a)) => a.clone(),
            other => panic!("not an array reply: {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an integer reply: {other:?}"),
        }
    }
}

/// A tiny RESP2 client.
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
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

    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).expect("send");
        self.read_reply()
    }

    fn line(&mut self) -> String {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("read");
        assert!(l.ends_with(b"\r\n"), "bad line {l:?}");
        l.truncate(l.len() - 2);
        String::from_utf8(l).expect("utf8 line")
    }

    fn read_reply(&mut self) -> Reply {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        match t {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().expect("int")),
            "$" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b).expect("bulk");
                b.truncate(n as usize);
                Reply::Bulk(Some(b))
            }
            "*" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read_reply()).collect()))
            }
            _ => panic!("bad reply type {l}"),
        }
    }
}

/// A redis-server child on a free port, killed on drop.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl RedisServer {
    /// Starts redis-server in `dir`, loading `dbfilename` if present.
    pub fn start(dir: &Path, dbfilename: &str) -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir)
                .args(["--dbfilename", dbfilename, "--logfile", "server.log"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut s = RedisServer { child, port };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                if let Ok(mut c) = Client::connect(port) {
                    // LOADING errors until the dataset is in memory.
                    if c.cmd(&[b"PING"]) == Reply::Simple("PONG".into()) {
                        return s;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            if log.contains("Address already in use") {
                continue;
            }
            panic!("redis-server did not start; log:\n{log}");
        }
        panic!("redis-server: no free port");
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port).expect("connect")
    }

    /// The served keyspace, read with SCAN/TYPE/... per database 0..16.
    pub fn keyspace(&self) -> Keyspace {
        let mut c = self.client();
        let mut out = Keyspace::new();
        for db in 0..16u32 {
            c.cmd(&[b"SELECT", db.to_string().as_bytes()]);
            let mut cursor = b"0".to_vec();
            let mut keys: Vec<Vec<u8>> = Vec::new();
            loop {
                let r = c.cmd(&[b"SCAN", &cursor, b"COUNT", b"1000"]).array();
                cursor = r[0].bytes();
                keys.extend(r[1].array().iter().map(Reply::bytes));
                if cursor == b"0" {
                    break;
                }
            }
            for k in keys {
                let t = String::from_utf8(c.cmd(&[b"TYPE", &k]).bytes()).expect("type");
                let strs = |r: Reply| -> Vec<J> {
                    r.array()
                        .iter()
                        .map(|x| J::String(latin1(&x.bytes())))
                        .collect()
                };
                let v = match t.as_str() {
                    "string" => J::String(latin1(&c.cmd(&[b"GET", &k]).bytes())),
                    "list" => J::Array(strs(c.cmd(&[b"LRANGE", &k, b"0", b"-1"]))),
                    "set" => {
                        let mut m: Vec<Vec<u8>> = c
                            .cmd(&[b"SMEMBERS", &k])
                            .array()
                            .iter()
                            .map(Reply::bytes)
                            .collect();
                        m.sort();
                        J::Array(m.iter().map(|x| J::String(latin1(x))).collect())
                    }
                    "zset" => J::Array(strs(c.cmd(&[b"ZRANGE", &k, b"0", b"-1", b"WITHSCORES"]))),
                    "hash" => {
                        let a: Vec<Vec<u8>> = c
                            .cmd(&[b"HGETALL", &k])
                            .array()
                            .iter()
                            .map(Reply::bytes)
                            .collect();
                        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> =
                            a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
                        pairs.sort();
                        J::Array(
                            pairs
                                .iter()
                                .map(|(f, v)| json!([latin1(f), latin1(v)]))
                                .collect(),
                        )
                    }
                    "stream" => J::Array(
                        c.cmd(&[b"XRANGE", &k, b"-", b"+"])
                            .array()
                            .iter()
                            .map(|e| {
                                let e = e.array();
                                json!([latin1(&e[0].bytes()), J::Array(strs(e[1].clone()))])
                            })
                            .collect(),
                    ),
                    other => panic!("unexpected type {other}"),
                };
                let ttl = c.cmd(&[b"PTTL", &k]).int() >= 0;
                let name = format!("{db}:{}", latin1(&k));
                out.insert(name.clone(), json!([name, t, v, ttl]));
            }
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
