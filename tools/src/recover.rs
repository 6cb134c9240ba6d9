//! `strongbox-recover`: the most complete consistent state a data directory holds, written as a
//! new data directory.
//!
//! 1. Find the files: `strongbox_recovery::observe` + `plan` (with `infer_without_manifest`, so
//!    a missing manifest is replaced by the files' names; a damaged manifest is set aside the
//!    same way; a listed file that is missing ends the load before it). Without AOF files,
//!    `dump.rdb`.
//! 2. Load them with `strongbox_recovery::execute` in read-only mode into a real
//!    `strongbox::exec::Server` (the server's command table and RDB loader, as a loading
//!    client, exactly as the server does at start). By default loading stops at the first
//!    corruption, keeping the longest valid prefix; `--skip-corrupt` skips damaged batches and
//!    resumes at the next valid one; `--to-timestamp` stops at the first later `#TS:`.
//! 3. Write `<output>/appendonlydir/`: `appendonly.aof.1.base.rdb` (the state),
//!    `appendonly.aof.1.incr.aof` (empty) and the manifest, each through
//!    `write_file_atomic`, the manifest last; read the base back to verify it.
//!
//! The input is never modified: recovery runs with `read_only`, and nothing is written under
//! the input directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use indicatif::ProgressBar;
use serde_json::{json, Value as Json};
use strongbox::client::Client;
use strongbox::config::Config;
use strongbox::exec::Server;
use strongbox_recovery::{
    execute, observe, plan, FileKind, ManifestSource, Observations, Plan, RecoveryError, Report,
    Sink,
};
use strongbox_storage::aof::{
    base_file_name, incr_file_name, manifest_name, FileType, Manifest, ManifestEntry,
};
use strongbox_storage::fs::{write_file_atomic, RealFs, Vfs};
use strongbox_storage::rdb::{Item, RdbReader};
use strongbox_storage::resp::{self, Parsed};

use crate::progress::{self, ProgressRead};
use crate::{EXIT_INVALID, EXIT_OK};

/// Command-line options of `strongbox-recover`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory (holding `appendonlydir/` and/or `dump.rdb`), or an AOF directory.
    pub dir: PathBuf,
    /// The new data directory to write (must not exist or be empty).
    pub output: PathBuf,
    /// State as of this Unix time (from `#TS:` annotations).
    pub to_timestamp: Option<i64>,
    /// Skip damaged ranges instead of stopping at the first.
    pub skip_corrupt: bool,
    /// JSON report on stdout.
    pub json: bool,
    /// No progress bars.
    pub quiet: bool,
    /// `appendfilename`.
    pub appendfilename: String,
    /// `appenddirname`.
    pub appenddirname: String,
    /// `dbfilename`.
    pub dbfilename: String,
    /// `databases`.
    pub databases: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dir: PathBuf::new(),
            output: PathBuf::new(),
            to_timestamp: None,
            skip_corrupt: false,
            json: false,
            quiet: false,
            appendfilename: "appendonly.aof".into(),
            appenddirname: "appendonlydir".into(),
            dbfilename: "dump.rdb".into(),
            databases: 16,
        }
    }
}

/// A damaged range that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// File name.
    pub file: String,
    /// First byte not loaded.
    pub from: u64,
    /// First byte after the range.
    pub to: u64,
    /// Commands in the range (counted leniently: the bytes are damaged).
    pub commands: u64,
    /// Why.
    pub reason: String,
}

/// What recovery did.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The AOF directory read.
    pub aof_dir: PathBuf,
    /// "manifest", "inferred from file names", "dump.rdb".
    pub source: String,
    /// The recovery crate's report (None when loading stopped with an error).
    pub report: Option<Report>,
    /// Files planned, in order: (name, kind).
    pub planned: Vec<(String, String)>,
    /// Commands applied to the keyspace.
    pub commands_applied: u64,
    /// Keys loaded from RDB images (base, preamble or dump.rdb).
    pub rdb_keys: u64,
    /// Damage in an RDB image: (file, message); keys before it were kept.
    pub rdb_damage: Option<(String, String)>,
    /// Commands not applied because loading stopped at damage in the base.
    pub commands_not_applied: u64,
    /// Commands the command table refused (unknown command, arity), with `--skip-corrupt`.
    pub failed_commands: Vec<(String, String)>,
    /// Ranges not loaded: torn tail, skipped damage, the rest after a stop.
    pub dropped: Vec<Dropped>,
    /// Files not loaded at all.
    pub dropped_files: Vec<String>,
    /// Where loading stopped at corruption (default mode): (file, offset, reason).
    pub stopped_at_corruption: Option<(String, u64, String)>,
    /// Where `--to-timestamp` stopped: (file, offset, the `#TS:` seen).
    pub stopped_at_timestamp: Option<(String, u64, i64)>,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl Recovery {
    /// Nothing was lost to damage (a timestamp stop is asked for, so it does not count).
    pub fn complete(&self) -> bool {
        self.rdb_damage.is_none()
            && self.failed_commands.is_empty()
            && self.dropped.is_empty()
            && self.dropped_files.is_empty()
            && self.stopped_at_corruption.is_none()
    }
}

