//! Server processes for tests: `StrongboxServer` (our binary) and `RedisServer` (Debian's
//! redis-server 7.0), each on a free loopback port with its own temporary data directory,
//! stdout/stderr captured to a log file, killed on drop.
//!
//! Port races: a port is one that binds on 127.0.0.1 (bound, never listened on: see
//! `bind_probe`), chosen below the kernel's ephemeral range (so no outgoing connection takes it
//! meanwhile); ports handed out by this process are never
//! handed out again, a server that exits with "Address already in use" is retried on a new port,
//! and a server only counts as started when PING answers +PONG *and* (where /proc allows the
//! check) the listening socket belongs to our child, so we never talk to someone else's server.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::conn::RawConn;
use super::resp::escape;

/// How long a server may take to answer PING after being spawned (override with the env var
/// `TEST_SERVER_READY_TIMEOUT_MS`, e.g. on a slow machine).
pub const READY_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// How long `stop()` waits for the process to exit after SHUTDOWN before killing it.
pub const STOP_TIMEOUT_MS: u64 = 10_000;
/// Spawn attempts on fresh ports when the port turns out to be taken.
pub const START_ATTEMPTS_MAX: usize = 8;
/// Lines of server log printed when a test panics while the server is alive.
const LOG_TAIL_LINES_ON_PANIC: usize = 60;

/// Path of Debian's redis-server.
pub const REDIS_SERVER_BIN: &str = "/usr/bin/redis-server";

/// The strongbox-server binary: `$STRONGBOX_SERVER_BIN` if set (e.g. `/usr/bin/redis-server`
/// to check the tests themselves against real Redis), else the one Cargo built for this package.
pub fn strongbox_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRONGBOX_SERVER_BIN") {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_strongbox-server") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "CARGO_BIN_EXE_strongbox-server is not set (this test is not in the strongbox \
             package); set STRONGBOX_SERVER_BIN to the server binary"
        ),
    }
}

fn ready_timeout() -> Duration {
    let ms = std::env::var("TEST_SERVER_READY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(READY_TIMEOUT_MS_DEFAULT);
    Duration::from_millis(ms)
}

pub use super::port::pick_free_port;

/// Which binary a [`ServerProcess`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Strongbox,
    Redis,
}

/// A running (or stopped) server process with its own data directory and log.
pub struct ServerProcess {
    kind: ServerKind,
    bin: PathBuf,
    args: Vec<String>,
    port: u16,
    /// A config file given as the first argument (`redis-server <conf> --opts`), see
    /// [`ServerProcess::start_with_conf`].
    conf: Option<String>,
    /// Holds the log file and, unless the caller supplied one, the data directory.
    root: Option<tempfile::TempDir>,
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    starts: usize,
}

enum Readiness {
    Ready,
    PortTaken(String),
}

const NO_SYNC_DELAY: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

impl ServerProcess {
    /// Starts `kind` on a fresh port with a fresh data directory.
    pub fn start(kind: ServerKind, args: &[&str]) -> ServerProcess {
        Self::start_with_dir(kind, None, args)
    }

    /// Starts `kind` with `dir` as its data directory (e.g. a directory a test filled with
    /// fixture files) or a fresh temporary one if `None`.
    pub fn start_with_dir(kind: ServerKind, dir: Option<&Path>, args: &[&str]) -> ServerProcess {
        Self::start_full(kind, None, dir, args)
    }

    /// Starts `kind` as `<bin> <conf> --port P --dir D --daemonize no --logfile '' --pidfile
    /// D/x.pid` followed by `args`: the config file's own settings stand, except the ones
    /// that give this process its own port, directory, pid file and log (captured), and that
    /// keep it in the foreground.
    pub fn start_with_conf(kind: ServerKind, conf: &str, args: &[&str]) -> ServerProcess {
        Self::start_full(kind, Some(conf), None, args)
    }

