//! Start-up: configuration → logging → data directory → load → execution thread → listeners.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::client::{exec_channel, ExecBell};
use crate::config::Config;
use crate::exec::Server;
use crate::server::{accept_loop_unix, bind_all, bind_unix, Listeners, Net, NetConfig};

/// Run the server until shutdown; returns the process exit code.
pub fn run_server(args: Vec<String>) -> i32 {
    let cfg = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if !init_logging(&cfg) {
        return 1;
    }
    log_start(&cfg);
    // Before any thread exists: upstart's SIGSTOP and the fork must see one thread.
    let supervisor = crate::supervise::detect(cfg.get("supervised"));
    crate::supervise::set(supervisor);
    let background = cfg.get_bool("daemonize") && supervisor == crate::supervise::Supervisor::None;
    if background {
        crate::supervise::daemonize();
    }
    let pidfile = match cfg.get("pidfile") {
        "" if background => crate::supervise::DEFAULT_PIDFILE,
        p => p,
    }
    .to_string();
    let dir = cfg.dir();
    if !cfg.get("dir").is_empty() {
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::env::set_current_dir(&dir))
        {
            tracing::error!("Can't chdir to '{}': {e}", dir.display());
            return 1;
        }
    }
    // From here on the data directory is the working directory; CONFIG GET dir shows it as
    // an absolute path (as Redis's getcwd), and a relative `dir` is not applied twice.
    let mut cfg = cfg;
    if let Ok(cwd) = std::env::current_dir() {
        let _ = cfg.set_startup("dir", &cwd.to_string_lossy());
    }
    let cfg = cfg;
    for name in cfg.unimplemented_in_use() {
        tracing::warn!(
            "Option '{name}' is accepted but not implemented yet by Strongbox; its value has no effect"
        );
    }
    for what in &cfg.inert_directives {
        tracing::warn!("{what}");
    }
    crate::exec::set_renamed_commands(&cfg.renamed_commands);
    crate::alloc::use_huge_pages(!cfg.get_bool("disable-thp"));
    if !pidfile.is_empty() {
        if let Err(e) = std::fs::write(&pidfile, format!("{}\n", std::process::id())) {
            tracing::warn!("Failed to write PID file: {e}");
        }
    }
    // `io-threads` tokio workers (default 1, as Redis's default of one I/O thread): with the
    // execution thread and the log writer there are already two busy threads, and on a small
    // machine a second worker costs more in wake-ups and work stealing than it brings (measured
    // on 2 cores: redis-benchmark SET -c 50 -P 1 went from ~21k to ~27k requests/s with 1 worker).
    let threads = cfg.get_i64("io-threads").clamp(1, 128) as usize;
    // Batches of commands wake a sleeping execution thread when an I/O thread runs out of ready
    // connections (see `client::ExecBell`).
    let bell = Arc::new(ExecBell::default());
    let park_bell = bell.clone();
    // With one I/O thread the execution loop is a task on that same thread (as Redis's single
    // event loop): on a small machine every request then crosses no thread but the log's.
    let inline = threads == 1;
    // The main thread runs the single-threaded runtime (and with it the execution loop).
    crate::util::prefer_short_slices();
    let built = if inline {
        bell.set_inline();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .on_thread_park(move || park_bell.ring_deferred())
            .on_thread_start(|| {
                crate::util::prefer_short_slices();
            })
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("Can't start the I/O runtime: {e}");
            return 1;
        }
    };
    let mut srv = Server::new(cfg.clone());
    let _ = crate::cmd::server::apply_oom_score_adj(&srv.cfg);
    if let Err(e) = crate::cmd::acl::load_at_start(&mut srv) {
        tracing::error!("{e}");
        return 1;
    }
    // As Redis, the port is bound before the data set loads: a client may connect at once (and
    // is answered -LOADING, or served, while the load runs: see below).
    let port = cfg.get_i64("port") as u16;
    // As Redis: port 0 listens on no TCP port.
    let backlog = cfg.get_i64("tcp-backlog") as i32;
    let listeners = if port == 0 {
        Vec::new()
    } else {
        match bind_all(cfg.get("bind"), port, backlog) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        }
    };
    let unix_path = cfg.get("unixsocket").to_string();
    let unix = if unix_path.is_empty() {
        None
    } else {
        // Kept as written, in octal.
        let perm = u32::from_str_radix(cfg.get("unixsocketperm"), 8).unwrap_or(0);
        match rt.block_on(async { bind_unix(&unix_path, perm) }) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        }
    };
    if listeners.is_empty() && unix.is_none() {
        tracing::error!("Configured to not listen anywhere, exiting.");
        return 1;
    }
    log_banner(&cfg);
    // The connections are served from here on, before the data set loads: while it loads,
    // clients are answered `-LOADING` (or served, for the commands Redis allows while loading)
    // from the loader's hook (`loading.rs`), as Redis's processEventsWhileBlocked.
    let (exec_tx, exec_rx) = exec_channel(bell);
    let net = Arc::new(Net {
        exec_tx: exec_tx.clone(),
        gate: srv.log.gate_tx.subscribe(),
        next_id: srv.next_client_id.clone(),
        cfg: NetConfig {
            proto_max_bulk_len: cfg.get_i64("proto-max-bulk-len") as u64,
            query_buffer_limit: cfg.get_i64("client-query-buffer-limit") as u64,
            tcp_keepalive_s: cfg.get_i64("tcp-keepalive") as u64,
        },
        bytes_in: Arc::new(AtomicU64::new(0)),
        bytes_out: Arc::new(AtomicU64::new(0)),
        qbuf_report_step: srv.cevict.step.clone(),
    });
    srv.net_bytes = Some((net.bytes_in.clone(), net.bytes_out.clone()));
    let tcp = !listeners.is_empty();
    match Listeners::start(rt.handle().clone(), net.clone(), listeners) {
        Ok(l) => srv.listeners = Some(l),
        Err(e) => {
            tracing::error!("Can't serve the TCP listeners: {e}");
            return 1;
        }
    }
    if let Some(l) = unix {
        rt.spawn(accept_loop_unix(l, unix_path.clone(), net.clone()));
    }
    spawn_signal_thread(exec_tx.clone());
    // Load the data set (log, snapshot) and attach the log writer, the connections served
    // meanwhile (see `load_serving`).
    let start = std::time::Instant::now();
    srv.exec_rx = Some(exec_rx);
    srv.loading = Some(crate::loading::Loading::new(&srv, 0));
    if let Err(e) = load_serving(&rt, &mut srv, inline) {
        if srv.loading.as_ref().is_some_and(|l| l.aborted) {
            // As Redis: a shutdown asked for while loading exits without saving (the files
            // were only read).
            tracing::warn!("User requested shutdown...");
            tracing::info!("Strongbox is now ready to exit, bye bye...");
            if !pidfile.is_empty() {
                let _ = std::fs::remove_file(&pidfile);
            }
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            return 0;
        }
        tracing::error!("{e}");
        return 1;
    }
    srv.loading = None;
    let Some(exec_rx) = srv.exec_rx.take() else {
        tracing::error!("The execution channel was lost while loading");
        return 1;
    };
    tracing::info!(
        "DB loaded from disk: {:.3} seconds",
        start.elapsed().as_secs_f64()
    );
    // The replication link task (idle unless REPLICAOF or `replicaof` sets a master).
    crate::replica::install(&mut srv, &rt, exec_tx.clone());
    rt.spawn(srv.log.relay.clone().run());
    let mut exec_inline = None;
    let exec = if inline {
        exec_inline = Some((srv, exec_rx));
        None
    } else {
        let exec = std::thread::Builder::new()
            .name("strongbox-exec".into())
            .stack_size(crate::exec::EXEC_STACK_BYTES)
            .spawn(move || {
                crate::util::prefer_short_slices();
                crate::exec::run(srv, exec_rx)
            });
        match exec {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!("Can't start the execution thread: {e}");
                return 1;
            }
        }
    };
    if tcp {
        tracing::info!("Ready to accept connections tcp (port {port})");
    }
    if !unix_path.is_empty() {
        tracing::info!("The server is now ready to accept connections at {unix_path}");
    }
    crate::supervise::notify("STATUS=Ready to accept connections\n");
    crate::supervise::notify("READY=1\n");
    drop(exec_tx);
    // The execution loop returns on SHUTDOWN (or a signal) after flushing the log.
    if let Some((srv, exec_rx)) = exec_inline {
        rt.block_on(crate::exec::run_inline(srv, exec_rx));
    }
    if let Some(exec) = exec {
        let _ = exec.join();
    }
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    0
}

