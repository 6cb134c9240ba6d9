//! `aof-check`: validate an AOF (a manifest and its files, or one base/incr file) and cut a
//! torn tail or everything after a time.
//!
//! The per-file scan ([`scan_file`]) is pure over the file's bytes and uses the decoders the
//! server loads with: `RdbReader` for an RDB base or preamble, `BatchReader` for RESP, `#SB`
//! batches (checksum and chain) and `#TS:` annotations. It classifies damage with the rule
//! recovery uses (recovery/src/replay.rs): a problem is a *torn tail* when nothing valid
//! follows it and it is an incomplete unit, a damaged batch of ours, or zero bytes to the end
//! of the file (what a power loss leaves); anything else is *corruption*. `--fix` cuts only a
//! torn tail of the last file; corruption is for `strongbox-recover`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use strongbox_storage::aof::{BatchReader, Manifest, ReadErrorKind, Unit, MANIFEST_NAME_SUFFIX};
use strongbox_storage::fs::{write_file_atomic, RealFs, Vfs};
use strongbox_storage::rdb::{Item, RdbReader};

use crate::{confirm, escape_bytes, Finding, Severity, EXIT_INVALID, EXIT_OK};

/// How many units between two progress callbacks.
const PROGRESS_UNITS_EVERY: u64 = 4096;
/// How many bytes of a cut tail are shown before asking.
const PREVIEW_BYTES_MAX: usize = 96;

/// The role of a file in what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The manifest's base (RDB or RESP).
    Base,
    /// An incr file of the manifest.
    Incr,
    /// A single file given on the command line.
    Single,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Base => "BASE AOF",
            Role::Incr => "INCR AOF",
            Role::Single => "AOF",
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::Incr => "incr",
            Role::Single => "single",
        }
    }
}

/// A problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Offset of the damaged unit (or bad byte).
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// A torn tail: nothing valid follows, and it looks like an interrupted write.
    pub torn: bool,
    /// Where a cut would go: the last clean point before `offset` (before an open MULTI).
    pub cut: u64,
    /// The next valid batch after the damage, where checking resumed.
    pub resume_at: Option<u64>,
}

/// The RDB part of a file (an RDB base or an RDB preamble).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbPart {
    /// RDB version from the header.
    pub version: u32,
    /// Keys read.
    pub keys: u64,
    /// Function libraries read (FUNCTION2 records).
    pub functions: u64,
    /// Offset just past the RDB's checksum (where RESP would continue).
    pub end: u64,
}

/// What scanning one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileScan {
    /// File size.
    pub size: u64,
    /// The RDB part, if the file starts with an RDB signature and it read to its end.
    pub rdb: Option<RdbPart>,
    /// Commands (MULTI/EXEC included).
    pub commands: u64,
    /// Verified `#SB` batches.
    pub batches: u64,
    /// Commands outside batches (as Redis writes them).
    pub plain_commands: u64,
    /// `#TS:` annotations (inside batches or not).
    pub timestamps: u64,
    /// First and last `#TS:` value.
    pub ts_range: Option<(i64, i64)>,
    /// Problems, in file order.
    pub problems: Vec<Problem>,
    /// Warnings: (offset, message).
    pub warnings: Vec<(u64, String)>,
    /// With a timestamp limit: (cut offset, the first `#TS:` later than the limit).
    pub ts_cut: Option<(u64, i64)>,
}

impl FileScan {
    /// Length of the valid prefix.
    pub fn ok_up_to(&self) -> u64 {
        self.problems.first().map_or(self.size, |p| p.cut)
    }
}

struct MultiOpen {
    offset: u64,
    safe: u64,
}

/// Track MULTI/EXEC. Returns an error text for a MULTI inside MULTI, a warning text for an
/// EXEC without MULTI (the server ignores it, as Redis does).
fn multi_step(
    multi: &mut Option<MultiOpen>,
    argv: &[&[u8]],
    offset: u64,
    safe: u64,
    warnings: &mut Vec<(u64, String)>,
) -> Result<(), String> {
    let Some(name) = argv.first() else {
        return Ok(());
    };
    if name.eq_ignore_ascii_case(b"multi") {
        if multi.is_some() {
            return Err("Unexpected MULTI (MULTI inside MULTI)".to_string());
        }
        *multi = Some(MultiOpen { offset, safe });
    } else if name.eq_ignore_ascii_case(b"exec") && multi.take().is_none() {
        warnings.push((
            offset,
            "Unexpected EXEC without MULTI (ignored when loading)".to_string(),
        ));
    }
    Ok(())
}

