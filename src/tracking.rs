//! Client-side caching: CLIENT TRACKING and its invalidation messages, as Redis 7.0's
//! `tracking.c`.
//!
//! Default mode: every key a tracking client reads (a read-only command's key arguments; for a
//! script that ran a read-only command, the script's declared keys) is remembered in one table
//! of key → client ids, shared by all databases as in Redis. A change to the key
//! (`Server::touch_watched`, Redis's `signalModifiedKey`: commands, expirations, evictions)
//! drops the key from the table and sends each remembered client one invalidation. FLUSHDB and
//! FLUSHALL send every tracking client a null ("everything") and empty the table. BCAST mode
//! remembers nothing: keys changed under a registered prefix are collected during the round and
//! sent, one message per prefix, at its end (Redis's `beforeSleep`).
//!
//! Delivery reuses the pub/sub path: a message is a push queued in the receiving client's `out`,
//! flushed with its other output in order, so an invalidation always precedes any later reply of
//! that client (which would show the new value). A client whose command is running is out of
//! `Server::clients`: its own invalidations wait in `Tracking::pending` and are pushed after the
//! command's reply (after EXEC's or EVAL's whole reply), as Redis's
//! `trackingHandlePendingKeyInvalidations`; those produced before the command runs (evictions,
//! the table limit) are pushed before its reply.
//!
//! The receiver: the tracking client itself in RESP3 (`>2 invalidate [keys]`), or its REDIRECT
//! client — as a push in RESP3, as a `message` on `__redis__:invalidate` in RESP2 when it is
//! subscribed to something, else nothing. A RESP2 client without REDIRECT gets nothing. A
//! redirect client that is gone marks the redirect broken and, in RESP3, the tracking client gets
//! `>2 tracking-redir-broken <id>`.
//!
//! Cost when nobody tracks: the read path tests `Client::tracking`; the write path tests whether
//! the table and the prefix table are empty; the command path tests `Tracking::clients` and the
//! pending list (`exec::process_command`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use crate::client::{Client, ClientId};
use crate::cmd::CommandSpec;
use crate::exec::{FxBuild, Server};
use crate::resp::Reply;

/// The pub/sub channel a RESP2 redirect client receives invalidations on.
pub const INVALIDATE_CHANNEL: &str = "__redis__:invalidate";

/// Keys evicted from the table per pass when it is over `tracking-table-max-keys`, times the
/// number of passes in a row that did not bring it under (Redis's effort).
const LIMIT_EFFORT_KEYS: u64 = 100;

/// A client's tracking options (meaningful while `Client::tracking` is on).
#[derive(Default, Debug, Clone)]
pub struct ClientTracking {
    /// REDIRECT target (0: none).
    pub redirect: ClientId,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING YES (OPTIN) / NO (OPTOUT) given for the next command or transaction.
    pub caching: bool,
    /// The command before the current one was CLIENT (CACHING survives CLIENT commands).
    pub after_client_cmd: bool,
    /// The redirect client was gone when a message was due.
    pub broken_redirect: bool,
    /// BCAST prefixes, sorted as Redis lists them.
    pub prefixes: BTreeSet<Bytes>,
}

/// One BCAST prefix: the clients registered for it and the keys under it changed this round,
/// each with the client that changed it last (None: an expiration or eviction), for NOLOOP.
#[derive(Default)]
struct Bcast {
    keys: BTreeMap<Bytes, Option<ClientId>>,
    clients: BTreeSet<ClientId>,
}

/// What an invalidation carries.
#[derive(Clone, Debug)]
enum Payload {
    /// Default mode: one key.
    Key(Bytes),
    /// BCAST: the keys of one prefix.
    Keys(Vec<Bytes>),
    /// FLUSHDB/FLUSHALL: a null, in the tracking client's protocol (Redis sends its
    /// `shared.null[c->resp]` bytes even to a redirect client of the other protocol).
    Null,
    /// That null's bytes once the tracking client's protocol is known.
    RawNull(Bytes),
}

/// A message for the client whose command is running (not in `Server::clients`).
struct Pending {
    to: ClientId,
    payload: Payload,
    /// `to` is already the receiver (a redirect target); else it is the tracking client.
    redirected: bool,
    /// Check, when sending, that `to` still tracks in default mode (the check could not be
    /// made when the change happened: the client was not at hand)…
    check: bool,
    /// … and without NOLOOP, when it was the client running the command (Redis's
    /// `server.current_client`).
    check_noloop: bool,
}

