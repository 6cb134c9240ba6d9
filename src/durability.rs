//! The durability pipeline: the one place where the effects of writes become log bytes, and where
//! the position that every reply must wait for is decided.
//!
//! Rule: *execute → append effect to the log buffer → (end of round) submit to the log writer →
//! release replies once the log is durable up to the position current when they were produced.*
//!
//! - Every write command's effect is appended here (by `exec::call`) in the form Redis propagates
//!   (deterministic: absolute expiries, DEL for expirations, the pop that happened, …).
//! - Every reply — reads included — carries `wait_pos`: with `appendfsync always` no client can
//!   see a value that a crash can take back, because a read of a value written by someone else
//!   waits for the bytes that produced it. A write's reply (and any reply that may depend on more
//!   than named keys) waits for the log end when it was produced; a read-only command on named
//!   keys waits only for the last logged change to those keys ([`Durability::read_pos`]: a map
//!   of recently changed keys, by hash, to the end of the change's bytes), so a read of data at
//!   rest is not held behind other clients' fsyncs or a log rotation.
//! - The execution thread never waits: at the end of each round it hands the buffer to the log
//!   writer thread (`strongbox_storage::aof::LogWriter`), which writes and fsyncs per policy and
//!   publishes its progress on a `watch` channel that connection tasks wait on (group commit:
//!   many clients' writes share one fsync).

use bytes::Bytes;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::resp::encode_command;

/// Progress of the log as connections see it: how far it is written and fsynced, whether
/// replies wait for the fsync (`appendfsync always`), and whether it has failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    pub written: u64,
    pub synced: u64,
    /// Replies wait for `synced` (appendfsync always) rather than `written`.
    pub always: bool,
    pub failed: bool,
}

impl Gate {
    /// Everything before this position may be released to clients under the fsync policy.
    pub fn released(&self) -> u64 {
        if self.always {
            self.synced
        } else {
            self.written
        }
    }
}

/// Carries the log writer's progress, published on the writer's own threads, to the gate that
/// connections watch, on the I/O runtime.
///
/// Sending on the `watch` from the writer thread would wake every waiting connection task from
/// outside the runtime, and each such wake costs the runtime a syscall to unpark it (with 50
/// clients under `appendfsync always`, strace counted 2.6 `write`s to the runtime's eventfd per
/// request). Instead the writer posts the latest progress here and wakes one task
/// ([`GateRelay::run`]), which updates the gate on the runtime: its wakes are local. It also
/// skips the wakes nobody needs: under `always` no reply waits for `written` alone.
pub struct GateRelay {
    state: Mutex<RelayState>,
    notify: tokio::sync::Notify,
    gate_tx: Arc<watch::Sender<Gate>>,
}

#[derive(Default)]
struct RelayState {
    /// Bumped whenever the log is replaced; progress posted for an older log is dropped.
    generation: u64,
    posted: Option<(u64, Gate)>,
}

impl GateRelay {
    fn new(gate_tx: Arc<watch::Sender<Gate>>) -> GateRelay {
        GateRelay {
            state: Mutex::new(RelayState::default()),
            notify: tokio::sync::Notify::new(),
            gate_tx,
        }
    }

    fn state(&self) -> MutexGuard<'_, RelayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation progress of the current log must be posted with.
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Post the latest progress of the log of `generation` (any thread; never blocks on I/O).
    pub fn post(&self, generation: u64, gate: Gate) {
        self.state().posted = Some((generation, gate));
        self.notify.notify_one();
    }

    /// Replace the gate outright for a new log (the execution thread).
    fn reset(&self, gate: Gate) {
        let mut st = self.state();
        st.generation += 1;
        st.posted = None;
        self.gate_tx.send_replace(gate);
    }

    /// Apply what was posted; returns whether the connections were woken.
    fn apply(&self) -> bool {
        let mut st = self.state();
        let Some((generation, g)) = st.posted.take() else {
            return false;
        };
        if generation != st.generation {
            return false;
        }
        self.gate_tx.send_if_modified(|cur| {
            // A failure latches for the life of the log (a `reset` starts a new one): a
            // progress report posted before it was latched must not clear it.
            let g = Gate {
                failed: cur.failed || g.failed,
                ..g
            };
            let wake = cur.failed != g.failed
                || cur.always != g.always
                || cur.synced != g.synced
                || (!g.always && cur.written != g.written);
            *cur = g;
            wake
        })
    }

