//! Persistence for the server: recovery at start, the log writer as the execution thread's log
//! sink, snapshots (SAVE/BGSAVE), compaction (BGREWRITEAOF, automatic rewrite) and INFO
//! persistence. The file formats and the crash argument are in docs/design.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strongbox_recovery::{self as recovery, Sink};
use strongbox_storage::aof::staging::{self, SwapError};
use strongbox_storage::aof::writer::{AofOptions, FsyncPolicy, LogWriter, Progress, ResumePoint};
use strongbox_storage::aof::{base_file_name, manifest_name, upgrade, Manifest};
use strongbox_storage::fs::{DirLock, RealFs, Vfs};

use crate::client::Client;
use crate::compaction::{self, Finished, Format, Purpose, Snapshot, Target};
use crate::durability::{Gate, LogSink};
use crate::exec::Server;
use crate::persist::Persistence;

/// The storage log writer as the execution thread's sink.
pub struct AofSink {
    pub writer: LogWriter,
    /// The logical position of the writer's position 0 (see [`attach_writer`]).
    base: u64,
    /// Why the log stopped when a replacement writer could not be opened (the gate shows it
    /// failed; this writer is closed and writes nothing more).
    replaced_failed: Option<String>,
}

impl LogSink for AofSink {
    fn submit(&mut self, bytes: &[u8], db_at_start: u32) -> u64 {
        self.base + self.writer.submit(bytes, db_at_start)
    }
    fn shutdown(self: Box<Self>) -> Result<(), String> {
        self.writer.shutdown().map_err(|e| e.to_string())
    }
    fn failure(&self) -> Option<String> {
        self.writer
            .progress()
            .failed
            .or_else(|| self.replaced_failed.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

fn policy(cfg: &crate::config::Config) -> FsyncPolicy {
    match cfg.get("appendfsync") {
        "always" => FsyncPolicy::Always,
        "no" => FsyncPolicy::No,
        _ => FsyncPolicy::EverySec,
    }
}

/// Replays recovered commands and RDB images into the server as a loading client.
struct ReplaySink<'a> {
    srv: &'a mut Server,
    client: Client,
    rdb_keys: u64,
}

impl Sink for ReplaySink<'_> {
    fn command(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        crate::load::replay_command(self.srv, &mut self.client, &argv)?;
        crate::loading::key_delay(self.srv);
        Ok(())
    }
    fn progress(&mut self, offset: u64) -> Result<(), String> {
        crate::loading::progress_in_file(self.srv, offset)
    }
    fn file_done(&mut self, len: u64) {
        crate::loading::file_done(self.srv, len);
    }
    fn load_rdb(&mut self, _path: &Path, bytes: &[u8]) -> Result<u64, String> {
        let (stats, consumed) = crate::snapshot::load_rdb_bytes(
            self.srv,
            bytes,
            true,
            crate::snapshot::LoadMode::Parallel,
        )?;
        self.rdb_keys += stats.keys;
        Ok(consumed)
    }
}

/// A client for replaying the log (no connection behind it; its replies go nowhere). `addr`
/// names it in logs (e.g. "loading", "strongbox-recover").
pub fn loading_client(addr: &str) -> Client {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    Client::new(
        0,
        tx,
        Arc::new(crate::client::ConnShared::default()),
        addr.into(),
        String::new(),
        0,
        false,
    )
}

/// A rewrite waiting for an fsync of the log's tail before it rotates the log (see
/// [`Persist::start_rewrite`]).
pub struct Presync {
    /// The position [`Progress::synced`] must reach.
    target: u64,
    /// When the rewrite was asked for.
    since: Instant,
}

/// How often the execution thread looks at a [`Presync`] (it also looks every round).
pub const PRESYNC_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// A rewrite waits at most this long for its fsync (a stalled disk): then it rotates anyway,
/// and the seal fsyncs what is left.
const PRESYNC_WAIT_MAX: Duration = Duration::from_secs(1);

/// What the persistence layer remembers between timer ticks.
pub struct Persist {
    _lock: Box<dyn DirLock>,
    dir: PathBuf,
    aof_dir: PathBuf,
    filename: String,
    /// Dirty counter at the start of the running BGSAVE.
    bgsave_dirty_at_start: u64,
    /// The epoch of the snapshot BGSAVE started (FLUSHALL abandons that one, not a replica's).
    bgsave_epoch: Option<u32>,
    rewrite_scheduled: bool,
    bgsave_scheduled: bool,
    /// CONFIG SET appendfsync came while a snapshot ran: the log changes policy after it.
    fsync_change_scheduled: bool,
    /// CONFIG SET appendonly came while it could not be applied (yes: a snapshot ran; either:
    /// inside MULTI/EXEC): the timer applies it.
    appendonly_scheduled: bool,
    /// CONFIG SET appendonly yes is under way: the log is written in this staging directory
    /// until the rewrite that gives it a base ends, and then takes the AOF directory's place
    /// ([`Persist::start_aof`]).
    staging: Option<PathBuf>,
    last_rewrite_ok: bool,
    last_bgsave_secs: i64,
    last_rewrite_secs: i64,
    rdb_saves: u64,
    aof_rewrites: u64,
    /// aof_current_size right after the last rewrite (or start), for auto-aof-rewrite-percentage.
    rewrite_base_size: u64,
    pub loaded_keys: u64,
    /// Keys of the last dump.rdb load skipped because their TTL had passed.
    pub loaded_expired: u64,
    pub load_secs: f64,
    last_snapshot_extra: String,
    /// The last finished snapshot's own figures (`strongbox_compaction_*`).
    last_snapshot_stats: Option<compaction::Stats>,
}

impl Persist {
    fn snapshot_figures(&mut self, s: &Snapshot) {
        self.last_snapshot_extra =
            format!("keys={} backlog_chunks_max={}", s.keys_done, s.backlog_max);
        self.last_snapshot_stats = Some(s.stats);
    }

    fn rewrite_done(&mut self, srv: &Server, s: &Snapshot, secs: i64, r: Result<(), String>) {
        self.snapshot_figures(s);
        self.last_rewrite_secs = secs;
        match r {
            Ok(()) => {
                self.last_rewrite_ok = true;
                self.aof_rewrites += 1;
                if let Some(w) = self.writer(srv) {
                    self.rewrite_base_size = w.stats().current_size;
                }
                tracing::info!("Background AOF rewrite finished successfully");
            }
            Err(e) => {
                self.last_rewrite_ok = false;
                tracing::warn!("Background AOF rewrite failed: {e}");
            }
        }
    }

