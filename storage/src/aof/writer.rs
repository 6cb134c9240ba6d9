//! The log writer: a background thread that turns submitted command bytes into checksummed
//! batches in the active incr file, fsyncs them per [`FsyncPolicy`], and reports progress.
//!
//! Commit protocol for one batch (docs/design-aof.md has the crash argument per step):
//! 1. take everything pending (group commit: many submits, one batch);
//! 2. one `write` of `#SB ...\r\n` + payload (short writes looped);
//! 3. publish `written` (the bytes are in the OS: a process crash keeps them);
//! 4. per policy, fdatasync and publish `synced`;
//! 5. if the file passed `segment_bytes_max`: fsync it (sealed), create the next incr file,
//!    switch the manifest atomically.
//!
//! A failed write or fsync latches: nothing is retried and nothing further is published.

use super::batch::{
    encode_batch, fill_padding, pad_filler, padding, timestamp_line, Chain, PAD_ALIGN,
    PAD_END_RESIDUE,
};
use super::manifest::{FileType, Manifest, ManifestEntry};
use super::{incr_file_name, manifest_name, AofError};
use crate::fs::{
    create_fresh, write_all, write_all_at, write_file_atomic, Vfs, VfsFile, DIRECT_ALIGN,
    TEMP_FILE_PREFIX,
};
use crate::resp::encode_command;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the log is made durable. Each variant states what a reply gated on
/// [`Progress::written`] / [`Progress::synced`] guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `appendfsync always`: every batch is fdatasync'ed before `synced` covers it. A write
    /// whose reply waited for `synced` survives power loss. Concurrent writes share one fsync.
    Always,
    /// `appendfsync everysec`: batches are written promptly (a process crash loses nothing
    /// already `written`), and fsynced about once a second by a separate thread, so a power
    /// loss loses at most about a second (two, if the disk stalls: once an fsync has been in
    /// flight for [`EVERYSEC_POSTPONE_AFTER_MS`], writes are postponed up to 2 s, then done
    /// anyway and counted as a delayed fsync).
    EverySec,
    /// `appendfsync no`: written, never fsynced by us (the OS flushes when it likes); only
    /// sealing a full segment fsyncs it. A power loss can lose any unflushed suffix.
    No,
}

/// Configuration of the log.
#[derive(Debug, Clone)]
pub struct AofOptions {
    /// The AOF directory (`<dir>/<appenddirname>`).
    pub dir: PathBuf,
    /// `appendfilename`, e.g. "appendonly.aof".
    pub filename: String,
    /// Fsync policy.
    pub fsync: FsyncPolicy,
    /// Seal the active incr file and start the next once it is at least this big.
    pub segment_bytes_max: u64,
    /// Write `#TS:<secs>` annotations (`aof-timestamp-enabled`).
    pub timestamp_enabled: bool,
}

/// Durability progress, in logical positions (submitted payload bytes since open).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Everything before this position has been written to the file.
    pub written: u64,
    /// Everything before this position has been fsynced.
    pub synced: u64,
    /// Set once a write or fsync failed; nothing is published after that.
    pub failed: Option<String>,
}

/// Where to continue appending: the last incr file, which recovery found to be ours and
/// intact up to `valid_len` (and truncated there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendPoint {
    /// Incr file name (must be the last incr entry of the manifest).
    pub file_name: String,
    /// Its valid length (the file must have exactly this length).
    pub valid_len: u64,
    /// The batch chain at that point.
    pub chain: Chain,
}

/// What recovery hands to [`LogWriter::open`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// The current manifest; `None` when there is no AOF directory or manifest yet (the
    /// writer creates the directory and a manifest).
    pub manifest: Option<Manifest>,
    /// Continue the last incr file; `None` starts a new incr file.
    pub append: Option<AppendPoint>,
}

/// Returned by [`LogWriter::rotate_for_rewrite`]: the files a new base would replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteTicket {
    /// The base and incr files that the new base's contents cover.
    pub replaced: Vec<String>,
    /// The incr file opened for writes that happen after the snapshot point.
    pub new_incr: String,
    /// The seq the new base file should carry (see [`super::base_file_name`]).
    pub base_seq: u64,
}

/// Counters for INFO persistence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Incr files in the manifest.
    pub segments: usize,
    /// Size of the base plus all incr files (`aof_current_size`).
    pub current_size: u64,
    /// Size of the base file (`aof_base_size`).
    pub base_size: u64,
    /// Submitted bytes not yet written (`aof_buffer_length`).
    pub buffer_length: usize,
    /// Duration of the last fsync, in microseconds.
    pub last_fsync_us: u64,
    /// Number of fsyncs of the log.
    pub fsyncs: u64,
    /// Batches written.
    pub batches: u64,
    /// Payload bytes written in batches.
    pub batch_bytes_total: u64,
    /// Largest batch payload.
    pub batch_bytes_max: u64,
    /// Batches written on the submitting thread (see [`LogWriter::submit`]).
    pub inline_batches: u64,
    /// `always`: batches written by a direct write (docs/design-aof.md §3.4); the others
    /// went through the page cache.
    pub direct_batches: u64,
    /// `always`: batches that started at the gathering deadline with fewer bytes than the
    /// batch before them (the group did not come back in time; see `Gather`).
    pub gather_timeouts: u64,
    /// `always`: batches that waited for the group the batch before them released (see
    /// `gather_pays`); the others started at once.
    pub gathers: u64,
    /// Writes done while an fsync was still in flight after the 2 s postponement
    /// (`aof_delayed_fsync`).
    pub delayed_fsyncs: u64,
    /// How long the writer thread spent on the last rewrite rotation (seal, new incr file,
    /// manifest), in microseconds: log writes wait behind it.
    pub last_rotate_us: u64,
    /// Unsynced bytes of the file the last rotation sealed: what its seal fsync covered.
    pub last_seal_bytes: u64,
    /// How long the writer thread spent on the last base installation (manifest switch,
    /// removal of the replaced files), in microseconds.
    pub last_install_us: u64,
    /// Since the last [`LogWriter::reset_window`]: the longest time submitted bytes waited
    /// until they were reported `written` (what a reply waits for under everysec/no: queueing
    /// behind a rotation, a postponement or a slow `write`), in microseconds.
    pub window_max_wait_us: u64,
    /// Since the last reset: the longest postponement of writes behind an in-flight fsync, µs.
    pub window_max_postpone_us: u64,
    /// Since the last reset: the longest `write` of one batch, µs.
    pub window_max_write_us: u64,
    /// The first I/O failure, if any (`aof_last_write_status:err`).
    pub last_error: Option<String>,
    /// Logical positions.
    pub submitted: u64,
    /// See [`Progress::written`].
    pub written: u64,
    /// See [`Progress::synced`].
    pub synced: u64,
}

/// Time source; injectable so tests are deterministic.
pub trait Clock: Send + Sync {
    /// Milliseconds on a monotonic clock.
    fn monotonic_ms(&self) -> u64;
    /// Wall-clock Unix seconds (for `#TS:`).
    fn unix_secs(&self) -> i64;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn unix_secs(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// Everysec: fsync at most this often.
pub const EVERYSEC_INTERVAL_MS: u64 = 1000;
/// Everysec: postpone writes at most this long while an fsync is in flight (Redis's rule).
pub const EVERYSEC_POSTPONE_MS_MAX: u64 = 2000;
/// Everysec: writes go on while an fsync is in flight (a `write` does not wait for an
/// `fdatasync` of the same file), and are postponed only once it has been in flight this long.
/// Replies wait for `written`: postponing behind every fsync would hold every reply for the
/// fsync's duration once a second (several ms while a snapshot loads the disk). Acknowledged
/// bytes not yet covered by an fsync stay within about a second plus this.
pub const EVERYSEC_POSTPONE_AFTER_MS: u64 = 100;
/// Idle wake-up period of the writer thread.
const TICK_MS: u64 = 20;
/// More than a batch's annotation, `#TS` line and SELECT add to its bytes: a batch written on
/// the submitting thread must not fill the segment (the rotation stays on the writer thread).
const INLINE_BATCH_OVERHEAD_MAX: u64 = 256;
/// A batch written on the submitting thread that took this long sends the next ones through
/// the writer thread for [`INLINE_PAUSE_MS`].
const INLINE_WRITE_SLOW: Duration = Duration::from_millis(1);
const INLINE_PAUSE_MS: u64 = 1000;
/// `always`: the active file is padded this far ahead of its content at a time (see
/// [`Appender::extend_padding`]).
const PAD_CHUNK: u64 = 1 << 20;
/// `always`: after a batch, padding is extended once less than this is left.
const PAD_LOW: u64 = 256 << 10;

type ProgressFn = Box<dyn Fn(&Progress) + Send>;

enum Control {
    Rotate(mpsc::SyncSender<Result<RewriteTicket, AofError>>),
}

/// The manifest and file sizes, shared by the writer thread (segment rotation) and an
/// [`Installer`] (manifest switch at the end of a rewrite, on the caller's thread).
struct Files {
    manifest: Manifest,
    base_size: u64,
    sealed_size: u64,
}

/// A control queued behind the bytes submitted before it: the writer writes `before` (into
/// the file they belong to) and then runs the control, so bytes submitted after the control
/// was queued are never written before it.
struct Queued {
    before: Vec<u8>,
    before_db: u32,
    /// When the oldest of `before` was submitted.
    since: Option<Instant>,
    control: Control,
}

/// The answer to a control requested without waiting ([`LogWriter::request_rotate_for_rewrite`]).
pub struct Pending<T> {
    rx: mpsc::Receiver<Result<T, AofError>>,
}

impl<T> Pending<T> {
    /// The answer if the writer has given it (never blocks).
    pub fn try_take(&self) -> Option<Result<T, AofError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(AofError::Failed(
                "the AOF writer thread exited".to_string(),
            ))),
        }
    }

    /// Wait for the answer.
    pub fn wait(self) -> Result<T, AofError> {
        self.rx
            .recv()
            .map_err(|_| AofError::Failed("the AOF writer thread exited".to_string()))?
    }
}

struct SyncRequest {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    upto: u64,
}

#[derive(Default)]
struct Inner {
    pending: Vec<u8>,
    pending_db: u32,
    /// When the oldest byte of `pending` was submitted.
    pending_since: Option<Instant>,
    submitted: u64,
    shutdown: bool,
    holds: u32,
    busy: bool,
    controls: VecDeque<Queued>,
    failed: Option<String>,
    sync_request: Option<SyncRequest>,
    sync_in_progress: bool,
    sync_shutdown: bool,
    /// Highest position an everysec fsync was requested for.
    sync_requested: u64,
    /// Everysec: a position someone wants fsynced without waiting for the interval
    /// ([`LogWriter::request_sync_soon`]); an fsync is due while `sync_requested` is below it.
    sync_wanted: u64,
    /// The writer's last fsync time, mirrored for [`LogWriter::hold`].
    last_fsync_ms_shadow: u64,
    /// The next incr file, created (and its directory entry fsynced) ahead of the rotation
    /// that will list it, so the rotation itself only writes the manifest.
    spare: Option<Spare>,
    /// A thread is creating the spare.
    preparing: bool,
    /// Deterministic mode: the fsync thread leaves the request alone until the writer lets it
    /// run (when the writer has no job left).
    sync_held: bool,
    /// Deterministic mode: seeded choices (SplitMix64 state).
    det_rng: u64,
    /// The writer thread is waiting on `wake` and wants to hear of submitted bytes once this
    /// many are pending (1 when idle; the gathering target under `always`); 0 = not waiting
    /// for submissions (busy, or waiting for something else: `submit` does not wake it).
    wake_at_pending: usize,
    /// Batches are not written on the submitting thread before this time (monotonic ms).
    inline_paused_until_ms: u64,
    /// [`LogWriter::write_here`]`(false)`: every batch goes through the writer thread.
    no_writes_here: bool,
    stats: LogStats,
}

/// A pre-created, empty incr file not (yet) in the manifest: recovery ignores it as an orphan
/// (and the next writer re-creates it with O_TRUNC) if the process dies before it is listed.
struct Spare {
    seq: u64,
    name: String,
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    /// The manifest that adds this file, already written to the temp manifest path and
    /// fsynced (`Shared::prepare_manifest`), if no other manifest write came since.
    manifest: Option<Vec<u8>>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the writer thread.
    wake: Condvar,
    /// Wakes the everysec sync thread.
    sync_wake: Condvar,
    /// Wakes [`LogWriter::hold`] waiters.
    idle: Condvar,
    progress: Mutex<(Progress, ProgressFn)>,
    clock: Arc<dyn Clock>,
    policy: FsyncPolicy,
    /// `#TS:` annotations (`aof-timestamp-enabled`, changeable while the log runs).
    timestamps: std::sync::atomic::AtomicBool,
    /// Held only for short reads and updates, never across I/O.
    files: Mutex<Files>,
    /// Held while a manifest is computed, written and adopted: orders the writer's segment
    /// rotations and an installer's switch.
    manifest_io: Mutex<()>,
    /// Everysec: a rotation renamed a manifest into place without fsyncing the directory (off
    /// the replies' path); whoever next reports something `synced` fsyncs it first, holding
    /// this lock (so nobody reports `synced` while another thread's directory fsync runs).
    dir_sync_pending: Mutex<bool>,
    vfs: Arc<dyn Vfs>,
    opts: AofOptions,
    /// See [`LogWriter::open_deterministic`]: work handed to a helper thread is awaited
    /// where it is handed off.
    deterministic: bool,
    /// Tests: runs on the writer thread between its everysec "fsync due" check and the
    /// re-check under the appender lock (the window another thread's write can fall into).
    #[cfg(test)]
    hook_before_sync_recheck: Mutex<Option<Box<dyn FnMut() + Send>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn manifest_io(&self) -> MutexGuard<'_, ()> {
        self.manifest_io.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir_sync_pending(&self) -> MutexGuard<'_, bool> {
        self.dir_sync_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The directory fsync a rotation deferred, if any: call before reporting `synced`.
    fn sync_pending_dir(&self) -> Result<(), String> {
        let mut pending = self.dir_sync_pending();
        if *pending {
            self.vfs
                .sync_dir(&self.opts.dir)
                .map_err(|e| io_msg("fsync directory", &self.opts.dir, &e))?;
            *pending = false;
        }
        Ok(())
    }

    /// Merge into the published progress (monotonic) and call the callback.
    fn publish(&self, written: Option<u64>, synced: Option<u64>, failed: Option<&str>) {
        let mut g = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let (progress, callback) = &mut *g;
        if progress.failed.is_some() {
            return;
        }
        if let Some(w) = written {
            progress.written = progress.written.max(w);
        }
        if let Some(s) = synced {
            progress.synced = progress.synced.max(s);
        }
        if let Some(f) = failed {
            progress.failed = Some(f.to_string());
        }
        callback(progress);
    }

    fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Latch a failure: record it, publish it, wake everyone.
    fn fail(&self, msg: String) {
        {
            let mut g = self.lock();
            if g.failed.is_none() {
                g.failed = Some(msg.clone());
                g.stats.last_error = Some(msg.clone());
            }
        }
        self.publish(None, None, Some(&msg));
        self.idle.notify_all();
        self.wake.notify_all();
    }

