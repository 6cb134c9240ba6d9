//! Executing a plan: load the base, replay incr files, decide about damage.
//!
//! Decision table for a reading problem at offset `p` of file `F` (see docs/design-aof.md):
//!
//! | where / what                                                        | result |
//! |---------------------------------------------------------------------|--------|
//! | `F` last, incomplete unit or bad batch, no valid batch after `p`    | torn tail: cut at the last clean point (before an open MULTI) if `load_truncated`, else error |
//! | `F` last, bad batch but a valid batch follows                       | corruption: error (or skip with `skip_corrupt`) |
//! | `F` last, bad bytes among plain (Redis) commands                    | corruption (Redis: "Bad file format") |
//! | `F` not last, anything                                              | error (Redis: truncated non-last file is fatal), or skip with `skip_corrupt` |
//! | clean end of file inside MULTI                                      | last file: dropped like a torn tail; else error |
//! | `#TS:` later than `to_timestamp`                                    | stop loading there (cut the last file unless read-only) |

use crate::plan::{FileKind, ManifestSource, Plan, PlannedFile};
use crate::report::{FileReport, Report, Skipped, Truncation};
use crate::{Options, RecoveryError, Sink};
use bytes::Bytes;
use std::path::Path;
use strongbox_storage::aof::{
    AppendPoint, BatchReader, Chain, ReadError, ReadErrorKind, ResumePoint, Unit,
};
use strongbox_storage::fs::Vfs;

/// The result of a successful recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was loaded, cut, skipped.
    pub report: Report,
    /// Where the log writer continues.
    pub resume: ResumePoint,
}

/// Result of replaying one file.
struct FileResult {
    report: FileReport,
    chain: Chain,
    /// Every unit was one of our batches and nothing was skipped or left uncut.
    appendable: bool,
    /// Stop loading further files (timestamp reached).
    stop: bool,
}

struct Multi {
    offset: u64,
    safe: u64,
    commands: Vec<Vec<Bytes>>,
}

struct FileReplay<'a> {
    path: &'a Path,
    name: &'a str,
    data: &'a Bytes,
    sink: &'a mut dyn Sink,
    multi: Option<Multi>,
    commands: u64,
}

impl FileReplay<'_> {
    fn deliver(&mut self, argv: &[&[u8]], offset: u64) -> Result<(), RecoveryError> {
        let Some(name) = argv.first() else {
            return Ok(());
        };
        let owned = || {
            argv.iter()
                .map(|a| self.data.slice_ref(a))
                .collect::<Vec<Bytes>>()
        };
        if name.eq_ignore_ascii_case(b"multi") {
            if self.multi.is_some() {
                return Err(RecoveryError::Corrupt {
                    path: self.path.to_path_buf(),
                    offset,
                    reason: "MULTI inside MULTI".to_string(),
                });
            }
            self.multi = Some(Multi {
                offset,
                safe: offset,
                commands: Vec::new(),
            });
            return Ok(());
        }
        if name.eq_ignore_ascii_case(b"exec") {
            let Some(m) = self.multi.take() else {
                tracing::warn!(file = self.name, offset, "EXEC without MULTI ignored");
                return Ok(());
            };
            for c in m.commands {
                self.apply(c, offset)?;
            }
            return Ok(());
        }
        let cmd = owned();
        match &mut self.multi {
            Some(m) => m.commands.push(cmd),
            None => self.apply(cmd, offset)?,
        }
        Ok(())
    }

    fn apply(&mut self, argv: Vec<Bytes>, offset: u64) -> Result<(), RecoveryError> {
        self.commands += 1;
        if self.commands.is_multiple_of(PROGRESS_COMMANDS) {
            self.sink
                .progress(offset)
                .map_err(|reason| RecoveryError::Apply {
                    path: self.path.to_path_buf(),
                    offset,
                    reason,
                })?;
        }
        self.sink
            .command(argv)
            .map_err(|reason| RecoveryError::Apply {
                path: self.path.to_path_buf(),
                offset,
                reason,
            })
    }
}

/// The sink hears where the replay is ([`Sink::progress`]) once per this many commands (as
/// Redis's AOF loader serves its clients once per 1024 commands).
pub const PROGRESS_COMMANDS: u64 = 1024;

