//! Properties: any keyspace → write → read → equal; arbitrary or damaged bytes into the reader
//! never panic and never allocate more than a bound proportional to the input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::common::fixtures_dir;
use crate::rdb::reader::READ_CHUNK_BYTES;
use crate::rdb::{
    decode_dump, encode_dump, Consumer, ConsumerGroup, EncodingThresholds, Entry, PendingEntry,
    RdbReader, RdbWriter, ReaderOptions, Stream, StreamEntry, StreamId, Value, WriterOptions,
};

// ---- allocation accounting (per thread, only while enabled) ----

struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static CUR: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_alloc(l.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note_free(l.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note_free(l.size());
        note_alloc(new);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(p, l, new) }
    }
}

fn note_alloc(n: usize) {
    let _ = TRACK.try_with(|t| {
        if t.get() {
            CUR.with(|c| {
                let v = c.get() + n;
                c.set(v);
                PEAK.with(|p| p.set(p.get().max(v)));
            });
        }
    });
}

fn note_free(n: usize) {
    let _ = TRACK.try_with(|t| {
        if t.get() {
            CUR.with(|c| c.set(c.get().saturating_sub(n)));
        }
    });
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns the peak bytes it had allocated at once on this thread.
fn peak_alloc(f: impl FnOnce()) -> usize {
    CUR.with(|c| c.set(0));
    PEAK.with(|p| p.set(0));
    TRACK.with(|t| t.set(true));
    f();
    TRACK.with(|t| t.set(false));
    PEAK.with(|p| p.get())
}

/// The reader's allocation bound for an input of `n` bytes: one read chunk, bounded
/// pre-sizing, and values that the input's bytes actually back (LZF may expand 88×).
fn alloc_bound_bytes(n: usize) -> usize {
    2 * READ_CHUNK_BYTES + (1 << 20) + 200 * n
}

// ---- generators ----

fn gen_bytes(g: &mut Gen) -> Bytes {
    match u8::arbitrary(g) % 8 {
        0 => Bytes::from(i64::arbitrary(g).to_string()),
        1 => Bytes::from((i64::arbitrary(g) % 1000).to_string()),
        2 => Bytes::from("ab".repeat(usize::arbitrary(g) % 200)),
        3 => Bytes::new(),
        4 => Bytes::from(vec![b'z'; 100 + usize::arbitrary(g) % 9000]),
        _ => Bytes::from(Vec::<u8>::arbitrary(g)),
    }
}

fn gen_unique(g: &mut Gen, n: usize, ints_only: bool) -> Vec<Bytes> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let b = if ints_only {
            Bytes::from(i64::arbitrary(g).to_string())
        } else {
            gen_bytes(g)
        };
        if seen.insert(b.clone()) {
            out.push(b);
        }
    }
    if out.is_empty() {
        out.push(Bytes::from_static(b"x"));
    }
    out
}

fn gen_score(g: &mut Gen) -> f64 {
    match u8::arbitrary(g) % 6 {
        0 => f64::INFINITY,
        1 => f64::NEG_INFINITY,
        2 => (i32::arbitrary(g) as f64) / 7.0,
        3 => i64::arbitrary(g) as f64,
        _ => {
            let f = f64::arbitrary(g);
            if f.is_nan() {
                0.5
            } else {
                f
            }
        }
    }
}

