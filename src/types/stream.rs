//! Streams are kept as loaded from RDB files (there are no stream commands yet), so that
//! snapshots, DUMP/RESTORE and compaction carry them through unchanged.

pub use strongbox_storage::rdb::Stream;

/// Approximate heap bytes of a stream.
pub fn mem_usage(s: &Stream) -> usize {
    s.entries
        .iter()
        .map(|e| 32 + e.fields.iter().map(|(a, b)| a.len() + b.len() + 16).sum::<usize>())
        .sum()
}
