//! Seeded crash simulation of the switch to a freshly written AOF directory
//! (`CONFIG SET appendonly yes`, a replica's log after a full sync): the server's own
//! procedure (`strongbox_storage::aof::staging`) on `SimFs`.
//!
//! Each seed: state A in `appendonlydir/` (a log written and closed by the real `LogWriter`:
//! incr files, sometimes a compacted base; absent in some seeds); then, as the server does
//! it, a staging directory with a fresh log holding state B (a dataset D, a rotation and a
//! base of D installed by the compaction installer, more writes), the writer closed,
//! `staging::swap_in` (with `RENAME_EXCHANGE`, or the two-step switch where the file system
//! refuses it), the writer reopened on `appendonlydir/` and more writes ("post-switch"). The
//! fault — a power cut after a random number of operations, a failed fsync, a failed write —
//! is armed at the start of the switch, just before `swap_in` (so it falls between its
//! renames and fsyncs) or just after it; the crash drops unsynced bytes and directory changes
//! (or keeps each at random), tears last writes, or is a process kill — then sometimes the
//! next start is itself cut short, or a kill is followed by a start and then a power loss.
//! Recovery is the server's: `staging::settle_at_start`, then `strongbox_recovery::recover`.
//!
//! The recovered state must be exactly A (only if `swap_in` did not return `Ok`), or B and a
//! prefix of the post-switch writes holding every one acknowledged (synced; written, after a
//! kill) — never a mix, never nothing, never an error at start.
//!
//! `STRONGBOX_STAGING_SEEDS=N` runs N seeds (default 1000); `STRONGBOX_STAGING_SEED=S`
//! replays one (a failure prints the exact command).

mod common;

use common::{normalize, Model, TestClock, Val};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strongbox_recovery::{recover, Options, ResumePoint};
use strongbox_storage::aof::staging::{self, SwapError};
use strongbox_storage::aof::{AofOptions, FsyncPolicy, LogWriter};
use strongbox_storage::fs::{write_file_atomic, CrashOptions, SimFs, Vfs};
use strongbox_storage::resp::encode_command;

type State = BTreeMap<u32, BTreeMap<Vec<u8>, Val>>;
type Unit = Vec<Vec<Vec<u8>>>;

const FILENAME: &str = "appendonly.aof";

/// The state after each prefix of `units` (`out[k]`: after the first k), normalized.
fn states_after(units: &[Unit]) -> Vec<State> {
    let mut m = Model::default();
    let mut out = vec![normalize(&m.dbs)];
    for u in units {
        for c in u {
            if !c[0].eq_ignore_ascii_case(b"MULTI") && !c[0].eq_ignore_ascii_case(b"EXEC") {
                m.apply(c).expect("model");
            }
        }
        out.push(normalize(&m.dbs));
    }
    out
}

/// Writes through one `LogWriter`: units with keys named after `tag` (A's and B's never
/// meet), their logical end positions.
struct Log {
    writer: LogWriter,
    clock: Arc<TestClock>,
    synced: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    /// (logical end, index in `units` + 1) of what this writer was given.
    ends: Vec<(u64, usize)>,
    db: u32,
}