fn gen_stream(g: &mut Gen) -> Stream {
    let n = usize::arbitrary(g) % 250;
    let mut id = StreamId::new(u64::from(u32::arbitrary(g)), 0);
    let shared: Vec<Bytes> = vec![Bytes::from_static(b"f"), Bytes::from_static(b"g")];
    let mut entries = Vec::new();
    for _ in 0..n {
        if bool::arbitrary(g) {
            id.ms += 1 + u64::from(u16::arbitrary(g));
            id.seq = u64::from(u8::arbitrary(g));
        } else {
            id.seq += 1;
        }
        let fields: Vec<(Bytes, Bytes)> = if bool::arbitrary(g) {
            shared.iter().map(|f| (f.clone(), gen_bytes(g))).collect()
        } else {
            (0..1 + usize::arbitrary(g) % 3)
                .map(|_| (gen_bytes(g), gen_bytes(g)))
                .collect()
        };
        entries.push(StreamEntry { id, fields });
    }
    let mut groups = Vec::new();
    for gi in 0..usize::arbitrary(g) % 3 {
        let mut pel: Vec<PendingEntry> = Vec::new();
        for e in &entries {
            if bool::arbitrary(g) {
                pel.push(PendingEntry {
                    id: e.id,
                    delivery_time_ms: i64::arbitrary(g),
                    delivery_count: u64::arbitrary(g),
                });
            }
        }
        let ncons = 1 + usize::arbitrary(g) % 3;
        let mut consumers: Vec<Consumer> = (0..ncons)
            .map(|ci| Consumer {
                name: Bytes::from(format!("c{ci}")),
                seen_time_ms: i64::arbitrary(g),
                active_time_ms: None,
                pending: Vec::new(),
            })
            .collect();
        for p in &pel {
            let ci = usize::arbitrary(g) % ncons;
            consumers[ci].pending.push(p.id);
        }
        groups.push(ConsumerGroup {
            name: Bytes::from(format!("g{gi}")),
            last_id: id,
            entries_read: if bool::arbitrary(g) {
                -1
            } else {
                i64::from(u16::arbitrary(g))
            },
            pel,
            consumers,
        });
    }
    Stream {
        length: entries.len() as u64,
        first_id: entries.first().map(|e| e.id).unwrap_or_default(),
        entries,
        last_id: id,
        max_deleted_id: StreamId::new(u64::from(u8::arbitrary(g)), 0),
        entries_added: u64::from(u32::arbitrary(g)),
        groups,
    }
}

fn gen_value(g: &mut Gen) -> Value {
    let n = 1 + usize::arbitrary(g) % 40 * if bool::arbitrary(g) { 1 } else { 20 };
    match u8::arbitrary(g) % 6 {
        0 => Value::String(gen_bytes(g)),
        1 => Value::List((0..n).map(|_| gen_bytes(g)).collect()),
        2 => {
            let ints = bool::arbitrary(g);
            Value::Set(gen_unique(g, n, ints))
        }
        3 => Value::ZSet(
            gen_unique(g, n, false)
                .into_iter()
                .map(|m| (m, gen_score(g)))
                .collect(),
        ),
        4 => Value::Hash(
            gen_unique(g, n, false)
                .into_iter()
                .map(|f| (f, gen_bytes(g)))
                .collect(),
        ),
        _ => Value::Stream(gen_stream(g)),
    }
}

#[derive(Debug, Clone)]
struct Keyspace {
    entries: Vec<Entry>,
    opts: WriterOptions,
}

impl Arbitrary for Keyspace {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut entries = Vec::new();
        for db in [0u32, 3, 15] {
            let mut keys = std::collections::HashSet::new();
            for _ in 0..usize::arbitrary(g) % 6 {
                let key = gen_bytes(g);
                if !keys.insert(key.clone()) {
                    continue;
                }
                entries.push(Entry {
                    db,
                    key,
                    value: gen_value(g),
                    expire_ms: Option::<i64>::arbitrary(g),
                    idle_secs: Option::<u64>::arbitrary(g),
                    freq: Option::<u8>::arbitrary(g),
                });
            }
        }
        let small = bool::arbitrary(g);
        let th = if small {
            EncodingThresholds {
                hash_max_listpack_entries: 4,
                hash_max_listpack_value: 8,
                zset_max_listpack_entries: 4,
                zset_max_listpack_value: 8,
                list_max_listpack_size: 3,
                list_compress_depth: 1,
                set_max_intset_entries: 4,
                set_max_listpack_entries: 4,
                set_max_listpack_value: 8,
                stream_node_max_bytes: 100,
                stream_node_max_entries: 3,
            }
        } else {
            EncodingThresholds::default()
        };
        let opts = WriterOptions {
            version: if bool::arbitrary(g) { 10 } else { 11 },
            compression: bool::arbitrary(g),
            checksum: bool::arbitrary(g),
            thresholds: th,
            ..WriterOptions::default()
        };
        Keyspace { entries, opts }
    }
}