/// Per database: keys and keys with an expire (both not yet expired), keys already expired
/// (written to the base as they are; a server drops them when it loads), keys per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbCount {
    /// Live keys.
    pub keys: u64,
    /// Live keys with an expire.
    pub expires: u64,
    /// Keys whose expire time has passed.
    pub expired: u64,
    /// Live keys per type.
    pub types: BTreeMap<&'static str, u64>,
}

/// Key counts per database number.
pub type KeyCounts = BTreeMap<usize, DbCount>;

/// Count the keys of the recovered keyspace as of `now_ms`.
pub fn key_counts(srv: &Server, now_ms: i64) -> KeyCounts {
    let mut out = BTreeMap::new();
    for (i, db) in srv.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        let mut c = DbCount::default();
        for (k, o) in db.keys.iter() {
            if db.is_expired(k, now_ms) {
                c.expired += 1;
                continue;
            }
            c.keys += 1;
            c.expires += u64::from(db.expire_of(k).is_some());
            *c.types.entry(o.value.type_name()).or_insert(0u64) += 1;
        }
        out.insert(i, c);
    }
    out
}

fn total_keys(srv: &Server) -> u64 {
    srv.dbs.iter().map(|d| d.len() as u64).sum()
}

/// Replays into the server as a loading client, like the server's own `ReplaySink`
/// (src/aof.rs), and keeps what a damaged RDB image held before its damage.
struct ToolSink<'a> {
    srv: &'a mut Server,
    client: Client,
    skip_corrupt: bool,
    bar: &'a ProgressBar,
    applied: u64,
    rdb_keys: u64,
    rdb_damage: Option<(String, String)>,
    halted: bool,
    not_applied: u64,
    failed: Vec<(String, String)>,
}

fn resp_len(argv: &[Bytes]) -> u64 {
    let digits = |n: usize| n.to_string().len() as u64;
    3 + digits(argv.len())
        + argv
            .iter()
            .map(|a| 5 + digits(a.len()) + a.len() as u64)
            .sum::<u64>()
}