/// Scan one file's bytes. `expect_rdb`: the name says `.rdb`, so the file must be an RDB.
/// `progress` gets file offsets now and then.
pub fn scan_file(
    data: &[u8],
    expect_rdb: bool,
    ts_limit: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> FileScan {
    let size = data.len() as u64;
    let mut scan = FileScan {
        size,
        ..FileScan::default()
    };
    let mut start = 0usize;
    if data.starts_with(b"REDIS") || data.starts_with(b"VALKEY") {
        let mut reader = match RdbReader::new(data) {
            Ok(r) => r,
            Err(e) => {
                scan.problems.push(rdb_problem(&e));
                return scan;
            }
        };
        let version = reader.version();
        let mut items = 0u64;
        let mut functions = 0u64;
        loop {
            match reader.next_item() {
                Ok(Some(Item::Eof { .. })) | Ok(None) => break,
                Ok(Some(item)) => {
                    if matches!(item, Item::Function(_)) {
                        functions += 1;
                    }
                    items += 1;
                    if items.is_multiple_of(PROGRESS_UNITS_EVERY) {
                        progress(reader.offset());
                    }
                }
                Err(e) => {
                    scan.problems.push(rdb_problem(&e));
                    return scan;
                }
            }
        }
        let end = reader.offset();
        scan.rdb = Some(RdbPart {
            version,
            keys: reader.stats().keys,
            functions,
            end,
        });
        start = usize::try_from(end).unwrap_or(data.len()).min(data.len());
    } else if expect_rdb && !data.is_empty() {
        scan.problems.push(Problem {
            offset: 0,
            reason: format!(
                "an .rdb file that does not start with the REDIS signature (starts with '{}')",
                escape_bytes(&data[..data.len().min(9)], 9)
            ),
            torn: false,
            cut: 0,
            resume_at: None,
        });
        return scan;
    }

    let mut reader = BatchReader::new(&data[start..], start as u64);
    let mut multi: Option<MultiOpen> = None;
    let mut valid_up_to = start as u64;
    let mut units = 0u64;
    while let Some(next) = reader.next() {
        units += 1;
        if units.is_multiple_of(PROGRESS_UNITS_EVERY) {
            progress(reader.position());
        }
        let unit = match next {
            Ok(u) => u,
            Err(e) => {
                let rel = usize::try_from(e.offset).unwrap_or(usize::MAX);
                let rest = data.get(rel..).unwrap_or_default();
                let ours = reader.damage_is_ours(rest);
                let zeros = !rest.is_empty() && rest.iter().all(|&b| b == 0);
                let later = reader.find_valid_batch_after(e.offset);
                let torn =
                    later.is_none() && (e.kind == ReadErrorKind::Incomplete || ours || zeros);
                let cut = multi.take().map_or(valid_up_to, |m| m.safe);
                let mut reason = e.reason;
                if zeros && e.kind != ReadErrorKind::Incomplete {
                    reason.push_str(&format!(
                        " ({} zero bytes to the end of the file, as a power loss leaves them)",
                        rest.len()
                    ));
                }
                scan.problems.push(Problem {
                    offset: e.offset,
                    reason,
                    torn,
                    cut,
                    resume_at: later,
                });
                match later {
                    Some(at) => {
                        reader.resync_at(at);
                        valid_up_to = at;
                        continue;
                    }
                    None => break,
                }
            }
        };
        let ts = match &unit {
            Unit::Batch { timestamp, .. } => *timestamp,
            Unit::Timestamp { secs, .. } => Some(*secs),
            _ => None,
        };
        if let Some(ts) = ts {
            scan.timestamps += 1;
            scan.ts_range = Some(match scan.ts_range {
                Some((first, _)) => (first, ts),
                None => (ts, ts),
            });
            if let Some(limit) = ts_limit {
                if ts > limit && scan.ts_cut.is_none() {
                    let cut = multi.as_ref().map_or(unit.offset(), |m| m.safe);
                    scan.ts_cut = Some((cut, ts));
                }
            }
        }
        match unit {
            Unit::Batch {
                seq,
                offset,
                end,
                commands,
                ..
            } => {
                scan.batches += 1;
                let mut bad = None;
                for c in &commands {
                    scan.commands += 1;
                    if let Err(reason) =
                        multi_step(&mut multi, &c.argv, c.offset, offset, &mut scan.warnings)
                    {
                        bad = Some((c.offset, reason));
                        break;
                    }
                }
                if bad.is_none() {
                    if let Some(m) = multi.take() {
                        bad = Some((
                            m.offset,
                            format!(
                                "batch {seq} ends inside a MULTI block (the server refuses it)"
                            ),
                        ));
                    }
                }
                if let Some((at, reason)) = bad {
                    multi = None;
                    let later = reader.find_valid_batch_after(offset);
                    scan.problems.push(Problem {
                        offset: at,
                        reason,
                        torn: false,
                        cut: valid_up_to,
                        resume_at: later,
                    });
                    match later {
                        Some(l) => {
                            reader.resync_at(l);
                            valid_up_to = l;
                            continue;
                        }
                        None => break,
                    }
                }
                valid_up_to = end;
            }
            Unit::Command { offset, end, argv } => {
                scan.commands += 1;
                scan.plain_commands += 1;
                let was_in_multi = multi.is_some();
                if !was_in_multi {
                    valid_up_to = offset;
                }
                if let Err(reason) =
                    multi_step(&mut multi, &argv, offset, valid_up_to, &mut scan.warnings)
                {
                    let cut = multi.take().map_or(valid_up_to, |m| m.safe);
                    scan.problems.push(Problem {
                        offset,
                        reason,
                        torn: false,
                        cut,
                        resume_at: None,
                    });
                    break;
                }
                if multi.is_none() {
                    valid_up_to = end;
                }
            }
            Unit::Timestamp { end, .. } | Unit::Annotation { end, .. } => {
                if multi.is_none() {
                    valid_up_to = end;
                }
            }
            // Preallocated padding is not content: a cut after it goes before it.
            Unit::Padding { .. } => {}
        }
    }
    if let Some(m) = multi.take() {
        scan.problems.push(Problem {
            offset: m.offset,
            reason: "Reached EOF before reading EXEC for MULTI".to_string(),
            torn: true,
            cut: m.safe,
            resume_at: None,
        });
    }
    progress(size);
    scan
}

fn rdb_problem(e: &strongbox_storage::rdb::RdbError) -> Problem {
    let key = e
        .key
        .as_ref()
        .map(|k| format!(" (key '{}')", escape_bytes(k, 64)))
        .unwrap_or_default();
    Problem {
        offset: e.offset,
        reason: format!("RDB{key}: {}", e.reason),
        torn: false,
        cut: 0,
        resume_at: None,
    }
}

/// One checked file.
#[derive(Debug, Clone)]
pub struct CheckedFile {
    /// Name in its directory.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Role.
    pub role: Role,
    /// Whether it is the last file loaded (only its tail may be cut).
    pub last: bool,
    /// What the scan found.
    pub scan: FileScan,
}

/// What was checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The input path.
    pub input: PathBuf,
    /// The manifest, when the input is one.
    pub manifest: Option<Manifest>,
    /// The files, in load order.
    pub files: Vec<CheckedFile>,
    /// Findings, in order.
    pub findings: Vec<Finding>,
}

