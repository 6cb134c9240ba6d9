//! # strongbox-recovery
//!
//! From an AOF directory to a consistent state, in two steps:
//!
//! 1. [`scan::observe`] lists the directory and reads the manifest; [`plan::plan`] turns those
//!    observations into a [`Plan`] (which files to load, in which order) without touching the
//!    disk again. Tools print the plan.
//! 2. [`replay::execute`] loads the base (an RDB through [`Sink::load_rdb`], a RESP base
//!    itself), then the incr files in manifest order, verifying every batch, delivering
//!    commands to a [`Sink`] (MULTI…EXEC blocks only once EXEC is seen), cutting a torn tail
//!    when allowed, and returns a [`Report`] plus the [`ResumePoint`] for
//!    `strongbox_storage::aof::LogWriter::open`.
//!
//! The decision table (what happens for each kind of damage where) is in docs/design-aof.md
//! and in [`replay`]'s docs; each row has a test in `tests/`.
//!
//! Locking: the caller (server or tool) locks the data directory with
//! `Vfs::lock_dir` before recovering, since recovery may truncate a file.

pub mod plan;
pub mod replay;
pub mod report;
pub mod scan;

pub use plan::{plan, FileKind, ManifestSource, Plan, PlannedFile};
pub use replay::{execute, execute_with_pipeline, Outcome, PIPELINE_MIN_BYTES};
pub use report::{FileReport, Report, Skipped, Truncation};
pub use scan::{observe, Observations};
pub use strongbox_storage::aof::ResumePoint;

use std::path::{Path, PathBuf};
use strongbox_storage::aof::ManifestError;
use strongbox_storage::fs::Vfs;

/// What the server (or a tool) implements to receive the recovered state.
pub trait Sink {
    /// Apply one command (`SELECT` included; MULTI/EXEC stripped, their contents delivered
    /// only once EXEC was seen).
    fn command(&mut self, argv: Vec<bytes::Bytes>) -> Result<(), String>;
    /// Load an RDB image (a `.base.rdb`, or the RDB preamble of an old-style AOF). Returns how
    /// many bytes the RDB took (through its checksum); any bytes after that are replayed as
    /// RESP, as Redis does.
    fn load_rdb(&mut self, path: &Path, bytes: &[u8]) -> Result<u64, String>;
    /// Where the replay of the current file is: `offset` bytes into it (the command being
    /// applied starts there). Called once per [`replay::PROGRESS_COMMANDS`] commands; the
    /// server serves its clients from here while it loads (Redis's
    /// `processEventsWhileBlocked`). An error stops the replay there (a shutdown asked for
    /// meanwhile), as a failed command does: the files are not touched.
    fn progress(&mut self, _offset: u64) -> Result<(), String> {
        Ok(())
    }
    /// The current file was replayed whole (`len`: its size; a cut torn tail included).
    fn file_done(&mut self, _len: u64) {}
}

/// Recovery options (server config and offline-tool flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `aof-load-truncated`: cut a torn tail of the last incr file instead of failing.
    pub load_truncated: bool,
    /// Stop at the first `#TS:` later than this Unix time (offline tool).
    pub to_timestamp: Option<i64>,
    /// Skip damaged ranges, resuming at the next valid batch (offline tool); lists them.
    pub skip_corrupt: bool,
    /// Never modify the input (no truncation).
    pub read_only: bool,
    /// Without a manifest, find base/incr files by name (offline tool). The server leaves this
    /// off: a directory with AOF files but no manifest is an error there.
    pub infer_without_manifest: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            load_truncated: true,
            to_timestamp: None,
            skip_corrupt: false,
            read_only: false,
            infer_without_manifest: false,
        }
    }
}

/// Where to find the operator tools, appended to corruption errors.
pub const REPAIR_HINT: &str =
    "make a backup of the AOF directory, inspect it with `aof-check <manifest>`, \
and repair it with `strongbox-recover` (it can cut a torn tail or skip damaged batches)";

/// Recovery errors. Each names the file and, where it applies, the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is invalid (Redis: `*** FATAL AOF MANIFEST FILE ERROR ***`).
    #[error("fatal AOF manifest error in {path}: {source}")]
    Manifest {
        /// Manifest path.
        path: PathBuf,
        /// What is wrong, in Redis's words.
        #[source]
        source: ManifestError,
    },
    /// A file listed in the manifest is missing.
    /// Redis's words ("The append log file ... doesn't exist: No such file or directory").
    #[error("The append log file {path} doesn't exist: No such file or directory (it is listed in the manifest); {REPAIR_HINT}")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// AOF files but no manifest.
    #[error("{dir} holds AOF files ({files}) but no manifest {manifest}; {REPAIR_HINT}")]
    NoManifest {
        /// The AOF directory.
        dir: PathBuf,
        /// The manifest name expected.
        manifest: String,
        /// Some of the files found.
        files: String,
    },
    /// Damaged bytes where a torn tail cannot explain them.
    #[error("Bad file format reading the append only file {path} at offset {offset}: {reason}; {REPAIR_HINT}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged unit.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A torn tail that may not be cut (not the last file, or `aof-load-truncated no`).
    #[error("Unexpected end of file reading the append only file {path} at offset {offset}: {reason}; {hint}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Offset of the incomplete unit.
        offset: u64,
        /// What is incomplete.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// The sink refused a command.
    #[error("replaying the command at offset {offset} of {path} failed: {reason}")]
    Apply {
        /// The file.
        path: PathBuf,
        /// Offset of the command.
        offset: u64,
        /// The sink's message.
        reason: String,
    },
    /// The RDB base could not be loaded.
    #[error("loading the RDB base {path} failed: {reason}")]
    Rdb {
        /// The file.
        path: PathBuf,
        /// The RDB reader's message.
        reason: String,
    },
    /// `to_timestamp` would cut a file that is not the last one.
    #[error("cannot cut {path} at offset {offset} to timestamp {timestamp}: it is not the last file (run with read-only to inspect, or remove later files from the manifest first)")]
    TimestampNotLast {
        /// The file.
        path: PathBuf,
        /// Where the cut would be.
        offset: u64,
        /// The requested timestamp.
        timestamp: i64,
    },
}

impl RecoveryError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RecoveryError {
        let path = path.into();
        move |source| RecoveryError::Io { op, path, source }
    }
}

/// Observe, plan and execute in one call.
pub fn recover(
    vfs: &dyn Vfs,
    aof_dir: &Path,
    filename: &str,
    opts: &Options,
    sink: &mut dyn Sink,
) -> Result<Outcome, RecoveryError> {
    let obs = observe(vfs, aof_dir, filename)?;
    let plan = plan(&obs, opts.infer_without_manifest)?;
    execute(vfs, &plan, opts, sink)
}