/// Files (or the RESP part of a base) at least this long are read by a second thread: it
/// verifies batch checksums and parses commands while the calling thread applies them.
pub const PIPELINE_MIN_BYTES: usize = 1 << 20;
/// Units handed from the reading thread to the applying thread at a time: at most this many,
/// and no more than about [`PIPELINE_CHUNK_BYTES`] of the file (a batch may hold thousands of
/// commands, each parsed into its own argument vector: ~2 bytes of memory per file byte).
const PIPELINE_CHUNK_UNITS: usize = 256;
const PIPELINE_CHUNK_BYTES: u64 = 256 << 10;
/// Chunks in flight (bounds what the reading thread may run ahead). What it allocates for them
/// stays with its malloc arena after the load, which glibc does not trim (not the main arena),
/// and the applying thread pauses while a table grows, so the reader fills every chunk: with
/// 16 chunks bounded by units only, the server replaying 1M SETs kept 15 MiB there, and 37 MiB
/// with 4 chunks after 10M SETs; bounded by bytes too, a few MiB (same load time).
const PIPELINE_CHUNKS_IN_FLIGHT: usize = 4;

type UnitChunk<'a> = Vec<Result<Unit<'a>, ReadError>>;

/// The units of a file in order, from a [`BatchReader`] on this thread or, for a large file,
/// on a reading thread that runs ahead (same units, same errors: the reader stops at the first
/// error either way, and its state — chain, batch count, resync — is taken back from the
/// thread once it has stopped).
struct UnitSource<'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    /// The reader, when no reading thread has it.
    reader: Option<BatchReader<'env>>,
    pipeline: bool,
    rx: Option<std::sync::mpsc::Receiver<UnitChunk<'env>>>,
    thread: Option<std::thread::ScopedJoinHandle<'scope, BatchReader<'env>>>,
    pending: std::vec::IntoIter<Result<Unit<'env>, ReadError>>,
}

impl<'scope, 'env> UnitSource<'scope, 'env> {
    fn new(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        reader: BatchReader<'env>,
        pipeline: bool,
    ) -> Self {
        let mut u = UnitSource {
            scope,
            reader: Some(reader),
            pipeline,
            rx: None,
            thread: None,
            pending: Vec::new().into_iter(),
        };
        u.start();
        u
    }

