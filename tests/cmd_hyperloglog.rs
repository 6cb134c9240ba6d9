//! The HyperLogLog commands against a real redis-server 7.0: the same commands go to both
//! servers and the raw reply bytes must be identical — including GET of every HyperLogLog, so
//! the stored representation (sparse opcodes, dense registers, cached cardinality) is Redis's
//! byte for byte.
//!
//! - `random_workload_matches_redis`: seeded random PFADD batches (up to thousands of elements,
//!   across the sparse → dense promotion, with CONFIG SET hll-sparse-max-bytes changes), PFCOUNT
//!   of one and several keys, PFMERGE, PFDEBUG, dense values with arbitrary registers and
//!   corrupted sparse values; GET of every key after each step. `HLL_SEED=n` replays a seed.
//! - `dump_restore_both_ways`: HyperLogLogs built in one server, DUMPed and RESTOREd into the
//!   other, give the same bytes and PFCOUNT.

mod common;

use common::{escape, RawConn, RedisServer, StrongboxServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Pair {
    // Field order matters: connections close before the servers are killed.
    r: RawConn,
    s: RawConn,
    redis: RedisServer,
    sbox: StrongboxServer,
    seed: u64,
    mismatches: Vec<String>,
}

impl Pair {
    fn start(seed: u64) -> Pair {
        let redis = RedisServer::start(&[]);
        let sbox = StrongboxServer::start(&["--appendonly", "no"]);
        Pair {
            r: redis.conn(),
            s: sbox.conn(),
            redis,
            sbox,
            seed,
            mismatches: Vec::new(),
        }
    }

    /// Send `args` to both servers; record a mismatch; return Redis's reply.
    fn run(&mut self, args: &[Vec<u8>], context: &str) -> Vec<u8> {
        self.r.send_cmd(args);
        self.s.send_cmd(args);
        let want = self.r.read_reply();
        let got = self
            .s
            .try_read_reply()
            .unwrap_or_else(|e| format!("<{e}>").into_bytes());
        if want != got {
            let mut shown: Vec<String> = args.iter().take(6).map(|a| escape(a)).collect();
            if args.len() > 6 {
                shown.push(format!("... ({} more arguments)", args.len() - 6));
            }
            let cut = |b: &[u8]| {
                let e = escape(b);
                if e.len() > 400 {
                    format!("{}... ({} bytes)", &e[..400], b.len())
                } else {
                    e
                }
            };
            self.mismatches.push(format!(
                "{context}: {}\n    redis:     {}\n    strongbox: {}",
                shown.join(" "),
                cut(&want),
                cut(&got)
            ));
        }
        want
    }

    fn cmd(&mut self, args: &[&str], context: &str) -> Vec<u8> {
        let v: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.run(&v, context)
    }

    fn assert_clean(&mut self) {
        assert!(self.redis.is_running(), "redis-server died");
        assert!(
            self.sbox.is_running(),
            "strongbox-server died (seed {}):\n{}",
            self.seed,
            self.sbox.log()
        );
        assert!(
            self.mismatches.is_empty(),
            "{} mismatches against redis-server (replay with HLL_SEED={}):\n{}",
            self.mismatches.len(),
            self.seed,
            self.mismatches
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The bulk payload of a RESP bulk reply (`$n\r\n...\r\n`), None for a nil or another type.
fn bulk(reply: &[u8]) -> Option<Vec<u8>> {
    if reply.first() != Some(&b'$') || reply.starts_with(b"$-1") {
        return None;
    }
    let nl = reply.iter().position(|&c| c == b'\n')?;
    let n: usize = std::str::from_utf8(&reply[1..nl - 1]).ok()?.parse().ok()?;
    Some(reply[nl + 1..nl + 1 + n].to_vec())
}

const KEYS: &[&str] = &["h0", "h1", "h2", "h3", "h4", "h5"];

fn element(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => rng.gen_range(0..100_000u32).to_string().into_bytes(),
        1 => format!("user:{}", rng.gen_range(0..1_000_000u32)).into_bytes(),
        2 => {
            let n = rng.gen_range(0..24);
            (0..n).map(|_| rng.gen()).collect()
        }
        _ => rng.gen::<u64>().to_le_bytes().to_vec(),
    }
}

fn pick_keys(rng: &mut StdRng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| KEYS[rng.gen_range(0..KEYS.len())].as_bytes().to_vec())
        .collect()
}

#[test]
fn random_workload_matches_redis() {
    let seed = std::env::var("HLL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4c4c_5948_u64);
    eprintln!("cmd_hyperloglog: seed {seed} (HLL_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = Pair::start(seed);
    p.cmd(&["FLUSHALL"], "setup");
    p.cmd(&["CONFIG", "SET", "hll-sparse-max-bytes", "3000"], "setup");
    for round in 0..400 {
        let ctx = format!("round {round}");
        let op = rng.gen_range(0..100);
        if op < 6 {
            let max = [0, 16, 100, 500, 1000, 3000, 3000, 8000][rng.gen_range(0..8)];
            p.cmd(
                &["CONFIG", "SET", "hll-sparse-max-bytes", &max.to_string()],
                &ctx,
            );
        } else if op < 11 {
            // Start a key over, so sparse values keep being built.
            let key = KEYS[rng.gen_range(0..KEYS.len())];
            p.cmd(&["DEL", key], &ctx);
        } else if op < 55 {
            let n = match rng.gen_range(0..6) {
                0 => 0,
                1 => rng.gen_range(1..5),
                2 => rng.gen_range(5..60),
                3 => rng.gen_range(60..500),
                _ => rng.gen_range(500..3000),
            };
            let mut args = vec![b"PFADD".to_vec()];
            args.extend(pick_keys(&mut rng, 1));
            for _ in 0..n {
                args.push(element(&mut rng));
            }
            p.run(&args, &ctx);
        } else if op < 67 {
            let n = rng.gen_range(1..5);
            let mut args = vec![b"PFCOUNT".to_vec()];
            args.extend(pick_keys(&mut rng, n));
            p.run(&args, &ctx);
        } else if op < 78 {
            let n = rng.gen_range(1..5);
            let mut args = vec![b"PFMERGE".to_vec()];
            args.extend(pick_keys(&mut rng, n));
            if rng.gen_range(0..4) == 0 {
                args.push(b"nosuch".to_vec());
            }
            p.run(&args, &ctx);
        } else if op < 85 {
            let sub = ["TODENSE", "ENCODING", "DECODE", "GETREG"][rng.gen_range(0..4)];
            let key = KEYS[rng.gen_range(0..KEYS.len())];
            p.cmd(&["PFDEBUG", sub, key], &ctx);
        } else if op < 89 {
            // A dense value with arbitrary registers (any 6-bit value is valid) and an
            // arbitrary cached cardinality, written with SET to one key.
            let mut v = b"HYLL\x00".to_vec();
            v.extend((0..3).map(|_| rng.gen::<u8>()));
            v.extend((0..8).map(|_| rng.gen::<u8>()));
            let fill: u8 = rng.gen_range(0..4);
            v.extend((0..12288).map(|_| match fill {
                0 => 0,
                1 => rng.gen(),
                _ => {
                    if rng.gen_range(0..50) == 0 {
                        rng.gen()
                    } else {
                        0
                    }
                }
            }));
            let key = KEYS[rng.gen_range(0..KEYS.len())].as_bytes().to_vec();
            p.run(&[b"SET".to_vec(), key, v], &ctx);
        } else {
            // A corrupted copy of a sparse value, used only where Redis and Strongbox must
            // agree byte for byte (reads, merges from it, DECODE), then deleted.
            let src = KEYS[rng.gen_range(0..KEYS.len())];
            let got = p.cmd(&["GET", src], &ctx);
            if let Some(mut v) = bulk(&got).filter(|v| v.len() > 16 && v[4] == 1) {
                match rng.gen_range(0..3) {
                    0 => {
                        let i = rng.gen_range(16..v.len());
                        v[i] = rng.gen();
                    }
                    1 => {
                        let n = rng.gen_range(16..v.len());
                        v.truncate(n);
                    }
                    _ => {
                        let extra: Vec<u8> = (0..rng.gen_range(1..6)).map(|_| rng.gen()).collect();
                        v.extend(extra);
                    }
                }
                p.run(&[b"SET".to_vec(), b"bad".to_vec(), v], &ctx);
                p.cmd(&["PFCOUNT", "bad"], &ctx);
                p.cmd(&["PFDEBUG", "DECODE", "bad"], &ctx);
                let other = KEYS[rng.gen_range(0..KEYS.len())];
                p.cmd(&["PFCOUNT", "bad", other], &ctx);
                p.cmd(&["PFMERGE", other, "bad"], &ctx);
                p.cmd(&["PFMERGE", "bad", other], &ctx);
                p.cmd(&["GET", "bad"], &ctx);
                p.cmd(&["PFDEBUG", "TODENSE", "bad"], &ctx);
                p.cmd(&["GET", "bad"], &ctx);
                p.cmd(&["DEL", "bad"], &ctx);
            }
        }
        for k in KEYS {
            p.cmd(&["GET", k], &ctx);
        }
        if !p.mismatches.is_empty() {
            break;
        }
    }
    let mut summary = Vec::new();
    for k in KEYS {
        let count = p.cmd(&["PFCOUNT", k], "final");
        let value = p.cmd(&["GET", k], "final");
        summary.push(format!(
            "{k}: {} bytes, PFCOUNT {}",
            bulk(&value).map_or(0, |v| v.len()),
            String::from_utf8_lossy(&count).trim()
        ));
    }
    eprintln!("cmd_hyperloglog: final keys: {}", summary.join("; "));
    p.assert_clean();
}

#[test]
fn dump_restore_both_ways() {
    let redis = RedisServer::start(&[]);
    let sbox = StrongboxServer::start(&["--appendonly", "no"]);
    let mut r = redis.conn();
    let mut s = sbox.conn();
    let mut rng = StdRng::seed_from_u64(7);
    // Sizes on both sides of the promotion; cached cardinality stale and fresh.
    for (i, n) in [0usize, 1, 10, 300, 1500, 2500, 20_000]
        .into_iter()
        .enumerate()
    {
        let key = format!("hll{i}");
        let elems: Vec<Vec<u8>> = (0..n).map(|_| element(&mut rng)).collect();
        for dir in 0..2 {
            let (from, to, label) = if dir == 0 {
                (&mut s, &mut r, "strongbox→redis")
            } else {
                (&mut r, &mut s, "redis→strongbox")
            };
            from.cmd(&["DEL", &key]);
            for chunk in elems.chunks(1000).chain(std::iter::once(&[][..])) {
                let mut args = vec![b"PFADD".to_vec(), key.as_bytes().to_vec()];
                args.extend(chunk.iter().cloned());
                from.send_cmd(&args);
                let rep = from.read_reply();
                assert!(rep.starts_with(b":"), "{label} PFADD: {}", escape(&rep));
            }
            if n % 2 == 0 {
                from.cmd(&["PFCOUNT", &key]);
            }
            let value = bulk(&from.cmd(&["GET", &key])).expect("value");
            let dump = bulk(&from.cmd(&["DUMP", &key])).expect("dump");
            let copy = format!("{key}-copy");
            to.cmd(&["DEL", &copy]);
            to.send_cmd(&[
                b"RESTORE".to_vec(),
                copy.as_bytes().to_vec(),
                b"0".to_vec(),
                dump,
            ]);
            let rep = to.read_reply();
            assert_eq!(rep, b"+OK\r\n", "{label} RESTORE {key}: {}", escape(&rep));
            let restored = bulk(&to.cmd(&["GET", &copy])).expect("restored");
            assert_eq!(restored, value, "{label} {key}: bytes differ after RESTORE");
            let a = from.cmd(&["PFCOUNT", &key]);
            let b = to.cmd(&["PFCOUNT", &copy]);
            assert_eq!(a, b, "{label} {key}: PFCOUNT differs");
            let a = from.cmd(&["PFDEBUG", "ENCODING", &key]);
            let b = to.cmd(&["PFDEBUG", "ENCODING", &copy]);
            assert_eq!(a, b, "{label} {key}: encoding differs");
            // The restored value keeps working: one more element on both sides.
            from.cmd(&["PFADD", &key, "one-more"]);
            to.cmd(&["PFADD", &copy, "one-more"]);
            let a = bulk(&from.cmd(&["GET", &key]));
            let b = bulk(&to.cmd(&["GET", &copy]));
            assert_eq!(a, b, "{label} {key}: bytes differ after a further PFADD");
        }
    }
}
