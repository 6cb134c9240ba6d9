//! RDB codec: the snapshot format of Redis 7.x / Valkey 7.2–8.x.
//!
//! Map (reading order):
//! - [`value`]: the neutral value model ([`Value`], [`Stream`], [`Entry`]) the server converts
//!   to and from its own types.
//! - [`reader`]: [`RdbReader`], a streaming reader over any `Read` yielding [`Item`]s, with deep
//!   validation (corrupt input is an [`RdbError`] with offset, key and reason, never a panic).
//! - [`writer`]: [`RdbWriter`], a streaming writer emitting RDB 10 as Redis 7.0 does.
//! - [`dump`]: DUMP/RESTORE payloads.
//! - Building blocks: [`consts`] (opcodes and types), [`crc64`], [`lzf`], [`listpack`],
//!   [`ziplist`], [`intset`], [`zipmap`], [`num`] (Redis's integer and double text rules).
//!
//! Every byte is described in `docs/design-rdb.md`.

pub mod consts;
pub mod crc64;
pub mod dump;
pub mod error;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod num;
pub mod reader;
pub mod value;
pub mod writer;
pub mod ziplist;
pub mod zipmap;

#[cfg(test)]
mod tests;

pub use dump::{
    decode_dump, decode_function_dump, encode_dump, encode_function_dump, FunctionDumpError,
    DUMP_BAD_FORMAT_ERR, DUMP_VERSION_OR_CHECKSUM_ERR,
};
pub use error::{RdbError, Reason, WriteError};
pub use reader::{
    IoSource, Item, ItemRef, RdbReader, ReadStats, ReaderOptions, SliceSource, Source, StrEntryRef,
};
pub use value::{
    Consumer, ConsumerGroup, Entry, PendingEntry, Stream, StreamEntry, StreamId, Value,
};
pub use writer::{AuxFields, EncodingThresholds, RdbWriter, WriterOptions};