impl Checked {
    /// No error findings.
    pub fn valid(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Whether `bytes` look like a manifest: the first line that is not a `#` comment starts with
/// `file` (redis-check-aof's `getInputFileType`).
pub fn looks_like_manifest(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\n')
        .find(|l| !l.starts_with(b"#"))
        .is_some_and(|l| l.starts_with(b"file"))
}

/// Byte offset of the start of 1-based line `n`.
fn line_offset(bytes: &[u8], n: usize) -> u64 {
    if n <= 1 {
        return 0;
    }
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(n - 2)
        .map_or(bytes.len() as u64, |(i, _)| i as u64 + 1)
}

/// Byte offset of the manifest line naming `name`.
fn line_of_name(bytes: &[u8], name: &str) -> u64 {
    let mut off = 0u64;
    for line in bytes.split(|&b| b == b'\n') {
        if line
            .split(|&b| b == b' ' || b == b'"')
            .any(|w| w == name.as_bytes())
        {
            return off;
        }
        off += line.len() as u64 + 1;
    }
    0
}

/// A directory given as input: its manifest (or its `appendonlydir`'s).
fn find_manifest_in(dir: &Path) -> Result<PathBuf, String> {
    for d in [dir.to_path_buf(), dir.join("appendonlydir")] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut found: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(MANIFEST_NAME_SUFFIX) && !n.starts_with("temp-"))
            })
            .collect();
        found.sort();
        match found.len() {
            0 => continue,
            1 => return Ok(found.remove(0)),
            _ => {
                return Err(format!(
                    "{} holds several manifests ({}); name one",
                    d.display(),
                    found
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
    }
    Err(format!(
        "{} is a directory without an AOF manifest (nor an appendonlydir with one)",
        dir.display()
    ))
}

/// `<filename>.<seq>.base.rdb|aof` or `<filename>.<seq>.incr.aof`.
fn is_aof_name(filename: &str, name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(filename)
        .and_then(|r| r.strip_prefix('.'))
    else {
        return false;
    };
    let Some((seq, suffix)) = rest.split_once('.') else {
        return false;
    };
    !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
        && matches!(suffix, "base.rdb" | "base.aof" | "incr.aof")
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    RealFs
        .read(path)
        .map_err(|e| format!("Cannot open file {}: {e}", path.display()))
}

/// Check `input`: a manifest (or a directory holding one), or a single base/incr file.
/// `Err` only when the input itself cannot be read.
pub fn check(input: &Path, ts_limit: Option<i64>, show_progress: bool) -> Result<Checked, String> {
    let input = if input.is_dir() {
        find_manifest_in(input)?
    } else {
        input.to_path_buf()
    };
    let bytes = read_file(&input)?;
    let mut checked = Checked {
        input: input.clone(),
        manifest: None,
        files: Vec::new(),
        findings: Vec::new(),
    };
    let shown = input.display().to_string();
    if !looks_like_manifest(&bytes) {
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| shown.clone());
        let bar = crate::progress::bytes_bar(show_progress, bytes.len() as u64, "checking");
        let scan = scan_file(&bytes, name.ends_with(".rdb"), ts_limit, &mut |p| {
            bar.set_position(p)
        });
        bar.finish_and_clear();
        push_file(&mut checked, name, input.clone(), Role::Single, true, scan);
        return Ok(checked);
    }

    // A manifest: parse it like the server does, then check it against the directory.
    let dir = input
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let manifest = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(e) => {
            checked.findings.push(Finding::new(
                &shown,
                line_offset(&bytes, e.line_number),
                Severity::Error,
                format!("invalid manifest: {e}"),
            ));
            return Ok(checked);
        }
    };
    if manifest.is_empty() {
        checked.findings.push(Finding::new(
            &shown,
            0,
            Severity::Warning,
            "the manifest lists no base and no incr file: nothing to load",
        ));
    }
    let filename = input
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(MANIFEST_NAME_SUFFIX))
        .unwrap_or("appendonly.aof")
        .to_string();
    let mut to_check = Vec::new();
    let listed: Vec<_> = manifest.base.iter().chain(&manifest.incr).collect();
    let count = listed.len();
    for (i, e) in listed.into_iter().enumerate() {
        let path = dir.join(&e.name);
        let role = if manifest.base.as_ref() == Some(e) {
            Role::Base
        } else {
            Role::Incr
        };
        if path.is_file() {
            to_check.push((e.name.clone(), path, role, i + 1 == count));
        } else {
            checked.findings.push(Finding::new(
                &shown,
                line_of_name(&bytes, &e.name),
                Severity::Error,
                format!(
                    "the manifest lists {} {} (seq {}) but {} does not exist; the server refuses to start (use strongbox-recover)",
                    role.as_str(),
                    e.name,
                    e.seq,
                    path.display()
                ),
            ));
        }
    }
    for h in &manifest.history {
        if !dir.join(&h.name).exists() {
            checked.findings.push(Finding::new(
                &shown,
                line_of_name(&bytes, &h.name),
                Severity::Info,
                format!(
                    "history file {} is already deleted (history files are never loaded)",
                    h.name
                ),
            ));
        }
    }
    // Files the manifest does not list: the recovery planner's view of them when it accepts
    // the directory, else the same naming rule.
    if let Ok(obs) = strongbox_recovery::observe(&RealFs, &dir, &filename) {
        let orphans = match strongbox_recovery::plan(&obs, false) {
            Ok(plan) => plan.orphans,
            Err(_) => {
                let m = &manifest;
                let listed: Vec<&str> = m
                    .base
                    .iter()
                    .chain(&m.history)
                    .chain(&m.incr)
                    .map(|e| e.name.as_str())
                    .collect();
                obs.files
                    .iter()
                    .filter(|f| is_aof_name(&filename, f) && !listed.contains(&f.as_str()))
                    .cloned()
                    .collect()
            }
        };
        for o in &orphans {
            let path = dir.join(o);
            // An empty one is the next incr file the writer creates ahead of a rotation.
            let empty = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
            checked.findings.push(if empty {
                Finding::new(
                    path.display().to_string(),
                    0,
                    Severity::Info,
                    "not listed in the manifest and empty: ignored when loading (an incr file created ahead of a rotation)",
                )
            } else {
                Finding::new(
                    path.display().to_string(),
                    0,
                    Severity::Warning,
                    "not listed in the manifest: ignored when loading (a leftover of an interrupted rotation or rewrite?)",
                )
            });
        }
        for f in &obs.files {
            if f.starts_with(strongbox_storage::fs::TEMP_FILE_PREFIX) {
                checked.findings.push(Finding::new(
                    dir.join(f).display().to_string(),
                    0,
                    Severity::Info,
                    "temporary file (left by an interrupted write or rewrite; ignored)",
                ));
            }
        }
    }
    let total: u64 = to_check
        .iter()
        .map(|(_, p, _, _)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let bar = crate::progress::bytes_bar(show_progress, total, "checking");
    let mut done = 0u64;
    checked.manifest = Some(manifest);
    for (name, path, role, last) in to_check {
        let data = match read_file(&path) {
            Ok(d) => d,
            Err(e) => {
                checked.findings.push(Finding::new(
                    path.display().to_string(),
                    0,
                    Severity::Error,
                    e,
                ));
                continue;
            }
        };
        let scan = scan_file(&data, name.ends_with(".rdb"), ts_limit, &mut |p| {
            bar.set_position(done + p)
        });
        done += data.len() as u64;
        push_file(&mut checked, name, path, role, last, scan);
    }
    bar.finish_and_clear();
    Ok(checked)
}

