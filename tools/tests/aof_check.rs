//! aof-check on Redis 7.0's directories and on damaged copies: exit codes, findings with
//! offsets, what --fix and --truncate-to-timestamp cut and keep.

mod common;

use common::*;
use serde_json::Value as Json;

fn findings(out: &Out) -> Vec<Json> {
    out.json()["findings"].as_array().expect("findings").clone()
}

fn errors(out: &Out) -> Vec<Json> {
    findings(out)
        .into_iter()
        .filter(|f| f["severity"] == "error")
        .collect()
}

#[test]
fn redis_fixture_directories_are_valid() {
    for d in ["redis-7.0-aof-rdb-base", "redis-7.0-aof-plain"] {
        let manifest = fixture(d).join(MANIFEST);
        let out = run(AOF_CHECK, &[&manifest], b"");
        assert_eq!(out.code, 0, "{d}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("All AOF files and manifest are valid"),
            "{}",
            out.stdout
        );
        // stdout is not a terminal here: no progress bar, nothing on stderr.
        assert!(out.stderr.is_empty(), "{}", out.stderr);
        // A directory works too, and --json says the same.
        let out = run(AOF_CHECK, &[&"--json", &fixture(d)], b"");
        assert_eq!(out.code, 0);
        let j = out.json();
        assert_eq!(j["valid"], true);
        assert_eq!(j["kind"], "manifest");
        assert_eq!(j["files"].as_array().expect("files").len(), 2);
    }
    let j = run(
        AOF_CHECK,
        &[&"--json", &fixture("redis-7.0-aof-rdb-base")],
        b"",
    )
    .json();
    assert_eq!(j["files"][0]["rdb"]["keys"], 1446);
    assert_eq!(j["files"][1]["plain_commands"], 1460);
    assert_eq!(j["files"][1]["first_timestamp"], 1_795_665_937i64);
}

#[test]
fn single_files_are_accepted() {
    let dir = fixture("redis-7.0-aof-plain");
    for f in ["appendonly.aof.2.base.aof", "appendonly.aof.2.incr.aof"] {
        let out = run(AOF_CHECK, &[&dir.join(f)], b"");
        assert_eq!(out.code, 0, "{f}: {}", out.stdout);
        assert!(
            out.stdout.contains(&format!("AOF {f} is valid")),
            "{}",
            out.stdout
        );
    }
    let base = fixture("redis-7.0-aof-rdb-base").join("appendonly.aof.2.base.rdb");
    let out = run(AOF_CHECK, &[&"--json", &base], b"");
    assert_eq!(out.code, 0);
    assert_eq!(out.json()["files"][0]["rdb"]["version"], 10);
}

#[test]
fn truncated_redis_incr_is_a_torn_tail_that_fix_cuts_and_keeps() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("aof");
    copy_dir(&fixture("redis-7.0-aof-plain"), &dir);
    let incr = dir.join("appendonly.aof.2.incr.aof");
    let data = std::fs::read(&incr).expect("read");
    let last = *command_offsets(&data).last().expect("commands");
    let torn_len = data.len() - 5;
    std::fs::write(&incr, &data[..torn_len]).expect("truncate");

    let out = run(AOF_CHECK, &[&"--json", &dir.join(MANIFEST)], b"");
    assert_eq!(out.code, 1, "{}", out.stdout);
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0]["offset"], last);
    assert!(errs[0]["file"]
        .as_str()
        .expect("file")
        .ends_with("appendonly.aof.2.incr.aof"));
    assert!(errs[0]["message"]
        .as_str()
        .expect("msg")
        .contains("torn tail"));
    assert_eq!(out.json()["files"][1]["ok_up_to"], last);

    // Answering no changes nothing.
    let out = run(AOF_CHECK, &[&"--fix", &dir.join(MANIFEST)], b"n\n");
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("Continue? [y/N]"), "{}", out.stdout);
    assert!(out.stdout.contains("Aborting"), "{}", out.stdout);
    assert_eq!(std::fs::metadata(&incr).expect("m").len(), torn_len as u64);

    // Yes on stdin: cut at the last whole command, the cut bytes kept next to the file.
    let out = run(AOF_CHECK, &[&"--fix", &dir.join(MANIFEST)], b"y\n");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("Successfully truncated AOF"),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read(&incr).expect("read"), &data[..last as usize]);
    let backup = dir.join(format!("appendonly.aof.2.incr.aof.cut-at-{last}.bak"));
    assert_eq!(
        std::fs::read(&backup).expect("backup"),
        &data[last as usize..torn_len]
    );
    assert_eq!(run(AOF_CHECK, &[&dir.join(MANIFEST)], b"").code, 0);
    // redis-check-aof agrees with the result.
    let rc = std::process::Command::new("redis-check-aof")
        .arg(dir.join(MANIFEST))
        .output()
        .expect("redis-check-aof");
    assert!(
        rc.status.success(),
        "{}",
        String::from_utf8_lossy(&rc.stdout)
    );
}

