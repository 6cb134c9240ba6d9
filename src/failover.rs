//! FAILOVER (Redis 6.2+): a coordinated switch of roles between this master and one of its
//! replicas, with no acknowledged write lost.
//!
//! 1. FAILOVER holds writes (a pause of its own, as CLIENT PAUSE WRITE: held, not refused) and
//!    waits until the target replica (or, without `TO`, any replica) has acknowledged the whole
//!    stream (`REPLCONF ACK` equal to master_repl_offset; replicas send one every second).
//! 2. Then this server becomes a replica of the target and opens the link with
//!    `PSYNC <our replid> <our offset + 1> FAILOVER`: the target, seeing its master's replid,
//!    promotes itself and answers the PSYNC (+CONTINUE from a Redis replica, whose backlog is
//!    our stream; a Strongbox replica answers +FULLRESYNC, its stream being its own re-encoding).
//! 3. Either answer ends the failover and lifts the hold (the held writes then get -READONLY);
//!    an error answer aborts it: this server is a master again.
//!
//! `TIMEOUT` aborts a failover still waiting for the replica after that long, unless `FORCE`
//! (which needs `TO` and `TIMEOUT`) makes it go ahead anyway. FAILOVER ABORT cancels it in
//! either phase. Redis's replies, log lines and `master_failover_state` in INFO replication.
//! The replica side (PSYNC … FAILOVER) is in master.rs's `sync_command`.

use bytes::Bytes;

use crate::ctx::Ctx;
use crate::exec::Server;
use crate::resp::{Reply, OK};
use crate::util::now_ms;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Writes held; waiting for the target (or any replica) to acknowledge the whole stream.
    WaitForSync,
    /// This server is a replica of the target; the PSYNC FAILOVER answer is awaited.
    InProgress,
}

/// A failover under way (`Server::failover`).
pub struct Failover {
    pub state: State,
    /// host, port (a replica's announced address and listening port).
    pub target: Option<(String, u16)>,
    /// Unix ms after which the wait ends (TIMEOUT).
    pub end_ms: Option<i64>,
    pub force: bool,
}

/// INFO replication's `master_failover_state`.
pub fn state_name(srv: &Server) -> &'static str {
    match srv.failover.as_ref().map(|f| f.state) {
        None => "no-failover",
        Some(State::WaitForSync) => "waiting-for-sync",
        Some(State::InProgress) => "failover-in-progress",
    }
}

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]
pub fn failover_command(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let srv = &mut *ctx.srv;
    if args.len() == 2 && args[1].eq_ignore_ascii_case(b"abort") {
        if srv.failover.is_none() {
            return Reply::err("ERR No failover in progress.");
        }
        abort(srv, "Failover manually aborted");
        return OK;
    }
    let mut timeout_ms: i64 = 0;
    let mut force = false;
    let mut target: Option<(String, i64)> = None;
    let mut j = 1;
    while j < args.len() {
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"timeout") && j + 1 < args.len() && timeout_ms == 0 {
            let Some(t) = crate::util::parse_i64(&args[j + 1]) else {
                return Reply::err(crate::cmd::err::NOT_INT);
            };
            if t <= 0 {
                return Reply::err("ERR FAILOVER timeout must be greater than 0");
            }
            timeout_ms = t;
            j += 2;
        } else if a.eq_ignore_ascii_case(b"to") && j + 2 < args.len() && target.is_none() {
            let Some(port) = crate::util::parse_i64(&args[j + 2]) else {
                return Reply::err(crate::cmd::err::NOT_INT);
            };
            target = Some((String::from_utf8_lossy(&args[j + 1]).into_owned(), port));
            j += 3;
        } else if a.eq_ignore_ascii_case(b"force") && !force {
            force = true;
            j += 1;
        } else {
            return Reply::err(crate::cmd::err::SYNTAX);
        }
    }
    if srv.failover.is_some() {
        return Reply::err("ERR FAILOVER already in progress.");
    }
    if srv.replica.is_some() {
        return Reply::err("ERR FAILOVER is not valid when server is a replica.");
    }
    if srv.master.slaves.is_empty() {
        return Reply::err("ERR FAILOVER requires connected replicas.");
    }
    if force && (timeout_ms == 0 || target.is_none()) {
        return Reply::err(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
        );
    }
    let target = match target {
        Some((host, port)) => {
            let Some(online) = crate::master::replica_online(srv, &host, port) else {
                return Reply::err("ERR FAILOVER target HOST and PORT is not a replica.");
            };
            if !online {
                return Reply::err("ERR FAILOVER target replica is not online.");
            }
            tracing::info!("FAILOVER requested to {host}:{port}.");
            Some((host, port as u16))
        }
        None => {
            tracing::info!("FAILOVER requested to any replica.");
            None
        }
    };
    srv.failover = Some(Failover {
        state: State::WaitForSync,
        target,
        end_ms: (timeout_ms > 0).then(|| now_ms().saturating_add(timeout_ms)),
        force,
    });
    srv.pause.hold_for_failover(true);
    OK
}

/// From the timer: the wait's timeout, and whether a replica has caught up (Redis's
/// `updateFailoverStatus`).
pub fn cron(srv: &mut Server) {
    let Some(f) = srv.failover.as_ref() else {
        return;
    };
    if f.state != State::WaitForSync {
        return;
    }
    if f.end_ms.is_some_and(|end| end <= now_ms()) {
        if f.force {
            if let Some((host, port)) = f.target.clone() {
                tracing::info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
                start(srv, host, port);
                return;
            }
        }
        abort(srv, "Replica never caught up before timeout");
        return;
    }
    let target = f.target.clone();
    let Some(offset) = crate::master::offset(srv) else {
        return;
    };
    let caught_up = match target {
        Some((host, port)) => crate::master::replica_acked(srv, Some((&host, port as i64)), offset)
            .map(|_| (host, port)),
        None => crate::master::replica_acked(srv, None, offset),
    };
    if let Some((host, port)) = caught_up {
        tracing::info!("Failover target {host}:{port} is synced, failing over.");
        start(srv, host, port);
    }
}

/// Become a replica of the target, asking it to take over (PSYNC … FAILOVER).
fn start(srv: &mut Server, host: String, port: u16) {
    let replid = srv.master.replid.clone();
    let offset = crate::master::offset(srv).unwrap_or(0);
    if let Some(f) = srv.failover.as_mut() {
        f.state = State::InProgress;
        f.target = Some((host.clone(), port));
    }
    crate::replica::set_master_for_failover(srv, host, port, (replid, offset));
}

/// The target answered the PSYNC FAILOVER: +CONTINUE / +FULLRESYNC end the failover, an
/// error aborts it.
pub fn psync_answered(srv: &mut Server, gen: u64, accepted: bool) {
    if srv.failover.as_ref().map(|f| f.state) != Some(State::InProgress)
        || srv.replica.as_ref().map(|r| r.gen) != Some(gen)
    {
        return;
    }
    if accepted {
        clear(srv);
    } else {
        abort(srv, "Failover target rejected psync request");
    }
}

/// Abort the failover (Redis's `abortFailover`): a master again if the switch had begun.
pub fn abort(srv: &mut Server, why: &str) {
    let Some(f) = srv.failover.as_ref() else {
        return;
    };
    match &f.target {
        Some((host, port)) => tracing::info!("FAILOVER to {host}:{port} aborted: {why}"),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if f.state == State::InProgress {
        crate::replica::unset_master(srv);
    }
    clear(srv);
}

/// The failover is over: lift its hold on writes.
fn clear(srv: &mut Server) {
    srv.failover = None;
    srv.pause.hold_for_failover(false);
}
