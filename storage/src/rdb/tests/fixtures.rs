//! Every RDB written by real Redis 7.0 / Valkey 8.0 loads to exactly its recorded keyspace.

use std::collections::HashSet;

use super::common::*;
use crate::rdb::num::{format_g17, format_shortest};
use crate::rdb::{Item, RdbReader};

fn assert_loads_to(rdb: &str, jsonl: &str, score: ScoreFmt, normalize_scores: bool) {
    let dir = fixtures_dir();
    let mut want = load_jsonl(&dir.join(jsonl));
    if normalize_scores {
        // Valkey prints scores with Grisu2 (`fpconv_dtoa`), which is not always the shortest
        // form; compare the numbers instead of the texts.
        for line in want.values_mut() {
            if line[1] == "zset" {
                if let Some(a) = line[2].as_array_mut() {
                    for s in a.iter_mut().skip(1).step_by(2) {
                        let v: f64 = s.as_str().and_then(|t| t.parse().ok()).expect("score");
                        *s = serde_json::Value::String(format_shortest(v));
                    }
                }
            }
        }
    }
    let got = keyspace_of_rdb(&dir.join(rdb), score);
    let d = diff(&want, &got);
    assert!(d.is_empty(), "{rdb} vs {jsonl}:\n{}", d.join("\n"));
    assert_eq!(want.len(), got.len());
}

#[test]
fn redis_7_0_rdb_loads_to_its_keyspace() {
    assert_loads_to(
        "redis-7.0-all-types.rdb",
        "redis-7.0-all-types.keyspace.jsonl",
        format_g17,
        false,
    );
}

#[test]
fn redis_7_0_uncompressed_rdb_loads_to_its_keyspace() {
    assert_loads_to(
        "redis-7.0-all-types-uncompressed.rdb",
        "redis-7.0-all-types.keyspace.jsonl",
        format_g17,
        false,
    );
}

#[test]
fn valkey_8_0_rdb_loads_to_its_keyspace() {
    assert_loads_to(
        "valkey-8.0-all-types.rdb",
        "valkey-8.0-all-types.keyspace.jsonl",
        format_shortest,
        true,
    );
}

/// Keys (as "db:key") that the commands of a RESP AOF touch.
fn keys_touched_by_aof(bytes: &[u8]) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut db = 0u32;
    let mut i = 0usize;
    let line = |i: &mut usize| -> Vec<u8> {
        let start = *i;
        while &bytes[*i..*i + 2] != b"\r\n" {
            *i += 1;
        }
        let l = bytes[start..*i].to_vec();
        *i += 2;
        l
    };
    while i < bytes.len() {
        let l = line(&mut i);
        if l.first() == Some(&b'#') {
            continue;
        }
        assert_eq!(l[0], b'*', "AOF parse at {i}");
        let n: usize = String::from_utf8_lossy(&l[1..]).parse().expect("count");
        let mut args = Vec::new();
        for _ in 0..n {
            let h = line(&mut i);
            let len: usize = String::from_utf8_lossy(&h[1..]).parse().expect("len");
            args.push(bytes[i..i + len].to_vec());
            i += len + 2;
        }
        let cmd = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        if cmd == "SELECT" {
            db = String::from_utf8_lossy(&args[1]).parse().expect("db");
        } else if cmd == "XGROUP" {
            out.insert(format!("{db}:{}", latin1(&args[2])));
        } else if args.len() > 1 {
            out.insert(format!("{db}:{}", latin1(&args[1])));
        }
    }
    out
}

#[test]
fn aof_base_rdb_loads_like_redis_server_loads_it() {
    // The incr file rewrites nearly every key, so the base alone is checked two ways: keys the
    // incr file does not touch match the recorded keyspace, and all keys match what
    // redis-server 7.0 serves after loading the same file.
    let dir = fixtures_dir();
    let base = dir.join("redis-7.0-aof-rdb-base/appendonly.aof.2.base.rdb");
    let incr = std::fs::read(dir.join("redis-7.0-aof-rdb-base/appendonly.aof.2.incr.aof"))
        .expect("incr file");
    let touched = keys_touched_by_aof(&incr);
    let want_all = load_jsonl(&dir.join("redis-7.0-aof-rdb-base.keyspace.jsonl"));
    let got_all = keyspace_of_rdb(&base, format_g17);
    let (_, entries) = read_entries(&base);
    let want: Keyspace = want_all
        .into_iter()
        .filter(|(k, _)| !touched.contains(k))
        .collect();
    let got: Keyspace = got_all
        .iter()
        .filter(|(k, _)| !touched.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let d = diff(&want, &got);
    assert!(d.is_empty(), "{}", d.join("\n"));

    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&base, tmp.path().join("base.rdb")).expect("copy");
    let server = RedisServer::start(tmp.path(), "base.rdb");
    let served = server.keyspace();
    let d = diff(
        &served,
        &keyspace_of_entries(&entries, format_g17, now_ms()),
    );
    assert!(d.is_empty(), "{}", d.join("\n"));
    assert!(served.len() > 1000);
}

#[test]
fn aux_fields_and_dbs_are_reported_in_file_order() {
    let f = std::fs::File::open(fixtures_dir().join("redis-7.0-all-types.rdb")).expect("open");
    let mut r = RdbReader::new(std::io::BufReader::new(f)).expect("header");
    assert_eq!(r.version(), 10);
    let mut aux = Vec::new();
    let mut dbs = Vec::new();
    let mut eof = None;
    while let Some(item) = r.next_item().expect("valid") {
        match item {
            Item::Aux { key, value } => aux.push((latin1(&key), latin1(&value))),
            Item::SelectDb(db) => dbs.push(db),
            Item::Eof { checksum } => eof = Some(checksum),
            _ => {}
        }
    }
    let names: Vec<&str> = aux.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["redis-ver", "redis-bits", "ctime", "used-mem", "aof-base"]
    );
    assert_eq!(aux[0].1, "7.0.15");
    assert_eq!(aux[1].1, "64");
    assert_eq!(dbs, [0, 1, 5]);
    assert!(matches!(eof, Some(Some(c)) if c != 0));
    assert!(r.next_item().expect("after eof").is_none());
}