    fn writer<'a>(&self, srv: &'a Server) -> Option<&'a LogWriter> {
        srv.log
            .sink()
            .and_then(|s| s.as_any().downcast_ref::<AofSink>())
            .map(|s| &s.writer)
    }

    /// The directory the log is written in: the AOF directory, or the staging directory
    /// while `CONFIG SET appendonly yes` is under way.
    fn log_dir(&self) -> &Path {
        self.staging.as_deref().unwrap_or(&self.aof_dir)
    }

    /// CONFIG SET appendonly: start or stop the log to match the configuration.
    ///
    /// `yes`, as Redis 7 does it (`startAppendOnly`): from now on every write is logged, and a
    /// rewrite writes the current dataset as the base. Until that rewrite ends, the AOF
    /// directory is left as it was (missing, or an older log that `appendonly no` stopped):
    /// the log is written to a staging directory, `temp-<appenddirname>-<pid>`, a complete
    /// AOF directory of its own (manifest, incr files, then the base). When the rewrite
    /// installs its base, the staging directory takes the AOF directory's place in one
    /// rename (an exchange when there is an old one, then removed). A crash before that
    /// leaves the data directory as it was before the command (the staging directory is
    /// removed at the next start); after it, a complete log. While it runs, a snapshot
    /// (BGSAVE) first ends. Replies wait for the staging log as for any log.
    ///
    /// `no` (Redis's `stopAppendOnly`): everything logged is written and fsynced, a rewrite
    /// in flight is abandoned, and the log stops; its files stay as they are.
    fn apply_appendonly(&mut self, srv: &mut Server) -> Result<(), String> {
        if srv.log.in_unit() {
            // A transaction's effects go to one log, whole: after its EXEC.
            self.appendonly_scheduled = true;
            return Ok(());
        }
        if srv.cfg.get_bool("appendonly") {
            if srv.log.enabled() {
                self.appendonly_scheduled = false;
                return Ok(());
            }
            if srv.snapshot.is_some() || srv.rewrite_presync.is_some() {
                self.appendonly_scheduled = true;
                return Ok(());
            }
            self.appendonly_scheduled = false;
            return self.start_aof(srv);
        }
        self.appendonly_scheduled = false;
        self.stop_aof(srv);
        Ok(())
    }

    /// Stop the log (Redis's `stopAppendOnly`; see [`Self::apply_appendonly`]): everything
    /// logged written and fsynced, a rewrite in flight abandoned, the files left as they are.
    fn stop_aof(&mut self, srv: &mut Server) {
        if !srv.log.enabled() {
            return;
        }
        if srv.rewrite_presync.take().is_some() {
            tracing::info!("Background append only file rewriting abandoned: appendonly no");
        }
        if srv
            .snapshot
            .as_ref()
            .is_some_and(|s| matches!(s.purpose, Purpose::AofBase {}))
        {
            compaction::abort(srv);
            tracing::info!("Background append only file rewriting abandoned: appendonly no");
        }
        self.rewrite_scheduled = false;
        self.fsync_change_scheduled = false;
        // Submits the buffer, writes and fsyncs everything, stops the writer.
        let stopped = srv.log.shutdown();
        let pos = srv.log.pos();
        // Every reply waiting on the log was released by the fsync.
        srv.log.set_sink(None, pos);
        if let Some(dir) = self.staging.take() {
            if let Err(e) = staging::remove_staging(&RealFs, &dir) {
                tracing::warn!("Can't remove {}: {e}", dir.display());
            }
        }
        match stopped {
            Ok(()) => tracing::info!("Append only file stopped (appendonly no)"),
            Err(e) => {
                // Nothing the failed log held is released as written: the gate stays failed
                // (writes refused with MISCONF) until a new log starts (appendonly yes).
                srv.log.gate_tx.send_modify(|g| g.failed = true);
                tracing::warn!("Append only file stopped after an error: {e}");
            }
        }
    }

    /// A replica's full sync replaces the whole dataset, as Redis's replica does around its
    /// load (`stopAppendOnly` before, `startAppendOnly` after): the log stops here, its
    /// directory keeping the dataset from before the sync until [`Self::restart_after_sync`]'s
    /// staging log has its base and takes the directory's place. A crash in between recovers
    /// the old dataset, never the flush without the load.
    pub fn stop_for_sync(&mut self, srv: &mut Server) {
        self.appendonly_scheduled = false;
        self.stop_aof(srv);
    }

    /// See [`Self::stop_for_sync`]: start the log again, in a staging directory, its base
    /// written from the loaded dataset (as `CONFIG SET appendonly yes`).
    pub fn restart_after_sync(&mut self, srv: &mut Server) -> Result<(), String> {
        if srv.log.enabled() {
            return Ok(());
        }
        self.start_aof(srv)
    }

    /// Whether the log is enabled and in place (not waiting for a staging directory's base).
    pub fn log_in_place(&self, srv: &Server) -> bool {
        srv.log.enabled() && self.staging.is_none()
    }

    /// `CONFIG SET appendonly yes` (see [`Self::apply_appendonly`]): open the log in a fresh
    /// staging directory and start the rewrite that writes its base.
    fn start_aof(&mut self, srv: &mut Server) -> Result<(), String> {
        let staging = staging::staging_dir(&self.aof_dir, std::process::id());
        // One left at this name (an abandoned switch, or the old directory of one whose last
        // fsync failed) goes first, once the data directory is durably as it is now.
        staging::remove_staging(&RealFs, &staging)
            .map_err(|e| format!("remove {}: {e}", staging.display()))?;
        srv.log.submit();
        let base = srv.log.pos();
        let vfs: Arc<dyn Vfs> = Arc::new(RealFs);
        attach_writer(
            srv,
            vfs,
            &staging,
            &self.filename,
            ResumePoint::default(),
            base,
        )?;
        self.staging = Some(staging);
        self.rewrite_base_size = 0;
        tracing::info!("Append only file enabled: writing its base");
        if let Err(e) = self.start_rewrite(srv) {
            // Retried by the timer, as a scheduled rewrite.
            tracing::warn!("Can't rewrite append only file in background: {e}");
            self.last_rewrite_ok = false;
            self.rewrite_scheduled = true;
        }
        Ok(())
    }

    /// The rewrite started by `appendonly yes` ended: on success the staging directory
    /// becomes the AOF directory; on failure the rewrite is tried again.
    fn after_staging_rewrite(&mut self, srv: &mut Server, ok: bool) {
        let Some(staging) = self.staging.clone() else {
            return;
        };
        if !ok {
            self.rewrite_scheduled = true;
            return;
        }
        let closed = match close_writer(srv) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("Append only file failed before it took its place: {e}");
                return;
            }
        };
        // The switch (storage's `staging::swap_in`, the procedure the crash simulation
        // runs): `Ok` only once it is durable, so the writer reopens there only then.
        let (dir, moved) = match staging::swap_in(&RealFs, &staging, &self.aof_dir) {
            Ok(done) => {
                if done.two_step {
                    tracing::warn!(
                        "{}: no atomic directory exchange on this file system; replaced it in two steps",
                        self.aof_dir.display()
                    );
                }
                for w in &done.warnings {
                    tracing::warn!("{w}");
                }
                (self.aof_dir.clone(), true)
            }
            Err(SwapError::NotMoved(e)) => {
                tracing::warn!(
                    "Can't move {} to {}: {e}; the log stays in the staging directory and the rewrite is retried",
                    staging.display(),
                    self.aof_dir.display()
                );
                self.rewrite_scheduled = true;
                (staging.clone(), false)
            }
            Err(e @ SwapError::NotDurable(_)) => {
                // The new log holds the AOF directory's name, but a power loss may still bring
                // the old one back: acknowledging writes into it could promise what a crash
                // takes back. The log is latched failed (writes refused with MISCONF) as for
                // any failed fsync; the next start (or `appendonly yes`) settles the
                // directories once the data directory can be fsynced.
                let msg = format!("switching to {}: {e}", self.aof_dir.display());
                tracing::warn!("{msg}");
                latch_failed(srv, msg);
                self.staging = None;
                return;
            }
        };
        if reopen_writer(srv, &dir, &self.filename, closed).is_ok() {
            if let Some(w) = self.writer(srv) {
                self.rewrite_base_size = w.stats().current_size;
            }
        }
        if moved {
            self.staging = None;
            tracing::info!(
                "Append only file {} is complete and in use",
                self.aof_dir.display()
            );
        }
    }

    /// BGREWRITEAOF: rotate the log and start the snapshot that becomes the new base.
    ///
    /// The execution thread does not wait for the rotation: it asks the log writer for it at
    /// this point of the log and goes on. Everything submitted before is in the files the new
    /// base replaces; everything after goes to the new incr file, and its replies wait (through
    /// the durability gate) for the writer, which writes it only once the new incr file is
    /// durably in the manifest.
    ///
    /// Sealing the active file fsyncs its unsynced bytes, and replies wait for that. Under
    /// everysec that can be up to a second of writes (milliseconds of fsync), so when there is
    /// such a tail the rewrite first asks for an fsync of it, while commands and replies go on
    /// (`Server::rewrite_presync`, polled by [`Persistence::poll`]), and rotates only once
    /// it is done: the seal then fsyncs only what came in meanwhile. The rewrite counts as in
    /// progress from the request on.
    pub fn start_rewrite(&mut self, srv: &mut Server) -> Result<(), String> {
        if srv.snapshot.is_some() {
            self.rewrite_scheduled = true;
            return Ok(());
        }
        if !srv.log.enabled() {
            return self.start_base_only_rewrite(srv);
        }
        if srv.rewrite_presync.is_some() {
            return Ok(());
        }
        let t0 = Instant::now();
        self.rewrite_scheduled = false;
        // The log's checks (disabled, failed: no fsync is asked for then) are
        // `rotate_and_snapshot`'s.
        srv.log.submit();
        if let Some(target) = self.writer(srv).and_then(|w| w.request_sync_soon()) {
            srv.rewrite_presync = Some(Presync { target, since: t0 });
            return Ok(());
        }
        self.rotate_and_snapshot(srv, t0, Duration::ZERO)
    }

    /// BGREWRITEAOF with `appendonly no`, as Redis 7: the AOF directory is replaced by one
    /// holding only a base of the current dataset (seq one past the old base's), no incr file;
    /// the old files go with the old directory. The base is written into a staging directory
    /// with its manifest, which then takes the AOF directory's place (storage's
    /// `staging::swap_in`, the switch `appendonly yes` makes; a crash before it leaves the old
    /// directory, and the staging one is removed at the next start).
    fn start_base_only_rewrite(&mut self, srv: &mut Server) -> Result<(), String> {
        let t0 = Instant::now();
        self.rewrite_scheduled = false;
        let base_seq = RealFs
            .read(&self.aof_dir.join(manifest_name(&self.filename)))
            .ok()
            .and_then(|b| Manifest::parse(&b).ok())
            .map_or(1, |m| m.next_base_seq());
        let staging = staging::staging_dir(&self.aof_dir, std::process::id());
        staging::remove_staging(&RealFs, &staging)
            .and_then(|()| RealFs.create_dir_all(&staging))
            .map_err(|e| {
                format!(
                    "Can't open or create append-only dir {}: {e}",
                    staging.display()
                )
            })?;
        let (preamble, file_format) = base_format(srv);
        let temp = staging.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
        Snapshot::start(
            srv,
            Target::AofBaseOnly {
                staging,
                aof_dir: self.aof_dir.clone(),
                filename: self.filename.clone(),
                base_seq,
                preamble,
            },
            temp,
            file_format,
        )?;
        if let Some(s) = srv.snapshot.as_mut() {
            s.note_start(t0);
        }
        tracing::info!("Background append only file rewriting started");
        Ok(())
    }

    /// The rotation and the snapshot start; `t0` is when this execution-thread work began,
    /// `presync` how long the rewrite waited for its fsync before.
    fn rotate_and_snapshot(
        &mut self,
        srv: &mut Server,
        t0: Instant,
        presync: Duration,
    ) -> Result<(), String> {
        srv.log.submit();
        let Some(writer) = self.writer(srv) else {
            return Err("AOF is disabled".into());
        };
        if let Some(f) = writer.progress().failed {
            return Err(f);
        }
        writer.reset_window();
        writer.write_here(false);
        let ticket = writer.request_rotate_for_rewrite();
        let installer = writer.installer();
        let temp = self
            .log_dir()
            .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
        let (preamble, file_format) = base_format(srv);
        Snapshot::start(
            srv,
            Target::AofBase {
                ticket,
                installer,
                aof_dir: self.log_dir().to_path_buf(),
                filename: self.filename.clone(),
                preamble,
            },
            temp,
            file_format,
        )?;
        if let Some(s) = srv.snapshot.as_mut() {
            s.note_start(t0);
            s.stats.presync_us = presync.as_micros() as u64;
        }
        tracing::info!("Background append only file rewriting started");
        Ok(())
    }

    /// CONFIG SET appendfsync: the log goes on under the configured policy. Everything
    /// logged so far is written and fsynced, the writer stops, and a writer with the new policy
    /// continues the same incr file (same manifest, batch chain unbroken, logical positions
    /// going on from the old end, so waiting replies and the gate are unaffected). Blocking
    /// for one fsync, on the execution thread, as Redis's switch (it fsyncs on its own
    /// thread). While a snapshot or its presync runs (its installer works on the current
    /// writer) the switch waits for it to end ([`Persistence::cron`]).
    fn apply_fsync_policy(&mut self, srv: &mut Server) -> Result<(), String> {
        let Some(w) = self.writer(srv) else {
            self.fsync_change_scheduled = false;
            return Ok(());
        };
        if w.policy() == policy(&srv.cfg) {
            self.fsync_change_scheduled = false;
            return Ok(());
        }
        if srv.log.in_unit() {
            // A transaction's effects go to one log, whole: after its EXEC.
            self.fsync_change_scheduled = true;
            return Ok(());
        }
        self.fsync_change_scheduled = false;
        // A rewrite holds on to the writer (its rotation and installer; a BGSAVE does not):
        // it is abandoned and started again on the new writer, so the policy applies at once,
        // as in Redis. Abandoning leaves the manifest as the rotation made it (complete).
        let rewriting = srv
            .snapshot
            .as_ref()
            .is_some_and(|s| matches!(s.purpose, Purpose::AofBase {}));
        if rewriting || srv.rewrite_presync.is_some() {
            srv.rewrite_presync = None;
            compaction::abort(srv);
            self.rewrite_scheduled = true;
            tracing::info!("Background append only file rewriting restarted: appendfsync changed");
        }
        // A failed log stays as it is: writes are refused until the server restarts.
        let Some(closed) = close_writer(srv)? else {
            return Ok(());
        };
        let dir = self.log_dir().to_path_buf();
        reopen_writer(srv, &dir, &self.filename, closed)?;
        tracing::info!(
            "appendfsync is now {} (the log continues in the same file)",
            srv.cfg.get("appendfsync")
        );
        Ok(())
    }

    /// BGSAVE.
    pub fn start_bgsave(&mut self, srv: &mut Server) -> Result<(), String> {
        let t0 = Instant::now();
        let final_path = self.dir.join(srv.cfg.get("dbfilename"));
        let temp = self.dir.join(format!("temp-{}.rdb", std::process::id()));
        let opts = crate::snapshot::writer_options(srv, false);
        if let Some(w) = self.writer(srv) {
            w.reset_window();
            w.write_here(false);
        }
        Snapshot::start(srv, Target::Dump { final_path }, temp, Format::Rdb(opts))?;
        if let Some(s) = srv.snapshot.as_mut() {
            s.note_start(t0);
            self.bgsave_epoch = Some(s.epoch);
        }
        self.bgsave_dirty_at_start = srv.dirty;
        self.bgsave_scheduled = false;
        tracing::info!("Background saving started");
        Ok(())
    }

    pub fn schedule_bgsave(&mut self) {
        self.bgsave_scheduled = true;
    }

    pub fn schedule_rewrite(&mut self) {
        self.rewrite_scheduled = true;
    }

    pub fn rewrite_scheduled(&self) -> bool {
        self.rewrite_scheduled
    }
}