fn open(
    fs: &SimFs,
    dir: &Path,
    resume: ResumePoint,
    policy: FsyncPolicy,
    db: u32,
    rng: &mut StdRng,
) -> Result<Log, String> {
    let clock = Arc::new(TestClock::default());
    let synced = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let (s2, w2) = (synced.clone(), written.clone());
    let opts = AofOptions {
        dir: dir.to_path_buf(),
        filename: FILENAME.to_string(),
        fsync: policy,
        segment_bytes_max: rng.gen_range(200..2000),
        timestamp_enabled: rng.gen_bool(0.5),
    };
    let writer = LogWriter::open_deterministic(
        Arc::new(fs.clone()),
        opts,
        resume,
        Box::new(move |p| {
            if p.failed.is_none() {
                s2.fetch_max(p.synced, Ordering::SeqCst);
                w2.fetch_max(p.written, Ordering::SeqCst);
            }
        }),
        clock.clone(),
        rng.gen(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Log {
        writer,
        clock,
        synced,
        written,
        ends: Vec::new(),
        db,
    })
}

impl Log {
    /// Submit one random unit (SET, RPUSH or MULTI…EXEC, maybe after a SELECT).
    fn unit(
        writer: &LogWriter,
        (db, ends): (&mut u32, &mut Vec<(u64, usize)>),
        rng: &mut StdRng,
        tag: &str,
        units: &mut Vec<Unit>,
        n: &mut u64,
    ) {
        let db_at_start = *db;
        let mut cmds: Unit = Vec::new();
        if rng.gen_bool(0.15) {
            *db = rng.gen_range(0..3);
            cmds.push(vec![b"SELECT".to_vec(), db.to_string().into_bytes()]);
        }
        let mut set = |rng: &mut StdRng| {
            *n += 1;
            vec![
                b"SET".to_vec(),
                format!("{tag}{}", rng.gen_range(0..10)).into_bytes(),
                format!("v{n}").into_bytes(),
            ]
        };
        if rng.gen_bool(0.3) {
            let elem = format!("e{}", rng.gen_range(0..1_000_000)).into_bytes();
            cmds.push(vec![
                b"RPUSH".to_vec(),
                format!("{tag}l{}", rng.gen_range(0..3)).into_bytes(),
                elem,
            ]);
        } else if rng.gen_bool(0.2) {
            cmds.push(vec![b"MULTI".to_vec()]);
            for _ in 0..rng.gen_range(1..4) {
                cmds.push(set(rng));
            }
            cmds.push(vec![b"EXEC".to_vec()]);
        } else {
            cmds.push(set(rng));
        }
        let mut bytes = Vec::new();
        for c in &cmds {
            encode_command(&mut bytes, c);
        }
        let end = writer.submit(&bytes, db_at_start);
        units.push(cmds);
        ends.push((end, units.len()));
    }

    /// A few bursts of units, each submitted while the writer is held (one batch).
    fn bursts(&mut self, rng: &mut StdRng, tag: &str, units: &mut Vec<Unit>, n: &mut u64) {
        for _ in 0..rng.gen_range(1..5) {
            let guard = self.writer.hold();
            self.clock.advance(rng.gen_range(0..1500));
            for _ in 0..rng.gen_range(1..5) {
                Self::unit(
                    &self.writer,
                    (&mut self.db, &mut self.ends),
                    rng,
                    tag,
                    units,
                    n,
                );
            }
            drop(guard);
        }
    }

    /// Compaction as the server's rewrite does it: rotate behind everything submitted, write
    /// a RESP base of the state then (`write_file_atomic`: temp, fsync, rename, fsync dir, as
    /// `install_file` after the snapshot's own fsync), switch the manifest with the installer
    /// on another thread. Returns whether the base is installed.
    fn compact(&self, fs: &SimFs, dir: &Path, units: &[Unit]) -> bool {
        // Requested while the writer is held (quiet): where it falls among the writer's and
        // the fsync thread's work is then a function of the seed.
        let pending = {
            let _held = self.writer.hold();
            self.writer.request_rotate_for_rewrite()
        };
        let Ok(ticket) = pending.wait() else {
            return false;
        };
        let _held = self.writer.hold();
        let state = states_after(units).pop().unwrap_or_default();
        let mut base = Vec::new();
        for (db, keys) in &state {
            encode_command(
                &mut base,
                &[b"SELECT".to_vec(), db.to_string().into_bytes()],
            );
            for (k, v) in keys {
                match v {
                    Val::Str(v) => {
                        encode_command(&mut base, &[b"SET".to_vec(), k.clone(), v.clone()])
                    }
                    Val::List(items) => {
                        let mut argv = vec![b"RPUSH".to_vec(), k.clone()];
                        argv.extend(items.iter().cloned());
                        encode_command(&mut base, &argv);
                    }
                    other => panic!("the workload only writes strings and lists: {other:?}"),
                }
            }
        }
        let name = strongbox_storage::aof::base_file_name(FILENAME, ticket.base_seq, false);
        if write_file_atomic(fs, dir, &name, &base).is_err() {
            return false;
        }
        let installer = self.writer.installer();
        let name_ref = &name;
        std::thread::scope(|sc| {
            std::thread::Builder::new()
                .name("installer".to_string())
                .spawn_scoped(sc, move || installer.install_base(name_ref, ticket))
                .expect("spawn the installer thread")
                .join()
                .expect("installer thread")
        })
        .is_ok()
    }

    /// How many units (of the list this writer's units were pushed to, counting those
    /// before them) are acknowledged at `pos`.
    fn acked(&self, pos: u64) -> usize {
        self.ends
            .iter()
            .filter(|(e, _)| *e <= pos)
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0)
    }
}

