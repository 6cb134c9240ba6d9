//! DUMP from redis-server → decode_dump → encode_dump → RESTORE into redis-server → same value,
//! for every type and encoding; and where Redis 7.0 does not compress, the very same bytes.

use super::common::*;
use crate::rdb::{decode_dump, encode_dump, DUMP_VERSION_OR_CHECKSUM_ERR};

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Fills the server with one key per type/encoding. Returns (key, Redis writes it without LZF).
fn populate(c: &mut Client) -> Vec<(String, bool)> {
    let mut keys = Vec::new();
    let run = |c: &mut Client, args: Vec<Vec<u8>>| {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let r = c.cmd(&refs);
        assert!(
            !matches!(r, Reply::Error(_)),
            "{:?} -> {r:?}",
            String::from_utf8_lossy(&args[0])
        );
    };
    for (k, v, plain) in [
        ("s:text", "hello world".to_string(), true),
        ("s:int", "12345".to_string(), true),
        ("s:negint", "-7".to_string(), true),
        ("s:int64", "-9223372036854775808".to_string(), true),
        ("s:notint", "007".to_string(), true),
        ("s:empty", String::new(), true),
        ("s:long", "abc".repeat(100), false),
    ] {
        run(c, vec![b("SET"), b(k), b(&v)]);
        keys.push((k.to_string(), plain));
    }
    run(c, vec![b("SET"), b("s:binary"), (0u8..=255).collect()]);
    keys.push(("s:binary".into(), false));

    run(
        c,
        vec![
            b("RPUSH"),
            b("l:small"),
            b("a"),
            b("b"),
            b("1"),
            b("-300"),
            b("70000"),
            b(""),
        ],
    );
    keys.push(("l:small".into(), true));
    let mut big = vec![b("RPUSH"), b("l:big")];
    for i in 0..3000 {
        big.push(if i % 3 == 0 {
            i.to_string().into_bytes()
        } else {
            format!("item-{i}").into_bytes()
        });
    }
    big.push(vec![b'x'; 10000]);
    run(c, big);
    keys.push(("l:big".into(), false));

    run(
        c,
        vec![
            b("HSET"),
            b("h:small"),
            b("f1"),
            b("v1"),
            b("f2"),
            b("2"),
            b("3"),
            b("-4"),
        ],
    );
    keys.push(("h:small".into(), true));
    let mut big = vec![b("HSET"), b("h:big")];
    for i in 0..600 {
        big.push(format!("field:{i}").into_bytes());
        big.push(format!("v{i}").into_bytes());
    }
    run(c, big);
    keys.push(("h:big".into(), true));
    let mut mid = vec![b("HSET"), b("h:mid")];
    for i in 0..300 {
        mid.push(format!("field:{i}").into_bytes());
        mid.push(format!("v{i}").into_bytes());
    }
    run(c, mid);
    keys.push(("h:mid".into(), false));
    run(c, vec![b("HSET"), b("h:longval"), b("f"), vec![b'y'; 100]]);
    keys.push(("h:longval".into(), false));

    run(
        c,
        vec![
            b("SADD"),
            b("set:intset"),
            b("1"),
            b("-5"),
            b("70000"),
            b("3"),
        ],
    );
    keys.push(("set:intset".into(), true));
    run(
        c,
        vec![b("SADD"), b("set:int64"), b("1"), b("9223372036854775807")],
    );
    // 24-byte intset: LZF-eligible, and Redis's compressor gives up where ours does not.
    keys.push(("set:int64".into(), false));
    let mut big = vec![b("SADD"), b("set:bigints")];
    for i in 0..600 {
        big.push((i * 7).to_string().into_bytes());
    }
    run(c, big);
    keys.push(("set:bigints".into(), true));
    run(c, vec![b("SADD"), b("set:strs"), b("a"), b("b"), b("c")]);
    keys.push(("set:strs".into(), true));

    run(
        c,
        vec![
            b("ZADD"),
            b("z:small"),
            b("1.5"),
            b("a"),
            b("2"),
            b("b"),
            b("-inf"),
            b("c"),
            b("0.1"),
            b("d"),
        ],
    );
    keys.push(("z:small".into(), true));
    let mut big = vec![b("ZADD"), b("z:big")];
    for i in 0..200 {
        big.push(format!("{}", (i as f64) * 1.25 - 50.0).into_bytes());
        big.push(format!("member:{i}").into_bytes());
    }
    big.push(b("5"));
    big.push(b("tie-b"));
    big.push(b("5"));
    big.push(b("tie-a"));
    run(c, big);
    keys.push(("z:big".into(), true));

    for i in 0..5 {
        let id = format!("1700000000000-{i}");
        run(
            c,
            vec![
                b("XADD"),
                b("x:s"),
                b(&id),
                b("f"),
                b(&i.to_string()),
                b("g"),
                b("v"),
            ],
        );
    }
    run(
        c,
        vec![
            b("XADD"),
            b("x:s"),
            b("1700000000001-0"),
            b("other"),
            b("field"),
        ],
    );
    run(c, vec![b("XDEL"), b("x:s"), b("1700000000000-1")]);
    run(
        c,
        vec![b("XGROUP"), b("CREATE"), b("x:s"), b("grp"), b("0")],
    );
    run(
        c,
        vec![
            b("XREADGROUP"),
            b("GROUP"),
            b("grp"),
            b("alice"),
            b("COUNT"),
            b("2"),
            b("STREAMS"),
            b("x:s"),
            b(">"),
        ],
    );
    run(
        c,
        vec![
            b("XREADGROUP"),
            b("GROUP"),
            b("grp"),
            b("bob"),
            b("COUNT"),
            b("1"),
            b("STREAMS"),
            b("x:s"),
            b(">"),
        ],
    );
    run(
        c,
        vec![
            b("XGROUP"),
            b("CREATECONSUMER"),
            b("x:s"),
            b("grp"),
            b("idle"),
        ],
    );
    keys.push(("x:s".into(), false));
    run(
        c,
        vec![
            b("XADD"),
            b("x:empty"),
            b("MAXLEN"),
            b("0"),
            b("1-1"),
            b("f"),
            b("v"),
        ],
    );
    keys.push(("x:empty".into(), true));
    keys
}