/// The log writer's figures while a snapshot ran (its window starts with the snapshot); the
/// rotation and installation times only for a rewrite (`rewrite`), once it is done.
fn log_window(
    st: &mut compaction::Stats,
    ls: &strongbox_storage::aof::writer::LogStats,
    rewrite: bool,
) {
    st.log_max_wait_us = ls.window_max_wait_us;
    st.log_max_postpone_us = ls.window_max_postpone_us;
    st.log_max_write_us = ls.window_max_write_us;
    if rewrite {
        st.log_rotate_us = ls.last_rotate_us;
        st.log_install_us = ls.last_install_us;
        st.log_seal_bytes = ls.last_seal_bytes;
    }
}

/// The format of a rewrite's base: RDB with `aof-use-rdb-preamble yes`, else RESP commands.
fn base_format(srv: &Server) -> (bool, Format) {
    if srv.cfg.get_bool("aof-use-rdb-preamble") {
        (
            true,
            Format::Rdb(crate::snapshot::writer_options(srv, true)),
        )
    } else {
        (false, Format::Resp)
    }
}

/// See [`Persist::start_base_only_rewrite`]; on the snapshot thread, `temp` complete and
/// fsynced in `staging`.
pub(crate) fn install_base_only(
    temp: &Path,
    staging: &Path,
    aof_dir: &Path,
    filename: &str,
    base_name: &str,
    base_seq: u64,
) -> Result<(), String> {
    install_file(temp, &staging.join(base_name))?;
    upgrade::write_base_only_manifest(&RealFs, staging, filename, base_name, base_seq)
        .map_err(|e| format!("write the manifest in {}: {e}", staging.display()))?;
    let done = staging::swap_in(&RealFs, staging, aof_dir).map_err(|e| e.to_string())?;
    for w in &done.warnings {
        tracing::warn!("{w}");
    }
    Ok(())
}