    /// The relay task; runs on the I/O runtime for the life of the server.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.notify.notified().await;
            self.apply();
        }
    }
}

/// The log sink the execution thread appends to. `None` writer = AOF disabled.
pub trait LogSink: Send {
    /// Hand over whole commands; returns the logical end position.
    fn submit(&mut self, bytes: &[u8], db_at_start: u32) -> u64;
    /// Write and fsync everything submitted so far and stop (blocking; shutdown).
    fn shutdown(self: Box<Self>) -> Result<(), String>;
    /// The first I/O failure of the log, if any.
    fn failure(&self) -> Option<String>;
    /// Downcast hook for the persistence layer (stats, rotation).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Downcast hook for the persistence layer (replacing the writer).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

pub struct Durability {
    buf: Vec<u8>,
    /// Database selected in the log stream at the start of `buf`.
    buf_db_at_start: u32,
    /// Database of the last command in the log stream (None = nothing selected yet).
    log_db: Option<u32>,
    /// Logical position after the last submit.
    submitted_end: u64,
    sink: Option<Box<dyn LogSink>>,
    multi_depth: u32,
    multi_emitted: bool,
    /// Where in `buf` the current unit's first command starts (after its SELECT): a unit
    /// of one command is logged bare, as Redis 7 propagates it; MULTI goes there when a
    /// second one comes.
    unit_first_at: Option<usize>,
    /// Sender of the gate watched by connections; updated on the runtime by [`GateRelay`].
    pub gate_tx: Arc<watch::Sender<Gate>>,
    /// Where the log writer posts its progress.
    pub relay: Arc<GateRelay>,
    /// Keys changed by logged bytes not known to be released: hash of (db, key) → the end of
    /// the bytes of its last change (of its unit's EXEC, inside MULTI). A collision only makes a
    /// read wait longer. Pruned at submit once released (see [`Durability::prune`]).
    changed: HashMap<u64, u64, crate::exec::FxBuild>,
    /// The largest position in `changed`.
    changed_max: u64,
    /// Size of `changed` after the last prune: the next prune comes when it has doubled.
    changed_pruned_len: usize,
    /// Every read waits for this: the end of the last change whose keys are not named (FLUSHALL,
    /// SWAPDB, MOVE…), or of changes forgotten when `changed` grew too large.
    barrier: u64,
    /// Keys changed inside the current unit (MULTI/EXEC): marked at its EXEC.
    unit_changed: Vec<u64>,
    unit_barrier: bool,
    /// The replication stream (`master.rs`), once a replica has connected: every submitted
    /// buffer goes there too, the same bytes as the log's, tagged with their log position so
    /// that replicas get them only once the gate has released them.
    repl: Option<Arc<crate::master::Backlog>>,
    /// Replication-only commands of the current unit ([`Durability::append_repl_only`]).
    repl_after_unit: Vec<(usize, Vec<Bytes>)>,
    /// A replica: the stream is its master's bytes, proxied ([`Durability::feed_proxied`]),
    /// not this server's own effects, which go to the log only (Redis's psync2: offsets are
    /// the master's, so a sibling or the old master can continue from us after a promotion).
    proxy: bool,
}

/// `changed` is pruned of released entries when it has doubled since the last prune, and from
/// this size on …
const CHANGED_PRUNE_MIN: usize = 1024;
/// … and collapsed into `barrier` past this size (reads then wait as for any write).
const CHANGED_MAX: usize = 1 << 18;
/// A round's buffer bigger than this after its submit is replaced by a fresh one.
const BUF_KEPT_BYTES_MAX: usize = 1 << 20;

/// Hash of a key in a database, for [`Durability::read_pos`].
fn key_hash(db: usize, key: &[u8]) -> u64 {
    let mut h = crate::exec::FxBuild::default().build_hasher();
    h.write(key);
    h.write_usize(db);
    h.finish()
}

/// Effects that change keys other than the ones they name (other databases, or all keys):
/// every read waits for them.
fn changes_unnamed_keys(name: &str) -> bool {
    matches!(name, "flushall" | "flushdb" | "swapdb" | "move" | "copy")
}

impl Durability {
    pub fn new() -> Durability {
        let (gate_tx, _) = watch::channel(Gate::default());
        let gate_tx = Arc::new(gate_tx);
        Durability {
            relay: Arc::new(GateRelay::new(gate_tx.clone())),
            buf: Vec::with_capacity(64 * 1024),
            buf_db_at_start: 0,
            log_db: None,
            submitted_end: 0,
            sink: None,
            multi_depth: 0,
            multi_emitted: false,
            unit_first_at: None,
            gate_tx,
            changed: HashMap::default(),
            changed_max: 0,
            changed_pruned_len: 0,
            barrier: 0,
            unit_changed: Vec::new(),
            unit_barrier: false,
            repl: None,
            repl_after_unit: Vec::new(),
            proxy: false,
        }
    }

    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    pub fn set_sink(&mut self, sink: Option<Box<dyn LogSink>>, start_pos: u64) {
        if let Some(r) = self.repl.as_ref().filter(|_| !self.proxy) {
            // Not expected (the log is flushed before it is replaced); the stream stays whole.
            r.feed(&self.buf, self.submitted_end, false);
        }
        self.sink = sink;
        self.submitted_end = start_pos;
        self.log_db = None;
        self.buf.clear();
        // The new log starts released at `start_pos`.
        self.changed.clear();
        self.changed_max = 0;
        self.barrier = 0;
        self.relay.reset(Gate {
            written: start_pos,
            synced: start_pos,
            always: false,
            failed: false,
        });
    }

