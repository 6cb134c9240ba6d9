//! The in-memory reader (`RdbReader::from_slice`) gives exactly what the streaming reader over
//! `Read` gives — items, errors (offset, key, message) and final offset — on real files, on
//! every truncation of them and on damaged copies, and on the fuzz corpus. So does its borrowing
//! form (`RdbReader::next_item_ref`), which parses plain string entries in place.

use super::common::fixtures_dir;
use bytes::Bytes;

use crate::rdb::{
    Entry, Item, ItemRef, RdbReader, RdbWriter, ReadStats, ReaderOptions, SliceSource, Value,
    WriterOptions,
};

/// Everything a reader returns.
#[derive(Debug, PartialEq)]
enum Step {
    Item(Item, u64),
    Error(String),
    End(u64),
    HeaderError(String),
}

/// How a transcript reads.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `RdbReader::with_options` over `&[u8]` as a `Read`, `next_item`.
    Read,
    /// `RdbReader::from_slice`, `next_item`.
    Slice,
    /// `RdbReader::from_slice`, `next_item_ref` (borrowed string entries made owned).
    SliceRef,
}

fn transcript(data: &[u8], mode: Mode) -> Vec<Step> {
    let opts = ReaderOptions::default();
    let mut out = Vec::new();
    macro_rules! drain {
        ($r:expr, $next:expr) => {
            match $r {
                Ok(mut r) => {
                    loop {
                        match $next(&mut r) {
                            Ok(Some(item)) => out.push(Step::Item(item, r.offset())),
                            Ok(None) => break,
                            Err(e) => {
                                out.push(Step::Error(format!("{e} key {:?}", e.key)));
                                break;
                            }
                        }
                    }
                    out.push(Step::End(r.offset()));
                }
                Err(e) => out.push(Step::HeaderError(e.to_string())),
            }
        };
    }
    match mode {
        Mode::Read => drain!(RdbReader::with_options(data, opts), |r: &mut RdbReader<
            _,
        >| r
            .next_item()),
        Mode::Slice => drain!(RdbReader::from_slice(data, opts), |r: &mut RdbReader<_>| r
            .next_item()),
        Mode::SliceRef => drain!(RdbReader::from_slice(data, opts), |r: &mut RdbReader<
            SliceSource,
        >| r
            .next_item_ref()
            .map(|o| o.map(ItemRef::into_item))),
    }
    out
}

fn assert_same(data: &[u8], what: &str) {
    let a = transcript(data, Mode::Read);
    let b = transcript(data, Mode::Slice);
    assert!(a == b, "{what}: slice reader differs from the Read reader");
    let c = transcript(data, Mode::SliceRef);
    assert!(a == c, "{what}: next_item_ref differs from next_item");
}

fn fixture_files() -> Vec<(String, Vec<u8>)> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    for name in [
        "redis-7.0-all-types.rdb",
        "redis-7.0-all-types-uncompressed.rdb",
        "valkey-8.0-all-types.rdb",
    ] {
        let p = dir.join(name);
        let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        out.push((name.to_string(), data));
    }
    out
}

#[test]
fn slice_reader_matches_read_reader_on_fixtures_and_their_truncations() {
    for (name, data) in fixture_files() {
        assert_same(&data, &name);
        let step = (data.len() / 60).max(1);
        for cut in (0..data.len()).step_by(step) {
            assert_same(&data[..cut], &format!("{name} cut at {cut}"));
        }
    }
}

#[test]
fn slice_reader_matches_read_reader_on_damaged_fixtures() {
    for (name, data) in fixture_files() {
        let step = (data.len() / 40).max(1);
        for at in (9..data.len()).step_by(step) {
            for mask in [0x01u8, 0xff] {
                let mut d = data.clone();
                d[at] ^= mask;
                assert_same(&d, &format!("{name} byte {at} ^ {mask:#x}"));
            }
        }
    }
}

#[test]
fn slice_reader_matches_read_reader_on_the_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rdb_reader");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("no corpus at {}", dir.display());
    };
    let mut n = 0;
    for e in entries.flatten() {
        let data = std::fs::read(e.path()).expect("corpus file");
        assert_same(&data, &e.path().display().to_string());
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}