    fn start_full(
        kind: ServerKind,
        conf: Option<&str>,
        dir: Option<&Path>,
        args: &[&str],
    ) -> ServerProcess {
        let root = tempfile::Builder::new()
            .prefix(match kind {
                ServerKind::Strongbox => "strongbox-test-",
                ServerKind::Redis => "redis-test-",
            })
            .tempdir()
            .expect("create temp dir");
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => {
                let d = root.path().join("data");
                std::fs::create_dir(&d).expect("create data dir");
                d
            }
        };
        let bin = match kind {
            ServerKind::Strongbox => strongbox_bin(),
            ServerKind::Redis => PathBuf::from(REDIS_SERVER_BIN),
        };
        let mut server = ServerProcess {
            kind,
            bin,
            args: args.iter().map(|s| s.to_string()).collect(),
            conf: conf.map(str::to_string),
            port: 0,
            log_path: root.path().join("server.log"),
            root: Some(root),
            dir,
            child: None,
            starts: 0,
        };
        server.spawn_until_ready(true);
        server
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (`--dir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The extra arguments given at start.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True if the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Everything the server printed so far (all runs, separated by `=== start N ===` lines).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// A new raw connection to the server.
    pub fn conn(&self) -> RawConn {
        RawConn::connect(self.port)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, then reap. The data directory stays for `restart()`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown, like `kill PID`), then wait up to STOP_TIMEOUT_MS; SIGKILL
    /// if the process is still alive. Returns the exit status (None if it had to be killed).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let pid = self.pid()?;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        self.wait_exit_or_kill()
    }

    /// Sends SHUTDOWN and waits up to STOP_TIMEOUT_MS for the process to exit; SIGKILL if it
    /// does not. Returns the exit status (None if it was not running or had to be killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if !self.is_running() {
            return self.child.take().and_then(|mut c| c.wait().ok());
        }
        if let Ok(mut conn) = RawConn::try_connect(self.port) {
            let _ = conn.try_send(b"*1\r\n$8\r\nSHUTDOWN\r\n");
            // Success closes the connection; an error reply means it refused.
            let _ = conn.read_reply_within(Duration::from_millis(STOP_TIMEOUT_MS));
        }
        self.wait_exit_or_kill()
    }

    fn wait_exit_or_kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts the server again with the same data directory and arguments (stopping it first
    /// with `stop()` if it is still running). Tries the same port first; if that is taken the
    /// server moves to a new one, so read `port()` again afterwards.
    pub fn restart(&mut self) {
        if self.is_running() {
            self.stop();
        }
        self.child = None;
        self.spawn_until_ready(false);
    }

    /// [`ServerProcess::restart`], returning as soon as the server answers PING at all:
    /// `-LOADING …` while it loads its data set (tests of serving while loading), or +PONG.
    pub fn restart_until_answer(&mut self) {
        if self.is_running() {
            self.stop();
        }
        self.child = None;
        self.spawn_until(false, true);
    }

    fn spawn_until_ready(&mut self, new_port: bool) {
        self.spawn_until(new_port, false)
    }

    fn spawn_until(&mut self, new_port: bool, loading_ok: bool) {
        let mut reasons = Vec::new();
        for attempt in 0..START_ATTEMPTS_MAX {
            if new_port || attempt > 0 || self.port == 0 {
                self.port = pick_free_port();
            }
            self.spawn();
            match self.wait_ready(loading_ok) {
                Readiness::Ready => return,
                Readiness::PortTaken(why) => {
                    self.kill9();
                    reasons.push(format!("port {}: {why}", self.port));
                }
            }
        }
        panic!(
            "{:?} server could not get a free port after {START_ATTEMPTS_MAX} attempts: {reasons:?}\n{}",
            self.kind,
            self.describe()
        );
    }

    /// Without a config file, Strongbox as a master starts a diskless sync without waiting for
    /// more replicas, as Redis's own suite configures it (`repl-diskless-sync-delay 0`; 5 s by
    /// default): a test that wants the delay sets it in its arguments, which come after. With
    /// one, the file's settings stand (the config tests compare them with Redis's).
    fn command_line(&self) -> Vec<String> {
        if let Some(conf) = &self.conf {
            let mut argv = vec![
                conf.clone(),
                "--port".to_string(),
                self.port.to_string(),
                "--dir".to_string(),
                self.dir.display().to_string(),
                "--daemonize".to_string(),
                "no".to_string(),
                "--logfile".to_string(),
                String::new(),
                "--pidfile".to_string(),
                self.dir.join("x.pid").display().to_string(),
                // As Redis's own suite: tests use DEBUG (off by default since Redis 7).
                "--enable-debug-command".to_string(),
                "yes".to_string(),
            ];
            argv.extend(self.args.iter().cloned());
            return argv;
        }
        let mut argv = vec![
            "--port".to_string(),
            self.port.to_string(),
            "--dir".to_string(),
            self.dir.display().to_string(),
            "--save".to_string(),
            String::new(),
            "--enable-debug-command".to_string(),
            "yes".to_string(),
        ];
        if self.kind == ServerKind::Strongbox {
            argv.extend(NO_SYNC_DELAY.iter().map(|a| a.to_string()));
        }
        if self.kind == ServerKind::Redis {
            for a in [
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ] {
                argv.push(a.to_string());
            }
        }
        argv.extend(self.args.iter().cloned());
        argv
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let argv = self.command_line();
        let _ = writeln!(
            log,
            "=== start {} (port {}): {} {:?} ===",
            self.starts,
            self.port,
            self.bin.display(),
            argv
        );
        let err_log: File = log.try_clone().expect("clone log handle");
        let child = Command::new(&self.bin)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Until PING answers +PONG (or, with `loading_ok`, `-LOADING`) from our child.
    fn wait_ready(&mut self, loading_ok: bool) -> Readiness {
        let timeout = ready_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let exited = match self.child.as_mut() {
                Some(c) => c.try_wait().ok().flatten(),
                None => panic!("wait_ready without a child"),
            };
            if let Some(status) = exited {
                let log = self.log();
                let this_run = log.rsplit("=== start ").next().unwrap_or("");
                if this_run
                    .to_ascii_lowercase()
                    .contains("address already in use")
                {
                    return Readiness::PortTaken("address already in use".into());
                }
                self.child = None;
                panic!(
                    "{:?} server exited with {status} before answering PING\n{}",
                    self.kind,
                    self.describe()
                );
            }
            let last = match RawConn::try_connect(self.port) {
                Err(e) => format!("connect: {e}"),
                // A connection can fail while the server starts (reset or closed before it
                // answers): that is "not ready yet", as a refused connect is; only a +PONG from
                // our own child's socket counts.
                Ok(mut conn) => match conn.try_send(b"*1\r\n$4\r\nPING\r\n") {
                    Err(e) => format!("PING write: {e}"),
                    Ok(()) => match conn.read_reply_within(Duration::from_millis(1000)) {
                        Ok(reply)
                            if reply == b"+PONG\r\n"
                                || (loading_ok && reply.starts_with(b"-LOADING ")) =>
                        {
                            match self.owns_listener() {
                                Some(false) => {
                                    return Readiness::PortTaken(
                                        "PING answered by another process".into(),
                                    )
                                }
                                _ => return Readiness::Ready,
                            }
                        }
                        Ok(reply) => format!("PING replied \"{}\"", escape(&reply)),
                        Err(e) => format!("PING: {e}"),
                    },
                },
            };
            if last.starts_with("PING") {
                // Kept in the log: a server that drops connections at start shows up there
                // (and in `$STRONGBOX_TEST_PROBE_LOG`, to count them over a whole run).
                let line = format!("=== readiness probe on port {}: {last} ===", self.port);
                if let Ok(mut log) = OpenOptions::new().append(true).open(&self.log_path) {
                    let _ = writeln!(log, "{line}");
                }
                if let Some(p) = std::env::var_os("STRONGBOX_TEST_PROBE_LOG") {
                    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p) {
                        let _ = writeln!(f, "{:?} {}: {line}", self.kind, self.bin.display());
                    }
                }
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "{:?} server did not answer PING with +PONG within {timeout:?} (last: {last})\n{}",
                    self.kind,
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether our child holds the listening socket on our port; None if /proc can't tell.
    pub fn owns_listener(&self) -> Option<bool> {
        pid_owns_listener(self.pid()?, self.port)
    }

    /// Binary, arguments, port, directory and the captured log, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- {:?} server {} {:?}, port {}, dir {} ---\n{}\n--- end of server output ---",
            self.kind,
            self.bin.display(),
            self.command_line(),
            self.port,
            self.dir.display(),
            self.log()
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let alive = self.is_running();
        self.kill9();
        // Redis's log is only interesting if it died; ours always is.
        if std::thread::panicking() && (self.kind == ServerKind::Strongbox || !alive) {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES_ON_PANIC)..];
            eprintln!(
                "--- last {} lines of {:?} server output (port {}, {}) ---\n{}\n---",
                tail.len(),
                self.kind,
                self.port,
                if alive { "was running" } else { "had exited" },
                tail.join("\n")
            );
        }
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            if let Some(root) = self.root.take() {
                eprintln!("keeping test dir {}", root.keep().display());
            }
        }
    }
}

/// Whether process `pid` holds a listening socket on loopback `port`; None if /proc can't tell
/// (no listener found at all).
pub fn pid_owns_listener(pid: u32, port: u16) -> Option<bool> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let port_hex = f[1].rsplit(':').next().unwrap_or("");
            if u16::from_str_radix(port_hex, 16).ok() == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            if inodes.iter().any(|i| Path::new(i) == target) {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// strongbox-server under test. Derefs to [`ServerProcess`] (`port()`, `dir()`, `kill9()`,
/// `restart()`, `stop()`, `conn()`, `log()`...).
pub struct StrongboxServer(ServerProcess);

impl StrongboxServer {
    /// Spawns strongbox-server with `--port P --dir <tmp> --save ''` followed by `args`, and
    /// waits until it answers PING.
    pub fn start(args: &[&str]) -> StrongboxServer {
        StrongboxServer(ServerProcess::start(ServerKind::Strongbox, args))
    }

    /// Like `start` but on an existing data directory (which the caller keeps ownership of).
    pub fn start_in(dir: &Path, args: &[&str]) -> StrongboxServer {
        StrongboxServer(ServerProcess::start_with_dir(
            ServerKind::Strongbox,
            Some(dir),
            args,
        ))
    }
}

impl Deref for StrongboxServer {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for StrongboxServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

/// Debian's redis-server 7.0, started with `--port P --dir <tmp> --save '' --bind 127.0.0.1
/// --appendonly no` followed by `args` (later arguments win, so `--appendonly yes` works).
pub struct RedisServer(ServerProcess);

impl RedisServer {
    pub fn start(args: &[&str]) -> RedisServer {
        RedisServer(ServerProcess::start(ServerKind::Redis, args))
    }

    pub fn start_in(dir: &Path, args: &[&str]) -> RedisServer {
        RedisServer(ServerProcess::start_with_dir(
            ServerKind::Redis,
            Some(dir),
            args,
        ))
    }
}

impl Deref for RedisServer {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for RedisServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}