#[test]
fn dump_payloads_round_trip_through_redis_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = RedisServer::start(tmp.path(), "none.rdb");
    let mut c = server.client();
    let keys = populate(&mut c);
    let mut byte_identical = 0;
    for (k, plain) in &keys {
        let payload = c.cmd(&[b"DUMP", k.as_bytes()]).bytes();
        let v = decode_dump(&payload).unwrap_or_else(|e| panic!("{k}: {e}"));
        let ours = encode_dump(&v).expect("encode");
        if *plain {
            assert!(
                ours == payload,
                "{k}: encode_dump differs from Redis's DUMP\n  redis {:02x?}\n  ours  {:02x?}",
                &payload[..payload.len().min(200)],
                &ours[..ours.len().min(200)]
            );
            byte_identical += 1;
        }
        assert_eq!(
            decode_dump(&ours).expect("own payload").canonical(),
            v.canonical(),
            "{k}"
        );
        let copy = format!("{k}:copy");
        let r = c.cmd(&[b"RESTORE", copy.as_bytes(), b"0", &ours]);
        assert_eq!(r, Reply::Simple("OK".into()), "RESTORE {k}");
        let again = decode_dump(&c.cmd(&[b"DUMP", copy.as_bytes()]).bytes()).expect("dump copy");
        // Redis recomputes nothing on RESTORE, so even stream metadata must survive.
        assert_eq!(again.canonical(), v.canonical(), "{k} after RESTORE");
    }
    assert!(byte_identical >= 15);
    // The served values of every key and its copy are the same.
    let ks = server.keyspace();
    for (k, _) in &keys {
        let a = &ks[&format!("0:{k}")];
        let b = &ks[&format!("0:{k}:copy")];
        assert_eq!((&a[1], &a[2], &a[3]), (&b[1], &b[2], &b[3]), "{k}");
    }
}

#[test]
fn corrupt_payloads_are_refused_like_redis_refuses_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = RedisServer::start(tmp.path(), "none.rdb");
    let mut c = server.client();
    c.cmd(&[b"RPUSH", b"l", b"a", b"b"]);
    let payload = c.cmd(&[b"DUMP", b"l"]).bytes();

    let mut flipped = payload.clone();
    flipped[3] ^= 0x40;
    let e = decode_dump(&flipped).expect_err("checksum");
    assert!(e.is_dump_footer(), "{e}");
    let r = c.cmd(&[b"RESTORE", b"x", b"0", &flipped]);
    assert_eq!(
        r,
        Reply::Error(
            DUMP_VERSION_OR_CHECKSUM_ERR
                .trim_start_matches('-')
                .to_string()
        )
    );

    let mut newer = payload.clone();
    let n = newer.len();
    newer[n - 10] = 12;
    assert!(decode_dump(&newer).expect_err("version").is_dump_footer());
    assert!(decode_dump(&payload[..5])
        .expect_err("short")
        .is_dump_footer());

    // A valid footer around a broken body is "Bad data format", not a footer error.
    let mut body = vec![18u8, 1, 2, 3, 0xff];
    body.extend_from_slice(&10u16.to_le_bytes());
    let crc = crate::rdb::crc64::crc64(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let e = decode_dump(&body).expect_err("bad body");
    assert!(!e.is_dump_footer(), "{e}");
    let r = c.cmd(&[b"RESTORE", b"x", b"0", &body]);
    assert_eq!(r, Reply::Error(crate::rdb::DUMP_BAD_FORMAT_ERR.to_string()));
}