impl Sink for ToolSink<'_> {
    fn command(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        self.bar.inc(resp_len(&argv));
        if self.halted {
            self.not_applied += 1;
            return Ok(());
        }
        match strongbox::exec::replay_command(self.srv, &mut self.client, &argv) {
            Ok(()) => {
                self.applied += 1;
                Ok(())
            }
            Err(e) if self.skip_corrupt => {
                let name = argv
                    .first()
                    .map(|a| crate::escape_bytes(a, 32))
                    .unwrap_or_default();
                self.failed.push((name, e));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn load_rdb(&mut self, path: &Path, bytes: &[u8]) -> Result<u64, String> {
        let before = total_keys(self.srv);
        let input = ProgressRead::new(bytes, self.bar);
        match strongbox::snapshot::load_rdb_counted(self.srv, input, true) {
            Ok((stats, consumed)) => {
                self.rdb_keys += stats.keys;
                Ok(consumed)
            }
            Err(e) => {
                // The keys read before the damage are in the keyspace: keep them. Nothing after
                // the damage in this file can be found again (RDB has no resync points).
                self.rdb_keys += total_keys(self.srv).saturating_sub(before);
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let e = if e.contains("checksum mismatch") {
                    format!("{e} (every key was read, so one of them may hold a damaged value)")
                } else {
                    e
                };
                self.rdb_damage = Some((name, e));
                if !self.skip_corrupt {
                    self.halted = true;
                }
                Ok(bytes.len() as u64)
            }
        }
    }
}

/// Count the commands in damaged bytes: parse a command where one parses, skip a line where
/// none does.
pub fn count_commands_leniently(bytes: &[u8]) -> u64 {
    let mut n = 0u64;
    let mut pos = 0usize;
    while pos < bytes.len() {
        match resp::parse(&bytes[pos..]) {
            Parsed::Command { argv, len } => {
                let control = argv.first().is_some_and(|a| {
                    a.eq_ignore_ascii_case(b"multi") || a.eq_ignore_ascii_case(b"exec")
                });
                n += u64::from(!control);
                pos += len;
            }
            Parsed::Annotation { len, .. } => pos += len,
            Parsed::Incomplete | Parsed::Error { .. } => {
                match bytes[pos + 1..].iter().position(|&b| b == b'\n') {
                    Some(nl) => pos += nl + 2,
                    None => break,
                }
            }
        }
    }
    n
}

fn file_range(dir: &Path, name: &str, from: u64, to: Option<u64>) -> Vec<u8> {
    let path = dir.join(name);
    let len = RealFs.len(&path).unwrap_or(0);
    let to = to.unwrap_or(len).min(len);
    if to <= from {
        return Vec::new();
    }
    RealFs
        .read_range(
            &path,
            from,
            usize::try_from(to - from).unwrap_or(usize::MAX),
        )
        .unwrap_or_default()
}

/// Where the AOF files are: `<dir>/<appenddirname>`, or `dir` itself when it holds a manifest
/// or AOF-named files. The bool says whether `dir` is a data directory (so `dump.rdb` counts).
fn aof_dir_of(opts: &Options) -> (PathBuf, bool) {
    let nested = opts.dir.join(&opts.appenddirname);
    if nested.is_dir() {
        return (nested, true);
    }
    let prefix = format!("{}.", opts.appendfilename);
    let holds_aof = std::fs::read_dir(&opts.dir).is_ok_and(|rd| {
        rd.filter_map(Result::ok).any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
    });
    if holds_aof {
        (opts.dir.clone(), false)
    } else {
        (nested, true)
    }
}

/// Turn observations the planner refuses into ones it accepts, noting what that costs.
fn repair_observations(
    obs: &mut Observations,
    err: &RecoveryError,
    rec: &mut Recovery,
    skip_corrupt: bool,
) -> Result<(), String> {
    match err {
        RecoveryError::Manifest { path, source } => {
            rec.warnings.push(format!(
                "the manifest {} is damaged ({source}); finding the files by name instead",
                path.display()
            ));
            obs.manifest_bytes = None;
            for f in &obs.files {
                let len = RealFs.len(&obs.dir.join(f)).unwrap_or(0);
                obs.lens_without_manifest.insert(f.clone(), len);
            }
            Ok(())
        }
        RecoveryError::MissingFile { path } => {
            let missing = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(Ok(mut m)) = obs.manifest_bytes.as_deref().map(Manifest::parse) else {
                return Err(err.to_string());
            };
            if m.base.as_ref().is_some_and(|b| b.name == missing) {
                if !skip_corrupt {
                    return Err(format!(
                        "{err}\nThe base is missing, so the incr files alone are not a consistent state; \
run with --skip-corrupt to load them anyway"
                    ));
                }
                rec.warnings.push(format!(
                    "the base {missing} listed in the manifest is missing: loading the incr files without it (--skip-corrupt)"
                ));
                m.base = None;
            } else if let Some(i) = m.incr.iter().position(|e| e.name == missing) {
                rec.warnings.push(format!(
                    "incr file {missing} listed in the manifest is missing: loading stops before it"
                ));
                rec.dropped_files.push(format!("{missing} (missing)"));
                for e in m.incr.drain(i..).skip(1) {
                    rec.dropped_files
                        .push(format!("{} (after the missing {missing})", e.name));
                }
            } else {
                return Err(err.to_string());
            }
            obs.manifest_bytes = Some(m.format());
            if m.is_empty() {
                // The planner reads a manifest without files as "nothing to load".
                obs.manifest_bytes = Some(b"# emptied by strongbox-recover\n".to_vec());
            }
            Ok(())
        }
        other => Err(other.to_string()),
    }
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::BaseRdb => "base (RDB)",
        FileKind::BaseAof => "base (RESP)",
        FileKind::Incr => "incr",
    }
}

/// Load the most complete consistent state of `opts.dir` into a new server keyspace.
pub fn load(opts: &Options, show_progress: bool) -> Result<(Server, Recovery), String> {
    let mut cfg = Config::from_args(&["--databases".to_string(), opts.databases.to_string()])?;
    cfg.file = None;
    let mut srv = Server::new(cfg);
    let (aof_dir, data_dir) = aof_dir_of(opts);
    let mut rec = Recovery {
        aof_dir: aof_dir.clone(),
        ..Recovery::default()
    };
    let mut obs = observe(&RealFs, &aof_dir, &opts.appendfilename).map_err(|e| e.to_string())?;
    let mut the_plan: Option<Plan> = None;
    for _ in 0..3 {
        match plan(&obs, true) {
            Ok(p) => {
                the_plan = Some(p);
                break;
            }
            Err(e) => repair_observations(&mut obs, &e, &mut rec, opts.skip_corrupt)?,
        }
    }
    let the_plan = the_plan.ok_or("the manifest could not be made usable")?;
    let dump = opts.dir.join(&opts.dbfilename);
    if the_plan.is_empty() {
        if !(data_dir && dump.is_file()) {
            return Err(format!(
                "nothing to recover: no AOF files in {} and no {}",
                aof_dir.display(),
                dump.display()
            ));
        }
        load_dump(&mut srv, &dump, opts, show_progress, &mut rec)?;
        return Ok((srv, rec));
    }
    if data_dir && dump.is_file() {
        rec.warnings.push(format!(
            "{} ignored: with AOF files present they are the source (as with appendonly yes)",
            dump.display()
        ));
    }
    rec.source = match the_plan.source {
        ManifestSource::Manifest => "manifest",
        ManifestSource::Inferred => "inferred from file names",
        ManifestSource::None => "none",
    }
    .to_string();
    if the_plan.source == ManifestSource::Inferred && obs.manifest_bytes.is_none() {
        rec.warnings.push(format!(
            "no usable manifest {}: the files were found by name (base: the highest seq; every incr in seq order)",
            manifest_name(&opts.appendfilename)
        ));
    }
    rec.planned = the_plan
        .files
        .iter()
        .map(|f| (f.name.clone(), kind_name(f.kind).to_string()))
        .collect();
    for o in the_plan.orphans_to_warn_about(&RealFs) {
        rec.warnings
            .push(format!("ignoring {o}: not listed in the manifest"));
    }
    let total: u64 = the_plan
        .files
        .iter()
        .map(|f| RealFs.len(&aof_dir.join(&f.name)).unwrap_or(0))
        .sum();
    let bar = progress::bytes_bar(show_progress, total, "loading");
    let ropts = strongbox_recovery::Options {
        load_truncated: true,
        to_timestamp: opts.to_timestamp,
        skip_corrupt: opts.skip_corrupt,
        read_only: true,
        infer_without_manifest: true,
    };
    let mut sink = ToolSink {
        srv: &mut srv,
        client: strongbox::aof::loading_client("strongbox-recover"),
        skip_corrupt: opts.skip_corrupt,
        bar: &bar,
        applied: 0,
        rdb_keys: 0,
        rdb_damage: None,
        halted: false,
        not_applied: 0,
        failed: Vec::new(),
    };
    let result = execute(&RealFs, &the_plan, &ropts, &mut sink);
    rec.commands_applied = sink.applied;
    rec.rdb_keys = sink.rdb_keys;
    rec.rdb_damage = sink.rdb_damage.take();
    rec.commands_not_applied = sink.not_applied;
    rec.failed_commands = std::mem::take(&mut sink.failed);
    let halted = sink.halted;
    bar.finish_and_clear();
    match result {
        Ok(outcome) => {
            let r = outcome.report;
            if let Some(t) = &r.truncated {
                let bytes = file_range(&aof_dir, &t.file, t.offset, Some(t.original_len));
                rec.dropped.push(Dropped {
                    file: t.file.clone(),
                    from: t.offset,
                    to: t.original_len,
                    commands: count_commands_leniently(&bytes),
                    reason: format!("torn tail: {}", t.reason),
                });
            }
            for s in &r.skipped {
                let bytes = file_range(&aof_dir, &s.file, s.from, Some(s.to));
                rec.dropped.push(Dropped {
                    file: s.file.clone(),
                    from: s.from,
                    to: s.to,
                    commands: count_commands_leniently(&bytes),
                    reason: s.reason.clone(),
                });
            }
            rec.stopped_at_timestamp = r.stopped_at_timestamp.clone();
            if let Some((file, off, _)) = &r.stopped_at_timestamp {
                let loaded: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
                let after: Vec<String> = the_plan
                    .files
                    .iter()
                    .filter(|f| !loaded.contains(&f.name.as_str()))
                    .map(|f| f.name.clone())
                    .collect();
                rec.warnings.push(format!(
                    "stopped at the timestamp: {file} from offset {off} on{} is not loaded",
                    if after.is_empty() {
                        String::new()
                    } else {
                        format!(", nor {}", after.join(", "))
                    }
                ));
            } else if let Some(ts) = opts.to_timestamp {
                rec.warnings.push(format!(
                    "no #TS: annotation later than {ts}: everything was loaded (Strongbox writes #TS: only with aof-timestamp-enabled yes)"
                ));
            }
            rec.warnings.extend(
                r.warnings
                    .iter()
                    .filter(|w| {
                        // Orphans, cuts and skips are reported above in their own sections.
                        !w.starts_with("ignoring ")
                            && !w.starts_with("skipped ")
                            && !w.contains("torn tail")
                    })
                    .cloned(),
            );
            rec.report = Some(r);
        }
        Err(e) => match &e {
            RecoveryError::Corrupt {
                path,
                offset,
                reason,
            }
            | RecoveryError::Apply {
                path,
                offset,
                reason,
            }
            | RecoveryError::Truncated {
                path,
                offset,
                reason,
                ..
            } => {
                stop_at(&mut rec, &the_plan, path, *offset, reason);
            }
            RecoveryError::Rdb { path, reason } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                rec.rdb_damage = Some((name, reason.clone()));
                stop_at(&mut rec, &the_plan, path, 0, reason);
            }
            _ => return Err(e.to_string()),
        },
    }
    if halted {
        if let Some((file, msg)) = &rec.rdb_damage {
            rec.warnings.push(format!(
                "loading stopped at the damage in {file} ({msg}); {} later commands were not applied (--skip-corrupt applies them on top of what the base held)",
                rec.commands_not_applied
            ));
        }
    }
    Ok((srv, rec))
}