    /// The position a reply produced now must wait for. (Without a log the buffer only
    /// holds the replication stream's bytes, which nothing waits for.)
    pub fn pos(&self) -> u64 {
        if self.sink.is_none() {
            return self.submitted_end;
        }
        self.submitted_end + self.buf.len() as u64
    }

    /// Feed the replication stream from now on (`master.rs`); its offset continues from the
    /// backlog's end.
    pub fn set_repl(&mut self, backlog: Option<Arc<crate::master::Backlog>>) {
        self.repl = backlog;
    }

    /// The replication offset of the next byte appended (master_repl_offset), None while no
    /// replica has ever connected. On a replica: the end of the master's bytes proxied.
    pub fn repl_offset(&self) -> Option<i64> {
        let own = if self.proxy { 0 } else { self.buf.len() as i64 };
        self.repl.as_ref().map(|r| r.end() + own)
    }

    /// Proxy mode on (this server became a replica: the stream is its master's bytes) or off
    /// (promoted). Our own bytes buffered so far go out first under the old mode.
    pub fn set_proxy(&mut self, on: bool) {
        if self.proxy == on {
            return;
        }
        if self.multi_depth == 0 {
            self.submit();
        }
        self.proxy = on;
        if !on {
            // The stream's last SELECT was the master's: our next effect selects its own
            // database (Redis's `slaveseldb = -1` in replicationUnsetMaster).
            self.log_db = None;
        }
    }

    /// The database selected in the stream so far (0 if none yet).
    pub fn stream_db(&self) -> u32 {
        self.log_db.unwrap_or(0)
    }

    pub fn proxying(&self) -> bool {
        self.proxy
    }

    /// A replica: the master's bytes `raw` (whole commands and transactions, just applied)
    /// go to the stream, after this server's own effects of them are submitted to the log,
    /// and are released to sub-replicas once the log is durable up to there.
    pub fn feed_proxied(&mut self, raw: &[u8]) {
        debug_assert!(self.proxy, "proxied bytes on a master");
        if raw.is_empty() || self.repl.is_none() {
            return;
        }
        self.submit();
        if let Some(r) = &self.repl {
            r.feed(raw, self.submitted_end, false);
        }
    }

    /// The next effect starts with SELECT (a replica's stream starts at the snapshot point:
    /// it must not depend on a SELECT before it).
    pub fn force_select(&mut self) {
        self.log_db = None;
    }

    /// Bytes for the replication stream only (PING, REPLCONF GETACK): after everything
    /// appended so far, released once the log before them is.
    pub fn feed_repl_only(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.multi_depth, 0, "replication bytes inside a unit");
        if self.repl.is_none() || self.proxy {
            return;
        }
        self.submit();
        if let Some(r) = &self.repl {
            r.feed(bytes, self.submitted_end, false);
        }
    }