/// Rename a complete, fsynced file into place and make the rename durable (the storage
/// crate's one helper for it).
pub(crate) fn install_file(from: &Path, to: &Path) -> Result<(), String> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (Some(dir), Some(from_name), Some(to_name)) = (to.parent(), name(from), name(to)) else {
        return Err(format!(
            "bad snapshot paths {} → {}",
            from.display(),
            to.display()
        ));
    };
    if from.parent() != Some(dir) {
        return Err(format!(
            "{} and {} are not in one directory",
            from.display(),
            to.display()
        ));
    }
    strongbox_storage::fs::install_file(&RealFs, dir, &from_name, &to_name)
        .map_err(|e| format!("install {} → {}: {e}", from.display(), to.display()))
}

impl Persistence for Persist {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn fsync_policy_changed(&mut self, srv: &mut Server) -> Result<(), String> {
        self.apply_fsync_policy(srv)
    }

    fn flushall(&mut self, srv: &mut Server) {
        let ours = srv.snapshot.as_ref().is_some_and(|s| {
            self.bgsave_epoch == Some(s.epoch) && matches!(s.purpose, Purpose::Dump {})
        });
        if ours {
            compaction::abort(srv);
            self.bgsave_epoch = None;
            tracing::warn!(
                "Background saving terminated: FLUSHALL emptied the dataset it was saving"
            );
        }
    }

    fn appendonly_changed(&mut self, srv: &mut Server) -> Result<(), String> {
        self.apply_appendonly(srv)
    }