/// Default mode: loading stopped at `offset` of `path`; the rest of it and later files are
/// dropped (the keyspace holds the prefix, an open MULTI block not applied).
fn stop_at(rec: &mut Recovery, plan: &Plan, path: &Path, offset: u64, reason: &str) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = file_range(&plan.dir, &name, offset, None);
    rec.dropped.push(Dropped {
        file: name.clone(),
        from: offset,
        to: offset + bytes.len() as u64,
        commands: count_commands_leniently(&bytes),
        reason: reason.to_string(),
    });
    let mut after = false;
    for f in &plan.files {
        if after {
            rec.dropped_files.push(f.name.clone());
        }
        after |= f.name == name;
    }
    rec.stopped_at_corruption = Some((name, offset, reason.to_string()));
}

fn load_dump(
    srv: &mut Server,
    dump: &Path,
    opts: &Options,
    show_progress: bool,
    rec: &mut Recovery,
) -> Result<(), String> {
    rec.source = "dump.rdb".into();
    rec.planned = vec![(
        dump.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        "RDB snapshot".to_string(),
    )];
    let bytes = RealFs
        .read(dump)
        .map_err(|e| format!("read {}: {e}", dump.display()))?;
    let bar = progress::bytes_bar(show_progress, bytes.len() as u64, "loading");
    let mut sink = ToolSink {
        srv,
        client: strongbox::aof::loading_client("strongbox-recover"),
        skip_corrupt: opts.skip_corrupt,
        bar: &bar,
        applied: 0,
        rdb_keys: 0,
        rdb_damage: None,
        halted: false,
        not_applied: 0,
        failed: Vec::new(),
    };
    sink.load_rdb(dump, &bytes)?;
    bar.finish_and_clear();
    rec.rdb_keys = sink.rdb_keys;
    rec.rdb_damage = sink.rdb_damage;
    if opts.to_timestamp.is_some() {
        rec.warnings.push(
            "--to-timestamp has no effect on dump.rdb (an RDB snapshot has no timestamps)".into(),
        );
    }
    Ok(())
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// `<output>/appendonlydir`.
    pub aof_dir: PathBuf,
    /// Base file name.
    pub base: String,
    /// Base size.
    pub base_bytes: u64,
    /// Incr file name.
    pub incr: String,
    /// Manifest name.
    pub manifest: String,
    /// Keys read back from the written base.
    pub verified_keys: u64,
}

