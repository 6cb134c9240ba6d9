//! The master side of replication: SYNC / PSYNC / REPLCONF from replicas, the replication
//! stream and its backlog, partial resynchronization, WAIT, and the master part of INFO
//! replication and ROLE (docs/architecture.md §8).
//!
//! - **The stream** (of a master; a replica's is its master's bytes, proxied: psync2,
//!   `Durability::feed_proxied`) is the log's own bytes: `Durability::submit` hands every round's buffer
//!   (the effects as logged — SELECT when the database changes, MULTI/EXEC units, expirations
//!   as DEL) to the [`Backlog`] as well as to the log writer, tagged with the log position the
//!   bytes take there. PING (`repl-ping-replica-period`) and `REPLCONF GETACK *` (after WAIT)
//!   are added between rounds; they are in the stream only. `master_repl_offset` counts the
//!   stream's bytes.
//! - **Durability**: a replica is sent a byte only once the durability gate has released its log
//!   position (the gate replies wait for), so under `appendfsync always` nothing reaches a
//!   replica before it is fsynced here — a replica, like a client, never sees a write that a
//!   crash of this server can take back.
//! - **The backlog** is one shared queue of blocks (Redis 7's shared replication buffer): it
//!   keeps the last `repl-backlog-size` bytes, and anything a replica has not been sent yet; a
//!   replica's pending bytes (stream end − its position) count against
//!   `client-output-buffer-limit replica` (256mb hard, 64mb for 60 s soft by default), and a
//!   replica over it is disconnected, as Redis does.
//! - **Full sync**: the dataset as of one point of the stream, taken with the fork-free
//!   snapshot (`compaction.rs`, counted as a BGSAVE): the stream position of that point is
//!   the FULLRESYNC offset, and the next effect starts with SELECT; a running BGSAVE or
//!   rewrite is waited for. Diskless (`repl-diskless-sync yes` and every waiting replica has
//!   `capa eof`): the snapshot thread's bytes go through a bounded queue per replica straight
//!   to the sockets, in the `$EOF:<mark>` form. Otherwise a temporary file, shared by the
//!   replicas that ask while it is written, sent as `$<len>`. Then the stream from the
//!   snapshot's offset.
//! - **The connection** is a normal client connection until SYNC/PSYNC: its writer task then
//!   hands the socket to [`serve_replica`], which sends the payload and the stream; the reader
//!   goes on parsing the replica's `REPLCONF ACK`s, which run as commands on the execution
//!   thread (acknowledged offsets, WAIT).

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{Blocked, Client, ClientId, ConnShared, Outgoing, ReplyMode};
use crate::ctx::Ctx;
use crate::durability::Gate;
use crate::exec::Server;
use crate::resp::Reply;
use crate::util::now_ms;

/// Key of the running sync snapshot in [`Backlog`]'s held positions.
const SNAPSHOT_HOLD: u64 = u64::MAX;
/// Bytes of the stream a replica task writes at once.
const SEND_CHUNK_BYTES: usize = 256 << 10;
/// Blocks (slices) of the stream a replica task writes at once: what it holds while a write
/// waits on a slow replica stays small (its slices and their `writev` vector, ~3 KiB), as
/// that is counted against `maxmemory` where the stream itself is not.
const SLICES_PER_SEND_MAX: usize = 64;
/// Linux's `IOV_MAX`: slices one `writev` takes.
const _: () = assert!(SLICES_PER_SEND_MAX <= 1024);
/// Bytes of the RDB file read at once.
const FILE_CHUNK_BYTES: usize = 64 << 10;
/// Chunks (of up to 256 KiB) of a diskless payload queued for one replica: the snapshot
/// thread waits for the slowest replica beyond this.
const PIPE_CHUNKS_MAX: usize = 8;

