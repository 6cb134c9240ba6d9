//! Serving clients while the data set loads (Redis's `loading` state).
//!
//! At start the listeners and the execution channel exist before the load (`startup.rs`), and
//! the connections are read while it runs; so during a replica's full-sync load and DEBUG
//! RELOAD / LOADAOF ([`while_serving`]). Every so often — every
//! [`strongbox_recovery::replay::PROGRESS_COMMANDS`] replayed commands, every
//! `loading-process-events-interval-bytes` of an RDB image — the loader calls [`serve`], which
//! handles what the connections queued meanwhile, as Redis's `processEventsWhileBlocked`:
//! connects and disconnects, and commands, each answered `-LOADING Redis is loading the
//! dataset in memory` unless its command has Redis's `loading` flag (INFO, AUTH, HELLO, CLIENT,
//! CONFIG, SELECT, ECHO, SHUTDOWN …; not PING), which runs against the partly loaded server as
//! in Redis. A SIGTERM/SIGINT or SHUTDOWN stops the load ([`ABORTED`]) and the server exits
//! without saving; the load only reads the files until it ends (the torn-tail cut and the
//! writer's attachment come after the last command), so nothing is half written.
//!
//! Nothing here is on the path of a command once the load is over: `Server::loading` is None
//! and the execution loop never looks at it (the check is made before `process_command`).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{Client, Msg};
use crate::cmd::{flags, CommandSpec};
use crate::exec::Server;
use crate::resp::Reply;

/// Redis's `shared.loadingerr`.
pub const LOADING_ERR: &str = "LOADING Redis is loading the dataset in memory";

/// The error a load returns when a shutdown stopped it (SIGTERM, SIGINT, SHUTDOWN).
pub const ABORTED: &str = "the load was stopped by a shutdown request";

/// Clients are served at least this often while an image loads, however large its entries.
const SERVE_INTERVAL_MAX: Duration = Duration::from_millis(100);

/// [`progress_in_image`] reads the clock once per this many calls.
const CLOCK_EVERY: u32 = 64;

/// Messages handled per call of [`serve`] (the rest wait for the next call).
const SERVE_MESSAGES_MAX: usize = 4096;

/// The load under way: what INFO persistence shows (`loading_*`) and the pacing of [`serve`].
pub struct Loading {
    /// `loading_start_time` (unix seconds).
    pub start_s: i64,
    /// `loading_total_bytes`: the files to load.
    pub total_bytes: u64,
    /// `loading_loaded_bytes`.
    pub loaded_bytes: u64,
    /// Bytes of the files already loaded whole (the current one's offsets add to it).
    files_done_bytes: u64,
    /// `loading-process-events-interval-bytes`.
    interval_bytes: u64,
    /// [`progress_in_image`] serves once `loaded_bytes` reaches this (the next multiple of
    /// `interval_bytes` after the last [`serve`]).
    serve_at_bytes: u64,
    served_at: Instant,
    /// Calls of [`progress_in_image`] (see [`CLOCK_EVERY`]).
    calls: u32,
    /// `key-load-delay` (µs per key or command; negative: 1 µs with probability 1/-n).
    pub key_delay_us: i64,
    /// A shutdown was asked for: the load stops at the next [`serve`].
    pub aborted: bool,
    /// A shutdown was already under way when the load started (a DEBUG RELOAD while it waits
    /// for replicas): that one is not a reason to stop the load.
    shutdown_before: bool,
    /// For the pseudo-random sleeps of a negative `key-load-delay`.
    rng: u64,
}

