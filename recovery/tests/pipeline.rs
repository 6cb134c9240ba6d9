//! Reading a file on a second thread (`execute_with_pipeline`) gives exactly the outcome of
//! reading it on the applying thread: same commands in the same order, same report, same
//! resume point, same errors, same truncation on disk — on the Redis fixtures and on logs with
//! every kind of damage of the decision table.

mod common;

use common::Model;
use std::path::Path;
use strongbox_recovery::{execute_with_pipeline, observe, plan, Options};
use strongbox_storage::aof::batch::{encode_batch, timestamp_line, Chain};
use strongbox_storage::fs::{RealFs, SimFs, Vfs};
use strongbox_storage::resp::encode_command;

const DIR: &str = "/d/appendonlydir";

/// Everything observable about one recovery, as text.
fn run(fs: &dyn Vfs, dir: &Path, opts: &Options, pipeline_min_bytes: usize) -> String {
    let mut m = Model::default();
    let r = observe(fs, dir, "appendonly.aof")
        .and_then(|o| plan(&o, opts.infer_without_manifest))
        .and_then(|p| execute_with_pipeline(fs, &p, opts, &mut m, pipeline_min_bytes));
    format!("{r:?}\n{:?}\n{:?}\n{:?}", m.log, m.dbs, m.rdb_loads)
}

fn sim_dir(files: &[(String, Vec<u8>)]) -> SimFs {
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    common::sim_dir_with(Path::new(DIR), &files)
}

fn file_lens(fs: &SimFs, files: &[(String, Vec<u8>)]) -> Vec<u64> {
    files
        .iter()
        .map(|(n, _)| fs.len(&Path::new(DIR).join(n)).expect("len"))
        .collect()
}

fn assert_same(files: &[(String, Vec<u8>)], opts: &Options, what: &str) {
    let a = sim_dir(files);
    let b = sim_dir(files);
    let seq = run(&a, Path::new(DIR), opts, usize::MAX);
    let par = run(&b, Path::new(DIR), opts, 0);
    assert_eq!(seq, par, "{what}: pipelined recovery differs");
    assert_eq!(
        file_lens(&a, files),
        file_lens(&b, files),
        "{what}: cuts differ"
    );
}

/// A log of `n` batches of a few commands each, with plain commands, MULTI blocks and
/// timestamps mixed in, from a seed.
fn log(seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chain = Chain::default();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..n {
        let mut payload = Vec::new();
        if next() % 7 == 0 {
            payload.extend_from_slice(timestamp_line(1_700_000_000 + i as i64).as_bytes());
        }
        let k = format!("k{}", next() % 50);
        match next() % 5 {
            0 => {
                encode_command(&mut payload, &["MULTI"]);
                encode_command(&mut payload, &["SET", &k, "m"]);
                encode_command(&mut payload, &["DEL", "k1"]);
                encode_command(&mut payload, &["EXEC"]);
            }
            1 => encode_command(&mut payload, &["SELECT", &(next() % 3).to_string()]),
            _ => encode_command(&mut payload, &["SET", &k, &i.to_string()]),
        }
        if next() % 11 == 0 {
            // A plain command outside any batch (as Redis writes).
            encode_command(&mut out, &["SET", "plain", &i.to_string()]);
        } else {
            encode_batch(&mut out, &mut chain, &payload);
        }
    }
    out
}

#[test]
fn pipelined_recovery_matches_on_damaged_logs() {
    let f1 = "appendonly.aof.1.incr.aof".to_string();
    let f2 = "appendonly.aof.2.incr.aof".to_string();
    for seed in 1..6u64 {
        let first = log(seed, 40);
        let clean = log(seed * 7919, 300);
        let variants: Vec<(String, Vec<u8>)> = {
            let mut v = vec![("clean".to_string(), clean.clone())];
            for cut in [1usize, 5, 37, clean.len() / 2, clean.len() - 3] {
                v.push((
                    format!("torn at -{cut}"),
                    clean[..clean.len() - cut].to_vec(),
                ));
            }
            for at in [10usize, clean.len() / 3, clean.len() / 2, clean.len() - 20] {
                let mut d = clean.clone();
                d[at] ^= 0x20;
                v.push((format!("byte {at} flipped"), d));
            }
            let mut g = clean.clone();
            g.extend_from_slice(b"*2\r\n$3\r\nDEL");
            v.push(("open command at the end".to_string(), g));
            v
        };
        for (what, bytes) in variants {
            for opts in [
                Options::default(),
                Options {
                    load_truncated: false,
                    ..Options::default()
                },
                Options {
                    skip_corrupt: true,
                    read_only: true,
                    ..Options::default()
                },
                Options {
                    to_timestamp: Some(1_700_000_150),
                    read_only: true,
                    ..Options::default()
                },
            ] {
                let files = vec![(f1.clone(), first.clone()), (f2.clone(), bytes.clone())];
                assert_same(&files, &opts, &format!("seed {seed}, {what}, {opts:?}"));
                // The damaged file first (not last): other rows of the decision table.
                let files = vec![(f1.clone(), bytes.clone()), (f2.clone(), first.clone())];
                assert_same(
                    &files,
                    &opts,
                    &format!("seed {seed}, {what} (not last), {opts:?}"),
                );
            }
        }
    }
}

#[test]
fn pipelined_recovery_matches_on_redis_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    for name in ["redis-7.0-aof-plain", "redis-7.0-aof-rdb-base"] {
        let dir = root.join(name);
        let opts = Options {
            read_only: true,
            ..Options::default()
        };
        let seq = run(&RealFs, &dir, &opts, usize::MAX);
        let par = run(&RealFs, &dir, &opts, 0);
        assert!(seq.starts_with("Ok("), "{name}: {seq:.300}");
        assert_eq!(seq, par, "{name}: pipelined recovery differs");
    }
}
