//! Errors of the RDB codec: one for reading (corrupt or unsupported input, with the byte offset
//! and the key being read) and one for writing (I/O or a value the format cannot hold).

use bytes::Bytes;

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// The underlying reader failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input ended in the middle of an item.
    #[error("unexpected end of input")]
    Truncated,
    /// The first bytes are not an RDB header.
    #[error("wrong signature: {0}")]
    BadMagic(String),
    /// A version or producer this reader refuses (newer Redis, Valkey 9, ...).
    #[error("unsupported RDB version: {0}")]
    UnsupportedVersion(String),
    /// A feature this codec refuses (module types, pre-release function format, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The CRC-64 stored after EOF does not match the bytes read.
    #[error("checksum mismatch: stored {stored:016x}, computed {computed:016x} (RDB CRC error)")]
    ChecksumMismatch {
        /// Stored value.
        stored: u64,
        /// Computed value.
        computed: u64,
    },
    /// A DUMP payload whose footer (RDB version or CRC-64) is wrong. A server answers RESTORE
    /// with [`super::DUMP_VERSION_OR_CHECKSUM_ERR`].
    #[error("DUMP payload version or checksum are wrong: {0}")]
    DumpFooter(String),
    /// Structurally invalid data.
    #[error("{0}")]
    Corrupt(String),
}

/// A read error: where (byte offset from the start of the input), which key (when a key was
/// being read), and why.
#[derive(Debug, thiserror::Error)]
#[error("RDB error at offset {offset}{}: {reason}", key_suffix(.key))]
pub struct RdbError {
    /// Byte offset in the input where the failing item (or the failing read) starts.
    pub offset: u64,
    /// The key whose value was being read, if any.
    pub key: Option<Bytes>,
    /// What went wrong.
    pub reason: Reason,
}

fn key_suffix(key: &Option<Bytes>) -> String {
    match key {
        Some(k) => format!(" (key '{}')", String::from_utf8_lossy(k)),
        None => String::new(),
    }
}

impl RdbError {
    /// Builds an error.
    pub fn new(offset: u64, key: Option<Bytes>, reason: Reason) -> Self {
        RdbError {
            offset,
            key,
            reason,
        }
    }

    /// True when a RESTORE should answer "ERR DUMP payload version or checksum are wrong"
    /// (otherwise Redis answers "ERR Bad data format").
    pub fn is_dump_footer(&self) -> bool {
        matches!(self.reason, Reason::DumpFooter(_))
    }
}

/// A write error.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The underlying writer failed.
    #[error("I/O error writing RDB: {0}")]
    Io(#[from] std::io::Error),
    /// The value cannot be written as a valid RDB (duplicate members, NaN score, ...).
    #[error("invalid value for key '{}': {reason}", String::from_utf8_lossy(.key))]
    InvalidValue {
        /// The key.
        key: Bytes,
        /// Why.
        reason: String,
    },
    /// Bad writer options (unsupported version, ...).
    #[error("invalid RDB writer option: {0}")]
    InvalidOption(String),
}

/// An error inside an embedded blob (listpack, ziplist, intset, zipmap): the byte position in
/// the blob and why. The reader turns it into a [`Reason::Corrupt`] at the blob's file offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} integrity check failed at byte {pos}: {reason}", capitalized(.what))]
pub struct BlobError {
    /// Which structure.
    pub what: &'static str,
    /// Byte position inside the blob.
    pub pos: usize,
    /// Why.
    pub reason: String,
}

/// "ziplist" → "Ziplist": the structure's name as Redis's "Ziplist integrity check failed.".
fn capitalized(what: &str) -> String {
    let mut c = what.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl BlobError {
    /// Builds an error.
    pub fn new(what: &'static str, pos: usize, reason: impl Into<String>) -> Self {
        BlobError {
            what,
            pos,
            reason: reason.into(),
        }
    }
}
