//! The persistence hook of the execution thread: the AOF writer, RDB snapshots and compaction
//! plug in here (see `aof.rs`). The execution thread calls it from its timer and at shutdown.

use crate::exec::{Server, ShutdownMode};

/// A shutdown signal was received and the shutdown has not failed since (Redis's
/// `shutdown_asap` as its signal handler sees it): a second SIGINT exits at once.
pub static SHUTDOWN_ASAP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Why writes are refused for the disk's sake (Redis's `writeCommandsDeniedByDiskError`).
pub enum DiskError {
    /// The last background save failed, save points are set and
    /// `stop-writes-on-bgsave-error` is yes.
    Rdb,
    /// The log writer failed (a write or an fsync): the error it reported.
    Aof(String),
}

impl DiskError {
    /// The reply to a write command (or PING) refused for it.
    pub fn command_error(&self) -> String {
        match self {
            DiskError::Rdb => "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.".into(),
            DiskError::Aof(e) => format!("MISCONF Errors writing to the AOF file: {e}"),
        }
    }

    /// The reply to a script or function that may write (flags without `no-writes`).
    pub fn script_error(&self) -> String {
        match self {
            DiskError::Rdb => "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts.".into(),
            DiskError::Aof(e) => format!("MISCONF Redis is configured to persist data to AOF, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts. AOF error: {e}"),
        }
    }
}

/// Whether writes must be refused because the data cannot be persisted, and why: a failed
/// background save (only with save points and `stop-writes-on-bgsave-error yes`), else a
/// failed log. The first is checked first, as Redis does.
pub fn disk_error(srv: &Server) -> Option<DiskError> {
    if srv.bgsave_failed
        && srv.cfg.get_bool("stop-writes-on-bgsave-error")
        && !srv.cfg.get("save").trim().is_empty()
    {
        return Some(DiskError::Rdb);
    }
    srv.log.failed().map(DiskError::Aof)
}

pub trait Persistence: Send {
    /// Downcast hook (the persistence commands reach the AOF layer through it).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Timer (hz times a second): save rules, automatic rewrite, progress of background work.
    fn cron(&mut self, _srv: &mut Server) {}
    /// Every round while `Server::rewrite_presync` is set: start the rewrite once it may.
    fn poll(&mut self, _srv: &mut Server) {}
    /// Fields for INFO persistence (name, value), in Redis's order.
    fn info(&self, srv: &Server) -> Vec<(String, String)> {
        default_info(srv)
    }
    /// The running snapshot's file is complete: install it (rename, manifest switch).
    fn snapshot_done(&mut self, srv: &mut Server) {
        crate::compaction::abort(srv);
    }
    /// CONFIG SET changed `appendfsync`: make the log follow it.
    fn fsync_policy_changed(&mut self, _srv: &mut Server) -> Result<(), String> {
        Ok(())
    }
    /// CONFIG SET changed `appendonly`: start or stop the log.
    fn appendonly_changed(&mut self, _srv: &mut Server) -> Result<(), String> {
        Err("the append only file is not available".into())
    }
    /// Why the server must not exit now, if it must not (Redis's "Writing initial AOF, can't
    /// exit.": `appendonly yes` was set at runtime and its log has no base yet, so the AOF
    /// directory does not hold the dataset).
    fn shutdown_blocker(&self) -> Option<&'static str> {
        None
    }
    /// FLUSHALL ran: a BGSAVE in progress is abandoned (Redis's killRDBChild), as its file
    /// would hold the dataset FLUSHALL just removed.
    fn flushall(&mut self, _srv: &mut Server) {}
    /// Save a snapshot (SAVE, SHUTDOWN SAVE). Blocking.
    fn save(&mut self, _srv: &mut Server) -> Result<(), String> {
        Err("snapshots are not available".into())
    }
}

