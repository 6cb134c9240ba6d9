//! In-memory representations of the collection types. Each type chooses a compact encoding for
//! small collections and an indexed one for large collections, and reports Redis's encoding name.

pub mod chunked;
pub mod compact;
pub mod hash;
pub mod list;
pub mod set;
pub mod stream;
pub mod zset;
