//! Client eviction: `maxmemory-clients` (Redis 7.0's `evictClients`).
//!
//! A client's memory ([`client_mem`], CLIENT LIST `tot-mem`) is a fixed base for its
//! structures and buffers, its query buffer (`ConnShared::qbuf_mem_bytes`, kept by its reader:
//! a big argument being received counts at its declared length, as in Redis), its
//! output buffer (`ConnShared::out_bytes`, the same count `client-output-buffer-limit` checks),
//! the arguments of the batch being executed, its MULTI queue, and overheads per WATCHed key,
//! subscription and tracking prefix. When the memory of all normal and pub/sub clients reaches
//! the limit (`maxmemory-clients`: bytes, or a percentage of `maxmemory`; at least 128 KiB),
//! clients are closed, the biggest first, until the total is under it. Replicas and the master
//! are never evicted nor counted; CLIENT NO-EVICT ON clients are counted but never evicted.
//!
//! Cost: with `maxmemory-clients 0` (the default) nothing here runs: the execution thread tests
//! `limit != 0` twice per batch, once per round and once per client it flushes replies to; a
//! reader that holds nothing of a command tests that before each read (`QueryBufTrack` in
//! `server.rs` does the rest, out of line). When on, the execution thread keeps each client's last known memory
//! (`Client::mem_counted`) and their sum ([`ClientEviction::total`]), updated after each batch
//! and each flush of replies; a reader whose query buffer grew by [`ClientEviction::step`] bytes
//! since it last said so sends `Msg::QueryBufGrew`. Only when the sum reaches the limit (or the
//! limit changed, or at the cron) are all clients measured again and the biggest closed:
//! shrinking output buffers are not reported, so the sum may be high, never low, between those
//! full measurements, and a full measurement comes before any eviction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::client::{Client, ClientId};
use crate::exec::Server;

/// Memory attributed to every client besides its buffers: its structures, a reply buffer and a
/// read buffer (Redis: the client struct, its 16 KiB reply buffer and its query buffer).
pub const CLIENT_BASE_BYTES: usize = 1024 + 20 * 1024;
/// Per argument of the batch being executed (Redis: the `robj` pointer of each argv entry).
pub const ARG_OVERHEAD_BYTES: usize = 8;
/// Per queued MULTI command (Redis: `sizeof(multiCmd)`).
pub const MULTI_CMD_OVERHEAD_BYTES: usize = 24;
/// Per WATCHed key: the client's entry and the server's (Redis: a list node and a `watchedKey`).
pub const WATCHED_KEY_BYTES: usize = 48;
/// Per channel, pattern or shard channel subscribed to (Redis: dict entry and bucket).
pub const SUBSCRIPTION_BYTES: usize = 40;
/// Per CLIENT TRACKING BCAST prefix.
pub const TRACKING_PREFIX_BYTES: usize = 64;
/// Smallest effective limit, so that a tiny setting still lets clients talk to the server
/// (Redis: 128 KiB).
pub const LIMIT_BYTES_MIN: usize = 128 * 1024;
/// Bounds of the query-buffer growth a reader reports at once (see [`ClientEviction::step`]).
pub const STEP_BYTES_MIN: usize = 1024;
pub const STEP_BYTES_MAX: usize = 64 * 1024;
/// The "over the limit with nothing left to evict" warning is logged at most this often.
const STUCK_WARN_INTERVAL_MS: i64 = 1000;

const _: () = assert!(STEP_BYTES_MIN <= STEP_BYTES_MAX && STEP_BYTES_MAX < LIMIT_BYTES_MIN);

/// The execution thread's client-eviction state (`Server::cevict`).
#[derive(Default)]
pub struct ClientEviction {
    /// The effective limit in bytes; 0: client eviction is off.
    pub limit: usize,
    /// Sum of `Client::mem_counted` over the counted clients (see the module docs: never low).
    pub total: usize,
    /// Query-buffer growth after which a reader reports (`Msg::QueryBufGrew`); 0 when off.
    /// Half the room left under the limit, within [`STEP_BYTES_MIN`, `STEP_BYTES_MAX`]: a single
    /// growing client is seen before it takes the room left, unless that is under the minimum.
    pub step: Arc<AtomicUsize>,
    /// The limit changed: measure and evict at the end of the round.
    pub check_wanted: bool,
    last_stuck_warn_ms: i64,
}

/// Redis's `getClientEvictionLimit`: `maxmemory-clients` is bytes, or (stored negative) a
/// percentage of `maxmemory` (off while `maxmemory` is 0); at least [`LIMIT_BYTES_MIN`].
pub fn effective_limit(maxmemory_clients: i64, maxmemory: u64) -> usize {
    let bytes = if maxmemory_clients < 0 && maxmemory > 0 {
        (maxmemory as f64 * -(maxmemory_clients as f64) / 100.0) as u64
    } else if maxmemory_clients > 0 {
        maxmemory_clients as u64
    } else {
        return 0;
    };
    (bytes.min(usize::MAX as u64) as usize).max(LIMIT_BYTES_MIN)
}