#[derive(Default)]
pub struct Tracking {
    /// Clients with tracking on (INFO tracking_clients).
    pub clients: usize,
    /// key → ids of the clients that may cache it, sorted.
    table: IndexMap<Bytes, Vec<ClientId>>,
    /// Ids across the table (INFO tracking_total_items).
    items: u64,
    prefixes: BTreeMap<Bytes, Bcast>,
    /// Some prefix has changed keys to broadcast at the end of the round.
    bcast_due: bool,
    pending: Vec<Pending>,
    /// Passes in a row that left the table over its limit.
    limit_misses: u64,
    /// A script's read-only command ran for a tracking caller: the script's keys are
    /// remembered once the script returns.
    script_read: bool,
    /// While `exec::serve_blocked` runs a served client's command: the client whose command
    /// made its key ready (out of `Server::clients` too).
    pub outer_client: ClientId,
}

type Clients = HashMap<ClientId, Box<Client>, FxBuild>;

impl Tracking {
    /// Whether a key change has anything to do here (one branch on the write path).
    #[inline]
    pub fn watching_changes(&self) -> bool {
        !self.table.is_empty() || !self.prefixes.is_empty()
    }

    pub fn total_keys(&self) -> usize {
        self.table.len()
    }

    pub fn total_items(&self) -> u64 {
        self.items
    }

    pub fn total_prefixes(&self) -> usize {
        self.prefixes.len()
    }

    /// Messages are waiting for the running client.
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// The options of CLIENT TRACKING ON.
#[derive(Default)]
pub struct Options {
    pub redirect: ClientId,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Bytes>,
}

/// CLIENT TRACKING ON (options already checked): Redis's `enableTracking`. Prefixes add to
/// those already registered.
pub fn enable(srv: &mut Server, c: &mut Client, o: Options) {
    if !c.tracking {
        srv.tracking.clients += 1;
    }
    c.tracking = true;
    let t = &mut c.trk;
    t.broken_redirect = false;
    t.redirect = o.redirect;
    t.bcast = o.bcast;
    t.optin = o.optin;
    t.optout = o.optout;
    t.noloop = o.noloop;
    if o.bcast {
        if o.prefixes.is_empty() {
            add_prefix(srv, c, Bytes::new());
        }
        for p in o.prefixes {
            add_prefix(srv, c, p);
        }
    }
}

fn add_prefix(srv: &mut Server, c: &mut Client, p: Bytes) {
    let bs = srv.tracking.prefixes.entry(p.clone()).or_default();
    if bs.clients.insert(c.id) {
        c.trk.prefixes.insert(p);
    }
}

/// CLIENT TRACKING OFF, RESET, disconnection: Redis's `disableTracking`. The client's ids stay
/// in the table until their keys change (client ids are never reused).
pub fn disable(srv: &mut Server, c: &mut Client) {
    for p in std::mem::take(&mut c.trk.prefixes) {
        if let Some(bs) = srv.tracking.prefixes.get_mut(&p) {
            bs.clients.remove(&c.id);
            if bs.clients.is_empty() {
                srv.tracking.prefixes.remove(&p);
            }
        }
    }
    if c.tracking {
        srv.tracking.clients = srv.tracking.clients.saturating_sub(1);
        c.tracking = false;
        let prefixes = std::mem::take(&mut c.trk.prefixes);
        c.trk = ClientTracking {
            redirect: c.trk.redirect,
            prefixes,
            ..Default::default()
        };
    }
}

/// The first of `new` prefixes that overlaps an existing prefix of `c` or a later one of `new`
/// (one is a prefix of the other), as Redis's `checkPrefixCollisionsOrReply` words it. Redis
/// 7.0 refuses only an overlap found for the first new prefix: for a later one it sends the
/// error and then `+OK`, two replies to one command, with tracking enabled (fixed in 7.2);
/// here every overlap is refused with the error alone.
pub fn prefix_collision(c: &Client, new: &[Bytes]) -> Option<String> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    // Redis formats the prefixes with %s: a NUL byte ends them.
    let show = |b: &[u8]| {
        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = c.trk.prefixes.iter().find(|old| overlap(old, p)) {
            return Some(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                show(p),
                show(old)
            ));
        }
        if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
            return Some(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                show(p),
                show(q)
            ));
        }
    }
    None
}

