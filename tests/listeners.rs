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

/// Everything a client connecting from `source` gets for `PING` before the server closes or
/// answers.
fn ping_from(source: Ipv4Addr, port: u16) -> Vec<u8> {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((source, 0)).into())
        .expect("bind source");
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
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
