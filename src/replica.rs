//! The replica side of Redis replication (REPLICAOF / SLAVEOF, the `replicaof` option).
//!
//! Two halves:
//!
//! - **The link task** (`manager`, a tokio task on the I/O runtime, started at start-up): while
//!   a master is set it connects, does the handshake of a Redis replica (PING, AUTH,
//!   REPLCONF listening-port, REPLCONF capa eof capa psync2, PSYNC: a partial resync when it
//!   continues a known history, else a full sync),
//!   receives the RDB payload (`$<len>` or diskless `$EOF:<mark>`) into a temporary file in
//!   `dir` — memory stays bounded by one read chunk whatever the dataset size — and then cuts the
//!   master's command stream into commands, counting the replication offset. It answers
//!   `REPLCONF GETACK` itself and sends `REPLCONF ACK` about once a second. A dropped link is
//!   retried every second (first with a partial resync), as Redis's replicationCron; each
//!   handshake reads `masteruser`/`masterauth` as configured then.
//! - **The execution side** (`handle`, `cron`, on the execution thread): a full sync flushes
//!   the dataset as FLUSHALL does (logged), loads the file with the RDB loader, and starts an AOF
//!   rewrite so that the log holds the new dataset; the link reports `up` only once that
//!   rewrite has been installed. Our own replicas get the master's bytes as they came
//!   (`Durability::feed_proxied`, psync2), not our log's. Stream commands run through
//!   `exec::process_command` as the
//!   *master client* (its replies are dropped), so they are logged like any write; MULTI/EXEC
//!   from the master is queued and executed as a unit by the same code as a client's.
//!
//! The offset acknowledged to the master is never ahead of the log: the execution side reports
//! (offset, log position) after each batch, and the link task acknowledges an offset only once
//! the durability gate has released its log position.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::client::{Client, ClientId, ExecSender, Msg};
use crate::cmd::CommandSpec;
use crate::ctx::Ctx;
use crate::durability::Gate;
use crate::exec::Server;
use crate::resp::Reply;
use crate::util::now_ms;

/// Where to replicate from, as the execution thread asked (a new `gen` for each REPLICAOF).
#[derive(Clone, Debug)]
pub struct Target {
    pub gen: u64,
    pub host: String,
    pub port: u16,
    pub listening_port: u16,
    /// `replica-announce-ip`: sent as `REPLCONF ip-address` (NAT, containers).
    pub announce_ip: String,
    pub dir: PathBuf,
    pub timeout_s: u64,
    /// `bind-source-addr`: the local address the link to the master is made from.
    pub source_addr: String,
    /// Where the first PSYNC continues from: (replid, offset) of the dataset as it is — ours
    /// when this server was a master (Redis's `replicationCacheMasterUsingMyself`), our
    /// former master's stream when it was a replica (its cached master).
    pub psync: Option<(String, i64)>,
    /// FAILOVER: the first PSYNC carries `FAILOVER`, asking the target, our replica until
    /// now, to take over (failover.rs).
    pub failover: bool,
}

/// Figures the link task updates for INFO.
#[derive(Default)]
pub struct Shared {
    /// Bytes of the command stream received (slave_read_repl_offset), -1 before a sync.
    pub read_offset: AtomicI64,
    /// Unix ms of the last byte from the master.
    pub last_io_ms: AtomicI64,
    /// RDB transfer: total (-1 for the EOF form) and received bytes; `transferring` non-zero.
    pub sync_total: AtomicI64,
    pub sync_read: AtomicU64,
    pub transferring: AtomicU64,
    /// The link task's state for ROLE: 0 connect, 1 connecting, 2 handshake, 3 sync.
    pub phase: AtomicU64,
    /// `masteruser` and `masterauth` as configured now: each connection's handshake reads
    /// them, so a CONFIG SET reaches a link that is retrying (as Redis, whose handshake reads
    /// `server.masterauth`), and a connected link keeps going.
    pub auth: std::sync::Mutex<(String, String)>,
}

/// The execution side's messages to the link task.
pub enum Ack {
    /// Everything of the stream up to `offset` is applied; durable once the log reaches `pos`
    /// (fsynced once the log's fsync passes it, if `logged`: the log is on).
    Offset {
        gen: u64,
        offset: i64,
        pos: u64,
        logged: bool,
    },
    /// The sync failed on this side: drop the link and sync again.
    Resync { gen: u64 },
    /// CLIENT KILL of the master link: drop the connection (the next one may continue it).
    Drop { gen: u64 },
}

/// The link task's messages to the execution thread.
pub enum ReplMsg {
    /// A full sync: the RDB is in `path`; the stream continues from `offset`.
    Sync {
        gen: u64,
        path: PathBuf,
        replid: String,
        offset: i64,
    },
    /// Commands of the stream, which ends at `end_offset` after them. `psync_offset`: the
    /// end of the last of them outside a MULTI … EXEC (where a partial resync may continue).
    /// `raw`: the master's bytes from the previous batch's `psync_offset` to this one's (a
    /// transaction's only with its EXEC), which our own replicas get as they are (psync2).
    Stream {
        gen: u64,
        cmds: Vec<Vec<Bytes>>,
        end_offset: i64,
        psync_offset: i64,
        raw: Vec<u8>,
    },
    /// The master accepted `PSYNC <replid> <offset + 1>` (+CONTINUE): the stream goes on from
    /// `offset` over the dataset as it is, now under `new_replid`.
    Continue {
        gen: u64,
        replid: String,
        offset: i64,
        new_replid: String,
    },
    /// The connection to the master is gone (the link task retries).
    Down { gen: u64 },
    /// The answer to `PSYNC … FAILOVER`: +CONTINUE / +FULLRESYNC (`accepted`) or an error.
    FailoverAnswer { gen: u64, accepted: bool },
}