/// At the start of a command: CLIENT CACHING lasts for the next command (or transaction) only,
/// CLIENT commands in between aside (Redis clears the flag in `resetClient`).
#[inline]
pub fn before_command(c: &mut Client, argv0: &[u8]) {
    if c.trk.caching {
        if c.multi.is_none() && !c.trk.after_client_cmd {
            c.trk.caching = false;
        } else {
            c.trk.after_client_cmd = argv0.eq_ignore_ascii_case(b"client");
        }
    }
}

/// After a command ran for a tracking client (`exec::call`): remember the keys of a read-only
/// command (Redis's `trackingRememberKeys`). A read-only command inside a script marks the
/// script, whose declared keys are remembered when it returns.
pub fn after_call(srv: &mut Server, c: &Client, spec: &CommandSpec, argv: &[Bytes]) {
    if c.trk.bcast {
        return;
    }
    let script = matches!(
        spec.name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    );
    if script {
        if std::mem::take(&mut srv.tracking.script_read) {
            remember_keys(srv, c, spec, argv);
        }
        return;
    }
    if !spec.has(crate::cmd::flags::READONLY) || spec.has(crate::cmd::flags::PUBSUB) {
        return;
    }
    if srv.monitor_in_script {
        srv.tracking.script_read = true;
        return;
    }
    remember_keys(srv, c, spec, argv);
}

fn remember_keys(srv: &mut Server, c: &Client, spec: &CommandSpec, argv: &[Bytes]) {
    let t = &c.trk;
    if (t.optin && !t.caching) || (t.optout && t.caching) {
        return;
    }
    let tr = &mut srv.tracking;
    spec.for_each_key(argv, |key| {
        let ids = match tr.table.get_mut(key) {
            Some(ids) => ids,
            None => tr.table.entry(Bytes::copy_from_slice(key)).or_default(),
        };
        if let Err(at) = ids.binary_search(&c.id) {
            ids.insert(at, c.id);
            tr.items += 1;
        }
    });
}

/// A key changed (Redis's `trackingInvalidateKey` from `signalModifiedKey`): schedule it for
/// the BCAST prefixes it falls under and invalidate it for the clients that read it.
/// `current` is the client whose command changed it (None: expiration, eviction).
pub fn key_changed(srv: &mut Server, key: &[u8], current: Option<&Client>) {
    if !srv.tracking.prefixes.is_empty() {
        let by = current.map(|c| c.id);
        for (p, bs) in srv.tracking.prefixes.iter_mut() {
            if key.starts_with(p) {
                bs.keys.insert(Bytes::copy_from_slice(key), by);
                srv.tracking.bcast_due = true;
            }
        }
    }
    invalidate_key(srv, key, current);
}

/// Drop `key` from the table and send its invalidation to every client remembered for it that
/// still tracks in default mode (a NOLOOP client not for changes its own command made).
fn invalidate_key(srv: &mut Server, key: &[u8], current: Option<&Client>) {
    let Some(ids) = srv.tracking.table.swap_remove(key) else {
        return;
    };
    srv.tracking.items -= ids.len() as u64;
    for id in ids {
        let payload = || Payload::Key(Bytes::copy_from_slice(key));
        if let Some(t) = srv.clients.get(&id) {
            if t.tracking && !t.trk.bcast {
                send(srv, None, id, &payload());
            }
        } else if let Some(t) = current.filter(|c| c.id == id) {
            // The client whose command made the change: NOLOOP skips it; else the message
            // follows its reply.
            if t.tracking && !t.trk.bcast && !t.trk.noloop {
                srv.tracking.pending.push(Pending {
                    to: id,
                    payload: payload(),
                    redirected: false,
                    check: false,
                    check_noloop: false,
                });
            }
        } else if is_running(srv, id) {
            srv.tracking.pending.push(Pending {
                to: id,
                payload: payload(),
                redirected: false,
                check: true,
                check_noloop: id == srv.current_client,
            });
        }
    }
}

/// Whether `id` is a client taken out of `Server::clients` because its command is running
/// (rather than one that is gone).
fn is_running(srv: &Server, id: ClientId) -> bool {
    id != 0
        && (id == srv.current_client || id == srv.tracking.outer_client)
        && !srv.clients.contains_key(&id)
}

