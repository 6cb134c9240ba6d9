//! Where clients connect from: the Unix domain socket (`unixsocket`, `unixsocketperm`, `port 0`)
//! and protected mode (`protected-mode yes` with no password: only loopback clients), each
//! compared with redis-server 7.0 doing the same.

mod common;

use common::{encode_command, escape, reply_len, ServerKind, ServerProcess};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Send one command on `s` and read exactly one reply.
fn cmd<S: Read + Write>(s: &mut S, args: &[&str]) -> Vec<u8> {
    s.write_all(&encode_command(args)).expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(n)) = reply_len(&buf) {
            assert_eq!(n, buf.len(), "one reply expected: {}", escape(&buf));
            return buf;
        }
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed after {}", escape(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn unix_conn(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {path:?}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// `name=value` fields of a CLIENT INFO line, the socket path replaced by `<path>`.
fn fields(info: &[u8], path: &Path, names: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(info).replace(&*path.to_string_lossy(), "<path>");
    let text = text.trim_start_matches(|c: char| c == '$' || c.is_ascii_digit());
    names
        .iter()
        .map(|n| {
            text.split_whitespace()
                .find(|f| f.starts_with(&format!("{n}=")))
                .unwrap_or_else(|| panic!("no {n}= in {text}"))
                .to_string()
        })
        .collect()
}

/// Start `kind` with a Unix socket (and its TCP port, which the harness waits on), use it,
/// shut it down through the socket; returns what a client sees.
fn unix_socket_session(kind: ServerKind) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sock");
    // A leftover at the path (a crash) is replaced, as Redis does.
    std::fs::write(&path, b"stale").expect("stale file");
    let path_s = path.to_string_lossy().to_string();
    let mut srv = ServerProcess::start(kind, &["--unixsocket", &path_s, "--unixsocketperm", "700"]);
    let mut seen = Vec::new();
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    seen.push(format!("mode {:o}", mode & 0o7777));
    let mut c = unix_conn(&path);
    for args in [
        &["PING"][..],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["CONFIG", "GET", "unixsocket"],
        &["CONFIG", "GET", "unixsocketperm"],
    ] {
        let r = cmd(&mut c, args);
        seen.push(escape(&r).replace(&path_s, "<path>"));
    }
    let info = cmd(&mut c, &["CLIENT", "INFO"]);
    seen.extend(fields(&info, &path, &["addr", "laddr", "flags"]));
    // A TCP client is not flagged, and sees the value the Unix client wrote.
    let mut tcp = srv.conn();
    assert_eq!(tcp.cmd(&["GET", "k"]), b"$1\r\nv\r\n");
    let list = tcp.cmd(&["CLIENT", "LIST"]);
    let lines = String::from_utf8_lossy(&list).to_string();
    seen.push(format!(
        "unix clients in CLIENT LIST: {}",
        lines.matches("flags=U").count()
    ));
    seen.push(format!(
        "CLIENT KILL ADDR <path>:0 -> {}",
        escape(&tcp.cmd(&["CLIENT", "KILL", &format!("{path_s}:0")]))
    ));
    drop(c);
    let mut c = unix_conn(&path);
    let _ = c.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv.is_running() {
        assert!(Instant::now() < deadline, "{kind:?} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.push(format!("socket file after shutdown: {}", path.exists()));
    let log = srv.log();
    seen.push(format!(
        "log says ready at the path: {}",
        log.contains(&format!("ready to accept connections at {path_s}"))
    ));
    seen.push(format!(
        "log says removing: {}",
        log.contains("Removing the unix socket file.")
    ));
    seen
}

#[test]
fn a_unix_socket_serves_clients_as_redis_does() {
    let ours = unix_socket_session(ServerKind::Strongbox);
    let redis = unix_socket_session(ServerKind::Redis);
    assert_eq!(ours, redis);
    assert!(ours.contains(&"mode 700".to_string()), "{ours:?}");
    assert!(ours.contains(&"flags=U".to_string()), "{ours:?}");
    assert!(ours.contains(&"addr=<path>:0".to_string()), "{ours:?}");
    assert!(
        ours.contains(&"socket file after shutdown: false".to_string()),
        "{ours:?}"
    );
}

/// `port 0` listens on no TCP port: with a Unix socket the server serves there only; without
/// one it refuses to start, with Redis's message.
#[test]
fn port_0_listens_on_the_unix_socket_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("only.sock");
    let bin = common::server::strongbox_bin();
    let mut child = Command::new(&bin)
        .args(["--port", "0", "--save", ""])
        .arg("--unixsocket")
        .arg(&path)
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(s) = UnixStream::connect(&path) {
            break s;
        }
        assert!(Instant::now() < deadline, "no Unix socket at {path:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(cmd(&mut c, &["PING"]), b"+PONG\r\n");
    assert_eq!(
        cmd(&mut c, &["CONFIG", "GET", "port"]),
        b"*2\r\n$4\r\nport\r\n$1\r\n0\r\n"
    );
    let _ = c.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");

    // Nowhere to listen: both servers refuse to start, with the same line.
    for bin in [bin.clone(), "/usr/bin/redis-server".into()] {
        let out = Command::new(&bin)
            .args(["--port", "0", "--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .output()
            .expect("run");
        let log = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin:?} started: {log}");
        assert!(
            log.contains("Configured to not listen anywhere, exiting."),
            "{bin:?}: {log}"
        );
    }
}

/// A TCP connection to 127.0.0.1:`port` from the local address `source`.
fn connect_from(source: Ipv4Addr, port: u16) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((source, 0)).into())
        .expect("bind source");
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Everything a client connecting from `source` gets for `PING` before the server closes or
/// answers.
fn ping_from(source: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut s = connect_from(source, port);
    s.write_all(b"*1\r\n$4\r\nPING\r\n").expect("send");
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if !out.starts_with(b"-DENIED") && matches!(reply_len(&out), Ok(Some(_))) {
                    return out;
                }
            }
            // A server that closes with our PING unread resets the connection (Redis too).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read: {e} after {}", escape(&out)),
        }
    }
}