/// How far a seed got, for the checks and the story.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// The switch never started moving directories (opening, compacting or closing the
    /// staging log failed).
    #[default]
    NotSwapped,
    /// `swap_in` failed before the new directory took the name.
    NotMoved,
    /// `swap_in` moved it but could not make it durable.
    NotDurable,
    /// `swap_in` returned `Ok`.
    Swapped,
}

struct Outcome {
    reached: Reached,
    story: String,
    /// The recovered state was A (else B…).
    got_a: bool,
}

fn run_seed(seed: u64, fs: SimFs) -> Result<Outcome, (String, String)> {
    let mut story = String::new();
    match run(seed, fs, &mut story) {
        Ok(mut o) => {
            o.story = story;
            Ok(o)
        }
        Err(e) => Err((e, story)),
    }
}

fn run(seed: u64, fs: SimFs, story: &mut String) -> Result<Outcome, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let policy = [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No][(seed % 3) as usize];
    let exchange = rng.gen_bool(0.6);
    fs.set_exchange_supported(exchange);
    let data = Path::new("/data");
    let dir = PathBuf::from("/data/appendonlydir");
    let staging_path = staging::staging_dir(&dir, 4242);
    fs.create_dir_all(data).map_err(|e| e.to_string())?;
    fs.sync_dir(Path::new("/")).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    *story = format!("policy {policy:?}, exchange {exchange}");

    // State A: a log written and closed (everything fsynced), or no AOF directory at all.
    let mut a_units: Vec<Unit> = Vec::new();
    if rng.gen_bool(0.85) {
        let mut a = open(&fs, &dir, ResumePoint::default(), policy, 0, &mut rng)
            .map_err(|e| format!("writing A: {e}"))?;
        a.bursts(&mut rng, "a", &mut a_units, &mut n);
        if rng.gen_bool(0.4) {
            let compacted = a.compact(&fs, &dir, &a_units);
            story.push_str(if compacted { ", A compacted" } else { "" });
            a.bursts(&mut rng, "a", &mut a_units, &mut n);
        }
        // Quiet first (spare file prepared, fsync thread done), so the shutdown's operations
        // do not race the helper threads: the trace is a function of the seed.
        drop(a.writer.hold());
        a.writer.shutdown().map_err(|e| format!("closing A: {e}"))?;
        story.push_str(&format!(", A: {} units", a_units.len()));
    } else {
        story.push_str(", no A");
    }
    let state_a = states_after(&a_units).pop().unwrap_or_default();
    if rng.gen_bool(0.2) {
        // A leftover at the staging name (an abandoned switch of an earlier run of this pid):
        // `start_aof` removes it first.
        let manifest = strongbox_storage::aof::manifest_name(FILENAME);
        fs.create_dir_all(&staging_path)
            .map_err(|e| e.to_string())?;
        fs.sync_dir(data).map_err(|e| e.to_string())?;
        write_file_atomic(&fs, &staging_path, &manifest, b"file junk seq 1 type i\n")
            .map_err(|e| e.to_string())?;
        story.push_str(", leftover staging");
    }

    // Faults: armed now (anywhere in the switch), just before `swap_in`, or just after it.
    let when = rng.gen_range(0..3);
    let fault = rng.gen_range(0..8);
    let arm = |fs: &SimFs, rng: &mut StdRng| match fault {
        0..=3 => fs.power_cut_after(rng.gen_range(0..if when == 0 { 60 } else { 6 })),
        4 | 5 => fs.fail_nth_sync(rng.gen_range(1..if when == 0 { 10 } else { 4 })),
        6 => fs.fail_nth_write(rng.gen_range(1..6)),
        _ => {}
    };
    story.push_str(&format!(", fault {fault} armed at {when}"));
    if when == 0 {
        arm(&fs, &mut rng);
    }

    // State B, in the staging directory, as `Persist::start_aof` and the rewrite do it.
    let mut b_units: Vec<Unit> = Vec::new();
    let mut reached = Reached::NotSwapped;
    let mut b_pre = 0;
    let mut post: Option<Log> = None;
    'switch: {
        if let Err(e) = staging::remove_staging(&fs, &staging_path) {
            story.push_str(&format!(", remove staging failed: {e}"));
            break 'switch;
        }
        let mut b = match open(
            &fs,
            &staging_path,
            ResumePoint::default(),
            policy,
            0,
            &mut rng,
        ) {
            Ok(b) => b,
            Err(e) => {
                story.push_str(&format!(", staging open failed: {e}"));
                break 'switch;
            }
        };
        // The dataset D (the server's memory when the log starts), then the rewrite that
        // writes it as the base, with writes going on behind the rotation.
        b.bursts(&mut rng, "b", &mut b_units, &mut n);
        if !b.compact(&fs, &staging_path, &b_units) {
            story.push_str(", staging base failed");
            break 'switch;
        }
        b.bursts(&mut rng, "b", &mut b_units, &mut n);
        drop(b.writer.hold());
        let resume = match b.writer.close() {
            Ok(r) => r,
            Err(e) => {
                story.push_str(&format!(", staging close failed: {e}"));
                break 'switch;
            }
        };
        b_pre = b_units.len();
        story.push_str(&format!(", B: {b_pre} units"));
        if when == 1 {
            arm(&fs, &mut rng);
        }
        match staging::swap_in(&fs, &staging_path, &dir) {
            Ok(s) => {
                reached = Reached::Swapped;
                story.push_str(&format!(", swapped (two-step {})", s.two_step));
            }
            Err(SwapError::NotMoved(e)) => {
                reached = Reached::NotMoved;
                story.push_str(&format!(", not moved: {e}"));
                break 'switch;
            }
            Err(SwapError::NotDurable(e)) => {
                // The server latches its log: nothing more is acknowledged.
                reached = Reached::NotDurable;
                story.push_str(&format!(", not durable: {e}"));
                break 'switch;
            }
        }
        if when == 2 {
            arm(&fs, &mut rng);
        }
        // The writer reopens on the AOF directory where it stopped; post-switch writes.
        let mut p = match open(&fs, &dir, resume, policy, b.db, &mut rng) {
            Ok(p) => p,
            Err(e) => {
                story.push_str(&format!(", reopen failed: {e}"));
                break 'switch;
            }
        };
        p.bursts(&mut rng, "b", &mut b_units, &mut n);
        story.push_str(&format!(", {} post-switch units", b_units.len() - b_pre));
        post = Some(p);
    }

    // The crash, with every writer quiet (held) so the crash point is deterministic.
    let guard = post.as_ref().map(|p| p.writer.hold());
    let power_cut = fs.power_is_cut();
    // A kill followed by a start that acknowledges writes, then a power loss: most often
    // where the switch is in place but not durable.
    let kill_then_start = if reached == Reached::NotDurable {
        rng.gen_bool(0.5)
    } else {
        rng.gen_bool(0.15)
    };
    let acked_at = |p: &Log, pos: &AtomicU64| p.acked(pos.load(Ordering::SeqCst));
    let expect = Expect {
        reached,
        state_a: state_a.clone(),
        b_states: states_after(&b_units),
        b_pre,
        // Acknowledged post-switch units (counted from the start of B's units): synced ones,
        // written ones too after a kill alone.
        floor_kill: post.as_ref().map_or(0, |p| {
            acked_at(p, if power_cut { &p.synced } else { &p.written })
        }),
        floor_power_loss: post.as_ref().map_or(0, |p| acked_at(p, &p.synced)),
    };
    let mut power_lost = true;
    let (mut after, restarted) = if kill_then_start {
        let next = fs.restart();
        drop(guard);
        drop(post);
        let r = restart_and_write(&next, data, &dir, &expect, &mut rng, story)?;
        (next.crash(crash_options(&mut rng)), Some(r))
    } else {
        let opts = if rng.gen_bool(0.1) {
            CrashOptions::process_kill()
        } else {
            crash_options(&mut rng)
        };
        power_lost = !opts.keep_unsynced;
        let after = fs.crash(opts);
        drop(guard);
        drop(post); // acts on the pre-crash file system, which is discarded
        (after, None)
    };

    // Start-up, sometimes itself cut short by a power loss.
    if rng.gen_bool(0.25) {
        after.power_cut_after(rng.gen_range(0..4));
        let r = staging::settle_at_start(&after, data, "appendonlydir");
        story.push_str(&format!(", start cut short ({})", r.is_ok()));
        after = after.crash(crash_options(&mut rng));
    }
    let (got, _, _, _) = start(&after, data, &dir)?;
    let got_a = match restarted {
        None => expect.check(&got, power_lost, story)?,
        Some((s1, states_c, acked_c, s1_is_a)) => {
            // What the restarted server acknowledged is there, after what it recovered.
            match states_c.iter().rposition(|st| *st == got) {
                Some(k) if k >= acked_c => {
                    story.push_str(&format!(", recovered that + {k} units"));
                    s1_is_a
                }
                _ if acked_c == 0 && got != s1 => expect.check(&got, true, story)?,
                _ => {
                    return Err(format!(
                        "after the restart: {acked_c} units acknowledged on top of {} but \
                         the state is not that and a prefix of them",
                        if s1_is_a { "A" } else { "B" }
                    ))
                }
            }
        }
    };
    Ok(Outcome {
        reached,
        story: String::new(),
        got_a,
    })
}