/// Run `crate::aof::open` on this thread (the main one: what the load allocates stays in
/// glibc's main arena, which `malloc_trim` returns to the system whole — from another thread,
/// a 1M-key log replay left ~10 MB more resident), while the connections are served: by the
/// runtime's workers, or with `io-threads 1` by a helper thread driving the single-threaded
/// runtime until the load ends (the main thread drives it afterwards).
fn load_serving(
    rt: &tokio::runtime::Runtime,
    srv: &mut Server,
    inline: bool,
) -> Result<(), String> {
    if !inline {
        return crate::aof::open(srv);
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::scope(|scope| {
        let io = std::thread::Builder::new()
            .name("strongbox-io".into())
            .spawn_scoped(scope, move || {
                crate::util::prefer_short_slices();
                rt.block_on(async {
                    // Err: the load ended by a panic (the sender is gone).
                    let _ = done_rx.await;
                });
            });
        if let Err(e) = io {
            tracing::warn!("Can't start a thread to serve clients while loading ({e}): they wait for the end of the load");
        }
        let r = crate::aof::open(srv);
        let _ = done_tx.send(());
        r
    })
}

/// SIGTERM and SIGINT, on a thread of their own: the execution loop may be busy for long (a
/// save at shutdown), and as Redis's signal handler a second SIGINT must still act at once.
/// Returns once the handlers are installed.
fn spawn_signal_thread(sig_tx: crate::client::ExecSender) {
    #[cfg(unix)]
    {
        use std::sync::atomic::Ordering;
        use tokio::signal::unix::{signal, SignalKind};
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("strongbox-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        return;
                    };
                    let _ = ready_tx.send(());
                    loop {
                        let sigint = tokio::select! {
                            _ = term.recv() => false,
                            _ = int.recv() => true,
                        };
                        // As Redis: a second SIGINT while a shutdown is under way (a long save,
                        // say) exits at once, without finishing it, removing the temp RDB file.
                        if sigint && crate::persist::SHUTDOWN_ASAP.swap(true, Ordering::SeqCst) {
                            tracing::warn!("You insist on shutting down the server. Exiting now.");
                            let pid = std::process::id();
                            let _ = std::fs::remove_file(format!("temp-{pid}.rdb"));
                            std::process::exit(1);
                        }
                        crate::persist::SHUTDOWN_ASAP.store(true, Ordering::SeqCst);
                        let _ = sig_tx.send(crate::client::Msg::Signal { sigint });
                    }
                });
            });
        if spawned.is_ok() {
            let _ = ready_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

fn init_logging(cfg: &Config) -> bool {
    // As Redis, which applies `dir` (chdir) while reading the config and opens the log after:
    // a relative `logfile` lives in the data directory.
    let logfile = cfg.get("logfile");
    let path = if !logfile.is_empty()
        && std::path::Path::new(logfile).is_relative()
        && !cfg.get("dir").is_empty()
    {
        let dir = cfg.dir();
        let _ = std::fs::create_dir_all(&dir);
        dir.join(logfile).to_string_lossy().into_owned()
    } else {
        logfile.to_string()
    };
    if let Err(e) = crate::log::init(cfg.get("loglevel"), &path) {
        // As redis-server: a log file that cannot be opened stops the start.
        eprintln!("{e}");
        return false;
    }
    true
}

/// The first lines of the log, as redis-server's (the version line, the config file), before
/// [`log_banner`]. The banner is ours; like Redis's it carries the port and ` PID: <pid>`
/// (what Redis's test suite waits for), and shows when `always-show-logo yes` or when the log
/// is a terminal.
fn log_start(cfg: &Config) {
    let pid = std::process::id();
    tracing::warn!("Strongbox is starting");
    tracing::warn!(
        "Strongbox version={}, redis_version={}, bits={}, pid={pid}, just started",
        crate::STRONGBOX_VERSION,
        crate::REDIS_COMPAT_VERSION,
        usize::BITS
    );
    match &cfg.file {
        Some(f) => tracing::warn!("Configuration loaded from {}", f.display()),
        None => tracing::warn!(
            "Warning: no config file specified, using the default config. In order to specify a config file use strongbox-server /path/to/strongbox.conf"
        ),
    }
}

/// The banner (or `Running mode=...`), once the port is bound as Redis's logo: Redis's test
/// suite connects as soon as it sees ` PID: <pid>`.
fn log_banner(cfg: &Config) {
    use std::io::IsTerminal;
    let pid = std::process::id();
    let port = cfg.get_i64("port");
    let show = cfg.get_bool("always-show-logo")
        || (cfg.get("logfile").is_empty() && std::io::stdout().is_terminal());
    if show {
        crate::log::raw(&format!(
            "\n    +-----------+   Strongbox {} (Redis {} compatible) {} bit\n    | STRONGBOX |   Running mode: standalone\n    |  =======  |   Port: {port}\n    +-----------+   PID: {pid}\n\n",
            crate::STRONGBOX_VERSION,
            crate::REDIS_COMPAT_VERSION,
            usize::BITS
        ));
    } else {
        tracing::info!("Running mode=standalone, port={port}.");
    }
}