fn protected_mode_session(kind: ServerKind) -> Vec<String> {
    // Redis's notion of a local client is exactly 127.0.0.1 or ::1: a client bound to
    // 127.0.0.2 stands for one on another host.
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let local = Ipv4Addr::LOCALHOST;
    let srv = ServerProcess::start(kind, &[]);
    let port = srv.port();
    let mut seen = Vec::new();
    let see = |what: &str, r: Vec<u8>| format!("{what}: {}", escape(&r));
    seen.push(see("remote, protected", ping_from(other, port)));
    seen.push(see("local, protected", ping_from(local, port)));
    let mut c = srv.conn();
    let stats = String::from_utf8_lossy(&c.cmd(&["INFO", "stats"])).to_string();
    let rejected = stats
        .lines()
        .find(|l| l.starts_with("rejected_connections:"))
        .unwrap_or("none")
        .to_string();
    seen.push(rejected);
    c.assert_cmd(&["CONFIG", "SET", "protected-mode", "no"], b"+OK\r\n");
    seen.push(see("remote, unprotected", ping_from(other, port)));
    c.assert_cmd(&["CONFIG", "SET", "protected-mode", "yes"], b"+OK\r\n");
    c.assert_cmd(&["CONFIG", "SET", "requirepass", "pw"], b"+OK\r\n");
    // With a password the remote client is served (and must authenticate).
    seen.push(see("remote, password set", ping_from(other, port)));
    drop(c);
    drop(srv);
    seen
}

#[test]
fn protected_mode_serves_only_loopback_clients_as_redis_does() {
    let ours = protected_mode_session(ServerKind::Strongbox);
    let redis = protected_mode_session(ServerKind::Redis);
    assert_eq!(ours, redis);
    assert!(ours[0].starts_with("remote, protected: -DENIED Redis is running in protected mode"));
    assert_eq!(ours[1], "local, protected: +PONG\\r\\n");
    assert_eq!(ours[2], "rejected_connections:1");
}