thread_local! {
    /// Starts that put an old AOF directory back (a crash inside a two-step switch).
    static RESTORED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What a seed may recover.
struct Expect {
    reached: Reached,
    state_a: State,
    /// B's state after each prefix of its units.
    b_states: Vec<State>,
    /// B's units written before the switch (all in B's base and staging incr files).
    b_pre: usize,
    /// B's units (pre-switch ones included) that must survive a process kill / a power loss.
    floor_kill: usize,
    floor_power_loss: usize,
}

impl Expect {
    /// Whether `got` is allowed (returns whether it is A): A exactly, only if `swap_in` did
    /// not return `Ok`; else B and a prefix of its post-switch units, with every acknowledged
    /// one.
    fn check(&self, got: &State, power_lost: bool, story: &mut String) -> Result<bool, String> {
        let floor = self.b_pre.max(if power_lost {
            self.floor_power_loss
        } else {
            self.floor_kill
        });
        let b_k = self
            .b_states
            .iter()
            .enumerate()
            .skip(self.b_pre.max(1))
            .rev()
            .find(|(_, s)| *s == got)
            .map(|(k, _)| k);
        let got_a = *got == self.state_a;
        story.push_str(&format!(
            ", recovered {}",
            match (got_a, b_k) {
                (true, _) => "A".to_string(),
                (false, Some(k)) => format!("B + {} post-switch units", k - self.b_pre),
                (false, None) => "neither".to_string(),
            }
        ));
        match self.reached {
            Reached::NotSwapped | Reached::NotMoved if !got_a => {
                Err("the switch never happened but the state is not A".to_string())
            }
            Reached::NotSwapped | Reached::NotMoved => Ok(true),
            Reached::NotDurable if got_a => Ok(true),
            _ if got_a => Err("swap_in returned Ok but A came back".to_string()),
            _ => match b_k {
                None => Err("the state is neither A nor B and a prefix of its writes".to_string()),
                Some(k) if k < floor => Err(format!(
                    "recovered B + {} post-switch units but {} were acknowledged",
                    k - self.b_pre,
                    floor - self.b_pre
                )),
                Some(_) => Ok(false),
            },
        }
    }
}

/// The server's start: the start-up rule, then recovery. Both must succeed, and leave no
/// staging or aside directory.
fn start(
    fs: &SimFs,
    data: &Path,
    dir: &Path,
) -> Result<(State, staging::Settled, Model, ResumePoint), String> {
    let settled = staging::settle_at_start(fs, data, "appendonlydir")
        .map_err(|e| format!("start-up rule failed: {e}"))?;
    if settled.restored.is_some() {
        RESTORED.with(|r| r.set(r.get() + 1));
    }
    let mut model = Model::default();
    let out = recover(fs, dir, FILENAME, &Options::default(), &mut model)
        .map_err(|e| format!("recovery failed: {e}"))?;
    let leftovers: Vec<String> = fs
        .list_subdirs(data)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|d| d != "appendonlydir")
        .collect();
    if !leftovers.is_empty() {
        return Err(format!("leftover directories after start: {leftovers:?}"));
    }
    Ok((normalize(&model.dbs), settled, model, out.resume))
}

