//! Networking: the accept loop and the connection tasks. A connection's reader parses RESP and
//! hands whole batches of commands to the execution thread; its writer encodes replies and writes
//! them once the log is durable up to the position each reply waits for.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{ConnShared, ExecSender, Msg, Outgoing, AUTH_OK, AUTH_UNKNOWN};
use crate::durability::Gate;
use crate::limits::{BATCHES_IN_FLIGHT_MAX, COMMANDS_PER_BATCH_MAX, READ_CHUNK_BYTES};
use crate::resp::{encode, Parsed, RequestParser};

/// A read buffer with less room than this gets more before the next read (see the reader).
const READ_ROOM_MIN_BYTES: usize = 1024;

/// A writer's encoding buffer at the start, and the most it keeps once it has nothing left to
/// write (Redis's 16 KiB client reply buffer): what a burst grew it to (a pipeline's replies,
/// the invalidation messages of a round of evictions) is given back as soon as it is written,
/// as Redis frees its reply list. Kept instead, it stays in `used_memory` — up to 64 KiB per
/// connection before — where it counts against `maxmemory`: ten tracking clients were enough
/// for the invalidations of a few dozen evictions to call for the next few dozen, until the
/// keyspace was gone.
const OUT_BYTES: usize = 16 * 1024;
/// Room for at most this many queued messages kept by an idle writer (see `writer_task`).
const IDLE_QUEUED_MAX: usize = 64;

/// Settings a connection needs, read at accept time.
#[derive(Clone)]
pub struct NetConfig {
    pub proto_max_bulk_len: u64,
    pub query_buffer_limit: u64,
    pub tcp_keepalive_s: u64,
}

pub struct Net {
    pub exec_tx: ExecSender,
    pub gate: watch::Receiver<Gate>,
    pub next_id: Arc<AtomicU64>,
    pub cfg: NetConfig,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
    /// Query-buffer growth a reader reports to the execution thread (`Msg::QueryBufGrew`); 0
    /// while `maxmemory-clients` is off (`cevict::ClientEviction::step`).
    pub qbuf_report_step: Arc<AtomicUsize>,
}

/// Bind every address of `bind` on `port` (Redis's syntax: `*` is every IPv4 address, `::*`
/// every IPv6 one, a leading `-` makes an address optional: skipped if it cannot be bound),
/// with a listen backlog of `backlog` (`tcp-backlog`). IPv6 sockets are IPv6-only, as
/// Redis's, so `* -::*` binds both families on one port. An empty `bind` binds nothing.
pub fn bind_all(bind: &str, port: u16, backlog: i32) -> Result<Vec<std::net::TcpListener>, String> {
    let mut out = vec![];
    for addr in bind.split_whitespace() {
        let (optional, addr) = match addr.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, addr),
        };
        let ip: std::net::IpAddr = match addr {
            "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
            "::*" => std::net::Ipv6Addr::UNSPECIFIED.into(),
            a => a
                .parse()
                .map_err(|e| format!("Invalid bind address '{a}': {e}"))?,
        };
        let sa = SocketAddr::new(ip, port);
        match listen_tcp(sa, backlog) {
            Ok(l) => out.push(l),
            // As Redis: an optional address the system lacks (no IPv6) is skipped.
            Err(e) if optional => {
                tracing::debug!("optional bind {sa} skipped: {e}");
            }
            Err(e) => {
                // Redis's two lines (the second is what scripts and its test suite look for).
                tracing::warn!("Warning: Could not create server TCP listening socket {sa}: {e}");
                return Err(format!("Failed listening on port {port} (tcp), aborting."));
            }
        }
    }
    Ok(out)
}