/// The control handles the execution thread keeps (set at start-up).
pub struct Control {
    pub target_tx: watch::Sender<Option<Target>>,
    pub ack_tx: mpsc::UnboundedSender<Ack>,
    pub shared: Arc<Shared>,
    pub next_gen: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LinkState {
    /// Not synced yet (connecting, handshake, transfer).
    Down,
    /// Dataset loaded, waiting for the log that holds it (a staging log, its base written from
    /// the loaded dataset) to take the AOF directory's place.
    Persisting,
    Up,
}

/// A replica's state on the execution thread (`Server::replica`).
pub struct Replica {
    pub gen: u64,
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// The master client: runs the stream's commands, replies dropped.
    pub master: Box<Client>,
    /// Bytes of the stream applied (slave_repl_offset); -1 before the first sync.
    pub offset: i64,
    pub master_replid: String,
    pub down_since_ms: i64,
    /// Sync loaded since the link went down (master_link_status:up needs `Up`).
    pub synced_once: bool,
    /// The master's replication id and the stream offset the dataset holds exactly (outside
    /// any MULTI): what a partial resync (`PSYNC <replid> <offset + 1>`) continues from. None
    /// until a full sync has loaded, and after a failed one.
    pub psync: Option<(String, i64)>,
    /// Keys that clients of this (writable) replica wrote with a TTL: the replica expires
    /// these itself, as Redis's slaveKeysWithExpire (its master knows nothing of them).
    pub local_expires: std::collections::HashSet<(usize, Bytes)>,
    /// The link's messages postponed by a CLIENT PAUSE that covers the master's commands (as
    /// Redis blocks its master client: the stream is read on, `slave_read_repl_offset` grows,
    /// but nothing is applied, so `slave_repl_offset` and the offset acked to the master stay
    /// where they were). Applied in order when the pause ends (`resume_held`); dropped with
    /// the link's target (REPLICAOF) or by a full sync, which replaces what they apply to.
    pub held: std::collections::VecDeque<ReplMsg>,
}

impl Replica {
    pub fn link_up(&self) -> bool {
        self.state == LinkState::Up
    }
}

fn master_client(srv: &Server) -> Box<Client> {
    let mut c = crate::aof::loading_client("master");
    c.id = srv
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.is_master = true;
    c.set_authenticated(true);
    c.reply_mode = crate::client::ReplyMode::Off;
    c.name = None;
    Box::new(c)
}

/// `masteruser`/`masterauth` may have changed: what the next handshake uses.
pub fn config_changed(srv: &Server) {
    if let Some(ctl) = &srv.repl_ctl {
        srv_auth_changed(srv, &ctl.shared);
    }
}

fn srv_auth_changed(srv: &Server, shared: &Shared) {
    let now = (
        srv.cfg.get("masteruser").to_string(),
        srv.cfg.get("masterauth").to_string(),
    );
    if let Ok(mut a) = shared.auth.lock() {
        *a = now;
    }
}

/// Start-up: create the link task's channels and spawn it on the I/O runtime.
pub fn install(srv: &mut Server, rt: &tokio::runtime::Runtime, exec_tx: ExecSender) {
    let (target_tx, target_rx) = watch::channel(None);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    shared.read_offset.store(-1, Ordering::Relaxed);
    let gate = srv.log.gate_tx.subscribe();
    // RDB payloads of a sync a crash interrupted (the server runs in `dir`).
    if let Ok(rd) = std::fs::read_dir(".") {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // temp-replica-*: a sync's download; temp-repl-*: a snapshot for our replicas.
            if name.starts_with("temp-repl") && (name.ends_with(".rdb") || name.ends_with(".tmp")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    rt.spawn(manager(target_rx, ack_rx, exec_tx, shared.clone(), gate));
    srv_auth_changed(srv, &shared);
    srv.repl_ctl = Some(Control {
        target_tx,
        ack_tx,
        shared,
        next_gen: 1,
    });
    let conf = srv.cfg.get("replicaof").trim().to_string();
    let mut parts = conf.split_whitespace();
    if let (Some(h), Some(p)) = (parts.next(), parts.next()) {
        match p.parse::<u16>() {
            Ok(port) => set_master(srv, h.to_string(), port),
            Err(_) => tracing::warn!("Invalid replicaof port '{p}': not replicating"),
        }
    }
    if srv.replica.is_none() {
        crate::master::restore_history(srv);
    }
}

/// Become a replica of host:port (drops any current link).
pub fn set_master(srv: &mut Server, host: String, port: u16) {
    set_master_inner(srv, host, port, None);
}

/// FAILOVER: become a replica of the target replica, asking it to take over with `PSYNC
/// <replid> <offset + 1> FAILOVER`; (replid, offset) are ours, which its data matches.
pub fn set_master_for_failover(srv: &mut Server, host: String, port: u16, at: (String, i64)) {
    set_master_inner(srv, host, port, Some(at));
}

fn set_master_inner(srv: &mut Server, host: String, port: u16, failover: Option<(String, i64)>) {
    let Some(ctl) = srv.repl_ctl.as_mut() else {
        return;
    };
    let gen = ctl.next_gen;
    ctl.next_gen += 1;
    let target = Target {
        gen,
        host: host.clone(),
        port,
        // `replica-announce-port`/`-ip` are what the master (and Sentinel through its INFO)
        // shows for this replica, for port forwarding or NAT.
        listening_port: match srv.cfg.get_i64("replica-announce-port") {
            0 => srv.cfg.get_i64("port") as u16,
            p => p as u16,
        },
        announce_ip: srv.cfg.get("replica-announce-ip").to_string(),
        dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        timeout_s: srv.cfg.get_i64("repl-timeout").max(1) as u64,
        source_addr: srv.cfg.get("bind-source-addr").to_string(),
        psync: None,
        failover: failover.is_some(),
    };
    // psync2: a replica switching masters continues its master's stream (its dataset's exact
    // position); a master continues its own. The new master accepts if it has that history.
    // Just started from an RDB that names its replication history: that one, in the database
    // its stream had selected (Redis's cached master made from the RDB's `rsi`).
    let restored = srv.master.restored.take();
    srv.master.restored_expired = Vec::new();
    let stream_db = restored.as_ref().map(|r| r.2 as usize);
    let psync = match (&srv.replica, failover, restored) {
        (_, Some(at), _) => Some(at),
        (Some(r), None, _) => r.psync.clone(),
        (None, None, Some((id, off, _))) => Some((id, off)),
        (None, None, None) => Some((srv.master.replid.clone(), crate::master::shown_offset(srv))),
    };
    // From now on our replicas get our master's bytes, not our own.
    srv.log.set_proxy(true);
    let target = Target {
        psync: psync.clone(),
        ..target
    };
    let Some(ctl) = srv.repl_ctl.as_mut() else {
        return;
    };
    ctl.shared.read_offset.store(-1, Ordering::Relaxed);
    ctl.shared.transferring.store(0, Ordering::Relaxed);
    ctl.target_tx.send_replace(Some(target));
    let (offset, replid) = match (&srv.replica, &psync) {
        (Some(r), _) => (r.offset, r.master_replid.clone()),
        (None, Some((id, off))) => (*off, id.clone()),
        (None, None) => (-1, String::new()),
    };
    let mut master = master_client(srv);
    if let Some(db) = stream_db.filter(|&d| d < srv.dbs.len()) {
        master.db = db;
    }
    // A replica switching masters continues its stream where it is — in the database the
    // stream last selected, which the continuation does not select again (Redis keeps it in
    // its cached master client). Starting over in database 0 put the new master's writes in
    // the wrong database after a partial resync. A full sync's stream selects anew.
    if let Some(r) = &srv.replica {
        master.db = r.master.db;
    }
    srv.replica = Some(Replica {
        gen,
        host: host.clone(),
        port,
        state: LinkState::Down,
        master,
        offset,
        master_replid: replid,
        down_since_ms: now_ms(),
        synced_once: false,
        psync,
        local_expires: Default::default(),
        held: Default::default(),
    });
    crate::log::set_replica(true);
    // Clients blocked while this server was a master (or on the previous master's data).
    crate::exec::disconnect_all_blocked(srv);
    // What CONFIG REWRITE writes (Redis's `replicaof` line), so a restart replicates again.
    let _ = srv.cfg.set_startup("replicaof", &format!("{host} {port}"));
    tracing::info!("Connecting to MASTER {host}:{port}");
}

/// REPLICAOF NO ONE: stop the link, keep the data, accept writes.
pub fn set_no_master(srv: &mut Server) {
    if unset_master(srv) {
        tracing::info!("MASTER MODE enabled (user request from REPLICAOF NO ONE)");
    }
}

/// Stop replicating (keep the data, accept writes); whether this server was a replica.
pub fn unset_master(srv: &mut Server) -> bool {
    if let Some(ctl) = srv.repl_ctl.as_mut() {
        ctl.target_tx.send_replace(None);
        ctl.shared.transferring.store(0, Ordering::Relaxed);
    }
    crate::log::set_replica(false);
    if srv.replica.take().is_none() {
        return false;
    }
    let _ = srv.cfg.set_startup("replicaof", "no one");
    crate::master::promoted(srv);
    true
}

/// After a write command of a client (not the master) on a replica: its keys that now have a
/// TTL are remembered, to be expired by [`expire_local_keys`].
pub fn remember_local_keys(srv: &mut Server, db: usize, spec: &CommandSpec, argv: &[Bytes]) {
    let Some(r) = srv.replica.as_mut() else {
        return;
    };
    let Some(d) = srv.dbs.get(db) else {
        return;
    };
    for i in spec.key_positions(argv) {
        let k = &argv[i];
        if d.expire_of(k).is_some() {
            r.local_expires.insert((db, k.clone()));
        }
    }
}

/// Timer on a replica: expire the keys its own clients wrote with a TTL (the master's keys
/// stay until the master's DEL), as Redis's expireSlaveKeys. A key that lost its TTL or is
/// gone is forgotten.
pub fn expire_local_keys(srv: &mut Server, now: i64) {
    let Some(r) = srv.replica.as_mut() else {
        return;
    };
    if r.local_expires.is_empty() {
        return;
    }
    let tracked: Vec<(usize, Bytes)> = r.local_expires.iter().cloned().collect();
    let mut due = Vec::new();
    let mut forget = Vec::new();
    for (db, k) in tracked {
        match srv.dbs.get(db).and_then(|d| d.expire_of(&k)) {
            Some(t) if t <= now => due.push((db, k)),
            Some(_) => {}
            None => forget.push((db, k)),
        }
    }
    if let Some(r) = srv.replica.as_mut() {
        for e in forget.iter().chain(&due) {
            r.local_expires.remove(e);
        }
    }
    for (db, k) in due {
        srv.expire_key(db, &k);
    }
}

/// REPLICAOF host port | NO ONE (and SLAVEOF).
pub fn replicaof_command(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if ctx.srv.failover.is_some() {
        return Reply::err("ERR REPLICAOF not allowed while failing over.");
    }
    if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        set_no_master(ctx.srv);
        return crate::resp::OK;
    }
    let Some(port) = crate::util::parse_i64(&args[2]) else {
        return Reply::err(crate::cmd::err::NOT_INT);
    };
    if ctx.client.is_master {
        return Reply::err("ERR Command is not valid when client is a replica.");
    }
    let host = String::from_utf8_lossy(&args[1]).to_string();
    if let Some(r) = &ctx.srv.replica {
        if r.host.eq_ignore_ascii_case(&host) && r.port as i64 == port {
            return Reply::Status("OK Already connected to specified master");
        }
    }
    if !(0..=65535).contains(&port) {
        // Redis accepts it and fails to connect forever; refuse early instead.
        return Reply::err("ERR Invalid master port");
    }
    set_master(ctx.srv, host, port as u16);
    crate::resp::OK
}

/// ROLE on a replica.
pub fn role_reply(srv: &Server) -> Option<Reply> {
    let r = srv.replica.as_ref()?;
    let phase = srv
        .repl_ctl
        .as_ref()
        .map(|c| c.shared.phase.load(Ordering::Relaxed))
        .unwrap_or(0);
    let state = match r.state {
        LinkState::Up => "connected",
        LinkState::Persisting => "sync",
        LinkState::Down => match phase {
            1 => "connecting",
            2 => "handshake",
            3 => "sync",
            _ => "connect",
        },
    };
    Some(Reply::Array(vec![
        Reply::bulk_str("slave"),
        Reply::bulk_str(&r.host),
        Reply::Int(r.port as i64),
        Reply::bulk_str(state),
        Reply::Int(if r.link_up() { r.offset } else { -1 }),
    ]))
}

/// The fields of INFO replication on a replica, in Redis 7.0's order, up to
/// `replica_announced` (the caller adds the master part).
pub fn info_fields(srv: &Server) -> Option<Vec<(String, String)>> {
    let r = srv.replica.as_ref()?;
    let sh = srv.repl_ctl.as_ref().map(|c| c.shared.clone())?;
    let mut v: Vec<(String, String)> = Vec::new();
    let mut kv = |k: &str, val: String| v.push((k.to_string(), val));
    let now = now_ms();
    kv("role", "slave".into());
    kv("master_host", r.host.clone());
    kv("master_port", r.port.to_string());
    kv(
        "master_link_status",
        if r.link_up() { "up" } else { "down" }.into(),
    );
    let last_io = sh.last_io_ms.load(Ordering::Relaxed);
    kv(
        "master_last_io_seconds_ago",
        if r.link_up() && last_io > 0 {
            ((now - last_io).max(0) / 1000).to_string()
        } else {
            "-1".into()
        },
    );
    let transferring = sh.transferring.load(Ordering::Relaxed) != 0;
    // Loading the master's RDB counts as syncing too (Redis's REPL_STATE_TRANSFER lasts
    // until the load ends).
    let syncing = transferring || matches!(r.state, LinkState::Persisting) || srv.loading.is_some();
    kv(
        "master_sync_in_progress",
        if syncing { "1" } else { "0" }.into(),
    );
    let read = sh.read_offset.load(Ordering::Relaxed);
    kv("slave_read_repl_offset", read.max(r.offset).to_string());
    kv("slave_repl_offset", r.offset.to_string());
    if transferring {
        let total = sh.sync_total.load(Ordering::Relaxed);
        let got = sh.sync_read.load(Ordering::Relaxed) as i64;
        kv("master_sync_total_bytes", total.to_string());
        kv("master_sync_read_bytes", got.to_string());
        kv(
            "master_sync_left_bytes",
            if total >= 0 { total - got } else { -1 }.to_string(),
        );
        let perc = if total > 0 {
            got as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        kv("master_sync_perc", format!("{perc:.2}"));
        kv(
            "master_sync_last_io_seconds_ago",
            ((now - last_io).max(0) / 1000).to_string(),
        );
    }
    if !r.link_up() {
        kv(
            "master_link_down_since_seconds",
            ((now - r.down_since_ms).max(0) / 1000).to_string(),
        );
    }
    kv(
        "slave_priority",
        srv.cfg.get("replica-priority").to_string(),
    );
    kv(
        "slave_read_only",
        if srv.cfg.get_bool("replica-read-only") {
            "1"
        } else {
            "0"
        }
        .into(),
    );
    kv(
        "replica_announced",
        if srv.cfg.get_bool("replica-announced") {
            "1"
        } else {
            "0"
        }
        .into(),
    );
    Some(v)
}

/// Whether a write from `client` must be refused with READONLY.
#[inline]
pub fn refuse_write(srv: &Server, client: &Client) -> bool {
    srv.replica.is_some() && !client.must_obey() && srv.cfg.get_bool("replica-read-only")
}

pub const READONLY_ERR: &str = "READONLY You can't write against a read only replica.";

pub const MASTERDOWN_ERR: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";

/// Whether this server serves only commands flagged `stale` (INFO, REPLICAOF, …) to `client`:
/// a replica whose link is down, with `replica-serve-stale-data no` (the others are answered
/// MASTERDOWN, in scripts "Can not execute the command on a stale replica").
pub fn stale_only(srv: &Server, client: &Client) -> bool {
    srv.replica.as_ref().is_some_and(|r| !r.link_up())
        && !client.is_master
        && !srv.cfg.get_bool("replica-serve-stale-data")
}

/// CLIENT KILL of the link to the master: the link task drops the connection and reconnects.
pub fn drop_link(srv: &Server, gen: u64) {
    send_ack(srv, Ack::Drop { gen });
}

/// The stream is applied up to `offset`: acknowledged once what it wrote is durable.
fn send_offset(srv: &Server, gen: u64, offset: i64) {
    send_ack(
        srv,
        Ack::Offset {
            gen,
            offset,
            pos: srv.log.pos(),
            logged: srv.log.enabled(),
        },
    );
}

fn send_ack(srv: &Server, a: Ack) {
    if let Some(ctl) = &srv.repl_ctl {
        let _ = ctl.ack_tx.send(a);
    }
}

/// A message from the link task, on the execution thread.
pub fn handle(srv: &mut Server, m: ReplMsg) {
    let Some(m) = hold_while_paused(srv, m) else {
        return;
    };
    match m {
        ReplMsg::Sync {
            gen,
            path,
            replid,
            offset,
        } => {
            if srv.replica.as_ref().map(|r| r.gen) != Some(gen) {
                let _ = std::fs::remove_file(&path);
                return;
            }
            let r = full_sync(srv, &path, replid, offset);
            let _ = std::fs::remove_file(&path);
            if let Err(e) = r {
                tracing::warn!("Failed trying to load the MASTER synchronization DB: {e}");
                if let Some(rep) = srv.replica.as_mut() {
                    rep.state = LinkState::Down;
                }
                send_ack(srv, Ack::Resync { gen });
            }
        }
        ReplMsg::Stream {
            gen,
            cmds,
            end_offset,
            psync_offset,
            raw,
        } => {
            let Some(mut rep) = srv.replica.take() else {
                return;
            };
            if rep.gen != gen || rep.state == LinkState::Down {
                srv.replica = Some(rep);
                return;
            }
            // `srv.replica` is out while the master's commands run: they must still see a
            // replica (no expiry of its own, no eviction), or a command of the master on a key
            // past its TTL here would delete it first (its DEL in our log) and then apply to
            // a new key without the TTL, and `maxmemory` would evict on its own.
            srv.applying_master_stream = true;
            for argv in cmds {
                crate::exec::process_command(srv, &mut rep.master, argv);
                rep.master.out.clear();
                rep.master.need = 0;
            }
            srv.applying_master_stream = false;
            if !srv.ready_keys.is_empty() {
                crate::exec::serve_blocked(srv, None);
            }
            // The master's bytes of what was applied, for our own replicas (after our log's
            // bytes of it, so they are released once those are durable).
            srv.log.feed_proxied(&raw);
            rep.offset = end_offset;
            if let Some(p) = rep.psync.as_mut() {
                p.1 = psync_offset;
            }
            let up = rep.link_up();
            srv.replica = Some(rep);
            if up {
                send_offset(srv, gen, end_offset);
            }
        }
        ReplMsg::Continue {
            gen,
            replid,
            offset,
            new_replid,
        } => continue_sync(srv, gen, replid, offset, new_replid),
        ReplMsg::FailoverAnswer { gen, accepted } => {
            crate::failover::psync_answered(srv, gen, accepted)
        }
        ReplMsg::Down { gen } => {
            if let Some(rep) = srv.replica.as_mut() {
                if rep.gen == gen && rep.state != LinkState::Down {
                    tracing::warn!("Connection with master lost.");
                    rep.state = LinkState::Down;
                    rep.down_since_ms = now_ms();
                    // A transaction the master did not finish is dropped, as Redis frees the
                    // master client.
                    rep.master.multi = None;
                }
            }
        }
    }
}

/// CLIENT PAUSE covers the master's commands too (Redis pauses every client but its replicas):
/// a batch of the stream holding a command the pause covers (any command under `ALL`, a write
/// or `may_replicate` one under `WRITE`) is postponed whole, and the link's later messages
/// (batches, a reconnection's CONTINUE, the link going down) queue behind it, so they apply
/// in the order they came. A full sync replaces the dataset they would apply to: it drops
/// them. Returns the message to handle now, if any.
fn hold_while_paused(srv: &mut Server, m: ReplMsg) -> Option<ReplMsg> {
    let gen = match &m {
        ReplMsg::Stream { gen, .. } | ReplMsg::Continue { gen, .. } | ReplMsg::Down { gen } => *gen,
        ReplMsg::Sync { gen, .. } => {
            if let Some(rep) = srv.replica.as_mut().filter(|r| r.gen == *gen) {
                rep.held.clear();
            }
            return Some(m);
        }
        ReplMsg::FailoverAnswer { .. } => return Some(m),
    };
    let Some(rep) = srv.replica.as_ref().filter(|r| r.gen == gen) else {
        return Some(m);
    };
    let hold = !rep.held.is_empty()
        || match &m {
            ReplMsg::Stream { cmds, .. } => crate::exec::pause_holds_master(srv, cmds),
            _ => false,
        };
    if !hold {
        return Some(m);
    }
    let rep = srv.replica.as_mut()?;
    if rep.held.is_empty() {
        srv.pause.postpone_master(rep.master.id);
    }
    rep.held.push_back(m);
    None
}

/// The pause that postponed the master's stream has ended: apply what it held, in order (a
/// new pause may hold the rest again).
pub fn resume_held(srv: &mut Server, master_id: ClientId) {
    let Some(rep) = srv.replica.as_mut().filter(|r| r.master.id == master_id) else {
        return;
    };
    let held = std::mem::take(&mut rep.held);
    for m in held {
        handle(srv, m);
    }
}

/// `ReplMsg::Continue`: the link is up again without a sync, if the dataset is exactly what
/// the link asked the master to continue from; otherwise a full sync is asked for.
fn continue_sync(srv: &mut Server, gen: u64, replid: String, offset: i64, new_replid: String) {
    let in_place = !srv.cfg.get_bool("appendonly") || with_aof(srv, |p, srv| p.log_in_place(srv));
    let Some(rep) = srv.replica.as_mut() else {
        return;
    };
    if rep.gen != gen {
        return;
    }
    if rep.psync.as_ref() != Some(&(replid.clone(), offset)) {
        tracing::warn!(
            "Partial resynchronization from {replid}:{} does not match this dataset; syncing again",
            offset + 1
        );
        send_ack(srv, Ack::Resync { gen });
        return;
    }
    rep.master.multi = None;
    rep.offset = offset;
    rep.master_replid = new_replid.clone();
    rep.psync = Some((new_replid.clone(), offset));
    tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
    // Up once the log holding the dataset is in place (`cron`), as after a full sync.
    rep.state = if in_place {
        LinkState::Up
    } else {
        LinkState::Persisting
    };
    continue_stream(srv, &new_replid, offset);
    if in_place {
        send_offset(srv, gen, offset);
    }
}

/// After a +CONTINUE: our stream goes on as the master's from `offset`, under its id (Redis's
/// `slaveTryPartialResynchronization`): a new id shifts ours (the old one stays valid up to
/// here) and our replicas are disconnected so that they learn it; no backlog yet (this server
/// was a master that never had replicas) makes one.
fn continue_stream(srv: &mut Server, new_replid: &str, offset: i64) {
    let end = srv.master.backlog.as_ref().map(|b| b.end());
    match end {
        None => {
            crate::master::replica_backlog(srv, new_replid.to_string(), offset);
        }
        Some(end) if end != offset => {
            // Not expected: the backlog holds exactly what the dataset does.
            tracing::warn!(
                "Replication backlog ends at {end}, the master continues from {offset}: starting a new one"
            );
            crate::master::drop_all_slaves(srv);
            crate::master::replica_backlog(srv, new_replid.to_string(), offset);
        }
        Some(_) if srv.master.replid != new_replid => {
            tracing::info!("Master replication ID changed to {new_replid}");
            let m = &mut srv.master;
            m.replid2 = std::mem::replace(&mut m.replid, new_replid.to_string());
            m.second_offset = offset + 1;
            crate::master::drop_all_slaves(srv);
        }
        Some(_) => {}
    }
}

fn full_sync(
    srv: &mut Server,
    path: &std::path::Path,
    replid: String,
    offset: i64,
) -> Result<(), String> {
    // A running snapshot (BGSAVE or rewrite) describes the dataset about to be replaced; so do
    // this server's own replicas and its replication stream.
    srv.rewrite_presync = None;
    crate::master::cancel_sync(srv);
    crate::compaction::abort(srv);
    crate::master::dataset_replaced(srv);
    let Some(mut rep) = srv.replica.take() else {
        return Ok(());
    };
    rep.master = master_client(srv);
    // The log stops before the flush, and starts again (a staging log whose base is the loaded
    // dataset) after the load, as Redis's replica stops and restarts its AOF: the AOF directory
    // keeps the dataset from before the sync until the new log with its base takes its place,
    // so a crash meanwhile recovers the old dataset, not the flush without the load.
    let logged = srv.log.enabled();
    if logged {
        with_aof(srv, |p, srv| p.stop_for_sync(srv));
    }
    if let Some(spec) = crate::exec::lookup_command(b"flushall") {
        crate::exec::call(
            srv,
            &mut rep.master,
            spec,
            &[Bytes::from_static(b"FLUSHALL")],
            false,
        );
    }
    rep.master.out.clear();
    // As Redis's emptyData before the load: the master's libraries replace ours.
    crate::cmd::function::clear(srv);
    tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory");
    let file = std::fs::File::open(path).map_err(|e| e.to_string());
    // Clients are served meanwhile (-LOADING, or what Redis allows while loading).
    let size = file
        .as_ref()
        .ok()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    // In place while loading: INFO and ROLE show a replica whose link is down.
    rep.state = LinkState::Down;
    srv.replica = Some(rep);
    // A shutdown asked for meanwhile exits without saving: the log stopped before the flush,
    // so the AOF directory still holds the data set from before the sync.
    let loaded = crate::loading::while_serving(srv, size, |srv| {
        file.and_then(|f| {
            // A replica keeps keys the master sent even if already expired: the master's DEL
            // follows (as Redis's replica loading does).
            crate::snapshot::load_rdb(srv, std::io::BufReader::with_capacity(1 << 20, f), true)
        })
    });
    let Some(mut rep) = srv.replica.take() else {
        return loaded.map(|_| ());
    };
    rep.master_replid = replid;
    rep.offset = offset;
    rep.synced_once = true;
    let gen = rep.gen;
    let loaded_db = loaded.as_ref().ok().and_then(|s| s.repl_stream_db);
    match loaded {
        Ok(stats) => {
            tracing::info!(
                "MASTER <-> REPLICA sync: Finished with success ({} keys)",
                stats.keys
            );
        }
        Err(e) => {
            rep.psync = None;
            srv.replica = Some(rep);
            return Err(e);
        }
    }
    rep.psync = Some((rep.master_replid.clone(), offset));
    // The stream goes on in the database the master had selected at the payload's offset.
    if let Some(db) = loaded_db.filter(|&d| (d as usize) < srv.dbs.len()) {
        rep.master.db = db as usize;
    }
    // Our stream is the master's from here: its id, its offsets.
    crate::master::replica_backlog(srv, rep.master_replid.clone(), offset);
    srv.dirty += 1;
    // The log must hold the new dataset before the link counts as up (see `cron`).
    if logged {
        rep.state = LinkState::Persisting;
        srv.replica = Some(rep);
        restart_log(srv);
    } else {
        rep.state = LinkState::Up;
        srv.replica = Some(rep);
        send_offset(srv, gen, offset);
    }
    Ok(())
}

/// `f` on the AOF persistence, if that is what the server runs.
fn with_aof<T: Default>(
    srv: &mut Server,
    f: impl FnOnce(&mut crate::aof::Persist, &mut Server) -> T,
) -> T {
    srv.with_persistence(|p, srv| {
        p.as_any_mut()
            .downcast_mut::<crate::aof::Persist>()
            .map(|pp| f(pp, srv))
            .unwrap_or_default()
    })
}

/// Start the log again after a sync's load (retried by `cron` until it starts).
fn restart_log(srv: &mut Server) {
    match with_aof(srv, |p, srv| Some(p.restart_after_sync(srv))) {
        Some(Ok(())) => {
            tracing::info!(
                "MASTER <-> REPLICA sync: writing the append only file of the new dataset"
            )
        }
        Some(Err(e)) => {
            tracing::warn!("Can't start the append only file after the sync (retrying): {e}")
        }
        None => {}
    }
}

/// Connect to the master at `addr` (`host:port`), from `bind-source-addr` when it is set: as
/// Redis's best-effort bind, a source address that cannot be bound (or is of the other family)
/// is left to the system.
async fn connect_master(t: &Target, addr: &str) -> std::io::Result<TcpStream> {
    let Ok(source) = t.source_addr.parse::<std::net::IpAddr>() else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let sock = if sa.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if sa.is_ipv4() == source.is_ipv4() {
            let _ = sock.bind(std::net::SocketAddr::new(source, 0));
        }
        match sock.connect(sa).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address for the master")))
}

/// Timer: a sync waiting for its log becomes `up` once the log holding the new dataset is in
/// place (the staging directory exchanged in, or no log at all).
pub fn cron(srv: &mut Server) {
    if srv.replica.as_ref().map(|r| r.state) != Some(LinkState::Persisting) {
        return;
    }
    let in_place = with_aof(srv, |p, srv| p.log_in_place(srv));
    if in_place || !srv.cfg.get_bool("appendonly") {
        let Some(rep) = srv.replica.as_mut() else {
            return;
        };
        rep.state = LinkState::Up;
        let (gen, offset) = (rep.gen, rep.offset);
        tracing::info!("MASTER <-> REPLICA sync: the AOF holds the new dataset; link is up");
        send_offset(srv, gen, offset);
        return;
    }
    if !srv.log.enabled() && srv.snapshot.is_none() && srv.rewrite_presync.is_none() {
        // The log could not start again after the load: try again.
        restart_log(srv);
    }
}

// ---------------------------------------------------------------------------------------------
// The link task.

async fn manager(
    mut target_rx: watch::Receiver<Option<Target>>,
    mut ack_rx: mpsc::UnboundedReceiver<Ack>,
    exec_tx: ExecSender,
    shared: Arc<Shared>,
    gate: watch::Receiver<Gate>,
) {
    loop {
        let target = target_rx.borrow_and_update().clone();
        let Some(t) = target else {
            shared.phase.store(0, Ordering::Relaxed);
            if target_rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        // Retried every second, whatever went wrong, as Redis's replicationCron: a master
        // that comes back, or a corrected `masterauth`, is picked up within a second.
        let retry = Duration::from_millis(1000);
        // Where a partial resync would continue (replid, offset of the stream the execution
        // thread was sent, outside MULTI): kept across reconnections to this target.
        let mut psync: Option<(String, i64)> = t.psync.clone();
        // FAILOVER: the first PSYNC this target answers carries the FAILOVER argument.
        let mut failover = t.failover;
        loop {
            let mut gate = gate.clone();
            let r = tokio::select! {
                r = session(&t, &mut ack_rx, &exec_tx, &shared, &mut gate, &mut psync, &mut failover) => Some(r),
                c = target_rx.changed() => { if c.is_err() { return; } None }
            };
            shared.transferring.store(0, Ordering::Relaxed);
            shared.phase.store(0, Ordering::Relaxed);
            let _ = exec_tx.send(Msg::Replica(ReplMsg::Down { gen: t.gen }));
            let Some(r) = r else {
                break;
            };
            if let Err(e) = r {
                tracing::warn!("Replication link with {}:{}: {e}", t.host, t.port);
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {},
                c = target_rx.changed() => { if c.is_err() { return; } break; }
            }
        }
    }
}

/// What the link logs when the master does not answer within `repl-timeout` while it
/// connects or shakes hands (Redis's text; its suite looks for it).
const TIMEOUT_CONNECTING: &str = "Timeout connecting to the MASTER...";

struct Link {
    sock: TcpStream,
    buf: BytesMut,
    shared: Arc<Shared>,
    timeout: Duration,
}

impl Link {
    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(self.timeout, self.sock.read_buf(&mut self.buf))
            .await
            .map_err(|_| {
                // Redis's replicationCron words, by where the link was.
                if self.shared.phase.load(Ordering::Relaxed) >= 3 {
                    "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.".to_string()
                } else {
                    TIMEOUT_CONNECTING.to_string()
                }
            })?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the master closed the connection".into());
        }
        self.shared.last_io_ms.store(now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// One line (without CRLF). Bare newlines (the master's keep-alives) are skipped.
    async fn line(&mut self) -> Result<String, String> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                let _ = self.buf.split_to(1);
            }
            if let Some(i) = self.buf.iter().position(|&c| c == b'\n') {
                let l = self.buf.split_to(i + 1);
                let s = String::from_utf8_lossy(&l[..i]);
                return Ok(s.trim_end_matches('\r').to_string());
            }
            if self.buf.len() > 64 * 1024 {
                return Err("protocol error: line too long".into());
            }
            self.fill().await?;
        }
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.sock.write_all(&out).await.map_err(|e| e.to_string())
    }

    async fn cmd(&mut self, args: &[&[u8]]) -> Result<String, String> {
        self.send(args).await?;
        self.line().await
    }
}

async fn session(
    t: &Target,
    ack_rx: &mut mpsc::UnboundedReceiver<Ack>,
    exec_tx: &ExecSender,
    shared: &Arc<Shared>,
    gate: &mut watch::Receiver<Gate>,
    psync: &mut Option<(String, i64)>,
    failover: &mut bool,
) -> Result<(), String> {
    // Reports of an earlier connection are stale.
    while ack_rx.try_recv().is_ok() {}
    shared.phase.store(1, Ordering::Relaxed);
    let addr = format!("{}:{}", t.host, t.port);
    let timeout = Duration::from_secs(t.timeout_s);
    let sock = tokio::time::timeout(timeout, connect_master(t, &addr))
        .await
        .map_err(|_| TIMEOUT_CONNECTING.to_string())?
        .map_err(|e| format!("Error condition on socket for SYNC: {e}"))?;
    let _ = sock.set_nodelay(true);
    tracing::info!("MASTER <-> REPLICA sync started");
    shared.phase.store(2, Ordering::Relaxed);
    let mut link = Link {
        sock,
        buf: BytesMut::with_capacity(64 * 1024),
        shared: shared.clone(),
        timeout,
    };
    let r = link.cmd(&[b"PING"]).await?;
    if r.starts_with('-')
        && !r.starts_with("-NOAUTH")
        && !r.starts_with("-NOPERM")
        && !r.starts_with("-ERR operation not permitted")
    {
        return Err(format!("Error reply to PING from master: '{r}'"));
    }
    let (user, pass) = shared.auth.lock().map(|a| a.clone()).unwrap_or_default();
    if !pass.is_empty() {
        let r = if user.is_empty() {
            link.cmd(&[b"AUTH", pass.as_bytes()]).await?
        } else {
            link.cmd(&[b"AUTH", user.as_bytes(), pass.as_bytes()])
                .await?
        };
        if r.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {r}"));
        }
    }
    let port = t.listening_port.to_string();
    let r = link
        .cmd(&[b"REPLCONF", b"listening-port", port.as_bytes()])
        .await?;
    if r.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF listening-port: {r}");
    }
    if !t.announce_ip.is_empty() {
        let r = link
            .cmd(&[b"REPLCONF", b"ip-address", t.announce_ip.as_bytes()])
            .await?;
        if r.starts_with('-') {
            tracing::info!("(Non critical) Master does not understand REPLCONF ip-address: {r}");
        }
    }
    let r = link
        .cmd(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await?;
    if r.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF capa: {r}");
    }
    // A partial resync continues the stream over the dataset as it is, when the master still
    // has the bytes from there (Redis's `slaveTryPartialResynchronization`).
    let r = match psync.clone() {
        Some((replid, offset)) => {
            tracing::info!(
                "Trying a partial resynchronization (request {replid}:{}).",
                offset + 1
            );
            let from = (offset + 1).to_string();
            let r = if *failover {
                // Redis's syncWithMaster during a FAILOVER: the target takes over, then
                // answers the PSYNC; an error aborts the failover.
                let r = link
                    .cmd(&[b"PSYNC", replid.as_bytes(), from.as_bytes(), b"FAILOVER"])
                    .await?;
                *failover = false;
                let accepted = r.starts_with("+CONTINUE") || r.starts_with("+FULLRESYNC");
                exec_tx
                    .send(Msg::Replica(ReplMsg::FailoverAnswer {
                        gen: t.gen,
                        accepted,
                    }))
                    .map_err(|_| "the server is shutting down".to_string())?;
                if !accepted {
                    return Err(format!("the failover target refused PSYNC: {r}"));
                }
                r
            } else {
                link.cmd(&[b"PSYNC", replid.as_bytes(), from.as_bytes()])
                    .await?
            };
            if let Some(rest) = r.strip_prefix("+CONTINUE") {
                let new_replid = match rest.trim() {
                    "" => replid.clone(),
                    id => id.to_string(),
                };
                tracing::info!("Successful partial resynchronization with master.");
                *psync = Some((new_replid.clone(), offset));
                shared.phase.store(3, Ordering::Relaxed);
                shared.read_offset.store(offset, Ordering::Relaxed);
                exec_tx
                    .send(Msg::Replica(ReplMsg::Continue {
                        gen: t.gen,
                        replid,
                        offset,
                        new_replid,
                    }))
                    .map_err(|_| "the server is shutting down".to_string())?;
                return stream(t, link, offset, ack_rx, exec_tx, gate, psync).await;
            }
            r
        }
        None => link.cmd(&[b"PSYNC", b"?", b"-1"]).await?,
    };
    let Some(rest) = r.strip_prefix("+FULLRESYNC ") else {
        return Err(format!("Unexpected reply to PSYNC from master: {r}"));
    };
    // The dataset is about to be replaced: nothing to continue from until it is loaded.
    *psync = None;
    let mut it = rest.split_whitespace();
    let replid = it.next().unwrap_or("").to_string();
    let offset: i64 = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad FULLRESYNC reply: {r}"))?;
    tracing::info!("Full resync from master: {replid}:{offset}");
    shared.phase.store(3, Ordering::Relaxed);
    let path = t
        .dir
        .join(format!("temp-replica-{}-{}.rdb", std::process::id(), t.gen));
    let res = receive_rdb(&mut link, &path).await;
    if let Err(e) = res {
        let _ = std::fs::remove_file(&path);
        shared.transferring.store(0, Ordering::Relaxed);
        return Err(e);
    }
    shared.transferring.store(0, Ordering::Relaxed);
    shared.read_offset.store(offset, Ordering::Relaxed);
    exec_tx
        .send(Msg::Replica(ReplMsg::Sync {
            gen: t.gen,
            path,
            replid: replid.clone(),
            offset,
        }))
        .map_err(|_| "the server is shutting down".to_string())?;
    *psync = Some((replid, offset));
    stream(t, link, offset, ack_rx, exec_tx, gate, psync).await
}

