//! Free loopback ports for test servers. Its own file so that the test harnesses of other
//! packages (tools/tests/common, recovery/tests) include it by `#[path]` and pick ports the
//! same way.
//!
//! A port comes from 10000 up to the kernel's ephemeral range (so no outgoing connection's
//! source port takes it between the pick and the server's bind), is never handed out twice by
//! one process, and is probed by binding a socket without listening on it: a test process forks
//! a server every few milliseconds, and a listening probe copied into a child that had not yet
//! exec'd took tests' first connections and reset them.

use std::collections::BTreeSet;
use std::sync::Mutex;

static PORTS_HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Lowest port [`pick_free_port`] hands out.
const TEST_PORT_MIN: u16 = 10_000;

/// Where the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), from which outgoing
/// connections take their source ports, begins.
fn ephemeral_port_min() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Binds a TCP socket to 127.0.0.1:`port` (0: any) without listening, and returns the port it
/// got. Never a listener: a test process forks for every server it starts, and a child holds
/// copies of the parent's sockets until it execs. A probe that listened could, in that window,
/// take a test's first connection to the port it is about to hand out — reset when the child
/// execs (seen in CI as "connection reset" or "closed" on a server's first PING). No
/// SO_REUSEADDR either, so a port with connections still in TIME_WAIT is passed over.
fn bind_probe(port: u16) -> Option<u16> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    sock.bind(&addr.into()).ok()?;
    sock.local_addr().ok()?.as_socket().map(|a| a.port())
}

/// A loopback port that was free a moment ago and that this process has not handed out before.
///
/// Ports come from below the kernel's ephemeral range where there is room: a port from inside it
/// (what binding port 0 returns) can be taken between this call and the server's bind by any
/// outgoing connection's source port, another test's client or the test's own connect attempt.
pub fn pick_free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let below = ephemeral_port_min().saturating_sub(TEST_PORT_MIN);
    let mut handed = PORTS_HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    if below >= 1_000 {
        // A random order (RandomState is seeded per process), so test binaries run one after
        // another do not start on the same ports.
        let seed = std::collections::hash_map::RandomState::new();
        for attempt in 0u32..10_000 {
            let mut h = seed.build_hasher();
            h.write_u32(attempt);
            let port = TEST_PORT_MIN + (h.finish() % u64::from(below)) as u16;
            if !handed.contains(&port) && bind_probe(port).is_some() {
                handed.insert(port);
                return port;
            }
        }
    }
    loop {
        let port = bind_probe(0).expect("bind 127.0.0.1:0");
        if handed.insert(port) {
            return port;
        }
    }
}