fn listen_tcp(sa: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
    if sa.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.bind(&sa.into())?;
    sock.listen(backlog.max(1))?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// The TCP listeners' accept loops, owned by the execution thread so that CONFIG SET port and
/// bind can replace them (Redis's changeListenPort / changeBindAddr).
pub struct Listeners {
    rt: tokio::runtime::Handle,
    net: Arc<Net>,
    loops: Vec<tokio::task::AbortHandle>,
    /// A second descriptor of each listening socket, to stop it listening at once from this
    /// thread ([`Listeners::close`]); the accept loop holds the first.
    fds: Vec<std::net::TcpListener>,
}

type Spawned = (Vec<tokio::task::AbortHandle>, Vec<std::net::TcpListener>);

impl Listeners {
    /// Serve `listeners` (bound by [`bind_all`]) on the runtime `rt`.
    pub fn start(
        rt: tokio::runtime::Handle,
        net: Arc<Net>,
        listeners: Vec<std::net::TcpListener>,
    ) -> std::io::Result<Listeners> {
        let mut me = Listeners {
            rt,
            net,
            loops: Vec::new(),
            fds: Vec::new(),
        };
        (me.loops, me.fds) = me.spawn(listeners)?;
        Ok(me)
    }

    fn spawn(&self, listeners: Vec<std::net::TcpListener>) -> std::io::Result<Spawned> {
        let _in_rt = self.rt.enter();
        let mut tokio_listeners = Vec::with_capacity(listeners.len());
        let mut fds = Vec::with_capacity(listeners.len());
        for l in listeners {
            fds.push(l.try_clone()?);
            tokio_listeners.push(TcpListener::from_std(l)?);
        }
        let loops = tokio_listeners
            .into_iter()
            .map(|l| {
                self.rt
                    .spawn(accept_loop(l, self.net.clone()))
                    .abort_handle()
            })
            .collect();
        Ok((loops, fds))
    }

    /// Listen on `bind` × `port` instead of `previous` (the current bind and port; port 0 or
    /// an empty `bind`: on none). As Redis's changeBindAddr, the old sockets close first (the
    /// new set usually shares an address and port with them), and on a failure the previous
    /// addresses are bound again. Connected clients stay.
    pub fn rebind(
        &mut self,
        bind: &str,
        port: u16,
        backlog: i32,
        previous: (&str, u16),
    ) -> Result<(), String> {
        let listen = |bind: &str, port: u16| -> Result<Vec<std::net::TcpListener>, String> {
            if port == 0 {
                Ok(Vec::new())
            } else {
                bind_all(bind, port, backlog)
            }
        };
        self.close();
        let err = match listen(bind, port) {
            Ok(fresh) => match self.spawn(fresh) {
                Ok((loops, fds)) => {
                    (self.loops, self.fds) = (loops, fds);
                    return Ok(());
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        match listen(previous.0, previous.1).and_then(|l| self.spawn(l).map_err(|e| e.to_string()))
        {
            Ok((loops, fds)) => (self.loops, self.fds) = (loops, fds),
            Err(e) => tracing::warn!("Failed to restore the previous listening sockets: {e}"),
        }
        Err(err)
    }

    /// Stop listening now (a rebind, and shutdown as Redis's closeListeningSockets): a client
    /// connecting from here on is refused by the kernel, not taken into the backlog of a
    /// socket nobody accepts on any more (or of a process about to exit). `shutdown(2)` on a
    /// listening socket takes it out of the listening state whatever other descriptors it
    /// has; its accept loop then ends.
    pub fn close(&mut self) {
        for l in self.fds.drain(..) {
            let _ = socket2::SockRef::from(&l).shutdown(std::net::Shutdown::Both);
        }
        for old in self.loops.drain(..) {
            old.abort();
        }
    }
}

/// Listen on the Unix domain socket `path` (`unixsocket`), as Redis: whatever is at the path
/// is removed first, and the socket file gets mode `perm` (`unixsocketperm`; 0 = as the
/// umask leaves it).
pub fn bind_unix(path: &str, perm: u32) -> Result<UnixListener, String> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(|e| format!("Failed opening Unix socket: {e}"))?;
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm))
            .map_err(|e| format!("Failed opening Unix socket: chmod: {e}"))?;
    }
    Ok(l)
}