#[test]
fn flipped_byte_in_the_middle_is_corruption_that_fix_refuses() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("aof");
    copy_dir(&fixture("redis-7.0-aof-plain"), &dir);
    let incr = dir.join("appendonly.aof.2.incr.aof");
    let mut data = std::fs::read(&incr).expect("read");
    let offs = command_offsets(&data);
    let at = offs[offs.len() / 2];
    data[at as usize] = b'X'; // '*' of a command in the middle
    std::fs::write(&incr, &data).expect("write");

    let out = run(AOF_CHECK, &[&"--json", &dir.join(MANIFEST)], b"");
    assert_eq!(out.code, 1);
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0]["offset"], at);
    assert!(errs[0]["message"]
        .as_str()
        .expect("m")
        .contains("corruption"));

    let out = run(AOF_CHECK, &[&"--fix", &"--yes", &dir.join(MANIFEST)], b"");
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("strongbox-recover"), "{}", out.stdout);
    assert_eq!(
        std::fs::read(&incr).expect("read"),
        data,
        "--fix must not touch it"
    );
}

#[test]
fn flipped_byte_in_the_rdb_base_names_the_offset() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("aof");
    copy_dir(&fixture("redis-7.0-aof-rdb-base"), &dir);
    let base = dir.join("appendonly.aof.2.base.rdb");
    let mut data = std::fs::read(&base).expect("read");
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(&base, &data).expect("write");
    let out = run(AOF_CHECK, &[&"--json", &dir], b"");
    assert_eq!(out.code, 1);
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0]["file"].as_str().expect("f").ends_with("base.rdb"));
    assert!(
        errs[0]["message"].as_str().expect("m").starts_with("RDB"),
        "{errs:?}"
    );
    assert!(errs[0]["offset"].as_u64().expect("offset") <= n as u64);
    // The base is not the last file, and RDB damage is not a torn tail.
    assert_eq!(run(AOF_CHECK, &[&"--fix", &"--yes", &dir], b"").code, 1);
}

fn ours(tmp: &std::path::Path) -> (std::path::PathBuf, IncrBuilder) {
    let mut b = IncrBuilder::default();
    b.batch(Some(100), &[&["SET", "a", "1"]])
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
    let aof = make_data_dir(tmp, None, &[(INCR1, &b.bytes)]);
    (aof, b)
}

#[test]
fn our_batches_verify_and_damage_is_located() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (aof, b) = ours(tmp.path());
    let out = run(AOF_CHECK, &[&"--json", &aof], b"");
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["files"][0]["batches"], 4);

    // A flipped byte in batch 2: corruption; batch 3 is where valid batches resume.
    let mut bad = b.bytes.clone();
    bad[b.batch_offsets[1] as usize + 45] ^= 0x01;
    std::fs::write(aof.join(INCR1), &bad).expect("write");
    let out = run(AOF_CHECK, &[&"--json", &aof], b"");
    assert_eq!(out.code, 1);
    let j = out.json();
    let p = &j["files"][0]["problems"][0];
    assert_eq!(p["offset"], b.batch_offsets[1]);
    assert_eq!(p["resume_at"], b.batch_offsets[2]);
    assert_eq!(p["torn_tail"], false);
    assert!(p["reason"].as_str().expect("r").contains("checksum"), "{p}");
    assert_eq!(run(AOF_CHECK, &[&"--fix", &"--yes", &aof], b"").code, 1);

    // The same flip in the last batch: a torn tail (nothing valid follows).
    let mut torn = b.bytes.clone();
    torn[b.batch_offsets[3] as usize + 40] ^= 0x01;
    std::fs::write(aof.join(INCR1), &torn).expect("write");
    let out = run(AOF_CHECK, &[&"--json", &"--fix", &"--yes", &aof], b"");
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["action"]["offset"], b.batch_offsets[3]);
    assert_eq!(
        std::fs::read(aof.join(INCR1)).expect("read"),
        &b.bytes[..b.batch_offsets[3] as usize]
    );
}

