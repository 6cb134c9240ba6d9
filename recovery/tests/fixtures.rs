//! Directories written by real Redis 7.0 load, and give the keyspace Redis had.

mod common;

use common::{fixture, Model, Val};
use serde_json::Value;
use std::collections::BTreeMap;
use strongbox_recovery::{recover, FileKind, Options};
use strongbox_storage::fs::RealFs;

/// jsonl strings hold bytes as latin-1 code points.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

fn keyspace(name: &str) -> BTreeMap<(u32, Vec<u8>), (String, Value, bool)> {
    let text = std::fs::read_to_string(fixture(name)).expect("keyspace fixture");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            let full = v[0].as_str().expect("key");
            let (db, key) = full.split_once(':').expect("db:key");
            (
                (db.parse().expect("db"), latin1(key)),
                (
                    v[1].as_str().expect("type").to_string(),
                    v[2].clone(),
                    v[3].as_bool().expect("ttl"),
                ),
            )
        })
        .collect()
}

fn strs(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| latin1(x.as_str().expect("str")))
        .collect()
}

fn check_value(key: &str, got: &Val, want_type: &str, want: &Value) {
    match (got, want_type) {
        (Val::Str(s), "string") => assert_eq!(s, &latin1(want.as_str().expect("str")), "{key}"),
        (Val::List(l), "list") => assert_eq!(l, &strs(want), "{key}"),
        (Val::Set(s), "set") => {
            let mut w = strs(want);
            w.sort();
            assert_eq!(s.iter().cloned().collect::<Vec<_>>(), w, "{key}");
        }
        (Val::Hash(h), "hash") => {
            let w: Vec<(Vec<u8>, Vec<u8>)> = want
                .as_array()
                .expect("pairs")
                .iter()
                .map(|p| {
                    (
                        latin1(p[0].as_str().expect("f")),
                        latin1(p[1].as_str().expect("v")),
                    )
                })
                .collect();
            assert_eq!(h.clone().into_iter().collect::<Vec<_>>(), w, "{key}");
        }
        (Val::ZSet(z), "zset") => {
            let flat = want.as_array().expect("zset");
            assert_eq!(flat.len() / 2, z.len(), "{key}");
            for p in flat.chunks(2) {
                let m = latin1(p[0].as_str().expect("member"));
                let score: f64 = match &p[1] {
                    Value::String(s) => s.parse().expect("score"),
                    other => other.as_f64().expect("score"),
                };
                assert_eq!(z.get(&m).copied(), Some(score), "{key}");
            }
        }
        (Val::Stream, "stream") => {}
        (got, t) => panic!("{key}: model has {got:?}, Redis had a {t}"),
    }
}

#[test]
fn redis_7_0_plain_aof_directory_loads_to_redis_keyspace() {
    let mut model = Model::default();
    let opts = Options {
        read_only: true,
        ..Options::default()
    };
    let out = recover(
        &RealFs,
        &fixture("redis-7.0-aof-plain"),
        "appendonly.aof",
        &opts,
        &mut model,
    )
    .expect("recover");
    let r = &out.report;
    assert_eq!(r.files.len(), 2);
    assert_eq!(r.files[0].kind, FileKind::BaseAof);
    assert_eq!((r.files[0].commands, r.files[1].commands), (2346, 1460));
    assert_eq!(r.files[1].batches, 0, "Redis files have no batches");
    assert!(r.truncated.is_none() && r.skipped.is_empty());
    // A Redis-written last file is not appended to: a new incr file starts.
    assert!(out.resume.append.is_none());
    assert!(out.resume.manifest.is_some());

    let want = keyspace("redis-7.0-aof-plain.keyspace.jsonl");
    let mut got = BTreeMap::new();
    for (db, keys) in &model.dbs {
        for (k, v) in keys {
            got.insert((*db, k.clone()), v.clone());
        }
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "same keys in the same databases"
    );
    for ((db, k), (t, v, ttl)) in &want {
        let label = format!("{db}:{}", String::from_utf8_lossy(k));
        check_value(&label, &got[&(*db, k.clone())], t, v);
        assert_eq!(model.ttl.contains(&(*db, k.clone())), *ttl, "{label} ttl");
    }
}

#[test]
fn redis_7_0_rdb_base_directory_hands_the_rdb_over_and_replays_the_incr() {
    let mut model = Model::default();
    let opts = Options {
        read_only: true,
        ..Options::default()
    };
    let dir = fixture("redis-7.0-aof-rdb-base");
    let out = recover(&RealFs, &dir, "appendonly.aof", &opts, &mut model).expect("recover");
    assert_eq!(model.rdb_loads.len(), 1);
    assert!(model.rdb_loads[0].0.ends_with("appendonly.aof.2.base.rdb"));
    let r = &out.report;
    assert!(r.files[0].rdb);
    assert_eq!(r.files[1].commands, 1460);
    // The incr file starts with #TS: then SELECT 0 — the first delivered command is SELECT.
    assert_eq!(model.log[0], vec![b"SELECT".to_vec(), b"0".to_vec()]);
    // Strings SET by the incr file end with the value Redis has.
    let want = keyspace("redis-7.0-aof-rdb-base.keyspace.jsonl");
    let mut checked = 0;
    for ((db, k), v) in model
        .dbs
        .iter()
        .flat_map(|(db, m)| m.iter().map(move |(k, v)| ((*db, k), v)))
    {
        if let (Val::Str(s), Some((t, w, _))) = (v, want.get(&(db, k.clone()))) {
            if t == "string" {
                assert_eq!(s, &latin1(w.as_str().expect("str")));
                checked += 1;
            }
        }
    }
    assert!(checked > 900, "only {checked} strings checked");
}