    fn shutdown_blocker(&self) -> Option<&'static str> {
        self.staging
            .is_some()
            .then_some("Writing initial AOF, can't exit.")
    }

    fn poll(&mut self, srv: &mut Server) {
        let Some(p) = &srv.rewrite_presync else {
            return;
        };
        let ready = self.writer(srv).is_none_or(|w| {
            let pr = w.progress();
            pr.failed.is_some() || pr.synced >= p.target || p.since.elapsed() >= PRESYNC_WAIT_MAX
        });
        if !ready {
            return;
        }
        let waited = p.since.elapsed();
        srv.rewrite_presync = None;
        if let Err(e) = self.rotate_and_snapshot(srv, Instant::now(), waited) {
            tracing::warn!("Can't rewrite append only file in background: {e}");
            self.last_rewrite_ok = false;
            // `appendonly yes` keeps trying until its log has a base.
            self.rewrite_scheduled |= self.staging.is_some();
        }
    }

    fn cron(&mut self, srv: &mut Server) {
        if let Some(w) = self.writer(srv) {
            // Batches are written on the execution thread again once no snapshot runs (see
            // `LogWriter::write_here`; turned off where snapshots start).
            w.write_here(srv.snapshot.is_none());
        }
        // CONFIG SET appendonly / appendfsync that had to wait (each checks what it waits for).
        if self.appendonly_scheduled {
            if let Err(e) = self.apply_appendonly(srv) {
                tracing::warn!("Can't apply appendonly: {e}");
            }
        }
        if self.fsync_change_scheduled {
            if let Err(e) = self.apply_fsync_policy(srv) {
                tracing::warn!("Can't change appendfsync: {e}");
            }
        }
        if srv.snapshot.is_some() || srv.rewrite_presync.is_some() {
            return;
        }
        if self.rewrite_scheduled && srv.log.enabled() {
            if let Err(e) = self.start_rewrite(srv) {
                tracing::warn!("Can't rewrite append only file in background: {e}");
                self.last_rewrite_ok = false;
                // `appendonly yes` keeps trying until its log has a base.
                self.rewrite_scheduled = self.staging.is_some();
            }
            return;
        }
        if self.bgsave_scheduled {
            if let Err(e) = self.start_bgsave(srv) {
                tracing::warn!("Can't save in background: {e}");
                srv.bgsave_failed = true;
                self.bgsave_scheduled = false;
            }
            return;
        }
        // save <seconds> <changes> rules.
        let now_s = crate::util::now_ms() / 1000;
        let rules: Vec<i64> = srv
            .cfg
            .get("save")
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        for pair in rules.chunks(2) {
            if let [secs, changes] = pair {
                if srv.dirty >= *changes as u64 && now_s - srv.lastsave_s >= *secs && srv.dirty > 0
                {
                    tracing::info!("{changes} changes in {secs} seconds. Saving...");
                    if let Err(e) = self.start_bgsave(srv) {
                        tracing::warn!("Can't save in background: {e}");
                        srv.bgsave_failed = true;
                    }
                    return;
                }
            }
        }
        // Automatic log compaction.
        let pct = srv.cfg.get_i64("auto-aof-rewrite-percentage");
        let min = srv.cfg.get_i64("auto-aof-rewrite-min-size").max(0) as u64;
        if pct > 0 {
            if let Some(w) = self.writer(srv) {
                let size = w.stats().current_size;
                let base = self.rewrite_base_size.max(1);
                if size > min && (size.saturating_sub(base)) * 100 / base >= pct as u64 {
                    tracing::info!(
                        "Starting automatic rewriting of AOF on {}% growth",
                        (size.saturating_sub(base)) * 100 / base
                    );
                    if let Err(e) = self.start_rewrite(srv) {
                        tracing::warn!("Can't rewrite append only file in background: {e}");
                        self.last_rewrite_ok = false;
                    }
                }
            }
        }
    }

    fn snapshot_done(&mut self, srv: &mut Server) {
        let t0 = Instant::now();
        let Some(mut s) = srv.snapshot.take() else {
            return;
        };
        let secs = s.started.elapsed().as_secs() as i64;
        // The snapshot thread has written, fsynced and installed the file (for a rewrite:
        // renamed the base and switched the manifest, while the log writer went on).
        let result = compaction::join(&mut s);
        if result.is_err() {
            let _ = std::fs::remove_file(&s.temp_path);
        }
        if let Some(w) = self.writer(srv) {
            let rewrite = matches!(s.purpose, Purpose::AofBase {});
            log_window(&mut s.stats, &w.stats(), rewrite);
        }
        s.stats.finish_us = t0.elapsed().as_micros() as u64;
        match s.purpose {
            Purpose::Dump {} => {
                self.snapshot_figures(&s);
                self.last_bgsave_secs = secs;
                match result {
                    Ok(_) => {
                        srv.dirty = srv.dirty.saturating_sub(self.bgsave_dirty_at_start);
                        srv.lastsave_s = crate::util::now_ms() / 1000;
                        srv.bgsave_failed = false;
                        self.rdb_saves += 1;
                        tracing::info!("Background saving terminated with success");
                    }
                    Err(e) => {
                        srv.bgsave_failed = true;
                        tracing::warn!("Background saving error: {e}");
                    }
                }
            }
            Purpose::AofBase {} => {
                let r = match result {
                    Ok(Finished::AofBase { base_name }) => {
                        tracing::debug!("New AOF base {base_name}");
                        Ok(())
                    }
                    Ok(Finished::Dump) => Err("snapshot installed as a dump".to_string()),
                    Err(e) => Err(e),
                };
                let ok = r.is_ok();
                self.rewrite_done(srv, &s, secs, r);
                if self.staging.is_some() {
                    self.after_staging_rewrite(srv, ok);
                }
            }
        }
    }

    fn save(&mut self, srv: &mut Server) -> Result<(), String> {
        crate::snapshot::save_to_dbfilename(srv)?;
        srv.bgsave_failed = false;
        srv.dirty = 0;
        srv.lastsave_s = crate::util::now_ms() / 1000;
        self.rdb_saves += 1;
        Ok(())
    }

    fn info(&self, srv: &Server) -> Vec<(String, String)> {
        let mut v = crate::persist::default_info(srv);
        let running = srv.snapshot.as_ref();
        let bgsave = running.is_some_and(|s| matches!(s.purpose, Purpose::Dump { .. }));
        let rewrite = running.is_some_and(|s| matches!(s.purpose, Purpose::AofBase { .. }))
            || srv.rewrite_presync.is_some();
        let set = |v: &mut Vec<(String, String)>, k: &str, val: String| {
            if let Some(e) = v.iter_mut().find(|(n, _)| n == k) {
                e.1 = val;
            } else {
                v.push((k.to_string(), val));
            }
        };
        set(&mut v, "rdb_bgsave_in_progress", (bgsave as u8).to_string());
        set(
            &mut v,
            "rdb_last_bgsave_status",
            if srv.bgsave_failed { "err" } else { "ok" }.into(),
        );
        set(
            &mut v,
            "rdb_last_bgsave_time_sec",
            self.last_bgsave_secs.to_string(),
        );
        set(&mut v, "rdb_saves", self.rdb_saves.to_string());
        set(
            &mut v,
            "rdb_last_load_keys_expired",
            self.loaded_expired.to_string(),
        );
        set(
            &mut v,
            "rdb_last_load_keys_loaded",
            self.loaded_keys.to_string(),
        );
        if let Some(s) = running {
            set(
                &mut v,
                "current_save_keys_processed",
                s.keys_done.to_string(),
            );
            set(&mut v, "current_save_keys_total", s.keys_total.to_string());
            let t = s.started.elapsed().as_secs().to_string();
            if bgsave {
                set(&mut v, "rdb_current_bgsave_time_sec", t.clone());
            }
            if rewrite {
                set(&mut v, "aof_current_rewrite_time_sec", t);
            }
        }
        set(
            &mut v,
            "aof_rewrite_in_progress",
            (rewrite as u8).to_string(),
        );
        set(
            &mut v,
            "aof_rewrite_scheduled",
            // (appendonly yes waiting for a BGSAVE counts: Redis schedules its rewrite then)
            ((self.rewrite_scheduled || self.appendonly_scheduled) as u8).to_string(),
        );
        set(
            &mut v,
            "aof_last_rewrite_time_sec",
            self.last_rewrite_secs.to_string(),
        );
        set(
            &mut v,
            "aof_last_bgrewrite_status",
            if self.last_rewrite_ok { "ok" } else { "err" }.into(),
        );
        set(&mut v, "aof_rewrites", self.aof_rewrites.to_string());
        if let Some(w) = self.writer(srv) {
            let st = w.stats();
            v.push(("aof_current_size".into(), st.current_size.to_string()));
            v.push(("aof_base_size".into(), st.base_size.to_string()));
            v.push(("aof_pending_rewrite".into(), "0".into()));
            v.push(("aof_buffer_length".into(), st.buffer_length.to_string()));
            v.push(("aof_pending_bio_fsync".into(), "0".into()));
            v.push(("aof_delayed_fsync".into(), st.delayed_fsyncs.to_string()));
            v.push(("strongbox_aof_segments".into(), st.segments.to_string()));
            v.push(("strongbox_aof_fsyncs".into(), st.fsyncs.to_string()));
            v.push((
                "strongbox_aof_last_fsync_us".into(),
                st.last_fsync_us.to_string(),
            ));
            v.push(("strongbox_aof_batches".into(), st.batches.to_string()));
            v.push((
                "strongbox_aof_inline_batches".into(),
                st.inline_batches.to_string(),
            ));
            v.push((
                "strongbox_aof_direct_batches".into(),
                st.direct_batches.to_string(),
            ));
            let avg = st.batch_bytes_total.checked_div(st.batches).unwrap_or(0);
            v.push(("strongbox_aof_batch_bytes_avg".into(), avg.to_string()));
            v.push((
                "strongbox_aof_batch_bytes_max".into(),
                st.batch_bytes_max.to_string(),
            ));
            v.push(("strongbox_aof_gathers".into(), st.gathers.to_string()));
            v.push((
                "strongbox_aof_gather_timeouts".into(),
                st.gather_timeouts.to_string(),
            ));
            // Logical positions, as the gate counts them (they go on across writers).
            let base = srv
                .log
                .sink()
                .and_then(|s| s.as_any().downcast_ref::<AofSink>())
                .map_or(0, |s| s.base);
            v.push((
                "strongbox_aof_written".into(),
                (base + st.written).to_string(),
            ));
            v.push((
                "strongbox_aof_synced".into(),
                (base + st.synced).to_string(),
            ));
            v.push((
                "strongbox_aof_last_rotate_us".into(),
                st.last_rotate_us.to_string(),
            ));
            v.push((
                "strongbox_aof_last_install_us".into(),
                st.last_install_us.to_string(),
            ));
        }
        // The running snapshot's figures so far, else the last one's.
        let running_stats = running.map(|s| {
            let mut st = s.stats;
            if let Some(w) = self.writer(srv) {
                log_window(&mut st, &w.stats(), false);
            }
            st
        });
        if let Some(st) = running_stats.or(self.last_snapshot_stats) {
            for (k, val) in st.info_fields() {
                v.push((k.into(), val.to_string()));
            }
        }
        if !self.last_snapshot_extra.is_empty() {
            v.push((
                "strongbox_last_snapshot".into(),
                self.last_snapshot_extra.clone(),
            ));
        }
        v
    }
}