    /// A command for the replication stream only, executed in database `db` (PUBLISH and
    /// SPUBLISH, as Redis's `forceCommandPropagation(c, PROPAGATE_REPL)`): not in the log.
    /// Its SELECT, if the database changes, goes to the log too, so that the log and the
    /// stream stay in the same database. Inside a unit (MULTI/EXEC, a script) it follows the
    /// unit: the stream's bytes of a unit are the log's.
    pub fn append_repl_only(&mut self, db: usize, argv: &[Bytes]) {
        // A replica's stream is its master's (which carries the master's PUBLISH).
        if self.repl.is_none() || self.proxy {
            return;
        }
        if self.multi_depth > 0 {
            self.repl_after_unit.push((db, argv.to_vec()));
            return;
        }
        self.select(db as u32);
        self.submit();
        let mut bytes = Vec::new();
        encode_command(&mut bytes, argv);
        if let Some(r) = &self.repl {
            r.feed(&bytes, self.submitted_end, false);
        }
    }

    /// Append one command executed in database `db`.
    pub fn append(&mut self, db: usize, argv: &[Bytes]) {
        if self.sink.is_none() && (self.repl.is_none() || self.proxy) {
            return;
        }
        let db = db as u32;
        if self.buf.is_empty() {
            self.buf_db_at_start = self.log_db.unwrap_or(0);
        }
        if self.multi_depth > 0 && !self.multi_emitted {
            match self.unit_first_at {
                None => {
                    self.select(db);
                    self.unit_first_at = Some(self.buf.len());
                }
                Some(at) => {
                    let mut multi = Vec::new();
                    encode_command(&mut multi, &[Bytes::from_static(b"MULTI")]);
                    self.buf.splice(at..at, multi);
                    self.multi_emitted = true;
                }
            }
        }
        self.select(db);
        encode_command(&mut self.buf, argv);
        if self.sink.is_some() {
            self.note_change(db as usize, argv);
        }
    }

    /// Remember which keys the effect `argv` (just appended) changes, for [`Self::read_pos`].
    fn note_change(&mut self, db: usize, argv: &[Bytes]) {
        let spec = argv
            .first()
            .and_then(|name| crate::exec::lookup_command(name));
        let named = spec.filter(|s| !changes_unnamed_keys(s.name));
        let end = self.pos();
        let Some(spec) = named else {
            self.raise_barrier(end);
            return;
        };
        let mut any = false;
        spec.for_each_key(argv, |k| {
            any = true;
            let h = key_hash(db, k);
            if self.multi_depth > 0 {
                self.unit_changed.push(h);
            } else {
                self.changed.insert(h, end);
            }
        });
        if !any {
            // A write naming no key (a loaded function, …): changes we cannot name.
            self.raise_barrier(end);
        } else if self.multi_depth == 0 {
            self.changed_max = end;
        }
    }

    /// Every read waits for the change ending at `end` (at its unit's EXEC, inside one).
    fn raise_barrier(&mut self, end: u64) {
        if self.multi_depth > 0 {
            self.unit_barrier = true;
        } else {
            self.barrier = end;
        }
    }

    /// The position a reply of the read-only command `argv` (of `spec`, keys by its key spec,
    /// run in database `db`) must wait for: the last logged change to any of its keys, or to
    /// keys no change named. Only for read-only commands whose key spec names every key they
    /// read (see `exec::reads_named_keys_only`); anything else waits for [`Self::pos`].
    pub fn read_pos(&self, db: usize, spec: &crate::cmd::CommandSpec, argv: &[Bytes]) -> u64 {
        let mut need = self.barrier;
        if self.changed.is_empty() {
            return need;
        }
        spec.for_each_key(argv, |k| {
            if let Some(&p) = self.changed.get(&key_hash(db, k)) {
                need = need.max(p);
            }
        });
        need
    }

    /// Forget changes that are released (called at submit, with the gate as last posted).
    fn prune(&mut self) {
        if self.changed.is_empty() {
            return;
        }
        let released = self.gate_tx.borrow().released();
        if self.changed_max <= released {
            // Every change released: the table goes (it is not kept at the size a burst of
            // changes, many evictions in one round, grew it to).
            self.changed = HashMap::default();
            self.changed_pruned_len = 0;
            return;
        }
        if self.changed.len() < CHANGED_PRUNE_MIN.max(self.changed_pruned_len * 2) {
            return;
        }
        self.changed.retain(|_, p| *p > released);
        self.changed_pruned_len = self.changed.len();
        if self.changed.len() > CHANGED_MAX {
            self.barrier = self.barrier.max(self.changed_max);
            self.changed = HashMap::default();
            self.changed_pruned_len = 0;
        }
    }

