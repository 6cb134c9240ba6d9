//! Running under a service manager, as redis-server does: `daemonize yes` forks into the
//! background, and `supervised systemd|upstart|auto` tells the manager when the server is
//! ready (Debian's redis-server.service is `Type=notify` with `--supervised systemd`, so a
//! drop-in must send `READY=1` or systemd kills it at the start timeout).

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

static SUPERVISOR: OnceLock<Supervisor> = OnceLock::new();

/// Remember the detected manager for [`notify`] (the first call wins).
pub fn set(sup: Supervisor) {
    let _ = SUPERVISOR.set(sup);
}

/// The service manager the server reports to, after detection (Redis's `redisIsSupervised`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    /// Nobody, or the requested manager was not found in the environment.
    None,
    /// systemd: `NOTIFY_SOCKET` is set; readiness is a `READY=1` datagram.
    Systemd,
    /// upstart (`expect stop`): the server stopped itself with SIGSTOP at detection.
    Upstart,
}

/// Resolve `supervised <mode>` against the environment, as Redis does: `auto` picks upstart
/// when `UPSTART_JOB` is set, else systemd when `NOTIFY_SOCKET` is set; a requested manager
/// whose variable is missing is a warning and no supervision. Under upstart this raises
/// SIGSTOP (upstart's readiness signal) and clears `UPSTART_JOB`, so it must run before any
/// thread is started.
pub fn detect(mode: &str) -> Supervisor {
    let mode = match mode {
        "auto" if std::env::var_os("UPSTART_JOB").is_some() => {
            tracing::debug!("Upstart supervision detected.");
            "upstart"
        }
        "auto" if std::env::var_os("NOTIFY_SOCKET").is_some() => {
            tracing::debug!("Systemd supervision detected.");
            "systemd"
        }
        m => m,
    };
    match mode {
        "upstart" => {
            if std::env::var_os("UPSTART_JOB").is_none() {
                tracing::warn!("upstart supervision requested, but UPSTART_JOB not found!");
                return Supervisor::None;
            }
            tracing::info!("supervised by upstart, will stop to signal readiness.");
            // SAFETY: raising a signal at the calling thread has no memory-safety
            // preconditions; the process continues when upstart sends SIGCONT.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            // Single-threaded at this point (see the doc comment), as `remove_var` requires.
            std::env::remove_var("UPSTART_JOB");
            Supervisor::Upstart
        }
        "systemd" => {
            if std::env::var_os("NOTIFY_SOCKET").is_none() {
                tracing::warn!(
                    "systemd supervision requested or auto-detected, but NOTIFY_SOCKET not found!"
                );
                return Supervisor::None;
            }
            // As Redis: the first status message doubles as the check that systemd listens.
            if let Err(e) = send_notify("STATUS=Strongbox is loading...\n") {
                tracing::warn!("Can't send notification to systemd: {e}");
                return Supervisor::None;
            }
            tracing::info!("Supervised by systemd. Please make sure you set appropriate values for TimeoutStartSec and TimeoutStopSec in your service unit.");
            Supervisor::Systemd
        }
        _ => Supervisor::None,
    }
}

/// Send one `sd_notify` message (e.g. `"READY=1\n"`) to `$NOTIFY_SOCKET`, when [`set`] recorded
/// systemd supervision. A leading `@` in the socket path names an abstract socket. Failures are logged
/// and otherwise ignored, as Redis does.
pub fn notify(msg: &str) {
    if SUPERVISOR.get() != Some(&Supervisor::Systemd) {
        return;
    }
    if let Err(e) = send_notify(msg) {
        tracing::warn!("Can't send notification to systemd: {e}");
    }
}

fn send_notify(msg: &str) -> std::io::Result<()> {
    let path = std::env::var_os("NOTIFY_SOCKET").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "NOTIFY_SOCKET is not set")
    })?;
    UnixDatagram::unbound().and_then(|sock| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg.as_bytes(), &addr)
        } else {
            sock.send_to(msg.as_bytes(), &path)
        }
    })?;
    Ok(())
}

/// `daemonize yes`: fork, the parent exits 0, the child starts a new session and points its
/// standard streams at /dev/null (Redis's `daemonize()`). Must run before any thread is
/// started: only the calling thread survives a fork.
pub fn daemonize() {
    // SAFETY: called while the process is single-threaded (before the runtime, the log writer
    // and every other thread exist), so the child is a complete copy of the process.
    match unsafe { libc::fork() } {
        -1 => {
            tracing::warn!(
                "Can't fork to run in the background: {}; staying in the foreground",
                std::io::Error::last_os_error()
            );
            return;
        }
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain system calls on our own process and file descriptors.
    unsafe {
        libc::setsid();
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd != -1 {
            libc::dup2(fd, libc::STDIN_FILENO);
            libc::dup2(fd, libc::STDOUT_FILENO);
            libc::dup2(fd, libc::STDERR_FILENO);
            if fd > libc::STDERR_FILENO {
                libc::close(fd);
            }
        }
    }
}

/// The pidfile used when `daemonize yes` and `pidfile` is empty (Redis uses
/// `/var/run/redis.pid`; Strongbox keeps its own name so it never overwrites a Redis
/// server's pidfile on the same host).
pub const DEFAULT_PIDFILE: &str = "/var/run/strongbox.pid";