/// After a kill: the next start (on the same page cache), checked like any recovery, then
/// writes acknowledged by the restarted server under `always`. Returns the recovered state,
/// the states after each prefix of the new writes, how many of them were acknowledged, and
/// whether the recovered state was A.
fn restart_and_write(
    fs: &SimFs,
    data: &Path,
    dir: &Path,
    expect: &Expect,
    rng: &mut StdRng,
    story: &mut String,
) -> Result<(State, Vec<State>, usize, bool), String> {
    let (s1, _, model, resume) = start(fs, data, dir)?;
    story.push_str(", kill, start");
    let s1_is_a = expect.check(&s1, false, story)?;
    let mut w = open(fs, dir, resume, FsyncPolicy::Always, model.db, rng)
        .map_err(|e| format!("restart: open: {e}"))?;
    let mut c_units = Vec::new();
    let mut n = 1_000_000;
    w.bursts(rng, "c", &mut c_units, &mut n);
    let _held = w.writer.hold();
    let acked = w.acked(w.synced.load(Ordering::SeqCst));
    story.push_str(&format!(
        ", {} more units ({acked} synced), power loss",
        c_units.len()
    ));
    // The states after each prefix of the new units, from the recovered model.
    let mut m = model;
    let mut states = vec![normalize(&m.dbs)];
    for u in &c_units {
        for c in u {
            if !c[0].eq_ignore_ascii_case(b"MULTI") && !c[0].eq_ignore_ascii_case(b"EXEC") {
                m.apply(c).map_err(|e| e.to_string())?;
            }
        }
        states.push(normalize(&m.dbs));
    }
    Ok((s1, states, acked, s1_is_a))
}