#[test]
fn string_longer_than_a_read_chunk_fails_at_the_same_offset() {
    // A string claiming 3 MiB with 2.5 MiB present: the chunked reader fails after two whole
    // chunks; the slice reader must report the same offset.
    let mut d = b"REDIS0010".to_vec();
    d.push(0); // RDB_TYPE_STRING
    d.push(1);
    d.push(b'k');
    d.push(0x80); // 32-bit length
    d.extend_from_slice(&(3u32 << 20).to_be_bytes());
    d.extend(std::iter::repeat_n(b'x', 5 << 19));
    assert_same(&d, "long truncated string");
}

/// String entries of every length encoding (6-bit, 14-bit, 32-bit), empty, integer-like
/// (integer-encoded by the writer), with and without expires, LZF-compressed or not, in two
/// databases, around a list.
fn string_image(compression: bool) -> Vec<u8> {
    let opts = WriterOptions {
        compression,
        ..WriterOptions::default()
    };
    let mut w = RdbWriter::new(Vec::new(), opts).expect("writer");
    let lens = [0usize, 1, 11, 63, 64, 100, 16383, 16384, 20_000];
    for db in [0u32, 3] {
        w.begin_db(db, 2 * lens.len() as u64 + 2, lens.len() as u64)
            .expect("begin_db");
        for (i, &n) in lens.iter().enumerate() {
            for expire_ms in [None, Some(1_700_000_000_000 + i as i64)] {
                let key = format!("key:{db}:{n}:{}", expire_ms.is_some());
                let value: Vec<u8> = (0..n).map(|j| b'a' + (j % 7) as u8).collect();
                w.write_entry(&Entry {
                    db,
                    key: Bytes::from(key),
                    value: Value::String(Bytes::from(value)),
                    expire_ms,
                    idle_secs: None,
                    freq: None,
                })
                .expect("entry");
            }
        }
        for (key, value) in [("12345", "-42"), ("int-value", "9007199254740993")] {
            w.write_entry(&Entry {
                db,
                key: Bytes::from_static(key.as_bytes()),
                value: Value::String(Bytes::from_static(value.as_bytes())),
                expire_ms: None,
                idle_secs: None,
                freq: None,
            })
            .expect("entry");
        }
        w.write_entry(&Entry {
            db,
            key: Bytes::from_static(b"list"),
            value: Value::List(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]),
            expire_ms: None,
            idle_secs: None,
            freq: None,
        })
        .expect("entry");
    }
    w.finish().expect("finish")
}

/// Drains with `next_item_ref`: (borrowed string entries, all items, stats).
fn borrowed_count(data: &[u8]) -> (usize, usize, ReadStats) {
    let mut r = RdbReader::from_slice(data, ReaderOptions::default()).expect("header");
    let (mut borrowed, mut items) = (0, 0);
    while let Some(item) = r.next_item_ref().expect("item") {
        items += 1;
        if matches!(item, ItemRef::Str(_)) {
            borrowed += 1;
        }
    }
    (borrowed, items, r.stats())
}

#[test]
fn borrowed_string_entries_match_next_item_on_every_cut_and_damage() {
    for compression in [false, true] {
        let data = string_image(compression);
        assert_same(&data, "string image");
        for cut in 0..data.len() {
            // Every cut inside the small entries, then a sample of the long strings.
            if cut < 400 || cut % 211 == 0 {
                assert_same(&data[..cut], &format!("string image cut at {cut}"));
            }
        }
        let step = (data.len() / 150).max(1);
        for at in (9..data.len()).step_by(step) {
            for mask in [0x01u8, 0x40, 0x80, 0xff] {
                let mut d = data.clone();
                d[at] ^= mask;
                assert_same(&d, &format!("string image byte {at} ^ {mask:#x}"));
            }
        }
    }
}

#[test]
fn plain_string_entries_are_borrowed() {
    // Uncompressed: every string entry is lent (18, plus "int-value", whose value is too large
    // for the writer's integer encoding) but "12345" → "-42" (both integer-encoded), per db.
    let (borrowed, _, stats) = borrowed_count(&string_image(false));
    assert_eq!(borrowed, 2 * 19);
    assert_eq!(stats.keys, 2 * 21);
    assert_eq!(stats.expires, 2 * 9);
    // Compressed: the long repetitive values are LZF strings and go the general way.
    let (borrowed, _, _) = borrowed_count(&string_image(true));
    assert!(borrowed > 0 && borrowed < 2 * 19, "{borrowed}");
}
