//! A client as the execution thread sees it, and the messages between connections and the
//! execution thread.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
}

/// State shared between a connection's tasks and the execution thread.
#[derive(Default)]
pub struct ConnShared {
    /// Approximate bytes queued for this connection and not yet written (output buffer).
    pub out_bytes: AtomicUsize,
    /// Bytes in the query buffer (for CLIENT LIST qbuf).
    pub qbuf_bytes: AtomicUsize,
    /// Set when the execution thread wants the connection closed.
    pub kill: tokio::sync::Notify,
}

impl ConnShared {
    pub fn out_bytes(&self) -> usize {
        self.out_bytes.load(Ordering::Relaxed)
    }
}

/// Messages from connections to the execution thread.
pub enum Msg {
    Connect {
        id: ClientId,
        tx: UnboundedSender<Outgoing>,
        addr: String,
        laddr: String,
        shared: Arc<ConnShared>,
    },
    Commands {
        id: ClientId,
        cmds: Vec<Vec<Bytes>>,
    },
    /// The connection sent bytes that are not RESP: answer `-ERR Protocol error: ...` and close.
    ProtocolError {
        id: ClientId,
        msg: String,
    },
    Disconnect {
        id: ClientId,
    },
    /// SIGINT/SIGTERM.
    Signal,
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
    pub created_ms: i64,
    pub last_interaction_ms: i64,
    pub last_cmd: &'static str,
    pub multi: Option<MultiState>,
    pub watched: Vec<(usize, Bytes)>,
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
    /// Replies accumulated during the current round, not sent yet.
    pub out: Vec<Reply>,
    pub out_proto: u8,
    pub close_after_reply: bool,
    pub closed: bool,
    pub tracking: bool,
    /// The replies queued so far must wait for an fsync (WAITAOF).
    pub wait_synced: bool,
}

impl Client {
    pub fn new(
        id: ClientId,
        tx: UnboundedSender<Outgoing>,
        shared: Arc<ConnShared>,
        addr: String,
        laddr: String,
        now_ms: i64,
        needs_auth: bool,
    ) -> Client {
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
            out: Vec::new(),
            out_proto: 2,
            close_after_reply: false,
            closed: false,
            tracking: false,
            wait_synced: false,
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

    /// Send the accumulated replies, to be released once the log is durable up to `wait_pos`.
    pub fn flush(&mut self, wait_pos: u64, completes_batch: bool) {
        if self.out.is_empty() && !completes_batch && !self.close_after_reply {
            return;
        }
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