fn crash_options(rng: &mut StdRng) -> CrashOptions {
    CrashOptions {
        torn_writes: rng.gen_bool(0.6),
        random_dir_ops: rng.gen_bool(0.6),
        keep_unsynced: false,
    }
}

/// Run one seed; also return every SimFs operation it did, in order.
fn run_traced(seed: u64) -> (Result<Outcome, String>, Vec<String>) {
    let fs = SimFs::new(seed);
    fs.record_trace();
    let fs2 = fs.clone();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(seed, fs2)));
    let res = match res {
        Ok(Ok(o)) => Ok(o),
        Ok(Err((e, story))) => Err(format!("{e}\n  story: {story}")),
        Err(_) => Err("panicked".to_string()),
    };
    (res, fs.take_trace())
}

/// FNV-1a of a trace: equal fingerprints mean the same operations in the same order.
fn fingerprint(trace: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in trace {
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{} operations, trace {h:016x}", trace.len())
}

fn replay_command(seed: u64) -> String {
    format!(
        "STRONGBOX_STAGING_SEED={seed} cargo test -p strongbox-recovery --test crash_staging \
         a_crash_anywhere_in_the_switch_recovers_the_old_log_or_the_new_one_whole -- --exact --nocapture"
    )
}

#[test]
fn a_crash_anywhere_in_the_switch_recovers_the_old_log_or_the_new_one_whole() {
    if let Ok(s) = std::env::var("STRONGBOX_STAGING_SEED") {
        // Replay (STRONGBOX_CRASH_TRACE=1 prints every operation), run twice to show the
        // replay is deterministic.
        let seed: u64 = s.parse().expect("STRONGBOX_STAGING_SEED must be a number");
        let (res, trace) = run_traced(seed);
        if std::env::var("STRONGBOX_CRASH_TRACE").is_ok() {
            for (i, line) in trace.iter().enumerate() {
                println!("{i:5} {line}");
            }
        }
        let (again, trace2) = run_traced(seed);
        assert!(
            trace == trace2 && res.as_ref().map(|o| &o.story) == again.as_ref().map(|o| &o.story),
            "seed {seed}: two runs differ ({} vs {})",
            fingerprint(&trace),
            fingerprint(&trace2)
        );
        match res {
            Ok(o) => println!("seed {seed}: ok ({}): {}", fingerprint(&trace), o.story),
            Err(e) => panic!("seed {seed} ({}): {e}", fingerprint(&trace)),
        }
        return;
    }
    let n: u64 = std::env::var("STRONGBOX_STAGING_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut failures = Vec::new();
    let mut count: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 0..n {
        match run_traced(seed) {
            (Ok(o), _) => {
                let mut bump = |k: String| *count.entry(k).or_default() += 1;
                bump(format!(
                    "{:?} → {}",
                    o.reached,
                    if o.got_a { "A" } else { "B" }
                ));
                if o.story.contains("two-step true") {
                    bump("two-step switch".to_string());
                }
            }
            (Err(e), trace) => failures.push(format!(
                "seed {seed} ({}): {e}\n  replay: {}",
                fingerprint(&trace),
                replay_command(seed)
            )),
        }
    }
    count.insert(
        "old directory put back at start".to_string(),
        RESTORED.with(|r| r.get()),
    );
    println!("{n} seeds: {count:?}");
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The simulation must reach every outcome that matters, in enough seeds.
    if n >= 1000 {
        for (what, min) in [
            ("Swapped → B", n / 10),
            ("NotDurable → A", n / 200),
            ("NotDurable → B", n / 200),
            ("NotMoved → A", n / 100),
            ("NotSwapped → A", n / 20),
            ("old directory put back at start", n / 200),
            ("two-step switch", n / 20),
        ] {
            let got = count.get(what).copied().unwrap_or(0);
            assert!(
                got >= min,
                "only {got} seeds reached {what:?} (want {min}): {count:?}"
            );
        }
    }
}

/// The same seed twice: the same SimFs operations in the same order, the same story.
#[test]
fn a_seed_replays_the_same_operations() {
    let n: u64 = std::env::var("STRONGBOX_STAGING_DET_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for seed in 0..n {
        let (r1, t1) = run_traced(seed);
        let (r2, t2) = run_traced(seed);
        assert!(!t1.is_empty());
        if t1 != t2 {
            let at = t1.iter().zip(&t2).position(|(a, b)| a != b).unwrap_or(0);
            panic!(
                "seed {seed}: traces of {} and {} operations differ at {at}: {:?} vs {:?}\n  story: {:?}",
                t1.len(),
                t2.len(),
                &t1[at.saturating_sub(3)..(at + 3).min(t1.len())],
                &t2[at.saturating_sub(3)..(at + 3).min(t2.len())],
                r1.map(|o| o.story)
            );
        }
        assert_eq!(
            r1.map(|o| o.story),
            r2.map(|o| o.story),
            "seed {seed}: stories differ"
        );
    }
}