fn canon(e: &Entry, version: u32) -> Entry {
    let mut value = e.value.canonical();
    if let Value::Stream(s) = &mut value {
        for gr in &mut s.groups {
            for c in &mut gr.consumers {
                if version >= 11 {
                    c.active_time_ms = Some(c.active_time_ms.unwrap_or(c.seen_time_ms));
                } else {
                    c.active_time_ms = None;
                }
            }
        }
    }
    Entry { value, ..e.clone() }
}

fn write(ks: &Keyspace) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = RdbWriter::new(&mut out, ks.opts.clone()).expect("header");
    for e in &ks.entries {
        w.write_entry(e).expect("entry");
    }
    w.finish().expect("finish");
    out
}

fn read_all(bytes: &[u8]) -> Result<Vec<Entry>, crate::rdb::RdbError> {
    let mut r = RdbReader::new(bytes)?;
    let mut out = Vec::new();
    while let Some(item) = r.next_item()? {
        if let crate::rdb::Item::Entry(e) = item {
            out.push(e);
        }
    }
    Ok(out)
}

fn prop_write_read_equal(ks: Keyspace) -> bool {
    let bytes = write(&ks);
    let back = match read_all(&bytes) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("read back failed: {e}");
            return false;
        }
    };
    let v = ks.opts.version;
    let want: Vec<Entry> = ks.entries.iter().map(|e| canon(e, v)).collect();
    let got: Vec<Entry> = back.iter().map(|e| canon(e, v)).collect();
    if want != got {
        for (a, b) in want.iter().zip(&got) {
            if a != b {
                eprintln!(
                    "first difference:\n want {:.600}\n got  {:.600}",
                    format!("{a:?}"),
                    format!("{b:?}")
                );
                break;
            }
        }
        return false;
    }
    // DUMP payloads of the same values round-trip as well.
    ks.entries.iter().all(|e| {
        let p = encode_dump(&e.value).expect("dump");
        decode_dump(&p)
            .map(|v| {
                canon(
                    &Entry {
                        value: v,
                        ..e.clone()
                    },
                    10,
                ) == canon(e, 10)
            })
            .unwrap_or(false)
    })
}

#[test]
fn any_keyspace_written_reads_back_equal() {
    QuickCheck::new()
        .rng(Gen::new(40))
        .tests(150)
        .quickcheck(prop_write_read_equal as fn(Keyspace) -> bool);
}

