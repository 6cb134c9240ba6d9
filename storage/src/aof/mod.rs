//! Multi-part AOF (Redis 7 layout) with checksummed batches.
//!
//! - [`manifest`]: the manifest file, parsed and formatted exactly as Redis 7 does.
//! - [`batch`]: the `#SB` batch annotation, its checksum chain, and [`batch::BatchReader`]
//!   over incr files (ours and Redis's).
//! - [`writer`]: [`LogWriter`], the background writer thread (fsync policies, group commit,
//!   segmentation, the compaction hooks).
//! - [`staging`]: switching to a freshly written AOF directory (appendonly yes, a replica's
//!   full sync) and the start-up rule for what a crash leaves of it.
//! - [`upgrade`]: Redis 7's upgrade of a Redis 6 single-file AOF, and the manifest of a
//!   directory holding only a base.
//!
//! docs/design-aof.md describes every byte and the crash argument for each step.

pub mod batch;
pub mod manifest;
pub mod staging;
pub mod upgrade;
pub mod writer;

pub use batch::{BatchReader, Chain, Cmd, ReadError, ReadErrorKind, Unit};
pub use manifest::{FileType, Manifest, ManifestEntry, ManifestError};
pub use writer::{
    AofOptions, AppendPoint, FsyncPolicy, Installer, LogStats, LogWriter, Pending, Progress,
    ResumePoint, RewriteTicket,
};

use std::path::PathBuf;

/// Suffix of base files (before the format suffix).
pub const BASE_FILE_SUFFIX: &str = ".base";
/// Suffix of incr files (before the format suffix).
pub const INCR_FILE_SUFFIX: &str = ".incr";
/// Format suffix of RDB base files.
pub const RDB_FORMAT_SUFFIX: &str = ".rdb";
/// Format suffix of RESP files.
pub const AOF_FORMAT_SUFFIX: &str = ".aof";
/// Suffix of the manifest file.
pub const MANIFEST_NAME_SUFFIX: &str = ".manifest";

/// `<filename>.manifest`.
pub fn manifest_name(filename: &str) -> String {
    format!("{filename}{MANIFEST_NAME_SUFFIX}")
}

/// `<filename>.<seq>.incr.aof`.
pub fn incr_file_name(filename: &str, seq: u64) -> String {
    format!("{filename}.{seq}{INCR_FILE_SUFFIX}{AOF_FORMAT_SUFFIX}")
}

/// `<filename>.<seq>.base.rdb` or `.base.aof`.
pub fn base_file_name(filename: &str, seq: u64, rdb: bool) -> String {
    let fmt = if rdb {
        RDB_FORMAT_SUFFIX
    } else {
        AOF_FORMAT_SUFFIX
    };
    format!("{filename}.{seq}{BASE_FILE_SUFFIX}{fmt}")
}

/// Errors of the AOF layer.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest could not be parsed.
    #[error("bad AOF manifest {path}: {source}")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ManifestError,
    },
    /// The resume point does not match the files.
    #[error("cannot resume the AOF at {path}: {reason}")]
    Resume {
        /// The incr file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// An earlier write or fsync failed; the log refuses further work.
    #[error("the AOF writer stopped after an I/O failure: {0}")]
    Failed(String),
}

impl AofError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> AofError {
        let path = path.into();
        move |source| AofError::Io { op, path, source }
    }
}
