//! strongbox-recover: fixtures and damaged copies recover to the expected keyspace, as loaded
//! by a real redis-server 7.0 (and strongbox-server when built) from the new directory; the
//! report names what was dropped; the input is never modified.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value as Json;

fn recover(dir: &Path, out: &Path, extra: &[&str]) -> Out {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--dir", &dir, &"--output", &out, &"--json"];
    for e in extra {
        args.push(e);
    }
    let o = run(RECOVER, &args, b"");
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    o
}

fn redis_keyspace(data_dir: &Path) -> Keyspace {
    let srv = start_server(Path::new("redis-server"), data_dir);
    read_keyspace(srv.port)
}

/// Stream commands are not in Strongbox's command table yet: a report that stopped at one lets
/// the stream keys be missing (and only those).
fn stream_tolerance(report: &Json) -> bool {
    report["stopped_at_corruption"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("Unknown command 'X"))
}

#[test]
fn redis_fixture_directories_recover_to_the_redis_keyspace() {
    for (d, ks) in [
        (
            "redis-7.0-aof-rdb-base",
            "redis-7.0-aof-rdb-base.keyspace.jsonl",
        ),
        ("redis-7.0-aof-plain", "redis-7.0-aof-plain.keyspace.jsonl"),
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out");
        // The fixture directory is read-only: recovering from it in place proves nothing is
        // written to the input.
        let before = snapshot_tree(&fixture(d));
        let report = recover(&fixture(d), &out, &[]).json();
        assert_eq!(snapshot_tree(&fixture(d)), before);
        assert_eq!(report["source"], "manifest");
        let tolerate = stream_tolerance(&report);
        if !tolerate {
            assert_eq!(report["complete"], true, "{report:#}");
        }
        let names: Vec<String> = std::fs::read_dir(out.join("appendonlydir"))
            .expect("out dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [BASE, INCR1, MANIFEST]);
        assert_eq!(
            std::fs::read_to_string(out.join("appendonlydir").join(MANIFEST)).expect("m"),
            format!("file {BASE} seq 1 type b\nfile {INCR1} seq 1 type i\n")
        );
        let want = load_jsonl(ks);
        // Keys named in the bytes that were not loaded may be missing.
        let dropped: Vec<u8> = report["dropped"]
            .as_array()
            .expect("dropped")
            .iter()
            .flat_map(|r| {
                let f = std::fs::read(fixture(d).join(r["file"].as_str().expect("f"))).expect("r");
                let (a, b) = (r["from"].as_u64().expect("a"), r["to"].as_u64().expect("b"));
                f[a as usize..b as usize].to_vec()
            })
            .collect();
        let in_dropped = |k: &str, _t: &str| {
            let name = from_latin1(k.split_once(':').expect("db:key").1);
            tolerate && dropped.windows(name.len()).any(|w| w == name.as_slice())
        };
        let got = redis_keyspace(&out);
        assert_keyspace(&got, &want, &in_dropped);
        assert_eq!(report["keys"].as_u64(), Some(got.len() as u64), "{d}");

        if let Some(sb) = strongbox_server() {
            let srv = start_server(&sb, &out);
            let got = read_keyspace(srv.port);
            assert_keyspace(&got, &want, &in_dropped);
        }

        // --skip-corrupt: a command the table refuses is listed and skipped, the rest loads.
        let out2 = tmp.path().join("out-skip");
        let report = recover(&fixture(d), &out2, &["--skip-corrupt"]).json();
        let failed = report["failed_commands"].as_array().expect("failed");
        assert!(
            failed
                .iter()
                .all(|f| f["command"].as_str().unwrap_or("").starts_with('X')),
            "{failed:?}"
        );
        let got = redis_keyspace(&out2);
        assert_keyspace(&got, &want, &|_, t| !failed.is_empty() && t == "stream");
        // redis-check-aof accepts the new directory.
        let st = std::process::Command::new("redis-check-aof")
            .arg(out.join("appendonlydir").join(MANIFEST))
            .output()
            .expect("redis-check-aof");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stdout)
        );
    }
}

#[test]
fn missing_or_damaged_manifest_finds_the_files_by_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let with = recover(
        &fixture("redis-7.0-aof-rdb-base"),
        &tmp.path().join("with"),
        &[],
    )
    .json();
    let dir = tmp.path().join("in");
    copy_dir(&fixture("redis-7.0-aof-rdb-base"), &dir);
    std::fs::remove_file(dir.join(MANIFEST)).expect("rm manifest");
    let without = recover(&dir, &tmp.path().join("without"), &[]).json();
    assert_eq!(without["source"], "inferred from file names");
    assert_eq!(without["dbs"], with["dbs"]);
    assert_eq!(without["commands_applied"], with["commands_applied"]);

    std::fs::write(
        dir.join(MANIFEST),
        b"file appendonly.aof.2.base.rdb seq 2 type q\n",
    )
    .expect("w");
    let damaged = recover(&dir, &tmp.path().join("damaged"), &[]).json();
    assert_eq!(damaged["source"], "inferred from file names");
    assert_eq!(damaged["dbs"], with["dbs"]);
    assert!(damaged["warnings"]
        .as_array()
        .expect("w")
        .iter()
        .any(|w| w.as_str().unwrap_or("").contains("Unknown AOF file type")));
}