fn read_never_panics(bytes: &[u8]) {
    for verify in [true, false] {
        let opts = ReaderOptions {
            verify_checksum: verify,
        };
        if let Ok(mut r) = RdbReader::with_options(bytes, opts) {
            for _ in 0..100_000 {
                match r.next_item() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    let _ = decode_dump(bytes);
}

fn prop_arbitrary_bytes(data: Vec<u8>, with_header: bool) -> bool {
    let mut bytes = if with_header {
        b"REDIS0010".to_vec()
    } else {
        Vec::new()
    };
    bytes.extend_from_slice(&data);
    let peak = peak_alloc(|| read_never_panics(&bytes));
    peak <= alloc_bound_bytes(bytes.len())
}

#[test]
fn arbitrary_bytes_never_panic_nor_overallocate() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop_arbitrary_bytes as fn(Vec<u8>, bool) -> bool);
    // Lying lengths: a huge string, a huge LZF claim, a huge collection count.
    for tail in [
        &[
            0x00, 0x01, b'k', 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ][..],
        &[
            0x00, 0x01, b'k', 0xC3, 0x02, 0x80, 0x7f, 0xff, 0xff, 0xff, 0x00, b'a',
        ][..],
        &[0x02, 0x01, b'k', 0x80, 0xff, 0xff, 0xff, 0xff, 0x01, b'a'][..],
        &[0x12, 0x01, b'k', 0x80, 0x0f, 0xff, 0xff, 0xff][..],
    ] {
        let mut bytes = b"REDIS0010".to_vec();
        bytes.extend_from_slice(tail);
        let peak = peak_alloc(|| read_never_panics(&bytes));
        assert!(
            peak <= alloc_bound_bytes(bytes.len()),
            "peak {peak} for {tail:02x?}"
        );
    }
}

fn small_valid_rdb() -> Vec<u8> {
    let mut g = Gen::new(30);
    let mut ks = Keyspace::arbitrary(&mut g);
    ks.opts.checksum = true;
    ks.entries.truncate(8);
    write(&ks)
}

fn prop_mutated_valid_files(seed: u64, flips: Vec<(usize, u8)>) -> bool {
    let _ = seed;
    let mut bytes = small_valid_rdb();
    if bytes.len() < 20 {
        return true;
    }
    for (pos, v) in flips.iter().take(4) {
        let n = bytes.len();
        bytes[pos % n] ^= v | 1;
    }
    let peak = peak_alloc(|| read_never_panics(&bytes));
    peak <= alloc_bound_bytes(bytes.len())
}

#[test]
fn mutated_valid_files_never_panic_nor_overallocate() {
    QuickCheck::new()
        .tests(400)
        .quickcheck(prop_mutated_valid_files as fn(u64, Vec<(usize, u8)>) -> bool);
}

#[test]
fn truncated_fixture_is_an_error_with_an_offset() {
    let full = std::fs::read(fixtures_dir().join("redis-7.0-all-types.rdb")).expect("fixture");
    for cut in [
        0usize,
        5,
        9,
        30,
        83,
        1000,
        50_000,
        826_403,
        full.len() - 9,
        full.len() - 1,
    ] {
        let bytes = &full[..cut];
        let err = read_all(bytes).expect_err("truncated must fail");
        assert!(
            err.offset <= cut as u64,
            "offset {} beyond cut {cut}",
            err.offset
        );
        if cut >= 9 {
            assert!(matches!(err.reason, crate::rdb::Reason::Truncated), "{err}");
        }
    }
}

#[test]
fn flipped_byte_in_fixture_is_an_error_with_an_offset() {
    let full = std::fs::read(fixtures_dir().join("redis-7.0-all-types.rdb")).expect("fixture");
    for pos in [12usize, 100, 5_000, 400_000, 1_700_000, full.len() - 3] {
        let mut bytes = full.clone();
        bytes[pos] ^= 0x5a;
        let err = read_all(&bytes).expect_err("a flipped byte must be detected");
        assert!(err.offset as usize <= full.len(), "{err}");
        assert!(!err.to_string().is_empty());
    }
    // A flip inside a value with checksums off is still caught by validation, or the value
    // differs; never a panic.
    let mut bytes = full.clone();
    bytes[400_000] ^= 0xff;
    let mut r = RdbReader::with_options(
        &bytes[..],
        ReaderOptions {
            verify_checksum: false,
        },
    )
    .expect("header");
    while let Ok(Some(_)) = r.next_item() {}
}

#[test]
fn refused_headers_name_the_producer() {
    let e = RdbReader::new(&b"REDIS0012\xff"[..]).err().expect("v12");
    assert!(e.to_string().contains("Redis 7.4"), "{e}");
    let e = RdbReader::new(&b"VALKEY080\xff"[..])
        .err()
        .expect("valkey 9");
    assert!(e.to_string().contains("Valkey 9"), "{e}");
    let e = RdbReader::new(&b"RIDIS0010"[..]).err().expect("magic");
    assert!(matches!(e.reason, crate::rdb::Reason::BadMagic(_)), "{e}");
    // A module value names the module.
    let mut b = b"REDIS0010".to_vec();
    b.extend_from_slice(&[7, 1, b'k', 0x81]);
    // id for "ReJSON-RL" with encver 3 (from moduleTypeEncodeId).
    let charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id: u64 = 0;
    for ch in b"ReJSON-RL" {
        let pos = charset.iter().position(|c| c == ch).expect("in charset") as u64;
        id = (id << 6) | pos;
    }
    id = (id << 10) | 3;
    b.extend_from_slice(&id.to_be_bytes());
    let mut r = RdbReader::new(&b[..]).expect("header");
    let e = r.next_item().expect_err("module");
    assert!(e.to_string().contains("ReJSON-RL"), "{e}");
    assert_eq!(e.key.as_deref(), Some(&b"k"[..]));
}