/// Refuse outputs that are not empty or that overlap the input.
pub fn check_output(opts: &Options) -> Result<(), String> {
    let out = &opts.output;
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| format!("{} exists and cannot be listed: {e}", out.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(format!(
                "the output {} exists and is not empty: choose a new directory (strongbox-recover never overwrites)",
                out.display()
            ));
        }
    }
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    // The output usually does not exist yet: resolve its parent.
    let out_canon = canon(out).or_else(|| {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(canon(parent)?.join(out.file_name()?))
    });
    if let (Some(i), Some(o)) = (canon(&opts.dir), out_canon) {
        if o.starts_with(&i) || i.starts_with(&o) {
            return Err(format!(
                "the output {} overlaps the input {}: choose a directory outside it",
                out.display(),
                opts.dir.display()
            ));
        }
    }
    Ok(())
}

/// Write the new data directory.
pub fn write_output(srv: &Server, opts: &Options, show_progress: bool) -> Result<Written, String> {
    let vfs = RealFs;
    let out = &opts.output;
    let aof_dir = out.join(&opts.appenddirname);
    let spin = progress::spinner(show_progress, "writing the base RDB");
    vfs.create_dir_all(&aof_dir)
        .map_err(|e| format!("create {}: {e}", aof_dir.display()))?;
    for d in [out.parent().unwrap_or(Path::new(".")), out.as_path()] {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        vfs.sync_dir(d)
            .map_err(|e| format!("fsync {}: {e}", d.display()))?;
    }
    let base = base_file_name(&opts.appendfilename, 1, true);
    let incr = incr_file_name(&opts.appendfilename, 1);
    let manifest_file = manifest_name(&opts.appendfilename);
    let rdb = strongbox::snapshot::write_rdb(srv, Vec::new(), true)?;
    write_file_atomic(&vfs, &aof_dir, &base, &rdb)
        .map_err(|e| format!("write {}: {e}", aof_dir.join(&base).display()))?;
    write_file_atomic(&vfs, &aof_dir, &incr, b"")
        .map_err(|e| format!("write {}: {e}", aof_dir.join(&incr).display()))?;
    let manifest = Manifest {
        base: Some(ManifestEntry {
            name: base.clone(),
            seq: 1,
            kind: FileType::Base,
        }),
        history: Vec::new(),
        incr: vec![ManifestEntry {
            name: incr.clone(),
            seq: 1,
            kind: FileType::Incr,
        }],
    };
    // The manifest last: until it exists, the directory holds nothing a server would load.
    write_file_atomic(&vfs, &aof_dir, &manifest_file, &manifest.format())
        .map_err(|e| format!("write {}: {e}", aof_dir.join(&manifest_file).display()))?;
    spin.set_message("verifying the base RDB");
    let written = vfs
        .read(&aof_dir.join(&base))
        .map_err(|e| format!("read back {base}: {e}"))?;
    let mut reader = RdbReader::new(&written[..]).map_err(|e| format!("read back {base}: {e}"))?;
    loop {
        match reader.next_item() {
            Ok(Some(Item::Eof { .. })) | Ok(None) => break,
            Ok(Some(_)) => {}
            Err(e) => return Err(format!("the written base {base} does not read back: {e}")),
        }
    }
    let verified_keys = reader.stats().keys;
    spin.finish_and_clear();
    if verified_keys != total_keys(srv) {
        return Err(format!(
            "the written base {base} holds {verified_keys} keys, the recovered keyspace {}",
            total_keys(srv)
        ));
    }
    Ok(Written {
        aof_dir,
        base,
        base_bytes: rdb.len() as u64,
        incr,
        manifest: manifest_file,
        verified_keys,
    })
}

