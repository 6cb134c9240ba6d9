//! `maxmemory` and its eviction policies (Redis 7.0's `evict.c` semantics).
//!
//! Memory is INFO's `used_memory` ([`used_memory`]: the allocator's count of live heap bytes,
//! `alloc::allocated_bytes`, less the unused slots of the keyspace's tables), less what Redis
//! also leaves out ([`not_counted_for_evict`]: the log's pending bytes, the replication buffer
//! beyond the backlog, the messages evictions just sent). Before a command runs, [`perform_evictions`] compares it with
//! `maxmemory`; over it, keys are evicted by `maxmemory-policy` until the memory their deletions
//! gave back covers the excess measured at the start (as Redis: not re-measured after each
//! eviction, whose DEL and invalidation messages take memory of their own for a while),
//! within a time budget set by `maxmemory-eviction-tenacity` (past it, the execution loop goes
//! on at once, round after round: [`eviction_proc`]). If nothing can be evicted — `noeviction`,
//! or no key left the policy may take — a command flagged `denyoom` (one that can grow the
//! dataset) is refused with Redis's `-OOM` error, and reads, deletes and everything else go on.
//!
//! Choosing a key: the `allkeys-*`/`volatile-*` LRU, LFU and TTL policies sample
//! `maxmemory-samples` keys per database (from the whole keyspace, or from the keys with a
//! TTL) into a pool of the [`POOL_SIZE`] best candidates seen so far, kept between calls as
//! Redis's eviction pool is, and evict the best one still present; the random policies take a
//! random key, visiting the databases in turn. An eviction is a deletion like an expiration:
//! logged as `DEL` (so replay and replicas drop the key too), an `evicted` keyspace event,
//! WATCHers touched, `evicted_keys` counted.

use bytes::Bytes;
use rand::Rng;

use crate::exec::Server;
use crate::keyspace::Object;
use crate::util::now_us;