/// The diskless snapshot's output: every chunk to every replica still there (the snapshot
/// thread blocks while a replica's queue is full). Fails once no replica is left, which stops
/// the snapshot.
struct FanOut {
    senders: Vec<mpsc::Sender<Bytes>>,
    /// Set by the execution thread before it aborts the snapshot (`cancel_sync`): a full
    /// queue is not waited for then, so the abort's join does not wait for a stuck replica.
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl std::io::Write for FanOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let b = Bytes::copy_from_slice(buf);
        let cancel = self.cancel.clone();
        // On the snapshot thread: it waits while a replica's queue is full.
        self.senders.retain(|tx| {
            let mut pause = Duration::from_micros(100);
            loop {
                match tx.try_send(b.clone()) {
                    Ok(()) => return true,
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if cancel.load(Ordering::Relaxed) {
                            return false;
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(10));
                    }
                }
            }
        });
        if self.senders.is_empty() {
            return Err(std::io::Error::other(
                "no replica left for the diskless sync",
            ));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The backlog: the replication stream, shared by the execution thread and the replica tasks.

struct Block {
    /// Stream offset of the first byte.
    off: i64,
    /// Log position of the first byte (for `logged` blocks the bytes are the log's, byte for
    /// byte; otherwise the block may go once the log is released up to here).
    log: u64,
    logged: bool,
    data: Bytes,
}

struct Inner {
    blocks: VecDeque<Block>,
    /// Offset of the first byte held.
    first: i64,
    /// master_repl_offset: offset after the last byte.
    end: i64,
    /// repl-backlog-size.
    size: i64,
    /// Replicas (by client id) and the sync snapshot: the next offset each still needs.
    held: HashMap<u64, i64>,
    /// Heap bytes of the blocks' data ([`block_bytes`]); with the queue's own array, the
    /// buffer's memory ([`Backlog::mem`], Redis's `repl_buffer_mem`).
    mem: usize,
}

/// What a block of `len` stream bytes takes from the allocator: its bytes, and the shared
/// header `Bytes` gives them (see [`Backlog::feed`]). Exact, so that the part of
/// `used_memory` the buffer is can be left out of what counts against `maxmemory` (a stream of
/// 100k small blocks would otherwise be off by megabytes).
fn block_bytes(len: usize) -> usize {
    /// `bytes`' shared header (a pointer, a capacity and a reference count).
    const SHARED_HEADER_BYTES: usize = 3 * std::mem::size_of::<usize>();
    crate::alloc::chunk_bytes(len) + crate::alloc::chunk_bytes(SHARED_HEADER_BYTES)
}

impl Inner {
    fn trim(&mut self) {
        let mut keep = self.end - self.size;
        for &p in self.held.values() {
            keep = keep.min(p);
        }
        while let Some(b) = self.blocks.front() {
            if b.off + b.data.len() as i64 <= keep {
                self.mem -= block_bytes(b.data.len());
                self.blocks.pop_front();
            } else {
                break;
            }
        }
        // A burst (a replica that lagged and went) leaves the queue's array big: give it back.
        if self.blocks.capacity() > 64 && self.blocks.len() < self.blocks.capacity() / 4 {
            self.blocks.shrink_to(self.blocks.len() * 2);
        }
        self.first = self.blocks.front().map_or(self.end, |b| b.off);
    }
}

/// The replication stream's recent bytes (see the module comment).
pub struct Backlog {
    inner: Mutex<Inner>,
    end_tx: watch::Sender<i64>,
}

impl Backlog {
    pub fn new(start: i64, size: i64) -> Arc<Backlog> {
        Arc::new(Backlog {
            inner: Mutex::new(Inner {
                blocks: VecDeque::new(),
                first: start,
                end: start,
                size: size.max(1),
                held: HashMap::new(),
                mem: 0,
            }),
            end_tx: watch::channel(start).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offset after the last byte (master_repl_offset, submitted part).
    pub fn end(&self) -> i64 {
        self.lock().end
    }

    /// Offset of the first byte held.
    pub fn first(&self) -> i64 {
        self.lock().first
    }

    /// Memory of the stream held: the backlog and what replicas still need (one buffer, as
    /// Redis 7's shared replication buffer; its `repl_buffer_mem`).
    pub fn mem(&self) -> usize {
        let g = self.lock();
        g.mem + crate::alloc::chunk_bytes(g.blocks.capacity() * std::mem::size_of::<Block>())
    }

    /// Append stream bytes that take log positions `log..` (`logged`), or that follow the log
    /// position `log` (not in the log).
    pub fn feed(&self, data: &[u8], log: u64, logged: bool) {
        if data.is_empty() {
            return;
        }
        let end = {
            let mut g = self.lock();
            let off = g.end;
            let len = data.len();
            let data = Bytes::from(data.to_vec());
            // Shared from the start (the first slice a replica task takes would otherwise
            // allocate the shared header then): the block's memory is fixed, `block_bytes`.
            drop(data.clone());
            g.blocks.push_back(Block {
                off,
                log,
                logged,
                data,
            });
            g.end += len as i64;
            g.mem += block_bytes(len);
            g.trim();
            g.end
        };
        self.end_tx.send_replace(end);
    }

    fn set_size(&self, size: i64) {
        let mut g = self.lock();
        if g.size != size.max(1) {
            g.size = size.max(1);
            g.trim();
        }
    }

    /// `id` needs the bytes from `pos` on.
    fn hold(&self, id: u64, pos: i64) {
        self.lock().held.insert(id, pos);
    }

    fn release(&self, id: u64) {
        let mut g = self.lock();
        g.held.remove(&id);
        g.trim();
    }

    /// Bytes of the stream not yet sent to `id`.
    fn pending(&self, id: u64) -> Option<i64> {
        let g = self.lock();
        g.held.get(&id).map(|p| g.end - p)
    }

    /// Up to `max` bytes from `pos` that the log has released (`released`: the gate's
    /// position), as slices of the blocks (no copy: a replica that lags holds no bytes of its
    /// own, only its position, as Redis's replicas point into the shared buffer; the blocks
    /// stay while it holds a position before them). Err if `pos` is no longer held.
    fn take(&self, pos: i64, released: u64, max: usize, out: &mut Vec<Bytes>) -> Result<(), ()> {
        let g = self.lock();
        if pos < g.first {
            return Err(());
        }
        // The first block that holds `pos` (blocks are in offset order).
        let i = g
            .blocks
            .partition_point(|b| b.off + b.data.len() as i64 <= pos);
        let mut at = pos;
        let mut taken = 0usize;
        for b in g.blocks.range(i..) {
            let len = b.data.len() as i64;
            let avail = if b.logged {
                released.saturating_sub(b.log).min(len as u64) as i64
            } else if released >= b.log {
                len
            } else {
                0
            };
            let from = (at - b.off) as usize;
            if avail as usize <= from {
                break;
            }
            let room = max.saturating_sub(taken);
            let to = (avail as usize).min(from.saturating_add(room));
            out.push(b.data.slice(from..to));
            taken += to - from;
            at = b.off + to as i64;
            if (to as i64) < len || taken >= max || out.len() >= SLICES_PER_SEND_MAX {
                break;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The execution thread's side.

/// What REPLCONF told about a connection before its SYNC/PSYNC (`Client::repl_conf`).
#[derive(Default, Clone, Debug)]
pub struct ReplConf {
    pub listening_port: i64,
    pub ip_address: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    pub rdb_only: bool,
    /// `REPLCONF rdb-filter-only`: the payload leaves out the dataset (redis-cli --replica).
    pub exclude_data: bool,
    /// `rdb-filter-only functions`: the function libraries stay in it (redis-cli
    /// --functions-rdb); `rdb-filter-only ""` leaves them out too.
    pub with_functions: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waits for a sync snapshot to start (a BGSAVE or rewrite runs).
    WaitStart,
    /// Its snapshot runs; the stream is kept from the snapshot's offset.
    WaitEnd,
    /// The payload and then the stream go out (the task reports `online`).
    Feeding,
}

/// Replica states as INFO shows them (`Feed::state`).
const STATE_WAIT_BGSAVE: u8 = 0;
const STATE_SEND_BULK: u8 = 1;
const STATE_ONLINE: u8 = 2;

/// One replica, on the execution thread.
pub struct Slave {
    pub id: ClientId,
    pub ip: String,
    pub port: i64,
    conf: ReplConf,
    /// PSYNC (answer +FULLRESYNC first) rather than SYNC.
    psync: bool,
    phase: Phase,
    feed: Arc<Feed>,
    events: mpsc::UnboundedSender<Event>,
    pub ack_off: i64,
    /// The offset the replica reports fsynced to its AOF (`REPLCONF ACK <off> FACK <aofoff>`,
    /// Redis 7.2; -1 from a replica that sends none): what WAITAOF counts.
    pub fack_off: i64,
    pub ack_ms: i64,
    /// Since when the replica is over the soft output limit.
    soft_since_ms: Option<i64>,
    /// Unix ms at which it asked for a full sync (what `repl-diskless-sync-delay` counts
    /// from, as Redis's idle time of a replica waiting for its BGSAVE).
    since_ms: i64,
}

struct Waiter {
    id: ClientId,
    offset: i64,
    numreplicas: i64,
    deadline_ms: Option<i64>,
    /// WAITAOF (counts replicas' fsynced offsets; answers `[local, n]`), not WAIT.
    aof: Option<i64>,
}

struct SyncSnapshot {
    epoch: u32,
    offset: i64,
    /// The file (disk form); unused when diskless.
    path: PathBuf,
    /// Written to the replicas' sockets as it is made.
    diskless: bool,
    /// See `FanOut::cancel`.
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

/// The master side's state (`Server::master`).
pub struct Master {
    pub replid: String,
    pub replid2: String,
    pub second_offset: i64,
    /// Created when the first replica connects, kept after.
    pub backlog: Option<Arc<Backlog>>,
    pub slaves: Vec<Slave>,
    waiters: Vec<Waiter>,
    sync: Option<SyncSnapshot>,
    get_ack: bool,
    /// An ACK arrived this round (WAITs to look at).
    acked: bool,
    /// Online replicas whose last ACK is at most `min-replicas-max-lag` seconds old.
    pub good_slaves: i64,
    /// `min-replicas-to-write` is not met: writes are refused (NOREPLICAS).
    deny_writes: bool,
    last_ping_ms: i64,
    /// `client-output-buffer-limit replica` (hard, soft, soft seconds), read by `cron`.
    limits: (i64, i64, i64),
    snapshots: u64,
    /// Since when no replica is connected (for `repl-backlog-ttl`).
    no_slaves_since_ms: i64,
    /// master_repl_offset while there is no backlog (a new one continues from it).
    offset_without_backlog: i64,
    /// The replication history (id, offset) the dataset loaded at start-up is the image of
    /// (the RDB's `repl-id`/`repl-offset`), and the database its stream had selected
    /// (`repl-stream-db`): a replica's first PSYNC continues from it.
    pub restored: Option<(String, i64, u32)>,
    /// Keys of that RDB left out as expired at the load (database, name): their DELs start
    /// the restored history's new backlog.
    pub restored_expired: Vec<(u32, Bytes)>,
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
}

impl Default for Master {
    fn default() -> Self {
        Master {
            replid: random_replid(),
            replid2: "0".repeat(40),
            second_offset: -1,
            backlog: None,
            slaves: Vec::new(),
            waiters: Vec::new(),
            sync: None,
            get_ack: false,
            acked: false,
            good_slaves: 0,
            deny_writes: false,
            last_ping_ms: crate::util::now_ms(),
            limits: (256 << 20, 64 << 20, 60),
            snapshots: 0,
            no_slaves_since_ms: now_ms(),
            offset_without_backlog: 0,
            restored: None,
            restored_expired: Vec::new(),
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
        }
    }
}

fn random_replid() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Messages to a replica's task.
enum Event {
    /// Bytes to write as they are (+FULLRESYNC, +CONTINUE).
    Line(Vec<u8>),
    /// The RDB payload: the snapshot file (already unlinked) and its size.
    Rdb {
        file: std::fs::File,
        len: u64,
        eof: bool,
    },
    /// A payload built in memory.
    RdbBytes(Vec<u8>),
    /// A diskless payload: the snapshot's bytes as they are written, sent in the EOF form;
    /// `PayloadDone` follows if the snapshot completed (then the end mark goes out).
    RdbPipe {
        rx: mpsc::Receiver<Bytes>,
        timeout: Duration,
    },
    PayloadDone,
    /// The stream, from this offset.
    Stream {
        from: i64,
    },
    /// Close the connection (after what was queued before).
    Close,
}

/// What a replica's task shares with the execution thread.
pub struct Feed {
    id: ClientId,
    backlog: Arc<Backlog>,
    events: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    state: AtomicU8,
    /// Offset sent so far.
    sent: AtomicI64,
    /// Unix ms when the stream started (the payload was sent).
    online_ms: AtomicI64,
}

/// The replication buffer's part of INFO memory, as Redis 7.0 splits its shared buffer.
pub struct ReplMemory {
    /// `mem_total_replication_buffers`: the whole buffer.
    pub total: u64,
    /// `mem_replication_backlog`: up to `repl-backlog-size` of it.
    pub backlog: u64,
    /// `mem_clients_slaves`: the rest, with replicas connected (what they still need).
    pub replicas: u64,
    /// The part not counted against `maxmemory` (Redis's `freeMemoryGetNotCountedMemory`):
    /// beyond the backlog's size and its blocks' records, so a slow replica does not make
    /// the master evict keys. Counted whether or not replicas are still connected (a buffer
    /// left by one that went away is trimmed later, and is theirs, not the dataset's).
    pub not_counted: u64,
}

pub fn repl_memory(srv: &Server) -> ReplMemory {
    let total = srv.master.backlog.as_ref().map_or(0, |b| b.mem()) as u64;
    let size = srv.cfg.get_i64("repl-backlog-size").max(1) as u64;
    let (backlog, replicas) = if !srv.master.slaves.is_empty() && total > size {
        (size, total - size)
    } else {
        (total, 0)
    };
    // Redis's estimate of the backlog's block records: one per reply chunk (16 KiB) of it.
    let counted = size + (size / (16 * 1024) + 1) * std::mem::size_of::<Block>() as u64;
    ReplMemory {
        total,
        backlog,
        replicas,
        not_counted: total.saturating_sub(counted),
    }
}

/// The stream offset of the next byte (None: no backlog, no replica connected for a while).
pub fn offset(srv: &Server) -> Option<i64> {
    srv.log.repl_offset()
}

/// master_repl_offset as INFO and ROLE show it.
pub fn shown_offset(srv: &Server) -> i64 {
    offset(srv).unwrap_or(srv.master.offset_without_backlog)
}

/// DEBUG CHANGE-REPL-ID: a new replication id, and no former one (Redis's
/// `changeReplicationId` + `clearReplicationId2`).
pub fn change_replid(srv: &mut Server) {
    let m = &mut srv.master;
    m.replid = random_replid();
    m.replid2 = "0".repeat(40);
    m.second_offset = -1;
}

fn ensure_backlog(srv: &mut Server) -> Arc<Backlog> {
    if let Some(b) = &srv.master.backlog {
        return b.clone();
    }
    if srv.log.proxying() {
        // A replica's backlog is made at its sync (`replica_backlog`); should it be missing,
        // it continues the master's offsets under the master's id.
        let off = srv
            .replica
            .as_ref()
            .and_then(|r| r.psync.as_ref().map(|p| p.1))
            .unwrap_or(srv.master.offset_without_backlog);
        let replid = srv.master.replid.clone();
        return replica_backlog(srv, replid, off);
    }
    // As Redis: a new backlog gets a new replication id (no earlier replica can continue).
    let m = &mut srv.master;
    m.replid = random_replid();
    m.replid2 = "0".repeat(40);
    m.second_offset = -1;
    let b = Backlog::new(
        srv.master.offset_without_backlog,
        srv.cfg.get_i64("repl-backlog-size"),
    );
    srv.master.backlog = Some(b.clone());
    srv.log.set_repl(Some(b.clone()));
    tracing::info!(
        "Replication backlog created, my new replication IDs are '{}' and '{}'",
        srv.master.replid,
        srv.master.replid2
    );
    b
}

/// A replica synced from its master (full sync, or a partial one when it had no backlog): the
/// stream from here on is the master's (proxied), under the master's replication id and at
/// its offsets, so that our own replicas — and, after a promotion, our siblings and our old
/// master — can continue from us (Redis's `createReplicationBacklog` after a sync).
pub fn replica_backlog(srv: &mut Server, replid: String, offset: i64) -> Arc<Backlog> {
    let b = Backlog::new(offset, srv.cfg.get_i64("repl-backlog-size"));
    let m = &mut srv.master;
    m.replid = replid;
    m.replid2 = "0".repeat(40);
    m.second_offset = -1;
    m.backlog = Some(b.clone());
    srv.log.set_repl(Some(b.clone()));
    b
}

/// Start-up of a master from an RDB that names its replication history (Redis's
/// `loadDataFromDisk`): that id stays valid as our former one up to its offset, and a backlog
/// starts there, so replicas of before the restart continue with a partial resync. Keys the
/// load left out as expired were deleted here: their DELs (in file order, SELECT first, as
/// Redis's rdbLoad feeds them with RDBFLAGS_FEED_REPL) are the backlog's first bytes, so those
/// replicas delete them too; too many for `repl-backlog-size`, and they sync in full.
pub fn restore_history(srv: &mut Server) {
    let expired = std::mem::take(&mut srv.master.restored_expired);
    let Some((id, off, _)) = srv.master.restored.take() else {
        return;
    };
    let b = Backlog::new(off, srv.cfg.get_i64("repl-backlog-size"));
    let m = &mut srv.master;
    m.replid2 = id;
    m.second_offset = off + 1;
    m.backlog = Some(b.clone());
    m.no_slaves_since_ms = now_ms();
    srv.log.set_repl(Some(b.clone()));
    // The stream's next command selects its database (Redis's `slaveseldb` starts at -1).
    srv.log.force_select();
    for (db, key) in expired {
        srv.log
            .append(db as usize, &[Bytes::from_static(b"DEL"), key]);
        // Fed in blocks, so that the backlog keeps about `repl-backlog-size` of them.
        if srv.log.buffered_bytes() >= EXPIRED_FEED_BLOCK {
            srv.log.submit();
        }
    }
    srv.log.submit();
    srv.master.offset_without_backlog = b.end();
    if b.end() > off {
        tracing::info!(
            "Fed the DELs of the keys expired while loading to the replication backlog: offset {off} -> {}",
            b.end()
        );
    }
}

/// Size of the blocks the DELs of keys expired at the load are fed to the backlog in (Redis's
/// replication buffer blocks are 16 KiB).
const EXPIRED_FEED_BLOCK: usize = 16 << 10;

/// Our replication history goes on under a new id; the current one stays valid as the former
/// one up to the current offset (Redis's `shiftReplicationId`): a promotion, or our master's
/// stream continuing under a new id.
pub fn shift_replid(srv: &mut Server) {
    let off = shown_offset(srv);
    let m = &mut srv.master;
    m.replid2 = std::mem::replace(&mut m.replid, random_replid());
    m.second_offset = off + 1;
    tracing::info!(
        "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
        m.replid2,
        m.second_offset,
        m.replid
    );
}

/// Disconnect every replica (they reconnect, and may continue with a partial resync):
/// Redis's `disconnectSlaves`, after our replication id changed.
pub fn drop_all_slaves(srv: &mut Server) {
    let ids: Vec<ClientId> = srv.master.slaves.iter().map(|s| s.id).collect();
    for id in ids {
        drop_slave(srv, id);
    }
}

/// A replica became a master (REPLICAOF NO ONE, FAILOVER, an aborted failover): the stream is
/// ours again, the master's id stays valid as our former one up to here, and our replicas are
/// told by a disconnection (Redis 7.0's `replicationUnsetMaster`).
pub fn promoted(srv: &mut Server) {
    srv.log.set_proxy(false);
    shift_replid(srv);
    drop_all_slaves(srv);
    srv.master.no_slaves_since_ms = now_ms();
}

fn peer_ip(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((ip, _)) => ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.to_string(),
    }
}

/// How Redis names a replica in its log (`replicationGetSlaveName`): its announced or peer
/// address with its listening port.
fn replica_name(c: &Client, conf: &ReplConf) -> String {
    let ip = conf.ip_address.clone().unwrap_or_else(|| peer_ip(&c.addr));
    if conf.listening_port > 0 {
        if ip.contains(':') {
            format!("[{ip}]:{}", conf.listening_port)
        } else {
            format!("{ip}:{}", conf.listening_port)
        }
    } else {
        format!("{ip}:<unknown-replica-port>")
    }
}

fn no_reply(c: &mut Client) -> Reply {
    if c.reply_mode == ReplyMode::On {
        c.reply_mode = ReplyMode::Skip;
    }
    Reply::Nil
}

/// REPLCONF <option> <value> ...
pub fn replconf_command(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return Reply::err(crate::cmd::err::SYNTAX);
    }
    let mut conf = ctx.client.repl_conf.as_deref().cloned().unwrap_or_default();
    for pair in args[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        let o = opt.to_ascii_lowercase();
        match &o[..] {
            b"listening-port" => match crate::util::parse_i64(val) {
                Some(p) if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&p) => {
                    conf.listening_port = p
                }
                _ => return Reply::err(crate::cmd::err::NOT_INT),
            },
            b"ip-address" => {
                if val.len() >= 256 {
                    return Reply::Error(format!(
                        "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                        val.len()
                    ));
                }
                conf.ip_address = Some(String::from_utf8_lossy(val).into_owned());
            }
            b"capa" => {
                if val.eq_ignore_ascii_case(b"eof") {
                    conf.capa_eof = true;
                } else if val.eq_ignore_ascii_case(b"psync2") {
                    conf.capa_psync2 = true;
                }
                // Capabilities this master does not know are ignored.
            }
            b"ack" => {
                // Only from a replica, and never answered. `ACK <off> FACK <aofoff>` (7.2).
                if ctx.client.is_replica {
                    if let Some(off) = crate::util::parse_i64(val) {
                        let fack = args
                            .iter()
                            .position(|a| a.eq_ignore_ascii_case(b"fack"))
                            .and_then(|i| args.get(i + 1))
                            .and_then(|v| crate::util::parse_i64(v));
                        ack(ctx.srv, ctx.client.id, off, fack);
                    }
                }
                return no_reply(ctx.client);
            }
            b"getack" => {
                // A Strongbox replica answers GETACK in its link task, not here.
                return no_reply(ctx.client);
            }
            b"rdb-filter-only" => {
                // Only "functions" can be asked for: the payload then holds the libraries.
                let mut with_functions = false;
                for f in val.split(|&b| b == b' ').filter(|f| !f.is_empty()) {
                    if !f.eq_ignore_ascii_case(b"functions") {
                        return Reply::Error(format!(
                            "ERR Unsupported rdb-filter-only option: {}",
                            String::from_utf8_lossy(f)
                        ));
                    }
                    with_functions = true;
                }
                conf.exclude_data = true;
                conf.with_functions = with_functions;
            }
            b"rdb-only" => match crate::util::parse_i64(val) {
                Some(v @ (0 | 1)) => conf.rdb_only = v == 1,
                _ => return Reply::err("ERR value is out of range, value must between 0 and 1"),
            },
            _ => {
                return Reply::Error(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    ctx.client.repl_conf = Some(Box::new(conf));
    crate::resp::OK
}

/// SYNC and PSYNC <replid> <offset>.
pub fn sync_command(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let psync = args[0].eq_ignore_ascii_case(b"psync");
    let mut psync_offset = -1;
    if psync {
        match crate::util::parse_i64(&args[2]) {
            Some(o) => psync_offset = o,
            None => return Reply::err(crate::cmd::err::NOT_INT),
        }
    }
    if ctx.in_exec {
        return Reply::err("ERR Command not allowed inside a transaction");
    }
    if ctx.client.is_replica {
        // Already a replica: ignored, as Redis does.
        return no_reply(ctx.client);
    }
    // PSYNC <replid> <offset> FAILOVER: our master asks us to take over (its FAILOVER).
    if psync && args.len() > 3 && args[3].eq_ignore_ascii_case(b"failover") {
        let replid = String::from_utf8_lossy(&args[1]).into_owned();
        tracing::warn!("Failover request received for replid {replid}.");
        let Some(r) = &ctx.srv.replica else {
            return Reply::err("ERR PSYNC FAILOVER can't be sent to a master.");
        };
        if r.master_replid != replid {
            return Reply::err("ERR PSYNC FAILOVER replid must match my replid.");
        }
        crate::replica::unset_master(ctx.srv);
        tracing::info!(
            "MASTER MODE enabled (failover request from '{}')",
            ctx.client.addr
        );
    }
    if ctx.srv.failover.is_some() {
        return Reply::err("NOMASTERLINK Can't SYNC while failing over");
    }
    if let Some(r) = &ctx.srv.replica {
        if !r.link_up() {
            return Reply::err("NOMASTERLINK Can't SYNC while not connected with my master");
        }
    }
    let srv = &mut *ctx.srv;
    let c = &mut *ctx.client;
    let conf = c.repl_conf.as_deref().cloned().unwrap_or_default();
    let addr = replica_name(c, &conf);
    if psync {
        let replid = String::from_utf8_lossy(&args[1]).into_owned();
        if try_partial(srv, c, &conf, &replid, psync_offset) {
            return Reply::Nil;
        }
        if replid != "?" {
            srv.master.sync_partial_err += 1;
        } else {
            tracing::info!("Full resync requested by replica {addr}");
        }
    }
    srv.master.sync_full += 1;
    tracing::info!("Replica {addr} asks for synchronization");
    let backlog = ensure_backlog(srv);
    if conf.exclude_data {
        // No dataset wanted: an empty RDB, and the stream from here.
        srv.log.force_select();
        let offset = srv.log.repl_offset().unwrap_or(0);
        let rdb = empty_rdb(srv, conf.with_functions);
        attach(srv, c, conf.clone(), psync, Phase::Feeding);
        if let Some(s) = srv.master.slaves.last_mut() {
            backlog.hold(s.id, offset);
            if psync {
                let line = format!("+FULLRESYNC {} {offset}\r\n", srv.master.replid);
                let _ = s.events.send(Event::Line(line.into_bytes()));
            }
            s.feed.state.store(STATE_SEND_BULK, Ordering::Relaxed);
            let _ = s.events.send(Event::RdbBytes(rdb));
            let _ = s.events.send(if conf.rdb_only {
                Event::Close
            } else {
                Event::Stream { from: offset }
            });
        }
        return Reply::Nil;
    }
    let eof = conf.capa_eof;
    attach(srv, c, conf, psync, Phase::WaitStart);
    if eof
        && srv.master.sync.is_none()
        && srv.cfg.get_bool("repl-diskless-sync")
        && srv.cfg.get_i64("repl-diskless-sync-delay") > 0
    {
        tracing::info!("Delay next BGSAVE for diskless SYNC");
    }
    start_sync(srv);
    Reply::Nil
}

/// The RDB options of a payload for replicas at stream offset `offset`. On a replica the
/// stream after it is the master's, which selected its database before: the payload says
/// which (`repl-stream-db`, with `repl-id`/`repl-offset`, as Redis's `rdbPopulateSaveInfo`).
fn sync_writer_options(srv: &Server, offset: i64) -> strongbox_storage::rdb::WriterOptions {
    let mut opts = crate::snapshot::writer_options(srv, false);
    if let Some(r) = srv.replica.as_ref().filter(|_| srv.log.proxying()) {
        opts.aux.repl = Some(strongbox_storage::rdb::writer::ReplInfo {
            stream_db: r.master.db as i64,
            id: srv.master.replid.clone(),
            offset,
        });
    }
    opts
}

/// An RDB file with no keys; with the function libraries if `with_functions`.
fn empty_rdb(srv: &Server, with_functions: bool) -> Vec<u8> {
    let offset = srv.log.repl_offset().unwrap_or(0);
    let opts = sync_writer_options(srv, offset);
    let codes = if with_functions {
        crate::cmd::function::library_codes(srv)
    } else {
        Vec::new()
    };
    strongbox_storage::rdb::RdbWriter::new(Vec::new(), opts)
        .and_then(|mut w| {
            for code in &codes {
                w.write_function(code)?;
            }
            w.finish()
        })
        .unwrap_or_default()
}

/// PSYNC of a replica that has a part of our stream: +CONTINUE and the bytes it misses.
fn try_partial(srv: &mut Server, c: &mut Client, conf: &ReplConf, replid: &str, off: i64) -> bool {
    let Some(backlog) = srv.master.backlog.clone() else {
        return false;
    };
    let m = &srv.master;
    let ours = replid.eq_ignore_ascii_case(&m.replid);
    let former = replid.eq_ignore_ascii_case(&m.replid2) && off <= m.second_offset;
    if !ours && !former {
        if replid != "?" {
            tracing::info!(
                "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{replid}', my replication IDs are '{}' and '{}')",
                m.replid,
                m.replid2
            );
        }
        return false;
    }
    // The replica asks for the byte after the ones it has (1-based offsets, as Redis).
    let want = off.saturating_sub(1);
    let (first, end) = (backlog.first(), backlog.end());
    if want < first || want > end {
        tracing::info!(
            "Unable to partial resync with replica {} for lack of backlog (Replica request was: {off}).",
            c.addr
        );
        return false;
    }
    let line = if conf.capa_psync2 {
        format!("+CONTINUE {}\r\n", m.replid)
    } else {
        "+CONTINUE\r\n".to_string()
    };
    let addr = replica_name(c, conf);
    attach(srv, c, conf.clone(), true, Phase::Feeding);
    if let Some(s) = srv.master.slaves.last_mut() {
        let _ = s.events.send(Event::Line(line.into_bytes()));
        let _ = s.events.send(Event::Stream { from: want });
        s.feed.state.store(STATE_ONLINE, Ordering::Relaxed);
        backlog.hold(s.id, want);
    }
    srv.master.sync_partial_ok += 1;
    tracing::info!(
        "Partial resynchronization request from {addr} accepted. Sending {} bytes of backlog starting from offset {off}.",
        end - want
    );
    true
}

/// Make `c` a replica: its writer task hands the socket over to [`serve_replica`] after the
/// replies queued so far.
fn attach(srv: &mut Server, c: &mut Client, conf: ReplConf, psync: bool, phase: Phase) {
    let backlog = ensure_backlog(srv);
    let (tx, rx) = mpsc::unbounded_channel();
    let feed = Arc::new(Feed {
        id: c.id,
        backlog,
        events: Mutex::new(Some(rx)),
        state: AtomicU8::new(STATE_WAIT_BGSAVE),
        sent: AtomicI64::new(-1),
        online_ms: AtomicI64::new(now_ms()),
    });
    c.is_replica = true;
    c.reply_mode = ReplyMode::Off;
    c.handoff = Some(feed.clone());
    let ip = conf.ip_address.clone().unwrap_or_else(|| peer_ip(&c.addr));
    srv.master.slaves.push(Slave {
        id: c.id,
        ip,
        port: conf.listening_port,
        conf,
        psync,
        phase,
        feed,
        events: tx,
        ack_off: 0,
        fack_off: -1,
        ack_ms: now_ms(),
        soft_since_ms: None,
        since_ms: now_ms(),
    });
}

/// Start the sync snapshot for replicas waiting for one, or attach them to the running one.
fn start_sync(srv: &mut Server) {
    if !srv
        .master
        .slaves
        .iter()
        .any(|s| s.phase == Phase::WaitStart)
    {
        return;
    }
    check_sync_snapshot(srv);
    if srv.master.sync.as_ref().is_some_and(|s| s.diskless) {
        // Its replicas get it as it is written: later ones wait for the next one.
        return;
    }
    // Diskless: each replica's pipe, sent after its +FULLRESYNC.
    let mut pipes: Option<Vec<(ClientId, Event)>> = None;
    if srv.master.sync.is_none() {
        if srv.snapshot.is_some() || srv.rewrite_presync.is_some() {
            // A BGSAVE or rewrite runs: the sync starts when it is done.
            return;
        }
        if !diskless_delay_over(srv) {
            return;
        }
        let backlog = ensure_backlog(srv);
        // Diskless (straight to the sockets) when every waiting replica reads the EOF form.
        let diskless = srv.cfg.get_bool("repl-diskless-sync")
            && srv
                .master
                .slaves
                .iter()
                .filter(|s| s.phase == Phase::WaitStart)
                .all(|s| s.conf.capa_eof);
        // The snapshot point: the stream after it starts with SELECT.
        srv.log.force_select();
        let offset = srv.log.repl_offset().unwrap_or(0);
        srv.master.snapshots += 1;
        let n = srv.master.snapshots;
        let pid = std::process::id();
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let temp = dir.join(format!("temp-repl-{pid}-{n}.tmp"));
        let path = dir.join(format!("temp-repl-{pid}-{n}.rdb"));
        let opts = sync_writer_options(srv, offset);
        let t0 = std::time::Instant::now();
        let timeout = Duration::from_secs(srv.cfg.get_i64("repl-timeout").max(1) as u64);
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target = if diskless {
            let mut senders = Vec::new();
            let mut evs = Vec::new();
            for s in srv.master.slaves.iter() {
                if s.phase == Phase::WaitStart {
                    let (tx, rx) = mpsc::channel(PIPE_CHUNKS_MAX);
                    senders.push(tx);
                    evs.push((s.id, Event::RdbPipe { rx, timeout }));
                }
            }
            pipes = Some(evs);
            crate::compaction::Target::Stream {
                out: Box::new(FanOut {
                    senders,
                    cancel: cancel.clone(),
                }),
            }
        } else {
            crate::compaction::Target::Dump {
                final_path: path.clone(),
            }
        };
        let started = crate::compaction::Snapshot::start(
            srv,
            target,
            temp,
            crate::compaction::Format::Rdb(opts),
        );
        if let Err(e) = started {
            tracing::warn!("Can't start the snapshot for replica sync: {e}");
            let ids: Vec<ClientId> = srv
                .master
                .slaves
                .iter()
                .filter(|s| s.phase == Phase::WaitStart)
                .map(|s| s.id)
                .collect();
            for id in ids {
                drop_slave(srv, id);
            }
            return;
        }
        if let Some(s) = srv.snapshot.as_mut() {
            s.note_start(t0);
        }
        backlog.hold(SNAPSHOT_HOLD, offset);
        srv.master.sync = Some(SyncSnapshot {
            epoch: srv.snap_epoch,
            offset,
            path,
            diskless,
            cancel,
        });
        tracing::info!(
            "Starting BGSAVE for SYNC with target: {} (fork-free snapshot)",
            if diskless { "replicas sockets" } else { "disk" }
        );
    }
    let Some(sync) = &srv.master.sync else {
        return;
    };
    let (offset, replid) = (sync.offset, srv.master.replid.clone());
    for s in srv.master.slaves.iter_mut() {
        if s.phase != Phase::WaitStart {
            continue;
        }
        s.phase = Phase::WaitEnd;
        s.feed.backlog.hold(s.id, offset);
        if s.psync {
            let line = format!("+FULLRESYNC {replid} {offset}\r\n");
            let _ = s.events.send(Event::Line(line.into_bytes()));
        }
    }
    if let Some(pipes) = pipes {
        for (id, ev) in pipes {
            if let Some(s) = srv.master.slaves.iter_mut().find(|s| s.id == id) {
                s.feed.state.store(STATE_SEND_BULK, Ordering::Relaxed);
                let _ = s.events.send(ev);
            }
        }
    }
}

/// With `repl-diskless-sync yes` a new sync snapshot waits, so that replicas arriving close
/// together share one transfer (Redis's shouldStartChildReplication): until one replica has
/// waited `repl-diskless-sync-delay` seconds (counted in whole seconds of the clock, as
/// Redis), or `repl-diskless-sync-max-replicas` (when not 0) are waiting. The cron checks
/// again every tick.
fn diskless_delay_over(srv: &Server) -> bool {
    if !srv.cfg.get_bool("repl-diskless-sync") {
        return true;
    }
    let waiting = srv
        .master
        .slaves
        .iter()
        .filter(|s| s.phase == Phase::WaitStart);
    let (count, oldest) = waiting.fold((0i64, i64::MAX), |(n, t), s| (n + 1, t.min(s.since_ms)));
    let max_replicas = srv.cfg.get_i64("repl-diskless-sync-max-replicas");
    let idle_s = now_ms() / 1000 - oldest / 1000;
    (max_replicas > 0 && count >= max_replicas)
        || idle_s >= srv.cfg.get_i64("repl-diskless-sync-delay")
}

/// A sync snapshot that is no longer running (aborted: shutdown, a full sync from our own
/// master) fails its replicas (they reconnect and ask again).
fn check_sync_snapshot(srv: &mut Server) {
    let Some(sync) = &srv.master.sync else {
        return;
    };
    if owns_snapshot(srv) {
        return;
    }
    tracing::warn!("The snapshot for replica sync was aborted");
    let _ = std::fs::remove_file(&sync.path);
    srv.master.sync = None;
    if let Some(b) = &srv.master.backlog {
        b.release(SNAPSHOT_HOLD);
    }
    let ids = waiting_for_snapshot(srv);
    for id in ids {
        drop_slave(srv, id);
    }
}

/// The replicas waiting for the sync snapshot to end.
fn waiting_for_snapshot(srv: &Server) -> Vec<ClientId> {
    srv.master
        .slaves
        .iter()
        .filter(|s| s.phase == Phase::WaitEnd)
        .map(|s| s.id)
        .collect()
}

/// Whether the running snapshot is the sync snapshot.
pub fn owns_snapshot(srv: &Server) -> bool {
    match (&srv.master.sync, &srv.snapshot) {
        (Some(m), Some(s)) => m.epoch == s.epoch,
        _ => false,
    }
}

/// The sync snapshot's file is complete: send it to the replicas that wait for it.
pub fn snapshot_done(srv: &mut Server) {
    let Some(mut snap) = srv.snapshot.take() else {
        return;
    };
    let result = crate::compaction::join(&mut snap);
    let Some(sync) = srv.master.sync.take() else {
        return;
    };
    if let Some(b) = &srv.master.backlog {
        b.release(SNAPSHOT_HOLD);
    }
    let waiting = waiting_for_snapshot(srv);
    match result {
        Ok(_) => {
            tracing::info!(
                "Background saving for replica sync terminated with success ({:.3} s)",
                snap.started.elapsed().as_secs_f64()
            );
            let eof_form = srv.cfg.get_bool("repl-diskless-sync");
            for id in waiting {
                if sync.diskless {
                    let Some(s) = srv.master.slaves.iter_mut().find(|s| s.id == id) else {
                        continue;
                    };
                    s.phase = Phase::Feeding;
                    let _ = s.events.send(Event::PayloadDone);
                    let _ = s.events.send(if s.conf.rdb_only {
                        Event::Close
                    } else {
                        Event::Stream { from: sync.offset }
                    });
                    continue;
                }
                let opened = std::fs::File::open(&sync.path)
                    .and_then(|f| f.metadata().map(|m| (f, m.len())));
                let Some(s) = srv.master.slaves.iter_mut().find(|s| s.id == id) else {
                    continue;
                };
                match opened {
                    Ok((file, len)) => {
                        s.phase = Phase::Feeding;
                        s.feed.state.store(STATE_SEND_BULK, Ordering::Relaxed);
                        let eof = eof_form && s.conf.capa_eof;
                        let _ = s.events.send(Event::Rdb { file, len, eof });
                        if s.conf.rdb_only {
                            let _ = s.events.send(Event::Close);
                        } else {
                            let _ = s.events.send(Event::Stream { from: sync.offset });
                        }
                    }
                    Err(e) => {
                        tracing::warn!("Can't open the RDB file for replica sync: {e}");
                        drop_slave(srv, id);
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!("Background saving for replica sync failed: {e}");
            for id in waiting {
                drop_slave(srv, id);
            }
        }
    }
    // The replicas hold it open; nothing else needs the name.
    let _ = std::fs::remove_file(&sync.path);
    // Replicas that came while a BGSAVE ran start theirs now.
    start_sync(srv);
}

/// Disconnect replica `id` (the connection closes; `forget` follows).
fn drop_slave(srv: &mut Server, id: ClientId) {
    if let Some(c) = srv.clients.get_mut(&id) {
        c.closed = true;
    }
    forget(srv, id);
}

/// A replica's connection is gone (or dropped).
pub fn forget(srv: &mut Server, id: ClientId) {
    let Some(i) = srv.master.slaves.iter().position(|s| s.id == id) else {
        return;
    };
    let s = srv.master.slaves.remove(i);
    if srv.master.slaves.is_empty() {
        srv.master.no_slaves_since_ms = now_ms();
    }
    refresh_good_slaves(srv, now_ms());
    let _ = s.events.send(Event::Close);
    s.feed.backlog.release(id);
    tracing::info!("Connection with replica {}:{} lost.", s.ip, s.port);
}

/// REPLCONF ACK <offset> from replica `id`.
fn ack(srv: &mut Server, id: ClientId, off: i64, fack: Option<i64>) {
    let Some(s) = srv.master.slaves.iter_mut().find(|s| s.id == id) else {
        return;
    };
    if off > s.ack_off {
        s.ack_off = off;
    }
    if let Some(f) = fack {
        s.fack_off = s.fack_off.max(f);
    }
    s.ack_ms = now_ms();
    // WAITs are answered after the round's commands (`after_round`), not from inside this one.
    srv.master.acked = true;
}

/// Whether every replica has acknowledged the whole stream (Redis's `isReadyToShutdown`; true
/// without replicas). A replica still in its full sync has acknowledged nothing.
pub fn replicas_in_sync(srv: &Server) -> bool {
    let end = shown_offset(srv);
    srv.master.slaves.iter().all(|s| s.ack_off == end)
}

/// Ask every replica for its offset now (`REPLCONF GETACK *`, Redis's `sendGetackToReplicas`).
pub fn request_acks(srv: &mut Server) {
    if !srv.master.slaves.is_empty() {
        srv.log
            .feed_repl_only(b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n");
    }
}

/// At the end of a shutdown: a warning per replica behind the stream, and how many are in
/// sync (Redis's `finishShutdown`, same words).
pub fn log_replicas_at_shutdown(srv: &Server) {
    let m = &srv.master;
    if m.slaves.is_empty() {
        return;
    }
    let end = shown_offset(srv);
    let now = now_ms();
    let mut lagging = 0;
    for s in &m.slaves {
        if s.ack_off == end {
            continue;
        }
        lagging += 1;
        let state = s.feed.state.load(Ordering::Relaxed);
        let lag = if state == STATE_ONLINE {
            (now - s.ack_ms).max(0) / 1000
        } else {
            0
        };
        tracing::warn!(
            "Lagging replica {}:{} reported offset {} behind master, lag={lag}, state={}.",
            s.ip,
            s.port,
            end - s.ack_off,
            state_name(state)
        );
    }
    tracing::info!(
        "{} of {} replicas are in sync when shutting down.",
        m.slaves.len() - lagging,
        m.slaves.len()
    );
}

fn state_name(state: u8) -> &'static str {
    match state {
        STATE_ONLINE => "online",
        STATE_SEND_BULK => "send_bulk",
        _ => "wait_bgsave",
    }
}

/// Replicas online whose acknowledged offset (`aof`: fsynced offset) is at least `offset`.
fn count_acks(srv: &Server, offset: i64, aof: bool) -> i64 {
    srv.master
        .slaves
        .iter()
        .filter(|s| {
            s.feed.state.load(Ordering::Relaxed) == STATE_ONLINE
                && if aof { s.fack_off } else { s.ack_off } >= offset
        })
        .count() as i64
}

/// WAIT numreplicas timeout (arguments parsed): the number of replicas that acknowledged
/// everything written so far, waiting up to `timeout_ms` (0: forever) for `numreplicas`.
pub fn wait(ctx: &mut Ctx, numreplicas: i64, timeout_ms: i64) -> Reply {
    if ctx.srv.replica.is_some() {
        return Reply::err("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let Some(offset) = offset(ctx.srv) else {
        // No replica ever connected.
        if numreplicas <= 0 || ctx.in_exec {
            return Reply::Int(0);
        }
        return block_wait(ctx, 0, numreplicas, timeout_ms, None);
    };
    let n = count_acks(ctx.srv, offset, false);
    if n >= numreplicas || ctx.in_exec {
        return Reply::Int(n);
    }
    block_wait(ctx, offset, numreplicas, timeout_ms, None)
}

/// WAITAOF's replica part (Redis 7.2): `local` is its answer for this server's log (whose
/// fsync the reply waits for); this waits up to `timeout_ms` (0: forever) for `numreplicas`
/// replicas to report (`REPLCONF ACK … FACK`) their AOF fsynced up to the stream's current
/// end, and answers `[local, replicas]`. Strongbox replicas report it, as Redis 7.2+ and
/// Valkey ones; Redis 7.0 replicas do not, so they never count.
pub fn waitaof(ctx: &mut Ctx, local: i64, numreplicas: i64, timeout_ms: i64) -> Reply {
    let answer = |n: i64| Reply::Array(vec![Reply::Int(local), Reply::Int(n)]);
    let Some(offset) = offset(ctx.srv) else {
        if numreplicas <= 0 {
            return answer(0);
        }
        return block_wait(ctx, 0, numreplicas, timeout_ms, Some(local));
    };
    let n = count_acks(ctx.srv, offset, true);
    if n >= numreplicas {
        return answer(n);
    }
    block_wait(ctx, offset, numreplicas, timeout_ms, Some(local))
}

/// Block the caller of WAIT (`aof` None) or WAITAOF (`aof`: its local count).
fn block_wait(
    ctx: &mut Ctx,
    offset: i64,
    numreplicas: i64,
    timeout_ms: i64,
    aof: Option<i64>,
) -> Reply {
    let (name, timeout_reply) = match aof {
        None => (&b"WAIT"[..], Reply::Int(0)),
        Some(local) => (
            &b"WAITAOF"[..],
            Reply::Array(vec![Reply::Int(local), Reply::Int(0)]),
        ),
    };
    ctx.blocked = Some(Blocked {
        db: ctx.client.db,
        keys: Vec::new(),
        // The deadline is ours (`cron`): the answer is the count at that time.
        deadline_ms: None,
        argv: vec![Bytes::from_static(name)],
        timeout_reply,
        postponed: false,
    });
    ctx.srv.master.waiters.push(Waiter {
        id: ctx.client.id,
        offset,
        numreplicas,
        deadline_ms: (timeout_ms > 0).then(|| ctx.now_ms.saturating_add(timeout_ms)),
        aof,
    });
    ctx.srv.master.get_ack = true;
    Reply::Nil
}

/// Answer the WAITs that are satisfied or past their deadline.
fn serve_waiters(srv: &mut Server, now: i64) {
    let waiters = std::mem::take(&mut srv.master.waiters);
    let mut keep = Vec::with_capacity(waiters.len());
    for w in waiters {
        let n = count_acks(srv, w.offset, w.aof.is_some());
        let due = n >= w.numreplicas || w.deadline_ms.is_some_and(|d| d <= now);
        let Some(mut c) = srv.clients.remove(&w.id) else {
            // Gone.
            continue;
        };
        let name: &[u8] = if w.aof.is_some() { b"WAITAOF" } else { b"WAIT" };
        let waiting = c
            .blocked
            .as_ref()
            .is_some_and(|b| b.keys.is_empty() && b.argv.first().is_some_and(|a| a == name));
        if !waiting {
            // Unblocked otherwise (CLIENT UNBLOCK).
            srv.clients.insert(w.id, c);
            continue;
        }
        if due {
            let reply = match w.aof {
                None => Reply::Int(n),
                Some(local) => {
                    // The local part: released only once this server's log is fsynced.
                    c.wait_synced = local == 1;
                    Reply::Array(vec![Reply::Int(local), Reply::Int(n)])
                }
            };
            crate::exec::unblock_with(srv, &mut c, Some(reply));
        } else {
            keep.push(w);
        }
        srv.clients.insert(c.id, c);
    }
    keep.append(&mut srv.master.waiters);
    srv.master.waiters = keep;
}

/// Disconnect replicas over `client-output-buffer-limit replica`.
fn enforce_limits(srv: &mut Server, now: i64) {
    if srv.master.slaves.is_empty() {
        return;
    }
    let (hard, soft, soft_s) = srv.master.limits;
    let mut over = Vec::new();
    for s in srv.master.slaves.iter_mut() {
        let Some(pending) = s.feed.backlog.pending(s.id) else {
            continue;
        };
        if hard > 0 && pending > hard {
            over.push((s.id, pending));
            continue;
        }
        if soft > 0 && pending > soft {
            let since = *s.soft_since_ms.get_or_insert(now);
            if now - since > soft_s * 1000 {
                over.push((s.id, pending));
            }
        } else {
            s.soft_since_ms = None;
        }
    }
    for (id, pending) in over {
        let addr = srv
            .clients
            .get(&id)
            .map(|c| c.addr.clone())
            .unwrap_or_default();
        tracing::warn!(
            "Client id={id} addr={addr} flags=S scheduled to be closed ASAP for overcoming of output buffer limits ({pending} bytes pending)."
        );
        drop_slave(srv, id);
    }
}

/// End of an execution round, after the log buffer was submitted: start a sync, send
/// GETACK after a WAIT, check the output limits.
pub fn after_round(srv: &mut Server) {
    if srv.master.slaves.is_empty() {
        return;
    }
    start_sync(srv);
    if std::mem::take(&mut srv.master.acked) && !srv.master.waiters.is_empty() {
        serve_waiters(srv, now_ms());
        // Commands an answered WAIT held back may have run: their effects go out now.
        srv.log.submit();
    }
    if std::mem::take(&mut srv.master.get_ack) {
        request_acks(srv);
    }
    enforce_limits(srv, now_ms());
}

pub const NOREPLICAS_ERR: &str = "NOREPLICAS Not enough good replicas to write.";

/// Whether a write from `client` must be refused (`min-replicas-to-write` not met).
#[inline]
pub fn refuse_write(srv: &Server, client: &Client) -> bool {
    srv.master.deny_writes && !client.is_master
}

/// Count the good replicas for `min-replicas-to-write` (Redis's refreshGoodSlavesCount): in
/// the timer, when a replica goes, and on CONFIG SET (so a new threshold applies at once).
pub fn refresh_good_slaves(srv: &mut Server, now: i64) {
    let to_write = srv.cfg.get_i64("min-replicas-to-write");
    let max_lag = srv.cfg.get_i64("min-replicas-max-lag");
    let good = srv
        .master
        .slaves
        .iter()
        .filter(|s| {
            s.feed.state.load(Ordering::Relaxed) == STATE_ONLINE
                && (now - s.ack_ms) / 1000 <= max_lag
        })
        .count() as i64;
    srv.master.good_slaves = good;
    srv.master.deny_writes =
        srv.replica.is_none() && to_write > 0 && max_lag > 0 && good < to_write;
}

/// Timer: PING to the replicas, WAIT deadlines, an aborted sync snapshot, settings.
pub fn cron(srv: &mut Server) {
    let now = now_ms();
    refresh_good_slaves(srv, now);
    if !srv.master.waiters.is_empty() {
        serve_waiters(srv, now);
    }
    check_sync_snapshot(srv);
    // Replicas waiting out `repl-diskless-sync-delay`.
    start_sync(srv);
    if srv.master.slaves.is_empty() {
        // The PING period starts when a replica comes (not at the last PING, which may be
        // long ago or never): a replica is not sent a PING as soon as it attaches.
        srv.master.last_ping_ms = now;
    }
    let Some(backlog) = srv.master.backlog.clone() else {
        return;
    };
    backlog.set_size(srv.cfg.get_i64("repl-backlog-size"));
    if srv.master.slaves.is_empty() {
        // As Redis: the backlog goes after `repl-backlog-ttl` seconds without replicas (a
        // replica of ours keeps it: its own replicas may continue from it after a promotion).
        let ttl = srv.cfg.get_i64("repl-backlog-ttl");
        if ttl > 0 && srv.replica.is_none() && now - srv.master.no_slaves_since_ms > ttl * 1000 {
            srv.master.offset_without_backlog = offset(srv).unwrap_or(0);
            srv.log.set_repl(None);
            srv.master.backlog = None;
            srv.master.replid = random_replid();
            srv.master.replid2 = "0".repeat(40);
            srv.master.second_offset = -1;
            tracing::info!(
                "Replication backlog freed after {ttl} seconds without connected replicas."
            );
        }
        return;
    }
    let l = srv.hot.obuf[crate::obuf::REPLICA];
    srv.master.limits = (l.hard, l.soft, l.soft_seconds);
    // As Redis: a PSYNC replica silent for `repl-timeout` is dropped (SYNC clients such as
    // redis-cli send no ACKs).
    let timeout_ms = srv.cfg.get_i64("repl-timeout").max(1) * 1000;
    let silent: Vec<ClientId> = srv
        .master
        .slaves
        .iter()
        .filter(|s| {
            s.psync
                && s.feed.state.load(Ordering::Relaxed) == STATE_ONLINE
                && now - s.ack_ms.max(s.feed.online_ms.load(Ordering::Relaxed)) > timeout_ms
        })
        .map(|s| s.id)
        .collect();
    for id in silent {
        tracing::warn!("Disconnecting timedout replica (client id {id})");
        drop_slave(srv, id);
    }
    let period = srv.cfg.get_i64("repl-ping-replica-period").max(1) * 1000;
    // No PING while a FAILOVER waits: it would move the offset the replica must reach.
    if now - srv.master.last_ping_ms >= period && srv.failover.is_none() {
        srv.master.last_ping_ms = now;
        srv.log.feed_repl_only(b"*1\r\n$4\r\nPING\r\n");
    }
    enforce_limits(srv, now);
}

/// The running snapshot is about to be aborted (shutdown, a full sync from our own master): a
/// diskless one stops waiting for its replicas.
pub fn cancel_sync(srv: &Server) {
    if let Some(s) = &srv.master.sync {
        s.cancel.store(true, Ordering::Relaxed);
    }
}

/// This server's dataset is replaced (a full sync from its own master): its replicas and the
/// backlog describe the old one. Replicas are dropped and the replication id changes.
pub fn dataset_replaced(srv: &mut Server) {
    if let Some(sync) = srv.master.sync.take() {
        // Aborted just before (`replica::full_sync`).
        let _ = std::fs::remove_file(&sync.path);
    }
    drop_all_slaves(srv);
    // No one may continue from the old stream (Redis's `freeReplicationBacklog` here); the
    // sync's load makes the new one, at the master's offset (`replica_backlog`).
    if let Some(b) = srv.master.backlog.take() {
        srv.master.offset_without_backlog = b.end();
        srv.log.set_repl(None);
    }
    srv.master.replid = random_replid();
    srv.master.replid2 = "0".repeat(40);
    srv.master.second_offset = -1;
}

/// ROLE on a master.
pub fn role_reply(srv: &Server) -> Reply {
    let slaves = srv
        .master
        .slaves
        .iter()
        .filter(|s| s.feed.state.load(Ordering::Relaxed) == STATE_ONLINE)
        .map(|s| {
            Reply::Array(vec![
                Reply::bulk_str(&s.ip),
                Reply::bulk(Bytes::from(s.port.to_string())),
                Reply::bulk(Bytes::from(s.ack_off.to_string())),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk_str("master"),
        Reply::Int(shown_offset(srv)),
        Reply::Array(slaves),
    ])
}

/// FAILOVER TO host port: `None` if no replica has that address and listening port, else
/// whether it is online (Redis's `findReplica` compares the announced or peer address).
pub fn replica_online(srv: &Server, host: &str, port: i64) -> Option<bool> {
    let s = srv
        .master
        .slaves
        .iter()
        .find(|s| s.ip.eq_ignore_ascii_case(host) && s.port == port)?;
    Some(s.feed.state.load(Ordering::Relaxed) == STATE_ONLINE)
}

/// FAILOVER: the replica at `target` (any replica when `None`) if it has acknowledged
/// `offset`, with its address and listening port.
pub fn replica_acked(
    srv: &Server,
    target: Option<(&str, i64)>,
    offset: i64,
) -> Option<(String, u16)> {
    srv.master
        .slaves
        .iter()
        .filter(|s| match target {
            Some((host, port)) => s.ip.eq_ignore_ascii_case(host) && s.port == port,
            None => true,
        })
        .find(|s| s.ack_off == offset && (0..=65535).contains(&s.port))
        .map(|s| (s.ip.clone(), s.port as u16))
}

/// INFO replication from `connected_slaves` on. `upstream`: (replid, offset) of this
/// server's own master, shown instead of ours on a replica.
pub fn info_fields(srv: &Server, upstream: Option<(String, i64)>) -> Vec<(String, String)> {
    let m = &srv.master;
    let mut v: Vec<(String, String)> = Vec::new();
    let mut kv = |k: &str, val: String| v.push((k.to_string(), val));
    kv("connected_slaves", m.slaves.len().to_string());
    if srv.cfg.get_i64("min-replicas-to-write") > 0 && srv.cfg.get_i64("min-replicas-max-lag") > 0 {
        kv("min_slaves_good_slaves", m.good_slaves.to_string());
    }
    let now = now_ms();
    for (i, s) in m.slaves.iter().enumerate() {
        let state = state_name(s.feed.state.load(Ordering::Relaxed));
        kv(
            &format!("slave{i}"),
            format!(
                "ip={},port={},state={state},offset={},lag={}",
                s.ip,
                s.port,
                s.ack_off,
                (now - s.ack_ms).max(0) / 1000
            ),
        );
    }
    kv(
        "master_failover_state",
        crate::failover::state_name(srv).into(),
    );
    let (replid, off) = match upstream {
        Some((id, off)) => (id, off),
        None => (m.replid.clone(), shown_offset(srv)),
    };
    kv("master_replid", replid);
    kv("master_replid2", m.replid2.clone());
    kv("master_repl_offset", off.to_string());
    kv("second_repl_offset", m.second_offset.to_string());
    match &m.backlog {
        Some(b) => {
            let (first, end, size) = {
                let g = b.lock();
                (g.first, g.end, g.size)
            };
            let histlen = (end - first).min(size);
            kv("repl_backlog_active", "1".into());
            kv("repl_backlog_size", size.to_string());
            kv(
                "repl_backlog_first_byte_offset",
                (end - histlen + 1).to_string(),
            );
            kv("repl_backlog_histlen", histlen.to_string());
        }
        None => {
            kv("repl_backlog_active", "0".into());
            kv(
                "repl_backlog_size",
                srv.cfg.get_i64("repl-backlog-size").to_string(),
            );
            kv("repl_backlog_first_byte_offset", "0".into());
            kv("repl_backlog_histlen", "0".into());
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The replica's connection task (on the I/O runtime).

/// The connection's state the writer task hands over with its socket.
pub struct Conn {
    pub wr: tokio::net::tcp::OwnedWriteHalf,
    pub rx: mpsc::UnboundedReceiver<Outgoing>,
    pub gate: watch::Receiver<Gate>,
    pub permits: Arc<Semaphore>,
    pub shared: Arc<ConnShared>,
    pub bytes_out: Arc<AtomicU64>,
}

/// Serve a connection that became a replica: the payload, then the stream. Replies to the
/// replica's own commands (REPLCONF ACK answers nothing) are dropped; its batch permits are
/// returned so that its reader goes on.
pub async fn serve_replica(mut conn: Conn, feed: Arc<Feed>) {
    let r = feed_replica(&mut conn, &feed).await;
    if let Err(e) = r {
        tracing::info!("Replica connection (client id {}) closed: {e}", feed.id);
    }
    let _ = conn.wr.shutdown().await;
    conn.permits.close();
    conn.shared.kill.notify_one();
}

/// A message on the connection's reply channel: false when the connection is to close.
fn on_outgoing(conn: &Conn, o: Option<Outgoing>) -> bool {
    let Some(o) = o else {
        return false;
    };
    let sh = &conn.shared;
    sh.out_bytes.fetch_sub(
        o.size.min(sh.out_bytes.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
    if o.completes_batch {
        conn.permits.add_permits(1);
    }
    !o.close
}

async fn write(conn: &mut Conn, b: &[u8]) -> Result<(), String> {
    conn.wr.write_all(b).await.map_err(|e| e.to_string())?;
    conn.bytes_out.fetch_add(b.len() as u64, Ordering::Relaxed);
    Ok(())
}

async fn feed_replica(conn: &mut Conn, feed: &Feed) -> Result<(), String> {
    let mut events = feed
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or("no events")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut payload_started = false;
    // The end mark of a diskless payload, written once the snapshot is known complete.
    let mut mark: Option<String> = None;
    // Until the stream starts: the FULLRESYNC/CONTINUE line, the payload, newlines meanwhile
    // (as Redis, so that the replica does not time out while the snapshot is taken).
    let from = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None | Some(Event::Close) => return Ok(()),
                Some(Event::Line(b)) => write(conn, &b).await?,
                Some(Event::Rdb { file, len, eof }) => {
                    payload_started = true;
                    send_rdb(conn, file, len, eof).await?;
                    tracing::info!("Synchronization with replica (client id {}) succeeded", feed.id);
                }
                Some(Event::RdbPipe { mut rx, timeout }) => {
                    payload_started = true;
                    let m = random_replid();
                    write(conn, format!("$EOF:{m}\r\n").as_bytes()).await?;
                    // Until the snapshot thread is done; a replica that stops reading for
                    // `repl-timeout` is dropped (it would hold the snapshot up).
                    while let Some(b) = rx.recv().await {
                        tokio::select! {
                            r = tokio::time::timeout(timeout, conn.wr.write_all(&b)) => {
                                r.map_err(|_| "Disconnecting timedout replica (streaming sync)".to_string())?
                                    .map_err(|e| e.to_string())?;
                                conn.bytes_out.fetch_add(b.len() as u64, Ordering::Relaxed);
                            }
                            // Dropped by the execution thread: its reply channel closes.
                            o = conn.rx.recv() => if !on_outgoing(conn, o) { return Ok(()) },
                        }
                    }
                    mark = Some(m);
                }
                Some(Event::PayloadDone) => {
                    if let Some(m) = mark.take() {
                        write(conn, m.as_bytes()).await?;
                        tracing::info!("Synchronization with replica (client id {}) succeeded", feed.id);
                    }
                }
                Some(Event::RdbBytes(b)) => {
                    payload_started = true;
                    write(conn, format!("${}\r\n", b.len()).as_bytes()).await?;
                    write(conn, &b).await?;
                }
                Some(Event::Stream { from }) => break from,
            },
            o = conn.rx.recv() => if !on_outgoing(conn, o) { return Ok(()) },
            _ = tick.tick() => if !payload_started { write(conn, b"\n").await? },
        }
    };
    feed.online_ms.store(now_ms(), Ordering::Relaxed);
    feed.state.store(STATE_ONLINE, Ordering::Relaxed);
    let backlog = feed.backlog.clone();
    let mut end_rx = backlog.end_tx.subscribe();
    let mut pos = from;
    let mut bufs: Vec<Bytes> = Vec::new();
    loop {
        let g = *conn.gate.borrow_and_update();
        end_rx.borrow_and_update();
        bufs.clear();
        backlog
            .take(pos, g.released(), SEND_CHUNK_BYTES, &mut bufs)
            .map_err(|_| "the replica's position left the backlog".to_string())?;
        let n: usize = bufs.iter().map(Bytes::len).sum();
        if n > 0 {
            tokio::select! {
                r = write_each(&mut conn.wr, &bufs) => r.map_err(|e| e.to_string())?,
                ev = events.recv() => if matches!(ev, None | Some(Event::Close)) { return Ok(()) },
            }
            conn.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            pos += n as i64;
            feed.sent.store(pos, Ordering::Relaxed);
            backlog.hold(feed.id, pos);
            continue;
        }
        tokio::select! {
            r = end_rx.changed() => if r.is_err() { return Ok(()) },
            r = conn.gate.changed() => if r.is_err() { return Ok(()) },
            o = conn.rx.recv() => if !on_outgoing(conn, o) { return Ok(()) },
            ev = events.recv() => if matches!(ev, None | Some(Event::Close)) { return Ok(()) },
        }
    }
}

/// Write `bufs` whole, in order, with `writev` (a lagging replica's stream is many small
/// blocks: one system call each would be one per round of the master). At most
/// [`SLICES_PER_SEND_MAX`] slices (under Linux's `IOV_MAX`).
async fn write_each(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    bufs: &[Bytes],
) -> std::io::Result<()> {
    let (mut i, mut off) = (0, 0);
    while i < bufs.len() {
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&bufs[i][off..])
            .chain(bufs[i + 1..].iter().map(|b| &b[..]))
            .map(std::io::IoSlice::new)
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 && slices.iter().any(|s| !s.is_empty()) {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // Past what was written: whole slices, then into the next one.
        while i < bufs.len() && n >= bufs[i].len() - off {
            n -= bufs[i].len() - off;
            i += 1;
            off = 0;
        }
        off += n;
    }
    Ok(())
}

/// The RDB payload: `$<len>\r\n<bytes>` or `$EOF:<mark>\r\n<bytes><mark>`.
async fn send_rdb(
    conn: &mut Conn,
    mut file: std::fs::File,
    len: u64,
    eof: bool,
) -> Result<(), String> {
    let mark = random_replid();
    let head = if eof {
        format!("$EOF:{mark}\r\n")
    } else {
        format!("${len}\r\n")
    };
    write(conn, head.as_bytes()).await?;
    let mut left = len;
    let mut chunk = vec![0u8; FILE_CHUNK_BYTES];
    while left > 0 {
        // A page-cache read of one chunk: short enough for the I/O thread.
        let want = (left as usize).min(chunk.len());
        let n = file
            .read(&mut chunk[..want])
            .map_err(|e| format!("Read error sending DB to replica: {e}"))?;
        if n == 0 {
            return Err("the RDB file for the replica is shorter than its size".into());
        }
        write(conn, &chunk[..n]).await?;
        left -= n as u64;
    }
    if eof {
        write(conn, mark.as_bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::server_and_client;

    fn taken(b: &Backlog, pos: i64, released: u64, max: usize) -> Result<Vec<u8>, ()> {
        let mut out = Vec::new();
        b.take(pos, released, max, &mut out)
            .map(|_| out.iter().flat_map(|b| b.iter().copied()).collect())
    }

    #[test]
    fn only_released_bytes_are_taken() {
        let b = Backlog::new(0, 1 << 20);
        b.feed(b"abcdef", 100, true);
        b.feed(b"PING", 106, false);
        b.feed(b"xyz", 106, true);
        assert_eq!(b.end(), 13);
        assert_eq!(taken(&b, 0, 100, 99).unwrap(), b"");
        assert_eq!(taken(&b, 0, 103, 99).unwrap(), b"abc");
        // The PING follows log position 106: it goes once that is released.
        assert_eq!(taken(&b, 3, 106, 99).unwrap(), b"defPING");
        assert_eq!(taken(&b, 3, 108, 99).unwrap(), b"defPINGxy");
        assert_eq!(taken(&b, 3, 200, 4).unwrap(), b"defP");
        assert_eq!(taken(&b, 13, 200, 4).unwrap(), b"");
    }

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    /// The stream carries exactly the log's bytes (SELECT, MULTI/EXEC units); a sync point
    /// starts with SELECT; without a log the stream is still fed and no reply waits for it.
    #[test]
    fn the_stream_is_the_logs_bytes() {
        let mut d = crate::durability::Durability::new();
        let (sink, logged) = crate::durability::RecordingSink::new();
        d.set_sink(Some(sink), 0);
        let b = Backlog::new(0, 1 << 20);
        d.set_repl(Some(b.clone()));
        d.append(0, &argv(&["SET", "a", "1"]));
        d.begin_unit();
        d.append(1, &argv(&["INCR", "n"]));
        d.append(1, &argv(&["DEL", "a"]));
        d.end_unit();
        assert_eq!(d.repl_offset(), Some(d.pos() as i64));
        d.submit();
        let log = logged.lock().unwrap().clone();
        assert!(log.windows(5).any(|w| w == b"MULTI"));
        assert_eq!(taken(&b, 0, u64::MAX, usize::MAX).unwrap(), log);
        // A sync point in db 1: what follows selects its database first.
        d.force_select();
        let off = d.repl_offset().unwrap();
        d.append(1, &argv(&["INCR", "n"]));
        d.submit();
        let after = taken(&b, off, u64::MAX, usize::MAX).unwrap();
        assert!(
            after.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR"),
            "{}",
            String::from_utf8_lossy(&after)
        );
        // Not released by the log yet: nothing for replicas.
        assert_eq!(taken(&b, off, off as u64, usize::MAX).unwrap(), b"");
        // Without a log.
        let p = d.pos();
        d.set_sink(None, p);
        let end = b.end();
        d.append(0, &argv(&["DEL", "x"]));
        assert_eq!(d.pos(), p, "no reply waits for stream-only bytes");
        d.submit();
        assert!(b.end() > end);
        assert_eq!(
            taken(&b, end, p, usize::MAX).unwrap(),
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n"
        );
    }

    /// A replica (proxy mode): its own effects go to its log only; the stream gets the
    /// master's bytes, released once the log holds the batch's effects; its own PING and
    /// PUBLISH are not fed; after a promotion its own effects are the stream again, starting
    /// with SELECT.
    #[test]
    fn a_replica_proxies_its_masters_bytes() {
        let mut d = crate::durability::Durability::new();
        let (sink, logged) = crate::durability::RecordingSink::new();
        d.set_sink(Some(sink), 0);
        let b = Backlog::new(100, 1 << 20);
        d.set_repl(Some(b.clone()));
        d.set_proxy(true);
        d.append(3, &argv(&["SET", "a", "1"]));
        assert_eq!(
            d.repl_offset(),
            Some(100),
            "our own bytes are not the stream's"
        );
        let raw = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
        d.feed_proxied(raw);
        let log_end = d.pos();
        assert!(log_end > 0);
        assert_eq!(logged.lock().unwrap().len() as u64, log_end);
        assert_eq!(b.end(), 100 + raw.len() as i64);
        // Released only once our log is durable up to the batch's effects.
        assert_eq!(taken(&b, 100, log_end - 1, usize::MAX).unwrap(), b"");
        assert_eq!(taken(&b, 100, log_end, usize::MAX).unwrap(), raw);
        d.feed_repl_only(b"*1\r\n$4\r\nPING\r\n");
        d.append_repl_only(0, &argv(&["PUBLISH", "c", "m"]));
        d.submit();
        assert_eq!(b.end(), 100 + raw.len() as i64, "own PING / PUBLISH fed");
        // Promoted: our effects are the stream again, from a SELECT of their database.
        d.set_proxy(false);
        let off = b.end();
        d.append(3, &argv(&["DEL", "a"]));
        d.submit();
        let after = taken(&b, off, u64::MAX, usize::MAX).unwrap();
        assert!(
            after.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL"),
            "{}",
            String::from_utf8_lossy(&after)
        );
    }

    // ---- Properties: REPLCONF and PSYNC argument parsing (in their handlers, run through
    // `exec::call` on a server without a listener, as src/cmd/function.rs's tests do). ----

    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn run(srv: &mut Server, c: &mut Client, args: &[Vec<u8>], in_exec: bool) -> Reply {
        crate::testutil::call(srv, c, args, in_exec)
    }

    /// An argument a replica (or redis-cli, or garbage) sends: known options and values,
    /// extreme numbers, arbitrary bytes.
    #[derive(Clone, Debug)]
    struct Arg(Vec<u8>);

    impl Arbitrary for Arg {
        fn arbitrary(g: &mut Gen) -> Arg {
            let known = [
                "listening-port",
                "ip-address",
                "capa",
                "ack",
                "getack",
                "rdb-filter-only",
                "rdb-only",
                "LISTENING-PORT",
                "CAPA",
                "eof",
                "psync2",
                "functions",
                "0",
                "1",
                "-1",
                "6380",
                "2147483648",
                "-2147483649",
                "9223372036854775807",
                "-9223372036854775808",
                "99999999999999999999",
                "",
                "?",
                "+1",
                " 1",
                "1.5",
                "functions foo",
                " functions  ",
                "*",
            ];
            match u8::arbitrary(g) % 4 {
                0 => Arg(Vec::<u8>::arbitrary(g)),
                1 => Arg(i64::arbitrary(g).to_string().into_bytes()),
                _ => Arg(g.choose(&known).copied().unwrap_or("").as_bytes().to_vec()),
            }
        }
        fn shrink(&self) -> Box<dyn Iterator<Item = Arg>> {
            Box::new(self.0.shrink().map(Arg))
        }
    }

    /// REPLCONF with arbitrary options and values never panics: it answers +OK (and then the
    /// client's settings are the last ones given), an error (settings unchanged), or nothing
    /// (ACK / GETACK); a replica's ACK never moves its offset backwards.
    #[test]
    fn replconf_arbitrary_arguments_never_panic() {
        fn prop(args: Vec<Arg>, as_replica: bool) -> bool {
            let (mut srv, mut c) = server_and_client();
            c.is_replica = as_replica;
            let mut argv = vec![b"REPLCONF".to_vec()];
            argv.extend(args.iter().map(|a| a.0.clone()));
            let before = c.repl_conf.as_deref().map(|r| format!("{r:?}"));
            match run(&mut srv, &mut c, &argv, false) {
                Reply::Error(e) => {
                    assert!(e.starts_with("ERR "), "{e}");
                    assert_eq!(c.repl_conf.as_deref().map(|r| format!("{r:?}")), before);
                }
                Reply::Nil => {}
                r => {
                    assert!(matches!(r, Reply::Status("OK")), "{r:?}");
                    let conf = c.repl_conf.as_deref().expect("+OK stores the settings");
                    let last_port = argv[1..]
                        .chunks(2)
                        .rfind(|p| p[0].eq_ignore_ascii_case(b"listening-port"))
                        .map(|p| crate::util::parse_i64(&p[1]).expect("+OK: an integer"));
                    if let Some(p) = last_port {
                        assert_eq!(conf.listening_port, p);
                    }
                }
            }
            true
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(Vec<Arg>, bool) -> bool);
    }

    /// PSYNC's arguments: an offset that is not an integer answers Redis's error, and any
    /// replication ID and offset otherwise parse (inside MULTI the command is then refused,
    /// which keeps the property free of a real sync); the client never becomes a replica.
    #[test]
    fn psync_arbitrary_arguments_never_panic() {
        fn prop(replid: Arg, offset: Arg) -> bool {
            let (mut srv, mut c) = server_and_client();
            let argv = vec![b"PSYNC".to_vec(), replid.0, offset.0.clone()];
            let r = run(&mut srv, &mut c, &argv, true);
            let want = match crate::util::parse_i64(&offset.0) {
                Some(_) => "ERR Command not allowed inside a transaction",
                None => crate::cmd::err::NOT_INT,
            };
            assert!(matches!(&r, Reply::Error(e) if e == want), "{r:?}");
            assert!(!c.is_replica && srv.master.slaves.is_empty());
            true
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(Arg, Arg) -> bool);
    }

    #[test]
    fn the_backlog_keeps_its_size_and_what_replicas_need() {
        let b = Backlog::new(0, 10);
        b.hold(7, 0);
        for _ in 0..5 {
            b.feed(b"0123456789", 0, false);
        }
        assert_eq!(b.first(), 0, "held by replica 7");
        assert_eq!(b.pending(7), Some(50));
        b.release(7);
        assert_eq!(b.first(), 40);
        assert!(taken(&b, 39, 0, 10).is_err());
        assert_eq!(taken(&b, 45, 0, 10).unwrap(), b"56789");
    }
}