    /// Create the incr file `seq` ahead of time on a short-lived thread (never on the writer's
    /// critical path). A failure leaves no spare: the rotation then creates the file itself.
    fn prepare_spare(self: &Arc<Self>, seq: u64) {
        {
            let mut g = self.lock();
            if g.preparing || g.failed.is_some() || g.shutdown {
                return;
            }
            g.preparing = true;
        }
        let sh = self.clone();
        let spawned = std::thread::Builder::new()
            .name("aof-prepare".to_string())
            .spawn(move || {
                let name = incr_file_name(&sh.opts.filename, seq);
                let path = sh.opts.dir.join(&name);
                // A panic below the file system layer must not leave `preparing` set: the
                // rotation and `hold()` wait for it to clear.
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    create_empty_incr(sh.vfs.as_ref(), &sh.opts.dir, &path)
                }))
                .unwrap_or_else(|_| {
                    Err(std::io::Error::other("creating a spare incr file panicked"))
                });
                let mut g = sh.lock();
                g.preparing = false;
                if let Ok(file) = made {
                    g.spare = Some(Spare {
                        seq,
                        name,
                        path,
                        file,
                        manifest: None,
                    });
                }
                drop(g);
                // Only if no manifest write is under way (a rotation waiting for this thread
                // holds the lock: it writes its manifest itself).
                if let Ok(io) = sh.manifest_io.try_lock() {
                    sh.prepare_manifest();
                    drop(io);
                }
                sh.idle.notify_all();
                sh.wake.notify_all();
            });
        match spawned {
            Ok(handle) if self.deterministic => {
                if handle.join().is_err() {
                    self.lock().preparing = false;
                }
            }
            Ok(_) => {}
            Err(_) => self.lock().preparing = false,
        }
    }

    /// Wait until no spare is being created, then take the spare if it is incr file `seq`
    /// (another one is removed: an orphan).
    fn take_spare(&self, seq: u64) -> Option<Spare> {
        let spare = self.take_any_spare()?;
        if spare.seq == seq {
            return Some(spare);
        }
        let _ = self.vfs.remove_file(&spare.path);
        None
    }

    /// Wait until no spare is being created, then take the spare, if any.
    fn take_any_spare(&self) -> Option<Spare> {
        let mut g = self.lock();
        while g.preparing {
            g = self
                .idle
                .wait_timeout(g, Duration::from_millis(TICK_MS))
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        }
        g.spare.take()
    }

    /// Write and fsync, at the temp manifest path, the manifest the next rotation will switch
    /// to (the current one plus the spare), so that the rotation only renames it. The caller
    /// holds `manifest_io`; every other manifest write goes through the same temp path, so it
    /// forgets the prepared manifest first ([`Shared::forget_prepared_manifest`]).
    fn prepare_manifest(&self) {
        let Some(seq) = self.lock().spare.as_ref().map(|sp| sp.seq) else {
            return;
        };
        let mut next = self.files().manifest.clone();
        if next.next_incr_seq() != seq {
            return;
        }
        next.incr.push(ManifestEntry {
            name: incr_file_name(&self.opts.filename, seq),
            seq,
            kind: FileType::Incr,
        });
        let text = next.format();
        let temp = temp_manifest_path(&self.opts);
        let written = create_fresh(self.vfs.as_ref(), &temp)
            .and_then(|f| write_all(f.as_ref(), &text).and_then(|()| f.sync_data()));
        if written.is_ok() {
            if let Some(sp) = self.lock().spare.as_mut().filter(|sp| sp.seq == seq) {
                sp.manifest = Some(text);
            }
        }
    }

    /// Another manifest write is about to use the temp manifest path (caller holds
    /// `manifest_io`).
    fn forget_prepared_manifest(&self) {
        if let Some(sp) = self.lock().spare.as_mut() {
            sp.manifest = None;
        }
    }

    fn fsync_due(&self, g: &Inner, written: u64, last_fsync_ms: u64) -> bool {
        self.policy == FsyncPolicy::EverySec
            && g.failed.is_none()
            && written > g.sync_requested
            && !g.sync_in_progress
            && g.sync_request.is_none()
            && (g.sync_wanted > g.sync_requested
                || self.clock.monotonic_ms().saturating_sub(last_fsync_ms) >= EVERYSEC_INTERVAL_MS)
    }
}

struct Active {
    name: String,
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    /// Bytes of content (batches); the next batch is written here.
    size: u64,
    /// The file's length: past `size` it holds padding (`always`), which is durable.
    pad_end: u64,
    chain: Chain,
    /// `always`: how batches reach the file (§3.4 of docs/design-aof.md).
    direct: Direct,
    /// `always`, direct writes: the content from the last [`DIRECT_ALIGN`] boundary to `size`,
    /// which the next direct write rewrites in front of its batch; `None` until read back
    /// (a file the writer resumed).
    tail: Option<Vec<u8>>,
}

/// The active file's handle for direct writes (`appendfsync always`).
enum Direct {
    /// Not opened yet: the file's first batch opens it.
    Unopened,
    /// Batches go through the page cache: the file system has no direct I/O, or the disk
    /// refused the alignment.
    Off,
    On(Arc<dyn VfsFile>),
}

impl Active {
    /// A new, empty incr file.
    fn empty(name: String, path: PathBuf, file: Arc<dyn VfsFile>) -> Active {
        Active {
            name,
            path,
            file,
            size: 0,
            pad_end: 0,
            chain: Chain::default(),
            direct: Direct::Unopened,
            tail: Some(Vec::new()),
        }
    }
}

/// The state that writing to the log needs: the active file and the positions. The writer
/// thread locks it for each job; the execution thread locks it to write a batch itself when
/// the writer thread is idle ([`LogWriter::submit`]). Lock order: this before `Shared::inner`.
struct Appender {
    shared: Arc<Shared>,
    vfs: Arc<dyn Vfs>,
    opts: AofOptions,
    active: Active,
    need_select: bool,
    last_ts: Option<i64>,
    written: u64,
    synced: u64,
    last_fsync_ms: u64,
    /// `always`: no more direct writes (the file system or the disk refused one).
    direct_off: bool,
    /// `always`: the buffer direct writes are aligned in, kept between batches.
    direct_buf: Vec<u8>,
}

/// The writer thread's own state.
struct Worker {
    shared: Arc<Shared>,
    app: Arc<Mutex<Appender>>,
    postponed_since_ms: Option<u64>,
    /// `always`: the group the next batch waits to gather (see [`Gather`]).
    gather: Option<Gather>,
    /// `always`: how long released groups take to come back (sets the gathering deadline).
    gather_clock: GatherClock,
    /// `always`: batches left that start without gathering, after a gathering timed out.
    gather_backoff: u32,
    /// `always`: the smoothed fsync duration (same weighting as [`GatherClock`]).
    fsync_clock: GatherClock,
    /// `always`: batches since the last one that gathered.
    since_gathered: u32,
}

/// Group commit under `appendfsync always`: after an fsync releases its batch's replies, the
/// clients it released answer with their next commands. Starting the next fsync on the first of
/// them would split the clients into groups that alternate, each fsync covering a part of
/// them; so, when that pays ([`gather_pays`]: the disk is the bottleneck, or the batch is
/// big), the next batch waits until as many bytes are pending as the last batch held, or
/// until a deadline, whichever comes first. A lone client never waits: its next command alone
/// reaches its own last batch's size.
///
/// The deadline follows how long the released group actually takes to come back (client round
/// trips plus executing their commands, which on a busy machine is several fsyncs' time): twice
/// the smoothed return time ([`GatherClock`]), at least the last fsync's duration, clamped to
/// [`GATHER_MIN`, `GATHER_MAX`]. Waiting costs the commands already pending at most that
/// deadline, and only when the load just dropped (the target then shrinks to the smaller
/// batch).
///
/// Light load gains nothing from waiting (the disk is not the bottleneck) and would pay the
/// deadline in latency: a batch under [`GATHER_TARGET_MIN`] bytes is not waited for, and after
/// a timeout the next [`GATHER_BACKOFF_BATCHES`] batches start at once (a saturating group of
/// clients almost never times out once the deadline follows it). Measured (notes of round 5):
/// redis-benchmark SET -c 50 under `always`, batches of ~21 commands with round 4's deadline
/// (one fsync's duration) and ~45–49 with this one, half the fsyncs per request, throughput
/// within noise of each other; an open-loop client at 2,000 req/s, p50/p99 unchanged (without
/// the size floor and the back-off they rose by 0.2/1.1 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gather {
    /// Pending bytes that make the batch start at once.
    target: usize,
    /// When the fsync ended (the group was released).
    since: Instant,
    /// Start anyway at this time.
    until: Instant,
}

const GATHER_MIN: Duration = Duration::from_micros(50);
const GATHER_MAX: Duration = Duration::from_millis(2);
/// A batch smaller than this is not worth waiting for: a few commands are what a light load
/// (an open-loop client, a handful of connections) brings, and the disk is not the bottleneck
/// then, so the next fsync starts at once.
const GATHER_TARGET_MIN: usize = 512;
/// Batches that start at once after a gathering timed out.
const GATHER_BACKOFF_BATCHES: u32 = 8;
/// A batch at least this big is gathered for whatever the clocks say (see [`gather_pays`]).
const GATHER_ALWAYS_BYTES: usize = 4096;
/// After this many batches that did not gather, one does, to measure the return time again.
const GATHER_PROBE_EVERY: u32 = 64;

/// Whether the next batch should wait for the group the last one (`len` bytes) released.
///
/// Waiting makes the group one: one fsync per round instead of two or three, but the
/// execution thread idles during every fsync and the disk during every round of execution.
/// With fsync duration T and return time R (the released group's round trip and execution),
/// one group cycles in T + R; two groups taking turns cycle in 2T each when R < T (the disk
/// is the bottleneck: gathering wins) and in about R when R > T (execution is: overlapping
/// wins). So: gather while the smoothed R is at most the smoothed T. Measured on this
/// project's 2-core machine (docs/benchmarks.md, "Group commit: when to gather"): with a fast
/// disk (fsync ~0.1 ms) and 50 unpipelined clients R > T, and not gathering took SET from
/// 0.87 to 1.0 of redis-server; on an earlier day with slower fsyncs gathering had taken it
/// from 0.74 to 1.07 (R < T). Big batches (pipelines, hundreds of clients) gather whatever
/// the clocks say: each fsync costs CPU (~50–70 µs here, the virtual disk's notification and
/// interrupt) that the execution thread and the clients share, and measured with -P 16,
/// gathering was ahead (870k vs 780k req/s). R is measured only by batches that gather, so
/// one in [`GATHER_PROBE_EVERY`] gathers anyway.
fn gather_pays(len: usize, back: &GatherClock, fsync: &GatherClock, since: u32) -> bool {
    len >= GATHER_ALWAYS_BYTES || back.back <= fsync.back || since >= GATHER_PROBE_EVERY
}

impl Gather {
    fn after_fsync(
        batch_bytes: usize,
        fsync_took: Duration,
        clock: &GatherClock,
        now: Instant,
    ) -> Gather {
        let wait = fsync_took.max(clock.back * 2).clamp(GATHER_MIN, GATHER_MAX);
        Gather {
            target: batch_bytes,
            since: now,
            until: now + wait,
        }
    }

    /// How long to keep waiting with `pending` bytes at `now`; `None` = start the batch.
    fn wait(&self, pending: usize, now: Instant) -> Option<Duration> {
        if pending >= self.target || now >= self.until {
            None
        } else {
            Some(self.until - now)
        }
    }
}

/// The smoothed time a released group takes to come back (exponential average, weight 1/8).
/// A group that came back adds the time it took; one that did not adds the whole deadline it
/// missed, so repeated misses lengthen the next deadlines (by 1/8 each, up to [`GATHER_MAX`])
/// until the group fits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct GatherClock {
    back: Duration,
}

impl GatherClock {
    fn observe(&mut self, took: Duration) {
        self.back = (self.back * 7 + took) / 8;
    }
}

/// Handle to the log; owned by the server's execution thread.
pub struct LogWriter {
    shared: Arc<Shared>,
    app: Arc<Mutex<Appender>>,
    writer: Option<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
}

/// While alive, the writer thread takes no pending bytes and starts no fsync; see
/// [`LogWriter::hold`].
pub struct HoldGuard<'a> {
    shared: &'a Shared,
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().holds -= 1;
        self.shared.wake.notify_all();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn io_msg(op: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{op} {}: {e}", path.display())
}

/// Where every manifest write puts its next manifest before the rename (`write_file_atomic`'s
/// temp name).
fn temp_manifest_path(opts: &AofOptions) -> PathBuf {
    opts.dir.join(format!(
        "{TEMP_FILE_PREFIX}{}",
        manifest_name(&opts.filename)
    ))
}

/// Create the incr file `path`, empty and durably so, before any manifest names it.
///
/// O_TRUNC: a file of this name not in the manifest is an orphan — an unused spare, or the new
/// file of a rotation whose manifest rename a crash lost (under everysec its bytes may have been
/// written, and some of them kept by the crash).
fn create_empty_incr(vfs: &dyn Vfs, dir: &Path, path: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
    let file = vfs.create(path)?;
    // IMPORTANT: make the truncation durable: otherwise a crash after the manifest names this
    // file could bring back an orphan's old bytes (a lost future) under the new name.
    file.sync_data()?;
    // IMPORTANT: fsync the directory so the new file's entry is durable before a manifest
    // that names it can be (POSIX does not order a create before a later rename in the same
    // dir).
    vfs.sync_dir(dir)?;
    Ok(file)
}

/// Fsyncs a sealed incr file (run on a helper thread during a rotation).
type SealFn<'a> = dyn Fn() -> Result<(), String> + Sync + 'a;

/// Create a new empty incr file (or adopt the pre-created `spare`) and add it to the manifest
/// (returns the new manifest). `seal`, if given, must succeed before the manifest is renamed
/// into place. The new manifest is durable on return unless `defer_dir_sync`: then only its
/// rename is done (a process crash keeps it) and the caller must fsync the directory before it
/// reports anything `synced` (see [`Shared::sync_pending_dir`]).
#[allow(clippy::too_many_arguments)]
fn add_incr_file(
    vfs: &dyn Vfs,
    opts: &AofOptions,
    manifest: &Manifest,
    seq: u64,
    spare: Option<Spare>,
    seal: Option<&SealFn<'_>>,
    deterministic: bool,
    defer_dir_sync: bool,
) -> Result<(Manifest, Active), AofError> {
    let mut prepared = None;
    let (name, path, file) = match spare {
        // Created and its directory entry fsynced ahead of time (`Shared::prepare_spare`).
        Some(s) => {
            prepared = s.manifest;
            (s.name, s.path, s.file)
        }
        None => {
            let name = incr_file_name(&opts.filename, seq);
            let path = opts.dir.join(&name);
            let file =
                create_empty_incr(vfs, &opts.dir, &path).map_err(AofError::io("create", &path))?;
            (name, path, file)
        }
    };
    let mut next = manifest.clone();
    next.incr.push(ManifestEntry {
        name: name.clone(),
        seq,
        kind: FileType::Incr,
    });
    let mname = manifest_name(&opts.filename);
    let mpath = opts.dir.join(&mname);
    let text = next.format();
    if prepared.as_deref() == Some(text.as_slice()) {
        // The temp manifest holds exactly this text, fsynced (`Shared::prepare_manifest`):
        // seal, then rename (the rename must follow the seal, see below).
        if let Some(seal) = seal {
            seal().map_err(AofError::Failed)?;
        }
        vfs.rename(&temp_manifest_path(opts), &mpath)
            .map_err(AofError::io("write manifest", &mpath))?;
        if !defer_dir_sync {
            // IMPORTANT: fsync the directory so the rename survives a crash.
            vfs.sync_dir(&opts.dir)
                .map_err(AofError::io("write manifest", &mpath))?;
        }
        return Ok((next, Active::empty(name, path, file)));
    }
    match seal {
        None if !defer_dir_sync => write_file_atomic(vfs, &opts.dir, &mname, &next.format())
            .map_err(AofError::io("write manifest", &mpath))?,
        None => {
            // `write_file_atomic` but the directory fsync, which the caller defers.
            let temp = temp_manifest_path(opts);
            create_fresh(vfs, &temp)
                .and_then(|f| write_all(f.as_ref(), &next.format()).and_then(|()| f.sync_data()))
                .and_then(|()| vfs.rename(&temp, &mpath))
                .map_err(AofError::io("write manifest", &mpath))?;
        }
        Some(seal) => {
            // `write_file_atomic` in steps: the temp manifest is written and fsynced while
            // `seal` fsyncs the sealed file on a helper thread; the rename waits for both.
            // IMPORTANT: the sealed file must be durable in full before a manifest that makes
            // it a non-last incr file can be (recovery refuses a torn non-last file).
            let temp = temp_manifest_path(opts);
            let text = next.format();
            // Deterministic mode: the seal's fsync completes before the temp manifest is
            // created (still on the helper thread), so the order of operations is fixed.
            let (temp_res, seal_res) = std::thread::scope(|sc| {
                let joined = |h: std::thread::ScopedJoinHandle<'_, Result<(), String>>| {
                    h.join()
                        .unwrap_or_else(|_| Err("the seal fsync thread panicked".to_string()))
                };
                let mut helper = std::thread::Builder::new()
                    .name("aof-seal".to_string())
                    .spawn_scoped(sc, seal)
                    .ok();
                let mut seal_res = None;
                if deterministic || helper.is_none() {
                    seal_res = Some(helper.take().map_or_else(seal, joined));
                }
                let temp_res = create_fresh(vfs, &temp)
                    .and_then(|f| write_all(f.as_ref(), &text).and_then(|()| f.sync_data()));
                let seal_res = match (seal_res, helper) {
                    (Some(r), _) => r,
                    (None, Some(h)) => joined(h),
                    (None, None) => seal(),
                };
                (temp_res, seal_res)
            });
            seal_res.map_err(AofError::Failed)?;
            temp_res.map_err(AofError::io("write manifest", &mpath))?;
            vfs.rename(&temp, &mpath)
                .map_err(AofError::io("write manifest", &mpath))?;
            // IMPORTANT: fsync the directory so the rename survives a crash (deferred: before
            // anything is reported synced).
            if !defer_dir_sync {
                vfs.sync_dir(&opts.dir)
                    .map_err(AofError::io("write manifest", &mpath))?;
            }
        }
    }
    Ok((next, Active::empty(name, path, file)))
}