/// Receive the RDB payload into `path` (fsynced), from either form.
async fn receive_rdb(link: &mut Link, path: &std::path::Path) -> Result<(), String> {
    let header = link.line().await?;
    if header.starts_with('-') {
        return Err(format!(
            "MASTER aborted replication with an error: {header}"
        ));
    }
    let Some(h) = header.strip_prefix('$') else {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$': {header}"
        ));
    };
    let mut file = std::fs::File::create(path).map_err(|e| {
        format!("Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}")
    })?;
    let sh = link.shared.clone();
    sh.sync_read.store(0, Ordering::Relaxed);
    sh.transferring.store(1, Ordering::Relaxed);
    let write = |file: &mut std::fs::File, b: &[u8]| -> Result<(), String> {
        file.write_all(b)
            .map_err(|e| format!("Write error writing to the DB for the replica sync: {e}"))
    };
    if let Some(mark) = h.strip_prefix("EOF:") {
        let mark = mark.as_bytes().to_vec();
        if mark.len() != 40 {
            return Err("bad EOF mark from the master".into());
        }
        sh.sync_total.store(-1, Ordering::Relaxed);
        // Everything but the last 40 bytes goes to the file; the stream ends with the mark.
        loop {
            if let Some(i) = find(&link.buf, &mark) {
                let data = link.buf.split_to(i);
                let _ = link.buf.split_to(mark.len());
                write(&mut file, &data)?;
                sh.sync_read.fetch_add(data.len() as u64, Ordering::Relaxed);
                break;
            }
            if link.buf.len() > mark.len() {
                let n = link.buf.len() - mark.len();
                let data = link.buf.split_to(n);
                write(&mut file, &data)?;
                sh.sync_read.fetch_add(n as u64, Ordering::Relaxed);
            }
            link.fill().await?;
        }
    } else {
        let total: u64 = h
            .parse()
            .map_err(|_| format!("bad RDB payload length from master: {header}"))?;
        sh.sync_total.store(total as i64, Ordering::Relaxed);
        let mut left = total;
        loop {
            let n = (link.buf.len() as u64).min(left) as usize;
            if n > 0 {
                let data = link.buf.split_to(n);
                write(&mut file, &data)?;
                left -= n as u64;
                sh.sync_read.fetch_add(n as u64, Ordering::Relaxed);
            }
            if left == 0 {
                break;
            }
            link.fill().await?;
        }
    }
    file.sync_all().map_err(|e| e.to_string())?;
    tracing::info!(
        "MASTER <-> REPLICA sync: received {} bytes of RDB",
        sh.sync_read.load(Ordering::Relaxed)
    );
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One complete multibulk command at the start of `buf`: (argv, bytes). Ok(None): incomplete.
/// A parsed command: the byte ranges of its arguments in the buffer, and its length.
type Frame = (Vec<(usize, usize)>, usize);