#[test]
fn truncation_inside_a_multi_block_cuts_before_the_multi() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut data = plain(&[&["SELECT", "0"], &["SET", "a", "1"]]);
    let multi_at = data.len() as u64;
    data.extend(plain(&[
        &["MULTI"],
        &["SET", "b", "2"],
        &["SET", "c", "3"],
        &["EXEC"],
    ]));
    let cut_inside = data.len() - 20; // inside the second SET of the block
    let aof = make_data_dir(tmp.path(), None, &[(INCR1, &data[..cut_inside])]);
    let out = run(AOF_CHECK, &[&"--json", &aof], b"");
    assert_eq!(out.code, 1);
    let j = out.json();
    assert_eq!(j["files"][0]["ok_up_to"], multi_at);
    // Cleanly ending after the SETs but before EXEC: Redis's message, at the MULTI.
    let no_exec = data.len() - plain(&[&["EXEC"]]).len();
    std::fs::write(aof.join(INCR1), &data[..no_exec]).expect("write");
    let out = run(AOF_CHECK, &[&"--json", &aof], b"");
    let errs = errors(&out);
    assert_eq!(errs[0]["offset"], multi_at);
    assert!(errs[0]["message"]
        .as_str()
        .expect("m")
        .contains("EXEC for MULTI"));
    let out = run(AOF_CHECK, &[&"--fix", &"--yes", &aof], b"");
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        std::fs::metadata(aof.join(INCR1)).expect("m").len(),
        multi_at
    );
}

#[test]
fn torn_tail_in_a_file_that_is_not_last_is_not_fixable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let first = plain(&[&["SET", "a", "1"], &["SET", "b", "2"]]);
    let second = plain(&[&["SET", "c", "3"]]);
    let aof = make_data_dir(
        tmp.path(),
        None,
        &[(INCR1, &first[..first.len() - 3]), (INCR2, &second)],
    );
    let out = run(AOF_CHECK, &[&"--json", &aof], b"");
    assert_eq!(out.code, 1);
    let errs = errors(&out);
    assert!(
        errs[0]["message"]
            .as_str()
            .expect("m")
            .contains("not the last file"),
        "{errs:?}"
    );
    assert_eq!(run(AOF_CHECK, &[&"--fix", &"--yes", &aof], b"").code, 1);
    assert_eq!(
        std::fs::metadata(aof.join(INCR1)).expect("m").len(),
        first.len() as u64 - 3
    );
}