impl Loading {
    pub fn new(srv: &Server, total_bytes: u64) -> Box<Loading> {
        Box::new(Loading {
            start_s: crate::util::now_ms() / 1000,
            total_bytes,
            loaded_bytes: 0,
            files_done_bytes: 0,
            interval_bytes: srv
                .cfg
                .get_i64("loading-process-events-interval-bytes")
                .max(1024) as u64,
            serve_at_bytes: 0,
            served_at: Instant::now(),
            calls: 0,
            key_delay_us: srv.cfg.get_i64("key-load-delay"),
            aborted: false,
            shutdown_before: srv.shutdown.is_some(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ crate::util::now_ms() as u64,
        })
    }

    /// INFO persistence's `loading_*` fields, as Redis 7.0's genRedisInfoString.
    pub fn info_fields(&self) -> Vec<(String, String)> {
        let elapsed = (crate::util::now_ms() / 1000 - self.start_s).max(0) as u64;
        let (perc, remaining) = if self.total_bytes > 0 {
            (
                self.loaded_bytes as f64 / self.total_bytes as f64 * 100.0,
                self.total_bytes.saturating_sub(self.loaded_bytes),
            )
        } else {
            (0.0, 1)
        };
        let eta = if elapsed == 0 {
            1
        } else {
            elapsed.saturating_mul(remaining) / (self.loaded_bytes + 1)
        };
        let f = |k: &str, v: String| (k.to_string(), v);
        vec![
            f("loading_start_time", self.start_s.to_string()),
            f("loading_total_bytes", self.total_bytes.to_string()),
            f("loading_rdb_used_mem", "0".into()),
            f("loading_loaded_bytes", self.loaded_bytes.to_string()),
            f("loading_loaded_perc", format!("{perc:.2}")),
            f("loading_eta_seconds", eta.to_string()),
        ]
    }

    /// Redis's debugDelay: sleep `key-load-delay` µs (negative: 1 µs once in -n calls).
    fn key_delay(&mut self) {
        let us = self.key_delay_us;
        let sleep = if us < 0 {
            // xorshift64: cheap, and good enough to spread 1 µs sleeps.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            u64::from(self.rng.is_multiple_of(us.unsigned_abs()))
        } else {
            us as u64
        };
        if sleep > 0 {
            std::thread::sleep(Duration::from_micros(sleep));
        }
    }
}

/// Called once per key or replayed command while loading: `key-load-delay`.
#[inline]
pub fn key_delay(srv: &mut Server) {
    if let Some(l) = srv.loading.as_mut() {
        if l.key_delay_us != 0 {
            l.key_delay();
        }
    }
}

/// The replay is `offset` bytes into the file being loaded: note it and serve the clients.
/// Err([`ABORTED`]) when a shutdown was asked for.
pub fn progress_in_file(srv: &mut Server, offset: u64) -> Result<(), String> {
    let Some(l) = srv.loading.as_mut() else {
        return Ok(());
    };
    l.loaded_bytes = l.files_done_bytes + offset;
    serve(srv)
}

/// An RDB image is `offset` bytes in: serve the clients once per
/// `loading-process-events-interval-bytes` (or [`SERVE_INTERVAL_MAX`]), as Redis's
/// rdbLoadProgressCallback.
pub fn progress_in_image(srv: &mut Server, offset: u64) -> Result<(), String> {
    let Some(l) = srv.loading.as_mut() else {
        return Ok(());
    };
    l.loaded_bytes = l.files_done_bytes + offset;
    if l.loaded_bytes < l.serve_at_bytes {
        // Large entries, a slow disk: still serve now and then (the clock is read once per
        // [`CLOCK_EVERY`] calls).
        l.calls = l.calls.wrapping_add(1);
        if !l.calls.is_multiple_of(CLOCK_EVERY) || l.served_at.elapsed() < SERVE_INTERVAL_MAX {
            return Ok(());
        }
    }
    serve(srv)
}

/// A file was loaded whole.
pub fn file_done(srv: &mut Server, len: u64) {
    if let Some(l) = srv.loading.as_mut() {
        l.files_done_bytes += len;
        l.loaded_bytes = l.files_done_bytes;
    }
}

/// Run `load` (a replica's sync, DEBUG RELOAD, DEBUG LOADAOF: `total` bytes to load) with
/// the clients served meanwhile. A shutdown asked for meanwhile (which stops the load) makes
/// the server exit without saving the half-loaded data set, as Redis: no save, no waiting for
/// replicas or for a first AOF base (the files were only read, or the log was stopped first).
pub fn while_serving<T>(srv: &mut Server, total: u64, load: impl FnOnce(&mut Server) -> T) -> T {
    srv.loading = Some(Loading::new(srv, total));
    let r = load(srv);
    if srv.loading.take().is_some_and(|l| l.aborted) {
        srv.shutdown = Some(crate::exec::ShutdownMode::NoSave);
        srv.shutdown_now = true;
        srv.shutdown_force = true;
    }
    r
}

/// Handle what the connections queued (Redis's processEventsWhileBlocked during a load).
/// Err([`ABORTED`]) once a shutdown was asked for.
pub fn serve(srv: &mut Server) -> Result<(), String> {
    if let Some(l) = srv.loading.as_mut() {
        l.served_at = Instant::now();
        l.serve_at_bytes = (l.loaded_bytes / l.interval_bytes + 1).saturating_mul(l.interval_bytes);
    }
    // A command may be running this load (DEBUG RELOAD): its state comes back afterwards.
    let current = srv.current_client;
    let call_end = srv.call_end_us.take();
    if let Some(rx) = srv.exec_rx.take() {
        let mut touched = Vec::new();
        for _ in 0..SERVE_MESSAGES_MAX {
            let Ok(m) = rx.try_recv() else { break };
            let running = match &m {
                // A client whose command runs this load (none at start).
                Msg::Commands { id, .. }
                | Msg::ProtocolError { id, .. }
                | Msg::Disconnect { id } => !srv.clients.contains_key(id),
                _ => false,
            };
            if running {
                srv.busy_deferred.push_back(m);
                continue;
            }
            match m {
                Msg::Commands { id, cmds } => commands(srv, id, cmds),
                Msg::Signal { .. } => {
                    tracing::warn!("Received shutdown signal during loading, scheduling shutdown.");
                    abort(srv);
                }
                // The replication link waits for the end of the load.
                m @ Msg::Replica(_) => srv.busy_deferred.push_back(m),
                m => crate::exec::handle_msg(srv, m, &mut touched),
            }
        }
        srv.exec_rx = Some(rx);
    }
    srv.current_client = current;
    srv.call_end_us = call_end;
    // SHUTDOWN (it has the `loading` flag): as Redis, the server exits without saving.
    if srv.shutdown.is_some() && srv.loading.as_ref().is_some_and(|l| !l.shutdown_before) {
        abort(srv);
    }
    match srv.loading.as_ref() {
        Some(l) if l.aborted => Err(ABORTED.to_string()),
        _ => Ok(()),
    }
}

fn abort(srv: &mut Server) {
    if let Some(l) = srv.loading.as_mut() {
        l.aborted = true;
    }
}

/// A batch of one client's commands, as the execution loop's `handle_msg` runs it, each
/// command first checked for [`loading_rejects`].
fn commands(srv: &mut Server, id: crate::client::ClientId, cmds: Vec<Vec<Bytes>>) {
    let Some(mut c) = srv.clients.remove(&id) else {
        return;
    };
    srv.call_end_us = None;
    for argv in cmds {
        if c.closed || c.close_after_reply {
            break;
        }
        if argv.is_empty() {
            continue;
        }
        match loading_rejects(srv, &c, &argv) {
            Some(spec) => reject(srv, &mut c, spec, &argv),
            None => crate::exec::process_command(srv, &mut c, argv),
        }
    }
    srv.call_end_us = None;
    srv.current_client = 0;
    // Nothing it answers waits for the log (nothing is logged while loading).
    c.flush(0, true);
    crate::obuf::check(&mut c, &srv.hot.obuf, crate::util::now_ms());
    if c.closed {
        srv.forget_client(&mut c);
    } else {
        srv.clients.insert(id, c);
    }
}

/// The command `argv` must be answered `-LOADING`: it exists, passes the checks Redis's
/// processCommand makes before its loading check (arity, authentication, ACL, the pub/sub
/// context, a read-only or stale replica — `process_command` answers those), and has no
/// `loading` flag (for EXEC: or a queued command has none). Also refused, unlike Redis, DEBUG
/// RELOAD, LOADAOF and POPULATE (Redis would save or load the half-loaded data set). CONFIG
/// SET refuses Redis's DENY_LOADING_CONFIG options itself.
fn loading_rejects(srv: &Server, c: &Client, argv: &[Bytes]) -> Option<&'static CommandSpec> {
    if c.blocked.is_some() {
        return None;
    }
    let name = crate::exec::resolve_renamed(&argv[0])?;
    let spec = crate::exec::lookup_command(&name)?;
    let n = argv.len() as i32;
    let arity_ok = |arity: i32| (arity > 0 && n == arity) || (arity < 0 && n >= -arity);
    if !arity_ok(spec.arity) {
        return None;
    }
    // An unknown subcommand, or a subcommand's arity: Redis's lookup refuses those first.
    if !spec.subcommands.is_empty() && argv.len() >= 2 {
        let sub = spec
            .subcommands
            .iter()
            .find(|(name, _, _)| name.as_bytes().eq_ignore_ascii_case(&argv[1]));
        if !sub.is_some_and(|&(_, arity, _)| arity_ok(arity)) {
            return None;
        }
    }
    if !c.authenticated && !spec.has(flags::NO_AUTH) {
        return None;
    }
    if c.multi.is_some() && matches!(spec.name, "save" | "shutdown" | "sync" | "psync") {
        return None;
    }
    if !c.user.superuser && c.user.check(spec, argv).is_err() {
        return None;
    }
    let f = crate::exec::effective_flags(spec, argv);
    if c.in_pubsub_context() && f & flags::SUBSCRIBED_OK == 0 {
        return None;
    }
    if f & flags::WRITE != 0 && crate::replica::refuse_write(srv, c) {
        return None;
    }
    if srv.replica.is_some() && crate::replica::stale_only(srv, c) && f & flags::STALE == 0 {
        return None;
    }
    let denied = f & flags::LOADING == 0
        || crate::exec::exec_queues_any(c, spec, |s, a| {
            crate::exec::effective_flags(s, a) & flags::LOADING == 0
        })
        || (spec.name == "debug" && !debug_allowed(&argv[1]));
    denied.then_some(spec)
}

/// DEBUG subcommands that may run while loading: all but those that rebuild the dataset
/// (RELOAD and LOADAOF would load again from inside the load, POPULATE writes to it).
fn debug_allowed(sub: &[u8]) -> bool {
    ![&b"reload"[..], b"loadaof", b"populate"]
        .iter()
        .any(|s| sub.eq_ignore_ascii_case(s))
}

/// Answer `-LOADING` as Redis's rejectCommand: the transaction is flagged, EXEC discards it.
fn reject(srv: &mut Server, c: &mut Client, spec: &'static CommandSpec, argv: &[Bytes]) {
    let r = crate::exec::reject_reply(srv, c, spec, argv, Reply::err(LOADING_ERR));
    c.reply(r);
}