fn our_incr() -> IncrBuilder {
    let mut b = IncrBuilder::default();
    b.batch(Some(100), &[&["SELECT", "0"], &["SET", "a", "1"]])
        .batch(
            Some(200),
            &[
                &["MULTI"],
                &["SET", "b", "2"],
                &["SET", "c", "3"],
                &["EXEC"],
            ],
        )
        .batch(Some(300), &[&["SET", "d", "4"]])
        .batch(Some(400), &[&["SET", "e", "5"]]);
    b
}

fn names(ks: &Keyspace) -> Vec<&str> {
    ks.keys().map(String::as_str).collect()
}

#[test]
fn flipped_byte_in_an_incr_batch_stops_or_is_skipped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let b = our_incr();
    let mut bad = b.bytes.clone();
    bad[b.batch_offsets[1] as usize + 50] ^= 0x04;
    make_data_dir(&tmp.path().join("in"), None, &[(INCR1, &bad)]);
    let input = tmp.path().join("in");

    // Default: the longest valid prefix.
    let r = recover(&input, &tmp.path().join("prefix"), &[]).json();
    assert_eq!(r["complete"], false);
    assert_eq!(r["stopped_at_corruption"]["file"], INCR1);
    assert_eq!(r["stopped_at_corruption"]["offset"], b.batch_offsets[1]);
    assert_eq!(r["dropped"][0]["from"], b.batch_offsets[1]);
    assert_eq!(r["dropped"][0]["to"], bad.len());
    assert_eq!(r["dropped"][0]["commands"], 4);
    assert_eq!(names(&redis_keyspace(&tmp.path().join("prefix"))), ["0:a"]);

    // --skip-corrupt: the damaged batch is listed and what follows it is kept.
    let r = recover(&input, &tmp.path().join("skip"), &["--skip-corrupt"]).json();
    let dropped = r["dropped"].as_array().expect("dropped");
    assert_eq!(dropped.len(), 1, "{r:#}");
    assert_eq!(dropped[0]["file"], INCR1);
    assert_eq!(dropped[0]["from"], b.batch_offsets[1]);
    assert_eq!(dropped[0]["to"], b.batch_offsets[2]);
    assert_eq!(dropped[0]["commands"], 2);
    assert_eq!(
        names(&redis_keyspace(&tmp.path().join("skip"))),
        ["0:a", "0:d", "0:e"]
    );
}

#[test]
fn truncation_inside_a_multi_block_drops_the_whole_block() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut data = plain(&[&["SELECT", "0"], &["SET", "a", "1"]]);
    let multi_at = data.len();
    data.extend(plain(&[
        &["MULTI"],
        &["SET", "b", "2"],
        &["SET", "c", "3"],
        &["EXEC"],
    ]));
    let cut = data.len() - 20;
    let input = tmp.path().join("in");
    make_data_dir(&input, None, &[(INCR1, &data[..cut])]);
    let before = snapshot_tree(&input);
    let r = recover(&input, &tmp.path().join("out"), &[]).json();
    assert_eq!(
        snapshot_tree(&input),
        before,
        "the torn tail is not cut in the input"
    );
    assert_eq!(r["dropped"][0]["file"], INCR1);
    assert_eq!(r["dropped"][0]["from"], multi_at);
    assert_eq!(r["dropped"][0]["to"], cut);
    assert!(r["dropped"][0]["reason"]
        .as_str()
        .expect("r")
        .contains("torn tail"));
    assert_eq!(names(&redis_keyspace(&tmp.path().join("out"))), ["0:a"]);
}