/// Accept clients on the Unix domain socket at `path`.
pub async fn accept_loop_unix(listener: UnixListener, path: String, net: Arc<Net>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                tracing::debug!("Accepted connection to {path}");
                let net = net.clone();
                // As Redis, a Unix socket client's address (and local address) is the
                // socket's path with port 0.
                let addr = format!("{path}:0");
                tokio::spawn(async move {
                    let (rd, wr) = sock.into_split();
                    serve(rd, wr, addr.clone(), addr, Transport::Unix, net).await;
                });
            }
            Err(e) => {
                tracing::warn!("Accepting client connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// How a client is connected: what CLIENT LIST's `U` flag and protected mode look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP from 127.0.0.1 or ::1 (exactly those, as Redis's `islocalClient`).
    TcpLoopback,
    Tcp,
    Unix,
}

/// The write half of a connection. Only a TCP connection can become a replica's (the
/// replication task writes to a TCP half; a replica always connects over TCP).
pub trait ConnWrite: AsyncWrite + Unpin + Send + 'static {
    fn into_tcp(self) -> Option<tokio::net::tcp::OwnedWriteHalf>;
}

impl ConnWrite for tokio::net::tcp::OwnedWriteHalf {
    fn into_tcp(self) -> Option<tokio::net::tcp::OwnedWriteHalf> {
        Some(self)
    }
}

impl ConnWrite for tokio::net::unix::OwnedWriteHalf {
    fn into_tcp(self) -> Option<tokio::net::tcp::OwnedWriteHalf> {
        None
    }
}

pub async fn accept_loop(listener: TcpListener, net: Arc<Net>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                tracing::debug!("Accepted {peer}");
                let net = net.clone();
                tokio::spawn(async move {
                    connection(sock, peer, net).await;
                });
            }
            // The listening socket was shut down (`Listeners::close`).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
            Err(e) => {
                tracing::warn!("Accepting client connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn connection(sock: TcpStream, peer: SocketAddr, net: Arc<Net>) {
    let _ = sock.set_nodelay(true);
    if net.cfg.tcp_keepalive_s > 0 {
        let ka = socket2::TcpKeepalive::new()
            .with_time(std::time::Duration::from_secs(net.cfg.tcp_keepalive_s));
        let _ = socket2::SockRef::from(&sock).set_tcp_keepalive(&ka);
    }
    let laddr = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let loopback = match peer.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
    };
    let transport = if loopback {
        Transport::TcpLoopback
    } else {
        Transport::Tcp
    };
    let (rd, wr) = sock.into_split();
    serve(rd, wr, peer.to_string(), laddr, transport, net).await;
}