/// Highest `<filename>.<n>.incr.aof` seq present in `dir` (0 if none).
fn max_incr_seq_on_disk(vfs: &dyn Vfs, dir: &Path, filename: &str) -> u64 {
    let Ok(names) = vfs.list_dir(dir) else {
        return 0;
    };
    let prefix = format!("{filename}.");
    names
        .iter()
        .filter_map(|n| {
            n.strip_prefix(&prefix)?
                .strip_suffix(".incr.aof")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

impl LogWriter {
    /// Open the log for appending, with the real clock. See [`LogWriter::open_with_clock`].
    pub fn open(
        vfs: Arc<dyn Vfs>,
        opts: AofOptions,
        resume: ResumePoint,
        on_progress: Box<dyn Fn(&Progress) + Send>,
    ) -> Result<LogWriter, AofError> {
        Self::open_with_clock(
            vfs,
            opts,
            resume,
            on_progress,
            Arc::new(SystemClock::default()),
        )
    }

    /// Open the log: create the AOF directory and manifest if `resume.manifest` is `None`,
    /// continue the last incr file if `resume.append` says so, else start a new incr file.
    /// `on_progress` is called after every step, from the writer threads; it must not call
    /// back into the `LogWriter`.
    pub fn open_with_clock(
        vfs: Arc<dyn Vfs>,
        opts: AofOptions,
        resume: ResumePoint,
        on_progress: Box<dyn Fn(&Progress) + Send>,
        clock: Arc<dyn Clock>,
    ) -> Result<LogWriter, AofError> {
        Self::open_inner(vfs, opts, resume, on_progress, clock, false)
    }

    /// [`LogWriter::open_with_clock`] for simulations that must replay exactly (the seeded
    /// crash simulation): the same threads do the same work, but work handed to a helper
    /// thread runs at a point of the writer's sequence of operations that depends only on
    /// `seed`: the everysec fsync thread's fsync either right after the writer requests it or
    /// once the writer has finished the job it requested it in (a rotation may come in
    /// between; `seed` picks; "finished" means no job is left, so how the caller's work was
    /// split into jobs does not matter), the spare incr file's creation right after it is started, a
    /// rotation's seal fsync before the temp manifest is written; the writer waits for it
    /// there. With a [`Clock`] that moves only while the writer is held
    /// ([`LogWriter::hold`]), the sequence of file operations is then a function of what was
    /// submitted, when the caller waited, and `seed`, whatever the thread timing. Not for
    /// production: those hand-offs are overlapped there.
    pub fn open_deterministic(
        vfs: Arc<dyn Vfs>,
        opts: AofOptions,
        resume: ResumePoint,
        on_progress: Box<dyn Fn(&Progress) + Send>,
        clock: Arc<dyn Clock>,
        seed: u64,
    ) -> Result<LogWriter, AofError> {
        let w = Self::open_inner(vfs, opts, resume, on_progress, clock, true)?;
        w.shared.lock().det_rng = seed;
        Ok(w)
    }

    fn open_inner(
        vfs: Arc<dyn Vfs>,
        opts: AofOptions,
        resume: ResumePoint,
        on_progress: Box<dyn Fn(&Progress) + Send>,
        clock: Arc<dyn Clock>,
        deterministic: bool,
    ) -> Result<LogWriter, AofError> {
        let (manifest, active) = match resume.manifest {
            None => {
                vfs.create_dir_all(&opts.dir)
                    .map_err(AofError::io("create directory", &opts.dir))?;
                if let Some(parent) = opts.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    // IMPORTANT: make the new directory's own entry durable.
                    vfs.sync_dir(parent)
                        .map_err(AofError::io("fsync directory", parent))?;
                }
                // Never clobber files a lost manifest used to list.
                let seq = max_incr_seq_on_disk(vfs.as_ref(), &opts.dir, &opts.filename) + 1;
                add_incr_file(
                    vfs.as_ref(),
                    &opts,
                    &Manifest::default(),
                    seq,
                    None,
                    None,
                    deterministic,
                    false,
                )?
            }
            Some(manifest) => match resume.append {
                Some(ap) => {
                    let last = manifest.incr.last().map(|e| e.name.as_str());
                    let path = opts.dir.join(&ap.file_name);
                    if last != Some(ap.file_name.as_str()) {
                        return Err(AofError::Resume {
                            path,
                            reason: "not the last incr file of the manifest".to_string(),
                        });
                    }
                    let len = vfs.len(&path).map_err(AofError::io("stat", &path))?;
                    if len != ap.valid_len {
                        return Err(AofError::Resume {
                            path,
                            reason: format!(
                                "file is {len} bytes but recovery validated {} (truncate it first)",
                                ap.valid_len
                            ),
                        });
                    }
                    let file = vfs.open_write(&path).map_err(AofError::io("open", &path))?;
                    let active = Active {
                        name: ap.file_name,
                        path,
                        file,
                        size: len,
                        pad_end: len,
                        chain: ap.chain,
                        direct: Direct::Unopened,
                        tail: None,
                    };
                    (manifest, active)
                }
                None => {
                    let seq = manifest.next_incr_seq();
                    add_incr_file(
                        vfs.as_ref(),
                        &opts,
                        &manifest,
                        seq,
                        None,
                        None,
                        deterministic,
                        false,
                    )?
                }
            },
        };

        let size_of = |name: &str| vfs.len(&opts.dir.join(name)).unwrap_or(0);
        let base_size = manifest.base.as_ref().map_or(0, |b| size_of(&b.name));
        let sealed_size: u64 = manifest
            .incr
            .iter()
            .filter(|e| e.name != active.name)
            .map(|e| size_of(&e.name))
            .sum();

        let policy = opts.fsync;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
            sync_wake: Condvar::new(),
            idle: Condvar::new(),
            progress: Mutex::new((Progress::default(), on_progress)),
            clock,
            policy,
            timestamps: std::sync::atomic::AtomicBool::new(opts.timestamp_enabled),
            files: Mutex::new(Files {
                manifest,
                base_size,
                sealed_size,
            }),
            manifest_io: Mutex::new(()),
            dir_sync_pending: Mutex::new(false),
            vfs: vfs.clone(),
            opts: opts.clone(),
            deterministic,
            #[cfg(test)]
            hook_before_sync_recheck: Mutex::new(None),
        });
        let app = Appender {
            last_fsync_ms: shared.clock.monotonic_ms(),
            direct_off: false,
            direct_buf: Vec::new(),
            shared: shared.clone(),
            vfs,
            opts,
            active,
            need_select: true,
            last_ts: None,
            written: 0,
            synced: 0,
        };
        app.update_stats(&mut shared.lock());
        let app = Arc::new(Mutex::new(app));
        let worker = Worker {
            shared: shared.clone(),
            app: app.clone(),
            postponed_since_ms: None,
            gather: None,
            gather_clock: GatherClock::default(),
            gather_backoff: 0,
            fsync_clock: GatherClock::default(),
            since_gathered: 0,
        };
        let next_seq = shared.files().manifest.next_incr_seq();
        shared.prepare_spare(next_seq);
        let writer = std::thread::Builder::new()
            .name("aof-writer".to_string())
            .spawn(move || {
                crate::sched::prefer_short_slices();
                worker.run()
            })
            .map_err(|e| AofError::Failed(format!("cannot start the AOF writer thread: {e}")))?;
        let syncer = if policy == FsyncPolicy::EverySec {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("aof-fsync".to_string())
                    .spawn(move || {
                        crate::sched::prefer_short_slices();
                        sync_thread(&s)
                    })
                    .map_err(|e| {
                        AofError::Failed(format!("cannot start the AOF fsync thread: {e}"))
                    })?,
            )
        } else {
            None
        };
        Ok(LogWriter {
            shared,
            app,
            writer: Some(writer),
            syncer,
        })
    }

    /// Never blocks on I/O: appends to an in-memory pending buffer and wakes the writer thread.
    /// `bytes` are whole RESP commands (SELECT included by the caller when its db changes; a
    /// MULTI…EXEC block must be submitted in one call); `db_at_start` is the db selected when
    /// `bytes` begin. Returns the logical end position (logical positions count only submitted
    /// payload bytes, monotonic across segments).
    ///
    /// Under everysec and `no`, when the writer thread is idle (nothing queued, no job, no
    /// fsync in flight, room left in the segment), the bytes are written on the
    /// calling thread instead, as Redis writes its AOF buffer before it answers: a reply
    /// released at `written` then waits for no other thread (an unpipelined SET through the
    /// writer thread cost two cross-thread wake-ups: the writer's, and the event loop's when
    /// progress came back). `always` keeps its fsync on the writer thread.
    pub fn submit(&self, bytes: &[u8], db_at_start: u32) -> u64 {
        if self.shared.policy != FsyncPolicy::Always {
            if let Some(end) = self.try_write_here(bytes, db_at_start) {
                return end;
            }
        }
        let end = {
            let mut g = self.shared.lock();
            if g.pending.is_empty() {
                g.pending_db = db_at_start;
                g.pending_since = Some(Instant::now());
            }
            g.pending.extend_from_slice(bytes);
            g.submitted += bytes.len() as u64;
            g.stats.buffer_length = g.pending.len();
            // Wake the writer only if it waits for these bytes: not while it writes or
            // fsyncs (it looks at `pending` before it sleeps again), and not while it gathers
            // a group under `always` that these bytes do not complete (its deadline wakes
            // it). Each wake-up costs a futex call here and a context switch there, and under
            // `always` the execution thread submits many small rounds while an fsync runs.
            let wake = g.wake_at_pending != 0 && g.pending.len() >= g.wake_at_pending;
            if wake {
                g.wake_at_pending = 0;
            }
            (g.submitted, wake)
        };
        if end.1 {
            self.shared.wake.notify_one();
        }
        end.0
    }

    /// Start or stop writing `#TS:<unix secs>` annotations (CONFIG SET aof-timestamp-enabled).
    pub fn set_timestamps(&self, on: bool) {
        self.shared
            .timestamps
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Self::submit`] may write batches on the calling thread (the default). The
    /// server turns it off while a snapshot writes its file: the snapshot's writes and
    /// fsyncs make a write(2) of the log wait for the file system's journal more often, and
    /// the compaction bench's probe p99 during rewrites was 1.94–2.0 ms with writes on the
    /// execution thread, 1.71–1.83 ms without.
    pub fn write_here(&self, allow: bool) {
        self.shared.lock().no_writes_here = !allow;
    }

    /// See [`Self::submit`]: `None` if the bytes must go through the writer thread.
    fn try_write_here(&self, bytes: &[u8], db: u32) -> Option<u64> {
        // The writer thread holds the appender for each of its jobs: busy means queue.
        let mut a = self.app.try_lock().ok()?;
        let mut g = self.shared.lock();
        let now_ms = self.shared.clock.monotonic_ms();
        // A write(2) can wait for a journal commit that an fsync on the same file system
        // started: with one in flight, the writer thread writes.
        let fsync_in_flight = g.sync_in_progress || g.sync_request.is_some();
        if g.busy
            || g.holds > 0
            || g.shutdown
            || g.failed.is_some()
            || !g.pending.is_empty()
            || !g.controls.is_empty()
            || fsync_in_flight
            || g.no_writes_here
            || now_ms < g.inline_paused_until_ms
            || a.active.size + bytes.len() as u64 + INLINE_BATCH_OVERHEAD_MAX
                >= a.opts.segment_bytes_max
        {
            return None;
        }
        g.submitted += bytes.len() as u64;
        let end = g.submitted;
        g.busy = true;
        g.stats.inline_batches += 1;
        drop(g);
        let started = Instant::now();
        let res = a.write_batch(bytes, db, None);
        let mut g = self.shared.lock();
        if started.elapsed() >= INLINE_WRITE_SLOW {
            // The disk holds writes back (dirty-page throttling, a journal stall): keep them
            // off the execution thread for a while.
            g.inline_paused_until_ms = self.shared.clock.monotonic_ms() + INLINE_PAUSE_MS;
        }
        g.busy = false;
        a.update_stats(&mut g);
        // Deterministic mode: an fsync the write deferred runs on the writer thread.
        let wake = g.sync_held;
        drop(g);
        drop(a);
        if wake {
            self.shared.wake.notify_one();
        }
        if let Err(msg) = res {
            self.shared.fail(msg);
        }
        self.shared.idle.notify_all();
        Some(end)
    }

    /// The last published progress.
    pub fn progress(&self) -> Progress {
        self.shared.progress()
    }

    /// Counters for INFO.
    pub fn stats(&self) -> LogStats {
        let g = self.shared.lock();
        let mut s = g.stats.clone();
        s.buffer_length = g.pending.len();
        s.submitted = g.submitted;
        s
    }

    /// Wait until the writer is idle — no write, control, fsync or spare-file creation in
    /// flight or queued, and (unless it has failed: then pending bytes are never written)
    /// nothing pending and no fsync due — then keep it from starting anything until the guard
    /// is dropped. Used by deterministic tests and as a barrier by maintenance code.
    ///
    /// Not re-entrant, and nothing that needs the writer may be awaited under a hold: a
    /// second `hold()` waits for pending bytes or a due fsync that the first hold keeps the
    /// writer from handling, and a control's [`Pending::wait`] for a writer that takes no
    /// control while held. Both would wait forever.
    pub fn hold(&self) -> HoldGuard<'_> {
        let mut g = self.shared.lock();
        loop {
            let quiet = !g.busy
                && g.controls.is_empty()
                && !g.sync_in_progress
                && g.sync_request.is_none()
                && !g.preparing;
            let drained = g.failed.is_some()
                || (g.pending.is_empty()
                    && !self
                        .shared
                        .fsync_due(&g, g.stats.written, g.last_fsync_ms_shadow));
            if (quiet && drained) || g.shutdown {
                break;
            }
            g = self
                .shared
                .idle
                .wait_timeout(g, Duration::from_millis(TICK_MS))
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        }
        g.holds += 1;
        HoldGuard {
            shared: &self.shared,
        }
    }

    /// Queue a control behind everything submitted so far (never blocks on I/O).
    fn control<T>(
        &self,
        make: impl FnOnce(mpsc::SyncSender<Result<T, AofError>>) -> Control,
    ) -> Pending<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut g = self.shared.lock();
            if let Some(f) = &g.failed {
                let _ = tx.send(Err(AofError::Failed(f.clone())));
                return Pending { rx };
            }
            let before = std::mem::take(&mut g.pending);
            let before_db = g.pending_db;
            let since = g.pending_since.take();
            g.stats.buffer_length = 0;
            g.controls.push_back(Queued {
                before,
                before_db,
                since,
                control: make(tx),
            });
        }
        self.shared.wake.notify_one();
        Pending { rx }
    }

    /// Everysec: ask for an fsync of everything submitted so far now, rather than at the next
    /// interval, without waiting for it (it runs on the fsync thread, beside the writes).
    /// Returns the position to watch for in [`Progress::synced`], or `None` when there is
    /// nothing to wait for: the policy is not everysec (`always` has no unsynced bytes once
    /// written; `no` never fsyncs on its own), the log has failed, or all is synced already.
    ///
    /// A rewrite asks for this before its rotation, so the rotation's seal fsync covers only
    /// the bytes written since, and the replies held behind it wait for a short fsync.
    pub fn request_sync_soon(&self) -> Option<u64> {
        if self.shared.policy != FsyncPolicy::EverySec {
            return None;
        }
        let synced = self.shared.progress().synced;
        let (target, wake) = {
            let mut g = self.shared.lock();
            if g.failed.is_some() || synced >= g.submitted {
                return None;
            }
            g.sync_wanted = g.sync_wanted.max(g.submitted);
            // The writer thread, if it sleeps, starts the fsync when woken.
            let wake = g.wake_at_pending != 0;
            if wake {
                g.wake_at_pending = 0;
            }
            (g.submitted, wake)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Some(target)
    }

    /// Compaction hook: seal the active incr file and open a new one, so a snapshot taken now
    /// covers exactly the returned `replaced` files. Everything submitted before this call is
    /// in the replaced files. Blocking form of [`Self::request_rotate_for_rewrite`].
    pub fn rotate_for_rewrite(&self) -> Result<RewriteTicket, AofError> {
        self.request_rotate_for_rewrite().wait()
    }

    /// Compaction hook, without waiting: the rotation happens at this point of the log
    /// (everything submitted before this call goes to the replaced files, everything
    /// submitted after it to the new incr file), while the caller goes on submitting. Bytes
    /// submitted after it are written, and so reported `written`/`synced`, only once the new
    /// incr file is durably in the manifest.
    pub fn request_rotate_for_rewrite(&self) -> Pending<RewriteTicket> {
        self.control(Control::Rotate)
    }

    /// Compaction hook: `name` (already durable in the AOF directory, e.g. written with
    /// [`write_file_atomic`]) becomes the base; the ticket's files leave the manifest (as
    /// history, then deleted). One atomic manifest switch, done on the calling thread: see
    /// [`Installer`].
    pub fn install_base(&self, name: &str, ticket: RewriteTicket) -> Result<(), AofError> {
        self.installer().install_base(name, ticket)
    }

    /// Start a new window for the `window_max_*` figures of [`LogStats`] (a snapshot does at
    /// its start, and reads them at its end).
    pub fn reset_window(&self) {
        let mut g = self.shared.lock();
        g.stats.window_max_wait_us = 0;
        g.stats.window_max_postpone_us = 0;
        g.stats.window_max_write_us = 0;
    }

    /// A handle that installs a new base from another thread (the snapshot thread).
    pub fn installer(&self) -> Installer {
        Installer {
            shared: self.shared.clone(),
        }
    }

    /// Carry the counters of the writer this one continues ([`Self::close`]) over, so INFO's
    /// totals do not start again when only the policy changed.
    pub fn continue_counters(&self, old: &LogStats) {
        let mut g = self.shared.lock();
        let s = &mut g.stats;
        s.fsyncs += old.fsyncs;
        s.batches += old.batches;
        s.batch_bytes_total += old.batch_bytes_total;
        s.batch_bytes_max = s.batch_bytes_max.max(old.batch_bytes_max);
        s.inline_batches += old.inline_batches;
        s.direct_batches += old.direct_batches;
        s.gather_timeouts += old.gather_timeouts;
        s.gathers += old.gathers;
        s.delayed_fsyncs += old.delayed_fsyncs;
        for (new, old) in [
            (&mut s.last_fsync_us, old.last_fsync_us),
            (&mut s.last_rotate_us, old.last_rotate_us),
            (&mut s.last_seal_bytes, old.last_seal_bytes),
            (&mut s.last_install_us, old.last_install_us),
        ] {
            if *new == 0 {
                *new = old;
            }
        }
    }

    /// The fsync policy the writer was opened with.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy
    }

    /// Write and fsync everything pending, stop the threads.
    pub fn shutdown(mut self) -> Result<(), AofError> {
        self.stop();
        match self.shared.lock().failed.clone() {
            Some(f) => Err(AofError::Failed(f)),
            None => Ok(()),
        }
    }

    /// [`Self::shutdown`] (the writer stays stopped: later submits are never written), then
    /// where a new writer (with other options, e.g. another fsync policy) continues this log: the same manifest, appending to the same incr file after
    /// its last batch, the batch chain unbroken. Its logical positions start again at 0.
    ///
    /// Call it with no rewrite in flight (no [`Installer`] in use, no rotation queued): an
    /// installer of this writer would switch a manifest that the new writer does not know.
    pub fn close(&mut self) -> Result<ResumePoint, AofError> {
        self.stop();
        if let Some(f) = self.shared.lock().failed.clone() {
            return Err(AofError::Failed(f));
        }
        let a = lock_app(&self.app);
        let manifest = self.shared.files().manifest.clone();
        Ok(ResumePoint {
            manifest: Some(manifest),
            append: Some(AppendPoint {
                file_name: a.active.name.clone(),
                valid_len: a.active.size,
                chain: a.active.chain,
            }),
        })
    }

    fn stop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.writer.take() {
            if w.join().is_err() {
                self.shared
                    .fail("the AOF writer thread panicked".to_string());
            }
        }
        self.shared.lock().sync_shutdown = true;
        self.shared.sync_wake.notify_all();
        if let Some(s) = self.syncer.take() {
            if s.join().is_err() {
                self.shared
                    .fail("the AOF fsync thread panicked".to_string());
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The everysec fsync thread: fsyncs what the writer asks for, publishes `synced`.
fn sync_thread(shared: &Shared) {
    loop {
        let req = {
            let mut g = shared.lock();
            loop {
                if !g.sync_held {
                    if let Some(r) = g.sync_request.take() {
                        g.sync_in_progress = true;
                        break r;
                    }
                }
                if g.sync_shutdown {
                    return;
                }
                g = shared
                    .sync_wake
                    .wait_timeout(g, Duration::from_millis(TICK_MS * 5))
                    .map_or_else(|p| p.into_inner().0, |r| r.0);
            }
        };
        let started = Instant::now();
        // A rotation's deferred directory fsync comes before anything is reported synced.
        let res = shared.sync_pending_dir().and_then(|()| {
            req.file
                .sync_data()
                .map_err(|e| io_msg("fsync", &req.path, &e))
        });
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        // Published (or failed) before the fsync stops counting as in flight, so a caller of
        // [`LogWriter::hold`] sees its outcome.
        match res {
            Ok(()) => {
                shared.publish(None, Some(req.upto), None);
                let mut g = shared.lock();
                g.sync_in_progress = false;
                g.stats.last_fsync_us = us;
                g.stats.fsyncs += 1;
                g.stats.synced = g.stats.synced.max(req.upto);
            }
            Err(e) => {
                shared.fail(e);
                shared.lock().sync_in_progress = false;
            }
        }
        shared.wake.notify_all();
        shared.idle.notify_all();
    }
}

enum Job {
    Write(Vec<u8>, u32, Option<Instant>),
    Control(Queued),
    Shutdown,
}

fn lock_app(app: &Mutex<Appender>) -> MutexGuard<'_, Appender> {
    app.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// `always`: after a batch's fsync (`took`), gather the group it released before the next
    /// one (see [`Gather`]).
    fn after_always_batch(&mut self, len: usize, took: Option<Duration>) {
        let Some(took) = took else {
            return;
        };
        self.fsync_clock.observe(took);
        self.since_gathered = self.since_gathered.saturating_add(1);
        if self.gather_backoff > 0 {
            self.gather_backoff -= 1;
        } else if len >= GATHER_TARGET_MIN
            && gather_pays(
                len,
                &self.gather_clock,
                &self.fsync_clock,
                self.since_gathered,
            )
        {
            self.since_gathered = 0;
            self.gather = Some(Gather::after_fsync(
                len,
                took,
                &self.gather_clock,
                Instant::now(),
            ));
        }
    }

    fn run(mut self) {
        let app = self.app.clone();
        loop {
            let job = self.next_job();
            let mut a = lock_app(&app);
            match job {
                Job::Write(bytes, db, since) => match a.write_batch(&bytes, db, since) {
                    Ok(took) => self.after_always_batch(bytes.len(), took),
                    Err(msg) => self.shared.fail(msg),
                },
                Job::Control(q) => {
                    if !q.before.is_empty() && self.shared.lock().failed.is_none() {
                        match a.write_batch(&q.before, q.before_db, q.since) {
                            Ok(took) => self.after_always_batch(q.before.len(), took),
                            Err(msg) => self.shared.fail(msg),
                        }
                    }
                    a.control(q.control);
                }
                Job::Shutdown => {
                    if self.shared.lock().failed.is_none() && a.synced < a.written {
                        if let Err(msg) = a.sync_active() {
                            self.shared.fail(msg);
                        }
                    }
                    if self.shared.lock().failed.is_none() {
                        if let Err(msg) = a.trim_padding() {
                            self.shared.fail(msg);
                        }
                    }
                    if self.shared.lock().failed.is_none() {
                        // A rotation's deferred directory fsync, and the seal it held back.
                        match self.shared.sync_pending_dir() {
                            Ok(()) => self.shared.publish(None, Some(a.synced), None),
                            Err(msg) => self.shared.fail(msg),
                        }
                    }
                    // An unused spare is an orphan: remove it (a crash first leaves it to the
                    // next writer, which re-creates it).
                    if let Some(s) = self.shared.take_any_spare() {
                        let _ = a.vfs.remove_file(&s.path);
                        if s.manifest.is_some() {
                            // Its prepared manifest too (a leftover temp file is harmless, but
                            // a clean shutdown leaves none).
                            let _io = self.shared.manifest_io();
                            let _ = a.vfs.remove_file(&temp_manifest_path(&a.opts));
                        }
                    }
                    let mut g = self.shared.lock();
                    a.update_stats(&mut g);
                    drop(g);
                    drop(a);
                    self.shared.idle.notify_all();
                    return;
                }
            }
            let mut g = self.shared.lock();
            g.busy = false;
            a.update_stats(&mut g);
            drop(g);
            drop(a);
            self.shared.idle.notify_all();
        }
    }

    fn next_job(&mut self) -> Job {
        let shared = self.shared.clone();
        let mut g = shared.lock();
        loop {
            let failed = g.failed.is_some();
            let now = shared.clock.monotonic_ms();
            // A control (rotation for a rewrite) applies to everything submitted before it:
            // those bytes travel with it and are written first, into the file they belong to;
            // `pending` holds only bytes submitted after it, so it waits for the control.
            if g.holds == 0 || g.shutdown {
                if let Some(q) = g.controls.pop_front() {
                    g.busy = true;
                    return Job::Control(q);
                }
            }
            if (g.holds == 0 || g.shutdown) && !g.pending.is_empty() && !failed {
                let mut go = true;
                if (g.sync_in_progress || g.sync_request.is_some())
                    && now.saturating_sub(g.last_fsync_ms_shadow) >= EVERYSEC_POSTPONE_AFTER_MS
                {
                    // Redis's rule, once the fsync is slow: postpone while it is in flight, up
                    // to 2 s (`last_fsync_ms` is when it was requested).
                    match self.postponed_since_ms {
                        None => {
                            self.postponed_since_ms = Some(now);
                            go = false;
                        }
                        Some(t) if now.saturating_sub(t) < EVERYSEC_POSTPONE_MS_MAX => go = false,
                        Some(_) => g.stats.delayed_fsyncs += 1,
                    }
                }
                if go && !g.shutdown {
                    if let Some((wait, target)) = self.gather.and_then(|gt| {
                        gt.wait(g.pending.len(), Instant::now())
                            .map(|w| (w, gt.target))
                    }) {
                        g.wake_at_pending = target;
                        g = shared
                            .wake
                            .wait_timeout(g, wait)
                            .map_or_else(|p| p.into_inner().0, |r| r.0);
                        g.wake_at_pending = 0;
                        continue;
                    }
                }
                if go {
                    if let Some(gt) = self.gather.take() {
                        g.stats.gathers += 1;
                        if g.pending.len() < gt.target && !g.shutdown {
                            g.stats.gather_timeouts += 1;
                            self.gather_clock.observe(gt.until - gt.since);
                            self.gather_backoff = GATHER_BACKOFF_BATCHES;
                        } else {
                            self.gather_clock.observe(Instant::now() - gt.since);
                        }
                    }
                    if let Some(t) = self.postponed_since_ms.take() {
                        let us = now.saturating_sub(t).saturating_mul(1000);
                        g.stats.window_max_postpone_us = g.stats.window_max_postpone_us.max(us);
                    }
                    g.busy = true;
                    let bytes = std::mem::take(&mut g.pending);
                    let since = g.pending_since.take();
                    g.stats.buffer_length = 0;
                    return Job::Write(bytes, g.pending_db, since);
                }
            }
            if g.shutdown
                && (g.pending.is_empty() || failed)
                && !g.sync_in_progress
                && g.sync_request.is_none()
            {
                g.busy = true;
                return Job::Shutdown;
            }
            if g.sync_held {
                // Deterministic mode: no job left (whichever jobs the submitted work came in),
                // so the deferred fsync runs now, and this thread waits for it.
                g.sync_held = false;
                shared.sync_wake.notify_all();
                while (g.sync_request.is_some() || g.sync_in_progress) && !g.sync_shutdown {
                    g = shared
                        .idle
                        .wait_timeout(g, Duration::from_millis(TICK_MS))
                        .map_or_else(|p| p.into_inner().0, |r| r.0);
                }
                continue;
            }
            if g.holds == 0 && shared.fsync_due(&g, g.stats.written, g.last_fsync_ms_shadow) {
                // Lock order: the appender first.
                drop(g);
                #[cfg(test)]
                if let Some(hook) = shared
                    .hook_before_sync_recheck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                {
                    hook();
                }
                let mut a = lock_app(&self.app);
                g = shared.lock();
                // Re-checked under both locks: meanwhile a write on the execution thread may
                // have fsynced, or a hold begun. Either way the guard comes back to `g` (a
                // second guard alive across `shared.lock()` would deadlock this thread).
                if g.holds == 0 && shared.fsync_due(&g, a.written, a.last_fsync_ms) {
                    g = a.request_sync(g, false);
                }
                drop(a);
                continue;
            }
            g.wake_at_pending = 1;
            g = shared
                .wake
                .wait_timeout(g, Duration::from_millis(TICK_MS))
                .map_or_else(|p| p.into_inner().0, |r| r.0);
            g.wake_at_pending = 0;
        }
    }
}

impl Appender {
    fn update_stats(&self, g: &mut Inner) {
        {
            let f = self.shared.files();
            g.stats.segments = f.manifest.incr.len();
            g.stats.base_size = f.base_size;
            g.stats.current_size = f.base_size + f.sealed_size + self.active.size;
        }
        g.stats.written = self.written;
        g.stats.synced = g.stats.synced.max(self.synced);
        g.last_fsync_ms_shadow = self.last_fsync_ms;
    }

    /// Hand an fsync of the active file to the everysec fsync thread. Deterministic mode: wait
    /// until it is done, or (if `may_defer` and the seeded coin says so) let it run only when
    /// this thread has no job left ([`Worker::next_job`]).
    fn request_sync<'a>(
        &mut self,
        mut g: MutexGuard<'a, Inner>,
        may_defer: bool,
    ) -> MutexGuard<'a, Inner> {
        g.sync_request = Some(SyncRequest {
            file: self.active.file.clone(),
            path: self.active.path.clone(),
            upto: self.written,
        });
        g.sync_requested = self.written;
        self.last_fsync_ms = self.shared.clock.monotonic_ms();
        g.last_fsync_ms_shadow = self.last_fsync_ms;
        if self.shared.deterministic && may_defer {
            // SplitMix64 step.
            g.det_rng = g.det_rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = g.det_rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            g.sync_held = (z ^ (z >> 31)) & 1 == 1;
        }
        self.shared.sync_wake.notify_one();
        while self.shared.deterministic
            && !g.sync_held
            && (g.sync_request.is_some() || g.sync_in_progress)
            && !g.sync_shutdown
        {
            g = self
                .shared
                .idle
                .wait_timeout(g, Duration::from_millis(TICK_MS))
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        }
        g
    }

    /// `always`: pad the active file with [`padding`] to [`PAD_CHUNK`] past `need` (rounded
    /// to a [`PAD_ALIGN`] boundary plus [`PAD_END_RESIDUE`]) and fdatasync it, so that the
    /// batches written over it leave the file's size alone and their fdatasync need not
    /// write the inode: on this machine's disk an fdatasync after overwriting 2–36 KB took
    /// 135 µs at the median against 235 µs after appending them (docs/design-aof.md
    /// §Padding). A batch is only ever written over padding that is already durable, so a
    /// torn write leaves sector-aligned fragments inside padding, which the reader never
    /// loads (see `BatchReader::foreign_tail_at`).
    fn extend_padding(&mut self, need: u64) -> Result<(), String> {
        let from = self.active.pad_end.max(self.active.size);
        let to = (need + PAD_CHUNK).div_ceil(PAD_ALIGN) * PAD_ALIGN + PAD_END_RESIDUE;
        let bytes = padding(from, to);
        let path = &self.active.path;
        write_all_at(self.active.file.as_ref(), &bytes, from)
            .map_err(|e| io_msg("write", path, &e))?;
        self.active
            .file
            .sync_data()
            .map_err(|e| io_msg("fsync", path, &e))?;
        self.active.pad_end = to;
        Ok(())
    }

    /// Write a batch's bytes (`out`, content only) at the end of the active file's content:
    /// under `always` (`padded`) by a direct write when the file system takes them, else
    /// through the page cache followed by the filler (see [`pad_filler`]).
    fn write_content(&mut self, out: &mut Vec<u8>, padded: bool) -> std::io::Result<()> {
        if padded && self.direct_ready() {
            match self.write_direct(out) {
                Ok(true) => {
                    self.shared.lock().stats.direct_batches += 1;
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // An alignment this disk refuses (its blocks are bigger than
                    // DIRECT_ALIGN): nothing was written; the page cache from now on.
                    tracing::warn!(
                        "Direct writes to {} refused ({e}): the log is written through the \
                         page cache from now on",
                        self.active.path.display()
                    );
                    self.direct_off = true;
                    self.active.direct = Direct::Off;
                }
                Err(e) => return Err(e),
            }
        }
        let end = self.active.size + out.len() as u64;
        if padded {
            out.extend_from_slice(pad_filler(end));
        }
        write_all_at(self.active.file.as_ref(), out, self.active.size)
    }

    /// Whether the active file takes direct writes; opens its handle at its first batch.
    fn direct_ready(&mut self) -> bool {
        if matches!(self.active.direct, Direct::Unopened) {
            self.active.direct = if self.direct_off {
                Direct::Off
            } else {
                match self.vfs.open_direct(&self.active.path) {
                    Ok(Some(f)) => Direct::On(f),
                    Ok(None) => {
                        tracing::info!(
                            "The file system of {} has no direct I/O: the log is written \
                             through the page cache",
                            self.opts.dir.display()
                        );
                        self.direct_off = true;
                        Direct::Off
                    }
                    Err(e) => {
                        tracing::warn!(
                            "Can't open {} for direct writes ({e}): it is written through \
                             the page cache",
                            self.active.path.display()
                        );
                        Direct::Off
                    }
                }
            };
        }
        matches!(self.active.direct, Direct::On(_))
    }

    /// `always`: write `content` at the end of the active file's content with one direct
    /// write of whole [`DIRECT_ALIGN`] blocks: the content already in the first block (kept
    /// in `tail`), `content`, then the padding bytes up to the last block's end — the bytes
    /// already there, rewritten unchanged. The blocks lie inside the durable padding
    /// (`extend_padding` keeps `pad_end` ≥ 3 bytes past the content's end, and `pad_end` is 2
    /// past a block boundary), so the file's size does not change. Why: an fdatasync then
    /// has no dirty pages to write back, only the disk's cache to flush (docs/design-aof.md
    /// §3.4). False when the batch must go through the page cache instead.
    fn write_direct(&mut self, content: &[u8]) -> std::io::Result<bool> {
        let Direct::On(file) = &self.active.direct else {
            return Ok(false);
        };
        let file = file.clone();
        let align = DIRECT_ALIGN as u64;
        let size = self.active.size;
        let start = size / align * align;
        let end = size + content.len() as u64;
        let block_end = end.div_ceil(align) * align;
        if block_end > self.active.pad_end {
            return Ok(false);
        }
        let tail_len = (size - start) as usize;
        if self.active.tail.as_ref().map(Vec::len) != Some(tail_len) {
            // Resumed file: its last block's content, read once.
            let t = self.vfs.read_range(&self.active.path, start, tail_len)?;
            if t.len() != tail_len {
                return Ok(false);
            }
            self.active.tail = Some(t);
        }
        let len = (block_end - start) as usize;
        self.direct_buf.clear();
        self.direct_buf.resize(len + DIRECT_ALIGN, 0);
        let at = self.direct_buf.as_ptr().align_offset(DIRECT_ALIGN);
        let Some(w) = self.direct_buf.get_mut(at..at + len) else {
            return Ok(false);
        };
        if let Some(t) = &self.active.tail {
            w[..tail_len].copy_from_slice(t);
        }
        let content_end = tail_len + content.len();
        w[tail_len..content_end].copy_from_slice(content);
        fill_padding(&mut w[content_end..], end);
        write_all_at(file.as_ref(), w, start)?;
        let keep_from = (end / align * align - start) as usize;
        let tail = self.active.tail.get_or_insert_with(Vec::new);
        tail.clear();
        tail.extend_from_slice(&w[keep_from..content_end]);
        Ok(true)
    }

    /// Cut the active file's padding off (clean shutdown), so it ends with its content as
    /// a file Redis wrote would.
    fn trim_padding(&mut self) -> Result<(), String> {
        if self.active.pad_end > self.active.size {
            self.vfs
                .truncate(&self.active.path, self.active.size)
                .map_err(|e| io_msg("truncate", &self.active.path, &e))?;
            self.active.pad_end = self.active.size;
        }
        Ok(())
    }

    /// fdatasync the active file on this thread and publish `synced = written`.
    fn sync_active(&mut self) -> Result<(), String> {
        let started = Instant::now();
        self.shared.sync_pending_dir()?;
        self.active
            .file
            .sync_data()
            .map_err(|e| io_msg("fsync", &self.active.path, &e))?;
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.synced = self.written;
        self.last_fsync_ms = self.shared.clock.monotonic_ms();
        {
            let mut g = self.shared.lock();
            g.stats.last_fsync_us = us;
            g.stats.fsyncs += 1;
            g.stats.synced = g.stats.synced.max(self.synced);
        }
        self.shared
            .publish(Some(self.written), Some(self.synced), None);
        Ok(())
    }

    /// `since`: when the oldest of `bytes` was submitted (for `window_max_wait_us`). Returns
    /// how long the batch's fsync took under `always`.
    fn write_batch(
        &mut self,
        bytes: &[u8],
        db: u32,
        since: Option<Instant>,
    ) -> Result<Option<Duration>, String> {
        let mut payload = Vec::with_capacity(bytes.len() + 64);
        if self
            .shared
            .timestamps
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let now = self.shared.clock.unix_secs();
            if self.last_ts != Some(now) {
                payload.extend_from_slice(timestamp_line(now).as_bytes());
                self.last_ts = Some(now);
            }
        }
        if self.need_select {
            // A new file must not depend on a SELECT in the previous one; bytes that open with
            // their own SELECT need no other.
            if !bytes.starts_with(b"*2\r\n$6\r\nSELECT\r\n") {
                encode_command(&mut payload, &[&b"SELECT"[..], db.to_string().as_bytes()]);
            }
            self.need_select = false;
        }
        payload.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(payload.len() + 64);
        let mut chain = self.active.chain;
        encode_batch(&mut out, &mut chain, &payload);
        let padded = self.opts.fsync == FsyncPolicy::Always;
        let end = self.active.size + out.len() as u64;
        if padded && self.active.pad_end < end + 3 {
            // The batch goes over durable padding only (see `extend_padding`).
            self.extend_padding(end)?;
        }
        let content_len = out.len() as u64;
        let write_started = Instant::now();
        if let Err(e) = self.write_content(&mut out, padded) {
            // Like Redis, try to take a partial write back out; the failure latches anyway.
            let _ = self.vfs.truncate(&self.active.path, self.active.size);
            self.active.pad_end = self.active.size;
            return Err(io_msg("write", &self.active.path, &e));
        }
        self.active.size += content_len;
        self.active.pad_end = self.active.pad_end.max(self.active.size);
        self.active.chain = chain;
        self.written += bytes.len() as u64;
        let write_us = micros(write_started.elapsed());
        {
            let mut g = self.shared.lock();
            g.stats.batches += 1;
            g.stats.batch_bytes_total += payload.len() as u64;
            g.stats.batch_bytes_max = g.stats.batch_bytes_max.max(payload.len() as u64);
            g.stats.window_max_write_us = g.stats.window_max_write_us.max(write_us);
        }
        self.shared.publish(Some(self.written), None, None);
        if let Some(t) = since {
            let us = micros(t.elapsed());
            let mut g = self.shared.lock();
            g.stats.window_max_wait_us = g.stats.window_max_wait_us.max(us);
        }
        let mut took = None;
        match self.opts.fsync {
            FsyncPolicy::Always => {
                let started = Instant::now();
                self.sync_active()?;
                took = Some(started.elapsed());
                if self.active.pad_end < self.active.size + PAD_LOW
                    && self.active.size < self.opts.segment_bytes_max
                {
                    // Ahead of the next batch, after this one's replies were released.
                    self.extend_padding(self.active.size)?;
                }
            }
            FsyncPolicy::EverySec => {
                let shared = self.shared.clone();
                let g = shared.lock();
                if shared.fsync_due(&g, self.written, self.last_fsync_ms) {
                    drop(self.request_sync(g, true));
                }
            }
            FsyncPolicy::No => {}
        }
        if self.active.size >= self.opts.segment_bytes_max {
            self.rotate()?;
        }
        Ok(took)
    }

    /// Seal the active file (fsync it) and switch to a new incr file in the manifest.
    ///
    /// Critical path: the next incr file was created ahead of time (`prepare_spare`), so only
    /// the manifest is written here, while a helper thread fsyncs the sealed file's unsynced
    /// tail (everysec/no; under `always` it has none). Both finish before the first byte goes
    /// to the new file: a manifest listing it is durable first (else recovery would ignore
    /// acknowledged bytes), and so is the sealed file's whole content (else a power loss could
    /// keep bytes of the new file but lose the sealed file's tail: not a prefix of the log).
    fn rotate(&mut self) -> Result<(), String> {
        let shared = self.shared.clone();
        let _io = shared.manifest_io();
        let current = shared.files().manifest.clone();
        let seq = current.next_incr_seq();
        let spare = shared.take_spare(seq);
        let sealed = self.active.file.clone();
        let sealed_path = self.active.path.clone();
        let took = Mutex::new(None);
        let seal = || {
            let started = Instant::now();
            sealed
                .sync_data()
                .map_err(|e| io_msg("fsync", &sealed_path, &e))?;
            *took.lock().unwrap_or_else(|p| p.into_inner()) = Some(started.elapsed());
            Ok(())
        };
        {
            // The everysec fsync thread's fsyncs count too (they are of this file, or of
            // files sealed before it).
            let mut g = shared.lock();
            self.synced = self.synced.max(g.stats.synced);
            g.stats.last_seal_bytes = self.written - self.synced;
        }
        let need_seal = self.synced < self.written;
        // Everysec: replies wait for `written`, which needs the new manifest renamed into place
        // (a process crash keeps the rename) but not its directory fsync: that is deferred to
        // the next report of `synced` (the fsync thread's, about a second later, the writer's
        // own, or shutdown's), which does it first. A power loss before it leaves the old or
        // the new manifest: both load a prefix (the sealed file is complete either way, and
        // the new file's bytes are ignored under the old one). `always` reports `synced` per
        // batch, so nothing would be gained; `no` has no fsync thread to do it.
        let defer = self.opts.fsync == FsyncPolicy::EverySec;
        let added = add_incr_file(
            self.vfs.as_ref(),
            &self.opts,
            &current,
            seq,
            spare,
            need_seal.then_some(&seal as &SealFn<'_>),
            shared.deterministic,
            defer,
        );
        if added.is_ok() && defer {
            *shared.dir_sync_pending() = true;
        }
        if let Some(took) = took.into_inner().unwrap_or_else(|p| p.into_inner()) {
            self.synced = self.written;
            self.last_fsync_ms = shared.clock.monotonic_ms();
            {
                let mut g = shared.lock();
                g.stats.last_fsync_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                g.stats.fsyncs += 1;
                g.stats.synced = g.stats.synced.max(self.synced);
            }
            // With the directory fsync deferred, the sealed file's bytes are reported synced
            // after it (the next report covers a position past them).
            let synced = (!defer).then_some(self.synced);
            shared.publish(Some(self.written), synced, None);
        }
        let (manifest, active) = added.map_err(|e| e.to_string())?;
        {
            let mut f = shared.files();
            f.sealed_size += self.active.size;
            f.manifest = manifest;
        }
        // The sealed file's padding goes (Redis and we read it either way).
        self.trim_padding()?;
        self.active = active;
        self.need_select = true;
        self.last_ts = None;
        // Unlocked first: the new spare's thread prepares the next manifest under it.
        drop(_io);
        shared.prepare_spare(seq + 1);
        Ok(())
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Rotate(reply) => {
                // Latched: no more I/O (the queued bytes before it were not written either).
                let latched = self.shared.lock().failed.clone();
                if let Some(f) = latched {
                    let _ = reply.send(Err(AofError::Failed(f)));
                    return;
                }
                let started = Instant::now();
                let rotated = self.rotate();
                self.shared.lock().stats.last_rotate_us =
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let res = match rotated {
                    Ok(()) => {
                        let f = self.shared.files();
                        let replaced = f
                            .manifest
                            .base
                            .iter()
                            .chain(&f.manifest.incr)
                            .filter(|e| e.name != self.active.name)
                            .map(|e| e.name.clone())
                            .collect();
                        Ok(RewriteTicket {
                            replaced,
                            new_incr: self.active.name.clone(),
                            base_seq: f.manifest.next_base_seq(),
                        })
                    }
                    Err(msg) => {
                        self.shared.fail(msg.clone());
                        Err(AofError::Failed(msg))
                    }
                };
                let _ = reply.send(res);
            }
        }
    }
}

/// Installs a rewrite's base: the manifest switch and the removal of the replaced files, on
/// the calling thread, while the writer thread goes on appending to the active incr file (the
/// switch does not touch it). A segment rotation that comes due meanwhile waits for the switch.
#[derive(Clone)]
pub struct Installer {
    shared: Arc<Shared>,
}

impl Installer {
    /// See [`LogWriter::install_base`]. A failure latches the log, like a failed write.
    pub fn install_base(&self, name: &str, ticket: RewriteTicket) -> Result<(), AofError> {
        if let Some(f) = self.shared.lock().failed.clone() {
            return Err(AofError::Failed(f));
        }
        let started = Instant::now();
        let res = self.switch(name, &ticket);
        self.shared.lock().stats.last_install_us =
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Err(e) = &res {
            self.shared.fail(e.to_string());
        }
        res
    }

    fn switch(&self, name: &str, ticket: &RewriteTicket) -> Result<(), AofError> {
        let sh = &self.shared;
        let (vfs, opts) = (sh.vfs.as_ref(), &sh.opts);
        let _io = sh.manifest_io();
        // This switch writes through the temp manifest path; the next rotation's prepared
        // manifest is prepared again for the new manifest once it is done.
        sh.forget_prepared_manifest();
        let mut next = sh.files().manifest.clone();
        let mut history: Vec<ManifestEntry> = Vec::new();
        if let Some(old) = next.base.take() {
            if ticket.replaced.contains(&old.name) {
                history.push(old);
            }
        }
        next.incr.retain(|e| {
            let replaced = ticket.replaced.contains(&e.name);
            if replaced {
                history.push(e.clone());
            }
            !replaced
        });
        next.base = Some(ManifestEntry {
            name: name.to_string(),
            seq: ticket.base_seq,
            kind: FileType::Base,
        });
        let mname = manifest_name(&opts.filename);
        let mpath = opts.dir.join(&mname);
        // Step 1: the switch (old files listed as history, like Redis).
        let mut with_history = next.clone();
        with_history.history = history
            .iter()
            .map(|e| ManifestEntry {
                kind: FileType::History,
                ..e.clone()
            })
            .collect();
        write_file_atomic(vfs, &opts.dir, &mname, &with_history.format())
            .map_err(AofError::io("write manifest", &mpath))?;
        // Step 2: delete the history files, then drop them from the manifest.
        for h in &history {
            let p = opts.dir.join(&h.name);
            vfs.remove_file(&p).map_err(AofError::io("remove", &p))?;
        }
        write_file_atomic(vfs, &opts.dir, &mname, &next.format())
            .map_err(AofError::io("write manifest", &mpath))?;
        let size_of = |n: &str| vfs.len(&opts.dir.join(n)).unwrap_or(0);
        let base_size = size_of(name);
        // Every incr file but the last (the active one) is sealed.
        let sealed_size = next
            .incr
            .iter()
            .take(next.incr.len().saturating_sub(1))
            .map(|e| size_of(&e.name))
            .sum();
        let segments = next.incr.len();
        let old_sizes = {
            let mut f = sh.files();
            let old = f.base_size + f.sealed_size;
            f.base_size = base_size;
            f.sealed_size = sealed_size;
            f.manifest = next;
            old
        };
        // Lock order: `files` is never held while taking `inner` (the writer takes `files`
        // inside `inner` in `update_stats`).
        {
            let mut g = sh.lock();
            let active = g.stats.current_size.saturating_sub(old_sizes);
            g.stats.segments = segments;
            g.stats.base_size = base_size;
            g.stats.current_size = base_size + sealed_size + active;
        }
        sh.prepare_manifest();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{CrashOptions, RealFs, SimFs};
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct ManualClock(AtomicU64);
    impl Clock for ManualClock {
        fn monotonic_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
        fn unix_secs(&self) -> i64 {
            1_700_000_000
        }
    }

    fn opts(policy: FsyncPolicy) -> AofOptions {
        AofOptions {
            dir: PathBuf::from("/d/appendonlydir"),
            filename: "appendonly.aof".to_string(),
            fsync: policy,
            segment_bytes_max: 1 << 20,
            timestamp_enabled: false,
        }
    }

    fn open(
        fs: &SimFs,
        policy: FsyncPolicy,
        clock: Arc<ManualClock>,
    ) -> (LogWriter, Arc<Mutex<Vec<Progress>>>) {
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let w = LogWriter::open_with_clock(
            Arc::new(fs.clone()),
            opts(policy),
            ResumePoint::default(),
            Box::new(move |p| s.lock().expect("lock").push(p.clone())),
            clock,
        )
        .expect("open");
        (w, seen)
    }

    const CMD: &[u8] = b"*1\r\n$4\r\nPING\r\n";

    /// Each policy under contention from every side at once — writes (under everysec most
    /// of them on the calling thread), holds, WAITAOF-style sync requests, and a clock that
    /// makes an everysec fsync due every few writes — for a while: nothing hangs (a
    /// watchdog), and at the end everything submitted is synced (written, under `no`). The
    /// everysec variant caught the writer's self-deadlock fixed in af28792 in 3 runs of 3.
    fn contention_never_hangs(policy: FsyncPolicy) {
        let fs = SimFs::new(11);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, policy, clock.clone());
        let w = Arc::new(w);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for role in 0..3 {
            let (w, clock, stop, done_tx) =
                (w.clone(), clock.clone(), stop.clone(), done_tx.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match role {
                        0 => {
                            w.submit(CMD, 0);
                        }
                        1 => {
                            clock
                                .0
                                .fetch_add(EVERYSEC_INTERVAL_MS / 4, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        _ => {
                            if n.is_multiple_of(2) {
                                drop(w.hold());
                            } else {
                                w.request_sync_soon();
                            }
                            std::thread::sleep(Duration::from_micros(300));
                        }
                    }
                    n += 1;
                }
                let _ = done_tx.send(role);
            }));
        }
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        for _ in 0..3 {
            done_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a thread hung on the log writer");
        }
        for t in threads {
            t.join().expect("thread");
        }
        clock.0.fetch_add(EVERYSEC_INTERVAL_MS, Ordering::SeqCst);
        let end = w.submit(CMD, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let w2 = w.clone();
        let waiter = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let done = |p: Progress| {
                if policy == FsyncPolicy::No {
                    p.written
                } else {
                    p.synced
                }
            };
            while done(w2.progress()) < end && Instant::now() < deadline {
                w2.request_sync_soon();
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = tx.send(done(w2.progress()));
        });
        let synced = rx.recv_timeout(Duration::from_secs(30)).expect("hung");
        waiter.join().expect("waiter");
        assert!(
            synced >= end,
            "{policy:?}: synced {synced} < submitted {end}"
        );
        let w = Arc::try_unwrap(w).ok().expect("sole owner");
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn everysec_writer_under_contention_never_hangs() {
        contention_never_hangs(FsyncPolicy::EverySec);
    }

    #[test]
    fn always_writer_under_contention_never_hangs() {
        contention_never_hangs(FsyncPolicy::Always);
    }

    #[test]
    fn no_fsync_writer_under_contention_never_hangs() {
        contention_never_hangs(FsyncPolicy::No);
    }

    /// everysec: the writer thread finds an fsync due, and before it re-checks under the
    /// appender lock a write on the execution thread requests that fsync itself. The writer
    /// must go on (it once kept a second guard of the state lock across re-locking it, and
    /// hung the server with every thread waiting on that lock).
    #[test]
    fn everysec_sync_requested_by_another_write_meanwhile_does_not_hang_the_writer() {
        let fs = SimFs::new(7);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, FsyncPolicy::EverySec, clock.clone());
        let (at_tx, at_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let mut fired = false;
        *w.shared.hook_before_sync_recheck.lock().expect("hook") = Some(Box::new(move || {
            if !fired {
                fired = true;
                let _ = at_tx.send(());
                let _ = go_rx
                    .lock()
                    .expect("go")
                    .recv_timeout(Duration::from_secs(10));
            }
        }));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // Written, then a second passes with nothing written: the writer's tick finds
            // the fsync due.
            w.submit(CMD, 0);
            clock
                .0
                .fetch_add(EVERYSEC_INTERVAL_MS + 1, Ordering::SeqCst);
            at_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the writer's check");
            // The writer is between its check and its re-check: this write runs on this
            // thread and requests the fsync.
            let end = w.submit(CMD, 0);
            let _ = go_tx.send(());
            assert!(w.stats().inline_batches >= 2, "{:?}", w.stats());
            for _ in 0..5 {
                clock
                    .0
                    .fetch_add(EVERYSEC_INTERVAL_MS + 1, Ordering::SeqCst);
                w.submit(CMD, 0);
            }
            drop(w.hold());
            assert!(w.stats().synced >= end, "{:?}", w.stats());
            w.shutdown().expect("shutdown");
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the log writer hung (every thread waiting on its state lock)");
        t.join().expect("test thread");
    }

    #[test]
    fn many_submits_share_one_batch_and_one_fsync() {
        let fs = SimFs::new(1);
        let (w, _) = open(&fs, FsyncPolicy::Always, Arc::default());
        let g = w.hold();
        for _ in 0..50 {
            w.submit(CMD, 0);
        }
        drop(g);
        drop(w.hold());
        let s = w.stats();
        assert_eq!((s.batches, s.fsyncs), (1, 1), "{s:?}");
        assert_eq!(s.synced, 50 * CMD.len() as u64);
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn always_gathers_the_released_group_before_the_next_fsync() {
        let t0 = Instant::now();
        let fresh = GatherClock::default();
        let g = Gather::after_fsync(1000, Duration::from_micros(800), &fresh, t0);
        // Fewer bytes than the last batch, before the deadline: keep gathering.
        assert_eq!(g.wait(10, t0), Some(Duration::from_micros(800)));
        assert_eq!(
            g.wait(999, t0 + Duration::from_micros(300)),
            Some(Duration::from_micros(500))
        );
        // The group is back, or the deadline passed: start.
        assert_eq!(g.wait(1000, t0), None);
        assert_eq!(g.wait(1, t0 + Duration::from_micros(800)), None);
        // The deadline is clamped: a slow disk never makes a batch wait more than 2 ms, a
        // fast one still leaves time for a round trip.
        let slow = Gather::after_fsync(1000, Duration::from_millis(50), &fresh, t0);
        assert_eq!(slow.wait(0, t0), Some(GATHER_MAX));
        let fast = Gather::after_fsync(1000, Duration::from_micros(1), &fresh, t0);
        assert_eq!(fast.wait(0, t0), Some(GATHER_MIN));
        // A group that takes longer to come back than an fsync lasts: the deadline is twice
        // its smoothed return time.
        let slow_group = GatherClock {
            back: Duration::from_micros(600),
        };
        let g = Gather::after_fsync(1000, Duration::from_micros(300), &slow_group, t0);
        assert_eq!(g.wait(0, t0), Some(Duration::from_micros(1200)));
    }

    #[test]
    fn gathering_is_chosen_when_the_disk_is_the_bottleneck_or_the_batch_is_big() {
        let clock = |us| GatherClock {
            back: Duration::from_micros(us),
        };
        let small = GATHER_ALWAYS_BYTES - 1;
        // Groups that come back faster than an fsync lasts: the disk is the bottleneck.
        assert!(gather_pays(small, &clock(100), &clock(300), 0));
        assert!(gather_pays(small, &clock(300), &clock(300), 0));
        // Slower than an fsync: execution is, and two groups overlapping beat one.
        assert!(!gather_pays(small, &clock(600), &clock(120), 0));
        assert!(!gather_pays(
            small,
            &clock(600),
            &clock(120),
            GATHER_PROBE_EVERY - 1
        ));
        // ...but now and then one gathers to measure the return time again.
        assert!(gather_pays(
            small,
            &clock(600),
            &clock(120),
            GATHER_PROBE_EVERY
        ));
        // Big batches always gather.
        assert!(gather_pays(
            GATHER_ALWAYS_BYTES,
            &clock(600),
            &clock(120),
            0
        ));
        // A fresh writer has measured nothing: it gathers, and so starts measuring.
        assert!(gather_pays(small, &clock(0), &clock(0), 0));
    }

    #[test]
    fn the_gathering_deadline_follows_the_groups_return_time() {
        let mut c = GatherClock::default();
        // Groups that come back in 400 µs: the estimate converges to 400 µs.
        for _ in 0..100 {
            c.observe(Duration::from_micros(400));
        }
        assert!(c.back.abs_diff(Duration::from_micros(400)) < Duration::from_micros(5));
        // Missed deadlines (the group took longer than twice the estimate) lengthen it by an
        // eighth each time.
        let before = c.back;
        c.observe(before * 2);
        assert_eq!(c.back, before * 9 / 8);
        // Bounded by GATHER_MAX however often the group misses.
        for _ in 0..1000 {
            let t0 = Instant::now();
            let g = Gather::after_fsync(1, Duration::ZERO, &c, t0);
            assert!(g.until - t0 <= GATHER_MAX);
            c.observe(g.until - g.since);
        }
        let t0 = Instant::now();
        assert_eq!(
            Gather::after_fsync(1, Duration::ZERO, &c, t0).until - t0,
            GATHER_MAX
        );
    }

    /// A command big enough that two of them pass GATHER_TARGET_MIN and one does not, so
    /// batches of it are gathered for.
    fn big_cmd() -> Vec<u8> {
        let mut big = Vec::new();
        encode_command(&mut big, &[&b"SET"[..], b"k", &[b'v'; 300][..]]);
        assert!(big.len() < GATHER_TARGET_MIN && 2 * big.len() >= GATHER_TARGET_MIN);
        big
    }

    #[test]
    fn a_lone_client_never_waits_for_a_group() {
        // One client, one command at a time: each batch is the size of the last one, so it
        // starts at once however slow the fsync was.
        let fs = SimFs::new(3);
        fs.set_sync_delay(Duration::from_millis(30));
        let (w, _) = open(&fs, FsyncPolicy::Always, Arc::default());
        // Batches past GATHER_TARGET_MIN, so gathering is in play and the size rule decides.
        let cmd = &big_cmd()[..];
        for i in 1..=3u64 {
            let end = w.submit(cmd, 0);
            assert_eq!(end, i * cmd.len() as u64);
            drop(w.hold());
            while w.progress().synced < end {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let s = w.stats();
        assert_eq!((s.fsyncs, s.gather_timeouts), (3, 0), "{s:?}");
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn a_batch_under_the_size_floor_is_not_gathered_for() {
        // Two small commands, then one: with a target under GATHER_TARGET_MIN the lone
        // command starts at once (no timeout counted).
        let fs = SimFs::new(5);
        let (w, _) = open(&fs, FsyncPolicy::Always, Arc::default());
        let sync = |end: u64| {
            while w.progress().synced < end {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let g = w.hold();
        w.submit(b"*1\r\n$4\r\nPING\r\n", 0);
        let end = w.submit(b"*1\r\n$4\r\nPING\r\n", 0);
        drop(g);
        sync(end);
        sync(w.submit(b"*1\r\n$4\r\nPING\r\n", 0));
        assert_eq!(w.stats().gather_timeouts, 0);
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn a_smaller_batch_waits_for_the_deadline_then_gathering_backs_off() {
        let fs = SimFs::new(4);
        // fsyncs slower than any deadline (GATHER_MAX): the groups' return time, even counted
        // as a whole missed deadline, stays below the fsync's, so only the size rule and the
        // back-off decide (see `gather_pays`).
        fs.set_sync_delay(GATHER_MAX * 10);
        let (w, _) = open(&fs, FsyncPolicy::Always, Arc::default());
        let big = &big_cmd()[..];
        let sync = |end: u64| {
            while w.progress().synced < end {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let g = w.hold();
        w.submit(big, 0);
        let end = w.submit(big, 0);
        drop(g);
        sync(end);
        // Half the last batch: it starts only at the deadline.
        sync(w.submit(big, 0));
        assert_eq!(w.stats().gather_timeouts, 1);
        // After a timeout the next batches start at once, whatever their size.
        for _ in 0..GATHER_BACKOFF_BATCHES {
            let g = w.hold();
            w.submit(big, 0);
            let end = w.submit(big, 0);
            drop(g);
            sync(end);
        }
        assert_eq!(w.stats().gather_timeouts, 1);
        // Then gathering resumes: a batch half the size of the last waits again.
        sync(w.submit(big, 0));
        let s = w.stats();
        assert_eq!(
            (s.batches, s.gather_timeouts),
            (3 + u64::from(GATHER_BACKOFF_BATCHES), 2),
            "{s:?}"
        );
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn a_failed_fsync_latches_and_nothing_more_is_published() {
        let fs = SimFs::new(2);
        let (w, seen) = open(&fs, FsyncPolicy::Always, Arc::default());
        w.submit(CMD, 0);
        drop(w.hold());
        let before = w.progress();
        fs.fail_nth_sync(1);
        w.submit(CMD, 0);
        drop(w.hold());
        w.submit(CMD, 0); // after the failure: never written
        drop(w.hold());
        let p = w.progress();
        assert!(
            p.failed.as_deref().is_some_and(|f| f.contains("fsync")),
            "{p:?}"
        );
        assert_eq!(
            p.synced, before.synced,
            "the failed batch is never reported synced"
        );
        assert!(w.stats().last_error.is_some());
        let last = seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("published");
        assert!(last.failed.is_some());
        assert!(matches!(w.shutdown(), Err(AofError::Failed(_))));
    }

    #[test]
    fn everysec_writes_promptly_and_fsyncs_once_a_second() {
        let fs = SimFs::new(3);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, FsyncPolicy::EverySec, clock.clone());
        w.submit(CMD, 0);
        drop(w.hold());
        let p = w.progress();
        assert_eq!(
            (p.written, p.synced),
            (CMD.len() as u64, 0),
            "written, not yet synced"
        );
        {
            let _g = w.hold();
            clock.0.fetch_add(EVERYSEC_INTERVAL_MS, Ordering::SeqCst);
        }
        drop(w.hold()); // waits for the due fsync
        assert_eq!(w.progress().synced, CMD.len() as u64);
        assert_eq!(w.stats().fsyncs, 1);
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn an_idle_writer_lets_the_submitter_write_everysec_and_no_batches_itself() {
        for policy in [FsyncPolicy::EverySec, FsyncPolicy::No, FsyncPolicy::Always] {
            let fs = SimFs::new(7);
            let (w, _) = open(&fs, policy, Arc::default());
            drop(w.hold()); // the writer thread is idle
            let end = w.submit(CMD, 0);
            let here = policy != FsyncPolicy::Always;
            // Written before `submit` returned: no other thread was involved. (Under `always`
            // the writer thread may or may not have written it by now: only the count says
            // who did.)
            if here {
                assert_eq!(w.progress().written, end, "{policy:?}");
            }
            assert_eq!(w.stats().inline_batches, u64::from(here), "{policy:?}");
            // Held (or with bytes queued), the bytes wait for the writer thread, in order.
            let g = w.hold();
            w.submit(CMD, 0);
            w.submit(CMD, 0);
            assert!(w.progress().written < 3 * CMD.len() as u64, "{policy:?}");
            drop(g);
            drop(w.hold());
            assert_eq!(w.progress().written, 3 * CMD.len() as u64, "{policy:?}");
            assert_eq!(w.stats().inline_batches, u64::from(here), "{policy:?}");
            // Turned off (while a snapshot runs), the writer thread writes.
            w.write_here(false);
            w.submit(CMD, 0);
            drop(w.hold());
            assert_eq!(w.stats().inline_batches, u64::from(here), "{policy:?}");
            w.write_here(true);
            w.shutdown().expect("shutdown");
            let log = fs
                .read(Path::new("/d/appendonlydir/appendonly.aof.1.incr.aof"))
                .expect("incr file");
            let cmds = log.windows(CMD.len()).filter(|x| *x == CMD).count();
            assert_eq!(cmds, 4, "{policy:?}");
        }
    }

    #[test]
    fn a_sync_asked_for_runs_before_the_interval() {
        let fs = SimFs::new(4);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, FsyncPolicy::EverySec, clock);
        assert_eq!(w.request_sync_soon(), None, "nothing to sync yet");
        w.submit(CMD, 0);
        drop(w.hold());
        assert_eq!(w.progress().synced, 0, "the interval has not passed");
        // Asked for while the bytes are still pending, too: the fsync covers them.
        w.submit(CMD, 0);
        let target = w.request_sync_soon().expect("unsynced bytes");
        assert_eq!(target, 2 * CMD.len() as u64);
        drop(w.hold()); // waits for the due fsync
        assert_eq!(w.progress().synced, target);
        assert_eq!(w.stats().fsyncs, 1);
        assert_eq!(w.request_sync_soon(), None, "all synced");
        w.shutdown().expect("shutdown");

        for policy in [FsyncPolicy::Always, FsyncPolicy::No] {
            let fs = SimFs::new(5);
            let (w, _) = open(&fs, policy, Arc::default());
            w.submit(CMD, 0);
            assert_eq!(w.request_sync_soon(), None, "{policy:?}");
            w.shutdown().expect("shutdown");
        }
    }

    #[test]
    fn everysec_writes_beside_a_young_fsync_and_postpones_behind_a_slow_one_for_at_most_2s() {
        let fs = SimFs::new(6);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, FsyncPolicy::EverySec, clock.clone());
        // Real time the fsync takes: the steps below happen while it is in flight.
        fs.set_sync_delay(Duration::from_millis(2000));
        {
            let _g = w.hold();
            clock.0.fetch_add(EVERYSEC_INTERVAL_MS, Ordering::SeqCst);
            w.submit(CMD, 0);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.shared.lock().sync_in_progress {
            assert!(Instant::now() < deadline, "fsync never started");
            std::thread::sleep(Duration::from_millis(1));
        }
        w.reset_window();
        // Requested just now (manual time): the write does not wait for it.
        let end = w.submit(CMD, 0);
        while w.progress().written < end {
            assert!(Instant::now() < deadline, "write waited for a young fsync");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            w.shared.lock().sync_in_progress,
            "the fsync is still in flight"
        );
        assert!(w.progress().synced < end);
        // In flight for EVERYSEC_POSTPONE_AFTER_MS: writes are postponed.
        clock
            .0
            .fetch_add(EVERYSEC_POSTPONE_AFTER_MS, Ordering::SeqCst);
        let end = w.submit(CMD, 0);
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            w.progress().written < end,
            "postponed while the slow fsync runs"
        );
        // 2 s of (manual) time later the write goes ahead anyway and is counted.
        clock
            .0
            .fetch_add(EVERYSEC_POSTPONE_MS_MAX, Ordering::SeqCst);
        while w.progress().written < end {
            assert!(Instant::now() < deadline, "write never went ahead");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            w.shared.lock().sync_in_progress,
            "the fsync is still in flight"
        );
        let s = w.stats();
        assert_eq!(s.delayed_fsyncs, 1, "{s:?}");
        assert_eq!(
            s.window_max_postpone_us,
            EVERYSEC_POSTPONE_MS_MAX * 1000,
            "{s:?}"
        );
        assert!(s.window_max_wait_us > 0, "{s:?}");
        fs.set_sync_delay(Duration::ZERO);
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn segments_rotate_into_the_manifest() {
        let fs = SimFs::new(4);
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let mut o = opts(FsyncPolicy::No);
        o.segment_bytes_max = 64;
        let w = LogWriter::open(
            Arc::new(fs.clone()),
            o,
            ResumePoint::default(),
            Box::new(|_| {}),
        )
        .expect("open");
        for _ in 0..5 {
            w.submit(CMD, 0);
            drop(w.hold());
        }
        assert_eq!(w.stats().segments, 6);
        // Sealing fsyncs even under `no`: sealed segments are durable.
        assert_eq!(w.progress().synced, 5 * CMD.len() as u64);
        w.shutdown().expect("shutdown");
        let m = fs
            .read(Path::new("/d/appendonlydir/appendonly.aof.manifest"))
            .expect("manifest");
        let m = Manifest::parse(&m).expect("parse");
        assert_eq!(m.incr.len(), 6);
        assert_eq!(m.incr[5].name, "appendonly.aof.6.incr.aof");
    }

    /// `always` writes batches directly (whole 4 KiB blocks: the last block's content again,
    /// the batch, the padding up to the block's end) where the file system takes direct
    /// writes; the file holds exactly the bytes the page-cache path leaves, after every batch
    /// (content, filler, padding). (Durability: the crash simulations, recovery/tests/crash.rs,
    /// which run `always` seeds with and without direct writes.)
    #[test]
    fn direct_writes_leave_the_bytes_the_page_cache_path_does() {
        let sizes = [
            1usize, 44, 4051, 4096, 4097, 9000, 3, 130_000, 2, 5000, 4095, 600_000,
        ];
        let run = |direct: bool| {
            let fs = SimFs::new(9);
            fs.set_direct_supported(direct);
            fs.record_trace();
            let (w, _) = open(&fs, FsyncPolicy::Always, Arc::new(ManualClock::default()));
            let incr = Path::new("/d/appendonlydir/appendonly.aof.1.incr.aof");
            let mut files = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let mut cmd = Vec::new();
                let v = vec![b'a' + i as u8; *n];
                encode_command(&mut cmd, &[&b"SET"[..], b"k", &v]);
                let end = w.submit(&cmd, 0);
                drop(w.hold());
                assert_eq!(w.progress().synced, end);
                files.push(fs.read(incr).expect("incr file"));
            }
            let trace = fs.take_trace();
            let direct_batches = w.stats().direct_batches;
            w.shutdown().expect("shutdown");
            (files, trace, direct_batches)
        };
        let (direct, trace, direct_stats) = run(true);
        let (buffered, plain_trace, plain_stats) = run(false);
        // The real file system (O_DIRECT where it has it: ext4 here; tmpfs has not).
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut o = opts(FsyncPolicy::Always);
        o.dir = tmp.path().join("appendonlydir");
        let w = LogWriter::open(
            Arc::new(RealFs),
            o,
            ResumePoint::default(),
            Box::new(|_| {}),
        )
        .expect("open");
        for (i, n) in sizes.iter().enumerate() {
            let mut cmd = Vec::new();
            encode_command(&mut cmd, &[&b"SET"[..], b"k", &vec![b'a' + i as u8; *n]]);
            let end = w.submit(&cmd, 0);
            drop(w.hold());
            assert_eq!(w.progress().synced, end);
            let real = std::fs::read(tmp.path().join("appendonlydir/appendonly.aof.1.incr.aof"))
                .expect("read");
            assert!(real == buffered[i], "real fs, after batch {i}");
        }
        w.shutdown().expect("shutdown");
        assert_eq!(direct.len(), buffered.len());
        for (i, (d, b)) in direct.iter().zip(&buffered).enumerate() {
            assert!(d == b, "after batch {i}: {} vs {} bytes", d.len(), b.len());
        }
        let direct_writes: Vec<&String> = trace
            .iter()
            .filter(|l| l.contains(" write_at ") && !l.contains("err("))
            .filter(|l| {
                // "<n> bytes at <offset>": whole blocks (padding extensions are not).
                let w: Vec<&str> = l.split_whitespace().collect();
                let at = w.iter().position(|x| *x == "bytes").expect("bytes");
                let n: usize = w[at - 1].parse().expect("n");
                let off: usize = w[at + 2].parse().expect("offset");
                n.is_multiple_of(DIRECT_ALIGN) && off.is_multiple_of(DIRECT_ALIGN)
            })
            .collect();
        assert!(
            trace.iter().any(|l| l.contains("open_direct")),
            "{trace:#?}"
        );
        assert!(direct_writes.len() >= sizes.len(), "{trace:#?}");
        assert_eq!(direct_stats, sizes.len() as u64);
        assert_eq!(plain_stats, 0);
        assert!(!plain_trace
            .iter()
            .any(|l| l.contains("open_direct") && l.contains("ok Some")));
    }

    /// `CONFIG SET appendfsync`: the log is closed and a writer with the other policy
    /// continues it — same file, the chain unbroken, no padding left between the two parts —
    /// and what the new policy acknowledges survives a power loss accordingly.
    #[test]
    fn a_closed_log_continues_under_another_policy() {
        use super::super::batch::{BatchReader, Unit};
        const OTHER: &[u8] = b"*1\r\n$4\r\nECHO\r\n";
        let policies = [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No];
        for from in policies {
            for to in policies {
                let fs = SimFs::new(9);
                let (mut w, _) = open(&fs, from, Arc::default());
                fs.sync_dir(Path::new("/")).expect("fsync /");
                for _ in 0..3 {
                    w.submit(CMD, 0);
                }
                drop(w.hold());
                let resume = w.close().expect("close");
                let ap = resume.append.clone().expect("append point");
                let path = Path::new("/d/appendonlydir").join(&ap.file_name);
                assert_eq!(
                    fs.len(&path).expect("len"),
                    ap.valid_len,
                    "{from:?}: padding left"
                );
                let w = LogWriter::open(Arc::new(fs.clone()), opts(to), resume, Box::new(|_| {}))
                    .expect("reopen");
                w.submit(OTHER, 0);
                w.submit(OTHER, 0);
                drop(w.hold());
                assert_eq!(
                    w.progress().written,
                    2 * OTHER.len() as u64,
                    "positions restart"
                );
                let synced_after = w.progress().synced;
                // (commands, of which ECHO) in the valid batches of the file; every batch of
                // the live file verifies, the chain running on from the first writer's.
                let count = |bytes: &[u8]| {
                    let (mut batches, mut cmds, mut others) = (0, 0, 0);
                    let mut r = BatchReader::new(bytes, 0);
                    while let Some(u) = r.next() {
                        if let Unit::Batch { commands, .. } = u.expect("valid batch") {
                            batches += 1;
                            for c in commands.iter().filter(|c| c.argv[0] != b"SELECT") {
                                cmds += 1;
                                others += usize::from(c.argv == [&b"ECHO"[..]]);
                            }
                        }
                    }
                    (batches, cmds, others)
                };
                let (batches, cmds, others) = count(&fs.read(&path).expect("read"));
                assert!(batches >= 2, "{from:?}→{to:?}: {batches} batches");
                assert_eq!((cmds, others), (5, 2), "{from:?}→{to:?}");
                // Power loss now: closing fsynced the first part whatever its policy, and
                // under `always` the new writes are durable too.
                let after = fs.crash(CrashOptions::power_loss());
                let (_, cmds, others) = count(&after.read(&path).expect("read"));
                assert_eq!(cmds - others, 3, "{from:?}→{to:?}: first part lost");
                if to == FsyncPolicy::Always {
                    assert_eq!(synced_after, 2 * OTHER.len() as u64);
                    assert_eq!(others, 2, "{from:?}→{to:?}: acknowledged writes lost");
                }
                w.shutdown().expect("shutdown");
                assert_eq!(listed_incr_files(&fs), 1, "{from:?}→{to:?}");
            }
        }
    }

    const MANIFEST: &str = "/d/appendonlydir/appendonly.aof.manifest";

    fn listed_incr_files(fs: &SimFs) -> usize {
        Manifest::parse(&fs.read(Path::new(MANIFEST)).expect("manifest"))
            .expect("parse")
            .incr
            .len()
    }

    #[test]
    fn everysec_rotation_defers_its_directory_fsync_until_synced_is_reported() {
        let fs = SimFs::new(7);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, FsyncPolicy::EverySec, clock.clone());
        fs.sync_dir(Path::new("/")).expect("sync root");
        fs.sync_dir(Path::new("/d")).expect("sync /d");
        w.submit(CMD, 0);
        drop(w.hold());
        let t = w.rotate_for_rewrite().expect("rotate");
        assert_eq!(t.new_incr, "appendonly.aof.2.incr.aof");
        let end = w.submit(CMD, 0);
        drop(w.hold());
        // Written into the new incr file, which the renamed manifest names: the directory
        // fsync has not been waited for, and nothing is reported synced yet.
        assert_eq!(w.progress().written, end);
        assert!(w.progress().synced < CMD.len() as u64 * 2);
        assert!(*w.shared.dir_sync_pending());
        // A process kill keeps the rename, so the written bytes are found.
        let killed = fs.crash(CrashOptions {
            torn_writes: false,
            random_dir_ops: false,
            keep_unsynced: true,
        });
        assert_eq!(listed_incr_files(&killed), 2);
        // The next everysec fsync does the directory fsync before it reports synced.
        {
            let _g = w.hold();
            clock.0.fetch_add(EVERYSEC_INTERVAL_MS, Ordering::SeqCst);
        }
        drop(w.hold());
        assert_eq!(w.progress().synced, end);
        assert!(!*w.shared.dir_sync_pending());
        assert_eq!(listed_incr_files(&fs.crash(CrashOptions::power_loss())), 2);
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn a_new_incr_file_never_brings_back_an_orphans_bytes() {
        // Orphans with durable bytes at the names the writer will use next (what a power loss
        // can leave when it drops a rotation's manifest rename but keeps the new file's
        // bytes): the files the writer creates under those names are durably empty.
        let fs = SimFs::new(11);
        let clock = Arc::new(ManualClock::default());
        let (w, _) = open(&fs, FsyncPolicy::EverySec, clock.clone());
        w.shutdown().expect("shutdown");
        for root in ["/", "/d", "/d/appendonlydir"] {
            fs.sync_dir(Path::new(root)).expect("sync dir");
        }
        let manifest =
            Manifest::parse(&fs.read(Path::new(MANIFEST)).expect("read")).expect("parse");
        for seq in [2, 3] {
            let path = PathBuf::from(format!("/d/appendonlydir/appendonly.aof.{seq}.incr.aof"));
            let f = fs.create(&path).expect("create orphan");
            write_all(f.as_ref(), b"*1\r\n$4\r\nPING\r\n").expect("write orphan");
            f.sync_data().expect("sync orphan");
        }
        fs.sync_dir(Path::new("/d/appendonlydir"))
            .expect("sync dir");
        let w = LogWriter::open_with_clock(
            Arc::new(fs.clone()),
            opts(FsyncPolicy::EverySec),
            ResumePoint {
                manifest: Some(manifest),
                append: None,
            },
            Box::new(|_| ()),
            clock,
        )
        .expect("reopen");
        // Incr file 2 is made at open, 3 as the spare the rotation adopts.
        w.rotate_for_rewrite().expect("rotate");
        w.submit(CMD, 0);
        drop(w.hold());
        let crashed = fs.crash(CrashOptions::power_loss());
        for seq in [2, 3] {
            let path = PathBuf::from(format!("/d/appendonlydir/appendonly.aof.{seq}.incr.aof"));
            assert_eq!(crashed.read(&path).expect("read"), b"", "incr file {seq}");
        }
        drop(w);
    }

    #[test]
    fn a_rotation_renames_the_manifest_prepared_ahead_of_time() {
        let fs = SimFs::new(13);
        let (w, _) = open(&fs, FsyncPolicy::EverySec, Arc::default());
        let dir = Path::new("/d/appendonlydir");
        let temp = dir.join("temp-appendonly.aof.manifest");
        // The writer's own operations during a rotation, once the spare and its manifest are
        // prepared (the writer is idle after `hold`).
        let rotate = |w: &LogWriter| {
            w.submit(CMD, 0);
            drop(w.hold());
            fs.record_trace();
            let t = w.rotate_for_rewrite().expect("rotate");
            drop(w.hold());
            let ops: Vec<String> = fs
                .take_trace()
                .into_iter()
                .filter(|op| op.starts_with("aof-writer "))
                .collect();
            (t, ops)
        };
        let (t, ops) = rotate(&w);
        assert!(
            !ops.iter().any(|op| op.contains(" create ")),
            "the writer wrote no manifest itself: {ops:?}"
        );
        assert!(ops.iter().any(|op| op.contains(" rename ")), "{ops:?}");
        let m = Manifest::parse(&fs.read(&dir.join("appendonly.aof.manifest")).expect("read"))
            .expect("parse");
        assert_eq!(m.incr.len(), 2);
        // An install writes the manifest through the same temp path, then prepares the next
        // one again: the next rotation still only renames.
        let base = super::super::base_file_name("appendonly.aof", t.base_seq, true);
        write_file_atomic(&fs, dir, &base, b"REDIS0010").expect("base");
        w.install_base(&base, t).expect("install");
        let (_, ops) = rotate(&w);
        assert!(!ops.iter().any(|op| op.contains(" create ")), "{ops:?}");
        let m = Manifest::parse(&fs.read(&dir.join("appendonly.aof.manifest")).expect("read"))
            .expect("parse");
        assert_eq!(m.base.map(|b| b.name), Some(base));
        assert_eq!(m.incr.len(), 2);
        // A clean shutdown leaves no prepared manifest behind.
        w.shutdown().expect("shutdown");
        assert!(!fs.exists(&temp).expect("exists"));
    }

    #[test]
    fn rewrite_hooks_rotate_then_install_a_base() {
        let fs = SimFs::new(5);
        let (w, _) = open(&fs, FsyncPolicy::Always, Arc::default());
        w.submit(CMD, 0);
        let t = w.rotate_for_rewrite().expect("rotate");
        assert_eq!(t.replaced, vec!["appendonly.aof.1.incr.aof".to_string()]);
        assert_eq!(t.new_incr, "appendonly.aof.2.incr.aof");
        let dir = Path::new("/d/appendonlydir");
        let base = super::super::base_file_name("appendonly.aof", t.base_seq, false);
        write_file_atomic(&fs, dir, &base, CMD).expect("base");
        w.install_base(&base, t).expect("install");
        let m = Manifest::parse(&fs.read(&dir.join("appendonly.aof.manifest")).expect("read"))
            .expect("parse");
        assert_eq!(m.base.map(|b| b.name), Some(base));
        assert_eq!(m.incr.len(), 1);
        assert!(m.history.is_empty());
        assert!(!fs
            .exists(&dir.join("appendonly.aof.1.incr.aof"))
            .expect("exists"));
        w.shutdown().expect("shutdown");
    }

    #[test]
    fn a_requested_rotation_splits_the_log_at_the_request_point() {
        // The execution thread requests the rotation and keeps submitting without waiting:
        // bytes before the request stay in the replaced file, bytes after it go to the new
        // incr file only, and nothing after it is reported written before the new file is in
        // the manifest.
        const AFTER: &[u8] = b"*1\r\n$4\r\nECHO\r\n";
        for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
            let fs = SimFs::new(7);
            let (w, seen) = open(&fs, policy, Arc::default());
            let g = w.hold();
            let before_end = w.submit(CMD, 0);
            let pending = w.request_rotate_for_rewrite();
            let after_end = w.submit(AFTER, 3);
            assert!(
                pending.try_take().is_none(),
                "{policy:?}: held writer answered"
            );
            drop(g);
            let t = pending.wait().expect("rotate");
            drop(w.hold());
            assert_eq!(w.progress().written, after_end);
            w.shutdown().expect("shutdown");
            let dir = Path::new("/d/appendonlydir");
            let old = fs.read(&dir.join(&t.replaced[0])).expect("old");
            let new = fs.read(&dir.join(&t.new_incr)).expect("new");
            let has = |hay: &[u8], n: &[u8]| hay.windows(n.len()).any(|win| win == n);
            assert!(has(&old, CMD) && !has(&old, AFTER), "{policy:?}: old file");
            assert!(has(&new, AFTER) && !has(&new, CMD), "{policy:?}: new file");
            // The new file starts by selecting the database the later bytes were submitted in.
            assert!(has(&new, b"SELECT\r\n$1\r\n3"), "{policy:?}: no SELECT 3");
            // Progress never passed the rotation point before the rotation was done: every
            // published `written` is either ≤ before_end or the final end.
            let seen = seen.lock().expect("lock");
            assert!(
                seen.iter()
                    .all(|p| p.written <= before_end || p.written == after_end),
                "{policy:?}: {seen:?}"
            );
        }
    }

    #[test]
    fn a_file_opening_with_its_own_select_gets_no_second_one() {
        const SEL: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n*1\r\n$4\r\nPING\r\n";
        for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
            let fs = SimFs::new(9);
            let (w, _) = open(&fs, policy, Arc::default());
            w.submit(SEL, 0);
            let t = w.request_rotate_for_rewrite().wait().expect("rotate");
            // The new file opens with bytes of another database: it selects it first.
            w.submit(CMD, 2);
            w.shutdown().expect("shutdown");
            let dir = Path::new("/d/appendonlydir");
            let count = |name: &str| {
                let b = fs.read(&dir.join(name)).expect("read");
                b.windows(6).filter(|w| *w == b"SELECT").count()
            };
            assert_eq!(count(&t.replaced[t.replaced.len() - 1]), 1, "{policy:?}");
            assert_eq!(count(&t.new_incr), 1, "{policy:?}");
        }
    }

    #[test]
    fn an_install_needs_no_writer_thread_and_does_not_hold_back_writes() {
        let fs = SimFs::new(8);
        let (w, _) = open(&fs, FsyncPolicy::EverySec, Arc::default());
        w.submit(CMD, 0);
        let t = w.request_rotate_for_rewrite().wait().expect("rotate");
        let dir = Path::new("/d/appendonlydir");
        let base = super::super::base_file_name("appendonly.aof", t.base_seq, false);
        write_file_atomic(&fs, dir, &base, CMD).expect("base");
        let installer = w.installer();
        // The writer thread is held (it takes nothing) while the install completes on this
        // thread; bytes submitted meanwhile are written once it is released.
        let g = w.hold();
        let end = w.submit(CMD, 0);
        installer.install_base(&base, t.clone()).expect("install");
        drop(g);
        drop(w.hold());
        assert_eq!(w.progress().written, end);
        let s = w.stats();
        assert_eq!((s.segments, s.base_size), (1, CMD.len() as u64), "{s:?}");
        assert!(!fs.exists(&dir.join(&t.replaced[0])).expect("exists"));
        w.shutdown().expect("shutdown");
        let m = Manifest::parse(&fs.read(&dir.join("appendonly.aof.manifest")).expect("read"))
            .expect("parse");
        assert_eq!(m.base.map(|b| b.name), Some(base));
        assert_eq!(
            m.incr.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            vec![t.new_incr]
        );
        assert!(m.history.is_empty());
    }

    #[test]
    fn bytes_submitted_before_a_rotation_stay_in_the_replaced_file() {
        // Regression: the writer used to run a queued rotation before writing pending bytes,
        // so writes executed before BGREWRITEAOF's snapshot point landed in the new incr file
        // too and were applied twice after a restart.
        for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
            let fs = SimFs::new(6);
            let (w, _) = open(&fs, policy, Arc::default());
            // Queue the bytes while the writer is held, then queue the rotation behind them.
            let g = w.hold();
            w.submit(CMD, 0);
            let t = std::thread::scope(|sc| {
                let h = sc.spawn(|| w.rotate_for_rewrite().expect("rotate"));
                std::thread::sleep(Duration::from_millis(50));
                drop(g);
                h.join().expect("rotate thread")
            });
            w.shutdown().expect("shutdown");
            let dir = Path::new("/d/appendonlydir");
            let old = fs.read(&dir.join(&t.replaced[0])).expect("old");
            let new = fs.read(&dir.join(&t.new_incr)).expect("new");
            let contains = |hay: &[u8]| hay.windows(CMD.len()).any(|win| win == CMD);
            assert!(
                contains(&old),
                "{policy:?}: pending bytes missing from the replaced file"
            );
            assert!(
                !contains(&new),
                "{policy:?}: pending bytes written after the rotation"
            );
        }
    }
}

/// Measurement, not a CI test (wall-clock): rewrite rotations on the real file system.
/// `cargo test -p strongbox-storage --release --lib rotation_latency -- --ignored --nocapture`
#[cfg(test)]
mod rotation_latency {
    use super::*;
    use crate::fs::{RealFs, SimFs};

    fn run(policy: FsyncPolicy, vfs: Arc<dyn Vfs>, label: &str) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = AofOptions {
            dir: tmp.path().join("appendonlydir"),
            filename: "appendonly.aof".to_string(),
            fsync: policy,
            segment_bytes_max: u64::MAX,
            timestamp_enabled: false,
        };
        let w = LogWriter::open(vfs, opts, ResumePoint::default(), Box::new(|_| {})).expect("open");
        let cmd = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$64\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n";
        let mut rot = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..30 {
            for _ in 0..2000 {
                w.submit(cmd, 0);
            }
            drop(w.hold());
            std::thread::sleep(Duration::from_millis(30));
            for _ in 0..2000 {
                w.submit(cmd, 0);
            }
            // The wait a reply submitted right after the rotation request sees.
            let pending = w.request_rotate_for_rewrite();
            let started = Instant::now();
            let end = w.submit(cmd, 0);
            loop {
                let p = w.progress();
                let done = match policy {
                    FsyncPolicy::Always => p.synced >= end,
                    _ => p.written >= end,
                };
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            waits.push(started.elapsed().as_micros() as u64);
            pending.wait().expect("rotate");
            rot.push(w.stats().last_rotate_us);
        }
        rot.sort_unstable();
        waits.sort_unstable();
        println!(
            "{label} {policy:?}: last_rotate_us median {} max {}; reply wait after request us median {} max {}",
            rot[rot.len() / 2],
            rot[rot.len() - 1],
            waits[waits.len() / 2],
            waits[waits.len() - 1]
        );
        w.shutdown().expect("shutdown");
    }

    #[test]
    #[ignore]
    fn rotation_latency() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec] {
            run(policy, Arc::new(RealFs), "real fs");
            // Deterministic figure: every fsync (file or directory) takes 5 ms, so the
            // rotation time counts the fsyncs on the writer's critical path.
            let sim = SimFs::new(1);
            sim.set_sync_delay(Duration::from_millis(5));
            run(policy, Arc::new(sim), "SimFs, 5 ms per fsync,");
        }
    }
}