/// Flip a byte in the middle of an RDB where the reader finds the damage itself (not only the
/// CRC-64 at the end): a flipped byte inside a string value is only caught by the checksum.
fn damage_structurally(rdb: &[u8]) -> Vec<u8> {
    use strongbox_storage::rdb::{RdbReader, Reason};
    for at in (rdb.len() / 2..rdb.len() - 100).step_by(7) {
        let mut d = rdb.to_vec();
        d[at] ^= 0xff;
        let mut r = RdbReader::new(&d[..]).expect("header");
        let err = loop {
            match r.next_item() {
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = err {
            if e.key.is_some() && !matches!(e.reason, Reason::ChecksumMismatch { .. }) {
                return d;
            }
        }
    }
    panic!("no structural damage found");
}

#[test]
fn flipped_byte_in_the_base_keeps_what_it_held_before_the_damage() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut b = IncrBuilder::default();
    b.batch(None, &[&["SELECT", "0"], &["SET", "after-base", "1"]]);
    let input = tmp.path().join("in");
    let aof = make_data_dir(
        &input,
        Some("redis-7.0-all-types-uncompressed.rdb"),
        &[(INCR1, &b.bytes)],
    );
    let base = std::fs::read(aof.join(BASE)).expect("read");
    let base = damage_structurally(&base);
    std::fs::write(aof.join(BASE), &base).expect("w");

    let r = recover(&input, &tmp.path().join("prefix"), &[]).json();
    assert_eq!(r["complete"], false);
    assert_eq!(r["rdb_damage"]["file"], BASE);
    assert_eq!(r["commands_not_applied"], 2);
    let kept = r["rdb_keys"].as_u64().expect("rdb keys");
    assert!(kept > 100 && kept < 1449, "{kept}");
    let ks = redis_keyspace(&tmp.path().join("prefix"));
    assert!(!ks.contains_key("0:after-base"));

    let r = recover(&input, &tmp.path().join("skip"), &["--skip-corrupt"]).json();
    assert_eq!(r["commands_not_applied"], 0);
    let ks = redis_keyspace(&tmp.path().join("skip"));
    assert!(ks.contains_key("0:after-base"));
    // The keys that are there are the fixture's values.
    let want = load_jsonl("redis-7.0-all-types.keyspace.jsonl");
    for (k, v) in ks.iter().filter(|(k, _)| *k != "0:after-base") {
        let w = want.get(k).unwrap_or_else(|| panic!("unexpected key {k}"));
        assert_eq!((&v.0, &v.1), (&w.0, &w.1), "{k}");
    }
}

#[test]
fn to_timestamp_gives_the_state_as_of_that_time() {
    let tmp = tempfile::tempdir().expect("tmp");
    let b = our_incr();
    let input = tmp.path().join("in");
    make_data_dir(&input, None, &[(INCR1, &b.bytes)]);
    let r = recover(&input, &tmp.path().join("out"), &["--to-timestamp", "250"]).json();
    assert_eq!(r["stopped_at_timestamp"]["offset"], b.batch_offsets[2]);
    assert_eq!(r["stopped_at_timestamp"]["timestamp"], 300);
    assert_eq!(r["complete"], true);
    assert_eq!(
        names(&redis_keyspace(&tmp.path().join("out"))),
        ["0:a", "0:b", "0:c"]
    );
}

#[test]
fn missing_incr_file_ends_the_load_before_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let one = plain(&[&["SET", "one", "1"]]);
    let two = plain(&[&["SET", "two", "2"]]);
    let three = plain(&[&["SET", "three", "3"]]);
    let input = tmp.path().join("in");
    let aof = make_data_dir(
        &input,
        None,
        &[
            (INCR1, &one),
            (INCR2, &two),
            ("appendonly.aof.3.incr.aof", &three),
        ],
    );
    std::fs::remove_file(aof.join(INCR2)).expect("rm");
    let r = recover(&input, &tmp.path().join("out"), &[]).json();
    let dropped: Vec<&str> = r["dropped_files"]
        .as_array()
        .expect("d")
        .iter()
        .map(|v| v.as_str().expect("s"))
        .collect();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert!(dropped[0].starts_with(INCR2) && dropped[1].starts_with("appendonly.aof.3.incr.aof"));
    assert_eq!(names(&redis_keyspace(&tmp.path().join("out"))), ["0:one"]);
}

#[test]
fn dump_rdb_alone_is_recovered() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::copy(fixture("valkey-8.0-all-types.rdb"), input.join("dump.rdb")).expect("copy");
    let r = recover(&input, &tmp.path().join("out"), &[]).json();
    assert_eq!(r["source"], "dump.rdb");
    assert_eq!(r["complete"], true);
    let got = redis_keyspace(&tmp.path().join("out"));
    assert_keyspace(
        &got,
        &load_jsonl("valkey-8.0-all-types.keyspace.jsonl"),
        &|_, _| false,
    );
}

#[test]
fn output_must_be_new_and_outside_the_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out: PathBuf = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("x"), b"keep").expect("w");
    let o = run(
        RECOVER,
        &[&"--dir", &fixture("redis-7.0-aof-plain"), &"--output", &out],
        b"",
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not empty"), "{}", o.stderr);
    assert_eq!(std::fs::read(out.join("x")).expect("r"), b"keep");

    let input = tmp.path().join("in");
    make_data_dir(&input, None, &[(INCR1, &plain(&[&["SET", "a", "1"]]))]);
    let o = run(
        RECOVER,
        &[&"--dir", &input, &"--output", &input.join("new")],
        b"",
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("overlaps"), "{}", o.stderr);
    let o = run(
        RECOVER,
        &[
            &"--dir",
            &tmp.path().join("empty"),
            &"--output",
            &tmp.path().join("o2"),
        ],
        b"",
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("nothing to recover"), "{}", o.stderr);
}
