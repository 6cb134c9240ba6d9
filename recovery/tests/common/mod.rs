//! Shared test helpers: a model keyspace that implements `Sink`, and a test clock.
#![allow(dead_code)]

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use strongbox_recovery::Sink;
use strongbox_storage::aof::writer::Clock;

/// A value in the model keyspace (just enough for the fixtures and the crash tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    ZSet(BTreeMap<Vec<u8>, f64>),
    Stream,
}

/// A model keyspace fed by recovery.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub db: u32,
    pub dbs: BTreeMap<u32, BTreeMap<Vec<u8>, Val>>,
    pub ttl: BTreeSet<(u32, Vec<u8>)>,
    pub log: Vec<Vec<Vec<u8>>>,
    pub rdb_loads: Vec<(String, usize)>,
}

impl Model {
    pub fn apply(&mut self, argv: &[Vec<u8>]) -> Result<(), String> {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_uppercase();
        let db = self.db;
        let arg = |i: usize| {
            argv.get(i)
                .cloned()
                .ok_or_else(|| format!("{name}: missing arg {i}"))
        };
        let key = arg(1).unwrap_or_default();
        match name.as_str() {
            "SELECT" => {
                self.db = String::from_utf8_lossy(&arg(1)?)
                    .parse()
                    .map_err(|_| "bad SELECT".to_string())?
            }
            "SET" => {
                self.dbs
                    .entry(db)
                    .or_default()
                    .insert(key.clone(), Val::Str(arg(2)?));
                let opts: Vec<String> = argv[3..]
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
                    .collect();
                if opts
                    .iter()
                    .any(|o| matches!(o.as_str(), "PX" | "PXAT" | "EX" | "EXAT"))
                {
                    self.ttl.insert((db, key));
                } else if !opts.iter().any(|o| o == "KEEPTTL") {
                    self.ttl.remove(&(db, key));
                }
            }
            "DEL" => {
                for k in &argv[1..] {
                    if let Some(m) = self.dbs.get_mut(&db) {
                        m.remove(k);
                    }
                    self.ttl.remove(&(db, k.clone()));
                }
            }
            "PEXPIREAT" => {
                self.ttl.insert((db, key));
            }
            "RPUSH" => {
                let e = self
                    .dbs
                    .entry(db)
                    .or_default()
                    .entry(key)
                    .or_insert(Val::List(vec![]));
                if let Val::List(l) = e {
                    l.extend(argv[2..].iter().cloned());
                }
            }
            "SADD" => {
                let e = self
                    .dbs
                    .entry(db)
                    .or_default()
                    .entry(key)
                    .or_insert(Val::Set(BTreeSet::new()));
                if let Val::Set(s) = e {
                    s.extend(argv[2..].iter().cloned());
                }
            }
            "HSET" | "HMSET" => {
                let e = self
                    .dbs
                    .entry(db)
                    .or_default()
                    .entry(key)
                    .or_insert(Val::Hash(BTreeMap::new()));
                if let Val::Hash(h) = e {
                    for pair in argv[2..].chunks(2) {
                        h.insert(pair[0].clone(), pair.get(1).cloned().unwrap_or_default());
                    }
                }
            }
            "ZADD" => {
                let e = self
                    .dbs
                    .entry(db)
                    .or_default()
                    .entry(key)
                    .or_insert(Val::ZSet(BTreeMap::new()));
                if let Val::ZSet(z) = e {
                    for pair in argv[2..].chunks(2) {
                        let score: f64 = String::from_utf8_lossy(&pair[0])
                            .parse()
                            .map_err(|_| "bad score".to_string())?;
                        z.insert(pair.get(1).cloned().unwrap_or_default(), score);
                    }
                }
            }
            "XADD" => {
                self.dbs
                    .entry(db)
                    .or_default()
                    .entry(key)
                    .or_insert(Val::Stream);
            }
            "XGROUP" | "XCLAIM" | "XDEL" | "XSETID" => {}
            other => return Err(format!("model does not know {other}")),
        }
        Ok(())
    }
}

impl Sink for Model {
    fn command(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        self.apply(&argv)?;
        self.log.push(argv);
        Ok(())
    }
    fn load_rdb(&mut self, path: &Path, bytes: &[u8]) -> Result<u64, String> {
        // The RDB reader lives elsewhere; tests only check that the base is handed over.
        self.rdb_loads
            .push((path.display().to_string(), bytes.len()));
        Ok(bytes.len() as u64)
    }
}

/// A clock the test moves.
#[derive(Debug, Default)]
pub struct TestClock {
    pub ms: AtomicU64,
}

impl TestClock {
    pub fn advance(&self, ms: u64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn monotonic_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
    fn unix_secs(&self) -> i64 {
        1_700_000_000 + (self.ms.load(Ordering::SeqCst) / 1000) as i64
    }
}

/// `../shared/fixtures/<name>` from the workspace root.
pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(name)
}

/// A simulated directory `dir` holding `files` (synced, in this order) and a manifest listing
/// them as incr files 1, 2, …
#[allow(dead_code)]
pub fn sim_dir_with(dir: &Path, files: &[(&str, &[u8])]) -> strongbox_storage::fs::SimFs {
    use strongbox_storage::fs::{write_all, SimFs, Vfs};
    let fs = SimFs::new(1);
    fs.create_dir_all(dir).expect("mkdir");
    let mut manifest = String::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let f = fs.open_append(&dir.join(name)).expect("create");
        write_all(f.as_ref(), bytes).expect("write");
        f.sync_data().expect("sync");
        manifest.push_str(&format!("file {name} seq {} type i\n", i + 1));
    }
    let f = fs
        .open_append(&dir.join("appendonly.aof.manifest"))
        .expect("manifest");
    write_all(f.as_ref(), manifest.as_bytes()).expect("write");
    fs.sync_dir(dir).expect("sync dir");
    fs
}

/// A keyspace without its empty databases (what recovery's sink and the model agree on).
pub fn normalize(
    s: &BTreeMap<u32, BTreeMap<Vec<u8>, Val>>,
) -> BTreeMap<u32, BTreeMap<Vec<u8>, Val>> {
    s.iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}