/// Whether `c`'s memory counts towards the limit (Redis: normal and pub/sub clients).
fn counted(c: &Client) -> bool {
    !c.is_replica && !c.is_master && !c.closed
}

/// Whether `c` may be evicted.
fn evictable(c: &Client) -> bool {
    counted(c) && !c.no_evict && !c.close_after_reply
}

/// The memory of `c` (CLIENT LIST `tot-mem`), with `argv_bytes` for the arguments it holds
/// while a command runs (`Client::mem_argv`, or the current command's in CLIENT LIST).
pub fn client_mem(c: &Client, argv_bytes: usize) -> usize {
    let multi = c
        .multi
        .as_ref()
        .map_or(0, |m| m.bytes + m.queued.len() * MULTI_CMD_OVERHEAD_BYTES);
    let subs = c.subs.len() + c.psubs.len() + c.ssubs.len();
    CLIENT_BASE_BYTES
        + c.shared.qbuf_mem_bytes.load(Ordering::Relaxed)
        + c.shared.out_bytes()
        + argv_bytes
        + multi
        + c.watched.len() * WATCHED_KEY_BYTES
        + subs * SUBSCRIPTION_BYTES
        + c.trk.prefixes.len() * TRACKING_PREFIX_BYTES
}

/// What the arguments of `cmds` add to a client's memory while they wait to run.
pub fn argv_bytes<'a>(cmds: impl IntoIterator<Item = &'a Vec<bytes::Bytes>>) -> usize {
    cmds.into_iter()
        .flat_map(|argv| argv.iter())
        .map(|a| a.len() + ARG_OVERHEAD_BYTES)
        .sum()
}

impl ClientEviction {
    /// The state for an effective `limit` (see [`effective_limit`]).
    pub fn new(limit: usize) -> ClientEviction {
        let ce = ClientEviction {
            limit,
            ..Default::default()
        };
        ce.publish_step();
        ce
    }

    /// Measure `c` again and account the difference in the total. A client that counts but
    /// cannot be evicted (CLIENT NO-EVICT ON) is only measured by [`enforce`] (the cron, a
    /// changed limit, a total over it), as Redis's `updateClientMemUsageAndBucket` leaves such
    /// clients to its `clientsCron`: the arguments and replies of its own commands, there a
    /// moment, do not evict others.
    pub fn remeasure(&mut self, c: &mut Client) {
        if counted(c) && !evictable(c) {
            return;
        }
        let m = if counted(c) {
            client_mem(c, c.mem_argv)
        } else {
            0
        };
        self.total = self.total.saturating_sub(c.mem_counted) + m;
        c.mem_counted = m;
    }

    /// `c` is gone: take its memory out of the total.
    pub fn forget(&mut self, c: &mut Client) {
        self.total = self
            .total
            .saturating_sub(std::mem::take(&mut c.mem_counted));
    }

    fn publish_step(&self) {
        let step = if self.limit == 0 {
            0
        } else {
            (self.limit.saturating_sub(self.total) / 2).clamp(STEP_BYTES_MIN, STEP_BYTES_MAX)
        };
        if self.step.load(Ordering::Relaxed) != step {
            self.step.store(step, Ordering::Relaxed);
        }
    }

    /// Whether the total has reached the limit (a full measurement is due).
    fn over(&self) -> bool {
        self.limit != 0 && self.total >= self.limit
    }
}

/// `maxmemory-clients` or `maxmemory` may have changed (`Server::config_changed`).
#[inline(never)]
pub fn config_changed(srv: &mut Server) {
    let limit = effective_limit(srv.hot.maxmemory_clients, srv.hot.maxmemory);
    let ce = &mut srv.cevict;
    if limit != ce.limit {
        ce.limit = limit;
        // Measured from scratch at the end of the round (and from then on kept up to date).
        ce.check_wanted = limit != 0;
        if limit == 0 {
            ce.total = 0;
            for c in srv.clients.values_mut() {
                c.mem_counted = 0;
            }
        }
        ce.publish_step();
    }
}

/// `c` (not in `srv.clients`: its batch runs) is about to run `argv_bytes` of arguments. True
/// if it was evicted for it: the caller drops it without running anything.
#[inline(never)]
pub fn before_batch(srv: &mut Server, c: &mut Client, argv_bytes: usize) -> bool {
    c.mem_argv = argv_bytes;
    srv.cevict.remeasure(c);
    srv.cevict.over() && enforce(srv, Some(c))
}