/// Redis's reply to a command refused for memory.
pub const OOM_ERR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Candidates kept between calls (Redis's `EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    #[default]
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    pub fn parse(name: &str) -> Policy {
        match name {
            "allkeys-lru" => Policy::AllKeysLru,
            "volatile-lru" => Policy::VolatileLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "volatile-lfu" => Policy::VolatileLfu,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }

    /// Whether objects keep an LFU counter (updated on access) instead of an access time.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    /// Whether Redis may share integer objects between keys under this policy (not under the
    /// LRU and LFU ones, which keep an access time or counter per object).
    pub fn shares_integers(self) -> bool {
        !matches!(
            self,
            Policy::AllKeysLru | Policy::VolatileLru | Policy::AllKeysLfu | Policy::VolatileLfu
        )
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    fn random(self) -> bool {
        matches!(self, Policy::AllKeysRandom | Policy::VolatileRandom)
    }
}

/// The eviction pool and the random policies' next database.
#[derive(Default)]
pub struct Evictor {
    /// (score, db, key), best (highest score) last.
    pool: Vec<(u64, usize, Bytes)>,
    next_db: usize,
    /// A call ran out of time over the limit: the execution loop calls [`eviction_proc`] at
    /// once, round after round, until done (Redis's `evictionTimeProc`).
    pub running: bool,
    /// Memory evictions put in flight — their `evicted` notifications and client-tracking
    /// invalidation messages, on their way to the connections' writers — in this
    /// [`INFLIGHT_EPOCH_MS`] epoch (`[0]`) and the one before (`[1]`), and the epoch's number.
    /// See [`Evictor::in_flight`].
    sent: [u64; 2],
    sent_epoch: u64,
}

/// How long (one to two of these, ms) the memory of an eviction's messages is not counted
/// against `maxmemory`: long enough for the connections' writer tasks to write them out, short
/// enough that a client that does not read (its socket full, the messages stuck in its output
/// buffer) soon counts in full, as in Redis.
pub const INFLIGHT_EPOCH_MS: u64 = 50;

impl Evictor {
    fn rotate(&mut self, now_ms: u64) {
        let epoch = now_ms / INFLIGHT_EPOCH_MS;
        if epoch == self.sent_epoch {
            return;
        }
        self.sent = if epoch == self.sent_epoch + 1 {
            [0, self.sent[0]]
        } else {
            [0, 0]
        };
        self.sent_epoch = epoch;
    }

    /// Record `bytes` of messages an eviction sent.
    pub fn note_sent(&mut self, bytes: u64, now_ms: u64) {
        self.rotate(now_ms);
        self.sent[0] += bytes;
    }

    /// Memory of the messages recent evictions sent, not counted against `maxmemory`.
    ///
    /// Redis writes every client's pending replies at the end of each event-loop iteration,
    /// so the invalidation messages an eviction generates have left its memory (for the
    /// sockets) before the next command is looked at. Here they go to the connections' writer
    /// tasks, on other threads, and the next command may come first: counted, they would look
    /// like memory still to free, each eviction paying for the messages of the last, and with
    /// enough tracking clients the whole keyspace would go (Redis's test "client tracking
    /// don't cause eviction feedback loop"). Their memory is left out for 50–100 ms instead.
    pub fn in_flight(&self, now_ms: u64) -> u64 {
        let epoch = now_ms / INFLIGHT_EPOCH_MS;
        if epoch == self.sent_epoch {
            self.sent[0] + self.sent[1]
        } else if epoch == self.sent_epoch + 1 {
            self.sent[0]
        } else {
            0
        }
    }
}

/// Result of [`perform_evictions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under `maxmemory` (or none set).
    Ok,
    /// Still over, out of time: the command may run, the execution loop goes on evicting
    /// (Redis's `EVICT_RUNNING`).
    Running,
    /// Over, and nothing can be evicted: refuse `denyoom` commands.
    Fail,
}

/// Redis's eviction time limit for `maxmemory-eviction-tenacity` (0–100), µs; `None` = no limit.
fn time_limit_us(tenacity: i64) -> Option<u64> {
    let t = tenacity.clamp(0, 100);
    if t <= 10 {
        // Linear up to 500 µs at 10 (the default).
        return Some(50 * t as u64);
    }
    if t < 100 {
        // Grows 15% per step above 10.
        return Some((500.0 * 1.15f64.powi((t - 10) as i32)) as u64);
    }
    None
}

/// INFO's `used_memory`: the allocator's count less the unused slots of the keyspace's
/// tables ([`crate::keyspace::Db::spare_bytes`]: reserved, holding no key, as free slab
/// regions are to Redis's allocator). O(databases).
pub fn used_memory(srv: &Server) -> u64 {
    let spare: usize = srv.dbs.iter().map(|d| d.spare_bytes()).sum();
    (crate::alloc::allocated_bytes() as u64).saturating_sub(spare as u64)
}

/// Memory in `used_memory` that does not count against `maxmemory` (Redis's
/// `freeMemoryGetNotCountedMemory`): what the log holds for the writer (Redis's AOF buffer;
/// `Durability::memory_bytes`),
/// the replication buffer beyond the backlog (what replicas have not been sent yet), so
/// that neither a slow disk nor a slow replica makes the server evict keys, and the messages
/// recent evictions sent ([`Evictor::in_flight`]).
pub fn not_counted_for_evict(srv: &Server) -> u64 {
    let sent = srv.evictor.in_flight(now_us() as u64 / 1000);
    srv.log.memory_bytes() as u64 + crate::master::repl_memory(srv).not_counted + sent
}

/// Memory that counts against `maxmemory`: `used_memory` less what is not counted.
pub fn used_for_eviction(srv: &Server) -> u64 {
    used_memory(srv).saturating_sub(not_counted_for_evict(srv))
}

/// Evict keys while memory is over `maxmemory` (see the module docs).
pub fn perform_evictions(srv: &mut Server) -> Outcome {
    let max = srv.hot.maxmemory;
    if max == 0 {
        return Outcome::Ok;
    }
    // The allocator's count is an upper bound of the counted memory: under the limit with
    // it, nothing else is looked at.
    if crate::alloc::allocated_bytes() as u64 <= max {
        return Outcome::Ok;
    }
    // Redis's `isSafeToPerformEvictions`: a replica ignoring maxmemory leaves evictions to
    // its master; a paused server's dataset stays as it is.
    if (srv.is_replica() && srv.cfg.get_bool("replica-ignore-maxmemory"))
        || srv.pause.holds_writes(now_us() / 1000)
    {
        return Outcome::Ok;
    }
    // The replication buffer does not change while keys are evicted (the stream is fed when
    // the round's log is submitted); the log's memory grows by their DELs.
    let repl_not_counted = crate::master::repl_memory(srv).not_counted;
    let sent = srv.evictor.in_flight(now_us() as u64 / 1000);
    let counted = |srv: &Server, spare: u64| {
        (crate::alloc::allocated_bytes() as u64)
            .saturating_sub(spare)
            .saturating_sub(srv.log.memory_bytes() as u64)
            .saturating_sub(repl_not_counted)
            .saturating_sub(sent)
    };
    // The unused slots, added up once; an eviction changes only its database's.
    let spare: u64 = srv.dbs.iter().map(|d| d.spare_bytes() as u64).sum();
    let over = counted(srv, spare);
    if over <= max {
        return Outcome::Ok;
    }
    // As Redis: what to free is measured once, and each eviction counts only the memory its
    // deletion gave back. The DELs, notifications and client-tracking invalidation messages
    // an eviction sends take memory too, until written out; re-measuring after each one
    // would count them as memory still to free, and with enough tracking clients every
    // eviction would pay for the next until the keyspace is drained (Redis's "client
    // tracking don't cause eviction feedback loop").
    let to_free = over - max;
    let mut freed = 0u64;
    let policy = srv.hot.maxmemory_policy;
    if policy == Policy::NoEviction {
        return Outcome::Fail;
    }
    let start = now_us();
    let limit = time_limit_us(srv.hot.maxmemory_eviction_tenacity);
    let mut n = 0u32;
    while freed < to_free {
        // Nothing left the policy may take: over the limit still, whatever was evicted (Redis
        // answers EVICT_FAIL then too, and `denyoom` commands are refused).
        let Some((db, key)) = pick(srv, policy) else {
            return Outcome::Fail;
        };
        freed += srv.evict_key(db, &key);
        n += 1;
        // Check the clock every 16 evictions, as Redis does; out of time, the execution loop
        // goes on at once ([`eviction_proc`]).
        if n.is_multiple_of(16) {
            if let Some(l) = limit {
                if now_us().saturating_sub(start) as u64 > l {
                    srv.evictor.running = true;
                    return Outcome::Running;
                }
            }
        }
    }
    Outcome::Ok
}

/// Go on with evictions a call left over its time budget (Redis's `evictionTimeProc`, a timer
/// of 0 ms): called by the execution loop every round while [`Evictor::running`], which it
/// clears once memory is under the limit or nothing more can be evicted.
pub fn eviction_proc(srv: &mut Server) {
    if srv.evictor.running && perform_evictions(srv) != Outcome::Running {
        srv.evictor.running = false;
    }
}

/// The next key to evict under `policy`, if any.
fn pick(srv: &mut Server, policy: Policy) -> Option<(usize, Bytes)> {
    let ndb = srv.dbs.len();
    let mut rng = rand::thread_rng();
    if policy.random() {
        for _ in 0..ndb {
            let db = srv.evictor.next_db % ndb;
            srv.evictor.next_db = srv.evictor.next_db.wrapping_add(1);
            let d = &srv.dbs[db];
            let key = if policy.volatile() {
                let n = d.expires.len();
                (n > 0).then(|| d.expires.get_index(rng.gen_range(0..n)).map(|(k, _)| k))
            } else {
                let n = d.keys.len();
                (n > 0).then(|| d.keys.get_index(rng.gen_range(0..n)).map(|(k, _)| k))
            };
            if let Some(Some(k)) = key {
                return Some((db, Bytes::copy_from_slice(k)));
            }
        }
        return None;
    }
    let samples = srv.hot.maxmemory_samples.clamp(1, 64) as usize;
    let lru_now = srv.lru_clock;
    let decay = srv.hot.lfu_decay_time;
    loop {
        let mut sampled_any = false;
        for db in 0..ndb {
            let d = &srv.dbs[db];
            let n = if policy.volatile() {
                d.expires.len()
            } else {
                d.keys.len()
            };
            if n == 0 {
                continue;
            }
            sampled_any = true;
            for _ in 0..samples.min(n) {
                let i = rng.gen_range(0..n);
                let (key, score) = if policy.volatile() {
                    let Some((k, &at)) = d.expires.get_index(i) else {
                        continue;
                    };
                    let score = match policy {
                        // Sooner expiry first.
                        Policy::VolatileTtl => u64::MAX - at.max(0) as u64,
                        _ => match d.keys.get(k) {
                            Some(o) => score_of(o, policy, lru_now, decay),
                            None => continue,
                        },
                    };
                    (k, score)
                } else {
                    let Some((k, o)) = d.keys.get_index(i) else {
                        continue;
                    };
                    (k, score_of(o, policy, lru_now, decay))
                };
                pool_insert(&mut srv.evictor.pool, score, db, key.as_ref());
            }
        }
        if !sampled_any {
            srv.evictor.pool.clear();
            return None;
        }
        // The best candidate still present (a pool entry may have been deleted meanwhile).
        while let Some((_, db, key)) = srv.evictor.pool.pop() {
            let d = &srv.dbs[db];
            let present = if policy.volatile() {
                d.expires.get(&key).is_some()
            } else {
                d.keys.contains_key(&key)
            };
            if present {
                return Some((db, key));
            }
        }
    }
}

/// Higher = evict first: idle time for LRU, 255 − (decayed) counter for LFU.
fn score_of(o: &Object, policy: Policy, lru_now: u32, decay_minutes: i64) -> u64 {
    match policy {
        Policy::AllKeysLfu | Policy::VolatileLfu => {
            255 - lfu_decayed(o, lru_now, decay_minutes) as u64
        }
        _ => (lru_now.wrapping_sub(o.lru()) & 0xFF_FFFF) as u64,
    }
}

/// Keep the [`POOL_SIZE`] best (score, db, key), sorted ascending by score; a key already in
/// the pool keeps one entry.
fn pool_insert(pool: &mut Vec<(u64, usize, Bytes)>, score: u64, db: usize, key: &[u8]) {
    if let Some(i) = pool
        .iter()
        .position(|(_, d, k)| *d == db && k.as_ref() == key)
    {
        pool[i].0 = score;
        pool.sort_by_key(|e| e.0);
        return;
    }
    if pool.len() >= POOL_SIZE {
        if pool[0].0 >= score {
            return;
        }
        pool.remove(0);
    }
    let at = pool.partition_point(|e| e.0 < score);
    pool.insert(at, (score, db, Bytes::copy_from_slice(key)));
}

/// The LFU counter after decay: one step per `lfu-decay-time` minutes since the last access
/// (the object's access time is kept in seconds in the LRU field).
pub fn lfu_decayed(o: &Object, lru_now: u32, decay_minutes: i64) -> u8 {
    let counter = o.freq();
    if decay_minutes <= 0 {
        return counter;
    }
    let elapsed_s = (lru_now.wrapping_sub(o.lru()) & 0xFF_FFFF) as i64;
    let periods = elapsed_s / 60 / decay_minutes;
    counter.saturating_sub(periods.min(255) as u8)
}

/// Redis's `updateLFU` on an access: decay, then a logarithmic increment.
pub fn touch_lfu(o: &mut Object, lru_now: u32, log_factor: i64, decay_minutes: i64) {
    let mut counter = lfu_decayed(o, lru_now, decay_minutes);
    if counter < 255 {
        let base = (counter as f64 - crate::keyspace::LFU_INIT_VAL as f64).max(0.0);
        let p = 1.0 / (base * log_factor.max(0) as f64 + 1.0);
        if rand::thread_rng().gen::<f64>() < p {
            counter += 1;
        }
    }
    o.set_lru(lru_now);
    o.set_freq(counter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_the_best_candidates_once_each() {
        let mut pool = Vec::new();
        for i in 0..40u64 {
            pool_insert(&mut pool, i % 20, 0, format!("k{}", i % 20).as_bytes());
        }
        assert_eq!(pool.len(), POOL_SIZE);
        let scores: Vec<u64> = pool.iter().map(|e| e.0).collect();
        assert_eq!(scores, (4..20).collect::<Vec<_>>());
        assert_eq!(pool.last().unwrap().2.as_ref(), b"k19");
    }

    #[test]
    fn tenacity_gives_redis_time_limits() {
        assert_eq!(time_limit_us(10), Some(500));
        assert_eq!(time_limit_us(0), Some(0));
        assert_eq!(time_limit_us(100), None);
        assert!(time_limit_us(11).unwrap() > 500);
    }
}