/// A client connection, whatever its transport: the reader (this task) and the writer task.
async fn serve<R, W>(
    mut rd: R,
    wr: W,
    addr: String,
    laddr: String,
    transport: Transport,
    net: Arc<Net>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: ConnWrite,
{
    let id = net.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let shared = Arc::new(ConnShared::default());
    if net
        .exec_tx
        .send(Msg::Connect {
            id,
            tx,
            addr,
            laddr,
            transport,
            shared: shared.clone(),
        })
        .is_err()
    {
        return;
    }
    let permits = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT_MAX));
    let writer = tokio::spawn(writer_task(
        wr,
        rx,
        net.gate.clone(),
        permits.clone(),
        shared.clone(),
        net.bytes_out.clone(),
    ));
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut parser = RequestParser::new();
    let bulk_max = net.cfg.proto_max_bulk_len;
    // Set when the reader must wait for the batches it sent to be executed before parsing on.
    let mut settle = false;
    let qlimit = net.cfg.query_buffer_limit as usize;
    let mut qbuf = QueryBufTrack::default();
    'outer: loop {
        // Backpressure: at most BATCHES_IN_FLIGHT_MAX batches queued at the executor. A free
        // permit is taken without building the select (the common case).
        match permits.try_acquire() {
            Ok(p) => p.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => break,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    _ = shared.kill.notified() => break,
                };
                permit.forget();
            }
        }
        if std::mem::take(&mut settle) && !settled(&permits, &shared).await {
            break;
        }
        let mut cmds = Vec::with_capacity(16);
        loop {
            // Parse what is buffered.
            loop {
                parser.guest = shared.auth.load(Ordering::Relaxed) != AUTH_OK;
                match parser.parse(&mut buf, bulk_max) {
                    Ok(Parsed::Command(c)) => {
                        cmds.push(c);
                        if cmds.len() >= COMMANDS_PER_BATCH_MAX {
                            break;
                        }
                    }
                    Ok(Parsed::Incomplete) => break,
                    Err(e) if e.is_guest_limit() && !cmds.is_empty() => {
                        // Over an unauthenticated client's limit: but the commands before it
                        // (an AUTH?) run first, as Redis parses a command only after running
                        // the previous one. Send them; the next round waits for their replies.
                        settle = true;
                        break;
                    }
                    // The execution thread authenticated the connection since the parse (its
                    // Connect, or an AUTH just run): parse again without the guest limits.
                    Err(e)
                        if e.is_guest_limit() && shared.auth.load(Ordering::Relaxed) == AUTH_OK => {
                    }
                    Err(e)
                        if e.is_guest_limit()
                            && (shared.auth.load(Ordering::Relaxed) == AUTH_UNKNOWN
                                || permits.available_permits() + 1 < BATCHES_IN_FLIGHT_MAX) =>
                    {
                        // Earlier batches (or the connection itself) not yet executed.
                        if !settled(&permits, &shared).await {
                            break 'outer;
                        }
                    }
                    Err(e) => {
                        if !cmds.is_empty() {
                            let _ = net.exec_tx.send(Msg::Commands {
                                id,
                                cmds: std::mem::take(&mut cmds),
                            });
                        }
                        let _ = net.exec_tx.send(Msg::ProtocolError {
                            id,
                            msg: e.reply_text(),
                        });
                        break 'outer;
                    }
                }
            }
            if !cmds.is_empty() {
                break;
            }
            if buf.len() > qlimit {
                tracing::warn!("Closing client that reached max query buffer length");
                break 'outer;
            }
            if buf.is_empty() && qbuf.stored == 0 && !parser.in_progress() {
                // Whole commands only (the common case): nothing held, nothing to report.
                shared.qbuf_bytes.store(0, Ordering::Relaxed);
            } else if !qbuf.update(&parser, &buf, &shared, &net, id) {
                break 'outer;
            }
            // Room to read into. The commands cut out of the buffer share its block until they
            // have run: a new block allocated while they wait would hold two (16 KiB more, in
            // `used_memory` and against `maxmemory`, at every block's end). So a new block only
            // when the room is nearly gone and the old one cannot be taken back; the block is
            // taken back after reading, when the commands before have usually run.
            if buf.capacity() - buf.len() < READ_ROOM_MIN_BYTES
                && !buf.try_reclaim(READ_CHUNK_BYTES / 2)
            {
                buf.reserve(READ_CHUNK_BYTES);
            }
            // Read first: when bytes are there the kill signal is not even registered.
            let n = tokio::select! {
                biased;
                r = rd.read_buf(&mut buf) => match r { Ok(0) | Err(_) => break 'outer, Ok(n) => n },
                _ = shared.kill.notified() => break 'outer,
            };
            if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 2 {
                // Moves the unparsed bytes to the block's start if nothing else shares it.
                let _ = buf.try_reclaim(READ_CHUNK_BYTES / 2);
            }
            net.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        if qbuf.stored != 0 {
            // The bytes of these commands leave the query buffer (they count as arguments now).
            let (len, mem) = parser.query_buffer_bytes(&buf);
            shared.qbuf_bytes.store(len, Ordering::Relaxed);
            qbuf.stored = mem;
            shared.qbuf_mem_bytes.store(mem, Ordering::Relaxed);
        }
        if net.exec_tx.send_batch(Msg::Commands { id, cmds }).is_err() {
            break;
        }
    }
    let _ = net.exec_tx.send(Msg::Disconnect { id });
    // The writer ends when the executor drops the sender (after Disconnect).
    let _ = writer.await;
}