fn push_file(
    checked: &mut Checked,
    name: String,
    path: PathBuf,
    role: Role,
    last: bool,
    scan: FileScan,
) {
    let shown = path.display().to_string();
    for (off, w) in &scan.warnings {
        checked
            .findings
            .push(Finding::new(&shown, *off, Severity::Warning, w.clone()));
    }
    for p in &scan.problems {
        let what = if p.torn && last {
            format!(
                "{}; torn tail: the last clean point is offset {} ({} bytes after it; `aof-check --fix` can cut them)",
                p.reason,
                p.cut,
                scan.size - p.cut
            )
        } else if p.torn {
            format!(
                "{}; the file ends inside a unit but it is not the last file, so the server refuses it (use strongbox-recover)",
                p.reason
            )
        } else {
            match p.resume_at {
                Some(at) => format!(
                    "{}; corruption (valid batches resume at offset {at}: use strongbox-recover --skip-corrupt to keep them)",
                    p.reason
                ),
                None => format!("{}; corruption (use strongbox-recover)", p.reason),
            }
        };
        checked
            .findings
            .push(Finding::new(&shown, p.offset, Severity::Error, what));
    }
    checked.files.push(CheckedFile {
        name,
        path,
        role,
        last,
        scan,
    });
}

/// A cut to apply to the last file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The file.
    pub path: PathBuf,
    /// New length.
    pub offset: u64,
    /// Current length.
    pub len: u64,
    /// Why.
    pub reason: String,
}