pub struct NoPersistence;
impl Persistence for NoPersistence {
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

pub fn default_info(srv: &Server) -> Vec<(String, String)> {
    let f = |k: &str, v: String| (k.to_string(), v);
    vec![
        f("loading", u8::from(srv.loading.is_some()).to_string()),
        f("async_loading", "0".into()),
        f("current_cow_peak", "0".into()),
        f("current_cow_size", "0".into()),
        f("current_cow_size_age", "0".into()),
        f("current_fork_perc", "0.00".into()),
        f("current_save_keys_processed", "0".into()),
        f("current_save_keys_total", "0".into()),
        f("rdb_changes_since_last_save", srv.dirty.to_string()),
        f("rdb_bgsave_in_progress", "0".into()),
        f("rdb_last_save_time", srv.lastsave_s.to_string()),
        f("rdb_last_bgsave_status", "ok".into()),
        f("rdb_last_bgsave_time_sec", "-1".into()),
        f("rdb_current_bgsave_time_sec", "-1".into()),
        f("rdb_saves", "0".into()),
        f("rdb_last_cow_size", "0".into()),
        f("rdb_last_load_keys_expired", "0".into()),
        f("rdb_last_load_keys_loaded", "0".into()),
        f(
            "aof_enabled",
            if srv.log.enabled() { "1" } else { "0" }.into(),
        ),
        f("aof_rewrite_in_progress", "0".into()),
        f("aof_rewrite_scheduled", "0".into()),
        f("aof_last_rewrite_time_sec", "-1".into()),
        f("aof_current_rewrite_time_sec", "-1".into()),
        f("aof_last_bgrewrite_status", "ok".into()),
        f("aof_rewrites", "0".into()),
        f("aof_rewrites_consecutive_failures", "0".into()),
        f(
            "aof_last_write_status",
            if srv.log.failed().is_some() {
                "err"
            } else {
                "ok"
            }
            .into(),
        ),
        f("aof_last_cow_size", "0".into()),
        f("module_fork_in_progress", "0".into()),
        f("module_fork_last_cow_size", "0".into()),
    ]
}

/// The answer to the clients whose SHUTDOWN did not happen.
pub const SHUTDOWN_FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";

/// SIGTERM / SIGINT received: the shutdown starts at the next timer tick
/// ([`start_signal_shutdown`]), unless SHUTDOWN ABORT comes first.
pub fn signal_shutdown(srv: &mut Server, sigint: bool) {
    let name = if sigint { "SIGINT" } else { "SIGTERM" };
    tracing::warn!("Received {name} scheduling shutdown...");
    if srv.shutdown.is_none() {
        srv.shutdown_signal = Some(sigint);
    }
}

/// The shutdown a signal asked for, with the flags `shutdown-on-sigterm` / `shutdown-on-sigint`
/// give (`default`, or any of `save`, `nosave`, `now`, `force`). One already under way goes
/// on as it is.
pub fn start_signal_shutdown(srv: &mut Server, sigint: bool) {
    if srv.shutdown.is_some() {
        return;
    }
    let flags = srv
        .cfg
        .get(if sigint {
            "shutdown-on-sigint"
        } else {
            "shutdown-on-sigterm"
        })
        .to_ascii_lowercase();
    let mut mode = ShutdownMode::Default;
    for f in flags.split_whitespace() {
        match f {
            "save" => mode = ShutdownMode::Save,
            "nosave" => mode = ShutdownMode::NoSave,
            "now" => srv.shutdown_now = true,
            "force" => srv.shutdown_force = true,
            _ => {}
        }
    }
    srv.shutdown = Some(mode);
}

/// At the end of every execution round while a shutdown is asked for (SHUTDOWN, a signal).
/// As Redis 7 (`prepareForShutdown`): with replicas behind the stream, and unless NOW or
/// `shutdown-timeout 0`, writes are held (a pause no CLIENT UNPAUSE lifts), the replicas are
/// asked for their offsets, and the shutdown waits — until they all acknowledge the whole
/// stream or `shutdown-timeout` seconds pass — so that a replica promoted after it has every
/// write. Then it finishes. Returns true when the server must exit now.
pub fn shutdown_step(srv: &mut Server) -> bool {
    let Some(mode) = srv.shutdown else {
        return false;
    };
    let now = crate::util::now_ms();
    match srv.shutdown_deadline_ms {
        None => {
            let timeout = srv.cfg.get_i64("shutdown-timeout");
            if !srv.shutdown_now && timeout != 0 && !crate::master::replicas_in_sync(srv) {
                srv.shutdown_deadline_ms = Some(now.saturating_add(timeout.saturating_mul(1000)));
                if !srv.pause.holds_writes(now) {
                    crate::master::request_acks(srv);
                }
                srv.pause.hold_for_shutdown(true);
                tracing::info!("Waiting for replicas before shutting down.");
                return false;
            }
        }
        Some(deadline) => {
            if now < deadline && !crate::master::replicas_in_sync(srv) {
                return false;
            }
        }
    }
    crate::master::log_replicas_at_shutdown(srv);
    if finish_shutdown(srv, mode) {
        return true;
    }
    tracing::warn!("Errors trying to shut down the server. Check the logs for more information.");
    cancel_shutdown(srv);
    false
}

/// SHUTDOWN ABORT: stop a shutdown that waits for its replicas (or is about to start).
/// False if none is under way.
pub fn abort_shutdown(srv: &mut Server) -> bool {
    if srv.shutdown.is_some() {
        cancel_shutdown(srv);
    } else if srv.shutdown_signal.take().is_some() {
        SHUTDOWN_ASAP.store(false, std::sync::atomic::Ordering::SeqCst);
    } else {
        return false;
    }
    tracing::info!("Shutdown manually aborted.");
    true
}

/// The shutdown did not happen (refused, or aborted): writes flow again and the clients that
/// asked for it are told.
fn cancel_shutdown(srv: &mut Server) {
    srv.shutdown = None;
    srv.shutdown_force = false;
    srv.shutdown_now = false;
    srv.shutdown_deadline_ms = None;
    srv.pause.hold_for_shutdown(false);
    SHUTDOWN_ASAP.store(false, std::sync::atomic::Ordering::SeqCst);
    for id in std::mem::take(&mut srv.shutdown_clients) {
        let Some(mut c) = srv.clients.remove(&id) else {
            continue;
        };
        if c.blocked.as_ref().is_some_and(|b| b.argv[0] == "SHUTDOWN") {
            crate::exec::unblock_with(srv, &mut c, None);
        }
        srv.clients.insert(id, c);
    }
}

/// Finish a shutdown: flush and fsync the log, save if asked. Returns false if the shutdown was
/// refused (a SAVE failed), in which case the server keeps running.
pub fn finish_shutdown(srv: &mut Server, mode: ShutdownMode) -> bool {
    if let Some(why) = srv.persistence.shutdown_blocker() {
        if !srv.shutdown_force {
            tracing::warn!("{why}");
            crate::supervise::notify(&format!("STATUS={why}\n"));
            return false;
        }
        tracing::warn!("Writing initial AOF. Exit anyway.");
    }
    crate::supervise::notify("STOPPING=1\n");
    // As Redis: a background save or rewrite is stopped first and its temp file removed (a
    // rewrite's new incr file is already in the manifest; the old base and incr files still
    // hold everything, so nothing is lost).
    if let Some(s) = &srv.snapshot {
        match s.purpose {
            crate::compaction::Purpose::Dump {} => {
                tracing::warn!("There is a child saving an .rdb. Killing it!")
            }
            crate::compaction::Purpose::AofBase {} => {
                tracing::warn!("There is a child rewriting the AOF. Killing it!")
            }
        }
        crate::master::cancel_sync(srv);
        crate::compaction::abort(srv);
    }
    if srv.rewrite_presync.take().is_some() {
        tracing::warn!("A background AOF rewrite was about to start: not starting it.");
    }
    let save = match mode {
        ShutdownMode::Save => true,
        ShutdownMode::NoSave => false,
        // As Redis: save points configured → save on shutdown (whether or not AOF is on).
        ShutdownMode::Default => !srv.cfg.get("save").is_empty(),
    };
    if save {
        // As Redis: a failed save refuses the shutdown (whatever asked for it) unless forced.
        if let Err(e) = srv.with_persistence(|p, srv| p.save(srv)) {
            if !srv.shutdown_force {
                tracing::warn!("Error trying to save the DB, can't exit: {e}");
                return false;
            }
            tracing::warn!("Error trying to save the DB. Exit anyway: {e}");
        }
    }
    if let Err(e) = srv.log.shutdown() {
        tracing::warn!("Error flushing the append only file at shutdown: {e}");
    }
    if let Some(l) = srv.listeners.as_mut() {
        l.close();
    }
    let unix = srv.cfg.get("unixsocket");
    if !unix.is_empty() {
        tracing::info!("Removing the unix socket file.");
        if let Err(e) = std::fs::remove_file(unix) {
            tracing::warn!("Error removing the unix socket file: {e}");
        }
    }
    tracing::info!("Strongbox is now ready to exit, bye bye...");
    true
}
