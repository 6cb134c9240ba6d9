//! `client-output-buffer-limit` for normal and pub/sub clients (replicas: `master.rs`).
//!
//! A client's output buffer is what its replies and pushes hold between the execution thread
//! and the socket (`ConnShared::out_bytes`: queued for its writer task and not yet written).
//! As in Redis's `checkClientOutputBufferLimits`, a client over its class's hard limit, or over
//! the soft limit for longer than the soft seconds, is closed, with Redis's log line: a
//! subscriber that stops reading (`pubsub 32mb 8mb 60` by default) or a client that pipelines
//! big replies without reading them (`normal 0 0 0`: no limit by default) cannot grow the
//! server's memory without bound. The check runs whenever replies are handed to the writer.

use std::sync::atomic::Ordering;

use crate::client::Client;
use crate::config::ObufLimit;

/// Index of each class in `HotConfig::obuf` (the order of `client-output-buffer-limit`).
pub const NORMAL: usize = 0;
pub const REPLICA: usize = 1;
pub const PUBSUB: usize = 2;

/// Redis's client type for the limits: a client subscribed to anything is a pub/sub client.
fn class_of(c: &Client) -> usize {
    if c.sub_count() + c.ssubs.len() > 0 {
        PUBSUB
    } else {
        NORMAL
    }
}

/// What a command whose reply can grow without bound — KEYS, and HRANDFIELD, SRANDMEMBER and
/// ZRANDMEMBER with a negative count (repetitions: `-999999999` asks for a billion) — may
/// still add to its client's output before the class's hard limit. Such a command counts its
/// reply as it builds it and stops once over, and the client is closed as by the limit: Redis
/// checks `CLIENT_CLOSE_ASAP` in those loops for the same reason. Without it the one command
/// held the execution thread and grew the server's memory by gigabytes before the limit was
/// even looked at.
pub struct Budget {
    left: Option<usize>,
    over: bool,
}

impl Budget {
    /// The running command's room under its client's hard limit: none for a class without
    /// one, for the master or a replica link, nor inside a script (Redis's limits skip its
    /// fake client: the script gets the whole reply).
    pub fn of(ctx: &crate::ctx::Ctx) -> Budget {
        let c = &*ctx.client;
        let hard = ctx.srv.hot.obuf[class_of(c)].hard;
        let left = (hard > 0 && !c.is_master && !c.is_replica && ctx.srv.script_run.is_none())
            .then(|| (hard as usize).saturating_sub(c.shared.out_bytes()));
        Budget { left, over: false }
    }

    /// Count one reply element of about `bytes` (a bulk's length: 16 are added, as
    /// `Reply::approx_size` does); false once the budget is spent.
    #[inline]
    pub fn take(&mut self, bytes: usize) -> bool {
        if let Some(left) = self.left.as_mut() {
            match left.checked_sub(bytes + 16) {
                Some(l) => *left = l,
                None => {
                    self.over = true;
                    return false;
                }
            }
        }
        true
    }

    /// If the budget was spent: close `c` as over its limit and true (the command's reply is
    /// never sent).
    pub fn close_if_spent(&self, c: &mut Client) -> bool {
        if self.over && !c.closed {
            close(c, class_of(c));
        }
        self.over
    }
}

/// Close `c` if its output buffer is over its class's limit (see the module docs).
pub fn check(c: &mut Client, limits: &[ObufLimit; 3], now_ms: i64) {
    if c.is_master || c.is_replica || c.closed {
        return;
    }
    let class = class_of(c);
    let l = limits[class];
    if l.hard == 0 && l.soft == 0 {
        return;
    }
    let used = c.shared.out_bytes() as i64;
    let hard = l.hard > 0 && used >= l.hard;
    let soft = l.soft > 0 && used >= l.soft;
    let over = hard
        || (soft && {
            let since = *c.obuf_soft_since_ms.get_or_insert(now_ms);
            now_ms - since > l.soft_seconds * 1000
        });
    if !soft {
        c.obuf_soft_since_ms = None;
    }
    if over {
        close(c, class);
    }
}

fn close(c: &mut Client, class: usize) {
    tracing::warn!(
        "Client id={} addr={} {} scheduled to be closed ASAP for overcoming of output buffer limits.",
        c.id,
        c.addr,
        if class == PUBSUB { "flags=P" } else { "flags=N" },
    );
    c.closed = true;
    // At once, dropping what is queued (Redis's freeClientAsync), not after writing it:
    // the writer sends nothing more, even replies handed over before this check.
    c.shared.drop_output.store(true, Ordering::Relaxed);
    c.shared.kill.notify_one();
}
