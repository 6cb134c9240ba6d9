//! `Ctx`: what a command handler sees — the server state, the calling client, the time of the
//! call, and the hooks every write must use (dirty counting, propagation to the log, WATCH
//! invalidation, keyspace notifications, readiness for blocked clients).

use bytes::Bytes;

use crate::client::{Blocked, Client};
use crate::cmd::err;
use crate::exec::Server;
use crate::keyspace::{Db, Object, Value};
use crate::resp::Reply;

/// Keyspace notification classes (`notify-keyspace-events`).
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0; // K
    pub const KEYEVENT: u32 = 1 << 1; // E
    pub const GENERIC: u32 = 1 << 2; // g
    pub const STRING: u32 = 1 << 3; // $
    pub const LIST: u32 = 1 << 4; // l
    pub const SET: u32 = 1 << 5; // s
    pub const HASH: u32 = 1 << 6; // h
    pub const ZSET: u32 = 1 << 7; // z
    pub const EXPIRED: u32 = 1 << 8; // x
    pub const EVICTED: u32 = 1 << 9; // e
    pub const STREAM: u32 = 1 << 10; // t
    pub const KEY_MISS: u32 = 1 << 11; // m
    pub const NEW: u32 = 1 << 12; // n
    pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM;

    /// Parse the flags string; None if it has an unknown character.
    pub fn parse(s: &str) -> Option<u32> {
        let mut f = 0;
        for c in s.chars() {
            f |= match c {
                'A' => ALL,
                'g' => GENERIC,
                '$' => STRING,
                'l' => LIST,
                's' => SET,
                'h' => HASH,
                'z' => ZSET,
                'x' => EXPIRED,
                'e' => EVICTED,
                'K' => KEYSPACE,
                'E' => KEYEVENT,
                't' => STREAM,
                'm' => KEY_MISS,
                'n' => NEW,
                _ => return None,
            };
        }
        Some(f)
    }

    /// Format flags back as Redis does for CONFIG GET.
    pub fn format(f: u32) -> String {
        let mut s = String::new();
        if f & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
            ] {
                if f & bit != 0 {
                    s.push(c);
                }
            }
        }
        if f & KEYSPACE != 0 {
            s.push('K');
        }
        if f & KEYEVENT != 0 {
            s.push('E');
        }
        if f & KEY_MISS != 0 {
            s.push('m');
        }
        if f & NEW != 0 {
            s.push('n');
        }
        s
    }
}