/// FLUSHDB / FLUSHALL / DEBUG RELOAD (Redis's `trackingInvalidateKeysOnFlush`): a null to every
/// tracking client (BCAST ones too), the running one after its reply; the table is emptied.
pub fn flushed(srv: &mut Server, current: Option<&Client>) {
    if srv.tracking.clients > 0 {
        let ids: Vec<ClientId> = srv
            .clients
            .values()
            .filter(|c| c.tracking)
            .map(|c| c.id)
            .collect();
        for id in ids {
            send(srv, None, id, &Payload::Null);
        }
        if let Some(c) = current.filter(|c| c.tracking) {
            srv.tracking.pending.push(Pending {
                to: c.id,
                payload: Payload::Null,
                redirected: false,
                check: false,
                check_noloop: false,
            });
        }
    }
    srv.tracking.table = IndexMap::new();
    srv.tracking.items = 0;
}

/// Send the messages waiting for `c` (a running client), now that its reply is queued (or,
/// before its command, those of evictions). Those for other clients stay; any left at the end
/// of the round are for clients that are gone (`broadcast` drops them).
pub fn flush_pending(srv: &mut Server, c: &mut Client) {
    let all = std::mem::take(&mut srv.tracking.pending);
    let (mine, others): (Vec<Pending>, Vec<Pending>) = all.into_iter().partition(|p| p.to == c.id);
    srv.tracking.pending = others;
    for p in mine {
        if p.check && (!c.tracking || c.trk.bcast || (p.check_noloop && c.trk.noloop)) {
            continue;
        }
        if p.redirected {
            push_value(c, value_of(&p.payload), true);
        } else {
            send(srv, Some(c), p.to, &p.payload);
        }
    }
}

fn value_of(p: &Payload) -> Reply {
    match p {
        Payload::Key(k) => Reply::Array(vec![Reply::Bulk(k.clone())]),
        Payload::Keys(v) => Reply::Array(v.iter().cloned().map(Reply::Bulk).collect()),
        Payload::Null => Reply::Nil,
        Payload::RawNull(b) => Reply::Raw(b.clone()),
    }
}

/// Redis's `sendTrackingMessage`: deliver `payload` for the tracking client `target`, to itself
/// or to its REDIRECT client. `current` is the running client when at hand (it is not in
/// `Server::clients`); a receiver that is the running client but not at hand gets the message
/// after its reply.
fn send(srv: &mut Server, mut current: Option<&mut Client>, target: ClientId, payload: &Payload) {
    let (redirect, proto) = match pick(&mut srv.clients, current.as_deref_mut(), target) {
        Some(t) => (t.trk.redirect, t.proto),
        None => return,
    };
    // A null is sent in the tracking client's protocol whoever receives it (Redis's
    // `shared.null[c->resp]`).
    let resolved;
    let payload = match payload {
        Payload::Null => {
            let b: &'static [u8] = if proto > 2 { b"_\r\n" } else { b"$-1\r\n" };
            resolved = Payload::RawNull(Bytes::from_static(b));
            &resolved
        }
        p => p,
    };
    if redirect == 0 {
        if let Some(t) = pick(&mut srv.clients, current.as_deref_mut(), target) {
            push_value(t, value_of(payload), false);
        }
        return;
    }
    if let Some(r) = pick(&mut srv.clients, current.as_deref_mut(), redirect) {
        push_value(r, value_of(payload), true);
        return;
    }
    if is_running(srv, redirect) {
        // The redirect client is running a command: after its reply.
        srv.tracking.pending.push(Pending {
            to: redirect,
            payload: payload.clone(),
            redirected: true,
            check: false,
            check_noloop: false,
        });
        return;
    }
    if let Some(t) = pick(&mut srv.clients, current, target) {
        t.trk.broken_redirect = true;
        if t.proto > 2 {
            t.push(Reply::Push(vec![
                Reply::bulk_str("tracking-redir-broken"),
                Reply::Int(redirect as i64),
            ]));
        }
    }
}

/// Push an invalidation carrying `value` to receiver `c`.
fn push_value(c: &mut Client, value: Reply, redirected: bool) {
    if c.proto > 2 {
        c.push(Reply::Push(vec![Reply::bulk_str("invalidate"), value]));
    } else if redirected && c.sub_count() + c.ssubs.len() > 0 {
        c.push(Reply::Push(vec![
            Reply::bulk_str("message"),
            Reply::bulk_str(INVALIDATE_CHANNEL),
            value,
        ]));
    }
}

/// The client `id`: the running one if it is `current`, else from the map.
fn pick<'a>(
    clients: &'a mut Clients,
    current: Option<&'a mut Client>,
    id: ClientId,
) -> Option<&'a mut Client> {
    if let Some(c) = current {
        if c.id == id {
            return Some(c);
        }
    }
    clients.get_mut(&id).map(|b| &mut **b)
}

