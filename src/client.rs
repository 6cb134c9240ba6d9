//! A client as the execution thread sees it, and the messages between connections and the
//! execution thread.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SendError, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::resp::Reply;

pub type ClientId = u64;

/// Replies (or pushes) for one connection, released to the socket only once the log is durable up
/// to `wait_pos` (see `durability`).
pub struct Outgoing {
    pub replies: Vec<Reply>,
    /// Protocol version the replies are encoded with.
    pub proto: u8,
    /// Logical log position that must be durable before these bytes are written.
    pub wait_pos: u64,
    /// Close the connection after writing.
    pub close: bool,
    /// This message answers a batch of commands the connection sent (returns its permit).
    pub completes_batch: bool,
    /// Wait for `wait_pos` to be fsynced whatever the policy (WAITAOF).
    pub wait_synced: bool,
    /// What these replies added to `ConnShared::out_bytes` (taken back once written).
    pub size: usize,
    /// The connection became a replica (SYNC/PSYNC): after these replies the writer hands the
    /// socket to `master::serve_replica`.
    pub replica: Option<Arc<crate::master::Feed>>,
}

/// State shared between a connection's tasks and the execution thread.
#[derive(Default)]
pub struct ConnShared {
    /// Approximate bytes queued for this connection and not yet written (output buffer).
    pub out_bytes: AtomicUsize,
    /// Bytes in the query buffer (for CLIENT LIST qbuf).
    pub qbuf_bytes: AtomicUsize,
    /// The memory the query buffer stands for (`cevict`): `qbuf_bytes`, or the declared length
    /// of a big argument being received (`RequestParser::query_buffer_bytes`).
    pub qbuf_mem_bytes: AtomicUsize,
    /// Set when the execution thread wants the connection closed.
    pub kill: tokio::sync::Notify,
    /// Closed for overcoming its output buffer limit: the writer drops what is not yet written
    /// instead of sending it (Redis frees the client with its reply buffers).
    pub drop_output: AtomicBool,
    /// Whether the client has authenticated ([`AUTH_UNKNOWN`] until the execution thread has
    /// seen the connection): a reader applies Redis's limits for unauthenticated clients
    /// (`limits::GUEST_*`) unless it is [`AUTH_OK`].
    pub auth: AtomicU8,
}

pub const AUTH_UNKNOWN: u8 = 0;
pub const AUTH_GUEST: u8 = 1;
pub const AUTH_OK: u8 = 2;

impl ConnShared {
    pub fn out_bytes(&self) -> usize {
        self.out_bytes.load(Ordering::Relaxed)
    }
}

/// How connections wake the execution thread. Like Redis's event loop, which reads every ready
/// client before it executes and writes, batches of commands are queued without waking a sleeping
/// execution thread one by one: the I/O thread rings once when it runs out of ready connections
/// (tokio's `on_thread_park`, see `startup`), or at once after `EXEC_WAKE_DEFERRED_MAX` queued
/// batches. Every other message rings at once.
#[derive(Default)]
pub struct ExecBell {
    /// The execution loop runs as a task on the same single-threaded runtime as the connections
    /// (`io-threads 1`): ringing is a local task wake-up, never a futex.
    inline: AtomicBool,
    notify: tokio::sync::Notify,
    sleeping: AtomicBool,
    /// A batch was queued for the sleeping thread without ringing.
    deferred: AtomicBool,
    /// Batches queued without ringing since the last ring.
    deferred_count: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl ExecBell {
    /// Wake the execution thread if it sleeps.
    pub fn ring(&self) {
        if self.inline.load(Ordering::Relaxed) {
            self.notify.notify_one();
            return;
        }
        self.deferred.store(false, Ordering::Relaxed);
        self.deferred_count.store(0, Ordering::Relaxed);
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.cv.notify_one();
        }
    }

    /// Ring if a batch was queued without ringing (an I/O thread is about to go idle).
    /// Switch to the single-threaded mode (before any connection exists).
    pub fn set_inline(&self) {
        self.inline.store(true, Ordering::Relaxed);
    }

    pub fn ring_deferred(&self) {
        if self.deferred.load(Ordering::Relaxed) && self.deferred.swap(false, Ordering::AcqRel) {
            self.ring();
        }
    }
}

/// Every sender to the execution thread is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

/// The connections' side of the channel to the execution thread.
#[derive(Clone)]
pub struct ExecSender {
    tx: Sender<Msg>,
    bell: Arc<ExecBell>,
}

/// The execution thread's side.
pub struct ExecReceiver {
    rx: Receiver<Msg>,
    bell: Arc<ExecBell>,
}

