//! Tests of the RDB codec against real Redis/Valkey files and a real redis-server.

mod common;
mod dump_restore;
mod fixtures;
mod props;
mod roundtrip;
mod slice_source;
