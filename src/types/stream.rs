//! Streams are kept as loaded from RDB files (no stream commands yet), so that a snapshot
//! round-trips them.

#[derive(Clone, Default)]
pub struct Stream {
    /// Entries as (id ms, id seq, field/value pairs).
    pub entries: Vec<(u64, u64, Vec<(bytes::Bytes, bytes::Bytes)>)>,
}

impl Stream {
    pub fn mem_usage(&self) -> usize {
        self.entries
            .iter()
            .map(|e| 16 + e.2.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>())
            .sum()
    }
}
