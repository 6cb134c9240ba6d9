//! What recovery did, for logs and the offline tools.

use crate::plan::FileKind;
use std::fmt;

/// Per-file summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// File name.
    pub name: String,
    /// Kind.
    pub kind: FileKind,
    /// Size on disk before recovery.
    pub bytes: u64,
    /// Length of the part that was loaded (the file's size after any cut).
    pub valid_len: u64,
    /// Commands delivered from this file.
    pub commands: u64,
    /// Verified batches.
    pub batches: u64,
    /// Commands outside batches (written by Redis, not checksummed).
    pub plain_commands: u64,
    /// Whether an RDB image was loaded from it.
    pub rdb: bool,
}

/// A cut tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// File name.
    pub file: String,
    /// New length (offset of the cut).
    pub offset: u64,
    /// Old length.
    pub original_len: u64,
    /// Why.
    pub reason: String,
    /// Whether the file was actually truncated (false in read-only mode).
    pub applied: bool,
}

/// A skipped damaged range (`skip_corrupt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// File name.
    pub file: String,
    /// First skipped byte.
    pub from: u64,
    /// First byte after the skipped range.
    pub to: u64,
    /// What was wrong at `from`.
    pub reason: String,
}

/// The recovery report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files loaded, in order.
    pub files: Vec<FileReport>,
    /// Commands delivered in total.
    pub commands: u64,
    /// A cut torn tail, if any.
    pub truncated: Option<Truncation>,
    /// An unterminated MULTI block that was dropped: (file, offset of MULTI).
    pub dropped_multi: Option<(String, u64)>,
    /// Ranges skipped with `skip_corrupt`.
    pub skipped: Vec<Skipped>,
    /// Where `to_timestamp` stopped loading: (file, offset, the `#TS:` value seen).
    pub stopped_at_timestamp: Option<(String, u64, i64)>,
    /// Files in the directory the manifest does not list (ignored).
    pub orphans: Vec<String>,
    /// Human-readable warnings, also logged with `tracing::warn!`.
    pub warnings: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            writeln!(
                f,
                "{} ({:?}): {} bytes, {} valid, {} commands in {} batches + {} plain{}",
                file.name,
                file.kind,
                file.bytes,
                file.valid_len,
                file.commands,
                file.batches,
                file.plain_commands,
                if file.rdb { ", RDB image loaded" } else { "" }
            )?;
        }
        writeln!(f, "{} commands applied", self.commands)?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