/// Redis's default `proto-max-bulk-len`: a longer bulk from the master is a protocol error.
const MASTER_BULK_MAX: usize = 512 * 1024 * 1024;

fn parse_command(buf: &[u8]) -> Result<Option<Frame>, String> {
    let line = |from: usize| -> Option<(usize, usize)> {
        let i = buf[from..].iter().position(|&c| c == b'\n')?;
        Some((from, from + i))
    };
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        // Inline (a bare newline keep-alive, or an inline command): counted, skipped.
        let Some((_, end)) = line(0) else {
            return Ok(None);
        };
        return Ok(Some((Vec::new(), end + 1)));
    }
    let Some((s, e)) = line(1) else {
        return Ok(None);
    };
    let n: usize = std::str::from_utf8(&buf[s..e])
        .ok()
        .map(|x| x.trim_end_matches('\r'))
        .and_then(|x| x.parse().ok())
        .ok_or("protocol error: bad multibulk length from master")?;
    let mut pos = e + 1;
    // The count is the master's word: reserve for a few, grow with what actually arrives.
    let mut args = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err("protocol error: expected '$' from master".into());
        }
        let Some((s, e)) = line(pos + 1) else {
            return Ok(None);
        };
        let len: usize = std::str::from_utf8(&buf[s..e])
            .ok()
            .map(|x| x.trim_end_matches('\r'))
            .and_then(|x| x.parse().ok())
            .ok_or("protocol error: bad bulk length from master")?;
        if len > MASTER_BULK_MAX {
            return Err("protocol error: bulk length from master over 512 MB".into());
        }
        let start = e + 1;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        args.push((start, start + len));
        pos = start + len + 2;
    }
    Ok(Some((args, pos)))
}

