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

/// Close `c` if its output buffer is over its class's limit (see the module docs).
pub fn check(c: &mut Client, limits: &[ObufLimit; 3], now_ms: i64) {
    if c.is_master || c.is_replica || c.closed {
        return;
    }
    // Redis's client type: a client subscribed to anything is a pub/sub client.
    let class = if c.sub_count() + c.ssubs.len() > 0 {
        PUBSUB
    } else {
        NORMAL
    };
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
}
