//! MIGRATE: move (or with COPY, copy) keys to another server, as Redis does it: the keys are
//! serialized as DUMP payloads and sent as RESTORE commands over a plain client connection; a
//! key is deleted here only once the target acknowledged its RESTORE, and those deletions are
//! logged as one `DEL`.
//!
//! Like Redis, MIGRATE is synchronous: the execution thread waits for the target (every
//! connect, write and reply read is bounded by the command's `timeout`), so the keys cannot
//! change while they are in flight. Connections are cached per `host:port` and closed after
//! [`SOCKET_IDLE_S_MAX`] seconds unused (INFO `migrate_cached_sockets` counts them); a cached
//! connection that turns out to be dead is reopened once, unless the failure was a timeout.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec};
use crate::ctx::{notify, Ctx};
use crate::exec::Server;
use crate::resp::{Reply, OK};
use crate::util::parse_i64;

/// The key spec is Redis's first one (argument 3); `CommandSpec::key_positions` asks
/// [`key_positions`] for the KEYS form.
pub static COMMANDS: &[CommandSpec] = &[cmd(
    "migrate",
    -6,
    WRITE,
    KeySpec::Range(3, 3, 1),
    "generic",
    migrate,
)];

/// Redis's MIGRATE_SOCKET_CACHE_ITEMS: beyond this many targets one cached connection is closed.
const SOCKETS_CACHED_MAX: usize = 64;
/// Redis's MIGRATE_SOCKET_CACHE_TTL: a cached connection unused for longer is closed.
const SOCKET_IDLE_S_MAX: i64 = 10;
/// Redis writes the commands in chunks of this size, each bounded by the timeout.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;
/// Redis reads each reply line into a 1024-byte buffer; longer lines are cut there.
const REPLY_LINE_BYTES_MAX: usize = 1023;
/// The timeout used when the command gives 0 or less.
const TIMEOUT_MS_DEFAULT: i64 = 1000;
/// Longer timeouts are cut to this (a century): deadlines are `Instant`s, which must not
/// overflow.
const TIMEOUT_MS_MAX: i64 = 100 * 365 * 24 * 3600 * 1000;

struct Cached {
    conn: TcpStream,
    /// The database the target connection has selected, if known.
    last_db: Option<i64>,
    last_use_s: i64,
}

/// The connections MIGRATE keeps open, by "host:port" as given in the command.
#[derive(Default)]
pub struct SocketCache {
    map: HashMap<Vec<u8>, Cached>,
}

impl SocketCache {
    /// INFO `migrate_cached_sockets`.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Called from the server's timer: closes the connections unused for too long.
pub fn cron(srv: &mut Server) {
    if srv.migrate.map.is_empty() {
        return;
    }
    let now_s = crate::util::now_ms() / 1000;
    srv.migrate
        .map
        .retain(|_, c| now_s - c.last_use_s <= SOCKET_IDLE_S_MAX);
}

/// Where MIGRATE's keys are: argument 3, or with an empty argument 3 every argument after the
/// KEYS option. Redis finds the KEYS token searching from the end (so an AUTH password spelled
/// "keys" is not taken for it); the command itself parses options from the front. They differ
/// only when KEYS appears twice, and then everything after the first one is given, so that ACL
/// key checks cover every key the command touches.
pub fn key_positions(argv: &[Bytes], mut f: impl FnMut(usize)) {
    if argv.len() < 4 {
        return;
    }
    if !argv[3].is_empty() || argv.len() < 8 {
        return f(3);
    }
    let is = |i: usize, w: &[u8]| argv[i].eq_ignore_ascii_case(w);
    let from_end = (6..argv.len() - 1).rev().find(|&i| is(i, b"keys"));
    let mut from_front = None;
    let mut j = 6;
    while j < argv.len() {
        if is(j, b"keys") {
            from_front = Some(j);
            break;
        }
        j += if is(j, b"auth") {
            2
        } else if is(j, b"auth2") {
            3
        } else {
            1
        };
    }
    match from_front.into_iter().chain(from_end).min() {
        Some(k) => (k + 1..argv.len()).for_each(f),
        None => f(3),
    }
}

struct Opts<'a> {
    copy: bool,
    replace: bool,
    user: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    first_key: usize,
}