/// What a client sees of CONFIG SET port / bind, which rebind the listeners at runtime.
fn rebind_session(kind: ServerKind) -> Vec<String> {
    let srv = ServerProcess::start(kind, &[]);
    let mut seen = Vec::new();
    let mut c = srv.conn();
    // A port another socket holds: refused, and the server stays where it was.
    let holder = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("hold a port");
    let held = holder.local_addr().expect("addr").port().to_string();
    let r = c.cmd(&["CONFIG", "SET", "port", &held]);
    seen.push(format!("port in use: {}", escape(&r)));
    let port_after = c.cmd(&["CONFIG", "GET", "port"]);
    let kept = format!(
        "*2\r\n$4\r\nport\r\n${}\r\n{}\r\n",
        srv.port().to_string().len(),
        srv.port()
    );
    seen.push(format!("port kept: {}", port_after == kept.as_bytes()));
    assert_eq!(srv.conn().cmd(&["PING"]), b"+PONG\r\n");
    // A free port: served there, no longer on the old one; connected clients stay.
    let free = common::pick_free_port();
    c.assert_cmd(&["CONFIG", "SET", "port", &free.to_string()], b"+OK\r\n");
    let mut moved = common::RawConn::connect(free);
    assert_eq!(moved.cmd(&["PING"]), b"+PONG\r\n");
    seen.push(format!(
        "old port refuses: {}",
        TcpStream::connect(("127.0.0.1", srv.port())).is_err()
    ));
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    // An address that is not one.
    let r = moved.cmd(&["CONFIG", "SET", "bind", "999.999.999.999"]);
    seen.push(format!("bad bind: {}", escape(&r)));
    assert_eq!(common::RawConn::connect(free).cmd(&["PING"]), b"+PONG\r\n");
    // No address at all: nobody new gets in.
    moved.assert_cmd(&["CONFIG", "SET", "bind", ""], b"+OK\r\n");
    seen.push(format!(
        "empty bind refuses: {}",
        TcpStream::connect(("127.0.0.1", free)).is_err()
    ));
    moved.assert_cmd(&["CONFIG", "SET", "bind", "127.0.0.1"], b"+OK\r\n");
    assert_eq!(common::RawConn::connect(free).cmd(&["PING"]), b"+PONG\r\n");
    // A new set sharing an address and the port with the current one (the usual change).
    moved.assert_cmd(
        &["CONFIG", "SET", "bind", "127.0.0.1 127.0.0.4"],
        b"+OK\r\n",
    );
    assert_eq!(common::RawConn::connect(free).cmd(&["PING"]), b"+PONG\r\n");
    let mut four = TcpStream::connect(("127.0.0.4", free)).expect("connect 127.0.0.4");
    four.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(cmd(&mut four, &["PING"]), b"+PONG\r\n");
    // A failed change keeps the addresses the server had.
    let r = moved.cmd(&["CONFIG", "SET", "bind", "127.0.0.1 10.255.255.254"]);
    seen.push(format!("unassigned address: {}", escape(&r)));
    assert_eq!(common::RawConn::connect(free).cmd(&["PING"]), b"+PONG\r\n");
    assert!(TcpStream::connect(("127.0.0.4", free)).is_ok());
    moved.assert_cmd(&["CONFIG", "SET", "bind", "127.0.0.1"], b"+OK\r\n");
    // Put the server back where the harness expects it (it stops it through its port).
    moved.assert_cmd(
        &["CONFIG", "SET", "port", &srv.port().to_string()],
        b"+OK\r\n",
    );
    drop(holder);
    seen
}

#[test]
fn config_set_port_and_bind_rebind_as_redis_does() {
    let ours = rebind_session(ServerKind::Strongbox);
    let redis = rebind_session(ServerKind::Redis);
    assert_eq!(ours, redis);
    assert!(
        ours[0].contains("Unable to listen on this port"),
        "{ours:?}"
    );
    assert_eq!(ours[1], "port kept: true");
    assert_eq!(ours[2], "old port refuses: true");
}

/// Without a `bind` line Strongbox listens where Redis's built-in default does, `* -::*`
/// (every address; protected mode keeps non-loopback clients out until a password is set).
#[test]
fn the_default_bind_is_every_address_as_redis() {
    let srv = ServerProcess::start(ServerKind::Strongbox, &[]);
    let mut c = srv.conn();
    c.assert_cmd(
        &["CONFIG", "GET", "bind"],
        b"*2\r\n$4\r\nbind\r\n$6\r\n* -::*\r\n",
    );
    // Reachable on a loopback address other than 127.0.0.1 (only a wildcard bind is; the
    // client's own address is 127.0.0.1, so it is served).
    let mut s = TcpStream::connect(("127.0.0.3", srv.port())).expect("connect 127.0.0.3");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(cmd(&mut s, &["PING"]), b"+PONG\r\n");
}

/// What DEBUG answers under each `enable-debug-command` (Redis 7: `no` by default; `local`
/// admits 127.0.0.1, ::1 and the Unix socket only).
fn debug_gate_session(kind: ServerKind, setting: &str) -> Vec<String> {
    let srv = ServerProcess::start(
        kind,
        &["--enable-debug-command", setting, "--protected-mode", "no"],
    );
    let port = srv.port();
    let mut out = Vec::new();
    for (who, source) in [
        ("local", Ipv4Addr::LOCALHOST),
        ("remote", Ipv4Addr::new(127, 0, 0, 2)),
    ] {
        let mut s = connect_from(source, port);
        let r = cmd(&mut s, &["DEBUG", "SLEEP", "0"]);
        out.push(format!("{setting} {who}: {}", escape(&r)));
    }
    out
}

#[test]
fn enable_debug_command_gates_debug_as_redis() {
    for setting in ["no", "local", "yes"] {
        let ours = debug_gate_session(ServerKind::Strongbox, setting);
        let redis = debug_gate_session(ServerKind::Redis, setting);
        assert_eq!(ours, redis);
    }
    let ours = debug_gate_session(ServerKind::Strongbox, "local");
    assert_eq!(ours[0], "local local: +OK\\r\\n");
    assert!(
        ours[1].starts_with("local remote: -ERR DEBUG command not allowed."),
        "{ours:?}"
    );
}
