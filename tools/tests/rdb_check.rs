//! rdb-check on RDB files written by Redis 7.0 and Valkey 8.0, and on damaged copies.

mod common;

use common::*;

#[test]
fn fixture_rdbs_are_valid_and_counted() {
    for (f, version, keyspace) in [
        (
            "redis-7.0-all-types.rdb",
            10,
            "redis-7.0-all-types.keyspace.jsonl",
        ),
        (
            "redis-7.0-all-types-uncompressed.rdb",
            10,
            "redis-7.0-all-types.keyspace.jsonl",
        ),
        (
            "valkey-8.0-all-types.rdb",
            11,
            "valkey-8.0-all-types.keyspace.jsonl",
        ),
    ] {
        let out = run(RDB_CHECK, &[&"--json", &fixture(f)], b"");
        assert_eq!(out.code, 0, "{f}: {}", out.stdout);
        let j = out.json();
        assert_eq!(j["valid"], true);
        assert_eq!(j["version"], version);
        // Every key of the expected keyspace is in the file; keys with a TTL may be more
        // (expired ones are in the file but not in the keyspace).
        let want = load_jsonl(keyspace);
        let no_ttl = want.values().filter(|v| !v.2).count() as u64;
        let keys = j["keys"].as_u64().expect("keys");
        assert!(
            keys >= no_ttl && keys <= want.len() as u64 + 100,
            "{f}: {keys}"
        );
        for db in ["0", "1", "5"] {
            assert!(
                j["dbs"][db]["keys"].as_u64().expect("db keys") > 0,
                "{f} db {db}"
            );
        }
        assert!(j["types"]["stream"]["keys"].as_u64().expect("streams") >= 1);
        assert!(j["aux"]
            .as_array()
            .expect("aux")
            .iter()
            .any(|a| a["key"] == "redis-bits"));
        let text = run(RDB_CHECK, &[&"--stats", &fixture(f)], b"");
        assert_eq!(text.code, 0);
        assert!(
            text.stdout.contains("\\o/ RDB looks OK! \\o/"),
            "{}",
            text.stdout
        );
        assert!(text.stdout.contains("[type zset]"), "{}", text.stdout);
    }
}

#[test]
fn damage_is_reported_with_offset_and_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = std::fs::read(fixture("redis-7.0-all-types-uncompressed.rdb")).expect("read");

    // Truncated.
    let p = tmp.path().join("trunc.rdb");
    std::fs::write(&p, &src[..src.len() / 3]).expect("w");
    let out = run(RDB_CHECK, &[&"--json", &p], b"");
    assert_eq!(out.code, 1);
    let j = out.json();
    let f = &j["findings"][0];
    assert_eq!(f["severity"], "error");
    assert!(
        f["message"].as_str().expect("m").contains("unexpected end"),
        "{f}"
    );
    assert!(f["offset"].as_u64().expect("o") <= (src.len() / 3) as u64);
    assert!(j["last_good_key"]["key"].is_string());

    // A flipped byte in the CRC-64 trailer: everything reads, the checksum does not match.
    let p = tmp.path().join("crc.rdb");
    let mut d = src.clone();
    let n = d.len();
    d[n - 1] ^= 0x01;
    std::fs::write(&p, &d).expect("w");
    let out = run(RDB_CHECK, &[&p], b"");
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("checksum mismatch"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("crc.rdb:{}: error", n - 8)),
        "{}",
        out.stdout
    );

    // A flipped byte in the middle of a value: the error names a key (or the CRC catches it).
    let p = tmp.path().join("mid.rdb");
    let mut d = src.clone();
    d[n / 2] ^= 0x55;
    std::fs::write(&p, &d).expect("w");
    let out = run(RDB_CHECK, &[&"--json", &p], b"");
    assert_eq!(out.code, 1);
    let msg = out.json()["findings"][0]["message"]
        .as_str()
        .expect("m")
        .to_string();
    assert!(msg.contains("key '") || msg.contains("checksum"), "{msg}");

    // redis-check-rdb agrees that the damaged files are bad and the original good.
    for (file, ok) in [(&p, false), (&fixture("redis-7.0-all-types.rdb"), true)] {
        let st = std::process::Command::new("redis-check-rdb")
            .arg(file)
            .output()
            .expect("redis-check-rdb");
        assert_eq!(
            st.status.success(),
            ok,
            "{}",
            String::from_utf8_lossy(&st.stdout)
        );
    }
}

#[test]
fn not_an_rdb_is_invalid() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("x.rdb");
    std::fs::write(&p, b"*1\r\n$4\r\nPING\r\n").expect("w");
    let out = run(RDB_CHECK, &[&p], b"");
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("x.rdb:0: error"), "{}", out.stdout);
    assert_eq!(
        run(RDB_CHECK, &[&tmp.path().join("missing.rdb")], b"").code,
        1
    );
}