/// What `--fix` would do: `Ok(None)` when there is nothing to fix, `Err` when the damage is not
/// a torn tail of the last file.
pub fn plan_fix(checked: &Checked) -> Result<Option<Cut>, String> {
    if checked.valid() {
        return Ok(None);
    }
    let others: Vec<&Finding> = checked
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let last = checked.files.last();
    let torn_last = last.and_then(|f| {
        let p = f.scan.problems.first()?;
        (f.last && p.torn && f.scan.problems.len() == 1).then_some((f, p))
    });
    let torn_findings = usize::from(torn_last.is_some());
    if let (Some((f, p)), true) = (torn_last, others.len() == torn_findings) {
        return Ok(Some(Cut {
            path: f.path.clone(),
            offset: p.cut,
            len: f.scan.size,
            reason: p.reason.clone(),
        }));
    }
    let first = others
        .iter()
        .find(|f| torn_last.is_none_or(|(lf, _)| f.file != lf.path.display().to_string()))
        .or(others.first())
        .map(|f| f.to_string())
        .unwrap_or_default();
    Err(format!(
        "not a torn tail of the last file: {first}\n--fix only cuts an interrupted write at the end of the last file; it never removes data in the middle. \
Use `strongbox-recover --dir <data dir> --output <new dir>` (add --skip-corrupt to keep what follows the damage)"
    ))
}

/// What `--truncate-to-timestamp` would do: `Ok(None)` when no `#TS:` is later than `ts`.
pub fn plan_truncate_to_timestamp(checked: &Checked, ts: i64) -> Result<Option<Cut>, String> {
    if !checked.findings.iter().all(|f| {
        f.severity != Severity::Error
            || checked
                .files
                .iter()
                .any(|cf| f.file == cf.path.display().to_string())
    }) {
        return Err(
            "the manifest or the directory is not valid (see above); fix that first".into(),
        );
    }
    for f in &checked.files {
        let before_cut = |off: u64| f.scan.ts_cut.is_none_or(|(cut, _)| off < cut);
        if let Some(p) = f.scan.problems.iter().find(|p| before_cut(p.cut)) {
            return Err(format!(
                "{} is not valid before the timestamp (offset {}: {}); use strongbox-recover --to-timestamp {ts}",
                f.path.display(),
                p.offset,
                p.reason
            ));
        }
        let Some((cut, seen)) = f.scan.ts_cut else {
            continue;
        };
        if !f.last {
            return Err(format!(
                "Failed to truncate AOF {} to timestamp {ts} because it is not the last file (the first later annotation, #TS:{seen}, is at offset {cut}).\n\
If you insist, please delete all files after this file according to the manifest file and delete the corresponding records in manifest file manually. Then re-run aof-check. \
Or use `strongbox-recover --to-timestamp {ts}`, which leaves the input untouched.",
                f.path.display()
            ));
        }
        let nothing_before = f.scan.rdb.as_ref().map_or(0, |r| r.end);
        if cut <= nothing_before && f.role != Role::Incr {
            return Err(format!(
                "AOF {} has nothing before timestamp {ts}, aborting...",
                f.path.display()
            ));
        }
        return Ok(Some(Cut {
            path: f.path.clone(),
            offset: cut,
            len: f.scan.size,
            reason: format!("first #TS:{seen} later than {ts}"),
        }));
    }
    Ok(None)
}