/// End of a round (Redis's `trackingBroadcastInvalidationMessages`, in `beforeSleep`): each
/// prefix's changed keys to its clients, one message per prefix; a NOLOOP client is not sent
/// the keys it changed last itself.
pub fn broadcast(srv: &mut Server) {
    if srv.tracking.has_pending() {
        // Every running client has been flushed: what is left was for clients that are gone.
        srv.tracking.pending.clear();
    }
    if !std::mem::take(&mut srv.tracking.bcast_due) {
        return;
    }
    let mut msgs: Vec<(ClientId, Payload)> = Vec::new();
    for bs in srv.tracking.prefixes.values_mut() {
        if bs.keys.is_empty() {
            continue;
        }
        let keys = std::mem::take(&mut bs.keys);
        let all: Vec<Bytes> = keys.keys().cloned().collect();
        for &id in &bs.clients {
            if srv.clients.get(&id).is_some_and(|c| c.trk.noloop) {
                let others: Vec<Bytes> = keys
                    .iter()
                    .filter(|(_, by)| **by != Some(id))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !others.is_empty() {
                    msgs.push((id, Payload::Keys(others)));
                }
            } else {
                msgs.push((id, Payload::Keys(all.clone())));
            }
        }
    }
    for (id, p) in msgs {
        send(srv, None, id, &p);
    }
}

