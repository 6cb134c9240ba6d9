//! Seeded crash simulation of the Redis 6 AOF upgrade (`strongbox_storage::aof::upgrade`):
//! a single-file `appendonly.aof` in the data directory becomes the base of
//! `appendonlydir/`, as Redis 7 does at its first start on a Redis 6 data directory.
//!
//! Each seed: a data directory holding a Redis 6 style AOF (RESP commands, synced), sometimes
//! an `appendonlydir/` already there (empty, or with a manifest without entries). The upgrade runs with
//! a fault armed — a power cut after a random number of mutating operations, or a failed
//! fsync — then the machine crashes (power loss: unsynced bytes and directory changes dropped,
//! sometimes torn writes; or a process kill). The next start runs the upgrade again, sometimes
//! itself cut short by a second power cut and a third start. Recovery is the server's
//! (`upgrade_old_style`, then `strongbox_recovery::recover`).
//!
//! Every start after the first must load exactly the old file's dataset: never nothing, never
//! an error. The old file must end up inside the AOF directory, named by its manifest.
//!
//! Directory changes are dropped all together or kept all together here (no
//! `random_dir_ops`): the upgrade moves a file from the data directory into the AOF directory
//! with one `rename`, which a journaling file system commits as one transaction (both
//! directories or neither), while the simulator would track the two entries separately.
//!
//! `STRONGBOX_UPGRADE_SEEDS=N` runs N seeds (default 1000); `STRONGBOX_UPGRADE_SEED=S`
//! replays one (a failure prints the exact command).

mod common;

use common::{normalize, Model, Val};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use strongbox_recovery::{recover, Options};
use strongbox_storage::aof::upgrade::upgrade_old_style;
use strongbox_storage::aof::Manifest;
use strongbox_storage::fs::{write_all, write_file_atomic, CrashOptions, SimFs, Vfs};
use strongbox_storage::resp::encode_command;

type State = BTreeMap<u32, BTreeMap<Vec<u8>, Val>>;

const FILENAME: &str = "appendonly.aof";

/// A random Redis 6 AOF: its bytes and the state it loads to.
fn old_aof(rng: &mut StdRng) -> (Vec<u8>, State) {
    let mut model = Model::default();
    let mut bytes = Vec::new();
    let n = rng.gen_range(1..60);
    for _ in 0..n {
        let k = format!("k{}", rng.gen_range(0..20)).into_bytes();
        let v = format!("v{}", rng.gen::<u16>()).into_bytes();
        let cmd: Vec<Vec<u8>> = match rng.gen_range(0..7) {
            0 => vec![
                b"SELECT".to_vec(),
                rng.gen_range(0..3u32).to_string().into(),
            ],
            1 => vec![b"DEL".to_vec(), k],
            2 => vec![b"RPUSH".to_vec(), [b"l".as_slice(), &k].concat(), v],
            3 => vec![b"HSET".to_vec(), [b"h".as_slice(), &k].concat(), k, v],
            4 => vec![b"SADD".to_vec(), [b"s".as_slice(), &k].concat(), v],
            _ => vec![b"SET".to_vec(), k, v],
        };
        model.apply(&cmd).expect("model");
        encode_command(&mut bytes, &cmd);
    }
    (bytes, normalize(&model.dbs))
}

/// One start: the upgrade, then the recovery of the AOF directory.
fn start(fs: &SimFs, data: &Path) -> Result<State, String> {
    let aof_dir = data.join("appendonlydir");
    upgrade_old_style(fs, data, &aof_dir, FILENAME).map_err(|e| format!("upgrade: {e}"))?;
    let mut model = Model::default();
    recover(fs, &aof_dir, FILENAME, &Options::default(), &mut model)
        .map_err(|e| format!("recovery: {e}"))?;
    Ok(normalize(&model.dbs))
}

