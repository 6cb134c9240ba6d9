//! Fixture → RdbWriter → redis-check-rdb accepts it → redis-server 7.0 serves the recorded
//! keyspace; and our own reader reads back exactly what was written.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;

use super::common::*;
use crate::rdb::num::format_g17;
use crate::rdb::{AuxFields, Entry, RdbReader, RdbWriter, Value, WriterOptions};

/// Writes `entries` as an RDB file with SELECTDB + RESIZEDB per database.
fn write_rdb(path: &Path, entries: &[Entry], opts: WriterOptions) {
    let f = std::fs::File::create(path).expect("create");
    let mut w = RdbWriter::new(std::io::BufWriter::new(f), opts).expect("header");
    let mut i = 0;
    while i < entries.len() {
        let db = entries[i].db;
        let j = i + entries[i..].iter().take_while(|e| e.db == db).count();
        let expires = entries[i..j]
            .iter()
            .filter(|e| e.expire_ms.is_some())
            .count();
        w.begin_db(db, (j - i) as u64, expires as u64)
            .expect("select");
        for e in &entries[i..j] {
            w.write_entry(e).expect("entry");
        }
        i = j;
    }
    w.finish().expect("finish");
}

/// Entries as RDB 10 keeps them: sorted collections, and no consumer active time (type 19
/// does not store it).
fn canonical(entries: &[Entry]) -> Vec<Entry> {
    entries
        .iter()
        .map(|e| {
            let mut value = e.value.canonical();
            if let Value::Stream(s) = &mut value {
                for g in &mut s.groups {
                    for c in &mut g.consumers {
                        c.active_time_ms = None;
                    }
                }
            }
            Entry { value, ..e.clone() }
        })
        .collect()
}

/// Asserts equality, printing only the first difference.
pub fn assert_same_entries(got: &[Entry], want: &[Entry], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: entry count");
    for (g, w) in got.iter().zip(want) {
        assert!(
            g == w,
            "{what}: first difference:\n  got  {:.2000}\n  want {:.2000}",
            format!("{g:?}"),
            format!("{w:?}")
        );
    }
}

fn round_trip(fixture: &str, jsonl: Option<&str>, compression: bool, checksum: bool) {
    let dir = fixtures_dir();
    let (ctime_ms, mut entries) = read_entries(&dir.join(fixture));
    let expected = match jsonl {
        Some(j) => load_jsonl(&dir.join(j)),
        None => keyspace_of_entries(&entries, format_g17, ctime_ms + SNAPSHOT_VIEW_DELAY_MS),
    };
    // Move expiries so that each key has as long to live now as it had when the fixture was
    // recorded.
    let shift = now_ms() - (ctime_ms + SNAPSHOT_VIEW_DELAY_MS);
    for e in &mut entries {
        if let Some(t) = e.expire_ms.as_mut() {
            *t += shift;
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("out.rdb");
    let opts = WriterOptions {
        compression,
        checksum,
        aux: AuxFields {
            ctime: now_ms() / 1000,
            used_mem: 1 << 20,
            ..AuxFields::default()
        },
        ..WriterOptions::default()
    };
    write_rdb(&file, &entries, opts);

    // Our reader reads back exactly what was written.
    let (_, back) = read_entries(&file);
    assert_same_entries(&canonical(&back), &canonical(&entries), fixture);

    let check = Command::new("redis-check-rdb")
        .arg(&file)
        .output()
        .expect("run redis-check-rdb");
    assert!(
        check.status.success(),
        "redis-check-rdb refused our file:\n{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let server = RedisServer::start(tmp.path(), "out.rdb");
    let served = server.keyspace();
    let d = diff(&expected, &served);
    assert!(
        d.is_empty(),
        "{fixture} via redis-server:\n{}",
        d.join("\n")
    );
}

#[test]
fn redis_fixture_written_compressed_loads_in_redis_server() {
    round_trip(
        "redis-7.0-all-types.rdb",
        Some("redis-7.0-all-types.keyspace.jsonl"),
        true,
        true,
    );
}

#[test]
fn redis_fixture_written_uncompressed_without_checksum_loads_in_redis_server() {
    round_trip(
        "redis-7.0-all-types-uncompressed.rdb",
        Some("redis-7.0-all-types.keyspace.jsonl"),
        false,
        false,
    );
}

#[test]
fn valkey_fixture_written_as_rdb_10_loads_in_redis_server() {
    // Valkey 8's file is RDB 11 (set listpacks, stream type 21); written back as RDB 10 it must
    // load in Redis 7.0 to the same keyspace (scores as Redis 7.0 prints them).
    round_trip("valkey-8.0-all-types.rdb", None, true, true);
}

#[test]
fn uncompressed_output_is_deterministic_and_checks_ok_without_compression() {
    let dir = fixtures_dir();
    let (_, entries) = read_entries(&dir.join("redis-7.0-all-types-uncompressed.rdb"));
    let mut a = Vec::new();
    let mut b = Vec::new();
    for out in [&mut a, &mut b] {
        let opts = WriterOptions {
            compression: false,
            ..WriterOptions::default()
        };
        let mut w = RdbWriter::new(&mut *out, opts).expect("header");
        for e in &entries {
            w.write_entry(e).expect("entry");
        }
        w.finish().expect("finish");
    }
    assert_eq!(a, b);
    let mut r = RdbReader::new(&a[..]).expect("header");
    let mut n = 0;
    while let Some(item) = r.next_item().expect("valid") {
        if matches!(item, crate::rdb::Item::Entry(_)) {
            n += 1;
        }
    }
    assert_eq!(n, entries.len());
}

#[test]
fn write_string_writes_the_same_bytes_as_write_entry() {
    let values: [&[u8]; 6] = [
        b"",
        b"12",
        b"-70000",
        b"short",
        b"a value long enough to be compressed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        &[0xff; 300],
    ];
    for compression in [true, false] {
        let opts = WriterOptions {
            compression,
            ..WriterOptions::default()
        };
        let mut a = RdbWriter::new(Vec::new(), opts.clone()).expect("writer");
        let mut b = RdbWriter::new(Vec::new(), opts).expect("writer");
        for (i, v) in values.iter().enumerate() {
            let db = (i % 3) as u32;
            let key = format!("key:{i}");
            let expire_ms = (i % 2 == 0).then_some(1_700_000_000_000 + i as i64);
            a.write_entry(&Entry {
                db,
                key: Bytes::from(key.clone()),
                value: Value::String(Bytes::copy_from_slice(v)),
                expire_ms,
                idle_secs: None,
                freq: None,
            })
            .expect("write_entry");
            b.write_string(db, key.as_bytes(), v, expire_ms)
                .expect("write_string");
        }
        assert_eq!(
            a.finish().expect("finish"),
            b.finish().expect("finish"),
            "compression {compression}"
        );
    }
}