/// A name for the backup of a cut tail, next to the file, that does not exist yet.
pub fn backup_path(path: &Path, offset: u64) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "aof".to_string());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut candidate = dir.join(format!("{name}.cut-at-{offset}.bak"));
    let mut n = 1;
    while candidate.exists() {
        candidate = dir.join(format!("{name}.cut-at-{offset}.{n}.bak"));
        n += 1;
    }
    candidate
}

/// Show the cut, ask (unless `yes`), keep the cut bytes in a backup file, truncate.
/// Returns the backup path, or `Ok(None)` when the user said no.
pub fn apply_cut(
    cut: &Cut,
    yes: bool,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<Option<PathBuf>, String> {
    let dir = cut.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let data_dir = dir.parent().map(Path::to_path_buf);
    let mut dirs = vec![dir.as_path()];
    if let Some(d) = &data_dir {
        dirs.push(d.as_path());
    }
    if let Some(locked) = crate::locked_by_running_server(&dirs) {
        return Err(format!(
            "a running server holds the lock on {}: stop it before changing its files",
            locked.display()
        ));
    }
    let len = RealFs
        .len(&cut.path)
        .map_err(|e| format!("stat {}: {e}", cut.path.display()))?;
    if len != cut.len {
        return Err(format!(
            "{} changed since it was checked ({} bytes, now {len}): is a server writing to it?",
            cut.path.display(),
            cut.len
        ));
    }
    let removed = RealFs
        .read_range(
            &cut.path,
            cut.offset,
            usize::try_from(len - cut.offset).unwrap_or(usize::MAX),
        )
        .map_err(|e| format!("read {}: {e}", cut.path.display()))?;
    let backup = backup_path(&cut.path, cut.offset);
    let _ = writeln!(
        out,
        "This will shrink {} from {len} bytes to {} bytes, removing {} bytes at offsets {}..{len} ({}).",
        cut.path.display(),
        cut.offset,
        len - cut.offset,
        cut.offset,
        cut.reason
    );
    let _ = writeln!(
        out,
        "The bytes removed start with: \"{}\"",
        escape_bytes(&removed, PREVIEW_BYTES_MAX)
    );
    let _ = writeln!(out, "They will be kept in {}", backup.display());
    if !yes && !confirm("Continue?", input, out) {
        let _ = writeln!(out, "Aborting...");
        return Ok(None);
    }
    let backup_name = backup
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_file_atomic(&RealFs, &dir, &backup_name, &removed)
        .map_err(|e| format!("write the backup {}: {e}", backup.display()))?;
    RealFs
        .truncate(&cut.path, cut.offset)
        .map_err(|e| format!("Failed to truncate AOF {}: {e}", cut.path.display()))?;
    Ok(Some(backup))
}

/// Command-line options of `aof-check`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The manifest, file or directory.
    pub input: PathBuf,
    /// Cut a torn tail of the last file.
    pub fix: bool,
    /// Cut at the first `#TS:` later than this.
    pub truncate_to_timestamp: Option<i64>,
    /// Do not ask.
    pub yes: bool,
    /// JSON on stdout.
    pub json: bool,
    /// No progress bars.
    pub quiet: bool,
}

fn file_json(f: &CheckedFile) -> Json {
    let s = &f.scan;
    json!({
        "name": f.name,
        "path": f.path.display().to_string(),
        "role": f.role.as_str(),
        "last": f.last,
        "size": s.size,
        "ok_up_to": s.ok_up_to(),
        "valid": s.problems.is_empty(),
        "rdb": s.rdb.as_ref().map(|r| json!({"version": r.version, "keys": r.keys, "functions": r.functions, "end": r.end})),
        "commands": s.commands,
        "batches": s.batches,
        "plain_commands": s.plain_commands,
        "timestamps": s.timestamps,
        "first_timestamp": s.ts_range.map(|r| r.0),
        "last_timestamp": s.ts_range.map(|r| r.1),
        "problems": s.problems.iter().map(|p| json!({
            "offset": p.offset, "reason": p.reason, "torn_tail": p.torn,
            "cut": p.cut, "resume_at": p.resume_at,
        })).collect::<Vec<_>>(),
    })
}