/// `c`'s batch has run and its replies were handed over (or a message for it was queued).
/// True if it was evicted.
#[inline(never)]
pub fn after_batch(srv: &mut Server, c: &mut Client) -> bool {
    c.mem_argv = 0;
    srv.cevict.remeasure(c);
    if srv.cevict.over() {
        return enforce(srv, Some(c));
    }
    srv.cevict.publish_step();
    false
}

/// A reader reported its query buffer grew: measure it and evict now if needed (a command of
/// another client queued behind this message must not see an over-limit client).
#[inline(never)]
pub fn query_grew(srv: &mut Server, id: ClientId) {
    if srv.cevict.limit == 0 {
        return;
    }
    if let Some(c) = srv.clients.get_mut(&id) {
        srv.cevict.remeasure(c);
    }
    if srv.cevict.over() {
        enforce(srv, None);
    } else {
        srv.cevict.publish_step();
    }
}

/// End of an execution round (Redis's `beforeSleep`): evict if the total reached the limit or
/// the limit changed.
#[inline]
pub fn end_of_round(srv: &mut Server) {
    if srv.cevict.limit != 0 && (srv.cevict.over() || srv.cevict.check_wanted) {
        enforce(srv, None);
    }
}

/// The cron: measure every client again (output buffers that drained are only seen here), and
/// evict if over.
#[inline]
pub fn cron(srv: &mut Server) {
    if srv.cevict.limit != 0 {
        enforce(srv, None);
    }
}

/// Measure every client (and `current`, whose batch runs) from scratch, then close the biggest
/// evictable ones until the total is under the limit. True if `current` was evicted (it is
/// marked closed; its caller forgets it).
#[inline(never)]
pub fn enforce(srv: &mut Server, mut current: Option<&mut Client>) -> bool {
    let limit = srv.cevict.limit;
    srv.cevict.check_wanted = false;
    if limit == 0 {
        return false;
    }
    let mut total = 0usize;
    let mut candidates: Vec<(usize, ClientId)> = Vec::new();
    let clients = srv.clients.values_mut().map(|c| &mut **c);
    for c in clients.chain(current.as_deref_mut()) {
        let m = if counted(c) {
            client_mem(c, c.mem_argv)
        } else {
            0
        };
        c.mem_counted = m;
        total += m;
        if evictable(c) {
            candidates.push((m, c.id));
        }
    }
    srv.cevict.total = total;
    if total < limit {
        srv.cevict.publish_step();
        return false;
    }
    // Biggest first; among equals the older client (smaller id) first.
    candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let now = crate::util::now_ms();
    let mut current_evicted = false;
    for (_, id) in candidates {
        if srv.cevict.total < limit {
            break;
        }
        // Each is taken out of the total as it goes (`forget_client` for those in the map).
        if let Some(c) = current.as_deref_mut().filter(|c| c.id == id) {
            log_eviction(c, now);
            close(c);
            srv.cevict.forget(c);
            current_evicted = true;
        } else if let Some(mut c) = srv.clients.remove(&id) {
            log_eviction(&c, now);
            close(&mut c);
            srv.forget_client(&mut c);
        } else {
            continue;
        }
        srv.stats.evicted_clients += 1;
    }
    if srv.cevict.total >= limit && now - srv.cevict.last_stuck_warn_ms >= STUCK_WARN_INTERVAL_MS {
        srv.cevict.last_stuck_warn_ms = now;
        tracing::warn!("Over client maxmemory after evicting all evictable clients");
    }
    srv.cevict.publish_step();
    current_evicted
}

fn log_eviction(c: &Client, now_ms: i64) {
    let mut info = String::new();
    crate::cmd::server::client::client_info(&mut info, c, now_ms, None);
    tracing::info!("Evicting client: {info}");
}

/// Close `c` at once, dropping what is queued for it (Redis's `freeClient`).
fn close(c: &mut Client) {
    c.closed = true;
    c.shared
        .drop_output
        .store(true, std::sync::atomic::Ordering::Relaxed);
    c.shared.kill.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_bytes_or_percentage_with_a_floor() {
        assert_eq!(effective_limit(0, 0), 0);
        assert_eq!(effective_limit(0, 1 << 30), 0);
        assert_eq!(effective_limit(3_000_000, 0), 3_000_000);
        assert_eq!(effective_limit(1, 0), LIMIT_BYTES_MIN);
        // 7% of 6 MiB, as Redis computes it (a double, truncated).
        assert_eq!(effective_limit(-7, 6 << 20), 440_401);
        // A percentage without maxmemory: off.
        assert_eq!(effective_limit(-50, 0), 0);
        assert_eq!(effective_limit(-1, 1 << 20), LIMIT_BYTES_MIN);
    }
}