/// CONFIG SET hook: settings the running log writer follows at once (`aof-timestamp-enabled`).
pub fn config_changed(srv: &Server) {
    if let Some(w) = srv
        .log
        .sink()
        .and_then(|s| s.as_any().downcast_ref::<AofSink>())
    {
        w.writer
            .set_timestamps(srv.cfg.get_bool("aof-timestamp-enabled"));
    }
}

/// Load the data set and attach the log writer (server start).
pub fn open(srv: &mut Server) -> Result<(), String> {
    let vfs: Arc<dyn Vfs> = Arc::new(RealFs);
    let dir = srv.cfg.dir();
    let lock = vfs.lock_dir(&dir).map_err(|e| {
        format!(
            "Can't lock the data directory {}: {e} (is another strongbox-server using it?)",
            dir.display()
        )
    })?;
    let filename = srv.cfg.get("appendfilename").to_string();
    let aof_dir = dir.join(srv.cfg.get("appenddirname"));
    let dump_path = dir.join(srv.cfg.get("dbfilename"));
    let start = Instant::now();
    let mut persist = Persist {
        _lock: lock,
        dir: dir.clone(),
        aof_dir: aof_dir.clone(),
        filename: filename.clone(),
        bgsave_dirty_at_start: 0,
        bgsave_epoch: None,
        rewrite_scheduled: false,
        bgsave_scheduled: false,
        fsync_change_scheduled: false,
        appendonly_scheduled: false,
        staging: None,
        last_rewrite_ok: true,
        last_bgsave_secs: -1,
        last_rewrite_secs: -1,
        rdb_saves: 0,
        aof_rewrites: 0,
        rewrite_base_size: 0,
        loaded_keys: 0,
        loaded_expired: 0,
        load_secs: 0.0,
        last_snapshot_extra: String::new(),
        last_snapshot_stats: None,
    };
    // What a crash left of a switch to a new AOF directory (appendonly yes, a replica's
    // sync): an old directory set aside is put back, the data directory fsynced, staging
    // directories removed (storage's `staging::settle_at_start`, as the crash simulation).
    let aof_dir_name = srv.cfg.get("appenddirname").to_string();
    let settled = staging::settle_at_start(vfs.as_ref(), &dir, &aof_dir_name).map_err(|e| {
        format!(
            "Can't settle the append only directory {}: {e}",
            aof_dir.display()
        )
    })?;
    if let Some(back) = &settled.restored {
        tracing::warn!(
            "Put {} back as {}: a crash interrupted the switch to a new append only file",
            back.display(),
            aof_dir.display()
        );
    }
    for p in &settled.removed {
        tracing::info!(
            "Removed {}: an append only file a crash left unfinished",
            p.display()
        );
    }
    for w in &settled.warnings {
        tracing::warn!("{w}");
    }
    if srv.cfg.get_bool("appendonly") {
        upgrade_old_style(vfs.as_ref(), &dir, &aof_dir, &filename)?;
        let opts = recovery::Options {
            load_truncated: srv.cfg.get_bool("aof-load-truncated"),
            ..recovery::Options::default()
        };
        let obs =
            recovery::observe(vfs.as_ref(), &aof_dir, &filename).map_err(|e| e.to_string())?;
        let plan = recovery::plan(&obs, false).map_err(|e| e.to_string())?;
        let total = if plan.is_empty() {
            vfs.len(&dump_path).unwrap_or(0)
        } else {
            plan.files
                .iter()
                .map(|f| vfs.len(&plan.dir.join(&f.name)).unwrap_or(0))
                .sum()
        };
        if let Some(l) = srv.loading.as_mut() {
            l.total_bytes = total;
        }
        let resume = if plan.is_empty() && vfs.exists(&dump_path).unwrap_or(false) {
            // Migration: an existing dump.rdb becomes the base of a new AOF directory.
            import_dump(srv, vfs.as_ref(), &dump_path, &aof_dir, &filename)?
        } else if plan.is_empty() {
            // As Redis 7 (aofOpenIfNeededOnServerStart): an empty dataset still gets a base, so
            // the directory starts as base 1 + incr 1 and the first rewrite makes base 2.
            let rdb = srv.cfg.get_bool("aof-use-rdb-preamble");
            let bytes = if rdb {
                crate::snapshot::write_rdb(srv, Vec::new(), true)?
            } else {
                Vec::new()
            };
            let base = base_file_name(&filename, 1, rdb);
            let resume = install_first_base(vfs.as_ref(), &aof_dir, &filename, &base, &bytes)?;
            tracing::info!("Creating AOF base file {base} on server start");
            resume
        } else {
            let mut sink = ReplaySink {
                srv,
                client: loading_client("loading"),
                rdb_keys: 0,
            };
            // Nobody is served while the log replays: let the tables grow in one go.
            sink.srv.dbs.iter_mut().for_each(|d| d.set_loading(true));
            let outcome = recovery::execute(vfs.as_ref(), &plan, &opts, &mut sink);
            sink.srv.dbs.iter_mut().for_each(|d| d.set_loading(false));
            let outcome = outcome.map_err(|e| e.to_string())?;
            for w in &outcome.report.warnings {
                tracing::warn!("{w}");
            }
            if outcome.report.commands > 0 || sink.rdb_keys > 0 {
                tracing::info!(
                    "Loaded the append only file: {} keys from the base, {} commands replayed",
                    sink.rdb_keys,
                    outcome.report.commands
                );
            }
            outcome.resume
        };
        attach_writer(srv, vfs.clone(), &aof_dir, &filename, resume, 0)?;
        persist.rewrite_base_size = persist.writer(srv).map_or(0, |w| w.stats().current_size);
    } else if vfs.exists(&dump_path).unwrap_or(false) {
        let bytes = std::fs::read(&dump_path)
            .map_err(|e| format!("Can't open {}: {e}", dump_path.display()))?;
        if let Some(l) = srv.loading.as_mut() {
            l.total_bytes = bytes.len() as u64;
        }
        // A replica keeps the keys already expired (its master's DELs will come), a master
        // leaves them out, as Redis's rdbLoad does (`iAmMaster()`).
        let replica = !srv.cfg.get("replicaof").trim().is_empty();
        let (stats, _) = crate::snapshot::load_rdb_bytes(
            srv,
            &bytes,
            replica,
            crate::snapshot::LoadMode::Parallel,
        )
        .map_err(|e| format!("Fatal error loading the DB {}: {e}", dump_path.display()))?;
        persist.loaded_keys = stats.keys;
        persist.loaded_expired = stats.expired_skipped;
        // As Redis, valid only with all three fields.
        if let (Some(id), Some(off), Some(db)) =
            (stats.repl_id, stats.repl_offset, stats.repl_stream_db)
        {
            srv.master.restored = Some((id, off, db));
            srv.master.restored_expired = stats.expired_keys;
        }
    }
    srv.dirty = 0;
    crate::alloc::release_free_memory();
    persist.load_secs = start.elapsed().as_secs_f64();
    persist.loaded_keys = persist
        .loaded_keys
        .max(srv.dbs.iter().map(|d| d.len() as u64).sum());
    srv.persistence = Box::new(persist);
    Ok(())
}