fn print_text(checked: &Checked, out: &mut dyn Write) {
    if let Some(m) = &checked.manifest {
        let _ = writeln!(
            out,
            "Start checking Multi Part AOF {} ({} base, {} incr, {} history)",
            checked.input.display(),
            usize::from(m.base.is_some()),
            m.incr.len(),
            m.history.len()
        );
    }
    for f in &checked.findings {
        let _ = writeln!(out, "{f}");
    }
    for f in &checked.files {
        let s = &f.scan;
        if let Some(r) = &s.rdb {
            let _ = writeln!(
                out,
                "{}: RDB version {} with {} keys{}, {} bytes{}",
                f.name,
                r.version,
                r.keys,
                if r.functions > 0 {
                    format!(" and {} function libraries", r.functions)
                } else {
                    String::new()
                },
                r.end,
                if r.end < s.size {
                    ", then a RESP tail"
                } else {
                    ""
                }
            );
        }
        if s.commands > 0 || s.timestamps > 0 {
            let ts = s
                .ts_range
                .map(|(a, b)| format!(", #TS: from {a} to {b}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}: {} commands ({} in {} checksummed batches, {} plain){ts}",
                f.name,
                s.commands,
                s.commands - s.plain_commands,
                s.batches,
                s.plain_commands
            );
        }
        if s.problems.is_empty() {
            let what = if s.size == 0 { "is empty" } else { "is valid" };
            let _ = writeln!(out, "{} {} {what}", f.role.label(), f.name);
        } else {
            let _ = writeln!(
                out,
                "AOF analyzed: filename={}, size={}, ok_up_to={}, diff={}",
                f.name,
                s.size,
                s.ok_up_to(),
                s.size - s.ok_up_to()
            );
            let _ = writeln!(out, "{} {} is not valid", f.role.label(), f.name);
        }
    }
    if checked.valid() {
        if checked.manifest.is_some() {
            let _ = writeln!(out, "All AOF files and manifest are valid");
        }
    } else {
        let _ = writeln!(
            out,
            "AOF {} is not valid. Use aof-check --fix for a torn tail, or strongbox-recover.",
            checked.input.display()
        );
    }
}

/// Run `aof-check`: returns the exit code.
pub fn run(
    opts: &Options,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let show_progress = crate::progress::enabled(opts.quiet, opts.json);
    let checked = match check(&opts.input, opts.truncate_to_timestamp, show_progress) {
        Ok(c) => c,
        Err(e) => {
            if opts.json {
                let _ = writeln!(
                    stdout,
                    "{}",
                    json!({"input": opts.input.display().to_string(), "valid": false, "error": e})
                );
            } else {
                let _ = writeln!(stderr, "{e}");
            }
            return EXIT_INVALID;
        }
    };
    if !opts.json {
        print_text(&checked, stdout);
    }
    // Prompts go to stdout in text mode (like redis-check-aof), to stderr with --json.
    let mut action: Option<Json> = None;
    let mut code = if checked.valid() {
        EXIT_OK
    } else {
        EXIT_INVALID
    };
    let planned = if opts.fix {
        Some(plan_fix(&checked))
    } else {
        opts.truncate_to_timestamp
            .map(|ts| plan_truncate_to_timestamp(&checked, ts))
    };
    if let Some(planned) = planned {
        let what = if opts.fix {
            "fix"
        } else {
            "truncate-to-timestamp"
        };
        match planned {
            Ok(None) => {
                let msg = if opts.fix {
                    "Nothing to fix".to_string()
                } else {
                    format!(
                        "Truncate nothing in AOF {} to timestamp {}",
                        checked.input.display(),
                        opts.truncate_to_timestamp.unwrap_or_default()
                    )
                };
                if !opts.json {
                    let _ = writeln!(stdout, "{msg}");
                }
                action = Some(json!({"action": what, "done": false, "message": msg}));
            }
            Ok(Some(cut)) => {
                let prompt_out: &mut dyn Write = if opts.json { stderr } else { stdout };
                match apply_cut(&cut, opts.yes, stdin, prompt_out) {
                    Ok(Some(backup)) => {
                        let msg = format!(
                            "Successfully truncated AOF {} at offset {} (was {} bytes); the cut bytes are in {}",
                            cut.path.display(),
                            cut.offset,
                            cut.len,
                            backup.display()
                        );
                        let _ = writeln!(prompt_out, "{msg}");
                        // Check again: a fix that leaves an invalid AOF is not a success.
                        code = match check(&opts.input, None, false) {
                            Ok(after) if after.valid() || !opts.fix => EXIT_OK,
                            Ok(after) => {
                                for f in after
                                    .findings
                                    .iter()
                                    .filter(|f| f.severity == Severity::Error)
                                {
                                    let _ = writeln!(prompt_out, "after the cut: {f}");
                                }
                                EXIT_INVALID
                            }
                            Err(e) => {
                                let _ = writeln!(prompt_out, "{e}");
                                EXIT_INVALID
                            }
                        };
                        action = Some(json!({
                            "action": what, "done": true, "file": cut.path.display().to_string(),
                            "offset": cut.offset, "original_len": cut.len,
                            "removed_bytes": cut.len - cut.offset, "reason": cut.reason,
                            "backup": backup.display().to_string(),
                        }));
                    }
                    Ok(None) => {
                        code = EXIT_INVALID;
                        action = Some(
                            json!({"action": what, "done": false, "message": "refused at the prompt",
                            "file": cut.path.display().to_string(), "offset": cut.offset}),
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(prompt_out, "{e}");
                        code = EXIT_INVALID;
                        action = Some(json!({"action": what, "done": false, "message": e}));
                    }
                }
            }
            Err(e) => {
                if !opts.json {
                    let _ = writeln!(stdout, "{e}");
                }
                code = EXIT_INVALID;
                action = Some(json!({"action": what, "done": false, "message": e}));
            }
        }
    }
    if opts.json {
        let doc = json!({
            "input": checked.input.display().to_string(),
            "kind": if checked.manifest.is_some() { "manifest" } else { "file" },
            "valid": checked.valid(),
            "files": checked.files.iter().map(file_json).collect::<Vec<_>>(),
            "findings": checked.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "action": action,
            "exit_code": code,
        });
        let _ = writeln!(stdout, "{doc:#}");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongbox_storage::aof::batch::{encode_batch, timestamp_line, Chain};
    use strongbox_storage::resp::encode_command;

    fn batch(out: &mut Vec<u8>, chain: &mut Chain, ts: Option<i64>, cmds: &[&[&str]]) {
        let mut p = Vec::new();
        if let Some(ts) = ts {
            p.extend_from_slice(timestamp_line(ts).as_bytes());
        }
        for c in cmds {
            encode_command(&mut p, c);
        }
        encode_batch(out, chain, &p);
    }

    fn ours() -> Vec<u8> {
        let mut f = Vec::new();
        let mut ch = Chain::default();
        batch(&mut f, &mut ch, Some(100), &[&["SET", "a", "1"]]);
        batch(
            &mut f,
            &mut ch,
            Some(200),
            &[&["MULTI"], &["SET", "b", "2"], &["EXEC"]],
        );
        batch(&mut f, &mut ch, Some(300), &[&["SET", "c", "3"]]);
        f
    }

    fn scan(data: &[u8], ts: Option<i64>) -> FileScan {
        scan_file(data, false, ts, &mut |_| {})
    }

    #[test]
    fn clean_file_has_no_problems_and_counts_everything() {
        let s = scan(&ours(), None);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!((s.batches, s.commands, s.timestamps), (3, 5, 3));
        assert_eq!(s.ts_range, Some((100, 300)));
    }

    #[test]
    fn truncated_last_batch_is_a_torn_tail_cut_at_its_start() {
        let f = ours();
        let third = scan(&f, Some(250)).ts_cut.expect("ts cut").0;
        let s = scan(&f[..f.len() - 3], None);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].torn);
        assert_eq!(s.problems[0].cut, third);
        assert_eq!(s.ok_up_to(), third);
    }

    #[test]
    fn flipped_byte_in_a_middle_batch_is_corruption_with_resume_point() {
        let f = ours();
        let second = scan(&f, Some(150)).ts_cut.expect("cut").0;
        let third = scan(&f, Some(250)).ts_cut.expect("cut").0;
        let mut g = f.clone();
        g[second as usize + 40] ^= 0x20;
        let s = scan(&g, None);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert!(!s.problems[0].torn);
        assert_eq!(s.problems[0].offset, second);
        assert_eq!(s.problems[0].resume_at, Some(third));
        // Checking went on after the damage.
        assert_eq!(s.batches, 2);
    }

    #[test]
    fn plain_multi_without_exec_is_cut_before_the_multi() {
        let mut f = Vec::new();
        encode_command(&mut f, &["SET", "a", "1"]);
        let multi_at = f.len() as u64;
        encode_command(&mut f, &["MULTI"]);
        encode_command(&mut f, &["SET", "b", "2"]);
        let s = scan(&f, None);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].torn);
        assert_eq!(
            (s.problems[0].offset, s.problems[0].cut),
            (multi_at, multi_at)
        );
    }

    #[test]
    fn zero_filled_tail_of_a_redis_file_is_torn() {
        let mut f = Vec::new();
        encode_command(&mut f, &["SET", "a", "1"]);
        let end = f.len() as u64;
        f.extend_from_slice(&[0u8; 4096]);
        let s = scan(&f, None);
        assert!(s.problems[0].torn, "{:?}", s.problems);
        assert_eq!(s.problems[0].cut, end);
        // Garbage that is not zeros in a Redis file is corruption.
        let mut g = f[..end as usize].to_vec();
        g.extend_from_slice(b"xyz\r\n");
        assert!(!scan(&g, None).problems[0].torn);
    }

    #[test]
    fn manifest_detection_skips_comments() {
        assert!(looks_like_manifest(b"# c\nfile a seq 1 type b\n"));
        assert!(!looks_like_manifest(b"*1\r\n$4\r\nPING\r\n"));
        assert!(!looks_like_manifest(b"REDIS0010"));
        assert_eq!(line_offset(b"ab\ncd\nef\n", 3), 6);
    }
}
