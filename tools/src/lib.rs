//! # strongbox-tools
//!
//! The offline tools an operator runs on a stopped server's files (Strongbox's, Redis 7's or
//! Valkey 8's). The binaries in `src/bin/` are thin clap front ends; the logic is here, over the
//! same decoders and the same recovery planner the server uses:
//!
//! - [`aof_check`]: `aof-check` — validates a manifest and its files, or a single base/incr
//!   file (RESP framing, `#SB` batch checksums and their chain, MULTI/EXEC balance, the RDB
//!   preamble, the manifest against the directory), and cuts a torn tail (`--fix`) or
//!   everything after a time (`--truncate-to-timestamp`), keeping the cut bytes in a backup.
//! - [`rdb_check`]: `rdb-check` — validates a whole RDB file with
//!   `strongbox_storage::rdb::RdbReader` (deep listpack/ziplist checks, CRC-64) and gathers
//!   statistics per database and per type.
//! - [`recover`]: `strongbox-recover` — `strongbox_recovery::{observe, plan, execute}` in
//!   read-only mode into a real `strongbox::exec::Server` keyspace (the server's own command
//!   table and RDB loader), then a new data directory (base RDB, empty incr file, manifest).
//! - [`progress`]: indicatif bars, only on a terminal.
//!
//! Every finding carries its file and byte offset ([`Finding`]). docs/tools.md is the user
//! documentation.

pub mod aof_check;
pub mod progress;
pub mod rdb_check;
pub mod recover;

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{json, Value as Json};

/// Exit code: everything valid / done.
pub const EXIT_OK: i32 = 0;
/// Exit code: invalid input, refused, or failed.
pub const EXIT_INVALID: i32 = 1;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational (e.g. a history file that was already deleted).
    Info,
    /// Loads fine, but worth knowing (e.g. an orphan file the manifest does not list).
    Warning,
    /// Makes the input invalid.
    Error,
}

impl Severity {
    /// Lower-case name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One thing a check found: where (file, byte offset) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file (as given or as found in the directory).
    pub file: String,
    /// Byte offset in that file (always set; 0 when the finding is about the whole file).
    pub offset: u64,
    /// Severity.
    pub severity: Severity,
    /// What is wrong, in words.
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        file: impl Into<String>,
        offset: u64,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            file: file.into(),
            offset,
            severity,
            message: message.into(),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> Json {
        json!({
            "file": self.file,
            "offset": self.offset,
            "severity": self.severity.as_str(),
            "message": self.message,
        })
    }
}

impl fmt::Display for Finding {
    /// `file:offset: severity: message`, the form compilers use, so editors and grep find it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file,
            self.offset,
            self.severity.as_str(),
            self.message
        )
    }
}

/// Printable form of possibly binary bytes, at most `max` input bytes shown.
pub fn escape_bytes(bytes: &[u8], max: usize) -> String {
    let mut s: String = bytes
        .iter()
        .take(max)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if bytes.len() > max {
        s.push_str("...");
    }
    s
}

/// Ask a yes/no question; only an answer starting with `y` or `Y` is yes (like
/// redis-check-aof's `Continue? [y/N]:`). End of input is no.
pub fn confirm(question: &str, input: &mut dyn BufRead, prompt_out: &mut dyn Write) -> bool {
    let _ = write!(prompt_out, "{question} [y/N]: ");
    let _ = prompt_out.flush();
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) | Err(_) => {
            let _ = writeln!(prompt_out);
            false
        }
        Ok(_) => line.trim_start().starts_with(['y', 'Y']),
    }
}

/// The lock file strongbox-server holds in its data directory
/// (`strongbox_storage::fs::LOCK_FILE_NAME`). Checking it never creates it: the input stays
/// untouched.
///
/// Returns the directory whose lock is held by a running process, if any of `dirs` has one.
pub fn locked_by_running_server(dirs: &[&Path]) -> Option<std::path::PathBuf> {
    for dir in dirs {
        let path = dir.join(strongbox_storage::fs::LOCK_FILE_NAME);
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        // The server holds an exclusive flock; a shared one fails while it runs.
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
            }
            Err(std::fs::TryLockError::WouldBlock) => return Some(dir.to_path_buf()),
            Err(std::fs::TryLockError::Error(_)) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_accepts_only_yes() {
        let mut out = Vec::new();
        assert!(confirm("Cut?", &mut &b"y\n"[..], &mut out));
        assert!(confirm("Cut?", &mut &b"Yes\n"[..], &mut out));
        assert!(!confirm("Cut?", &mut &b"n\n"[..], &mut out));
        assert!(!confirm("Cut?", &mut &b"\n"[..], &mut out));
        assert!(!confirm("Cut?", &mut &b""[..], &mut out));
        assert!(String::from_utf8_lossy(&out).contains("Cut? [y/N]: "));
    }

    #[test]
    fn finding_prints_file_and_offset_first() {
        let f = Finding::new("a.aof", 42, Severity::Error, "bad");
        assert_eq!(f.to_string(), "a.aof:42: error: bad");
    }
}