fn report_json(
    rec: &Recovery,
    counts: &KeyCounts,
    written: Option<&Written>,
    error: Option<&str>,
) -> Json {
    let files = rec.report.as_ref().map(|r| {
        r.files
            .iter()
            .map(|f| {
                json!({
                    "name": f.name, "kind": kind_name(f.kind), "bytes": f.bytes,
                    "loaded_bytes": f.valid_len, "commands": f.commands, "batches": f.batches,
                    "plain_commands": f.plain_commands, "rdb": f.rdb,
                })
            })
            .collect::<Vec<_>>()
    });
    json!({
        "aof_dir": rec.aof_dir.display().to_string(),
        "source": rec.source,
        "planned": rec.planned.iter().map(|(n, k)| json!({"name": n, "kind": k})).collect::<Vec<_>>(),
        "files": files,
        "rdb_keys": rec.rdb_keys,
        "commands_applied": rec.commands_applied,
        "commands_not_applied": rec.commands_not_applied,
        "rdb_damage": rec.rdb_damage.as_ref().map(|(f, m)| json!({"file": f, "message": m})),
        "failed_commands": rec.failed_commands.iter().map(|(c, e)| json!({"command": c, "error": e})).collect::<Vec<_>>(),
        "dropped": rec.dropped.iter().map(|d| json!({
            "file": d.file, "from": d.from, "to": d.to, "bytes": d.to - d.from,
            "commands": d.commands, "reason": d.reason,
        })).collect::<Vec<_>>(),
        "dropped_files": rec.dropped_files,
        "stopped_at_corruption": rec.stopped_at_corruption.as_ref().map(|(f, o, r)| json!({"file": f, "offset": o, "reason": r})),
        "stopped_at_timestamp": rec.stopped_at_timestamp.as_ref().map(|(f, o, t)| json!({"file": f, "offset": o, "timestamp": t})),
        "warnings": rec.warnings,
        "complete": rec.complete(),
        "keys": counts.values().map(|c| c.keys).sum::<u64>(),
        "expired_keys": counts.values().map(|c| c.expired).sum::<u64>(),
        "dbs": counts.iter().map(|(db, c)| (db.to_string(), json!({
            "keys": c.keys, "expires": c.expires, "expired": c.expired, "types": c.types,
        }))).collect::<serde_json::Map<_, _>>(),
        "output": written.map(|w| json!({
            "aof_dir": w.aof_dir.display().to_string(), "base": w.base, "base_bytes": w.base_bytes,
            "incr": w.incr, "manifest": w.manifest, "verified_keys": w.verified_keys,
        })),
        "error": error,
    })
}