    /// Hand the reader to a reading thread (if pipelining and one can be started).
    fn start(&mut self) {
        if !self.pipeline {
            return;
        }
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        let backup = reader.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<UnitChunk<'env>>(PIPELINE_CHUNKS_IN_FLIGHT);
        let spawned = std::thread::Builder::new()
            .name("strongbox-load".into())
            .spawn_scoped(self.scope, move || {
                let mut chunk = Vec::with_capacity(PIPELINE_CHUNK_UNITS);
                let mut bytes = 0;
                while let Some(u) = reader.next() {
                    if let Ok(u) = &u {
                        bytes += u.end().saturating_sub(u.offset());
                    }
                    chunk.push(u);
                    if chunk.len() >= PIPELINE_CHUNK_UNITS || bytes >= PIPELINE_CHUNK_BYTES {
                        bytes = 0;
                        let full =
                            std::mem::replace(&mut chunk, Vec::with_capacity(PIPELINE_CHUNK_UNITS));
                        if tx.send(full).is_err() {
                            return reader;
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.send(chunk);
                }
                reader
            });
        match spawned {
            Ok(h) => {
                self.rx = Some(rx);
                self.thread = Some(h);
            }
            Err(e) => {
                // No second thread: read on this one.
                tracing::debug!("no reading thread ({e})");
                self.reader = Some(backup);
                self.pipeline = false;
            }
        }
    }

    fn next(&mut self) -> Option<Result<Unit<'env>, ReadError>> {
        loop {
            if let Some(u) = self.pending.next() {
                return Some(u);
            }
            match (&mut self.reader, &self.rx) {
                (Some(r), _) => return r.next(),
                (None, Some(rx)) => match rx.recv() {
                    Ok(chunk) => self.pending = chunk.into_iter(),
                    Err(_) => {
                        // The reading thread has stopped (end of file or after an error).
                        self.stop();
                        return None;
                    }
                },
                (None, None) => return None,
            }
        }
    }

    /// Take the reader back (stopping the reading thread if it still runs; its read-ahead is
    /// dropped). Exact after `next` returned an error or `None`, when the thread had stopped.
    fn stop(&mut self) {
        self.rx = None;
        if let Some(h) = self.thread.take() {
            match h.join() {
                Ok(r) => self.reader = Some(r),
                // As if the reader had panicked on this thread.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    }

    fn reader(&mut self) -> &mut BatchReader<'env> {
        self.stop();
        // `stop` leaves the reader here: taken back from the thread, or never given away.
        self.reader.get_or_insert_with(|| BatchReader::new(&[], 0))
    }

    /// Continue at `offset` (see [`BatchReader::resync_at`]), reading ahead again.
    fn resync_at(&mut self, offset: u64) {
        self.pending = Vec::new().into_iter();
        self.reader().resync_at(offset);
        self.start();
    }
}

fn cut_file(
    vfs: &dyn Vfs,
    path: &Path,
    name: &str,
    (cut, len): (u64, u64),
    reason: String,
    opts: &Options,
    report: &mut Report,
) -> Result<(), RecoveryError> {
    let applied = !opts.read_only && cut < len;
    if applied {
        vfs.truncate(path, cut)
            .map_err(RecoveryError::io("truncate", path))?;
    }
    let w = format!(
        "!!! short read or torn tail in {name}: {reason}; {} the AOF at offset {cut} (was {len} bytes) !!!",
        if applied { "truncated" } else { "would truncate (read-only)" }
    );
    tracing::warn!("{w}");
    report.warnings.push(w);
    report.truncated = Some(Truncation {
        file: name.to_string(),
        offset: cut,
        original_len: len,
        reason,
        applied,
    });
    Ok(())
}

fn replay_file(
    vfs: &dyn Vfs,
    plan: &Plan,
    file: &PlannedFile,
    opts: &Options,
    sink: &mut dyn Sink,
    report: &mut Report,
    pipeline_min_bytes: usize,
) -> Result<FileResult, RecoveryError> {
    let path = plan.dir.join(&file.name);
    let data = Bytes::from(vfs.read(&path).map_err(RecoveryError::io("read", &path))?);
    let len = data.len() as u64;
    let mut fr = FileReport {
        name: file.name.clone(),
        kind: file.kind,
        bytes: len,
        valid_len: len,
        commands: 0,
        batches: 0,
        plain_commands: 0,
        rdb: false,
    };

    // An RDB image first: a `.base.rdb`, or an old-style RDB-preamble AOF (Redis checks the
    // signature, not the name).
    let mut start = 0usize;
    let is_base = matches!(file.kind, FileKind::BaseRdb | FileKind::BaseAof);
    if is_base && (data.starts_with(b"REDIS") || data.starts_with(b"VALKEY")) {
        let consumed = sink
            .load_rdb(&path, &data)
            .map_err(|reason| RecoveryError::Rdb {
                path: path.clone(),
                reason,
            })?;
        start = usize::try_from(consumed)
            .unwrap_or(usize::MAX)
            .min(data.len());
        fr.rdb = true;
    } else if file.kind == FileKind::BaseRdb && !data.is_empty() {
        return Err(RecoveryError::Rdb {
            path,
            reason: "file does not start with the REDIS or VALKEY signature".to_string(),
        });
    }

    std::thread::scope(|scope| {
        let mut reader = UnitSource::new(
            scope,
            BatchReader::new(&data[start..], start as u64),
            data.len() - start >= pipeline_min_bytes,
        );
        let mut fx = FileReplay {
            path: &path,
            name: &file.name,
            data: &data,
            sink,
            multi: None,
            commands: 0,
        };
        let mut valid_up_to = start as u64;
        let mut foreign = false;
        let mut damaged = false;
        let mut stop = false;
        let mut cut_done = false;
        let mut padded_tail = false;

        while let Some(next) = reader.next() {
            match next {
                Ok(unit) => {
                    let is_padding = matches!(unit, Unit::Padding { .. });
                    let ts = match &unit {
                        Unit::Batch { timestamp, .. } => *timestamp,
                        Unit::Timestamp { secs, .. } => Some(*secs),
                        _ => None,
                    };
                    if let (Some(limit), Some(ts)) = (opts.to_timestamp, ts) {
                        if ts > limit {
                            let cut = fx.multi.as_ref().map_or(unit.offset(), |m| m.safe);
                            if fx.multi.take().is_some() {
                                report.warnings.push(format!(
                                    "dropped an open MULTI before the timestamp cut in {}",
                                    file.name
                                ));
                            }
                            report.stopped_at_timestamp = Some((file.name.clone(), cut, ts));
                            if !opts.read_only && cut < len {
                                if !file.last {
                                    return Err(RecoveryError::TimestampNotLast {
                                        path,
                                        offset: cut,
                                        timestamp: limit,
                                    });
                                }
                                cut_file(
                                    vfs,
                                    &path,
                                    &file.name,
                                    (cut, len),
                                    format!("first #TS:{ts} later than {limit}"),
                                    opts,
                                    report,
                                )?;
                            }
                            fr.valid_len = cut;
                            cut_done = true;
                            stop = true;
                            break;
                        }
                    }
                    match unit {
                        Unit::Batch {
                            seq, end, commands, ..
                        } => {
                            for c in &commands {
                                fx.deliver(&c.argv, c.offset)?;
                            }
                            if let Some(m) = &fx.multi {
                                return Err(RecoveryError::Corrupt {
                                    path: path.clone(),
                                    offset: m.offset,
                                    reason: format!("batch {seq} ends inside a MULTI block"),
                                });
                            }
                            fr.batches += 1;
                            valid_up_to = end;
                        }
                        Unit::Command { offset, end, argv } => {
                            foreign = true;
                            fr.plain_commands += 1;
                            let was_in_multi = fx.multi.is_some();
                            if !was_in_multi {
                                valid_up_to = offset;
                            }
                            fx.deliver(&argv, offset)?;
                            if let Some(m) = &mut fx.multi {
                                if !was_in_multi {
                                    m.safe = valid_up_to;
                                }
                            } else {
                                valid_up_to = end;
                            }
                        }
                        Unit::Timestamp { end, .. } | Unit::Annotation { end, .. } => {
                            foreign = true;
                            if fx.multi.is_none() {
                                valid_up_to = end;
                            }
                        }
                        // Preallocated padding (`always`) is not content: the content, and
                        // any cut, end before it.
                        Unit::Padding { .. } => {}
                    }
                    padded_tail = is_padding;
                }
                Err(e) => {
                    let rel = usize::try_from(e.offset).unwrap_or(usize::MAX);
                    let ours = reader
                        .reader()
                        .damage_is_ours(data.get(rel..).unwrap_or_default());
                    let later_valid = reader.reader().find_valid_batch_after(e.offset);
                    let tail =
                        later_valid.is_none() && (e.kind == ReadErrorKind::Incomplete || ours);
                    if tail && file.last {
                        if !opts.load_truncated {
                            return Err(RecoveryError::Truncated {
                            path,
                            offset: e.offset,
                            reason: e.reason,
                            hint: "set aof-load-truncated yes to cut the torn tail, or run `aof-check --fix` / `strongbox-recover`".to_string(),
                        });
                        }
                        let cut = match fx.multi.take() {
                            Some(m) => {
                                report.dropped_multi = Some((file.name.clone(), m.offset));
                                m.safe
                            }
                            None => valid_up_to,
                        };
                        cut_file(vfs, &path, &file.name, (cut, len), e.reason, opts, report)?;
                        fr.valid_len = cut;
                        cut_done = true;
                        break;
                    }
                    if opts.skip_corrupt {
                        if fx.multi.take().is_some() {
                            report.warnings.push(format!(
                                "dropped an open MULTI at a damaged range in {}",
                                file.name
                            ));
                        }
                        let to = later_valid.unwrap_or(len);
                        let w = format!(
                            "skipped {} bytes of {} at offsets {valid_up_to}..{to}: {}",
                            to - valid_up_to,
                            file.name,
                            e.reason
                        );
                        tracing::warn!("{w}");
                        report.warnings.push(w);
                        report.skipped.push(Skipped {
                            file: file.name.clone(),
                            from: valid_up_to,
                            to,
                            reason: e.reason,
                        });
                        damaged = true;
                        match later_valid {
                            Some(at) => {
                                reader.resync_at(at);
                                valid_up_to = at;
                                continue;
                            }
                            None => break,
                        }
                    }
                    if tail {
                        return Err(RecoveryError::Truncated {
                            path,
                            offset: e.offset,
                            reason: e.reason,
                            hint: format!(
                                "the truncated file is not the last file; {}",
                                crate::REPAIR_HINT
                            ),
                        });
                    }
                    return Err(RecoveryError::Corrupt {
                        path,
                        offset: e.offset,
                        reason: e.reason,
                    });
                }
            }
        }

        if let Some(m) = fx.multi.take() {
            if !file.last || !opts.load_truncated {
                return Err(RecoveryError::Truncated {
                    path,
                    offset: m.offset,
                    reason: "MULTI without EXEC at end of file".to_string(),
                    hint: crate::REPAIR_HINT.to_string(),
                });
            }
            report.dropped_multi = Some((file.name.clone(), m.offset));
            cut_file(
                vfs,
                &path,
                &file.name,
                (m.safe, len),
                "MULTI without EXEC at end of file (reverted incomplete transaction)".to_string(),
                opts,
                report,
            )?;
            fr.valid_len = m.safe;
            cut_done = true;
        }

        if padded_tail && !cut_done {
            // The file ends in preallocated padding (left by a crash under `always`): the
            // content ends before it. The last file is cut back to its content, so the writer
            // continues there and Redis sees a plain file; no warning, nothing was lost.
            fr.valid_len = valid_up_to;
            if file.last && !opts.read_only {
                vfs.truncate(&path, valid_up_to)
                    .map_err(RecoveryError::io("truncate", &path))?;
                tracing::info!(
                    "{}: removed {} bytes of preallocated padding after offset {valid_up_to}",
                    file.name,
                    len - valid_up_to
                );
            }
        }
        fr.commands = fx.commands;
        let cut_pending = cut_done && report.truncated.as_ref().is_some_and(|t| !t.applied);
        let appendable = file.kind == FileKind::Incr
            && !foreign
            && !damaged
            && !stop
            && !cut_pending
            && start == 0;
        Ok(FileResult {
            report: fr,
            chain: reader.reader().chain(),
            appendable,
            stop,
        })
    })
}

/// Execute a plan: deliver the recovered state to `sink`. Files of at least
/// [`PIPELINE_MIN_BYTES`] are read (checksums, parsing) on a second thread while this one
/// applies their commands.
pub fn execute(
    vfs: &dyn Vfs,
    plan: &Plan,
    opts: &Options,
    sink: &mut dyn Sink,
) -> Result<Outcome, RecoveryError> {
    execute_with_pipeline(vfs, plan, opts, sink, PIPELINE_MIN_BYTES)
}

/// [`execute`], reading files of at least `pipeline_min_bytes` on a second thread (0: every
/// file, `usize::MAX`: none). The outcome is the same either way; tests compare both.
pub fn execute_with_pipeline(
    vfs: &dyn Vfs,
    plan: &Plan,
    opts: &Options,
    sink: &mut dyn Sink,
    pipeline_min_bytes: usize,
) -> Result<Outcome, RecoveryError> {
    let mut report = Report {
        orphans: plan.orphans.clone(),
        ..Report::default()
    };
    for o in plan.orphans_to_warn_about(vfs) {
        report
            .warnings
            .push(format!("ignoring {o}: not listed in the manifest"));
    }
    let mut last: Option<FileResult> = None;
    for file in &plan.files {
        let res = replay_file(vfs, plan, file, opts, sink, &mut report, pipeline_min_bytes)?;
        sink.file_done(res.report.bytes);
        report.commands += res.report.commands;
        report.files.push(res.report.clone());
        let stop = res.stop;
        last = Some(res);
        if stop {
            break;
        }
    }
    let manifest = match plan.source {
        ManifestSource::None => None,
        ManifestSource::Manifest | ManifestSource::Inferred => plan.manifest.clone(),
    };
    let append = match (&last, plan.files.last()) {
        (Some(res), Some(pf))
            if res.appendable
                && plan.source == ManifestSource::Manifest
                && pf.kind == FileKind::Incr
                && res.report.name == pf.name =>
        {
            Some(AppendPoint {
                file_name: pf.name.clone(),
                valid_len: res.report.valid_len,
                chain: res.chain,
            })
        }
        _ => None,
    };
    Ok(Outcome {
        report,
        resume: ResumePoint { manifest, append },
    })
}