/// A channel to the execution thread with its bell.
pub fn exec_channel(bell: Arc<ExecBell>) -> (ExecSender, ExecReceiver) {
    let (tx, rx) = std::sync::mpsc::channel();
    (
        ExecSender {
            tx,
            bell: bell.clone(),
        },
        ExecReceiver { rx, bell },
    )
}

impl ExecSender {
    /// Queue `m` and wake the execution thread now.
    pub fn send(&self, m: Msg) -> Result<(), SendError<Msg>> {
        self.tx.send(m)?;
        fence(Ordering::SeqCst);
        self.bell.ring();
        Ok(())
    }

    /// Queue a batch of commands; a sleeping execution thread is woken when the I/O thread goes
    /// idle, or now if `EXEC_WAKE_DEFERRED_MAX` batches are already waiting. Only for senders
    /// on a runtime worker thread (whose park hook rings).
    pub fn send_batch(&self, m: Msg) -> Result<(), SendError<Msg>> {
        self.tx.send(m)?;
        if self.bell.inline.load(Ordering::Relaxed) {
            // The execution task runs after the connection tasks already woken (FIFO), so one
            // wake-up per round serves every batch queued meanwhile.
            self.bell.notify.notify_one();
            return Ok(());
        }
        // Pairs with the fence in `ExecReceiver::recv_timeout`: either the execution thread
        // sees this message before it sleeps, or this sees it sleeping.
        fence(Ordering::SeqCst);
        if self.bell.sleeping.load(Ordering::SeqCst) {
            let n = self.bell.deferred_count.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= crate::limits::EXEC_WAKE_DEFERRED_MAX {
                self.bell.ring();
            } else {
                self.bell.deferred.store(true, Ordering::Release);
            }
        }
        Ok(())
    }
}

impl ExecReceiver {
    /// A message if one is queued (never sleeps).
    pub fn try_recv(&self) -> Result<Msg, TryRecvError> {
        self.rx.try_recv()
    }