#[test]
fn manifest_problems_name_the_manifest_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = plain(&[&["SET", "a", "1"]]);
    let aof = make_data_dir(tmp.path(), None, &[(INCR1, &data), (INCR2, &data)]);
    std::fs::remove_file(aof.join(INCR2)).expect("rm");
    std::fs::write(aof.join("appendonly.aof.7.incr.aof"), &data).expect("orphan");
    // Empty: the next incr file created ahead of a rotation, only worth an info line.
    std::fs::write(aof.join("appendonly.aof.8.incr.aof"), b"").expect("spare");
    let out = run(AOF_CHECK, &[&"--json", &aof.join(MANIFEST)], b"");
    assert_eq!(out.code, 1);
    let f = findings(&out);
    let missing = f
        .iter()
        .find(|f| {
            f["message"]
                .as_str()
                .unwrap_or("")
                .contains("does not exist")
        })
        .expect("missing-file finding");
    let second_line = format!("file {INCR1} seq 1 type i\n").len();
    assert_eq!(missing["offset"], second_line);
    assert!(missing["file"].as_str().expect("f").ends_with(MANIFEST));
    assert!(f.iter().any(|f| f["severity"] == "warning"
        && f["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("appendonly.aof.7.incr.aof")));
    assert!(f.iter().any(|f| f["severity"] == "info"
        && f["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("appendonly.aof.8.incr.aof")));
    assert!(!f.iter().any(|f| f["severity"] == "warning"
        && f["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("appendonly.aof.8.incr.aof")));

    std::fs::write(
        aof.join(MANIFEST),
        "file a seq 1 type b\nfile b seq 2 type x\n",
    )
    .expect("w");
    let out = run(AOF_CHECK, &[&"--json", &aof.join(MANIFEST)], b"");
    assert_eq!(out.code, 1);
    let errs = errors(&out);
    assert_eq!(errs[0]["offset"], 20);
    assert!(errs[0]["message"]
        .as_str()
        .expect("m")
        .contains("Unknown AOF file type"));
}

#[test]
fn truncate_to_timestamp_cuts_at_the_first_later_annotation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (aof, b) = ours(tmp.path());
    let out = run(
        AOF_CHECK,
        &[&"--truncate-to-timestamp", &"250", &"--yes", &aof],
        b"",
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        std::fs::read(aof.join(INCR1)).expect("read"),
        &b.bytes[..b.batch_offsets[2] as usize]
    );
    let backup = aof.join(format!("{INCR1}.cut-at-{}.bak", b.batch_offsets[2]));
    assert_eq!(
        std::fs::read(backup).expect("backup"),
        &b.bytes[b.batch_offsets[2] as usize..]
    );
    // Nothing later than 1000: nothing to do.
    let out = run(AOF_CHECK, &[&"--truncate-to-timestamp", &"1000", &aof], b"");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Truncate nothing"), "{}", out.stdout);
    // --fix and --truncate-to-timestamp do not combine (usage error).
    let out = run(
        AOF_CHECK,
        &[&"--fix", &"--truncate-to-timestamp", &"1", &aof],
        b"",
    );
    assert_ne!(out.code, 0);
}

#[test]
fn missing_input_is_an_error() {
    let out = run(AOF_CHECK, &[&"/nonexistent/appendonly.aof.manifest"], b"");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Cannot open"), "{}", out.stderr);
}

/// A base with function libraries (FUNCTION2 records, as Redis 7 and Strongbox write them)
/// and an incr file with FUNCTION LOAD: valid, the libraries counted by both tools.
#[test]
fn function_libraries_are_accepted_and_counted() {
    use strongbox_storage::rdb::{RdbWriter, WriterOptions};
    let tmp = tempfile::tempdir().expect("tmp");
    let mut w = RdbWriter::new(Vec::new(), WriterOptions::default()).expect("writer");
    for lib in ["a", "b"] {
        let code =
            format!("#!lua name={lib}\nredis.register_function('f{lib}', function() return 1 end)");
        w.write_function(code.as_bytes()).expect("function");
    }
    w.begin_db(0, 1, 0).expect("db");
    w.write_string(0, b"k", b"v", None).expect("key");
    let base = w.finish().expect("finish");
    let incr = plain(&[&[
        "FUNCTION",
        "LOAD",
        "#!lua name=c\nredis.register_function('fc', function() return 1 end)",
    ]]);
    let aof = tmp.path().join("appendonlydir");
    std::fs::create_dir_all(&aof).expect("mkdir");
    std::fs::write(aof.join(BASE), &base).expect("base");
    std::fs::write(aof.join(INCR1), &incr).expect("incr");
    std::fs::write(
        aof.join(MANIFEST),
        format!("file {BASE} seq 1 type b\nfile {INCR1} seq 1 type i\n"),
    )
    .expect("manifest");
    let out = run(AOF_CHECK, &[&aof.join(MANIFEST)], b"");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("with 1 keys and 2 function libraries"),
        "{}",
        out.stdout
    );
    let j = run(AOF_CHECK, &[&"--json", &aof.join(MANIFEST)], b"").json();
    assert_eq!(j["files"][0]["rdb"]["functions"], 2);
    let j = run(RDB_CHECK, &[&"--json", &aof.join(BASE)], b"").json();
    assert_eq!(j["functions"], 2, "{j}");
}
