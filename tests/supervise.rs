//! Running under a service manager as redis-server does: `daemonize yes` (fork, new session,
//! pidfile), `supervised systemd` (sd_notify datagrams: Debian's redis-server.service is
//! `Type=notify`) and `supervised upstart` (SIGSTOP when ready to be continued). Every case
//! runs against Strongbox and against Debian's redis-server, so the test checks itself.

mod common;

use common::server::REDIS_SERVER_BIN;
use common::{pick_free_port, run_with_timeout, RawConn};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bins() -> Vec<PathBuf> {
    vec![
        common::server::strongbox_bin(),
        PathBuf::from(REDIS_SERVER_BIN),
    ]
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid the daemon wrote to `pidfile`, once it is there.
fn wait_for_pidfile(pidfile: &Path) -> u32 {
    wait_for("the pidfile", Duration::from_secs(20), || {
        std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
}

fn process_alive(pid: u32) -> bool {
    // A zombie (state Z) has exited; only its parent has not reaped it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_field(&stat, 3) != "Z",
        Err(_) => false,
    }
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat; the command name may hold spaces.
fn stat_field(stat: &str, n: usize) -> String {
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after.split(' ').nth(n - 3).expect("field").to_string()
}

/// `bin --port P --dir D --save ''`, the start of every command line here.
fn server_command(bin: &Path, port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--port")
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .arg("--save")
        .arg("");
    cmd
}

fn shutdown(port: u16) {
    let mut c = RawConn::connect(port);
    c.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    let _ = c.try_read_reply();
}

#[test]
fn daemonize_forks_into_a_new_session_writes_and_removes_the_pidfile() {
    for bin in bins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = pick_free_port();
        let pidfile = dir.path().join("server.pid");
        let started = Instant::now();
        // The parent must exit 0 at once, and the daemon must not keep our pipes open
        // (run_with_timeout reads stdout and stderr to their end).
        let out = run_with_timeout(
            server_command(&bin, port, dir.path())
                .arg("--daemonize")
                .arg("yes")
                .arg("--pidfile")
                .arg(&pidfile)
                .arg("--logfile")
                .arg(dir.path().join("server.log")),
            None,
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "{bin:?}: {out:?}");
        let pid = wait_for_pidfile(&pidfile);
        let mut conn = wait_for("the daemon to listen", Duration::from_secs(20), || {
            RawConn::try_connect(port).ok()
        });
        conn.send_cmd(&["PING"]);
        assert_eq!(conn.read_reply(), b"+PONG\r\n", "{bin:?}");
        drop(conn);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("daemon stat");
        // setsid(): the daemon leads its own session, detached from ours.
        assert_eq!(
            stat_field(&stat, 6),
            pid.to_string(),
            "{bin:?} session: {stat}"
        );
        assert_ne!(stat_field(&stat, 6), std::process::id().to_string());
        // Its standard streams are /dev/null.
        for fd in 0..3 {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("fd link");
            assert_eq!(target, Path::new("/dev/null"), "{bin:?} fd {fd}");
        }
        assert!(started.elapsed() < Duration::from_secs(20));
        shutdown(port);
        wait_for("the daemon to exit", Duration::from_secs(20), || {
            (!process_alive(pid)).then_some(())
        });
        assert!(!pidfile.exists(), "{bin:?} left its pidfile");
    }
}

/// Start `bin` with `NOTIFY_SOCKET` pointing at a socket of ours; returns the messages up to
/// READY=1, whether the server answered PING right after READY=1, and the messages at
/// shutdown.
fn systemd_session(bin: &Path, mode: &str, abstract_socket: bool) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = pick_free_port();
    let (sock, name) = if abstract_socket {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("strongbox-test-notify-{}-{port}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        (
            UnixDatagram::bind_addr(&addr).expect("bind abstract"),
            format!("@{name}"),
        )
    } else {
        let path = dir.path().join("notify.sock");
        (
            UnixDatagram::bind(&path).expect("bind"),
            path.to_str().expect("utf-8 path").to_string(),
        )
    };
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut child = server_command(bin, port, dir.path())
        // Supervision wins over daemonize, as in Debian's unit (`--daemonize no` there).
        .arg("--daemonize")
        .arg("yes")
        .arg("--supervised")
        .arg(mode)
        .env("NOTIFY_SOCKET", &name)
        .env_remove("UPSTART_JOB")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut buf = [0u8; 4096];
    let mut start_msgs = Vec::new();
    loop {
        let n = sock
            .recv(&mut buf)
            .expect("a notification before the timeout");
        let m = String::from_utf8_lossy(&buf[..n]).to_string();
        let ready = m == "READY=1\n";
        start_msgs.push(m);
        if ready {
            break;
        }
    }
    // Ready means listening: no retry here.
    let mut conn = RawConn::try_connect(port).expect("connect right after READY=1");
    conn.send_cmd(&["PING"]);
    assert_eq!(conn.read_reply(), b"+PONG\r\n");
    drop(conn);
    // Not daemonized: the process we started is the server.
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "{bin:?} forked"
    );
    shutdown(port);
    let mut stop_msgs = Vec::new();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while let Ok(n) = sock.recv(&mut buf) {
        stop_msgs.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{bin:?}: {status:?}");
    (start_msgs, stop_msgs)
}

#[test]
fn supervised_systemd_notifies_ready_once_listening_and_stopping_at_shutdown() {
    for bin in bins() {
        for (mode, abstract_socket) in [("systemd", false), ("auto", true)] {
            let (start, stop) = systemd_session(&bin, mode, abstract_socket);
            assert_eq!(start.len(), 3, "{bin:?} {mode}: {start:?}");
            assert!(
                start[0].starts_with("STATUS=") && start[0].ends_with(" is loading...\n"),
                "{bin:?} {mode}: {start:?}"
            );
            assert_eq!(
                start[1..],
                ["STATUS=Ready to accept connections\n", "READY=1\n"],
                "{bin:?} {mode}"
            );
            assert_eq!(stop, ["STOPPING=1\n"], "{bin:?} {mode}");
        }
    }
}

#[test]
fn supervised_upstart_stops_itself_until_continued() {
    for bin in bins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = pick_free_port();
        let mut child = server_command(&bin, port, dir.path())
            .arg("--supervised")
            .arg("upstart")
            .env("UPSTART_JOB", "strongbox-test")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        wait_for("the server to stop itself", Duration::from_secs(20), || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            (stat_field(&stat, 3) == "T").then_some(())
        });
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGCONT) }, 0);
        let mut conn = wait_for("the server to listen", Duration::from_secs(20), || {
            RawConn::try_connect(port).ok()
        });
        conn.send_cmd(&["PING"]);
        assert_eq!(conn.read_reply(), b"+PONG\r\n", "{bin:?}");
        drop(conn);
        shutdown(port);
        assert!(child.wait().expect("wait").success());
    }
}

#[test]
fn supervised_without_its_environment_variable_runs_unsupervised() {
    // `supervised systemd` without NOTIFY_SOCKET: a warning, then `daemonize yes` applies.
    for bin in bins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = pick_free_port();
        let pidfile = dir.path().join("server.pid");
        let out = run_with_timeout(
            server_command(&bin, port, dir.path())
                .arg("--supervised")
                .arg("systemd")
                .arg("--daemonize")
                .arg("yes")
                .arg("--pidfile")
                .arg(&pidfile)
                .env_remove("NOTIFY_SOCKET")
                .env_remove("UPSTART_JOB"),
            None,
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "{bin:?}: {out:?}");
        let pid = wait_for_pidfile(&pidfile);
        wait_for("the daemon to listen", Duration::from_secs(20), || {
            RawConn::try_connect(port).ok()
        });
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            log.contains("NOTIFY_SOCKET not found"),
            "{bin:?} did not warn: {log}"
        );
        shutdown(port);
        wait_for("the daemon to exit", Duration::from_secs(20), || {
            (!process_alive(pid)).then_some(())
        });
    }
}