fn report_text(rec: &Recovery, counts: &KeyCounts, written: Option<&Written>, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "Recovering from {} ({})",
        rec.aof_dir.display(),
        rec.source
    );
    let _ = writeln!(out, "Loaded:");
    match &rec.report {
        Some(r) => {
            for f in &r.files {
                let _ = writeln!(
                    out,
                    "  {} [{}]: {} of {} bytes, {} commands ({} batches, {} plain){}",
                    f.name,
                    kind_name(f.kind),
                    f.valid_len,
                    f.bytes,
                    f.commands,
                    f.batches,
                    f.plain_commands,
                    if f.rdb { ", RDB image" } else { "" }
                );
            }
        }
        None => {
            for (n, k) in &rec.planned {
                let _ = writeln!(out, "  {n} [{k}]");
            }
        }
    }
    let _ = writeln!(
        out,
        "  {} keys from RDB images, {} commands applied",
        rec.rdb_keys, rec.commands_applied
    );
    if let Some((f, o, ts)) = &rec.stopped_at_timestamp {
        let _ = writeln!(
            out,
            "Stopped at {f} offset {o}: #TS:{ts} is later than the requested time"
        );
    }
    if rec.complete() {
        let _ = writeln!(out, "Dropped: nothing lost to damage");
    } else {
        let _ = writeln!(out, "Dropped:");
        if let Some((f, m)) = &rec.rdb_damage {
            let _ = writeln!(out, "  {f}: RDB damaged, keys after the damage lost: {m}");
        }
        if let Some((f, o, r)) = &rec.stopped_at_corruption {
            let _ = writeln!(out, "  stopped at the first corruption, {f} offset {o}: {r} (--skip-corrupt continues after it)");
        }
        for d in &rec.dropped {
            let _ = writeln!(
                out,
                "  {} offsets {}..{} ({} bytes, about {} commands): {}",
                d.file,
                d.from,
                d.to,
                d.to - d.from,
                d.commands,
                d.reason
            );
        }
        for f in &rec.dropped_files {
            let _ = writeln!(out, "  file not loaded: {f}");
        }
        if rec.commands_not_applied > 0 {
            let _ = writeln!(
                out,
                "  {} commands after the damaged base not applied",
                rec.commands_not_applied
            );
        }
        for (c, e) in &rec.failed_commands {
            let _ = writeln!(out, "  command {c} refused: {e}");
        }
    }
    for w in &rec.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let total: u64 = counts.values().map(|c| c.keys).sum();
    let expired: u64 = counts.values().map(|c| c.expired).sum();
    let _ = writeln!(
        out,
        "Keys: {total} (and {expired} already expired, which a server drops when it loads them)"
    );
    for (db, c) in counts {
        let t: Vec<String> = c.types.iter().map(|(t, n)| format!("{t}={n}")).collect();
        let _ = writeln!(
            out,
            "  db{db}: keys={} expires={} expired={} {}",
            c.keys,
            c.expires,
            c.expired,
            t.join(" ")
        );
    }
    if let Some(w) = written {
        let _ = writeln!(
            out,
            "Written {}: {} ({} bytes, {} keys verified), {} (empty), {}",
            w.aof_dir.display(),
            w.base,
            w.base_bytes,
            w.verified_keys,
            w.incr,
            w.manifest
        );
        let _ = writeln!(
            out,
            "Start a server on it with: strongbox-server --dir {} --appendonly yes (or redis-server)",
            w.aof_dir.parent().unwrap_or(Path::new(".")).display()
        );
    }
}