/// A reader's view of its query buffer for CLIENT LIST and client eviction (`cevict`).
#[derive(Default)]
struct QueryBufTrack {
    /// The memory last stored in `ConnShared::qbuf_mem_bytes`.
    stored: usize,
    /// The memory last reported to the execution thread (`Msg::QueryBufGrew`).
    reported: usize,
}

impl QueryBufTrack {
    /// Store the buffer's size and memory before a read, and report a growth by the step
    /// (`cevict::ClientEviction::step`, 0 while `maxmemory-clients` is off). Out of line: only
    /// for a buffer holding part of a command. False if the execution thread is gone.
    #[inline(never)]
    fn update(
        &mut self,
        parser: &RequestParser,
        buf: &[u8],
        shared: &ConnShared,
        net: &Net,
        id: u64,
    ) -> bool {
        let (len, mem) = parser.query_buffer_bytes(buf);
        shared.qbuf_bytes.store(len, Ordering::Relaxed);
        if mem != self.stored {
            self.stored = mem;
            shared.qbuf_mem_bytes.store(mem, Ordering::Relaxed);
        }
        let step = net.qbuf_report_step.load(Ordering::Relaxed);
        if step != 0 && mem >= self.reported.saturating_add(step) {
            self.reported = mem;
            return net.exec_tx.send(Msg::QueryBufGrew { id }).is_ok();
        }
        // Shrunk (a command completed): report from this level on.
        self.reported = self.reported.min(mem);
        true
    }
}

/// Wait until every batch this connection sent has been executed (its permit comes back when
/// the writer takes its replies; the caller holds one permit) and the execution thread has seen
/// the connection, so that `shared.auth` is final for the next command. False if the
/// connection is being closed.
async fn settled(permits: &Semaphore, shared: &ConnShared) -> bool {
    loop {
        if permits.is_closed() {
            return false;
        }
        if shared.auth.load(Ordering::Relaxed) != AUTH_UNKNOWN
            && permits.available_permits() + 1 >= BATCHES_IN_FLIGHT_MAX
        {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
            _ = shared.kill.notified() => return false,
        }
    }
}