    fn select(&mut self, db: u32) {
        if self.log_db != Some(db) {
            let d = Bytes::from(db.to_string());
            encode_command(&mut self.buf, &[Bytes::from_static(b"SELECT"), d]);
            self.log_db = Some(db);
        }
    }

    /// Start a unit (MULTI/EXEC, or a script): its effects are wrapped in MULTI … EXEC in the
    /// log if there are two or more (one command alone is applied whole anyway, and Redis 7
    /// propagates it bare), so recovery applies all of it or none.
    pub fn begin_unit(&mut self) {
        self.multi_depth += 1;
    }

    pub fn end_unit(&mut self) {
        self.multi_depth = self.multi_depth.saturating_sub(1);
        if self.multi_depth == 0 {
            if self.multi_emitted {
                encode_command(&mut self.buf, &[Bytes::from_static(b"EXEC")]);
            }
            self.multi_emitted = false;
            self.unit_first_at = None;
        }
        if self.multi_depth == 0 {
            // The unit's changes are visible to reads once all of it, EXEC included, is
            // released: recovery applies a unit entirely or not at all.
            let end = self.pos();
            if std::mem::take(&mut self.unit_barrier) {
                self.barrier = end;
            }
            if !self.unit_changed.is_empty() {
                for h in std::mem::take(&mut self.unit_changed) {
                    self.changed.insert(h, end);
                }
                self.changed_max = end;
            }
            for (db, argv) in std::mem::take(&mut self.repl_after_unit) {
                self.append_repl_only(db, &argv);
            }
        }
    }