pub struct Ctx<'a> {
    pub srv: &'a mut Server,
    pub client: &'a mut Client,
    /// Unix ms at the start of the command (one clock per command, as Redis's `mstime` cache).
    pub now_ms: i64,
    pub(crate) dirty: u64,
    /// Commands to log instead of the command itself (None = log argv when dirty).
    pub(crate) propagate: Option<Vec<Vec<Bytes>>>,
    /// Set by a blocking command that could not be served.
    pub(crate) blocked: Option<Blocked>,
    /// True while running inside EXEC (blocking commands must not block).
    pub in_exec: bool,
    /// True while replaying the log at start (no propagation, no notifications to clients).
    pub loading: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(srv: &'a mut Server, client: &'a mut Client, now_ms: i64) -> Ctx<'a> {
        Ctx {
            srv,
            client,
            now_ms,
            dirty: 0,
            propagate: None,
            blocked: None,
            in_exec: false,
            loading: false,
        }
    }

    pub fn db_index(&self) -> usize {
        self.client.db
    }

    pub fn db(&mut self) -> &mut Db {
        &mut self.srv.dbs[self.client.db]
    }

    /// Count `n` changes to the dataset (Redis's `server.dirty++`).
    pub fn dirty(&mut self, n: u64) {
        self.dirty += n;
    }

    /// Log `argv` (executed in the client's current db) instead of the command as received.
    /// Call several times to log several commands; call with nothing to log nothing
    /// (see [`Ctx::propagate_nothing`]).
    pub fn propagate(&mut self, argv: Vec<Bytes>) {
        self.propagate.get_or_insert_with(Vec::new).push(argv);
    }

    /// The command changed the dataset but must not be logged as itself and has nothing else to
    /// log.
    pub fn propagate_nothing(&mut self) {
        self.propagate.get_or_insert_with(Vec::new);
    }

    /// Delete `key` if its TTL has passed: removes it, logs `DEL`, notifies `expired`, touches
    /// WATCHers. Returns true if it was expired.
    pub fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        let db = self.client.db;
        if self.srv.expiry_held(self.now_ms) {
            // A replica never deletes on its own (the master's DEL follows), nor a server whose
            // writes CLIENT PAUSE holds; to clients a key past its TTL is logically gone, to
            // the master it is still there.
            return !self.client.is_master
                && !self.loading
                && self.srv.dbs[db].is_expired(key, self.now_ms);
        }
        expire_if_needed(self.srv, db, key, self.now_ms, self.loading)
    }

    /// Read lookup: expires lazily, updates the LRU clock. None if missing.
    pub fn lookup(&mut self, key: &[u8]) -> Option<&Object> {
        self.lookup_mut(key).map(|o| &*o)
    }

    /// Write lookup: expires lazily. None if missing.
    pub fn lookup_mut(&mut self, key: &[u8]) -> Option<&mut Object> {
        if self.expire_if_needed(key) && self.srv.expiry_held(self.now_ms) {
            return None;
        }
        let lru = self.srv.lru_clock;
        let no_touch = self.client.no_touch;
        let db = self.client.db;
        let lfu = self.srv.hot.maxmemory_policy.is_lfu();
        let (factor, decay) = (self.srv.hot.lfu_log_factor, self.srv.hot.lfu_decay_time);
        let o = self.srv.dbs[db].keys.get_mut(key)?;
        if !no_touch {
            if lfu {
                crate::evict::touch_lfu(o, lru, factor, decay);
            } else {
                o.set_lru(lru);
            }
        }
        Some(o)
    }

    /// Read lookup that leaves the access time alone (Redis's LOOKUP_NOTOUCH: TYPE, TTL,
    /// EXISTS, OBJECT): expires lazily. None if missing.
    pub fn lookup_no_touch(&mut self, key: &[u8]) -> Option<&Object> {
        if self.expire_if_needed(key) && self.srv.expiry_held(self.now_ms) {
            return None;
        }
        let db = self.client.db;
        self.srv.dbs[db].keys.get(key)
    }

    /// True if the key exists (after lazy expiry); leaves the access time alone.
    pub fn exists(&mut self, key: &[u8]) -> bool {
        if self.expire_if_needed(key) && self.srv.expiry_held(self.now_ms) {
            return false;
        }
        let db = self.client.db;
        self.srv.dbs[db].keys.contains_key(key)
    }

    /// Get a string value: Ok(None) if missing, Err(WRONGTYPE) if another type.
    pub fn get_string(&mut self, key: &[u8]) -> Result<Option<Bytes>, Reply> {
        match self.lookup(key) {
            None => Ok(None),
            Some(o) => match &o.value {
                Value::Str(s) => Ok(Some(s.to_bytes())),
                _ => Err(Reply::err(err::WRONGTYPE)),
            },
        }
    }

    /// GET's reply: Nil if missing, Err(WRONGTYPE) if another type; never copies to the heap.
    #[inline]
    pub fn get_string_reply(&mut self, key: &[u8]) -> Result<Reply, Reply> {
        match self.lookup(key) {
            None => Ok(Reply::Nil),
            Some(o) => match &o.value {
                Value::Str(s) => Ok(Reply::bulk_of(s)),
                _ => Err(Reply::err(err::WRONGTYPE)),
            },
        }
    }

    /// Store a new object for `key`, replacing any value and clearing the TTL (SET semantics).
    /// The keyspace stores its own copy of `key`.
    pub fn set_key(&mut self, key: impl AsRef<[u8]>, value: Value) {
        let key = key.as_ref();
        let lru = self.srv.lru_clock;
        let db = self.client.db;
        // As Redis's dbAdd: a list, zset or stream in the key's place may serve blocked clients.
        let wakes = matches!(value, Value::List(_) | Value::ZSet(_) | Value::Stream(_));
        let old = self.srv.dbs[db].insert(key, Object::new(value, lru));
        if old.is_none() {
            self.notify(notify::NEW, "new", key);
        }
        self.stream_gone(old.as_ref(), key);
        if wakes {
            self.ready(key);
        }
        self.modified(key);
    }

    /// A stream was deleted or overwritten: clients blocked on it (XREADGROUP) must be woken
    /// to answer as Redis does (signalDeletedKeyAsReady).
    fn stream_gone(&mut self, old: Option<&Object>, key: &[u8]) {
        if matches!(old.map(|o| &o.value), Some(Value::Stream(_))) {
            self.ready(key);
        }
    }

    /// Store a new object for `key` keeping its TTL.
    pub fn set_key_keep_ttl(&mut self, key: impl AsRef<[u8]>, value: Value) {
        let key = key.as_ref();
        let lru = self.srv.lru_clock;
        let db = self.client.db;
        if self.srv.dbs[db]
            .insert_keep_ttl(key, Object::new(value, lru))
            .is_none()
        {
            self.notify(notify::NEW, "new", key);
        }
        self.modified(key);
    }

    /// Delete `key` (no notification: the caller notifies with its own event name).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let db = self.client.db;
        match self.srv.dbs[db].remove(key) {
            Some(old) => {
                self.stream_gone(Some(&old), key);
                self.modified(key);
                true
            }
            None => false,
        }
    }

    /// Redis's `signalModifiedKey`: invalidates WATCH on `key` in the current db.
    pub fn modified(&mut self, key: &[u8]) {
        let db = self.client.db;
        self.srv.touch_watched(db, key, Some(self.client));
    }

    /// Same, for a key in another database (MOVE, COPY … DB).
    pub fn modified_in(&mut self, db: usize, key: &[u8]) {
        self.srv.touch_watched(db, key, Some(self.client));
    }

    /// A list/zset key received elements: clients blocked on it may be served.
    pub fn ready(&mut self, key: &[u8]) {
        let db = self.client.db;
        self.srv.signal_ready(db, key);
    }

    /// Publish a keyspace notification of `class` for `event` on `key` (current db).
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        let db = self.client.db;
        self.notify_in(db, class, event, key);
    }

    pub fn notify_in(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        if self.loading {
            return;
        }
        self.srv
            .notify_keyspace_event(Some(self.client), db, class, event, key);
    }

    /// Block the client on `keys` until one is ready or the deadline passes. Inside MULTI/EXEC
    /// (or while loading) this does not block and returns `timeout_reply` at once.
    pub fn block_on(
        &mut self,
        keys: Vec<Bytes>,
        deadline_ms: Option<i64>,
        argv: &[Bytes],
        timeout_reply: Reply,
    ) -> Reply {
        if self.in_exec || self.loading {
            return timeout_reply;
        }
        self.blocked = Some(Blocked {
            db: self.client.db,
            keys,
            deadline_ms,
            argv: argv.to_vec(),
            timeout_reply,
            postponed: false,
        });
        Reply::Nil
    }

    /// Parse a blocking timeout in seconds (float allowed) into an absolute deadline
    /// (None = block forever), with Redis's error texts.
    pub fn parse_timeout(&self, arg: &[u8]) -> Result<Option<i64>, Reply> {
        let Some(secs) = crate::util::parse_f64(arg) else {
            return Err(Reply::err("ERR timeout is not a float or out of range"));
        };
        // Redis 7.0 computes `(long long) ceill(secs * 1000.0)`; on x86 an out-of-range value
        // (inf, 1e100) becomes LLONG_MIN, hence "timeout is negative".
        let ms = (secs * 1000.0).ceil();
        let tval: i64 =
            if ms.is_finite() && ms > -9.223_372_036_854_775e18 && ms < 9.223_372_036_854_775e18 {
                ms as i64
            } else {
                i64::MIN
            };
        if tval < 0 {
            return Err(Reply::err("ERR timeout is negative"));
        }
        if tval == 0 {
            return Ok(None);
        }
        if tval > i64::MAX - self.now_ms {
            return Err(Reply::err("ERR timeout is out of range"));
        }
        Ok(Some(self.now_ms + tval))
    }

    /// Encoding thresholds from the live config (hash-max-listpack-entries, …).
    pub fn cfg_i64(&self, name: &str) -> i64 {
        self.srv.cfg_i64(name)
    }
}

/// Lazy expiration, shared by `Ctx` and the active-expire cycle.
pub fn expire_if_needed(
    srv: &mut Server,
    db: usize,
    key: &[u8],
    now_ms: i64,
    loading: bool,
) -> bool {
    if loading {
        // While loading, keys are not expired: the log records the DEL when it happened.
        return false;
    }
    if srv.expiry_held(now_ms) {
        // A replica's keys are expired by its master's DELs; a paused server's after the pause.
        return false;
    }
    if !srv.dbs[db].is_expired(key, now_ms) {
        return false;
    }
    if srv.loading.is_some() {
        // A command served while the data set loads (`loading.rs`) deletes nothing: the
        // tables may hold entries not indexed yet (a bulk RDB load). Checked here, where a key
        // past its TTL was found, to cost nothing on the path of every lookup.
        return false;
    }
    srv.expire_key(db, key);
    true
}