    /// The next message for the execution task of the single-threaded mode: yields to the
    /// connection tasks until rung or `timeout`. Ok(None) on timeout.
    pub async fn recv_async(&self, timeout: Duration) -> Result<Option<Msg>, Disconnected> {
        match self.rx.try_recv() {
            Ok(m) => return Ok(Some(m)),
            Err(TryRecvError::Disconnected) => return Err(Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        if timeout < Duration::from_millis(1) {
            // Below the timer's 1 ms resolution (a running snapshot's next step): let the
            // connection tasks run once, then go on.
            tokio::task::yield_now().await;
        } else {
            // A ring between the check above and this wait is kept as a permit by `Notify`.
            let _ = tokio::time::timeout(timeout, self.bell.notify.notified()).await;
        }
        match self.rx.try_recv() {
            Ok(m) => Ok(Some(m)),
            Err(TryRecvError::Disconnected) => Err(Disconnected),
            Err(TryRecvError::Empty) => Ok(None),
        }
    }

    /// The next message, sleeping until rung or `timeout`. Ok(None) on timeout.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Msg>, Disconnected> {
        match self.rx.try_recv() {
            Ok(m) => return Ok(Some(m)),
            Err(TryRecvError::Disconnected) => return Err(Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.bell.sleeping.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            match self.rx.try_recv() {
                Ok(m) => {
                    self.bell.sleeping.store(false, Ordering::SeqCst);
                    return Ok(Some(m));
                }
                Err(TryRecvError::Disconnected) => {
                    self.bell.sleeping.store(false, Ordering::SeqCst);
                    return Err(Disconnected);
                }
                Err(TryRecvError::Empty) => {}
            }
            {
                let mut g = self.bell.lock.lock().unwrap_or_else(|p| p.into_inner());
                while self.bell.sleeping.load(Ordering::SeqCst) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    g = self
                        .bell
                        .cv
                        .wait_timeout(g, left)
                        .map_or_else(|p| p.into_inner().0, |r| r.0);
                }
            }
            self.bell.sleeping.store(false, Ordering::SeqCst);
            match self.rx.try_recv() {
                Ok(m) => return Ok(Some(m)),
                Err(TryRecvError::Disconnected) => return Err(Disconnected),
                Err(TryRecvError::Empty) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Messages from connections to the execution thread.
pub enum Msg {
    Connect {
        id: ClientId,
        tx: UnboundedSender<Outgoing>,
        addr: String,
        laddr: String,
        transport: crate::server::Transport,
        shared: Arc<ConnShared>,
    },
    Commands {
        id: ClientId,
        cmds: Vec<Vec<Bytes>>,
    },
    /// The connection's query buffer grew by `cevict::ClientEviction::step` bytes since it last
    /// said so (sent only while `maxmemory-clients` is on).
    QueryBufGrew {
        id: ClientId,
    },
    /// The connection sent bytes that are not RESP: answer `-ERR Protocol error: ...` and close.
    ProtocolError {
        id: ClientId,
        msg: String,
    },
    Disconnect {
        id: ClientId,
    },
    /// SIGTERM, or SIGINT (`sigint`): a shutdown as `shutdown-on-sigterm`/`-sigint` say.
    Signal {
        sigint: bool,
    },
    /// From the replication link task (`replica`).
    Replica(crate::replica::ReplMsg),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
    SkipNext,
}

pub struct MultiState {
    pub queued: Vec<Vec<Bytes>>,
    /// Bytes of the queued commands' arguments (MULTI's memory, `cevict`).
    pub bytes: usize,
    /// A command failed to queue: EXEC answers EXECABORT.
    pub failed: bool,
}

/// A client blocked by BLPOP & co.
pub struct Blocked {
    pub db: usize,
    pub keys: Vec<Bytes>,
    /// Absolute unix ms, or None for "forever".
    pub deadline_ms: Option<i64>,
    /// The command to run again when a key is ready.
    pub argv: Vec<Bytes>,
    /// What to answer on timeout.
    pub timeout_reply: Reply,
    /// Postponed by CLIENT PAUSE (`pause.rs`) rather than blocked on keys.
    pub postponed: bool,
}

/// A key this client WATCHes. `expired`: the key was already logically expired when WATCH
/// ran (Redis 7's stale-key rule): its deletion (by expiry, DEL, FLUSHDB) is no change, and
/// EXEC does not count it as expired.
#[derive(Debug, Clone)]
pub struct WatchedKey {
    pub db: usize,
    pub key: Bytes,
    pub expired: bool,
}

pub struct Client {
    pub id: ClientId,
    pub tx: UnboundedSender<Outgoing>,
    pub shared: Arc<ConnShared>,
    pub addr: String,
    pub laddr: String,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub db: usize,
    pub proto: u8,
    pub authenticated: bool,
    /// The ACL user this connection runs as (the default user until AUTH/HELLO).
    pub user: Arc<crate::acl::User>,
    pub created_ms: i64,
    pub last_interaction_ms: i64,
    pub last_cmd: &'static str,
    pub multi: Option<MultiState>,
    pub watched: Vec<WatchedKey>,
    /// A WATCHed key was touched: EXEC must fail.
    pub dirty_cas: bool,
    pub subs: HashSet<Bytes>,
    pub psubs: HashSet<Bytes>,
    pub ssubs: HashSet<Bytes>,
    pub blocked: Option<Blocked>,
    /// Commands that arrived while blocked, run in order once unblocked.
    pub pending: VecDeque<Vec<Bytes>>,
    pub reply_mode: ReplyMode,
    pub monitor: bool,
    pub no_evict: bool,
    pub no_touch: bool,
    /// Connected over the Unix domain socket (`unixsocket`): CLIENT LIST's `U` flag.
    pub unix_socket: bool,
    /// Connected from 127.0.0.1, ::1 or the Unix socket (Redis's `islocalClient`): what
    /// `enable-debug-command local` and `enable-protected-configs local` allow.
    pub local: bool,
    /// Replies accumulated during the current round, not sent yet.
    pub out: Vec<Reply>,
    pub out_proto: u8,
    pub close_after_reply: bool,
    pub closed: bool,
    /// CLIENT TRACKING ON (`tracking.rs`); its options in `trk`.
    pub tracking: bool,
    pub trk: crate::tracking::ClientTracking,
    /// The replies queued so far must wait for an fsync (WAITAOF).
    pub wait_synced: bool,
    /// The log position the replies in `out` must wait for, beyond what a caller of
    /// [`Client::flush`] gives (see `durability`: a read of keys at rest waits for nothing).
    pub need: u64,
    /// The replication master's client (`replica`): exempt from READONLY and from expiry.
    pub is_master: bool,
    /// A replica of this server (after SYNC/PSYNC, `master.rs`).
    pub is_replica: bool,
    /// Since when the output buffer is over its class's soft limit (`obuf.rs`).
    pub obuf_soft_since_ms: Option<i64>,
    /// What REPLCONF said before SYNC/PSYNC.
    pub repl_conf: Option<Box<crate::master::ReplConf>>,
    /// Set by SYNC/PSYNC: handed to the writer task with the next flush.
    pub handoff: Option<Arc<crate::master::Feed>>,
    /// What this client adds to `cevict::ClientEviction::total` (0 while eviction is off).
    pub mem_counted: usize,
    /// Bytes of the arguments of the batch being executed (`cevict`).
    pub mem_argv: usize,
}

impl Client {
    /// Redis's `mustObeyClient`: our master's link, or the client replaying the log (id 0,
    /// `aof::loading_client`): never refused as a write on a read-only replica.
    pub fn must_obey(&self) -> bool {
        self.is_master || self.id == 0
    }

    /// Whether the client has authenticated (the reader's guest limits follow it).
    pub fn set_authenticated(&mut self, yes: bool) {
        self.authenticated = yes;
        let auth = if yes { AUTH_OK } else { AUTH_GUEST };
        self.shared.auth.store(auth, Ordering::Relaxed);
    }

    pub fn new(
        id: ClientId,
        tx: UnboundedSender<Outgoing>,
        shared: Arc<ConnShared>,
        addr: String,
        laddr: String,
        now_ms: i64,
        needs_auth: bool,
    ) -> Client {
        let auth = if needs_auth { AUTH_GUEST } else { AUTH_OK };
        shared.auth.store(auth, Ordering::Relaxed);
        Client {
            id,
            tx,
            shared,
            addr,
            laddr,
            name: None,
            lib_name: None,
            lib_ver: None,
            db: 0,
            proto: 2,
            authenticated: !needs_auth,
            user: crate::acl::unrestricted_default(),
            created_ms: now_ms,
            last_interaction_ms: now_ms,
            last_cmd: "NULL",
            multi: None,
            watched: Vec::new(),
            dirty_cas: false,
            subs: HashSet::new(),
            psubs: HashSet::new(),
            ssubs: HashSet::new(),
            blocked: None,
            pending: VecDeque::new(),
            reply_mode: ReplyMode::On,
            monitor: false,
            no_evict: false,
            no_touch: false,
            unix_socket: false,
            local: false,
            out: Vec::new(),
            out_proto: 2,
            close_after_reply: false,
            closed: false,
            tracking: false,
            trk: Default::default(),
            wait_synced: false,
            need: 0,
            is_master: false,
            is_replica: false,
            obuf_soft_since_ms: None,
            repl_conf: None,
            handoff: None,
            mem_counted: 0,
            mem_argv: 0,
        }
    }

    pub fn sub_count(&self) -> usize {
        self.subs.len() + self.psubs.len()
    }

    /// In RESP2, a client with subscriptions may only run the pub/sub commands.
    pub fn in_pubsub_context(&self) -> bool {
        self.proto == 2 && (self.sub_count() + self.ssubs.len()) > 0
    }

    /// Queue a reply for this round (honouring CLIENT REPLY OFF/SKIP).
    pub fn reply(&mut self, r: Reply) {
        match self.reply_mode {
            ReplyMode::On => {}
            ReplyMode::Off => return,
            ReplyMode::Skip => {
                self.reply_mode = ReplyMode::On;
                return;
            }
            ReplyMode::SkipNext => {
                // CLIENT REPLY SKIP itself answers nothing; the next command is skipped.
                self.reply_mode = ReplyMode::Skip;
                return;
            }
        }
        if self.proto != self.out_proto && !self.out.is_empty() {
            self.flush(0, false);
        }
        self.out_proto = self.proto;
        self.out.push(r);
    }

    /// Push a message outside the request/reply flow (pub/sub, MONITOR): never subject to
    /// CLIENT REPLY.
    pub fn push(&mut self, r: Reply) {
        if self.proto != self.out_proto && !self.out.is_empty() {
            self.flush(0, false);
        }
        self.out_proto = self.proto;
        self.out.push(r);
    }

    /// Send the accumulated replies, to be released once the log is durable up to `wait_pos`
    /// (and `need`).
    pub fn flush(&mut self, wait_pos: u64, completes_batch: bool) {
        if self.out.is_empty()
            && !completes_batch
            && !self.close_after_reply
            && self.handoff.is_none()
        {
            return;
        }
        let wait_pos = wait_pos.max(std::mem::take(&mut self.need));
        let replies = std::mem::take(&mut self.out);
        let size: usize = replies.iter().map(Reply::approx_size).sum();
        self.shared.out_bytes.fetch_add(size, Ordering::Relaxed);
        let close = self.close_after_reply;
        if self
            .tx
            .send(Outgoing {
                replies,
                proto: self.out_proto,
                wait_pos,
                close,
                completes_batch,
                wait_synced: std::mem::take(&mut self.wait_synced),
                size,
                replica: self.handoff.take(),
            })
            .is_err()
        {
            self.closed = true;
        }
        if close {
            self.closed = true;
        }
    }
}