fn crash_options(rng: &mut StdRng) -> (CrashOptions, &'static str) {
    match rng.gen_range(0..4) {
        0 => (CrashOptions::process_kill(), "kill"),
        1 => (
            CrashOptions {
                torn_writes: true,
                ..CrashOptions::power_loss()
            },
            "power loss, torn writes",
        ),
        _ => (CrashOptions::power_loss(), "power loss"),
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let fs = SimFs::new(seed);
    let data = Path::new("/data");
    let aof_dir = data.join("appendonlydir");
    let mut story = String::new();
    fs.create_dir_all(data).map_err(|e| e.to_string())?;
    fs.sync_dir(Path::new("/")).map_err(|e| e.to_string())?;
    let (bytes, expect) = old_aof(&mut rng);
    let f = fs
        .open_append(&data.join(FILENAME))
        .map_err(|e| e.to_string())?;
    write_all(f.as_ref(), &bytes).map_err(|e| e.to_string())?;
    f.sync_data().map_err(|e| e.to_string())?;
    drop(f);
    match rng.gen_range(0..4) {
        0 => {
            fs.create_dir_all(&aof_dir).map_err(|e| e.to_string())?;
            story.push_str("empty appendonlydir; ");
        }
        1 => {
            fs.create_dir_all(&aof_dir).map_err(|e| e.to_string())?;
            // Comments only: no base, no incr (an empty file is an error, as in Redis).
            write_file_atomic(&fs, &aof_dir, &format!("{FILENAME}.manifest"), b"# none\n")
                .map_err(|e| e.to_string())?;
            story.push_str("manifest without entries; ");
        }
        _ => {}
    }
    fs.sync_dir(data).map_err(|e| e.to_string())?;

    // The first start, with a fault armed.
    let mut fs = fs;
    let ops = rng.gen_range(0..12);
    if rng.gen_range(0..5) == 0 {
        fs.fail_nth_sync(rng.gen_range(1..6));
        story.push_str("failed fsync; ");
    } else {
        fs.power_cut_after(ops);
        story.push_str(&format!("power cut after {ops} ops; "));
    }
    let first = upgrade_old_style(&fs, data, &aof_dir, FILENAME);
    story.push_str(&format!(
        "first upgrade: {:?}; ",
        first.as_ref().map_err(|e| e.to_string())
    ));
    // Up to two more crashes, each during the next start's upgrade.
    let crashes = rng.gen_range(1..=2);
    for i in 0..crashes {
        let (opts, what) = crash_options(&mut rng);
        story.push_str(&format!("crash ({what}); "));
        fs = fs.crash(opts);
        if i + 1 < crashes {
            let ops = rng.gen_range(0..8);
            fs.power_cut_after(ops);
            story.push_str(&format!("start cut after {ops} ops: "));
            let r = upgrade_old_style(&fs, data, &aof_dir, FILENAME);
            story.push_str(&format!("{:?}; ", r.as_ref().map_err(|e| e.to_string())));
        }
    }
    let got = start(&fs, data).map_err(|e| format!("{e} ({story})"))?;
    if got != expect {
        return Err(format!(
            "recovered {} dbs, expected {} ({story})",
            got.len(),
            expect.len()
        ));
    }
    // The old file is inside, named by the manifest; a further start changes nothing.
    let manifest = Manifest::parse(
        &fs.read(&aof_dir.join(format!("{FILENAME}.manifest")))
            .map_err(|e| format!("manifest: {e} ({story})"))?,
    )
    .map_err(|e| format!("manifest: {e} ({story})"))?;
    if manifest.base.as_ref().map(|b| b.name.as_str()) != Some(FILENAME) {
        return Err(format!("manifest base {:?} ({story})", manifest.base));
    }
    // The simulator tracks the two directories of the rename separately: a crash after the AOF
    // directory's fsync and before the data directory's keeps the file under both names (a
    // journaling file system commits the rename whole). Then the outside name is a leftover
    // of the same bytes, which Redis also leaves alone.
    if let Ok(outside) = fs.read(&data.join(FILENAME)) {
        let inside = fs.read(&aof_dir.join(FILENAME)).unwrap_or_default();
        if outside != inside {
            return Err(format!("the old file is still outside, alone ({story})"));
        }
    }
    let again = start(&fs, data).map_err(|e| format!("second start: {e} ({story})"))?;
    if again != expect {
        return Err(format!("second start differs ({story})"));
    }
    Ok(())
}

#[test]
fn the_redis6_aof_upgrade_survives_a_crash_at_every_step() {
    if let Ok(s) = std::env::var("STRONGBOX_UPGRADE_SEED") {
        let seed: u64 = s.parse().expect("seed");
        run_seed(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        return;
    }
    let seeds: u64 = std::env::var("STRONGBOX_UPGRADE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for seed in 0..seeds {
        if let Err(e) = run_seed(seed) {
            panic!(
                "seed {seed}: {e}\nreplay: STRONGBOX_UPGRADE_SEED={seed} cargo test -p \
                 strongbox-recovery --test crash_upgrade"
            );
        }
    }
}
