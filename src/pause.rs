//! CLIENT PAUSE / CLIENT UNPAUSE (Redis 7.0 semantics).
//!
//! While a pause is on, a command it covers is *postponed*: the client is blocked (it shows the
//! `b` flag in CLIENT LIST, as in Redis) with the command kept, its later commands queue
//! behind it (`Client::pending`, as for any blocked client), and nothing of it runs until the
//! pause ends. `ALL` covers every command; `WRITE` the commands that may change the dataset or
//! be propagated (write and `may_replicate` commands: EVAL, PUBLISH, …; EXEC of a transaction
//! holding one). Our replicas' links are never paused; our master's stream is, as in Redis: it
//! is read on but not applied, so our replication offset stops (`replica::hold_while_paused`).
//! A new pause only widens the current one (the later end, the stricter kind), and when it
//! ends — CLIENT UNPAUSE, or the timeout, checked every round of the execution loop, which
//! wakes for it — the postponed clients run in the order they were postponed, at the end of
//! that round's messages.
//!
//! During a `WRITE` pause the dataset must not change, so keys are not expired either: active
//! expiry stops, and a read of a key past its TTL answers as if the key were gone without
//! deleting it (the replica's rule, `Server::expiry_held`); the DELs happen after the pause.
//! This is what a failover needs: with writes paused, the replicas' offsets stop moving.
//!
//! A shutdown that waits for lagging replicas holds writes the same way, apart from CLIENT
//! PAUSE (Redis's `PAUSE_DURING_SHUTDOWN` purpose): CLIENT UNPAUSE does not lift it, and an
//! aborted shutdown lifts only its own hold.

use bytes::Bytes;

use crate::client::{Blocked, Client, ClientId};
use crate::exec::Server;
use crate::resp::Reply;

/// What the current pause holds back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// No pause.
    #[default]
    Off,
    /// Commands that may change the dataset or be propagated.
    Write,
    /// Every command.
    All,
}

/// The pause state of the server.
#[derive(Default)]
pub struct Pause {
    kind: Kind,
    /// Unix ms at which the pause ends.
    end_ms: i64,
    /// Clients postponed, in order.
    postponed: Vec<ClientId>,
    /// Writes held while a shutdown waits for replicas ([`Pause::hold_for_shutdown`]).
    during_shutdown: bool,
    /// Writes held while a FAILOVER runs ([`Pause::hold_for_failover`]).
    during_failover: bool,
}

impl Pause {
    /// Start a pause, or widen the current one (Redis's `pauseClients`: the later end and the
    /// stricter kind win).
    pub fn start(&mut self, end_ms: i64, kind: Kind) {
        if self.kind == Kind::Off {
            self.end_ms = end_ms;
        } else {
            self.end_ms = self.end_ms.max(end_ms);
        }
        self.kind = self.kind.max(kind);
    }

    /// The kind of pause in force at `now_ms` (Off once its end has passed, even before the
    /// loop has resumed the postponed clients).
    pub fn kind_at(&self, now_ms: i64) -> Kind {
        let user = if self.kind != Kind::Off && now_ms < self.end_ms {
            self.kind
        } else {
            Kind::Off
        };
        if self.during_shutdown || self.during_failover {
            user.max(Kind::Write)
        } else {
            user
        }
    }

    /// Hold writes while a shutdown waits for its replicas, or stop holding them (the
    /// shutdown was aborted or refused); a CLIENT PAUSE in force stays as it is.
    pub fn hold_for_shutdown(&mut self, on: bool) {
        self.during_shutdown = on;
    }

    /// Hold writes while a FAILOVER waits for its replica and switches roles, or stop (it
    /// ended or was aborted); a CLIENT PAUSE in force stays as it is.
    pub fn hold_for_failover(&mut self, on: bool) {
        self.during_failover = on;
    }

    /// Whether the dataset is frozen at `now_ms` (no expiry either).
    pub fn holds_writes(&self, now_ms: i64) -> bool {
        self.kind_at(now_ms) != Kind::Off
    }

    /// Whether a command of `client` must wait for the end of the pause; `may_replicate`:
    /// whether it may write or be propagated, by its flags as it runs them (a script's by its
    /// declared flags; EXEC's by its queued commands'), as Redis's `is_may_replicate_command`.
    pub fn holds(&self, may_replicate: bool, client: &Client, now_ms: i64) -> bool {
        match self.kind_at(now_ms) {
            Kind::Off => false,
            // Replicas are never paused (Redis: `!(c->flags & CLIENT_SLAVE)`); our own
            // master's stream is held before it runs, a batch at a time
            // (`replica::hold_while_paused`), so its commands are not held one by one.
            _ if client.is_master || client.is_replica => false,
            Kind::All => true,
            Kind::Write => may_replicate,
        }
    }

    /// End the pause (CLIENT UNPAUSE); the postponed clients resume at [`check_end`].
    pub fn stop(&mut self) {
        self.kind = Kind::Off;
    }

    /// Whether a pause is on, or has ended with postponed clients still to resume.
    pub fn pending(&self) -> bool {
        self.kind != Kind::Off
            || self.during_shutdown
            || self.during_failover
            || !self.postponed.is_empty()
    }

    /// Unix ms at which the pause ends (when one is on).
    pub fn end_ms(&self) -> Option<i64> {
        (self.kind != Kind::Off).then_some(self.end_ms)
    }

    /// The master's stream (its client `id`) waits for the end of the pause
    /// (`replica::resume_held`), in its place among the postponed clients.
    pub fn postpone_master(&mut self, id: ClientId) {
        if !self.postponed.contains(&id) {
            self.postponed.push(id);
        }
    }

    /// Whether `id` waits for the end of the pause.
    pub fn is_postponed(&self, id: ClientId) -> bool {
        self.postponed.contains(&id)
    }
}

/// Postpone `argv` (as the client sent it) of `client` until the pause ends.
pub fn postpone(srv: &mut Server, client: &mut Client, argv: Vec<Bytes>) {
    client.blocked = Some(Blocked {
        db: client.db,
        keys: Vec::new(),
        deadline_ms: None,
        argv,
        timeout_reply: Reply::Nil,
        postponed: true,
    });
    srv.pause.postponed.push(client.id);
}

/// End the pause and run the postponed clients' commands in the order they were postponed.
fn unpause(srv: &mut Server) {
    srv.pause.kind = Kind::Off;
    let ids = std::mem::take(&mut srv.pause.postponed);
    for id in ids {
        let Some(mut c) = srv.clients.remove(&id) else {
            // Not a client of ours: the master's stream, if it is still the link's.
            crate::replica::resume_held(srv, id);
            continue;
        };
        if let Some(b) = c.blocked.take_if(|b| b.postponed) {
            // A command run here may pause again: the clients after it are then postponed
            // again, behind the ones it postpones.
            crate::exec::process_command(srv, &mut c, b.argv);
            crate::exec::run_pending(srv, &mut c);
        }
        srv.clients.insert(id, c);
    }
}

/// Called every round of the execution loop, after its messages: resume the postponed
/// clients once the pause has ended (its timeout passed, or CLIENT UNPAUSE).
pub fn check_end(srv: &mut Server, now_ms: i64) {
    if srv.pause.pending() && srv.pause.kind_at(now_ms) == Kind::Off {
        unpause(srv);
    }
}

/// A postponed client that disconnects leaves the queue.
pub fn forget(srv: &mut Server, id: ClientId) {
    srv.pause.postponed.retain(|&x| x != id);
}