fn parse_opts(args: &[Bytes]) -> Result<Opts<'_>, Reply> {
    let mut o = Opts {
        copy: false,
        replace: false,
        user: None,
        password: None,
        first_key: 3,
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"copy") {
            o.copy = true;
        } else if a.eq_ignore_ascii_case(b"replace") {
            o.replace = true;
        } else if a.eq_ignore_ascii_case(b"auth") {
            if more == 0 {
                return Err(Reply::err(err::SYNTAX));
            }
            j += 1;
            o.password = Some(&args[j]);
        } else if a.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err(Reply::err(err::SYNTAX));
            }
            o.user = Some(&args[j + 1]);
            o.password = Some(&args[j + 2]);
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !args[3].is_empty() {
                return Err(Reply::err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.first_key = j + 1;
            break;
        } else {
            return Err(Reply::err(err::SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS k...]
fn migrate(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let o = match parse_opts(args) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let Some(timeout_ms) = parse_i64(&args[5]) else {
        return Reply::err(err::NOT_INT);
    };
    let Some(dbid) = parse_i64(&args[4]) else {
        return Reply::err(err::NOT_INT);
    };
    let timeout_ms = if timeout_ms <= 0 {
        TIMEOUT_MS_DEFAULT
    } else {
        timeout_ms
    };
    let timeout = Duration::from_millis(timeout_ms.min(TIMEOUT_MS_MAX) as u64);

    // The keys present here; if none, there is nothing to do (often a key just expired).
    let mut keys: Vec<Bytes> = Vec::new();
    for k in &args[o.first_key..] {
        if ctx.lookup(k).is_some() {
            keys.push(k.clone());
        }
    }
    if keys.is_empty() {
        return Reply::Status("NOKEY");
    }

    let name: Vec<u8> = [&args[1][..], b":", &args[2][..]].concat();
    let mut may_retry = true;
    loop {
        let mut failure = Failure::default();
        let last_db = match get_socket(ctx.srv, &name, &args[1], &args[2], timeout) {
            Ok(d) => d,
            Err(None) => return Reply::err("IOERR error or timeout connecting to the client"),
            // Redis does not wait for its connect to complete: a refused or timed-out
            // connection shows as the write failing (so the error says "writing").
            Err(Some(e)) => {
                failure = Failure::from(&e, true);
                None
            }
        };
        let select = last_db != Some(dbid);

        // The commands: AUTH, SELECT, then one RESTORE per key still alive.
        let mut out = Vec::new();
        if let Some(pw) = o.password {
            let mut argv: Vec<&[u8]> = vec![b"AUTH"];
            argv.extend(o.user);
            argv.push(pw);
            write_command(&mut out, &argv);
        }
        if select {
            write_command(&mut out, &[b"SELECT", dbid.to_string().as_bytes()]);
        }
        let db = ctx.client.db;
        let mut sent: Vec<Bytes> = Vec::with_capacity(keys.len());
        for k in &keys {
            let ttl = match ctx.srv.dbs[db].expire_of(k) {
                None => 0,
                Some(at) => {
                    let ttl = at - crate::util::now_ms();
                    if ttl < 0 {
                        continue;
                    }
                    ttl.max(1)
                }
            };
            let Some(obj) = ctx.srv.dbs[db].keys.get(&k[..]) else {
                continue;
            };
            let payload =
                match strongbox_storage::rdb::encode_dump(&crate::snapshot::to_rdb(&obj.value)) {
                    Ok(p) => p,
                    Err(e) => return Reply::Error(format!("ERR {e}")),
                };
            let ttl = ttl.to_string();
            let mut argv: Vec<&[u8]> = vec![b"RESTORE", k, ttl.as_bytes(), &payload];
            if o.replace {
                argv.push(b"REPLACE");
            }
            write_command(&mut out, &argv);
            sent.push(k.clone());
        }

        let mut error_from_target: Option<Reply> = None;
        let mut acked: Vec<Bytes> = Vec::new();
        let mut socket_error = false;
        let mut replies_read = 0;
        'talk: {
            if failure.happened {
                break 'talk;
            }
            let Some(c) = ctx.srv.migrate.map.get_mut(&name) else {
                failure.happened = true;
                break 'talk;
            };
            if let Err(e) = write_all(&mut c.conn, &out, timeout) {
                failure = Failure::from(&e, true);
                break 'talk;
            }
            let mut auth_reply = None;
            if o.password.is_some() {
                match read_line(&mut c.conn, timeout) {
                    Ok(l) => auth_reply = Some(l),
                    Err(e) => {
                        failure = Failure::from(&e, false);
                        break 'talk;
                    }
                }
            }
            let mut select_reply = None;
            if select {
                match read_line(&mut c.conn, timeout) {
                    Ok(l) => select_reply = Some(l),
                    Err(e) => {
                        failure = Failure::from(&e, false);
                        break 'talk;
                    }
                }
            }
            for k in &sent {
                let line = match read_line(&mut c.conn, timeout) {
                    Ok(l) => l,
                    Err(e) => {
                        failure = Failure::from(&e, false);
                        socket_error = true;
                        break;
                    }
                };
                replies_read += 1;
                let bad = [
                    auth_reply.as_deref(),
                    select_reply.as_deref(),
                    Some(&line[..]),
                ]
                .into_iter()
                .flatten()
                .find(|l| l.first() == Some(&b'-'));
                match bad {
                    Some(e) => {
                        if error_from_target.is_none() {
                            c.last_db = None;
                            error_from_target = Some(Reply::Error(format!(
                                "ERR Target instance replied with error: {}",
                                String::from_utf8_lossy(&e[1..])
                            )));
                        }
                    }
                    None => acked.push(k.clone()),
                }
            }
        }
        let failed_before_replies = failure.happened && !socket_error;
        if !failed_before_replies {
            // Retry only when nothing can have been processed: the first reply never came.
            let retry_now = error_from_target.is_none()
                && socket_error
                && replies_read == 0
                && may_retry
                && !failure.timed_out;
            if !retry_now {
                if socket_error {
                    ctx.srv.migrate.map.remove(&name);
                }
                if !o.copy && !acked.is_empty() {
                    let mut del = Vec::with_capacity(acked.len() + 1);
                    del.push(Bytes::from_static(b"DEL"));
                    for k in acked {
                        ctx.delete(&k);
                        ctx.notify(notify::GENERIC, "del", &k);
                        ctx.dirty(1);
                        del.push(k);
                    }
                    ctx.propagate(del);
                }
                if let Some(e) = error_from_target {
                    return e;
                }
                if !socket_error {
                    if let Some(c) = ctx.srv.migrate.map.get_mut(&name) {
                        c.last_db = Some(dbid);
                    }
                    return OK;
                }
                may_retry = false;
            }
        }
        // A socket error: drop the connection; reopen it once unless it was a timeout.
        ctx.srv.migrate.map.remove(&name);
        if may_retry && !failure.timed_out {
            may_retry = false;
            continue;
        }
        return Reply::err(if failure.writing {
            "IOERR error or timeout writing to target instance"
        } else {
            "IOERR error or timeout reading to target instance"
        });
    }
}

#[derive(Default)]
struct Failure {
    happened: bool,
    writing: bool,
    timed_out: bool,
}

impl Failure {
    fn from(e: &std::io::Error, writing: bool) -> Failure {
        Failure {
            happened: true,
            writing,
            timed_out: matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// The cached connection to `name`, or a new one; returns the database the connection has
/// selected, if known. Fails with None if the address cannot be resolved, with the error if the
/// connection cannot be made in time.
fn get_socket(
    srv: &mut Server,
    name: &[u8],
    host: &[u8],
    port: &[u8],
    timeout: Duration,
) -> Result<Option<i64>, Option<std::io::Error>> {
    let now_s = crate::util::now_ms() / 1000;
    if let Some(c) = srv.migrate.map.get_mut(name) {
        c.last_use_s = now_s;
        return Ok(c.last_db);
    }
    if srv.migrate.map.len() >= SOCKETS_CACHED_MAX {
        // Redis drops one at random; any one will do.
        if let Some(k) = srv.migrate.map.keys().next().cloned() {
            srv.migrate.map.remove(&k);
        }
    }
    let conn = connect(host, port, timeout)?;
    srv.migrate.map.insert(
        name.to_vec(),
        Cached {
            conn,
            last_db: None,
            last_use_s: now_s,
        },
    );
    Ok(None)
}

fn connect(
    host: &[u8],
    port: &[u8],
    timeout: Duration,
) -> Result<TcpStream, Option<std::io::Error>> {
    let host = std::str::from_utf8(host).map_err(|_| None)?;
    // A port that is not a number cannot be connected to (Redis's atoi makes it 0).
    let port: u16 = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or(None)?;
    let deadline = Instant::now() + timeout;
    let mut last = None;
    for addr in (host, port).to_socket_addrs().map_err(|_| None)? {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Some(timed_out()));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(conn) => {
                conn.set_nodelay(true).map_err(Some)?;
                return Ok(conn);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last)
}

fn write_command(out: &mut Vec<u8>, argv: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::TimedOut)
}

/// Writes `buf` in chunks, each within `timeout` (Redis's `connSyncWrite` per 64 KiB).
fn write_all(conn: &mut TcpStream, buf: &[u8], timeout: Duration) -> std::io::Result<()> {
    for chunk in buf.chunks(WRITE_CHUNK_BYTES) {
        let deadline = Instant::now() + timeout;
        let mut pos = 0;
        while pos < chunk.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            conn.set_write_timeout(Some(left))?;
            match conn.write(&chunk[pos..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Reads one reply line (without its CRLF) within `timeout`, byte by byte as Redis's
/// `connSyncReadLine` does, so nothing after the line is consumed.
fn read_line(conn: &mut TcpStream, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        conn.set_read_timeout(Some(left))?;
        let mut b = [0u8; 1];
        match conn.read(&mut b) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) if b[0] == b'\n' => {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            Ok(_) => {
                if line.len() < REPLY_LINE_BYTES_MAX {
                    line.push(b[0]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