/// DEBUG LOADAOF: empty the dataset and load it back from the AOF directory as at start, the
/// log written up to its end first. The recovery is read-only (nothing is truncated) and the
/// running log writer goes on appending where it was.
pub fn reload_from_files(srv: &mut Server) -> Result<(), String> {
    // With `appendonly no` the AOF directory is loaded as it is (one BGREWRITEAOF wrote,
    // or one the log left when it stopped), as Redis's DEBUG LOADAOF does.
    let in_place = srv.with_persistence(|p, srv| {
        p.as_any_mut()
            .downcast_mut::<Persist>()
            .is_some_and(|pp| !srv.log.enabled() || pp.log_in_place(srv))
    });
    if !in_place {
        return Err("the append only file's base is still being written".into());
    }
    if srv.log.enabled() && !srv.log.wait_written(Duration::from_secs(10)) {
        return Err("the append only file could not be written".into());
    }
    let vfs = RealFs;
    let dir = srv.cfg.dir();
    let aof_dir = dir.join(srv.cfg.get("appenddirname"));
    let filename = srv.cfg.get("appendfilename").to_string();
    let opts = recovery::Options {
        load_truncated: true,
        read_only: true,
        ..recovery::Options::default()
    };
    let obs = recovery::observe(&vfs, &aof_dir, &filename).map_err(|e| e.to_string())?;
    let plan = recovery::plan(&obs, false).map_err(|e| e.to_string())?;
    if let Some(l) = srv.loading.as_mut() {
        l.total_bytes = plan
            .files
            .iter()
            .map(|f| vfs.len(&plan.dir.join(&f.name)).unwrap_or(0))
            .sum();
    }
    for d in srv.dbs.iter_mut() {
        d.clear();
    }
    crate::cmd::function::clear(srv);
    let mut sink = ReplaySink {
        srv,
        client: loading_client("loading"),
        rdb_keys: 0,
    };
    let outcome = recovery::execute(&vfs, &plan, &opts, &mut sink).map_err(|e| e.to_string())?;
    for w in &outcome.report.warnings {
        tracing::warn!("{w}");
    }
    srv.dirty = 0;
    Ok(())
}