    /// Submit the buffer and block until the log writer reports everything written (not
    /// necessarily fsynced): DEBUG LOADAOF then reads the files back. False if the log failed
    /// or `timeout` passed first.
    pub fn wait_written(&mut self, timeout: std::time::Duration) -> bool {
        self.submit();
        let target = self.submitted_end;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let posted = {
                let st = self.relay.state();
                st.posted
                    .filter(|(g, _)| *g == st.generation)
                    .map(|(_, gate)| gate)
            };
            let applied = *self.gate_tx.borrow();
            let written = posted.map_or(0, |g| g.written).max(applied.written);
            if applied.failed || posted.is_some_and(|g| g.failed) {
                return false;
            }
            if written >= target {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Hand the buffer to the log writer (end of an execution round).
    pub fn submit(&mut self) {
        debug_assert_eq!(self.multi_depth, 0, "submit inside a unit");
        self.prune();
        if self.buf.is_empty() {
            return;
        }
        if let Some(r) = self.repl.as_ref().filter(|_| !self.proxy) {
            // The same bytes as the log's, at the log position they take there.
            r.feed(&self.buf, self.submitted_end, self.sink.is_some());
        }
        if let Some(sink) = self.sink.as_mut() {
            let end = sink.submit(&self.buf, self.buf_db_at_start);
            debug_assert_eq!(end, self.submitted_end + self.buf.len() as u64);
            self.submitted_end = end;
        }
        self.buf.clear();
        if self.buf.capacity() > BUF_KEPT_BYTES_MAX {
            // A big round (a large MULTI, a burst of evictions) does not keep its buffer.
            self.buf = Vec::with_capacity(64 * 1024);
        }
    }

    /// Submit everything, write and fsync it, and detach the log (shutdown).
    pub fn shutdown(&mut self) -> Result<(), String> {
        self.submit();
        match self.sink.take() {
            Some(s) => s.shutdown(),
            None => Ok(()),
        }
    }

    /// Set when the log writer failed: writes are refused (`-MISCONF`) while reads continue.
    pub fn failed(&self) -> Option<String> {
        if !self.gate_tx.borrow().failed {
            return None;
        }
        Some(
            self.sink
                .as_ref()
                .and_then(|s| s.failure())
                .unwrap_or_else(|| "I/O error".to_string()),
        )
    }

    /// Inside a MULTI/EXEC whose effects are being logged (the log must not be cut or
    /// replaced until its EXEC).
    pub fn in_unit(&self) -> bool {
        self.multi_depth > 0
    }

    pub fn sink(&self) -> Option<&dyn LogSink> {
        self.sink.as_deref()
    }

    pub fn sink_mut(&mut self) -> Option<&mut (dyn LogSink + 'static)> {
        self.sink.as_deref_mut()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held for the log's writer while changes are on their way: the round's bytes
    /// and the table of recently changed keys ([`Self::read_pos`], freed once they are all
    /// released). Not counted against `maxmemory` (`evict.rs`), as Redis leaves its AOF buffer
    /// out: an eviction's DEL adds to both, which must not call for more evictions. (The
    /// buffer's own 64 KiB are there from the start, in every measure, and count.)
    pub fn memory_bytes(&self) -> usize {
        // hashbrown: buckets a power of two at most 7/8 full, 16 bytes and a control byte each.
        let buckets = match self.changed.capacity() {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        let entry = std::mem::size_of::<(u64, u64)>();
        self.buf.len() + buckets * (entry + 1)
    }
}

/// Tests: a log sink that keeps every byte handed to it.
#[cfg(test)]
pub(crate) struct RecordingSink {
    bytes: Arc<Mutex<Vec<u8>>>,
    end: u64,
}

#[cfg(test)]
impl RecordingSink {
    /// The sink, and the bytes it will have recorded.
    pub(crate) fn new() -> (Box<RecordingSink>, Arc<Mutex<Vec<u8>>>) {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = RecordingSink {
            bytes: bytes.clone(),
            end: 0,
        };
        (Box::new(sink), bytes)
    }
}

#[cfg(test)]
impl LogSink for RecordingSink {
    fn submit(&mut self, bytes: &[u8], _db_at_start: u32) -> u64 {
        self.bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        self.end += bytes.len() as u64;
        self.end
    }
    fn shutdown(self: Box<Self>) -> Result<(), String> {
        Ok(())
    }
    fn failure(&self) -> Option<String> {
        None
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Default for Durability {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(written: u64, synced: u64, always: bool) -> Gate {
        Gate {
            written,
            synced,
            always,
            failed: false,
        }
    }

    #[test]
    fn the_relay_wakes_connections_only_for_progress_they_wait_for() {
        let d = Durability::new();
        let mut rx = d.gate_tx.subscribe();
        d.relay.reset(gate(0, 0, true));
        rx.borrow_and_update();
        let g = d.relay.generation();
        // Under `always`, `written` alone releases nothing: the value moves, nobody wakes.
        d.relay.post(g, gate(10, 0, true));
        assert!(!d.relay.apply());
        assert!(!rx.has_changed().unwrap());
        assert_eq!(rx.borrow().written, 10);
        // `synced` does.
        d.relay.post(g, gate(10, 10, true));
        assert!(d.relay.apply());
        assert_eq!(*rx.borrow_and_update(), gate(10, 10, true));
        // Under everysec replies wait for `written`.
        d.relay.post(g, gate(20, 10, false));
        assert!(d.relay.apply());
        // Only the latest post counts; nothing posted, nothing applied.
        d.relay.post(g, gate(30, 10, false));
        d.relay.post(g, gate(40, 10, false));
        assert!(d.relay.apply());
        assert_eq!(rx.borrow_and_update().written, 40);
        assert!(!d.relay.apply());
        // A failure always wakes.
        d.relay.post(
            g,
            Gate {
                failed: true,
                ..gate(40, 10, false)
            },
        );
        assert!(d.relay.apply());
    }

    #[test]
    fn progress_of_a_replaced_log_is_dropped() {
        let d = Durability::new();
        let old = d.relay.generation();
        d.relay.reset(gate(0, 0, false));
        d.relay.post(old, gate(99, 99, false));
        assert!(!d.relay.apply());
        assert_eq!(*d.gate_tx.borrow(), gate(0, 0, false));
        d.relay.post(d.relay.generation(), gate(5, 0, false));
        assert!(d.relay.apply());
        assert_eq!(d.gate_tx.borrow().written, 5);
    }

    /// A failure latched on the gate (a replacement writer could not be opened, a failed
    /// final fsync) is not cleared by the old writer's last progress report, applied after it;
    /// a new log (`reset`) starts clean.
    #[test]
    fn a_failure_latches_until_the_log_is_replaced() {
        let d = Durability::new();
        d.relay.reset(gate(0, 0, true));
        let g = d.relay.generation();
        d.relay.post(g, gate(10, 10, true));
        d.gate_tx.send_modify(|g| g.failed = true);
        d.relay.apply();
        assert!(d.gate_tx.borrow().failed, "the failure was cleared");
        assert_eq!(d.gate_tx.borrow().synced, 10);
        d.relay.reset(gate(10, 10, false));
        assert!(!d.gate_tx.borrow().failed);
    }
}
