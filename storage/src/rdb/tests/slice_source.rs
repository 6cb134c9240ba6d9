//! The in-memory reader (`RdbReader::from_slice`) gives exactly what the streaming reader over
//! `Read` gives — items, errors (offset, key, message) and final offset — on real files, on
//! every truncation of them and on damaged copies, and on the fuzz corpus.

use super::common::fixtures_dir;
use crate::rdb::{Item, RdbReader, ReaderOptions};

/// Everything a reader returns.
#[derive(Debug, PartialEq)]
enum Step {
    Item(Item, u64),
    Error(String),
    End(u64),
    HeaderError(String),
}

fn transcript(data: &[u8], slice: bool) -> Vec<Step> {
    let opts = ReaderOptions::default();
    let mut out = Vec::new();
    macro_rules! drain {
        ($r:expr) => {
            match $r {
                Ok(mut r) => {
                    loop {
                        match r.next_item() {
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
    if slice {
        drain!(RdbReader::from_slice(data, opts));
    } else {
        drain!(RdbReader::with_options(data, opts));
    }
    out
}

fn assert_same(data: &[u8], what: &str) {
    let a = transcript(data, false);
    let b = transcript(data, true);
    assert!(a == b, "{what}: slice reader differs from the Read reader");
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
