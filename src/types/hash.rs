//! Hashes.
use bytes::Bytes;
use indexmap::IndexMap;

#[derive(Clone, Default)]
pub struct Hash {
    pub map: IndexMap<Bytes, Bytes>,
}

impl Hash {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn encoding(&self) -> &'static str {
        "hashtable"
    }
    pub fn mem_usage(&self) -> usize {
        self.map.iter().map(|(k, v)| k.len() + v.len() + 40).sum()
    }
}