/// Run `strongbox-recover`; returns the exit code.
pub fn run(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let show = progress::enabled(opts.quiet, opts.json);
    let fail = |out: &mut dyn Write, err: &mut dyn Write, rec: &Recovery, msg: &str| {
        if opts.json {
            let _ = writeln!(
                out,
                "{:#}",
                report_json(rec, &BTreeMap::new(), None, Some(msg))
            );
        } else {
            let _ = writeln!(err, "strongbox-recover: {msg}");
        }
        EXIT_INVALID
    };
    let empty = Recovery::default();
    if let Err(e) = check_output(opts) {
        return fail(out, err, &empty, &e);
    }
    let (aof_dir, _) = aof_dir_of(opts);
    if let Some(d) = crate::locked_by_running_server(&[opts.dir.as_path(), aof_dir.as_path()]) {
        let msg = format!(
            "a running server holds the lock on {}: stop it first (its files change while it runs)",
            d.display()
        );
        return fail(out, err, &empty, &msg);
    }
    let (srv, rec) = match load(opts, show) {
        Ok(x) => x,
        Err(e) => return fail(out, err, &empty, &e),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let counts = key_counts(&srv, now_ms);
    match write_output(&srv, opts, show) {
        Ok(w) => {
            if opts.json {
                let _ = writeln!(out, "{:#}", report_json(&rec, &counts, Some(&w), None));
            } else {
                report_text(&rec, &counts, Some(&w), out);
            }
            EXIT_OK
        }
        Err(e) => {
            if opts.json {
                let _ = writeln!(out, "{:#}", report_json(&rec, &counts, None, Some(&e)));
            } else {
                report_text(&rec, &counts, None, out);
                let _ = writeln!(err, "strongbox-recover: {e}");
            }
            EXIT_INVALID
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_count_finds_commands_around_garbage() {
        let mut b = Vec::new();
        resp::encode_command(&mut b, &["SET", "a", "1"]);
        b.extend_from_slice(b"garbage\r\n#SB 1 2 00000000 00000000\r\n");
        resp::encode_command(&mut b, &["MULTI"]);
        resp::encode_command(&mut b, &["SET", "b", "2"]);
        resp::encode_command(&mut b, &["EXEC"]);
        assert_eq!(count_commands_leniently(&b), 2);
        assert_eq!(count_commands_leniently(b"\0\0\0"), 0);
    }

    #[test]
    fn resp_len_matches_encoding() {
        let argv = vec![Bytes::from_static(b"SET"), Bytes::from(vec![b'x'; 12])];
        let mut b = Vec::new();
        resp::encode_command(&mut b, &argv);
        assert_eq!(resp_len(&argv), b.len() as u64);
    }
}