/// What a closed writer leaves for the next one: where the log continues, its INFO totals,
/// and the logical position the next one starts at.
struct Closed {
    resume: ResumePoint,
    counters: strongbox_storage::aof::writer::LogStats,
    base: u64,
}

/// Submit what the execution thread holds and close the log writer (everything written and
/// fsynced, see `LogWriter::close`); `None` when there is no log. The closed writer stays as
/// the sink until [`reopen_writer`] replaces it.
fn close_writer(srv: &mut Server) -> Result<Option<Closed>, String> {
    srv.log.submit();
    let base = srv.log.pos();
    let Some(sink) = srv
        .log
        .sink_mut()
        .and_then(|s| s.as_any_mut().downcast_mut::<AofSink>())
    else {
        return Ok(None);
    };
    let resume = sink.writer.close().map_err(|e| e.to_string())?;
    Ok(Some(Closed {
        resume,
        counters: sink.writer.stats(),
        base,
    }))
}

/// Open a writer on `dir` where a closed one ended ([`close_writer`]), with the configured
/// policy, INFO totals carried over. If it cannot be opened, the failure is latched on the
/// gate so that writes are refused (MISCONF) rather than waiting for a log nobody writes.
fn reopen_writer(srv: &mut Server, dir: &Path, filename: &str, c: Closed) -> Result<(), String> {
    let vfs: Arc<dyn Vfs> = Arc::new(RealFs);
    match attach_writer(srv, vfs, dir, filename, c.resume, c.base) {
        Ok(()) => {
            if let Some(w) = srv
                .log
                .sink()
                .and_then(|s| s.as_any().downcast_ref::<AofSink>())
            {
                w.writer.continue_counters(&c.counters);
            }
            Ok(())
        }
        Err(e) => {
            let msg = format!("reopening the append only file: {e}");
            tracing::warn!("{msg}");
            latch_failed(srv, msg.clone());
            Err(msg)
        }
    }
}

/// The closed writer stays the sink, failed with `msg`, and the gate latches the failure, so
/// that writes are refused (MISCONF) rather than waiting for a log nobody writes.
fn latch_failed(srv: &mut Server, msg: String) {
    if let Some(sink) = srv
        .log
        .sink_mut()
        .and_then(|s| s.as_any_mut().downcast_mut::<AofSink>())
    {
        sink.replaced_failed = Some(msg);
    }
    srv.log.gate_tx.send_modify(|g| g.failed = true);
}

/// Open the log writer on `aof_dir` at `resume` with the configured fsync policy and make it
/// the execution thread's log sink, its logical positions starting at `base` (0 at start; the
/// old log's end when a writer replaces another, so positions never go back).
fn attach_writer(
    srv: &mut Server,
    vfs: Arc<dyn Vfs>,
    aof_dir: &Path,
    filename: &str,
    resume: ResumePoint,
    base: u64,
) -> Result<(), String> {
    let relay = srv.log.relay.clone();
    // `set_sink` below starts the next generation of the gate: this writer's.
    let generation = relay.generation() + 1;
    let pol = policy(&srv.cfg);
    let always = pol == FsyncPolicy::Always;
    let aof_opts = AofOptions {
        dir: aof_dir.to_path_buf(),
        filename: filename.to_string(),
        fsync: pol,
        segment_bytes_max: srv.cfg.get_i64("aof-segment-size").max(1) as u64,
        timestamp_enabled: srv.cfg.get_bool("aof-timestamp-enabled"),
    };
    let writer = LogWriter::open(
        vfs,
        aof_opts,
        resume,
        Box::new(move |p: &Progress| {
            relay.post(
                generation,
                Gate {
                    written: base + p.written,
                    synced: base + p.synced,
                    always,
                    failed: p.failed.is_some(),
                },
            );
        }),
    )
    .map_err(|e| e.to_string())?;
    srv.log.set_sink(
        Some(Box::new(AofSink {
            writer,
            base,
            replaced_failed: None,
        })),
        base,
    );
    srv.log.gate_tx.send_modify(|g| g.always = always);
    Ok(())
}

/// Redis 7's upgrade of a Redis 6 style AOF (`<dir>/<appendfilename>`) into the AOF
/// directory (storage's `aof::upgrade`, crash-tested there).
fn upgrade_old_style(
    vfs: &dyn Vfs,
    dir: &Path,
    aof_dir: &Path,
    filename: &str,
) -> Result<(), String> {
    if upgrade::upgrade_old_style(vfs, dir, aof_dir, filename).map_err(|e| e.to_string())? {
        tracing::info!(
            "Successfully migrated an old-style AOF into the AOF directory {}.",
            aof_dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
    }
    Ok(())
}

/// appendonly yes, no AOF directory, an existing dump.rdb: load it and make a copy of it the
/// base of a new AOF directory (the Redis → Strongbox migration step).
fn import_dump(
    srv: &mut Server,
    vfs: &dyn Vfs,
    dump_path: &Path,
    aof_dir: &Path,
    filename: &str,
) -> Result<ResumePoint, String> {
    let bytes = vfs
        .read(dump_path)
        .map_err(|e| format!("Can't read {}: {e}", dump_path.display()))?;
    let (stats, _) =
        crate::snapshot::load_rdb_bytes(srv, &bytes, false, crate::snapshot::LoadMode::Parallel)
            .map_err(|e| format!("Fatal error loading the DB {}: {e}", dump_path.display()))?;
    tracing::info!(
        "Imported {} keys from {} as the base of a new AOF directory",
        stats.keys,
        dump_path.display()
    );
    let base = base_file_name(filename, 1, true);
    install_first_base(vfs, aof_dir, filename, &base, &bytes)
}

/// A new AOF directory whose manifest lists `base` (seq 1, holding `bytes`) and no incr file
/// yet (the writer opens incr 1).
fn install_first_base(
    vfs: &dyn Vfs,
    aof_dir: &Path,
    filename: &str,
    base: &str,
    bytes: &[u8],
) -> Result<ResumePoint, String> {
    vfs.create_dir_all(aof_dir)
        .map_err(|e| format!("create {}: {e}", aof_dir.display()))?;
    if let Some(parent) = aof_dir.parent() {
        vfs.sync_dir(parent).map_err(|e| e.to_string())?;
    }
    let base = base.to_string();
    strongbox_storage::fs::write_file_atomic(vfs, aof_dir, &base, bytes)
        .map_err(|e| format!("write {base}: {e}"))?;
    let manifest = upgrade::write_base_only_manifest(vfs, aof_dir, filename, &base, 1)
        .map_err(|e| format!("write manifest: {e}"))?;
    Ok(ResumePoint {
        manifest: Some(manifest),
        append: None,
    })
}