async fn stream(
    t: &Target,
    mut link: Link,
    start_offset: i64,
    ack_rx: &mut mpsc::UnboundedReceiver<Ack>,
    exec_tx: &ExecSender,
    gate: &mut watch::Receiver<Gate>,
    psync: &mut Option<(String, i64)>,
) -> Result<(), String> {
    let shared = link.shared.clone();
    let mut offset = start_offset;
    // Where a partial resync would continue: the end of the last command outside MULTI (a
    // transaction cut by a dropped link is discarded, so it is asked for again whole).
    let mut boundary = Boundary {
        offset: start_offset,
        in_multi: false,
    };
    // The master's bytes from the last batch's boundary on (an unfinished transaction's wait
    // for its EXEC): each batch carries those up to its boundary, for our replicas.
    let mut raw: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut raw_from = start_offset;
    // (offset, log position, logged) reported applied, not yet known fsynced.
    let mut pending: std::collections::VecDeque<(i64, u64, bool)> = Default::default();
    let mut acked: Option<i64> = None;
    // The offset whose writes are fsynced to this replica's log (`REPLCONF ACK … FACK`, Redis
    // 7.2's, which WAITAOF's numreplicas counts); None while the log is off.
    let mut facked: Option<i64> = None;
    // What the last ACK said (offset, fsynced offset).
    let mut sent_ack: Option<(i64, Option<i64>)> = None;
    let mut want_ack = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let timeout = link.timeout;
    let (mut rd, mut wr) = link.sock.into_split();
    let mut buf = std::mem::take(&mut link.buf);
    let ack_msg = |off: i64, fack: Option<i64>| {
        let o = off.to_string();
        match fack {
            None => format!(
                "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{o}\r\n",
                o.len()
            ),
            Some(f) => {
                let f = f.to_string();
                format!(
                    "*5\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{o}\r\n$4\r\nFACK\r\n${}\r\n{f}\r\n",
                    o.len(),
                    f.len()
                )
            }
        }
        .into_bytes()
    };
    loop {
        // Cut complete commands out of the buffer.
        let mut cmds = Vec::new();
        let mut consumed_any = false;
        let mut getack = false;
        loop {
            match parse_command(&buf)? {
                None => break,
                Some((ranges, n)) => {
                    consumed_any = true;
                    let frame = buf.split_to(n).freeze();
                    raw.extend_from_slice(&frame);
                    offset += n as i64;
                    boundary.after(ranges.first().map(|&(s, e)| &frame[s..e]), offset);
                    if ranges.is_empty() {
                        continue;
                    }
                    let argv: Vec<Bytes> = ranges.iter().map(|&(s, e)| frame.slice(s..e)).collect();
                    if argv[0].eq_ignore_ascii_case(b"replconf") {
                        if argv.len() >= 2 && argv[1].eq_ignore_ascii_case(b"getack") {
                            getack = true;
                        }
                        continue;
                    }
                    if argv[0].eq_ignore_ascii_case(b"ping") {
                        continue;
                    }
                    cmds.push(argv);
                    if cmds.len() >= 1024 {
                        break;
                    }
                }
            }
        }
        if consumed_any {
            shared.read_offset.store(offset, Ordering::Relaxed);
            // Usually everything (no transaction open); nothing while one is (its bytes are
            // not copied again for every batch it spans).
            let done = ((boundary.offset - raw_from).max(0) as usize).min(raw.len());
            let batch_raw = if done == raw.len() {
                std::mem::take(&mut raw)
            } else if done == 0 {
                Vec::new()
            } else {
                let rest = raw[done..].to_vec();
                let mut b = std::mem::replace(&mut raw, rest);
                b.truncate(done);
                b
            };
            raw_from = boundary.offset;
            exec_tx
                .send(Msg::Replica(ReplMsg::Stream {
                    gen: t.gen,
                    cmds,
                    end_offset: offset,
                    psync_offset: boundary.offset,
                    raw: batch_raw,
                }))
                .map_err(|_| "the server is shutting down".to_string())?;
            if let Some(p) = psync.as_mut() {
                p.1 = boundary.offset;
            }
        }
        if getack {
            // What is durable now; the offset the master waits for follows as soon as the
            // log has it (`want_ack`).
            want_ack = true;
            if let Some(a) = acked {
                wr.write_all(&ack_msg(a, facked))
                    .await
                    .map_err(|e| e.to_string())?;
                sent_ack = Some((a, facked));
            }
        }
        if consumed_any && parse_command(&buf)?.is_some() {
            continue;
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => {
                match r {
                    Ok(0) => return Err("the master closed the connection".into()),
                    Ok(_) => shared.last_io_ms.store(now_ms(), Ordering::Relaxed),
                    Err(e) => return Err(e.to_string()),
                }
            }
            a = ack_rx.recv() => {
                match a {
                    None => return Ok(()),
                    Some(Ack::Resync { gen }) if gen == t.gen => {
                        *psync = None;
                        return Err("the sync could not be loaded; syncing again".into());
                    }
                    Some(Ack::Drop { gen }) if gen == t.gen => {
                        return Err("the link was killed (CLIENT KILL)".into());
                    }
                    Some(Ack::Offset { gen, offset, pos, logged }) if gen == t.gen => {
                        if pending.len() >= 4096 {
                            // Later entries cover earlier ones (positions only grow).
                            pending.pop_front();
                        }
                        pending.push_back((offset, pos, logged));
                    }
                    Some(_) => {}
                }
            }
            c = gate.changed() => {
                if c.is_err() {
                    return Ok(());
                }
            }
            _ = tick.tick() => {
                let last = shared.last_io_ms.load(Ordering::Relaxed);
                if now_ms() - last > timeout.as_millis() as i64 {
                    return Err("MASTER timeout: no data nor PING received...".into());
                }
                if let Some(a) = acked {
                    wr.write_all(&ack_msg(a, facked)).await.map_err(|e| e.to_string())?;
                    sent_ack = Some((a, facked));
                }
            }
        }
        // Acknowledge what the log has made durable (ACK: under the fsync policy; FACK:
        // fsynced, entries leave the queue then).
        let g = *gate.borrow();
        let durable = g.released();
        for &(off, pos, _) in pending.iter() {
            if pos > durable {
                break;
            }
            acked = Some(off);
        }
        while let Some(&(off, pos, logged)) = pending.front() {
            if pos > g.synced {
                break;
            }
            facked = logged.then_some(off);
            pending.pop_front();
        }
        if let Some(a) = acked {
            // The first ACK puts a diskless replica online on the master; after a GETACK the
            // new offset goes out as soon as it is durable, and again once it is fsynced
            // (WAITAOF waits for that).
            if sent_ack.is_none() || (want_ack && sent_ack != Some((a, facked))) {
                wr.write_all(&ack_msg(a, facked))
                    .await
                    .map_err(|e| e.to_string())?;
                sent_ack = Some((a, facked));
                want_ack = facked.is_some_and(|f| f < a);
            }
        }
    }
}

