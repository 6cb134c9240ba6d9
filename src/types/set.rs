//! Sets.
use bytes::Bytes;
use indexmap::IndexSet;

#[derive(Clone, Default)]
pub struct Set {
    pub members: IndexSet<Bytes>,
}

impl Set {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn encoding(&self) -> &'static str {
        "hashtable"
    }
    pub fn mem_usage(&self) -> usize {
        self.members.iter().map(|k| k.len() + 24).sum()
    }
}