/// Keep the table within `tracking-table-max-keys` (0: no limit), Redis's
/// `trackingLimitUsedSlots`: random keys are dropped, each invalidated for its clients as if it
/// had changed, up to 100 per pass times the passes in a row that ended still over the limit.
/// Runs before every command while clients track, and on the cron. `current`: the client about
/// to run a command (its messages go to the pending list, pushed before its reply).
pub fn enforce_limit(srv: &mut Server, current: Option<&Client>) {
    let max = srv.hot.tracking_table_max_keys;
    if max == 0 {
        return;
    }
    if srv.tracking.table.len() as u64 <= max {
        srv.tracking.limit_misses = 0;
        return;
    }
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut effort = LIMIT_EFFORT_KEYS.saturating_mul(srv.tracking.limit_misses + 1);
    while effort > 0 {
        effort -= 1;
        let n = srv.tracking.table.len();
        if n == 0 {
            break;
        }
        let Some((key, _)) = srv.tracking.table.get_index(rng.gen_range(0..n)) else {
            break;
        };
        let key = key.clone();
        invalidate_key(srv, &key, current);
        if srv.tracking.table.len() as u64 <= max {
            srv.tracking.limit_misses = 0;
            return;
        }
    }
    srv.tracking.limit_misses += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{call, server_and_client};

    fn on(srv: &mut Server, c: &mut Client, o: Options) {
        enable(srv, c, o);
        assert!(c.tracking);
    }

    #[test]
    fn reads_fill_the_table_and_a_change_empties_it_for_the_running_client_after_its_reply() {
        let (mut srv, mut c) = server_and_client();
        on(&mut srv, &mut c, Options::default());
        call(&mut srv, &mut c, &["MGET", "a", "b", "a"], false);
        assert_eq!(srv.tracking.total_keys(), 2);
        assert_eq!(srv.tracking.total_items(), 2);
        // A write is not a read: nothing remembered for `c`.
        call(&mut srv, &mut c, &["SET", "c", "1"], false);
        assert_eq!(srv.tracking.total_keys(), 2);
        // Its own change of `a`: out of the table, the message waits for the reply.
        call(&mut srv, &mut c, &["SET", "a", "1"], false);
        assert_eq!(srv.tracking.total_keys(), 1);
        assert_eq!(srv.tracking.total_items(), 1);
        assert!(srv.tracking.has_pending());
        assert!(c.out.is_empty());
        c.proto = 3;
        flush_pending(&mut srv, &mut c);
        assert!(!srv.tracking.has_pending());
        assert_eq!(c.out.len(), 1);
        assert!(matches!(&c.out[0], Reply::Push(v) if v.len() == 2));
        // FLUSHALL empties the table.
        call(&mut srv, &mut c, &["FLUSHALL"], false);
        assert_eq!(srv.tracking.total_keys(), 0);
        assert_eq!(srv.tracking.total_items(), 0);
        disable(&mut srv, &mut c);
        assert_eq!(srv.tracking.clients, 0);
    }

    #[test]
    fn optin_tracks_only_after_caching_yes_and_noloop_skips_own_changes() {
        let (mut srv, mut c) = server_and_client();
        on(
            &mut srv,
            &mut c,
            Options {
                optin: true,
                noloop: true,
                ..Default::default()
            },
        );
        call(&mut srv, &mut c, &["GET", "a"], false);
        assert_eq!(srv.tracking.total_keys(), 0);
        c.trk.caching = true;
        call(&mut srv, &mut c, &["GET", "a"], false);
        assert_eq!(srv.tracking.total_keys(), 1);
        call(&mut srv, &mut c, &["SET", "a", "1"], false);
        assert_eq!(srv.tracking.total_keys(), 0);
        assert!(
            !srv.tracking.has_pending(),
            "NOLOOP: no message for its own change"
        );
    }

    #[test]
    fn caching_lasts_one_command_after_client_commands() {
        let (_srv, mut c) = server_and_client();
        c.trk.caching = true;
        c.trk.after_client_cmd = true;
        before_command(&mut c, b"CLIENT");
        assert!(c.trk.caching, "CLIENT commands keep it");
        before_command(&mut c, b"GET");
        assert!(c.trk.caching, "the command after CLIENT CACHING");
        before_command(&mut c, b"GET");
        assert!(!c.trk.caching, "gone after one command");
    }

    #[test]
    fn bcast_collects_changed_keys_under_prefixes() {
        let (mut srv, mut c) = server_and_client();
        on(
            &mut srv,
            &mut c,
            Options {
                bcast: true,
                prefixes: vec![Bytes::from_static(b"a:"), Bytes::from_static(b"b:")],
                ..Default::default()
            },
        );
        assert_eq!(srv.tracking.total_prefixes(), 2);
        call(&mut srv, &mut c, &["MSET", "a:1", "x", "c:1", "y"], false);
        assert!(srv.tracking.bcast_due);
        let keys: Vec<_> = srv.tracking.prefixes[&b"a:"[..]]
            .keys
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, vec![Bytes::from_static(b"a:1")]);
        assert!(srv.tracking.prefixes[&b"b:"[..]].keys.is_empty());
        // BCAST clients' reads are not remembered.
        call(&mut srv, &mut c, &["GET", "a:1"], false);
        assert_eq!(srv.tracking.total_keys(), 0);
        disable(&mut srv, &mut c);
        assert_eq!(srv.tracking.total_prefixes(), 0);
    }

    #[test]
    fn prefix_overlaps_are_worded_as_redis_and_cut_at_nul() {
        let (_srv, mut c) = server_and_client();
        c.trk.prefixes.insert(Bytes::from_static(b"ab"));
        let e = prefix_collision(&c, &[Bytes::from_static(b"a")]).expect("overlap");
        assert_eq!(e, "ERR Prefix 'a' overlaps with an existing prefix 'ab'. Prefixes for a single client must not overlap.");
        let e = prefix_collision(&c, &[Bytes::from_static(b"x\0y"), Bytes::from_static(b"x")])
            .expect("overlap");
        assert_eq!(e, "ERR Prefix 'x' overlaps with another provided prefix 'x'. Prefixes for a single client must not overlap.");
        assert!(
            prefix_collision(&c, &[Bytes::from_static(b"b"), Bytes::from_static(b"c")]).is_none()
        );
    }

    #[test]
    fn the_table_limit_evicts_with_growing_effort() {
        let (mut srv, mut c) = server_and_client();
        on(&mut srv, &mut c, Options::default());
        for i in 0..250 {
            call(&mut srv, &mut c, &["GET", &format!("k{i}")], false);
        }
        srv.hot.tracking_table_max_keys = 1;
        enforce_limit(&mut srv, None);
        assert_eq!(srv.tracking.total_keys(), 150, "100 keys on the first pass");
        assert_eq!(srv.tracking.limit_misses, 1);
        enforce_limit(&mut srv, None);
        assert_eq!(srv.tracking.total_keys(), 1, "up to 200 on the second");
        assert_eq!(srv.tracking.limit_misses, 0);
        srv.hot.tracking_table_max_keys = 0;
        call(&mut srv, &mut c, &["GET", "more"], false);
        enforce_limit(&mut srv, None);
        assert_eq!(srv.tracking.total_keys(), 2, "0: no limit");
    }
}