/// The stream offset a partial resync may continue from: after each command outside
/// MULTI … EXEC (keep-alives included), never inside one.
#[derive(Debug)]
struct Boundary {
    offset: i64,
    in_multi: bool,
}

impl Boundary {
    /// A frame whose first argument is `name` (None: an inline keep-alive) ends at `end`.
    fn after(&mut self, name: Option<&[u8]>, end: i64) {
        match name {
            Some(n) if n.eq_ignore_ascii_case(b"multi") => self.in_multi = true,
            Some(n) if n.eq_ignore_ascii_case(b"exec") || n.eq_ignore_ascii_case(b"discard") => {
                self.in_multi = false;
                self.offset = end;
            }
            _ if !self.in_multi => self.offset = end,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![];
        strongbox_storage::resp::encode_command(&mut out, args);
        out
    }

    #[test]
    fn a_partial_resync_never_continues_inside_a_transaction() {
        let mut b = Boundary {
            offset: 100,
            in_multi: false,
        };
        b.after(Some(b"SET"), 120);
        assert_eq!(b.offset, 120);
        b.after(None, 121);
        assert_eq!(b.offset, 121);
        b.after(Some(b"multi"), 140);
        b.after(Some(b"INCR"), 160);
        b.after(None, 161);
        b.after(Some(b"PING"), 175);
        assert_eq!(b.offset, 121, "inside MULTI");
        b.after(Some(b"Exec"), 190);
        assert_eq!(b.offset, 190);
        b.after(Some(b"MULTI"), 200);
        b.after(Some(b"DISCARD"), 215);
        assert_eq!(b.offset, 215);
    }

    #[test]
    fn lengths_from_the_master_are_bounded() {
        assert!(parse_command(b"*99999999999999\r\n").unwrap().is_none());
        assert!(parse_command(b"*1\r\n$99999999999999999999\r\n").is_err());
        assert!(parse_command(b"*1\r\n$600000000\r\n").is_err());
        assert!(parse_command(b"*1\r\nx").is_err());
        assert_eq!(parse_command(b"\n").unwrap(), Some((vec![], 1)));
    }

    quickcheck! {
        /// Whatever the master sends, the parser answers (a command, "more", or an error).
        fn arbitrary_bytes_never_panic(buf: Vec<u8>) -> bool {
            let _ = parse_command(&buf);
            let mut star = b"*".to_vec();
            star.extend_from_slice(&buf);
            let _ = parse_command(&star);
            true
        }

        /// A command, cut anywhere, is "more" until whole, then exactly its arguments.
        fn commands_parse_back_whole_and_only_whole(args: Vec<Vec<u8>>, cut: usize) -> bool {
            let bytes = encode(&args);
            let cut = cut % (bytes.len() + 1);
            let partial_ok = cut == bytes.len()
                || matches!(parse_command(&bytes[..cut]), Ok(None));
            let Ok(Some((spans, used))) = parse_command(&bytes) else {
                return false;
            };
            let got: Vec<Vec<u8>> = spans.iter().map(|&(s, e)| bytes[s..e].to_vec()).collect();
            partial_ok && used == bytes.len() && got == args
        }
    }
}