async fn writer_task<W: ConnWrite>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut gate: watch::Receiver<Gate>,
    permits: Arc<Semaphore>,
    shared: Arc<ConnShared>,
    bytes_out: Arc<AtomicU64>,
) {
    let mut out = Vec::with_capacity(OUT_BYTES);
    let mut batch: Vec<Outgoing> = Vec::new();
    // Replies taken off the channel while a write was blocked (see `write_taking_in`), in order.
    let mut queued: VecDeque<Outgoing> = VecDeque::new();
    let mut open = true;
    'main: loop {
        let first = match queued.pop_front() {
            Some(o) => o,
            None if open => match rx.recv().await {
                Some(o) => taken(o, &permits),
                None => break,
            },
            None => break,
        };
        batch.push(first);
        while batch.len() < 256 {
            let m = match queued.pop_front() {
                Some(m) => m,
                None => match rx.try_recv() {
                    Ok(m) => taken(m, &permits),
                    Err(_) => break,
                },
            };
            batch.push(m);
        }
        let wait_pos = batch.iter().map(|o| o.wait_pos).max().unwrap_or(0);
        let wait_synced = batch.iter().any(|o| o.wait_synced);
        // Hold replies until the log is durable far enough. A failed log never releases them.
        loop {
            let g = *gate.borrow_and_update();
            let pos = if wait_synced { g.synced } else { g.released() };
            if pos >= wait_pos {
                break;
            }
            if g.failed {
                break 'main;
            }
            if gate.changed().await.is_err() {
                break 'main;
            }
        }
        let mut close = false;
        let mut size = 0;
        let mut handoff = None;
        for o in batch.drain(..) {
            handoff = handoff.or(o.replica);
            for r in &o.replies {
                encode(r, o.proto, &mut out);
            }
            size += o.size;
            close |= o.close;
        }
        if shared.drop_output.load(Ordering::Relaxed) {
            break 'main;
        }
        if !out.is_empty() {
            // Nothing is taken in behind a handoff: what follows it is the replica task's.
            let take_in = handoff.is_none() && !close;
            let ok = write_taking_in(
                &mut wr,
                &out,
                WriteIn {
                    rx: &mut rx,
                    open: &mut open,
                    queued: &mut queued,
                    permits: &permits,
                    shared: &shared,
                },
                take_in,
            )
            .await;
            if !ok {
                break;
            }
            bytes_out.fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
            if out.capacity() > 1 << 20 {
                out = Vec::with_capacity(OUT_BYTES);
            }
        }
        if queued.is_empty() && rx.is_empty() {
            // Nothing more to write for now: give back what a burst grew (a big pipeline's
            // replies), as Redis frees a client's reply blocks once written; an idle client
            // keeps a small footprint in `used_memory`.
            if out.capacity() > OUT_BYTES {
                out = Vec::with_capacity(OUT_BYTES);
            }
            if queued.capacity() > IDLE_QUEUED_MAX {
                queued = VecDeque::new();
            }
        }
        shared.out_bytes.fetch_sub(
            size.min(shared.out_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let (Some(feed), false) = (handoff, close) {
            // SYNC/PSYNC: the connection is a replica from here on. Messages taken in behind
            // the handoff are the replica task's: handled as it handles them (dropped, their
            // size taken back, a close obeyed).
            for o in queued.drain(..) {
                shared.out_bytes.fetch_sub(
                    o.size.min(shared.out_bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                if o.close {
                    let _ = wr.shutdown().await;
                    break 'main;
                }
            }
            let Some(wr) = wr.into_tcp() else {
                // SYNC/PSYNC over a Unix socket: no replication task for it.
                tracing::warn!("A replica can't be served over a Unix socket: closing it");
                shared.kill.notify_one();
                break 'main;
            };
            let conn = crate::master::Conn {
                wr,
                rx,
                gate,
                permits,
                shared,
                bytes_out,
            };
            crate::master::serve_replica(conn, feed).await;
            return;
        }
        if close {
            let _ = wr.shutdown().await;
            shared.kill.notify_one();
            break;
        }
    }
    // Wake the reader if it is waiting for a permit.
    permits.close();
    shared.kill.notify_one();
}

/// A message taken off a connection's reply channel: the batch it answers has been executed, so
/// its permit goes back to the reader now, not once the replies are written (they may wait for
/// the log, and for the client to read).
fn taken(o: Outgoing, permits: &Semaphore) -> Outgoing {
    if o.completes_batch {
        permits.add_permits(1);
    }
    o
}

/// What [`write_taking_in`] takes replies in from and into.
struct WriteIn<'a> {
    rx: &'a mut mpsc::UnboundedReceiver<Outgoing>,
    /// False once the channel is closed (the execution thread dropped the client).
    open: &'a mut bool,
    queued: &'a mut VecDeque<Outgoing>,
    permits: &'a Semaphore,
    shared: &'a ConnShared,
}

/// Write `out` whole, taking in (if `take_in`) what the execution thread sends meanwhile. A
/// client may send all its commands before it reads any reply (a big pipeline): Redis goes on
/// reading it, its output buffer growing (up to `client-output-buffer-limit`), until the client
/// has sent everything and reads. Were the writer stuck in this write without taking replies
/// in, their batches' permits would not come back, the reader would stop, and client and server
/// would both wait forever on full sockets. False if the socket failed, or the client was
/// dropped for its output buffer limit (nothing more is written then).
async fn write_taking_in<W: ConnWrite>(
    wr: &mut W,
    out: &[u8],
    into: WriteIn<'_>,
    take_in: bool,
) -> bool {
    let WriteIn {
        rx,
        open,
        queued,
        permits,
        shared,
    } = into;
    let mut at = 0;
    while at < out.len() {
        tokio::select! {
            biased;
            // Cancel-safe: a write that loses the race has written nothing.
            r = wr.write(&out[at..]) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => at += n,
            },
            m = rx.recv(), if *open && take_in => match m {
                Some(o) => queued.push_back(taken(o, permits)),
                None => {
                    *open = false;
                    if shared.drop_output.load(Ordering::Relaxed) {
                        return false;
                    }
                }
            },
        }
    }
    true
}
