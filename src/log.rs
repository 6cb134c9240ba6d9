//! The server log, in redis-server's line format, so that what operators (and Redis's own test
//! suite) grep in a Redis log is found in ours:
//!
//! ```text
//! 12345:M 27 Nov 2026 17:44:48.078 * Ready to accept connections tcp (port 6379)
//! ```
//!
//! pid, role (`M` master, `S` replica), local time to the millisecond, a level mark (`.` debug,
//! `-` verbose, `*` notice, `#` warning) and the message. `tracing` levels map onto Redis's
//! `loglevel`s: TRACE = debug, DEBUG = verbose, INFO = notice, WARN and ERROR = warning.
//! `loglevel` can change at run time (CONFIG SET); the filter is a reloadable level, so a
//! disabled call site costs what it costs in `tracing` (a cached interest check).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{reload, Registry};

static REPLICA: AtomicBool = AtomicBool::new(false);
static SINK: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);
static LEVEL: OnceLock<reload::Handle<LevelFilter, Registry>> = OnceLock::new();

/// The filter for a redis.conf `loglevel` name.
pub fn level_filter(name: &str) -> LevelFilter {
    match name {
        "debug" => LevelFilter::TRACE,
        "verbose" => LevelFilter::DEBUG,
        "notice" => LevelFilter::INFO,
        "warning" => LevelFilter::WARN,
        _ => LevelFilter::OFF,
    }
}

/// Install the log: to `logfile` (appended) or standard output, at `loglevel`. Returns an
/// error text if the file cannot be opened (the log then goes to standard output, as the caller
/// reports the error and exits, the way redis-server does).
pub fn init(loglevel: &str, logfile: &str) -> Result<(), String> {
    let mut result = Ok(());
    let sink: Box<dyn Write + Send> = if logfile.is_empty() {
        Box::new(std::io::stdout())
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                result = Err(format!("Can't open the log file: {e}"));
                Box::new(std::io::stdout())
            }
        }
    };
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    let (filter, handle) = reload::Layer::new(level_filter(loglevel));
    let fmt = tracing_subscriber::fmt::layer()
        .event_format(RedisFormat)
        .with_ansi(false)
        .with_writer(|| SinkWriter);
    let subscriber = Registry::default().with(filter).with(fmt);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = LEVEL.set(handle);
    }
    result
}

/// CONFIG SET loglevel.
pub fn set_level(loglevel: &str) {
    if let Some(h) = LEVEL.get() {
        let _ = h.modify(|f| *f = level_filter(loglevel));
    }
}

/// The role letter on every line: `S` while this server replicates from a master.
pub fn set_replica(on: bool) {
    REPLICA.store(on, Ordering::Relaxed);
}

/// Lines written without the prefix (the start-up banner), as Redis's raw log lines.
pub fn raw(text: &str) {
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = sink.as_mut() {
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }
}

struct SinkWriter;

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
        match sink.as_mut() {
            Some(w) => {
                w.write_all(buf)?;
                w.flush()
            }
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct RedisFormat;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `27 Nov 2026 17:44:48.078` in the local time zone (as Redis's `localtime`).
pub fn timestamp(now: std::time::SystemTime) -> String {
    let d = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return format!("{}.{:03}", d.as_secs(), d.subsec_millis());
        }
        tm
    };
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        d.subsec_millis()
    );
    s
}

fn mark(level: &Level) -> char {
    match *level {
        Level::TRACE => '.',
        Level::DEBUG => '-',
        Level::INFO => '*',
        _ => '#',
    }
}

impl<S, N> FormatEvent<S, N> for RedisFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let role = if REPLICA.load(Ordering::Relaxed) {
            'S'
        } else {
            'M'
        };
        write!(
            writer,
            "{}:{} {} {} ",
            std::process::id(),
            role,
            timestamp(std::time::SystemTime::now()),
            mark(event.metadata().level())
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglevel_names_map_onto_tracing_levels_in_redis_order() {
        assert_eq!(level_filter("debug"), LevelFilter::TRACE);
        assert_eq!(level_filter("verbose"), LevelFilter::DEBUG);
        assert_eq!(level_filter("notice"), LevelFilter::INFO);
        assert_eq!(level_filter("warning"), LevelFilter::WARN);
        assert_eq!(level_filter("nothing"), LevelFilter::OFF);
        assert_eq!(mark(&Level::TRACE), '.');
        assert_eq!(mark(&Level::DEBUG), '-');
        assert_eq!(mark(&Level::INFO), '*');
        assert_eq!(mark(&Level::WARN), '#');
        assert_eq!(mark(&Level::ERROR), '#');
    }

    #[test]
    fn timestamps_look_like_redis_ones() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        let s = timestamp(t);
        // dd Mon yyyy hh:mm:ss.mmm, whatever the local zone.
        let parts: Vec<&str> = s.split(' ').collect();
        assert_eq!(parts.len(), 4, "{s}");
        assert_eq!(parts[0].len(), 2, "{s}");
        assert!(MONTHS.contains(&parts[1]), "{s}");
        assert_eq!(parts[2].len(), 4, "{s}");
        assert!(parts[3].ends_with(".123"), "{s}");
        assert_eq!(parts[3].len(), 12, "{s}");
    }
}
